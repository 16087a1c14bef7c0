#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The node controllers against a real API server, with Nodes registered by hand (no
//! kubelet): node IPAM hands each node its own podCIDR (skipping CIDRs nodes already
//! hold, reporting exhaustion with a CIDRNotAvailable event, reusing a deleted node's
//! CIDR); node lifecycle turns a node whose heartbeat and Lease stop into Ready=Unknown
//! with the unreachable taints and its pods NotReady, while a node renewing its Lease
//! stays Ready; taint eviction deletes the pods tolerating the taint for 5 s after
//! about 5 s and keeps those tolerating it forever; a node posting Ready again loses
//! the taints.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{controller_manager, start, wait_until, Server};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use parking_lot::Mutex;

fn create(s: &Server, yaml: &str) {
    let o = s.kubectl_stdin(&["create", "-f", "-"], Some(yaml));
    assert!(
        o.status.success(),
        "create failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn jsonpath(s: &Server, args: &[&str], path: &str) -> String {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    let p = format!("jsonpath={path}");
    all.extend_from_slice(&["-o", &p]);
    s.ok(&all)
}

/// The object's jsonpath value, or None once it is gone.
fn get_opt(s: &Server, args: &[&str], path: &str) -> Option<String> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    let p = format!("jsonpath={path}");
    all.extend_from_slice(&["-o", &p]);
    let o = s.kubectl(&all);
    if o.status.success() {
        return Some(String::from_utf8_lossy(&o.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
    None
}

fn now_time() -> String {
    serde_json::to_string(&Time(Timestamp::now())).unwrap()
}

fn node(name: &str, pod_cidr: Option<&str>) -> String {
    let spec = match pod_cidr {
        Some(c) => format!("spec: {{podCIDR: {c}, podCIDRs: [{c}]}}\n"),
        None => String::new(),
    };
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{kubernetes.io/os: linux}}\n{spec}"
    )
}

/// Posts the kubelet's Ready=True heartbeat.
fn post_ready(s: &Server, name: &str) {
    let t = now_time();
    let patch = format!(
        r#"{{"status":{{"conditions":[{{"type":"Ready","status":"True","reason":"KubeletReady","message":"kubelet is posting ready status","lastHeartbeatTime":{t},"lastTransitionTime":{t}}}]}}}}"#
    );
    s.ok(&[
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ]);
}

fn lease_yaml(name: &str) -> String {
    let t = serde_json::to_string(&MicroTime(Timestamp::now())).unwrap();
    format!(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: {name}, namespace: kube-node-lease}}\nspec: {{holderIdentity: {name}, leaseDurationSeconds: 40, renewTime: {t}}}\n"
    )
}

/// Renews the Leases of the named nodes every 500 ms, as kubelets do, until dropped.
struct Renewer {
    stop: Arc<AtomicBool>,
    nodes: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Renewer {
    fn start(s: &Server) -> Renewer {
        let stop = Arc::new(AtomicBool::new(false));
        let nodes: Arc<Mutex<Vec<String>>> = Arc::default();
        let (kubeconfig, cache) = (s.kubeconfig.clone(), s.cache.clone());
        let thread = {
            let (stop, nodes) = (stop.clone(), nodes.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for n in nodes.lock().clone() {
                        let t = serde_json::to_string(&MicroTime(Timestamp::now())).unwrap();
                        let patch = format!(r#"{{"spec":{{"renewTime":{t}}}}}"#);
                        let _ = std::process::Command::new(common::KUBECTL)
                            .args(["patch", "lease", &n, "-n", "kube-node-lease"])
                            .args(["--type=merge", "-p", &patch])
                            .env("KUBECONFIG", &kubeconfig)
                            .env("KUBECACHEDIR", &cache)
                            .output();
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            })
        };
        Renewer {
            stop,
            nodes,
            thread: Some(thread),
        }
    }

    fn renew(&self, s: &Server, name: &str) {
        create(s, &lease_yaml(name));
        self.nodes.lock().push(name.to_string());
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn pod(name: &str, node: &str, toleration_seconds: Option<u32>) -> String {
    let secs = toleration_seconds
        .map(|s| format!(", tolerationSeconds: {s}"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default}}
spec:
  nodeName: {node}
  containers: [{{name: c, image: busybox}}]
  tolerations:
  - {{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute{secs}}}
  - {{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute{secs}}}
"
    )
}

fn set_pod_ready(s: &Server, name: &str) {
    let t = now_time();
    let patch = format!(
        r#"{{"status":{{"phase":"Running","conditions":[{{"type":"Ready","status":"True","lastTransitionTime":{t}}}]}}}}"#
    );
    s.ok(&[
        "patch",
        "pod",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ]);
}

/// `reason=message` of the events about `name`.
fn events_about(s: &Server, name: &str) -> String {
    s.ok(&[
        "get",
        "events",
        "-A",
        "--field-selector",
        &format!("involvedObject.name={name}"),
        "-o",
        "jsonpath={range .items[*]}{.reason}={.message}{\"\\n\"}{end}",
    ])
}

fn taints(s: &Server, node: &str) -> String {
    jsonpath(
        s,
        &["node", node],
        "{range .spec.taints[*]}{.key}:{.effect}{\" \"}{end}",
    )
}

fn ready_status(s: &Server, node: &str) -> String {
    jsonpath(
        s,
        &["node", node],
        "{.status.conditions[?(@.type==\"Ready\")].status}",
    )
}

#[test]
fn node_cidrs_heartbeats_taints_and_evictions() {
    let s = start();
    // A node already holding a CIDR before the controller starts.
    create(&s, &node("old", Some("10.244.0.0/24")));
    let _cm = controller_manager(
        &s,
        &[
            "--controllers=nodeipam,nodelifecycle,taint-eviction-controller",
            "--allocate-node-cidrs",
            "--cluster-cidr=10.244.0.0/16",
            "--node-monitor-grace-period=6s",
            "--node-monitor-period=1s",
        ],
    );
    let renewer = Renewer::start(&s);
    create(&s, &node("healthy", None));
    create(&s, &node("lost", None));
    renewer.renew(&s, "healthy");
    post_ready(&s, "healthy");
    post_ready(&s, "lost");

    // IPAM: distinct /24s, never the one "old" holds.
    let mut cidrs = Vec::new();
    for n in ["healthy", "lost"] {
        wait_until(&format!("a podCIDR for {n}"), 20, || {
            !jsonpath(&s, &["node", n], "{.spec.podCIDR}").is_empty()
        });
        let c = jsonpath(&s, &["node", n], "{.spec.podCIDR}");
        assert_eq!(jsonpath(&s, &["node", n], "{.spec.podCIDRs[*]}"), c);
        assert!(c.starts_with("10.244.") && c.ends_with(".0/24"), "{c}");
        cidrs.push(c);
    }
    assert_ne!(cidrs[0], cidrs[1]);
    assert!(!cidrs.contains(&"10.244.0.0/24".to_string()), "{cidrs:?}");
    // The beta OS label follows the stable one.
    wait_until("beta.kubernetes.io/os reconciled", 20, || {
        jsonpath(
            &s,
            &["node", "healthy"],
            "{.metadata.labels.beta\\.kubernetes\\.io/os}",
        ) == "linux"
    });

    create(&s, &pod("short", "lost", Some(5)));
    create(&s, &pod("forever", "lost", None));
    create(&s, &pod("safe", "healthy", Some(5)));
    set_pod_ready(&s, "forever");

    // No heartbeat, no Lease: Unknown after the 6 s grace period.
    wait_until("lost node Ready=Unknown", 30, || {
        ready_status(&s, "lost") == "Unknown"
    });
    let reason = jsonpath(
        &s,
        &["node", "lost"],
        "{.status.conditions[?(@.type==\"Ready\")].reason}",
    );
    assert_eq!(reason, "NodeStatusUnknown");
    let message = jsonpath(
        &s,
        &["node", "lost"],
        "{.status.conditions[?(@.type==\"Ready\")].message}",
    );
    assert_eq!(message, "Kubelet stopped posting node status.");
    let pressure = jsonpath(
        &s,
        &["node", "lost"],
        "{.status.conditions[?(@.type==\"MemoryPressure\")].status}",
    );
    assert_eq!(pressure, "Unknown");
    wait_until("unreachable NoExecute taint", 20, || {
        taints(&s, "lost").contains("node.kubernetes.io/unreachable:NoExecute")
    });
    let tainted_at = Instant::now();
    wait_until("unreachable NoSchedule taint", 20, || {
        taints(&s, "lost").contains("node.kubernetes.io/unreachable:NoSchedule")
    });
    let time_added = jsonpath(
        &s,
        &["node", "lost"],
        "{.spec.taints[?(@.effect==\"NoExecute\")].timeAdded}",
    );
    assert!(!time_added.is_empty(), "the NoExecute taint has timeAdded");
    // The pod's Ready condition goes False.
    wait_until("pod on the lost node NotReady", 20, || {
        jsonpath(
            &s,
            &["pod", "forever"],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "False"
    });

    // The 5 s toleration runs out: evicted (deleted, or terminating without kubelet).
    wait_until("pod with tolerationSeconds=5 evicted", 20, || {
        get_opt(&s, &["pod", "short"], "{.metadata.deletionTimestamp}")
            .is_none_or(|t| !t.is_empty())
    });
    let waited = tainted_at.elapsed();
    assert!(
        waited >= Duration::from_secs(3),
        "evicted after only {waited:?}"
    );
    if let Some(cond) = get_opt(
        &s,
        &["pod", "short"],
        "{.status.conditions[?(@.type==\"DisruptionTarget\")].reason}",
    ) {
        assert_eq!(cond, "DeletionByTaintManager");
    }
    let ev = events_about(&s, "short");
    assert!(
        ev.contains("TaintManagerEviction=Marking for deletion Pod default/short"),
        "{ev}"
    );
    // Tolerating forever: stays.
    assert_eq!(
        jsonpath(&s, &["pod", "forever"], "{.metadata.deletionTimestamp}"),
        ""
    );
    // The node renewing its Lease is untouched.
    assert_eq!(ready_status(&s, "healthy"), "True");
    assert!(!taints(&s, "healthy").contains("unreachable"));
    assert_eq!(
        jsonpath(&s, &["pod", "safe"], "{.metadata.deletionTimestamp}"),
        ""
    );
    let ev = events_about(&s, "lost");
    assert!(
        ev.contains("NodeNotReady=Node lost status is now: NodeNotReady"),
        "{ev}"
    );
    assert!(
        ev.contains("RegisteredNode=Registered Node lost in Controller"),
        "{ev}"
    );
    let ev = events_about(&s, "forever");
    assert!(ev.contains("NodeNotReady=Node is not ready"), "{ev}");

    // The kubelet comes back: Ready again, both taints removed.
    renewer.renew(&s, "lost");
    post_ready(&s, "lost");
    wait_until("taints removed once Ready", 20, || {
        !taints(&s, "lost").contains("unreachable")
    });
    assert_eq!(ready_status(&s, "lost"), "True");
    assert_eq!(
        jsonpath(&s, &["pod", "forever"], "{.metadata.deletionTimestamp}"),
        ""
    );
}

#[test]
fn dual_stack_cidr_exhaustion_and_release() {
    let s = start();
    let _cm = controller_manager(
        &s,
        &[
            "--controllers=nodeipam",
            "--allocate-node-cidrs",
            "--cluster-cidr=10.245.0.0/23,fd00:10:245::/63",
        ],
    );
    create(&s, &node("a", None));
    create(&s, &node("b", None));
    for n in ["a", "b"] {
        wait_until(&format!("podCIDRs for {n}"), 20, || {
            jsonpath(&s, &["node", n], "{.spec.podCIDRs[*]}")
                .split(' ')
                .count()
                == 2
        });
    }
    let a = jsonpath(&s, &["node", "a"], "{.spec.podCIDRs[*]}");
    let b = jsonpath(&s, &["node", "b"], "{.spec.podCIDRs[*]}");
    assert_ne!(a, b);
    for v in [&a, &b] {
        let (v4, v6) = v.split_once(' ').unwrap();
        assert!(v4.starts_with("10.245.") && v4.ends_with("/24"), "{v}");
        assert!(v6.starts_with("fd00:10:245:") && v6.ends_with("/64"), "{v}");
    }
    // Both ranges used up: the third node waits, with an event saying so.
    create(&s, &node("c", None));
    wait_until("CIDRNotAvailable event on c", 20, || {
        events_about(&s, "c").contains("CIDRNotAvailable=Node c status is now: CIDRNotAvailable")
    });
    assert_eq!(jsonpath(&s, &["node", "c"], "{.spec.podCIDRs}"), "");
    // Deleting a frees its CIDRs; c gets them on a retry.
    s.ok(&["delete", "node", "a"]);
    wait_until("c gets a's CIDRs", 40, || {
        jsonpath(&s, &["node", "c"], "{.spec.podCIDRs[*]}") == a
    });
}

#[test]
fn untolerated_taints_evict_at_once_and_removed_taints_cancel() {
    let s = start();
    let _cm = controller_manager(&s, &["--controllers=taint-eviction-controller"]);
    create(&s, &node("t", None));
    let with_toleration = |name: &str, secs: &str| {
        format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default}}
spec:
  nodeName: t
  containers: [{{name: c, image: busybox}}]
  tolerations: [{{key: example.com/evict, operator: Equal, value: \"yes\", effect: NoExecute{secs}}}]
"
        )
    };
    create(
        &s,
        &with_toleration("for-a-while", ", tolerationSeconds: 30"),
    );
    create(&s, &with_toleration("for-ever", ""));
    create(
        &s,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: intolerant, namespace: default}\nspec:\n  nodeName: t\n  containers: [{name: c, image: busybox}]\n",
    );
    s.ok(&["taint", "node", "t", "example.com/evict=yes:NoExecute"]);
    wait_until("the intolerant pod evicted at once", 10, || {
        get_opt(&s, &["pod", "intolerant"], "{.metadata.deletionTimestamp}")
            .is_none_or(|t| !t.is_empty())
    });
    wait_until("the eviction event", 10, || {
        events_about(&s, "intolerant")
            .contains("TaintManagerEviction=Marking for deletion Pod default/intolerant")
    });
    // The taint goes before the 30 s run out: the scheduled deletion is cancelled.
    std::thread::sleep(Duration::from_secs(1));
    s.ok(&["taint", "node", "t", "example.com/evict-"]);
    wait_until("the cancellation event", 10, || {
        events_about(&s, "for-a-while")
            .contains("TaintManagerEviction=Cancelling deletion of Pod default/for-a-while")
    });
    for p in ["for-a-while", "for-ever"] {
        assert_eq!(
            jsonpath(&s, &["pod", p], "{.metadata.deletionTimestamp}"),
            ""
        );
    }
    assert!(!events_about(&s, "for-ever").contains("TaintManagerEviction"));
}
