//! Service-account key files in every PEM form upstream accepts, upstream's key IDs, and
//! the service account issuer discovery documents.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use ferrokube_authn::{Authenticator, AuthnConfig, OpenIdMetadata};
use rustls_pki_types::pem::PemObject as _;
use serde_json::{json, Value};

#[test]
fn key_files_in_every_form_and_discovery() {
    let rsa = rsa_key();
    let ec = ec_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let dir = Dir::new();
    // The public key from a certificate, a PKCS#1 private key, a PKCS#8 private key, SEC1,
    // and two keys in one file.
    let ca = Ca::new("sa-ca");
    let both = format!("{}{}", rsa.public_pem, ec.public_pem);
    let files = vec![
        dir.write("cert.pem", ca.pem()),
        dir.write("rsa1.pem", &rsa.pkcs1_pem),
        dir.write("rsa8.pem", &rsa.pkcs8_pem),
        dir.write("ec1.pem", &ec.sec1_pem),
        dir.write("both.pem", &both),
    ];
    let cfg = AuthnConfig {
        service_account_key_files: files,
        service_account_issuers: vec![ISSUER.into()],
        ..AuthnConfig::new()
    };
    let authn = Authenticator::new(&cfg).unwrap();
    let keys = authn.service_account_public_keys();
    assert_eq!(keys.len(), 6);
    assert_eq!(
        keys[1], keys[2],
        "PKCS#1 and PKCS#8 of one key give one public key"
    );
    assert_eq!(keys[1], keys[4]);
    assert_eq!(keys[3], keys[5]);

    // kid = base64url(sha256(SPKI DER)), the SPKI DER being what openssl/Go write.
    let spki = rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(rsa.public_pem.as_bytes())
        .unwrap();
    assert_eq!(keys[1].spki_der(), spki.as_ref());
    let digest = ring::digest::digest(&ring::digest::SHA256, spki.as_ref());
    assert_eq!(keys[1].key_id(), URL_SAFE_NO_PAD.encode(digest.as_ref()));
    let ec_spki =
        rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(ec.public_pem.as_bytes())
            .unwrap();
    assert_eq!(keys[3].spki_der(), ec_spki.as_ref());

    let meta = OpenIdMetadata::new(ISSUER, None, Some("10.0.0.1:6443"), &keys[1..4]).unwrap();
    let config: Value = serde_json::from_slice(meta.configuration_json()).unwrap();
    assert_eq!(
        config,
        json!({
            "issuer": ISSUER,
            "jwks_uri": "https://10.0.0.1:6443/openid/v1/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        })
    );
    let jwks_text = String::from_utf8(meta.jwks_json().to_vec()).unwrap();
    assert!(
        jwks_text.starts_with(r#"{"keys":[{"use":"sig","kty":"RSA","kid":""#),
        "{jwks_text}"
    );
    let jwks = meta.jwks();
    assert_eq!(jwks["keys"][0]["e"], "AQAB");
    assert_eq!(jwks["keys"][2]["crv"], "P-256");
    assert_eq!(jwks["keys"][2]["kid"], keys[3].key_id());
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(jwks["keys"][2]["x"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );

    assert!(OpenIdMetadata::new("http://insecure", None, Some("a:1"), &keys).is_err());
    assert!(OpenIdMetadata::new(ISSUER, None, None, &keys).is_err());
    assert!(OpenIdMetadata::new(ISSUER, Some("http://x/jwks"), None, &keys).is_err());
    let custom =
        OpenIdMetadata::new(ISSUER, Some("https://cdn.example/jwks"), None, &keys).unwrap();
    assert_eq!(
        custom.configuration()["jwks_uri"],
        "https://cdn.example/jwks"
    );
}
