//! Node helpers the node controllers share (upstream `pkg/controller/util/node`,
//! `pkg/controller/controller_utils.go` taint functions, `pkg/util/taints` and
//! `pkg/api/v1/pod` `UpdatePodCondition`): node events, conditions, adding and
//! removing taints with optimistic concurrency, and marking pods NotReady.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Node, NodeCondition, ObjectReference, Pod, PodCondition, PodStatus, Taint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::error::{is_conflict, is_not_found, Error, ResultExt};
use crate::events::{EventType, Recorder};

/// `node.kubernetes.io/not-ready`.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// `node.kubernetes.io/unreachable`.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Upstream `UpdateTaintBackoff`: 5 attempts, 100 ms apart.
const TAINT_UPDATE_ATTEMPTS: usize = 5;
const TAINT_UPDATE_DELAY: Duration = Duration::from_millis(100);

/// A taint template (no value, no time).
pub fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.to_string(),
        effect: effect.to_string(),
        value: None,
        time_added: None,
    }
}

/// The node's condition of `type_` (upstream `GetNodeCondition`).
pub fn node_condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The node's taints.
pub fn node_taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

fn node_ref(name: &str, uid: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(name.to_string()),
        uid,
        namespace: None,
        ..ObjectReference::default()
    }
}

/// `Node <name> status is now: <status>` on the node (upstream
/// `RecordNodeStatusChange`).
pub fn record_node_status_change(recorder: &Recorder, node: &Node, new_status: &str) {
    let name = node.name_any();
    tracing::info!(node = %name, status = new_status, "recording status change event for node");
    recorder.event_ref(
        node_ref(&name, node.metadata.uid.clone()),
        EventType::Normal,
        new_status,
        format!("Node {name} status is now: {new_status}"),
    );
}

/// An event on the node named `name` (upstream `RecordNodeEvent`).
pub fn record_node_event(recorder: &Recorder, node: &Node, reason: &str, message: String) {
    recorder.event_ref(
        node_ref(&node.name_any(), node.metadata.uid.clone()),
        EventType::Normal,
        reason,
        message,
    );
}

/// Same key and effect (upstream `Taint.MatchTaint`).
pub fn taint_matches(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.effect == b.effect
}

/// Whether a taint matching `t` is in `taints` (upstream `TaintExists`).
pub fn taint_exists(taints: &[Taint], t: &Taint) -> bool {
    taints.iter().any(|x| taint_matches(x, t))
}

/// Adds `t` or replaces the taint with its key and effect (upstream
/// `AddOrUpdateTaint`); false when an identical taint is already there.
fn add_or_update_taint(taints: &mut Vec<Taint>, t: &Taint) -> bool {
    if let Some(existing) = taints.iter_mut().find(|x| taint_matches(x, t)) {
        if existing == t {
            return false;
        }
        *existing = t.clone();
        return true;
    }
    taints.push(t.clone());
    true
}

/// Writes `taints` as the node's taint list with the resourceVersion it was read at
/// (upstream `PatchNodeTaints`: `spec.taints` has no merge key, so the list is sent
/// whole and the resourceVersion guards against lost updates).
async fn patch_node_taints(
    api: &Api<Node>,
    node: &Node,
    taints: &[Taint],
) -> Result<(), kube::Error> {
    let list = if taints.is_empty() {
        serde_json::Value::Null
    } else {
        json!(taints)
    };
    let patch = json!({
        "metadata": {"resourceVersion": node.metadata.resource_version},
        "spec": {"taints": list},
    });
    api.patch(
        &node.name_any(),
        &PatchParams::default(),
        &Patch::Strategic(&patch),
    )
    .await
    .map(|_| ())
}

/// Reads the node, edits its taints with `edit` (which says whether it changed
/// anything) and patches them, retrying conflicts (upstream `RetryOnConflict` with
/// `UpdateTaintBackoff`).
async fn edit_taints(
    client: &kube::Client,
    node_name: &str,
    action: &str,
    edit: impl Fn(&mut Vec<Taint>) -> bool,
) -> Result<(), Error> {
    let api: Api<Node> = Api::all(client.clone());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let node = api
            .get(node_name)
            .await
            .action(format!("getting node {node_name}"))?;
        let mut taints = node_taints(&node).to_vec();
        if !edit(&mut taints) {
            return Ok(());
        }
        match patch_node_taints(&api, &node, &taints).await {
            Ok(()) => return Ok(()),
            Err(e) if is_conflict(&e) && attempt < TAINT_UPDATE_ATTEMPTS => {
                tokio::time::sleep(TAINT_UPDATE_DELAY).await;
            }
            Err(e) => return Err(e).action(format!("{action} on node {node_name}")),
        }
    }
}

/// Adds or updates `taints` on the node (upstream `AddOrUpdateTaintOnNode`).
pub async fn add_or_update_taints_on_node(
    client: &kube::Client,
    node_name: &str,
    taints: &[Taint],
) -> Result<(), Error> {
    if taints.is_empty() {
        return Ok(());
    }
    edit_taints(client, node_name, "adding taints", |list| {
        let mut updated = false;
        for t in taints {
            updated |= add_or_update_taint(list, t);
        }
        updated
    })
    .await
}

/// Removes the taints matching `taints` from the node; with `node` given, no request
/// is made when it has none of them (upstream `RemoveTaintOffNode`).
pub async fn remove_taints_off_node(
    client: &kube::Client,
    node_name: &str,
    node: Option<&Node>,
    taints: &[Taint],
) -> Result<(), Error> {
    if taints.is_empty() {
        return Ok(());
    }
    if let Some(node) = node {
        let current = node_taints(node);
        if !taints.iter().any(|t| taint_exists(current, t)) {
            return Ok(());
        }
    }
    edit_taints(client, node_name, "removing taints", |list| {
        let before = list.len();
        list.retain(|x| !taints.iter().any(|t| taint_matches(x, t)));
        list.len() != before
    })
    .await
}

/// Adds `add` (stamped with the current time) and then removes `remove` (upstream
/// `SwapNodeControllerTaint`); false (logged) on failure.
pub async fn swap_node_controller_taint(
    client: &kube::Client,
    add: &[Taint],
    remove: &[Taint],
    node: &Node,
) -> bool {
    let name = node.name_any();
    let now = Time(Timestamp::now());
    let add: Vec<Taint> = add
        .iter()
        .map(|t| Taint {
            time_added: Some(now.clone()),
            ..t.clone()
        })
        .collect();
    if let Err(e) = add_or_update_taints_on_node(client, &name, &add).await {
        tracing::warn!(node = %name, error = %e, "failed to add taints to node");
        return false;
    }
    if let Err(e) = remove_taints_off_node(client, &name, Some(node), remove).await {
        tracing::warn!(node = %name, error = %e, "failed to remove taints from node");
        return false;
    }
    true
}

/// Sets `condition` in `status` (upstream `UpdatePodCondition`): the transition time
/// is now unless the status is unchanged; true when anything changed.
pub fn update_pod_condition(status: &mut PodStatus, mut condition: PodCondition) -> bool {
    condition.last_transition_time = Some(Time(Timestamp::now()));
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let Some(old) = conditions.iter_mut().find(|c| c.type_ == condition.type_) else {
        conditions.push(condition);
        return true;
    };
    if condition.status == old.status {
        condition.last_transition_time = old.last_transition_time.clone();
    }
    let equal = condition.status == old.status
        && condition.reason == old.reason
        && condition.message == old.message
        && condition.last_probe_time == old.last_probe_time
        && condition.last_transition_time == old.last_transition_time;
    *old = condition;
    !equal
}

/// Sets the Ready condition of the pods on `node_name` that have one to False via
/// their status, with a `NodeNotReady` event on each (upstream `MarkPodsNotReady`).
pub async fn mark_pods_not_ready(
    client: &kube::Client,
    recorder: &Recorder,
    pods: &[Arc<Pod>],
    node_name: &str,
) -> Result<(), Error> {
    tracing::debug!(node = node_name, "updating ready status of pods on node");
    let mut first_error = None;
    for pod in pods {
        if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node_name) {
            continue;
        }
        let mut pod = (**pod).clone();
        let Some(status) = pod.status.as_mut() else {
            continue;
        };
        let Some(ready) = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .cloned()
        else {
            continue;
        };
        if !update_pod_condition(
            status,
            PodCondition {
                status: "False".into(),
                ..ready
            },
        ) {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        tracing::info!(pod = %format!("{ns}/{name}"), "updating ready status of pod to false");
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        match api
            .replace_status(&name, &PostParams::default(), &pod)
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => continue,
            Err(e) => {
                tracing::info!(pod = %format!("{ns}/{name}"), error = %e, "failed to update status for pod");
                if first_error.is_none() {
                    first_error =
                        Some(Err::<(), _>(e).action(format!("marking pod {ns}/{name} NotReady")));
                }
            }
        }
        recorder.event(
            &pod,
            EventType::Warning,
            "NodeNotReady",
            "Node is not ready",
        );
    }
    first_error.unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taint_list_edits() {
        let mut list = vec![taint("a", "NoSchedule")];
        assert!(!add_or_update_taint(&mut list, &taint("a", "NoSchedule")));
        assert!(add_or_update_taint(&mut list, &taint("a", "NoExecute")));
        let mut v = taint("a", "NoExecute");
        v.value = Some("x".into());
        assert!(add_or_update_taint(&mut list, &v));
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].value.as_deref(), Some("x"));
        assert!(taint_exists(&list, &taint("a", "NoExecute")));
        assert!(!taint_exists(&list, &taint("b", "NoExecute")));
    }

    #[test]
    fn pod_condition_transition_time_kept_when_status_unchanged() {
        let mut status = PodStatus::default();
        let cond = |s: &str| PodCondition {
            type_: "Ready".into(),
            status: s.into(),
            ..PodCondition::default()
        };
        assert!(update_pod_condition(&mut status, cond("True")));
        let first = status.conditions.as_ref().unwrap()[0]
            .last_transition_time
            .clone();
        assert!(!update_pod_condition(&mut status, cond("True")));
        assert_eq!(
            status.conditions.as_ref().unwrap()[0].last_transition_time,
            first
        );
        assert!(update_pod_condition(&mut status, cond("False")));
        assert_eq!(status.conditions.as_ref().unwrap()[0].status, "False");
    }
}
