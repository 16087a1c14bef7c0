//! DefaultPreemption (`pkg/scheduler/framework/plugins/defaultpreemption/
//! default_preemption.go` and `pkg/scheduler/framework/preemption/preemption.go`):
//! eligibility (`preemptionPolicy: Never`, terminating pods on the nominated
//! node), candidates among the nodes where preemption might help (a window of
//! max(10%, 100) nodes from a random offset), victims chosen per node by
//! removing every lower-priority pod then reprieving the most important ones
//! (PDB-violating first), and the node picked by upstream's criteria order.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;

use crate::cache::Snapshot;
use crate::framework::{CycleState, PluginName, Status};
use crate::labels::{str_of, LabelSelector};
use crate::node::NodeInfo;
use crate::plugins;
use crate::pod::PodInfo;
use crate::schedule::{is_unresolvable, Diagnosis, FitError, Scheduler};

/// The message for nodes where removing pods cannot help.
pub const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// The message for nodes without lower-priority pods.
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
const MIN_CANDIDATE_NODES_PERCENTAGE: usize = 10;
const MIN_CANDIDATE_NODES_ABSOLUTE: usize = 100;

/// A PodDisruptionBudget as preemption reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pdb {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `spec.selector`; absent or empty matches nothing here.
    pub selector: Option<LabelSelector>,
    /// `status.disruptionsAllowed`.
    pub disruptions_allowed: i64,
    /// Names in `status.disruptedPods`.
    pub disrupted_pods: BTreeSet<String>,
}

impl Pdb {
    /// Parses a policy/v1 PodDisruptionBudget.
    pub fn from_value(v: &Value) -> Self {
        let status = v.get("status");
        Self {
            namespace: v
                .get("metadata")
                .map_or("", |m| str_of(m, "namespace"))
                .to_owned(),
            selector: LabelSelector::parse_opt(v.get("spec").and_then(|s| s.get("selector"))),
            disruptions_allowed: status
                .and_then(|s| s.get("disruptionsAllowed"))
                .and_then(Value::as_i64)
                .unwrap_or(0),
            disrupted_pods: status
                .and_then(|s| s.get("disruptedPods"))
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
        }
    }
}

/// The chosen node and the pods to evict there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The node to nominate.
    pub node: String,
    /// Victims, most important first.
    pub victims: Vec<Arc<PodInfo>>,
    /// How many victims violate a PDB.
    pub num_pdb_violations: usize,
}

/// `MoreImportantPod`: higher priority, then the earlier start time.
fn more_important(a: &PodInfo, b: &PodInfo) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| match (&a.start_time, &b.start_time) {
            (Some(x), Some(y)) => x.cmp(y),
            // A pod without a start time counts as starting now: the latest.
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        })
}

/// `filterPodsWithPDBViolation`: (violating, non-violating), order kept.
fn split_by_pdb(pods: Vec<Arc<PodInfo>>, pdbs: &[Pdb]) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i64> = pdbs.iter().map(|p| p.disruptions_allowed).collect();
    let (mut violating, mut ok) = (Vec::new(), Vec::new());
    for pod in pods {
        let mut violated = false;
        if !pod.labels.is_empty() {
            for (i, pdb) in pdbs.iter().enumerate() {
                let Some(sel) = pdb.selector.as_ref().filter(|s| !s.is_empty()) else {
                    continue;
                };
                if pdb.namespace != pod.namespace
                    || !sel.matches(&pod.labels)
                    || pdb.disrupted_pods.contains(&pod.name)
                {
                    continue;
                }
                if let Some(a) = allowed.get_mut(i) {
                    *a -= 1;
                    violated |= *a < 0;
                }
            }
        }
        if violated {
            violating.push(pod);
        } else {
            ok.push(pod);
        }
    }
    (violating, ok)
}

fn update_state(
    state: &mut CycleState,
    pod: &PodInfo,
    other: &PodInfo,
    info: &NodeInfo,
    snapshot: &Snapshot,
    delta: i64,
) {
    let Some(node) = info.node.as_deref() else {
        return;
    };
    if let Some(s) = state.spread.as_mut() {
        s.update_with_pod(pod, other, node, delta);
    }
    if let Some(s) = state.interpod.as_mut() {
        s.update_with_pod(pod, other, node, snapshot, delta);
    }
}

/// `SelectVictimsOnNode`.
fn select_victims_on_node(
    sched: &Scheduler,
    pod: &PodInfo,
    state: &CycleState,
    info: &NodeInfo,
    snapshot: &Snapshot,
    pdbs: &[Pdb],
) -> Result<(Vec<Arc<PodInfo>>, usize), Status> {
    let mut state = state.clone();
    let mut node = info.clone();
    let mut potential: Vec<Arc<PodInfo>> = Vec::new();
    for p in &info.pods {
        if p.priority < pod.priority {
            potential.push(p.clone());
            node.remove_pod(&p.uid);
            update_state(&mut state, pod, p, info, snapshot, -1);
        }
    }
    if potential.is_empty() {
        return Err(Status::new(
            crate::framework::Code::UnschedulableAndUnresolvable,
            PluginName::DefaultPreemption,
            NO_VICTIMS,
        ));
    }
    plugins::run_filters(&sched.profile, &state, pod, &node)?;
    potential.sort_by(|a, b| more_important(a, b));
    let (violating, non_violating) = split_by_pdb(potential, pdbs);
    let mut victims = Vec::new();
    let mut violations = 0;
    let both = !violating.is_empty() && !non_violating.is_empty();
    for (group_violates, group) in [(true, violating), (false, non_violating)] {
        for p in group {
            node.add_pod(p.clone());
            update_state(&mut state, pod, &p, info, snapshot, 1);
            if plugins::run_filters(&sched.profile, &state, pod, &node).is_err() {
                node.remove_pod(&p.uid);
                update_state(&mut state, pod, &p, info, snapshot, -1);
                victims.push(p);
                if group_violates {
                    violations += 1;
                }
            }
        }
    }
    if both {
        victims.sort_by(|a, b| more_important(a, b));
    }
    Ok((victims, violations))
}

/// `pickOneNodeForPreemption`.
fn pick_one(candidates: Vec<Candidate>) -> Option<Candidate> {
    if let Some(i) = candidates.iter().position(|c| c.victims.is_empty()) {
        return candidates.into_iter().nth(i);
    }
    let mut c = candidates;
    let keep_min = |c: &mut Vec<Candidate>, f: &dyn Fn(&Candidate) -> i64| {
        let min = c.iter().map(f).min().unwrap_or(0);
        c.retain(|x| f(x) == min);
    };
    keep_min(&mut c, &|x| x.num_pdb_violations as i64);
    keep_min(&mut c, &|x| {
        x.victims
            .first()
            .map_or(i64::MIN, |v| i64::from(v.priority))
    });
    keep_min(&mut c, &|x| {
        x.victims
            .iter()
            .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
            .sum()
    });
    keep_min(&mut c, &|x| x.victims.len() as i64);
    if c.len() > 1 {
        // The latest "earliest start time among the highest-priority victims".
        let earliest = |x: &Candidate| -> Option<String> {
            let top = x.victims.first()?.priority;
            x.victims
                .iter()
                .filter(|v| v.priority == top)
                .map(|v| v.start_time.clone().unwrap_or_else(|| "~".to_owned()))
                .min()
        };
        let latest = c.iter().map(earliest).max().flatten();
        c.retain(|x| earliest(x) == latest);
    }
    c.into_iter().next()
}

fn not_helpful() -> Status {
    Status::new(
        crate::framework::Code::UnschedulableAndUnresolvable,
        PluginName::DefaultPreemption,
        PREEMPTION_NOT_HELPFUL,
    )
}

/// `Evaluator.Preempt` for a pod that got `fit_error`: the candidate, or the
/// message (without the `preemption: ` prefix) explaining why there is none.
pub fn preempt(
    sched: &mut Scheduler,
    pod: &PodInfo,
    snapshot: &Snapshot,
    fit_error: &FitError,
    pdbs: &[Pdb],
) -> Result<Candidate, String> {
    if pod.preemption_never {
        return Err("not eligible due to preemptionPolicy=Never.".to_owned());
    }
    let status_of = |name: &str| {
        fit_error
            .diagnosis
            .node_to_status
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    };
    if !pod.nominated_node_name.is_empty()
        && !status_of(&pod.nominated_node_name).is_some_and(is_unresolvable)
    {
        if let Some(n) = snapshot.get(&pod.nominated_node_name) {
            if n.pods
                .iter()
                .any(|p| p.terminating && p.priority < pod.priority)
            {
                return Err(
                    "not eligible due to a terminating pod on the nominated node.".to_owned(),
                );
            }
        }
    }
    // nodesWherePreemptionMightHelp.
    let mut statuses: Vec<(String, Status)> = Vec::new();
    let mut potential: Vec<&Arc<NodeInfo>> = Vec::new();
    for n in snapshot.nodes() {
        match status_of(n.name()) {
            Some(s) if is_unresolvable(s) => statuses.push((n.name().to_owned(), not_helpful())),
            _ => potential.push(n),
        }
    }
    let mut candidates = Vec::new();
    if !potential.is_empty() {
        let state = plugins::run_pre_filter(&sched.profile, pod, snapshot);
        let num_candidates = (potential.len() * MIN_CANDIDATE_NODES_PERCENTAGE / 100)
            .max(MIN_CANDIDATE_NODES_ABSOLUTE)
            .min(potential.len());
        let offset = sched.rng().below(potential.len());
        let (mut violating, mut non_violating) = (Vec::new(), Vec::new());
        for i in 0..potential.len() {
            let Some(info) = potential.get((offset + i) % potential.len()) else {
                continue;
            };
            match select_victims_on_node(sched, pod, &state, info, snapshot, pdbs) {
                Ok((victims, num_pdb_violations)) => {
                    let c = Candidate {
                        node: info.name().to_owned(),
                        victims,
                        num_pdb_violations,
                    };
                    if num_pdb_violations == 0 {
                        non_violating.push(c);
                    } else {
                        violating.push(c);
                    }
                    if !non_violating.is_empty()
                        && non_violating.len() + violating.len() >= num_candidates
                    {
                        break;
                    }
                }
                Err(s) => statuses.push((info.name().to_owned(), s)),
            }
        }
        candidates = non_violating;
        candidates.extend(violating);
    }
    if let Some(c) = pick_one(candidates) {
        return Ok(c);
    }
    let err = FitError {
        pod: pod.key(),
        num_all_nodes: snapshot.len(),
        diagnosis: Diagnosis {
            node_to_status: statuses,
            ..Diagnosis::default()
        },
    };
    Err(err.to_string())
}

/// The outcome of one cycle with PostFilter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Bind (after assuming) to this node.
    Scheduled(crate::schedule::ScheduleResult),
    /// Nothing fits now; evict the victims, set `status.nominatedNodeName`,
    /// and requeue the pod (the error is the FailedScheduling message).
    Nominated {
        /// The node and victims.
        candidate: Candidate,
        /// Why nothing fit.
        error: Box<FitError>,
    },
    /// Nothing fits and preemption cannot help; the message includes
    /// preemption's reasons.
    Unschedulable(Box<FitError>),
    /// No nodes at all.
    NoNodes,
}

/// `schedulingCycle` up to PostFilter: schedule, and preempt when nothing fits.
pub fn schedule_pod(
    sched: &mut Scheduler,
    pod: &PodInfo,
    snapshot: &Snapshot,
    pdbs: &[Pdb],
) -> Outcome {
    match sched.schedule(pod, snapshot) {
        Ok(r) => Outcome::Scheduled(r),
        Err(crate::schedule::ScheduleError::NoNodesAvailable) => Outcome::NoNodes,
        Err(crate::schedule::ScheduleError::Unschedulable(mut e)) => {
            if !sched.profile.preemption {
                return Outcome::Unschedulable(e);
            }
            match preempt(sched, pod, snapshot, &e, pdbs) {
                Ok(candidate) => Outcome::Nominated {
                    candidate,
                    error: e,
                },
                Err(msg) => {
                    e.diagnosis.post_filter_msg = format!("preemption: {msg}");
                    Outcome::Unschedulable(e)
                }
            }
        }
    }
}
