//! The local certificate authority the csrsigning controller signs with (upstream
//! `pkg/controller/certificates/authority`: `CertificateAuthority.Sign` with the
//! `PermissiveSigningPolicy`).
//!
//! The certificate is built as Go's `x509.CreateCertificate` builds it from upstream's
//! template: the request's subject copied byte for byte, its DNS/email/IP/URI SANs, its
//! public key, key usages and extended key usages from `spec.usages`, basic
//! constraints CA:FALSE, the CA's subject key id as authority key id, a random 128-bit
//! serial, and the policy's validity window. The CA pair is read with `ferrokube-pki`;
//! the TBSCertificate is DER-encoded here and signed with the CA's key.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use ferrokube_pki::cert::CertificateAuthority;
use k8s_openapi::jiff::Timestamp;
use rcgen::SigningKey;
use x509_parser::extensions::ParsedExtension;

use super::ParsedCsr;

/// A loaded CA: the pair plus what the certificates it signs copy from it.
pub struct Authority {
    ca: CertificateAuthority,
    /// The CA certificate's subject Name, DER (the issuer of what it signs).
    subject_der: Vec<u8>,
    /// The CA certificate's subject key identifier, if it has one.
    key_id: Option<Vec<u8>>,
    /// The CA certificate's notAfter, unix seconds.
    pub not_after: i64,
    /// The AlgorithmIdentifier of the CA key's signatures, DER.
    sig_alg: Vec<u8>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Upstream's `PermissiveSigningPolicy`.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The certificate's lifetime.
    pub ttl: Duration,
    /// `spec.usages`.
    pub usages: Vec<String>,
    /// How far notBefore is set in the past (5 minutes for the signer).
    pub backdate: Duration,
    /// Lifetimes under this are not shortened by the backdate (8 hours for the signer).
    pub short: Duration,
    /// "Now", unix seconds.
    pub now: i64,
}

impl Authority {
    /// Reads and checks the CA pair (`--cluster-signing-cert-file`/`-key-file`).
    pub fn load(cert: &Path, key: &Path) -> Result<Authority, String> {
        let ca = CertificateAuthority::load(cert, key).map_err(|e| error_chain(&e))?;
        Self::from_ca(ca)
    }

    /// Wraps an already loaded CA.
    pub fn from_ca(ca: CertificateAuthority) -> Result<Authority, String> {
        let (_, block) = x509_parser::pem::parse_x509_pem(ca.cert_pem().as_bytes())
            .map_err(|e| format!("CA certificate: {e}"))?;
        let cert = block
            .parse_x509()
            .map_err(|e| format!("CA certificate: {e}"))?;
        let key_id = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            });
        let alg = ca.pair().key.key_pair().algorithm();
        let sig_alg = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
            seq(&[&oid(&[1, 2, 840, 10045, 4, 3, 2])])
        } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
            seq(&[&oid(&[1, 2, 840, 10045, 4, 3, 3])])
        } else if alg == &rcgen::PKCS_RSA_SHA256 {
            seq(&[&oid(&[1, 2, 840, 113549, 1, 1, 11]), &[0x05, 0x00]])
        } else if alg == &rcgen::PKCS_ED25519 {
            seq(&[&oid(&[1, 3, 101, 112])])
        } else {
            return Err(format!("unsupported CA key algorithm {alg:?}"));
        };
        Ok(Authority {
            subject_der: cert.subject().as_raw().to_vec(),
            key_id,
            not_after: cert.validity().not_after.timestamp(),
            sig_alg,
            ca,
        })
    }

    /// Signs `req` under `policy`; the certificate as PEM. Errors carry upstream's
    /// messages.
    pub fn sign(&self, req: &ParsedCsr, policy: &Policy) -> Result<String, String> {
        req.check_signature()
            .map_err(|e| format!("unable to verify certificate request signature: {e}"))?;
        let (key_usage, ext_usages) = key_usages(&policy.usages)?;
        let (not_before, not_after) = validity(policy, self.not_after)?;
        let serial = random_serial()?;

        let mut exts: Vec<Vec<u8>> = Vec::new();
        if key_usage != 0 {
            exts.push(extension(&[2, 5, 29, 15], true, &key_usage_bits(key_usage)));
        }
        if !ext_usages.is_empty() {
            let oids: Vec<Vec<u8>> = ext_usages.iter().map(|e| oid(e.oid())).collect();
            let refs: Vec<&[u8]> = oids.iter().map(Vec::as_slice).collect();
            exts.push(extension(&[2, 5, 29, 37], false, &seq(&refs)));
        }
        // Basic constraints, CA:FALSE (an empty SEQUENCE), critical as Go writes it.
        exts.push(extension(&[2, 5, 29, 19], true, &seq(&[])));
        if let Some(id) = &self.key_id {
            exts.push(extension(&[2, 5, 29, 35], false, &seq(&[&tlv(0x80, id)])));
        }
        if let Some(san) = san(req) {
            // An empty subject makes the SANs the identity: critical (RFC 5280 4.2.1.6).
            let critical = req.subject_der.len() <= 2;
            exts.push(extension(&[2, 5, 29, 17], critical, &san));
        }
        let ext_refs: Vec<&[u8]> = exts.iter().map(Vec::as_slice).collect();

        let tbs = seq(&[
            &tlv(0xa0, &integer(&[2])),
            &integer(&serial),
            &self.sig_alg,
            &self.subject_der,
            &seq(&[&time(not_before)?, &time(not_after)?]),
            &req.subject_der,
            &req.spki_der,
            &tlv(0xa3, &seq(&ext_refs)),
        ]);
        let signature = self
            .ca
            .pair()
            .key
            .key_pair()
            .sign(&tbs)
            .map_err(|e| format!("failed to sign certificate: {e}"))?;
        let mut bits = vec![0u8];
        bits.extend_from_slice(&signature);
        let der = seq(&[&tbs, &self.sig_alg, &tlv(0x03, &bits)]);
        Ok(pem("CERTIFICATE", &der))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The policy's window: notBefore = now − backdate; notAfter = now + ttl (short
/// lifetimes) or now + ttl − backdate, capped at the CA's notAfter.
pub fn validity(policy: &Policy, ca_not_after: i64) -> Result<(i64, i64), String> {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4);
    let now = policy.now;
    let not_before = now - secs(policy.backdate);
    let mut not_after = if policy.ttl < policy.short {
        now + secs(policy.ttl)
    } else {
        now + secs(policy.ttl) - secs(policy.backdate)
    };
    if not_after >= ca_not_after {
        not_after = ca_not_after;
    }
    let show = |t: i64| Timestamp::from_second(t).map_or_else(|_| t.to_string(), |t| t.to_string());
    if not_before >= ca_not_after {
        return Err(format!(
            "the signer has expired: NotAfter={}",
            show(ca_not_after)
        ));
    }
    if now >= ca_not_after {
        return Err(format!(
            "refusing to sign a certificate that expired in the past: NotAfter={}",
            show(ca_not_after)
        ));
    }
    Ok((not_before, not_after))
}

/// The extended key usages upstream knows, in Go's `ExtKeyUsage` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExtUsage {
    Any,
    ServerAuth,
    ClientAuth,
    CodeSigning,
    EmailProtection,
    IpsecEndSystem,
    IpsecTunnel,
    IpsecUser,
    TimeStamping,
    OcspSigning,
    MicrosoftSgc,
    NetscapeSgc,
}

impl ExtUsage {
    fn oid(self) -> &'static [u64] {
        match self {
            ExtUsage::Any => &[2, 5, 29, 37, 0],
            ExtUsage::ServerAuth => &[1, 3, 6, 1, 5, 5, 7, 3, 1],
            ExtUsage::ClientAuth => &[1, 3, 6, 1, 5, 5, 7, 3, 2],
            ExtUsage::CodeSigning => &[1, 3, 6, 1, 5, 5, 7, 3, 3],
            ExtUsage::EmailProtection => &[1, 3, 6, 1, 5, 5, 7, 3, 4],
            ExtUsage::IpsecEndSystem => &[1, 3, 6, 1, 5, 5, 7, 3, 5],
            ExtUsage::IpsecTunnel => &[1, 3, 6, 1, 5, 5, 7, 3, 6],
            ExtUsage::IpsecUser => &[1, 3, 6, 1, 5, 5, 7, 3, 7],
            ExtUsage::TimeStamping => &[1, 3, 6, 1, 5, 5, 7, 3, 8],
            ExtUsage::OcspSigning => &[1, 3, 6, 1, 5, 5, 7, 3, 9],
            ExtUsage::MicrosoftSgc => &[1, 3, 6, 1, 4, 1, 311, 10, 3, 3],
            ExtUsage::NetscapeSgc => &[2, 16, 840, 1, 113730, 4, 1],
        }
    }
}

/// Upstream's `keyUsagesFromStrings`: Go's KeyUsage bits and the sorted extended
/// usages, or `unrecognized usage values: [...]`.
pub fn key_usages(usages: &[String]) -> Result<(u16, Vec<ExtUsage>), String> {
    let mut bits = 0u16;
    let mut ext = std::collections::BTreeSet::new();
    let mut unknown = Vec::new();
    for u in usages {
        let bit = match u.as_str() {
            "signing" | "digital signature" => Some(1 << 0),
            "content commitment" => Some(1 << 1),
            "key encipherment" => Some(1 << 2),
            "data encipherment" => Some(1 << 3),
            "key agreement" => Some(1 << 4),
            "cert sign" => Some(1 << 5),
            "crl sign" => Some(1 << 6),
            "encipher only" => Some(1 << 7),
            "decipher only" => Some(1 << 8),
            _ => None,
        };
        if let Some(b) = bit {
            bits |= b;
            continue;
        }
        let e = match u.as_str() {
            "any" => ExtUsage::Any,
            "server auth" => ExtUsage::ServerAuth,
            "client auth" => ExtUsage::ClientAuth,
            "code signing" => ExtUsage::CodeSigning,
            "email protection" | "s/mime" => ExtUsage::EmailProtection,
            "ipsec end system" => ExtUsage::IpsecEndSystem,
            "ipsec tunnel" => ExtUsage::IpsecTunnel,
            "ipsec user" => ExtUsage::IpsecUser,
            "timestamping" => ExtUsage::TimeStamping,
            "ocsp signing" => ExtUsage::OcspSigning,
            "microsoft sgc" => ExtUsage::MicrosoftSgc,
            "netscape sgc" => ExtUsage::NetscapeSgc,
            _ => {
                unknown.push(format!("{u:?}"));
                continue;
            }
        };
        ext.insert(e);
    }
    if !unknown.is_empty() {
        return Err(format!(
            "unrecognized usage values: [{}]",
            unknown.join(" ")
        ));
    }
    Ok((bits, ext.into_iter().collect()))
}

/// Go's `marshalKeyUsage`: bit 0 is the first byte's most significant bit; trailing
/// zero bits are dropped (DER).
fn key_usage_bits(ku: u16) -> Vec<u8> {
    let a = [(ku as u8).reverse_bits(), ((ku >> 8) as u8).reverse_bits()];
    let len = if a[1] != 0 { 2 } else { 1 };
    let bytes = &a[..len];
    let last = bytes[len - 1];
    let unused = if last == 0 {
        0
    } else {
        last.trailing_zeros() as u8
    };
    let mut body = vec![unused];
    body.extend_from_slice(bytes);
    tlv(0x03, &body)
}

/// GeneralNames for the request's SANs (DNS, email, IP, URI, in Go's order).
fn san(req: &ParsedCsr) -> Option<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = Vec::new();
    names.extend(req.dns_names.iter().map(|d| tlv(0x82, d.as_bytes())));
    names.extend(req.emails.iter().map(|e| tlv(0x81, e.as_bytes())));
    for ip in &req.ip_addresses {
        match ip {
            IpAddr::V4(v4) => names.push(tlv(0x87, &v4.octets())),
            IpAddr::V6(v6) => names.push(tlv(0x87, &v6.octets())),
        }
    }
    names.extend(req.uris.iter().map(|u| tlv(0x86, u.as_bytes())));
    if names.is_empty() {
        return None;
    }
    let refs: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    Some(seq(&refs))
}

/// A positive serial below 2^128 (Go: `rand.Int(rand.Reader, 1<<128)`).
fn random_serial() -> Result<Vec<u8>, String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "unable to generate a serial number".to_string())?;
    Ok(bytes.to_vec())
}

fn extension(id: &[u64], critical: bool, value: &[u8]) -> Vec<u8> {
    let id = oid(id);
    let octets = tlv(0x04, value);
    if critical {
        seq(&[&id, &[0x01, 0x01, 0xff], &octets])
    } else {
        seq(&[&id, &octets])
    }
}

/// UTCTime for 1950–2049, GeneralizedTime otherwise (RFC 5280 4.1.2.5).
fn time(unix: i64) -> Result<Vec<u8>, String> {
    let t = Timestamp::from_second(unix).map_err(|e| format!("time {unix}: {e}"))?;
    let year = t.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC).year();
    if (1950..2050).contains(&year) {
        Ok(tlv(
            0x17,
            t.strftime("%y%m%d%H%M%SZ").to_string().as_bytes(),
        ))
    } else {
        Ok(tlv(
            0x18,
            t.strftime("%Y%m%d%H%M%SZ").to_string().as_bytes(),
        ))
    }
}

/// A DER INTEGER from big-endian unsigned bytes.
fn integer(be: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
    if v.is_empty() || v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    tlv(0x02, &v)
}

fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    let (first, second) = (
        arcs.first().copied().unwrap_or(0),
        arcs.get(1).copied().unwrap_or(0),
    );
    let mut push = |mut n: u64| {
        let mut tmp = vec![(n & 0x7f) as u8];
        n >>= 7;
        while n > 0 {
            tmp.push((n & 0x7f) as u8 | 0x80);
            n >>= 7;
        }
        tmp.reverse();
        body.extend_from_slice(&tmp);
    };
    push(first * 40 + second);
    for &a in arcs.iter().skip(2) {
        push(a);
    }
    tlv(0x06, &body)
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(body);
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::certificates::tests::csr_pem;
    use ferrokube_pki::keys::KeyAlgorithm;

    fn ca(alg: KeyAlgorithm) -> Authority {
        let ca = CertificateAuthority::generate("kubernetes-ca", &[], alg, 365).unwrap();
        Authority::from_ca(ca).unwrap()
    }

    fn policy(now: i64, ttl: Duration, usages: &[&str]) -> Policy {
        Policy {
            ttl,
            usages: usages.iter().map(|s| s.to_string()).collect(),
            backdate: Duration::from_secs(300),
            short: Duration::from_secs(8 * 3600),
            now,
        }
    }

    #[test]
    fn signs_a_node_client_certificate_that_chains_to_the_ca() {
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
            let ca = ca(alg);
            let (req, _) = csr_pem(
                "system:node:n1",
                &["system:nodes", "extra"],
                &["n1", "10.1.2.3"],
            );
            let req = ParsedCsr::parse(req.as_bytes()).unwrap();
            let now = Timestamp::now().as_second();
            let p = policy(
                now,
                Duration::from_secs(3600),
                &["digital signature", "key encipherment", "client auth"],
            );
            let pem = ca.sign(&req, &p).unwrap();
            let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
            let cert = block.parse_x509().unwrap();
            let (_, ca_block) =
                x509_parser::pem::parse_x509_pem(ca.ca.cert_pem().as_bytes()).unwrap();
            let ca_cert = ca_block.parse_x509().unwrap();
            cert.verify_signature(Some(ca_cert.public_key())).unwrap();
            assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());
            assert_eq!(cert.subject().as_raw(), req.subject_der.as_slice());
            let orgs: Vec<_> = cert
                .subject()
                .iter_organization()
                .map(|o| o.as_str().unwrap().to_string())
                .collect();
            assert_eq!(orgs, vec!["system:nodes", "extra"]);
            assert_eq!(cert.validity().not_before.timestamp(), now - 300);
            assert_eq!(cert.validity().not_after.timestamp(), now + 3600);
            let eku = cert.extended_key_usage().unwrap().unwrap();
            assert!(eku.value.client_auth && !eku.value.server_auth);
            let ku = cert.key_usage().unwrap().unwrap();
            assert!(ku.critical);
            assert!(ku.value.digital_signature() && ku.value.key_encipherment());
            assert!(!ku.value.key_cert_sign());
            let bc = cert.basic_constraints().unwrap().unwrap();
            assert!(!bc.value.ca);
            let san = cert.subject_alternative_name().unwrap().unwrap();
            assert_eq!(san.value.general_names.len(), 2);
        }
    }

    #[test]
    fn validity_window_as_upstream() {
        let now = 1_000_000;
        let ca_end = now + 100 * 3600;
        let short = policy(now, Duration::from_secs(600), &[]);
        assert_eq!(validity(&short, ca_end).unwrap(), (now - 300, now + 600));
        let long = policy(now, Duration::from_secs(10 * 3600), &[]);
        assert_eq!(
            validity(&long, ca_end).unwrap(),
            (now - 300, now + 10 * 3600 - 300)
        );
        let capped = policy(now, Duration::from_secs(1000 * 3600), &[]);
        assert_eq!(validity(&capped, ca_end).unwrap().1, ca_end);
        let err = validity(&long, now - 400).unwrap_err();
        assert!(err.starts_with("the signer has expired"), "{err}");
        let err = validity(&long, now - 1).unwrap_err();
        assert!(
            err.starts_with("refusing to sign a certificate that expired in the past"),
            "{err}"
        );
    }

    #[test]
    fn usages_map_as_upstream() {
        let u = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (ku, eku) = key_usages(&u(&["signing", "client auth", "server auth", "any"])).unwrap();
        assert_eq!(ku, 1);
        assert_eq!(
            eku,
            vec![ExtUsage::Any, ExtUsage::ServerAuth, ExtUsage::ClientAuth]
        );
        assert_eq!(
            key_usages(&u(&["bogus", "client auth", "other"])).unwrap_err(),
            "unrecognized usage values: [\"bogus\" \"other\"]"
        );
        // digital signature + key encipherment: bits 0 and 2 → 0b1010_0000, 5 unused.
        assert_eq!(key_usage_bits(0b101), vec![0x03, 0x02, 0x05, 0xa0]);
        // decipher only spills into a second byte.
        assert_eq!(key_usage_bits(1 << 8), vec![0x03, 0x03, 0x07, 0x00, 0x80]);
    }

    #[test]
    fn der_primitives() {
        assert_eq!(oid(&[2, 5, 29, 15]), vec![0x06, 0x03, 0x55, 0x1d, 0x0f]);
        assert_eq!(
            oid(&[1, 2, 840, 113549, 1, 1, 11]),
            vec![0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]
        );
        assert_eq!(integer(&[0x00, 0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(&[0, 0, 5]), vec![0x02, 0x01, 0x05]);
        assert_eq!(tlv(0x04, &[0u8; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(time(0).unwrap(), tlv(0x17, b"700101000000Z"));
        assert_eq!(
            time(2_556_143_999 + 1).unwrap(),
            tlv(0x18, b"20510101000000Z")
        );
    }
}
