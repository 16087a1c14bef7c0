//! Bootstrap token authentication (upstream
//! `plugin/pkg/auth/authenticator/token/bootstrap/bootstrap.go` with
//! `k8s.io/cluster-bootstrap` helpers): a token `<id>.<secret>` authenticates when the
//! Secret `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token` holds
//! the same id and secret, is not expired and has `usage-bootstrap-authentication: "true"`.
//! The user is `system:bootstrap:<id>` in `system:bootstrappers` plus the Secret's
//! `auth-extra-groups`. Every mismatch just declines (no error), as upstream.

use serde_json::Value;

use crate::clock::parse_rfc3339;
use crate::lookup::{self, ObjectLookup};
use crate::user::UserInfo;

/// Namespace of bootstrap token Secrets.
pub const NAMESPACE: &str = "kube-system";
/// Secret name prefix (`bootstrap-token-<id>`).
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// Secret type.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// User name prefix.
pub const USER_PREFIX: &str = "system:bootstrap:";
/// Group every bootstrap token user is in.
pub const DEFAULT_GROUP: &str = "system:bootstrappers";
/// Data key: token id.
pub const TOKEN_ID_KEY: &str = "token-id";
/// Data key: token secret.
pub const TOKEN_SECRET_KEY: &str = "token-secret";
/// Data key: RFC 3339 expiration.
pub const EXPIRATION_KEY: &str = "expiration";
/// Data key: usable for authentication when `"true"`.
pub const USAGE_AUTHENTICATION_KEY: &str = "usage-bootstrap-authentication";
/// Data key: comma-separated extra groups.
pub const EXTRA_GROUPS_KEY: &str = "auth-extra-groups";

fn is_token_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Splits a bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}` into (id, secret).
pub fn parse_bootstrap_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = id.len() == 6
        && secret.len() == 16
        && id.bytes().all(is_token_char)
        && secret.bytes().all(is_token_char);
    ok.then_some((id, secret))
}

/// Whether an extra group is allowed (`^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$`).
pub fn is_valid_bootstrap_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    let Some(last) = rest.bytes().last() else {
        return false;
    };
    rest.len() <= 256
        && is_token_char(last)
        && rest
            .bytes()
            .all(|b| is_token_char(b) || b == b':' || b == b'-')
}

fn data(secret: &Value, key: &str) -> String {
    lookup::secret_data(secret, key)
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default()
}

/// Whether a bootstrap token Secret has expired at Unix time `now`: no `expiration` never
/// expires; an unparseable one counts as expired (`bootstrapsecretutil.HasExpired`).
pub fn is_expired(secret: &Value, now: i64) -> bool {
    let expiration = data(secret, EXPIRATION_KEY);
    if expiration.is_empty() {
        return false;
    }
    match parse_rfc3339(&expiration) {
        Some(t) => t <= now,
        None => true,
    }
}

/// The groups of a bootstrap token Secret: `system:bootstrappers` plus valid
/// `auth-extra-groups`, sorted and deduplicated; `None` if an extra group is invalid.
pub fn groups(secret: &Value) -> Option<Vec<String>> {
    let mut groups = vec![DEFAULT_GROUP.to_string()];
    let extra = data(secret, EXTRA_GROUPS_KEY);
    if !extra.is_empty() {
        for group in extra.split(',') {
            if !is_valid_bootstrap_group(group) {
                return None;
            }
            groups.push(group.to_string());
        }
    }
    groups.sort();
    groups.dedup();
    Some(groups)
}

/// Authenticates a bootstrap token at Unix time `now`.
pub(crate) async fn authenticate(
    token: &str,
    lookup: &dyn ObjectLookup,
    now: i64,
) -> Option<UserInfo> {
    let (id, secret_part) = parse_bootstrap_token(token)?;
    let name = format!("{SECRET_PREFIX}{id}");
    let secret = lookup.get("", "secrets", NAMESPACE, &name).await?;
    let decline = |why: &str| {
        tracing::debug!(secret = %name, "bootstrap token secret {why}");
        None
    };
    if lookup::deletion_timestamp(&secret).is_some() {
        return decline("is deleted and awaiting removal");
    }
    if lookup::secret_type(&secret) != SECRET_TYPE || secret.get("data").is_none() {
        return decline("has invalid type");
    }
    let stored = lookup::secret_data(&secret, TOKEN_SECRET_KEY).unwrap_or_default();
    if !lookup::secrets_equal(&stored, secret_part.as_bytes()) {
        return decline("has invalid value for key token-secret");
    }
    if data(&secret, TOKEN_ID_KEY) != id {
        return decline("has invalid value for key token-id");
    }
    if is_expired(&secret, now) {
        return decline("has expired");
    }
    if data(&secret, USAGE_AUTHENTICATION_KEY) != "true" {
        return decline("is not marked usage-bootstrap-authentication=true");
    }
    let Some(groups) = groups(&secret) else {
        return decline("has invalid value for key auth-extra-groups");
    };
    Some(UserInfo {
        name: format!("{USER_PREFIX}{id}"),
        groups,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::MapLookup;
    use base64::Engine as _;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn secret(extra: &[(&str, &str)]) -> Value {
        let mut data = serde_json::Map::new();
        data.insert(TOKEN_ID_KEY.into(), b64("abcdef").into());
        data.insert(TOKEN_SECRET_KEY.into(), b64("0123456789abcdef").into());
        data.insert(USAGE_AUTHENTICATION_KEY.into(), b64("true").into());
        for (k, v) in extra {
            if v.is_empty() {
                data.remove(*k);
            } else {
                data.insert((*k).into(), b64(v).into());
            }
        }
        json!({"metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
               "type": SECRET_TYPE, "data": data})
    }

    async fn auth(secret: Value, token: &str, now: i64) -> Option<UserInfo> {
        let mut lookup = MapLookup::new();
        lookup.insert("", "secrets", NAMESPACE, "bootstrap-token-abcdef", secret);
        authenticate(token, &lookup, now).await
    }

    const TOKEN: &str = "abcdef.0123456789abcdef";
    const NOW: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

    #[test]
    fn token_format() {
        assert_eq!(
            parse_bootstrap_token(TOKEN),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(parse_bootstrap_token("ABCDEF.0123456789abcdef"), None);
        assert_eq!(parse_bootstrap_token("abcdef.0123456789abcde"), None);
        assert_eq!(parse_bootstrap_token("abcdef0123456789abcdef"), None);
        assert_eq!(parse_bootstrap_token("abcdef.0123456789abcdef.x"), None);
    }

    #[test]
    fn group_names() {
        assert!(is_valid_bootstrap_group(
            "system:bootstrappers:kubeadm:default-node-token"
        ));
        assert!(!is_valid_bootstrap_group("system:bootstrappers:"));
        assert!(!is_valid_bootstrap_group("system:masters"));
        assert!(!is_valid_bootstrap_group("system:bootstrappers:Upper"));
        assert!(!is_valid_bootstrap_group("system:bootstrappers:ends-"));
    }

    #[tokio::test]
    async fn valid_token() {
        let s = secret(&[(
            EXTRA_GROUPS_KEY,
            "system:bootstrappers:worker,system:bootstrappers:worker",
        )]);
        let u = auth(s, TOKEN, NOW).await.unwrap();
        assert_eq!(u.name, "system:bootstrap:abcdef");
        assert_eq!(
            u.groups,
            vec!["system:bootstrappers", "system:bootstrappers:worker"]
        );
    }

    #[tokio::test]
    async fn expiry() {
        let future = secret(&[(EXPIRATION_KEY, "2023-11-14T23:00:00Z")]);
        assert!(auth(future, TOKEN, NOW).await.is_some());
        let past = secret(&[(EXPIRATION_KEY, "2023-11-14T22:00:00Z")]);
        assert!(auth(past, TOKEN, NOW).await.is_none());
        let garbage = secret(&[(EXPIRATION_KEY, "next week")]);
        assert!(auth(garbage, TOKEN, NOW).await.is_none());
    }

    #[tokio::test]
    async fn usage_and_content_checks() {
        assert!(auth(secret(&[(USAGE_AUTHENTICATION_KEY, "")]), TOKEN, NOW)
            .await
            .is_none());
        assert!(
            auth(secret(&[(USAGE_AUTHENTICATION_KEY, "false")]), TOKEN, NOW)
                .await
                .is_none()
        );
        assert!(auth(secret(&[(TOKEN_ID_KEY, "zzzzzz")]), TOKEN, NOW)
            .await
            .is_none());
        assert!(auth(secret(&[]), "abcdef.0123456789abcdee", NOW)
            .await
            .is_none());
        assert!(
            auth(secret(&[(EXTRA_GROUPS_KEY, "system:masters")]), TOKEN, NOW)
                .await
                .is_none()
        );
        let mut wrong_type = secret(&[]);
        wrong_type["type"] = json!("Opaque");
        assert!(auth(wrong_type, TOKEN, NOW).await.is_none());
        let mut deleting = secret(&[]);
        deleting["metadata"]["deletionTimestamp"] = json!("2023-11-14T22:00:00Z");
        assert!(auth(deleting, TOKEN, NOW).await.is_none());
        // Another id has no Secret.
        assert!(auth(secret(&[]), "bcdefa.0123456789abcdef", NOW)
            .await
            .is_none());
    }
}
