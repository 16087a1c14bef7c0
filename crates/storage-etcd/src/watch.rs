//! Watches, as upstream's `storage/etcd3/watcher.go` over clientv3's watcher: one task
//! per watch drives an etcd watch stream with `prev_kv`, turns etcd events into
//! Created/Modified/Deleted, answers progress requests with bookmarks, and when the
//! stream breaks (the member died, lost its leader, or the connection dropped) opens a
//! new one from the revision after the last one delivered, so nothing is lost or
//! repeated. A compacted start revision ends the watch with `Compacted`, as upstream's
//! "too old resource version" (410).

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions, WatchResponse};
use ferrokube_storage::{
    validate_key, Event, EventKind, KeyValue, Result, StorageError, WatchMessage, WatchRequest,
    WatchStream,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::errors::describe;
use crate::kv::Op;
use crate::Inner;

type Tx = mpsc::Sender<Result<WatchMessage>>;

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Opens the first etcd watch (so an unreachable cluster is reported at once) and
/// spawns the task that feeds the returned stream.
pub(crate) async fn start(inner: Arc<Inner>, req: WatchRequest) -> Result<WatchStream> {
    validate_key(&req.key)?;
    let range_end = if req.prefix {
        Some(inner.keys.range_end(&req.key)?)
    } else {
        None
    };
    // "From the next write" is made explicit, so a watch re-opened later starts from
    // the same point and a write racing with the watch creation is not missed.
    let start_revision = if req.start_revision > 0 {
        req.start_revision
    } else {
        inner.current_revision().await? + 1
    };
    let watcher = Watcher {
        key: inner.keys.stored(&req.key),
        range_end,
        next_revision: start_revision,
        progress_every: req.progress_notify,
        inner,
    };
    let stream = watcher
        .inner
        .retrying(Op::Read, || watcher.open())
        .await
        .map_err(|e| watcher.inner.unavailable(e))?;
    let (tx, rx) = WatchStream::channel();
    tokio::spawn(async move { watcher.run(stream, tx).await });
    Ok(rx)
}

struct Watcher {
    inner: Arc<Inner>,
    key: Vec<u8>,
    range_end: Option<Vec<u8>>,
    /// Every event below this revision has been delivered: where a new stream starts.
    next_revision: i64,
    progress_every: Option<Duration>,
}

/// Why a stream stopped delivering.
enum Ended {
    /// The consumer dropped the stream, or the watch ended with an error it was sent.
    Done,
    /// The etcd stream broke; open another.
    Broken(String),
}

impl Watcher {
    fn open(
        &self,
    ) -> impl std::future::Future<Output = Result<etcd_client::WatchStream, etcd_client::Error>>
    {
        let mut client = self.inner.watch.clone();
        let mut opts = WatchOptions::new()
            .with_start_revision(self.next_revision)
            .with_prev_key();
        if let Some(end) = &self.range_end {
            opts = opts.with_range(end.clone());
        }
        let key = self.key.clone();
        async move { client.watch(key, Some(opts)).await }
    }

    async fn run(mut self, mut stream: etcd_client::WatchStream, tx: Tx) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let opened = Instant::now();
            let cause = match self.follow(&mut stream, &tx).await {
                Ended::Done => return,
                Ended::Broken(cause) => cause,
            };
            // A stream that lived a while is a fresh failure: retry quickly.
            if opened.elapsed() > BACKOFF_MAX * 2 {
                backoff = BACKOFF_MIN;
            }
            tracing::info!(%cause, from_revision = self.next_revision, "etcd watch broke; re-opening");
            stream = loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                match self.open().await {
                    Ok(stream) => break stream,
                    Err(e) => {
                        tracing::debug!(cause = %describe(&e), "re-opening etcd watch failed");
                    }
                }
            };
        }
    }

    /// Delivers what one etcd stream sends until it breaks or the watch is over.
    async fn follow(&mut self, stream: &mut etcd_client::WatchStream, tx: &Tx) -> Ended {
        let mut ticker = self.progress_every.map(|every| {
            let mut t = tokio::time::interval_at(Instant::now() + every, every);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        });
        loop {
            tokio::select! {
                _ = tx.closed() => return Ended::Done,
                _ = tick(&mut ticker) => {
                    if let Err(e) = stream.request_progress().await {
                        return Ended::Broken(describe(&e));
                    }
                }
                msg = stream.message() => match msg {
                    Ok(Some(resp)) => {
                        if let Some(ended) = self.deliver(resp, tx).await {
                            return ended;
                        }
                    }
                    Ok(None) => return Ended::Broken("stream closed by the server".into()),
                    Err(e) => return Ended::Broken(describe(&e)),
                },
            }
        }
    }

    /// Sends one response's events (or its progress) on; `Some` when the stream is over.
    async fn deliver(&mut self, resp: WatchResponse, tx: &Tx) -> Option<Ended> {
        if resp.compact_revision() > 0 {
            let err = StorageError::Compacted {
                requested: self.next_revision,
                compacted: resp.compact_revision(),
            };
            let _ = tx.send(Err(err)).await;
            return Some(Ended::Done);
        }
        if resp.canceled() {
            return Some(Ended::Broken(format!(
                "watch canceled: {}",
                resp.cancel_reason()
            )));
        }
        if resp.created() {
            return None;
        }
        if resp.events().is_empty() {
            // A progress response: every event up to the header revision was sent.
            let revision = resp.header().map_or(0, |h| h.revision());
            if revision >= self.next_revision {
                self.next_revision = revision + 1;
            }
            if self.progress_every.is_some() && revision > 0 {
                let progress = WatchMessage::Progress {
                    revision: self.next_revision - 1,
                };
                if tx.send(Ok(progress)).await.is_err() {
                    return Some(Ended::Done);
                }
            }
            return None;
        }
        // One response holds every event of a revision (a transaction or a range delete
        // can write many keys at one revision), so "already delivered" is judged against
        // where the response started.
        let floor = self.next_revision;
        let mut last = None;
        for event in resp.events() {
            let message = match self.event(event, floor) {
                Ok(Some(event)) => event,
                Ok(None) => continue,
                Err(err) => {
                    let _ = tx.send(Err(err)).await;
                    return Some(Ended::Done);
                }
            };
            last = Some(message.kv.mod_revision);
            if tx.send(Ok(WatchMessage::Event(message))).await.is_err() {
                return Some(Ended::Done);
            }
        }
        if let Some(revision) = last {
            self.next_revision = self.next_revision.max(revision + 1);
        }
        None
    }

    /// One etcd event as a storage event; None for an event below `floor` (delivered
    /// on a previous stream).
    fn event(&self, event: &etcd_client::Event, floor: i64) -> Result<Option<Event>> {
        let Some(kv) = event.kv() else {
            return Err(crate::keys::protocol("watch event without a key".into()));
        };
        if kv.mod_revision() < floor {
            return Ok(None);
        }
        let keys = &self.inner.keys;
        let prev_kv = event.prev_kv().map(|p| keys.kv(p)).transpose()?;
        Ok(Some(match event.event_type() {
            EventType::Delete => Event {
                kind: EventKind::Deleted,
                kv: KeyValue {
                    key: keys.logical(kv.key())?,
                    value: bytes::Bytes::new(),
                    create_revision: 0,
                    mod_revision: kv.mod_revision(),
                    version: 0,
                },
                prev_kv,
            },
            EventType::Put if kv.create_revision() == kv.mod_revision() => Event {
                kind: EventKind::Created,
                kv: keys.kv(kv)?,
                prev_kv: None,
            },
            EventType::Put => Event {
                kind: EventKind::Modified,
                kv: keys.kv(kv)?,
                prev_kv,
            },
        }))
    }
}

/// The next tick of an optional interval; never completes without one.
async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
