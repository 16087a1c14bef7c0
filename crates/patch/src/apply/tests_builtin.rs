//! Server-side apply against the built-in schemas the API server serves
//! (`crates/apiserver/openapi/v3`): kubectl's typical flows and the exact managed fields
//! upstream records for them.

use std::sync::Arc;

use serde_json::{json, Value};

use super::tests::{entries, fields, T1, T2, T3};
use super::*;

fn builtin(file: &str, kind: &str) -> TypeSchema {
    let path = format!(
        "{}/../apiserver/openapi/v3/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let Value::Object(components) = doc["components"]["schemas"].clone() else {
        panic!("no schemas")
    };
    TypeSchema::new(
        Arc::new(components),
        json!({"$ref": format!("#/components/schemas/{kind}")}),
    )
}

fn apps<'a>(name: &'a str, time: &'a str) -> Manager<'a> {
    Manager {
        name,
        api_version: "apps/v1",
        time,
        subresource: "",
        reset_fields: &[&["status"]],
    }
}

/// What `kubectl create deployment nginx --image=nginx` stores, defaults included.
fn created_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": "default", "uid": "u-1", "generation": 1,
            "creationTimestamp": "2024-01-01T00:00:01Z", "labels": {"app": "nginx"}},
        "spec": {
            "replicas": 1, "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "nginx"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "nginx"}},
                "spec": {
                    "containers": [{"name": "nginx", "image": "nginx", "imagePullPolicy": "Always",
                        "resources": {}, "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"}],
                    "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                    "securityContext": {}, "terminationGracePeriodSeconds": 30
                }
            }
        },
        "status": {}
    })
}

fn applied_deployment(replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}
            }
        }
    })
}

#[test]
fn kubectl_create_records_what_upstream_records() {
    let s = builtin("apis_apps_v1.json", "io.k8s.api.apps.v1.Deployment");
    let out = update(&s, None, &created_deployment(), &apps("kubectl-create", T1)).unwrap();
    // Upstream's bytes (kubectl prints the same object with sorted keys).
    assert_eq!(
        fields(&out, "kubectl-create", "Update").unwrap(),
        concat!(
            r#"{"f:metadata":{"f:labels":{"f:app":{},".":{}}},"#,
            r#""f:spec":{"f:progressDeadlineSeconds":{},"f:replicas":{},"f:revisionHistoryLimit":{},"f:selector":{},"#,
            r#""f:strategy":{"f:rollingUpdate":{"f:maxSurge":{},"f:maxUnavailable":{},".":{}},"f:type":{}},"#,
            r#""f:template":{"f:metadata":{"f:labels":{"f:app":{},".":{}}},"#,
            r#""f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},"#,
            r#""f:terminationMessagePath":{},"f:terminationMessagePolicy":{},".":{}}},"#,
            r#""f:dnsPolicy":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}}}"#
        )
    );
    let e = &entries(&out)[0];
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["operation"], "Update");
    assert_eq!(e["time"], T1);
}

#[test]
fn kubectl_server_side_apply_after_create_conflicts_then_forces() {
    let s = builtin("apis_apps_v1.json", "io.k8s.api.apps.v1.Deployment");
    let live = update(&s, None, &created_deployment(), &apps("kubectl-create", T1)).unwrap();

    let err = apply(
        &s,
        Some(&live),
        &applied_deployment(3),
        &apps("kubectl", T2),
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl-create\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
    );
    let ApplyError::Conflicts(conflicts) = err else {
        panic!()
    };
    assert_eq!(
        conflicts.0[0].cause_message(),
        "conflict with \"kubectl-create\" using apps/v1"
    );
    assert_eq!(
        conflicts.0[1].field_path,
        ".spec.template.spec.containers[name=\"nginx\"].image"
    );

    let out = apply(
        &s,
        Some(&live),
        &applied_deployment(3),
        &apps("kubectl", T2),
        true,
    )
    .unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    let container = &out["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert_eq!(
        container["imagePullPolicy"], "Always",
        "fields of others are kept"
    );
    assert_eq!(container["ports"], json!([{"containerPort": 80}]));
    assert_eq!(
        fields(&out, "kubectl", "Apply").unwrap(),
        concat!(
            r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"#,
            r#""f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{"#,
            r#""f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{"f:containerPort":{},".":{}}},".":{}}}}}}}"#
        )
    );
    let create = fields(&out, "kubectl-create", "Update").unwrap();
    assert!(
        !create.contains("f:replicas") && !create.contains("\"f:image\""),
        "{create}"
    );
    assert!(create.contains("f:imagePullPolicy"));
    let ops: Vec<String> = entries(&out)
        .iter()
        .map(|e| e["operation"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ops, ["Apply", "Update"]);

    // Re-applying the same configuration is a no-op that keeps the apply time.
    let again = apply(
        &s,
        Some(&out),
        &applied_deployment(3),
        &apps("kubectl", T3),
        false,
    )
    .unwrap();
    assert_eq!(
        again["metadata"]["managedFields"],
        out["metadata"]["managedFields"]
    );

    // Dropping the port from the configuration removes it; the container stays.
    let mut fewer = applied_deployment(3);
    fewer["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("ports");
    let out = apply(&s, Some(&again), &fewer, &apps("kubectl", T3), false).unwrap();
    let container = &out["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container.get("ports").is_none_or(Value::is_null),
        "{container}"
    );
    assert_eq!(container["imagePullPolicy"], "Always");
}

#[test]
fn status_is_reset_for_the_main_resource_and_owned_through_status() {
    let s = builtin("apis_apps_v1.json", "io.k8s.api.apps.v1.Deployment");
    let live = update(&s, None, &created_deployment(), &apps("kubectl-create", T1)).unwrap();
    let mut next = live.clone();
    next["status"] = json!({"replicas": 1, "observedGeneration": 1});
    let status = Manager {
        subresource: "status",
        reset_fields: &[
            &["spec"],
            &["metadata", "labels"],
            &["metadata", "annotations"],
        ],
        ..apps("kube-controller-manager", T2)
    };
    let out = update(&s, Some(&live), &next, &status).unwrap();
    assert_eq!(
        fields(&out, "kube-controller-manager", "Update").unwrap(),
        r#"{"f:status":{"f:observedGeneration":{},"f:replicas":{}}}"#
    );
    let e = entries(&out)
        .into_iter()
        .find(|e| e["manager"] == "kube-controller-manager")
        .unwrap();
    assert_eq!(e["subresource"], "status");
    // Applying status through the main resource owns nothing there and conflicts with nobody.
    let mut config = applied_deployment(1);
    config["status"] = json!({"replicas": 5});
    config["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx");
    let applied = apply(&s, Some(&out), &config, &apps("kubectl", T3), false).unwrap();
    assert!(!fields(&applied, "kubectl", "Apply")
        .unwrap()
        .contains("f:status"));
}

#[test]
fn service_ports_default_their_protocol_key() {
    let s = builtin("api_v1.json", "io.k8s.api.core.v1.Service");
    let config = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}, {"port": 53, "protocol": "UDP"}]}
    });
    let mgr = Manager {
        api_version: "v1",
        ..apps("kubectl", T1)
    };
    let out = apply(&s, None, &config, &mgr, false).unwrap();
    assert_eq!(
        fields(&out, "kubectl", "Apply").unwrap(),
        concat!(
            r#"{"f:spec":{"f:ports":{"k:{\"port\":53,\"protocol\":\"UDP\"}":{"f:port":{},"f:protocol":{},".":{}},"#,
            r#""k:{\"port\":80,\"protocol\":\"TCP\"}":{"f:port":{},"f:targetPort":{},".":{}}},"#,
            r#""f:selector":{}}}"#
        )
    );
    assert_eq!(
        out["spec"]["ports"][0],
        json!({"port": 80, "targetPort": 8080})
    );
}

#[test]
fn pods_merge_env_by_name_and_keep_other_managers_items() {
    let s = builtin("api_v1.json", "io.k8s.api.core.v1.Pod");
    let mgr = |name, time| Manager {
        api_version: "v1",
        ..apps(name, time)
    };
    let pod = |env: Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "env": env}]}})
    };
    let live = apply(
        &s,
        None,
        &pod(json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])),
        &mgr("one", T1),
        false,
    )
    .unwrap();
    let live = apply(
        &s,
        Some(&live),
        &pod(json!([{"name": "C", "value": "3"}])),
        &mgr("two", T2),
        false,
    )
    .unwrap();
    let env = &live["spec"]["containers"][0]["env"];
    assert_eq!(env.as_array().unwrap().len(), 3);
    let out = apply(
        &s,
        Some(&live),
        &pod(json!([{"name": "A", "value": "1"}])),
        &mgr("one", T3),
        false,
    )
    .unwrap();
    assert_eq!(
        out["spec"]["containers"][0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
    );
}

#[test]
fn zero_object_of_a_deployment_is_the_go_zero_value() {
    let s = builtin("apis_apps_v1.json", "io.k8s.api.apps.v1.Deployment");
    assert_eq!(
        s.zero_object(),
        &json!({"metadata": {"creationTimestamp": null}, "status": {},
            "spec": {"selector": {}, "strategy": {},
                "template": {"metadata": {"creationTimestamp": null}, "spec": {"containers": null}}}})
    );
}

#[test]
fn custom_resources_use_their_schema_and_object_meta() {
    let path = format!(
        "{}/../apiserver/openapi/v3/api_v1.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let Value::Object(components) = doc["components"]["schemas"].clone() else {
        panic!("no schemas")
    };
    let crd = json!({"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": {"type": "object", "properties": {
            "size": {"type": "integer"},
            "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "string"}}}},
            "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }}
    }});
    let s = TypeSchema::custom_resource(Arc::new(components), crd);
    assert_eq!(s.zero_object(), &json!({}));
    let mgr = |name, time| Manager {
        api_version: "example.com/v1",
        ..apps(name, time)
    };
    let obj = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "finalizers": ["example.com/f"]},
        "spec": {"size": 1, "items": [{"name": "a", "v": "1"}], "raw": {"any": {"thing": 1}}}});
    let created = update(&s, None, &obj, &mgr("creator", T1)).unwrap();
    assert_eq!(
        fields(&created, "creator", "Update").unwrap(),
        concat!(
            r#"{"f:metadata":{"f:finalizers":{"v:\"example.com/f\"":{},".":{}}},"#,
            r#""f:spec":{"f:items":{"k:{\"name\":\"a\"}":{"f:name":{},"f:v":{},".":{}},".":{}},"#,
            r#""f:raw":{"f:any":{"f:thing":{},".":{}},".":{}},"f:size":{},".":{}}}"#
        )
    );
    let err = apply(
        &s,
        Some(&created),
        &json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"items": [{"name": "a", "v": "2"}]}}),
        &mgr("app", T2),
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"creator\" using example.com/v1: .spec.items[name=\"a\"].v"
    );
}
