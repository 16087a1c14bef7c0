//! `podtopologyspread/{filtering.go,scoring.go,common.go,plugin.go}`: hard
//! constraints (DoNotSchedule) in Filter with maxSkew, minDomains and the node
//! inclusion policies; soft constraints (ScheduleAnyway) — or the system
//! default constraints (hostname maxSkew 3, zone maxSkew 5) when the pod has
//! none — in Score with upstream's normalizing weight `ln(domains + 2)`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cache::Snapshot;
use crate::framework::{Code, PluginName, Profile, Status, MAX_NODE_SCORE};
use crate::labels::{tolerated, LabelSelector, TaintEffect};
use crate::node::{Node, NodeInfo};
use crate::pod::{PodInfo, SpreadConstraint, WhenUnsatisfiable};

/// `ErrReasonConstraintsNotMatch`.
pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints";
/// `ErrReasonNodeLabelNotMatch`.
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
const HOSTNAME: &str = "kubernetes.io/hostname";

/// The per-cycle state of the hard constraints.
#[derive(Debug, Clone)]
pub struct PreFilterState {
    constraints: Vec<SpreadConstraint>,
    /// Per constraint: topology value → matching pods.
    counts: Vec<HashMap<String, i64>>,
    /// Per constraint: the global minimum (0 when fewer than minDomains domains).
    min: Vec<i64>,
}

fn has_all_keys(node: &Node, constraints: &[SpreadConstraint]) -> bool {
    constraints
        .iter()
        .all(|c| node.labels.contains_key(&c.topology_key))
}

/// `matchNodeInclusionPolicies`.
fn node_included(c: &SpreadConstraint, pod: &PodInfo, node: &Node) -> bool {
    if c.honor_node_affinity && !pod.matches_node_selector(&node.labels, &node.name) {
        return false;
    }
    if c.honor_node_taints {
        let blocked = node.taints.iter().any(|t| {
            matches!(t.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute)
                && !tolerated(&pod.tolerations, t)
        });
        if blocked {
            return false;
        }
    }
    true
}

fn selector_matches(sel: Option<&LabelSelector>, pod: &PodInfo) -> bool {
    sel.is_some_and(|s| s.matches(&pod.labels))
}

/// `countPodsMatchSelector`: non-terminating pods of the namespace matching.
fn count_matching(pods: &[Arc<PodInfo>], sel: Option<&LabelSelector>, ns: &str) -> i64 {
    let Some(sel) = sel else { return 0 };
    pods.iter()
        .filter(|p| !p.terminating && p.namespace == ns && sel.matches(&p.labels))
        .count() as i64
}

impl PreFilterState {
    fn recompute_min(&mut self) {
        self.min = self
            .constraints
            .iter()
            .zip(&self.counts)
            .map(|(c, counts)| {
                if (counts.len() as i64) < c.min_domains {
                    0
                } else {
                    counts.values().copied().min().unwrap_or(0)
                }
            })
            .collect();
    }

    /// `updateWithPod` (PreFilterExtensions AddPod/RemovePod for preemption).
    pub fn update_with_pod(
        &mut self,
        incoming: &PodInfo,
        other: &PodInfo,
        node: &Node,
        delta: i64,
    ) {
        if other.namespace != incoming.namespace || !has_all_keys(node, &self.constraints) {
            return;
        }
        for (c, counts) in self.constraints.iter().zip(self.counts.iter_mut()) {
            if !node_included(c, incoming, node) || !selector_matches(c.selector.as_ref(), other) {
                continue;
            }
            if let Some(v) = node.labels.get(&c.topology_key) {
                *counts.entry(v.clone()).or_insert(0) += delta;
            }
        }
        self.recompute_min();
    }
}

/// PreFilter: counts matching pods per domain for the hard constraints.
pub fn pre_filter(pod: &PodInfo, snapshot: &Snapshot) -> Option<PreFilterState> {
    let constraints: Vec<SpreadConstraint> = pod
        .spread_constraints
        .iter()
        .filter(|c| c.when_unsatisfiable == WhenUnsatisfiable::DoNotSchedule)
        .cloned()
        .collect();
    if constraints.is_empty() {
        return None;
    }
    let mut counts = vec![HashMap::new(); constraints.len()];
    for info in snapshot.nodes() {
        let Some(node) = info.node.as_deref() else {
            continue;
        };
        if !has_all_keys(node, &constraints) {
            continue;
        }
        for (c, counts) in constraints.iter().zip(counts.iter_mut()) {
            if !node_included(c, pod, node) {
                continue;
            }
            if let Some(v) = node.labels.get(&c.topology_key) {
                *counts.entry(v.clone()).or_insert(0) +=
                    count_matching(&info.pods, c.selector.as_ref(), &pod.namespace);
            }
        }
    }
    let mut s = PreFilterState {
        constraints,
        counts,
        min: Vec::new(),
    };
    s.recompute_min();
    Some(s)
}

/// Filter: `existing + self - global minimum <= maxSkew` for every hard constraint.
pub fn filter(s: &PreFilterState, pod: &PodInfo, node: &Node) -> Result<(), Status> {
    for (i, c) in s.constraints.iter().enumerate() {
        let Some(value) = node.labels.get(&c.topology_key) else {
            return Err(Status::new(
                Code::UnschedulableAndUnresolvable,
                PluginName::PodTopologySpread,
                ERR_REASON_NODE_LABEL_NOT_MATCH,
            ));
        };
        let self_match = i64::from(selector_matches(c.selector.as_ref(), pod));
        let matched = s
            .counts
            .get(i)
            .and_then(|m| m.get(value))
            .copied()
            .unwrap_or(0);
        let min = s.min.get(i).copied().unwrap_or(0);
        if matched + self_match - min > c.max_skew {
            return Err(Status::new(
                Code::Unschedulable,
                PluginName::PodTopologySpread,
                ERR_REASON_CONSTRAINTS_NOT_MATCH,
            ));
        }
    }
    Ok(())
}

/// The soft constraints of the pod, or the system defaults.
fn soft_constraints(profile: &Profile, pod: &PodInfo) -> Vec<SpreadConstraint> {
    if !pod.spread_constraints.is_empty() {
        return pod
            .spread_constraints
            .iter()
            .filter(|c| c.when_unsatisfiable == WhenUnsatisfiable::ScheduleAnyway)
            .cloned()
            .collect();
    }
    if !profile.system_default_spread {
        return Vec::new();
    }
    match &pod.default_spread_selector {
        Some(sel) if !sel.is_empty() => [(HOSTNAME, 3), ("topology.kubernetes.io/zone", 5)]
            .into_iter()
            .map(|(key, skew)| SpreadConstraint {
                max_skew: skew,
                topology_key: key.to_owned(),
                when_unsatisfiable: WhenUnsatisfiable::ScheduleAnyway,
                selector: Some(sel.clone()),
                min_domains: 1,
                honor_node_affinity: true,
                honor_node_taints: false,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// PreScore + Score + NormalizeScore for the soft constraints.
pub fn score(
    profile: &Profile,
    pod: &PodInfo,
    snapshot: &Snapshot,
    nodes: &[Arc<NodeInfo>],
    scores: &mut [i64],
) -> bool {
    let constraints = soft_constraints(profile, pod);
    if constraints.is_empty() {
        return false;
    }
    let ignored: Vec<bool> = nodes
        .iter()
        .map(|n| {
            n.node
                .as_deref()
                .is_none_or(|node| !has_all_keys(node, &constraints))
        })
        .collect();
    // Domains present among the feasible nodes, per constraint.
    let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
    for (n, ign) in nodes.iter().zip(&ignored) {
        let Some(node) = n.node.as_deref() else {
            continue;
        };
        if *ign {
            continue;
        }
        for (c, m) in constraints.iter().zip(counts.iter_mut()) {
            if c.topology_key != HOSTNAME {
                if let Some(v) = node.labels.get(&c.topology_key) {
                    m.entry(v.clone()).or_insert(0);
                }
            }
        }
    }
    let feasible = ignored.iter().filter(|i| !**i).count();
    let weights: Vec<f64> = constraints
        .iter()
        .zip(&counts)
        .map(|(c, m)| {
            let size = if c.topology_key == HOSTNAME {
                feasible
            } else {
                m.len()
            };
            ((size + 2) as f64).ln()
        })
        .collect();
    // Count matching pods over all nodes for the non-hostname domains. Nodes
    // without matching pods add nothing, so the pod scan comes first.
    if constraints.iter().any(|c| c.topology_key != HOSTNAME) {
        for info in snapshot.nodes() {
            if info.pods.is_empty() {
                continue;
            }
            let Some(node) = info.node.as_deref() else {
                continue;
            };
            for (c, m) in constraints.iter().zip(counts.iter_mut()) {
                if c.topology_key == HOSTNAME {
                    continue;
                }
                let n = count_matching(&info.pods, c.selector.as_ref(), &pod.namespace);
                if n == 0 || !has_all_keys(node, &constraints) || !node_included(c, pod, node) {
                    continue;
                }
                let Some(v) = node.labels.get(&c.topology_key) else {
                    continue;
                };
                if let Some(slot) = m.get_mut(v) {
                    *slot += n;
                }
            }
        }
    }
    for ((s, n), ign) in scores.iter_mut().zip(nodes).zip(&ignored) {
        let Some(node) = n.node.as_deref().filter(|_| !*ign) else {
            *s = 0;
            continue;
        };
        let mut total = 0f64;
        for ((c, m), w) in constraints.iter().zip(&counts).zip(&weights) {
            let cnt = if c.topology_key == HOSTNAME {
                count_matching(&n.pods, c.selector.as_ref(), &pod.namespace)
            } else {
                node.labels
                    .get(&c.topology_key)
                    .and_then(|v| m.get(v))
                    .copied()
                    .unwrap_or(0)
            };
            total += cnt as f64 * w + (c.max_skew - 1) as f64;
        }
        *s = total.round() as i64;
    }
    // NormalizeScore.
    let considered = scores
        .iter()
        .zip(&ignored)
        .filter(|(_, i)| !**i)
        .map(|(s, _)| *s);
    let (min, max) = considered.fold((i64::MAX, i64::MIN), |(lo, hi), s| (lo.min(s), hi.max(s)));
    for (s, ign) in scores.iter_mut().zip(&ignored) {
        if *ign {
            *s = 0;
        } else if max == 0 {
            *s = MAX_NODE_SCORE;
        } else {
            *s = MAX_NODE_SCORE * (max + min - *s) / max;
        }
    }
    true
}
