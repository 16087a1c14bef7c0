#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Group-versions served from another version's storage: events.k8s.io/v1 Events are
//! core v1 Events, autoscaling/v1 HorizontalPodAutoscalers are autoscaling/v2 ones.

mod common;

use common::{lines, start};

#[test]
fn converted_versions_with_kubectl() {
    let s = start();
    let versions = s.ok(&["api-versions"]);
    for v in ["events.k8s.io/v1", "autoscaling/v1", "autoscaling/v2"] {
        assert!(versions.lines().any(|l| l == v), "{v} missing:\n{versions}");
    }
    let apply = |doc: &str| {
        let o = s.kubectl_stdin(&["apply", "-f", "-"], Some(doc));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };

    // An events.k8s.io/v1 Event reads back through core v1 with the old field names.
    apply("apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: ev1}\neventTime: \"2026-01-01T00:00:00.000000Z\"\nreportingController: ctl\nreportingInstance: ctl-1\naction: Test\nreason: Tested\nnote: hello world\ntype: Normal\nregarding: {kind: Pod, name: p1, namespace: default}\n");
    assert_eq!(
        s.ok(&[
            "get",
            "events.v1.",
            "ev1",
            "-o",
            "jsonpath={.apiVersion} {.message} {.involvedObject.name} {.reportingComponent}"
        ]),
        "v1 hello world p1 ctl"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "events.v1.events.k8s.io",
            "ev1",
            "-o",
            "jsonpath={.apiVersion} {.note} {.regarding.name}"
        ]),
        "events.k8s.io/v1 hello world p1"
    );
    let table = lines(&s.ok(&["get", "events"]));
    assert_eq!(table[1][1..4], ["Normal", "Tested", "pod/p1"]);

    // autoscaling/v1 in, v2 out, and back, with nothing lost.
    apply("apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 2\n  maxReplicas: 5\n  targetCPUUtilizationPercentage: 70\n");
    assert_eq!(
        s.ok(&[
            "get",
            "horizontalpodautoscalers.v2.autoscaling",
            "web",
            "-o",
            "jsonpath={.spec.metrics[0].resource.target.averageUtilization} {.spec.minReplicas}"
        ]),
        "70 2"
    );
    s.ok(&[
        "patch",
        "horizontalpodautoscalers.v2.autoscaling",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":50}}},{"type":"Resource","resource":{"name":"memory","target":{"type":"AverageValue","averageValue":"1Gi"}}}]}}"#,
    ]);
    let v1 = s.ok(&[
        "get",
        "--raw",
        "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/web",
    ]);
    assert!(
        v1.contains(r#""targetCPUUtilizationPercentage":50"#),
        "{v1}"
    );
    assert!(
        v1.contains("autoscaling.alpha.kubernetes.io/metrics"),
        "{v1}"
    );
    // A v1 patch keeps the v2-only metric (it travels in the annotation).
    s.ok(&[
        "patch",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"maxReplicas":9}}"#,
    ]);
    assert_eq!(
        s.ok(&[
            "get",
            "horizontalpodautoscalers.v2.autoscaling",
            "web",
            "-o",
            "jsonpath={.spec.maxReplicas} {.spec.metrics[1].resource.name}"
        ]),
        "9 memory"
    );
    let v2 = s.ok(&[
        "get",
        "--raw",
        "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/web",
    ]);
    assert!(!v2.contains("autoscaling.alpha.kubernetes.io"), "{v2}");
    let hpa = lines(&s.ok(&["get", "hpa"]));
    assert_eq!(
        hpa[0],
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]
    );
    assert_eq!(hpa[1][1..3], ["Deployment/web", "cpu:"]);
}
