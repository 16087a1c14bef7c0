#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The seeds' high-availability topology on one machine. Five "hosts" are network
//! namespaces on one bridge (198.18.1.0/24), and every certificate comes from
//! `ferrokube pki cluster`:
//!
//! - m1, m2 (masters) and e3: a 3-member etcd cluster over TLS (client and peer
//!   certificates required);
//! - m1, m2: `ferrokube apiserver` with the seeds' flags on that etcd,
//!   `controller-manager` and `scheduler` with leader election, and `ferrokube dns`
//!   behind a `kube-dns` Service;
//! - w1, w2 (workers): `ferrokube agent` with both API servers, joining with the
//!   seeds' kubelet bootstrap kubeconfig: kubelet, pod network, kube-proxy (`ipvs`
//!   mode; nftables where the kernel has no IPVS) and the in-process load balancer
//!   on 127.0.0.1:8443, the seeds' kube-nginx address.
//!
//! Then, as the issue's acceptance lists them: componentstatuses, the `kubernetes`
//! Service backed by both API servers, DNS and Services from pods, a NodePort from
//! the other node; and failover: SIGKILL of an API server (kubectl through the load
//! balancer keeps working, kubelets keep renewing), SIGKILL of the leading
//! scheduler and controller-manager (the other master's take the Leases within
//! 20 s), an etcd member stopped (no write lost) and back (it catches up).
//!
//! `FK_HOLD=<secs>` keeps the lab up that long when a wait times out; `FK_HA_KEEP=<secs>`
//! keeps it up that long after every check passed, to look around (the commands are
//! printed). docs/ha.md describes the topology.

mod common;

use common::Kubectl as _;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::containerd::{busybox_archive, in_path, INSTALL_HINT};
use common::netns::sh;

const CLUSTER_CIDR: &str = "198.19.0.0/16";
const SERVICE_RANGE: &str = "198.18.240.0/20";
const KUBERNETES_IP: &str = "198.18.240.1";
const DNS_IP: &str = "198.18.240.10";
const HOSTS: [(&str, &str); 5] = [
    ("m1", "198.18.1.1"),
    ("m2", "198.18.1.2"),
    ("e3", "198.18.1.3"),
    ("w1", "198.18.1.11"),
    ("w2", "198.18.1.12"),
];
const ETCD_MEMBERS: [&str; 3] = ["m1", "m2", "e3"];
const MASTERS: [&str; 2] = ["m1", "m2"];
const WORKERS: [&str; 2] = ["w1", "w2"];
/// The seeds' kube-nginx address, which the workers' agents listen on.
const LB: &str = "127.0.0.1:8443";

fn ip(host: &str) -> &'static str {
    HOSTS.iter().find(|(h, _)| *h == host).unwrap().1
}

/// How a process was started, to start it again.
struct Spec {
    host: String,
    program: String,
    args: Vec<String>,
}

struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    procs: BTreeMap<String, (Spec, Option<Child>)>,
    dir: tempfile::TempDir,
}

impl Lab {
    fn ns(&self, host: &str) -> String {
        format!("{}{host}", self.prefix)
    }

    fn pki(&self) -> PathBuf {
        self.dir.path().join("pki")
    }

    fn path(&self, rel: &str) -> String {
        self.dir.path().join(rel).display().to_string()
    }

    /// `program` in `host`'s network namespace (nothing else changes).
    fn cmd(&self, host: &str, program: &str) -> Command {
        common::netns::command(&self.ns(host), program)
    }

    /// Starts process `name` (log: `logs/<name>.log`, appended).
    fn spawn(&mut self, name: &str, host: &str, program: &str, args: Vec<String>) {
        let spec = Spec {
            host: host.into(),
            program: program.into(),
            args,
        };
        self.procs.insert(name.into(), (spec, None));
        self.start(name);
    }

    fn start(&mut self, name: &str) {
        let logs = self.dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join(format!("{name}.log")))
            .unwrap();
        let (spec, _) = &self.procs[name];
        let child = self
            .cmd(&spec.host, &spec.program)
            .args(&spec.args)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.procs.get_mut(name).unwrap().1 = Some(child);
    }

    /// Sends `signal` to process `name` and reaps it.
    fn stop(&mut self, name: &str, signal: &str) {
        if let Some(child) = self.procs.get_mut(name).unwrap().1.take() {
            common::netns::stop(child, signal);
        }
    }

    fn log(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(format!("logs/{name}.log")))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn logs(&self) -> String {
        self.procs
            .keys()
            .map(|n| format!("--- {n} (end):\n{}\n", self.log(n)))
            .collect()
    }

    /// kubectl on `host` with `kubeconfig` (a file in the lab dir).
    fn kubectl_with(&self, host: &str, kubeconfig: &str, args: &[&str]) -> Output {
        self.cmd(host, common::KUBECTL)
            .arg("--kubeconfig")
            .arg(self.dir.path().join(kubeconfig))
            .arg("--cache-dir")
            .arg(self.dir.path().join(format!("kubectl-cache-{host}")))
            .args(["--request-timeout", "10s"])
            .args(args)
            .output()
            .unwrap()
    }

    fn apply(&self, yaml: &str) {
        self.feed("apply", yaml);
    }

    fn wait(&self, what: &str, secs: u64, f: impl FnMut() -> bool) {
        common::netns::wait(&self.prefix, what, secs, f, || {
            let state = self.kubectl(&["get", "nodes,pods,csr,leases", "-A", "-o", "wide"]);
            format!(
                "{}{}\n{}",
                String::from_utf8_lossy(&state.stdout),
                String::from_utf8_lossy(&state.stderr),
                self.logs()
            )
        });
    }

    /// `sh -c script` in pod `pod`: stdout and stderr.
    fn exec(&self, pod: &str, script: &str) -> String {
        let o = self.kubectl(&["exec", pod, "--", "sh", "-c", script]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }

    fn etcdctl(&self, host: &str, endpoint: &str, args: &[&str]) -> Output {
        let pki = self.pki();
        self.cmd(host, "etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=https://{endpoint}:2379"))
            .arg(format!("--cacert={}", pki.join("ca.pem").display()))
            .arg(format!("--cert={}", pki.join("etcd.pem").display()))
            .arg(format!("--key={}", pki.join("etcd-key.pem").display()))
            .arg("--command-timeout=5s")
            .args(args)
            .output()
            .unwrap()
    }
}

impl common::Kubectl for Lab {
    /// kubectl as admin on m2 (its own API server).
    fn command(&self) -> Command {
        let mut c = self.cmd("m2", common::KUBECTL);
        c.arg("--kubeconfig")
            .arg(self.pki().join("admin.kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache-m2"))
            .args(["--request-timeout", "10s"]);
        c
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let agents: Vec<u32> = WORKERS
            .iter()
            .filter_map(|w| self.procs.get(*w).and_then(|p| p.1.as_ref()).map(Child::id))
            .collect();
        let sockets: Vec<PathBuf> = WORKERS
            .iter()
            .map(|w| {
                self.dir
                    .path()
                    .join(format!("{w}/agent/containerd/containerd.sock"))
            })
            .collect();
        let children = self.procs.values_mut().filter_map(|p| p.1.take()).collect();
        common::netns::teardown(
            &agents,
            &sockets,
            children,
            self.dir.path(),
            &self.namespaces,
        );
    }
}

/// The switch namespace with bridge br0, and every host on it.
fn network(lab: &mut Lab) {
    let sw = lab.ns("sw");
    sh(&["ip", "netns", "add", &sw]);
    lab.namespaces.push(sw.clone());
    sh(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"]);
    sh(&["ip", "-n", &sw, "link", "set", "br0", "up"]);
    for (host, addr) in HOSTS {
        let ns = lab.ns(host);
        sh(&["ip", "netns", "add", &ns]);
        lab.namespaces.push(ns.clone());
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        let port = format!("p-{host}");
        sh(&[
            "ip", "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ]);
        sh(&["ip", "-n", &sw, "link", "set", &port, "master", "br0", "up"]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]);
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
    }
}

fn start_etcd(lab: &mut Lab) {
    let pki = lab.pki();
    let p = |f: &str| pki.join(f).display().to_string();
    let cluster: Vec<String> = ETCD_MEMBERS
        .iter()
        .map(|m| format!("{m}=https://{}:2380", ip(m)))
        .collect();
    for m in ETCD_MEMBERS {
        let addr = ip(m);
        let args = vec![
            format!("--name={m}"),
            format!("--data-dir={}", lab.path(&format!("etcd-{m}"))),
            format!("--cert-file={}", p("etcd.pem")),
            format!("--key-file={}", p("etcd-key.pem")),
            format!("--peer-cert-file={}", p("etcd.pem")),
            format!("--peer-key-file={}", p("etcd-key.pem")),
            format!("--trusted-ca-file={}", p("ca.pem")),
            format!("--peer-trusted-ca-file={}", p("ca.pem")),
            "--client-cert-auth".into(),
            "--peer-client-cert-auth".into(),
            format!("--listen-peer-urls=https://{addr}:2380"),
            format!("--initial-advertise-peer-urls=https://{addr}:2380"),
            format!("--listen-client-urls=https://{addr}:2379,https://127.0.0.1:2379"),
            format!("--advertise-client-urls=https://{addr}:2379"),
            "--initial-cluster-token=ferrokube-ha".into(),
            format!("--initial-cluster={}", cluster.join(",")),
            "--initial-cluster-state=new".into(),
        ];
        let etcd = ferrokube_storage_etcd::testing::etcd_binary()
            .display()
            .to_string();
        lab.spawn(&format!("etcd-{m}"), m, &etcd, args);
    }
    lab.wait("etcd healthy", 60, || {
        let o = lab.etcdctl("m1", ip("m1"), &["endpoint", "health", "--cluster"]);
        o.status.success()
    });
}

fn start_apiserver(lab: &mut Lab, m: &str) {
    let pki = lab.pki();
    let dir = lab.dir.path().join(format!("apiserver-{m}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut args = common::seed::apiserver_flags(&pki, &dir, "0.0.0.0", ip(m), 6443, SERVICE_RANGE);
    let endpoints: Vec<String> = ETCD_MEMBERS
        .iter()
        .map(|e| format!("https://{}:2379", ip(e)))
        .collect();
    args.push(format!("--etcd-servers={}", endpoints.join(",")));
    // The hosts' names are in no DNS (as seed 004 sets it).
    args.push("--kubelet-preferred-address-types=InternalIP,Hostname".into());
    args.push(format!("--etcd-cafile={}", pki.join("ca.pem").display()));
    args.push(format!(
        "--etcd-certfile={}",
        pki.join("kubernetes.pem").display()
    ));
    args.push(format!(
        "--etcd-keyfile={}",
        pki.join("kubernetes-key.pem").display()
    ));
    lab.spawn(
        &format!("apiserver-{m}"),
        m,
        env!("CARGO_BIN_EXE_ferrokube"),
        args,
    );
}

fn apiserver_ready(lab: &Lab, m: &str) -> bool {
    lab.kubectl_with(m, "pki/admin.kubeconfig", &["get", "--raw", "/readyz"])
        .status
        .success()
}

/// The controller-manager and scheduler of master `m`, leader-elected.
fn start_control_loops(lab: &mut Lab, m: &str) {
    let pki = lab.pki();
    let p = |f: &str| pki.join(f).display().to_string();
    let cm = vec![
        "controller-manager".to_string(),
        format!("--kubeconfig={}", p("kube-controller-manager.kubeconfig")),
        format!(
            "--authentication-kubeconfig={}",
            p("kube-controller-manager.kubeconfig")
        ),
        format!(
            "--authorization-kubeconfig={}",
            p("kube-controller-manager.kubeconfig")
        ),
        "--bind-address=127.0.0.1".into(),
        "--leader-elect=true".into(),
        "--use-service-account-credentials".into(),
        "--allocate-node-cidrs=true".into(),
        format!("--cluster-cidr={CLUSTER_CIDR}"),
        "--node-cidr-mask-size=24".into(),
        format!("--service-cluster-ip-range={SERVICE_RANGE}"),
        format!("--cluster-signing-cert-file={}", p("ca.pem")),
        format!("--cluster-signing-key-file={}", p("ca-key.pem")),
        format!("--root-ca-file={}", p("ca.pem")),
        format!("--service-account-private-key-file={}", p("sa.key")),
        format!("--tls-cert-file={}", p("kube-controller-manager.pem")),
        format!(
            "--tls-private-key-file={}",
            p("kube-controller-manager-key.pem")
        ),
    ];
    lab.spawn(
        &format!("controller-manager-{m}"),
        m,
        env!("CARGO_BIN_EXE_ferrokube"),
        cm,
    );
    let sched = vec![
        "scheduler".to_string(),
        format!("--kubeconfig={}", p("kube-scheduler.kubeconfig")),
        format!(
            "--authentication-kubeconfig={}",
            p("kube-scheduler.kubeconfig")
        ),
        format!(
            "--authorization-kubeconfig={}",
            p("kube-scheduler.kubeconfig")
        ),
        "--bind-address=127.0.0.1".into(),
        "--leader-elect=true".into(),
        format!("--tls-cert-file={}", p("kube-scheduler.pem")),
        format!("--tls-private-key-file={}", p("kube-scheduler-key.pem")),
    ];
    lab.spawn(
        &format!("scheduler-{m}"),
        m,
        env!("CARGO_BIN_EXE_ferrokube"),
        sched,
    );
}

fn lease_holder(lab: &Lab, name: &str) -> String {
    lab.get(
        &["lease", name, "-n", "kube-system"],
        "{.spec.holderIdentity}",
    )
}

fn start_agent(lab: &mut Lab, w: &str) {
    let pki = lab.pki();
    let data = lab.dir.path().join(w);
    let images = data.join("agent/images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(
        images.join("busybox.tar"),
        busybox_archive(&lab.dir.path().join("busybox-rootfs")),
    )
    .unwrap();
    let servers: Vec<String> = MASTERS
        .iter()
        .map(|m| format!("https://{}:6443", ip(m)))
        .collect();
    let args = vec![
        "agent".to_string(),
        format!("--server={}", servers.join(",")),
        format!("--lb-address={LB}"),
        format!(
            "--bootstrap-kubeconfig={}",
            pki.join(format!("kubelet-bootstrap-{w}.kubeconfig"))
                .display()
        ),
        format!("--data-dir={}", data.display()),
        format!("--node-ip={}", ip(w)),
        format!("--node-name={w}"),
        format!("--cluster-cidr={CLUSTER_CIDR}"),
        format!("--cluster-dns={DNS_IP}"),
        "--proxy-mode=ipvs".into(),
    ];
    lab.spawn(w, w, env!("CARGO_BIN_EXE_ferrokube"), args);
}

fn ready(lab: &Lab, node: &str) -> String {
    lab.get(
        &["node", node],
        r#"{.status.conditions[?(@.type=="Ready")].status}"#,
    )
}

/// An httpd pod pinned to `node`.
fn web_pod(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default, labels: {{app: web}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: ferrokube.local/busybox:test
    imagePullPolicy: Never
    command: [sh, -c, 'mkdir -p /www && echo hello from {name} > /www/index.html && exec httpd -f -p 8080 -h /www']
"
    )
}

/// The seeds' cluster-level objects: bootstrap tokens and bindings (as the worker
/// guide creates them; the agent's kube-proxy runs with the node's credentials, so
/// nodes are also bound to system:node-proxier), and the cluster DNS Service in front
/// of the masters' `ferrokube dns`.
fn cluster_objects(lab: &Lab) {
    lab.ok(&[
        "apply",
        "-f",
        lab.pki()
            .join("bootstrap-token-secrets.yaml")
            .to_str()
            .unwrap(),
    ]);
    for (name, role, group) in [
        (
            "kubelet-bootstrap",
            "system:node-bootstrapper",
            "system:bootstrappers",
        ),
        (
            "auto-approve-csrs-for-group",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            "system:bootstrappers",
        ),
        (
            "node-client-cert-renewal",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            "system:nodes",
        ),
        ("node-proxier", "system:node-proxier", "system:nodes"),
    ] {
        lab.ok(&[
            "create",
            "clusterrolebinding",
            name,
            &format!("--clusterrole={role}"),
            &format!("--group={group}"),
        ]);
    }
    // The API server's kubelet client (user `kubernetes`) may use the kubelet API.
    lab.ok(&[
        "create",
        "clusterrolebinding",
        "kube-apiserver:kubelet-apis",
        "--clusterrole=system:kubelet-api-admin",
        "--user=kubernetes",
    ]);
    lab.apply(&format!(
        "apiVersion: v1
kind: Service
metadata: {{name: kube-dns, namespace: kube-system}}
spec:
  clusterIP: {DNS_IP}
  ports:
  - {{name: dns, port: 53, protocol: UDP}}
  - {{name: dns-tcp, port: 53, protocol: TCP}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-masters
  namespace: kube-system
  labels: {{kubernetes.io/service-name: kube-dns}}
addressType: IPv4
endpoints:
- {{addresses: [\"{}\"], conditions: {{ready: true}}}}
- {{addresses: [\"{}\"], conditions: {{ready: true}}}}
ports:
- {{name: dns, port: 53, protocol: UDP}}
- {{name: dns-tcp, port: 53, protocol: TCP}}
",
        ip("m1"),
        ip("m2")
    ));
}

#[test]
fn the_seed_ha_topology_serves_and_fails_over() {
    for program in [
        "containerd",
        "runc",
        "containerd-shim-runc-v2",
        "nsenter",
        "etcdctl",
        "curl",
    ] {
        assert!(in_path(program), "{program} is missing: {INSTALL_HINT}");
    }
    let mut lab = Lab {
        prefix: format!("fkha{}-", std::process::id()),
        namespaces: Vec::new(),
        procs: BTreeMap::new(),
        dir: tempfile::tempdir().unwrap(),
    };
    network(&mut lab);

    // The PKI, as the seeds make it (every host a node; workers reach the API through
    // their kube-nginx, the masters' components their local API server).
    let mut pki = Command::new(env!("CARGO_BIN_EXE_ferrokube"));
    pki.args(["pki", "cluster", "--ecdsa", "--dir"])
        .arg(lab.pki())
        .args(["--service-cidr", SERVICE_RANGE])
        .args(["--apiserver-url", "https://127.0.0.1:6443"]);
    for (h, a) in HOSTS {
        pki.args(["--node", &format!("{h}={a}")]);
    }
    let o = pki.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    start_etcd(&mut lab);
    for m in MASTERS {
        start_apiserver(&mut lab, m);
    }
    lab.wait("both API servers ready", 60, || {
        MASTERS.iter().all(|m| apiserver_ready(&lab, m))
    });
    cluster_objects(&lab);

    // m1's control loops first, so they lead; then m2's.
    start_control_loops(&mut lab, "m1");
    lab.wait("m1's scheduler and controller-manager leading", 60, || {
        !lease_holder(&lab, "kube-scheduler").is_empty()
            && !lease_holder(&lab, "kube-controller-manager").is_empty()
    });
    let leaders = (
        lease_holder(&lab, "kube-scheduler"),
        lease_holder(&lab, "kube-controller-manager"),
    );
    start_control_loops(&mut lab, "m2");
    for m in MASTERS {
        let pki = lab.pki();
        lab.spawn(
            &format!("dns-{m}"),
            m,
            env!("CARGO_BIN_EXE_ferrokube"),
            vec![
                "dns".into(),
                format!(
                    "--kubeconfig={}",
                    pki.join("kube-proxy.kubeconfig").display()
                ),
                format!("--listen={}:53", ip(m)),
                // Nothing outside the cluster domain is asked here; keep forwarding local.
                format!("--upstream={}:5353", ip(m)),
                "--health-bind-address=".into(),
            ],
        );
    }

    // componentstatuses: m1's scheduler and controller-manager, every etcd member.
    let mut cs = String::new();
    lab.wait("componentstatuses healthy", 60, || {
        let o = lab.kubectl_with("m1", "pki/admin.kubeconfig", &["get", "componentstatuses"]);
        cs = String::from_utf8_lossy(&o.stdout).into_owned();
        o.status.success()
            && cs.lines().skip(1).count() == 5
            && cs
                .lines()
                .skip(1)
                .all(|l| l.split_whitespace().nth(1) == Some("Healthy"))
    });

    // The `kubernetes` Service: both API servers.
    let slice_ips = |lab: &Lab| {
        lab.get(
            &["endpointslice", "kubernetes", "-n", "default"],
            "{.endpoints[*].addresses[0]}",
        )
    };
    assert_eq!(
        lab.get(&["service", "kubernetes"], "{.spec.clusterIP}"),
        KUBERNETES_IP
    );
    lab.wait("both API servers behind the kubernetes Service", 30, || {
        slice_ips(&lab) == format!("{} {}", ip("m1"), ip("m2"))
    });

    // The workers.
    for w in WORKERS {
        start_agent(&mut lab, w);
    }
    lab.wait("both workers Ready", 120, || {
        WORKERS.iter().all(|w| ready(&lab, w) == "True")
    });
    // Their serving certificates, for exec (as the seeds approve them by hand).
    lab.wait("the workers' serving CSRs", 30, || {
        let pending = lab.get(
            &["csr"],
            r#"{range .items[?(@.spec.signerName=="kubernetes.io/kubelet-serving")]}{.metadata.name} {end}"#,
        );
        let names: Vec<&str> = pending.split_whitespace().collect();
        names.len() >= 2 && {
            let mut args = vec!["certificate", "approve"];
            args.extend(names);
            lab.kubectl(&args).status.success()
        }
    });
    // kube-proxy's rules for the kubernetes Service on a worker: both API servers.
    lab.wait(
        "the kubernetes Service's backends in w1's rules",
        30,
        || {
            let o = lab
                .cmd("w1", "nft")
                .args(["list", "table", "ip", "kube-proxy"])
                .output()
                .unwrap();
            let rules = String::from_utf8_lossy(&o.stdout);
            rules.contains(&format!("{} . 6443", ip("m1")))
                && rules.contains(&format!("{} . 6443", ip("m2")))
                && rules.contains(KUBERNETES_IP)
        },
    );

    services_and_dns(&lab);
    // The leaders first: killing m1's API server also cuts m1's control loops off.
    leader_failover(&mut lab, &leaders);
    apiserver_failover(&mut lab);
    etcd_member_failover(&mut lab);

    if let Some(secs) = std::env::var("FK_HA_KEEP")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        eprintln!(
            "the HA lab stays up for {secs} s; for example:\n  \
             nsenter --net=/run/netns/{}w1 kubectl --kubeconfig {}/admin-lb.kubeconfig get nodes\n  \
             ip netns exec {}w1 nft list table ip kube-proxy\n  \
             logs: {}/logs/",
            lab.prefix,
            lab.dir.path().display(),
            lab.prefix,
            lab.dir.path().display()
        );
        std::thread::sleep(Duration::from_secs(secs));
    }
}

/// Pods on both workers behind a NodePort Service and a headless one: names resolve
/// from a pod, the ClusterIP reaches the pods, the NodePort answers on the other node.
fn services_and_dns(lab: &Lab) {
    lab.apply(&format!(
        "{}---\n{}",
        web_pod("web1", "w1"),
        web_pod("web2", "w2")
    ));
    lab.apply(
        "apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless, namespace: default}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 8080}]
",
    );
    lab.wait("web1 and web2 running", 90, || {
        lab.get(&["pods", "web1", "web2"], "{.items[*].status.phase}") == "Running Running"
    });
    let pod_ip = |p: &str| lab.get(&["pod", p], "{.status.podIP}");
    let (ip1, ip2) = (pod_ip("web1"), pod_ip("web2"));
    let cluster_ip = lab.get(&["service", "web"], "{.spec.clusterIP}");
    let node_port = lab.get(&["service", "web"], "{.spec.ports[0].nodePort}");
    let mut seen = String::new();
    lab.wait("kubernetes.default.svc.cluster.local from web2", 30, || {
        seen = lab.exec("web2", "nslookup kubernetes.default.svc.cluster.local");
        seen.contains(KUBERNETES_IP)
    });
    lab.wait("web's name from web2", 30, || {
        seen = lab.exec("web2", "nslookup web.default.svc.cluster.local");
        seen.contains(&cluster_ip)
    });
    lab.wait("the headless Service's pod IPs", 30, || {
        seen = lab.exec("web2", "nslookup web-headless.default.svc.cluster.local");
        seen.contains(&ip1) && seen.contains(&ip2)
    });
    // Both pods through the ClusterIP (random choice: ask until both answered).
    let mut answered = (false, false);
    lab.wait("both pods through the ClusterIP from web2", 60, || {
        seen = lab.exec(
            "web2",
            &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {cluster_ip} 80"),
        );
        answered.0 |= seen.contains("hello from web1");
        answered.1 |= seen.contains("hello from web2");
        answered.0 && answered.1
    });
    // The NodePort of w1, from w2's host.
    lab.wait("the NodePort on w1 from w2", 30, || {
        let o = lab
            .cmd("w2", "curl")
            .args(["-sS", "--max-time", "5"])
            .arg(format!("http://{}:{node_port}/", ip("w1")))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).contains("hello from web")
    });
}

/// SIGKILL of m1's API server: kubectl through w1's load balancer keeps working (at
/// most one failed request), the workers keep renewing their node leases, and the
/// `kubernetes` Service drops m1 once its endpoint lease runs out.
fn apiserver_failover(lab: &mut Lab) {
    // An admin kubeconfig that goes through w1's load balancer.
    let admin = std::fs::read_to_string(lab.pki().join("admin.kubeconfig")).unwrap();
    let through_lb = admin.replace("https://127.0.0.1:6443", &format!("https://{LB}"));
    assert_ne!(admin, through_lb, "{admin}");
    std::fs::write(lab.dir.path().join("admin-lb.kubeconfig"), through_lb).unwrap();
    let via_lb = |lab: &Lab| {
        lab.kubectl_with("w1", "admin-lb.kubeconfig", &["get", "nodes", "-o", "name"])
            .status
            .success()
    };
    assert!(via_lb(lab), "kubectl through w1's load balancer");

    let killed = Instant::now();
    let renewed =
        |lab: &Lab, w: &str| lab.get(&["lease", w, "-n", "kube-node-lease"], "{.spec.renewTime}");
    let before: Vec<String> = WORKERS.iter().map(|w| renewed(lab, w)).collect();
    lab.stop("apiserver-m1", "KILL");
    let mut failures = 0;
    for _ in 0..20 {
        if !via_lb(lab) {
            failures += 1;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        failures <= 1,
        "{failures} of 20 requests through the load balancer failed\n{}",
        lab.log("w1")
    );
    lab.wait(
        "the workers renewing their node leases without m1",
        40,
        || {
            WORKERS
                .iter()
                .zip(&before)
                .all(|(w, b)| renewed(lab, w) != *b && ready(lab, w) == "True")
        },
    );
    let slice_ips = |lab: &Lab| {
        lab.get(
            &["endpointslice", "kubernetes", "-n", "default"],
            "{.endpoints[*].addresses[0]}",
        )
    };
    lab.wait("m1 dropped from the kubernetes Service", 40, || {
        slice_ips(lab) == ip("m2")
    });
    eprintln!(
        "m1 dropped from the kubernetes Service after {:?}",
        killed.elapsed()
    );
    lab.start("apiserver-m1");
    lab.wait("m1's API server back", 60, || apiserver_ready(lab, "m1"));
    lab.wait("m1 back behind the kubernetes Service", 30, || {
        slice_ips(lab) == format!("{} {}", ip("m1"), ip("m2"))
    });
}

/// SIGKILL of the leading scheduler and controller-manager (m1's): m2's take the
/// Leases within 20 s, and the control loops still work (a new pod is scheduled).
fn leader_failover(lab: &mut Lab, leaders: &(String, String)) {
    assert_eq!(lease_holder(lab, "kube-scheduler"), leaders.0);
    assert_eq!(lease_holder(lab, "kube-controller-manager"), leaders.1);
    let killed = Instant::now();
    lab.stop("scheduler-m1", "KILL");
    lab.stop("controller-manager-m1", "KILL");
    lab.wait("m2's scheduler and controller-manager leading", 25, || {
        let (s, c) = (
            lease_holder(lab, "kube-scheduler"),
            lease_holder(lab, "kube-controller-manager"),
        );
        !s.is_empty() && s != leaders.0 && !c.is_empty() && c != leaders.1
    });
    let took = killed.elapsed();
    assert!(took <= Duration::from_secs(20), "takeover took {took:?}");
    eprintln!("leases taken over after {took:?}");
    lab.apply(&web_pod("web3", "w1"));
    lab.wait("web3 scheduled and running after the takeover", 60, || {
        lab.get(&["pod", "web3"], "{.status.phase}") == "Running"
    });
}

/// One etcd member stopped: writes go on, none is lost; started again, it catches up.
fn etcd_member_failover(lab: &mut Lab) {
    lab.stop("etcd-e3", "TERM");
    for i in 0..20 {
        lab.ok(&[
            "create",
            "configmap",
            &format!("ha-{i}"),
            "--from-literal=i={i}",
        ]);
    }
    let names = lab.get(
        &["configmaps", "-l", "!nothing"],
        "{.items[*].metadata.name}",
    );
    for i in 0..20 {
        assert!(
            names.split_whitespace().any(|n| n == format!("ha-{i}")),
            "ha-{i} lost: {names}"
        );
    }
    lab.start("etcd-e3");
    // e3's own copy (a serializable read answers from the member's local data).
    lab.wait("e3 caught up", 60, || {
        let o = lab.etcdctl(
            "e3",
            ip("e3"),
            &[
                "get",
                "--consistency=s",
                "--keys-only",
                "--prefix",
                "/registry/configmaps/",
            ],
        );
        String::from_utf8_lossy(&o.stdout).contains("ha-19")
    });
    let o = lab.etcdctl(
        "m1",
        ip("m1"),
        &["endpoint", "status", "--cluster", "-w", "json"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
