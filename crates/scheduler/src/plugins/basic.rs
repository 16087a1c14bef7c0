//! The single-node plugins: `nodeunschedulable/node_unschedulable.go`,
//! `nodename/node_name.go`, `tainttoleration/taint_toleration.go`,
//! `nodeaffinity/node_affinity.go` and `nodeports/node_ports.go` — Filter
//! messages and codes as upstream, and the TaintToleration/NodeAffinity scores.

use std::borrow::Cow;
use std::sync::Arc;

use crate::framework::{Code, PluginName, Status};
use crate::labels::{tolerated, Taint, TaintEffect};
use crate::node::{Node, NodeInfo};
use crate::pod::PodInfo;

/// `ErrReasonUnschedulable`.
pub const ERR_REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// NodeName's `ErrReason`.
pub const ERR_REASON_NODE_NAME: &str = "node(s) didn't match the requested node name";
/// NodeAffinity's `ErrReasonPod`.
pub const ERR_REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// NodePorts' `ErrReason`.
pub const ERR_REASON_NODE_PORTS: &str =
    "node(s) didn't have free ports for the requested pod ports";
/// `v1.TaintNodeUnschedulable`.
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// NodeUnschedulable Filter: a cordoned node only takes pods tolerating the
/// `node.kubernetes.io/unschedulable:NoSchedule` taint.
pub fn node_unschedulable(pod: &PodInfo, node: &Node) -> Result<(), Status> {
    if !node.unschedulable {
        return Ok(());
    }
    let taint = Taint {
        key: TAINT_NODE_UNSCHEDULABLE.to_owned(),
        value: String::new(),
        effect: TaintEffect::NoSchedule,
    };
    if tolerated(&pod.tolerations, &taint) {
        return Ok(());
    }
    Err(Status::new(
        Code::UnschedulableAndUnresolvable,
        PluginName::NodeUnschedulable,
        ERR_REASON_UNSCHEDULABLE,
    ))
}

/// NodeName Filter.
pub fn node_name(pod: &PodInfo, node: &Node) -> Result<(), Status> {
    if pod.node_name.is_empty() || pod.node_name == node.name {
        return Ok(());
    }
    Err(Status::new(
        Code::UnschedulableAndUnresolvable,
        PluginName::NodeName,
        ERR_REASON_NODE_NAME,
    ))
}

/// TaintToleration Filter: the first NoSchedule/NoExecute taint not tolerated.
pub fn taint_toleration(pod: &PodInfo, node: &Node) -> Result<(), Status> {
    let untolerated = node.taints.iter().find(|t| {
        matches!(t.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute)
            && !tolerated(&pod.tolerations, t)
    });
    match untolerated {
        None => Ok(()),
        Some(t) => Err(Status::new(
            Code::UnschedulableAndUnresolvable,
            PluginName::TaintToleration,
            Cow::Owned(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key, t.value
            )),
        )),
    }
}

/// NodeAffinity Filter: `spec.nodeSelector` and required node affinity.
pub fn node_affinity(pod: &PodInfo, node: &Node) -> Result<(), Status> {
    if pod.matches_node_selector(&node.labels, &node.name) {
        return Ok(());
    }
    Err(Status::new(
        Code::UnschedulableAndUnresolvable,
        PluginName::NodeAffinity,
        ERR_REASON_NODE_AFFINITY,
    ))
}

/// NodePorts Filter.
pub fn node_ports(pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
    let conflict = pod
        .host_ports
        .iter()
        .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
    if conflict {
        return Err(Status::new(
            Code::Unschedulable,
            PluginName::NodePorts,
            ERR_REASON_NODE_PORTS,
        ));
    }
    Ok(())
}

/// TaintToleration Score: the number of PreferNoSchedule taints the pod does
/// not tolerate (tolerations with an empty or PreferNoSchedule effect count),
/// normalized in reverse. Returns whether the plugin ran.
pub fn score_taint_toleration(pod: &PodInfo, nodes: &[Arc<NodeInfo>], scores: &mut [i64]) -> bool {
    let tolerations: Vec<_> = pod
        .tolerations
        .iter()
        .filter(|t| t.effect.is_none_or(|e| e == TaintEffect::PreferNoSchedule))
        .cloned()
        .collect();
    for (s, n) in scores.iter_mut().zip(nodes) {
        *s = n.node.as_ref().map_or(0, |node| {
            node.taints
                .iter()
                .filter(|t| {
                    t.effect == TaintEffect::PreferNoSchedule && !tolerated(&tolerations, t)
                })
                .count() as i64
        });
    }
    super::default_normalize(scores, true);
    true
}

/// NodeAffinity Score: the summed weights of matching preferred terms,
/// normalized. Skipped (returns false) when the pod has no preferred terms.
pub fn score_node_affinity(pod: &PodInfo, nodes: &[Arc<NodeInfo>], scores: &mut [i64]) -> bool {
    if pod.preferred_node_affinity.is_empty() {
        return false;
    }
    for (s, n) in scores.iter_mut().zip(nodes) {
        *s = n.node.as_ref().map_or(0, |node| {
            pod.preferred_node_affinity
                .iter()
                .filter(|p| p.term.matches(&node.labels, &node.name))
                .map(|p| p.weight)
                .sum()
        });
    }
    super::default_normalize(scores, false);
    true
}
