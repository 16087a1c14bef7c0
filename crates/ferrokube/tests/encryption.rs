#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Secrets encrypted at rest (`--encryption-provider-config`): ciphertext in the store
//! (read with `ferrokube store get`, and with `etcdctl` from a real etcd), plaintext
//! through the API, and upstream's documented key rotation.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::KUBECTL;
use ferrokube_storage_etcd::testing::EtcdCluster;

struct ApiServer(Child);

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh AES-256 key, base64 (the seeds' `head -c 32 /dev/urandom | base64`).
fn key() -> String {
    use std::io::Read;
    let mut raw = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut raw)
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn config(keys: &[(&str, &str)], identity_first: bool) -> String {
    let mut keys_yaml = String::new();
    for (name, secret) in keys {
        keys_yaml.push_str(&format!(
            "            - name: {name}\n              secret: {secret}\n"
        ));
    }
    let aescbc = format!("      - aescbc:\n          keys:\n{keys_yaml}");
    let providers = if identity_first {
        format!("      - identity: {{}}\n{aescbc}")
    } else {
        format!("{aescbc}      - identity: {{}}\n")
    };
    format!("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources:\n      - secrets\n    providers:\n{providers}")
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let o = Command::new(KUBECTL)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("KUBECACHEDIR", kubeconfig.with_extension("cache"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn start(dir: &Path, port: u16, extra: &[String]) -> (ApiServer, std::path::PathBuf) {
    let mut args = vec![
        "apiserver".to_string(),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", dir.join("tls").display()),
    ];
    args.extend(extra.iter().cloned());
    let child = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = ApiServer(child);
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster: {{server: \"https://127.0.0.1:{port}\", insecure-skip-tls-verify: true}}\n  name: c\ncontexts:\n- context: {{cluster: c, user: u}}\n  name: c\ncurrent-context: c\nusers:\n- name: u\n  user: {{token: anonymous}}\n"
    )).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = Command::new(KUBECTL)
            .args(["get", "--raw", "/readyz"])
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap();
        if o.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the API server did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, kubeconfig)
}

fn stored(db: &Path, key: &str) -> Vec<u8> {
    let o = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args(["store", "get", "--data-dir", db.to_str().unwrap(), key])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

#[test]
fn secrets_are_ciphertext_at_rest_and_keys_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let cfg_file = dir.path().join("encryption-config.yaml");
    let port = common::free_port();
    let flags = |extra: bool| {
        let mut f = vec![format!("--data-dir={}", db.display())];
        if extra {
            f.push(format!(
                "--encryption-provider-config={}",
                cfg_file.display()
            ));
        }
        f
    };
    let (key1, key2) = (key(), key());

    // A secret written before encryption was configured stays readable (identity).
    let (server, kc) = start(dir.path(), port, &flags(false));
    kubectl(
        &kc,
        &[
            "create",
            "secret",
            "generic",
            "old",
            "--from-literal=k=plain",
        ],
    );
    drop(server);
    assert!(stored(&db, "/secrets/default/old").starts_with(b"{"));

    std::fs::write(&cfg_file, config(&[("key1", &key1)], false)).unwrap();
    let (server, kc) = start(dir.path(), port, &flags(true));
    kubectl(
        &kc,
        &[
            "create",
            "secret",
            "generic",
            "s1",
            "--from-literal=password=hunter2",
        ],
    );
    kubectl(&kc, &["create", "configmap", "c1", "--from-literal=k=v"]);
    assert_eq!(
        kubectl(
            &kc,
            &["get", "secret", "s1", "-o", "jsonpath={.data.password}"]
        ),
        "aHVudGVyMg=="
    );
    assert_eq!(
        kubectl(&kc, &["get", "secret", "old", "-o", "jsonpath={.data.k}"]),
        "cGxhaW4="
    );
    drop(server);
    let raw = stored(&db, "/secrets/default/s1");
    assert!(
        raw.starts_with(b"k8s:enc:aescbc:v1:key1:"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert!(!raw.windows(7).any(|w| w == b"aHVudGV"));
    assert!(stored(&db, "/configmaps/default/c1").starts_with(b"{"));

    // Rotation, as upstream documents it: add key2 second, then first, rewrite, drop key1.
    std::fs::write(
        &cfg_file,
        config(&[("key1", &key1), ("key2", &key2)], false),
    )
    .unwrap();
    let (server, _) = start(dir.path(), port, &flags(true));
    drop(server);
    std::fs::write(
        &cfg_file,
        config(&[("key2", &key2), ("key1", &key1)], false),
    )
    .unwrap();
    let (server, kc) = start(dir.path(), port, &flags(true));
    let all = kubectl(&kc, &["get", "secrets", "-A", "-o", "json"]);
    let o = {
        use std::io::Write;
        let mut child = Command::new(KUBECTL)
            .args(["replace", "-f", "-"])
            .env("KUBECONFIG", &kc)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(all.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    drop(server);
    assert!(stored(&db, "/secrets/default/s1").starts_with(b"k8s:enc:aescbc:v1:key2:"));
    assert!(stored(&db, "/secrets/default/old").starts_with(b"k8s:enc:aescbc:v1:key2:"));
    std::fs::write(&cfg_file, config(&[("key2", &key2)], false)).unwrap();
    let (_server, kc) = start(dir.path(), port, &flags(true));
    assert_eq!(
        kubectl(
            &kc,
            &["get", "secret", "s1", "-o", "jsonpath={.data.password}"]
        ),
        "aHVudGVyMg=="
    );
    assert_eq!(
        kubectl(&kc, &["get", "secret", "old", "-o", "jsonpath={.data.k}"]),
        "cGxhaW4="
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_sees_ciphertext() {
    let etcd = EtcdCluster::start(1, false).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg_file = dir.path().join("encryption-config.yaml");
    std::fs::write(&cfg_file, config(&[("key1", &key())], false)).unwrap();
    let port = common::free_port();
    let endpoints = etcd.endpoints().join(",");
    let extra = vec![
        format!("--etcd-servers={endpoints}"),
        format!("--encryption-provider-config={}", cfg_file.display()),
    ];
    let dir_path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (_server, kc) = start(&dir_path, port, &extra);
        kubectl(
            &kc,
            &[
                "create",
                "secret",
                "generic",
                "s1",
                "--from-literal=password=hunter2",
            ],
        );
        let o = Command::new("etcdctl")
            .args([
                "--endpoints",
                &endpoints,
                "get",
                "/registry/secrets/default/s1",
                "--print-value-only",
            ])
            .env("ETCDCTL_API", "3")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            o.stdout.starts_with(b"k8s:enc:aescbc:v1:key1:"),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        assert_eq!(
            kubectl(
                &kc,
                &["get", "secret", "s1", "-o", "jsonpath={.data.password}"]
            ),
            "aHVudGVyMg=="
        );
    })
    .await
    .unwrap();
}
