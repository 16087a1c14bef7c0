//! Bootstrap tokens (upstream `k8s.io/cluster-bootstrap/token`), what `kubeadm token
//! create` makes for the seeds' kubelet TLS bootstrap: a token `<id>.<secret>` (6 and 16
//! characters of `[a-z0-9]`), stored as the Secret `kube-system/bootstrap-token-<id>` of
//! type `bootstrap.kubernetes.io/token`. The API server authenticates it as user
//! `system:bootstrap:<id>` in group `system:bootstrappers` plus the token's
//! `auth-extra-groups`.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use rsa::rand_core::RngCore;
use serde_json::json;

use crate::kubeconfig::Kubeconfig;
use crate::{Error, Result};

/// The namespace bootstrap token Secrets live in.
pub const NAMESPACE: &str = "kube-system";
/// Their Secret type.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// kubeadm's default `--groups`.
pub const DEFAULT_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// The seeds' `--description`.
pub const KUBELET_DESCRIPTION: &str = "kubelet-bootstrap-token";

/// A bootstrap token.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for BootstrapToken {
    // The secret half is a credential: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BootstrapToken({}.<redacted>)", self.id)
    }
}

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn random_string(len: usize) -> Result<String> {
    let mut out = String::with_capacity(len);
    let mut rng = rsa::rand_core::OsRng;
    while out.len() < len {
        let mut byte = [0u8; 1];
        rng.try_fill_bytes(&mut byte).map_err(Error::Random)?;
        // 252 = 7 * 36: reject the rest so every character is equally likely.
        if byte[0] < 252 {
            out.push(char::from(ALPHABET[usize::from(byte[0]) % 36]));
        }
    }
    Ok(out)
}

impl BootstrapToken {
    /// A fresh random token.
    pub fn generate() -> Result<Self> {
        Ok(BootstrapToken {
            id: random_string(6)?,
            secret: random_string(16)?,
        })
    }

    /// Parses `<id>.<secret>` (upstream's `BootstrapTokenPattern`).
    pub fn parse(text: &str) -> Result<Self> {
        let ok = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        match text.split_once('.') {
            Some((id, secret)) if ok(id, 6) && ok(secret, 16) => Ok(BootstrapToken {
                id: id.into(),
                secret: secret.into(),
            }),
            _ => Err(Error::InvalidArgument {
                flag: "--token",
                value: "<redacted>".into(),
                reason: "a bootstrap token is [a-z0-9]{6}.[a-z0-9]{16}".into(),
            }),
        }
    }

    /// `<id>.<secret>`, what goes into a kubeconfig's `token:`.
    pub fn token(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// The Secret's name, `bootstrap-token-<id>`.
    pub fn secret_name(&self) -> String {
        format!("bootstrap-token-{}", self.id)
    }

    /// The user the API server's bootstrap authenticator makes of it.
    pub fn user_name(&self) -> String {
        format!("system:bootstrap:{}", self.id)
    }
}

/// What a token is for (`kubeadm token create` flags).
#[derive(Debug, Clone)]
pub struct TokenOptions {
    /// `auth-extra-groups`: each `system:bootstrappers:…`.
    pub groups: Vec<String>,
    /// How long it lives; `None` (kubeadm's `--ttl 0`) for ever.
    pub ttl: Option<Duration>,
    pub description: Option<String>,
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions {
            groups: vec![DEFAULT_GROUP.to_string()],
            ttl: Some(Duration::from_secs(24 * 3600)),
            description: None,
        }
    }
}

/// The options the seeds give `kubeadm token create` for a node's kubelet:
/// `--description kubelet-bootstrap-token --groups system:bootstrappers:<node>`.
pub fn kubelet_token_options(node: &str, ttl: Option<Duration>) -> TokenOptions {
    TokenOptions {
        groups: vec![format!("system:bootstrappers:{node}")],
        ttl,
        description: Some(KUBELET_DESCRIPTION.into()),
    }
}

/// Upstream's `BootstrapGroupPattern`: `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`.
pub fn validate_group(group: &str) -> Result<()> {
    let ok = group
        .strip_prefix("system:bootstrappers:")
        .is_some_and(|rest| {
            !rest.is_empty()
                && rest.len() <= 256
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
                && rest
                    .bytes()
                    .last()
                    .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            flag: "--groups",
            value: group.to_string(),
            reason: "must match system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]".into(),
        })
    }
}

/// RFC 3339 in UTC with whole seconds, as upstream writes `expiration`.
pub fn rfc3339(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// The Secret holding `token`, as of `now`: the object `kubeadm token create` posts.
pub fn secret(
    token: &BootstrapToken,
    options: &TokenOptions,
    now: time::OffsetDateTime,
) -> Result<serde_json::Value> {
    for g in &options.groups {
        validate_group(g)?;
    }
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut data = serde_json::Map::new();
    data.insert("token-id".into(), b64(&token.id).into());
    data.insert("token-secret".into(), b64(&token.secret).into());
    if let Some(desc) = &options.description {
        data.insert("description".into(), b64(desc).into());
    }
    if let Some(ttl) = options.ttl {
        let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let at = now
            .checked_add(time::Duration::seconds(secs))
            .ok_or_else(|| Error::InvalidArgument {
                flag: "--ttl",
                value: format!("{}s", ttl.as_secs()),
                reason: "too long".into(),
            })?;
        data.insert("expiration".into(), b64(&rfc3339(at)).into());
    }
    data.insert("usage-bootstrap-authentication".into(), b64("true").into());
    data.insert("usage-bootstrap-signing".into(), b64("true").into());
    if !options.groups.is_empty() {
        data.insert(
            "auth-extra-groups".into(),
            b64(&options.groups.join(",")).into(),
        );
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": token.secret_name(), "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "data": data,
    }))
}

/// A line of a static token file (`--token-auth-file`, the format of seed 002's
/// `token.csv`): `token,user,uid,"group1,group2"`, naming the user and groups the
/// bootstrap authenticator would, so the token works even on an API server that does
/// not read bootstrap Secrets.
pub fn token_csv_line(token: &BootstrapToken, options: &TokenOptions) -> String {
    let mut groups = vec!["system:bootstrappers".to_string()];
    groups.extend(options.groups.iter().cloned());
    format!(
        "{},{},{},\"{}\"\n",
        token.token(),
        token.user_name(),
        token.user_name(),
        groups.join(",")
    )
}

/// Creates the Secret for `token` through the API server the kubeconfig at
/// `kubeconfig_path` names (`kubeadm token create --kubeconfig`).
pub async fn create(
    kubeconfig_path: &Path,
    token: &BootstrapToken,
    options: &TokenOptions,
) -> Result<()> {
    let body = secret(token, options, time::OffsetDateTime::now_utc())?;
    let config = Kubeconfig::load(kubeconfig_path)?.resolve(kubeconfig_path)?;
    let body = serde_json::to_vec(&body).map_err(Error::SerializeJson)?;
    crate::client::post_json(
        &config,
        &format!("/api/v1/namespaces/{NAMESPACE}/secrets"),
        body,
    )
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn decoded(v: &serde_json::Value, key: &str) -> String {
        let s = v["data"][key].as_str().unwrap();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
    }

    #[test]
    fn tokens_look_like_upstreams() {
        let t = BootstrapToken::generate().unwrap();
        assert_eq!(BootstrapToken::parse(&t.token()).unwrap(), t);
        assert_ne!(BootstrapToken::generate().unwrap(), t);
        for bad in [
            "abcdef",
            "abcdef.0123456789abcde",
            "ABCDEF.0123456789abcdef",
            "",
        ] {
            assert!(BootstrapToken::parse(bad).is_err(), "{bad}");
        }
        assert!(!format!("{t:?}").contains(&t.secret));
    }

    #[test]
    fn secret_body() {
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let opts = TokenOptions {
            groups: vec!["system:bootstrappers:k8s-01".into()],
            ttl: Some(Duration::from_secs(86400)),
            description: Some(KUBELET_DESCRIPTION.into()),
        };
        let now = time::OffsetDateTime::from_unix_timestamp(1_728_647_343).unwrap();
        let s = secret(&t, &opts, now).unwrap();
        assert_eq!(s["metadata"]["name"], "bootstrap-token-abcdef");
        assert_eq!(s["metadata"]["namespace"], "kube-system");
        assert_eq!(s["type"], "bootstrap.kubernetes.io/token");
        assert_eq!(decoded(&s, "token-id"), "abcdef");
        assert_eq!(decoded(&s, "token-secret"), "0123456789abcdef");
        assert_eq!(decoded(&s, "expiration"), "2024-10-12T11:49:03Z");
        assert_eq!(decoded(&s, "usage-bootstrap-authentication"), "true");
        assert_eq!(decoded(&s, "usage-bootstrap-signing"), "true");
        assert_eq!(
            decoded(&s, "auth-extra-groups"),
            "system:bootstrappers:k8s-01"
        );
        assert_eq!(decoded(&s, "description"), "kubelet-bootstrap-token");
        assert_eq!(
            token_csv_line(&t, &opts),
            "abcdef.0123456789abcdef,system:bootstrap:abcdef,system:bootstrap:abcdef,\"system:bootstrappers,system:bootstrappers:k8s-01\"\n"
        );
        let forever = TokenOptions {
            ttl: None,
            ..opts.clone()
        };
        assert!(secret(&t, &forever, now).unwrap()["data"]
            .get("expiration")
            .is_none());
        let bad = TokenOptions {
            groups: vec!["system:masters".into()],
            ..opts
        };
        let err = secret(&t, &bad, now).unwrap_err().to_string();
        assert!(err.starts_with("--groups \"system:masters\""), "{err}");
    }
}
