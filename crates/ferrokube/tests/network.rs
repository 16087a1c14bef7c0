#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The pod network on the real kernel: two "hosts" (network namespaces joined by a veth
//! pair on 198.18.0.0/24), each with a bridge `cni0` and one "pod" (a namespace of its own
//! behind a veth on the bridge) in its podCIDR (198.19.1.0/24, 198.19.2.0/24; cluster
//! CIDR 198.19.0.0/16). `ferrokube network apply` runs inside each host namespace
//! (`ip netns exec`), exactly the code path of the daemon minus the Node watch. Then:
//! pod-to-pod across hosts is routed with the pods' own addresses, pod-to-outside is
//! masqueraded, an iptables FORWARD policy DROP (as Docker sets) does not black-hole pods,
//! stale routes of ours go and others' routes stay.
//!
//! Needs root (network namespaces); skipped otherwise. Every namespace is deleted on drop,
//! which takes its links, routes and nftables tables with it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const CLUSTER_CIDR: &str = "198.19.0.0/16";

/// Deletes the namespaces (and kills the helper processes) it holds, even on failure.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
}

impl Lab {
    fn ns(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    fn add_ns(&mut self, short: &str) -> String {
        let name = self.ns(short);
        sh(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        in_ns(&name, &["ip", "link", "set", "lo", "up"]);
        name
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn sh(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ns_args<'a>(ns: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    v
}

fn in_ns(ns: &str, args: &[&str]) -> String {
    sh(&ns_args(ns, args))
}

fn can_run() -> bool {
    let root = run(&["id", "-u"]).stdout == b"0\n";
    let tools = ["ip", "nft", "busybox", "python3"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !root || !tools {
        eprintln!("skipping: needs root and ip, nft, busybox, python3");
    }
    root && tools
}

/// A host namespace with eth0 (added by the caller), bridge cni0 holding the first
/// address of its podCIDR, and a pod namespace on the bridge with the second address.
fn add_pod(lab: &mut Lab, host: &str, pod_short: &str, subnet: u8) -> String {
    let pod = lab.add_ns(pod_short);
    let gw = format!("198.19.{subnet}.1");
    in_ns(host, &["ip", "link", "add", "cni0", "type", "bridge"]);
    in_ns(
        host,
        &["ip", "addr", "add", &format!("{gw}/24"), "dev", "cni0"],
    );
    in_ns(host, &["ip", "link", "set", "cni0", "up"]);
    in_ns(
        host,
        &[
            "ip", "link", "add", "vethpod", "type", "veth", "peer", "name", "eth0", "netns", &pod,
        ],
    );
    in_ns(
        host,
        &["ip", "link", "set", "vethpod", "master", "cni0", "up"],
    );
    in_ns(
        &pod,
        &[
            "ip",
            "addr",
            "add",
            &format!("198.19.{subnet}.2/24"),
            "dev",
            "eth0",
        ],
    );
    in_ns(&pod, &["ip", "link", "set", "eth0", "up"]);
    in_ns(&pod, &["ip", "route", "add", "default", "via", &gw]);
    pod
}

/// `ferrokube network apply` inside `host` as node `node`.
fn apply(host: &str, node: &str, dir: &Path, nodes_file: &Path) -> String {
    let conf = dir.join(node).join("net.d");
    let data = dir.join(node).join("data");
    in_ns(
        host,
        &[
            env!("CARGO_BIN_EXE_ferrokube"),
            "network",
            "apply",
            "--node-name",
            node,
            "--cluster-cidr",
            CLUSTER_CIDR,
            "--cni-conf-dir",
            conf.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--nodes-file",
            nodes_file.to_str().unwrap(),
        ],
    )
}

/// Starts a one-connection TCP server in `ns` on `addr:port` that prints the peer's
/// address; returns once it listens.
fn peer_printer(lab: &mut Lab, ns: &str, addr: &str, port: u16) -> usize {
    let script = format!(
        "import socket,sys\n\
         s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{addr}', {port})); s.listen(1); s.settimeout(15)\n\
         print('ready', flush=True)\n\
         c,a=s.accept(); print(a[0], flush=True); c.close()\n"
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    reader.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    child.stdout = Some(reader.into_inner());
    lab.children.push(child);
    lab.children.len() - 1
}

fn peer_seen(lab: &mut Lab, idx: usize) -> String {
    let mut out = String::new();
    let stdout = lab.children[idx].stdout.take().unwrap();
    BufReader::new(stdout).read_line(&mut out).unwrap();
    out.trim().to_string()
}

fn connect(pod: &str, addr: &str, port: u16) {
    in_ns(
        pod,
        &[
            "sh",
            "-c",
            &format!("echo hi | busybox nc -w 3 {addr} {port}"),
        ],
    );
}

#[test]
fn host_gw_routes_forwarding_and_masquerade_between_two_hosts() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut lab = Lab {
        prefix: format!("fkcni{}", std::process::id()),
        namespaces: Vec::new(),
        children: Vec::new(),
    };
    let h1 = lab.add_ns("h1");
    let h2 = lab.add_ns("h2");
    in_ns(
        &h1,
        &[
            "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &h2,
        ],
    );
    for (ns, ip) in [(&h1, "198.18.0.1/24"), (&h2, "198.18.0.2/24")] {
        in_ns(ns, &["ip", "addr", "add", ip, "dev", "eth0"]);
        in_ns(ns, &["ip", "link", "set", "eth0", "up"]);
    }
    let p1 = add_pod(&mut lab, &h1, "p1", 1);
    let p2 = add_pod(&mut lab, &h2, "p2", 2);

    // Leftovers: a stale route of ours (a deleted node) and someone else's route.
    in_ns(
        &h1,
        &[
            "ip",
            "route",
            "add",
            "198.19.9.0/24",
            "via",
            "198.18.0.2",
            "proto",
            "153",
        ],
    );
    in_ns(
        &h1,
        &[
            "ip",
            "route",
            "add",
            "198.19.8.0/24",
            "via",
            "198.18.0.2",
            "proto",
            "static",
        ],
    );
    // Docker's FORWARD policy, where iptables is installed.
    let iptables = run(&ns_args(&h1, &["iptables", "-P", "FORWARD", "DROP"]))
        .status
        .success();

    let nodes = serde_json::json!({
        "apiVersion": "v1", "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
             "spec": {"podCIDR": "198.19.1.0/24", "podCIDRs": ["198.19.1.0/24"]},
             "status": {"addresses": [{"type": "InternalIP", "address": "198.18.0.1"}]}},
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"},
             "spec": {"podCIDR": "198.19.2.0/24", "podCIDRs": ["198.19.2.0/24"]},
             "status": {"addresses": [{"type": "InternalIP", "address": "198.18.0.2"}]}},
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "far"},
             "spec": {"podCIDR": "198.19.3.0/24", "podCIDRs": ["198.19.3.0/24"]},
             "status": {"addresses": [{"type": "InternalIP", "address": "198.18.7.3"}]}}
        ]
    });
    let nodes_file = dir.path().join("nodes.json");
    std::fs::write(&nodes_file, nodes.to_string()).unwrap();

    let out = apply(&h1, "n1", dir.path(), &nodes_file);
    assert!(
        out.contains("conflist written; routes: 1 replaced, 1 deleted, 1 nodes unreachable"),
        "{out}"
    );
    let out = apply(&h2, "n2", dir.path(), &nodes_file);
    assert!(out.contains("routes: 1 replaced, 0 deleted"), "{out}");

    // Kernel state in h1.
    let ours = in_ns(&h1, &["ip", "route", "show", "proto", "153"]);
    assert!(ours.contains("198.19.2.0/24 via 198.18.0.2"), "{ours}");
    assert!(!ours.contains("198.19.9.0/24"), "{ours}");
    assert!(!ours.contains("198.19.3.0/24"), "{ours}");
    let all = in_ns(&h1, &["ip", "route", "show"]);
    assert!(
        all.contains("198.19.8.0/24 via 198.18.0.2 dev eth0 proto static"),
        "{all}"
    );
    let fwd = in_ns(&h1, &["cat", "/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(fwd.trim(), "1");
    let table = in_ns(&h1, &["nft", "list", "table", "ip", "ferrokube-cni"]);
    assert!(table.contains("masquerade fully-random"), "{table}");
    if iptables {
        let rules = in_ns(&h1, &["iptables", "-S", "FORWARD"]);
        assert!(rules.contains("-s 198.19.0.0/16"), "{rules}");
    }
    let conflist =
        std::fs::read_to_string(dir.path().join("n1/net.d/10-ferrokube.conflist")).unwrap();
    assert!(
        conflist.contains("\"subnet\": \"198.19.1.0/24\""),
        "{conflist}"
    );

    // A second pass changes nothing.
    let out = apply(&h1, "n1", dir.path(), &nodes_file);
    assert!(
        out.contains("conflist unchanged; routes: 0 replaced, 0 deleted"),
        "{out}"
    );
    if iptables {
        let rules = in_ns(&h1, &["iptables", "-S", "FORWARD"]);
        assert_eq!(rules.matches("-s 198.19.0.0/16").count(), 1, "{rules}");
    }

    // Pod to pod across hosts, with the pods' own addresses.
    in_ns(
        &p1,
        &["busybox", "ping", "-c", "1", "-W", "2", "198.19.2.2"],
    );
    let server = peer_printer(&mut lab, &p2, "198.19.2.2", 8080);
    connect(&p1, "198.19.2.2", 8080);
    assert_eq!(peer_seen(&mut lab, server), "198.19.1.2");

    // Pod to outside the cluster CIDR (the other host's own address): masqueraded.
    let server = peer_printer(&mut lab, &h2, "198.18.0.2", 8081);
    connect(&p1, "198.18.0.2", 8081);
    assert_eq!(peer_seen(&mut lab, server), "198.18.0.1");

    // n2 is deleted: its route goes.
    let only_n1 = serde_json::json!({"items": [nodes["items"][0].clone()]});
    std::fs::write(&nodes_file, only_n1.to_string()).unwrap();
    let out = apply(&h1, "n1", dir.path(), &nodes_file);
    assert!(out.contains("routes: 0 replaced, 1 deleted"), "{out}");
    let ours = in_ns(&h1, &["ip", "route", "show", "proto", "153"]);
    assert!(ours.trim().is_empty(), "{ours}");
}

#[test]
fn apply_refuses_a_node_without_pod_cidr() {
    let dir = tempfile::tempdir().unwrap();
    let nodes_file = dir.path().join("nodes.json");
    std::fs::write(
        &nodes_file,
        r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"}}"#,
    )
    .unwrap();
    // Nothing is touched before the podCIDR check, so this runs in the test's namespace.
    let out = run(&[
        env!("CARGO_BIN_EXE_ferrokube"),
        "network",
        "apply",
        "--node-name",
        "n1",
        "--cluster-cidr",
        CLUSTER_CIDR,
        "--cni-conf-dir",
        dir.path().join("net.d").to_str().unwrap(),
        "--nodes-file",
        nodes_file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no spec.podCIDRs"), "{err}");
    assert!(!dir.path().join("net.d").exists());
}

/// Polls `f` every 200ms for up to `secs` seconds.
fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The daemon against a real API server (`ferrokube server`, whose controller-manager
/// allocates podCIDRs), both inside one host namespace: it waits for its podCIDR, writes
/// the conflist, routes to the other node, and removes the route when that Node goes.
#[test]
fn daemon_follows_nodes_from_the_api_server() {
    if !can_run()
        || Command::new("kubectl")
            .arg("version")
            .arg("--client")
            .output()
            .is_err()
    {
        eprintln!("skipping: needs kubectl");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut lab = Lab {
        prefix: format!("fkcnid{}", std::process::id()),
        namespaces: Vec::new(),
        children: Vec::new(),
    };
    let h = lab.add_ns("h");
    // The host's NIC: one end of a veth pair whose other end stays in the namespace too
    // (no dummy driver needed); 198.18.0.0/24 is on-link, so n2 (198.18.0.2) is routable.
    in_ns(
        &h,
        &[
            "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
        ],
    );
    in_ns(&h, &["ip", "addr", "add", "198.18.0.1/24", "dev", "eth0"]);
    in_ns(&h, &["ip", "link", "set", "eth0p", "up"]);
    in_ns(&h, &["ip", "link", "set", "eth0", "up"]);

    let data = dir.path().join("server");
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &h,
            env!("CARGO_BIN_EXE_ferrokube"),
            "server",
        ])
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "--secure-port",
            "6443",
        ])
        .args([
            "--cluster-cidr",
            CLUSTER_CIDR,
            "--disable-scheduler",
            "--disable-agent",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap());
    lab.children.push(server);
    let mut kubeconfig = None;
    let mut line = String::new();
    while kubeconfig.is_none() {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "server exited early");
        kubeconfig = line
            .trim()
            .strip_prefix("ferrokube server: export KUBECONFIG=")
            .map(str::to_string);
    }
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut sink);
    });
    let kubeconfig = kubeconfig.unwrap();
    let kubectl = |args: &[&str]| {
        let mut v = vec!["kubectl", "--kubeconfig", kubeconfig.as_str()];
        v.extend_from_slice(args);
        in_ns(&h, &v)
    };

    let conf_dir = dir.path().join("net.d");
    let daemon = Command::new("ip")
        .args([
            "netns",
            "exec",
            &h,
            env!("CARGO_BIN_EXE_ferrokube"),
            "network",
        ])
        .args(["--kubeconfig", &kubeconfig, "--node-name", "n1"])
        .args(["--cluster-cidr", CLUSTER_CIDR, "--resync-period", "2"])
        .args(["--cni-conf-dir", conf_dir.to_str().unwrap()])
        .args(["--data-dir", dir.path().join("cni").to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    lab.children.push(daemon);

    for (name, ip) in [("n1", "198.18.0.1"), ("n2", "198.18.0.2")] {
        let node = format!(r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{name}"}}}}"#);
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, node).unwrap();
        kubectl(&["create", "-f", file.to_str().unwrap()]);
        let status =
            format!(r#"{{"status":{{"addresses":[{{"type":"InternalIP","address":"{ip}"}}]}}}}"#);
        kubectl(&[
            "patch",
            "node",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status,
        ]);
    }
    let pod_cidr = |name: &str| kubectl(&["get", "node", name, "-o", "jsonpath={.spec.podCIDR}"]);
    wait_for("podCIDRs allocated", 30, || {
        !pod_cidr("n1").is_empty() && !pod_cidr("n2").is_empty()
    });
    let (c1, c2) = (pod_cidr("n1"), pod_cidr("n2"));
    let want = format!("{c2} via 198.18.0.2");
    wait_for("the route to n2's pods", 30, || {
        in_ns(&h, &["ip", "route", "show", "proto", "153"]).contains(&want)
    });
    let conflist = std::fs::read_to_string(conf_dir.join("10-ferrokube.conflist")).unwrap();
    assert!(
        conflist.contains(&format!("\"subnet\": \"{c1}\"")),
        "{conflist}"
    );
    in_ns(&h, &["nft", "list", "table", "ip", "ferrokube-cni"]);

    // Someone removes our route: the resync puts it back.
    in_ns(&h, &["ip", "route", "del", &c2]);
    wait_for("the route restored", 30, || {
        in_ns(&h, &["ip", "route", "show", "proto", "153"]).contains(&want)
    });

    kubectl(&["delete", "node", "n2"]);
    wait_for("the route to n2's pods removed", 30, || {
        in_ns(&h, &["ip", "route", "show", "proto", "153"])
            .trim()
            .is_empty()
    });
}
