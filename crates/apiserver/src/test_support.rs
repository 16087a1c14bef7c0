//! What the unit tests share.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use ferrokube_storage_embedded::{EmbeddedConfig, EmbeddedStorage};

/// An embedded store in `dir` without background compaction.
pub async fn embedded_store(dir: &std::path::Path) -> Arc<EmbeddedStorage> {
    let mut config = EmbeddedConfig::new(dir);
    config.compaction_interval = None;
    EmbeddedStorage::open(config).await.unwrap()
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(1)
}
