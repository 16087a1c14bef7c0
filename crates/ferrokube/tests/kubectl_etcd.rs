#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The API server on a real etcd (as the seeds deploy it): `ferrokube apiserver
//! --etcd-servers` with kubectl, and the keys upstream's layout puts in etcd.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::KUBECTL;
use ferrokube_storage_etcd::testing::EtcdCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_on_etcd_serves_kubectl() {
    let etcd = EtcdCluster::start(1, false).await;
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args([
            "apiserver",
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &port.to_string(),
            "--cert-dir",
            dir.path().join("tls").to_str().unwrap(),
            "--etcd-servers",
            &etcd.endpoints().join(","),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster: {{server: \"https://127.0.0.1:{port}\", insecure-skip-tls-verify: true}}\n  name: c\ncontexts:\n- context: {{cluster: c, user: u}}\n  name: c\ncurrent-context: c\nusers:\n- name: u\n  user: {{token: t}}\n"
    )).unwrap();
    let kubectl = |args: &[&str]| {
        let o = Command::new(KUBECTL)
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("KUBECACHEDIR", dir.path().join("cache"))
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubectl(&["get", "--raw", "/readyz"]).0 {
        assert!(
            Instant::now() < deadline,
            "apiserver on etcd did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, out, err) = kubectl(&["get", "ns", "-o", "name"]);
    assert!(ok, "{err}");
    assert_eq!(out, "namespace/default\nnamespace/kube-node-lease\nnamespace/kube-public\nnamespace/kube-system\n");
    assert!(
        kubectl(&[
            "create",
            "deployment",
            "web",
            "--image=httpd",
            "--replicas=2"
        ])
        .0
    );
    assert!(kubectl(&["expose", "deployment", "web", "--port=80"]).0);
    assert!(kubectl(&["scale", "deployment", "web", "--replicas=4"]).0);
    assert_eq!(
        kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]).1,
        "4"
    );
    // Upstream's key layout under --etcd-prefix (default /registry).
    let out = Command::new("etcdctl")
        .args([
            "--endpoints",
            &etcd.endpoints().join(","),
            "get",
            "--prefix",
            "--keys-only",
            "/registry/",
        ])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl (Debian etcd-client) is required");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = String::from_utf8_lossy(&out.stdout).to_string();
    for want in [
        "/registry/deployments/default/web",
        "/registry/services/specs/default/web",
        "/registry/services/specs/default/kubernetes",
        "/registry/namespaces/kube-system",
    ] {
        assert!(
            keys.lines().any(|k| k == want),
            "{want} missing from etcd:\n{keys}"
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}
