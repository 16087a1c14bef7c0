//! The pod status the kubelet reports, as upstream's `kubelet_pods.go`
//! `generateAPIPodStatus`/`getPhase` and `status/generate.go` compute it: phase,
//! the kubelet-owned conditions (PodReadyToStartContainers, Initialized,
//! ContainersReady, Ready), container statuses with state/lastState/restartCount/
//! image/imageID/containerID, pod and host IPs, start time and QoS class.

use std::collections::HashMap;

use ferrokube_cri::v1 as cri;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
    ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The conditions the kubelet owns; others (PodScheduled, DisruptionTarget, readiness
/// gates) are left as they are.
pub const OWNED_CONDITIONS: &[&str] = &[
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

/// What the kubelet observed of a pod in the runtime.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// The current sandbox: ready, and its IPs.
    pub sandbox_ready: bool,
    pub pod_ips: Vec<String>,
    /// Per container name, its CRI statuses, newest first.
    pub containers: HashMap<String, Vec<cri::ContainerStatus>>,
    /// Why a container is not running (`ContainerCreating`, `CrashLoopBackOff`,
    /// `ErrImagePull`, …) and the message.
    pub waiting: HashMap<String, (String, String)>,
    /// An init container failed under restartPolicy Never: the pod is Failed.
    pub init_failed: bool,
    /// Per running container with probes: started (startup probe passed) and ready
    /// (readiness probe passed); a container not listed is both while running.
    pub started: HashMap<String, bool>,
    pub ready: HashMap<String, bool>,
    /// Per running container, the resources applied to it (`containerStatuses[].resources`).
    pub resources: HashMap<String, Option<ResourceRequirements>>,
    /// Why the last in-place resize failed (`PodResizeInProgress`, reason Error).
    pub resize_error: Option<String>,
    /// Why a resize waits (`PodResizePending`: `Infeasible` or `Deferred`, message).
    pub resize_pending: Option<(&'static str, String)>,
}

fn time_ns(ns: i64) -> Option<Time> {
    if ns <= 0 {
        return None;
    }
    Timestamp::from_nanosecond(i128::from(ns)).ok().map(Time)
}

fn terminated(s: &cri::ContainerStatus) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: s.exit_code,
        reason: Some(if s.reason.is_empty() {
            if s.exit_code == 0 {
                "Completed"
            } else {
                "Error"
            }
            .to_string()
        } else {
            s.reason.clone()
        }),
        message: (!s.message.is_empty()).then(|| s.message.clone()),
        started_at: time_ns(s.started_at),
        finished_at: time_ns(s.finished_at),
        container_id: Some(format!("containerd://{}", s.id)),
        signal: None,
    }
}

fn state_of(s: &cri::ContainerStatus) -> ContainerState {
    match cri::ContainerState::try_from(s.state) {
        Ok(cri::ContainerState::ContainerRunning) => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: time_ns(s.started_at),
            }),
            ..ContainerState::default()
        },
        Ok(cri::ContainerState::ContainerExited) => ContainerState {
            terminated: Some(terminated(s)),
            ..ContainerState::default()
        },
        _ => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("ContainerCreating".into()),
                message: None,
            }),
            ..ContainerState::default()
        },
    }
}

pub fn is_running(s: &cri::ContainerStatus) -> bool {
    s.state == cri::ContainerState::ContainerRunning as i32
}

pub fn is_exited(s: &cri::ContainerStatus) -> bool {
    s.state == cri::ContainerState::ContainerExited as i32
}

fn restart_count(s: &cri::ContainerStatus) -> i32 {
    s.annotations
        .get(crate::runtime::RESTART_COUNT)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The cpu and memory requests and limits of `r` (what a running container's status
/// reports as applied).
fn cpu_and_memory(r: Option<&ResourceRequirements>) -> ResourceRequirements {
    let pick = |m: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >| {
        let kept: std::collections::BTreeMap<_, _> = m
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.as_str() == "cpu" || k.as_str() == "memory")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (!kept.is_empty()).then_some(kept)
    };
    ResourceRequirements {
        requests: pick(r.and_then(|r| r.requests.as_ref())),
        limits: pick(r.and_then(|r| r.limits.as_ref())),
        ..ResourceRequirements::default()
    }
}

fn container_status(c: &Container, o: &Observed, init: bool) -> ContainerStatus {
    let history = o
        .containers
        .get(&c.name)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let image = c.image.clone().unwrap_or_default();
    let waiting = o.waiting.get(&c.name);
    let mut st = ContainerStatus {
        name: c.name.clone(),
        image: image.clone(),
        image_id: String::new(),
        ready: false,
        restart_count: 0,
        started: Some(false),
        ..ContainerStatus::default()
    };
    match history.first() {
        None => {
            let (reason, message) = waiting.cloned().unwrap_or_else(|| {
                (
                    (if init {
                        "PodInitializing"
                    } else {
                        "ContainerCreating"
                    })
                    .into(),
                    String::new(),
                )
            });
            st.state = Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason),
                    message: (!message.is_empty()).then_some(message),
                }),
                ..ContainerState::default()
            });
        }
        Some(latest) => {
            st.container_id = Some(format!("containerd://{}", latest.id));
            st.image_id = latest.image_ref.clone();
            st.restart_count = restart_count(latest);
            let running = is_running(latest);
            // Probes decide for containers that have them (init containers have none).
            let probed =
                |m: &HashMap<String, bool>| init || m.get(&c.name).copied().unwrap_or(true);
            st.started = Some(running && probed(&o.started));
            st.ready = running && probed(&o.ready);
            match (is_exited(latest), waiting) {
                // Exited and waiting to restart: Waiting with the last run as lastState.
                (true, Some((reason, message))) => {
                    st.state = Some(ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some(reason.clone()),
                            message: (!message.is_empty()).then(|| message.clone()),
                        }),
                        ..ContainerState::default()
                    });
                    st.last_state = Some(ContainerState {
                        terminated: Some(terminated(latest)),
                        ..ContainerState::default()
                    });
                }
                _ => {
                    st.state = Some(state_of(latest));
                    if let Some(prev) = history.get(1) {
                        st.last_state = Some(ContainerState {
                            terminated: Some(terminated(prev)),
                            ..ContainerState::default()
                        });
                    }
                }
            }
            if init && is_exited(latest) && latest.exit_code == 0 {
                st.ready = true;
            }
            if running {
                st.resources = o.resources.get(&c.name).map(|r| cpu_and_memory(r.as_ref()));
            }
        }
    }
    st
}

/// `getPhase`.
fn phase(
    pod: &Pod,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
) -> &'static str {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into());
    let init_done = init_statuses.iter().all(|s| {
        s.state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0)
    });
    if !init_done {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let st = s.state.clone().unwrap_or_default();
        if st.running.is_some() {
            running += 1;
        } else if let Some(t) = st.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if st.waiting.is_some() {
            match s.last_state.as_ref().and_then(|l| l.terminated.as_ref()) {
                Some(t) => {
                    stopped += 1;
                    if t.exit_code == 0 {
                        succeeded += 1;
                    }
                }
                None => waiting += 1,
            }
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        if policy == "Always" {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else {
        "Pending"
    }
}

fn cond(
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: &Time,
) -> PodCondition {
    PodCondition {
        type_: kind.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.map(str::to_string),
        message,
        last_probe_time: None,
        last_transition_time: Some(now.clone()),
        observed_generation: None,
    }
}

/// The pod's status from what was observed; `old` carries start time, others'
/// conditions and transition times.
pub fn pod_status(pod: &Pod, o: &Observed, host_ip: &str) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let old = pod.status.clone().unwrap_or_default();
    let now = Time(Timestamp::now());
    let init: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| container_status(c, o, true))
        .collect();
    let regular: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(c, o, false))
        .collect();
    // Ephemeral containers are never ready (they have no probes and serve nothing).
    let ephemeral: Vec<ContainerStatus> = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(|e| {
            let mut st = container_status(&crate::runtime::ephemeral_container(e), o, false);
            st.ready = false;
            st
        })
        .collect();
    // A terminal phase is never left (as upstream's status manager): an evicted or
    // rejected pod stays Failed while its containers stop.
    let phase = if let Some(p) = old
        .phase
        .clone()
        .filter(|p| p == "Failed" || p == "Succeeded")
    {
        p
    } else if o.init_failed {
        "Failed".to_string()
    } else {
        phase(pod, &init, &regular).to_string()
    };
    let terminal = phase == "Succeeded" || phase == "Failed";
    let pending_init: Vec<String> = init
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.clone())
        .collect();
    let unready: Vec<String> = regular
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.clone())
        .collect();
    let mut conditions = vec![cond(
        "PodReadyToStartContainers",
        o.sandbox_ready,
        None,
        None,
        &now,
    )];
    conditions.push(if pending_init.is_empty() {
        cond("Initialized", true, None, None, &now)
    } else {
        cond(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                pending_init.join(" ")
            )),
            &now,
        )
    });
    let (ready, why, text) = if terminal {
        (false, Some("PodCompleted"), None)
    } else if unready.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    conditions.push(cond("ContainersReady", ready, why, text.clone(), &now));
    if let Some((reason, message)) = &o.resize_pending {
        conditions.push(cond(
            "PodResizePending",
            true,
            Some(reason),
            Some(message.clone()),
            &now,
        ));
    }
    if let Some(e) = &o.resize_error {
        let mut c = cond(
            "PodResizeInProgress",
            true,
            Some("Error"),
            Some(e.clone()),
            &now,
        );
        c.observed_generation = None;
        conditions.push(c);
    }
    // Readiness gates: Ready also needs every gate's condition True.
    let gates_ok = spec.readiness_gates.iter().flatten().all(|g| {
        old.conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == g.condition_type && c.status == "True")
    });
    if ready && !gates_ok {
        conditions.push(cond(
            "Ready",
            false,
            Some("ReadinessGatesNotReady"),
            Some("the status of pod readiness gate is not \"True\"".into()),
            &now,
        ));
    } else {
        conditions.push(cond("Ready", ready, why, text, &now));
    }
    for c in &mut conditions {
        if let Some(prev) = old.conditions.iter().flatten().find(|p| p.type_ == c.type_) {
            if prev.status == c.status {
                c.last_transition_time
                    .clone_from(&prev.last_transition_time);
            }
        }
    }
    let pod_ips = if o.pod_ips.is_empty() {
        old.pod_ips
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.ip)
            .collect()
    } else {
        o.pod_ips.clone()
    };
    let host_network = spec.host_network.unwrap_or(false);
    let pod_ips = if host_network {
        vec![host_ip.to_string()]
    } else {
        pod_ips
    };
    PodStatus {
        phase: Some(phase),
        conditions: Some(conditions),
        host_ip: Some(host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: host_ip.to_string(),
        }]),
        pod_ip: pod_ips.first().cloned(),
        pod_ips: (!pod_ips.is_empty())
            .then(|| pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
        start_time: old.start_time.clone().or(Some(now)),
        qos_class: Some(crate::runtime::qos_class(pod).to_string()),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(regular),
        ephemeral_container_statuses: (!ephemeral.is_empty()).then_some(ephemeral),
        nominated_node_name: old.nominated_node_name.clone(),
        ..PodStatus::default()
    }
}

/// Writes `status` (a strategic merge patch of the `status` subresource, so that
/// others' conditions stay) to the API's copy of `pod`.
pub async fn patch(
    client: &kube::Client,
    pod: &Pod,
    status: &serde_json::Value,
) -> Result<(), kube::Error> {
    let api: kube::Api<Pod> = kube::Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
    );
    api.patch_status(
        pod.metadata.name.as_deref().unwrap_or_default(),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Strategic(&serde_json::json!({ "status": status })),
    )
    .await
    .map(|_| ())
}

/// The status with times of the kubelet's own making removed, to tell whether a
/// patch is needed.
pub fn fingerprint(s: &PodStatus) -> String {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(conds) = v.get_mut("conditions").and_then(|c| c.as_array_mut()) {
        for c in conds {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastTransitionTime");
            }
        }
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(id: &str, code: i32, restart: u32) -> cri::ContainerStatus {
        cri::ContainerStatus {
            id: id.into(),
            state: cri::ContainerState::ContainerExited as i32,
            exit_code: code,
            annotations: [(
                crate::runtime::RESTART_COUNT.to_string(),
                restart.to_string(),
            )]
            .into_iter()
            .collect(),
            ..cri::ContainerStatus::default()
        }
    }

    fn pod(policy: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "c", "image": "busybox"}]}
        }))
        .unwrap()
    }

    #[test]
    fn phases_follow_restart_policy() {
        let mut o = Observed {
            sandbox_ready: true,
            ..Observed::default()
        };
        assert_eq!(
            pod_status(&pod("Always"), &o, "1.2.3.4").phase.as_deref(),
            Some("Pending")
        );
        o.containers.insert("c".into(), vec![exited("a", 0, 0)]);
        assert_eq!(
            pod_status(&pod("Never"), &o, "h").phase.as_deref(),
            Some("Succeeded")
        );
        o.containers.insert("c".into(), vec![exited("a", 1, 0)]);
        assert_eq!(
            pod_status(&pod("Never"), &o, "h").phase.as_deref(),
            Some("Failed")
        );
        assert_eq!(
            pod_status(&pod("OnFailure"), &o, "h").phase.as_deref(),
            Some("Running")
        );
        // Crash looping: Waiting with the last run as lastState, restartCount kept.
        o.waiting.insert(
            "c".into(),
            (
                "CrashLoopBackOff".into(),
                "back-off 10s restarting failed container=c".into(),
            ),
        );
        o.containers
            .insert("c".into(), vec![exited("b", 1, 3), exited("a", 1, 2)]);
        let s = pod_status(&pod("Always"), &o, "h");
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let cs = &s.container_statuses.unwrap()[0];
        assert_eq!(cs.restart_count, 3);
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        assert_eq!(
            cs.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            1
        );
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [c]")
        );
    }
}
