#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `ferrokube kubelet` against a real API server and a real containerd: the node
//! registers with its own credentials (Node authorizer), heartbeats its Lease, and runs
//! pods — with a pod network from the bridge CNI plugin, env, downward API, configMap
//! volumes, restart policies with back-off, image pull errors and graceful deletion —
//! judged with kubectl.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::containerd::TestContainerd;
use common::{start, Server};

struct Kubelet {
    child: Child,
    log: PathBuf,
    runtime_log: PathBuf,
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Kubelet {
    /// The kubelet's log and the end of containerd's.
    fn log(&self) -> String {
        let runtime = std::fs::read_to_string(&self.runtime_log).unwrap_or_default();
        let tail: Vec<&str> = runtime.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "{}\n--- containerd log (end):\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            tail.join("\n")
        )
    }
}

/// The node credentials the server's PKI issued (`kubelet-<host>.kubeconfig`) and the
/// node name they are for.
fn node_credentials(s: &Server) -> (PathBuf, String) {
    for e in std::fs::read_dir(s.pki_dir()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(node) = name
            .strip_prefix("kubelet-")
            .and_then(|n| n.strip_suffix(".kubeconfig"))
        {
            if !node.starts_with("bootstrap") {
                return (s.pki_dir().join(&name), node.to_string());
            }
        }
    }
    panic!("no kubelet kubeconfig in {}", s.pki_dir().display());
}

/// A bridge network of the test's own (its own bridge name and a subnet in
/// 198.18.0.0/15), as a pod network would write it.
fn write_network(ctd: &TestContainerd, bridge: &str, subnet: &str) {
    std::fs::create_dir_all(&ctd.cni_conf_dir).unwrap();
    let conf = format!(
        r#"{{"cniVersion":"1.0.0","name":"fk-test","plugins":[{{"type":"bridge","bridge":"{bridge}","isGateway":true,"ipMasq":false,"hairpinMode":true,"ipam":{{"type":"host-local","ranges":[[{{"subnet":"{subnet}"}}]],"dataDir":"{}"}}}},{{"type":"portmap","capabilities":{{"portMappings":true}}}}]}}"#,
        ctd.dir.path().join("ipam").display()
    );
    std::fs::write(ctd.cni_conf_dir.join("10-test.conflist"), conf).unwrap();
}

/// Starts the kubelet; `extra` is added to its KubeletConfiguration.
fn start_kubelet(s: &Server, ctd: &TestContainerd, dir: &Path, extra: &str) -> (Kubelet, String) {
    let (kubeconfig, node) = node_credentials(s);
    let config = dir.join("kubelet-config.yaml");
    std::fs::write(
        &config,
        format!(
            "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\nfailSwapOn: false\nnodeStatusUpdateFrequency: 2s\nclusterDomain: cluster.local\nport: 0\n{}{extra}",
            if extra.contains("evictionHard:") { "" } else { "evictionHard: {memory.available: 1Mi}\n" }
        ),
    )
    .unwrap();
    let log = dir.join("kubelet.log");
    let child = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args([
            "kubelet",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--container-runtime-endpoint",
            &format!("unix://{}", ctd.socket.display()),
            "--root-dir",
            dir.join("root").to_str().unwrap(),
            "--pod-logs-dir",
            dir.join("logs").to_str().unwrap(),
            "--node-ip",
            "127.0.0.1",
            "--hostname-override",
            &node,
        ])
        .env("FERROKUBE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let runtime_log = ctd.dir.path().join("containerd.log");
    (
        Kubelet {
            child,
            log,
            runtime_log,
        },
        node,
    )
}

/// What each test here runs on: the API server, a containerd with the busybox image,
/// a bridge network of the test's own and a directory. Test `n` (0, 1, 2, …) gets
/// pod subnets in 198.18.(64 + 32n …).0/24, away from other tests' host networks
/// (server_node's 198.19.128.0/17).
struct Lab {
    // Dropped in order: the bridge after containerd, the server last.
    ctd: TestContainerd,
    _bridge: BridgeGuard,
    dir: tempfile::TempDir,
    server: Server,
    /// `198.18.x.`: the pods' addresses start so.
    subnet: String,
}

impl Lab {
    fn new(tag: &str, n: u32) -> Lab {
        let server = start();
        let ctd = TestContainerd::start();
        ctd.import_busybox();
        let octet = 64 + 32 * n + std::process::id() % 32;
        let bridge = format!("{tag}{}", std::process::id() % 100000);
        let guard = BridgeGuard(bridge.clone());
        write_network(&ctd, &bridge, &format!("198.18.{octet}.0/24"));
        Lab {
            ctd,
            _bridge: guard,
            dir: tempfile::tempdir().unwrap(),
            server,
            subnet: format!("198.18.{octet}."),
        }
    }
}

/// Deletes the test's bridge when the test ends (the CNI plugin leaves it behind).
struct BridgeGuard(String);

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

/// Waits, and on a timeout shows the kubelet's log and the pods.
fn wait(s: &Server, k: &Kubelet, what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        if std::time::Instant::now() > deadline {
            let pods = s.kubectl(&["get", "pods", "-o", "yaml"]);
            panic!(
                "timed out waiting for {what}\n--- kubelet log:\n{}\n--- pods:\n{}",
                k.log(),
                String::from_utf8_lossy(&pods.stdout)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

fn jsonpath(s: &Server, what: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let p = format!("jsonpath={path}");
    args.extend(["-o", &p]);
    s.ok(&args)
}

fn create(s: &Server, yaml: &str) {
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(yaml));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pod_yaml(name: &str, node: &str, policy: &str, image: &str, script: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {name}}}}}\nspec:\n  nodeName: {node}\n  restartPolicy: {policy}\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: c\n    image: {image}\n    command: [sh, -c, {script:?}]\n    env:\n    - {{name: FOO, value: bar}}\n    - {{name: GREETING, value: \"hi-$(FOO)\"}}\n    - name: MYNAME\n      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}\n    volumeMounts:\n    - {{name: cfg, mountPath: /cfg}}\n  volumes:\n  - name: cfg\n    configMap: {{name: settings}}\n"
    )
}

#[test]
fn kubelet_registers_and_runs_pods_in_containerd() {
    let lab = Lab::new("fkt", 0);
    let (s, ctd, dir) = (&lab.server, &lab.ctd, &lab.dir);
    let (kubelet, node) = start_kubelet(
        s,
        ctd,
        dir.path(),
        "containerLogMaxSize: 4Ki\ncontainerLogMaxFiles: 3\ncontainerLogMonitorInterval: 3s\npodPidsLimit: 64\n",
    );

    // Registration, Ready (runtime and network up), and the heartbeat lease.
    wait(s, &kubelet, "the node Ready", 30, || {
        s.kubectl(&[
            "get",
            "node",
            &node,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ])
        .stdout
            == b"True"
    });
    let runtime = jsonpath(
        s,
        &["node", &node],
        "{.status.nodeInfo.containerRuntimeVersion}",
    );
    assert!(runtime.starts_with("containerd://"), "{runtime}");
    assert_eq!(
        jsonpath(s, &["node", &node], "{.metadata.labels.kubernetes\\.io/os}"),
        "linux"
    );
    assert!(!jsonpath(s, &["node", &node], "{.status.capacity.cpu}").is_empty());
    assert_eq!(
        jsonpath(
            s,
            &["lease", "-n", "kube-node-lease", &node],
            "{.spec.holderIdentity}"
        ),
        node
    );

    s.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=key=from-configmap",
    ]);
    let image = "ferrokube.local/busybox:test";
    // A long-running pod: Running, Ready, an IP from the bridge network.
    create(s, &pod_yaml("web", &node, "Always", image, "sleep 3600"));
    wait(s, &kubelet, "web Running", 60, || {
        jsonpath(s, &["pod", "web"], "{.status.phase}") == "Running"
    });
    wait(s, &kubelet, "web Ready", 20, || {
        jsonpath(
            s,
            &["pod", "web"],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "True"
    });
    let ip = jsonpath(s, &["pod", "web"], "{.status.podIP}");
    assert!(
        ip.starts_with(&lab.subnet),
        "pod IP {ip}\n{}",
        kubelet.log()
    );
    let id = jsonpath(
        s,
        &["pod", "web"],
        "{.status.containerStatuses[0].containerID}",
    );
    assert!(id.starts_with("containerd://"), "{id}");
    assert_eq!(
        jsonpath(s, &["pod", "web"], "{.status.qosClass}"),
        "BestEffort"
    );
    // podPidsLimit on the pod cgroup (cgroupfs, v1 or v2 layout).
    let web_uid = jsonpath(s, &["pod", "web"], "{.metadata.uid}");
    let pod_cgroup = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        PathBuf::from(format!("/sys/fs/cgroup/kubepods/besteffort/pod{web_uid}"))
    } else {
        PathBuf::from(format!(
            "/sys/fs/cgroup/pids/kubepods/besteffort/pod{web_uid}"
        ))
    };
    assert_eq!(
        std::fs::read_to_string(pod_cgroup.join("pids.max"))
            .unwrap_or_default()
            .trim(),
        "64"
    );
    assert_eq!(
        jsonpath(s, &["pod", "web"], "{.status.hostIP}"),
        "127.0.0.1"
    );

    // What the container saw: env with $(VAR) expansion, the downward API and the
    // configMap volume, reported through its termination message.
    create(
        s,
        &pod_yaml(
            "report",
            &node,
            "Never",
            image,
            "echo \"$GREETING $MYNAME $(cat /cfg/key)\" > /dev/termination-log; exit 1",
        ),
    );
    wait(s, &kubelet, "report Failed", 60, || {
        jsonpath(s, &["pod", "report"], "{.status.phase}") == "Failed"
    });
    let term = "{.status.containerStatuses[0].state.terminated}";
    assert_eq!(
        jsonpath(s, &["pod", "report"], &term.replace('}', ".exitCode}")),
        "1"
    );
    assert_eq!(
        jsonpath(s, &["pod", "report"], &term.replace('}', ".message}")).trim(),
        "hi-bar report from-configmap"
    );

    // emptyDir medium Memory: a tmpfs of sizeLimit, or of the pod's memory limit without
    // one; unmounted when the pod goes.
    create(
        s,
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: scratch}}\nspec:\n  nodeName: {node}\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: {image}\n    command: [sh, -c, 'grep \" /scratch\" /proc/mounts > /dev/termination-log']\n    resources: {{limits: {{memory: 24Mi}}}}\n    volumeMounts:\n    - {{name: scratch, mountPath: /scratch}}\n    - {{name: unsized, mountPath: /scratch-unsized}}\n  volumes:\n  - name: scratch\n    emptyDir: {{medium: Memory, sizeLimit: 16Mi}}\n  - name: unsized\n    emptyDir: {{medium: Memory}}\n"),
    );
    wait(s, &kubelet, "scratch Succeeded", 60, || {
        jsonpath(s, &["pod", "scratch"], "{.status.phase}") == "Succeeded"
    });
    let mount = jsonpath(s, &["pod", "scratch"], &term.replace('}', ".message}"));
    assert!(
        mount.starts_with("tmpfs /scratch tmpfs") && mount.contains("size=16384k"),
        "{mount}: {}",
        s.ok(&["get", "pod", "scratch", "-o", "yaml"])
    );
    assert!(
        mount
            .lines()
            .any(|l| l.starts_with("tmpfs /scratch-unsized tmpfs") && l.contains("size=24576k")),
        "{mount}"
    );
    let uid = jsonpath(s, &["pod", "scratch"], "{.metadata.uid}");
    assert!(
        std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .contains(&uid),
        "the tmpfs is mounted on the host"
    );
    let out = s.kubectl(&["delete", "pod", "scratch", "--wait=true"]);
    assert!(out.status.success());
    wait(s, &kubelet, "the tmpfs unmounted", 30, || {
        !std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .contains(&uid)
    });

    // Succeeded under restartPolicy Never.
    create(s, &pod_yaml("done", &node, "Never", image, "exit 0"));
    wait(s, &kubelet, "done Succeeded", 60, || {
        jsonpath(s, &["pod", "done"], "{.status.phase}") == "Succeeded"
    });
    assert_eq!(
        jsonpath(
            s,
            &["pod", "done"],
            "{.status.containerStatuses[0].state.terminated.reason}"
        ),
        "Completed"
    );

    // A crashing container restarts, then backs off.
    create(s, &pod_yaml("crash", &node, "Always", image, "exit 3"));
    wait(s, &kubelet, "crash restarted", 60, || {
        jsonpath(
            s,
            &["pod", "crash"],
            "{.status.containerStatuses[0].restartCount}",
        )
        .parse::<u32>()
        .unwrap_or(0)
            >= 1
    });
    wait(s, &kubelet, "CrashLoopBackOff", 60, || {
        jsonpath(
            s,
            &["pod", "crash"],
            "{.status.containerStatuses[0].state.waiting.reason}",
        ) == "CrashLoopBackOff"
    });
    assert_eq!(
        jsonpath(
            s,
            &["pod", "crash"],
            "{.status.containerStatuses[0].lastState.terminated.exitCode}"
        ),
        "3"
    );

    // An image that does not exist: ErrImagePull / ImagePullBackOff, nothing crashes.
    create(
        s,
        &pod_yaml(
            "noimage",
            &node,
            "Always",
            "ferrokube.local/does-not-exist:1",
            "true",
        ),
    );
    wait(s, &kubelet, "image pull error", 60, || {
        let r = jsonpath(
            s,
            &["pod", "noimage"],
            "{.status.containerStatuses[0].state.waiting.reason}",
        );
        r == "ErrImagePull" || r == "ImagePullBackOff"
    });

    probes(s, &kubelet, &node);
    lifecycle_hooks(s, &kubelet, &node);
    log_rotation(s, &kubelet, &node, &dir.path().join("logs"));

    // Graceful deletion: the kubelet stops the containers and removes the object.
    s.ok(&["delete", "pod", "web", "--wait=false"]);
    wait(s, &kubelet, "web gone", 30, || {
        !s.kubectl(&["get", "pod", "web"]).status.success()
    });
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    for reason in ["Created", "Started", "Killing"] {
        assert!(
            events.contains(reason),
            "{reason} missing from {events}\n{}\n{}",
            s.ok(&["get", "events", "-o", "yaml"]),
            kubelet.log()
        );
    }
    // Nothing of it is left in the runtime.
    wait(s, &kubelet, "web's containers removed", 20, || {
        let out = ctd.ctr(
            &["-n", "k8s.io", "containers", "ls", "-q"],
            std::time::Duration::from_secs(10),
        );
        let ids = String::from_utf8_lossy(&out.stdout).into_owned();
        !ids.contains(id.trim_start_matches("containerd://"))
    });
    wait(s, &kubelet, "web's pod cgroup removed", 20, || {
        !pod_cgroup.exists()
    });
    drop(kubelet);
}

/// A chatty container's log is rotated at containerLogMaxSize: never more than
/// containerLogMaxFiles files, the older rotated ones compressed.
fn log_rotation(s: &Server, kubelet: &Kubelet, node: &str, logs: &Path) {
    let image = ferrokube_containerd::testimage::BUSYBOX_IMAGE;
    create(
        s,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: chatty}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {image}\n    command: [sh, -c, 'i=0; while true; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); sleep 0.005; done']\n"
        ),
    );
    wait(s, kubelet, "chatty Running", 60, || {
        jsonpath(s, &["pod", "chatty"], "{.status.phase}") == "Running"
    });
    let uid = jsonpath(s, &["pod", "chatty"], "{.metadata.uid}");
    let dir = logs.join(format!("default_chatty_{uid}")).join("c");
    let files = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    // Seen between passes (a pass briefly has a `.tmp` file or no `0.log`).
    let settled =
        |v: &[String]| v.contains(&"0.log".to_string()) && !v.iter().any(|f| f.ends_with(".tmp"));
    wait(s, kubelet, "two rotations (a compressed log)", 40, || {
        let v = files();
        settled(&v) && v.iter().any(|f| f.ends_with(".gz"))
    });
    // The newest rotated log stays uncompressed until the next pass, which compresses it
    // just before rotating again (so it is briefly absent).
    let mut newest_plain = false;
    for _ in 0..10 {
        let v = files();
        if settled(&v) {
            assert!(v.len() <= 3, "{v:?}");
            newest_plain |= v
                .iter()
                .any(|f| f.starts_with("0.log.") && !f.ends_with(".gz"));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert!(
        newest_plain,
        "the newest rotated log was never left uncompressed"
    );
    let now = files();
    // The runtime writes to the reopened file.
    let current = std::fs::read_to_string(dir.join("0.log")).unwrap_or_default();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let later = std::fs::read_to_string(dir.join("0.log")).unwrap_or_default();
    assert!(
        later.len() != current.len() || files() != now,
        "the log stopped growing"
    );
    s.ok(&["delete", "pod", "chatty", "--wait=false"]);
}

/// Readiness gates the Ready condition (exec and httpGet handlers), a failing liveness
/// probe restarts the container with an Unhealthy event.
fn probes(s: &Server, kubelet: &Kubelet, node: &str) {
    let image = ferrokube_containerd::testimage::BUSYBOX_IMAGE;
    create(
        s,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: probed}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {image}\n    command: [sh, -c, 'sleep 3; touch /tmp/ready; httpd -f -p 8080 -h /www']\n    readinessProbe:\n      exec: {{command: [test, -f, /tmp/ready]}}\n      periodSeconds: 1\n  - name: web\n    image: {image}\n    command: [httpd, -f, -p, '8081', -h, /www]\n    readinessProbe:\n      httpGet: {{path: /index.html, port: 8081}}\n      periodSeconds: 1\n    startupProbe:\n      tcpSocket: {{port: 8081}}\n      periodSeconds: 1\n"
        ),
    );
    let ready = || {
        jsonpath(
            s,
            &["pod", "probed"],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        )
    };
    wait(s, kubelet, "probed running", 20, || {
        jsonpath(s, &["pod", "probed"], "{.status.phase}") == "Running"
    });
    assert_eq!(ready(), "False", "ready before its readiness probe passed");
    wait(s, kubelet, "probed Ready", 20, || ready() == "True");
    assert_eq!(
        jsonpath(
            s,
            &["pod", "probed"],
            "{.status.containerStatuses[*].started}"
        ),
        "true true"
    );

    create(
        s,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: dying}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {image}\n    command: [sh, -c, 'touch /tmp/alive; sleep 2; rm /tmp/alive; sleep 3600']\n    livenessProbe:\n      exec: {{command: [test, -f, /tmp/alive]}}\n      periodSeconds: 1\n      failureThreshold: 1\n"
        ),
    );
    wait(
        s,
        kubelet,
        "dying restarted by its liveness probe",
        40,
        || {
            jsonpath(
                s,
                &["pod", "dying"],
                "{.status.containerStatuses[0].restartCount}",
            )
            .parse::<u32>()
            .is_ok_and(|n| n >= 1)
        },
    );
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=dying",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(
        events.contains("Unhealthy: Liveness probe failed"),
        "{events}"
    );
    assert!(
        events.contains("failed liveness probe, will be restarted"),
        "{events}"
    );
    for pod in ["probed", "dying"] {
        s.ok(&["delete", "pod", pod, "--wait=false"]);
    }
}

/// postStart runs before a container counts as started (a failing one kills it, and it
/// restarts); a failing preStop is reported and the container stopped all the same.
fn lifecycle_hooks(s: &Server, kubelet: &Kubelet, node: &str) {
    let image = ferrokube_containerd::testimage::BUSYBOX_IMAGE;
    create(
        s,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: hooked}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {image}\n    command: [sleep, '3600']\n    lifecycle:\n      postStart:\n        exec: {{command: [sh, -c, 'echo hi > /tmp/post-start']}}\n      preStop:\n        exec: {{command: [sh, -c, 'exit 4']}}\n    readinessProbe:\n      exec: {{command: [test, -f, /tmp/post-start]}}\n      periodSeconds: 1\n  - name: bad\n    image: {image}\n    command: [sleep, '3600']\n    lifecycle:\n      postStart:\n        exec: {{command: [sh, -c, 'exit 3']}}\n"
        ),
    );
    wait(
        s,
        kubelet,
        "hooked's c ready after its postStart",
        30,
        || {
            jsonpath(
                s,
                &["pod", "hooked"],
                "{.status.containerStatuses[?(@.name==\"c\")].ready}",
            ) == "true"
        },
    );
    let events = || {
        s.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=hooked",
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ])
    };
    wait(s, kubelet, "the failed postStart restarts bad", 40, || {
        jsonpath(
            s,
            &["pod", "hooked"],
            "{.status.containerStatuses[?(@.name==\"bad\")].restartCount}",
        )
        .parse::<u32>()
        .is_ok_and(|n| n >= 1)
    });
    let seen = events();
    assert!(
        seen.contains(
            "FailedPostStartHook: PostStartHook failed: command 'sh -c exit 3' exited with 3"
        ),
        "{seen}"
    );
    s.ok(&["delete", "pod", "hooked", "--wait=false"]);
    wait(s, kubelet, "the failed preStop reported", 30, || {
        events()
            .contains("FailedPreStopHook: PreStopHook failed: command 'sh -c exit 4' exited with 4")
    });
}

/// A static pod runs from staticPodPath with a mirror pod in the API: deleting the
/// mirror makes it again without restarting the pod, an edit to the manifest is a new
/// pod, removing the manifest stops it and deletes the mirror.
#[test]
fn static_pods_run_with_mirror_pods() {
    let lab = Lab::new("fks", 1);
    let (s, ctd, dir) = (&lab.server, &lab.ctd, &lab.dir);
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let image = ferrokube_containerd::testimage::BUSYBOX_IMAGE;
    let manifest = |cmd: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: static-web, namespace: kube-system, labels: {{tier: control}}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {image}\n    command: [sh, -c, {cmd:?}]\n")
    };
    let file = manifests.join("static-web.yaml");
    std::fs::write(&file, manifest("echo one; sleep 3600")).unwrap();
    std::fs::write(manifests.join("broken.yaml"), "kind: [").unwrap();
    let (kubelet, node) = start_kubelet(
        s,
        ctd,
        dir.path(),
        &format!("staticPodPath: {}\n", manifests.display()),
    );
    let mirror = format!("static-web-{node}");
    // Empty while the mirror pod does not exist.
    let get = |path: &str| {
        let out = s.kubectl(&[
            "get",
            "pod",
            "-n",
            "kube-system",
            &mirror,
            "-o",
            &format!("jsonpath={path}"),
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait(s, &kubelet, "the mirror pod Running", 60, || {
        get("{.status.phase}") == "Running"
    });
    let hash = get("{.metadata.annotations.kubernetes\\.io/config\\.mirror}");
    assert_eq!(hash.len(), 32, "{hash}");
    assert_eq!(
        get("{.metadata.annotations.kubernetes\\.io/config\\.source}"),
        "file"
    );
    assert_eq!(
        get("{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}"),
        format!("Node/{node}")
    );
    assert_eq!(get("{.spec.nodeName}"), node);
    assert_eq!(get("{.metadata.labels.tier}"), "control");
    let container = get("{.status.containerStatuses[0].containerID}");
    assert!(container.starts_with("containerd://"), "{container}");
    let first_uid = get("{.metadata.uid}");

    // Deleting the mirror pod: a new mirror, the same running container.
    s.ok(&[
        "delete",
        "pod",
        "-n",
        "kube-system",
        &mirror,
        "--wait=false",
    ]);
    wait(s, &kubelet, "the mirror pod made again", 30, || {
        let uid = get("{.metadata.uid}");
        !uid.is_empty() && uid != first_uid && get("{.status.phase}") == "Running"
    });
    assert_eq!(get("{.status.containerStatuses[0].containerID}"), container);

    // An edit is a new pod: a new hash and a new container.
    std::fs::write(&file, manifest("echo two; sleep 3600")).unwrap();
    wait(s, &kubelet, "the edited static pod running", 60, || {
        let h = get("{.metadata.annotations.kubernetes\\.io/config\\.mirror}");
        let c = get("{.status.containerStatuses[0].containerID}");
        !h.is_empty()
            && h != hash
            && c.starts_with("containerd://")
            && c != container
            && get("{.status.phase}") == "Running"
    });

    // Removing the manifest: the mirror is deleted and the containers stopped.
    std::fs::remove_file(&file).unwrap();
    wait(s, &kubelet, "the mirror pod deleted", 30, || {
        !s.kubectl(&["get", "pod", "-n", "kube-system", &mirror])
            .status
            .success()
    });
    wait(
        s,
        &kubelet,
        "the static pod's containers removed",
        30,
        || {
            let out = ctd.ctr(
                &["-n", "k8s.io", "containers", "ls", "-q"],
                std::time::Duration::from_secs(10),
            );
            let ids = String::from_utf8_lossy(&out.stdout).into_owned();
            !ids.contains(container.trim_start_matches("containerd://"))
        },
    );
    assert!(
        kubelet
            .log()
            .contains("could not process static pod manifest"),
        "{}",
        kubelet.log()
    );
    drop(kubelet);
}

/// Unmounts a test's mount when the test ends.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Disk pressure on the kubelet's root filesystem (a small tmpfs here, filled by the
/// test): DiskPressure, a running pod evicted as upstream marks it, a new pod
/// rejected; freed space clears the condition.
#[test]
fn disk_pressure_evicts_and_rejects_pods() {
    let lab = Lab::new("fke", 2);
    let (s, ctd, dir) = (&lab.server, &lab.ctd, &lab.dir);
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "fk-evict"])
        .arg(&root)
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a tmpfs");
    let _mount = MountGuard(root.clone());
    let (kubelet, node) = start_kubelet(
        s,
        ctd,
        dir.path(),
        "evictionHard: {memory.available: 1Mi, nodefs.available: 40%}\n",
    );
    let condition = |kind: &str| {
        jsonpath(
            s,
            &["node", &node],
            &format!("{{.status.conditions[?(@.type==\"{kind}\")].status}}"),
        )
    };
    wait(s, &kubelet, "the node Ready", 30, || {
        condition("Ready") == "True"
    });
    assert_eq!(condition("DiskPressure"), "False");
    let image = ferrokube_containerd::testimage::BUSYBOX_IMAGE;
    let pod = |name: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 30\n  containers:\n  - name: c\n    image: {image}\n    command: [sleep, '3600']\n")
    };
    create(s, &pod("victim"));
    wait(s, &kubelet, "victim Running", 60, || {
        jsonpath(s, &["pod", "victim"], "{.status.phase}") == "Running"
    });

    // 45 of 64 MiB used: less than 40 % available.
    std::fs::write(root.join("fill"), vec![0u8; 45 << 20]).unwrap();
    wait(s, &kubelet, "victim evicted", 40, || {
        jsonpath(s, &["pod", "victim"], "{.status.reason}") == "Evicted"
    });
    assert_eq!(jsonpath(s, &["pod", "victim"], "{.status.phase}"), "Failed");
    let msg = jsonpath(s, &["pod", "victim"], "{.status.message}");
    assert!(
        msg.starts_with(
            "The node was low on resource: ephemeral-storage. Threshold quantity: 40%, available: "
        ),
        "{msg}"
    );
    assert_eq!(
        jsonpath(
            s,
            &["pod", "victim"],
            "{.status.conditions[?(@.type==\"DisruptionTarget\")].reason}"
        ),
        "TerminationByKubelet"
    );
    // Stopped at once (no 30 s grace) and reported so.
    wait(s, &kubelet, "victim's container stopped", 20, || {
        !jsonpath(
            s,
            &["pod", "victim"],
            "{.status.containerStatuses[0].state.terminated}",
        )
        .is_empty()
    });
    wait(s, &kubelet, "DiskPressure", 20, || {
        condition("DiskPressure") == "True"
    });
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=victim",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(events.contains("Evicted"), "{events}");

    // A new pod is not admitted under disk pressure.
    create(s, &pod("late"));
    wait(s, &kubelet, "late rejected", 30, || {
        jsonpath(s, &["pod", "late"], "{.status.phase}") == "Failed"
    });
    assert_eq!(jsonpath(s, &["pod", "late"], "{.status.reason}"), "Evicted");
    assert_eq!(
        jsonpath(s, &["pod", "late"], "{.status.message}"),
        "The node had condition: [DiskPressure]. "
    );

    std::fs::remove_file(root.join("fill")).unwrap();
    wait(s, &kubelet, "DiskPressure cleared", 30, || {
        condition("DiskPressure") == "False"
    });
    drop(kubelet);
}

/// Image garbage collection: with the thresholds at zero and no minimum age, a kubelet
/// (re)started removes an image nothing uses, keeps the one a running pod uses and the
/// sandbox image, and reports on the node that it could not free all it wanted.
#[test]
fn image_gc_removes_unused_images() {
    use ferrokube_containerd::{import, oci, testimage};
    let lab = Lab::new("fkg", 3);
    let (s, ctd, dir) = (&lab.server, &lab.ctd, &lab.dir);
    let unused = oci::build_archive(
        "ferrokube.test/unused:1",
        &[oci::Entry::file("hello", 0o644, "nothing runs me")],
        &testimage::busybox_image_config(),
    )
    .unwrap();
    import::import_bytes(&ctd.socket, &unused.bytes).unwrap();
    let has = |name: &str| ctd.images().iter().any(|i| i.contains(name));
    assert!(has("ferrokube.test/unused:1"));

    let (kubelet, node) = start_kubelet(s, ctd, dir.path(), "");
    wait(s, &kubelet, "the node Ready", 30, || {
        jsonpath(
            s,
            &["node", &node],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "True"
    });
    let image = testimage::BUSYBOX_IMAGE;
    create(
        s,
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: user}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {image}\n    command: [sleep, '3600']\n"),
    );
    wait(s, &kubelet, "user Running", 60, || {
        jsonpath(s, &["pod", "user"], "{.status.phase}") == "Running"
    });
    drop(kubelet);

    let (kubelet, _) = start_kubelet(
        s,
        ctd,
        dir.path(),
        "imageGCHighThresholdPercent: 0\nimageGCLowThresholdPercent: 0\nimageMinimumGCAge: 0s\n",
    );
    wait(s, &kubelet, "the unused image removed", 30, || {
        !has("ferrokube.test/unused:1")
    });
    assert!(has(testimage::BUSYBOX_IMAGE), "{:?}", ctd.images());
    assert!(has("pause"), "{:?}", ctd.images());
    wait(s, &kubelet, "a FreeDiskSpaceFailed event", 30, || {
        s.ok(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.kind=Node,involvedObject.name={node}"),
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .contains("FreeDiskSpaceFailed")
    });
    assert_eq!(jsonpath(s, &["pod", "user"], "{.status.phase}"), "Running");
    drop(kubelet);
}

#[test]
fn an_invalid_kubelet_configuration_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("k.yaml");
    std::fs::write(
        &config,
        "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\nmaxPods: many\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args([
            "kubelet",
            "--kubeconfig",
            "/nonexistent",
            "--config",
            config.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("maxPods") && err.contains("k.yaml"), "{err}");
}
