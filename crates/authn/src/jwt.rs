//! Compact JWS (RFC 7515) as go-jose reads and writes it for service-account tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::keys::{PublicKey, SigningKey};

/// Algorithms accepted on verification (the key must also fit the algorithm).
const ALLOWED_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
];

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: String,
}

/// A parsed (not yet verified) compact JWS.
#[derive(Debug)]
pub(crate) struct Jws<'a> {
    pub(crate) alg: String,
    pub(crate) kid: String,
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

/// The unverified `iss` of a compact JWT (upstream `hasCorrectIssuer`): `None` unless the
/// token has three dot-separated parts and a JSON payload.
pub(crate) fn unverified_issuer(token: &str) -> Option<String> {
    if token.trim_start().starts_with('{') {
        return None;
    }
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    #[derive(Deserialize)]
    struct Iss {
        #[serde(default)]
        iss: String,
    }
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Iss>(&payload).ok().map(|c| c.iss)
}

impl<'a> Jws<'a> {
    /// Parses a compact JWS; `None` when it is not one (upstream then ignores the token).
    pub(crate) fn parse(token: &'a str) -> Option<Jws<'a>> {
        let (signing_input, sig) = token.rsplit_once('.')?;
        let (header, payload) = signing_input.split_once('.')?;
        let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if !ALLOWED_ALGS.contains(&header.alg.as_str()) {
            return None;
        }
        Some(Jws {
            alg: header.alg,
            kid: header.kid,
            signing_input,
            payload: URL_SAFE_NO_PAD.decode(payload).ok()?,
            signature: URL_SAFE_NO_PAD.decode(sig).ok()?,
        })
    }

    /// Whether `key` made the signature.
    pub(crate) fn verify(&self, key: &PublicKey) -> bool {
        key.verify(&self.alg, self.signing_input.as_bytes(), &self.signature)
    }

    /// The payload bytes (only meaningful after [`Jws::verify`]).
    pub(crate) fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// Signs `claims` into a compact JWS with header `{"alg":…,"kid":…}` (go-jose's order).
pub(crate) fn sign(
    key: &SigningKey,
    kid: &str,
    claims: &Value,
) -> Result<String, ring::error::Unspecified> {
    let alg = key.public_key().algorithm();
    let header = serde_json::json!({ "alg": alg, "kid": kid });
    let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(sig));
    Ok(token)
}
