//! The scrape loop (upstream's `pkg/scraper/scraper.go` and `pkg/server/server.go`
//! `tick`): every `--metric-resolution`, list nodes and pods, scrape every node's
//! kubelet concurrently (each bounded by `--kubelet-request-timeout`, the cycle by the
//! resolution), keep only pods the reporting node runs, and store the cycle.
//!
//! The first cycle runs at start and the second after `min(5s, resolution)`, so
//! usage (which needs two points) is served a few seconds after start rather than
//! one full resolution later.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrokube_api::selectors::LabelSelector;
use ferrokube_component_base::metrics::DEFAULT_BUCKETS;
use ferrokube_component_base::{CounterVec, GaugeVec, Histogram, HistogramVec, Registry};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::cluster::{Cluster, NodeInfo, PodInfo};
use crate::decode::NodeBatch;
use crate::kubelet::{now_ns, KubeletClient};
use crate::storage::{Batch, PodRef, Storage};

/// The longest first interval.
pub const FIRST_INTERVAL: Duration = Duration::from_secs(5);

/// The nodes and pods of the last cycle, for the API (labels, existence, NotFound).
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Every node by name.
    pub nodes: BTreeMap<String, NodeInfo>,
    /// Every pod.
    pub pods: BTreeMap<PodRef, PodInfo>,
}

/// The latest [`Snapshot`], swapped whole each cycle.
#[derive(Debug, Default)]
pub struct ClusterState(RwLock<Arc<Snapshot>>);

impl ClusterState {
    /// The current snapshot.
    pub fn get(&self) -> Arc<Snapshot> {
        self.0.read().clone()
    }

    /// Replaces the snapshot.
    pub fn set(&self, snapshot: Snapshot) {
        *self.0.write() = Arc::new(snapshot);
    }
}

/// Upstream's scraper and manager metrics.
#[derive(Debug, Clone)]
pub struct ScraperMetrics {
    request_duration: HistogramVec,
    request_total: CounterVec,
    last_request_time: GaugeVec,
    tick_duration: Histogram,
    storage_points: GaugeVec,
}

/// upstream's `BucketsForScrapeDuration` (the default buckets, widened to the
/// resolution).
fn tick_buckets(resolution: Duration) -> Vec<f64> {
    let mut buckets = DEFAULT_BUCKETS.to_vec();
    let max = buckets.last().copied().unwrap_or(10.0);
    let timeout = resolution.as_secs_f64();
    if timeout > max {
        buckets.extend([
            max + (timeout - max) / 2.0,
            timeout,
            timeout * 1.5,
            timeout * 2.0,
        ]);
    } else if timeout < max && !buckets.iter().any(|b| (b - timeout).abs() < buckets[0]) {
        buckets.push(timeout);
        buckets.sort_by(f64::total_cmp);
    }
    buckets
}

impl ScraperMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &Registry, resolution: Duration) -> ScraperMetrics {
        ScraperMetrics {
            request_duration: registry.histogram_vec(
                "metrics_server_kubelet_request_duration_seconds",
                "Duration of requests to Kubelet API in seconds",
                &["node"],
                DEFAULT_BUCKETS,
            ),
            request_total: registry.counter_vec(
                "metrics_server_kubelet_request_total",
                "Number of requests sent to Kubelet API",
                &["success"],
            ),
            last_request_time: registry.gauge_vec(
                "metrics_server_kubelet_last_request_time_seconds",
                "Time of last request performed to Kubelet API since unix epoch in seconds",
                &["node"],
            ),
            tick_duration: registry.histogram(
                "metrics_server_manager_tick_duration_seconds",
                "The total time spent collecting and storing metrics in seconds.",
                &tick_buckets(resolution),
            ),
            storage_points: registry.gauge_vec(
                "metrics_server_storage_points",
                "Number of metrics points stored.",
                &["type"],
            ),
        }
    }
}

/// Liveness and readiness of the scrape loop.
#[derive(Debug)]
pub struct TickStatus {
    inner: Mutex<(Instant, bool, u64)>,
    max_interval: Duration,
}

impl TickStatus {
    fn new(resolution: Duration) -> TickStatus {
        TickStatus {
            inner: Mutex::new((Instant::now(), true, 0)),
            max_interval: resolution,
        }
    }

    /// Cycles completed.
    pub fn cycles(&self) -> u64 {
        self.inner.lock().2
    }

    /// Upstream's `metric-collection-timely`: a cycle started within 1.1 resolutions.
    pub fn live(&self) -> Result<(), String> {
        let since = self.inner.lock().0.elapsed();
        let max = self.max_interval.mul_f64(1.1);
        if since > max {
            return Err(format!(
                "time since last tick ({since:?}) was greater than expected metrics resolution ({max:?})"
            ));
        }
        Ok(())
    }

    /// Upstream's `metric-storage-ready` (the storage half is the caller's).
    pub fn last_ok(&self) -> Result<(), String> {
        let (_, ok, cycles) = *self.inner.lock();
        if cycles == 0 {
            return Err("no scrape cycle has completed yet".into());
        }
        if !ok {
            return Err("last tick wasn't healthy".into());
        }
        Ok(())
    }
}

/// Scrapes the cluster into the storage.
#[derive(Debug, Clone)]
pub struct Scraper {
    cluster: Arc<dyn Cluster>,
    kubelet: KubeletClient,
    storage: Arc<Storage>,
    state: Arc<ClusterState>,
    node_selector: LabelSelector,
    metrics: ScraperMetrics,
    status: Arc<TickStatus>,
    resolution: Duration,
}

impl Scraper {
    /// A scraper of `cluster`'s nodes (those matching `node_selector`) through
    /// `kubelet`, every `resolution`.
    pub fn new(
        cluster: Arc<dyn Cluster>,
        kubelet: KubeletClient,
        storage: Arc<Storage>,
        state: Arc<ClusterState>,
        node_selector: LabelSelector,
        registry: &Registry,
        resolution: Duration,
    ) -> Scraper {
        Scraper {
            cluster,
            kubelet,
            storage,
            state,
            node_selector,
            metrics: ScraperMetrics::register(registry, resolution),
            status: Arc::new(TickStatus::new(resolution)),
            resolution,
        }
    }

    /// The loop's liveness/readiness.
    pub fn status(&self) -> Arc<TickStatus> {
        self.status.clone()
    }

    /// One cycle. Returns whether it was healthy (some node answered, or there are
    /// no nodes).
    pub async fn tick(&self) -> bool {
        let started = Instant::now();
        self.status.inner.lock().0 = started;
        let previous = self.state.get();
        let (nodes, pods) = tokio::join!(self.cluster.nodes(), self.cluster.pods());
        let nodes: BTreeMap<String, NodeInfo> = match nodes {
            Ok(list) => list.into_iter().map(|n| (n.name.clone(), n)).collect(),
            Err(e) => {
                tracing::error!(error = %e, "failed to list nodes: using the last list");
                previous.nodes.clone()
            }
        };
        let pods: BTreeMap<PodRef, PodInfo> = match pods {
            Ok(list) => list
                .into_iter()
                .map(|p| (PodRef::new(&p.namespace, &p.name), p))
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "failed to list pods: using the last list");
                previous.pods.clone()
            }
        };
        let targets: Vec<NodeInfo> = nodes
            .values()
            .filter(|n| self.node_selector.matches(&n.labels))
            .cloned()
            .collect();
        tracing::debug!(nodes = targets.len(), "scraping metrics from nodes");

        let mut tasks = tokio::task::JoinSet::new();
        for node in targets.iter().cloned() {
            let client = self.kubelet.clone();
            let metrics = self.metrics.clone();
            tasks.spawn(async move {
                let begin = Instant::now();
                let result = client.scrape(&node).await;
                metrics
                    .request_duration
                    .with(&[&node.name])
                    .observe(begin.elapsed().as_secs_f64());
                metrics
                    .last_request_time
                    .with(&[&node.name])
                    .set((now_ns() / 1_000_000_000) as f64);
                metrics
                    .request_total
                    .with(&[if result.is_ok() { "true" } else { "false" }])
                    .inc();
                match &result {
                    Err(e) if !node.ready => {
                        tracing::debug!(node = %node.name, error = %e, "failed to scrape node, node is not ready");
                    }
                    Err(e) if e.is_timeout() => {
                        tracing::error!(node = %node.name, error = %e, "failed to scrape node, timeout to access kubelet");
                    }
                    Err(e) => tracing::error!(node = %node.name, error = %e, "failed to scrape node"),
                    Ok(_) => {}
                }
                (node.name, result.ok())
            });
        }
        let mut batch = Batch::default();
        let mut answered = 0usize;
        let deadline = tokio::time::Instant::from_std(started) + self.resolution;
        loop {
            let next = tokio::time::timeout_at(deadline, tasks.join_next()).await;
            let (name, result) = match next {
                Ok(Some(Ok(r))) => r,
                Ok(Some(Err(e))) => {
                    tracing::error!(error = %e, "scrape task failed");
                    continue;
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::error!(
                        pending = tasks.len(),
                        "scrape cycle ran out of time: unanswered nodes skipped"
                    );
                    tasks.abort_all();
                    break;
                }
            };
            let Some(NodeBatch {
                node,
                pods: node_pods,
            }) = result
            else {
                continue;
            };
            answered += 1;
            if let Some(point) = node {
                batch.nodes.insert(name.clone(), point);
            }
            for (pod, containers) in node_pods {
                match pods.get(&pod) {
                    None => {
                        tracing::debug!(pod = %pod, node = %name, "dropping pod metric: pod not found in cache");
                    }
                    Some(p) if p.node_name != name => {
                        tracing::error!(pod = %pod, source_node = %name, expected_node = %p.node_name, "dropping pod metric from unauthorized node");
                    }
                    Some(_) => {
                        batch.pods.insert(pod, containers);
                    }
                }
            }
        }
        let ok = targets.is_empty() || answered > 0;
        tracing::debug!(
            duration = ?started.elapsed(),
            nodes = batch.nodes.len(),
            pods = batch.pods.len(),
            "scrape finished"
        );
        self.state.set(Snapshot { nodes, pods });
        self.storage.store(batch);
        let (node_points, container_points) = self.storage.points();
        self.metrics
            .storage_points
            .with(&["node"])
            .set(node_points as f64);
        self.metrics
            .storage_points
            .with(&["container"])
            .set(container_points as f64);
        self.metrics
            .tick_duration
            .observe(started.elapsed().as_secs_f64());
        let mut status = self.status.inner.lock();
        status.1 = ok;
        status.2 += 1;
        ok
    }

    /// Cycles until `shutdown` turns true (or its sender is dropped): one now, the
    /// next after `min(5s, resolution)`, then every resolution.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut interval = self.resolution.min(FIRST_INTERVAL);
        loop {
            let started = tokio::time::Instant::now();
            tokio::select! {
                _ = self.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            tokio::select! {
                () = tokio::time::sleep_until(started + interval) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            interval = self.resolution;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_buckets_include_the_resolution() {
        let b = tick_buckets(Duration::from_secs(15));
        assert_eq!(&b[b.len() - 4..], &[12.5, 15.0, 22.5, 30.0]);
        let b = tick_buckets(Duration::from_secs(3));
        assert!(b.contains(&3.0));
        assert!(b.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(tick_buckets(Duration::from_secs(10)), DEFAULT_BUCKETS);
    }
}
