//! The taint eviction controller (upstream `pkg/controller/tainteviction`, the
//! NoExecute taint manager): a pod on a node with NoExecute taints it does not
//! tolerate is deleted at once; one tolerating them all for a limited
//! `tolerationSeconds` is deleted when the shortest of those runs out (counted, as
//! upstream, from when this controller first saw the pod under the taints); one
//! tolerating them without a limit stays. Before deleting, the pod gets the
//! `DisruptionTarget` condition (reason `DeletionByTaintManager`); `TaintManagerEviction`
//! events say when a pod is marked for deletion and when a scheduled deletion is
//! cancelled (taints gone, toleration changed, pod deleted).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, PodCondition, Taint, Toleration};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::context::ControllerContext;
use crate::error::{Error, ResultExt};
use crate::events::{EventType, Recorder};
use crate::informer::{key_of, split_key, Notification, Store};
use crate::nodelifecycle::nodeutil::{node_taints, update_pod_condition};
use crate::workqueue::{run_workers, WorkQueue};

/// Upstream `UpdateWorkerSize`.
const UPDATE_WORKERS: usize = 8;
/// Upstream `retries`: attempts at marking and deleting one pod.
const RETRIES: usize = 5;

/// Whether `toleration` tolerates `taint` (upstream `Toleration.ToleratesTaint`):
/// an empty effect or key matches any, `Exists` ignores the value, `Equal` (or no
/// operator) compares it.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = toleration.effect.as_deref().filter(|e| !e.is_empty()) {
        if e != taint.effect {
            return false;
        }
    }
    if let Some(k) = toleration.key.as_deref().filter(|k| !k.is_empty()) {
        if k != taint.key {
            return false;
        }
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        "Exists" => true,
        _ => false,
    }
}

/// Whether every taint is tolerated, and the tolerations used (the first matching one
/// per taint; upstream `GetMatchingTolerations`).
pub fn matching_tolerations<'a>(
    taints: &[Taint],
    tolerations: &'a [Toleration],
) -> Option<Vec<&'a Toleration>> {
    let mut used = Vec::new();
    for t in taints {
        used.push(tolerations.iter().find(|tol| tolerates(tol, t))?);
    }
    Some(used)
}

/// The shortest `tolerationSeconds` of `used`: `Some(0)` for none used or a
/// non-positive limit, `None` when all tolerate forever (upstream
/// `getMinTolerationTime`'s -1).
pub fn min_toleration_time(used: &[&Toleration]) -> Option<Duration> {
    if used.is_empty() {
        return Some(Duration::ZERO);
    }
    let mut min: Option<i64> = None;
    for t in used {
        if let Some(s) = t.toleration_seconds {
            if s <= 0 {
                return Some(Duration::ZERO);
            }
            min = Some(min.map_or(s, |m| m.min(s)));
        }
    }
    min.map(|s| Duration::from_secs(s.unsigned_abs()))
}

fn no_execute_taints(node: &Node) -> Vec<Taint> {
    node_taints(node)
        .iter()
        .filter(|t| t.effect == "NoExecute")
        .cloned()
        .collect()
}

/// A scheduled eviction (upstream `TimedWorker`); `None` in the map once it ran, so
/// it is not scheduled again until cancelled.
#[derive(Debug)]
struct Scheduled {
    created_at: Instant,
    timer: JoinHandle<()>,
}

struct Controller {
    ctx: ControllerContext,
    recorder: Recorder,
    nodes: Store<Node>,
    pods: Store<Pod>,
    evictions: Mutex<HashMap<String, Option<Scheduled>>>,
    node_queue: Arc<WorkQueue>,
    pod_queue: Arc<WorkQueue>,
}

/// Starts the taint eviction controller.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let nodes_inf = ctx.informers.get::<Node>();
    let pods_inf = ctx.informers.get::<Pod>();
    let c = Arc::new(Controller {
        recorder: Recorder::new(ctx.client.clone(), ctx.name),
        nodes: nodes_inf.store(),
        pods: pods_inf.store(),
        evictions: Mutex::default(),
        node_queue: WorkQueue::new(ctx.name),
        pod_queue: WorkQueue::new(ctx.name),
        ctx,
    });
    {
        let c = c.clone();
        nodes_inf.add_handler(move |n| match n {
            Notification::Update { old, new }
                if no_execute_taints(old) == no_execute_taints(new) => {}
            Notification::Add(node)
            | Notification::Update { new: node, .. }
            | Notification::Delete(node) => c.node_queue.add(node.name_any()),
        });
    }
    {
        let c = c.clone();
        pods_inf.add_handler(move |n| {
            let spec = |p: &Pod| {
                p.spec.as_ref().map(|s| {
                    (
                        s.tolerations.clone().unwrap_or_default(),
                        s.node_name.clone(),
                    )
                })
            };
            match n {
                Notification::Update { old, new } if spec(old) == spec(new) => {}
                Notification::Add(pod)
                | Notification::Update { new: pod, .. }
                | Notification::Delete(pod) => c.pod_queue.add(key_of(&**pod)),
            }
        });
    }
    tokio::spawn(async move {
        nodes_inf.wait_synced().await;
        pods_inf.wait_synced().await;
        tracing::info!(controller = c.ctx.name, "starting controller");
        let nodes_task = {
            let c2 = c.clone();
            tokio::spawn(run_workers(
                c.node_queue.clone(),
                UPDATE_WORKERS,
                c.ctx.stop.clone(),
                move |name| {
                    let c = c2.clone();
                    async move {
                        c.handle_node_update(&name);
                        Ok::<(), Error>(())
                    }
                },
            ))
        };
        let c2 = c.clone();
        run_workers(
            c.pod_queue.clone(),
            UPDATE_WORKERS,
            c.ctx.stop.clone(),
            move |key| {
                let c = c2.clone();
                async move {
                    c.handle_pod_update(&key);
                    Ok::<(), Error>(())
                }
            },
        )
        .await;
        let _ = nodes_task.await;
        // Scheduled evictions end with the controller.
        for (_, s) in c.evictions.lock().drain() {
            if let Some(s) = s {
                s.timer.abort();
            }
        }
    });
    Ok(())
}

fn pod_ref(key: &str) -> ObjectReference {
    let (ns, name) = split_key(key);
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(name.to_string()),
        namespace: Some(ns.to_string()),
        ..ObjectReference::default()
    }
}

impl Controller {
    /// Upstream `handleNodeUpdate`.
    fn handle_node_update(self: &Arc<Self>, name: &str) {
        let Some(node) = self.nodes.get("", name) else {
            return;
        };
        let taints = no_execute_taints(&node);
        let pods = self
            .pods
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name));
        if taints.is_empty() {
            for pod in &pods {
                self.cancel_with_event(&key_of(&**pod));
            }
            return;
        }
        let now = Instant::now();
        for pod in &pods {
            self.process_pod_on_node(pod, &taints, now);
        }
    }

    /// Upstream `handlePodUpdate`.
    fn handle_pod_update(self: &Arc<Self>, key: &str) {
        let Some(pod) = self.pods.get_key(key) else {
            tracing::debug!(pod = key, "noticed pod deletion");
            self.cancel_with_event(key);
            return;
        };
        let Some(node_name) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
        else {
            return;
        };
        let Some(node) = self.nodes.get("", &node_name) else {
            return;
        };
        let taints = no_execute_taints(&node);
        if taints.is_empty() {
            return;
        }
        self.process_pod_on_node(&pod, &taints, Instant::now());
    }

    /// Upstream `processPodOnNode`.
    fn process_pod_on_node(self: &Arc<Self>, pod: &Pod, taints: &[Taint], now: Instant) {
        let key = key_of(pod);
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or(&[]);
        let Some(used) = matching_tolerations(taints, tolerations) else {
            tracing::info!(pod = %key, "not all taints are tolerated after update for pod on node");
            self.cancel_with_event(&key);
            self.add_work(&key, now, now);
            return;
        };
        let Some(min) = min_toleration_time(&used) else {
            tracing::debug!(pod = %key, "current tolerations for pod tolerate forever, cancelling any scheduled deletion");
            self.cancel_with_event(&key);
            return;
        };
        let mut start = now;
        let trigger = now + min;
        let scheduled = self
            .evictions
            .lock()
            .get(&key)
            .and_then(|s| s.as_ref().map(|s| s.created_at));
        if let Some(created) = scheduled {
            start = created;
            if start + min < trigger {
                return;
            }
            self.cancel_with_event(&key);
        }
        self.add_work(&key, start, trigger);
    }

    /// Cancels a scheduled eviction, with an event if one was pending (upstream
    /// `cancelWorkWithEvent`).
    fn cancel_with_event(&self, key: &str) {
        let cancelled = match self.evictions.lock().remove(key) {
            Some(Some(s)) => {
                s.timer.abort();
                true
            }
            _ => false,
        };
        if cancelled {
            tracing::info!(pod = key, "cancelling scheduled pod deletion");
            self.recorder.event_ref(
                pod_ref(key),
                EventType::Normal,
                "TaintManagerEviction",
                format!("Cancelling deletion of Pod {key}"),
            );
        }
    }

    /// Schedules the eviction of `key` at `fire_at` unless one is known (upstream
    /// `TimedWorkerQueue.AddWork`).
    fn add_work(self: &Arc<Self>, key: &str, created_at: Instant, fire_at: Instant) {
        let mut map = self.evictions.lock();
        if map.contains_key(key) {
            tracing::debug!(pod = key, "trying to add already existing work, skipping");
            return;
        }
        let c = self.clone();
        let k = key.to_string();
        let mut stop = self.ctx.stop.clone();
        let timer = tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(fire_at) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            // Once fired, the deletion runs to its end even if cancelled meanwhile.
            tokio::spawn(async move {
                let result = c.delete_pod(&k).await;
                let mut map = c.evictions.lock();
                match result {
                    Ok(()) => {
                        map.insert(k, None);
                    }
                    Err(e) => {
                        tracing::warn!(pod = %k, error = %e, "taint eviction failed");
                        map.remove(&k);
                    }
                }
            });
        });
        map.insert(key.to_string(), Some(Scheduled { created_at, timer }));
    }

    /// Upstream `deletePodHandler`: the event, then up to five attempts at
    /// `addConditionAndDeletePod`.
    async fn delete_pod(&self, key: &str) -> Result<(), Error> {
        tracing::info!(controller = self.ctx.name, pod = key, "deleting pod");
        self.recorder.event_ref(
            pod_ref(key),
            EventType::Normal,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {key}"),
        );
        let mut result = Ok(());
        for _ in 0..RETRIES {
            result = self.add_condition_and_delete_pod(key).await;
            if result.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        result
    }

    async fn add_condition_and_delete_pod(&self, key: &str) -> Result<(), Error> {
        let (ns, name) = split_key(key);
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
        let pod = api.get(name).await.action(format!("getting pod {key}"))?;
        let mut status = pod.status.clone().unwrap_or_default();
        let condition = PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some("DeletionByTaintManager".into()),
            message: Some("Taint manager: deleting due to NoExecute taint".into()),
            ..PodCondition::default()
        };
        if update_pod_condition(&mut status, condition) {
            let changed: Vec<_> = status
                .conditions
                .iter()
                .flatten()
                .filter(|c| c.type_ == "DisruptionTarget")
                .collect();
            let patch = json!({
                "metadata": {"uid": pod.metadata.uid},
                "status": {"conditions": changed},
            });
            api.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
                .action(format!(
                    "setting the DisruptionTarget condition of pod {key}"
                ))?;
        }
        api.delete(name, &DeleteParams::default())
            .await
            .action(format!("deleting pod {key}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn tol(
        key: &str,
        op: &str,
        value: Option<&str>,
        effect: &str,
        secs: Option<i64>,
    ) -> Toleration {
        Toleration {
            key: (!key.is_empty()).then(|| key.to_string()),
            operator: (!op.is_empty()).then(|| op.to_string()),
            value: value.map(Into::into),
            effect: (!effect.is_empty()).then(|| effect.to_string()),
            toleration_seconds: secs,
        }
    }

    #[test]
    fn toleration_matching() {
        let t = taint("k", Some("v"), "NoExecute");
        assert!(tolerates(
            &tol("k", "Equal", Some("v"), "NoExecute", None),
            &t
        ));
        assert!(tolerates(&tol("k", "", Some("v"), "", None), &t));
        assert!(!tolerates(
            &tol("k", "Equal", Some("w"), "NoExecute", None),
            &t
        ));
        assert!(tolerates(&tol("k", "Exists", None, "", None), &t));
        assert!(tolerates(&tol("", "Exists", None, "", None), &t));
        assert!(!tolerates(
            &tol("k", "Exists", None, "NoSchedule", None),
            &t
        ));
        assert!(!tolerates(&tol("other", "Exists", None, "", None), &t));
        assert!(!tolerates(&tol("k", "Lt", Some("v"), "", None), &t));
    }

    #[test]
    fn toleration_times() {
        let taints = [taint("a", None, "NoExecute"), taint("b", None, "NoExecute")];
        let tols = [
            tol("a", "Exists", None, "NoExecute", Some(300)),
            tol("b", "Exists", None, "NoExecute", Some(5)),
        ];
        let used = matching_tolerations(&taints, &tols).unwrap();
        assert_eq!(min_toleration_time(&used), Some(Duration::from_secs(5)));
        assert!(matching_tolerations(&taints, &tols[..1]).is_none());
        let forever = [tol("", "Exists", None, "", None)];
        let used = matching_tolerations(&taints, &forever).unwrap();
        assert_eq!(min_toleration_time(&used), None);
        let zero = [tol("", "Exists", None, "", Some(0))];
        let used = matching_tolerations(&taints, &zero).unwrap();
        assert_eq!(min_toleration_time(&used), Some(Duration::ZERO));
        assert_eq!(min_toleration_time(&[]), Some(Duration::ZERO));
    }
}
