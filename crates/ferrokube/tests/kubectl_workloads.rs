#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! kubectl against `ferrokube server`: Service IP allocation, pod binding and eviction.

mod common;

use std::process::Command;

use common::{start, Server, KUBECTL};

#[test]
fn services_get_distinct_cluster_ips_under_concurrency() {
    let s = start();
    let svc = s.ok(&[
        "get",
        "svc",
        "kubernetes",
        "-o",
        "jsonpath={.spec.clusterIP} {.spec.ports[0].port}",
    ]);
    assert_eq!(svc, "10.43.0.1 443");
    let eps = s.ok(&[
        "get",
        "endpoints",
        "kubernetes",
        "-o",
        "jsonpath={.subsets[0].addresses[0].ip}",
    ]);
    assert_eq!(eps, "127.0.0.1");
    // 20 creates at once: every Service gets its own IP.
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let (kubeconfig, cache) = (s.kubeconfig.clone(), s.cache.clone());
            std::thread::spawn(move || {
                Command::new(KUBECTL)
                    .args([
                        "create",
                        "service",
                        "clusterip",
                        &format!("s{i}"),
                        "--tcp=80",
                    ])
                    .env("KUBECONFIG", kubeconfig)
                    .env("KUBECACHEDIR", cache)
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for t in threads {
        let o = t.join().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let ips = |s: &Server| -> Vec<String> {
        let out = s.ok(&[
            "get",
            "svc",
            "-o",
            "jsonpath={range .items[*]}{.spec.clusterIP}{\"\\n\"}{end}",
        ]);
        out.lines().map(str::to_string).collect()
    };
    let mut all = ips(&s);
    assert_eq!(all.len(), 21);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 21, "duplicate ClusterIPs: {all:?}");
    // A fixed IP that is taken is refused; a NodePort Service gets a port in range.
    let taken = all.iter().find(|ip| *ip != "10.43.0.1").unwrap().clone();
    let err = s.fails(&[
        "create",
        "service",
        "clusterip",
        "dup",
        "--tcp=80",
        &format!("--clusterip={taken}"),
    ]);
    assert!(err.contains("provided IP is already allocated"), "{err}");
    s.ok(&["create", "service", "nodeport", "np", "--tcp=80"]);
    let port: u16 = s
        .ok(&[
            "get",
            "svc",
            "np",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .parse()
        .unwrap();
    assert!((30000..=32767).contains(&port));
    // Deleting releases the IP.
    let ip0 = s.ok(&["get", "svc", "s0", "-o", "jsonpath={.spec.clusterIP}"]);
    s.ok(&["delete", "svc", "s0"]);
    let err = s.fails(&["get", "ipaddress", &ip0]);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn pods_are_bound_and_evicted_as_upstream() {
    let s = start();
    s.ok(&["run", "p1", "--image=busybox", "--labels=app=x"]);
    let bind = |node: &str| {
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"Binding","metadata":{{"name":"p1"}},"target":{{"kind":"Node","name":"{node}"}}}}"#
        );
        s.kubectl_stdin(
            &[
                "create",
                "--raw",
                "/api/v1/namespaces/default/pods/p1/binding",
                "-f",
                "-",
            ],
            Some(&body),
        )
    };
    assert!(bind("node-1").status.success());
    assert_eq!(
        s.ok(&[
            "get",
            "pod",
            "p1",
            "-o",
            "jsonpath={.spec.nodeName} {.status.conditions[0].type}={.status.conditions[0].status}"
        ]),
        "node-1 PodScheduled=True"
    );
    let again = bind("node-2");
    assert!(
        String::from_utf8_lossy(&again.stderr)
            .contains(r#"pod p1 is already assigned to node "node-1""#),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    s.ok(&[
        "patch",
        "pod",
        "p1",
        "--subresource=status",
        "-p",
        r#"{"status":{"phase":"Running"}}"#,
    ]);
    s.ok(&[
        "create",
        "pdb",
        "pdb1",
        "--selector=app=x",
        "--min-available=1",
    ]);
    s.ok(&["patch", "pdb", "pdb1", "--subresource=status", "--type=merge", "-p", r#"{"status":{"disruptionsAllowed":0,"desiredHealthy":1,"currentHealthy":1,"expectedPods":1}}"#]);
    let evict = || {
        s.kubectl_stdin(
            &[
                "create",
                "--raw",
                "/api/v1/namespaces/default/pods/p1/eviction",
                "-f",
                "-",
            ],
            Some(r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"p1"}}"#),
        )
    };
    let refused = evict();
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(s
        .ok(&[
            "get",
            "pod",
            "p1",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}"
        ])
        .is_empty());
    s.ok(&[
        "patch",
        "pdb",
        "pdb1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"disruptionsAllowed":1}}"#,
    ]);
    assert!(evict().status.success());
    // Bound to a node: deleted gracefully (the kubelet finishes it).
    assert!(!s
        .ok(&[
            "get",
            "pod",
            "p1",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}"
        ])
        .is_empty());
    // A status update while the grace period runs does not remove it (upstream's
    // ShouldDeleteDuringUpdate); the kubelet's grace-0 delete does.
    s.ok(&[
        "patch",
        "pod",
        "p1",
        "--subresource=status",
        "-p",
        r#"{"status":{"conditions":[{"type":"DisruptionTarget","status":"True"}]}}"#,
    ]);
    assert_eq!(
        s.ok(&["get", "pod", "p1", "-o", "jsonpath={.metadata.name}"]),
        "p1"
    );
    s.ok(&["delete", "pod", "p1", "--grace-period=0", "--force"]);
    assert!(!s.kubectl(&["get", "pod", "p1"]).status.success());
    assert_eq!(
        s.ok(&[
            "get",
            "pdb",
            "pdb1",
            "-o",
            "jsonpath={.status.disruptionsAllowed}"
        ]),
        "0"
    );
}

/// kubectl's typed commands send protobuf; embedded (`json:",inline"`) structs must come
/// out as their fields (an IngressRule's `http`, a ConfigMap reference's `name`).
#[test]
fn protobuf_inline_fields() {
    let s = common::start();
    s.ok(&[
        "create",
        "ingress",
        "web",
        "--rule=foo.example.com/bar*=svc:80",
    ]);
    assert_eq!(
        s.ok(&[
            "get",
            "ingress",
            "web",
            "-o",
            "jsonpath={.spec.rules[0].http.paths[0].backend.service.name}"
        ]),
        "svc"
    );
    s.ok(&["create", "configmap", "c1", "--from-literal=a=b"]);
    s.ok(&["create", "deployment", "d1", "--image=nginx"]);
    s.ok(&["set", "env", "deployment/d1", "--from=configmap/c1"]);
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "d1",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env[0].valueFrom.configMapKeyRef.name}"
        ]),
        "c1"
    );
}
