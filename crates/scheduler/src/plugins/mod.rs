//! The default plugins (`pkg/scheduler/framework/plugins/…`) and the framework
//! runtime that runs them (`pkg/scheduler/framework/runtime/framework.go`:
//! `RunPreFilterPlugins`, `RunFilterPlugins` stopping at the first failure,
//! `RunScorePlugins` with NormalizeScore and weights).

pub mod basic;
pub mod imagelocality;
pub mod interpodaffinity;
pub mod noderesources;
pub mod podtopologyspread;

use std::sync::Arc;

use crate::cache::Snapshot;
use crate::framework::{CycleState, PluginName, Profile, Status};
use crate::node::NodeInfo;
use crate::pod::PodInfo;

/// Runs PreFilter of the enabled plugins.
pub fn run_pre_filter(profile: &Profile, pod: &PodInfo, snapshot: &Snapshot) -> CycleState {
    let mut state = CycleState::default();
    for p in &profile.filters {
        match p {
            PluginName::PodTopologySpread => {
                state.spread = podtopologyspread::pre_filter(pod, snapshot);
            }
            PluginName::InterPodAffinity => {
                state.interpod = interpodaffinity::pre_filter(pod, snapshot);
            }
            _ => {}
        }
    }
    state
}

/// Runs the filters on one node, stopping at the first that fails.
pub fn run_filters(
    profile: &Profile,
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Result<(), Status> {
    let Some(n) = node.node.as_deref() else {
        return Err(Status::new(
            crate::framework::Code::UnschedulableAndUnresolvable,
            PluginName::NodeUnschedulable,
            "node(s) had unknown conditions",
        ));
    };
    for p in &profile.filters {
        let r = match p {
            PluginName::NodeUnschedulable => basic::node_unschedulable(pod, n),
            PluginName::NodeName => basic::node_name(pod, n),
            PluginName::TaintToleration => basic::taint_toleration(pod, n),
            PluginName::NodeAffinity => basic::node_affinity(pod, n),
            PluginName::NodePorts => basic::node_ports(pod, node),
            PluginName::NodeResourcesFit => noderesources::fit(pod, node),
            PluginName::PodTopologySpread => match &state.spread {
                Some(s) => podtopologyspread::filter(s, pod, n),
                None => Ok(()),
            },
            PluginName::InterPodAffinity => match &state.interpod {
                Some(s) => interpodaffinity::filter(s, pod, n),
                None => Ok(()),
            },
            _ => Ok(()),
        };
        r?;
    }
    Ok(())
}

/// `DefaultNormalizeScore` (`plugins/helper/normalize_score.go`).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores
                .iter_mut()
                .for_each(|s| *s = crate::framework::MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = crate::framework::MAX_NODE_SCORE * *s / max;
        *s = if reverse {
            crate::framework::MAX_NODE_SCORE - v
        } else {
            v
        };
    }
}

/// Runs PreScore, Score and NormalizeScore of every score plugin over the
/// feasible nodes and returns the weighted totals, one per node.
pub fn run_scores(
    profile: &Profile,
    pod: &PodInfo,
    snapshot: &Snapshot,
    nodes: &[Arc<NodeInfo>],
) -> Vec<i64> {
    let mut totals = vec![0i64; nodes.len()];
    let mut scores = vec![0i64; nodes.len()];
    for (plugin, weight) in &profile.scores {
        let ran = match plugin {
            PluginName::TaintToleration => basic::score_taint_toleration(pod, nodes, &mut scores),
            PluginName::NodeAffinity => basic::score_node_affinity(pod, nodes, &mut scores),
            PluginName::NodeResourcesFit => {
                noderesources::score_fit(profile.fit_strategy, pod, nodes, &mut scores)
            }
            PluginName::NodeResourcesBalancedAllocation => {
                noderesources::score_balanced(pod, nodes, &mut scores)
            }
            PluginName::ImageLocality => imagelocality::score(pod, snapshot, nodes, &mut scores),
            PluginName::PodTopologySpread => {
                podtopologyspread::score(profile, pod, snapshot, nodes, &mut scores)
            }
            PluginName::InterPodAffinity => {
                interpodaffinity::score(profile, pod, snapshot, nodes, &mut scores)
            }
            _ => false,
        };
        if ran {
            for (t, s) in totals.iter_mut().zip(&scores) {
                *t += s * weight;
            }
        }
    }
    totals
}
