//! Private keys as the seeds make them: RSA 2048 (cfssl's `"key": {"algo": "rsa", "size":
//! 2048}`, `openssl genrsa 2048`) or ECDSA P-256 (`"algo": "ecdsa"`).
//!
//! Written as cfssljson writes them: RSA keys as PKCS#1 (`RSA PRIVATE KEY`); ECDSA keys as
//! PKCS#8 (`PRIVATE KEY`, which every Kubernetes component and openssl read too). Read in
//! any of PKCS#1, SEC1 (`EC PRIVATE KEY`) or PKCS#8, whoever wrote them.

use rcgen::{KeyPair, PublicKeyData};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::EncodePrivateKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{Error, Result};

/// Which kind of key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyAlgorithm {
    /// RSA, 2048 bits: what the seeds' CSRs ask for. Signatures SHA256-RSA.
    #[default]
    Rsa2048,
    /// ECDSA on P-256, signatures ECDSA-SHA256.
    EcdsaP256,
}

/// A private key: its PEM text (as written to or read from disk) and the signing key.
#[derive(Debug)]
pub struct PrivateKey {
    pem: String,
    key_pair: KeyPair,
}

impl PrivateKey {
    /// Generates a fresh key. RSA generation is CPU work (tens of milliseconds to seconds):
    /// callers on an async runtime run it on a blocking thread.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self> {
        match algorithm {
            KeyAlgorithm::Rsa2048 => {
                let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                    .map_err(Error::GenerateRsaKey)?;
                let pem = key
                    .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
                    .map_err(|e| Error::EncodeKey(e.to_string()))?;
                let pkcs8 = key
                    .to_pkcs8_der()
                    .map_err(|e| Error::EncodeKey(e.to_string()))?;
                let key_pair = KeyPair::from_pkcs8_der_and_sign_algo(
                    &PrivatePkcs8KeyDer::from(pkcs8.as_bytes()),
                    &rcgen::PKCS_RSA_SHA256,
                )
                .map_err(Error::GenerateKey)?;
                Ok(PrivateKey {
                    pem: pem.to_string(),
                    key_pair,
                })
            }
            KeyAlgorithm::EcdsaP256 => {
                let key_pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                    .map_err(Error::GenerateKey)?;
                Ok(PrivateKey {
                    pem: key_pair.serialize_pem(),
                    key_pair,
                })
            }
        }
    }

    /// Reads a PEM private key; `what` names the file or flag in errors.
    pub fn from_pem(pem: &[u8], what: &str) -> Result<Self> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => Error::NoPem {
                what: what.to_string(),
                kind: "private key",
            },
            other => Error::MalformedPem {
                what: what.to_string(),
                reason: other.to_string(),
            },
        })?;
        let unsupported = |reason: String| Error::UnsupportedKey {
            what: what.to_string(),
            reason,
        };
        let key_pair = match &der {
            PrivateKeyDer::Pkcs8(k) => KeyPair::try_from(k.secret_pkcs8_der())
                .map_err(|e| unsupported(format!("PKCS#8 key: {e}")))?,
            PrivateKeyDer::Pkcs1(k) => {
                let rsa_key = rsa::RsaPrivateKey::from_pkcs1_der(k.secret_pkcs1_der())
                    .map_err(|e| unsupported(format!("RSA (PKCS#1) key: {e}")))?;
                let pkcs8 = rsa_key
                    .to_pkcs8_der()
                    .map_err(|e| unsupported(format!("RSA (PKCS#1) key: {e}")))?;
                KeyPair::try_from(pkcs8.as_bytes())
                    .map_err(|e| unsupported(format!("RSA (PKCS#1) key: {e}")))?
            }
            PrivateKeyDer::Sec1(k) => sec1_to_key_pair(k.secret_sec1_der())
                .ok_or_else(|| unsupported("EC key: not a P-256 or P-384 key".into()))?,
            _ => return Err(unsupported("unknown key format".into())),
        };
        Ok(PrivateKey {
            pem: String::from_utf8_lossy(pem).into_owned(),
            key_pair,
        })
    }

    /// The key as PEM text.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The signing key, for rcgen.
    pub fn key_pair(&self) -> &KeyPair {
        &self.key_pair
    }

    /// The public key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as `openssl rsa -pubout`
    /// writes it.
    pub fn public_key_pem(&self) -> String {
        self.key_pair.public_key_pem()
    }

    /// The raw public key (the SubjectPublicKeyInfo's bit string), to compare with a
    /// certificate's.
    pub fn public_key_raw(&self) -> &[u8] {
        self.key_pair.der_bytes()
    }
}

/// SEC1 (`EC PRIVATE KEY`) carries its curve inside; ring wants PKCS#8, whose algorithm
/// identifier names the curve. Wrap it for each curve ring knows until one fits.
fn sec1_to_key_pair(sec1: &[u8]) -> Option<KeyPair> {
    const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
    [
        (P256, &rcgen::PKCS_ECDSA_P256_SHA256),
        (P384, &rcgen::PKCS_ECDSA_P384_SHA384),
    ]
    .into_iter()
    .find_map(|(curve, alg)| {
        let algorithm = der_tlv(0x30, &[EC_PUBLIC_KEY, curve].concat());
        let body = [&[0x02, 0x01, 0x00][..], &algorithm, &der_tlv(0x04, sec1)].concat();
        let pkcs8 = der_tlv(0x30, &body);
        KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8.as_slice()), alg).ok()
    })
}

/// One DER tag-length-value.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
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
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn generated_keys_read_back() {
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
            let key = PrivateKey::generate(alg).unwrap();
            let back = PrivateKey::from_pem(key.pem().as_bytes(), "test").unwrap();
            assert_eq!(key.public_key_raw(), back.public_key_raw());
            assert!(key
                .public_key_pem()
                .starts_with("-----BEGIN PUBLIC KEY-----"));
        }
        let rsa = PrivateKey::generate(KeyAlgorithm::Rsa2048).unwrap();
        assert!(rsa.pem().starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    }

    #[test]
    fn bad_pem_names_the_file() {
        let err = PrivateKey::from_pem(b"hello", "ca-key.pem").unwrap_err();
        assert_eq!(err.to_string(), "ca-key.pem: no PEM private key found");
        let err = PrivateKey::from_pem(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "k.pem",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("k.pem: unsupported"), "{err}");
    }

    #[test]
    fn der_lengths() {
        assert_eq!(der_tlv(4, &[1, 2]), vec![4, 2, 1, 2]);
        let long = der_tlv(4, &[0; 300]);
        assert_eq!(&long[..4], &[4, 0x82, 0x01, 0x2c]);
    }
}
