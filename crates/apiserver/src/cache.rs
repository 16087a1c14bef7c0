//! The watch cache (upstream's `cacher`): one storage watch per resource, whatever the
//! number of watchers. Each resource's cache keeps a window of its most recent events;
//! a watch starting inside the window is replayed from it and then fed live from the
//! same stream as every other watcher of the resource (events decoded and decrypted
//! once, shared as `Arc`s); a watch starting before the window goes to storage, which
//! answers it exactly (or with `Compacted`). A watcher that falls more than the
//! broadcast depth behind is ended, as upstream ends slow watchers; clients re-watch.
//! Everything other than watch goes straight to storage.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ferrokube_storage::{
    Event, KeyValue, RangeRequest, RangeResponse, Result, Storage, WatchMessage, WatchRequest,
    WatchStream,
};
use parking_lot::Mutex;
use tokio::sync::broadcast;

/// Events kept per resource for watches that start in the past.
const WINDOW: usize = 1024;
/// Events a watcher may fall behind before it is ended.
const BROADCAST_DEPTH: usize = 4096;

/// One resource's events.
#[derive(Debug)]
struct Window {
    events: VecDeque<Arc<Event>>,
    /// Every event with a revision above this is in `events` or still to come.
    start: i64,
    /// The revision of the last event applied (or where the feed started).
    revision: i64,
    /// Whether the feed is running (false: it ended; the next watch restarts it).
    live: bool,
}

#[derive(Debug)]
struct ResourceCache {
    window: Mutex<Window>,
    /// Events as they come; `None` when the feed ended.
    tx: broadcast::Sender<Option<Arc<Event>>>,
}

/// The storage with watches served from per-resource caches.
#[derive(Debug)]
pub struct CachedStorage {
    inner: Arc<dyn Storage>,
    caches: Mutex<HashMap<String, Arc<ResourceCache>>>,
}

/// Wraps `inner` with the watch cache.
pub fn wrap(inner: Arc<dyn Storage>) -> Arc<dyn Storage> {
    Arc::new(CachedStorage {
        inner,
        caches: Mutex::new(HashMap::new()),
    })
}

/// The resource prefix a watch prefix belongs to: `/configmaps/` for
/// `/configmaps/default/`, `/services/specs/` for services, `/<group>/<resource>/` for
/// custom resources; None for what is not a resource's (watched directly).
fn resource_prefix(key: &str) -> Option<String> {
    let builtin = ferrokube_api::resources::BUILTIN
        .iter()
        .map(|r| r.storage_prefix())
        .filter(|p| key.starts_with(p.as_str()))
        .max_by_key(String::len);
    if builtin.is_some() {
        return builtin;
    }
    // `/<group with a dot>/<resource>/…`
    let mut parts = key.trim_start_matches('/').splitn(3, '/');
    let (group, resource) = (parts.next()?, parts.next()?);
    (group.contains('.') && !resource.is_empty() && parts.next().is_some())
        .then(|| format!("/{group}/{resource}/"))
}

impl CachedStorage {
    /// The cache of `prefix`, started (listing nothing: it starts at the current revision
    /// and fills its window as events come) if it is not running.
    async fn cache(&self, prefix: &str) -> Result<Arc<ResourceCache>> {
        let existing = self.caches.lock().get(prefix).cloned();
        if let Some(c) = existing.filter(|c| c.window.lock().live) {
            return Ok(c);
        }
        let revision = self.inner.current_revision().await?;
        let stream = self
            .inner
            .watch(WatchRequest::prefix(prefix).from_revision(revision + 1))
            .await?;
        let (tx, _) = broadcast::channel(BROADCAST_DEPTH);
        let cache = Arc::new(ResourceCache {
            window: Mutex::new(Window {
                events: VecDeque::new(),
                start: revision,
                revision,
                live: true,
            }),
            tx,
        });
        let mut caches = self.caches.lock();
        if let Some(c) = caches.get(prefix).filter(|c| c.window.lock().live) {
            return Ok(c.clone()); // another watch started it meanwhile
        }
        caches.insert(prefix.to_string(), cache.clone());
        drop(caches);
        tokio::spawn(feed(cache.clone(), stream));
        Ok(cache)
    }
}

/// Applies the storage's events to the cache until the stream ends.
async fn feed(cache: Arc<ResourceCache>, mut stream: WatchStream) {
    loop {
        match stream.recv().await {
            Some(Ok(WatchMessage::Event(e))) => {
                let e = Arc::new(e);
                let mut w = cache.window.lock();
                w.revision = e.kv.mod_revision;
                w.events.push_back(e.clone());
                if w.events.len() > WINDOW {
                    if let Some(old) = w.events.pop_front() {
                        w.start = old.kv.mod_revision;
                    }
                }
                // Sent under the lock: a watcher registering meanwhile sees each event
                // exactly once (in the replay or from the channel).
                let _ = cache.tx.send(Some(e));
            }
            Some(Ok(WatchMessage::Progress { revision })) => {
                let mut w = cache.window.lock();
                w.revision = w.revision.max(revision);
            }
            Some(Err(_)) | None => break,
        }
    }
    // Watchers see their stream end and re-watch; the next watch restarts the cache.
    let mut w = cache.window.lock();
    w.live = false;
    let _ = cache.tx.send(None);
}

fn matches(req: &WatchRequest, e: &Event) -> bool {
    e.kv.mod_revision >= req.start_revision && req.matches(&e.kv.key)
}

#[async_trait]
impl Storage for CachedStorage {
    fn backend(&self) -> &'static str {
        self.inner.backend()
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

    async fn delete(&self, key: &str, expected: Option<i64>) -> Result<(KeyValue, i64)> {
        self.inner.delete(key, expected).await
    }

    async fn watch(&self, req: WatchRequest) -> Result<WatchStream> {
        let Some(prefix) = resource_prefix(&req.key) else {
            return self.inner.watch(req).await;
        };
        let cache = self.cache(&prefix).await?;
        // Register and take the replay under the window's lock (see `feed`).
        let registered = {
            let w = cache.window.lock();
            if req.start_revision != 0 && req.start_revision <= w.start {
                None
            } else {
                let replay: Vec<Arc<Event>> = if req.start_revision == 0 {
                    Vec::new()
                } else {
                    w.events
                        .iter()
                        .filter(|e| matches(&req, e))
                        .cloned()
                        .collect()
                };
                Some((replay, cache.tx.subscribe(), w.revision))
            }
        };
        let Some((replay, mut rx, current)) = registered else {
            // Older than the window: storage answers (or says Compacted).
            return self.inner.watch(req).await;
        };
        let mut req = req;
        if req.start_revision == 0 {
            req.start_revision = current + 1;
        }
        let (tx, stream) = WatchStream::channel();
        tokio::spawn(async move {
            for e in replay {
                if tx
                    .send(Ok(WatchMessage::Event((*e).clone())))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let mut ticker = req.progress_notify.map(|every| {
                let mut t = tokio::time::interval(every);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            let mut last = current;
            loop {
                let msg = tokio::select! {
                    r = rx.recv() => match r {
                        Ok(Some(e)) => {
                            last = last.max(e.kv.mod_revision);
                            if !matches(&req, &e) {
                                continue;
                            }
                            WatchMessage::Event((*e).clone())
                        }
                        // Lagged (too slow) or the feed ended: this watch ends.
                        Ok(None) | Err(_) => return,
                    },
                    _ = async {
                        match ticker.as_mut() {
                            Some(t) => { t.tick().await; }
                            None => std::future::pending::<()>().await,
                        }
                    } => {
                        let revision = cache.window.lock().revision.max(last);
                        WatchMessage::Progress { revision }
                    }
                    _ = tx.closed() => return,
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
            }
        });
        Ok(stream)
    }

    async fn current_revision(&self) -> Result<i64> {
        self.inner.current_revision().await
    }

    async fn member_health(&self) -> Vec<std::result::Result<(), String>> {
        self.inner.member_health().await
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.inner.compact(revision).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_of_resources() {
        assert_eq!(
            resource_prefix("/configmaps/default/").as_deref(),
            Some("/configmaps/")
        );
        assert_eq!(
            resource_prefix("/services/specs/").as_deref(),
            Some("/services/specs/")
        );
        assert_eq!(
            resource_prefix("/services/endpoints/x/").as_deref(),
            Some("/services/endpoints/")
        );
        assert_eq!(
            resource_prefix("/example.com/widgets/ns/").as_deref(),
            Some("/example.com/widgets/")
        );
        assert_eq!(resource_prefix("/ranges/servicenodeports/"), None);
    }

    #[tokio::test]
    async fn watchers_share_one_feed_and_replay_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let inner = crate::test_support::embedded_store(dir.path()).await;
        let store = wrap(inner.clone() as Arc<dyn Storage>);
        // Start the cache, then write.
        let mut live = store
            .watch(WatchRequest::prefix("/configmaps/"))
            .await
            .unwrap();
        let first = store
            .create("/configmaps/a/one", Bytes::from_static(b"1"), None)
            .await
            .unwrap();
        store
            .create("/configmaps/b/two", Bytes::from_static(b"2"), None)
            .await
            .unwrap();
        store
            .update(
                "/configmaps/a/one",
                Bytes::from_static(b"3"),
                first.mod_revision,
                None,
            )
            .await
            .unwrap();
        for want in [
            "/configmaps/a/one",
            "/configmaps/b/two",
            "/configmaps/a/one",
        ] {
            let Some(Ok(WatchMessage::Event(e))) = live.recv().await else {
                panic!("no event")
            };
            assert_eq!(e.kv.key, want);
        }
        // A later watch from the first revision of namespace a replays from the window.
        let mut replay = store
            .watch(WatchRequest::prefix("/configmaps/a/").from_revision(first.mod_revision))
            .await
            .unwrap();
        for want in [b"1", b"3"] {
            let Some(Ok(WatchMessage::Event(e))) = replay.recv().await else {
                panic!("no replay")
            };
            assert_eq!(&e.kv.value[..], want);
            assert_eq!(e.kv.key, "/configmaps/a/one");
        }
        // Before the window: storage answers exactly.
        let mut old = store
            .watch(WatchRequest::prefix("/configmaps/").from_revision(1))
            .await
            .unwrap();
        let Some(Ok(WatchMessage::Event(e))) = old.recv().await else {
            panic!("no event from storage")
        };
        assert_eq!(e.kv.key, "/configmaps/a/one");
        // Progress notifications for idle watchers.
        let mut idle = store
            .watch(
                WatchRequest::prefix("/configmaps/")
                    .with_progress_notify(Duration::from_millis(20)),
            )
            .await
            .unwrap();
        let Some(Ok(WatchMessage::Progress { revision })) = idle.recv().await else {
            panic!("no progress")
        };
        assert!(revision >= first.mod_revision);
        inner.shutdown().await;
    }
}
