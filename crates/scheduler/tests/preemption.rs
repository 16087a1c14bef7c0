//! DefaultPreemption: messages, victim selection, PDBs, node choice.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use ferrokube_scheduler::framework::Profile;
use ferrokube_scheduler::preemption::{schedule_pod, Outcome, Pdb};
use ferrokube_scheduler::schedule::Scheduler;
use serde_json::{json, Value};

fn prio(v: Value, p: i64) -> Value {
    merge(v, json!({"spec": {"priority": p}}))
}

fn message(o: Outcome) -> String {
    match o {
        Outcome::Unschedulable(e) => e.to_string(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_victims_message_like_upstream() {
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
        pod_json("p", "500m", "1Gi"),
        json!({"spec": {"nodeSelector": {"disk": "ssd"}}}),
    ));
    // n2/n3 are full of pods of the same priority.
    let (_, snap2) = cluster(
        vec![
            merge(
                node_json("n1", "4", "8Gi"),
                json!({"metadata": {"labels": {"disk": "hdd"}}}),
            ),
            ssd("n2"),
            ssd("n3"),
        ],
        vec![
            bound(pod_json("a", "1", "1Gi"), "n2"),
            bound(pod_json("b", "1", "1Gi"), "n3"),
        ],
    );
    let mut s = Scheduler::new(Profile::default(), 1);
    assert!(matches!(
        schedule_pod(&mut s, &p, &snap, &[]),
        Outcome::Scheduled(_)
    ));
    assert_eq!(
        message(schedule_pod(&mut s, &p, &snap2, &[])),
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu. \
         preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, \
         2 No preemption victims found for incoming pod.."
    );
}

#[test]
fn preemption_policy_never() {
    let (_, snap) = cluster(
        vec![node_json("n1", "1", "8Gi")],
        vec![bound(pod_json("a", "1", "1Gi"), "n1")],
    );
    let p = pod(merge(
        prio(pod_json("p", "1", "1Gi"), 100),
        json!({"spec": {"preemptionPolicy": "Never"}}),
    ));
    let mut s = Scheduler::new(Profile::default(), 1);
    assert_eq!(
        message(schedule_pod(&mut s, &p, &snap, &[])),
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.."
    );
}

#[test]
fn evicts_the_fewest_lowest_priority_pods_and_spares_what_it_can() {
    // n1: two priority-10 pods (1 cpu each); n2: one priority-50 pod (2 cpu);
    // n3: a priority-5 pod (1 cpu) and a priority-1 pod (1 cpu).
    let (_, snap) = cluster(
        vec![
            node_json("n1", "2", "8Gi"),
            node_json("n2", "2", "8Gi"),
            node_json("n3", "2", "8Gi"),
        ],
        vec![
            bound(prio(pod_json("a1", "1", "1Gi"), 10), "n1"),
            bound(prio(pod_json("a2", "1", "1Gi"), 10), "n1"),
            bound(prio(pod_json("b1", "2", "1Gi"), 50), "n2"),
            bound(prio(pod_json("c1", "1", "1Gi"), 5), "n3"),
            bound(prio(pod_json("c2", "1", "1Gi"), 1), "n3"),
        ],
    );
    let p = pod(prio(pod_json("p", "1", "1Gi"), 100));
    let mut s = Scheduler::new(Profile::default(), 1);
    match schedule_pod(&mut s, &p, &snap, &[]) {
        Outcome::Nominated { candidate, .. } => {
            assert_eq!(candidate.node, "n3");
            let victims: Vec<_> = candidate.victims.iter().map(|v| v.name.as_str()).collect();
            assert_eq!(victims, ["c2"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn pdb_violations_are_minimized() {
    let web = |name: &str| {
        merge(
            prio(pod_json(name, "2", "1Gi"), 1),
            json!({"metadata": {"labels": {"app": "web"}}}),
        )
    };
    let (_, snap) = cluster(
        vec![node_json("n1", "2", "8Gi"), node_json("n2", "2", "8Gi")],
        vec![
            bound(web("w1"), "n1"),
            bound(prio(pod_json("x", "2", "1Gi"), 5), "n2"),
        ],
    );
    let pdb = Pdb::from_value(&json!({"metadata": {"namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}}, "status": {"disruptionsAllowed": 0}}));
    let p = pod(prio(pod_json("p", "1", "1Gi"), 100));
    let mut s = Scheduler::new(Profile::default(), 1);
    match schedule_pod(&mut s, &p, &snap, std::slice::from_ref(&pdb)) {
        Outcome::Nominated { candidate, .. } => {
            assert_eq!(
                (candidate.node.as_str(), candidate.num_pdb_violations),
                ("n2", 0)
            );
        }
        other => panic!("{other:?}"),
    }
    // Without the PDB the lower-priority victim wins.
    match schedule_pod(&mut s, &p, &snap, &[]) {
        Outcome::Nominated { candidate, .. } => assert_eq!(candidate.node, "n1"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn preemption_that_cannot_make_room_reports_the_filter_reason() {
    let (_, snap) = cluster(
        vec![node_json("n1", "2", "8Gi")],
        vec![
            bound(prio(pod_json("hi", "2", "1Gi"), 1000), "n1"),
            bound(prio(pod_json("lo", "0", "1Gi"), 1), "n1"),
        ],
    );
    let p = pod(prio(pod_json("p", "1", "1Gi"), 100));
    let mut s = Scheduler::new(Profile::default(), 1);
    assert_eq!(
        message(schedule_pod(&mut s, &p, &snap, &[])),
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 Insufficient cpu.."
    );
}
