//! The bootstrap-token controllers (upstream `pkg/controller/bootstrap`):
//! [`bootstrapsigner`] signs the `kube-public/cluster-info` ConfigMap with every
//! signing-enabled token, and [`tokencleaner`] deletes expired token Secrets.
//!
//! This module holds what both read of a token Secret (upstream
//! `k8s.io/cluster-bootstrap/token/api` and `token/util/secret`): the Secret type, the
//! `bootstrap-token-<id>` name, the data keys, and the `expiration` rule.

pub mod bootstrapsigner;
pub mod tokencleaner;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

/// The namespace token Secrets live in.
pub const TOKEN_NAMESPACE: &str = "kube-system";
/// `bootstrap.kubernetes.io/token`.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// Token Secrets are named `bootstrap-token-<token-id>`.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
pub const TOKEN_ID_KEY: &str = "token-id";
pub const TOKEN_SECRET_KEY: &str = "token-secret";
pub const EXPIRATION_KEY: &str = "expiration";
pub const USAGE_SIGNING_KEY: &str = "usage-bootstrap-signing";

/// Whether `secret` is a bootstrap token Secret (in kube-system, of the token type).
pub fn is_token_secret(secret: &Secret) -> bool {
    secret.namespace().as_deref() == Some(TOKEN_NAMESPACE)
        && secret.type_.as_deref() == Some(SECRET_TYPE)
}

/// Upstream's `GetData`: a data value as a string ("" when absent).
pub fn data(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_default()
}

/// Upstream's `ParseName`: the token id of a `bootstrap-token-<id>` name, where the
/// id is six characters of `[a-z0-9]`.
pub fn parse_name(name: &str) -> Option<&str> {
    let id = name.strip_prefix(SECRET_PREFIX)?;
    (id.len() == 6
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
    .then_some(id)
}

/// When a token expires, as upstream's `GetExpiration` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiration {
    /// No `expiration` key: the token never expires.
    Never,
    /// It expires after this long.
    In(Duration),
    /// It has expired (or its `expiration` is not RFC 3339, which upstream treats as
    /// expired).
    Expired,
}

/// The token's expiration as of `now`.
pub fn expiration(secret: &Secret, now: Timestamp) -> Expiration {
    let text = data(secret, EXPIRATION_KEY);
    if text.is_empty() {
        return Expiration::Never;
    }
    let at: Timestamp = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(secret = %secret.name_any(), expiration = %text, error = %e,
                "Unparseable expiration time in bootstrap token Secret. Treating as expired.");
            return Expiration::Expired;
        }
    };
    let left = at.as_millisecond() - now.as_millisecond();
    if left <= 0 {
        Expiration::Expired
    } else {
        Expiration::In(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    /// A token Secret with `data`.
    pub(crate) fn token_secret(name: &str, data: &[(&str, &str)]) -> Secret {
        let mut s = Secret {
            type_: Some(SECRET_TYPE.into()),
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        };
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some(TOKEN_NAMESPACE.into());
        s
    }

    #[test]
    fn names() {
        assert_eq!(parse_name("bootstrap-token-abc123"), Some("abc123"));
        assert_eq!(parse_name("bootstrap-token-ABC123"), None);
        assert_eq!(parse_name("bootstrap-token-abc12"), None);
        assert_eq!(parse_name("token-abc123"), None);
    }

    #[test]
    fn expirations() {
        let now: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let s = token_secret("bootstrap-token-abc123", &[]);
        assert_eq!(expiration(&s, now), Expiration::Never);
        let s = token_secret("x", &[(EXPIRATION_KEY, "2030-01-01T00:01:00Z")]);
        assert_eq!(expiration(&s, now), Expiration::In(Duration::from_secs(60)));
        let s = token_secret("x", &[(EXPIRATION_KEY, "2029-12-31T23:59:59Z")]);
        assert_eq!(expiration(&s, now), Expiration::Expired);
        let s = token_secret("x", &[(EXPIRATION_KEY, "2030-01-01T00:00:00Z")]);
        assert_eq!(expiration(&s, now), Expiration::Expired);
        let s = token_secret("x", &[(EXPIRATION_KEY, "tomorrow")]);
        assert_eq!(expiration(&s, now), Expiration::Expired);
        let s = token_secret("x", &[(EXPIRATION_KEY, "2030-01-01T02:00:00+02:00")]);
        assert_eq!(expiration(&s, now), Expiration::Expired);
        assert!(is_token_secret(&s));
    }
}
