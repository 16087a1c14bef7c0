//! ferrokube's default storage backend: a durable, single-node MVCC store with etcd v3
//! semantics, so a one-machine cluster needs no etcd (the k3s experience).
//!
//! Design (see `docs/storage.md`): an in-memory multi-version index ([`mvcc`]) serves
//! every read; a single commit thread ([`writer`]) appends each batch of writes to a
//! CRC-framed write-ahead log ([`wal`]) and fsyncs it once per batch before anything is
//! acknowledged or visible; snapshots ([`snapshot`]) bound the WAL and make restarts
//! fast; a built-in compactor bounds history as upstream's does (every 5 minutes).

mod mvcc;
mod recovery;
mod snapshot;
mod wal;
mod watch;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use ferrokube_storage::{
    check_value_size, spawn_compactor, validate_key, Compactor, KeyValue, RangeRequest,
    RangeResponse, Result, Storage, StorageError, WatchRequest, WatchStream,
};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot};

use crate::writer::{Op, Reply, Request, Shared, Writer};

/// Settings of the embedded store.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// Where the snapshot, WAL segments and lock file live.
    pub data_dir: PathBuf,
    /// Compact history older than one interval, every interval (upstream's
    /// `--etcd-compaction-interval`, 5 minutes). `None` turns automatic compaction off.
    pub compaction_interval: Option<Duration>,
    /// WAL bytes after which a snapshot is written and older segments are deleted.
    pub snapshot_threshold_bytes: u64,
}

impl EmbeddedConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EmbeddedConfig {
            data_dir: data_dir.into(),
            compaction_interval: Some(Duration::from_secs(300)),
            snapshot_threshold_bytes: 64 << 20,
        }
    }
}

/// Figures about the store for status output and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbeddedStats {
    pub revision: i64,
    pub compacted_revision: i64,
    pub keys: usize,
}

/// The embedded store. Open it with [`EmbeddedStorage::open`]; it stops when the last
/// handle is dropped or [`EmbeddedStorage::shutdown`] is called.
#[derive(Debug)]
pub struct EmbeddedStorage {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Request>,
    writer_done: Mutex<Option<oneshot::Receiver<()>>>,
    _compactor: Option<Compactor>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn expiry(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |t| now_ms().saturating_add(t.as_millis() as u64).max(1))
}

impl EmbeddedStorage {
    /// Opens (creating if needed) the store in `config.data_dir`, recovering its state.
    /// Must be called inside a Tokio runtime (it starts the TTL and compaction tasks).
    pub async fn open(config: EmbeddedConfig) -> Result<Arc<Self>> {
        let dir = config.data_dir.clone();
        let (lock, recovered) = tokio::task::spawn_blocking(move || {
            let lock = recovery::lock(&dir)?;
            let recovered = recovery::recover(&dir)?;
            Ok::<_, StorageError>((lock, recovered))
        })
        .await
        .map_err(|_| StorageError::Closed)??;

        let (first_rev, valid_len) = recovered
            .tail_segment
            .unwrap_or((recovered.state.current + 1, 0));
        let mut wal = wal::WalWriter::open(&config.data_dir, first_rev, valid_len)?;
        wal.bytes_since_snapshot = recovered.wal_bytes;
        let current = recovered.state.current;
        tracing::info!(dir = %config.data_dir.display(), revision = current,
            keys = recovered.state.key_count(), "embedded store: opened");

        let (rev_tx, rev_rx) = tokio::sync::watch::channel(current);
        let shared = Arc::new(Shared {
            state: RwLock::new(recovered.state),
            committed: AtomicI64::new(current),
            revisions: rev_rx,
            dir: config.data_dir.clone(),
        });
        let (tx, rx) = mpsc::channel(4096);
        let writer = Writer {
            shared: shared.clone(),
            rx,
            wal,
            revisions: rev_tx,
            snapshot_threshold: config.snapshot_threshold_bytes,
            snapshot_running: Arc::new(AtomicBool::new(false)),
            snapshot_thread: None,
            _lock: lock,
        };
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("embedded-commit".into())
            .spawn(move || {
                writer.run();
                let _ = done_tx.send(());
            })
            .map_err(|e| StorageError::io("starting the commit thread for", &config.data_dir, e))?;

        let store = Arc::new_cyclic(|weak: &Weak<EmbeddedStorage>| {
            let compactor = config
                .compaction_interval
                .map(|every| spawn_compactor(weak.clone() as Weak<dyn Storage>, every));
            EmbeddedStorage {
                shared,
                tx,
                writer_done: Mutex::new(Some(done_rx)),
                _compactor: compactor,
            }
        });
        tokio::spawn(reap_expired(Arc::downgrade(&store)));
        Ok(store)
    }

    /// Answers every queued write, stops the commit thread and releases the data
    /// directory. Later calls fail with [`StorageError::Closed`].
    pub async fn shutdown(&self) {
        let _ = self.submit(Op::Shutdown).await;
        let done = self.writer_done.lock().take();
        if let Some(done) = done {
            let _ = done.await;
        }
    }

    pub fn stats(&self) -> EmbeddedStats {
        let state = self.shared.state.read();
        EmbeddedStats {
            revision: self.committed(),
            compacted_revision: state.compacted,
            keys: state.key_count(),
        }
    }

    fn committed(&self) -> i64 {
        self.shared.committed.load(Ordering::Acquire)
    }

    async fn submit(&self, op: Op) -> Result<Reply> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { op, reply })
            .await
            .map_err(|_| StorageError::Closed)?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    fn check_write(key: &str, value: &[u8]) -> Result<()> {
        validate_key(key)?;
        check_value_size(key, value)
    }
}

fn unexpected(reply: Reply) -> StorageError {
    StorageError::Protocol {
        backend: "embedded",
        detail: format!("unexpected commit reply {reply:?}"),
    }
}

#[async_trait]
impl Storage for EmbeddedStorage {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<KeyValue> {
        Self::check_write(key, &value)?;
        match self
            .submit(Op::Create {
                key: key.into(),
                value,
                expires_at: expiry(ttl),
            })
            .await?
        {
            Reply::Kv(kv) => Ok(kv),
            other => Err(unexpected(other)),
        }
    }

    async fn get(&self, key: &str, revision: Option<i64>) -> Result<Option<KeyValue>> {
        let state = self.shared.state.read();
        let rev = state.read_revision(revision, self.committed())?;
        Ok(state.get(key, rev))
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let state = self.shared.state.read();
        let rev = state.read_revision(req.read_revision(), self.committed())?;
        state.range(&req, rev)
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: i64,
        ttl: Option<Duration>,
    ) -> Result<KeyValue> {
        Self::check_write(key, &value)?;
        let op = Op::Update {
            key: key.into(),
            value,
            expected: expected_mod_revision,
            expires_at: expiry(ttl),
        };
        match self.submit(op).await? {
            Reply::Kv(kv) => Ok(kv),
            other => Err(unexpected(other)),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<i64>,
    ) -> Result<(KeyValue, i64)> {
        validate_key(key)?;
        match self
            .submit(Op::Delete {
                key: key.into(),
                expected: expected_mod_revision,
            })
            .await?
        {
            Reply::Deleted(prev, rev) => Ok((prev, rev)),
            other => Err(unexpected(other)),
        }
    }

    async fn watch(&self, req: WatchRequest) -> Result<WatchStream> {
        validate_key(&req.key)?;
        let next = {
            let state = self.shared.state.read();
            let committed = self.committed();
            match req.start_revision {
                r if r <= 0 => committed + 1,
                r if r < state.compacted => {
                    return Err(StorageError::Compacted {
                        requested: r,
                        compacted: state.compacted,
                    })
                }
                r => r,
            }
        };
        let (tx, stream) = WatchStream::channel();
        tokio::spawn(watch::run(self.shared.clone(), req, next, tx));
        Ok(stream)
    }

    async fn current_revision(&self) -> Result<i64> {
        Ok(self.committed())
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        match self.submit(Op::Compact { rev: revision }).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

/// Deletes keys whose TTL has passed (etcd's lease expiry), checking twice a second.
async fn reap_expired(store: Weak<EmbeddedStorage>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(store) = store.upgrade() else { return };
        let expired = store.shared.state.read().expired(now_ms(), 1000);
        for (key, mod_rev) in expired {
            match store.submit(Op::Expire { key, mod_rev }).await {
                Ok(_) => {}
                Err(StorageError::Closed) => return,
                Err(err) => tracing::warn!(error = %err, "embedded store: expiring a key failed"),
            }
        }
    }
}
