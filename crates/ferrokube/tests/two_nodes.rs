#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Two nodes on one machine, as the issue's acceptance describes them: two "hosts" are
//! network namespaces joined by a veth pair (198.18.0.1 and 198.18.0.2). Host 1 runs
//! `ferrokube server` (control plane plus node n1); host 2 joins with
//! `ferrokube agent --server https://198.18.0.1:6443 --token <node-token>`:
//!
//! - the agent trusts the server only through the signed cluster-info, its client CSR
//!   is Approved and Issued automatically, its serving CSR stays Pending until
//!   `kubectl certificate approve`, after which its kubelet serves with that
//!   certificate;
//! - a pod on n1 and a pod on n2 reach each other by pod IP (host-gw routes);
//! - `kubectl exec` reaches the pod on n2 through the API server and n2's kubelet;
//! - stopping the agent makes n2 NotReady within 50 s, and its pod is evicted once its
//!   toleration for `unreachable` runs out.
//!
//! The processes enter the namespaces with `nsenter --net` only (their mounts and
//! cgroups stay the host's, which runc needs). `FK_HOLD=<secs>` keeps the lab up that
//! long when a wait times out, for a look with `ip netns exec`.

mod common;

use common::Kubectl as _;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::containerd::{busybox_archive, in_path, INSTALL_HINT};
use common::netns::sh;

const CLUSTER_CIDR: &str = "198.19.0.0/16";
const SERVER_IP: &str = "198.18.0.1";
const AGENT_IP: &str = "198.18.0.2";
/// ClusterIPs (the cluster DNS at .10): in the test range as well.
const SERVICE_RANGE: &str = "198.18.240.0/20";
const CLUSTER_DNS: &str = "198.18.240.10";
/// A second API server for the agent that nothing answers at.
const DEAD_SERVER: &str = "https://198.18.0.3:6443";

/// The namespaces, processes and data directories of the test; all removed on drop.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    server: Option<Child>,
    agent: Option<Child>,
    dir: tempfile::TempDir,
}

impl Lab {
    fn ns(&self, short: &str) -> String {
        format!("{}{short}", self.prefix)
    }

    fn server_dir(&self) -> PathBuf {
        self.dir.path().join("server")
    }

    fn agent_dir(&self) -> PathBuf {
        self.dir.path().join("agent")
    }

    /// A command run in network namespace `short` (nothing else changes).
    fn cmd(&self, short: &str, program: &str) -> Command {
        common::netns::command(&self.ns(short), program)
    }

    fn logs(&self) -> String {
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- server log (end):\n{}\n--- agent log (end):\n{}",
            tail(read(self.dir.path().join("server.log"))),
            tail(read(self.dir.path().join("agent.log")))
        )
    }

    fn wait(&self, what: &str, secs: u64, f: impl FnMut() -> bool) {
        common::netns::wait(&self.prefix, what, secs, f, || {
            let state = self.kubectl(&["get", "nodes,pods,csr", "-A", "-o", "wide"]);
            format!(
                "{}{}\n{}",
                String::from_utf8_lossy(&state.stdout),
                String::from_utf8_lossy(&state.stderr),
                self.logs()
            )
        });
    }

    fn stop_agent(&mut self) {
        if let Some(a) = self.agent.take() {
            common::netns::stop(a, "TERM");
        }
    }
}

impl common::Kubectl for Lab {
    fn command(&self) -> Command {
        let mut c = self.cmd("1", common::KUBECTL);
        c.arg("--kubeconfig")
            .arg(self.server_dir().join("admin.kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"));
        c
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let agents: Vec<u32> = [&self.server, &self.agent]
            .into_iter()
            .flatten()
            .map(Child::id)
            .collect();
        let sockets: Vec<PathBuf> = [self.server_dir(), self.agent_dir()]
            .iter()
            .map(|d| d.join("agent/containerd/containerd.sock"))
            .collect();
        let children = [self.server.take(), self.agent.take()]
            .into_iter()
            .flatten()
            .collect();
        common::netns::teardown(
            &agents,
            &sockets,
            children,
            self.dir.path(),
            &self.namespaces,
        );
    }
}

fn write_images(dir: &Path, rootfs: &Path) {
    let images = dir.join("agent/images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(images.join("busybox.tar"), busybox_archive(rootfs)).unwrap();
}

/// An httpd pod pinned to `node` that tolerates an unreachable node for 5 s only.
fn web_pod(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  terminationGracePeriodSeconds: 1
  tolerations:
  - {{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5}}
  - {{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 5}}
  containers:
  - name: httpd
    image: ferrokube.local/busybox:test
    imagePullPolicy: Never
    command: [sh, -c, 'mkdir -p /www && echo hello from {name} > /www/index.html && exec httpd -f -p 8080 -h /www']
"
    )
}

fn create(lab: &Lab, yaml: &str) {
    lab.feed("create", yaml);
}

/// Starts (or restarts) the agent on host 2; its log is appended to `agent.log`. It is
/// given a second API server that does not exist (198.18.0.3), so the node reaches the
/// real one through the agent's load balancer, which must route around the dead one.
fn start_agent(lab: &mut Lab, server_url: &str, token: &str) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(lab.dir.path().join("agent.log"))
        .unwrap();
    let agent = lab
        .cmd("2", env!("CARGO_BIN_EXE_ferrokube"))
        .args([
            "agent",
            "--server",
            server_url,
            "--server",
            DEAD_SERVER,
            "--token",
            token,
            "--data-dir",
        ])
        .arg(lab.agent_dir())
        .args([
            "--node-ip",
            AGENT_IP,
            "--node-name",
            "n2",
            "--cluster-cidr",
            CLUSTER_CIDR,
            "--cluster-dns",
            CLUSTER_DNS,
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    lab.agent = Some(agent);
}

/// A client certificate for `system:node:n2` signed by the cluster CA, valid from two
/// hours ago for five more minutes: past any rotation deadline (70-90 % of its life).
fn aging_client_cert(server_pki: &Path) -> String {
    let ca_pem = std::fs::read_to_string(server_pki.join("ca.pem")).unwrap();
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(server_pki.join("ca-key.pem")).unwrap())
            .unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "system:node:n2");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    // 125 minutes of life, 120 gone: even the latest deadline (90 %, 112.5 min) passed.
    params.not_before = now - time::Duration::hours(2);
    params.not_after = now + time::Duration::minutes(5);
    let cert = params.signed_by(&key, &issuer).unwrap();
    format!("{}{}", cert.pem(), key.serialize_pem())
}

/// Every CSR: name, signer, requestor, condition types, certificate.
fn csrs(lab: &Lab) -> String {
    lab.get(
        &["csr"],
        r#"{range .items[*]}{.metadata.name} {.spec.signerName} {.spec.username} {.status.conditions[*].type} {.status.certificate}{"\n"}{end}"#,
    )
}

/// What pod `from` gets from `to`:8080 (busybox's nc: Debian's static busybox wget
/// crashes resolving names).
fn fetch(lab: &Lab, from: &str, to: &str) -> String {
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {to} 8080");
    let o = lab.kubectl(&["exec", from, "--", "sh", "-c", &script]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `sh -c script` in pod `pod`: stdout and stderr.
fn exec(lab: &Lab, pod: &str, script: &str) -> String {
    let o = lab.kubectl(&["exec", pod, "--", "sh", "-c", script]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Services across nodes and the cluster DNS: web2 (on n2) finds web1's Service (on
/// n1) by name through the kube-dns Service (n2's kube-proxy carries the query to the
/// server's DNS), reaches it through its ClusterIP, and a headless Service resolves to
/// the pod's IP.
fn services_and_dns(lab: &Lab, ip1: &str) {
    create(
        lab,
        "apiVersion: v1
kind: Service
metadata: {name: web1}
spec:
  selector: {app: web1}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web1-headless}
spec:
  clusterIP: None
  selector: {app: web1}
  ports: [{port: 8080}]
",
    );
    let cluster_ip = lab.get(&["service", "web1"], "{.spec.clusterIP}");
    let third: u8 = cluster_ip.split('.').nth(2).unwrap().parse().unwrap();
    assert!(
        cluster_ip.starts_with("198.18.") && third >= 240,
        "{cluster_ip} outside {SERVICE_RANGE}"
    );
    let dns_ip = lab.get(
        &["service", "kube-dns", "-n", "kube-system"],
        "{.spec.clusterIP}",
    );
    assert_eq!(dns_ip, CLUSTER_DNS);
    let resolv = exec(lab, "web2", "cat /etc/resolv.conf");
    assert!(resolv.contains(CLUSTER_DNS), "{resolv}");
    let mut seen = String::new();
    lab.wait("web1 through its ClusterIP from n2", 30, || {
        seen = exec(
            lab,
            "web2",
            &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {cluster_ip} 80"),
        );
        seen.contains("hello from web1")
    });
    lab.wait("web1's name from n2", 30, || {
        seen = exec(lab, "web2", "nslookup web1.default.svc.cluster.local");
        seen.contains(&cluster_ip)
    });
    let kubernetes = lab.get(&["service", "kubernetes"], "{.spec.clusterIP}");
    let answer = exec(lab, "web2", "nslookup kubernetes.default.svc.cluster.local");
    assert!(answer.contains(&kubernetes), "{answer}");
    lab.wait("the headless Service's pod IP", 30, || {
        seen = exec(
            lab,
            "web2",
            "nslookup web1-headless.default.svc.cluster.local",
        );
        seen.contains(ip1)
    });
    let missing = exec(lab, "web2", "nslookup nothing.default.svc.cluster.local");
    assert!(
        missing.contains("NXDOMAIN") || missing.contains("can't find"),
        "{missing}"
    );
}

fn ready(lab: &Lab, node: &str) -> String {
    lab.get(
        &["node", node],
        r#"{.status.conditions[?(@.type=="Ready")].status}"#,
    )
}

#[test]
fn an_agent_joins_with_a_token_and_pods_reach_each_other_across_nodes() {
    for program in [
        "containerd",
        "ctr",
        "runc",
        "containerd-shim-runc-v2",
        "nsenter",
    ] {
        assert!(in_path(program), "{program} is missing: {INSTALL_HINT}");
    }
    let mut lab = Lab {
        prefix: format!("fkj{}-", std::process::id()),
        namespaces: Vec::new(),
        server: None,
        agent: None,
        dir: tempfile::tempdir().unwrap(),
    };
    for short in ["1", "2"] {
        let ns = lab.ns(short);
        sh(&["ip", "netns", "add", &ns]);
        lab.namespaces.push(ns.clone());
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
    }
    let (h1, h2) = (lab.ns("1"), lab.ns("2"));
    sh(&[
        "ip", "-n", &h1, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
        &h2,
    ]);
    for (ns, ip) in [(&h1, SERVER_IP), (&h2, AGENT_IP)] {
        sh(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            "eth0",
        ]);
        sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
    }
    let rootfs = lab.dir.path().join("busybox-rootfs");
    write_images(&lab.server_dir(), &rootfs);
    write_images(&lab.agent_dir(), &rootfs);

    // Host 1: the server and node n1.
    let log = std::fs::File::create(lab.dir.path().join("server.log")).unwrap();
    let mut server = lab
        .cmd("1", env!("CARGO_BIN_EXE_ferrokube"))
        .args(["server", "--data-dir"])
        .arg(lab.server_dir())
        .args([
            "--bind-address",
            SERVER_IP,
            "--node-ip",
            SERVER_IP,
            "--node-name",
            "n1",
            "--cluster-cidr",
            CLUSTER_CIDR,
            "--service-cluster-ip-range",
            SERVICE_RANGE,
        ])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap());
    lab.server = Some(server);
    let mut join = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut line = String::new();
    while join.is_none() {
        assert!(Instant::now() < deadline, "no join hint\n{}", lab.logs());
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "server exited\n{}",
            lab.logs()
        );
        if line.contains("join other hosts with: ferrokube agent") {
            join = Some(line.clone());
        }
    }
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink);
    });
    let server_url = format!("https://{SERVER_IP}:6443");
    assert!(join.unwrap().contains(&server_url));
    let token = std::fs::read_to_string(lab.server_dir().join("node-token")).unwrap();
    let token = token.trim().to_string();
    lab.wait("n1 Ready", 60, || ready(&lab, "n1") == "True");

    // Host 2 joins with the token.
    start_agent(&mut lab, &server_url, &token);
    lab.wait("n2 Ready", 90, || ready(&lab, "n2") == "True");
    // Through the agent's load balancer, past the dead second server.
    let kubeconfig =
        std::fs::read_to_string(lab.agent_dir().join("agent/kubelet.kubeconfig")).unwrap();
    assert!(
        kubeconfig.contains("server: https://127.0.0.1:6444"),
        "{kubeconfig}"
    );
    let log = std::fs::read_to_string(lab.dir.path().join("agent.log")).unwrap();
    assert!(
        log.contains("load balancer on 127.0.0.1:6444") && log.contains("198.18.0.3:6443"),
        "{}",
        lab.logs()
    );

    // Its client CSR was approved and issued at once; its serving CSR waits.
    let token_id = token.split('.').next().unwrap();
    let listing = csrs(&lab);
    let client = listing
        .lines()
        .find(|l| l.contains("kube-apiserver-client-kubelet"))
        .unwrap_or_else(|| panic!("no client CSR:\n{listing}"));
    let f: Vec<&str> = client.split_whitespace().collect();
    assert_eq!(f[2], format!("system:bootstrap:{token_id}"), "{client}");
    assert_eq!(f[3], "Approved", "{client}");
    assert!(f.len() == 5 && !f[4].is_empty(), "not issued: {client}");
    let client_pem = lab
        .agent_dir()
        .join("agent/kubelet/pki/kubelet-client-current.pem");
    assert!(
        std::fs::read_link(&client_pem).is_ok(),
        "{} is not a symlink",
        client_pem.display()
    );
    let mut serving = String::new();
    lab.wait("a serving CSR", 30, || {
        let l = csrs(&lab);
        serving = l
            .lines()
            .find(|l| l.contains("kubelet-serving") && l.contains("system:node:n2"))
            .unwrap_or_default()
            .to_string();
        !serving.is_empty()
    });
    let name = serving.split_whitespace().next().unwrap().to_string();
    assert_eq!(
        serving.split_whitespace().count(),
        3,
        "the serving CSR should be pending: {serving}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let still = lab.get(&["csr", &name], "{.status.conditions[*].type}");
    assert!(
        still.is_empty(),
        "approved without an administrator: {still}"
    );
    lab.ok(&["certificate", "approve", &name]);
    let serving_pem = lab
        .agent_dir()
        .join("agent/kubelet/pki/kubelet-server-current.pem");
    lab.wait("the serving certificate on n2", 30, || serving_pem.exists());

    // A pod on each node; each reaches the other by pod IP.
    create(&lab, &web_pod("web1", "n1"));
    create(&lab, &web_pod("web2", "n2"));
    let ip = |pod: &str| lab.get(&["pod", pod], "{.status.podIP}");
    let running = |pod: &str| lab.get(&["pod", pod], "{.status.phase}") == "Running";
    lab.wait("both pods Running", 60, || {
        running("web1") && running("web2")
    });
    let (ip1, ip2) = (ip("web1"), ip("web2"));
    assert!(
        ip1.starts_with("198.19.") && ip2.starts_with("198.19."),
        "{ip1} {ip2}"
    );
    assert_ne!(
        ip1.rsplit_once('.').unwrap().0,
        ip2.rsplit_once('.').unwrap().0
    );
    let mut seen = String::new();
    lab.wait("web1 (n1) to reach web2 (n2)", 30, || {
        seen = fetch(&lab, "web1", &ip2);
        seen.contains("hello from web2")
    });
    // exec on n2 goes through its kubelet, now serving the approved certificate.
    let back = fetch(&lab, "web2", &ip1);
    assert!(back.contains("hello from web1"), "{back}");

    services_and_dns(&lab, &ip1);

    // Rotation: restart the agent with a client certificate past its rotation
    // deadline; the kubelet renews it (auto-approved for the node itself), restarts
    // with it and adopts web2 as it runs.
    let web2_container = lab.get(
        &["pod", "web2"],
        "{.status.containerStatuses[0].containerID}",
    );
    lab.stop_agent();
    let pki = lab.agent_dir().join("agent/kubelet/pki");
    let old = pki.join("kubelet-client-aging.pem");
    std::fs::write(&old, aging_client_cert(&lab.server_dir().join("pki"))).unwrap();
    let current = pki.join("kubelet-client-current.pem");
    std::fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink(&old, &current).unwrap();
    start_agent(&mut lab, &server_url, &token);
    lab.wait("the client certificate to rotate", 60, || {
        std::fs::read_link(&current).is_ok_and(|t| t != old)
    });
    let renewals = csrs(&lab)
        .lines()
        .filter(|l| l.contains("kube-apiserver-client-kubelet") && l.contains(" system:node:n2 "))
        .count();
    assert_eq!(renewals, 1, "{}", csrs(&lab));
    std::thread::sleep(Duration::from_secs(2));
    lab.wait("n2 Ready after the rotation", 60, || {
        ready(&lab, "n2") == "True"
    });
    let mut back = String::new();
    lab.wait("exec on n2 after the rotation", 30, || {
        back = fetch(&lab, "web2", &ip1);
        back.contains("hello from web1")
    });
    assert_eq!(
        lab.get(
            &["pod", "web2"],
            "{.status.containerStatuses[0].containerID}"
        ),
        web2_container,
        "web2 was recreated"
    );
    assert!(
        std::fs::read_to_string(lab.dir.path().join("agent.log"))
            .unwrap()
            .contains("client certificate rotated; restarting the kubelet with it"),
        "{}",
        lab.logs()
    );

    // Stop node 2: NotReady (Unknown) within 50 s, then its pod is evicted.
    lab.stop_agent();
    let stopped = Instant::now();
    lab.wait("n2 not Ready", 60, || ready(&lab, "n2") != "True");
    assert!(
        stopped.elapsed() <= Duration::from_secs(50),
        "n2 became NotReady after {:?}",
        stopped.elapsed()
    );
    lab.wait("web2 evicted", 40, || {
        let o = lab.kubectl(&[
            "get",
            "pod",
            "web2",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ]);
        !o.status.success() || !String::from_utf8_lossy(&o.stdout).is_empty()
    });
    assert_eq!(lab.get(&["pod", "web1"], "{.status.phase}"), "Running");
}
