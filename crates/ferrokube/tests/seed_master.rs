#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The seeds' master flow, automated: `ferrokube pki cluster` makes the certificates,
//! kubeconfigs and tokens; the API server starts with the flags of the seeds'
//! kube-apiserver unit (paths substituted) — on the embedded store and on a real etcd
//! over TLS —; then the admin kubeconfig works with kubectl, a `kubectl auth can-i --as`
//! matrix matches upstream's bootstrap policy, a bootstrap-token user can create a CSR
//! and nothing else, a node reads only the secrets of its own pods, and requests without
//! credentials get 401.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::KUBECTL;
use ferrokube_storage_etcd::testing::EtcdCluster;

struct ApiServer(Child);

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ferrokube(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args(args)
        .output()
        .unwrap()
}

struct Kubectl {
    cache: PathBuf,
}

/// kubectl with one kubeconfig.
struct As<'a> {
    kubeconfig: &'a Path,
    cache: &'a Path,
}

impl common::Kubectl for As<'_> {
    fn command(&self) -> Command {
        let mut cmd = Command::new(KUBECTL);
        cmd.env("KUBECONFIG", self.kubeconfig)
            .env("KUBECACHEDIR", self.cache);
        cmd
    }
}

impl Kubectl {
    fn run(&self, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let o = common::Kubectl::kubectl_stdin(
            &As {
                kubeconfig,
                cache: &self.cache,
            },
            args,
            stdin,
        );
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }
}

/// The seeds' kube-apiserver flags with this test's paths, on loopback.
fn seed_flags(pki: &Path, dir: &Path, port: u16) -> Vec<String> {
    common::seed::apiserver_flags(pki, dir, "127.0.0.1", "127.0.0.1", port, "10.254.0.0/16")
}

fn start(args: &[String], admin: &Path, k: &Kubectl) -> ApiServer {
    let child = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = ApiServer(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !k.run(admin, &["get", "--raw", "/readyz"], None).0 {
        assert!(
            Instant::now() < deadline,
            "the API server did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// The whole flow against one started server.
fn check_cluster(pki: &Path, port: u16, k: &Kubectl) {
    let admin = pki.join("admin.kubeconfig");
    let ok = |args: &[&str]| {
        let (ok, out, err) = k.run(&admin, args, None);
        assert!(ok, "kubectl {args:?}: {out}{err}");
        out
    };
    // The admin kubeconfig (client certificate, O=system:masters).
    assert!(ok(&["get", "namespaces", "-o", "name"]).contains("namespace/kube-system"));
    let whoami = ok(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
    ]);
    assert_eq!(whoami, r#"admin ["system:masters","system:authenticated"]"#);
    // The seeds' bootstrap tokens and the binding that lets bootstrappers ask for certificates.
    ok(&[
        "apply",
        "-f",
        pki.join("bootstrap-token-secrets.yaml").to_str().unwrap(),
    ]);
    ok(&[
        "create",
        "clusterrolebinding",
        "kubelet-bootstrap",
        "--clusterrole=system:node-bootstrapper",
        "--group=system:bootstrappers",
    ]);

    // `kubectl auth can-i --as` matches upstream's bootstrap policy.
    let matrix: &[(&str, &str)] = &[
        ("create pods --subresource=binding -n default --as system:kube-scheduler", "yes"),
        ("update leases -n kube-system --as system:kube-scheduler", "yes"),
        ("list nodes --as system:kube-scheduler", "yes"),
        ("watch pods --as system:kube-scheduler", "yes"),
        ("delete pods -n default --as system:kube-scheduler", "yes"),
        ("get secrets -n default --as system:kube-scheduler", "no"),
        ("create deployments -n default --as system:kube-scheduler", "no"),
        ("create serviceaccounts --subresource=token -n kube-system --as system:kube-controller-manager", "yes"),
        ("list secrets -n kube-system --as system:kube-controller-manager", "yes"),
        ("create events -n default --as system:kube-controller-manager", "yes"),
        ("get leases -n kube-system --as system:kube-controller-manager", "yes"),
        ("create deployments -n default --as system:kube-controller-manager", "no"),
        ("list endpointslices --as system:kube-proxy", "yes"),
        ("watch services --as system:kube-proxy", "yes"),
        ("list nodes --as system:kube-proxy", "yes"),
        ("get secrets --as system:kube-proxy", "no"),
        ("create pods --as system:kube-proxy", "no"),
        ("create certificatesigningrequests --as system:bootstrap:abcdef --as-group system:bootstrappers", "yes"),
        ("list pods --as system:bootstrap:abcdef --as-group system:bootstrappers", "no"),
        ("get secrets --as system:bootstrap:abcdef --as-group system:bootstrappers", "no"),
        ("list pods -n default --as alice", "no"),
        ("create selfsubjectaccessreviews.authorization.k8s.io --as alice", "yes"),
        ("create selfsubjectrulesreviews.authorization.k8s.io --as alice", "yes"),
        ("create selfsubjectreviews.authentication.k8s.io --as alice", "yes"),
        ("get secrets --as alice", "no"),
        ("delete namespaces --as alice", "no"),
        ("'*' '*' --as bob --as-group system:masters", "yes"),
        ("delete nodes --as bob --as-group system:masters", "yes"),
        ("get nodes/k8s-01 --as system:node:k8s-01 --as-group system:nodes", "yes"),
        // 1.33's Node authorizer: a kubelet reads only its own Node object.
        ("get nodes --as system:node:k8s-01 --as-group system:nodes", "no"),
        ("get nodes/k8s-02 --as system:node:k8s-01 --as-group system:nodes", "no"),
        ("create nodes --as system:node:k8s-01 --as-group system:nodes", "yes"),
        ("list secrets --as system:node:k8s-01 --as-group system:nodes", "no"),
        ("get configmaps -n kube-system --as system:serviceaccount:default:app", "no"),
        ("list clusterroles --as system:serviceaccount:kube-system:clusterrole-aggregation-controller", "yes"),
    ];
    let mut failures = Vec::new();
    for (check, want) in matrix {
        let mut args = vec!["auth", "can-i"];
        let parts: Vec<&str> = check.split(' ').map(|p| p.trim_matches('\'')).collect();
        args.extend(parts);
        let (_, out, err) = k.run(&admin, &args, None);
        // kubectl may add the reason after "no - ".
        let got = out.split_whitespace().next().unwrap_or("");
        if got != *want {
            failures.push(format!("can-i {check}: got {got:?} want {want} {err}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A bootstrap token user: a CSR yes, anything else no.
    let dir = pki.parent().unwrap();
    let keyfile = dir.join("node-key.pem");
    let csr_file = dir.join("node.csr");
    let o = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            keyfile.to_str().unwrap(),
            "-subj",
            "/O=system:nodes/CN=system:node:k8s-01",
            "-out",
            csr_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    use base64::Engine;
    let csr = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&csr_file).unwrap());
    let csr_doc = format!("apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{generateName: node-csr-}}\nspec:\n  request: {csr}\n  signerName: kubernetes.io/kube-apiserver-client-kubelet\n  usages: [digital signature, client auth]\n");
    let bootstrap = pki.join("kubelet-bootstrap-k8s-01.kubeconfig");
    let (ok_csr, out, err) = k.run(&bootstrap, &["create", "-f", "-"], Some(&csr_doc));
    assert!(ok_csr, "{out}{err}");
    let csr_name = out
        .trim()
        .split(' ')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    // The requestor is recorded; approving needs `approve` on the signer.
    let table = ok(&["get", "csr", &csr_name]);
    assert!(
        table.contains("kubernetes.io/kube-apiserver-client-kubelet")
            && table.contains("system:bootstrap:")
            && table.contains("Pending"),
        "{table}"
    );
    let (approved, _, err) = k.run(&bootstrap, &["certificate", "approve", &csr_name], None);
    assert!(!approved, "a bootstrapper approved its own CSR");
    assert!(err.contains("forbidden"), "{err}");
    ok(&["certificate", "approve", &csr_name]);
    assert!(ok(&["get", "csr", &csr_name]).contains("Approved"));
    // The CSR strategy stamps the condition (the csrcleaner's clock).
    let stamps = ok(&[
        "get",
        "csr",
        &csr_name,
        "-o",
        "jsonpath={.status.conditions[0].lastUpdateTime} {.status.conditions[0].lastTransitionTime}",
    ]);
    assert!(
        stamps.split(' ').all(|t| t.ends_with('Z')),
        "condition timestamps: {stamps:?}"
    );
    let (ok_pods, _, err) = k.run(&bootstrap, &["get", "pods", "-A"], None);
    assert!(!ok_pods);
    assert!(
        err.contains(r#"pods is forbidden: User "system:bootstrap:"#)
            && err.contains(r#"cannot list resource "pods" in API group "" at the cluster scope"#),
        "{err}"
    );

    // The Node authorizer: k8s-01 reads the secret of its own pod, not another node's.
    // (No controller-manager runs here to create the `default` service account the
    // ServiceAccount admission plugin wants: made by hand.)
    ok(&["create", "serviceaccount", "default"]);
    for (node, secret) in [("k8s-01", "s1"), ("k8s-02", "s2")] {
        ok(&["create", "secret", "generic", secret, "--from-literal=k=v"]);
        let pod = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p-{node}}}\nspec:\n  nodeName: {node}\n  containers: [{{name: c, image: busybox}}]\n  volumes: [{{name: s, secret: {{secretName: {secret}}}}}]\n");
        let (ok_pod, out, err) = k.run(&admin, &["create", "-f", "-"], Some(&pod));
        assert!(ok_pod, "{out}{err}");
    }
    let node = pki.join("kubelet-k8s-01.kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (allowed, _, _) = k.run(&node, &["get", "secret", "s1", "-o", "name"], None);
        if allowed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node k8s-01 never got its pod's secret"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (allowed, _, err) = k.run(&node, &["get", "secret", "s2"], None);
    assert!(!allowed);
    assert!(err.contains(r#"secrets "s2" is forbidden: User "system:node:k8s-01" cannot get resource "secrets" in API group "" in the namespace "default""#), "{err}");

    // NodeRestriction: a kubelet registers its own Node, not another's.
    let node_doc = |name: &str| format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n");
    let (created, out, err) = k.run(&node, &["create", "-f", "-"], Some(&node_doc("k8s-01")));
    assert!(created, "{out}{err}");
    let (created, _, err) = k.run(&node, &["create", "-f", "-"], Some(&node_doc("k8s-02")));
    assert!(!created);
    assert!(
        err.contains(r#"node "k8s-01" is not allowed to modify node "k8s-02""#),
        "{err}"
    );

    // An admission policy in Audit mode: its failures and auditAnnotations reach the
    // request's audit event.
    let policy = r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: audited}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["configmaps"]}
  validations:
  - expression: "object.metadata.name.startsWith('ok-')"
    message: names start with ok-
  auditAnnotations:
  - key: created
    valueExpression: "'configmap ' + object.metadata.name"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: audited}
spec: {policyName: audited, validationActions: [Warn, Audit]}
"#;
    let (applied, out, err) = k.run(&admin, &["apply", "-f", "-"], Some(policy));
    assert!(applied, "{out}{err}");
    // Audit and Warn never deny: the warning says the policy is in force.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (created, _, err) = k.run(
            &admin,
            &["create", "configmap", "probe", "--dry-run=server"],
            None,
        );
        assert!(created, "{err}");
        if err.contains("Warning: Validation failed for ValidatingAdmissionPolicy 'audited'") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the audited policy never took effect"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ok(&["create", "configmap", "audited-cm"]);

    // No credentials: 401 (anonymous is off, as in the seeds).
    let o = Command::new("curl")
        .args([
            "-sk",
            "-w",
            "\n%{http_code}",
            &format!("https://127.0.0.1:{port}/api/v1/namespaces"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.ends_with("\n401") && text.contains(r#""reason":"Unauthorized""#),
        "{text}"
    );
    // A forged token: 401 too.
    let o = Command::new("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Authorization: Bearer abcdef.0123456789abcdef",
            &format!("https://127.0.0.1:{port}/api/v1/namespaces"),
        ])
        .output()
        .unwrap();
    assert_eq!(o.stdout, b"401");

    // The seeds' audit policy: every request at Metadata level, received and completed.
    let audit = std::fs::read_to_string(pki.parent().unwrap().join("audit.log")).unwrap();
    let events: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events
        .iter()
        .all(|e| e["level"] == "Metadata" && e["apiVersion"] == "audit.k8s.io/v1"));
    let complete: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["stage"] == "ResponseComplete")
        .collect();
    assert!(complete.len() > 50, "{}", complete.len());
    assert!(complete.iter().any(|e| e["responseStatus"]["code"] == 401));
    assert!(complete.iter().any(|e| e["responseStatus"]["code"] == 403
        && e["user"]["username"] == "system:node:k8s-01"
        && e["objectRef"]["name"] == "s2"));
    assert!(complete.iter().all(|e| e.get("requestObject").is_none()));
    let audited = complete
        .iter()
        .find(|e| e["annotations"]["audited/created"] == "configmap audited-cm")
        .expect("the audited create");
    assert_eq!(audited["verb"], "create");
    assert_eq!(audited["objectRef"]["resource"], "configmaps");
    assert_eq!(
        audited["annotations"]["audited/created"], "configmap audited-cm",
        "{audited}"
    );
    let failure: serde_json::Value = serde_json::from_str(
        audited["annotations"]["validation.policy.admission.k8s.io/validation_failure"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        failure,
        serde_json::json!([{"message": "names start with ok-", "policy": "audited", "binding": "audited", "expressionIndex": 0, "validationActions": ["Warn", "Audit"]}])
    );
    assert_eq!(
        audited["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
}

fn make_pki(dir: &Path, port: u16) -> PathBuf {
    let pki = dir.join("pki");
    let o = ferrokube(&[
        "pki",
        "cluster",
        "--dir",
        pki.to_str().unwrap(),
        "--node",
        "k8s-01=198.18.0.11",
        "--node",
        "k8s-02=198.18.0.12",
        "--apiserver-url",
        &format!("https://127.0.0.1:{port}"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    pki
}

#[test]
fn seed_master_flow_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let pki = make_pki(dir.path(), port);
    let k = Kubectl {
        cache: dir.path().join("cache"),
    };
    let mut args = seed_flags(&pki, dir.path(), port);
    args.push(format!("--data-dir={}", dir.path().join("db").display()));
    let _server = start(&args, &pki.join("admin.kubeconfig"), &k);
    check_cluster(&pki, port, &k);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_master_flow_on_etcd_over_tls() {
    let etcd = EtcdCluster::start(1, true).await;
    let tls = etcd.pki().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let pki = make_pki(dir.path(), port);
    let k = Kubectl {
        cache: dir.path().join("cache"),
    };
    let mut args = seed_flags(&pki, dir.path(), port);
    args.push(format!("--etcd-servers={}", etcd.endpoints().join(",")));
    args.push(format!("--etcd-cafile={}", tls.ca_file.display()));
    args.push(format!(
        "--etcd-certfile={}",
        tls.client_cert_file.display()
    ));
    args.push(format!("--etcd-keyfile={}", tls.client_key_file.display()));
    let pki2 = pki.clone();
    tokio::task::spawn_blocking(move || {
        let _server = start(&args, &pki2.join("admin.kubeconfig"), &k);
        check_cluster(&pki2, port, &k);
    })
    .await
    .unwrap();
}
