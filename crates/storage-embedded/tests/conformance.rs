#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The shared storage conformance suite against the embedded backend.

use std::sync::Arc;

use ferrokube_storage::conformance::Harness;
use ferrokube_storage::Storage;
use ferrokube_storage_embedded::{EmbeddedConfig, EmbeddedStorage};

struct Embedded {
    store: Arc<EmbeddedStorage>,
    _dir: tempfile::TempDir,
}

impl Harness for Embedded {
    fn store(&self) -> Arc<dyn Storage> {
        self.store.clone()
    }
}

async fn embedded() -> Embedded {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmbeddedConfig::new(dir.path());
    // Small snapshots so the suite also crosses WAL rotation and snapshotting.
    config.snapshot_threshold_bytes = 4096;
    Embedded {
        store: EmbeddedStorage::open(config).await.unwrap(),
        _dir: dir,
    }
}

ferrokube_storage::conformance_tests!(embedded);
