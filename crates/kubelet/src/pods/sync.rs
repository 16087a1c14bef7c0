//! One pod's worker: upstream's `SyncPod` (volumes → sandbox → init containers in
//! order → containers, with restart policy and CrashLoopBackOff/ImagePullBackOff
//! back-off) and `SyncTerminatingPod` (graceful stop, then the final delete of the pod
//! object), reporting the pod's status after every pass.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrokube_cri::{v1 as cri, CallExt};
use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use kube::api::{Api, DeleteParams, Preconditions};
use tokio::sync::{watch, Notify};

use crate::events::container_field;
use crate::runtime::{self, ContainerInputs};
use crate::status::{self, Observed};
use crate::{static_pods, volumes, Kubelet};

const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A container's restart (or image pull) back-off.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    delay: Duration,
    since: Instant,
}

/// The worker of one pod.
pub struct PodWorker {
    k: Arc<Kubelet>,
    uid: String,
    pod: watch::Receiver<Option<Pod>>,
    wake: Arc<Notify>,
    /// Set by the mirror pod reconciler: the status is written again.
    resync: Arc<AtomicBool>,
    /// A static pod's last computed status: its object (from the manifest) has none.
    static_status: Option<k8s_openapi::api::core::v1::PodStatus>,
    /// The pod passed admission (it is not checked again).
    admitted: bool,
    restart_backoff: HashMap<String, Backoff>,
    image_backoff: HashMap<String, Backoff>,
    waiting: HashMap<String, (String, String)>,
    last_status: Option<String>,
    last_pod: Option<Pod>,
    reported_mount_error: Option<String>,
    /// Probe outcomes, written by the prober tasks.
    probe_results: Arc<crate::probes::ProbeResults>,
    /// The prober task of each (container, probe kind) and the container ID it probes.
    probers: HashMap<(String, crate::probes::Kind), (String, tokio::task::AbortHandle)>,
    /// A container was started during this pass (its status is read again before
    /// reporting, so Running shows without waiting for the next relist).
    started_now: bool,
    /// Resources applied in place (`pods/resize`) to a running container, by ID.
    applied: HashMap<String, Option<ResourceRequirements>>,
}

impl Drop for PodWorker {
    fn drop(&mut self) {
        for (_, (_, task)) in self.probers.drain() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for PodWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodWorker").field("uid", &self.uid).finish()
    }
}

fn policy(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into())
}

/// The seconds a stopping pod's containers get: the deletion's grace period, else the
/// pod's `terminationGracePeriodSeconds`, else 30.
fn grace_period(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
}

fn pod_desc(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

impl PodWorker {
    pub fn new(
        k: Arc<Kubelet>,
        uid: String,
        pod: watch::Receiver<Option<Pod>>,
        wake: Arc<Notify>,
        resync: Arc<AtomicBool>,
    ) -> PodWorker {
        PodWorker {
            k,
            uid,
            pod,
            wake,
            resync,
            static_status: None,
            admitted: false,
            restart_backoff: HashMap::new(),
            image_backoff: HashMap::new(),
            waiting: HashMap::new(),
            last_status: None,
            last_pod: None,
            reported_mount_error: None,
            probe_results: Arc::default(),
            probers: HashMap::new(),
            started_now: false,
            applied: HashMap::new(),
        }
    }

    /// Syncs the pod on every change, runtime event or timer, until it is gone.
    pub async fn run(mut self) {
        let mut stop = self.k.stop.clone();
        loop {
            let pod = self.pod.borrow_and_update().clone();
            if self.resync.swap(false, Ordering::Relaxed) {
                self.last_status = None;
            }
            let next = match pod {
                Some(p) => {
                    let next = self.sync(&p).await;
                    self.last_pod = Some(p);
                    next
                }
                None => {
                    self.gone().await;
                    return;
                }
            };
            tokio::select! {
                changed = self.pod.changed() => if changed.is_err() { return },
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(next) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    fn rt(&self) -> ferrokube_cri::RuntimeServiceClient<ferrokube_cri::Channel> {
        self.k.cri.runtime.clone()
    }

    /// The pod's sandboxes (newest first) and containers, from the runtime.
    async fn runtime_state(
        &self,
    ) -> Result<(Vec<cri::PodSandbox>, Vec<cri::Container>), ferrokube_cri::Error> {
        let labels: HashMap<String, String> = [(runtime::POD_UID.to_string(), self.uid.clone())]
            .into_iter()
            .collect();
        let mut rt = self.rt();
        let mut sandboxes = rt
            .list_pod_sandbox(cri::ListPodSandboxRequest {
                filter: Some(cri::PodSandboxFilter {
                    label_selector: labels.clone(),
                    ..cri::PodSandboxFilter::default()
                }),
            })
            .await
            .call("ListPodSandbox")?
            .items;
        sandboxes.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        let containers = rt
            .list_containers(cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    label_selector: labels,
                    ..cri::ContainerFilter::default()
                }),
            })
            .await
            .call("ListContainers")?
            .containers;
        Ok((sandboxes, containers))
    }

    /// The pod object was deleted from the API (or never to be seen again): stop and
    /// remove everything of it.
    async fn gone(&mut self) {
        if let Ok((sandboxes, containers)) = self.runtime_state().await {
            // A static pod whose manifest was removed stops gracefully, as a deleted
            // API pod does; an API pod seen gone was already stopped (or forced).
            if let Some(pod) = self.last_pod.clone().filter(static_pods::is_static) {
                self.kill(&containers, grace_period(&pod), Some(&pod)).await;
            }
            super::remove_from_runtime(&mut self.rt(), &sandboxes, &containers).await;
        }
        super::clean_up(&self.k, &self.uid);
    }

    /// Stops running containers (concurrently) with `grace` seconds each; events when
    /// a pod is given.
    async fn kill(&self, containers: &[cri::Container], grace: i64, pod: Option<&Pod>) {
        let running: Vec<&cri::Container> = containers
            .iter()
            .filter(|c| c.state == cri::ContainerState::ContainerRunning as i32)
            .collect();
        let mut tasks = Vec::new();
        for c in running {
            let name = c
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default();
            if let Some(p) = pod {
                self.k.events.pod(
                    p,
                    container_field(false, &name),
                    false,
                    "Killing",
                    format!("Stopping container {name}"),
                );
                self.pre_stop(p, &name, c).await;
            }
            let mut rt = self.rt();
            let id = c.id.clone();
            tasks.push(tokio::spawn(async move {
                rt.stop_container(cri::StopContainerRequest {
                    container_id: id,
                    timeout: grace,
                })
                .await
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Runs a container's preStop hook (exec, httpGet or sleep); a failure is a
    /// FailedPreStopHook event and the container is stopped all the same.
    async fn pre_stop(&self, pod: &Pod, name: &str, c: &cri::Container) {
        let Some(spec) = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == name))
        else {
            return;
        };
        let Some(handler) = spec.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) else {
            return;
        };
        let pod_ip = match handler.http_get {
            Some(_) => self
                .sandbox_ips(&c.pod_sandbox_id)
                .await
                .into_iter()
                .next()
                .unwrap_or_default(),
            None => String::new(),
        };
        // A preStop sleep counts against the pod's grace period, as upstream.
        let bound = Duration::from_secs(u64::try_from(grace_period(pod)).unwrap_or(0).max(1));
        let r = tokio::time::timeout(
            bound.max(Duration::from_secs(1)),
            super::hooks::run(&mut self.rt(), handler, spec, &c.id, &pod_ip),
        )
        .await
        .unwrap_or_else(|_| Err("the hook did not finish within the grace period".into()));
        if let Err(e) = r {
            self.k.events.pod(
                pod,
                container_field(false, name),
                true,
                "FailedPreStopHook",
                format!("PreStopHook failed: {e}"),
            );
        }
    }

    /// One pass; returns when to look again.
    async fn sync(&mut self, pod: &Pod) -> Duration {
        let (sandboxes, containers) = match self.runtime_state().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(pod = %pod_desc(pod), error = %e, "reading the runtime");
                return Duration::from_secs(2);
            }
        };
        let api_phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some()
            || api_phase == "Succeeded"
            || api_phase == "Failed"
        {
            return self.terminate(pod, &sandboxes, &containers).await;
        }
        // Admission of a pod that never ran here: refused under node pressure.
        if !self.admitted && sandboxes.is_empty() && containers.is_empty() {
            if let Some(msg) = crate::eviction::admit(&self.k, pod) {
                self.reject(pod, "Evicted", &msg).await;
                return Duration::from_secs(2);
            }
        }
        self.admitted = true;
        let mut observed = Observed::default();
        let vols = match volumes::set_up(&self.k, pod).await {
            Ok(v) => {
                self.reported_mount_error = None;
                v
            }
            Err(e) => {
                let msg = e.to_string();
                if self.reported_mount_error.as_deref() != Some(msg.as_str()) {
                    self.k
                        .events
                        .pod(pod, None, true, "FailedMount", msg.clone());
                    self.reported_mount_error = Some(msg);
                }
                self.report(pod, &observed, &containers).await;
                return Duration::from_secs(5);
            }
        };
        // The sandbox: the newest, if ready; else a new one.
        let (sandbox_id, sandbox_config) = match sandboxes.first() {
            Some(s) if s.state == cri::PodSandboxState::SandboxReady as i32 => {
                let attempt = s.metadata.as_ref().map_or(0, |m| m.attempt);
                (s.id.clone(), runtime::sandbox_config(&self.k, pod, attempt))
            }
            current => {
                if current.is_some() && policy(pod) == "Never" && !containers.is_empty() {
                    // A dead sandbox of a pod that must not restart: report what ran.
                    self.report(pod, &observed, &containers).await;
                    return self.k.config.sync_frequency;
                }
                self.kill(&containers, 0, None).await;
                for s in &sandboxes {
                    let _ = self
                        .rt()
                        .stop_pod_sandbox(cri::StopPodSandboxRequest {
                            pod_sandbox_id: s.id.clone(),
                        })
                        .await;
                }
                let attempt = current
                    .and_then(|s| s.metadata.as_ref())
                    .map_or(0, |m| m.attempt + 1);
                let config = runtime::sandbox_config(&self.k, pod, attempt);
                let parent = config.linux.as_ref().map(|l| l.cgroup_parent.as_str());
                if let Err(e) = crate::cgroups::set_pids_limit(&self.k, parent.unwrap_or_default())
                {
                    tracing::warn!(pod = %pod_desc(pod), error = %e, "setting the pod's pids limit");
                }
                match self
                    .rt()
                    .run_pod_sandbox(cri::RunPodSandboxRequest {
                        config: Some(config.clone()),
                        runtime_handler: String::new(),
                    })
                    .await
                    .call("RunPodSandbox")
                {
                    Ok(r) => (r.pod_sandbox_id, config),
                    Err(e) => {
                        self.k.events.pod(
                            pod,
                            None,
                            true,
                            "FailedCreatePodSandBox",
                            format!("Failed to create pod sandbox: {e}"),
                        );
                        self.report(pod, &observed, &containers).await;
                        return Duration::from_secs(5);
                    }
                }
            }
        };
        observed.sandbox_ready = true;
        observed.pod_ips = self.sandbox_ips(&sandbox_id).await;
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let pod_dir = volumes::pod_dir(&self.k, &self.uid);
        let etc_hosts = if host_network {
            None
        } else {
            let path = pod_dir.join("etc-hosts");
            let text = runtime::etc_hosts(pod, &observed.pod_ips);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                // A pod without volumes has no directory yet; the bind mount of a
                // missing source would make one where the file belongs.
                let written =
                    std::fs::create_dir_all(&pod_dir).and_then(|()| std::fs::write(&path, &text));
                if let Err(e) = written {
                    tracing::warn!(error = %e, "writing the pod's hosts file");
                }
            }
            Some(path)
        };
        let in_sandbox: Vec<cri::Container> = containers
            .iter()
            .filter(|c| c.pod_sandbox_id == sandbox_id)
            .cloned()
            .collect();
        let spec = pod.spec.clone().unwrap_or_default();
        let mut next = self.k.config.sync_frequency;
        let ctx = StartContext {
            sandbox_id: sandbox_id.clone(),
            sandbox_config,
            volumes: &vols,
            etc_hosts,
            pod_ip: observed.pod_ips.first().cloned().unwrap_or_default(),
        };
        // Init containers, in order; the next waits for the previous to succeed.
        let mut init_done = true;
        for c in spec.init_containers.iter().flatten() {
            let latest = newest(&in_sandbox, &c.name);
            match latest {
                Some(l) if l.state == cri::ContainerState::ContainerExited as i32 => {
                    let code = self.exit_code(&l.id).await;
                    if code == 0 {
                        continue;
                    }
                    init_done = false;
                    if policy(pod) == "Never" {
                        observed.init_failed = true;
                        break;
                    }
                    if let Some(wait) = self.restart(pod, c, true, &ctx, &containers).await {
                        next = next.min(wait);
                    }
                }
                Some(_) => {
                    init_done = false;
                    next = next.min(Duration::from_secs(1));
                }
                None => {
                    init_done = false;
                    self.start(pod, c, true, &ctx, &containers).await;
                    next = next.min(Duration::from_secs(1));
                }
            }
            break;
        }
        if init_done {
            for c in &spec.containers {
                match newest(&in_sandbox, &c.name) {
                    None => {
                        if !self.start(pod, c, false, &ctx, &containers).await {
                            next = next.min(self.wait_hint(&c.name));
                        }
                    }
                    Some(l) if l.state == cri::ContainerState::ContainerRunning as i32 => {
                        let want = runtime::container_hash(c);
                        let have = l.annotations.get(runtime::CONTAINER_HASH);
                        if have != Some(&want) && have != Some(&runtime::legacy_container_hash(c)) {
                            let grace = spec.termination_grace_period_seconds.unwrap_or(30);
                            self.kill_to_restart(pod, c, l, "definition changed", grace)
                                .await;
                            next = Duration::ZERO;
                            continue;
                        }
                        match self.resize(pod, c, l, &ctx, &containers).await {
                            Resize::Restarted => {
                                next = Duration::ZERO;
                                continue;
                            }
                            Resize::Failed(msg) => {
                                observed.resize_error = Some(msg);
                                next = next.min(Duration::from_secs(5));
                            }
                            Resize::Pending(reason, msg) => {
                                observed.resize_pending = Some((reason, msg));
                                next = next.min(Duration::from_secs(5));
                            }
                            Resize::Applied => {}
                        }
                        if let Some(r) = self.applied.get(&l.id) {
                            observed.resources.insert(c.name.clone(), r.clone());
                        }
                        let ip = observed.pod_ips.first().cloned().unwrap_or_default();
                        self.ensure_probers(pod, c, &l.id, &ip);
                        if let Some(kind) = self.probe_results.must_restart(c, &l.id) {
                            let what = if kind == crate::probes::Kind::Startup {
                                "startup"
                            } else {
                                "liveness"
                            };
                            let grace = kind
                                .of(c)
                                .and_then(|p| p.termination_grace_period_seconds)
                                .or(spec.termination_grace_period_seconds)
                                .unwrap_or(30);
                            let why = format!("failed {what} probe");
                            self.kill_to_restart(pod, c, l, &why, grace).await;
                            next = Duration::ZERO;
                            continue;
                        }
                        self.observe_probes(&mut observed, c, &l.id);
                    }
                    Some(l) if l.state == cri::ContainerState::ContainerExited as i32 => {
                        let code = self.exit_code(&l.id).await;
                        let restart = match policy(pod).as_str() {
                            "Never" => false,
                            "OnFailure" => code != 0,
                            _ => true,
                        };
                        if restart {
                            if let Some(wait) = self.restart(pod, c, false, &ctx, &containers).await
                            {
                                next = next.min(wait);
                            }
                        }
                    }
                    Some(_) => next = next.min(Duration::from_secs(1)),
                }
            }
        }
        // Ephemeral containers start once and are never restarted.
        for ec in spec.ephemeral_containers.iter().flatten() {
            if newest(&in_sandbox, &ec.name).is_none() {
                let c = runtime::ephemeral_container(ec);
                if !self.start(pod, &c, false, &ctx, &containers).await {
                    next = next.min(self.wait_hint(&c.name));
                }
            }
        }
        self.gc_containers(&in_sandbox).await;
        let mut containers = containers;
        if std::mem::take(&mut self.started_now) {
            if let Ok((_, now)) = self.runtime_state().await {
                // What was just started runs now: report it, with what its probes
                // say of a new instance (not ready until a readiness probe passes).
                let now_in: Vec<cri::Container> = now
                    .iter()
                    .filter(|x| x.pod_sandbox_id == sandbox_id)
                    .cloned()
                    .collect();
                for c in &spec.containers {
                    if observed.ready.contains_key(&c.name) {
                        continue;
                    }
                    let Some(l) = newest(&now_in, &c.name) else {
                        continue;
                    };
                    if l.state == cri::ContainerState::ContainerRunning as i32 {
                        self.observe_probes(&mut observed, c, &l.id);
                    }
                }
                containers = now;
            }
        }
        let status = self.report(pod, &observed, &containers).await;
        if let Some(phase) = status {
            if phase == "Succeeded" || phase == "Failed" {
                // Terminal: nothing more runs; stop the sandbox (containers are done).
                let (_, now) = self.runtime_state().await.unwrap_or_default();
                self.kill(&now, 0, None).await;
                let _ = self
                    .rt()
                    .stop_pod_sandbox(cri::StopPodSandboxRequest {
                        pod_sandbox_id: sandbox_id.clone(),
                    })
                    .await;
            }
        }
        next
    }

    /// Whether the node can take the pod at its new requests (upstream's
    /// `canResizePod`): `Infeasible` when they exceed what the node can ever give,
    /// `Deferred` when the other pods bound here leave too little now.
    async fn resize_fits(&self, pod: &Pod) -> Option<Resize> {
        let requests = |p: &Pod| -> (i64, i64) {
            let spec = p.spec.as_ref();
            let containers = spec
                .map(|s| {
                    s.containers
                        .iter()
                        .chain(s.init_containers.iter().flatten())
                })
                .into_iter()
                .flatten();
            let mut sum = (0, 0);
            for c in containers {
                let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
                let get = |k: &str, milli: bool| {
                    req.and_then(|m| m.get(k)).and_then(|q| {
                        if milli {
                            ferrokube_api::quantity::milli_value(&q.0)
                        } else {
                            ferrokube_api::quantity::value(&q.0)
                        }
                    })
                };
                sum.0 += get("cpu", true).unwrap_or(0);
                sum.1 += get("memory", false).unwrap_or(0);
            }
            sum
        };
        let capacity = (
            crate::node::allocatable_cpu_milli(&self.k, &self.k.host),
            crate::node::allocatable_memory(&self.k, &self.k.host),
        );
        let wanted = requests(pod);
        for (name, want, cap) in [
            ("cpu", wanted.0, capacity.0),
            ("memory", wanted.1, capacity.1),
        ] {
            if want > cap {
                return Some(Resize::Pending(
                    "Infeasible",
                    format!("Node didn't have enough capacity: {name}, requested: {want}, capacity: {cap}"),
                ));
            }
        }
        let api: Api<Pod> = Api::all(self.k.client.clone());
        let lp = kube::api::ListParams::default()
            .fields(&format!("spec.nodeName={}", self.k.opts.node_name));
        let others = api.list(&lp).await.ok()?;
        let mut used = (0, 0);
        for p in others.items.iter().filter(|p| {
            p.metadata.uid != pod.metadata.uid
                && !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
        }) {
            let r = requests(p);
            used = (used.0 + r.0, used.1 + r.1);
        }
        for (name, want, have, cap) in [
            ("cpu", wanted.0, used.0, capacity.0),
            ("memory", wanted.1, used.1, capacity.1),
        ] {
            if want + have > cap {
                return Some(Resize::Pending(
                    "Deferred",
                    format!("Node didn't have enough resource: {name}, requested: {want}, used: {have}, capacity: {cap}"),
                ));
            }
        }
        None
    }

    /// Stops running container `l` of `c` so that it restarts, with the `Killing` event
    /// saying why.
    async fn kill_to_restart(
        &self,
        pod: &Pod,
        c: &Container,
        l: &cri::Container,
        why: &str,
        grace: i64,
    ) {
        self.k.events.pod(
            pod,
            container_field(false, &c.name),
            false,
            "Killing",
            format!("Container {} {why}, will be restarted", c.name),
        );
        self.kill(std::slice::from_ref(l), grace, None).await;
    }

    /// In-place resize (`pods/resize`): brings running container `l` to `c`'s resources,
    /// through the runtime (CRI UpdateContainerResources), or by a restart when a changed
    /// resource's resize policy is RestartContainer.
    async fn resize(
        &mut self,
        pod: &Pod,
        c: &Container,
        l: &cri::Container,
        ctx: &StartContext<'_>,
        all: &[cri::Container],
    ) -> Resize {
        let applied = match self.applied.get(&l.id) {
            Some(r) => r.clone(),
            None => {
                let r = match l.annotations.get(runtime::APPLIED_RESOURCES) {
                    Some(json) => serde_json::from_str(json).unwrap_or(None),
                    // Made before resizes were tracked: as its spec was then.
                    None => c.resources.clone(),
                };
                self.applied.insert(l.id.clone(), r.clone());
                r
            }
        };
        if applied == c.resources {
            return Resize::Applied;
        }
        let mut before = c.clone();
        before.resources = applied;
        let (old, new) = (
            runtime::resources_key(pod, &before),
            runtime::resources_key(pod, c),
        );
        let cpu_changed = old.0 != new.0 || old.1 != new.1 || old.2 != new.2;
        let memory_changed = old.3 != new.3;
        let restart_for = |resource: &str| {
            c.resize_policy
                .iter()
                .flatten()
                .any(|p| p.resource_name == resource && p.restart_policy == "RestartContainer")
        };
        if let Some(pending) = self.resize_fits(pod).await {
            return pending;
        }
        if (cpu_changed && restart_for("cpu")) || (memory_changed && restart_for("memory")) {
            let grace = pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30);
            self.kill_to_restart(pod, c, l, "resize requires restart", grace)
                .await;
            self.applied.remove(&l.id);
            self.start(pod, c, false, ctx, all).await;
            return Resize::Restarted;
        }
        if cpu_changed || memory_changed {
            let result = self
                .rt()
                .update_container_resources(cri::UpdateContainerResourcesRequest {
                    container_id: l.id.clone(),
                    linux: Some(runtime::linux_resources(pod, c)),
                    ..cri::UpdateContainerResourcesRequest::default()
                })
                .await
                .call("UpdateContainerResources");
            if let Err(e) = result {
                tracing::warn!(pod = %pod_desc(pod), container = %c.name, error = %e, "resizing a container");
                return Resize::Failed(format!("resizing container {}: {e}", c.name));
            }
        }
        self.applied.insert(l.id.clone(), c.resources.clone());
        // Status must show the new values even though nothing else changed.
        self.last_status = None;
        Resize::Applied
    }

    /// What the probes say of running instance `id` of `c`: started and ready.
    fn observe_probes(&self, observed: &mut Observed, c: &Container, id: &str) {
        observed
            .started
            .insert(c.name.clone(), self.probe_results.started(c, id));
        observed
            .ready
            .insert(c.name.clone(), self.probe_results.ready(c, id));
    }

    /// Starts the prober tasks of a running container instance (once per instance;
    /// those of an earlier instance are stopped).
    fn ensure_probers(
        &mut self,
        pod: &Pod,
        c: &k8s_openapi::api::core::v1::Container,
        id: &str,
        pod_ip: &str,
    ) {
        use crate::probes::{Kind, Prober};
        for kind in Kind::ALL {
            if kind.of(c).is_none() {
                continue;
            }
            let key = (c.name.clone(), kind);
            if self.probers.get(&key).is_some_and(|(cid, _)| cid == id) {
                continue;
            }
            if let Some((_, old)) = self.probers.remove(&key) {
                old.abort();
            }
            let prober = Prober {
                k: self.k.clone(),
                pod: pod.clone(),
                container: c.clone(),
                container_id: id.to_string(),
                pod_ip: pod_ip.to_string(),
                kind,
                results: self.probe_results.clone(),
                wake: self.wake.clone(),
            };
            let task = tokio::spawn(prober.run()).abort_handle();
            self.probers.insert(key, (id.to_string(), task));
        }
    }

    /// How long until a container waiting on a back-off may be tried again.
    fn wait_hint(&self, name: &str) -> Duration {
        self.image_backoff
            .get(name)
            .map_or(Duration::from_secs(1), |b| {
                b.delay
                    .saturating_sub(b.since.elapsed())
                    .max(Duration::from_millis(100))
            })
    }

    async fn sandbox_ips(&self, id: &str) -> Vec<String> {
        match self
            .rt()
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: id.to_string(),
                verbose: false,
            })
            .await
            .call("PodSandboxStatus")
        {
            Ok(r) => r
                .status
                .and_then(|s| s.network)
                .map(|n| {
                    let mut ips = vec![n.ip];
                    ips.extend(n.additional_ips.into_iter().map(|i| i.ip));
                    ips.retain(|i| !i.is_empty());
                    ips
                })
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    async fn exit_code(&self, id: &str) -> i32 {
        self.k
            .container_status(id)
            .await
            .map_or(-1, |s| s.exit_code)
    }

    /// Restarts an exited container unless it is backing off; `Some(wait)` when it
    /// is.
    async fn restart(
        &mut self,
        pod: &Pod,
        c: &Container,
        init: bool,
        ctx: &StartContext<'_>,
        all: &[cri::Container],
    ) -> Option<Duration> {
        if let Some(b) = self.restart_backoff.get(&c.name).copied() {
            let elapsed = b.since.elapsed();
            if elapsed < b.delay {
                let msg = format!(
                    "back-off {} restarting failed container={} pod={}",
                    human(b.delay),
                    c.name,
                    pod_desc(pod)
                );
                if self.waiting.get(&c.name).map(|w| w.0.as_str()) != Some("CrashLoopBackOff") {
                    self.k.events.pod(
                        pod,
                        container_field(init, &c.name),
                        true,
                        "BackOff",
                        "Back-off restarting failed container".to_string()
                            + &format!(" {} in pod {}", c.name, pod_desc(pod)),
                    );
                }
                self.waiting
                    .insert(c.name.clone(), ("CrashLoopBackOff".into(), msg));
                return Some(b.delay - elapsed);
            }
        }
        let delay = match self.restart_backoff.get(&c.name) {
            Some(b) if b.since.elapsed() < MAX_BACKOFF * 2 => (b.delay * 2).min(MAX_BACKOFF),
            _ => INITIAL_BACKOFF,
        };
        self.start(pod, c, init, ctx, all).await;
        self.restart_backoff.insert(
            c.name.clone(),
            Backoff {
                delay,
                since: Instant::now(),
            },
        );
        None
    }

    /// Pulls (per policy), creates and starts a container; false when it could not.
    async fn start(
        &mut self,
        pod: &Pod,
        c: &Container,
        init: bool,
        ctx: &StartContext<'_>,
        all: &[cri::Container],
    ) -> bool {
        let field = container_field(init, &c.name);
        let image_ref = match self.ensure_image(pod, c, init, &ctx.sandbox_config).await {
            Ok(r) => r,
            Err(()) => return false,
        };
        let restart_count = all
            .iter()
            .filter(|x| x.metadata.as_ref().is_some_and(|m| m.name == c.name))
            .filter_map(|x| {
                x.annotations
                    .get(runtime::RESTART_COUNT)
                    .and_then(|v| v.parse::<u32>().ok())
            })
            .max()
            .map_or(0, |n| n + 1);
        let env = match runtime::env::container_env(&self.k, pod, c).await {
            Ok(e) => e,
            Err(msg) => return self.failed(pod, field, &c.name, "CreateContainerConfigError", msg),
        };
        let log_dir = volumes::pod_dir(&self.k, &self.uid)
            .join("containers")
            .join(&c.name);
        let termination_log = std::fs::create_dir_all(&log_dir).ok().map(|()| {
            let p = log_dir.join(restart_count.to_string());
            let _ = std::fs::write(&p, b"");
            p
        });
        let inputs = ContainerInputs {
            pod,
            container: c,
            restart_count,
            image_ref,
            env,
            volumes: ctx.volumes,
            etc_hosts: ctx.etc_hosts.clone(),
            termination_log,
            pid_target: ephemeral_target(pod, &c.name, all),
        };
        let config = match runtime::container_config(&inputs) {
            Ok(cfg) => cfg,
            Err(msg) => return self.failed(pod, field, &c.name, "CreateContainerConfigError", msg),
        };
        let created = self
            .rt()
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: ctx.sandbox_id.clone(),
                config: Some(config),
                sandbox_config: Some(ctx.sandbox_config.clone()),
            })
            .await
            .call("CreateContainer");
        let id = match created {
            Ok(r) => r.container_id,
            Err(e) => {
                return self.failed(pod, field, &c.name, "CreateContainerError", e.to_string())
            }
        };
        self.k.events.pod(
            pod,
            field.clone(),
            false,
            "Created",
            format!("Created container {}", c.name),
        );
        if let Err(e) = self
            .rt()
            .start_container(cri::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .call("StartContainer")
        {
            return self.failed(pod, field, &c.name, "RunContainerError", e.to_string());
        }
        self.k.events.pod(
            pod,
            field.clone(),
            false,
            "Started",
            format!("Started container {}", c.name),
        );
        // postStart runs before the container counts as started; when it fails the
        // container is killed and restarts as its policy says (upstream's behaviour).
        if let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            if let Err(e) = super::hooks::run(&mut self.rt(), handler, c, &id, &ctx.pod_ip).await {
                self.k.events.pod(
                    pod,
                    field.clone(),
                    true,
                    "FailedPostStartHook",
                    format!("PostStartHook failed: {e}"),
                );
                self.k.events.pod(
                    pod,
                    field,
                    false,
                    "Killing",
                    format!("FailedPostStartHook: stopping container {}", c.name),
                );
                let _ = self
                    .rt()
                    .stop_container(cri::StopContainerRequest {
                        container_id: id,
                        timeout: 0,
                    })
                    .await;
                return false;
            }
        }
        self.waiting.remove(&c.name);
        self.started_now = true;
        true
    }

    /// A container that could not be started: a Failed event and the waiting reason;
    /// always false (for `start`'s result).
    fn failed(
        &mut self,
        pod: &Pod,
        field: Option<String>,
        name: &str,
        reason: &str,
        msg: String,
    ) -> bool {
        self.k
            .events
            .pod(pod, field, true, "Failed", format!("Error: {msg}"));
        self.waiting.insert(name.to_string(), (reason.into(), msg));
        false
    }

    /// The image per `imagePullPolicy`; ErrImagePull/ImagePullBackOff/ErrImageNeverPull
    /// recorded as the container's waiting reason.
    async fn ensure_image(
        &mut self,
        pod: &Pod,
        c: &Container,
        init: bool,
        sandbox_config: &cri::PodSandboxConfig,
    ) -> Result<String, ()> {
        let field = container_field(init, &c.name);
        let image = c.image.clone().unwrap_or_default();
        let spec = cri::ImageSpec {
            image: image.clone(),
            ..cri::ImageSpec::default()
        };
        let present = self
            .k
            .cri
            .images
            .clone()
            .image_status(cri::ImageStatusRequest {
                image: Some(spec.clone()),
                verbose: false,
            })
            .await
            .call("ImageStatus")
            .ok()
            .and_then(|r| r.image)
            .map(|i| i.id);
        let policy = c
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| "IfNotPresent".into());
        match (policy.as_str(), present) {
            ("Never", Some(id)) | ("IfNotPresent", Some(id)) => return Ok(id),
            ("Never", None) => {
                let msg =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                self.k
                    .events
                    .pod(pod, field, true, "ErrImageNeverPull", msg.clone());
                self.waiting
                    .insert(c.name.clone(), ("ErrImageNeverPull".into(), msg));
                return Err(());
            }
            _ => {}
        }
        if let Some(b) = self.image_backoff.get(&c.name) {
            if b.since.elapsed() < b.delay {
                let msg = format!("Back-off pulling image \"{image}\"");
                if self.waiting.get(&c.name).map(|w| w.0.as_str()) != Some("ImagePullBackOff") {
                    self.k.events.pod(pod, field, false, "BackOff", msg.clone());
                }
                self.waiting
                    .insert(c.name.clone(), ("ImagePullBackOff".into(), msg));
                return Err(());
            }
        }
        self.k.events.pod(
            pod,
            field.clone(),
            false,
            "Pulling",
            format!("Pulling image \"{image}\""),
        );
        let started = Instant::now();
        let pulled = self
            .k
            .cri
            .images
            .clone()
            .pull_image(cri::PullImageRequest {
                image: Some(spec),
                auth: None,
                sandbox_config: Some(sandbox_config.clone()),
            })
            .await
            .call("PullImage");
        match pulled {
            Ok(r) => {
                self.image_backoff.remove(&c.name);
                self.k.events.pod(
                    pod,
                    field,
                    false,
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image}\" in {:.3}s",
                        started.elapsed().as_secs_f64()
                    ),
                );
                Ok(r.image_ref)
            }
            Err(e) => {
                let msg = format!("failed to pull and unpack image \"{image}\": {e}");
                self.k.events.pod(
                    pod,
                    field.clone(),
                    true,
                    "Failed",
                    format!("Failed to pull image \"{image}\": {e}"),
                );
                self.k
                    .events
                    .pod(pod, field, true, "Failed", "Error: ErrImagePull".into());
                let delay = match self.image_backoff.get(&c.name) {
                    Some(b) => (b.delay * 2).min(MAX_BACKOFF),
                    None => INITIAL_BACKOFF,
                };
                self.image_backoff.insert(
                    c.name.clone(),
                    Backoff {
                        delay,
                        since: Instant::now(),
                    },
                );
                self.waiting
                    .insert(c.name.clone(), ("ErrImagePull".into(), msg));
                Err(())
            }
        }
    }

    /// Removes exited containers beyond the newest two of each name (the newest is the
    /// status, the one before is lastState).
    async fn gc_containers(&self, in_sandbox: &[cri::Container]) {
        for list in by_name(in_sandbox).values() {
            for old in list.iter().skip(2) {
                if old.state == cri::ContainerState::ContainerExited as i32 {
                    let _ = self
                        .rt()
                        .remove_container(cri::RemoveContainerRequest {
                            container_id: old.id.clone(),
                        })
                        .await;
                }
            }
        }
    }

    /// Stops a deleted or finished pod; a deleted one's object is then removed.
    async fn terminate(
        &mut self,
        pod: &Pod,
        sandboxes: &[cri::PodSandbox],
        containers: &[cri::Container],
    ) -> Duration {
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let grace = if deleting { grace_period(pod) } else { 0 };
        self.kill(containers, grace, Some(pod)).await;
        for s in sandboxes {
            let _ = self
                .rt()
                .stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: s.id.clone(),
                })
                .await;
        }
        let (_, after) = self.runtime_state().await.unwrap_or_default();
        self.report(pod, &Observed::default(), &after).await;
        if !deleting {
            return self.k.config.sync_frequency;
        }
        super::remove_from_runtime(&mut self.rt(), sandboxes, &after).await;
        super::clean_up(&self.k, &self.uid);
        let api: Api<Pod> = Api::namespaced(
            self.k.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api
            .delete(pod.metadata.name.as_deref().unwrap_or_default(), &dp)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => {
                tracing::warn!(pod = %pod_desc(pod), error = %e, "deleting the pod");
                return Duration::from_secs(2);
            }
        }
        self.k.config.sync_frequency
    }

    /// Upstream's `rejectPod`: the pod is Failed with `reason` and never started.
    async fn reject(&mut self, pod: &Pod, reason: &str, message: &str) {
        self.k
            .events
            .pod(pod, None, true, reason, message.to_string());
        let status = serde_json::json!({"phase": "Failed", "reason": reason, "message": message});
        if let Err(e) = status::patch(&self.k.client, pod, &status).await {
            tracing::warn!(pod = %pod_desc(pod), error = %e, "rejecting a pod");
        }
    }

    /// Computes and (when it changed) patches the pod's status; returns the phase.
    async fn report(
        &mut self,
        pod: &Pod,
        observed: &Observed,
        containers: &[cri::Container],
    ) -> Option<String> {
        let mut o = observed.clone();
        o.waiting = self.waiting.clone();
        // The two newest of each name (status and lastState), with full CRI statuses.
        for (name, list) in by_name(containers) {
            let mut statuses = Vec::new();
            for c in list.into_iter().take(2) {
                if let Ok(r) = self
                    .rt()
                    .container_status(cri::ContainerStatusRequest {
                        container_id: c.id.clone(),
                        verbose: false,
                    })
                    .await
                    .call("ContainerStatus")
                {
                    if let Some(mut s) = r.status {
                        // The termination message of any exited container, successful
                        // or not (upstream reads the file for both).
                        let exited = cri::ContainerState::try_from(s.state)
                            == Ok(cri::ContainerState::ContainerExited);
                        if s.message.is_empty() && exited {
                            s.message = termination_message(&self.k, &self.uid, &name, &s);
                        }
                        statuses.push(s);
                    }
                }
            }
            o.containers.insert(name, statuses);
        }
        let host_ip = self.k.opts.node_ip.to_string();
        let status = if static_pods::is_static(pod) {
            let mut with_last = pod.clone();
            if self.static_status.is_some() {
                with_last.status.clone_from(&self.static_status);
            }
            let s = status::pod_status(&with_last, &o, &host_ip);
            self.static_status = Some(s.clone());
            s
        } else {
            status::pod_status(pod, &o, &host_ip)
        };
        let phase = status.phase.clone();
        let fp = status::fingerprint(&status);
        if self.last_status.as_deref() == Some(fp.as_str()) {
            return phase;
        }
        let mut value = serde_json::to_value(&status).unwrap_or_default();
        // A condition this kubelet no longer reports goes (the patch merges conditions).
        for (kind, now) in [
            ("PodResizeInProgress", o.resize_error.is_some()),
            ("PodResizePending", o.resize_pending.is_some()),
        ] {
            let had = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind));
            if had && !now {
                if let Some(list) = value
                    .get_mut("conditions")
                    .and_then(serde_json::Value::as_array_mut)
                {
                    list.push(serde_json::json!({"type": kind, "$patch": "delete"}));
                }
            }
        }
        match status::patch(&self.k.client, pod, &value).await {
            Ok(_) => self.last_status = Some(fp),
            // A static pod's mirror may not be made yet: written once it is.
            Err(kube::Error::Api(e)) if e.code == 404 && static_pods::is_static(pod) => {}
            Err(e) => tracing::warn!(pod = %pod_desc(pod), error = %e, "updating pod status"),
        }
        phase
    }
}

/// What [`PodWorker::resize`] did.
enum Resize {
    /// Nothing to do, or the new resources are in place.
    Applied,
    /// The runtime refused; retried on the next pass.
    Failed(String),
    /// The node cannot take it (now, or ever): `PodResizePending` with this reason.
    Pending(&'static str, String),
    /// The container was restarted with its new resources.
    Restarted,
}

/// What a container start needs of the pass.
struct StartContext<'a> {
    sandbox_id: String,
    /// The config the sandbox was created with (CreateContainer and PullImage take it).
    sandbox_config: cri::PodSandboxConfig,
    volumes: &'a std::collections::BTreeMap<String, volumes::Mounted>,
    etc_hosts: Option<std::path::PathBuf>,
    /// The pod's first IP (httpGet hooks go there by default).
    pod_ip: String,
}

/// The running container an ephemeral container `name` targets, if it names one.
fn ephemeral_target(pod: &Pod, name: &str, all: &[cri::Container]) -> Option<String> {
    let target = pod
        .spec
        .as_ref()?
        .ephemeral_containers
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .target_container_name
        .clone()?;
    all.iter()
        .filter(|c| c.state == cri::ContainerState::ContainerRunning as i32)
        .find(|c| c.metadata.as_ref().is_some_and(|m| m.name == target))
        .map(|c| c.id.clone())
}

/// Containers grouped by container name, newest first.
fn by_name(list: &[cri::Container]) -> HashMap<String, Vec<&cri::Container>> {
    let mut out: HashMap<String, Vec<&cri::Container>> = HashMap::new();
    for c in list {
        let name = c
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        out.entry(name).or_default().push(c);
    }
    for group in out.values_mut() {
        group.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    }
    out
}

/// The newest container of a name among `list`.
fn newest<'a>(list: &'a [cri::Container], name: &str) -> Option<&'a cri::Container> {
    list.iter()
        .filter(|c| c.metadata.as_ref().is_some_and(|m| m.name == name))
        .max_by_key(|c| c.created_at)
}

/// The container's termination message file (what it wrote to
/// /dev/termination-log), capped at 4 KiB as upstream.
fn termination_message(k: &Kubelet, uid: &str, name: &str, s: &cri::ContainerStatus) -> String {
    let restart = s
        .annotations
        .get(runtime::RESTART_COUNT)
        .cloned()
        .unwrap_or_else(|| "0".into());
    let path = volumes::pod_dir(k, uid)
        .join("containers")
        .join(name)
        .join(restart);
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    text.truncate(4096);
    text
}

/// Go's rendering of a duration in back-off messages (`10s`, `5m0s`).
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}
