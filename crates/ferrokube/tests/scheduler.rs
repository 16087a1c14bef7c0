#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `ferrokube scheduler` against a real API server, as the seeds run it: two instances
//! with leader election on the `kube-system/kube-scheduler` Lease; pending pods bound to
//! Node objects the test registers (no kubelet); FailedScheduling with upstream's
//! message; the standby takes over when the leader is killed; a bad config is refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{start, wait_until};

struct Proc(Child, PathBuf);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scheduler(kubeconfig: &Path, log: PathBuf, extra: &[&str]) -> Proc {
    let file = std::fs::File::create(&log).unwrap();
    let mut args = vec![
        "scheduler".to_string(),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--leader-elect".into(),
        "--leader-elect-lease-duration=4s".into(),
        "--leader-elect-renew-deadline=3s".into(),
        "--leader-elect-retry-period=500ms".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    // No secure port unless the test asks for one.
    if !extra.iter().any(|a| a.starts_with("--secure-port")) {
        args.push("--secure-port=0".into());
    }
    let child = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args(&args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    Proc(child, log)
}

fn leads(p: &Proc) -> bool {
    std::fs::read_to_string(&p.1)
        .unwrap_or_default()
        .contains("successfully acquired lease")
}

#[test]
fn two_schedulers_bind_pods_and_fail_over() {
    let s = start();
    let dir = s.kubeconfig.parent().unwrap().to_path_buf();
    let kc = dir.join("pki/kube-scheduler.kubeconfig");
    for n in ["n1", "n2", "n3"] {
        let node = format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {n}, labels: {{kubernetes.io/hostname: {n}}}}}\nstatus:\n  capacity: {{cpu: \"2\", memory: 4Gi, pods: \"110\"}}\n  allocatable: {{cpu: \"2\", memory: 4Gi, pods: \"110\"}}\n  conditions: [{{type: Ready, status: \"True\"}}]\n");
        assert!(s
            .kubectl_stdin(&["create", "-f", "-"], Some(&node))
            .status
            .success());
    }
    let a = scheduler(&kc, dir.join("sched-a.log"), &[]);
    let b = scheduler(&kc, dir.join("sched-b.log"), &[]);
    wait_until("a leader", 20, || leads(&a) || leads(&b));
    std::thread::sleep(Duration::from_secs(1));
    assert!(!(leads(&a) && leads(&b)), "both lead");
    let holder = s.ok(&[
        "-n",
        "kube-system",
        "get",
        "lease",
        "kube-scheduler",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(!holder.is_empty());

    // Pending pods are bound, spread over the nodes.
    let req = |name: &str, cpu: &str| {
        format!(
            r#"{{"spec":{{"containers":[{{"name":"{name}","image":"busybox","resources":{{"requests":{{"cpu":"{cpu}"}}}}}}]}}}}"#
        )
    };
    for i in 0..6 {
        let name = format!("p{i}");
        s.ok(&[
            "run",
            &name,
            "--image=busybox",
            "--overrides",
            &req(&name, "500m"),
        ]);
    }
    wait_until("six bound pods", 30, || {
        let nodes = s.ok(&["get", "pods", "-o", "jsonpath={.items[*].spec.nodeName}"]);
        nodes.split_whitespace().count() == 6
    });
    let nodes = s.ok(&["get", "pods", "-o", "jsonpath={.items[*].spec.nodeName}"]);
    let mut distinct: Vec<&str> = nodes.split_whitespace().collect();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() >= 2, "not spread: {nodes}");
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=Scheduled",
        "-o",
        "name",
    ]);
    assert_eq!(events.lines().count(), 6, "{events}");

    // A pod that fits nowhere: FailedScheduling with upstream's message.
    s.ok(&[
        "run",
        "huge",
        "--image=busybox",
        "--overrides",
        &req("huge", "3"),
    ]);
    wait_until("FailedScheduling", 20, || {
        s.ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=FailedScheduling,involvedObject.name=huge",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .contains("0/3 nodes are available: 3 Insufficient cpu.")
    });
    assert_eq!(
        s.ok(&["get", "pod", "huge", "-o", "jsonpath={.status.conditions[0].type} {.status.conditions[0].status} {.status.conditions[0].reason}"]),
        "PodScheduled False Unschedulable"
    );

    // Kill the leader: the standby takes the Lease and keeps scheduling.
    let (leader, standby) = if leads(&a) { (a, b) } else { (b, a) };
    drop(leader); // SIGKILL
    wait_until("the standby to lead", 30, || leads(&standby));
    let transitions = s.ok(&[
        "-n",
        "kube-system",
        "get",
        "lease",
        "kube-scheduler",
        "-o",
        "jsonpath={.spec.leaseTransitions}",
    ]);
    assert!(transitions.parse::<i64>().unwrap() >= 1, "{transitions}");
    s.ok(&[
        "run",
        "after",
        "--image=busybox",
        "--overrides",
        &req("after", "100m"),
    ]);
    wait_until("the new leader to bind", 30, || {
        !s.ok(&["get", "pod", "after", "-o", "jsonpath={.spec.nodeName}"])
            .is_empty()
    });
    drop(standby);
}

#[test]
fn bad_scheduler_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kube-scheduler.yaml");
    // Runs the scheduler on `yaml`; it must exit non-zero. Returns its stderr.
    let refused = |yaml: &str| {
        std::fs::write(&cfg, yaml).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
            .args([
                "scheduler",
                "--config",
                cfg.to_str().unwrap(),
                "--secure-port=0",
            ])
            .output()
            .unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let err = refused(
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nclientConnection:\n  kubeconfig: /nonexistent\nleaderElection:\n  leaderElect: true\n  leaseDurationz: 15s\n",
    );
    assert!(
        err.contains("--config") && err.contains("leaseDurationz"),
        "{err}"
    );
    let err = refused(
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- plugins:\n    filter:\n      enabled: [{name: Nope}]\n",
    );
    assert!(
        err.contains("profiles[0].plugins.filter.enabled[0].name: plugin \"Nope\" does not exist"),
        "{err}"
    );
}

#[test]
fn profile_plugins_apply_and_metrics_count_attempts() {
    let s = start();
    let dir = s.kubeconfig.parent().unwrap().to_path_buf();
    let pki = dir.join("pki");
    let kc = pki.join("kube-scheduler.kubeconfig");
    // TaintToleration off at every extension point: a tainted node takes the pod.
    let cfg = dir.join("kube-scheduler.yaml");
    std::fs::write(
        &cfg,
        format!(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nclientConnection:\n  kubeconfig: {}\nprofiles:\n- schedulerName: default-scheduler\n  plugins:\n    multiPoint:\n      disabled: [{{name: TaintToleration}}]\n    preBind:\n      disabled: [{{name: VolumeBinding}}]\n",
            kc.display()
        ),
    )
    .unwrap();
    let node = "apiVersion: v1\nkind: Node\nmetadata: {name: tainted}\nspec:\n  taints: [{key: dedicated, value: x, effect: NoSchedule}]\nstatus:\n  capacity: {cpu: \"2\", memory: 4Gi, pods: \"110\"}\n  allocatable: {cpu: \"2\", memory: 4Gi, pods: \"110\"}\n  conditions: [{type: Ready, status: \"True\"}]\n";
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(node))
        .status
        .success());
    let port = common::free_port();
    let p = |f: &str| pki.join(f).display().to_string();
    let _sched = scheduler(
        &kc,
        dir.join("plugins-scheduler.log"),
        &[
            &format!("--config={}", cfg.display()),
            "--bind-address=127.0.0.1",
            &format!("--secure-port={port}"),
            &format!("--authentication-kubeconfig={}", kc.display()),
            &format!("--authorization-kubeconfig={}", kc.display()),
            &format!("--client-ca-file={}", p("ca.pem")),
        ],
    );
    s.ok(&["run", "p", "--image=busybox"]);
    wait_until("the pod bound to the tainted node", 30, || {
        s.ok(&["get", "pod", "p", "-o", "jsonpath={.spec.nodeName}"]) == "tainted"
    });
    let metrics = || {
        let o = Command::new("curl")
            .args([
                "-sk",
                "--cert",
                &p("admin.pem"),
                "--key",
                &p("admin-key.pem"),
            ])
            .arg(format!("https://127.0.0.1:{port}/metrics"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let mut text = String::new();
    wait_until("the attempt counted", 10, || {
        text = metrics();
        text.contains("scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"scheduled\"} 1")
    });
    assert!(text.contains("scheduler_scheduling_attempt_duration_seconds_count{profile=\"default-scheduler\",result=\"scheduled\"} 1"), "{text}");
    wait_until("pending pods reported", 10, || {
        metrics().contains("scheduler_pending_pods{queue=\"active\"} 0")
    });
}

#[test]
fn a_high_priority_pod_preempts_a_low_priority_one() {
    let s = start();
    let dir = s.kubeconfig.parent().unwrap().to_path_buf();
    let kc = dir.join("pki/kube-scheduler.kubeconfig");
    let node = "apiVersion: v1\nkind: Node\nmetadata: {name: solo}\nstatus:\n  capacity: {cpu: \"2\", memory: 4Gi, pods: \"110\"}\n  allocatable: {cpu: \"2\", memory: 4Gi, pods: \"110\"}\n  conditions: [{type: Ready, status: \"True\"}]\n";
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(node))
        .status
        .success());
    let pc = "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\nvalue: 1000\n";
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(pc))
        .status
        .success());
    let _sched = scheduler(&kc, dir.join("sched-p.log"), &[]);
    let pod = |name: &str, class: &str| {
        let pc = if class.is_empty() {
            String::new()
        } else {
            format!("  priorityClassName: {class}\n")
        };
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{pc}  containers: [{{name: c, image: busybox, resources: {{requests: {{cpu: 1500m}}}}}}]\n")
    };
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(&pod("low", "")))
        .status
        .success());
    let node_of = |p: &str| s.ok(&["get", "pod", p, "-o", "jsonpath={.spec.nodeName}"]);
    wait_until("low bound", 20, || node_of("low") == "solo");
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(&pod("high", "high")))
        .status
        .success());
    // The preemptor is nominated; the victim is marked and deleted gracefully.
    wait_until("high nominated", 20, || {
        s.ok(&[
            "get",
            "pod",
            "high",
            "-o",
            "jsonpath={.status.nominatedNodeName}",
        ]) == "solo"
    });
    wait_until("low terminating", 20, || {
        !s.ok(&[
            "get",
            "pod",
            "low",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ])
        .is_empty()
    });
    let reason = s.ok(&[
        "get",
        "pod",
        "low",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"DisruptionTarget\")].reason}",
    ]);
    assert_eq!(reason, "PreemptionByScheduler");
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=low",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(events.contains("Preempted"), "{events}");
    // No kubelet here: finish the graceful deletion as the kubelet would.
    s.ok(&["delete", "pod", "low", "--force", "--grace-period=0"]);
    wait_until("high bound", 30, || node_of("high") == "solo");
}
