#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Endpoints, EndpointSlice and pod garbage-collector controllers against a real
//! API server, without scheduler or kubelet: the test writes pod status (phase, IPs,
//! Ready) where a kubelet would. Endpoints and slices list the selected pods (ready
//! and not ready, named target ports resolved), follow label changes, and go away
//! with their Service; `kubectl get endpoints|endpointslices` show them; a pod bound
//! to a node that does not exist is garbage-collected.

mod common;

use common::{controller_manager, start, wait_until, Server};
use serde_json::Value;

/// The garbage collector removes a deleted Service's slices (they are owned by it).
/// With a threshold of 1, the pod GC keeps only the newest terminated pod.
const CM_FLAGS: &[&str] = &[
    "--controllers=endpoint,endpointslice,podgc,garbagecollector",
    "--terminated-pod-gc-threshold=1",
];

fn create(s: &Server, yaml: &str) {
    let o = s.kubectl_stdin(&["create", "-f", "-"], Some(yaml));
    assert!(
        o.status.success(),
        "create failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn json(s: &Server, args: &[&str]) -> Option<Value> {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    let o = s.kubectl(&a);
    o.status
        .success()
        .then(|| serde_json::from_slice(&o.stdout).unwrap())
}

fn pod(name: &str, node: &str, labels: &str, ports: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{{labels}}}}}
spec:
  nodeName: {node}
  containers: [{{name: c, image: 'nginx:1.0', ports: [{ports}]}}]
"
    )
}

fn set_status(s: &Server, name: &str, ip: &str, ready: bool) {
    let patch = serde_json::json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
            "lastTransitionTime": "2025-01-01T00:00:00Z"}]
    }});
    s.ok(&[
        "patch",
        "pod",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch.to_string(),
    ]);
}

fn ips(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["ip"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// (ready, notReady, ports) of the Endpoints' only subset.
fn endpoints_state(s: &Server, name: &str) -> Option<(Vec<String>, Vec<String>, Vec<i64>)> {
    let ep = json(s, &["get", "endpoints", name])?;
    let subsets = ep["subsets"].as_array()?;
    let (mut ready, mut not_ready, mut ports) = (Vec::new(), Vec::new(), Vec::new());
    for sub in subsets {
        ready.extend(ips(&sub["addresses"]));
        not_ready.extend(ips(&sub["notReadyAddresses"]));
        ports.extend(
            sub["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p["port"].as_i64().unwrap()),
        );
    }
    ready.sort();
    not_ready.sort();
    Some((ready, not_ready, ports))
}

fn slices(s: &Server, svc: &str) -> Vec<Value> {
    json(
        s,
        &[
            "get",
            "endpointslices",
            "-l",
            &format!("kubernetes.io/service-name={svc}"),
        ],
    )
    .and_then(|v| v["items"].as_array().cloned())
    .unwrap_or_default()
}

/// The slice publishing port 8080, as (address, ready) pairs.
fn slice_endpoints(s: &Server, svc: &str) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = slices(s, svc)
        .iter()
        .filter(|sl| sl["ports"][0]["port"] == 8080)
        .flat_map(|sl| sl["endpoints"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                e["addresses"][0].as_str().unwrap().to_string(),
                e["conditions"]["ready"].as_bool().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn endpoints_slices_and_pod_gc() {
    let s = start();
    let cm = controller_manager(&s, CM_FLAGS);

    create(
        &s,
        "apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {topology.kubernetes.io/zone: zone-a}}
",
    );
    // Bound to a node that never existed: the pod GC removes it after its quarantine.
    create(&s, &pod("orphan", "ghost-node", "app: orphan", ""));
    set_status(&s, "orphan", "10.244.9.9", true);
    // Two terminated pods, one over the threshold: the older goes.
    for name in ["done-a", "done-b"] {
        create(&s, &pod(name, "node-a", "app: done", ""));
        s.ok(&[
            "patch",
            "pod",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Succeeded"}}"#,
        ]);
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }

    let http = "{name: http, containerPort: 8080}";
    create(&s, &pod("web-1", "node-a", "app: web", http));
    create(&s, &pod("web-2", "node-a", "app: web", http));
    create(&s, &pod("web-3", "node-a", "app: web", http));
    // No port named http: left out of the named port's endpoints.
    create(&s, &pod("web-4", "node-a", "app: web", ""));
    set_status(&s, "web-1", "10.244.0.11", true);
    set_status(&s, "web-2", "10.244.0.12", true);
    set_status(&s, "web-3", "10.244.0.13", false);
    set_status(&s, "web-4", "10.244.0.14", true);
    create(
        &s,
        "apiVersion: v1
kind: Service
metadata: {name: web, labels: {team: blue}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
",
    );

    let want = (
        vec!["10.244.0.11".to_string(), "10.244.0.12".to_string()],
        vec!["10.244.0.13".to_string()],
        vec![8080],
    );
    wait_until("Endpoints web with ready and not-ready pods", 30, || {
        endpoints_state(&s, "web").as_ref() == Some(&want)
    });
    let ep = json(&s, &["get", "endpoints", "web"]).unwrap();
    assert_eq!(ep["metadata"]["labels"]["team"], "blue");
    assert!(
        ep["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"]
            .is_string()
    );
    let addr = &ep["subsets"][0]["addresses"][0];
    assert_eq!(addr["nodeName"], "node-a");
    assert_eq!(addr["targetRef"]["kind"], "Pod");
    assert_eq!(addr["targetRef"]["name"], "web-1");
    assert_eq!(ep["subsets"][0]["ports"][0]["name"], "http");

    wait_until("an EndpointSlice for web", 30, || {
        slice_endpoints(&s, "web")
            == vec![
                ("10.244.0.11".to_string(), true),
                ("10.244.0.12".to_string(), true),
                ("10.244.0.13".to_string(), false),
            ]
    });
    let all = slices(&s, "web");
    let sl = all
        .iter()
        .find(|sl| sl["ports"][0]["port"] == 8080)
        .unwrap();
    assert_eq!(sl["addressType"], "IPv4");
    assert!(sl["metadata"]["name"].as_str().unwrap().starts_with("web-"));
    assert_eq!(
        sl["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(sl["metadata"]["labels"]["team"], "blue");
    assert_eq!(sl["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(sl["ports"][0]["name"], "http");
    assert_eq!(sl["ports"][0]["protocol"], "TCP");
    let e0 = &sl["endpoints"].as_array().unwrap()[0];
    assert_eq!(e0["zone"], "zone-a");
    assert_eq!(e0["nodeName"], "node-a");
    assert_eq!(e0["targetRef"]["kind"], "Pod");
    // web-4 resolves no port: upstream gives it its own slice without ports.
    let portless: Vec<&Value> = all
        .iter()
        .filter(|sl| sl["ports"].as_array().is_none_or(|p| p.is_empty()))
        .collect();
    assert_eq!(portless.len(), 1);
    assert_eq!(portless[0]["endpoints"][0]["addresses"][0], "10.244.0.14");

    // Nothing changes: nothing is written (no update loop).
    let rv = |v: &Value| {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let ep_rv = rv(&json(&s, &["get", "endpoints", "web"]).unwrap());
    let slice_rvs: Vec<String> = slices(&s, "web").iter().map(rv).collect();
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(rv(&json(&s, &["get", "endpoints", "web"]).unwrap()), ep_rv);
    assert_eq!(
        slices(&s, "web").iter().map(rv).collect::<Vec<_>>(),
        slice_rvs
    );

    // The API server's Table for these kinds has only NAME and AGE so far (upstream
    // adds ENDPOINTS, and ADDRESSTYPE/PORTS/ENDPOINTS for slices): check the listing.
    let out = s.ok(&["get", "endpoints"]);
    assert!(out.lines().any(|l| l.starts_with("web ")), "{out}");
    let out = s.ok(&["get", "endpointslices"]);
    let name = sl["metadata"]["name"].as_str().unwrap();
    assert!(out.lines().any(|l| l.starts_with(name)), "{out}");
    let out = s.ok(&[
        "get",
        "endpoints",
        "web",
        "-o",
        "jsonpath={.subsets[*].addresses[*].ip}",
    ]);
    assert_eq!(out, "10.244.0.11 10.244.0.12");

    // A pod that stops matching leaves both.
    s.ok(&["label", "pod", "web-2", "app-"]);
    wait_until("web-2 gone from the Endpoints", 30, || {
        endpoints_state(&s, "web").is_some_and(|(r, _, _)| r == vec!["10.244.0.11".to_string()])
    });
    wait_until("web-2 gone from the slice", 30, || {
        slice_endpoints(&s, "web")
            == vec![
                ("10.244.0.11".to_string(), true),
                ("10.244.0.13".to_string(), false),
            ]
    });
    // Readiness changes move the address.
    set_status(&s, "web-3", "10.244.0.13", true);
    wait_until("web-3 ready in the Endpoints", 30, || {
        endpoints_state(&s, "web").is_some_and(|(r, n, _)| r.len() == 2 && n.is_empty())
    });

    // A Service without selector keeps the Endpoints its user writes.
    create(
        &s,
        "apiVersion: v1
kind: Service
metadata: {name: manual}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: manual}
subsets: [{addresses: [{ip: 192.0.2.1}], ports: [{port: 80}]}]
",
    );

    // Deleting the Service deletes its Endpoints and (through ownership) its slices.
    s.ok(&["delete", "service", "web"]);
    wait_until("Endpoints web deleted", 30, || {
        json(&s, &["get", "endpoints", "web"]).is_none()
    });
    wait_until("slices of web deleted", 60, || slices(&s, "web").is_empty());
    let manual = json(&s, &["get", "endpoints", "manual"]).unwrap();
    assert_eq!(manual["subsets"][0]["addresses"][0]["ip"], "192.0.2.1");

    // Pod GC: 20 s period, 40 s quarantine, then a live GET of the node.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while json(&s, &["get", "pod", "orphan"]).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the orphaned pod was not garbage-collected; controller-manager log:\n{}",
            cm.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(json(&s, &["get", "pod", "web-1"]).is_some());
    wait_until("the older terminated pod garbage-collected", 60, || {
        json(&s, &["get", "pod", "done-a"]).is_none()
    });
    assert!(json(&s, &["get", "pod", "done-b"]).is_some());
    let log = cm.log();
    assert!(log.contains("PodGC is force deleting Pod"), "{log}");
    assert!(!log.contains("pod garbage collection failed"), "{log}");
    assert!(!log.contains("sync failed"), "{log}");
}
