//! ferrokube-authn: the API server's request authentication, as a library (upstream
//! `k8s.io/apiserver/pkg/authentication` + `pkg/kubeapiserver/authenticator` +
//! `pkg/serviceaccount`).
//!
//! Built once from the kube-apiserver flags ([`AuthnConfig`] → [`Authenticator::new`],
//! which reads every file and fails with the flag and file named), then called per
//! request with no I/O of its own:
//!
//! ```text
//! union (first success wins; failures are collected):
//!   request-header  client cert verified by --requestheader-client-ca-file (+ allowed CNs),
//!                   user/uid/groups/extra from --requestheader-*-headers
//!   x509            client cert verified by --client-ca-file: CN = user, O = groups
//!   bearer token    Authorization: Bearer <t>, or a WebSocket token subprotocol
//!     token file    --token-auth-file
//!     service acct  legacy (Secret-backed) and bound JWTs (--service-account-key-file,
//!                   --service-account-issuer, --api-audiences)
//!     bootstrap     kube-system/bootstrap-token-<id> (--enable-bootstrap-token-auth)
//! + system:authenticated for every authenticated non-anonymous user
//! anonymous (--anonymous-auth) only when nothing was presented or nothing failed
//! ```
//!
//! # Wiring it into the API server
//!
//! ```ignore
//! let authn = Authenticator::new(&cfg)?;                       // at start
//! let tls = rustls::ServerConfig::builder()
//!     .with_client_cert_verifier(authn.client_cert_verifier())  // RequestClientCert
//!     .with_single_cert(chain, key)?;
//! // per request, with the peer chain kept from the TLS connection:
//! match authn.authenticate(req.headers(), peer_chain.as_deref(), &cache_lookup).await {
//!     Ok(Some(a)) => { authn.clear_authentication_headers(req.headers_mut()); /* a.user */ }
//!     Ok(None) => /* 401 Unauthorized */,
//!     Err(e) => { tracing::info!(error = %e, "Unable to authenticate the request"); /* 401 */ }
//! }
//! ```
//!
//! TokenRequest uses [`TokenIssuer`] (with [`resolve_bound_object`] for
//! `boundObjectRef`), TokenReview uses [`Authenticator::authenticate_token`] and
//! [`token_review_status`], and service account issuer discovery serves
//! [`OpenIdMetadata`] built from [`Authenticator::service_account_public_keys`].
//!
//! Secrets are compared in constant time and never logged.

mod authenticator;
pub mod bearer;
pub mod bootstrap;
mod clock;
mod config;
mod der;
mod issuer;
mod jwt;
pub mod keys;
mod lookup;
mod openid;
pub mod requestheader;
pub mod serviceaccount;
pub mod tokenfile;
pub mod user;
mod x509;

pub use authenticator::{
    token_review_status, AuthMethod, Authenticated, Authenticator, AuthnError, MethodError,
};
pub use clock::{format_rfc3339, parse_rfc3339};
pub use config::{AuthnConfig, ConfigError};
pub use issuer::{
    resolve_bound_object, BindError, BoundObject, IssueError, IssuedToken, ObjectRef, TokenIssuer,
    TokenSpec, DEFAULT_EXPIRATION_SECONDS, EXTENDED_EXPIRATION_SECONDS, MAX_EXPIRATION_SECONDS,
    MIN_EXPIRATION_SECONDS, WARN_ONLY_EXPIRATION_SECONDS,
};
pub use keys::{KeyError, PublicKey, SigningKey};
pub use lookup::{MapLookup, NoObjects, ObjectLookup};
pub use openid::{
    jwks_json, OpenIdMetadata, CACHE_CONTROL, JWKS_CONTENT_TYPE, JWKS_PATH,
    OPENID_CONFIGURATION_CONTENT_TYPE, OPENID_CONFIGURATION_PATH,
};
pub use requestheader::RequestHeaderNames;
pub use serviceaccount::ServiceAccountTokenError;
pub use user::UserInfo;
pub use x509::{RequestClientCert, X509Error};
