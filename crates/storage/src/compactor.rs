//! Periodic compaction, as upstream's `storage/etcd3/compact.go`: every interval,
//! compact to the revision observed at the previous tick, so at least one interval of
//! history is always kept for watchers and paginated lists to resume from.

use std::sync::Weak;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Storage, StorageError};

/// A running compactor; dropping it stops the task.
#[derive(Debug)]
pub struct Compactor {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Compactor {
    /// Stops the compactor and waits for its task to end.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Starts compacting `store` every `interval` until the store is dropped or the
/// returned handle is.
pub fn spawn_compactor(store: Weak<dyn Storage>, interval: Duration) -> Compactor {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut previous: Option<i64> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stopped.changed() => return,
            }
            // Hold the store only while working, so the compactor never keeps it alive.
            let Some(store) = store.upgrade() else { return };
            let current = match store.current_revision().await {
                Ok(rev) => rev,
                Err(err) => {
                    tracing::warn!(backend = store.backend(), error = %err, "compactor: reading revision failed");
                    continue;
                }
            };
            if let Some(target) = previous.filter(|p| *p > 1) {
                match store.compact(target).await {
                    Ok(()) => {
                        tracing::debug!(backend = store.backend(), revision = target, "compacted")
                    }
                    // Someone (another API server) compacted past us already: fine.
                    Err(StorageError::Compacted { .. }) => {}
                    Err(err) => {
                        tracing::warn!(backend = store.backend(), error = %err, revision = target, "compaction failed")
                    }
                }
            }
            previous = Some(current);
        }
    });
    Compactor {
        stop,
        task: Some(task),
    }
}
