//! Errors of the storage layer. The API server maps them to `metav1.Status`:
//! NotFound → 404, AlreadyExists → 409, Conflict/PreconditionFailed → 409,
//! Compacted → 410 Gone (Expired), ValueTooLarge → 413, Unavailable → 503.

use std::path::PathBuf;

use crate::KeyValue;

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("key {key:?} not found")]
    NotFound { key: String },

    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },

    /// A compare-and-swap lost: the key's mod revision is not the expected one. `current`
    /// is the value the store holds now (None if the key is gone), so callers can retry
    /// without another read.
    #[error("key {key:?} was modified concurrently: expected mod revision {expected}, found {}",
        current.as_ref().map_or(0, |kv| kv.mod_revision))]
    Conflict {
        key: String,
        expected: i64,
        current: Option<Box<KeyValue>>,
    },

    /// A delete/update precondition (UID or resourceVersion) did not hold.
    #[error("precondition failed for {key:?}: {what} in precondition: {expected}, {what} in object: {actual}")]
    PreconditionFailed {
        key: String,
        what: &'static str,
        expected: String,
        actual: String,
    },

    /// The requested revision is older than the compacted revision (HTTP 410 Gone).
    #[error("required revision {requested} has been compacted (compacted revision {compacted})")]
    Compacted { requested: i64, compacted: i64 },

    #[error("required revision {requested} is a future revision (current revision {current})")]
    FutureRevision { requested: i64, current: i64 },

    #[error("value for key {key:?} is {size} bytes, over the limit of {limit} bytes")]
    ValueTooLarge {
        key: String,
        size: usize,
        limit: usize,
    },

    #[error("invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },

    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },

    /// The store has been shut down (or its writer died after an I/O failure).
    #[error("storage is closed")]
    Closed,

    /// A data file failed its integrity checks. Start-up stops rather than lose data.
    #[error("corrupt data file {}: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },

    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A remote backend (etcd) could not be reached or refused the request.
    #[error("etcd endpoint {endpoint}: {source}")]
    Unavailable {
        endpoint: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The backend answered with something this client does not understand.
    #[error("unexpected response from {backend}: {detail}")]
    Protocol {
        backend: &'static str,
        detail: String,
    },
}

impl StorageError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }
    pub fn is_conflict(&self) -> bool {
        matches!(self, StorageError::Conflict { .. })
    }
    pub fn is_compacted(&self) -> bool {
        matches!(self, StorageError::Compacted { .. })
    }

    /// Builds an I/O error naming the operation and the file.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
