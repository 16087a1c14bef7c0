#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `ferrokube server` as a user runs it: one command brings up the control plane and
//! this machine as a node — containerd started under the data directory, the images in
//! `<data-dir>/agent/images/` imported, the pod network and the kubelet — and a
//! Deployment becomes real containers with pod IPs that serve HTTP. A restart of the
//! server adopts the running containers instead of recreating them.
//!
//! The pod network uses its own bridge and a cluster CIDR in 198.18.0.0/15 so it never
//! collides with a real cluster on the machine.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::containerd::{busybox_archive, in_path, unmount_under, INSTALL_HINT};
use common::Server;

const CLUSTER_CIDR: &str = "198.19.128.0/17";
/// ClusterIPs: in the test range too, so nothing could leave the machine even if the
/// proxy failed.
const SERVICE_RANGE: &str = "198.18.240.0/20";

/// The server with its node; on drop, every container it ran is removed and its
/// containerd stopped, so nothing outlives the test.
struct NodeServer {
    s: Server,
    bridge: String,
}

impl NodeServer {
    fn socket(&self) -> PathBuf {
        self.s.data_dir().join("agent/containerd/containerd.sock")
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        let socket = self.socket();
        if let Err(e) = ferrokube_containerd::daemon::remove_all_tasks(&socket) {
            eprintln!("removing the containers: {e}");
        }
        self.s.terminate(Duration::from_secs(20));
        // A server killed hard leaves its containerd behind.
        let config = self.s.data_dir().join("agent/containerd/config.toml");
        let _ = std::process::Command::new("pkill")
            .args(["-f", &config.display().to_string()])
            .status();
        unmount_under(self.s.data_dir());
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
        // kube-proxy keeps its rules over a restart (traffic keeps flowing): the test
        // removes them.
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "ip", "kube-proxy"])
            .status();
    }
}

fn start_node_server() -> NodeServer {
    for program in ["containerd", "ctr", "runc", "containerd-shim-runc-v2"] {
        assert!(in_path(program), "{program} is missing: {INSTALL_HINT}");
    }
    let bridge = format!("fks{}", std::process::id() % 100_000);
    let (kubelet_port, healthz_port) = (
        common::free_port().to_string(),
        common::free_port().to_string(),
    );
    let s = common::start_with(&[
        "--kubelet-port",
        &kubelet_port,
        "--kubelet-healthz-port",
        &healthz_port,
        "--cluster-cidr",
        CLUSTER_CIDR,
        "--cni-bridge",
        &bridge,
        "--node-name",
        "fk-node",
        "--node-ip",
        "127.0.0.1",
        "--service-cluster-ip-range",
        SERVICE_RANGE,
    ]);
    NodeServer { s, bridge }
}

fn wait(s: &Server, what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        if Instant::now() > deadline {
            let pods = s.kubectl(&["get", "pods", "-A", "-o", "wide"]);
            let log = s.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            panic!(
                "timed out waiting for {what}\n--- pods:\n{}\n--- server log (end, newest first):\n{}",
                String::from_utf8_lossy(&pods.stdout),
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn get(s: &Server, what: &[&str], path: &str) -> String {
    let p = format!("jsonpath={path}");
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend(["-o", &p]);
    let o = s.kubectl(&args);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The running pods of `app=web`: name → (containerID, restartCount, podIP).
fn web_pods(s: &Server) -> Vec<(String, String, String, String)> {
    get(
        s,
        &["pods", "-l", "app=web"],
        r#"{range .items[?(@.status.phase=="Running")]}{.metadata.name} {.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount} {.status.podIP}{"\n"}{end}"#,
    )
    .lines()
    .filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() == 4).then(|| (f[0].into(), f[1].into(), f[2].into(), f[3].into()))
    })
    .collect()
}

fn http_get(ip: &str, port: u16) -> String {
    try_http_get(ip, port).unwrap_or_else(|e| panic!("GET http://{ip}:{port}/: {e}"))
}

fn try_http_get(ip: &str, port: u16) -> std::io::Result<String> {
    let addr = format!("{ip}:{port}").parse().unwrap();
    let mut conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    conn.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(conn, "GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n")?;
    let mut body = String::new();
    let _ = conn.read_to_string(&mut body);
    Ok(body)
}

/// kube-proxy (nftables mode, in the server): a NodePort Service reaches the pods
/// through its ClusterIP from the host and from a pod, and through its NodePort on a
/// local address; deleting it makes the ClusterIP refuse.
fn services_reach_the_pods(s: &Server, client_pod: &str, bridge_ip: &str) {
    let out = s.kubectl(&[
        "expose",
        "deployment",
        "web",
        "--name",
        "web",
        "--port",
        "80",
        "--target-port",
        "8080",
        "--type",
        "NodePort",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cluster_ip = get(s, &["service", "web"], "{.spec.clusterIP}");
    assert!(cluster_ip.starts_with("198.18."), "ClusterIP {cluster_ip}");
    let node_port: u16 = get(s, &["service", "web"], "{.spec.ports[0].nodePort}")
        .parse()
        .unwrap();
    const PAGE: &str = "ferrokube busybox test image";
    wait(s, "the ClusterIP answering from the host", 20, || {
        try_http_get(&cluster_ip, 80).is_ok_and(|b| b.contains(PAGE))
    });
    for _ in 0..6 {
        assert!(http_get(&cluster_ip, 80).contains(PAGE));
    }
    assert!(
        http_get(bridge_ip, node_port).contains(PAGE),
        "NodePort {node_port} on {bridge_ip}"
    );
    // From a pod (sometimes to itself: hairpin), six times.
    let script = format!(
        "for i in 1 2 3 4 5 6; do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {cluster_ip} 80 | grep -c busybox || exit 1; done"
    );
    let out = s.kubectl(&["exec", client_pod, "--", "sh", "-c", &script]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).lines().count() == 6,
        "from a pod: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A Service without endpoints refuses at once (no timeout).
    let out = s.kubectl(&["create", "service", "clusterip", "empty", "--tcp=80:8080"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let empty_ip = get(s, &["service", "empty"], "{.spec.clusterIP}");
    wait(
        s,
        "a Service without endpoints refusing",
        20,
        || matches!(try_http_get(&empty_ip, 80), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
    );
    proxy_subresources(s, client_pod);
    // Deleted: its address leaves the kernel's maps.
    let out = s.kubectl(&["delete", "service", "web", "empty"]);
    assert!(out.status.success());
    wait(s, "the deleted Services' rules removed", 20, || {
        let out = std::process::Command::new("nft")
            .args(["list", "table", "ip", "kube-proxy"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        out.status.success() && !text.contains(&cluster_ip) && !text.contains(&empty_ip)
    });
}

/// `kubectl debug`: an ephemeral container added through `pods/ephemeralcontainers`,
/// started in the pod's sandbox in the target container's process namespace, reported in
/// `ephemeralContainerStatuses`, reachable by exec and logs; once added it can be
/// neither changed nor removed.
fn debug_container(s: &Server, web_pod: &str) {
    let out = s.kubectl(&[
        "debug",
        web_pod,
        "--image=ferrokube.local/busybox:test",
        "--image-pull-policy=Never",
        "-c",
        "dbg",
        "--target=httpd",
        "--",
        "sh",
        "-c",
        "echo debugging; sleep 600",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait(s, "the ephemeral container running", 30, || {
        get(
            s,
            &["pod", web_pod],
            "{.status.ephemeralContainerStatuses[0].name}/{.status.ephemeralContainerStatuses[0].state.running.startedAt}",
        )
        .len()
            > "dbg/".len()
    });
    // It sees the target's processes.
    let out = s.kubectl(&["exec", web_pod, "-c", "dbg", "--", "ps"]);
    let ps = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && ps.contains("httpd"),
        "ps: {ps} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logs = s.kubectl(&["logs", web_pod, "-c", "dbg"]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("debugging"));
    let raw = |patch: &str| {
        s.kubectl(&[
            "patch",
            "pod",
            web_pod,
            "--subresource=ephemeralcontainers",
            "--type=json",
            "-p",
            patch,
        ])
    };
    // Removing or changing it, and fields ephemeral containers may not have, are refused.
    let out = raw(r#"[{"op":"remove","path":"/spec/ephemeralContainers/0"}]"#);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("existing ephemeral containers \"dbg\" may not be removed"),
        "{err}"
    );
    let out =
        raw(r#"[{"op":"replace","path":"/spec/ephemeralContainers/0/image","value":"other"}]"#);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("may not be changed"), "{err}");
    let out = raw(
        r#"[{"op":"add","path":"/spec/ephemeralContainers/-","value":{"name":"bad","image":"x","ports":[{"containerPort":80}],"targetContainerName":"nope"}}]"#,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "spec.ephemeralContainers[1].ports: Forbidden: cannot be set for an Ephemeral Container",
        "spec.ephemeralContainers[1].targetContainerName: Not found: \"nope\"",
    ] {
        assert!(err.contains(want), "missing {want}: {err}");
    }
    // A pod is not created with one, and the main resource does not change them.
    let out = s.kubectl(&[
        "patch",
        "pod",
        web_pod,
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/ephemeralContainers"}]"#,
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("pod updates may not change fields"));
}

const RESIZABLE: &str = "apiVersion: v1
kind: Pod
metadata: {name: rs}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: ferrokube.local/busybox:test
    imagePullPolicy: Never
    command: [sleep, '100000']
    resources: {requests: {cpu: 100m, memory: 32Mi}, limits: {cpu: 200m, memory: 64Mi}}
  - name: b
    image: ferrokube.local/busybox:test
    imagePullPolicy: Never
    command: [sleep, '100000']
    resizePolicy: [{resourceName: memory, restartPolicy: RestartContainer}]
    resources: {limits: {cpu: 200m, memory: 64Mi}}
";

/// In-place resize (`pods/resize`): cpu changes reach the running container's cgroup
/// without a restart; a memory change under RestartContainer restarts it with the new
/// limit; upstream's refusals (QoS change, removed limits, memory decrease without a
/// restart policy, other resources).
fn resize_in_place(s: &Server, best_effort_pod: &str) {
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(RESIZABLE));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Limits without requests ask for the limits (upstream's pod defaulting).
    assert_eq!(
        get(
            s,
            &["pod", "rs"],
            "{.status.qosClass} {.spec.containers[1].resources.requests.memory}"
        ),
        "Burstable 64Mi"
    );
    wait(s, "the resizable pod running", 30, || {
        get(s, &["pod", "rs"], "{.status.phase}") == "Running"
    });
    let cat = |c: &str, file: &str| {
        let out = s.kubectl(&["exec", "rs", "-c", c, "--", "cat", file]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(cat("a", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), "20000");
    let resize =
        |patch: &str| s.kubectl(&["patch", "pod", "rs", "--subresource=resize", "-p", patch]);
    let out = resize(
        r#"{"spec":{"containers":[{"name":"a","resources":{"requests":{"cpu":"150m"},"limits":{"cpu":"300m"}}}]}}"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait(s, "the cpu resize applied", 20, || {
        get(
            s,
            &["pod", "rs"],
            "{.status.containerStatuses[0].resources.limits.cpu}",
        ) == "300m"
    });
    assert_eq!(cat("a", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), "30000");
    assert_eq!(
        get(
            s,
            &["pod", "rs"],
            "{.status.containerStatuses[0].restartCount}"
        ),
        "0"
    );
    let out = resize(
        r#"{"spec":{"containers":[{"name":"b","resources":{"requests":{"memory":"128Mi"},"limits":{"memory":"128Mi"}}}]}}"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait(s, "the memory resize restarting b", 30, || {
        get(
            s,
            &["pod", "rs"],
            "{.status.containerStatuses[1].restartCount} {.status.containerStatuses[1].resources.limits.memory} {.status.containerStatuses[1].state.running.startedAt}",
        )
        .starts_with("1 128Mi 2")
    });
    assert_eq!(
        cat("b", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
        "134217728"
    );
    for (patch, want) in [
        (
            r#"{"spec":{"containers":[{"name":"a","resources":{"limits":{"memory":"32Mi"}}}]}}"#,
            "spec.containers[0].resources.limits[memory]: Forbidden: memory limits cannot be decreased unless resizePolicy is RestartContainer",
        ),
        (
            r#"{"spec":{"containers":[{"name":"a","resources":{"limits":{"cpu":null}}}]}}"#,
            "spec.containers[0].resources.limits[cpu]: Forbidden: resource limits cannot be removed",
        ),
        (
            r#"{"spec":{"containers":[{"name":"a","resources":{"limits":{"ephemeral-storage":"1Gi"}}}]}}"#,
            "spec: Forbidden: only cpu and memory resources are mutable",
        ),
    ] {
        let out = resize(patch);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{patch}: {err}");
    }
    let out = s.kubectl(&[
        "patch",
        "pod",
        best_effort_pod,
        "--subresource=resize",
        "-p",
        r#"{"spec":{"containers":[{"name":"httpd","resources":{"requests":{"memory":"40Mi"}}}]}}"#,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec: Invalid value: \"BestEffort\": Pod QOS Class may not change as a result of resizing"),
        "{err}"
    );
    // More cpu than the node has: PodResizePending (Infeasible), nothing applied; asking
    // for what is applied again clears it.
    let out = resize(
        r#"{"spec":{"containers":[{"name":"a","resources":{"requests":{"cpu":"1000"},"limits":{"cpu":"2000"}}}]}}"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pending = r#"{.status.conditions[?(@.type=="PodResizePending")].reason}"#;
    wait(s, "PodResizePending Infeasible", 20, || {
        get(s, &["pod", "rs"], pending) == "Infeasible"
    });
    assert_eq!(
        get(
            s,
            &["pod", "rs"],
            "{.status.containerStatuses[0].resources.limits.cpu}"
        ),
        "300m"
    );
    let out = resize(
        r#"{"spec":{"containers":[{"name":"a","resources":{"requests":{"cpu":"150m"},"limits":{"cpu":"300m"}}}]}}"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait(s, "PodResizePending cleared", 20, || {
        get(s, &["pod", "rs"], pending).is_empty()
    });
    // The main resource still refuses resource changes.
    let out = s.kubectl(&[
        "patch",
        "pod",
        "rs",
        "-p",
        r#"{"spec":{"containers":[{"name":"a","resources":{"limits":{"cpu":"400m"}}}]}}"#,
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("pod updates may not change fields"));
    let out = s.kubectl(&["delete", "pod", "rs", "--wait=false"]);
    assert!(out.status.success());
}

/// `pods/proxy` and `services/proxy`: the API server passes HTTP through to a pod or to
/// one of a Service's endpoints (`web` on port 80 → 8080, `empty` without endpoints).
fn proxy_subresources(s: &Server, web_pod: &str) {
    const PAGE: &str = "ferrokube busybox test image";
    let raw = |path: &str| s.kubectl(&["get", "--raw", path]);
    let base = "/api/v1/namespaces/default";
    for path in [
        format!("{base}/pods/{web_pod}:8080/proxy/"),
        format!("{base}/pods/http:{web_pod}:8080/proxy/index.html"),
        format!("{base}/services/web:80/proxy/"),
        format!("{base}/services/http:web:/proxy/index.html?x=1"),
        // No trailing slash: redirected to `…/proxy/` (kubectl follows it).
        format!("{base}/services/web:80/proxy"),
    ] {
        let out = raw(&path);
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains(PAGE),
            "{path}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A missing file is the backend's own 404, not the API server's.
    let out = raw(&format!("{base}/pods/{web_pod}:8080/proxy/missing.html"));
    assert!(!out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("pods"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Errors as upstream's: nothing listening, an unknown Service port, no endpoints,
    // a missing pod, a malformed name.
    for (path, expect) in [
        (
            format!("{base}/pods/{web_pod}:81/proxy/"),
            "error trying to reach service: dial tcp",
        ),
        (
            format!("{base}/services/web:81/proxy/"),
            "no service port 81 found for service \"web\"",
        ),
        (
            format!("{base}/services/empty:80/proxy/"),
            "no endpoints available for service \"empty\"",
        ),
        (
            format!("{base}/pods/nope/proxy/"),
            "pods \"nope\" not found",
        ),
        (
            format!("{base}/pods/ftp:x:1/proxy/"),
            "invalid pod request \"ftp:x:1\"",
        ),
    ] {
        let out = raw(&path);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(expect),
            "{path}: {err}"
        );
    }
}

/// `kubectl logs`, `exec` (stdin, exit codes), `port-forward` and `nodes/proxy`: the API
/// server proxies to the kubelet, which hands streams to containerd.
fn streaming_through_the_api_server(s: &Server, web_pod: &str) {
    let run = s.kubectl(&[
        "run",
        "talker",
        "--image=ferrokube.local/busybox:test",
        "--image-pull-policy=Never",
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "echo one; echo two; sleep 3600",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    wait(s, "talker Running", 20, || {
        get(s, &["pod", "talker"], "{.status.phase}") == "Running"
    });
    let mut logs = String::new();
    wait(s, "talker's logs", 10, || {
        logs = String::from_utf8_lossy(&s.kubectl(&["logs", "talker"]).stdout).into_owned();
        logs == "one\ntwo\n"
    });
    assert_eq!(
        String::from_utf8_lossy(&s.kubectl(&["logs", "talker", "--tail=1"]).stdout),
        "two\n"
    );
    let stamped = String::from_utf8_lossy(&s.kubectl(&["logs", "talker", "--timestamps"]).stdout)
        .into_owned();
    assert!(stamped.lines().all(|l| l.contains("Z ")), "{stamped}");
    let prev = s.kubectl(&["logs", "talker", "--previous"]);
    assert!(String::from_utf8_lossy(&prev.stderr).contains("previous terminated container"));

    let echoed = s.kubectl_stdin(&["exec", "-i", "talker", "--", "cat"], Some("ping\n"));
    assert_eq!(String::from_utf8_lossy(&echoed.stdout), "ping\n");
    let listing = s.kubectl(&["exec", "talker", "--", "ls", "/"]);
    assert!(String::from_utf8_lossy(&listing.stdout)
        .lines()
        .any(|l| l == "www"));
    let failing = s.kubectl(&["exec", "talker", "--", "sh", "-c", "exit 3"]);
    assert_eq!(failing.status.code(), Some(3));
    // The ServiceAccount admission plugin's volume, as the kubelet mounts it: a bound
    // token, the cluster CA and the namespace.
    let sa = s.kubectl(&[
        "exec",
        "talker",
        "--",
        "sh",
        "-c",
        "cd /var/run/secrets/kubernetes.io/serviceaccount && cat namespace && echo && head -c 3 token && echo && grep -c CERTIFICATE ca.crt",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&sa.stdout),
        "default\neyJ\n2\n",
        "{}",
        String::from_utf8_lossy(&sa.stderr)
    );

    // port-forward: a local port to the web pod's 8080.
    let mut pf = std::process::Command::new(common::KUBECTL)
        .args(["port-forward", &format!("pod/{web_pod}"), ":8080"])
        .env("KUBECONFIG", &s.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(pf.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let port: u16 = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let page = http_get("127.0.0.1", port);
    let _ = pf.kill();
    let _ = pf.wait();
    assert!(page.contains("ferrokube busybox test image"), "{page}");

    assert_eq!(
        String::from_utf8_lossy(
            &s.kubectl(&["get", "--raw", "/api/v1/nodes/fk-node/proxy/healthz"])
                .stdout
        ),
        "ok"
    );
    usage_through_the_api_server(s, web_pod);
    let del = s.kubectl(&["delete", "pod", "talker", "--grace-period=1"]);
    assert!(del.status.success());
}

/// The kubelet's `/stats/summary`, `/metrics/resource`, `/metrics/cadvisor` and
/// `/metrics` through `nodes/proxy`, as metrics-server and Prometheus read them.
fn usage_through_the_api_server(s: &Server, web_pod: &str) {
    let raw = |path: &str| {
        let o = s.kubectl(&[
            "get",
            "--raw",
            &format!("/api/v1/nodes/fk-node/proxy{path}"),
        ]);
        assert!(
            o.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // `/configz` (the effective configuration) and `/logs/` (the node's /var/log).
    let configz: serde_json::Value = serde_json::from_str(&raw("/configz")).unwrap();
    assert!(
        configz["kubeletconfig"]["port"]
            .as_u64()
            .is_some_and(|p| p > 0),
        "{configz}"
    );
    assert_eq!(
        configz["kubeletconfig"]["cgroupDriver"], "cgroupfs",
        "{configz}"
    );
    assert!(configz["kubeletconfig"]["syncFrequency"].is_string());
    let listing = raw("/logs/");
    assert!(
        listing.starts_with("<!doctype html>") && listing.contains("<pre>"),
        "{listing}"
    );
    // kubectl follows the redirect of a directory asked for without its slash.
    assert_eq!(raw("/logs"), listing);
    let missing = s.kubectl(&[
        "get",
        "--raw",
        "/api/v1/nodes/fk-node/proxy/logs/../../etc/passwd",
    ]);
    assert!(!String::from_utf8_lossy(&missing.stdout).contains("root:"));
    let summary: serde_json::Value = serde_json::from_str(&raw("/stats/summary")).unwrap();
    assert_eq!(summary["node"]["nodeName"], "fk-node");
    assert!(
        summary["node"]["memory"]["workingSetBytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    let pod = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == web_pod)
        .unwrap_or_else(|| panic!("{web_pod} not in {summary}"));
    let c = &pod["containers"][0];
    assert_eq!(c["name"], "httpd", "{pod}");
    assert!(c["cpu"]["usageCoreNanoSeconds"].as_u64().is_some(), "{pod}");
    assert!(
        c["memory"]["workingSetBytes"].as_u64().unwrap() > 0,
        "{pod}"
    );
    // A second look has a rate from the first.
    let again: serde_json::Value = serde_json::from_str(&raw("/stats/summary")).unwrap();
    assert!(
        again["node"]["cpu"]["usageNanoCores"].as_u64().is_some(),
        "{}",
        again["node"]
    );

    let resource = raw("/metrics/resource");
    let line = format!("container_cpu_usage_seconds_total{{container=\"httpd\",namespace=\"default\",pod=\"{web_pod}\"}} ");
    assert!(resource.contains(&line), "{resource}");
    assert!(
        resource.contains("node_memory_working_set_bytes "),
        "{resource}"
    );
    assert!(resource.contains("resource_scrape_error 0"), "{resource}");
    let cadvisor = raw("/metrics/cadvisor");
    assert!(
        cadvisor.contains(&format!("pod=\"{web_pod}\""))
            && cadvisor.contains("container_memory_working_set_bytes{"),
        "{cadvisor}"
    );
    let own = raw("/metrics");
    assert!(
        own.contains("kubelet_node_name{node=\"fk-node\"} 1"),
        "{own}"
    );
    assert!(own.contains("kubelet_running_pods "), "{own}");
}

/// `kubectl top` through the server's metrics-server (behind the aggregator), which
/// scrapes the kubelet's `/metrics/resource`.
fn top_through_metrics_server(s: &Server, web_pod: &str) {
    let mut last = String::new();
    wait(s, "kubectl top node", 60, || {
        let o = s.kubectl(&["top", "node", "fk-node", "--no-headers"]);
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o.status.success()
    });
    // NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%
    let cols: Vec<&str> = last.split_whitespace().collect();
    assert_eq!(cols.first(), Some(&"fk-node"), "{last}");
    assert!(cols[1].ends_with('m') && cols[3].ends_with("Mi"), "{last}");
    wait(s, "kubectl top pod", 60, || {
        let o = s.kubectl(&["top", "pod", web_pod, "--containers", "--no-headers"]);
        last = String::from_utf8_lossy(&o.stdout).into_owned();
        o.status.success() && last.contains("httpd")
    });
    let raw = s.kubectl(&[
        "get",
        "--raw",
        &format!("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/{web_pod}"),
    ]);
    let pm: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(pm["kind"], "PodMetrics", "{pm}");
    assert_eq!(pm["metadata"]["labels"]["app"], "web", "{pm}");
    assert_eq!(pm["containers"][0]["name"], "httpd", "{pm}");
    assert!(
        pm["containers"][0]["usage"]["memory"]
            .as_str()
            .unwrap()
            .ends_with("Ki"),
        "{pm}"
    );

    // The HPA controller reads the same API: its metric becomes valid. (Removed again
    // before it could scale: the stabilization window is five minutes anyway.)
    let hpa = "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 3
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: memory, target: {type: AverageValue, averageValue: 1Gi}}
";
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(hpa));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = r#"{.status.conditions[?(@.type=="ScalingActive")].reason}/{.status.currentMetrics[0].resource.current.averageValue}"#;
    wait(s, "the HPA to read pod metrics", 60, || {
        let v = get(s, &["hpa", "web"], state);
        v.starts_with("ValidMetricFound/") && v.len() > "ValidMetricFound/".len()
    });
    let out = s.kubectl(&["delete", "hpa", "web"]);
    assert!(out.status.success());
}

fn write_images(dir: &Path) {
    let images = dir.join("agent/images");
    std::fs::create_dir_all(&images).unwrap();
    let archive = busybox_archive(&dir.join("busybox-rootfs"));
    std::fs::write(images.join("busybox.tar"), archive).unwrap();
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: httpd
        image: ferrokube.local/busybox:test
        imagePullPolicy: Never
        command: [httpd, -f, -p, '8080', -h, /www]
";

#[test]
fn server_runs_a_deployment_on_its_own_node_and_adopts_it_after_a_restart() {
    let mut node = start_node_server();
    // The images dir is read when the node starts: write it, then restart once so the
    // archive is imported (this also exercises a restart with no pods).
    write_images(node.s.data_dir());
    node.s.restart();
    let s = &node.s;
    wait(s, "node Ready", 30, || {
        get(
            s,
            &["node", "fk-node"],
            r#"{.status.conditions[?(@.type=="Ready")].status}"#,
        ) == "True"
    });
    let cidr = get(s, &["node", "fk-node"], "{.spec.podCIDR}");
    assert!(cidr.starts_with("198.19."), "podCIDR {cidr}");

    let created = Instant::now();
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(DEPLOYMENT));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait(s, "3 pods Running", 20, || web_pods(s).len() == 3);
    eprintln!("3 pods Running in {:?}", created.elapsed());
    let pods = web_pods(s);
    let prefix = cidr.rsplit_once('.').unwrap().0;
    for (name, _, _, ip) in &pods {
        assert!(ip.starts_with(prefix), "{name}'s IP {ip} outside {cidr}");
    }
    // The host reaches a pod over the bridge; busybox httpd answers.
    assert!(
        http_get(&pods[0].3, 8080).contains("ferrokube busybox test image"),
        "no page from {}",
        pods[0].3
    );

    streaming_through_the_api_server(s, &pods[0].0);
    debug_container(s, &pods[2].0);
    resize_in_place(s, &pods[2].0);
    top_through_metrics_server(s, &pods[0].0);
    services_reach_the_pods(s, &pods[1].0, &format!("{prefix}.1"));

    // A restart of the server keeps the containers: same IDs, no restarts.
    let before: Vec<_> = pods.clone();
    node.s.restart();
    let s = &node.s;
    wait(s, "pods reported after the restart", 20, || {
        web_pods(s).len() == 3
    });
    std::thread::sleep(Duration::from_secs(3));
    let mut after = web_pods(s);
    after.sort();
    let mut before = before;
    before.sort();
    assert_eq!(before, after, "containers were recreated by the restart");

    // Scale to 0: the containers go.
    let out = s.kubectl(&["scale", "deployment", "web", "--replicas=0"]);
    assert!(out.status.success());
    wait(s, "pods gone", 30, || {
        get(s, &["pods", "-l", "app=web"], "{.items[*].metadata.name}").is_empty()
    });
    // No container or sandbox is left in the node's containerd.
    let tasks = || {
        ferrokube_containerd::import::ctr(&node.socket(), &["tasks", "ls", "-q"], None)
            .unwrap_or_else(|e| format!("ctr: {e}"))
    };
    wait(s, "every task removed", 20, || tasks().trim().is_empty());
}
