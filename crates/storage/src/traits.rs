//! The storage interface. Every method is one atomic operation against the store;
//! multi-step logic (retrying read-modify-write) lives in [`crate::guaranteed_update`].

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{KeyValue, RangeRequest, RangeResponse, Result, WatchRequest, WatchStream};

#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug + 'static {
    /// A short name for logs and metrics ("embedded", "etcd").
    fn backend(&self) -> &'static str;

    /// Creates `key` if it does not exist (etcd: txn on create_revision == 0).
    /// With a `ttl` the key is deleted by the store once it expires.
    /// Errors: [`AlreadyExists`](crate::StorageError::AlreadyExists).
    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<KeyValue>;

    /// Reads `key` at the latest committed revision, or at `revision`.
    /// Errors: [`Compacted`](crate::StorageError::Compacted),
    /// [`FutureRevision`](crate::StorageError::FutureRevision).
    async fn get(&self, key: &str, revision: Option<i64>) -> Result<Option<KeyValue>>;

    /// Reads a key or a prefix with limit, continue key, revision and count.
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse>;

    /// Replaces `key` only if its mod revision is `expected_mod_revision` (compare-and-swap).
    /// Errors: [`NotFound`](crate::StorageError::NotFound) when the key is absent,
    /// [`Conflict`](crate::StorageError::Conflict) carrying the current value otherwise.
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: i64,
        ttl: Option<Duration>,
    ) -> Result<KeyValue>;

    /// Deletes `key`, only if its mod revision is `expected_mod_revision` when given.
    /// Returns the deleted value and the revision of the delete.
    /// Errors: [`NotFound`](crate::StorageError::NotFound), [`Conflict`](crate::StorageError::Conflict).
    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<i64>,
    ) -> Result<(KeyValue, i64)>;

    /// Watches a key or prefix from a revision. Errors when the start revision has been
    /// compacted (immediately or as the stream's first item).
    async fn watch(&self, req: WatchRequest) -> Result<WatchStream>;

    /// The store's current revision (the revision of the last committed write).
    async fn current_revision(&self) -> Result<i64>;

    /// The health of each server of the store, in configuration order, as
    /// `kubectl get componentstatuses` lists them (`etcd-0`, `etcd-1`, …). By default
    /// the store is one server, healthy when it answers [`Storage::current_revision`].
    async fn member_health(&self) -> Vec<std::result::Result<(), String>> {
        vec![self
            .current_revision()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())]
    }

    /// Discards history older than `revision`: reads and watches below it fail with
    /// [`Compacted`](crate::StorageError::Compacted) afterwards.
    async fn compact(&self, revision: i64) -> Result<()>;
}
