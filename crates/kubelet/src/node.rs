//! The node's side of the kubelet: registration (`kubelet_node_status.go`
//! `registerWithAPIServer`), the status it reports (`nodestatus` setters: capacity and
//! allocatable, addresses, nodeInfo, the four conditions, images, daemon endpoints) at
//! `nodeStatusUpdateFrequency`, patched when it changed or every
//! `nodeStatusReportFrequency`, and the heartbeat Lease in `kube-node-lease`
//! (`nodelease` controller: renewed every quarter of its duration).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::host::{self, HostInfo};
use crate::Kubelet;

/// The kubelet version reported in `nodeInfo`.
pub const KUBELET_VERSION: &str = "v1.33.0";

fn q(v: impl ToString) -> Quantity {
    Quantity(v.to_string())
}

/// The node's labels at registration (`kubelet_node_status.go` `initialNode`).
fn labels(name: &str) -> BTreeMap<String, String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    [
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", arch),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", arch),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Capacity and allocatable (capacity minus kube/system reserved and the hard
/// memory eviction threshold, as upstream's `GetNodeAllocatableReservation`).
fn resources(
    k: &Kubelet,
    info: &HostInfo,
) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let fs = host::fs_stats(&k.opts.root_dir);
    let mut cap = BTreeMap::new();
    cap.insert("cpu".to_string(), q(info.cpus));
    cap.insert(
        "memory".to_string(),
        q(format!("{}Ki", info.memory_bytes / 1024)),
    );
    cap.insert("pods".to_string(), q(k.config.max_pods));
    cap.insert(
        "ephemeral-storage".to_string(),
        q(format!("{}Ki", fs.capacity / 1024)),
    );
    cap.insert("hugepages-1Gi".to_string(), q(0));
    cap.insert("hugepages-2Mi".to_string(), q(0));
    let reserved = |res: &str, milli: bool| reserved(k, res, milli);
    let mut alloc = cap.clone();
    let cpu_m = allocatable_cpu_milli(k, info);
    alloc.insert(
        "cpu".to_string(),
        q(if cpu_m % 1000 == 0 {
            (cpu_m / 1000).to_string()
        } else {
            format!("{cpu_m}m")
        }),
    );
    let mem = allocatable_memory(k, info);
    alloc.insert("memory".to_string(), q(format!("{}Ki", mem / 1024)));
    let fs_reserved = k
        .config
        .eviction_hard
        .get("nodefs.available")
        .and_then(|t| t.strip_suffix('%'))
        .and_then(|p| p.parse::<f64>().ok())
        .map_or(0, |p| (fs.capacity as f64 * p / 100.0) as i64);
    let storage = (fs.capacity - fs_reserved - reserved("ephemeral-storage", false)).max(0);
    alloc.insert("ephemeral-storage".to_string(), q(storage.to_string()));
    (cap, alloc)
}

/// What `kubeReserved` and `systemReserved` hold back of a resource (base units, or
/// milli-units).
fn reserved(k: &Kubelet, res: &str, milli: bool) -> i64 {
    [&k.config.kube_reserved, &k.config.system_reserved]
        .iter()
        .filter_map(|m| m.get(res))
        .filter_map(|v| {
            if milli {
                ferrokube_api::quantity::milli_value(v)
            } else {
                ferrokube_api::quantity::value(v)
            }
        })
        .sum()
}

/// The node's allocatable cpu in millicores: its cores less the reservations.
pub fn allocatable_cpu_milli(k: &Kubelet, info: &HostInfo) -> i64 {
    (info.cpus * 1000 - reserved(k, "cpu", true)).max(0)
}

/// The node's allocatable memory in bytes: capacity less the reservations and the
/// `memory.available` hard eviction threshold.
pub fn allocatable_memory(k: &Kubelet, info: &HostInfo) -> i64 {
    (info.memory_bytes - reserved(k, "memory", false) - k.config.memory_eviction_bytes()).max(0)
}

/// The pressure signals: `(memory, disk, pid)` pressure against `evictionHard`.
pub fn pressure(k: &Kubelet) -> (bool, bool, bool) {
    use crate::eviction::Pressure;
    let met = crate::eviction::thresholds_met(k);
    let any = |p: Pressure| met.iter().any(|m| m.pressure == p);
    (
        any(Pressure::Memory),
        any(Pressure::Disk),
        any(Pressure::Pid),
    )
}

fn condition(kind: &str, on: bool, reason: &str, message: &str, now: &Time) -> NodeCondition {
    NodeCondition {
        type_: kind.into(),
        status: if on { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

/// The four conditions with upstream's reasons and messages.
async fn conditions(k: &Kubelet, now: &Time) -> Vec<NodeCondition> {
    let (memory, disk, pid) = pressure(k);
    let runtime = k.runtime_ready().await;
    let mut out = vec![
        if memory {
            condition(
                "MemoryPressure",
                true,
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
                now,
            )
        } else {
            condition(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                now,
            )
        },
        if disk {
            condition(
                "DiskPressure",
                true,
                "KubeletHasDiskPressure",
                "kubelet has disk pressure",
                now,
            )
        } else {
            condition(
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
                now,
            )
        },
        if pid {
            condition(
                "PIDPressure",
                true,
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
                now,
            )
        } else {
            condition(
                "PIDPressure",
                false,
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
                now,
            )
        },
    ];
    out.push(match runtime {
        Ok(()) => condition(
            "Ready",
            true,
            "KubeletReady",
            "kubelet is posting ready status",
            now,
        ),
        Err(why) => condition("Ready", false, "KubeletNotReady", &why, now),
    });
    out
}

/// Keeps `lastTransitionTime` of conditions whose status did not change.
fn carry_transitions(new: &mut [NodeCondition], old: Option<&Vec<NodeCondition>>) {
    let Some(old) = old else { return };
    for c in new {
        if let Some(o) = old.iter().find(|o| o.type_ == c.type_) {
            if o.status == c.status {
                c.last_transition_time.clone_from(&o.last_transition_time);
            }
        }
    }
}

impl Kubelet {
    /// The node's status as the setters compute it now.
    pub async fn node_status(&self, old: Option<&NodeStatus>) -> NodeStatus {
        let info = &self.host;
        let now = Time(Timestamp::now());
        let (capacity, allocatable) = resources(self, info);
        let mut conds = conditions(self, &now).await;
        carry_transitions(&mut conds, old.and_then(|s| s.conditions.as_ref()));
        let mut images: Vec<ContainerImage> = self
            .images
            .lock()
            .iter()
            .map(|(names, size)| ContainerImage {
                names: Some(names.clone()),
                size_bytes: Some(*size),
            })
            .collect();
        images.sort_by_key(|i| std::cmp::Reverse(i.size_bytes));
        images.truncate(50);
        NodeStatus {
            capacity: Some(capacity),
            allocatable: Some(allocatable),
            conditions: Some(conds),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: self.opts.node_ip.to_string(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: self.opts.hostname.clone(),
                },
            ]),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: i32::from(self.config.port),
                }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: match std::env::consts::ARCH {
                    "x86_64" => "amd64".into(),
                    "aarch64" => "arm64".into(),
                    other => other.into(),
                },
                boot_id: info.boot_id.clone(),
                container_runtime_version: self.runtime_version.clone(),
                kernel_version: info.kernel_version.clone(),
                kube_proxy_version: String::new(),
                kubelet_version: KUBELET_VERSION.into(),
                machine_id: info.machine_id.clone(),
                operating_system: "linux".into(),
                os_image: info.os_image.clone(),
                system_uuid: info.system_uuid.clone(),
                swap: None,
            }),
            images: Some(images),
            ..NodeStatus::default()
        }
    }

    /// Creates the Node object, or adopts the existing one (a restart).
    pub async fn register(&self) -> Result<Node, kube::Error> {
        let api: Api<Node> = Api::all(self.client.clone());
        let name = &self.opts.node_name;
        let node = Node {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(labels(name)),
                annotations: Some(
                    [(
                        "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                        "true".to_string(),
                    )]
                    .into_iter()
                    .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                taints: (!self.config.register_with_taints.is_empty())
                    .then(|| self.config.register_with_taints.clone()),
                provider_id: self.config.provider_id.clone(),
                ..NodeSpec::default()
            }),
            status: Some(self.node_status(None).await),
        };
        match api.create(&PostParams::default(), &node).await {
            Ok(n) => {
                tracing::info!(node = %name, "node registered");
                Ok(n)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                tracing::info!(node = %name, "node already registered");
                api.get(name).await
            }
            Err(e) => Err(e),
        }
    }

    /// Reports the node status every `nodeStatusUpdateFrequency`: patched when it
    /// changed, and at least every `nodeStatusReportFrequency`.
    pub async fn run_status(self: Arc<Self>, mut node: Node) {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut last_report = Instant::now();
        let mut stop = self.stop.clone();
        let started = Instant::now();
        loop {
            let old = node.status.clone();
            let mut status = self.node_status(old.as_ref()).await;
            let changed =
                strip_heartbeats(&status) != old.as_ref().map(strip_heartbeats).unwrap_or_default();
            if changed || last_report.elapsed() >= self.config.node_status_report_frequency {
                if let Some(o) = old.as_ref() {
                    // Keep what others set (volumes, …) that the kubelet does not own.
                    status.volumes_attached.clone_from(&o.volumes_attached);
                    status.volumes_in_use.clone_from(&o.volumes_in_use);
                }
                let patch = serde_json::json!({ "status": status });
                match api
                    .patch_status(
                        &self.opts.node_name,
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                {
                    Ok(n) => {
                        node = n;
                        last_report = Instant::now();
                    }
                    Err(e) => tracing::warn!(error = %e, "updating node status"),
                }
            }
            // Upstream's fastStatusUpdateOnce: until the node is reported Ready (for at
            // most 2 minutes), check every 100 ms so Ready is reported as soon as the
            // runtime and network allow, not a whole update period later.
            let reported_ready = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let wait = if !reported_ready && started.elapsed() < Duration::from_secs(120) {
                Duration::from_millis(100).min(self.config.node_status_update_frequency)
            } else {
                self.config.node_status_update_frequency
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Renews `kube-node-lease/<node>` every quarter of its duration (10 s for 40 s).
    pub async fn run_lease(self: Arc<Self>, node: Node) {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let name = self.opts.node_name.clone();
        let duration = self.config.node_lease_duration_seconds;
        let interval = Duration::from_millis(u64::try_from(duration).unwrap_or(40) * 250);
        let owner = OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: name.clone(),
            uid: node.metadata.uid.clone().unwrap_or_default(),
            ..OwnerReference::default()
        };
        let mut stop = self.stop.clone();
        loop {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some("kube-node-lease".into()),
                    owner_references: (!owner.uid.is_empty()).then(|| vec![owner.clone()]),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(name.clone()),
                    lease_duration_seconds: Some(duration),
                    renew_time: Some(MicroTime(Timestamp::now())),
                    ..LeaseSpec::default()
                }),
            };
            let result = match api.get_opt(&name).await {
                Ok(Some(mut existing)) => {
                    existing.spec = lease.spec.clone();
                    api.replace(&name, &PostParams::default(), &existing)
                        .await
                        .map(|_| ())
                }
                Ok(None) => api.create(&PostParams::default(), &lease).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "renewing the node lease");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// A status without heartbeat times, to tell a real change from a heartbeat.
fn strip_heartbeats(s: &NodeStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(conds) = v.get_mut("conditions").and_then(|c| c.as_array_mut()) {
        for c in conds {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastHeartbeatTime");
            }
        }
    }
    for k in ["volumesAttached", "volumesInUse"] {
        if let Some(o) = v.as_object_mut() {
            o.remove(k);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_are_not_changes() {
        let now = Time(Timestamp::now());
        let a = NodeStatus {
            conditions: Some(vec![condition("Ready", true, "KubeletReady", "m", &now)]),
            ..NodeStatus::default()
        };
        let mut b = a.clone();
        if let Some(c) = b.conditions.as_mut() {
            c[0].last_heartbeat_time = Some(Time(Timestamp::UNIX_EPOCH));
        }
        assert_eq!(strip_heartbeats(&a), strip_heartbeats(&b));
        let mut c = a.clone();
        if let Some(cs) = c.conditions.as_mut() {
            cs[0].status = "False".into();
        }
        assert_ne!(strip_heartbeats(&a), strip_heartbeats(&c));
        let mut d = vec![condition(
            "Ready",
            true,
            "KubeletReady",
            "m",
            &Time(Timestamp::UNIX_EPOCH),
        )];
        carry_transitions(&mut d, a.conditions.as_ref());
        assert_eq!(d[0].last_transition_time, Some(now));
    }
}
