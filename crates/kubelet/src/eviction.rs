//! Node-pressure eviction, as upstream's eviction manager: every ten seconds the
//! `evictionHard` and `evictionSoft` signals are observed (`memory.available`,
//! `nodefs.available`, `nodefs.inodesFree`, `imagefs.available`, `imagefs.inodesFree`
//! on the runtime's image filesystem, `pid.available`); while one is below its
//! threshold the node reports the matching pressure condition, new pods that the
//! condition refuses are rejected. Under disk pressure unused images are removed first
//! (`image_gc`); if that does not relieve it, one pod per pass is evicted — the first of the
//! non-critical pods ranked as upstream (usage above requests first, then lower
//! priority, then more usage above requests). An evicted pod is marked `Failed` with
//! reason `Evicted`, a `DisruptionTarget` condition and an `Evicted` event; its worker
//! then stops it at once. A soft threshold sets the condition at once but evicts only
//! once it has been met for its `evictionSoftGracePeriod`, and its victim is stopped
//! with its own grace period, at most `evictionMaxPodGracePeriod`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::json;

use crate::image_gc::ImageGc;
use crate::{host, Kubelet};

/// Pods at or above this priority (system-cluster-critical) are never evicted.
const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// How often the signals are observed (upstream's housekeeping period).
const PERIOD: Duration = Duration::from_secs(10);

/// The node condition a signal drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pressure {
    Memory,
    Disk,
    Pid,
}

impl Pressure {
    pub fn condition(self) -> &'static str {
        match self {
            Pressure::Memory => "MemoryPressure",
            Pressure::Disk => "DiskPressure",
            Pressure::Pid => "PIDPressure",
        }
    }
}

/// A threshold that is met.
#[derive(Debug, Clone, PartialEq)]
pub struct Met {
    pub signal: &'static str,
    /// The threshold as configured (`100Mi`, `10%`).
    pub threshold: String,
    /// What is available now, in the signal's unit (bytes, inodes, pids).
    pub available: i64,
    pub pressure: Pressure,
    /// The resource to reclaim, as eviction messages name it.
    pub resource: &'static str,
}

/// The signals: (name, pressure, resource named in messages).
const SIGNALS: &[(&str, Pressure, &str)] = &[
    ("memory.available", Pressure::Memory, "memory"),
    ("nodefs.available", Pressure::Disk, "ephemeral-storage"),
    ("nodefs.inodesFree", Pressure::Disk, "inodes"),
    ("imagefs.available", Pressure::Disk, "ephemeral-storage"),
    ("imagefs.inodesFree", Pressure::Disk, "inodes"),
    // The writable layers' filesystem: the image filesystem unless split (never here).
    ("containerfs.available", Pressure::Disk, "ephemeral-storage"),
    ("containerfs.inodesFree", Pressure::Disk, "inodes"),
    ("pid.available", Pressure::Pid, "pids"),
];

/// What the node has: (signal, capacity, available).
fn observe(k: &Kubelet) -> Vec<(&'static str, i64, i64)> {
    let fs = host::fs_stats(&k.opts.root_dir);
    let pid_max: i64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    let running = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count() as i64
        })
        .unwrap_or(0);
    let mut out = vec![
        ("memory.available", host::mem_total(), host::mem_available()),
        ("nodefs.available", fs.capacity, fs.available),
        ("nodefs.inodesFree", fs.inodes, fs.inodes_free),
        ("pid.available", pid_max, pid_max - running),
    ];
    let image_fs = k.image_fs.lock().clone();
    if let Some(path) = image_fs {
        let ifs = host::fs_stats(&path);
        if ifs.capacity > 0 {
            out.extend([
                ("imagefs.available", ifs.capacity, ifs.available),
                ("imagefs.inodesFree", ifs.inodes, ifs.inodes_free),
                ("containerfs.available", ifs.capacity, ifs.available),
                ("containerfs.inodesFree", ifs.inodes, ifs.inodes_free),
            ]);
        }
    }
    out
}

/// A threshold in the signal's unit: a quantity, or a percentage of `capacity`.
fn threshold_value(t: &str, capacity: i64) -> Option<i64> {
    match t.strip_suffix('%') {
        Some(p) => p
            .parse::<f64>()
            .ok()
            .map(|p| (capacity as f64 * p / 100.0) as i64),
        None => ferrokube_api::quantity::value(t),
    }
}

/// The `evictionHard` thresholds met now.
pub fn thresholds_met(k: &Kubelet) -> Vec<Met> {
    met(&k.config.eviction_hard, &observe(k))
}

fn met(
    thresholds: &std::collections::BTreeMap<String, String>,
    observed: &[(&'static str, i64, i64)],
) -> Vec<Met> {
    let mut out = Vec::new();
    for &(signal, capacity, available) in observed {
        let Some(t) = thresholds.get(signal) else {
            continue;
        };
        let Some(limit) = threshold_value(t, capacity) else {
            continue;
        };
        if available < limit {
            let (_, pressure, resource) = SIGNALS
                .iter()
                .copied()
                .find(|(s, _, _)| *s == signal)
                .unwrap_or((signal, Pressure::Memory, "memory"));
            out.push(Met {
                signal,
                threshold: t.clone(),
                available,
                pressure,
                resource,
            });
        }
    }
    out
}

/// Whether the pod is critical: static or mirror, or of system-critical priority.
pub fn is_critical(pod: &Pod) -> bool {
    crate::static_pods::is_static(pod)
        || crate::static_pods::is_mirror(pod)
        || pod
            .spec
            .as_ref()
            .and_then(|s| s.priority)
            .is_some_and(|p| p >= SYSTEM_CRITICAL_PRIORITY)
}

/// Upstream's kubelet admission under pressure: `Some(message)` when a new pod must be
/// rejected — under memory pressure BestEffort pods, under disk or PID pressure all
/// pods — critical pods excepted.
pub fn admit(k: &Kubelet, pod: &Pod) -> Option<String> {
    if is_critical(pod) {
        return None;
    }
    let now = k.pressure.lock().clone();
    let refused: Vec<&str> = now
        .iter()
        .filter(|p| match p {
            Pressure::Memory => crate::runtime::qos_class(pod) == "BestEffort",
            Pressure::Disk | Pressure::Pid => true,
        })
        .map(|p| p.condition())
        .collect();
    (!refused.is_empty()).then(|| format!("The node had condition: [{}]. ", refused.join(", ")))
}

/// Runs until the kubelet stops.
pub async fn run(k: Arc<Kubelet>) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut images = ImageGc::new();
    let mut soft_since: HashMap<&'static str, std::time::Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Some(fs) = crate::image_gc::image_fs(&k).await {
                    *k.image_fs.lock() = Some(fs);
                }
                images.collect_if_due(&k).await;
                pass(&k, &mut images, &mut soft_since).await;
            }
            () = k.stopped() => return,
        }
    }
}

/// One pass: the pressure state updated; under disk pressure unused images removed,
/// and one pod evicted if a threshold is still met.
async fn pass(
    k: &Kubelet,
    images: &mut ImageGc,
    soft_since: &mut HashMap<&'static str, std::time::Instant>,
) {
    let observed = observe(k);
    let mut met = met(&k.config.eviction_hard, &observed);
    // Soft thresholds count for the node's conditions at once, for eviction only once
    // met for their grace period.
    let soft = met_soft(k, &observed, soft_since, std::time::Instant::now());
    if met.iter().any(|m| m.pressure == Pressure::Disk) {
        // Node-level reclaim first, as upstream: every unused image old enough.
        match images.free(k, i64::MAX).await {
            Ok(freed) if freed > 0 => {
                tracing::info!(freed, "removed unused images under disk pressure");
                met = thresholds_met(k);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "removing unused images under disk pressure"),
        }
    }
    {
        let mut now: Vec<Pressure> = met.iter().chain(&soft.0).map(|m| m.pressure).collect();
        now.sort_by_key(|p| p.condition());
        now.dedup();
        *k.pressure.lock() = now;
    }
    // A hard threshold evicts at once; a soft one with the pod's grace, bounded by
    // evictionMaxPodGracePeriod.
    let (first, hard) = match (met.first(), soft.1.first()) {
        (Some(m), _) => (m, true),
        (None, Some(m)) => (m, false),
        (None, None) => return,
    };
    tracing::warn!(signal = first.signal, threshold = %first.threshold, available = first.available, "eviction threshold met");
    let api: Api<Pod> = Api::all(k.client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={}", k.opts.node_name));
    let pods = match api.list(&lp).await {
        Ok(l) => l.items,
        Err(e) => {
            tracing::warn!(error = %e, "listing pods to evict");
            return;
        }
    };
    let usage = usage_by_pod(k, first.pressure).await;
    let mut candidates: Vec<Candidate> = pods
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && !is_critical(p)
                && !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
        })
        .map(|p| Candidate::new(p, &usage, first.resource))
        .collect();
    rank(&mut candidates);
    let Some(victim) = candidates.into_iter().next() else {
        tracing::warn!(
            signal = first.signal,
            "eviction threshold met but no pod may be evicted"
        );
        return;
    };
    let grace = if hard {
        0
    } else {
        let pod_grace = victim
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        pod_grace.min(k.config.eviction_max_pod_grace_period)
    };
    if grace > 0 {
        stop_with_grace(k, &victim.pod, grace).await;
    }
    evict(k, &victim, first).await;
}

/// The soft thresholds met now (all of them), and those met for at least their grace
/// period; `since` remembers when each was first seen met.
fn met_soft(
    k: &Kubelet,
    observed: &[(&'static str, i64, i64)],
    since: &mut HashMap<&'static str, std::time::Instant>,
    now: std::time::Instant,
) -> (Vec<Met>, Vec<Met>) {
    let all = met(&k.config.eviction_soft, observed);
    let due = soft_due(&all, &k.config.eviction_soft_grace_period, since, now);
    (all, due)
}

fn soft_due(
    all: &[Met],
    grace: &std::collections::BTreeMap<String, Duration>,
    since: &mut HashMap<&'static str, std::time::Instant>,
    now: std::time::Instant,
) -> Vec<Met> {
    since.retain(|s, _| all.iter().any(|m| m.signal == *s));
    all.iter()
        .filter(|m| {
            let first = *since.entry(m.signal).or_insert(now);
            let period = grace.get(m.signal).copied().unwrap_or_default();
            now.saturating_duration_since(first) >= period
        })
        .cloned()
        .collect()
}

/// Stops the pod's running containers with `grace` seconds to go (soft eviction).
async fn stop_with_grace(k: &Kubelet, pod: &Pod, grace: i64) {
    use ferrokube_cri::v1 as cri;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let running = cri::ContainerFilter {
        state: Some(cri::ContainerStateValue {
            state: cri::ContainerState::ContainerRunning as i32,
        }),
        label_selector: [(crate::runtime::POD_UID.to_string(), uid)].into(),
        ..cri::ContainerFilter::default()
    };
    let Ok(containers) = k.list_containers(Some(running)).await else {
        return;
    };
    for c in containers {
        let _ = k
            .cri
            .runtime
            .clone()
            .stop_container(cri::StopContainerRequest {
                container_id: c.id,
                timeout: grace,
            })
            .await;
    }
}

/// A pod and its usage of the resource under pressure.
#[derive(Debug)]
struct Candidate {
    pod: Pod,
    /// Per container: (name, usage, request).
    containers: Vec<(String, i64, i64)>,
    usage: i64,
    request: i64,
    priority: i32,
}

impl Candidate {
    fn new(pod: Pod, usage: &HashMap<(String, String), i64>, resource: &str) -> Candidate {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let request_of = |c: &k8s_openapi::api::core::v1::Container| {
            c.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource))
                .and_then(|q| ferrokube_api::quantity::value(&q.0))
                .unwrap_or(0)
        };
        let containers: Vec<(String, i64, i64)> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .map(|c| {
                let used = usage
                    .get(&(uid.clone(), c.name.clone()))
                    .copied()
                    .unwrap_or(0);
                (c.name.clone(), used, request_of(c))
            })
            .collect();
        let priority = pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
        Candidate {
            usage: containers.iter().map(|c| c.1).sum(),
            request: containers.iter().map(|c| c.2).sum(),
            containers,
            priority,
            pod,
        }
    }

    fn exceeds(&self) -> bool {
        self.usage > self.request
    }
}

/// Upstream's order: pods using more than they request first, then lower priority,
/// then more usage above requests.
fn rank(c: &mut [Candidate]) {
    c.sort_by(|a, b| {
        b.exceeds()
            .cmp(&a.exceeds())
            .then(a.priority.cmp(&b.priority))
            .then((b.usage - b.request).cmp(&(a.usage - a.request)))
    });
}

/// Usage per (pod UID, container) of what is under pressure: memory working set, or
/// the writable layer's bytes for disk.
async fn usage_by_pod(k: &Kubelet, pressure: Pressure) -> HashMap<(String, String), i64> {
    let Ok(samples) = crate::server::stats::samples(k).await else {
        return HashMap::new();
    };
    samples
        .into_iter()
        .map(|s| {
            let v = match pressure {
                Pressure::Disk => s.rootfs_used,
                Pressure::Memory | Pressure::Pid => s.working_set,
            };
            (
                (s.pod_uid, s.container),
                i64::try_from(v.unwrap_or(0)).unwrap_or(i64::MAX),
            )
        })
        .collect()
}

/// Upstream's eviction message.
fn message(c: &Candidate, m: &Met) -> String {
    let mut msg = format!(
        "The node was low on resource: {}. Threshold quantity: {}, available: {}. ",
        m.resource,
        m.threshold,
        quantity(m.available, m.resource)
    );
    for (name, used, request) in &c.containers {
        if used > request {
            msg.push_str(&format!(
                "Container {name} was using {}, request is {}, has larger consumption of {}. ",
                quantity(*used, m.resource),
                quantity(*request, m.resource),
                m.resource
            ));
        }
    }
    msg
}

/// Bytes in Ki (as upstream prints observed quantities); counts as they are.
fn quantity(v: i64, resource: &str) -> String {
    if matches!(resource, "memory" | "ephemeral-storage") && v != 0 {
        format!("{}Ki", v / 1024)
    } else {
        v.to_string()
    }
}

async fn evict(k: &Kubelet, c: &Candidate, m: &Met) {
    let pod = &c.pod;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let msg = message(c, m);
    tracing::warn!(pod = %format!("{ns}/{name}"), message = %msg, "evicting a pod");
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({
        "phase": "Failed",
        "reason": "Evicted",
        "message": msg,
        "conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "TerminationByKubelet",
            "message": msg,
            "lastTransitionTime": now,
        }],
    });
    match crate::status::patch(&k.client, pod, &status).await {
        Ok(_) => k.events.pod(pod, None, true, "Evicted", msg),
        Err(e) => {
            tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "marking a pod evicted")
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn soft_thresholds_wait_for_their_grace_period() {
        let m = Met {
            signal: "memory.available",
            threshold: "1Gi".into(),
            available: 1,
            pressure: Pressure::Memory,
            resource: "memory",
        };
        let grace: std::collections::BTreeMap<String, Duration> =
            [("memory.available".to_string(), Duration::from_secs(30))].into();
        let mut since = HashMap::new();
        let t0 = std::time::Instant::now();
        assert!(soft_due(std::slice::from_ref(&m), &grace, &mut since, t0).is_empty());
        let later = t0 + Duration::from_secs(31);
        assert_eq!(
            soft_due(std::slice::from_ref(&m), &grace, &mut since, later).len(),
            1
        );
        // Cleared: the clock starts again.
        assert!(soft_due(&[], &grace, &mut since, later).is_empty());
        assert!(soft_due(&[m], &grace, &mut since, later).is_empty());
    }

    #[test]
    fn image_filesystem_signals_are_disk_pressure() {
        let t: std::collections::BTreeMap<String, String> = [
            ("imagefs.available".to_string(), "15%".to_string()),
            ("imagefs.inodesFree".to_string(), "5%".to_string()),
        ]
        .into_iter()
        .collect();
        let obs = [
            ("nodefs.available", 1000, 900),
            ("imagefs.available", 1000, 100),
            ("imagefs.inodesFree", 1000, 900),
        ];
        let m = met(&t, &obs);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(
            (m[0].signal, m[0].pressure, m[0].resource),
            ("imagefs.available", Pressure::Disk, "ephemeral-storage")
        );
    }

    #[test]
    fn thresholds_are_quantities_or_percentages() {
        let t: std::collections::BTreeMap<String, String> = [
            ("memory.available".to_string(), "100Mi".to_string()),
            ("nodefs.available".to_string(), "10%".to_string()),
        ]
        .into_iter()
        .collect();
        let obs = [
            ("memory.available", 1 << 30, 50 << 20),
            ("nodefs.available", 1000, 200),
            ("pid.available", 100, 1),
        ];
        let m = met(&t, &obs);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(
            (m[0].signal, m[0].pressure),
            ("memory.available", Pressure::Memory)
        );
        let obs = [
            ("memory.available", 1 << 30, 200 << 20),
            ("nodefs.available", 1000, 99),
        ];
        let m = met(&t, &obs);
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].resource, m[0].pressure),
            ("ephemeral-storage", Pressure::Disk)
        );
    }

    fn pod(name: &str, priority: i32, request_mi: i64) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": name},
            "spec": {"priority": priority, "containers": [{"name": "c",
                "resources": {"requests": {"memory": format!("{request_mi}Mi")}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn ranking_and_message_follow_upstream() {
        let usage: HashMap<(String, String), i64> = [
            (("over".to_string(), "c".to_string()), 30 << 20),
            (("under".to_string(), "c".to_string()), 10 << 20),
            (("low-prio".to_string(), "c".to_string()), 5 << 20),
            (("crit".to_string(), "c".to_string()), 500 << 20),
        ]
        .into_iter()
        .collect();
        let mut c: Vec<Candidate> = [
            pod("under", 0, 20),
            pod("low-prio", -10, 20),
            pod("over", 100, 20),
        ]
        .into_iter()
        .map(|p| Candidate::new(p, &usage, "memory"))
        .collect();
        rank(&mut c);
        let order: Vec<&str> = c
            .iter()
            .map(|c| c.pod.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(order, ["over", "low-prio", "under"]);
        let m = Met {
            signal: "memory.available",
            threshold: "100Mi".into(),
            available: 50 << 20,
            pressure: Pressure::Memory,
            resource: "memory",
        };
        assert_eq!(
            message(&c[0], &m),
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 51200Ki. \
             Container c was using 30720Ki, request is 20480Ki, has larger consumption of memory. "
        );
        let mut critical = pod("crit", SYSTEM_CRITICAL_PRIORITY, 0);
        assert!(is_critical(&critical));
        critical.spec.as_mut().unwrap().priority = Some(0);
        assert!(!is_critical(&critical));
    }
}
