//! Service account issuer discovery (upstream `pkg/serviceaccount/openidmetadata.go`):
//! `/.well-known/openid-configuration` and `/openid/v1/jwks`, built once from the first
//! `--service-account-issuer`, `--service-account-jwks-uri` (or the external address) and
//! the `--service-account-key-file` public keys.

use serde::Serialize;
use serde_json::Value;

use crate::config::ConfigError;
use crate::keys::PublicKey;

/// Path of the discovery document.
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// Path of the key set.
pub const JWKS_PATH: &str = "/openid/v1/jwks";
/// `Content-Type` of the discovery document.
pub const OPENID_CONFIGURATION_CONTENT_TYPE: &str = "application/json";
/// `Content-Type` of the key set.
pub const JWKS_CONTENT_TYPE: &str = "application/jwk-set+json";
/// `Cache-Control` upstream sends with both.
pub const CACHE_CONTROL: &str = "public, max-age=3600";

#[derive(Serialize)]
struct Metadata<'a> {
    issuer: &'a str,
    jwks_uri: &'a str,
    response_types_supported: [&'static str; 1],
    subject_types_supported: [&'static str; 1],
    id_token_signing_alg_values_supported: Vec<&'static str>,
}

/// The two discovery documents, serialised once.
#[derive(Debug, Clone)]
pub struct OpenIdMetadata {
    configuration: Vec<u8>,
    jwks: Vec<u8>,
}

fn https_url_parts(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("https://")?;
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, path) = rest.split_at(host_end);
    (!host.is_empty()).then_some((host, path))
}

impl OpenIdMetadata {
    /// `NewOpenIDMetadata`: the issuer must be an https URL without query or fragment; the
    /// JWKS URI is `jwks_uri` (https) or `https://<external_address>/openid/v1/jwks`.
    pub fn new(
        issuer: &str,
        jwks_uri: Option<&str>,
        external_address: Option<&str>,
        keys: &[PublicKey],
    ) -> Result<Self, ConfigError> {
        let err = |m: String| ConfigError::OpenIdMetadata(m);
        if issuer.is_empty() {
            return Err(err("empty issuer URL".into()));
        }
        let (_, issuer_path) = https_url_parts(issuer)
            .ok_or_else(|| err(format!("issuer URL must use https scheme, got: {issuer}")))?;
        if issuer_path.contains('?') {
            return Err(err(format!(
                "issuer URL may not include a query, got: {issuer}"
            )));
        }
        if issuer_path.contains('#') {
            return Err(err(format!(
                "issuer URL may not include a fragment, got: {issuer}"
            )));
        }
        if keys.is_empty() {
            return Err(err("no keys provided for validating keyset".into()));
        }
        let jwks_uri = match (
            jwks_uri.filter(|u| !u.is_empty()),
            external_address.filter(|a| !a.is_empty()),
        ) {
            (Some(uri), _) => {
                https_url_parts(uri).ok_or_else(|| {
                    err(format!("jwksURI requires https scheme, parsed as: {uri}"))
                })?;
                uri.to_string()
            }
            (None, Some(address)) => {
                if address.contains(['/', '?', '#']) {
                    return Err(err(format!(
                        "attempted to build jwks_uri from external address {address}, but could not construct a valid URL"
                    )));
                }
                format!("https://{address}{JWKS_PATH}")
            }
            (None, None) => {
                return Err(err(
                    "either the JWKS URI or the default external address, or both, must be set"
                        .into(),
                ))
            }
        };
        let mut algs: Vec<&'static str> = keys.iter().map(PublicKey::algorithm).collect();
        algs.sort_unstable();
        algs.dedup();
        let metadata = Metadata {
            issuer,
            jwks_uri: &jwks_uri,
            response_types_supported: ["id_token"],
            subject_types_supported: ["public"],
            id_token_signing_alg_values_supported: algs,
        };
        let configuration = serde_json::to_vec(&metadata).map_err(|e| err(e.to_string()))?;
        let jwks = jwks_json(keys);
        Ok(OpenIdMetadata {
            configuration,
            jwks,
        })
    }

    /// `/.well-known/openid-configuration` body.
    pub fn configuration_json(&self) -> &[u8] {
        &self.configuration
    }

    /// `/openid/v1/jwks` body.
    pub fn jwks_json(&self) -> &[u8] {
        &self.jwks
    }

    /// The discovery document as a value.
    pub fn configuration(&self) -> Value {
        serde_json::from_slice(&self.configuration).unwrap_or(Value::Null)
    }

    /// The key set as a value.
    pub fn jwks(&self) -> Value {
        serde_json::from_slice(&self.jwks).unwrap_or(Value::Null)
    }
}

/// `{"keys":[…]}` with each key's JWK in go-jose's field order.
pub fn jwks_json(keys: &[PublicKey]) -> Vec<u8> {
    let mut out = br#"{"keys":["#.to_vec();
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&jwk_json(key));
    }
    out.extend_from_slice(b"]}");
    out
}

/// One JWK, fields in go-jose's order (use, kty, kid, crv, alg, x, y, n, e).
fn jwk_json(key: &PublicKey) -> Vec<u8> {
    let jwk = key.jwk();
    let mut out = vec![b'{'];
    let mut first = true;
    for field in ["use", "kty", "kid", "crv", "alg", "x", "y", "n", "e"] {
        if let Some(value) = jwk.get(field) {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(Value::from(field).to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(value.to_string().as_bytes());
        }
    }
    out.push(b'}');
    out
}
