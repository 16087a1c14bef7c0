//! Delegated authentication and authorization for a component's secure port:
//! upstream's `DelegatingAuthenticationOptions` / `DelegatingAuthorizationOptions`
//! (`k8s.io/apiserver/pkg/server/options/authentication.go`, `authorization.go`) as
//! kube-controller-manager and kube-scheduler bind them.
//!
//! Authentication (first success wins): a front-proxy client certificate verified by
//! `--requestheader-client-ca-file` (CN in `--requestheader-allowed-names`, user and
//! groups from the `--requestheader-*-headers`); a client certificate verified by
//! `--client-ca-file` (CN user, O groups); a bearer token checked with a TokenReview
//! against the API server of `--authentication-kubeconfig`. Without credentials the
//! request is `system:anonymous` (upstream enables anonymous for delegated authn), so
//! the always-allowed health paths stay open and `/metrics` answers 403; credentials
//! that do not authenticate answer 401.
//!
//! Authorization: `--authorization-always-allow-paths` (default `/healthz,/readyz,/livez`)
//! and the `system:masters` group are allowed; anything else is a SubjectAccessReview
//! (non-resource path, verb from the HTTP method) against the API server of
//! `--authorization-kubeconfig`, or denied without one.
//!
//! Both answers are cached (upstream: token review 10s, authorized 10s, unauthorized
//! 10s) so scrapes do not cost an API call each.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrokube_authn::{Authenticator, AuthnConfig, NoObjects, UserInfo};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use ferrokube_client::leaderelection::parse_duration;

/// Upstream's `--authorization-always-allow-paths` default.
pub const DEFAULT_ALWAYS_ALLOW_PATHS: &[&str] = &["/healthz", "/readyz", "/livez"];

/// Why delegated auth could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DelegatedAuthError {
    /// `--client-ca-file` / `--requestheader-*` files.
    #[error(transparent)]
    Authn(#[from] ferrokube_authn::ConfigError),
    /// `--authentication-kubeconfig`.
    #[error("--authentication-kubeconfig: {0}")]
    AuthenticationKubeconfig(#[source] ferrokube_client::ClientError),
    /// `--authorization-kubeconfig`.
    #[error("--authorization-kubeconfig: {0}")]
    AuthorizationKubeconfig(#[source] ferrokube_client::ClientError),
}

/// Upstream's delegated authentication and authorization flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DelegatedAuthFlags {
    /// kubeconfig file pointing at the 'core' kubernetes server with enough rights to
    /// create tokenreviews.authentication.k8s.io.
    #[arg(long, value_name = "FILE")]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// The duration to cache responses from the webhook token authenticator.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub authentication_token_webhook_cache_ttl: Duration,
    /// Accepted for compatibility: the client CA and request-header settings are
    /// taken from the flags only (no extension-apiserver-authentication lookup).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub authentication_skip_lookup: bool,
    /// Accepted for compatibility (see --authentication-skip-lookup).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub authentication_tolerate_lookup_failure: bool,
    /// If set, any request presenting a client certificate signed by one of the
    /// authorities in the client-ca-file is authenticated with an identity
    /// corresponding to the CommonName of the client certificate.
    #[arg(long, value_name = "FILE")]
    pub client_ca_file: Option<PathBuf>,
    /// Root certificate bundle to use to verify client certificates on incoming
    /// requests before trusting usernames in headers specified by
    /// --requestheader-username-headers.
    #[arg(long, value_name = "FILE")]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// List of client certificate common names to allow to provide usernames in headers
    /// specified by --requestheader-username-headers. If empty, any client certificate
    /// validated by the authorities in --requestheader-client-ca-file is allowed.
    #[arg(long, value_delimiter = ',')]
    pub requestheader_allowed_names: Vec<String>,
    /// List of request headers to inspect for usernames.
    #[arg(long, value_delimiter = ',', default_value = "x-remote-user")]
    pub requestheader_username_headers: Vec<String>,
    /// List of request headers to inspect for UIDs.
    #[arg(long, value_delimiter = ',')]
    pub requestheader_uid_headers: Vec<String>,
    /// List of request headers to inspect for groups.
    #[arg(long, value_delimiter = ',', default_value = "x-remote-group")]
    pub requestheader_group_headers: Vec<String>,
    /// List of request header prefixes to inspect.
    #[arg(long, value_delimiter = ',', default_value = "x-remote-extra-")]
    pub requestheader_extra_headers_prefix: Vec<String>,
    /// kubeconfig file pointing at the 'core' kubernetes server with enough rights to
    /// create subjectaccessreviews.authorization.k8s.io.
    #[arg(long, value_name = "FILE")]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// A list of HTTP paths to skip during authorization.
    #[arg(long, value_delimiter = ',', default_value = "/healthz,/readyz,/livez")]
    pub authorization_always_allow_paths: Vec<String>,
    /// The duration to cache 'authorized' responses from the webhook authorizer.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub authorization_webhook_cache_authorized_ttl: Duration,
    /// The duration to cache 'unauthorized' responses from the webhook authorizer.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub authorization_webhook_cache_unauthorized_ttl: Duration,
}

impl Default for DelegatedAuthFlags {
    fn default() -> Self {
        DelegatedAuthFlags {
            authentication_kubeconfig: None,
            authentication_token_webhook_cache_ttl: Duration::from_secs(10),
            authentication_skip_lookup: false,
            authentication_tolerate_lookup_failure: true,
            client_ca_file: None,
            requestheader_client_ca_file: None,
            requestheader_allowed_names: Vec::new(),
            requestheader_username_headers: vec!["x-remote-user".into()],
            requestheader_uid_headers: Vec::new(),
            requestheader_group_headers: vec!["x-remote-group".into()],
            requestheader_extra_headers_prefix: vec!["x-remote-extra-".into()],
            authorization_kubeconfig: None,
            authorization_always_allow_paths: DEFAULT_ALWAYS_ALLOW_PATHS
                .iter()
                .map(|p| p.to_string())
                .collect(),
            authorization_webhook_cache_authorized_ttl: Duration::from_secs(10),
            authorization_webhook_cache_unauthorized_ttl: Duration::from_secs(10),
        }
    }
}

impl DelegatedAuthFlags {
    /// Loads the CA files and builds the TokenReview / SubjectAccessReview clients
    /// (user agent `<component>/<version>`).
    pub async fn build(
        &self,
        component: &str,
        version: &str,
    ) -> Result<DelegatedAuth, DelegatedAuthError> {
        let mut cfg = AuthnConfig::new();
        cfg.client_ca_file = self.client_ca_file.clone();
        cfg.requestheader_client_ca_file = self.requestheader_client_ca_file.clone();
        cfg.requestheader_allowed_names = self.requestheader_allowed_names.clone();
        cfg.requestheader_username_headers = self.requestheader_username_headers.clone();
        cfg.requestheader_uid_headers = self.requestheader_uid_headers.clone();
        cfg.requestheader_group_headers = self.requestheader_group_headers.clone();
        cfg.requestheader_extra_headers_prefix = self.requestheader_extra_headers_prefix.clone();
        cfg.anonymous_auth = false;
        let authn = Authenticator::new(&cfg)?;
        let client = |path: &PathBuf| {
            ferrokube_client::ClientConfig::new(path, component, version)
                .rate_limit(-1.0, 0)
                .map(|c| async move { c.build().await })
        };
        let token_reviews = match &self.authentication_kubeconfig {
            Some(p) => Some(
                client(p)
                    .map_err(DelegatedAuthError::AuthenticationKubeconfig)?
                    .await
                    .map_err(DelegatedAuthError::AuthenticationKubeconfig)?,
            ),
            None => {
                tracing::warn!("no --authentication-kubeconfig: bearer tokens on the secure port are not checked");
                None
            }
        };
        let access_reviews = match &self.authorization_kubeconfig {
            Some(p) => Some(
                client(p)
                    .map_err(DelegatedAuthError::AuthorizationKubeconfig)?
                    .await
                    .map_err(DelegatedAuthError::AuthorizationKubeconfig)?,
            ),
            None => {
                tracing::warn!("no --authorization-kubeconfig: only always-allowed paths and system:masters are authorized");
                None
            }
        };
        Ok(DelegatedAuth {
            authn,
            anonymous: true,
            allow_all: false,
            token_reviews,
            access_reviews,
            always_allow_paths: self.authorization_always_allow_paths.clone(),
            always_allow_groups: vec!["system:masters".into()],
            token_cache: TtlCache::default(),
            token_ttl: self.authentication_token_webhook_cache_ttl,
            sar_cache: TtlCache::default(),
            authorized_ttl: self.authorization_webhook_cache_authorized_ttl,
            unauthorized_ttl: self.authorization_webhook_cache_unauthorized_ttl,
        })
    }
}

/// A small map whose entries expire.
#[derive(Debug)]
struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K, V> Default for TtlCache<K, V> {
    fn default() -> Self {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    /// Bounds memory under a flood of distinct keys.
    const MAX: usize = 4096;

    fn get(&self, k: &K) -> Option<V> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(k)
            .filter(|(expires, _)| *expires > Instant::now())
            .map(|(_, v)| v.clone())
    }

    fn put(&self, k: K, v: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= Self::MAX {
            let now = Instant::now();
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= Self::MAX {
                entries.clear();
            }
        }
        entries.insert(k, (Instant::now() + ttl, v));
    }
}

/// The outcome of authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthnOutcome {
    /// A user (possibly `system:anonymous`).
    User(UserInfo),
    /// Credentials were presented and did not authenticate: 401.
    Unauthorized,
}

/// The outcome of authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthzOutcome {
    /// Go ahead.
    Allowed,
    /// 403, with the reviewer's reason (may be empty).
    Denied(String),
    /// The review could not be made: 500.
    Error(String),
}

/// The resource attributes of a request (upstream's `authorizer.Attributes` of a
/// resource request), for [`DelegatedAuth::authorize_attributes`]. Empty strings are
/// left out of the review (core group `""` is sent as is).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceAttrs<'a> {
    /// `get`, `list`, `watch`, `create`…
    pub verb: &'a str,
    /// API group (`""` for core).
    pub group: &'a str,
    /// API version.
    pub version: &'a str,
    /// Resource (plural).
    pub resource: &'a str,
    /// Subresource, if any.
    pub subresource: &'a str,
    /// Namespace (`""`: cluster scope or all namespaces).
    pub namespace: &'a str,
    /// Object name (`""` for collections).
    pub name: &'a str,
}

/// Key of the SAR cache: the user and the request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SarKey {
    user: String,
    uid: String,
    groups: Vec<String>,
    extra: BTreeMap<String, Vec<String>>,
    verb: String,
    path: String,
}

/// Delegated authentication and authorization, built by [`DelegatedAuthFlags::build`].
pub struct DelegatedAuth {
    authn: Authenticator,
    /// Requests without credentials are `system:anonymous` (else 401).
    anonymous: bool,
    /// AlwaysAllow: every authenticated request is authorized, nothing is reviewed.
    allow_all: bool,
    token_reviews: Option<kube::Client>,
    access_reviews: Option<kube::Client>,
    always_allow_paths: Vec<String>,
    always_allow_groups: Vec<String>,
    token_cache: TtlCache<String, Option<UserInfo>>,
    token_ttl: Duration,
    sar_cache: TtlCache<SarKey, (bool, String)>,
    authorized_ttl: Duration,
    unauthorized_ttl: Duration,
}

impl std::fmt::Debug for DelegatedAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelegatedAuth")
            .field("authn", &self.authn)
            .field("token_reviews", &self.token_reviews.is_some())
            .field("access_reviews", &self.access_reviews.is_some())
            .field("always_allow_paths", &self.always_allow_paths)
            .finish_non_exhaustive()
    }
}

fn anonymous() -> UserInfo {
    let mut u = UserInfo::anonymous();
    if !u
        .groups
        .iter()
        .any(|g| g == ferrokube_authn::user::ALL_UNAUTHENTICATED)
    {
        u.groups
            .push(ferrokube_authn::user::ALL_UNAUTHENTICATED.into());
    }
    u
}

/// Upstream's non-resource verb for an HTTP method (`GET` → `get`, `POST` → `create`…).
pub fn non_resource_verb(method: &http::Method) -> String {
    match *method {
        http::Method::GET | http::Method::HEAD => "get".into(),
        http::Method::POST => "create".into(),
        http::Method::PUT => "update".into(),
        http::Method::PATCH => "patch".into(),
        http::Method::DELETE => "delete".into(),
        ref other => other.as_str().to_ascii_lowercase(),
    }
}

impl DelegatedAuth {
    /// No CA files, no API server: everyone is anonymous and only the always-allowed
    /// paths are served (for tests and `--secure-port` without auth flags).
    pub fn anonymous_only() -> Result<DelegatedAuth, DelegatedAuthError> {
        let flags = DelegatedAuthFlags::default();
        Ok(DelegatedAuth {
            authn: Authenticator::new(&AuthnConfig::new())?,
            anonymous: true,
            allow_all: false,
            token_reviews: None,
            access_reviews: None,
            always_allow_paths: flags.authorization_always_allow_paths,
            always_allow_groups: vec!["system:masters".into()],
            token_cache: TtlCache::default(),
            token_ttl: flags.authentication_token_webhook_cache_ttl,
            sar_cache: TtlCache::default(),
            authorized_ttl: flags.authorization_webhook_cache_authorized_ttl,
            unauthorized_ttl: flags.authorization_webhook_cache_unauthorized_ttl,
        })
    }

    /// The kubelet's form (KubeletConfiguration `authentication`/`authorization`):
    /// client certificates from `client_ca_file`, bearer tokens through TokenReview
    /// with `token_reviews`, anonymous requests only when `anonymous`; authorization
    /// through SubjectAccessReview with `access_reviews` (`None`: AlwaysAllow).
    pub fn direct(
        client_ca_file: Option<PathBuf>,
        anonymous: bool,
        token_reviews: Option<kube::Client>,
        access_reviews: Option<kube::Client>,
        cache_ttl: Duration,
    ) -> Result<DelegatedAuth, DelegatedAuthError> {
        let mut cfg = AuthnConfig::new();
        cfg.client_ca_file = client_ca_file;
        cfg.anonymous_auth = false;
        Ok(DelegatedAuth {
            authn: Authenticator::new(&cfg)?,
            anonymous,
            allow_all: access_reviews.is_none(),
            token_reviews,
            access_reviews,
            always_allow_paths: Vec::new(),
            always_allow_groups: Vec::new(),
            token_cache: TtlCache::default(),
            token_ttl: cache_ttl,
            sar_cache: TtlCache::default(),
            authorized_ttl: cache_ttl,
            unauthorized_ttl: cache_ttl,
        })
    }

    /// Authorizes `verb` on a core resource (`nodes/proxy` of node `name`…) for `user`
    /// through a SubjectAccessReview with resource attributes (cached like paths).
    pub async fn authorize_resource(
        &self,
        user: &UserInfo,
        verb: &str,
        resource: &str,
        subresource: &str,
        name: &str,
    ) -> AuthzOutcome {
        let attrs = ResourceAttrs {
            verb,
            group: "",
            version: "v1",
            resource,
            subresource,
            namespace: "",
            name,
        };
        self.authorize_attributes(user, &attrs).await
    }

    /// Authorizes a resource request with its full attributes (an aggregated API
    /// server's `/apis/<group>/<version>/[namespaces/<ns>/]<resource>[/<name>]`):
    /// AlwaysAllow and the always-allowed groups (`system:masters`) first, as upstream's
    /// delegating authorizer, then a SubjectAccessReview with these resource
    /// attributes (cached like the other reviews).
    pub async fn authorize_attributes(
        &self,
        user: &UserInfo,
        attrs: &ResourceAttrs<'_>,
    ) -> AuthzOutcome {
        if self.allow_all
            || user
                .groups
                .iter()
                .any(|g| self.always_allow_groups.contains(g))
        {
            return AuthzOutcome::Allowed;
        }
        let Some(client) = &self.access_reviews else {
            return AuthzOutcome::Denied(String::new());
        };
        let key = format!(
            "attributes:{}/{}/{}/{}/{}/{}",
            attrs.group,
            attrs.version,
            attrs.resource,
            attrs.subresource,
            attrs.namespace,
            attrs.name
        );
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let review = ResourceAttributes {
            verb: Some(attrs.verb.to_string()),
            group: Some(attrs.group.to_string()),
            version: some(attrs.version),
            resource: Some(attrs.resource.to_string()),
            subresource: some(attrs.subresource),
            namespace: some(attrs.namespace),
            name: some(attrs.name),
            ..ResourceAttributes::default()
        };
        self.review(client, user, attrs.verb, key, None, Some(review))
            .await
    }

    /// The rustls verifier asking for client certificates with both CAs as hints.
    pub fn client_cert_verifier(&self) -> Arc<dyn rustls::server::danger::ClientCertVerifier> {
        self.authn.client_cert_verifier()
    }

    /// Removes the request-header identity headers (after authentication).
    pub fn clear_authentication_headers(&self, headers: &mut http::HeaderMap) {
        self.authn.clear_authentication_headers(headers);
    }

    /// Authenticates a request from its headers and the TLS peer chain.
    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        peer_chain: Option<&[Vec<u8>]>,
    ) -> AuthnOutcome {
        let cert_failed = match self
            .authn
            .authenticate(headers, peer_chain, &NoObjects)
            .await
        {
            Ok(Some(a)) => return AuthnOutcome::User(a.user),
            Ok(None) => false,
            Err(e) => {
                tracing::info!(error = %e, "unable to authenticate the request");
                true
            }
        };
        let token = ferrokube_authn::bearer::bearer_token(headers);
        match (token, &self.token_reviews) {
            (Some(token), Some(client)) => match self.token_review(client, token).await {
                Some(user) => AuthnOutcome::User(user),
                None => AuthnOutcome::Unauthorized,
            },
            _ if cert_failed => AuthnOutcome::Unauthorized,
            _ if self.anonymous => AuthnOutcome::User(anonymous()),
            _ => AuthnOutcome::Unauthorized,
        }
    }

    async fn token_review(&self, client: &kube::Client, token: &str) -> Option<UserInfo> {
        if let Some(hit) = self.token_cache.get(&token.to_string()) {
            return hit;
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(client.clone());
        let status = match api.create(&PostParams::default(), &review).await {
            Ok(r) => r.status.unwrap_or_default(),
            Err(e) => {
                // Not cached: a failing API server must not lock users out for a TTL.
                tracing::warn!(error = %e, "TokenReview failed");
                return None;
            }
        };
        let user = match (status.authenticated, status.user) {
            (Some(true), Some(u)) => {
                let mut info = UserInfo {
                    name: u.username.unwrap_or_default(),
                    uid: u.uid.unwrap_or_default(),
                    groups: u.groups.unwrap_or_default(),
                    extra: u.extra.unwrap_or_default().into_iter().collect(),
                };
                if info.name.is_empty() {
                    None
                } else {
                    if !info
                        .groups
                        .iter()
                        .any(|g| g == ferrokube_authn::user::ALL_AUTHENTICATED)
                    {
                        info.groups
                            .push(ferrokube_authn::user::ALL_AUTHENTICATED.into());
                    }
                    Some(info)
                }
            }
            _ => {
                if let Some(error) = status.error.filter(|e| !e.is_empty()) {
                    tracing::info!(%error, "token rejected by TokenReview");
                }
                None
            }
        };
        self.token_cache
            .put(token.to_string(), user.clone(), self.token_ttl);
        user
    }

    /// Authorizes `verb` on non-resource `path` for `user`.
    pub async fn authorize(&self, user: &UserInfo, verb: &str, path: &str) -> AuthzOutcome {
        if self.allow_all
            || self
                .always_allow_paths
                .iter()
                .any(|p| path_matches(p, path))
        {
            return AuthzOutcome::Allowed;
        }
        if user
            .groups
            .iter()
            .any(|g| self.always_allow_groups.contains(g))
        {
            return AuthzOutcome::Allowed;
        }
        let Some(client) = &self.access_reviews else {
            return AuthzOutcome::Denied(String::new());
        };
        let attrs = NonResourceAttributes {
            path: Some(path.to_string()),
            verb: Some(verb.to_string()),
        };
        self.review(client, user, verb, path.to_string(), Some(attrs), None)
            .await
    }

    /// One SubjectAccessReview, answered from the cache when it can be (`target` names
    /// what is reviewed in the cache key: the path, or `attributes:<group>/…/<name>`).
    async fn review(
        &self,
        client: &kube::Client,
        user: &UserInfo,
        verb: &str,
        target: String,
        non_resource: Option<NonResourceAttributes>,
        resource: Option<ResourceAttributes>,
    ) -> AuthzOutcome {
        let key = SarKey {
            user: user.name.clone(),
            uid: user.uid.clone(),
            groups: user.groups.clone(),
            extra: user.extra.clone(),
            verb: verb.to_string(),
            path: target,
        };
        if let Some((allowed, reason)) = self.sar_cache.get(&key) {
            return if allowed {
                AuthzOutcome::Allowed
            } else {
                AuthzOutcome::Denied(reason)
            };
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone().into_iter().collect()),
                non_resource_attributes: non_resource,
                resource_attributes: resource,
            },
            ..SubjectAccessReview::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(client.clone());
        match api.create(&PostParams::default(), &review).await {
            Ok(r) => {
                let status = r.status.unwrap_or_default();
                let reason = status.reason.unwrap_or_default();
                if status.allowed {
                    self.sar_cache.put(key, (true, reason), self.authorized_ttl);
                    AuthzOutcome::Allowed
                } else {
                    self.sar_cache
                        .put(key, (false, reason.clone()), self.unauthorized_ttl);
                    AuthzOutcome::Denied(reason)
                }
            }
            Err(e) => AuthzOutcome::Error(e.to_string()),
        }
    }
}

/// `--authorization-always-allow-paths` entries match exactly, or as a prefix when
/// they end in `*`.
fn path_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn anonymous_and_always_allowed_paths() {
        let auth = DelegatedAuth::anonymous_only().unwrap();
        let AuthnOutcome::User(user) = auth.authenticate(&http::HeaderMap::new(), None).await
        else {
            panic!("anonymous expected");
        };
        assert_eq!(user.name, "system:anonymous");
        assert!(user.groups.contains(&"system:unauthenticated".to_string()));
        assert_eq!(
            auth.authorize(&user, "get", "/healthz").await,
            AuthzOutcome::Allowed
        );
        assert_eq!(
            auth.authorize(&user, "get", "/metrics").await,
            AuthzOutcome::Denied(String::new())
        );
        let master = UserInfo {
            name: "admin".into(),
            groups: vec!["system:masters".into()],
            ..UserInfo::default()
        };
        assert_eq!(
            auth.authorize(&master, "get", "/metrics").await,
            AuthzOutcome::Allowed
        );
        assert!(path_matches("/debug/*", "/debug/pprof"));
        assert_eq!(non_resource_verb(&http::Method::POST), "create");
    }

    #[tokio::test]
    async fn resource_attributes_without_reviewer() {
        let auth = DelegatedAuth::anonymous_only().unwrap();
        let attrs = ResourceAttrs {
            verb: "list",
            group: "metrics.k8s.io",
            version: "v1beta1",
            resource: "pods",
            namespace: "default",
            ..ResourceAttrs::default()
        };
        let anonymous = anonymous();
        assert_eq!(
            auth.authorize_attributes(&anonymous, &attrs).await,
            AuthzOutcome::Denied(String::new())
        );
        let master = UserInfo {
            name: "admin".into(),
            groups: vec!["system:masters".into()],
            ..UserInfo::default()
        };
        assert_eq!(
            auth.authorize_attributes(&master, &attrs).await,
            AuthzOutcome::Allowed
        );
        let open = DelegatedAuth::direct(None, true, None, None, Duration::ZERO).unwrap();
        assert_eq!(
            open.authorize_attributes(&anonymous, &attrs).await,
            AuthzOutcome::Allowed
        );
    }

    #[test]
    fn ttl_cache_expires() {
        let c: TtlCache<u8, u8> = TtlCache::default();
        c.put(1, 2, Duration::from_secs(60));
        c.put(3, 4, Duration::ZERO);
        assert_eq!(c.get(&1), Some(2));
        assert_eq!(c.get(&3), None);
    }
}
