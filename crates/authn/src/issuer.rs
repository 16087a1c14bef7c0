//! Service-account token issuing for the TokenRequest subresource (upstream
//! `pkg/serviceaccount/claims.go` `Claims` + `jwt.go` `GenerateToken`, and the limits of
//! `pkg/registry/core/serviceaccount/storage/token.go`).

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::clock::{format_rfc3339, now_unix};
use crate::config::ConfigError;
use crate::jwt;
use crate::keys::{PublicKey, SigningKey};
use crate::lookup::{self, ObjectLookup};
use crate::serviceaccount::credential_id_for_jti;
use crate::user;

/// TokenRequest's default `expirationSeconds`.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest token TokenRequest issues (10 minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest token TokenRequest accepts (2^32 seconds).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// The expiration the kubelet asks for to get an extended token
/// (`WarnOnlyBoundTokenExpirationSeconds`, 1 hour + 7 seconds).
pub const WARN_ONLY_EXPIRATION_SECONDS: i64 = 3607;
/// What such a request actually gets with `--service-account-extend-token-expiration`
/// (`ExpirationExtensionSeconds`, one year).
pub const EXTENDED_EXPIRATION_SECONDS: i64 = 24 * 365 * 60 * 60;

/// Why a token was not issued. `Invalid*` map to 422 on `spec.expirationSeconds`.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// Shorter than [`MIN_EXPIRATION_SECONDS`].
    #[error("spec.expirationSeconds: Invalid value: {0}: may not specify a duration less than 10 minutes")]
    ExpirationTooShort(i64),
    /// Longer than [`MAX_EXPIRATION_SECONDS`].
    #[error("spec.expirationSeconds: Invalid value: {0}: may not specify a duration larger than 2^32 seconds")]
    ExpirationTooLong(i64),
    /// ring refused to sign.
    #[error("signing the token failed")]
    Sign,
}

/// Why a TokenRequest's `boundObjectRef` cannot be used (see [`resolve_bound_object`]).
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// 400: not a Pod, Secret or Node of the core group.
    #[error("cannot bind token to object of type {0}")]
    UnsupportedKind(String),
    /// 404: the object does not exist.
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// `pods`, `secrets`, `nodes`.
        resource: &'static str,
        /// Its name.
        name: String,
    },
    /// 400: the pod runs as another service account.
    #[error("cannot bind token for serviceaccount {0:?} to pod running with different serviceaccount name.")]
    DifferentServiceAccount(String),
    /// 409: the reference's UID is not the live object's.
    #[error("the UID in the bound object reference ({0}) does not match the UID in record. The object might have been deleted and then recreated")]
    UidMismatch(String),
}

/// A name and UID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectRef {
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

/// What a token is bound to (its `kubernetes.io` claim names it; the authenticator then
/// requires it to exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundObject {
    /// A pod, with the node it runs on when known (the node is informational: a
    /// pod-bound token stays valid when the node goes).
    Pod {
        /// The pod.
        pod: ObjectRef,
        /// Its node (`spec.nodeName`; UID empty if the Node object does not exist).
        node: Option<ObjectRef>,
    },
    /// A Secret.
    Secret(ObjectRef),
    /// A Node.
    Node(ObjectRef),
}

/// One TokenRequest, after the API server resolved the service account.
#[derive(Debug, Clone, Default)]
pub struct TokenSpec {
    /// The service account's namespace.
    pub namespace: String,
    /// Its name.
    pub service_account_name: String,
    /// Its UID.
    pub service_account_uid: String,
    /// `spec.audiences`; empty = the API server's audiences.
    pub audiences: Vec<String>,
    /// `spec.expirationSeconds`; `None` = 3600.
    pub expiration_seconds: Option<i64>,
    /// `spec.boundObjectRef`, resolved (see [`resolve_bound_object`]).
    pub bound_object: Option<BoundObject>,
}

/// An issued token and what the TokenRequest response reports.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// `status.token`.
    pub token: String,
    /// `status.expirationTimestamp` (RFC 3339), from the (possibly shortened) requested
    /// expiration — not the extension, so the kubelet refreshes on time.
    pub expiration_timestamp: String,
    /// `spec.expirationSeconds` to echo (after shortening to the maximum).
    pub expiration_seconds: i64,
    /// `spec.audiences` to echo (after defaulting).
    pub audiences: Vec<String>,
    /// `JTI=<jti>`: upstream records it as the audit annotation
    /// `authentication.kubernetes.io/issued-credential-id`.
    pub credential_id: String,
    /// Set when the requested expiration was shortened (upstream sends it as a warning).
    pub warning: Option<String>,
}

/// Issues service-account tokens (`--service-account-signing-key-file`,
/// `--service-account-issuer`, `--api-audiences`,
/// `--service-account-max-token-expiration`, `--service-account-extend-token-expiration`).
#[derive(Debug)]
pub struct TokenIssuer {
    key: SigningKey,
    public: PublicKey,
    kid: String,
    issuer: String,
    api_audiences: Vec<String>,
    max_expiration_seconds: Option<i64>,
    extend_expiration: bool,
}

impl TokenIssuer {
    /// Loads the signing key. The API audiences default to `[issuer]`, extension on, no
    /// maximum (as upstream's flag defaults).
    pub fn load(key_file: &Path, issuer: &str) -> Result<Self, ConfigError> {
        const FLAG: &str = "--service-account-signing-key-file";
        let data = crate::config::read_file(FLAG, key_file)?;
        let key = SigningKey::from_pem(&data).map_err(|source| ConfigError::Key {
            flag: FLAG,
            path: key_file.to_path_buf(),
            source,
        })?;
        Ok(Self::from_key(key, issuer))
    }

    /// From an already-parsed key.
    pub fn from_key(key: SigningKey, issuer: &str) -> Self {
        let public = key.public_key();
        TokenIssuer {
            kid: public.key_id(),
            public,
            key,
            issuer: issuer.into(),
            api_audiences: vec![issuer.into()],
            max_expiration_seconds: None,
            extend_expiration: true,
        }
    }

    /// `--api-audiences` (empty keeps the default `[issuer]`).
    pub fn with_api_audiences(mut self, audiences: Vec<String>) -> Self {
        if !audiences.is_empty() {
            self.api_audiences = audiences;
        }
        self
    }

    /// `--service-account-max-token-expiration` in seconds (0 = none); upstream accepts
    /// 1 hour to 2^32 seconds.
    pub fn with_max_expiration_seconds(mut self, seconds: i64) -> Result<Self, ConfigError> {
        if seconds != 0 && !(3600..=MAX_EXPIRATION_SECONDS).contains(&seconds) {
            return Err(ConfigError::MaxTokenExpiration(seconds));
        }
        self.max_expiration_seconds = (seconds != 0).then_some(seconds);
        Ok(self)
    }

    /// `--service-account-extend-token-expiration` (default true).
    pub fn with_extend_expiration(mut self, extend: bool) -> Self {
        self.extend_expiration = extend;
        self
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The signing key's public half (serve it in the JWKS; it should also be in
    /// `--service-account-key-file`).
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Issues a token now.
    pub fn issue(&self, spec: &TokenSpec) -> Result<IssuedToken, IssueError> {
        self.issue_at(spec, now_unix())
    }

    /// Issues a token as of Unix time `now` (tests use past times for expired tokens).
    pub fn issue_at(&self, spec: &TokenSpec, now: i64) -> Result<IssuedToken, IssueError> {
        let requested = spec
            .expiration_seconds
            .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
        if requested < MIN_EXPIRATION_SECONDS {
            return Err(IssueError::ExpirationTooShort(requested));
        }
        if requested > MAX_EXPIRATION_SECONDS {
            return Err(IssueError::ExpirationTooLong(requested));
        }
        let mut expiration = requested;
        let mut warning = None;
        if let Some(max) = self.max_expiration_seconds {
            if expiration > max {
                warning = Some(format!(
                    "requested expiration of {expiration} seconds shortened to {max} seconds"
                ));
                expiration = max;
            }
        }
        let audiences = if spec.audiences.is_empty() {
            self.api_audiences.clone()
        } else {
            spec.audiences.clone()
        };
        // The kubelet's 3607-second pod tokens for the API server get a year, with the
        // real refresh time left in `warnafter`.
        let mut token_lifetime = expiration;
        let mut warn_after = None;
        let is_pod = matches!(spec.bound_object, Some(BoundObject::Pod { .. }));
        if self.extend_expiration
            && is_pod
            && expiration == WARN_ONLY_EXPIRATION_SECONDS
            && self.is_api_audiences(&audiences)
        {
            warn_after = Some(now + expiration);
            token_lifetime = EXTENDED_EXPIRATION_SECONDS.max(expiration);
        }

        let jti = uuid::Uuid::new_v4().to_string();
        let mut k8s = Map::new();
        k8s.insert("namespace".into(), spec.namespace.clone().into());
        k8s.insert(
            "serviceaccount".into(),
            json!({"name": spec.service_account_name, "uid": spec.service_account_uid}),
        );
        let reference = |r: &ObjectRef| {
            let mut m = Map::new();
            if !r.name.is_empty() {
                m.insert("name".into(), r.name.clone().into());
            }
            if !r.uid.is_empty() {
                m.insert("uid".into(), r.uid.clone().into());
            }
            Value::Object(m)
        };
        match &spec.bound_object {
            None => {}
            Some(BoundObject::Pod { pod, node }) => {
                k8s.insert("pod".into(), reference(pod));
                if let Some(node) = node {
                    k8s.insert("node".into(), reference(node));
                }
            }
            Some(BoundObject::Secret(secret)) => {
                k8s.insert("secret".into(), reference(secret));
            }
            Some(BoundObject::Node(node)) => {
                k8s.insert("node".into(), reference(node));
            }
        }
        if let Some(warn_after) = warn_after {
            k8s.insert("warnafter".into(), warn_after.into());
        }
        // Keys in go-jose's (sorted) order; serde_json's map keeps them sorted too.
        let claims = json!({
            "aud": audiences,
            "exp": now + token_lifetime,
            "iat": now,
            "iss": self.issuer,
            "jti": jti,
            "kubernetes.io": Value::Object(k8s),
            "nbf": now,
            "sub": user::service_account_username(&spec.namespace, &spec.service_account_name),
        });
        let token = jwt::sign(&self.key, &self.kid, &claims).map_err(|_| IssueError::Sign)?;
        Ok(IssuedToken {
            token,
            expiration_timestamp: format_rfc3339(now + expiration),
            expiration_seconds: expiration,
            audiences,
            credential_id: credential_id_for_jti(&jti),
            warning,
        })
    }

    /// Whether `audiences` are exactly the API server's (`isKubeAudiences`).
    fn is_api_audiences(&self, audiences: &[String]) -> bool {
        audiences.len() == self.api_audiences.len()
            && audiences.iter().all(|a| self.api_audiences.contains(a))
    }
}

/// Resolves a TokenRequest's `spec.boundObjectRef` against live objects as upstream's
/// TokenRequest REST does: Pod (must run as `service_account`; its node is looked up and
/// recorded, with an empty UID if the Node is missing), Secret, or Node; a non-empty `uid`
/// must match the live object.
pub async fn resolve_bound_object(
    lookup: &dyn ObjectLookup,
    namespace: &str,
    service_account: &str,
    api_version: &str,
    kind: &str,
    name: &str,
    uid: &str,
) -> Result<BoundObject, BindError> {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let (resource, ns) = match (group, kind) {
        ("", "Pod") => ("pods", namespace),
        ("", "Secret") => ("secrets", namespace),
        ("", "Node") => ("nodes", ""),
        _ => {
            let version = api_version.rsplit('/').next().unwrap_or(api_version);
            return Err(BindError::UnsupportedKind(format!(
                "{}{version}, Kind={kind}",
                if group.is_empty() {
                    "/".to_string()
                } else {
                    format!("{group}/")
                }
            )));
        }
    };
    let object = lookup
        .get("", resource, ns, name)
        .await
        .ok_or_else(|| BindError::NotFound {
            resource,
            name: name.into(),
        })?;
    let live_uid = lookup::uid(&object).to_string();
    if !uid.is_empty() && uid != live_uid {
        return Err(BindError::UidMismatch(uid.into()));
    }
    let this = ObjectRef {
        name: name.into(),
        uid: live_uid,
    };
    Ok(match resource {
        "pods" => {
            let pod_sa = object
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if pod_sa != service_account {
                return Err(BindError::DifferentServiceAccount(service_account.into()));
            }
            let node_name = object
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            let node = if node_name.is_empty() {
                None
            } else {
                let node_uid = match lookup.get("", "nodes", "", node_name).await {
                    Some(node) => lookup::uid(&node).to_string(),
                    None => String::new(),
                };
                Some(ObjectRef {
                    name: node_name.into(),
                    uid: node_uid,
                })
            };
            BoundObject::Pod { pod: this, node }
        }
        "secrets" => BoundObject::Secret(this),
        _ => BoundObject::Node(this),
    })
}
