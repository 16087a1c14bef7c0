//! Service-account keys: the public keys of `--service-account-key-file` (upstream
//! `keyutil.ParsePublicKeysPEM`: public keys, certificates and private keys, RSA or
//! ECDSA), the private key of `--service-account-signing-key-file`
//! (`keyutil.ParsePrivateKeyPEM`), upstream's key ID (`keyIDFromPublicKey`:
//! base64url(sha256(PKIX DER))) and JWS signing/verification with ring.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use rustls_pki_types::pem::{PemObject as _, SectionKind};
use x509_parser::prelude::FromDer as _;

use crate::der;

/// Why a key (or a PEM block of a key file) was rejected.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PEM framing itself is broken.
    #[error("malformed PEM: {0:?}")]
    Pem(rustls_pki_types::pem::Error),
    /// No key block in the data.
    #[error("data does not contain any valid RSA or ECDSA public keys")]
    NoPublicKeys,
    /// No private key block in the data.
    #[error("data does not contain a valid RSA or ECDSA private key")]
    NoPrivateKey,
    /// A block of the given PEM type does not parse as that kind of key.
    #[error("PEM block #{index} ({kind}) does not parse: {reason}")]
    Malformed {
        /// 1-based block number in the file.
        index: usize,
        /// What the block claimed to be.
        kind: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// A key type or curve this server cannot use.
    #[error("PEM block #{index}: unsupported key: {what}")]
    Unsupported {
        /// 1-based block number in the file.
        index: usize,
        /// The key type or curve.
        what: String,
    },
}

/// An elliptic curve of an ECDSA key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (ES256).
    P256,
    /// NIST P-384 (ES384).
    P384,
    /// NIST P-521 (ES512; verification only where ring supports it — it does not).
    P521,
}

impl Curve {
    fn oid(self) -> &'static [u8] {
        match self {
            Curve::P256 => der::OID_P256,
            Curve::P384 => der::OID_P384,
            Curve::P521 => der::OID_P521,
        }
    }

    /// JWK `crv`.
    pub fn jwk_name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }

    /// Bytes of one coordinate.
    fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
}

/// A public key that can verify service-account tokens.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA: big-endian modulus and exponent without leading zeros.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// ECDSA: the uncompressed SEC1 point.
    Ec {
        /// Curve.
        curve: Curve,
        /// `04 || x || y`.
        point: Vec<u8>,
    },
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("alg", &self.algorithm())
            .field("kid", &self.key_id())
            .finish()
    }
}

impl PublicKey {
    /// The PKIX SubjectPublicKeyInfo DER, as Go's `x509.MarshalPKIXPublicKey` writes it.
    pub fn spki_der(&self) -> Vec<u8> {
        match self {
            PublicKey::Rsa { n, e } => {
                let rsa_public_key =
                    der::sequence(&[&der::unsigned_integer(n), &der::unsigned_integer(e)]);
                der::sequence(&[
                    &der::sequence(&[der::OID_RSA_ENCRYPTION, der::NULL]),
                    &der::bit_string(&rsa_public_key),
                ])
            }
            PublicKey::Ec { curve, point } => der::sequence(&[
                &der::sequence(&[der::OID_EC_PUBLIC_KEY, curve.oid()]),
                &der::bit_string(point),
            ]),
        }
    }

    /// Upstream's key ID: base64url(sha256(PKIX DER)), unpadded.
    pub fn key_id(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.spki_der());
        URL_SAFE_NO_PAD.encode(digest.as_ref())
    }

    /// The JWS algorithm upstream signs with for this key (`algorithmFromPublicKey`).
    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::Rsa { .. } => "RS256",
            PublicKey::Ec {
                curve: Curve::P256, ..
            } => "ES256",
            PublicKey::Ec {
                curve: Curve::P384, ..
            } => "ES384",
            PublicKey::Ec {
                curve: Curve::P521, ..
            } => "ES512",
        }
    }

    /// The public JWK (go-jose's field order: use, kty, kid, crv, alg, x, y, n, e).
    pub fn jwk(&self) -> serde_json::Value {
        let mut jwk = serde_json::Map::new();
        jwk.insert("use".into(), "sig".into());
        match self {
            PublicKey::Rsa { n, e } => {
                jwk.insert("kty".into(), "RSA".into());
                jwk.insert("kid".into(), self.key_id().into());
                jwk.insert("alg".into(), self.algorithm().into());
                jwk.insert("n".into(), URL_SAFE_NO_PAD.encode(n).into());
                jwk.insert("e".into(), URL_SAFE_NO_PAD.encode(e).into());
            }
            PublicKey::Ec { curve, point } => {
                let len = curve.coordinate_len();
                let coords = point.get(1..).unwrap_or_default();
                let (x, y) = coords.split_at(len.min(coords.len()));
                jwk.insert("kty".into(), "EC".into());
                jwk.insert("kid".into(), self.key_id().into());
                jwk.insert("crv".into(), curve.jwk_name().into());
                jwk.insert("alg".into(), self.algorithm().into());
                jwk.insert("x".into(), URL_SAFE_NO_PAD.encode(x).into());
                jwk.insert("y".into(), URL_SAFE_NO_PAD.encode(y).into());
            }
        }
        serde_json::Value::Object(jwk)
    }

    /// Verifies a JWS signature made with `alg` over `message`. Algorithms must fit the
    /// key (RS*/PS* for RSA, the curve's ES* for ECDSA).
    pub(crate) fn verify(&self, alg: &str, message: &[u8], sig: &[u8]) -> bool {
        match self {
            PublicKey::Rsa { n, e } => {
                let params: &signature::RsaParameters = match alg {
                    "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                    "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            PublicKey::Ec { curve, point } => {
                let params: &'static dyn signature::VerificationAlgorithm = match (curve, alg) {
                    (Curve::P256, "ES256") => &signature::ECDSA_P256_SHA256_FIXED,
                    (Curve::P384, "ES384") => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => return false,
                };
                signature::UnparsedPublicKey::new(params, point)
                    .verify(message, sig)
                    .is_ok()
            }
        }
    }

    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, String> {
        let (_, spki) =
            x509_parser::x509::SubjectPublicKeyInfo::from_der(der).map_err(|e| e.to_string())?;
        Self::from_spki(&spki)
    }

    fn from_spki(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<Self, String> {
        use x509_parser::public_key::PublicKey as Parsed;
        match spki.parsed().map_err(|e| e.to_string())? {
            Parsed::RSA(rsa) => Ok(PublicKey::Rsa {
                n: der::strip_leading_zeros(rsa.modulus).to_vec(),
                e: der::strip_leading_zeros(rsa.exponent).to_vec(),
            }),
            Parsed::EC(point) => {
                let curve_oid = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .ok_or("ECDSA key without a named curve")?;
                let curve = if curve_oid == x509_parser::oid_registry::OID_EC_P256 {
                    Curve::P256
                } else if curve_oid == x509_parser::oid_registry::OID_NIST_EC_P384 {
                    Curve::P384
                } else if curve_oid == x509_parser::oid_registry::OID_NIST_EC_P521 {
                    Curve::P521
                } else {
                    return Err(format!("unsupported elliptic curve {curve_oid}"));
                };
                Ok(PublicKey::Ec {
                    curve,
                    point: point.data().to_vec(),
                })
            }
            _ => Err(format!(
                "unsupported public key algorithm {} (want RSA or ECDSA)",
                spki.algorithm.algorithm
            )),
        }
    }
}

/// The public keys in a PEM file, as `--service-account-key-file` reads them: `PUBLIC KEY`,
/// `CERTIFICATE` (its key), `RSA PRIVATE KEY`, `EC PRIVATE KEY` and `PRIVATE KEY` blocks
/// (their public halves). Other blocks are skipped, as upstream does; no keys at all is an
/// error.
pub fn parse_public_keys_pem(data: &[u8]) -> Result<Vec<PublicKey>, KeyError> {
    let mut keys = Vec::new();
    for (i, item) in <(SectionKind, Vec<u8>)>::pem_slice_iter(data).enumerate() {
        let index = i + 1;
        let (kind, der) = item.map_err(KeyError::Pem)?;
        let malformed = |kind: &'static str, reason: String| KeyError::Malformed {
            index,
            kind,
            reason,
        };
        let key = match kind {
            SectionKind::PublicKey => {
                PublicKey::from_spki_der(&der).map_err(|reason| malformed("PUBLIC KEY", reason))?
            }
            SectionKind::Certificate => {
                let (_, cert) = x509_parser::parse_x509_certificate(&der)
                    .map_err(|e| malformed("CERTIFICATE", e.to_string()))?;
                PublicKey::from_spki(cert.public_key())
                    .map_err(|reason| malformed("CERTIFICATE", reason))?
            }
            SectionKind::RsaPrivateKey => {
                let key = rsa::RsaPrivateKey::from_pkcs1_der(&der)
                    .map_err(|e| malformed("RSA PRIVATE KEY", e.to_string()))?;
                rsa_public(&key)
            }
            SectionKind::PrivateKey => match rsa::RsaPrivateKey::from_pkcs8_der(&der) {
                Ok(key) => rsa_public(&key),
                Err(_) => SigningKey::from_pkcs8_ec(&der)
                    .map_err(|reason| malformed("PRIVATE KEY", reason))?
                    .public_key(),
            },
            SectionKind::EcPrivateKey => SigningKey::from_sec1(&der)
                .map_err(|reason| malformed("EC PRIVATE KEY", reason))?
                .public_key(),
            _ => continue,
        };
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(KeyError::NoPublicKeys);
    }
    Ok(keys)
}

fn rsa_public(key: &rsa::RsaPrivateKey) -> PublicKey {
    PublicKey::Rsa {
        n: key.n().to_bytes_be(),
        e: key.e().to_bytes_be(),
    }
}

/// A private key that signs service-account tokens.
pub enum SigningKey {
    /// RSA, signs RS256.
    Rsa(RsaKeyPair),
    /// ECDSA P-256 (ES256) or P-384 (ES384).
    Ec(EcdsaKeyPair, Curve),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.public_key().algorithm())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The first private key in a PEM file (`RSA PRIVATE KEY`, `EC PRIVATE KEY` or
    /// `PRIVATE KEY`); RSA keys of 2048–4096 bits, ECDSA P-256 or P-384.
    pub fn from_pem(data: &[u8]) -> Result<Self, KeyError> {
        for (i, item) in <(SectionKind, Vec<u8>)>::pem_slice_iter(data).enumerate() {
            let index = i + 1;
            let (kind, der) = item.map_err(KeyError::Pem)?;
            let (name, parsed) = match kind {
                SectionKind::RsaPrivateKey => (
                    "RSA PRIVATE KEY",
                    RsaKeyPair::from_der(&der)
                        .map(SigningKey::Rsa)
                        .map_err(|e| format!("{e} (RSA keys must have 2048 to 4096 bits)")),
                ),
                SectionKind::EcPrivateKey => ("EC PRIVATE KEY", Self::from_sec1(&der)),
                SectionKind::PrivateKey => (
                    "PRIVATE KEY",
                    match RsaKeyPair::from_pkcs8(&der) {
                        Ok(key) => Ok(SigningKey::Rsa(key)),
                        Err(_) => Self::from_pkcs8_ec(&der),
                    },
                ),
                _ => continue,
            };
            return parsed.map_err(|reason| KeyError::Malformed {
                index,
                kind: name,
                reason,
            });
        }
        Err(KeyError::NoPrivateKey)
    }

    fn from_pkcs8_ec(der: &[u8]) -> Result<Self, String> {
        let rng = SystemRandom::new();
        let p256 = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng);
        if let Ok(key) = p256 {
            return Ok(SigningKey::Ec(key, Curve::P256));
        }
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, der, &rng)
            .map(|key| SigningKey::Ec(key, Curve::P384))
            .map_err(|e| {
                format!("{e} (want an RSA key, or an ECDSA P-256/P-384 key with its public key)")
            })
    }

    /// A SEC1 `ECPrivateKey`, wrapped into PKCS#8 for ring, trying P-256 then P-384.
    fn from_sec1(der: &[u8]) -> Result<Self, String> {
        let mut last = String::new();
        for (curve, alg) in [
            (Curve::P256, &signature::ECDSA_P256_SHA256_FIXED_SIGNING),
            (Curve::P384, &signature::ECDSA_P384_SHA384_FIXED_SIGNING),
        ] {
            let pkcs8 = der::sequence(&[
                &der::unsigned_integer(&[0]),
                &der::sequence(&[der::OID_EC_PUBLIC_KEY, curve.oid()]),
                &der::octet_string(der),
            ]);
            match EcdsaKeyPair::from_pkcs8(alg, &pkcs8, &SystemRandom::new()) {
                Ok(key) => return Ok(SigningKey::Ec(key, curve)),
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!(
            "{last} (want an ECDSA P-256/P-384 key that includes its public key)"
        ))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            SigningKey::Rsa(key) => {
                let parts = signature::RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
                PublicKey::Rsa {
                    n: der::strip_leading_zeros(&parts.n).to_vec(),
                    e: der::strip_leading_zeros(&parts.e).to_vec(),
                }
            }
            SigningKey::Ec(key, curve) => PublicKey::Ec {
                curve: *curve,
                point: key.public_key().as_ref().to_vec(),
            },
        }
    }

    /// Signs `message` with this key's algorithm ([`PublicKey::algorithm`]).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ring::error::Unspecified> {
        let rng = SystemRandom::new();
        match self {
            SigningKey::Rsa(key) => {
                let mut sig = vec![0; key.public().modulus_len()];
                key.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)?;
                Ok(sig)
            }
            SigningKey::Ec(key, _) => Ok(key.sign(&rng, message)?.as_ref().to_vec()),
        }
    }
}
