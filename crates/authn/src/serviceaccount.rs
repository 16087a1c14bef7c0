//! Service-account token authentication (upstream `pkg/serviceaccount`: `jwt.go`'s
//! `JWTTokenAuthenticator`, `claims.go`'s bound-token validator, `legacy.go`'s
//! secret-based validator).
//!
//! Flow, as upstream: the unverified `iss` picks the authenticator (legacy
//! `kubernetes/serviceaccount` or one of `--service-account-issuer`; anything else is not
//! ours), the `kid` picks candidate keys, the signature is verified, the issuer is checked
//! again, audiences are intersected with the requested ones (the API server's
//! `--api-audiences` by default), then the validator checks times and live objects.

use serde::Deserialize;
use serde_json::Value;

use crate::jwt::{self, Jws};
use crate::keys::PublicKey;
use crate::lookup::{self, ObjectLookup};
use crate::user::{self, UserInfo};

/// The issuer of legacy (Secret-based) service-account tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// Clock skew tolerated on `exp`/`nbf`/`iat` and deletion (go-jose `jwt.DefaultLeeway`).
pub const LEEWAY_SECONDS: i64 = 60;
/// The label that marks a legacy token Secret invalidated by the cleaner.
pub const LEGACY_TOKEN_INVALID_SINCE_LABEL: &str = "kubernetes.io/legacy-token-invalid-since";

/// Why a service-account token was rejected (messages as upstream's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceAccountTokenError {
    /// The `kid` matched no configured key.
    #[error("invalid signature, no keys found")]
    NoKeys,
    /// No configured key verified the signature.
    #[error("invalid signature: no configured service account key verifies the token")]
    InvalidSignature,
    /// The verified payload is not valid claims JSON.
    #[error("malformed token claims: {0}")]
    MalformedClaims(String),
    /// `iss` is not one of ours (after signature verification).
    #[error("token issuer {0:?} is invalid")]
    Issuer(String),
    /// No audience in common with the requested audiences.
    #[error("token audiences {token:?} is invalid for the target audiences {requested:?}")]
    Audience {
        /// The token's `aud`.
        token: Vec<String>,
        /// What the request (or TokenReview) asked for.
        requested: Vec<String>,
    },
    /// `exp` (plus leeway) has passed.
    #[error("service account token has expired")]
    Expired,
    /// `nbf` (minus leeway) has not been reached.
    #[error("service account token is not valid yet")]
    NotValidYet,
    /// `iat` (minus leeway) is in the future.
    #[error("service account token is issued in the future")]
    IssuedInTheFuture,
    /// A required object (service account) does not exist.
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// `serviceaccounts`.
        resource: &'static str,
        /// Its name.
        name: String,
    },
    /// The live object's UID differs from the claim.
    #[error("{kind} UID ({actual}) does not match claim ({claim})")]
    UidMismatch {
        /// `service account`, `secret`, `pod`, `node`.
        kind: &'static str,
        /// The live UID.
        actual: String,
        /// The token's UID.
        claim: String,
    },
    /// The service account is being deleted.
    #[error("service account {namespace}/{name} has been deleted")]
    ServiceAccountDeleted {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A bound object is gone or being deleted, or a legacy token's Secret is.
    #[error("service account token has been invalidated")]
    Invalidated,
    /// A legacy token lacks a claim.
    #[error("{0} claim is missing")]
    MissingClaim(&'static str),
    /// A legacy token's `sub` does not match its namespace/name claims.
    #[error("sub claim is invalid")]
    InvalidSubject,
    /// A legacy token differs from the copy in its Secret.
    #[error("token does not match server's copy")]
    NotServersCopy,
    /// A legacy token whose Secret the legacy-token cleaner marked invalid.
    #[error("the token in secret {namespace}/{secret} for service account {namespace}/{service_account} has been marked invalid. Use tokens from the TokenRequest API or manually created secret-based tokens, or remove the '{LEGACY_TOKEN_INVALID_SINCE_LABEL}' label from the secret to temporarily allow use of this token")]
    LegacyTokenMarkedInvalid {
        /// Namespace.
        namespace: String,
        /// Secret name.
        secret: String,
        /// Service account name.
        service_account: String,
    },
}

/// Accepts `aud` as a string or an array (RFC 7519).
fn audience<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Aud>::deserialize(d)? {
        None => Vec::new(),
        Some(Aud::One(a)) => vec![a],
        Some(Aud::Many(a)) => a,
    })
}

/// An object reference inside the `kubernetes.io` claim.
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct Ref {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) uid: String,
}

#[derive(Debug, Default, Deserialize)]
struct KubernetesClaims {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    serviceaccount: Ref,
    pod: Option<Ref>,
    secret: Option<Ref>,
    node: Option<Ref>,
}

#[derive(Debug, Default, Deserialize)]
struct Claims {
    #[serde(default)]
    iss: String,
    #[serde(default)]
    sub: String,
    #[serde(default, deserialize_with = "audience")]
    aud: Vec<String>,
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    #[serde(default)]
    jti: String,
    #[serde(rename = "kubernetes.io")]
    kubernetes: Option<KubernetesClaims>,
    #[serde(rename = "kubernetes.io/serviceaccount/namespace", default)]
    legacy_namespace: String,
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name", default)]
    legacy_secret_name: String,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name", default)]
    legacy_sa_name: String,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid", default)]
    legacy_sa_uid: String,
}

/// What a validated token says (`ServiceAccountInfo`).
#[derive(Debug, Default)]
struct ServiceAccountInfo {
    namespace: String,
    name: String,
    uid: String,
    pod_name: String,
    pod_uid: String,
    node_name: String,
    node_uid: String,
    credential_id: String,
}

impl ServiceAccountInfo {
    /// `ServiceAccountInfo.UserInfo()`.
    fn user_info(self) -> UserInfo {
        let mut info = UserInfo {
            name: user::service_account_username(&self.namespace, &self.name),
            uid: self.uid,
            groups: vec![
                user::SERVICE_ACCOUNTS_GROUP.into(),
                format!("{}:{}", user::SERVICE_ACCOUNTS_GROUP, self.namespace),
            ],
            ..Default::default()
        };
        if !self.pod_name.is_empty() && !self.pod_uid.is_empty() {
            info.extra
                .insert(user::EXTRA_POD_NAME.into(), vec![self.pod_name]);
            info.extra
                .insert(user::EXTRA_POD_UID.into(), vec![self.pod_uid]);
        }
        if !self.credential_id.is_empty() {
            info.extra
                .insert(user::EXTRA_CREDENTIAL_ID.into(), vec![self.credential_id]);
        }
        if !self.node_name.is_empty() {
            info.extra
                .insert(user::EXTRA_NODE_NAME.into(), vec![self.node_name]);
            if !self.node_uid.is_empty() {
                info.extra
                    .insert(user::EXTRA_NODE_UID.into(), vec![self.node_uid]);
            }
        }
        info
    }
}

/// `credential-id` for a JTI (`CredentialIDForJTI`).
pub fn credential_id_for_jti(jti: &str) -> String {
    if jti.is_empty() {
        String::new()
    } else {
        format!("JTI={jti}")
    }
}

/// The service-account token authenticators (legacy and bound) over one key set.
#[derive(Debug)]
pub(crate) struct ServiceAccountAuthenticator {
    keys: Vec<(String, PublicKey)>,
    issuers: Vec<String>,
    implicit_audiences: Vec<String>,
    lookup_legacy: bool,
}

fn intersect(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|x| b.contains(x)).cloned().collect()
}

impl ServiceAccountAuthenticator {
    pub(crate) fn new(
        keys: Vec<PublicKey>,
        issuers: Vec<String>,
        implicit_audiences: Vec<String>,
        lookup_legacy: bool,
    ) -> Self {
        let keys = keys.into_iter().map(|k| (k.key_id(), k)).collect();
        ServiceAccountAuthenticator {
            keys,
            issuers,
            implicit_audiences,
            lookup_legacy,
        }
    }

    pub(crate) fn public_keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.iter().map(|(_, k)| k)
    }

    /// `Ok(None)` when the token is not a service-account token of ours; on success the
    /// user and the token's audiences that were requested.
    pub(crate) async fn authenticate(
        &self,
        token: &str,
        requested: Option<&[String]>,
        lookup: &dyn ObjectLookup,
        now: i64,
    ) -> Result<Option<(UserInfo, Vec<String>)>, Vec<ServiceAccountTokenError>> {
        let Some(iss) = jwt::unverified_issuer(token) else {
            return Ok(None);
        };
        let mut errors = Vec::new();
        // Upstream's token union holds the legacy authenticator before the bound one.
        if iss == LEGACY_ISSUER {
            match self
                .authenticate_as(token, true, requested, lookup, now)
                .await
            {
                Ok(Some(found)) => return Ok(Some(found)),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        if self.issuers.contains(&iss) {
            match self
                .authenticate_as(token, false, requested, lookup, now)
                .await
            {
                Ok(Some(found)) => return Ok(Some(found)),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(None)
        } else {
            Err(errors)
        }
    }

    async fn authenticate_as(
        &self,
        token: &str,
        legacy: bool,
        requested: Option<&[String]>,
        lookup: &dyn ObjectLookup,
        now: i64,
    ) -> Result<Option<(UserInfo, Vec<String>)>, ServiceAccountTokenError> {
        let Some(jws) = Jws::parse(token) else {
            return Ok(None);
        };
        let candidates: Vec<&PublicKey> = self
            .keys
            .iter()
            .filter(|(kid, _)| jws.kid.is_empty() || *kid == jws.kid)
            .map(|(_, k)| k)
            .collect();
        if candidates.is_empty() {
            return Err(ServiceAccountTokenError::NoKeys);
        }
        if !candidates.iter().any(|k| jws.verify(k)) {
            return Err(ServiceAccountTokenError::InvalidSignature);
        }
        let claims: Claims = serde_json::from_slice(jws.payload())
            .map_err(|e| ServiceAccountTokenError::MalformedClaims(e.to_string()))?;
        let issuer_ok = if legacy {
            claims.iss == LEGACY_ISSUER
        } else {
            self.issuers.contains(&claims.iss)
        };
        if !issuer_ok {
            return Err(ServiceAccountTokenError::Issuer(claims.iss));
        }

        let token_audiences = if claims.aud.is_empty() {
            // Only the API server's own audiences are implied for legacy tokens.
            self.implicit_audiences.clone()
        } else {
            claims.aud.clone()
        };
        let requested = requested.unwrap_or(&self.implicit_audiences);
        let audiences = intersect(&token_audiences, requested);
        if audiences.is_empty() && !self.implicit_audiences.is_empty() {
            return Err(ServiceAccountTokenError::Audience {
                token: token_audiences,
                requested: requested.to_vec(),
            });
        }

        let info = if legacy {
            self.validate_legacy(token, &claims, lookup).await?
        } else {
            validate_bound(&claims, lookup, now).await?
        };
        Ok(Some((info.user_info(), audiences)))
    }

    /// `legacyValidator.Validate`.
    async fn validate_legacy(
        &self,
        token: &str,
        claims: &Claims,
        lookup: &dyn ObjectLookup,
    ) -> Result<ServiceAccountInfo, ServiceAccountTokenError> {
        use ServiceAccountTokenError as E;
        if claims.sub.is_empty() {
            return Err(E::MissingClaim("sub"));
        }
        let namespace = &claims.legacy_namespace;
        if namespace.is_empty() {
            return Err(E::MissingClaim("namespace"));
        }
        let secret_name = &claims.legacy_secret_name;
        if secret_name.is_empty() {
            return Err(E::MissingClaim("secretName"));
        }
        let sa_name = &claims.legacy_sa_name;
        if sa_name.is_empty() {
            return Err(E::MissingClaim("serviceAccountName"));
        }
        let sa_uid = &claims.legacy_sa_uid;
        if sa_uid.is_empty() {
            return Err(E::MissingClaim("serviceAccountUID"));
        }
        match user::split_service_account_username(&claims.sub) {
            Some((ns, name)) if ns == namespace && name == sa_name => {}
            _ => return Err(E::InvalidSubject),
        }

        if self.lookup_legacy {
            let secret = lookup
                .get("", "secrets", namespace, secret_name)
                .await
                .ok_or(E::Invalidated)?;
            if lookup::deletion_timestamp(&secret).is_some() {
                return Err(E::Invalidated);
            }
            let stored = lookup::secret_data(&secret, "token").unwrap_or_default();
            if !lookup::secrets_equal(&stored, token.as_bytes()) {
                return Err(E::NotServersCopy);
            }
            if lookup::label(&secret, LEGACY_TOKEN_INVALID_SINCE_LABEL)
                .is_some_and(|v| !v.is_empty())
            {
                return Err(E::LegacyTokenMarkedInvalid {
                    namespace: namespace.clone(),
                    secret: secret_name.clone(),
                    service_account: sa_name.clone(),
                });
            }
            let sa = lookup
                .get("", "serviceaccounts", namespace, sa_name)
                .await
                .ok_or_else(|| E::NotFound {
                    resource: "serviceaccounts",
                    name: sa_name.clone(),
                })?;
            if lookup::deletion_timestamp(&sa).is_some() {
                return Err(E::ServiceAccountDeleted {
                    namespace: namespace.clone(),
                    name: sa_name.clone(),
                });
            }
            if lookup::uid(&sa) != sa_uid {
                return Err(E::UidMismatch {
                    kind: "service account",
                    actual: lookup::uid(&sa).into(),
                    claim: sa_uid.clone(),
                });
            }
        }
        Ok(ServiceAccountInfo {
            namespace: namespace.clone(),
            name: sa_name.clone(),
            uid: sa_uid.clone(),
            ..Default::default()
        })
    }
}

/// go-jose's `Claims.ValidateWithLeeway` time checks.
fn check_times(claims: &Claims, now: i64) -> Result<(), ServiceAccountTokenError> {
    let now = now as f64;
    let leeway = LEEWAY_SECONDS as f64;
    // NumericDate is whole seconds; fractions are truncated as go-jose does.
    if let Some(nbf) = claims.nbf {
        if now + leeway < nbf.trunc() {
            return Err(ServiceAccountTokenError::NotValidYet);
        }
    }
    if let Some(exp) = claims.exp {
        if now - leeway > exp.trunc() {
            return Err(ServiceAccountTokenError::Expired);
        }
    }
    if let Some(iat) = claims.iat {
        if now + leeway < iat.trunc() {
            return Err(ServiceAccountTokenError::IssuedInTheFuture);
        }
    }
    Ok(())
}

/// Looks up a bound object and checks it exists, its UID matches and it is not being
/// deleted (deletion earlier than now minus the leeway invalidates).
async fn check_bound_object(
    lookup: &dyn ObjectLookup,
    resource: &str,
    kind: &'static str,
    namespace: &str,
    reference: &Ref,
    now: i64,
) -> Result<(), ServiceAccountTokenError> {
    let object = lookup
        .get("", resource, namespace, &reference.name)
        .await
        .ok_or(ServiceAccountTokenError::Invalidated)?;
    if lookup::uid(&object) != reference.uid {
        return Err(ServiceAccountTokenError::UidMismatch {
            kind,
            actual: lookup::uid(&object).into(),
            claim: reference.uid.clone(),
        });
    }
    if deleted_before_leeway(&object, now) {
        return Err(ServiceAccountTokenError::Invalidated);
    }
    Ok(())
}

fn deleted_before_leeway(object: &Value, now: i64) -> bool {
    lookup::deletion_timestamp(object).is_some_and(|t| t < now - LEEWAY_SECONDS)
}

/// `validator.Validate` of `claims.go` (bound tokens).
async fn validate_bound(
    claims: &Claims,
    lookup: &dyn ObjectLookup,
    now: i64,
) -> Result<ServiceAccountInfo, ServiceAccountTokenError> {
    use ServiceAccountTokenError as E;
    check_times(claims, now)?;
    let k8s = claims.kubernetes.as_ref();
    let empty = KubernetesClaims::default();
    let k8s = k8s.unwrap_or(&empty);
    let namespace = &k8s.namespace;
    let sa_ref = &k8s.serviceaccount;

    let sa = lookup
        .get("", "serviceaccounts", namespace, &sa_ref.name)
        .await
        .ok_or_else(|| E::NotFound {
            resource: "serviceaccounts",
            name: sa_ref.name.clone(),
        })?;
    if lookup::uid(&sa) != sa_ref.uid {
        return Err(E::UidMismatch {
            kind: "service account",
            actual: lookup::uid(&sa).into(),
            claim: sa_ref.uid.clone(),
        });
    }
    if deleted_before_leeway(&sa, now) {
        return Err(E::ServiceAccountDeleted {
            namespace: namespace.clone(),
            name: sa_ref.name.clone(),
        });
    }

    if let Some(secret) = &k8s.secret {
        check_bound_object(lookup, "secrets", "secret", namespace, secret, now).await?;
    }
    let mut info = ServiceAccountInfo {
        namespace: namespace.clone(),
        name: sa_ref.name.clone(),
        uid: sa_ref.uid.clone(),
        credential_id: credential_id_for_jti(&claims.jti),
        ..Default::default()
    };
    if let Some(pod) = &k8s.pod {
        check_bound_object(lookup, "pods", "pod", namespace, pod, now).await?;
        info.pod_name = pod.name.clone();
        info.pod_uid = pod.uid.clone();
    }
    if let Some(node) = &k8s.node {
        // A pod-bound token only records the pod's node; a node-bound token is checked.
        if k8s.pod.is_none() {
            check_bound_object(lookup, "nodes", "node", "", node, now).await?;
        }
        info.node_name = node.name.clone();
        info.node_uid = node.uid.clone();
    }
    Ok(info)
}
