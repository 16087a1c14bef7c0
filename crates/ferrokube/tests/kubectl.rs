#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real kubectl against `ferrokube server`: the judge of API compatibility.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{lines, start, KUBECTL};

#[test]
fn kubectl_basics() {
    if !Path::new(KUBECTL).exists() {
        panic!("{KUBECTL} is required for this test");
    }
    let s = start();
    assert!(s
        .ok(&["cluster-info"])
        .contains("Kubernetes control plane is running at https://127.0.0.1:"));
    let version = s.ok(&["version", "-o", "json"]);
    assert!(version.contains("\"minor\": \"33\""), "{version}");

    // The namespaces every cluster has.
    let ns = lines(&s.ok(&["get", "namespaces"]));
    assert_eq!(ns[0], ["NAME", "STATUS", "AGE"]);
    let names: Vec<&str> = ns[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    assert!(ns[1..].iter().all(|r| r[1] == "Active"));

    // api-resources and api-versions come from discovery.
    let resources = s.ok(&["api-resources"]);
    for want in ["pods", "deployments", "customresourcedefinitions", "leases"] {
        assert!(
            resources.contains(want),
            "{want} missing from api-resources:\n{resources}"
        );
    }
    assert!(s
        .ok(&["api-resources", "--namespaced=false", "-o", "name"])
        .lines()
        .any(|l| l == "namespaces"));
    let versions = s.ok(&["api-versions"]);
    assert!(
        versions.lines().any(|l| l == "apps/v1") && versions.lines().any(|l| l == "v1"),
        "{versions}"
    );

    // Namespaced objects from manifests (`create -f` sends JSON and validates through the
    // OpenAPI v3 documents): get in every output, label, patch, delete.
    let apply = |args: &[&str], doc: &str| {
        let mut full = vec!["create", "-f", "-"];
        full.extend_from_slice(args);
        let o = s.kubectl_stdin(&full, Some(doc));
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, out, err) = apply(
        &[],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n",
    );
    assert!(ok, "{out}{err}");
    assert_eq!(out, "namespace/demo created\n");
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  color: blue\n  size: L\n";
    assert!(apply(&["-n", "demo"], cm).0);
    let cm = lines(&s.ok(&["-n", "demo", "get", "configmap", "app"]));
    assert_eq!(cm[0], ["NAME", "DATA", "AGE"]);
    assert_eq!(cm[1][..2], ["app".to_string(), "2".to_string()]);
    assert_eq!(
        s.ok(&[
            "-n",
            "demo",
            "get",
            "cm",
            "app",
            "-o",
            "jsonpath={.data.color}"
        ]),
        "blue"
    );
    let yaml = s.ok(&["-n", "demo", "get", "cm", "app", "-o", "yaml"]);
    assert!(
        yaml.contains("uid:")
            && yaml.contains("resourceVersion:")
            && yaml.contains("creationTimestamp:"),
        "{yaml}"
    );
    s.ok(&["-n", "demo", "label", "cm", "app", "tier=web"]);
    assert_eq!(
        s.ok(&["-n", "demo", "get", "cm", "-l", "tier=web", "-o", "name"]),
        "configmap/app\n"
    );
    assert_eq!(
        s.ok(&["-n", "demo", "get", "cm", "-l", "tier!=web", "-o", "name"]),
        ""
    );
    s.ok(&["-n", "demo", "annotate", "cm", "app", "note=hello"]);
    s.ok(&[
        "-n",
        "demo",
        "patch",
        "cm",
        "app",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"color":"green"}}"#,
    ]);
    s.ok(&[
        "-n",
        "demo",
        "patch",
        "cm",
        "app",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/data/size"}]"#,
    ]);
    s.ok(&[
        "-n",
        "demo",
        "patch",
        "cm",
        "app",
        "-p",
        r#"{"data":{"shape":"round"}}"#,
    ]);
    assert_eq!(
        s.ok(&["-n", "demo", "get", "cm", "app", "-o", "jsonpath={.data}"]),
        r#"{"color":"green","shape":"round"}"#
    );
    let all = s.ok(&["get", "cm", "-A", "-o", "name"]);
    assert!(all.contains("configmap/app"), "{all}");
    let uid = s.ok(&[
        "-n",
        "demo",
        "get",
        "cm",
        "app",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    assert_eq!(uid.len(), 36, "{uid}");

    // A Deployment: wide columns, strategic merge patch of a container by name, generation.
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - {name: web, image: httpd}\n      - {name: side, image: busybox}\n";
    assert!(apply(&["-n", "demo"], deploy).0);
    let wide = lines(&s.ok(&["-n", "demo", "get", "deploy", "web", "-o", "wide"]));
    assert_eq!(
        wide[0],
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        wide[1][5..],
        [
            "web,side".to_string(),
            "httpd,busybox".to_string(),
            "app=web".to_string()
        ]
    );
    s.ok(&[
        "-n",
        "demo",
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx"}]}}}}"#,
    ]);
    let images = s.ok(&[
        "-n",
        "demo",
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].image} {.metadata.generation}",
    ]);
    assert_eq!(images, "nginx busybox 2");

    s.ok(&["-n", "demo", "delete", "cm", "app"]);
    let err = s.fails(&["-n", "demo", "get", "cm", "app"]);
    assert!(
        err.contains("Error from server (NotFound): configmaps \"app\" not found"),
        "{err}"
    );

    // Errors the way upstream words them.
    let (ok, _, err) = apply(
        &["-n", "demo"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n",
    );
    assert!(
        !ok && err.contains("is invalid") && err.contains("metadata.name"),
        "{err}"
    );
    let (ok, _, err) = apply(
        &["-n", "nowhere"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    );
    assert!(
        !ok && err.contains("namespaces \"nowhere\" not found"),
        "{err}"
    );
    assert!(
        apply(
            &["-n", "demo"],
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n"
        )
        .0
    );
    let (ok, _, err) = apply(
        &["-n", "demo"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n",
    );
    assert!(
        !ok && err.contains("AlreadyExists") && err.contains("configmaps \"dup\" already exists"),
        "{err}"
    );
    let err = s.fails(&["get", "nosuchthings"]);
    assert!(
        err.contains("the server doesn't have a resource type \"nosuchthings\""),
        "{err}"
    );

    // kubectl's typed commands send protobuf bodies.
    s.ok(&["create", "namespace", "typed"]);
    s.ok(&[
        "-n",
        "typed",
        "create",
        "configmap",
        "cm1",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);
    s.ok(&[
        "-n",
        "typed",
        "create",
        "secret",
        "generic",
        "sec1",
        "--from-literal=password=s3cret",
    ]);
    s.ok(&[
        "-n",
        "typed",
        "create",
        "deployment",
        "web",
        "--image=httpd",
        "--replicas=3",
    ]);
    s.ok(&[
        "-n",
        "typed",
        "run",
        "pod1",
        "--image=busybox",
        "--labels=app=one",
        "--",
        "sleep",
        "10",
    ]);
    s.ok(&["-n", "typed", "expose", "deployment", "web", "--port=80"]);
    assert_eq!(
        s.ok(&[
            "-n",
            "typed",
            "get",
            "cm",
            "cm1",
            "-o",
            "jsonpath={.data.b}"
        ]),
        "2"
    );
    let secret = lines(&s.ok(&["-n", "typed", "get", "secret", "sec1"]));
    assert_eq!(
        secret[1][..3],
        ["sec1".to_string(), "Opaque".to_string(), "1".to_string()]
    );
    assert_eq!(
        s.ok(&[
            "-n",
            "typed",
            "get",
            "secret",
            "sec1",
            "-o",
            "jsonpath={.data.password}"
        ]),
        "czNjcmV0"
    );
    assert_eq!(
        s.ok(&[
            "-n",
            "typed",
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}"
        ]),
        "3 httpd"
    );
    assert_eq!(
        s.ok(&[
            "-n",
            "typed",
            "get",
            "pods",
            "-l",
            "app=one",
            "-o",
            "jsonpath={.items[0].spec.containers[0].args}"
        ]),
        r#"["sleep","10"]"#
    );
    assert_eq!(
        s.ok(&[
            "-n",
            "typed",
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].port} {.spec.selector.app}"
        ]),
        "80 web"
    );
    let all = s.ok(&["-n", "typed", "get", "all", "-o", "name"]);
    assert_eq!(all, "pod/pod1\nservice/web\ndeployment.apps/web\n");

    // kubectl scale goes through the scale subresource.
    s.ok(&["-n", "typed", "scale", "deployment", "web", "--replicas=5"]);
    assert_eq!(
        s.ok(&[
            "-n",
            "typed",
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.generation}"
        ]),
        "5 2"
    );
    let err = s.fails(&[
        "-n",
        "typed",
        "scale",
        "deployment",
        "web",
        "--current-replicas=3",
        "--replicas=1",
    ]);
    assert!(err.contains("Expected replicas to be 3, was 5"), "{err}");

    // Upstream's defaulting.
    let defaults = s.ok(&[
        "-n", "typed", "get", "deploy", "web", "-o",
        "jsonpath={.spec.strategy.rollingUpdate.maxSurge} {.spec.revisionHistoryLimit} {.spec.template.spec.restartPolicy} {.spec.template.spec.containers[0].imagePullPolicy}",
    ]);
    assert_eq!(defaults, "25% 10 Always Always");
    let svc = s.ok(&[
        "-n",
        "typed",
        "get",
        "svc",
        "web",
        "-o",
        "jsonpath={.spec.type} {.spec.sessionAffinity} {.spec.ports[0].protocol}",
    ]);
    assert_eq!(svc, "ClusterIP None TCP");

    // apply of a multi-document file (validated through OpenAPI v3), again (unchanged),
    // Secret stringData folded into data, and explain.
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: demo\ndata:\n  k: v\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: applied\n  namespace: demo\nstringData:\n  k: v\n";
    let o = s.kubectl_stdin(&["apply", "-f", "-"], Some(manifest));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "configmap/applied created\nsecret/applied created\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = s.kubectl_stdin(&["apply", "-f", "-"], Some(manifest));
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("configmap/applied unchanged\n"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(
        s.ok(&[
            "-n",
            "demo",
            "get",
            "secret",
            "applied",
            "-o",
            "jsonpath={.data.k}{.stringData}"
        ]),
        "dg=="
    );
    let explain = s.ok(&["explain", "deployment.spec.replicas"]);
    assert!(explain.contains("FIELD: replicas <integer>"), "{explain}");

    // Unknown fields: kubectl's default (Strict) refuses them; with --validate=warn they
    // are dropped with a warning and never stored.
    let typo = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\n  namespace: demo\ndatta:\n  a: b\n";
    let o = s.kubectl_stdin(&["apply", "-f", "-"], Some(typo));
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains(r#"strict decoding error: unknown field "datta""#),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = s.kubectl_stdin(&["apply", "--validate=warn", "-f", "-"], Some(typo));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(r#"Warning: unknown field "datta""#),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        s.ok(&["-n", "demo", "get", "cm", "typo", "-o", "jsonpath={.datta}"]),
        ""
    );

    // describe, --sort-by with custom columns, diff, edit, wait --for=delete.
    s.ok(&[
        "-n",
        "demo",
        "create",
        "configmap",
        "b2",
        "--from-literal=x=2",
    ]);
    s.ok(&[
        "-n",
        "demo",
        "create",
        "configmap",
        "a1",
        "--from-literal=x=1",
    ]);
    let described = s.ok(&["-n", "typed", "describe", "deployment", "web"]);
    assert!(
        described.contains("RollingUpdateStrategy:  25% max unavailable, 25% max surge"),
        "{described}"
    );
    let sorted = s.ok(&[
        "-n",
        "demo",
        "get",
        "cm",
        "a1",
        "b2",
        "--sort-by=.metadata.name",
        "-o",
        "custom-columns=NAME:.metadata.name,X:.data.x",
    ]);
    assert_eq!(lines(&sorted), [["NAME", "X"], ["a1", "1"], ["b2", "2"]]);
    let live = s.ok(&["-n", "demo", "get", "cm", "a1", "-o", "yaml"]);
    let o = s.kubectl_stdin(
        &["diff", "-f", "-"],
        Some(&live.replace("x: \"1\"", "x: \"9\"")),
    );
    let diff = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{diff}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(changed, ["-  x: \"1\"", "+  x: \"9\""], "{diff}");
    let editor = s.cache.parent().unwrap().join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/x: \"1\"/x: \"5\"/' \"$1\"\n").unwrap();
    std::process::Command::new("chmod")
        .args(["+x", editor.to_str().unwrap()])
        .status()
        .unwrap();
    let o = std::process::Command::new(KUBECTL)
        .args(["-n", "demo", "edit", "cm", "a1"])
        .env("KUBECONFIG", &s.kubeconfig)
        .env("KUBECACHEDIR", &s.cache)
        .env("EDITOR", &editor)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        s.ok(&["-n", "demo", "get", "cm", "a1", "-o", "jsonpath={.data.x}"]),
        "5"
    );
    let waiter = std::process::Command::new(KUBECTL)
        .args([
            "-n",
            "demo",
            "wait",
            "--for=delete",
            "cm/b2",
            "--timeout=20s",
        ])
        .env("KUBECONFIG", &s.kubeconfig)
        .env("KUBECACHEDIR", &s.cache)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    s.ok(&["-n", "demo", "delete", "cm", "b2"]);
    let waited = waiter.wait_with_output().unwrap();
    assert!(waited.status.success());
    assert_eq!(
        String::from_utf8_lossy(&waited.stdout),
        "configmap/b2 condition met\n"
    );

    // Health endpoints as upstream's healthz package serves them.
    assert_eq!(
        s.ok(&["get", "--raw", "/readyz?verbose&exclude=log"]),
        "[+]ping ok\n[+]etcd ok\n[+]log excluded: ok\nreadyz check passed\n"
    );
    assert_eq!(s.ok(&["get", "--raw", "/livez/etcd"]), "ok");
    assert!(s
        .fails(&["get", "--raw", "/readyz/nope"])
        .contains("NotFound"));

    // componentstatuses, as the seeds show them (no scheduler or controller-manager runs).
    let o = s.kubectl(&["get", "componentstatuses"]);
    let cs = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("v1 ComponentStatus is deprecated in v1.19+")
    );
    let rows = lines(&cs);
    assert_eq!(rows[0], ["NAME", "STATUS", "MESSAGE", "ERROR"]);
    assert!(
        rows.iter().any(|r| r[..3]
            == [
                "etcd-0".to_string(),
                "Healthy".to_string(),
                "ok".to_string()
            ]),
        "{cs}"
    );
    assert!(
        rows.iter()
            .any(|r| r[..2] == ["scheduler".to_string(), "Unhealthy".to_string()]),
        "{cs}"
    );

    // Prometheus metrics with upstream's names.
    let metrics = s.ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics.contains(r#"apiserver_request_total{code="201",component="apiserver",group="",resource="configmaps",scope="namespace",subresource="",verb="POST",version="v1"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("apiserver_request_duration_seconds_bucket{"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"apiserver_storage_objects{resource="namespaces"} 6"#),
        "{metrics}"
    );
}

#[test]
fn kubectl_watch_sees_a_change() {
    let s = start();
    let cm = |name: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n");
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(&cm("w1")))
        .status
        .success());
    let mut watch = Command::new(KUBECTL)
        .args([
            "get",
            "configmaps",
            "-w",
            "-o",
            "name",
            "--request-timeout=20s",
        ])
        .env("KUBECONFIG", &s.kubeconfig)
        .env("KUBECACHEDIR", &s.cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(watch.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert_eq!(first.trim(), "configmap/w1");
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(&cm("w2")))
        .status
        .success());
    let mut second = String::new();
    out.read_line(&mut second).unwrap();
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(second.trim(), "configmap/w2");
}

#[test]
fn propagation_policy_sets_exactly_its_gc_finalizer() {
    let s = start();
    let cm =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, finalizers: [example.com/keep]}\n";
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(cm))
        .status
        .success());
    let finalizers =
        |s: &common::Server| s.ok(&["get", "cm", "held", "-o", "jsonpath={.metadata.finalizers}"]);
    s.ok(&[
        "delete",
        "cm",
        "held",
        "--cascade=foreground",
        "--wait=false",
    ]);
    assert_eq!(
        finalizers(&s),
        r#"["example.com/keep","foregroundDeletion"]"#
    );
    s.ok(&["delete", "cm", "held", "--cascade=orphan", "--wait=false"]);
    assert_eq!(finalizers(&s), r#"["example.com/keep","orphan"]"#);
    s.ok(&[
        "delete",
        "cm",
        "held",
        "--cascade=background",
        "--wait=false",
    ]);
    assert_eq!(finalizers(&s), r#"["example.com/keep"]"#);
}

#[test]
fn endpoints_and_slices_print_their_addresses() {
    let s = start();
    let ep = "apiVersion: v1\nkind: Endpoints\nmetadata: {name: web}\nsubsets:\n- addresses: [{ip: 10.0.0.1}, {ip: 10.0.0.2}]\n  ports: [{name: http, port: 80}, {name: https, port: 443}]\n";
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(ep))
        .status
        .success());
    let out = s.ok(&["get", "endpoints", "web", "--no-headers"]);
    assert!(
        out.contains("10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."),
        "{out}"
    );
    let slice = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-abc, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{port: 80}]\nendpoints: [{addresses: [10.0.0.1]}]\n";
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(slice))
        .status
        .success());
    let out = s.ok(&["get", "endpointslices", "web-abc"]);
    assert!(
        out.contains("ADDRESSTYPE") && out.contains("IPv4") && out.contains("10.0.0.1"),
        "{out}"
    );
    // Generation moves with the endpoints and labels, as upstream's strategy does.
    let generation = |s: &common::Server| {
        s.ok(&[
            "get",
            "endpointslice",
            "web-abc",
            "-o",
            "jsonpath={.metadata.generation}",
        ])
    };
    assert_eq!(generation(&s), "1");
    s.ok(&["label", "endpointslice", "web-abc", "x=y"]);
    assert_eq!(generation(&s), "2");
    s.ok(&["annotate", "endpointslice", "web-abc", "a=b"]);
    assert_eq!(generation(&s), "2");
}
