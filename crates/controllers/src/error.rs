//! The controllers' error type: which step failed, and why.

use std::path::PathBuf;

/// Why a sync (or a controller's start) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error("{action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// A controller's service-account credentials could not be obtained.
    #[error("credentials for service account kube-system/{service_account}: {reason}")]
    Credentials {
        service_account: String,
        reason: String,
    },
    /// A file named by a flag could not be read.
    #[error("{flag} {}: {source}", path.display())]
    ReadFile {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file or setting is not usable.
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

/// Attaches the step to a kube-rs error: `api.create(..).await.action("creating pod")?`.
pub trait ResultExt<T> {
    fn action(self, action: impl Into<String>) -> Result<T, Error>;
}

impl<T> ResultExt<T> for Result<T, kube::Error> {
    fn action(self, action: impl Into<String>) -> Result<T, Error> {
        self.map_err(|source| Error::Api {
            action: action.into(),
            source,
        })
    }
}

/// Whether a kube-rs error is the API's 404 NotFound.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether a kube-rs error is the API's 409 (AlreadyExists or Conflict).
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Whether an [`Error`] is an API 404.
pub fn error_is_not_found(e: &Error) -> bool {
    matches!(e, Error::Api { source, .. } if is_not_found(source))
}

/// Attaches the step to a serde_json error (encoding or decoding an object).
pub trait JsonResultExt<T> {
    fn action_invalid(self, what: &str) -> Result<T, Error>;
}

impl<T> JsonResultExt<T> for Result<T, serde_json::Error> {
    fn action_invalid(self, what: &str) -> Result<T, Error> {
        self.map_err(|e| Error::Invalid {
            what: what.to_string(),
            reason: e.to_string(),
        })
    }
}
