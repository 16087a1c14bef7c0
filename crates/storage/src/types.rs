//! The data model shared by every backend: key-values with their revisions, range
//! requests with limit/continue/revision/count, and watch streams of ordered events.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::{Result, StorageError};

/// etcd's default `--max-request-bytes` (1.5 MiB): larger values are refused by every
/// backend so that the embedded store never accepts what an etcd cluster would reject.
pub const MAX_VALUE_SIZE: usize = 1_572_864;

/// A key and one version of its value, as etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created this generation of the key.
    pub create_revision: i64,
    /// Revision of the write that produced this version (the resourceVersion).
    pub mod_revision: i64,
    /// Number of writes to this generation of the key, starting at 1.
    pub version: i64,
}

/// A read of one key (`prefix == false`) or of every key under a prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeRequest {
    pub key: String,
    pub prefix: bool,
    /// Start from this key (inclusive) instead of `key`: the continue key of a paginated
    /// list. It must lie inside the prefix.
    pub start: Option<String>,
    /// At most this many items; 0 means no limit.
    pub limit: usize,
    /// Read at this revision; `None` (or 0) reads the latest committed state.
    pub revision: Option<i64>,
    /// Return only `count` (and the revision), no items.
    pub count_only: bool,
}

impl RangeRequest {
    pub fn prefix(prefix: impl Into<String>) -> Self {
        RangeRequest {
            key: prefix.into(),
            prefix: true,
            ..Default::default()
        }
    }
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
    pub fn with_start(mut self, start: impl Into<String>) -> Self {
        self.start = Some(start.into());
        self
    }
    pub fn at_revision(mut self, revision: i64) -> Self {
        self.revision = Some(revision);
        self
    }

    /// The first key of the range, after checking that `start` lies inside it.
    pub fn first_key(&self) -> Result<&str> {
        match &self.start {
            None => Ok(&self.key),
            Some(start) if self.prefix && start.starts_with(&self.key) => Ok(start),
            Some(start) if !self.prefix && start == &self.key => Ok(start),
            Some(start) => Err(StorageError::InvalidRequest {
                reason: format!("continue key {start:?} is outside the range {:?}", self.key),
            }),
        }
    }

    /// The requested read revision, or None for "latest".
    pub fn read_revision(&self) -> Option<i64> {
        self.revision.filter(|r| *r > 0)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResponse {
    pub kvs: Vec<KeyValue>,
    /// More keys exist in the range past the last one returned.
    pub more: bool,
    /// Number of keys in the range starting at the first key (etcd's `count`), so
    /// `count - kvs.len()` is upstream's remainingItemCount.
    pub count: i64,
    /// The revision the read was served at.
    pub revision: i64,
}

/// The smallest key greater than every key starting with `prefix` (etcd's `GetPrefixRangeEnd`),
/// or None when no such key exists (the prefix is all 0xff bytes or empty).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Keys are non-empty and free of NUL bytes (NUL is how continue keys are built).
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StorageError::InvalidKey {
            key: key.into(),
            reason: "key is empty",
        });
    }
    if key.contains('\0') {
        return Err(StorageError::InvalidKey {
            key: key.into(),
            reason: "key contains a NUL byte",
        });
    }
    Ok(())
}

/// Refuses values over [`MAX_VALUE_SIZE`].
pub fn check_value_size(key: &str, value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_SIZE {
        return Err(StorageError::ValueTooLarge {
            key: key.into(),
            size: value.len(),
            limit: MAX_VALUE_SIZE,
        });
    }
    Ok(())
}

/// A watch on one key or a prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchRequest {
    pub key: String,
    pub prefix: bool,
    /// Deliver every event with mod revision >= this; 0 means "from the next write".
    pub start_revision: i64,
    /// Send a [`WatchMessage::Progress`] when the watch has been idle this long, so the
    /// consumer learns the store's revision (upstream uses these for bookmarks).
    pub progress_notify: Option<Duration>,
}

impl WatchRequest {
    pub fn prefix(prefix: impl Into<String>) -> Self {
        WatchRequest {
            key: prefix.into(),
            prefix: true,
            ..Default::default()
        }
    }
    pub fn key(key: impl Into<String>) -> Self {
        WatchRequest {
            key: key.into(),
            prefix: false,
            ..Default::default()
        }
    }
    pub fn from_revision(mut self, revision: i64) -> Self {
        self.start_revision = revision;
        self
    }
    pub fn with_progress_notify(mut self, every: Duration) -> Self {
        self.progress_notify = Some(every);
        self
    }
    pub fn matches(&self, key: &str) -> bool {
        if self.prefix {
            key.starts_with(&self.key)
        } else {
            key == self.key
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Modified,
    Deleted,
}

/// One change. For `Deleted`, `kv` carries the key and the deleting revision
/// (`mod_revision`) with an empty value; `prev_kv` is the deleted value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchMessage {
    Event(Event),
    /// Every event up to and including `revision` has been delivered.
    Progress {
        revision: i64,
    },
}

/// The receiving end of a watch. Events arrive in revision order; an error ends the
/// stream (e.g. [`StorageError::Compacted`]). Dropping it cancels the watch.
#[derive(Debug)]
pub struct WatchStream {
    rx: mpsc::Receiver<Result<WatchMessage>>,
}

impl WatchStream {
    /// Channel depth between a backend's watch task and its consumer. A slow consumer
    /// only slows its own watch; backends catch it up from history.
    pub const BUFFER: usize = 256;

    pub fn channel() -> (mpsc::Sender<Result<WatchMessage>>, WatchStream) {
        let (tx, rx) = mpsc::channel(Self::BUFFER);
        (tx, WatchStream { rx })
    }

    /// The next message, or None when the watch has ended.
    pub async fn recv(&mut self) -> Option<Result<WatchMessage>> {
        self.rx.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"/a/"), Some(b"/a0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }

    #[test]
    fn continue_key_must_be_inside_range() {
        let r = RangeRequest::prefix("/pods/").with_start("/pods/a\0");
        assert_eq!(r.first_key().unwrap(), "/pods/a\0");
        let r = RangeRequest::prefix("/pods/").with_start("/secrets/x");
        assert!(matches!(
            r.first_key(),
            Err(StorageError::InvalidRequest { .. })
        ));
    }

    #[test]
    fn keys_are_checked() {
        assert!(validate_key("").is_err());
        assert!(validate_key("/a\0b").is_err());
        assert!(validate_key("/a/b").is_ok());
        assert!(check_value_size("k", &vec![0; MAX_VALUE_SIZE]).is_ok());
        assert!(check_value_size("k", &vec![0; MAX_VALUE_SIZE + 1]).is_err());
    }
}
