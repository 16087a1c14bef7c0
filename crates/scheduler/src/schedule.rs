//! One scheduling cycle (`pkg/scheduler/schedule_one.go`): `schedulePod` →
//! `findNodesThatFitPod` (nominated node first, then filtering from a rotating
//! start index until `numFeasibleNodesToFind` nodes fit) → `prioritizeNodes` →
//! `selectHost` (highest total, ties broken uniformly at random), and the
//! `FitError` message (`pkg/scheduler/framework/types.go`) with its reason
//! histogram sorted as strings.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use crate::cache::Snapshot;
use crate::framework::{Code, PluginName, Profile, Status};
use crate::node::NodeInfo;
use crate::plugins;
use crate::pod::PodInfo;

/// `minFeasibleNodesToFind`.
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// `minFeasibleNodesPercentageToFind`.
pub const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: i64 = 5;

/// The outcome of a successful cycle (`ScheduleResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleResult {
    /// `SuggestedHost`.
    pub node: String,
    /// `EvaluatedNodes`: nodes filtered (feasible or not).
    pub evaluated: usize,
    /// `FeasibleNodes`.
    pub feasible: usize,
}

/// Why the pod fits no node, node by node (`framework.Diagnosis`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnosis {
    /// Failed nodes with their status, in evaluation order.
    pub node_to_status: Vec<(String, Status)>,
    /// Plugins that rejected the pod somewhere (for queueing on cluster events).
    pub unschedulable_plugins: BTreeSet<PluginName>,
    /// Message of a failed PreFilter.
    pub pre_filter_msg: String,
    /// Message of PostFilter (preemption), with its `preemption: ` prefix.
    pub post_filter_msg: String,
}

/// `framework.FitError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    /// `namespace/name` of the pod.
    pub pod: String,
    /// Nodes in the snapshot.
    pub num_all_nodes: usize,
    /// The per-node reasons.
    pub diagnosis: Diagnosis,
}

impl FitError {
    /// The filter part of the message (without the PostFilter message).
    fn write_filter_part(&self, f: &mut impl fmt::Write) -> fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        if !self.diagnosis.pre_filter_msg.is_empty() {
            return write!(f, " {}.", self.diagnosis.pre_filter_msg);
        }
        let mut histogram: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, status) in &self.diagnosis.node_to_status {
            for r in &status.reasons {
                *histogram.entry(r.as_ref()).or_insert(0) += 1;
            }
        }
        let mut reasons: Vec<String> = histogram
            .into_iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        // Upstream sorts the formatted strings, so "10 …" sorts before "2 …".
        reasons.sort();
        if !reasons.is_empty() {
            write!(f, " {}.", reasons.join(", "))?;
        }
        Ok(())
    }
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_filter_part(f)?;
        if !self.diagnosis.post_filter_msg.is_empty() {
            write!(f, " {}.", self.diagnosis.post_filter_msg)?;
        }
        Ok(())
    }
}

impl std::error::Error for FitError {}

/// Why a cycle did not produce a node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The snapshot has no nodes (`ErrNoNodesAvailable`).
    #[error("no nodes available to schedule pods")]
    NoNodesAvailable,
    /// No node fits.
    #[error("{0}")]
    Unschedulable(Box<FitError>),
}

/// A small deterministic PRNG (splitmix64) for `selectHost` and preemption's
/// random offset; seeded so tests and benchmarks are reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % (n.max(1) as u64)) as usize
    }
}

/// `numFeasibleNodesToFind`: all nodes below 100, else `percentage` of them
/// (adaptive `50 - nodes/125`, at least 5%) but never fewer than 100.
pub fn num_feasible_nodes_to_find(percentage: Option<i32>, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let mut pct = i64::from(percentage.unwrap_or(0));
    if pct == 0 {
        pct = (50 - num_all_nodes as i64 / 125).max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    }
    let n = (num_all_nodes as i64 * pct / 100) as usize;
    n.max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// The scheduling algorithm with its small mutable state (the rotating start
/// index and the tie-break RNG). One per profile.
#[derive(Debug, Clone)]
pub struct Scheduler {
    /// The profile.
    pub profile: Profile,
    next_start_node_index: usize,
    rng: Rng,
}

impl Scheduler {
    /// A scheduler for a profile, seeded for tie-breaks.
    pub fn new(profile: Profile, seed: u64) -> Self {
        Self {
            profile,
            next_start_node_index: 0,
            rng: Rng::new(seed),
        }
    }

    /// The RNG (shared with preemption).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// `schedulePod`: picks a node for the pod or explains why none fits.
    pub fn schedule(
        &mut self,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> Result<ScheduleResult, ScheduleError> {
        if snapshot.is_empty() {
            return Err(ScheduleError::NoNodesAvailable);
        }
        let state = plugins::run_pre_filter(&self.profile, pod, snapshot);
        let mut diagnosis = Diagnosis::default();
        let feasible = self.find_nodes_that_fit(pod, snapshot, &state, &mut diagnosis);
        let evaluated = feasible.len() + diagnosis.node_to_status.len();
        match feasible.len() {
            0 => Err(ScheduleError::Unschedulable(Box::new(FitError {
                pod: pod.key(),
                num_all_nodes: snapshot.len(),
                diagnosis,
            }))),
            1 => Ok(ScheduleResult {
                node: feasible[0].name().to_owned(),
                evaluated,
                feasible: 1,
            }),
            n => {
                let totals = if self.profile.scores.is_empty() {
                    vec![1; n]
                } else {
                    plugins::run_scores(&self.profile, pod, snapshot, &feasible)
                };
                let idx = self.select_host(&totals);
                let node = feasible
                    .get(idx)
                    .map(|n| n.name().to_owned())
                    .unwrap_or_default();
                Ok(ScheduleResult {
                    node,
                    evaluated,
                    feasible: n,
                })
            }
        }
    }

    fn find_nodes_that_fit(
        &mut self,
        pod: &PodInfo,
        snapshot: &Snapshot,
        state: &crate::framework::CycleState,
        diagnosis: &mut Diagnosis,
    ) -> Vec<Arc<NodeInfo>> {
        // A nominated node (from an earlier preemption) is tried first.
        if !pod.nominated_node_name.is_empty() {
            if let Some(n) = snapshot.get(&pod.nominated_node_name) {
                if plugins::run_filters(&self.profile, state, pod, n).is_ok() {
                    return vec![n.clone()];
                }
            }
        }
        let all = snapshot.nodes();
        let num_all = all.len();
        let to_find =
            num_feasible_nodes_to_find(self.profile.percentage_of_nodes_to_score, num_all);
        let mut feasible = Vec::with_capacity(to_find.min(num_all));
        let start = self.next_start_node_index % num_all;
        let mut processed = 0;
        for i in 0..num_all {
            let n = &all[(start + i) % num_all];
            processed += 1;
            match plugins::run_filters(&self.profile, state, pod, n) {
                Ok(()) => {
                    feasible.push(n.clone());
                    if feasible.len() >= to_find {
                        break;
                    }
                }
                Err(status) => {
                    diagnosis.unschedulable_plugins.insert(status.plugin);
                    diagnosis.node_to_status.push((n.name().to_owned(), status));
                }
            }
        }
        self.next_start_node_index = (start + processed) % num_all;
        feasible
    }

    /// `selectHost`: the highest total; ties by reservoir sampling.
    fn select_host(&mut self, totals: &[i64]) -> usize {
        let mut best = 0;
        let mut max = i64::MIN;
        let mut count = 0;
        for (i, t) in totals.iter().enumerate() {
            if *t > max {
                max = *t;
                best = i;
                count = 1;
            } else if *t == max {
                count += 1;
                if self.rng.below(count) == 0 {
                    best = i;
                }
            }
        }
        best
    }
}

/// Whether a status means preemption cannot help on that node.
pub fn is_unresolvable(status: &Status) -> bool {
    status.code == Code::UnschedulableAndUnresolvable
}
