#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Deployment controller against a real API server with the ReplicaSet
//! controller and no scheduler or kubelet: the test marks pods Ready where a kubelet
//! would. Rolling updates within maxSurge/maxUnavailable, `kubectl rollout
//! status|history|undo|pause|resume`, scaling, Recreate, revisionHistoryLimit and
//! the progress deadline.

mod common;

use std::time::{Duration, Instant};

use common::{controller_manager, start, wait_until, Server};
use serde_json::Value;

/// The harness runs controllers with their service accounts' credentials, so the
/// `system:controller:deployment-controller` role applies, as under kubeadm.
const CM_FLAGS: &[&str] = &["--controllers=deployment,replicaset"];

fn deployment(name: &str, replicas: i32, strategy: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  strategy: {strategy}
{extra_spec}  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: c, image: 'nginx:1.0'}}]
"
    )
}

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

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Live (not terminating) pods of `app`.
fn pods(s: &Server, app: &str) -> Vec<Value> {
    items(&json(s, &["get", "pods", "-l", &format!("app={app}")]))
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

/// Marks every live pod of `app` Running and Ready, as a kubelet would.
fn mark_ready(s: &Server, app: &str) {
    for p in pods(s, app) {
        if is_ready(&p) {
            continue;
        }
        let name = p["metadata"]["name"].as_str().unwrap().to_string();
        // The pod may be deleted meanwhile; the next round sees what is left.
        let _ = s.kubectl(&[
            "patch",
            "pod",
            &name,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#,
        ]);
    }
}

/// The ReplicaSets of `app`, by revision.
fn replica_sets(s: &Server, app: &str) -> Vec<Value> {
    let mut v = items(&json(s, &["get", "rs", "-l", &format!("app={app}")]));
    v.sort_by_key(revision);
    v
}

fn revision(obj: &Value) -> i64 {
    obj["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn spec_replicas(rs: &Value) -> i64 {
    rs["spec"]["replicas"].as_i64().unwrap_or(0)
}

fn image(obj: &Value) -> String {
    obj["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn condition(d: &Value, type_: &str) -> (String, String) {
    d["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .unwrap_or_default()
}

/// Marks pods ready until `done` holds, checking `invariant` on every round.
fn drive(
    s: &Server,
    app: &str,
    what: &str,
    secs: u64,
    mut invariant: impl FnMut(&Server),
    mut done: impl FnMut(&Server) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        invariant(s);
        if done(s) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        mark_ready(s, app);
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn rollout_status(s: &Server, name: &str) {
    let out = s.ok(&[
        "rollout",
        "status",
        &format!("deployment/{name}"),
        "--timeout=60s",
    ]);
    assert!(out.contains("successfully rolled out"), "{out}");
}

fn events(s: &Server, name: &str) -> String {
    s.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={name},involvedObject.kind=Deployment"),
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ])
}

#[test]
fn rolling_update_rollout_undo_history_and_scale() {
    let s = start();
    let _cm = controller_manager(&s, CM_FLAGS);
    create(
        &s,
        &deployment(
            "web",
            3,
            "{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}",
            "",
        ),
    );
    wait_until("3 pods", 30, || pods(&s, "web").len() == 3);
    drive(
        &s,
        "web",
        "3 available",
        60,
        |_| {},
        |s| json(s, &["get", "deployment", "web"])["status"]["availableReplicas"] == 3,
    );

    // The first ReplicaSet: named after the template hash, owned, revision 1.
    let rss = replica_sets(&s, "web");
    assert_eq!(rss.len(), 1);
    let rs1 = &rss[0];
    let hash = rs1["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(hash
        .chars()
        .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    let rs1_name = format!("web-{hash}");
    assert_eq!(rs1["metadata"]["name"], rs1_name.as_str());
    assert_eq!(
        rs1["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash.as_str()
    );
    assert_eq!(
        rs1["spec"]["template"]["metadata"]["labels"]["pod-template-hash"],
        hash.as_str()
    );
    let owner = &rs1["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Deployment");
    assert_eq!(owner["controller"], true);
    assert_eq!(owner["blockOwnerDeletion"], true);
    assert_eq!(revision(rs1), 1);
    let ann = &rs1["metadata"]["annotations"];
    assert_eq!(ann["deployment.kubernetes.io/desired-replicas"], "3");
    assert_eq!(ann["deployment.kubernetes.io/max-replicas"], "4");
    assert!(pods(&s, "web")
        .iter()
        .all(|p| p["metadata"]["labels"]["pod-template-hash"] == hash.as_str()));
    let d = json(&s, &["get", "deployment", "web"]);
    assert_eq!(revision(&d), 1);
    assert_eq!(
        condition(&d, "Available"),
        ("True".into(), "MinimumReplicasAvailable".into())
    );
    rollout_status(&s, "web");
    wait_until("Progressing NewReplicaSetAvailable", 30, || {
        condition(&json(&s, &["get", "deployment", "web"]), "Progressing")
            == ("True".into(), "NewReplicaSetAvailable".into())
    });

    // A new template: a second ReplicaSet, revision 2, never more than 4 pods
    // wanted nor fewer than 3 ready.
    s.ok(&["set", "image", "deployment/web", "c=nginx:2.0"]);
    let invariant = |s: &Server| {
        let rss = replica_sets(s, "web");
        let wanted: i64 = rss.iter().map(spec_replicas).sum();
        assert!(wanted <= 4, "maxSurge exceeded: {wanted} replicas wanted");
        let ready = pods(s, "web").iter().filter(|p| is_ready(p)).count();
        assert!(ready >= 3, "maxUnavailable exceeded: {ready} ready pods");
    };
    drive(&s, "web", "the rollout to nginx:2.0", 90, invariant, |s| {
        let rss = replica_sets(s, "web");
        rss.len() == 2
            && spec_replicas(&rss[0]) == 0
            && spec_replicas(&rss[1]) == 3
            && rss[1]["status"]["availableReplicas"] == 3
    });
    let rss = replica_sets(&s, "web");
    assert_eq!(revision(&rss[1]), 2);
    assert_eq!(image(&rss[1]), "nginx:2.0");
    rollout_status(&s, "web");
    wait_until("deployment revision 2", 30, || {
        revision(&json(&s, &["get", "deployment", "web"])) == 2
    });
    let rs2_name = rss[1]["metadata"]["name"].as_str().unwrap().to_string();
    wait_until("ScalingReplicaSet events", 30, || {
        let ev = events(&s, "web");
        ev.contains(&format!(
            "ScalingReplicaSet: Scaled up replica set {rs1_name} from 0 to 3"
        )) && ev.contains(&format!(
            "ScalingReplicaSet: Scaled up replica set {rs2_name} from 0 to 1"
        )) && ev.contains(&format!(
            "ScalingReplicaSet: Scaled down replica set {rs1_name} from 3 to 2"
        ))
    });

    // History lists both revisions; undo brings back the first template as revision 3.
    let history = s.ok(&["rollout", "history", "deployment/web"]);
    let revs: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<i64>().is_ok())
        .collect();
    assert_eq!(revs, ["1", "2"], "{history}");
    let h1 = s.ok(&["rollout", "history", "deployment/web", "--revision=1"]);
    assert!(h1.contains("nginx:1.0"), "{h1}");
    s.ok(&["rollout", "undo", "deployment/web"]);
    drive(&s, "web", "the rollback to nginx:1.0", 90, invariant, |s| {
        let rss = replica_sets(s, "web");
        rss.len() == 2
            && rss[1]["metadata"]["name"] == rs1_name.as_str()
            && spec_replicas(&rss[1]) == 3
            && rss[1]["status"]["availableReplicas"] == 3
            && spec_replicas(&rss[0]) == 0
    });
    let rss = replica_sets(&s, "web");
    assert_eq!(revision(&rss[1]), 3);
    assert_eq!(
        rss[1]["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"],
        "1"
    );
    assert_eq!(image(&json(&s, &["get", "deployment", "web"])), "nginx:1.0");
    rollout_status(&s, "web");
    wait_until("deployment revision 3", 30, || {
        revision(&json(&s, &["get", "deployment", "web"])) == 3
    });
    let history = s.ok(&["rollout", "history", "deployment/web"]);
    let revs: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<i64>().is_ok())
        .collect();
    assert_eq!(revs, ["2", "3"], "{history}");

    // Scaling: the one active ReplicaSet takes the new size.
    s.ok(&["scale", "deployment/web", "--replicas=5"]);
    drive(
        &s,
        "web",
        "5 available",
        60,
        |_| {},
        |s| {
            let d = json(s, &["get", "deployment", "web"]);
            d["status"]["availableReplicas"] == 5 && d["status"]["updatedReplicas"] == 5
        },
    );
    let rss = replica_sets(&s, "web");
    assert_eq!(spec_replicas(&rss[1]), 5);
    assert_eq!(
        rss[1]["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"],
        "5"
    );
    s.ok(&["scale", "deployment/web", "--replicas=2"]);
    wait_until("2 pods", 30, || pods(&s, "web").len() == 2);
    rollout_status(&s, "web");
    let d = json(&s, &["get", "deployment", "web"]);
    assert_eq!(d["status"]["replicas"], 2);
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
}

#[test]
fn paused_deployments_scale_but_do_not_roll() {
    let s = start();
    let _cm = controller_manager(&s, CM_FLAGS);
    create(&s, &deployment("api", 2, "{type: RollingUpdate}", ""));
    drive(
        &s,
        "api",
        "2 available",
        60,
        |_| {},
        |s| json(s, &["get", "deployment", "api"])["status"]["availableReplicas"] == 2,
    );
    s.ok(&["rollout", "pause", "deployment/api"]);
    wait_until("Progressing DeploymentPaused", 30, || {
        condition(&json(&s, &["get", "deployment", "api"]), "Progressing")
            == ("Unknown".into(), "DeploymentPaused".into())
    });
    s.ok(&["set", "image", "deployment/api", "c=nginx:2.0"]);
    s.ok(&["scale", "deployment/api", "--replicas=4"]);
    drive(
        &s,
        "api",
        "4 pods while paused",
        60,
        |_| {},
        |s| {
            let d = json(s, &["get", "deployment", "api"]);
            d["status"]["availableReplicas"] == 4
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let rss = replica_sets(&s, "api");
    assert_eq!(rss.len(), 1, "a paused deployment rolled out");
    assert_eq!(image(&rss[0]), "nginx:1.0");
    assert_eq!(spec_replicas(&rss[0]), 4);

    s.ok(&["rollout", "resume", "deployment/api"]);
    drive(
        &s,
        "api",
        "the rollout after resume",
        90,
        |_| {},
        |s| {
            let rss = replica_sets(s, "api");
            rss.len() == 2
                && spec_replicas(&rss[1]) == 4
                && rss[1]["status"]["availableReplicas"] == 4
                && spec_replicas(&rss[0]) == 0
        },
    );
    assert_eq!(image(&replica_sets(&s, "api")[1]), "nginx:2.0");
    rollout_status(&s, "api");

    // restart: a template annotation, hence a new revision.
    s.ok(&["rollout", "restart", "deployment/api"]);
    drive(
        &s,
        "api",
        "the restart rollout",
        90,
        |_| {},
        |s| {
            let rss = replica_sets(s, "api");
            rss.len() == 3
                && spec_replicas(&rss[2]) == 4
                && rss[2]["status"]["availableReplicas"] == 4
        },
    );
    let rss = replica_sets(&s, "api");
    assert_eq!(revision(&rss[2]), 3);
    assert!(rss[2]["spec"]["template"]["metadata"]["annotations"]
        ["kubectl.kubernetes.io/restartedAt"]
        .is_string());
}

#[test]
fn recreate_scales_old_to_zero_first_and_history_is_limited() {
    let s = start();
    let _cm = controller_manager(&s, CM_FLAGS);
    create(
        &s,
        &deployment(
            "batch",
            2,
            "{type: Recreate}",
            "  revisionHistoryLimit: 1\n",
        ),
    );
    drive(
        &s,
        "batch",
        "2 available",
        60,
        |_| {},
        |s| json(s, &["get", "deployment", "batch"])["status"]["availableReplicas"] == 2,
    );
    for (i, tag) in ["2.0", "3.0"].iter().enumerate() {
        s.ok(&[
            "set",
            "image",
            "deployment/batch",
            &format!("c=nginx:{tag}"),
        ]);
        // Never old and new at once.
        let invariant = |s: &Server| {
            let active = replica_sets(s, "batch")
                .iter()
                .filter(|r| spec_replicas(r) > 0)
                .count();
            assert!(active <= 1, "Recreate ran two ReplicaSets at once");
        };
        drive(&s, "batch", "the recreate rollout", 90, invariant, |s| {
            let rss = replica_sets(s, "batch");
            let last = rss.last().cloned().unwrap_or_default();
            revision(&last) == i as i64 + 2
                && image(&last) == format!("nginx:{tag}")
                && last["status"]["availableReplicas"] == 2
        });
        rollout_status(&s, "batch");
    }
    // revisionHistoryLimit 1: the new ReplicaSet and one old one remain.
    wait_until("old replica sets cleaned up", 30, || {
        let rss = replica_sets(&s, "batch");
        rss.len() == 2 && revision(&rss[0]) == 2 && revision(&rss[1]) == 3
    });
}

#[test]
fn a_rollout_without_progress_exceeds_its_deadline() {
    let s = start();
    let _cm = controller_manager(&s, CM_FLAGS);
    create(
        &s,
        &deployment(
            "slow",
            2,
            "{type: RollingUpdate}",
            "  progressDeadlineSeconds: 3\n",
        ),
    );
    // No pod ever becomes ready.
    wait_until("ProgressDeadlineExceeded", 40, || {
        condition(&json(&s, &["get", "deployment", "slow"]), "Progressing")
            == ("False".into(), "ProgressDeadlineExceeded".into())
    });
    let d = json(&s, &["get", "deployment", "slow"]);
    assert_eq!(
        condition(&d, "Available"),
        ("False".into(), "MinimumReplicasUnavailable".into())
    );
    let rs = &replica_sets(&s, "slow")[0];
    let msg = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()["message"]
        .clone();
    assert_eq!(
        msg,
        format!(
            "ReplicaSet \"{}\" has timed out progressing.",
            rs["metadata"]["name"].as_str().unwrap()
        )
        .as_str()
    );
    let o = s.kubectl(&["rollout", "status", "deployment/slow", "--timeout=20s"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("exceeded its progress deadline"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    let s = start();
    let _cm = controller_manager(&s, CM_FLAGS);
    create(
        &s,
        &deployment(
            "mid",
            4,
            "{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}",
            "",
        ),
    );
    drive(
        &s,
        "mid",
        "4 available",
        60,
        |_| {},
        |s| json(s, &["get", "deployment", "mid"])["status"]["availableReplicas"] == 4,
    );
    // The new pod never becomes ready: the rollout stalls at old 4, new 1.
    s.ok(&["set", "image", "deployment/mid", "c=nginx:2.0"]);
    wait_until("old 4 and new 1", 30, || {
        let rss = replica_sets(&s, "mid");
        rss.len() == 2 && spec_replicas(&rss[0]) == 4 && spec_replicas(&rss[1]) == 1
    });
    // 8 replicas + surge 1 = 9 spread by size: old 4*9/5 → 7, new 1*9/5 → 2.
    s.ok(&["scale", "deployment/mid", "--replicas=8"]);
    wait_until("old 7 and new 2", 30, || {
        let rss = replica_sets(&s, "mid");
        rss.len() == 2 && spec_replicas(&rss[0]) == 7 && spec_replicas(&rss[1]) == 2
    });
    for rs in replica_sets(&s, "mid") {
        let ann = &rs["metadata"]["annotations"];
        assert_eq!(ann["deployment.kubernetes.io/desired-replicas"], "8");
        assert_eq!(ann["deployment.kubernetes.io/max-replicas"], "9");
    }
    let old = replica_sets(&s, "mid")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until("the proportional scaling event", 30, || {
        events(&s, "mid").contains(&format!(
            "ScalingReplicaSet: Scaled up replica set {old} from 4 to 7"
        ))
    });
}
