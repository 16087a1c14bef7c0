//! Storage backend selection with kube-apiserver's flag names: `--etcd-servers` (and its
//! TLS flags) selects etcd; otherwise the embedded store under `--data-dir`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ferrokube_storage::Storage;
use ferrokube_storage_embedded::{EmbeddedConfig, EmbeddedStorage};
use ferrokube_storage_etcd::{EtcdConfig, EtcdStorage};

use crate::duration::parse_go_duration;

#[derive(Args, Debug, Clone)]
pub struct StorageFlags {
    /// Directory of the embedded store (used when --etcd-servers is not given).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/ferrokube/db")]
    pub data_dir: PathBuf,
    /// etcd client URLs, comma separated (http:// or https://). Selects the etcd backend.
    #[arg(long, value_name = "URLS")]
    pub etcd_servers: Option<String>,
    /// Prefix of every key in etcd.
    #[arg(long, value_name = "PREFIX", default_value = "/registry")]
    pub etcd_prefix: String,
    /// CA bundle of the etcd members' serving certificates.
    #[arg(long, value_name = "FILE")]
    pub etcd_cafile: Option<PathBuf>,
    /// Client certificate for etcd.
    #[arg(long, value_name = "FILE")]
    pub etcd_certfile: Option<PathBuf>,
    /// Key of the etcd client certificate.
    #[arg(long, value_name = "FILE")]
    pub etcd_keyfile: Option<PathBuf>,
    /// Interval of history compaction (Go duration; 0 disables).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_go_duration)]
    pub etcd_compaction_interval: Duration,
}

/// An opened backend and what keeps it running.
#[derive(Debug)]
pub enum Backend {
    Embedded(Arc<EmbeddedStorage>),
    Etcd {
        store: Arc<EtcdStorage>,
        _compactor: Option<ferrokube_storage::Compactor>,
    },
}

impl Backend {
    pub fn store(&self) -> Arc<dyn Storage> {
        match self {
            Backend::Embedded(s) => s.clone(),
            Backend::Etcd { store, .. } => store.clone(),
        }
    }

    /// Stops cleanly (the embedded store releases its data directory).
    pub async fn shutdown(self) {
        if let Backend::Embedded(s) = self {
            s.shutdown().await;
        }
    }
}

impl StorageFlags {
    /// Opens the selected backend. `compact` starts the periodic compactor.
    pub async fn open(&self, compact: bool) -> anyhow::Result<Backend> {
        let interval = (compact && !self.etcd_compaction_interval.is_zero())
            .then_some(self.etcd_compaction_interval);
        match &self.etcd_servers {
            None => {
                for (flag, set) in [
                    ("--etcd-cafile", self.etcd_cafile.is_some()),
                    ("--etcd-certfile", self.etcd_certfile.is_some()),
                    ("--etcd-keyfile", self.etcd_keyfile.is_some()),
                ] {
                    anyhow::ensure!(!set, "{flag} is set but --etcd-servers is not");
                }
                let mut config = EmbeddedConfig::new(&self.data_dir);
                config.compaction_interval = interval;
                let store = EmbeddedStorage::open(config).await.with_context(|| {
                    format!(
                        "opening the embedded store in --data-dir {}",
                        self.data_dir.display()
                    )
                })?;
                Ok(Backend::Embedded(store))
            }
            Some(servers) => {
                let mut config =
                    EtcdConfig::from_servers_flag(servers).with_prefix(&self.etcd_prefix);
                anyhow::ensure!(
                    !config.endpoints.is_empty(),
                    "--etcd-servers: no endpoint given"
                );
                config.ca_file = self.etcd_cafile.clone();
                config.cert_file = self.etcd_certfile.clone();
                config.key_file = self.etcd_keyfile.clone();
                let store = Arc::new(
                    EtcdStorage::connect(config)
                        .await
                        .context("connecting to --etcd-servers")?,
                );
                let compactor = interval.map(|every| {
                    let weak = Arc::downgrade(&store);
                    ferrokube_storage::spawn_compactor(weak as std::sync::Weak<dyn Storage>, every)
                });
                Ok(Backend::Etcd {
                    store,
                    _compactor: compactor,
                })
            }
        }
    }
}
