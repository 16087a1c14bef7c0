//! `interpodaffinity/{filtering.go,scoring.go}`: required pod affinity and
//! anti-affinity of the incoming pod and required anti-affinity of existing
//! pods in Filter (counts per topology pair computed once in PreFilter,
//! updated by AddPod/RemovePod during preemption), preferred terms both ways
//! (plus existing pods' required affinity at `hardPodAffinityWeight`) in Score.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cache::Snapshot;
use crate::framework::{Code, PluginName, Profile, Status, MAX_NODE_SCORE};
use crate::node::{Node, NodeInfo};
use crate::pod::{AffinityTerm, PodInfo};

/// `ErrReasonAffinityRulesNotMatch`.
pub const ERR_REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// `ErrReasonAntiAffinityRulesNotMatch`.
pub const ERR_REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// `ErrReasonExistingAntiAffinityRulesNotMatch`.
pub const ERR_REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

type TopologyCounts = HashMap<(String, String), i64>;

/// The per-cycle state.
#[derive(Debug, Clone, Default)]
pub struct PreFilterState {
    existing_anti_affinity: TopologyCounts,
    affinity: TopologyCounts,
    anti_affinity: TopologyCounts,
    ns_labels: Option<crate::labels::Labels>,
}

fn add(counts: &mut TopologyCounts, key: &str, node: &Node, delta: i64) {
    if let Some(v) = node.labels.get(key) {
        let e = counts.entry((key.to_owned(), v.clone())).or_insert(0);
        *e += delta;
        if *e == 0 {
            counts.remove(&(key.to_owned(), v.clone()));
        }
    }
}

fn matches_all(
    terms: &[AffinityTerm],
    pod: &PodInfo,
    ns_labels: Option<&crate::labels::Labels>,
) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod, ns_labels))
}

impl PreFilterState {
    /// `updateWithPod`: account `other` on `node` with `delta` (+1/-1).
    pub fn update_with_pod(
        &mut self,
        incoming: &PodInfo,
        other: &PodInfo,
        node: &Node,
        snapshot: &Snapshot,
        delta: i64,
    ) {
        let incoming_ns = self.ns_labels.as_ref();
        for t in &other.required_anti_affinity {
            if t.matches(incoming, incoming_ns) {
                add(
                    &mut self.existing_anti_affinity,
                    &t.topology_key,
                    node,
                    delta,
                );
            }
        }
        let other_ns = snapshot.namespace_labels(&other.namespace);
        if matches_all(&incoming.required_affinity, other, other_ns) {
            for t in &incoming.required_affinity {
                add(&mut self.affinity, &t.topology_key, node, delta);
            }
        }
        for t in &incoming.required_anti_affinity {
            if t.matches(other, other_ns) {
                add(&mut self.anti_affinity, &t.topology_key, node, delta);
            }
        }
    }
}

/// PreFilter; `None` when nothing can fail (no terms on the pod, no existing
/// pod with required anti-affinity).
pub fn pre_filter(pod: &PodInfo, snapshot: &Snapshot) -> Option<PreFilterState> {
    let has_terms = !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty();
    if !has_terms && snapshot.with_required_anti_affinity.is_empty() {
        return None;
    }
    let mut s = PreFilterState {
        ns_labels: snapshot.namespace_labels(&pod.namespace).cloned(),
        ..Default::default()
    };
    for &i in &snapshot.with_required_anti_affinity {
        let Some(info) = snapshot.nodes.get(i) else {
            continue;
        };
        let Some(node) = info.node.as_deref() else {
            continue;
        };
        for other in info.pods.iter().filter(|p| p.has_required_anti_affinity()) {
            for t in &other.required_anti_affinity {
                if t.matches(pod, s.ns_labels.as_ref()) {
                    add(&mut s.existing_anti_affinity, &t.topology_key, node, 1);
                }
            }
        }
    }
    if has_terms {
        for info in snapshot.nodes() {
            let Some(node) = info.node.as_deref() else {
                continue;
            };
            for other in &info.pods {
                let other_ns = snapshot.namespace_labels(&other.namespace);
                if matches_all(&pod.required_affinity, other, other_ns) {
                    for t in &pod.required_affinity {
                        add(&mut s.affinity, &t.topology_key, node, 1);
                    }
                }
                for t in &pod.required_anti_affinity {
                    if t.matches(other, other_ns) {
                        add(&mut s.anti_affinity, &t.topology_key, node, 1);
                    }
                }
            }
        }
    }
    Some(s)
}

fn count(counts: &TopologyCounts, key: &str, node: &Node) -> Option<i64> {
    node.labels.get(key).map(|v| {
        counts
            .get(&(key.to_owned(), v.clone()))
            .copied()
            .unwrap_or(0)
    })
}

/// Filter.
pub fn filter(s: &PreFilterState, pod: &PodInfo, node: &Node) -> Result<(), Status> {
    if !pod.required_affinity.is_empty() {
        let mut pods_exist = true;
        for t in &pod.required_affinity {
            match count(&s.affinity, &t.topology_key, node) {
                // All topology labels must exist on the node.
                None => {
                    return Err(Status::new(
                        Code::UnschedulableAndUnresolvable,
                        PluginName::InterPodAffinity,
                        ERR_REASON_AFFINITY,
                    ))
                }
                Some(c) => pods_exist &= c > 0,
            }
        }
        // The first pod of a group with affinity to itself may go anywhere.
        let first_of_series =
            s.affinity.is_empty() && matches_all(&pod.required_affinity, pod, s.ns_labels.as_ref());
        if !pods_exist && !first_of_series {
            return Err(Status::new(
                Code::UnschedulableAndUnresolvable,
                PluginName::InterPodAffinity,
                ERR_REASON_AFFINITY,
            ));
        }
    }
    for t in &pod.required_anti_affinity {
        if count(&s.anti_affinity, &t.topology_key, node).is_some_and(|c| c > 0) {
            return Err(Status::new(
                Code::Unschedulable,
                PluginName::InterPodAffinity,
                ERR_REASON_ANTI_AFFINITY,
            ));
        }
    }
    if !s.existing_anti_affinity.is_empty() {
        let hit = node.labels.iter().any(|(k, v)| {
            s.existing_anti_affinity
                .get(&(k.clone(), v.clone()))
                .is_some_and(|c| *c > 0)
        });
        if hit {
            return Err(Status::new(
                Code::Unschedulable,
                PluginName::InterPodAffinity,
                ERR_REASON_EXISTING_ANTI_AFFINITY,
            ));
        }
    }
    Ok(())
}

/// PreScore + Score + NormalizeScore.
pub fn score(
    profile: &Profile,
    pod: &PodInfo,
    snapshot: &Snapshot,
    nodes: &[Arc<NodeInfo>],
    scores: &mut [i64],
) -> bool {
    let has_preferred =
        !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
    if !has_preferred && snapshot.with_affinity.is_empty() {
        return false;
    }
    let pod_ns = snapshot.namespace_labels(&pod.namespace);
    let mut topo: HashMap<String, HashMap<String, i64>> = HashMap::new();
    let mut bump = |key: &str, node: &Node, w: i64| {
        if let Some(v) = node.labels.get(key) {
            *topo
                .entry(key.to_owned())
                .or_default()
                .entry(v.clone())
                .or_insert(0) += w;
        }
    };
    let candidates: Box<dyn Iterator<Item = &Arc<NodeInfo>>> = if has_preferred {
        Box::new(snapshot.nodes().iter())
    } else {
        Box::new(
            snapshot
                .with_affinity
                .iter()
                .filter_map(|i| snapshot.nodes.get(*i)),
        )
    };
    for info in candidates {
        let Some(node) = info.node.as_deref() else {
            continue;
        };
        for other in &info.pods {
            let other_ns = snapshot.namespace_labels(&other.namespace);
            for t in &pod.preferred_affinity {
                if t.matches(other, other_ns) {
                    bump(&t.topology_key, node, t.weight);
                }
            }
            for t in &pod.preferred_anti_affinity {
                if t.matches(other, other_ns) {
                    bump(&t.topology_key, node, -t.weight);
                }
            }
            if !other.has_affinity() {
                continue;
            }
            if profile.hard_pod_affinity_weight > 0 {
                for t in &other.required_affinity {
                    if t.matches(pod, pod_ns) {
                        bump(&t.topology_key, node, profile.hard_pod_affinity_weight);
                    }
                }
            }
            for t in &other.preferred_affinity {
                if t.matches(pod, pod_ns) {
                    bump(&t.topology_key, node, t.weight);
                }
            }
            for t in &other.preferred_anti_affinity {
                if t.matches(pod, pod_ns) {
                    bump(&t.topology_key, node, -t.weight);
                }
            }
        }
    }
    for (s, n) in scores.iter_mut().zip(nodes) {
        *s = n.node.as_deref().map_or(0, |node| {
            topo.iter()
                .filter_map(|(k, vals)| node.labels.get(k).and_then(|v| vals.get(v)))
                .sum()
        });
    }
    let (min, max) = scores
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
    let diff = max.saturating_sub(min);
    for s in scores.iter_mut() {
        *s = if diff > 0 {
            (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / diff as f64)) as i64
        } else {
            0
        };
    }
    true
}
