//! Errors of request handling, and their `metav1.Status` (the storage error of a write
//! is described with the resource and name it concerned, as upstream's `storage.InterpretXError`).

use ferrokube_api::status::{Status, Subject};
use ferrokube_storage::StorageError;

#[derive(Debug)]
pub enum ApiError {
    Status(Box<Status>),
    Storage(StorageError),
}

impl From<Status> for ApiError {
    fn from(s: Status) -> Self {
        ApiError::Status(Box::new(s))
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        ApiError::Storage(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn into_status(self, group: &str, resource: &str, name: &str) -> Status {
        let subject = Subject {
            group,
            resource,
            name,
        };
        match self {
            ApiError::Status(s) => *s,
            ApiError::Storage(e) => match e {
                StorageError::NotFound { .. } => Status::not_found(subject),
                StorageError::AlreadyExists { .. } => Status::already_exists(subject),
                StorageError::Conflict { .. } => Status::conflict(subject, Status::MODIFIED),
                StorageError::PreconditionFailed { what, expected, actual, .. } => Status::conflict(
                    subject,
                    &format!("Precondition failed: {what} in precondition: {expected}, {what} in object meta: {actual}"),
                ),
                StorageError::Compacted { requested, compacted } => {
                    Status::gone(format!("too old resource version: {requested} ({compacted})"))
                }
                StorageError::FutureRevision { requested, current } => Status::failure(
                    504,
                    "Timeout",
                    format!("Too large resource version: {requested}, current: {current}"),
                ),
                StorageError::ValueTooLarge { size, limit, .. } => Status::failure(
                    413,
                    "RequestEntityTooLarge",
                    format!("Request entity too large: the stored object would be {size} bytes, limit is {limit}"),
                ),
                StorageError::Unavailable { .. } | StorageError::Closed => Status::unavailable(e.to_string()),
                other => Status::internal(other),
            },
        }
    }
}
