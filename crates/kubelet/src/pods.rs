//! The pods bound to this node, as upstream's pod workers: a watch on
//! `spec.nodeName=<node>` feeds one worker task per pod; a relist of the runtime every
//! second (the PLEG) wakes the worker of any pod whose sandboxes or containers
//! changed, and cleans up what belongs to no pod. Each worker runs [`sync`] —
//! upstream's `SyncPod`/`SyncTerminatingPod` — until its pod is gone. Static pods
//! ([`crate::static_pods`]) get workers as API pods do, and [`mirror`] pods in the
//! API; the watch's mirror pods are never run themselves.

mod hooks;
mod mirror;
mod sync;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferrokube_cri::{v1 as cri, CallExt};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::{watch, Notify};

use crate::static_pods::{self, is_mirror};
use crate::Kubelet;

pub use sync::PodWorker;

/// A running worker: the latest pod object and a wake-up for runtime changes.
struct Handle {
    pod: watch::Sender<Option<Pod>>,
    wake: Arc<Notify>,
    /// Set when the pod's status must be written again (a new mirror pod).
    resync: Arc<AtomicBool>,
}

/// Runs the pod workers until the kubelet stops.
pub async fn run(k: Arc<Kubelet>) {
    let api: Api<Pod> = Api::all(k.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", k.opts.node_name));
    let mut stream = watcher(api, cfg).boxed();
    let mut workers: HashMap<String, Handle> = HashMap::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut relist = tokio::time::interval(Duration::from_secs(1));
    relist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut fingerprints: HashMap<String, String> = HashMap::new();
    let mut relists: u64 = 0;
    let mut synced = false;
    let mut init_pods: Vec<Pod> = Vec::new();
    let mut init_mirrors: Vec<Pod> = Vec::new();
    let mut source = k
        .config
        .static_pod_path
        .clone()
        .map(|p| static_pods::Source::new(p, &k.opts.node_name));
    // The static pods by UID, and the API's mirror pods.
    let mut statics: HashMap<String, Pod> = HashMap::new();
    let mut mirrors = mirror::Mirrors::default();
    let spawn = |workers: &mut HashMap<String, Handle>, pod: Pod| {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if let Some(h) = workers.get(&uid) {
            h.pod.send_replace(Some(pod));
            return;
        }
        let (tx, rx) = watch::channel(Some(pod));
        let wake = Arc::new(Notify::new());
        let resync = Arc::new(AtomicBool::new(false));
        let worker = PodWorker::new(k.clone(), uid.clone(), rx, wake.clone(), resync.clone());
        let done = done_tx.clone();
        let key = uid.clone();
        tokio::spawn(async move {
            worker.run().await;
            let _ = done.send(key);
        });
        workers.insert(
            uid,
            Handle {
                pod: tx,
                wake,
                resync,
            },
        );
    };
    // Static pods start at once, before the API's pods are listed.
    if let Some(pods) = source.as_mut().and_then(static_pods::Source::poll) {
        update_statics(&mut statics, pods, &mut workers, &spawn);
    }
    loop {
        tokio::select! {
            ev = stream.next() => {
                let Some(ev) = ev else { return };
                match ev {
                    Ok(watcher::Event::Apply(pod)) if is_mirror(&pod) => mirrors.applied(pod),
                    Ok(watcher::Event::Apply(pod)) => spawn(&mut workers, pod),
                    // A (re)list is collected whole: at InitDone, workers whose pod it
                    // does not hold are told their pod is gone.
                    Ok(watcher::Event::InitApply(pod)) if is_mirror(&pod) => init_mirrors.push(pod),
                    Ok(watcher::Event::InitApply(pod)) => init_pods.push(pod),
                    Ok(watcher::Event::Delete(pod)) if is_mirror(&pod) => mirrors.deleted(&pod),
                    Ok(watcher::Event::Delete(pod)) => {
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        if let Some(h) = workers.get(&uid) {
                            h.pod.send_replace(None);
                        }
                    }
                    Ok(watcher::Event::Init) => {
                        init_pods.clear();
                        init_mirrors.clear();
                    }
                    Ok(watcher::Event::InitDone) => {
                        // Pods that vanished while the watch restarted are gone.
                        let live: std::collections::HashSet<String> = init_pods
                            .iter()
                            .filter_map(|p| p.metadata.uid.clone())
                            .collect();
                        for (uid, h) in &workers {
                            if !live.contains(uid) && !statics.contains_key(uid) {
                                h.pod.send_replace(None);
                            }
                        }
                        for pod in std::mem::take(&mut init_pods) {
                            spawn(&mut workers, pod);
                        }
                        mirrors.seen.clear();
                        for pod in std::mem::take(&mut init_mirrors) {
                            mirrors.applied(pod);
                        }
                        synced = true;
                    }
                    Err(e) => tracing::warn!(error = %e, "watching pods"),
                }
            }
            Some(uid) = done_rx.recv() => {
                // A worker ends once its pod is gone; a static pod whose file came
                // back meanwhile (same UID) gets a new worker.
                let back = workers.get(&uid).and_then(|h| h.pod.borrow().clone());
                workers.remove(&uid);
                if let Some(pod) = back {
                    spawn(&mut workers, pod);
                }
            }
            _ = relist.tick() => {
                if let Some(pods) = source.as_mut().and_then(static_pods::Source::poll) {
                    update_statics(&mut statics, pods, &mut workers, &spawn);
                }
                if synced && source.is_some() {
                    for uid in mirrors.reconcile(&k, &statics).await {
                        if let Some(h) = workers.get(&uid) {
                            h.resync.store(true, Ordering::Relaxed);
                            h.wake.notify_one();
                        }
                    }
                }
                if synced {
                    relist_runtime(&k, &workers, &mut fingerprints).await;
                    // The node's image list (for its status) every ten relists.
                    if relists.is_multiple_of(10) {
                        refresh_images(&k).await;
                    }
                    relists += 1;
                }
            }
            () = k.stopped() => return,
        }
    }
}

/// Takes the static source's new pod set: workers of pods no longer in it are told
/// their pod is gone; new and changed ones are (re)started.
fn update_statics(
    statics: &mut HashMap<String, Pod>,
    pods: Vec<Pod>,
    workers: &mut HashMap<String, Handle>,
    spawn: &impl Fn(&mut HashMap<String, Handle>, Pod),
) {
    let now: HashMap<String, Pod> = pods
        .into_iter()
        .map(|p| (p.metadata.uid.clone().unwrap_or_default(), p))
        .collect();
    for uid in statics.keys() {
        if !now.contains_key(uid) {
            tracing::info!(pod_uid = %uid, "static pod removed");
            if let Some(h) = workers.get(uid) {
                h.pod.send_replace(None);
            }
        }
    }
    for (uid, pod) in &now {
        if !statics.contains_key(uid) {
            tracing::info!(pod = ?pod.metadata.name, pod_uid = %uid, "static pod added");
            spawn(workers, pod.clone());
        }
    }
    *statics = now;
}

/// The PLEG relist: one ListPodSandbox and one ListContainers for the whole node;
/// workers of pods whose runtime state changed are woken; sandboxes of pods this
/// kubelet no longer has are stopped and removed.
async fn relist_runtime(
    k: &Kubelet,
    workers: &HashMap<String, Handle>,
    fingerprints: &mut HashMap<String, String>,
) {
    let mut rt = k.cri.runtime.clone();
    let sandboxes = match rt
        .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
        .await
        .call("ListPodSandbox")
    {
        Ok(r) => r.items,
        Err(e) => {
            tracing::warn!(error = %e, "relisting sandboxes");
            return;
        }
    };
    let containers = match rt
        .list_containers(cri::ListContainersRequest { filter: None })
        .await
        .call("ListContainers")
    {
        Ok(r) => r.containers,
        Err(e) => {
            tracing::warn!(error = %e, "relisting containers");
            return;
        }
    };
    let mut now: HashMap<String, String> = HashMap::new();
    for s in &sandboxes {
        if let Some(uid) = s.labels.get(crate::runtime::POD_UID) {
            now.entry(uid.clone())
                .or_default()
                .push_str(&format!("s{}:{};", s.id, s.state));
        }
    }
    for c in &containers {
        if let Some(uid) = c.labels.get(crate::runtime::POD_UID) {
            now.entry(uid.clone())
                .or_default()
                .push_str(&format!("c{}:{};", c.id, c.state));
        }
    }
    for (uid, fp) in &now {
        if fingerprints.get(uid) != Some(fp) {
            if let Some(h) = workers.get(uid) {
                h.wake.notify_one();
            }
        }
    }
    // Orphans: runtime objects of pods this kubelet has no worker for.
    for s in &sandboxes {
        let Some(uid) = s.labels.get(crate::runtime::POD_UID) else {
            continue;
        };
        if workers.contains_key(uid) {
            continue;
        }
        tracing::info!(pod_uid = %uid, sandbox = %s.id, "removing the sandbox of a pod that is gone");
        let own: Vec<cri::Container> = containers
            .iter()
            .filter(|c| c.pod_sandbox_id == s.id)
            .cloned()
            .collect();
        remove_from_runtime(&mut rt, std::slice::from_ref(s), &own).await;
        clean_up(k, uid);
    }
    *fingerprints = now;
}

/// What is left of a pod once its sandboxes and containers are removed: its volumes
/// and its pod cgroup.
pub(crate) fn clean_up(k: &Kubelet, uid: &str) {
    crate::volumes::tear_down(k, uid);
    crate::cgroups::remove_pod(k, uid);
}

/// Stops (at once) and removes containers, then stops and removes sandboxes; errors
/// are ignored as upstream's garbage collection does (the next pass retries).
pub(crate) async fn remove_from_runtime(
    rt: &mut ferrokube_cri::RuntimeServiceClient<ferrokube_cri::Channel>,
    sandboxes: &[cri::PodSandbox],
    containers: &[cri::Container],
) {
    for c in containers {
        let container_id = c.id.clone();
        let _ = rt
            .stop_container(cri::StopContainerRequest {
                container_id: container_id.clone(),
                timeout: 0,
            })
            .await;
        let _ = rt
            .remove_container(cri::RemoveContainerRequest { container_id })
            .await;
    }
    for s in sandboxes {
        let pod_sandbox_id = s.id.clone();
        let _ = rt
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: pod_sandbox_id.clone(),
            })
            .await;
        let _ = rt
            .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id })
            .await;
    }
}

async fn refresh_images(k: &Kubelet) {
    if let Ok(images) = crate::image_gc::list_images(k).await {
        let list = images
            .into_iter()
            .map(|i| {
                let mut names = i.repo_tags.clone();
                names.extend(i.repo_digests.clone());
                (names, i64::try_from(i.size).unwrap_or(i64::MAX))
            })
            .collect();
        *k.images.lock() = list;
    }
}
