//! `AuthnConfig` (the kube-apiserver authentication flags) and the errors of loading what
//! they name. Every error names the flag and the file and says what is wrong.

use std::path::{Path, PathBuf};

use crate::keys::KeyError;

/// The authentication flags (names as upstream's kube-apiserver).
#[derive(Debug, Clone)]
pub struct AuthnConfig {
    /// `--client-ca-file`: CAs for x509 client-certificate authentication.
    pub client_ca_file: Option<PathBuf>,
    /// `--token-auth-file`: static tokens, CSV `token,user,uid,"group1,group2"`.
    pub token_auth_file: Option<PathBuf>,
    /// `--enable-bootstrap-token-auth`: `bootstrap-token-<id>` Secrets in kube-system.
    pub enable_bootstrap_token_auth: bool,
    /// `--service-account-key-file` (repeatable): PEM public keys (or certificates, or
    /// private keys) verifying service-account tokens. Upstream's kube-apiserver defaults
    /// it to `--service-account-signing-key-file` when unset.
    pub service_account_key_files: Vec<PathBuf>,
    /// `--service-account-issuer` (repeatable): accepted `iss` of bound tokens; the first
    /// is the one tokens are issued with.
    pub service_account_issuers: Vec<String>,
    /// `--api-audiences`: empty = `[first issuer]`, as upstream defaults it.
    pub api_audiences: Vec<String>,
    /// `--service-account-lookup`: check legacy tokens against their Secret and service
    /// account (upstream default true).
    pub service_account_lookup: bool,
    /// `--requestheader-client-ca-file`: CAs of the authenticating front proxy.
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// `--requestheader-allowed-names`: proxy certificate CNs accepted (empty = any).
    pub requestheader_allowed_names: Vec<String>,
    /// `--requestheader-username-headers` (e.g. `X-Remote-User`).
    pub requestheader_username_headers: Vec<String>,
    /// `--requestheader-uid-headers` (e.g. `X-Remote-Uid`).
    pub requestheader_uid_headers: Vec<String>,
    /// `--requestheader-group-headers` (e.g. `X-Remote-Group`).
    pub requestheader_group_headers: Vec<String>,
    /// `--requestheader-extra-headers-prefix` (e.g. `X-Remote-Extra-`).
    pub requestheader_extra_headers_prefix: Vec<String>,
    /// `--anonymous-auth`: unauthenticated requests become `system:anonymous`
    /// (upstream default true).
    pub anonymous_auth: bool,
}

impl AuthnConfig {
    /// The flags' upstream defaults (same as `Default`).
    pub fn new() -> Self {
        Self::default()
    }
}

impl Default for AuthnConfig {
    /// Upstream's defaults: `--service-account-lookup=true`, `--anonymous-auth=true`,
    /// everything else unset.
    fn default() -> Self {
        AuthnConfig {
            client_ca_file: None,
            token_auth_file: None,
            enable_bootstrap_token_auth: false,
            service_account_key_files: Vec::new(),
            service_account_issuers: Vec::new(),
            api_audiences: Vec::new(),
            service_account_lookup: true,
            requestheader_client_ca_file: None,
            requestheader_allowed_names: Vec::new(),
            requestheader_username_headers: Vec::new(),
            requestheader_uid_headers: Vec::new(),
            requestheader_group_headers: Vec::new(),
            requestheader_extra_headers_prefix: Vec::new(),
            anonymous_auth: true,
        }
    }
}

/// Why the authentication configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A named file could not be read.
    #[error("{flag} {}: cannot read: {source}", path.display())]
    ReadFile {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A CA file holds no `CERTIFICATE` block.
    #[error("{flag} {}: data does not contain any valid RSA or ECDSA certificates", path.display())]
    NoCertificates {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A CA file's PEM or certificate does not parse.
    #[error("{flag} {}: certificate #{index} is not a valid PEM X.509 certificate: {reason}", path.display())]
    BadCertificate {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// 1-based PEM block number.
        index: usize,
        /// The parser's complaint.
        reason: String,
    },
    /// A key file is not usable.
    #[error("{flag} {}: {source}", path.display())]
    Key {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with the key.
        #[source]
        source: KeyError,
    },
    /// `--token-auth-file` is not valid CSV.
    #[error("--token-auth-file {}: {source}", path.display())]
    TokenFileCsv {
        /// The file.
        path: PathBuf,
        /// The CSV error.
        #[source]
        source: crate::tokenfile::CsvError,
    },
    /// A `--token-auth-file` record with fewer than 3 columns.
    #[error("--token-auth-file {}: line {line}: token file must have at least 3 columns (token, user name, user uid), found {found}", path.display())]
    TokenFileColumns {
        /// The file.
        path: PathBuf,
        /// 1-based line where the record starts.
        line: usize,
        /// Columns found.
        found: usize,
    },
    /// `--token-auth-file` is not UTF-8.
    #[error("--token-auth-file {}: not valid UTF-8 text", path.display())]
    TokenFileEncoding {
        /// The file.
        path: PathBuf,
    },
    /// `--service-account-max-token-expiration` out of range.
    #[error("--service-account-max-token-expiration: {0}s is out of range: must be between 1 hour and 2^32 seconds")]
    MaxTokenExpiration(i64),
    /// The OIDC discovery document cannot be built.
    #[error("service account issuer discovery: {0}")]
    OpenIdMetadata(String),
}

/// Reads a whole file, naming the flag on error.
pub(crate) fn read_file(flag: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::ReadFile {
        flag,
        path: path.to_path_buf(),
        source,
    })
}
