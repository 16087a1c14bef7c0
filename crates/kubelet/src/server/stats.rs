//! Resource usage on the kubelet server, from the runtime's CRI `ListContainerStats`
//! and the host's `/proc`:
//!
//! - `/stats/summary`: upstream's statsapi `Summary` (node and per-pod/container CPU,
//!   memory, root filesystem);
//! - `/metrics/resource`: what metrics-server scrapes (`node_`, `pod_` and
//!   `container_cpu_usage_seconds_total`, `…_memory_working_set_bytes`,
//!   `container_start_time_seconds`, `resource_scrape_error`);
//! - `/metrics/cadvisor`: per-container CPU and memory under cAdvisor's names;
//! - `/metrics`: the kubelet's own (running pods and containers, node name).
//!
//! `usageNanoCores` comes from the previous sample of the same container (or node),
//! kept between requests, as upstream's CRI stats provider does.

use std::collections::HashMap;
use std::fmt::Write as _;

use ferrokube_cri::v1 as cri;
use http::{header, Response, StatusCode};
use serde_json::{json, Value};

use super::{full, status, Body};
use crate::host::{meminfo_field, now_ns};
use crate::Kubelet;

/// CPU samples (cumulative core-nanoseconds, sample time in ns) by container ID
/// (`""` for the node).
#[derive(Debug, Default)]
pub struct CpuHistory(parking_lot::Mutex<HashMap<String, (u64, i64)>>);

impl CpuHistory {
    /// Nanocores since the previous sample of `key`, then remembers this one.
    fn rate(&self, key: &str, usage: u64, at: i64) -> Option<u64> {
        let mut m = self.0.lock();
        let prev = m.insert(key.to_string(), (usage, at));
        let (u0, t0) = prev?;
        let dt = u64::try_from(at - t0).ok().filter(|d| *d > 0)?;
        let du = usage.checked_sub(u0)?;
        Some(u64::try_from(u128::from(du) * 1_000_000_000 / u128::from(dt)).unwrap_or(u64::MAX))
    }

    /// Forgets containers that no longer run.
    fn retain(&self, live: &[&str]) {
        self.0
            .lock()
            .retain(|k, _| k.is_empty() || live.contains(&k.as_str()));
    }
}

/// A pod's totals: CPU (ns), working set (bytes), newest sample time (ns).
#[derive(Debug, Default)]
struct PodTotals {
    cpu_ns: u64,
    working_set: u64,
    at_ns: i64,
}

/// A gauge of cAdvisor's: name, help, and how to read it from a sample.
type Gauge = (&'static str, &'static str, fn(&Sample) -> Option<u64>);

/// One running container's usage.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    id: String,
    pod: String,
    namespace: String,
    pub(crate) pod_uid: String,
    pub(crate) container: String,
    image: String,
    /// Creation time (ns since the epoch).
    created_ns: i64,
    /// Sample time (ns since the epoch).
    at_ns: i64,
    cpu_ns: Option<u64>,
    pub(crate) working_set: Option<u64>,
    usage: Option<u64>,
    rss: Option<u64>,
    pub(crate) rootfs_used: Option<u64>,
}

fn val(v: Option<&cri::UInt64Value>) -> Option<u64> {
    v.map(|v| v.value)
}

/// The running containers' usage, joined with their pods and images.
pub(crate) async fn samples(k: &Kubelet) -> Result<Vec<Sample>, String> {
    let mut rt = k.cri.runtime.clone();
    let running = rt
        .list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                state: Some(cri::ContainerStateValue {
                    state: cri::ContainerState::ContainerRunning as i32,
                }),
                ..Default::default()
            }),
        })
        .await
        .map_err(|e| format!("ListContainers: {}", e.message()))?
        .into_inner()
        .containers;
    let stats = rt
        .list_container_stats(cri::ListContainerStatsRequest { filter: None })
        .await
        .map_err(|e| format!("ListContainerStats: {}", e.message()))?
        .into_inner()
        .stats;
    let by_id: HashMap<&str, &cri::ContainerStats> = stats
        .iter()
        .filter_map(|s| s.attributes.as_ref().map(|a| (a.id.as_str(), s)))
        .collect();
    let label = |c: &cri::Container, key: &str| c.labels.get(key).cloned().unwrap_or_default();
    Ok(running
        .iter()
        .map(|c| {
            let s = by_id.get(c.id.as_str());
            let cpu = s.and_then(|s| s.cpu.as_ref());
            let mem = s.and_then(|s| s.memory.as_ref());
            Sample {
                id: c.id.clone(),
                pod: label(c, "io.kubernetes.pod.name"),
                namespace: label(c, "io.kubernetes.pod.namespace"),
                pod_uid: label(c, "io.kubernetes.pod.uid"),
                container: c
                    .metadata
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default(),
                image: c
                    .image
                    .as_ref()
                    .map(|i| i.image.clone())
                    .unwrap_or_default(),
                created_ns: c.created_at,
                at_ns: cpu
                    .map(|c| c.timestamp)
                    .filter(|t| *t > 0)
                    .unwrap_or_else(now_ns),
                cpu_ns: cpu.and_then(|c| val(c.usage_core_nano_seconds.as_ref())),
                working_set: mem.and_then(|m| val(m.working_set_bytes.as_ref())),
                usage: mem.and_then(|m| val(m.usage_bytes.as_ref())),
                rss: mem.and_then(|m| val(m.rss_bytes.as_ref())),
                rootfs_used: s
                    .and_then(|s| s.writable_layer.as_ref())
                    .and_then(|w| val(w.used_bytes.as_ref())),
            }
        })
        .collect())
}

/// The node's cumulative CPU time (ns) from the first line of /proc/stat.
fn node_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    let busy: u64 = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Some(busy.saturating_mul(1_000_000_000) / hz)
}

/// When the machine booted (`btime` of /proc/stat), ns since the epoch.
fn boot_ns() -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let secs: i64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    secs.checked_mul(1_000_000_000)
}

/// The node's memory: (usage, working set, available) in bytes, as cAdvisor reports
/// the root cgroup: usage = total − free, working set = usage − inactive file.
fn node_memory() -> (u64, u64, u64) {
    let field = |name: &str| u64::try_from(meminfo_field(name)).unwrap_or(0);
    let usage = field("MemTotal:").saturating_sub(field("MemFree:"));
    let working_set = usage.saturating_sub(field("Inactive(file):"));
    (usage, working_set, field("MemAvailable:"))
}

fn rfc3339(ns: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn json_response(body: &Value) -> Response<Body> {
    let mut r = Response::new(full(body.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn prometheus(text: String) -> Response<Body> {
    let mut r = Response::new(full(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

fn unavailable(e: &str) -> Response<Body> {
    status(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        &format!("reading container stats: {e}"),
    )
}

/// `/stats/summary`.
pub async fn summary(k: &Kubelet, history: &CpuHistory) -> Response<Body> {
    let samples = match samples(k).await {
        Ok(s) => s,
        Err(e) => return unavailable(&e),
    };
    let now = now_ns();
    let time = rfc3339(now);
    let cpu = |key: &str, usage: Option<u64>, at: i64| {
        let mut v = json!({"time": rfc3339(at)});
        if let Some(u) = usage {
            v["usageCoreNanoSeconds"] = json!(u);
            if let Some(rate) = history.rate(key, u, at) {
                v["usageNanoCores"] = json!(rate);
            }
        }
        v
    };
    let fs = crate::host::fs_stats(&k.opts.root_dir);
    let (usage, working_set, available) = node_memory();
    let node = json!({
        "nodeName": k.opts.node_name,
        "startTime": rfc3339(boot_ns().unwrap_or(k.started_ns)),
        "cpu": cpu("", node_cpu_ns(), now),
        "memory": {"time": time, "availableBytes": available, "usageBytes": usage,
            "workingSetBytes": working_set},
        "fs": {"time": time, "availableBytes": fs.available, "capacityBytes": fs.capacity,
            "usedBytes": fs.capacity - fs.available, "inodesFree": fs.inodes_free,
            "inodes": fs.inodes, "inodesUsed": fs.inodes - fs.inodes_free},
    });
    let mut pods: Vec<(String, Vec<&Sample>)> = Vec::new();
    for s in &samples {
        match pods.iter_mut().find(|(uid, _)| *uid == s.pod_uid) {
            Some((_, list)) => list.push(s),
            None => pods.push((s.pod_uid.clone(), vec![s])),
        }
    }
    let pods: Vec<Value> = pods
        .into_iter()
        .map(|(uid, list)| {
            let first = list[0];
            let containers: Vec<Value> = list
                .iter()
                .map(|s| {
                    let mut c = json!({
                        "name": s.container,
                        "startTime": rfc3339(s.created_ns),
                        "cpu": cpu(&s.id, s.cpu_ns, s.at_ns),
                        "memory": {"time": rfc3339(s.at_ns)},
                    });
                    if let Some(v) = s.working_set {
                        c["memory"]["workingSetBytes"] = json!(v);
                    }
                    if let Some(v) = s.usage {
                        c["memory"]["usageBytes"] = json!(v);
                    }
                    if let Some(v) = s.rss {
                        c["memory"]["rssBytes"] = json!(v);
                    }
                    if let Some(v) = s.rootfs_used {
                        c["rootfs"] = json!({"time": rfc3339(s.at_ns), "usedBytes": v});
                    }
                    c
                })
                .collect();
            let sum = |f: fn(&Sample) -> Option<u64>| {
                list.iter().filter_map(|s| f(s)).reduce(|a, b| a + b)
            };
            let mut pod = json!({
                "podRef": {"name": first.pod, "namespace": first.namespace, "uid": uid},
                "startTime": rfc3339(list.iter().map(|s| s.created_ns).min().unwrap_or(now)),
                "containers": containers.clone(),
                "memory": {"time": time},
            });
            if let Some(total) = sum(|s| s.cpu_ns) {
                pod["cpu"] = json!({"time": time, "usageCoreNanoSeconds": total});
                // The pod's rate: its containers' rates, when every one has one.
                let rates: Vec<u64> = containers
                    .iter()
                    .filter_map(|c| c["cpu"]["usageNanoCores"].as_u64())
                    .collect();
                if rates.len() == containers.len() {
                    pod["cpu"]["usageNanoCores"] = json!(rates.iter().sum::<u64>());
                }
            }
            if let Some(ws) = sum(|s| s.working_set) {
                pod["memory"]["workingSetBytes"] = json!(ws);
            }
            if let Some(u) = sum(|s| s.usage) {
                pod["memory"]["usageBytes"] = json!(u);
            }
            pod
        })
        .collect();
    let live: Vec<&str> = samples.iter().map(|s| s.id.as_str()).collect();
    history.retain(&live);
    json_response(&json!({"node": node, "pods": pods}))
}

/// A Prometheus label value, escaped.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// `/metrics/resource`: the stable resource metrics metrics-server reads.
pub async fn resource(k: &Kubelet) -> Response<Body> {
    let (samples, error) = match samples(k).await {
        Ok(s) => (s, 0),
        Err(e) => {
            tracing::warn!(error = %e, "resource metrics");
            (Vec::new(), 1)
        }
    };
    let now_ms = now_ns() / 1_000_000;
    let ms = |ns: i64| ns / 1_000_000;
    let mut out = String::new();
    let labels = |s: &Sample| {
        format!(
            "container=\"{}\",namespace=\"{}\",pod=\"{}\"",
            esc(&s.container),
            esc(&s.namespace),
            esc(&s.pod)
        )
    };
    family(
        &mut out,
        "container_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
    );
    for s in &samples {
        if let Some(cpu) = s.cpu_ns {
            let _ = writeln!(
                out,
                "container_cpu_usage_seconds_total{{{}}} {} {}",
                labels(s),
                seconds(cpu),
                ms(s.at_ns)
            );
        }
    }
    family(
        &mut out,
        "container_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the container in bytes",
    );
    for s in &samples {
        if let Some(ws) = s.working_set {
            let _ = writeln!(
                out,
                "container_memory_working_set_bytes{{{}}} {ws} {}",
                labels(s),
                ms(s.at_ns)
            );
        }
    }
    family(
        &mut out,
        "container_start_time_seconds",
        "gauge",
        "[STABLE] Start time of the container since unix epoch in seconds",
    );
    for s in &samples {
        let _ = writeln!(
            out,
            "container_start_time_seconds{{{}}} {} {}",
            labels(s),
            s.created_ns as f64 / 1e9,
            ms(s.created_ns)
        );
    }
    family(
        &mut out,
        "node_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
    );
    if let Some(cpu) = node_cpu_ns() {
        let _ = writeln!(
            out,
            "node_cpu_usage_seconds_total {} {now_ms}",
            seconds(cpu)
        );
    }
    family(
        &mut out,
        "node_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the node in bytes",
    );
    let (_, working_set, _) = node_memory();
    let _ = writeln!(out, "node_memory_working_set_bytes {working_set} {now_ms}");
    let mut pods: Vec<((String, String), PodTotals)> = Vec::new();
    for s in &samples {
        let key = (s.namespace.clone(), s.pod.clone());
        let i = match pods.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                pods.push((key, PodTotals::default()));
                pods.len() - 1
            }
        };
        let t = &mut pods[i].1;
        t.cpu_ns += s.cpu_ns.unwrap_or(0);
        t.working_set += s.working_set.unwrap_or(0);
        t.at_ns = t.at_ns.max(s.at_ns);
    }
    family(
        &mut out,
        "pod_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
    );
    for ((ns, pod), t) in &pods {
        let _ = writeln!(
            out,
            "pod_cpu_usage_seconds_total{{namespace=\"{}\",pod=\"{}\"}} {} {}",
            esc(ns),
            esc(pod),
            seconds(t.cpu_ns),
            ms(t.at_ns)
        );
    }
    family(
        &mut out,
        "pod_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the pod in bytes",
    );
    for ((ns, pod), t) in &pods {
        let _ = writeln!(
            out,
            "pod_memory_working_set_bytes{{namespace=\"{}\",pod=\"{}\"}} {} {}",
            esc(ns),
            esc(pod),
            t.working_set,
            ms(t.at_ns)
        );
    }
    family(
        &mut out,
        "resource_scrape_error",
        "gauge",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
    );
    let _ = writeln!(out, "resource_scrape_error {error}");
    prometheus(out)
}

/// `/metrics/cadvisor`: per-container usage under cAdvisor's metric names.
pub async fn cadvisor(k: &Kubelet) -> Response<Body> {
    let samples = match samples(k).await {
        Ok(s) => s,
        Err(e) => return unavailable(&e),
    };
    let mut out = String::new();
    let labels = |s: &Sample| {
        format!(
            "container=\"{}\",id=\"{}\",image=\"{}\",name=\"{}\",namespace=\"{}\",pod=\"{}\"",
            esc(&s.container),
            esc(&s.id),
            esc(&s.image),
            esc(&s.id),
            esc(&s.namespace),
            esc(&s.pod)
        )
    };
    let ms = |ns: i64| ns / 1_000_000;
    family(
        &mut out,
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed in seconds.",
    );
    for s in &samples {
        if let Some(cpu) = s.cpu_ns {
            let _ = writeln!(
                out,
                "container_cpu_usage_seconds_total{{{},cpu=\"total\"}} {} {}",
                labels(s),
                seconds(cpu),
                ms(s.at_ns)
            );
        }
    }
    let gauges: [Gauge; 4] = [
        ("container_memory_working_set_bytes", "Current working set in bytes.", |s| s.working_set),
        ("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", |s| s.usage),
        ("container_memory_rss", "Size of RSS in bytes.", |s| s.rss),
        ("container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", |s| s.rootfs_used),
    ];
    for (name, help, get) in gauges {
        family(&mut out, name, "gauge", help);
        for s in &samples {
            if let Some(v) = get(s) {
                let _ = writeln!(out, "{name}{{{}}} {v} {}", labels(s), ms(s.at_ns));
            }
        }
    }
    family(
        &mut out,
        "container_start_time_seconds",
        "gauge",
        "Start time of the container since unix epoch in seconds.",
    );
    for s in &samples {
        let _ = writeln!(
            out,
            "container_start_time_seconds{{{}}} {}",
            labels(s),
            s.created_ns as f64 / 1e9
        );
    }
    family(
        &mut out,
        "machine_cpu_cores",
        "gauge",
        "Number of logical CPU cores.",
    );
    let _ = writeln!(
        out,
        "machine_cpu_cores{{machine_id=\"{}\"}} {}",
        esc(&k.host.machine_id),
        k.host.cpus
    );
    family(
        &mut out,
        "machine_memory_bytes",
        "gauge",
        "Amount of memory installed on the machine.",
    );
    let _ = writeln!(
        out,
        "machine_memory_bytes{{machine_id=\"{}\"}} {}",
        esc(&k.host.machine_id),
        crate::host::mem_total()
    );
    prometheus(out)
}

/// `/metrics`: the kubelet's own.
pub async fn kubelet(k: &Kubelet) -> Response<Body> {
    let mut rt = k.cri.runtime.clone();
    let sandboxes = rt
        .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
        .await
        .map(|r| r.into_inner().items)
        .unwrap_or_default();
    let containers = rt
        .list_containers(cri::ListContainersRequest { filter: None })
        .await
        .map(|r| r.into_inner().containers)
        .unwrap_or_default();
    let mut out = String::new();
    family(
        &mut out,
        "kubelet_node_name",
        "gauge",
        "[ALPHA] The node's name. The count is always 1.",
    );
    let _ = writeln!(
        out,
        "kubelet_node_name{{node=\"{}\"}} 1",
        esc(&k.opts.node_name)
    );
    family(
        &mut out,
        "kubelet_running_pods",
        "gauge",
        "[ALPHA] Number of pods that have a running pod sandbox",
    );
    let ready = sandboxes
        .iter()
        .filter(|s| s.state == cri::PodSandboxState::SandboxReady as i32)
        .count();
    let _ = writeln!(out, "kubelet_running_pods {ready}");
    family(
        &mut out,
        "kubelet_running_containers",
        "gauge",
        "[ALPHA] Number of containers currently running",
    );
    for (state, label) in [
        (cri::ContainerState::ContainerCreated, "created"),
        (cri::ContainerState::ContainerRunning, "running"),
        (cri::ContainerState::ContainerExited, "exited"),
        (cri::ContainerState::ContainerUnknown, "unknown"),
    ] {
        let n = containers
            .iter()
            .filter(|c| c.state == state as i32)
            .count();
        let _ = writeln!(
            out,
            "kubelet_running_containers{{container_state=\"{label}\"}} {n}"
        );
    }
    family(
        &mut out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    );
    let _ = writeln!(
        out,
        "process_start_time_seconds {}",
        k.started_ns as f64 / 1e9
    );
    prometheus(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_previous_sample() {
        let h = CpuHistory::default();
        assert_eq!(h.rate("a", 1_000, 1_000_000_000), None);
        // 0.5 s of CPU over 1 s: half a core.
        assert_eq!(h.rate("a", 500_001_000, 2_000_000_000), Some(500_000_000));
        // A counter that went backwards (a new instance) gives no rate.
        assert_eq!(h.rate("a", 10, 3_000_000_000), None);
        h.retain(&[]);
        assert_eq!(h.rate("a", 20, 4_000_000_000), None);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn node_figures_read_from_proc() {
        assert!(node_cpu_ns().is_some_and(|n| n > 0));
        assert!(boot_ns().is_some_and(|b| b > 0 && b < now_ns()));
        let (usage, ws, available) = node_memory();
        assert!(usage >= ws && available > 0);
    }
}
