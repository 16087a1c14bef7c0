//! The [`Storage`] trait over a real etcd v3 cluster, as upstream's
//! `k8s.io/apiserver/pkg/storage/etcd3` store: keys under `--etcd-prefix`, creates and
//! updates as transactions comparing create/mod revisions, deletes returning the deleted
//! value, TTLs as shared leases, and watches that resume on another member when the one
//! they were on dies.
//!
//! [`EtcdStorage::connect`] takes an [`EtcdConfig`] (kube-apiserver's `--etcd-servers`,
//! `--etcd-prefix`, `--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`), checks every
//! member and builds one load-balanced client over all of them. With the `testing`
//! feature, [`testing::EtcdCluster`] starts real etcd processes for tests and benchmarks.

mod config;
mod connect;
mod errors;
mod keys;
mod kv;
mod lease;
mod watch;

#[cfg(feature = "testing")]
pub mod testing;

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ferrokube_storage::{
    KeyValue, RangeRequest, RangeResponse, Result, Storage, WatchRequest, WatchStream,
};

pub use config::{EtcdConfig, DEFAULT_DIAL_TIMEOUT, DEFAULT_PREFIX};
pub use errors::{EndpointsFailed, RequestFailed};

/// A store backed by an etcd v3 cluster. Cheap to clone: clones share the connections.
#[derive(Clone)]
pub struct EtcdStorage {
    inner: Arc<Inner>,
}

/// What every operation and watch task shares.
pub(crate) struct Inner {
    kv: etcd_client::KvClient,
    watch: etcd_client::WatchClient,
    lease: etcd_client::LeaseClient,
    leases: lease::LeaseManager,
    keys: keys::Keys,
    /// The configured endpoints, for error messages (the balanced client does not say
    /// which member answered).
    endpoints: String,
    /// The same, one by one, and how to connect to one of them (for health checks).
    endpoint_list: Vec<String>,
    probe_options: etcd_client::ConnectOptions,
    /// How long a request is retried across members before its error is returned.
    retry_window: Duration,
    /// The highest revision this client compacted to, a fallback when etcd's error does
    /// not say where the compaction stands.
    compacted: AtomicI64,
}

impl std::fmt::Debug for EtcdStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStorage")
            .field("endpoints", &self.inner.endpoints)
            .field("prefix", &self.inner.keys.prefix())
            .finish_non_exhaustive()
    }
}

impl EtcdStorage {
    /// The endpoints this store was configured with, comma-separated.
    pub fn endpoints(&self) -> &str {
        &self.inner.endpoints
    }

    /// The key prefix in etcd, normalised (`/registry/`).
    pub fn prefix(&self) -> &str {
        self.inner.keys.prefix()
    }
}

#[async_trait]
impl Storage for EtcdStorage {
    fn backend(&self) -> &'static str {
        "etcd"
    }

    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<KeyValue> {
        self.inner.create(key, value, ttl).await
    }

    async fn get(&self, key: &str, revision: Option<i64>) -> Result<Option<KeyValue>> {
        self.inner.get(key, revision).await
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        self.inner.range(req).await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: i64,
        ttl: Option<Duration>,
    ) -> Result<KeyValue> {
        self.inner
            .update(key, value, expected_mod_revision, ttl)
            .await
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<i64>,
    ) -> Result<(KeyValue, i64)> {
        self.inner.delete(key, expected_mod_revision).await
    }

    async fn watch(&self, req: WatchRequest) -> Result<WatchStream> {
        watch::start(self.inner.clone(), req).await
    }

    async fn current_revision(&self) -> Result<i64> {
        self.inner.current_revision().await
    }

    async fn member_health(&self) -> Vec<std::result::Result<(), String>> {
        connect::member_health(
            &self.inner.endpoint_list,
            &self.inner.probe_options,
            self.inner.retry_window,
        )
        .await
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.inner.compact(revision).await
    }
}
