//! The work queue every controller drains (client-go `util/workqueue`): a key is
//! queued at most once, never handed to two workers at once (a key added while it is
//! processed is re-queued when the worker calls `done`), delayed adds, and per-key
//! exponential backoff for failures (`DefaultControllerRateLimiter`'s per-item part:
//! 5 ms doubling to 1000 s).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ferrokube_component_base::metrics::{CounterVec, GaugeVec, HistogramVec, Registry};
use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

/// client-go's workqueue metrics (`workqueue_*{name}`), once per process.
#[derive(Debug)]
struct Metrics {
    depth: GaugeVec,
    adds: CounterVec,
    retries: CounterVec,
    work_duration: HistogramVec,
}

static METRICS: std::sync::OnceLock<Metrics> = std::sync::OnceLock::new();

/// Registers the work queues' metrics in `registry` (the component's `/metrics`).
pub fn install_metrics(registry: &Registry) {
    let buckets: Vec<f64> = (0..10).map(|i| 1e-8 * 10f64.powi(i)).collect();
    let _ = METRICS.set(Metrics {
        depth: registry.gauge_vec("workqueue_depth", "Current depth of workqueue", &["name"]),
        adds: registry.counter_vec(
            "workqueue_adds_total",
            "Total number of adds handled by workqueue",
            &["name"],
        ),
        retries: registry.counter_vec(
            "workqueue_retries_total",
            "Total number of retries handled by workqueue",
            &["name"],
        ),
        work_duration: registry.histogram_vec(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
            &["name"],
            &buckets,
        ),
    });
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<String>,
    dirty: HashSet<String>,
    processing: HashSet<String>,
    failures: HashMap<String, u32>,
    shutting_down: bool,
}

/// A rate-limited, de-duplicating queue of object keys.
#[derive(Debug)]
pub struct WorkQueue {
    name: &'static str,
    state: Mutex<State>,
    ready: Notify,
    base_delay: Duration,
    max_delay: Duration,
}

impl WorkQueue {
    /// A queue named after its controller (for logs).
    pub fn new(name: &'static str) -> Arc<WorkQueue> {
        Arc::new(WorkQueue {
            name,
            state: Mutex::default(),
            ready: Notify::new(),
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_secs(1000),
        })
    }

    /// The controller's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Queues `key` unless it is already waiting.
    pub fn add(&self, key: impl Into<String>) {
        let key = key.into();
        let mut s = self.state.lock();
        if s.shutting_down || !s.dirty.insert(key.clone()) {
            return;
        }
        if let Some(m) = METRICS.get() {
            m.adds.with(&[self.name]).inc();
        }
        if !s.processing.contains(&key) {
            s.queue.push_back(key);
            self.record_depth(s.queue.len());
            drop(s);
            self.ready.notify_one();
        }
    }

    fn record_depth(&self, depth: usize) {
        if let Some(m) = METRICS.get() {
            m.depth.with(&[self.name]).set(depth as f64);
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(self: &Arc<Self>, key: impl Into<String>, delay: Duration) {
        let key = key.into();
        if delay.is_zero() {
            return self.add(key);
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(key);
        });
    }

    /// Queues `key` after its backoff (which doubles with each call until `forget`).
    pub fn add_rate_limited(self: &Arc<Self>, key: impl Into<String>) {
        let key = key.into();
        let n = {
            let mut s = self.state.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n += 1;
            *n - 1
        };
        if let Some(m) = METRICS.get() {
            m.retries.with(&[self.name]).inc();
        }
        let delay = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(n.min(30)))
            .min(self.max_delay);
        self.add_after(key, delay);
    }

    /// How many times `key` has failed since the last `forget`.
    pub fn num_requeues(&self, key: &str) -> u32 {
        self.state.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Resets `key`'s backoff.
    pub fn forget(&self, key: &str) {
        self.state.lock().failures.remove(key);
    }

    /// The next key, waiting for one; `None` once shut down.
    pub async fn get(&self) -> Option<String> {
        loop {
            let notified = self.ready.notified();
            {
                let mut s = self.state.lock();
                if let Some(key) = s.queue.pop_front() {
                    self.record_depth(s.queue.len());
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    if !s.queue.is_empty() {
                        self.ready.notify_one();
                    }
                    return Some(key);
                }
                if s.shutting_down {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// The worker is finished with `key`; if it was added meanwhile it is queued again.
    pub fn done(&self, key: &str) {
        let mut s = self.state.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.queue.push_back(key.to_string());
            drop(s);
            self.ready.notify_one();
        }
    }

    /// Keys waiting (not counting those being processed).
    pub fn len(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops handing out keys; waiting workers get `None`.
    pub fn shut_down(&self) {
        self.state.lock().shutting_down = true;
        self.ready.notify_waiters();
        self.ready.notify_one();
    }
}

/// Runs `workers` tasks draining `queue` with `sync` until `stop`: a failed key is
/// retried with backoff, a successful one has its backoff reset (client-go's
/// `processNextWorkItem` + `handleErr`).
pub async fn run_workers<F, Fut, E>(
    queue: Arc<WorkQueue>,
    workers: usize,
    mut stop: watch::Receiver<bool>,
    sync: F,
) where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let sync = Arc::new(sync);
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let sync = sync.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(key) = queue.get().await {
                let started = std::time::Instant::now();
                let result = sync(key.clone()).await;
                if let Some(m) = METRICS.get() {
                    m.work_duration
                        .with(&[queue.name()])
                        .observe(started.elapsed().as_secs_f64());
                }
                match result {
                    Ok(()) => queue.forget(&key),
                    Err(e) => {
                        tracing::warn!(controller = queue.name(), %key, error = %e, "sync failed; will retry");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        }));
    }
    let _ = stop.wait_for(|s| *s).await;
    queue.shut_down();
    for t in tasks {
        let _ = t.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedups_and_requeues_keys_added_while_processing() {
        let q = WorkQueue::new("test");
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let a = q.get().await.unwrap();
        assert_eq!(a, "a");
        q.add("a"); // while processing: not handed out again yet
        assert_eq!(q.get().await.unwrap(), "b");
        assert!(q.is_empty());
        q.done("a");
        assert_eq!(q.get().await.unwrap(), "a");
        q.done("a");
        q.done("b");
        q.shut_down();
        assert_eq!(q.get().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_until_forget() {
        let q = WorkQueue::new("test");
        q.add_rate_limited("k");
        q.add_rate_limited("k");
        assert_eq!(q.num_requeues("k"), 2);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(q.get().await.unwrap(), "k");
        q.forget("k");
        assert_eq!(q.num_requeues("k"), 0);
    }
}
