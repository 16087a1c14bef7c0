//! `noderesources/fit.go` (Filter: "Insufficient <resource>", "Too many pods";
//! UnschedulableAndUnresolvable when the request exceeds the node's allocatable
//! outright), `least_allocated.go`/`most_allocated.go` (Fit scoring with cpu and
//! memory weighted 1) and `balanced_allocation.go` (with the v1.33 skip for
//! best-effort pods).

use std::borrow::Cow;
use std::sync::Arc;

use crate::framework::{Code, PluginName, ScoringStrategy, Status, MAX_NODE_SCORE};
use crate::node::NodeInfo;
use crate::pod::PodInfo;

/// Fit Filter.
pub fn fit(pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
    let Some(n) = node.node.as_deref() else {
        return Ok(());
    };
    let alloc = &n.allocatable;
    let req = &pod.requests.requests;
    let used = &node.requested;
    let mut reasons: Vec<Cow<'static, str>> = Vec::new();
    let mut code = Code::Unschedulable;
    if node.pods.len() as i64 + 1 > alloc.allowed_pod_number {
        reasons.push(Cow::Borrowed("Too many pods"));
    }
    if !req.is_zero() {
        let mut check = |want: i64, have: i64, in_use: i64, reason: Cow<'static, str>| {
            if want > 0 && want > have - in_use {
                reasons.push(reason);
                if want > have {
                    code = Code::UnschedulableAndUnresolvable;
                }
            }
        };
        check(
            req.milli_cpu,
            alloc.milli_cpu,
            used.milli_cpu,
            Cow::Borrowed("Insufficient cpu"),
        );
        check(
            req.memory,
            alloc.memory,
            used.memory,
            Cow::Borrowed("Insufficient memory"),
        );
        check(
            req.ephemeral_storage,
            alloc.ephemeral_storage,
            used.ephemeral_storage,
            Cow::Borrowed("Insufficient ephemeral-storage"),
        );
        for (name, want) in &req.scalar {
            check(
                *want,
                alloc.scalar.get(name).copied().unwrap_or(0),
                used.scalar.get(name).copied().unwrap_or(0),
                Cow::Owned(format!("Insufficient {name}")),
            );
        }
    }
    if reasons.is_empty() {
        return Ok(());
    }
    Err(Status {
        code,
        reasons,
        plugin: PluginName::NodeResourcesFit,
    })
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

fn most_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 {
        return 0;
    }
    requested.min(capacity) * MAX_NODE_SCORE / capacity
}

/// The Fit score of one node (cpu and memory, weight 1 each, non-zero requests).
pub fn fit_score(strategy: ScoringStrategy, pod: &PodInfo, node: &NodeInfo) -> i64 {
    let Some(n) = node.node.as_deref() else {
        return 0;
    };
    let f = match strategy {
        ScoringStrategy::LeastAllocated => least_requested,
        ScoringStrategy::MostAllocated => most_requested,
    };
    let pairs = [
        (
            node.non_zero_milli_cpu + pod.requests.non_zero_milli_cpu,
            n.allocatable.milli_cpu,
        ),
        (
            node.non_zero_memory + pod.requests.non_zero_memory,
            n.allocatable.memory,
        ),
    ];
    let (mut total, mut weights) = (0, 0);
    for (requested, alloc) in pairs {
        if alloc == 0 {
            continue;
        }
        total += f(requested, alloc);
        weights += 1;
    }
    if weights == 0 {
        0
    } else {
        total / weights
    }
}

/// NodeResourcesFit Score over the nodes (no normalization upstream).
pub fn score_fit(
    strategy: ScoringStrategy,
    pod: &PodInfo,
    nodes: &[Arc<NodeInfo>],
    scores: &mut [i64],
) -> bool {
    for (s, n) in scores.iter_mut().zip(nodes) {
        *s = fit_score(strategy, pod, n);
    }
    true
}

/// BalancedAllocation score of one node: `(1 - |f_cpu - f_mem| / 2) * 100`
/// with fractions of allocatable after adding the pod (actual requests).
pub fn balanced_score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let Some(n) = node.node.as_deref() else {
        return 0;
    };
    let req = &pod.requests.requests;
    let mut fractions = [0f64; 2];
    let mut len = 0;
    for (requested, alloc) in [
        (
            node.requested.milli_cpu + req.milli_cpu,
            n.allocatable.milli_cpu,
        ),
        (node.requested.memory + req.memory, n.allocatable.memory),
    ] {
        if alloc == 0 {
            continue;
        }
        fractions[len] = (requested as f64 / alloc as f64).min(1.0);
        len += 1;
    }
    let std = if len == 2 {
        ((fractions[0] - fractions[1]) / 2.0).abs()
    } else {
        0.0
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// NodeResourcesBalancedAllocation Score; skipped for pods requesting neither
/// cpu nor memory.
pub fn score_balanced(pod: &PodInfo, nodes: &[Arc<NodeInfo>], scores: &mut [i64]) -> bool {
    let req = &pod.requests.requests;
    if req.milli_cpu == 0 && req.memory == 0 {
        return false;
    }
    for (s, n) in scores.iter_mut().zip(nodes) {
        *s = balanced_score(pod, n);
    }
    true
}
