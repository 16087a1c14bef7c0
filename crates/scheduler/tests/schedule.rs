//! Scheduling cycles end to end with upstream's FitError messages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use ferrokube_scheduler::framework::Profile;
use ferrokube_scheduler::schedule::{num_feasible_nodes_to_find, ScheduleError, Scheduler};
use serde_json::json;

fn fit_message(r: Result<ferrokube_scheduler::schedule::ScheduleResult, ScheduleError>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(r) => panic!("scheduled on {}", r.node),
    }
}

#[test]
fn adaptive_percentage_of_nodes_to_score() {
    assert_eq!(num_feasible_nodes_to_find(None, 50), 50);
    assert_eq!(num_feasible_nodes_to_find(None, 100), 100);
    assert_eq!(num_feasible_nodes_to_find(None, 1000), 420);
    assert_eq!(num_feasible_nodes_to_find(None, 5000), 500);
    assert_eq!(num_feasible_nodes_to_find(None, 6000), 300);
    assert_eq!(num_feasible_nodes_to_find(Some(1), 5000), 100);
    assert_eq!(num_feasible_nodes_to_find(Some(100), 5000), 5000);
}

#[test]
fn fit_error_aggregates_reasons_like_upstream() {
    let labelled = merge(
        node_json("n1", "4", "8Gi"),
        json!({"metadata": {"labels": {"disk": "hdd"}}}),
    );
    let ssd = |n: &str| {
        merge(
            node_json(n, "1", "8Gi"),
            json!({"metadata": {"labels": {"disk": "ssd"}}}),
        )
    };
    let (_, snap) = cluster(vec![labelled, ssd("n2"), ssd("n3")], vec![]);
    let p = pod(merge(
        pod_json("p", "2", "1Gi"),
        json!({"spec": {"nodeSelector": {"disk": "ssd"}}}),
    ));
    let mut s = Scheduler::new(Profile::default(), 1);
    assert_eq!(
        fit_message(s.schedule(&p, &snap)),
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu."
    );
}

#[test]
fn histogram_sorts_as_strings() {
    let mut nodes: Vec<_> = (0..10)
        .map(|i| node_json(&format!("small{i}"), "1", "1Gi"))
        .collect();
    nodes.push(merge(
        node_json("t1", "8", "8Gi"),
        json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}),
    ));
    nodes.push(merge(
        node_json("t2", "8", "8Gi"),
        json!({"spec": {"unschedulable": true}}),
    ));
    let (_, snap) = cluster(nodes, vec![]);
    let p = pod(pod_json("p", "2", "100Mi"));
    let mut s = Scheduler::new(Profile::default(), 1);
    assert_eq!(
        fit_message(s.schedule(&p, &snap)),
        "0/12 nodes are available: 1 node(s) had untolerated taint {k: v}, 1 node(s) were unschedulable, 10 Insufficient cpu."
    );
}

#[test]
fn multiple_resources_and_pod_count() {
    let full = merge(
        node_json("n1", "1", "1Gi"),
        json!({"status": {"allocatable": {"pods": "1"}}}),
    );
    let (_, snap) = cluster(vec![full], vec![bound(pod_json("a", "100m", "10Mi"), "n1")]);
    let p = pod(pod_json("p", "1", "2Gi"));
    let mut s = Scheduler::new(Profile::default(), 1);
    assert_eq!(
        fit_message(s.schedule(&p, &snap)),
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 1 Too many pods."
    );
}

#[test]
fn no_nodes() {
    let (_, snap) = cluster(vec![], vec![]);
    let mut s = Scheduler::new(Profile::default(), 1);
    assert_eq!(
        s.schedule(&pod(pod_json("p", "1", "1")), &snap),
        Err(ScheduleError::NoNodesAvailable)
    );
}

#[test]
fn prefers_the_emptier_node_and_counts_evaluated() {
    let (_, snap) = cluster(
        vec![node_json("busy", "4", "8Gi"), node_json("idle", "4", "8Gi")],
        vec![bound(pod_json("a", "3", "6Gi"), "busy")],
    );
    let mut s = Scheduler::new(Profile::default(), 7);
    let r = s
        .schedule(&pod(pod_json("p", "500m", "512Mi")), &snap)
        .unwrap();
    assert_eq!((r.node.as_str(), r.evaluated, r.feasible), ("idle", 2, 2));
}

#[test]
fn most_allocated_packs() {
    let (_, snap) = cluster(
        vec![node_json("busy", "4", "8Gi"), node_json("idle", "4", "8Gi")],
        vec![bound(pod_json("a", "2", "4Gi"), "busy")],
    );
    let profile = Profile {
        fit_strategy: ferrokube_scheduler::framework::ScoringStrategy::MostAllocated,
        ..Profile::default()
    };
    let mut s = Scheduler::new(profile, 7);
    assert_eq!(
        s.schedule(&pod(pod_json("p", "500m", "512Mi")), &snap)
            .unwrap()
            .node,
        "busy"
    );
}

#[test]
fn ties_are_broken_randomly() {
    let (_, snap) = cluster(
        (0..4)
            .map(|i| node_json(&format!("n{i}"), "4", "8Gi"))
            .collect(),
        vec![],
    );
    let mut s = Scheduler::new(Profile::default(), 3);
    let p = pod(pod_json("p", "1", "1Gi"));
    let picked: std::collections::BTreeSet<String> = (0..64)
        .map(|_| s.schedule(&p, &snap).unwrap().node)
        .collect();
    assert!(picked.len() > 1, "{picked:?}");
}

#[test]
fn nominated_node_is_tried_first() {
    let (_, snap) = cluster(
        (0..4)
            .map(|i| node_json(&format!("n{i}"), "4", "8Gi"))
            .collect(),
        vec![],
    );
    let mut s = Scheduler::new(Profile::default(), 3);
    let p = pod(merge(
        pod_json("p", "1", "1Gi"),
        json!({"status": {"nominatedNodeName": "n2"}}),
    ));
    let r = s.schedule(&p, &snap).unwrap();
    assert_eq!((r.node.as_str(), r.evaluated, r.feasible), ("n2", 1, 1));
}

#[test]
fn only_a_share_of_large_clusters_is_evaluated() {
    let (_, snap) = cluster(
        (0..1000)
            .map(|i| node_json(&format!("n{i}"), "4", "8Gi"))
            .collect(),
        vec![],
    );
    let mut s = Scheduler::new(Profile::default(), 3);
    let r = s.schedule(&pod(pod_json("p", "1", "1Gi")), &snap).unwrap();
    assert_eq!((r.evaluated, r.feasible), (420, 420));
}
