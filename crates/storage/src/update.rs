//! Read-modify-write loops on top of compare-and-swap, as upstream's
//! `GuaranteedUpdate` and conditional `Delete` in `storage/etcd3/store.go`.

use std::time::Duration;

use bytes::Bytes;

use crate::{KeyValue, Storage, StorageError};

/// What an update closure wants done with the value it was shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateDecision {
    /// Write this value (creating the key if it is absent).
    Write { value: Bytes, ttl: Option<Duration> },
    /// Leave the key as it is.
    Keep,
}

/// Applies `update` to the current value of `key` and writes the result with
/// compare-and-swap, re-applying it to the newer value after every conflict.
///
/// The closure sees `None` when the key is absent; then `Write` creates the key unless
/// `ignore_not_found` is false, in which case NotFound is returned without calling it.
/// Writing the same bytes that are stored is skipped (upstream does the same), and the
/// stored value is returned. Errors from the closure stop the loop and are returned.
pub async fn guaranteed_update<E, F>(
    store: &dyn Storage,
    key: &str,
    ignore_not_found: bool,
    mut update: F,
) -> Result<KeyValue, E>
where
    E: From<StorageError>,
    F: FnMut(Option<&KeyValue>) -> Result<UpdateDecision, E>,
{
    let mut current = store.get(key, None).await?;
    loop {
        if current.is_none() && !ignore_not_found {
            return Err(StorageError::NotFound { key: key.into() }.into());
        }
        let (value, ttl) = match update(current.as_ref())? {
            UpdateDecision::Keep => {
                return current.ok_or_else(|| StorageError::NotFound { key: key.into() }.into());
            }
            UpdateDecision::Write { value, ttl } => (value, ttl),
        };
        let result = match &current {
            Some(kv) if kv.value == value && ttl.is_none() => return Ok(kv.clone()),
            Some(kv) => store.update(key, value, kv.mod_revision, ttl).await,
            None => store.create(key, value, ttl).await,
        };
        match result {
            Ok(kv) => return Ok(kv),
            Err(StorageError::Conflict { current: newer, .. }) => current = newer.map(|b| *b),
            Err(StorageError::AlreadyExists { .. }) | Err(StorageError::NotFound { .. }) => {
                current = store.get(key, None).await?;
            }
            Err(other) => return Err(other.into()),
        }
    }
}

/// Upstream's delete preconditions (`metav1.Preconditions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<i64>,
}

impl Preconditions {
    /// Checks the preconditions against a stored value whose UID is `uid` (the caller
    /// decodes it; storage does not know the encoding).
    pub fn check(&self, kv: &KeyValue, uid: Option<&str>) -> Result<(), StorageError> {
        if let Some(want) = &self.uid {
            if Some(want.as_str()) != uid {
                return Err(StorageError::PreconditionFailed {
                    key: kv.key.clone(),
                    what: "UID",
                    expected: want.clone(),
                    actual: uid.unwrap_or_default().to_string(),
                });
            }
        }
        if let Some(want) = self.resource_version {
            if want != kv.mod_revision {
                return Err(StorageError::PreconditionFailed {
                    key: kv.key.clone(),
                    what: "ResourceVersion",
                    expected: want.to_string(),
                    actual: kv.mod_revision.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// Deletes `key` after `check` accepts its current value, retrying when the value
/// changes between the check and the delete. Returns the deleted value and the
/// revision of the delete.
pub async fn guaranteed_delete<E, F>(
    store: &dyn Storage,
    key: &str,
    mut check: F,
) -> Result<(KeyValue, i64), E>
where
    E: From<StorageError>,
    F: FnMut(&KeyValue) -> Result<(), E>,
{
    let mut current = store.get(key, None).await?;
    loop {
        let Some(kv) = current.take() else {
            return Err(StorageError::NotFound { key: key.into() }.into());
        };
        check(&kv)?;
        match store.delete(key, Some(kv.mod_revision)).await {
            Ok(done) => return Ok(done),
            Err(StorageError::Conflict { current: newer, .. }) => current = newer.map(|b| *b),
            Err(other) => return Err(other.into()),
        }
    }
}
