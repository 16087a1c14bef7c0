#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The certificate, bootstrap-token and service-account controllers against a real
//! `ferrokube server`, with the controller-manager run as the seed runs it
//! (`--controllers=*,bootstrapsigner,tokencleaner`, the cluster CA as signing pair and
//! root CA, each controller with its own service-account credentials), judged by
//! kubectl and openssl:
//!
//! - a node client CSR sent with a bootstrap token is auto-approved after a
//!   SubjectAccessReview and issued a certificate that chains to the cluster CA;
//! - a kubelet-serving CSR stays Pending until `kubectl certificate approve`;
//! - every namespace gets the `default` ServiceAccount and `kube-root-ca.crt`, both put
//!   back when deleted or edited;
//! - `kube-public/cluster-info` gets a JWS per signing token that verifies with the
//!   token secret; stale signatures are removed;
//! - an expired bootstrap token Secret is deleted.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{controller_manager, start, ControllerManager, Server};

/// Polls `f` every 200 ms for `secs`; on timeout fails with the controller-manager's
/// log.
fn wait_until(cm: &ControllerManager, what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        if std::time::Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; controller-manager log:\n{}",
                cm.log()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

const TOKEN_ID: &str = "abcdef";
const TOKEN_SECRET: &str = "0123456789abcdef";

/// Runs `cmd` with `input` on stdin; requires success; returns stdout.
fn pipe(cmd: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn b64(data: &[u8]) -> String {
    String::from_utf8(pipe(&["base64", "-w0"], data)).unwrap()
}

fn b64url(data: &[u8]) -> String {
    b64(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn unb64(text: &str) -> Vec<u8> {
    pipe(&["base64", "-d"], text.trim().as_bytes())
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PEM CSR (EC P-256 key) for `subj` with optional `-addext` SANs.
fn make_csr(dir: &Path, name: &str, subj: &str, san: Option<&str>) -> String {
    let key = format!("{name}-key.pem");
    let csr = format!("{name}.csr");
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &key,
        ],
    );
    let mut args = vec!["req", "-new", "-key", &key, "-subj", subj, "-out", &csr];
    let ext;
    if let Some(san) = san {
        ext = format!("subjectAltName={san}");
        args.extend(["-addext", &ext]);
    }
    openssl(dir, &args);
    std::fs::read_to_string(dir.join(csr)).unwrap()
}

fn csr_object(name: &str, signer: &str, usages: &[&str], pem: &str) -> String {
    format!(
        "apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: {{name: {name}}}
spec:
  signerName: {signer}
  usages: [{}]
  request: {}
",
        usages
            .iter()
            .map(|u| format!("\"{u}\""))
            .collect::<Vec<_>>()
            .join(", "),
        b64(pem.as_bytes())
    )
}

fn apply(s: &Server, args: &[&str], yaml: &str) {
    let o = s.kubectl_stdin(args, Some(yaml));
    assert!(
        o.status.success(),
        "kubectl {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn token_secret(id: &str, secret: &str, expiration: &str) -> String {
    format!(
        "apiVersion: v1
kind: Secret
metadata: {{name: bootstrap-token-{id}, namespace: kube-system}}
type: bootstrap.kubernetes.io/token
stringData:
  token-id: \"{id}\"
  token-secret: \"{secret}\"
  expiration: \"{expiration}\"
  usage-bootstrap-authentication: \"true\"
  usage-bootstrap-signing: \"true\"
  auth-extra-groups: system:bootstrappers:kubeadm:default-node-token
"
    )
}

fn jsonpath(s: &Server, args: &[&str], path: &str) -> String {
    let mut a = args.to_vec();
    let p = format!("jsonpath={path}");
    a.extend(["-o", &p]);
    let o = s.kubectl(&a);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Waits for the CSR's certificate, writes it to `<name>.crt` and checks it chains to
/// the cluster CA.
fn issued_certificate(s: &Server, cm: &ControllerManager, dir: &Path, name: &str) -> String {
    let mut cert = String::new();
    wait_until(cm, &format!("csr {name} issued"), 60, || {
        cert = jsonpath(s, &["get", "csr", name], "{.status.certificate}");
        !cert.is_empty()
    });
    let pem = unb64(&cert);
    let file = format!("{name}.crt");
    std::fs::write(dir.join(&file), &pem).unwrap();
    let ca = s.pki_dir().join("ca.pem");
    let verified = openssl(dir, &["verify", "-CAfile", ca.to_str().unwrap(), &file]);
    assert!(verified.contains(": OK"), "{verified}");
    openssl(dir, &["x509", "-in", &file, "-noout", "-text"])
}

#[test]
fn certificates_bootstrap_tokens_and_service_accounts() {
    let s = start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Bootstrap RBAC as kubeadm sets it up: bootstrappers may create CSRs and have node
    // client CSRs auto-approved.
    s.ok(&[
        "create",
        "clusterrolebinding",
        "kubelet-bootstrap",
        "--clusterrole=system:node-bootstrapper",
        "--group=system:bootstrappers",
    ]);
    s.ok(&[
        "create",
        "clusterrolebinding",
        "node-autoapprove-bootstrap",
        "--clusterrole=system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        "--group=system:bootstrappers",
    ]);
    apply(
        &s,
        &["apply", "-f", "-"],
        &token_secret(TOKEN_ID, TOKEN_SECRET, "2099-01-01T00:00:00Z"),
    );
    apply(
        &s,
        &["apply", "-f", "-"],
        &token_secret("old000", "0000000000000000", "2020-01-01T00:00:00Z"),
    );
    let _ = s.kubectl(&["create", "namespace", "kube-public"]);
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n    server: {}\n",
        s.server_url()
    );
    let cluster_info = format!(
        "apiVersion: v1
kind: ConfigMap
metadata: {{name: cluster-info, namespace: kube-public}}
data:
  jws-kubeconfig-gone00: stale
  kubeconfig: |
{}",
        kubeconfig
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    apply(&s, &["apply", "-f", "-"], &cluster_info);
    s.ok(&["create", "namespace", "team-a"]);

    // The harness runs it as the seed does, each controller with its own
    // service-account credentials.
    let cm = controller_manager(&s, &["--controllers=*,bootstrapsigner,tokencleaner"]);

    // A node client CSR sent with the bootstrap token: auto-approved, then issued.
    let pem = make_csr(d, "client", "/O=system:nodes/CN=system:node:worker-1", None);
    let token = format!("--token={TOKEN_ID}.{TOKEN_SECRET}");
    apply(
        &s,
        &[&token, "create", "-f", "-"],
        &csr_object(
            "node-client",
            "kubernetes.io/kube-apiserver-client-kubelet",
            &["digital signature", "client auth"],
            &pem,
        ),
    );
    assert_eq!(
        jsonpath(&s, &["get", "csr", "node-client"], "{.spec.username}"),
        format!("system:bootstrap:{TOKEN_ID}")
    );
    let text = issued_certificate(&s, &cm, d, "node-client");
    assert!(
        text.contains("O = system:nodes, CN = system:node:worker-1"),
        "{text}"
    );
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    assert_eq!(
        jsonpath(
            &s,
            &["get", "csr", "node-client"],
            "{.status.conditions[0].type}/{.status.conditions[0].reason}/{.status.conditions[0].message}"
        ),
        "Approved/AutoApproved/Auto approving kubelet client certificate after SubjectAccessReview."
    );
    let listed = s.ok(&["get", "csr", "node-client", "--no-headers"]);
    assert!(listed.contains("Approved,Issued"), "{listed}");

    // A kubelet serving CSR waits for a human.
    let pem = make_csr(
        d,
        "serving",
        "/O=system:nodes/CN=system:node:worker-1",
        Some("DNS:worker-1,IP:10.0.0.11"),
    );
    apply(
        &s,
        &["create", "-f", "-"],
        &csr_object(
            "node-serving",
            "kubernetes.io/kubelet-serving",
            &["digital signature", "key encipherment", "server auth"],
            &pem,
        ),
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    let listed = s.ok(&["get", "csr", "node-serving", "--no-headers"]);
    assert!(listed.contains("Pending"), "{listed}");
    s.ok(&["certificate", "approve", "node-serving"]);
    let text = issued_certificate(&s, &cm, d, "node-serving");
    assert!(
        text.contains("DNS:worker-1, IP Address:10.0.0.11"),
        "{text}"
    );
    assert!(text.contains("TLS Web Server Authentication"), "{text}");

    // A request that breaks its signer's rules fails with upstream's reason.
    let pem = make_csr(d, "bad", "/O=system:nodes/CN=system:node:worker-1", None);
    apply(
        &s,
        &["create", "-f", "-"],
        &csr_object(
            "bad-serving",
            "kubernetes.io/kubelet-serving",
            &["digital signature", "server auth"],
            &pem,
        ),
    );
    s.ok(&["certificate", "approve", "bad-serving"]);
    wait_until(&cm, "bad-serving Failed", 30, || {
        jsonpath(
            &s,
            &["get", "csr", "bad-serving"],
            "{.status.conditions[?(@.type==\"Failed\")].reason}",
        ) == "SignerValidationFailure"
    });
    assert_eq!(
        jsonpath(
            &s,
            &["get", "csr", "bad-serving"],
            "{.status.conditions[?(@.type==\"Failed\")].message}"
        ),
        "DNS or IP subjectAltName is required"
    );

    // Every namespace: the default ServiceAccount and kube-root-ca.crt.
    let ca = std::fs::read_to_string(s.pki_dir().join("ca.pem")).unwrap();
    for ns in ["default", "kube-system", "kube-public", "team-a"] {
        wait_until(&cm, &format!("{ns}/default service account"), 30, || {
            s.kubectl(&["-n", ns, "get", "serviceaccount", "default"])
                .status
                .success()
        });
        wait_until(&cm, &format!("{ns}/kube-root-ca.crt"), 30, || {
            jsonpath(
                &s,
                &["-n", ns, "get", "configmap", "kube-root-ca.crt"],
                "{.data.ca\\.crt}",
            ) == ca
        });
    }
    assert!(jsonpath(
        &s,
        &["-n", "team-a", "get", "configmap", "kube-root-ca.crt"],
        "{.metadata.annotations.kubernetes\\.io/description}"
    )
    .starts_with("Contains a CA bundle that can be used to verify the kube-apiserver"));
    s.ok(&["create", "namespace", "team-b"]);
    wait_until(&cm, "team-b/default service account", 30, || {
        s.kubectl(&["-n", "team-b", "get", "serviceaccount", "default"])
            .status
            .success()
    });
    let uid = jsonpath(
        &s,
        &["-n", "team-a", "get", "sa", "default"],
        "{.metadata.uid}",
    );
    s.ok(&["-n", "team-a", "delete", "serviceaccount", "default"]);
    wait_until(&cm, "default service account re-created", 30, || {
        let now = jsonpath(
            &s,
            &["-n", "team-a", "get", "sa", "default"],
            "{.metadata.uid}",
        );
        !now.is_empty() && now != uid
    });
    s.ok(&[
        "-n",
        "team-a",
        "patch",
        "configmap",
        "kube-root-ca.crt",
        "--type=merge",
        "-p",
        r#"{"data":{"ca.crt":"tampered"}}"#,
    ]);
    wait_until(&cm, "kube-root-ca.crt restored", 30, || {
        jsonpath(
            &s,
            &["-n", "team-a", "get", "configmap", "kube-root-ca.crt"],
            "{.data.ca\\.crt}",
        ) == ca
    });
    s.ok(&["-n", "team-a", "delete", "configmap", "kube-root-ca.crt"]);
    wait_until(&cm, "kube-root-ca.crt re-created", 30, || {
        jsonpath(
            &s,
            &["-n", "team-a", "get", "configmap", "kube-root-ca.crt"],
            "{.data.ca\\.crt}",
        ) == ca
    });

    // cluster-info: signed with the live token, the stale signature gone, the expired
    // token never used.
    let key = format!("jws-kubeconfig-{TOKEN_ID}");
    let mut sig = String::new();
    wait_until(&cm, "cluster-info signed", 30, || {
        sig = jsonpath(
            &s,
            &["-n", "kube-public", "get", "configmap", "cluster-info"],
            &format!("{{.data.{key}}}"),
        );
        !sig.is_empty()
    });
    let keys = jsonpath(
        &s,
        &["-n", "kube-public", "get", "configmap", "cluster-info"],
        "{.data}",
    );
    assert!(!keys.contains("jws-kubeconfig-gone00"), "{keys}");
    assert!(!keys.contains("jws-kubeconfig-old000"), "{keys}");
    let content = jsonpath(
        &s,
        &["-n", "kube-public", "get", "configmap", "cluster-info"],
        "{.data.kubeconfig}",
    );
    assert_eq!(content, kubeconfig);
    let (header, mac) = sig.split_once("..").expect("a detached JWS");
    let header_json = pipe(
        &["base64", "-d"],
        {
            let mut h = header.replace('-', "+").replace('_', "/");
            while h.len() % 4 != 0 {
                h.push('=');
            }
            h
        }
        .as_bytes(),
    );
    assert_eq!(
        String::from_utf8_lossy(&header_json),
        format!(r#"{{"alg":"HS256","kid":"{TOKEN_ID}"}}"#)
    );
    let input = format!("{header}.{}", b64url(content.as_bytes()));
    let expected = b64url(&pipe(
        &[
            "openssl",
            "dgst",
            "-sha256",
            "-hmac",
            TOKEN_SECRET,
            "-binary",
        ],
        input.as_bytes(),
    ));
    assert_eq!(
        mac, expected,
        "the JWS does not verify with the token secret"
    );

    // The expired token Secret is deleted; the live one stays.
    wait_until(&cm, "expired token deleted", 30, || {
        !s.kubectl(&[
            "-n",
            "kube-system",
            "get",
            "secret",
            "bootstrap-token-old000",
        ])
        .status
        .success()
    });
    s.ok(&[
        "-n",
        "kube-system",
        "get",
        "secret",
        &format!("bootstrap-token-{TOKEN_ID}"),
    ]);

    let log = cm.log();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn signer_without_a_ca_pair_logs_and_signs_nothing() {
    let s = start();
    let pki = s.pki_dir();
    let kubeconfig = pki.join("kube-controller-manager.kubeconfig");
    let log = s.data_dir().join("cm-no-ca.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args([
            "controller-manager",
            &format!("--kubeconfig={}", kubeconfig.display()),
            "--secure-port=0",
            "--leader-elect=false",
            "--controllers=csrsigning,csrapproving",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    common::wait_until("the skip message", 30, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Skipping CSR signer controller because no csr cert/key was specified")
    });
    let dir = tempfile::tempdir().unwrap();
    let pem = make_csr(dir.path(), "c", "/CN=alice", None);
    apply(
        &s,
        &["create", "-f", "-"],
        &csr_object(
            "alice",
            "kubernetes.io/kube-apiserver-client",
            &["client auth"],
            &pem,
        ),
    );
    s.ok(&["certificate", "approve", "alice"]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        jsonpath(&s, &["get", "csr", "alice"], "{.status.certificate}"),
        ""
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "controller-manager exited"
    );
    let _ = child.kill();
    let _ = child.wait();
}
