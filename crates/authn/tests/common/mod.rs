//! Shared fixtures: real keys (RSA via the `rsa` crate, ECDSA via rcgen), a CA with client
//! certificates, files in a temp dir, and live objects for the lookups.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use serde_json::{json, Value};

use ferrokube_authn::MapLookup;

pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
pub const NS: &str = "default";
pub const SA: &str = "builder";
pub const SA_UID: &str = "11111111-1111-1111-1111-111111111111";
pub const POD: &str = "web-0";
pub const POD_UID: &str = "22222222-2222-2222-2222-222222222222";
pub const NODE: &str = "node-a";
pub const NODE_UID: &str = "33333333-3333-3333-3333-333333333333";
pub const SECRET: &str = "builder-token";
pub const SECRET_UID: &str = "44444444-4444-4444-4444-444444444444";

pub struct Dir {
    pub dir: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Self {
        Dir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

/// An RSA-2048 key: (PKCS#1 private PEM, PKCS#8 private PEM, SPKI public PEM).
pub struct RsaKey {
    pub pkcs1_pem: String,
    pub pkcs8_pem: String,
    pub public_pem: String,
}

pub fn rsa_key() -> RsaKey {
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    RsaKey {
        pkcs1_pem: key.to_pkcs1_pem(LineEnding::LF).unwrap().to_string(),
        pkcs8_pem: key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        public_pem: key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    }
}

/// An ECDSA key: (PKCS#8 private PEM, SPKI public PEM, SEC1 `EC PRIVATE KEY` PEM).
pub struct EcKey {
    pub pkcs8_pem: String,
    pub public_pem: String,
    pub sec1_pem: String,
}

fn read_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = if input[1] & 0x80 == 0 {
        (input[1] as usize, 2)
    } else {
        let n = (input[1] & 0x7f) as usize;
        let mut len = 0usize;
        for b in &input[2..2 + n] {
            len = (len << 8) | *b as usize;
        }
        (len, 2 + n)
    };
    (tag, &input[header..header + len], &input[header + len..])
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

pub fn ec_key(alg: &'static rcgen::SignatureAlgorithm) -> EcKey {
    let key = KeyPair::generate_for(alg).unwrap();
    // PKCS#8: SEQUENCE { INTEGER 0, AlgorithmIdentifier, OCTET STRING { ECPrivateKey } }.
    let der = key.serialize_der();
    let (_, body, _) = read_tlv(&der);
    let (_, _, rest) = read_tlv(body);
    let (_, _, rest) = read_tlv(rest);
    let (tag, sec1, _) = read_tlv(rest);
    assert_eq!(tag, 0x04);
    EcKey {
        pkcs8_pem: key.serialize_pem(),
        public_pem: key.public_key_pem(),
        sec1_pem: pem("EC PRIVATE KEY", sec1),
    }
}

pub struct Ca {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(cn: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let key = KeyPair::generate().unwrap();
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.as_ref().pem()
    }

    pub fn der(&self) -> Vec<u8> {
        self.issuer.as_ref().der().to_vec()
    }

    /// A client certificate (DER) with subject CN and O values.
    pub fn client_cert(&self, cn: &str, orgs: &[&str]) -> Vec<u8> {
        self.cert(cn, orgs, vec![ExtendedKeyUsagePurpose::ClientAuth])
    }

    /// A server certificate for `localhost`: (certificate DER, PKCS#8 key DER).
    pub fn server_cert(&self) -> (Vec<u8>, Vec<u8>) {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.der().to_vec(), key.serialize_der())
    }

    /// A client certificate and its PKCS#8 key.
    pub fn client_cert_and_key(&self, cn: &str) -> (Vec<u8>, Vec<u8>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.der().to_vec(), key.serialize_der())
    }

    pub fn cert(&self, cn: &str, orgs: &[&str], ekus: Vec<ExtendedKeyUsagePurpose>) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        // rcgen's default subject is "CN=rcgen self signed cert".
        params.distinguished_name = rcgen::DistinguishedName::new();
        if !cn.is_empty() {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        // rcgen keeps one value per attribute type; a second O goes in under the same OID
        // spelled as a custom type.
        for (i, o) in orgs.iter().enumerate() {
            let ty = if i == 0 {
                DnType::OrganizationName
            } else {
                DnType::CustomDnType(vec![2, 5, 4, 10])
            };
            params.distinguished_name.push(ty, *o);
        }
        params.extended_key_usages = ekus;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        params.signed_by(&key, &self.issuer).unwrap().der().to_vec()
    }
}

fn meta(name: &str, namespace: &str, uid: &str) -> Value {
    json!({ "name": name, "namespace": namespace, "uid": uid })
}

/// The service account, a pod running as it on a node, the node, and a secret.
pub fn live_objects() -> MapLookup {
    let mut l = MapLookup::new();
    l.insert(
        "",
        "serviceaccounts",
        NS,
        SA,
        json!({"metadata": meta(SA, NS, SA_UID)}),
    );
    l.insert(
        "",
        "pods",
        NS,
        POD,
        json!({"metadata": meta(POD, NS, POD_UID), "spec": {"serviceAccountName": SA, "nodeName": NODE}}),
    );
    l.insert(
        "",
        "nodes",
        "",
        NODE,
        json!({"metadata": {"name": NODE, "uid": NODE_UID}}),
    );
    l.insert(
        "",
        "secrets",
        NS,
        SECRET,
        json!({"metadata": meta(SECRET, NS, SECRET_UID), "type": "Opaque"}),
    );
    l
}

pub fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

pub fn bearer(token: &str) -> http::HeaderMap {
    headers(&[("authorization", &format!("Bearer {token}"))])
}
