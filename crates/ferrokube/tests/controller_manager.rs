#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `ferrokube controller-manager` against a real API server, as the seed runs it: the
//! ReplicaSet controller keeps replicas (with its own service-account credentials),
//! reports status and Events; two instances elect one leader; bad flags are refused
//! naming the flag.

mod common;

use std::process::Command;

use common::{controller_manager, start, wait_until};

const RS: &str = "apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: busybox}]
";

fn pods(s: &common::Server, selector: &str) -> Vec<String> {
    s.ok(&["get", "pods", "-l", selector, "-o", "name"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn replicaset_controller_keeps_replicas_with_its_own_credentials() {
    let s = start();
    let cm = controller_manager(&s, &["--controllers=replicaset,replicationcontroller"]);
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(RS))
        .status
        .success());
    wait_until("3 pods", 30, || pods(&s, "app=web").len() == 3);
    // Owned by the ReplicaSet, created as its service account.
    let owner = s.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.ownerReferences[0].kind}/{.items[0].metadata.ownerReferences[0].name}",
    ]);
    assert_eq!(owner, "ReplicaSet/web");
    let sa = s.ok(&[
        "-n",
        "kube-system",
        "get",
        "serviceaccount",
        "replicaset-controller",
        "-o",
        "name",
    ]);
    assert_eq!(sa.trim(), "serviceaccount/replicaset-controller");
    wait_until("status.replicas 3", 30, || {
        s.ok(&["get", "rs", "web", "-o", "jsonpath={.status.replicas}"]) == "3"
    });
    // A deleted pod is replaced; scaling down removes the surplus.
    let victim = pods(&s, "app=web")[0].clone();
    s.ok(&["delete", &victim, "--wait=false"]);
    wait_until("a replacement pod", 30, || {
        let p = pods(&s, "app=web");
        p.len() == 3 && !p.contains(&victim)
    });
    s.ok(&["scale", "rs", "web", "--replicas=1"]);
    wait_until("1 pod", 30, || pods(&s, "app=web").len() == 1);
    wait_until("status.replicas 1", 30, || {
        s.ok(&["get", "rs", "web", "-o", "jsonpath={.status.replicas}"]) == "1"
    });
    // An orphan pod matching the selector is adopted (and then is surplus).
    let orphan = "apiVersion: v1\nkind: Pod\nmetadata: {name: stray, labels: {app: web}}\nspec: {containers: [{name: c, image: busybox}]}\n";
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(orphan))
        .status
        .success());
    wait_until("back to 1 pod", 30, || pods(&s, "app=web").len() == 1);
    // Events say what the controller did, as upstream words them.
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(
        events.contains("SuccessfulCreate: Created pod: web-"),
        "{events}"
    );
    assert!(
        events.contains("SuccessfulDelete: Deleted pod: web-"),
        "{events}"
    );

    // A ReplicationController works the same way.
    let rc = "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: legacy}\nspec:\n  replicas: 2\n  selector: {app: legacy}\n  template:\n    metadata: {labels: {app: legacy}}\n    spec: {containers: [{name: c, image: busybox}]}\n";
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(rc))
        .status
        .success());
    wait_until("2 rc pods", 30, || pods(&s, "app=legacy").len() == 2);
    assert!(!cm.log().contains("panicked"), "{}", cm.log());
}

#[test]
fn two_controller_managers_elect_one_leader() {
    let s = start();
    let pki = s.pki_dir();
    let kc = format!(
        "--kubeconfig={}",
        pki.join("kube-controller-manager.kubeconfig").display()
    );
    let spawn = |name: &str| {
        let log = s.data_dir().join(name);
        let child = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
            .args([
                "controller-manager",
                &kc,
                "--secure-port=0",
                "--controllers=replicaset",
                "--use-service-account-credentials",
                "--leader-elect",
                // Short enough for a quick failover, long enough that a loaded CI
                // machine does not miss a renewal and hand over on its own.
                "--leader-elect-lease-duration=8s",
                "--leader-elect-renew-deadline=6s",
                "--leader-elect-retry-period=1s",
            ])
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        common::ControllerManager { child, log }
    };
    let holder = || {
        s.ok(&[
            "-n",
            "kube-system",
            "get",
            "lease",
            "kube-controller-manager",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .trim()
        .to_string()
    };
    // Whether this process logged acquiring the lease as `identity`.
    let acquired_as = |c: &common::ControllerManager, identity: &str| {
        c.log().lines().any(|l| {
            l.contains("successfully acquired lease") && l.contains(&format!("identity={identity}"))
        })
    };
    let leads = |c: &common::ControllerManager| c.log().contains("successfully acquired lease");
    let lost = |c: &common::ControllerManager| c.log().contains("leaderelection lost");
    let mut a = spawn("cm-a.log");
    let b = spawn("cm-b.log");
    wait_until("a leader", 30, || leads(&a) || leads(&b));
    std::thread::sleep(std::time::Duration::from_secs(1));
    // Only one leads at a time: both may have acquired only if one lost it first.
    assert!(
        !(leads(&a) && leads(&b)) || lost(&a) || lost(&b),
        "both lead\n--- a ---\n{}\n--- b ---\n{}",
        a.log(),
        b.log()
    );
    let current = holder();
    assert!(current.contains('_'), "holder {current}");
    // Kill the leader (the Lease says which): a live candidate takes over and does the
    // work. When b led, a new candidate c joins a; either may win.
    let standby = if acquired_as(&a, &current) {
        a.child.kill().unwrap();
        b
    } else {
        assert!(
            acquired_as(&b, &current),
            "nobody logged holding {current}\n--- a ---\n{}\n--- b ---\n{}",
            a.log(),
            b.log()
        );
        drop(b);
        std::mem::replace(&mut a, spawn("cm-c.log"))
    };
    wait_until("a live candidate to lead", 40, || {
        let h = holder();
        h != current && (acquired_as(&standby, &h) || acquired_as(&a, &h))
    });
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(RS))
        .status
        .success());
    wait_until("3 pods", 30, || pods(&s, "app=web").len() == 3);
    let transitions = s.ok(&[
        "-n",
        "kube-system",
        "get",
        "lease",
        "kube-controller-manager",
        "-o",
        "jsonpath={.spec.leaseTransitions}",
    ]);
    assert!(transitions.parse::<i32>().unwrap() >= 1, "{transitions}");
}

#[test]
fn bad_flags_are_refused_naming_the_flag() {
    let s = start();
    let kc = format!(
        "--kubeconfig={}",
        s.pki_dir()
            .join("kube-controller-manager.kubeconfig")
            .display()
    );
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
            .arg("controller-manager")
            .arg(&kc)
            .arg("--secure-port=0")
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(&["--controllers=*,nosuch"])
        .contains("\"nosuch\" is not in the list of known controllers"));
    assert!(
        run(&["--allocate-node-cidrs"]).contains("--allocate-node-cidrs requires --cluster-cidr")
    );
    assert!(run(&["--cluster-cidr=10.0.0.0/33"]).contains("--cluster-cidr"));
    assert!(run(&["--cluster-signing-duration=forever"]).contains("--cluster-signing-duration"));
    assert!(
        run(&["--root-ca-file=/nonexistent/ca.pem"]).contains("--root-ca-file /nonexistent/ca.pem")
    );
}

#[test]
fn jobs_get_a_generated_selector() {
    let s = start();
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n";
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(job))
        .status
        .success());
    let uid = s.ok(&["get", "job", "pi", "-o", "jsonpath={.metadata.uid}"]);
    let sel = s.ok(&[
        "get",
        "job",
        "pi",
        "-o",
        "jsonpath={.spec.selector.matchLabels.batch\\.kubernetes\\.io/controller-uid}",
    ]);
    assert_eq!(sel, uid);
    let labels = s.ok(&[
        "get",
        "job",
        "pi",
        "-o",
        "jsonpath={.spec.template.metadata.labels}",
    ]);
    for want in [
        "\"job-name\":\"pi\"",
        "\"batch.kubernetes.io/job-name\":\"pi\"",
        "\"controller-uid\"",
    ] {
        assert!(labels.contains(want), "{labels}");
    }
}

#[test]
fn secure_port_serves_metrics_to_the_admin_and_healthz_to_all() {
    let s = start();
    let pki = s.pki_dir();
    let port = common::free_port().to_string();
    let kc = pki.join("kube-controller-manager.kubeconfig");
    let cm = controller_manager(
        &s,
        &[
            "--controllers=replicaset",
            "--bind-address=127.0.0.1",
            &format!("--secure-port={port}"),
            &format!("--authentication-kubeconfig={}", kc.display()),
            &format!("--authorization-kubeconfig={}", kc.display()),
            &format!("--client-ca-file={}", pki.join("ca.pem").display()),
            &format!("--cert-dir={}", s.data_dir().join("cm-certs").display()),
        ],
    );
    let curl = |path: &str, extra: &[&str]| -> (String, String) {
        let out = Command::new("curl")
            .args(["-sk", "-o", "-", "-w", "\n%{http_code}"])
            .args(extra)
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
        (code.to_string(), body.to_string())
    };
    wait_until("the secure port", 20, || curl("/healthz", &[]).0 == "200");
    assert_eq!(curl("/healthz", &[]).1, "ok");
    let (code, _) = curl("/metrics", &[]);
    assert!(code == "401" || code == "403", "anonymous /metrics: {code}");
    // The seed's check: the admin certificate reads /metrics.
    let admin = [
        "--cert".to_string(),
        pki.join("admin.pem").display().to_string(),
        "--key".to_string(),
        pki.join("admin-key.pem").display().to_string(),
    ];
    let admin: Vec<&str> = admin.iter().map(String::as_str).collect();
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(RS))
        .status
        .success());
    wait_until("workqueue metrics", 30, || {
        let (code, body) = curl("/metrics", &admin);
        code == "200" && body.contains("workqueue_adds_total{name=\"replicaset-controller\"}")
    });
    drop(cm);
}
