//! The pod garbage collector (upstream `pkg/controller/podgc`): every 20 s it deletes
//! terminated pods beyond `--terminated-pod-gc-threshold` (evicted ones first, then
//! oldest first), terminating pods on out-of-service nodes, pods bound to nodes that
//! no longer exist (after a 40 s quarantine and a live GET confirming the node is
//! gone), and terminating pods that were never scheduled. A pod not yet terminal is
//! first marked `Failed` (orphans also get the `DisruptionTarget` condition, reason
//! `DeletionByPodGC`) through a strategic-merge patch of its status, then deleted
//! with grace period 0.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::context::ControllerContext;
use crate::error::{is_not_found, Error, ResultExt};
use crate::informer::Store;

/// Upstream `gcCheckPeriod`.
const GC_CHECK_PERIOD: Duration = Duration::from_secs(20);
/// Upstream `quarantineTime`: how long a node missing from the informer is given to
/// appear before a live GET decides.
const QUARANTINE_TIME: Duration = Duration::from_secs(40);
/// `node.kubernetes.io/out-of-service`.
const TAINT_OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

struct Controller {
    ctx: ControllerContext,
    pods: Store<Pod>,
    nodes: Store<Node>,
    threshold: usize,
    /// Upstream's delaying `nodeQueue`: missing node → when it may be checked.
    quarantine: parking_lot::Mutex<HashMap<String, Instant>>,
}

/// Starts the pod garbage collector.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let pod_inf = ctx.informers.get::<Pod>();
    let node_inf = ctx.informers.get::<Node>();
    let c = Arc::new(Controller {
        pods: pod_inf.store(),
        nodes: node_inf.store(),
        threshold: ctx.config.terminated_pod_gc_threshold,
        quarantine: parking_lot::Mutex::default(),
        ctx,
    });
    let mut stop = c.ctx.stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = async { pod_inf.wait_synced().await; node_inf.wait_synced().await; } => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        tracing::info!(controller = c.ctx.name, "starting controller");
        loop {
            c.gc().await;
            tokio::select! {
                _ = tokio::time::sleep(GC_CHECK_PERIOD) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    });
    Ok(())
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Upstream `isPodTerminated`: any phase but Pending, Running and Unknown.
fn is_terminated(pod: &Pod) -> bool {
    !matches!(phase(pod), "Pending" | "Running" | "Unknown")
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// Upstream `eviction.PodIsEvicted`.
fn is_evicted(pod: &Pod) -> bool {
    phase(pod) == "Failed"
        && pod.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted")
}

/// Upstream `byEvictionAndCreationTimestamp`: evicted first, then oldest, then name.
fn gc_order(a: &Pod, b: &Pod) -> std::cmp::Ordering {
    let ts = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    is_evicted(b)
        .cmp(&is_evicted(a))
        .then_with(|| ts(a).cmp(&ts(b)))
        .then_with(|| a.name_any().cmp(&b.name_any()))
}

/// The terminated pods to delete: those beyond `threshold`, in deletion order.
fn terminated_to_delete(pods: &[Arc<Pod>], threshold: usize) -> Vec<Arc<Pod>> {
    let mut terminated: Vec<Arc<Pod>> = pods.iter().filter(|p| is_terminated(p)).cloned().collect();
    if terminated.len() <= threshold {
        return Vec::new();
    }
    let n = terminated.len() - threshold;
    terminated.sort_by(|a, b| gc_order(a, b));
    terminated.truncate(n);
    terminated
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

fn out_of_service(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.key == TAINT_OUT_OF_SERVICE))
}

/// The status patch marking a pod Failed (with `condition`), as upstream's
/// `PatchPodStatus` sends it: the UID as precondition, conditions merged by type.
fn failed_status_patch(
    pod: &Pod,
    condition: Option<(&str, &str)>,
    now: Timestamp,
) -> serde_json::Value {
    let mut status = json!({"phase": "Failed"});
    if let Some((reason, message)) = condition {
        let existing = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionTarget"));
        // Upstream `UpdatePodCondition` keeps the transition time if the status holds.
        let transition = match existing {
            Some(c) if c.status == "True" => c.last_transition_time.clone(),
            _ => None,
        }
        .unwrap_or(Time(now));
        status["conditions"] = json!([{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": reason,
            "message": message,
            "lastTransitionTime": transition,
        }]);
    }
    json!({"metadata": {"uid": pod.metadata.uid}, "status": status})
}

impl Controller {
    async fn gc(&self) {
        let pods = self.pods.list();
        if self.threshold > 0 {
            let doomed = terminated_to_delete(&pods, self.threshold);
            if !doomed.is_empty() {
                tracing::info!(count = doomed.len(), "garbage collecting pods");
                join_all(doomed.iter().map(|p| self.delete_reporting(p, None))).await;
            }
        }
        self.gc_terminating(&pods).await;
        self.gc_orphaned(&pods).await;
        self.gc_unscheduled_terminating(&pods).await;
    }

    async fn gc_terminating(&self, pods: &[Arc<Pod>]) {
        let mut doomed: Vec<Arc<Pod>> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
            .filter(|p| {
                self.nodes
                    .get("", node_name(p))
                    .is_some_and(|n| !node_ready(&n) && out_of_service(&n))
            })
            .cloned()
            .collect();
        if doomed.is_empty() {
            return;
        }
        doomed.sort_by(|a, b| gc_order(a, b));
        tracing::info!(
            count = doomed.len(),
            "garbage collecting pods terminating on out-of-service nodes"
        );
        join_all(doomed.iter().map(|p| self.delete_reporting(p, None))).await;
    }

    async fn gc_orphaned(&self, pods: &[Arc<Pod>]) {
        let now = Instant::now();
        let existing: BTreeSet<String> = self.nodes.list().iter().map(|n| n.name_any()).collect();
        let due: Vec<String> = {
            let mut q = self.quarantine.lock();
            for p in pods {
                let n = node_name(p);
                if !n.is_empty() && !existing.contains(n) {
                    q.entry(n.to_string()).or_insert(now + QUARANTINE_TIME);
                }
            }
            let due: Vec<String> = q
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(n, _)| n.clone())
                .collect();
            for n in &due {
                q.remove(n);
            }
            due
        };
        let mut deleted_nodes = BTreeSet::new();
        let api: Api<Node> = Api::all(self.ctx.client.clone());
        for name in due.into_iter().filter(|n| !existing.contains(n)) {
            match api.get(&name).await {
                Err(e) if is_not_found(&e) => {
                    deleted_nodes.insert(name);
                }
                Err(e) => tracing::warn!(node = %name, error = %e, "error while getting node"),
                Ok(_) => {}
            }
        }
        for pod in pods.iter().filter(|p| deleted_nodes.contains(node_name(p))) {
            tracing::info!(pod = %key(pod), node = node_name(pod), "found orphaned Pod assigned to the Node, deleting");
            let cond = ("DeletionByPodGC", "PodGC: node no longer exists");
            if self.delete_reporting(pod, Some(cond)).await {
                tracing::info!(pod = %key(pod), "forced deletion of orphaned Pod succeeded");
            }
        }
    }

    async fn gc_unscheduled_terminating(&self, pods: &[Arc<Pod>]) {
        for pod in pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some() && node_name(p).is_empty())
        {
            tracing::info!(pod = %key(pod), "found unscheduled terminating Pod not assigned to any Node, deleting");
            if self.delete_reporting(pod, None).await {
                tracing::info!(pod = %key(pod), "forced deletion of unscheduled terminating Pod succeeded");
            }
        }
    }

    async fn delete_reporting(&self, pod: &Pod, condition: Option<(&str, &str)>) -> bool {
        match self.mark_failed_and_delete(pod, condition).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(pod = %key(pod), error = %e, "pod garbage collection failed");
                false
            }
        }
    }

    /// Upstream `markFailedAndDeletePodWithCondition`.
    async fn mark_failed_and_delete(
        &self,
        pod: &Pod,
        condition: Option<(&str, &str)>,
    ) -> Result<(), Error> {
        tracing::info!(pod = %key(pod), "PodGC is force deleting Pod");
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &ns);
        let name = pod.name_any();
        if !matches!(phase(pod), "Succeeded" | "Failed") {
            let patch = failed_status_patch(pod, condition, Timestamp::now());
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) => return Err(e).action(format!("marking pod {ns}/{name} failed")),
            }
        }
        match api
            .delete(&name, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).action(format!("deleting pod {ns}/{name}")),
        }
    }
}

fn key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, created: &str, reason: Option<&str>) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "d", "uid": format!("uid-{name}"),
                    "creationTimestamp": created},
                "status": {"phase": phase, "reason": reason}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn terminated_beyond_threshold_evicted_then_oldest_first() {
        let pods = vec![
            pod("new", "Succeeded", "2024-01-03T00:00:00Z", None),
            pod("old", "Failed", "2024-01-01T00:00:00Z", None),
            pod("evicted", "Failed", "2024-01-05T00:00:00Z", Some("Evicted")),
            pod("running", "Running", "2023-01-01T00:00:00Z", None),
            pod("mid", "Succeeded", "2024-01-02T00:00:00Z", None),
        ];
        let names = |v: Vec<Arc<Pod>>| v.iter().map(|p| p.name_any()).collect::<Vec<_>>();
        assert_eq!(
            names(terminated_to_delete(&pods, 2)),
            vec!["evicted", "old"]
        );
        assert!(terminated_to_delete(&pods, 4).is_empty());
    }

    #[test]
    fn failed_patch_carries_uid_phase_and_condition() {
        let p = pod("a", "Running", "2024-01-01T00:00:00Z", None);
        let now = Timestamp::UNIX_EPOCH;
        let patch = failed_status_patch(
            &p,
            Some(("DeletionByPodGC", "PodGC: node no longer exists")),
            now,
        );
        assert_eq!(patch["metadata"]["uid"], "uid-a");
        assert_eq!(patch["status"]["phase"], "Failed");
        let c = &patch["status"]["conditions"][0];
        assert_eq!(c["type"], "DisruptionTarget");
        assert_eq!(c["reason"], "DeletionByPodGC");
        assert_eq!(c["lastTransitionTime"], "1970-01-01T00:00:00Z");
        let plain = failed_status_patch(&p, None, now);
        assert!(plain["status"].get("conditions").is_none());
    }
}
