#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The DaemonSet and StatefulSet controllers against a real API server, with no
//! scheduler or kubelet: the test registers Node objects and marks pods Running and
//! Ready where a kubelet would. DaemonSet: one pod per eligible node (targeted by
//! node affinity), taints, new nodes, a rolling update one node at a time, `kubectl
//! rollout status|history|undo`. StatefulSet: ordered creation with claims,
//! scale-down from the highest ordinal, a partitioned rolling update, `kubectl
//! rollout status|history|undo`.

mod common;

use std::time::Duration;

use common::{controller_manager, start, wait_until, Server};
use serde_json::Value;

const CM_FLAGS: &[&str] = &["--controllers=daemonset,statefulset"];

fn create(s: &Server, yaml: &str) {
    let o = s.kubectl_stdin(&["create", "-f", "-"], Some(yaml));
    assert!(
        o.status.success(),
        "create failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn json(s: &Server, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&s.ok(&a)).unwrap()
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn name(v: &Value) -> String {
    v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn image(p: &Value) -> String {
    p["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn revision_label(p: &Value) -> String {
    p["metadata"]["labels"]["controller-revision-hash"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Live (not terminating) pods of `app`.
fn pods(s: &Server, app: &str) -> Vec<Value> {
    items(&json(s, &["get", "pods", "-l", &format!("app={app}")]))
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

fn mark_pod_ready(s: &Server, pod: &str) {
    // The pod may be deleted meanwhile; callers re-check what is left.
    let _ = s.kubectl(&[
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]);
}

/// The node a daemon pod's required affinity names.
fn target_node(p: &Value) -> String {
    let fields = &p["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchFields"]
        [0];
    assert_eq!(fields["key"], "metadata.name", "{p}");
    assert_eq!(fields["operator"], "In");
    fields["values"][0].as_str().unwrap().to_string()
}

fn node(name: &str, taint: Option<&str>) -> String {
    let taints = taint
        .map(|t| format!("  taints: [{t}]\n"))
        .unwrap_or_default();
    format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\nspec:\n  unschedulable: false\n{taints}")
}

fn ds_nodes(s: &Server) -> Vec<String> {
    let mut v: Vec<String> = pods(s, "ds1").iter().map(target_node).collect();
    v.sort();
    v
}

fn ds_status(s: &Server, field: &str) -> i64 {
    json(s, &["get", "ds", "ds1"])["status"][field]
        .as_i64()
        .unwrap_or(0)
}

#[test]
fn daemonset_runs_one_pod_per_eligible_node_and_rolls_node_by_node() {
    let s = start();
    let _cm = controller_manager(&s, CM_FLAGS);
    create(&s, &node("n1", None));
    create(&s, &node("n2", None));
    create(
        &s,
        &node(
            "n3",
            Some("{key: dedicated, value: db, effect: NoSchedule}"),
        ),
    );
    create(
        &s,
        "apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds1}
spec:
  selector: {matchLabels: {app: ds1}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 1}}
  template:
    metadata: {labels: {app: ds1}}
    spec:
      containers: [{name: c, image: 'nginx:1.0'}]
",
    );
    wait_until("a daemon pod on n1 and n2", 30, || {
        ds_nodes(&s) == ["n1", "n2"]
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(ds_nodes(&s), ["n1", "n2"], "the tainted node gets no pod");
    let p = &pods(&s, "ds1")[0];
    assert!(p["spec"]["nodeName"].is_null(), "the scheduler binds: {p}");
    assert!(!revision_label(p).is_empty());
    let tolerations = p["spec"]["tolerations"].to_string();
    assert!(tolerations.contains("node.kubernetes.io/not-ready"));
    assert!(tolerations.contains("node.kubernetes.io/unschedulable"));
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    wait_until("SuccessfulCreate events", 20, || {
        let ev = s.ok(&["get", "events", "--field-selector=involvedObject.name=ds1"]);
        ev.contains("SuccessfulCreate") && ev.contains("Created pod: ds1-")
    });
    wait_until("desiredNumberScheduled 2", 20, || {
        ds_status(&s, "desiredNumberScheduled") == 2 && ds_status(&s, "currentNumberScheduled") == 2
    });

    // A new node gets its pod.
    create(&s, &node("n4", None));
    wait_until("a daemon pod on n4", 30, || {
        ds_nodes(&s) == ["n1", "n2", "n4"]
    });
    for p in pods(&s, "ds1") {
        mark_pod_ready(&s, &name(&p));
    }
    wait_until("three ready daemon pods", 30, || {
        ds_status(&s, "numberReady") == 3 && ds_status(&s, "numberAvailable") == 3
    });
    let out = s.ok(&["rollout", "status", "ds/ds1", "--timeout=30s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let old_hash = revision_label(&pods(&s, "ds1")[0]);

    // Image change: one node at a time (maxUnavailable 1, maxSurge 0).
    s.ok(&["set", "image", "ds/ds1", "c=nginx:2.0"]);
    let mut updated_nodes = Vec::new();
    wait_until("every daemon pod replaced, one node at a time", 90, || {
        let live = pods(&s, "ds1");
        assert!(live.len() <= 3, "no surge: {}", live.len());
        let not_ready: Vec<&Value> = live.iter().filter(|p| !is_ready(p)).collect();
        let missing = 3 - live.len();
        assert!(
            not_ready.len() + missing <= 1,
            "at most one node without a ready pod: {} not ready, {missing} missing",
            not_ready.len()
        );
        for p in not_ready {
            assert_eq!(image(p), "nginx:2.0", "only new pods are unready");
            updated_nodes.push(target_node(p));
            mark_pod_ready(&s, &name(p));
        }
        live.len() == 3 && live.iter().all(|p| image(p) == "nginx:2.0" && is_ready(p))
    });
    updated_nodes.sort();
    updated_nodes.dedup();
    assert_eq!(updated_nodes, ["n1", "n2", "n4"]);
    assert_ne!(revision_label(&pods(&s, "ds1")[0]), old_hash);
    wait_until("updatedNumberScheduled 3", 20, || {
        ds_status(&s, "updatedNumberScheduled") == 3 && ds_status(&s, "numberAvailable") == 3
    });
    s.ok(&["rollout", "status", "ds/ds1", "--timeout=30s"]);

    // History from ControllerRevisions; undo restores the first template.
    let history = s.ok(&["rollout", "history", "ds/ds1"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    let revs = items(&json(&s, &["get", "controllerrevisions", "-l", "app=ds1"]));
    assert_eq!(revs.len(), 2, "{revs:?}");
    let out = s.ok(&["rollout", "undo", "ds/ds1"]);
    assert!(out.contains("rolled back"), "{out}");
    let ds = json(&s, &["get", "ds", "ds1"]);
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.0"
    );
    wait_until("the undone revision renumbered to 3", 20, || {
        let revs = items(&json(&s, &["get", "controllerrevisions", "-l", "app=ds1"]));
        revs.iter().any(|r| {
            r["revision"] == 3
                && r["metadata"]["labels"]["controller-revision-hash"] == old_hash.as_str()
        })
    });
    wait_until("a rolled-back pod", 30, || {
        let live = pods(&s, "ds1");
        for p in live.iter().filter(|p| !is_ready(p)) {
            mark_pod_ready(&s, &name(p));
        }
        live.iter().any(|p| revision_label(p) == old_hash)
    });

    // A failed daemon pod is deleted and replaced (with a Warning event).
    let victim = pods(&s, "ds1")
        .into_iter()
        .find(|p| target_node(p) == "n1")
        .unwrap();
    s.ok(&[
        "patch",
        "pod",
        &name(&victim),
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Failed"}}"#,
    ]);
    wait_until("the failed pod replaced", 30, || {
        let live = pods(&s, "ds1");
        !live.iter().any(|p| name(p) == name(&victim))
            && live.iter().any(|p| target_node(p) == "n1")
    });
    let ev = s.ok(&["get", "events", "--field-selector=reason=FailedDaemonPod"]);
    assert!(ev.contains("will try to kill it"), "{ev}");

    // A node that gains an untolerated NoExecute taint loses its pod.
    s.ok(&["taint", "nodes", "n4", "evict=now:NoExecute"]);
    wait_until("no daemon pod on n4", 30, || {
        !ds_nodes(&s).contains(&"n4".to_string())
    });
}

fn sts_pod_names(s: &Server) -> Vec<String> {
    let mut v: Vec<String> = pods(s, "web").iter().map(name).collect();
    v.sort();
    v
}

fn sts(s: &Server) -> Value {
    json(s, &["get", "sts", "web"])
}

fn pod(s: &Server, n: &str) -> Value {
    json(s, &["get", "pod", n])
}

/// Waits for exactly `names` to exist and marks the last one ready.
fn expect_then_ready(s: &Server, names: &[&str]) {
    wait_until(&format!("pods {names:?}"), 30, || sts_pod_names(s) == names);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        sts_pod_names(s),
        names,
        "no pod before its predecessor is ready"
    );
    mark_pod_ready(s, names[names.len() - 1]);
}

#[test]
fn statefulset_orders_pods_claims_scales_down_and_updates_by_partition() {
    let s = start();
    let _cm = controller_manager(&s, CM_FLAGS);
    create(
        &s,
        "apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  replicas: 3
  serviceName: nginx
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: 'nginx:1.0'}]
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
",
    );
    expect_then_ready(&s, &["web-0"]);
    let p0 = pod(&s, "web-0");
    assert_eq!(p0["spec"]["hostname"], "web-0");
    assert_eq!(p0["spec"]["subdomain"], "nginx");
    assert_eq!(
        p0["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
        "web-0"
    );
    assert_eq!(
        p0["metadata"]["labels"]["apps.kubernetes.io/pod-index"],
        "0"
    );
    assert_eq!(
        p0["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "www-web-0"
    );
    let pvc = json(&s, &["get", "pvc", "www-web-0"]);
    assert_eq!(pvc["metadata"]["labels"]["app"], "web");
    assert!(
        pvc["metadata"]["ownerReferences"].is_null(),
        "Retain: no owner reference: {pvc}"
    );
    expect_then_ready(&s, &["web-0", "web-1"]);
    expect_then_ready(&s, &["web-0", "web-1", "web-2"]);
    wait_until("readyReplicas 3", 30, || {
        sts(&s)["status"]["readyReplicas"] == 3
    });
    let out = s.ok(&["rollout", "status", "sts/web", "--timeout=30s"]);
    assert!(out.contains("roll out complete"), "{out}");
    let first_rev = sts(&s)["status"]["currentRevision"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(revision_label(&pod(&s, "web-1")), first_rev);
    wait_until("pod and claim events", 20, || {
        let ev = s.ok(&["get", "events", "--field-selector=involvedObject.name=web"]);
        ev.contains("create Pod web-0 in StatefulSet web successful")
            && ev.contains("create Claim www-web-0 Pod web-0 in StatefulSet web success")
    });
    let claims: Vec<String> = items(&json(&s, &["get", "pvc"])).iter().map(name).collect();
    assert_eq!(claims.len(), 3, "{claims:?}");

    // Scale down: the highest ordinal goes first; its claim stays.
    s.ok(&["scale", "sts", "web", "--replicas=2"]);
    wait_until("web-2 removed", 30, || {
        sts_pod_names(&s) == ["web-0", "web-1"]
    });
    s.ok(&["get", "pvc", "www-web-2"]);
    s.ok(&["scale", "sts", "web", "--replicas=3"]);
    expect_then_ready(&s, &["web-0", "web-1", "web-2"]);
    wait_until("readyReplicas 3 again", 30, || {
        sts(&s)["status"]["readyReplicas"] == 3
    });

    // Partitioned rolling update: only ordinals >= 2 move to the new revision.
    s.ok(&[
        "patch",
        "sts",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":2}}}}"#,
    ]);
    s.ok(&["set", "image", "sts/web", "c=nginx:2.0"]);
    wait_until("web-2 recreated at the new revision", 30, || {
        let p = pods(&s, "web");
        p.iter()
            .any(|p| name(p) == "web-2" && image(p) == "nginx:2.0")
    });
    mark_pod_ready(&s, "web-2");
    wait_until("updatedReplicas 1", 30, || {
        let st = sts(&s)["status"].clone();
        st["updatedReplicas"] == 1 && st["readyReplicas"] == 3
    });
    std::thread::sleep(Duration::from_secs(1));
    let st = sts(&s)["status"].clone();
    assert_eq!(st["currentRevision"], first_rev.as_str());
    assert_ne!(st["updateRevision"], first_rev.as_str());
    for n in ["web-0", "web-1"] {
        let p = pod(&s, n);
        assert_eq!(image(&p), "nginx:1.0", "{n} is below the partition");
        assert_eq!(revision_label(&p), first_rev);
    }
    let out = s.ok(&["rollout", "status", "sts/web", "--timeout=20s"]);
    assert!(out.contains("partitioned roll out complete"), "{out}");

    // Partition 0: web-1 then web-0, each waiting for readiness.
    s.ok(&[
        "patch",
        "sts",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#,
    ]);
    wait_until("web-1 updated", 30, || {
        pods(&s, "web")
            .iter()
            .any(|p| name(p) == "web-1" && image(p) == "nginx:2.0")
    });
    assert_eq!(
        image(&pod(&s, "web-0")),
        "nginx:1.0",
        "web-0 waits for web-1"
    );
    mark_pod_ready(&s, "web-1");
    wait_until("web-0 updated", 30, || {
        pods(&s, "web")
            .iter()
            .any(|p| name(p) == "web-0" && image(p) == "nginx:2.0")
    });
    mark_pod_ready(&s, "web-0");
    wait_until("the update revision is current", 30, || {
        let st = sts(&s)["status"].clone();
        st["currentRevision"] == st["updateRevision"] && st["updatedReplicas"] == 3
    });
    s.ok(&["rollout", "status", "sts/web", "--timeout=20s"]);

    // History and undo.
    let history = s.ok(&["rollout", "history", "sts/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    let out = s.ok(&["rollout", "undo", "sts/web"]);
    assert!(out.contains("rolled back"), "{out}");
    wait_until("update revision back to the first", 30, || {
        sts(&s)["status"]["updateRevision"] == first_rev.as_str()
    });
    wait_until("web-2 rolled back", 30, || {
        pods(&s, "web")
            .iter()
            .any(|p| name(p) == "web-2" && image(p) == "nginx:1.0")
    });
}

#[test]
fn statefulset_parallel_with_start_ordinal() {
    let s = start();
    let _cm = controller_manager(&s, CM_FLAGS);
    create(
        &s,
        "apiVersion: apps/v1
kind: StatefulSet
metadata: {name: par}
spec:
  replicas: 3
  serviceName: par
  podManagementPolicy: Parallel
  ordinals: {start: 5}
  selector: {matchLabels: {app: par}}
  template:
    metadata: {labels: {app: par}}
    spec:
      containers: [{name: c, image: 'nginx:1.0'}]
",
    );
    let names = || {
        let mut v: Vec<String> = pods(&s, "par").iter().map(name).collect();
        v.sort();
        v
    };
    wait_until("par-5..7 at once", 30, || {
        names() == ["par-5", "par-6", "par-7"]
    });
    s.ok(&["scale", "sts", "par", "--replicas=1"]);
    wait_until("scaled to par-5", 30, || names() == ["par-5"]);
}
