//! The commit thread: the only writer of the state and the WAL.
//!
//! It takes every queued request at once (group commit), applies them in order to the
//! in-memory state (compare-and-swap checks see earlier writes of the same batch),
//! appends their records to the WAL, makes them durable with one `fdatasync`, and only
//! then publishes the new committed revision to readers and watchers and answers the
//! callers. Readers never look past the committed revision, so nothing that could be
//! lost in a crash is ever observed.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ferrokube_storage::{KeyValue, Result, StorageError};
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot, watch};

use crate::mvcc::State;
use crate::snapshot;
use crate::wal::{self, WalWriter};

/// Requests taken in one commit at most.
const MAX_BATCH: usize = 1024;

#[derive(Debug)]
pub(crate) enum Op {
    Create {
        key: String,
        value: Bytes,
        expires_at: u64,
    },
    Update {
        key: String,
        value: Bytes,
        expected: i64,
        expires_at: u64,
    },
    Delete {
        key: String,
        expected: Option<i64>,
    },
    /// TTL expiry: delete `key` if it still is at `mod_rev`.
    Expire {
        key: String,
        mod_rev: i64,
    },
    Compact {
        rev: i64,
    },
    /// Answer everything queued before, then stop (releasing the data directory).
    Shutdown,
}

#[derive(Debug)]
pub(crate) enum Reply {
    Kv(KeyValue),
    Deleted(KeyValue, i64),
    Done,
}

#[derive(Debug)]
pub(crate) struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Reply>>,
}

/// What readers and watchers share with the commit thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub state: RwLock<State>,
    /// The last durable revision; reads are served at or below it.
    pub committed: AtomicI64,
    /// Feed of the committed revision; ends when the commit thread stops.
    pub revisions: watch::Receiver<i64>,
    pub dir: PathBuf,
}

#[derive(Debug)]
pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub rx: mpsc::Receiver<Request>,
    pub wal: WalWriter,
    pub revisions: watch::Sender<i64>,
    /// WAL bytes after which a snapshot is taken and older segments are dropped.
    pub snapshot_threshold: u64,
    pub snapshot_running: Arc<AtomicBool>,
    /// The snapshot thread, joined before the writer exits so that nothing writes into
    /// the directory after its lock is released.
    pub snapshot_thread: Option<std::thread::JoinHandle<()>>,
    /// Holds the data directory's lock for as long as the writer lives.
    pub _lock: File,
}

fn apply(state: &mut State, op: &Op, buf: &mut Vec<u8>) -> Result<Reply> {
    match op {
        Op::Create {
            key,
            value,
            expires_at,
        } => {
            if state.latest(key).is_some() {
                return Err(StorageError::AlreadyExists { key: key.clone() });
            }
            let kv = state.put(key, value.clone(), *expires_at);
            wal::encode_put(buf, kv.mod_revision, key, value, *expires_at);
            Ok(Reply::Kv(kv))
        }
        Op::Update {
            key,
            value,
            expected,
            expires_at,
        } => {
            match state.latest(key) {
                None => return Err(StorageError::NotFound { key: key.clone() }),
                Some(v) if v.mod_rev != *expected => {
                    return Err(StorageError::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        current: state.latest_kv(key).map(Box::new),
                    });
                }
                Some(_) => {}
            }
            let kv = state.put(key, value.clone(), *expires_at);
            wal::encode_put(buf, kv.mod_revision, key, value, *expires_at);
            Ok(Reply::Kv(kv))
        }
        Op::Delete { key, expected } => {
            match (state.latest(key), expected) {
                (None, _) => return Err(StorageError::NotFound { key: key.clone() }),
                (Some(v), Some(want)) if v.mod_rev != *want => {
                    return Err(StorageError::Conflict {
                        key: key.clone(),
                        expected: *want,
                        current: state.latest_kv(key).map(Box::new),
                    });
                }
                _ => {}
            }
            let (prev, rev) = state
                .delete(key)
                .ok_or_else(|| StorageError::NotFound { key: key.clone() })?;
            wal::encode_delete(buf, rev, key);
            Ok(Reply::Deleted(prev, rev))
        }
        Op::Expire { key, mod_rev } => {
            if state.latest(key).is_some_and(|v| v.mod_rev == *mod_rev) {
                if let Some((_, rev)) = state.delete(key) {
                    wal::encode_delete(buf, rev, key);
                }
            }
            Ok(Reply::Done)
        }
        Op::Compact { rev } => {
            if *rev > state.current {
                return Err(StorageError::FutureRevision {
                    requested: *rev,
                    current: state.current,
                });
            }
            if *rev <= state.compacted {
                return Err(StorageError::Compacted {
                    requested: *rev,
                    compacted: state.compacted,
                });
            }
            state.compact(*rev);
            wal::encode_compact(buf, *rev);
            Ok(Reply::Done)
        }
        Op::Shutdown => Ok(Reply::Done),
    }
}

fn copy_io_error(err: &StorageError) -> StorageError {
    match err {
        StorageError::Io { op, path, source } => StorageError::Io {
            op,
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        _ => StorageError::Closed,
    }
}

impl Writer {
    pub fn run(mut self) {
        self.commit_loop();
        if let Some(thread) = self.snapshot_thread.take() {
            let _ = thread.join();
        }
    }

    fn commit_loop(&mut self) {
        let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
        let mut replies: Vec<Result<Reply>> = Vec::with_capacity(MAX_BATCH);
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        loop {
            let Some(first) = self.rx.blocking_recv() else {
                return;
            };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(req) => batch.push(req),
                    Err(_) => break,
                }
            }
            buf.clear();
            let current = {
                let mut state = self.shared.state.write();
                replies.extend(batch.iter().map(|req| apply(&mut state, &req.op, &mut buf)));
                state.current
            };
            if !buf.is_empty() {
                if let Err(err) = self.wal.append_durable(&buf) {
                    // After a failed fsync the file's state is unknown: stop accepting
                    // writes. Nothing of this batch was published or acknowledged.
                    tracing::error!(error = %err, "embedded store: WAL write failed; store is now read-only");
                    for req in batch.drain(..) {
                        let _ = req.reply.send(Err(copy_io_error(&err)));
                    }
                    return;
                }
            }
            self.shared.committed.store(current, Ordering::Release);
            self.revisions.send_replace(current);
            let shutdown = batch.iter().any(|r| matches!(r.op, Op::Shutdown));
            for (req, reply) in batch.drain(..).zip(replies.drain(..)) {
                let _ = req.reply.send(reply);
            }
            if shutdown {
                return;
            }
            self.maybe_snapshot();
        }
    }

    /// Past the threshold, starts a new WAL segment and writes a snapshot of the state
    /// (all of it committed, between batches) in the background.
    fn maybe_snapshot(&mut self) {
        if self.wal.bytes_since_snapshot < self.snapshot_threshold
            || self.snapshot_running.load(Ordering::Acquire)
        {
            return;
        }
        let state = self.shared.state.read().clone();
        let next = state.current + 1;
        if let Err(err) = self.wal.rotate(next) {
            tracing::error!(error = %err, "embedded store: starting a new WAL segment failed");
            return;
        }
        self.snapshot_running.store(true, Ordering::Release);
        let running = self.snapshot_running.clone();
        let dir = self.shared.dir.clone();
        let spawned = std::thread::Builder::new().name("snapshot".into()).spawn(move || {
            let started = std::time::Instant::now();
            match snapshot::write(&dir, &state) {
                Ok(path) => {
                    tracing::info!(path = %path.display(), revision = state.current,
                        elapsed_ms = started.elapsed().as_millis() as u64, "embedded store: snapshot written");
                    crate::recovery::remove_obsolete(&dir, state.current, next);
                }
                Err(err) => tracing::error!(error = %err, "embedded store: snapshot failed"),
            }
            running.store(false, Ordering::Release);
        });
        match spawned {
            Ok(thread) => {
                if let Some(previous) = self.snapshot_thread.replace(thread) {
                    let _ = previous.join(); // finished already: snapshot_running was false
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "embedded store: cannot start the snapshot thread");
                self.snapshot_running.store(false, Ordering::Release);
            }
        }
    }
}
