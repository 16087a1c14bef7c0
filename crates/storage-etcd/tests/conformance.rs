//! The shared storage conformance suite against a real one-member etcd per test (each
//! test runs in its own process under nextest, so each gets its own etcd).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use ferrokube_storage::conformance::Harness;
use ferrokube_storage::Storage;
use ferrokube_storage_etcd::testing::EtcdCluster;
use ferrokube_storage_etcd::EtcdStorage;

struct EtcdHarness {
    store: Arc<EtcdStorage>,
    _cluster: EtcdCluster,
}

impl Harness for EtcdHarness {
    fn store(&self) -> Arc<dyn Storage> {
        self.store.clone()
    }
}

async fn etcd() -> EtcdHarness {
    let cluster = EtcdCluster::start(1, false).await;
    let store = EtcdStorage::connect(cluster.config())
        .await
        .expect("connecting to etcd");
    EtcdHarness {
        store: Arc::new(store),
        _cluster: cluster,
    }
}

ferrokube_storage::conformance_tests!(etcd);
