//! The request authenticator: upstream's `BuildAuthenticator` chain — a union of
//! request-header, x509 and bearer-token (token file, service accounts, bootstrap tokens;
//! `Authorization` header or WebSocket protocol) authenticators, the authenticated-group
//! adder, and anonymous as the fallback that only applies when no method failed.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use http::HeaderMap;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::CertificateDer;
use serde_json::{json, Value};

use crate::bearer::{self, WebSocketTokenError};
use crate::bootstrap;
use crate::clock::now_unix;
use crate::config::{read_file, AuthnConfig, ConfigError};
use crate::keys::{self, PublicKey};
use crate::lookup::ObjectLookup;
use crate::requestheader::{RequestHeaderAuthenticator, RequestHeaderNames};
use crate::serviceaccount::{ServiceAccountAuthenticator, ServiceAccountTokenError};
use crate::tokenfile::TokenFile;
use crate::user::UserInfo;
use crate::x509::{self, CaVerifier, RequestClientCert, X509Error};

/// Which method authenticated a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Front-proxy headers (`--requestheader-*`).
    RequestHeader,
    /// Client certificate (`--client-ca-file`).
    X509,
    /// `--token-auth-file`.
    TokenFile,
    /// Service-account JWT.
    ServiceAccount,
    /// Bootstrap token.
    BootstrapToken,
    /// Nobody (`--anonymous-auth`).
    Anonymous,
}

/// A successful authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The user (with `system:authenticated` added unless anonymous).
    pub user: UserInfo,
    /// The audiences the credential is valid for among the requested ones (the API
    /// server's `--api-audiences` for requests).
    pub audiences: Vec<String>,
    /// The method that succeeded.
    pub method: AuthMethod,
}

/// One method's failure.
#[derive(Debug, thiserror::Error)]
pub enum MethodError {
    /// Client certificate or front-proxy certificate.
    #[error(transparent)]
    X509(#[from] X509Error),
    /// A service-account token.
    #[error(transparent)]
    ServiceAccount(#[from] ServiceAccountTokenError),
    /// A token no token method accepted (and none failed with a reason).
    #[error("invalid bearer token")]
    InvalidBearerToken,
    /// A malformed WebSocket token protocol.
    #[error(transparent)]
    WebSocket(#[from] WebSocketTokenError),
}

/// The request carried credentials and none worked: answer 401. The message lists every
/// method's failure (Go's aggregate format); log it, and send upstream's plain
/// `Unauthorized` to the client.
#[derive(Debug)]
pub struct AuthnError {
    /// Each failure, in chain order.
    pub errors: Vec<MethodError>,
}

impl fmt::Display for AuthnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut messages: Vec<String> = Vec::new();
        for e in &self.errors {
            let m = e.to_string();
            if !messages.contains(&m) {
                messages.push(m);
            }
        }
        match messages.as_slice() {
            [one] => f.write_str(one),
            _ => write!(f, "[{}]", messages.join(", ")),
        }
    }
}

impl std::error::Error for AuthnError {}

/// The API server's authenticator, built once from [`AuthnConfig`].
pub struct Authenticator {
    request_header: Option<RequestHeaderAuthenticator>,
    x509: Option<CaVerifier>,
    token_file: Option<TokenFile>,
    service_accounts: Option<ServiceAccountAuthenticator>,
    bootstrap: bool,
    anonymous: bool,
    api_audiences: Vec<String>,
    handshake_verifier: Arc<RequestClientCert>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("request_header", &self.request_header.is_some())
            .field("x509", &self.x509.is_some())
            .field("token_file", &self.token_file.as_ref().map(TokenFile::len))
            .field("service_accounts", &self.service_accounts.is_some())
            .field("bootstrap", &self.bootstrap)
            .field("anonymous", &self.anonymous)
            .field("api_audiences", &self.api_audiences)
            .finish()
    }
}

fn intersect(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|x| b.contains(x)).cloned().collect()
}

impl Authenticator {
    /// Loads every file the flags name. Errors name the flag and the file and say what is
    /// wrong.
    pub fn new(cfg: &AuthnConfig) -> Result<Authenticator, ConfigError> {
        let x509 = cfg
            .client_ca_file
            .as_deref()
            .map(|p| CaVerifier::load("--client-ca-file", p))
            .transpose()?;
        let request_header = cfg
            .requestheader_client_ca_file
            .as_deref()
            .map(|p| -> Result<_, ConfigError> {
                Ok(RequestHeaderAuthenticator {
                    ca: CaVerifier::load("--requestheader-client-ca-file", p)?,
                    allowed_names: cfg.requestheader_allowed_names.clone(),
                    names: RequestHeaderNames {
                        username_headers: cfg.requestheader_username_headers.clone(),
                        uid_headers: cfg.requestheader_uid_headers.clone(),
                        group_headers: cfg.requestheader_group_headers.clone(),
                        extra_headers_prefix: cfg.requestheader_extra_headers_prefix.clone(),
                    },
                })
            })
            .transpose()?;
        let token_file = cfg
            .token_auth_file
            .as_deref()
            .map(TokenFile::load)
            .transpose()?;
        let api_audiences = if cfg.api_audiences.is_empty() {
            cfg.service_account_issuers
                .iter()
                .take(1)
                .cloned()
                .collect()
        } else {
            cfg.api_audiences.clone()
        };
        let service_accounts = if cfg.service_account_key_files.is_empty() {
            None
        } else {
            let mut keys = Vec::new();
            for path in &cfg.service_account_key_files {
                const FLAG: &str = "--service-account-key-file";
                let data = read_file(FLAG, path)?;
                keys.extend(keys::parse_public_keys_pem(&data).map_err(|source| {
                    ConfigError::Key {
                        flag: FLAG,
                        path: path.clone(),
                        source,
                    }
                })?);
            }
            Some(ServiceAccountAuthenticator::new(
                keys,
                cfg.service_account_issuers.clone(),
                api_audiences.clone(),
                cfg.service_account_lookup,
            ))
        };
        let hints = x509
            .iter()
            .chain(request_header.as_ref().map(|r| &r.ca))
            .flat_map(|ca| ca.subjects.iter().cloned())
            .collect();
        Ok(Authenticator {
            request_header,
            x509,
            token_file,
            service_accounts,
            bootstrap: cfg.enable_bootstrap_token_auth,
            anonymous: cfg.anonymous_auth,
            api_audiences,
            handshake_verifier: Arc::new(RequestClientCert::new(hints)),
        })
    }

    /// The API server's audiences (`--api-audiences`, defaulted to the first issuer).
    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    /// Whether `--anonymous-auth` is on.
    pub fn anonymous_enabled(&self) -> bool {
        self.anonymous
    }

    /// Authenticates one request. `peer_chain` is the TLS client certificate chain (DER,
    /// leaf first), if any; `lookup` fetches live objects for the token methods.
    ///
    /// - `Ok(Some(a))`: authenticated (possibly as anonymous);
    /// - `Ok(None)`: no credentials and anonymous is off → 401;
    /// - `Err(e)`: credentials that did not authenticate → 401 (never anonymous).
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        peer_chain: Option<&[Vec<u8>]>,
        lookup: &dyn ObjectLookup,
    ) -> Result<Option<Authenticated>, AuthnError> {
        self.authenticate_at(headers, peer_chain, lookup, now_unix())
            .await
    }

    /// [`Authenticator::authenticate`] as of Unix time `now` (for time-dependent tests;
    /// certificates are always checked against the real clock).
    pub async fn authenticate_at(
        &self,
        headers: &HeaderMap,
        peer_chain: Option<&[Vec<u8>]>,
        lookup: &dyn ObjectLookup,
        now: i64,
    ) -> Result<Option<Authenticated>, AuthnError> {
        let mut errors = Vec::new();
        let chain = peer_chain.filter(|c| !c.is_empty());
        // Audience-agnostic methods report the API server's audiences.
        let agnostic = |user: UserInfo, method| Authenticated {
            user,
            audiences: self.api_audiences.clone(),
            method,
        };

        if let Some(rh) = &self.request_header {
            match rh.authenticate(headers, chain) {
                Ok(Some(user)) => {
                    return Ok(Some(finish(agnostic(user, AuthMethod::RequestHeader))))
                }
                Ok(None) => {}
                Err(e) => errors.push(e.into()),
            }
        }
        if let (Some(ca), Some(chain)) = (&self.x509, chain) {
            match x509::authenticate(ca, chain) {
                Ok(Some(user)) => return Ok(Some(finish(agnostic(user, AuthMethod::X509)))),
                Ok(None) => {}
                Err(e) => errors.push(e.into()),
            }
        }
        // Upstream installs the bearer-token authenticators only when some token method
        // is configured; otherwise a token is not a credential anyone checks.
        let token_methods =
            self.token_file.is_some() || self.service_accounts.is_some() || self.bootstrap;
        if let Some(token) = bearer::bearer_token(headers).filter(|_| token_methods) {
            match self.token(token, None, lookup, now).await {
                Ok(found) => return Ok(Some(finish(found))),
                Err(mut e) => errors.append(&mut e),
            }
        }
        match bearer::websocket_token(headers) {
            Ok(Some(token)) if token_methods => match self.token(&token, None, lookup, now).await {
                Ok(found) => return Ok(Some(finish(found))),
                Err(mut e) => errors.append(&mut e),
            },
            Ok(_) => {}
            Err(e) => errors.push(e.into()),
        }

        if !errors.is_empty() {
            return Err(AuthnError { errors });
        }
        if self.anonymous {
            return Ok(Some(Authenticated {
                user: UserInfo::anonymous(),
                audiences: Vec::new(),
                method: AuthMethod::Anonymous,
            }));
        }
        Ok(None)
    }

    /// Authenticates a bare token as TokenReview does: `audiences` are the review's
    /// `spec.audiences` (empty = the API server's). An unknown token is an error
    /// (`invalid bearer token`).
    pub async fn authenticate_token(
        &self,
        token: &str,
        audiences: &[String],
        lookup: &dyn ObjectLookup,
    ) -> Result<Authenticated, AuthnError> {
        self.authenticate_token_at(token, audiences, lookup, now_unix())
            .await
    }

    /// [`Authenticator::authenticate_token`] as of Unix time `now`.
    pub async fn authenticate_token_at(
        &self,
        token: &str,
        audiences: &[String],
        lookup: &dyn ObjectLookup,
        now: i64,
    ) -> Result<Authenticated, AuthnError> {
        let requested = if audiences.is_empty() {
            self.api_audiences.clone()
        } else {
            audiences.to_vec()
        };
        let requested = (!requested.is_empty()).then_some(requested.as_slice());
        match self.token(token, requested, lookup, now).await {
            Ok(found) => Ok(finish(found)),
            Err(errors) => Err(AuthnError { errors }),
        }
    }

    /// The token union: token file, service accounts, bootstrap tokens.
    async fn token(
        &self,
        token: &str,
        requested: Option<&[String]>,
        lookup: &dyn ObjectLookup,
        now: i64,
    ) -> Result<Authenticated, Vec<MethodError>> {
        let mut errors = Vec::new();
        // Audience-agnostic methods (token file, bootstrap) only apply when the request
        // wants one of the API server's audiences, and then report those.
        let agnostic_audiences = match requested {
            None => Some(self.api_audiences.clone()),
            Some(r) => {
                let common = intersect(&self.api_audiences, r);
                (!common.is_empty()).then_some(common)
            }
        };
        if let (Some(tf), Some(audiences)) = (&self.token_file, &agnostic_audiences) {
            if let Some(user) = tf.authenticate(token) {
                return Ok(Authenticated {
                    user,
                    audiences: audiences.clone(),
                    method: AuthMethod::TokenFile,
                });
            }
        }
        if let Some(sa) = &self.service_accounts {
            match sa.authenticate(token, requested, lookup, now).await {
                Ok(Some((user, audiences))) => {
                    return Ok(Authenticated {
                        user,
                        audiences,
                        method: AuthMethod::ServiceAccount,
                    })
                }
                Ok(None) => {}
                Err(e) => errors.extend(e.into_iter().map(MethodError::from)),
            }
        }
        if let (true, Some(audiences)) = (self.bootstrap, &agnostic_audiences) {
            if let Some(user) = bootstrap::authenticate(token, lookup, now).await {
                return Ok(Authenticated {
                    user,
                    audiences: audiences.clone(),
                    method: AuthMethod::BootstrapToken,
                });
            }
        }
        if errors.is_empty() {
            errors.push(MethodError::InvalidBearerToken);
        }
        Err(errors)
    }

    /// Removes credentials before the request goes on, as upstream's authentication filter
    /// does after success: `Authorization`, the standard `X-Remote-*` headers, the
    /// configured request headers, and a WebSocket token subprotocol.
    pub fn clear_authentication_headers(&self, headers: &mut HeaderMap) {
        headers.remove(http::header::AUTHORIZATION);
        RequestHeaderNames::standard().clear(headers);
        if let Some(rh) = &self.request_header {
            rh.names.clear(headers);
        }
        bearer::strip_websocket_token(headers);
    }

    /// The configured request-header names (`None` without
    /// `--requestheader-client-ca-file`).
    pub fn requestheader_headers(&self) -> Option<&RequestHeaderNames> {
        self.request_header.as_ref().map(|r| &r.names)
    }

    /// The CAs of `--client-ca-file` and `--requestheader-client-ca-file`.
    pub fn client_cert_roots(&self) -> Vec<CertificateDer<'static>> {
        self.x509
            .iter()
            .chain(self.request_header.as_ref().map(|r| &r.ca))
            .flat_map(|ca| ca.roots.iter().cloned())
            .collect()
    }

    /// The rustls client-certificate verifier for the serving port: requests (does not
    /// require) a client certificate, hinting both CA files, and accepts any chain — the
    /// chain is verified per request by [`Authenticator::authenticate`], so a certificate
    /// from an unknown CA fails authentication, not the handshake (upstream's
    /// `tls.RequestClientCert`). Use with
    /// `rustls::ServerConfig::builder().with_client_cert_verifier(..)`.
    pub fn client_cert_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        self.handshake_verifier.clone()
    }

    /// The service-account verification keys (`--service-account-key-file`), for
    /// [`crate::OpenIdMetadata::new`].
    pub fn service_account_public_keys(&self) -> Vec<PublicKey> {
        self.service_accounts
            .iter()
            .flat_map(|sa| sa.public_keys().cloned())
            .collect()
    }

    /// The data of the `kube-system/extension-apiserver-authentication` ConfigMap that
    /// upstream publishes for aggregated API servers: `client-ca-file` and the
    /// `requestheader-*` keys (lists as JSON arrays).
    pub fn extension_apiserver_authentication_data(&self) -> BTreeMap<String, String> {
        let mut data = BTreeMap::new();
        if let Some(ca) = &self.x509 {
            data.insert("client-ca-file".into(), ca.pem.clone());
        }
        if let Some(rh) = &self.request_header {
            let list = |v: &[String]| Value::from(v.to_vec()).to_string();
            data.insert("requestheader-client-ca-file".into(), rh.ca.pem.clone());
            data.insert(
                "requestheader-allowed-names".into(),
                list(&rh.allowed_names),
            );
            data.insert(
                "requestheader-username-headers".into(),
                list(&rh.names.username_headers),
            );
            data.insert(
                "requestheader-uid-headers".into(),
                list(&rh.names.uid_headers),
            );
            data.insert(
                "requestheader-group-headers".into(),
                list(&rh.names.group_headers),
            );
            data.insert(
                "requestheader-extra-headers-prefix".into(),
                list(&rh.names.extra_headers_prefix),
            );
        }
        data
    }
}

/// Upstream's `AuthenticatedGroupAdder`.
fn finish(mut found: Authenticated) -> Authenticated {
    found.user.add_authenticated_group();
    found
}

/// The `status` of a TokenReview for a result of [`Authenticator::authenticate_token`]:
/// `authenticated`, `user`, `audiences`, or `error` (Go's field omission; `user` is always
/// present, as Go writes a struct).
pub fn token_review_status(result: &Result<Authenticated, AuthnError>) -> Value {
    match result {
        Ok(found) => {
            let mut status = json!({ "authenticated": true, "user": found.user.to_json() });
            if !found.audiences.is_empty() {
                status["audiences"] = Value::from(found.audiences.clone());
            }
            status
        }
        Err(e) => json!({ "user": {}, "error": e.to_string() }),
    }
}
