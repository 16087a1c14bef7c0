//! Watches: one task per watcher reads the revision log from its next revision up to the
//! committed revision and sends the matching events, waking on every commit. Because it
//! reads history rather than being pushed to, a slow consumer only delays itself (its
//! channel is full, its task waits) and catches up afterwards, like etcd's "unsynced"
//! watchers; nothing is dropped and the commit path never waits for watchers.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ferrokube_storage::{Result, StorageError, WatchMessage, WatchRequest};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::writer::Shared;

/// Events taken per read-lock acquisition.
const BATCH: usize = 512;

pub(crate) async fn run(
    shared: Arc<Shared>,
    req: WatchRequest,
    mut next: i64,
    tx: mpsc::Sender<Result<WatchMessage>>,
) {
    let mut revisions = shared.revisions.clone();
    let mut last_sent = Instant::now();
    loop {
        let committed = *revisions.borrow_and_update();
        while next <= committed {
            let batch = {
                let state = shared.state.read();
                if next < state.compacted {
                    Err(StorageError::Compacted {
                        requested: next,
                        compacted: state.compacted,
                    })
                } else {
                    Ok(state.events(&req, next, committed, BATCH))
                }
            };
            let (events, after) = match batch {
                Ok(b) => b,
                Err(err) => {
                    let _ = tx.send(Err(err)).await;
                    return;
                }
            };
            for event in events {
                if tx.send(Ok(WatchMessage::Event(event))).await.is_err() {
                    return;
                }
                last_sent = Instant::now();
            }
            next = after;
        }
        let progress_at = req.progress_notify.map(|every| last_sent + every);
        tokio::select! {
            changed = revisions.changed() => {
                if changed.is_err() {
                    return; // the store has shut down
                }
            }
            _ = tx.closed() => return,
            _ = sleep_until(progress_at) => {
                let revision = shared.committed.load(Ordering::Acquire).min(next - 1);
                if tx.send(Ok(WatchMessage::Progress { revision })).await.is_err() {
                    return;
                }
                last_sent = Instant::now();
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
