//! The last two metric points of every node and container, and the usage computed
//! from them: upstream's `pkg/storage` (`node.go`, `pod.go`, `types.go`).
//!
//! Each scrape cycle replaces the stored points: whatever a cycle did not report
//! (a node that is gone or failed to answer, a pod that ended) is forgotten. A point
//! moves to "previous" when a newer one (later timestamp) arrives; a point that is not
//! newer keeps the previous one if that is still older. Usage needs both:
//!
//! - CPU: Δcumulative CPU / Δtime, in nanocores; a counter that went down (a restart)
//!   gives no usage until the next point;
//! - memory: the latest working set;
//! - window: the time between the two points; timestamp: the latest point's.
//!
//! A container that restarted (started after the stored point) starts over. A
//! container started between 10 s and one resolution before its first point gets a
//! synthetic previous point (zero CPU at its start time), so young pods get metrics
//! one cycle earlier, as upstream does.

use std::collections::BTreeMap;
use std::time::Duration;

use parking_lot::RwLock;

/// upstream's `freshContainerMinMetricsResolution`.
const FRESH_CONTAINER_MIN_AGE_NS: i64 = 10_000_000_000;

/// A namespaced pod name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl PodRef {
    /// `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> PodRef {
        PodRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One measurement of a node or container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsPoint {
    /// When the container started (Unix ns; 0 unknown). Cumulative CPU was 0 then.
    pub start_time_ns: i64,
    /// When the point was measured (Unix ns).
    pub timestamp_ns: i64,
    /// Cumulative CPU time (ns, i.e. nanocore-seconds).
    pub cpu_ns: u64,
    /// Working set (bytes).
    pub memory_bytes: u64,
}

/// What one scrape cycle gathered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Node name → point.
    pub nodes: BTreeMap<String, MetricsPoint>,
    /// Pod → container name → point.
    pub pods: BTreeMap<PodRef, BTreeMap<String, MetricsPoint>>,
}

/// Usage computed from two points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The latest point's time (Unix ns).
    pub timestamp_ns: i64,
    /// Time between the two points (ns).
    pub window_ns: i64,
    /// CPU rate (nanocores).
    pub cpu_nanocores: u64,
    /// Working set (bytes).
    pub memory_bytes: u64,
}

/// A pod's usage: its containers' (sorted by name), with the earliest container's
/// timestamp and window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUsage {
    /// Earliest container timestamp (Unix ns).
    pub timestamp_ns: i64,
    /// That container's window (ns).
    pub window_ns: i64,
    /// Container name → usage.
    pub containers: Vec<(String, Usage)>,
}

/// Why no usage could be computed from two points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// The start time went backwards.
    #[error("unexpected decrease in startTime of node/container")]
    StartTime,
    /// The cumulative CPU went backwards (a counter reset).
    #[error("unexpected decrease in cumulative CPU usage value")]
    CpuDecrease,
    /// The points are not in time order.
    #[error("metric points are not increasing in time")]
    Window,
}

/// Usage between `prev` and `last` (upstream's `resourceUsage`).
pub fn usage(last: &MetricsPoint, prev: &MetricsPoint) -> Result<Usage, UsageError> {
    if last.start_time_ns < prev.start_time_ns {
        return Err(UsageError::StartTime);
    }
    if last.cpu_ns < prev.cpu_ns {
        return Err(UsageError::CpuDecrease);
    }
    let window = last.timestamp_ns.saturating_sub(prev.timestamp_ns);
    if window <= 0 {
        return Err(UsageError::Window);
    }
    let delta = u128::from(last.cpu_ns - prev.cpu_ns);
    let rate = delta * 1_000_000_000 / window.unsigned_abs() as u128;
    Ok(Usage {
        timestamp_ns: last.timestamp_ns,
        window_ns: window,
        cpu_nanocores: u64::try_from(rate).unwrap_or(u64::MAX),
        memory_bytes: last.memory_bytes,
    })
}

#[derive(Debug, Default)]
struct Inner {
    nodes_last: BTreeMap<String, MetricsPoint>,
    nodes_prev: BTreeMap<String, MetricsPoint>,
    pods_last: BTreeMap<PodRef, BTreeMap<String, MetricsPoint>>,
    pods_prev: BTreeMap<PodRef, BTreeMap<String, MetricsPoint>>,
}

/// The metric points, shared by the scraper (writes once a cycle) and the API (reads).
#[derive(Debug)]
pub struct Storage {
    resolution_ns: i64,
    inner: RwLock<Inner>,
}

impl Storage {
    /// Storage for a scraper running every `resolution`.
    pub fn new(resolution: Duration) -> Storage {
        Storage {
            resolution_ns: i64::try_from(resolution.as_nanos()).unwrap_or(i64::MAX),
            inner: RwLock::new(Inner::default()),
        }
    }

    /// Stores one cycle's points (replacing the last cycle's).
    pub fn store(&self, batch: Batch) {
        let mut inner = self.inner.write();
        let mut nodes_prev = BTreeMap::new();
        for (name, new) in &batch.nodes {
            if let Some(last) = inner.nodes_last.get(name) {
                if new.timestamp_ns > last.timestamp_ns {
                    nodes_prev.insert(name.clone(), *last);
                } else if let Some(prev) = inner.nodes_prev.get(name) {
                    if prev.timestamp_ns < new.timestamp_ns {
                        nodes_prev.insert(name.clone(), *prev);
                    } else {
                        tracing::debug!(node = %name, "new node point is older than the stored previous one: previous dropped");
                    }
                }
            }
        }
        let mut pods_prev = BTreeMap::new();
        for (pod, containers) in &batch.pods {
            let mut prev_containers = BTreeMap::new();
            for (name, new) in containers {
                let age = new.timestamp_ns.saturating_sub(new.start_time_ns);
                if new.start_time_ns > 0
                    && new.start_time_ns < new.timestamp_ns
                    && age < self.resolution_ns
                    && age >= FRESH_CONTAINER_MIN_AGE_NS
                {
                    // Fresh container: cumulative CPU was zero at its start.
                    let synthetic = MetricsPoint {
                        timestamp_ns: new.start_time_ns,
                        cpu_ns: 0,
                        ..*new
                    };
                    prev_containers.insert(name.clone(), synthetic);
                    continue;
                }
                let Some(last) = inner.pods_last.get(pod).and_then(|c| c.get(name)) else {
                    continue;
                };
                if new.start_time_ns >= last.timestamp_ns && new.start_time_ns > 0 {
                    // Restarted since the stored point: start over.
                    continue;
                }
                if new.timestamp_ns > last.timestamp_ns {
                    prev_containers.insert(name.clone(), *last);
                } else if let Some(prev) = inner.pods_prev.get(pod).and_then(|c| c.get(name)) {
                    if prev.timestamp_ns < new.timestamp_ns {
                        prev_containers.insert(name.clone(), *prev);
                    }
                }
            }
            if !prev_containers.is_empty() {
                pods_prev.insert(pod.clone(), prev_containers);
            }
        }
        inner.nodes_last = batch.nodes;
        inner.nodes_prev = nodes_prev;
        inner.pods_last = batch.pods;
        inner.pods_prev = pods_prev;
    }

    /// A node's usage, when two usable points are stored.
    pub fn node(&self, name: &str) -> Option<Usage> {
        let inner = self.inner.read();
        let last = inner.nodes_last.get(name)?;
        let prev = inner.nodes_prev.get(name)?;
        match usage(last, prev) {
            Ok(u) => Some(u),
            Err(e) => {
                tracing::debug!(node = %name, error = %e, "skipping node usage metric");
                None
            }
        }
    }

    /// A pod's usage: only when every container it reported has a previous point.
    pub fn pod(&self, pod: &PodRef) -> Option<PodUsage> {
        let inner = self.inner.read();
        let last = inner.pods_last.get(pod)?;
        let prev = inner.pods_prev.get(pod)?;
        let mut containers = Vec::with_capacity(last.len());
        let mut earliest: Option<Usage> = None;
        for (name, point) in last {
            let prev = prev.get(name)?;
            match usage(point, prev) {
                Ok(u) => {
                    if earliest.is_none_or(|e| e.timestamp_ns > u.timestamp_ns) {
                        earliest = Some(u);
                    }
                    containers.push((name.clone(), u));
                }
                Err(e) => {
                    tracing::debug!(pod = %pod, container = %name, error = %e, "skipping container usage metric");
                }
            }
        }
        let earliest = earliest?;
        Some(PodUsage {
            timestamp_ns: earliest.timestamp_ns,
            window_ns: earliest.window_ns,
            containers,
        })
    }

    /// Upstream's readiness: some node or pod has two points.
    pub fn ready(&self) -> bool {
        let inner = self.inner.read();
        !inner.nodes_prev.is_empty() || !inner.pods_prev.is_empty()
    }

    /// Points that can give usage: (nodes, containers) — `metrics_server_storage_points`.
    pub fn points(&self) -> (usize, usize) {
        let inner = self.inner.read();
        (
            inner.nodes_prev.len(),
            inner.pods_prev.values().map(BTreeMap::len).sum(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn point(ts_s: i64, cpu_s: f64, mem: u64) -> MetricsPoint {
        MetricsPoint {
            start_time_ns: 0,
            timestamp_ns: 1_700_000_000 * S + ts_s * S,
            cpu_ns: (cpu_s * 1e9) as u64,
            memory_bytes: mem,
        }
    }

    fn nodes(points: &[(&str, MetricsPoint)]) -> Batch {
        Batch {
            nodes: points.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
            pods: BTreeMap::new(),
        }
    }

    #[test]
    fn rate_and_window() {
        let u = usage(&point(15, 3.0, 100), &point(0, 1.5, 50)).unwrap();
        assert_eq!(u.cpu_nanocores, 100_000_000);
        assert_eq!(u.window_ns, 15 * S);
        assert_eq!(u.memory_bytes, 100);
        assert_eq!(u.timestamp_ns, point(15, 0.0, 0).timestamp_ns);
        // Milliseconds of window count.
        let mut last = point(15, 2.0, 1);
        last.timestamp_ns += 12_000_000;
        let u = usage(&last, &point(0, 0.5, 1)).unwrap();
        assert_eq!(u.cpu_nanocores, 99_920_063);
        assert_eq!(u.window_ns, 15_012_000_000);
        assert_eq!(
            usage(&point(15, 1.0, 1), &point(0, 2.0, 1)),
            Err(UsageError::CpuDecrease)
        );
        assert_eq!(
            usage(&point(0, 2.0, 1), &point(0, 1.0, 1)),
            Err(UsageError::Window)
        );
        let mut restarted = point(15, 2.0, 1);
        restarted.start_time_ns = -1;
        assert_eq!(
            usage(&restarted, &point(0, 1.0, 1)),
            Err(UsageError::StartTime)
        );
    }

    #[test]
    fn nodes_need_two_increasing_points() {
        let s = Storage::new(Duration::from_secs(15));
        assert!(!s.ready());
        s.store(nodes(&[("a", point(0, 1.0, 10))]));
        assert_eq!(s.node("a"), None, "one point is not enough");
        assert!(!s.ready());
        s.store(nodes(&[("a", point(15, 2.5, 20))]));
        let u = s.node("a").unwrap();
        assert_eq!(u.cpu_nanocores, 100_000_000);
        assert_eq!(u.memory_bytes, 20);
        assert!(s.ready());
        assert_eq!(s.points(), (1, 0));
        // The same point again: the previous one is kept.
        s.store(nodes(&[("a", point(15, 2.5, 20))]));
        assert_eq!(s.node("a").unwrap().cpu_nanocores, 100_000_000);
        // A counter reset: no usage until the next point.
        s.store(nodes(&[("a", point(30, 0.5, 30))]));
        assert_eq!(s.node("a"), None);
        s.store(nodes(&[("a", point(45, 2.0, 40))]));
        assert_eq!(s.node("a").unwrap().cpu_nanocores, 100_000_000);
        // A node missing from a cycle is forgotten.
        s.store(nodes(&[("b", point(60, 1.0, 1))]));
        assert_eq!(s.node("a"), None);
        s.store(nodes(&[("a", point(75, 9.0, 1))]));
        assert_eq!(s.node("a"), None);
        assert!(!s.ready());
    }

    fn pod_batch(containers: &[(&str, MetricsPoint)]) -> Batch {
        let mut b = Batch::default();
        b.pods.insert(
            PodRef::new("ns", "p"),
            containers
                .iter()
                .map(|(n, p)| (n.to_string(), *p))
                .collect(),
        );
        b
    }

    #[test]
    fn pods_need_every_container() {
        let s = Storage::new(Duration::from_secs(15));
        let pod = PodRef::new("ns", "p");
        s.store(pod_batch(&[("a", point(0, 1.0, 1))]));
        assert_eq!(s.pod(&pod), None);
        // A new container appears: the pod is incomplete this cycle.
        s.store(pod_batch(&[
            ("a", point(10, 2.0, 2)),
            ("b", point(12, 1.0, 3)),
        ]));
        assert_eq!(s.pod(&pod), None);
        s.store(pod_batch(&[
            ("a", point(20, 3.0, 4)),
            ("b", point(22, 2.0, 5)),
        ]));
        let u = s.pod(&pod).unwrap();
        assert_eq!(u.containers.len(), 2);
        assert_eq!(u.containers[0].0, "a");
        assert_eq!(u.containers[0].1.cpu_nanocores, 100_000_000);
        assert_eq!(u.containers[1].1.memory_bytes, 5);
        // The earliest container's time and window.
        assert_eq!(u.timestamp_ns, point(20, 0.0, 0).timestamp_ns);
        assert_eq!(u.window_ns, 10 * S);
        assert_eq!(s.points(), (0, 2));
        // A restarted container (started after the stored point) starts over.
        let mut restarted = point(30, 0.1, 1);
        restarted.start_time_ns = point(25, 0.0, 0).timestamp_ns;
        s.store(pod_batch(&[("a", point(30, 4.0, 4)), ("b", restarted)]));
        assert_eq!(s.pod(&pod), None);
        // The pod ends: forgotten.
        s.store(Batch::default());
        assert_eq!(s.pod(&pod), None);
        assert_eq!(s.points(), (0, 0));
    }

    #[test]
    fn fresh_containers_count_from_their_start() {
        let s = Storage::new(Duration::from_secs(15));
        let pod = PodRef::new("ns", "p");
        let mut young = point(12, 1.2, 7);
        young.start_time_ns = point(0, 0.0, 0).timestamp_ns;
        s.store(pod_batch(&[("a", young)]));
        let u = s.pod(&pod).unwrap();
        assert_eq!(u.window_ns, 12 * S);
        assert_eq!(u.containers[0].1.cpu_nanocores, 100_000_000);
        // Too young (under 10 s): no synthetic point.
        let mut baby = point(5, 1.2, 7);
        baby.start_time_ns = point(0, 0.0, 0).timestamp_ns;
        let s = Storage::new(Duration::from_secs(15));
        s.store(pod_batch(&[("a", baby)]));
        assert_eq!(s.pod(&pod), None);
    }
}
