//! Micro-benchmark: 10,000 pending pods onto 5,000 nodes in-process, every
//! cycle as the binary runs it (schedule → assume → incremental snapshot).
//! `cargo test --release -p ferrokube-scheduler --test bench -- --ignored --nocapture`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Instant;

use common::*;
use ferrokube_scheduler::cache::Cache;
use ferrokube_scheduler::framework::Profile;
use ferrokube_scheduler::schedule::Scheduler;
use serde_json::json;

fn run(nodes: usize, pods: usize, spread: bool) -> f64 {
    let mut cache = Cache::new();
    for i in 0..nodes {
        let n = merge(
            node_json(&format!("node-{i}"), "32", "128Gi"),
            json!({"metadata": {"labels": {"topology.kubernetes.io/zone": format!("zone-{}", i % 3)}},
                   "status": {"allocatable": {"pods": "110"},
                              "images": [{"names": ["registry.k8s.io/pause:3.10"], "sizeBytes": 300_000}]}}),
        );
        cache.add_node(node(n));
    }
    let pending: Vec<_> = (0..pods)
        .map(|i| {
            let mut p = pod(merge(
                pod_json(&format!("pod-{i}"), "100m", "128Mi"),
                json!({"metadata": {"labels": {"app": format!("app-{}", i % 50)}}}),
            ));
            if spread {
                let mut sel = ferrokube_scheduler::labels::LabelSelector::default();
                sel.require_equal("app", &format!("app-{}", i % 50));
                p.default_spread_selector = Some(sel);
            }
            p
        })
        .collect();
    let mut snapshot = cache.snapshot();
    let mut sched = Scheduler::new(Profile::default(), 42);
    let start = Instant::now();
    for mut p in pending {
        cache.update_snapshot(&mut snapshot);
        let r = sched.schedule(&p, &snapshot).unwrap();
        p.node_name = r.node;
        cache.assume_pod(p).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(cache.pod_count(), pods);
    pods as f64 / secs
}

#[test]
#[ignore = "benchmark; run in release with --ignored --nocapture"]
fn schedule_10k_pods_on_5k_nodes() {
    let plain = run(5000, 10_000, false);
    println!("10000 pods on 5000 nodes: {plain:.0} pods/s");
    let spread = run(5000, 10_000, true);
    println!(
        "10000 pods on 5000 nodes with default spreading (service selector): {spread:.0} pods/s"
    );
}

#[test]
fn small_run_schedules_everything() {
    assert!(run(50, 200, true) > 0.0);
}
