//! Per-plugin cases after upstream's tests, through full scheduling cycles.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use ferrokube_scheduler::framework::Profile;
use ferrokube_scheduler::schedule::Scheduler;
use serde_json::{json, Value};

fn run(
    nodes: Vec<Value>,
    pods: Vec<ferrokube_scheduler::pod::PodInfo>,
    p: Value,
) -> Result<String, String> {
    let (_, snap) = cluster(nodes, pods);
    let mut s = Scheduler::new(Profile::default(), 5);
    s.schedule(&pod(p), &snap)
        .map(|r| r.node)
        .map_err(|e| e.to_string())
}

fn zoned(name: &str, zone: &str) -> Value {
    merge(
        node_json(name, "8", "16Gi"),
        json!({"metadata": {"labels": {"zone": zone}}}),
    )
}

fn labelled(name: &str, labels: Value) -> Value {
    merge(
        pod_json(name, "100m", "100Mi"),
        json!({"metadata": {"labels": labels}}),
    )
}

#[test]
fn node_name() {
    let p = merge(
        pod_json("p", "1", "1Gi"),
        json!({"spec": {"nodeName": "elsewhere"}}),
    );
    assert_eq!(
        run(vec![node_json("n1", "4", "8Gi")], vec![], p),
        Err("0/1 nodes are available: 1 node(s) didn't match the requested node name.".into())
    );
}

#[test]
fn unschedulable_node_tolerated() {
    let cordoned = merge(
        node_json("n1", "4", "8Gi"),
        json!({"spec": {"unschedulable": true}}),
    );
    let p = merge(
        pod_json("p", "1", "1Gi"),
        json!({"spec": {"tolerations": [
        {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}}),
    );
    assert_eq!(run(vec![cordoned], vec![], p), Ok("n1".into()));
}

#[test]
fn taints_filter_and_prefer_no_schedule_scoring() {
    let no_exec = merge(
        node_json("a", "4", "8Gi"),
        json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoExecute"}]}}),
    );
    let prefer = merge(
        node_json("b", "4", "8Gi"),
        json!({"spec": {"taints": [{"key": "soft", "effect": "PreferNoSchedule"}]}}),
    );
    let plain = node_json("c", "4", "8Gi");
    assert_eq!(
        run(
            vec![no_exec.clone(), prefer.clone(), plain],
            vec![],
            pod_json("p", "1", "1Gi")
        ),
        Ok("c".into())
    );
    assert_eq!(
        run(vec![no_exec], vec![], pod_json("p", "1", "1Gi")),
        Err("0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: db}.".into())
    );
    // PreferNoSchedule only scores: the tainted node is still used when alone.
    assert_eq!(
        run(vec![prefer], vec![], pod_json("p", "1", "1Gi")),
        Ok("b".into())
    );
}

#[test]
fn node_affinity_required_and_preferred() {
    let p = merge(
        pod_json("p", "1", "1Gi"),
        json!({"spec": {"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z3"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}}]
        }}}}),
    );
    let nodes = vec![zoned("n1", "z1"), zoned("n2", "z2"), zoned("n3", "z3")];
    for _ in 0..5 {
        assert_eq!(run(nodes.clone(), vec![], p.clone()), Ok("n2".into()));
    }
    let by_name = merge(
        pod_json("q", "1", "1Gi"),
        json!({"spec": {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n3"]}]}]}}}}}),
    );
    assert_eq!(run(nodes, vec![], by_name), Ok("n3".into()));
}

#[test]
fn host_ports() {
    let with_port = |name: &str, ip: &str| {
        merge(
            pod_json(name, "100m", "10Mi"),
            json!({"spec": {"containers": [{"name": "c", "ports": [
            {"containerPort": 80, "hostPort": 8080, "hostIP": ip}]}]}}),
        )
    };
    let nodes = vec![node_json("n1", "4", "8Gi")];
    assert_eq!(
        run(nodes.clone(), vec![bound(with_port("a", ""), "n1")], with_port("p", "10.0.0.1")),
        Err("0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.".into())
    );
    assert_eq!(
        run(
            nodes,
            vec![bound(with_port("a", "10.0.0.2"), "n1")],
            with_port("p", "10.0.0.1")
        ),
        Ok("n1".into())
    );
}

#[test]
fn extended_resources() {
    let gpu_node = merge(
        node_json("g", "4", "8Gi"),
        json!({"status": {"allocatable": {"nvidia.com/gpu": "1"}}}),
    );
    let p = |n: &str| {
        merge(
            pod_json(n, "1", "1Gi"),
            json!({"spec": {"containers": [{"name": "c",
        "resources": {"requests": {"cpu": "1", "nvidia.com/gpu": "1"}}}]}}),
        )
    };
    assert_eq!(
        run(
            vec![gpu_node.clone(), node_json("plain", "4", "8Gi")],
            vec![],
            p("x")
        ),
        Ok("g".into())
    );
    assert_eq!(
        run(vec![gpu_node], vec![bound(p("a"), "g")], p("x")),
        Err("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.".into())
    );
}

#[test]
fn topology_spread_hard_constraint() {
    let spread = merge(
        labelled("p", json!({"app": "web"})),
        json!({"spec": {"topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": {"app": "web"}}}]}}),
    );
    let nodes = vec![
        zoned("a1", "a"),
        zoned("a2", "a"),
        zoned("b1", "b"),
        node_json("nolabel", "8", "16Gi"),
    ];
    let existing = vec![
        bound(labelled("w1", json!({"app": "web"})), "a1"),
        bound(labelled("w2", json!({"app": "web"})), "a2"),
    ];
    assert_eq!(
        run(nodes.clone(), existing.clone(), spread.clone()),
        Ok("b1".into())
    );
    let (_, snap) = cluster(
        vec![zoned("a1", "a"), node_json("nolabel", "8", "16Gi")],
        existing[..1].to_vec(),
    );
    let mut s = Scheduler::new(Profile::default(), 1);
    // One domain only: a1 is the minimum itself, so skew 1 fits there.
    assert_eq!(s.schedule(&pod(spread.clone()), &snap).unwrap().node, "a1");
    let (_, snap) = cluster(
        vec![zoned("a1", "a"), zoned("b1", "b")],
        vec![
            bound(labelled("w1", json!({"app": "web"})), "a1"),
            bound(
                merge(
                    labelled("w2", json!({"app": "web"})),
                    json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "8"}}}]}}),
                ),
                "b1",
            ),
            bound(labelled("w3", json!({"app": "web"})), "a1"),
        ],
    );
    assert_eq!(
        s.schedule(&pod(spread), &snap).unwrap_err().to_string(),
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match pod topology spread constraints."
    );
}

#[test]
fn topology_spread_soft_constraint_and_system_defaults() {
    let nodes = vec![zoned("a1", "a"), zoned("b1", "b")];
    let existing = vec![bound(labelled("w1", json!({"app": "web"})), "a1")];
    let soft = merge(
        labelled("p", json!({"app": "web"})),
        json!({"spec": {"topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": {"app": "web"}}}]}}),
    );
    for _ in 0..5 {
        assert_eq!(
            run(nodes.clone(), existing.clone(), soft.clone()),
            Ok("b1".into())
        );
    }
    let (_, snap) = cluster(nodes, existing);
    let mut p = pod(labelled("p", json!({"app": "web"})));
    let mut sel = ferrokube_scheduler::labels::LabelSelector::default();
    sel.require_equal("app", "web");
    p.default_spread_selector = Some(sel);
    let mut s = Scheduler::new(Profile::default(), 9);
    for _ in 0..5 {
        assert_eq!(s.schedule(&p, &snap).unwrap().node, "b1");
    }
}

#[test]
fn inter_pod_affinity_and_anti_affinity() {
    let nodes = vec![zoned("a1", "a"), zoned("b1", "b")];
    let db = vec![bound(labelled("db", json!({"app": "db"})), "a1")];
    let term = |kind: &str| {
        json!({"spec": {"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}]}}}})
    };
    assert_eq!(
        run(
            nodes.clone(),
            db.clone(),
            merge(labelled("p", json!({})), term("podAffinity"))
        ),
        Ok("a1".into())
    );
    assert_eq!(
        run(
            nodes.clone(),
            db.clone(),
            merge(labelled("p", json!({})), term("podAntiAffinity"))
        ),
        Ok("b1".into())
    );
    assert_eq!(
        run(
            nodes[..1].to_vec(),
            db.clone(),
            merge(labelled("p", json!({})), term("podAntiAffinity"))
        ),
        Err("0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules.".into())
    );
    assert_eq!(
        run(
            nodes[1..].to_vec(),
            vec![],
            merge(labelled("p", json!({})), term("podAffinity"))
        ),
        Err("0/1 nodes are available: 1 node(s) didn't match pod affinity rules.".into())
    );
    // The first pod of a self-affine group may go anywhere.
    assert!(run(
        nodes.clone(),
        vec![],
        merge(labelled("p", json!({"app": "db"})), term("podAffinity"))
    )
    .is_ok());
    // An existing pod's anti-affinity keeps the incoming pod away from its zone.
    let guard = merge(
        labelled("guard", json!({})),
        json!({"spec": {"affinity": {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}]}}}}),
    );
    assert_eq!(
        run(
            nodes[..1].to_vec(),
            vec![bound(guard.clone(), "a1")],
            labelled("p", json!({"app": "web"}))
        ),
        Err(
            "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules."
                .into()
        )
    );
    // Preferred affinity scores.
    let preferred = merge(
        labelled("p", json!({})),
        json!({"spec": {"affinity": {"podAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm":
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}}]}}}}),
    );
    for _ in 0..5 {
        assert_eq!(
            run(nodes.clone(), db.clone(), preferred.clone()),
            Ok("a1".into())
        );
    }
}

#[test]
fn image_locality_prefers_nodes_with_big_images() {
    let with_image = merge(
        node_json("img", "8", "16Gi"),
        json!({"status": {"images": [
        {"names": ["docker.io/library/app:1"], "sizeBytes": 900_000_000}]}}),
    );
    let p = merge(
        pod_json("p", "1", "1Gi"),
        json!({"spec": {"containers": [{"name": "c", "image": "docker.io/library/app:1",
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}}),
    );
    for _ in 0..5 {
        assert_eq!(
            run(
                vec![
                    node_json("x", "8", "16Gi"),
                    with_image.clone(),
                    node_json("y", "8", "16Gi")
                ],
                vec![],
                p.clone()
            ),
            Ok("img".into())
        );
    }
}

#[test]
fn balanced_allocation_prefers_balanced_nodes() {
    // Same free cpu/memory sums, but n1 would end up lopsided.
    let (_, snap) = cluster(
        vec![node_json("n1", "4", "4Gi"), node_json("n2", "4", "4Gi")],
        vec![
            bound(pod_json("a", "3", "100Mi"), "n1"),
            bound(pod_json("b", "1500m", "1536Mi"), "n2"),
        ],
    );
    let p = pod(pod_json("p", "500m", "512Mi"));
    let n1 = snap.get("n1").unwrap();
    let n2 = snap.get("n2").unwrap();
    use ferrokube_scheduler::plugins::noderesources::balanced_score;
    assert!(balanced_score(&p, n2) > balanced_score(&p, n1));
    assert_eq!(balanced_score(&p, n2), 100);
}
