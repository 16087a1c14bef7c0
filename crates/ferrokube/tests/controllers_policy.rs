#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The resource quota, disruption (PodDisruptionBudget) and horizontal pod autoscaler
//! controllers against a real API server, judged with kubectl. No kubelet: the test
//! sets pod phases and readiness where a kubelet would.

mod common;

use common::{controller_manager, start, wait_until, Server};

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

fn pod_yaml(name: &str, cpu: &str, memory: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources:\n      requests:\n        cpu: {cpu}\n        memory: {memory}\n"
    )
}

fn set_status(s: &Server, pod: &str, phase: &str, ready: bool) {
    let patch = format!(
        r#"{{"status":{{"phase":"{phase}","conditions":[{{"type":"Ready","status":"{}","lastTransitionTime":"2024-01-01T00:00:00Z"}}]}}}}"#,
        if ready { "True" } else { "False" }
    );
    s.ok(&[
        "patch",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ]);
}

fn used(s: &Server, name: &str) -> String {
    jsonpath(
        s,
        &["resourcequota", "q"],
        &format!("{{.status.used.{name}}}"),
    )
}

#[test]
fn quota_usage_follows_objects() {
    let s = start();
    create(
        &s,
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: q\nspec:\n  hard:\n    pods: \"5\"\n    configmaps: \"10\"\n    requests.cpu: \"2\"\n    requests.memory: 1Gi\n    count/deployments.apps: \"3\"\n    services.nodeports: \"2\"\n",
    );
    let _cm = controller_manager(&s, &["--controllers=resourcequota"]);
    wait_until("quota status", 30, || {
        jsonpath(&s, &["resourcequota", "q"], "{.status.hard.pods}") == "5"
            && used(&s, "pods") == "0"
            && used(&s, "configmaps") == "0"
            && used(&s, "count/deployments\\.apps") == "0"
            && used(&s, "requests\\.cpu") == "0"
    });
    create(&s, &pod_yaml("a", "250m", "64Mi"));
    create(&s, &pod_yaml("b", "250m", "64Mi"));
    create(
        &s,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  k: v\n",
    );
    s.ok(&["create", "deployment", "d", "--image=busybox"]);
    wait_until("usage of two pods, a config map, a deployment", 30, || {
        used(&s, "pods") == "2"
            && used(&s, "requests\\.cpu") == "500m"
            && used(&s, "requests\\.memory") == "128Mi"
            && used(&s, "configmaps") == "1"
            && used(&s, "count/deployments\\.apps") == "1"
    });
    // A finished pod no longer counts; deletions are seen by the controller alone.
    set_status(&s, "pod/a", "Succeeded", false);
    s.ok(&["delete", "configmap", "cm"]);
    s.ok(&["delete", "deployment", "d"]);
    wait_until("usage after a pod finished and deletions", 30, || {
        used(&s, "pods") == "1"
            && used(&s, "requests\\.cpu") == "250m"
            && used(&s, "requests\\.memory") == "64Mi"
            && used(&s, "configmaps") == "0"
            && used(&s, "count/deployments\\.apps") == "0"
    });
    s.ok(&["create", "service", "nodeport", "np", "--tcp=80:80"]);
    wait_until("node ports counted", 30, || {
        used(&s, "services\\.nodeports") == "1"
    });
    let out = s.ok(&["describe", "quota", "q"]);
    let row = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(row("pods"), ["pods", "1", "5"], "{out}");
    assert_eq!(row("requests.cpu"), ["requests.cpu", "250m", "2"], "{out}");
    assert_eq!(
        row("requests.memory"),
        ["requests.memory", "64Mi", "1Gi"],
        "{out}"
    );
    // Admission keeps refusing what the quota does not allow.
    let err = s.fails(&["create", "service", "nodeport", "np2", "--tcp=81:81,82:82"]);
    assert!(err.contains("exceeded quota: q"), "{err}");
}

#[test]
fn quota_scopes_and_storage() {
    let s = start();
    s.ok(&["create", "namespace", "scoped"]);
    create(
        &s,
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: be\n  namespace: scoped\nspec:\n  scopes: [BestEffort]\n  hard:\n    pods: \"3\"\n---\napiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: storage\n  namespace: scoped\nspec:\n  hard:\n    requests.storage: 10Gi\n    persistentvolumeclaims: \"4\"\n    gold.storageclass.storage.k8s.io/requests.storage: 5Gi\n",
    );
    let _cm = controller_manager(&s, &["--controllers=resourcequota"]);
    s.ok(&["-n", "scoped", "run", "besteffort", "--image=busybox"]);
    let burstable = pod_yaml("burstable", "100m", "32Mi")
        .replace("metadata:\n", "metadata:\n  namespace: scoped\n");
    create(&s, &burstable);
    let claim = |name: &str, class: &str, size: &str| {
        format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\n  namespace: scoped\nspec:\n  storageClassName: {class}\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: {size}\n"
        )
    };
    create(&s, &claim("c1", "gold", "1Gi"));
    create(&s, &claim("c2", "silver", "512Mi"));
    let used = |q: &str, name: &str| {
        jsonpath(
            &s,
            &["-n", "scoped", "resourcequota", q],
            &format!("{{.status.used.{name}}}"),
        )
    };
    // Only the BestEffort pod is in the scope.
    wait_until("scoped and storage usage", 30, || {
        used("be", "pods") == "1"
            && used("storage", "requests\\.storage") == "1536Mi"
            && used("storage", "persistentvolumeclaims") == "2"
            && used(
                "storage",
                "gold\\.storageclass\\.storage\\.k8s\\.io/requests\\.storage",
            ) == "1Gi"
    });
}

fn rs_yaml(name: &str, replicas: i32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n        resources:\n          requests:\n            cpu: 100m\n"
    )
}

fn pods_of(s: &Server, app: &str) -> Vec<String> {
    s.ok(&["get", "pods", "-l", &format!("app={app}"), "-o", "name"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn evict(s: &Server, pod: &str) -> std::process::Output {
    let name = pod.trim_start_matches("pod/");
    let body = format!(
        r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{name}","namespace":"default"}}}}"#
    );
    s.kubectl_stdin(
        &[
            "create",
            "--raw",
            &format!("/api/v1/namespaces/default/pods/{name}/eviction"),
            "-f",
            "-",
        ],
        Some(&body),
    )
}

#[test]
fn disruption_budget_status_and_evictions() {
    let s = start();
    let _cm = controller_manager(&s, &["--controllers=disruption,replicaset"]);
    create(&s, &rs_yaml("web", 3));
    wait_until("three pods", 30, || pods_of(&s, "web").len() == 3);
    for p in pods_of(&s, "web") {
        set_status(&s, &p, "Running", true);
    }
    create(
        &s,
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\nspec:\n  minAvailable: 2\n  selector:\n    matchLabels:\n      app: web\n",
    );
    let status = |s: &Server| {
        jsonpath(
            s,
            &["pdb", "web"],
            "{.status.currentHealthy} {.status.desiredHealthy} {.status.expectedPods} {.status.disruptionsAllowed} {.status.conditions[0].status} {.status.conditions[0].reason}",
        )
    };
    wait_until("PDB status with one disruption allowed", 30, || {
        status(&s) == "3 2 3 1 True SufficientPods"
    });
    let victims = pods_of(&s, "web");
    let first = evict(&s, &victims[0]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // The budget is spent until the controller sees a healthy replacement.
    let second = evict(&s, &victims[1]);
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{err}"
    );
    assert!(
        err.contains("TooManyRequests") || err.contains("429"),
        "{err}"
    );
    // The replacement is not ready: two healthy pods, none may go.
    wait_until("PDB status after the eviction", 30, || {
        status(&s) == "2 2 3 0 False InsufficientPods"
    });
    // Ready again: one more disruption allowed.
    wait_until("a replacement pod", 30, || pods_of(&s, "web").len() == 3);
    for p in pods_of(&s, "web") {
        set_status(&s, &p, "Running", true);
    }
    wait_until("PDB status recovered", 30, || {
        status(&s) == "3 2 3 1 True SufficientPods"
    });
    // Percentages resolve against the controller's scale.
    create(&s, &rs_yaml("api", 4));
    create(
        &s,
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: api\nspec:\n  maxUnavailable: 30%\n  selector:\n    matchLabels:\n      app: api\n",
    );
    wait_until("percentage PDB status", 30, || {
        jsonpath(
            &s,
            &["pdb", "api"],
            "{.status.expectedPods} {.status.desiredHealthy} {.status.disruptionsAllowed}",
        ) == "4 2 0"
    });
}

#[test]
fn hpa_scales_to_min_replicas_without_metrics() {
    // No metrics API at all (the server's metrics-server left out).
    let s = common::start_with(&[
        "--disable-scheduler",
        "--disable-controller-manager",
        "--disable-agent",
        "--disable-metrics-server",
    ]);
    let _cm = controller_manager(
        &s,
        &[
            "--controllers=horizontalpodautoscaling,replicaset",
            "--horizontal-pod-autoscaler-sync-period=1s",
        ],
    );
    create(&s, &rs_yaml("target", 1));
    create(
        &s,
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: h\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: ReplicaSet\n    name: target\n  minReplicas: 3\n  maxReplicas: 5\n  metrics:\n  - type: Resource\n    resource:\n      name: cpu\n      target:\n        type: Utilization\n        averageUtilization: 50\n",
    );
    wait_until("the target scaled to minReplicas", 30, || {
        jsonpath(&s, &["rs", "target"], "{.spec.replicas}") == "3"
    });
    wait_until("ScalingActive False", 30, || {
        jsonpath(
            &s,
            &["hpa", "h"],
            "{.status.conditions[?(@.type==\"ScalingActive\")].reason}",
        ) == "FailedGetResourceMetric"
    });
    assert_eq!(
        jsonpath(
            &s,
            &["hpa", "h"],
            "{.status.currentReplicas} {.status.desiredReplicas}"
        ),
        "3 3"
    );
    let out = s.ok(&["describe", "hpa", "h"]);
    assert!(
        out.contains("ScalingActive") && out.contains("FailedGetResourceMetric"),
        "{out}"
    );
    assert!(
        out.contains("the server could not find the requested resource (get pods.metrics.k8s.io)"),
        "{out}"
    );
    assert!(out.contains("AbleToScale"), "{out}");
    wait_until("events", 30, || {
        let ev = s.ok(&["get", "events", "--field-selector", "involvedObject.name=h"]);
        ev.contains("New size: 3; reason: Current number of replicas below Spec.MinReplicas")
            && ev.contains("FailedComputeMetricsReplicas")
            && ev.contains("FailedGetResourceMetric")
    });
    // Above maxReplicas: scaled down to it.
    s.ok(&["scale", "rs", "target", "--replicas=8"]);
    wait_until("the target scaled to maxReplicas", 30, || {
        jsonpath(&s, &["rs", "target"], "{.spec.replicas}") == "5"
    });
    // A second HPA over the same pods: both report the ambiguity.
    create(
        &s,
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: h2\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: ReplicaSet\n    name: target\n  minReplicas: 1\n  maxReplicas: 10\n",
    );
    let reason = |name: &str| {
        jsonpath(
            &s,
            &["hpa", name],
            "{.status.conditions[?(@.type==\"ScalingActive\")].reason}",
        )
    };
    wait_until("AmbiguousSelector on both HPAs", 30, || {
        reason("h") == "AmbiguousSelector" && reason("h2") == "AmbiguousSelector"
    });
    let msg = jsonpath(
        &s,
        &["hpa", "h2"],
        "{.status.conditions[?(@.type==\"ScalingActive\")].message}",
    );
    assert_eq!(
        msg,
        "pods by selector app=target are controlled by multiple HPAs: [default/h default/h2]"
    );
    s.ok(&["delete", "hpa", "h2"]);
    // `kubectl autoscale` on a Deployment: its scale subresource is used.
    s.ok(&["create", "deployment", "web", "--image=busybox"]);
    s.ok(&[
        "autoscale",
        "deployment",
        "web",
        "--min=2",
        "--max=4",
        "--cpu-percent=50",
    ]);
    wait_until("the deployment scaled to --min", 30, || {
        jsonpath(&s, &["deployment", "web"], "{.spec.replicas}") == "2"
    });
    wait_until("the deployment's HPA status", 30, || {
        jsonpath(
            &s,
            &["hpa", "web"],
            "{.status.currentReplicas} {.status.desiredReplicas} {.status.conditions[?(@.type==\"AbleToScale\")].status}",
        ) == "2 2 True"
    });
}
