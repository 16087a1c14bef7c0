//! Authentication, impersonation and authorization of every request (upstream's
//! `WithAuthentication`, `WithImpersonation` and `WithAuthorization` filters), on the
//! `ferrokube-authn` and `ferrokube-authz` libraries: the authorizers are fed by watches of
//! the RBAC objects and of the Node authorizer's graph ([`feeds`]), the bootstrap policy is
//! reconciled at start ([`policy`]), and the review APIs answer from the same state
//! ([`reviews`]).

pub mod feeds;
pub mod filter;
pub mod policy;
pub mod reviews;
pub mod tokens;

use std::path::PathBuf;
use std::sync::Arc;

use ferrokube_authn::{Authenticator, AuthnConfig, OpenIdMetadata, TokenIssuer};
use ferrokube_authz::{Authorizer, NodeAuthorizer, Rbac};

/// The security flags of kube-apiserver.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    pub authn: AuthnConfig,
    /// `--authorization-mode` (comma-separated; upstream's default is AlwaysAllow).
    pub authorization_mode: String,
    /// `--service-account-signing-key-file`: issues TokenRequest tokens.
    pub service_account_signing_key_file: Option<PathBuf>,
    /// `--service-account-max-token-expiration` in seconds.
    pub service_account_max_token_expiration: Option<i64>,
    /// `--service-account-jwks-uri`.
    pub service_account_jwks_uri: Option<String>,
    /// `--enable-admission-plugins` (comma-separated entries).
    pub admission_plugins: Vec<String>,
    /// `--disable-admission-plugins`.
    pub disabled_admission_plugins: Vec<String>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            authn: AuthnConfig::new(),
            authorization_mode: "AlwaysAllow".into(),
            service_account_signing_key_file: None,
            service_account_max_token_expiration: None,
            service_account_jwks_uri: None,
            admission_plugins: Vec::new(),
            disabled_admission_plugins: Vec::new(),
        }
    }
}

/// Why the security configuration cannot be used (start-up stops, naming the flag).
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error(transparent)]
    Authn(#[from] ferrokube_authn::ConfigError),
    #[error("--authorization-mode: {0}")]
    Authz(#[from] ferrokube_authz::Error),
}

/// The running security state.
pub struct Security {
    pub authn: Authenticator,
    pub authz: Arc<dyn Authorizer>,
    pub rbac: Arc<Rbac>,
    pub node: Arc<NodeAuthorizer>,
    /// Whether RBAC decides anything (its objects are watched and policy reconciled).
    pub rbac_enabled: bool,
    pub node_enabled: bool,
    pub issuer: Option<TokenIssuer>,
    pub openid: Option<OpenIdMetadata>,
    pub admission: crate::admission::Admission,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("authn", &self.authn)
            .field("rbac_enabled", &self.rbac_enabled)
            .field("node_enabled", &self.node_enabled)
            .field("issuer", &self.issuer.as_ref().map(TokenIssuer::issuer))
            .finish()
    }
}

impl Security {
    /// Loads every file the flags name (errors name the flag and file).
    pub fn new(cfg: &SecurityConfig, external_address: &str) -> Result<Security, SecurityError> {
        let mut authn_cfg = cfg.authn.clone();
        // Upstream: the signing key verifies too when no --service-account-key-file is given.
        if authn_cfg.service_account_key_files.is_empty() {
            if let Some(k) = &cfg.service_account_signing_key_file {
                authn_cfg.service_account_key_files.push(k.clone());
            }
        }
        let authn = Authenticator::new(&authn_cfg)?;
        let modes = ferrokube_authz::parse_modes(&cfg.authorization_mode)?;
        let rbac = Arc::new(Rbac::new());
        let node = Arc::new(NodeAuthorizer::new());
        let authz = Arc::new(ferrokube_authz::build_authorizer(
            &modes,
            rbac.clone(),
            node.clone(),
        )?);
        let issuer = match (
            &cfg.service_account_signing_key_file,
            authn_cfg.service_account_issuers.first(),
        ) {
            (Some(key), Some(iss)) => {
                let mut issuer =
                    TokenIssuer::load(key, iss)?.with_api_audiences(authn.api_audiences().to_vec());
                if let Some(max) = cfg.service_account_max_token_expiration {
                    issuer = issuer.with_max_expiration_seconds(max)?;
                }
                Some(issuer)
            }
            _ => None,
        };
        let openid = match authn_cfg.service_account_issuers.first() {
            Some(iss) if iss.starts_with("https://") => OpenIdMetadata::new(
                iss,
                cfg.service_account_jwks_uri.as_deref(),
                Some(external_address),
                &authn.service_account_public_keys(),
            )
            .ok(),
            _ => None,
        };
        Ok(Security {
            authn,
            authz,
            rbac,
            node,
            rbac_enabled: modes.contains(&ferrokube_authz::Mode::Rbac),
            node_enabled: modes.contains(&ferrokube_authz::Mode::Node),
            issuer,
            openid,
            admission: crate::admission::Admission::from_plugins(
                &cfg.admission_plugins,
                &cfg.disabled_admission_plugins,
            ),
        })
    }
}
