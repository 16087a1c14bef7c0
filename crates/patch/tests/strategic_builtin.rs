//! Strategic merge patch on real object shapes (Deployment, Pod, Service, ...), with the
//! schema generated from upstream's OpenAPI document. Expected results follow upstream's
//! `strategicpatch` semantics (see the fixture tests in `src/strategic/upstream_tests.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferrokube_patch::{apply_strategic_merge_patch, schema_for, PatchError, Schema};
use serde_json::{json, Value};

fn deployment_schema() -> Schema {
    schema_for("apps", "v1", "Deployment").expect("Deployment schema")
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "tier": "frontend"},
            "annotations": {"deployment.kubernetes.io/revision": "1"},
            "finalizers": ["example.com/a", "example.com/b"],
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u-1"}
            ]
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "app:1",
                            "env": [{"name": "A", "value": "1"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {"limits": {"cpu": "1"}}
                        },
                        {"name": "sidecar", "image": "side:1"}
                    ],
                    "tolerations": [{"key": "a", "operator": "Exists"}],
                    "volumes": [
                        {"name": "data", "emptyDir": {}},
                        {"name": "cfg", "configMap": {"name": "c1"}}
                    ]
                }
            }
        }
    })
}

fn apply(doc: &Value, patch: Value, schema: Schema) -> Value {
    let before = doc.clone();
    let out =
        apply_strategic_merge_patch(doc, &patch, schema).unwrap_or_else(|e| panic!("{patch}: {e}"));
    assert_eq!(doc, &before, "input must stay untouched");
    assert_no_directives(&out);
    out
}

fn assert_no_directives(v: &Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                assert!(!k.starts_with('$'), "directive {k} leaked into the result");
                assert_no_directives(v);
            }
        }
        Value::Array(items) => items.iter().for_each(assert_no_directives),
        _ => {}
    }
}

fn pod_spec(v: &Value) -> &Value {
    &v["spec"]["template"]["spec"]
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

#[test]
fn change_one_container_image_keeps_the_others() {
    let out = apply(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}}),
        deployment_schema(),
    );
    let containers = &pod_spec(&out)["containers"];
    assert_eq!(names(containers), ["app", "sidecar"]);
    assert_eq!(containers[0]["image"], "app:2");
    // The rest of the merged container is kept.
    assert_eq!(
        containers[0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(containers[1], json!({"name": "sidecar", "image": "side:1"}));
    // Everything else untouched.
    assert_eq!(out["spec"]["replicas"], 2);
    assert_eq!(
        pod_spec(&out)["volumes"],
        pod_spec(&deployment())["volumes"]
    );
}

#[test]
fn add_env_var_to_a_container() {
    let out = apply(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "env": [{"name": "B", "value": "2"}]}
        ]}}}}),
        deployment_schema(),
    );
    // As upstream: without $setElementOrder a new element goes before the server's ones.
    assert_eq!(
        pod_spec(&out)["containers"][0]["env"],
        json!([{"name": "B", "value": "2"}, {"name": "A", "value": "1"}])
    );
    // Changing an existing variable keeps its place.
    let out = apply(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "env": [{"name": "A", "value": "9"}]}
        ]}}}}),
        deployment_schema(),
    );
    assert_eq!(
        pod_spec(&out)["containers"][0]["env"],
        json!([{"name": "A", "value": "9"}])
    );
}

#[test]
fn add_a_container_without_order_directive_goes_first() {
    let out = apply(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "logger", "image": "log:1"}]}}}}),
        deployment_schema(),
    );
    assert_eq!(
        names(&pod_spec(&out)["containers"]),
        ["logger", "app", "sidecar"]
    );
}

#[test]
fn remove_a_container_with_delete_directive() {
    let out = apply(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "sidecar"}]}}}}),
        deployment_schema(),
    );
    assert_eq!(names(&pod_spec(&out)["containers"]), ["app"]);
}

#[test]
fn set_element_order_as_kubectl_apply_sends_it() {
    // kubectl apply: update app, insert logger between app and sidecar.
    let out = apply(
        &deployment(),
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "logger"}, {"name": "sidecar"}],
            "containers": [{"name": "app", "image": "app:2"}, {"name": "logger", "image": "log:1"}]
        }}}}),
        deployment_schema(),
    );
    let containers = &pod_spec(&out)["containers"];
    assert_eq!(names(containers), ["app", "logger", "sidecar"]);
    assert_eq!(containers[0]["image"], "app:2");
    assert_eq!(containers[0]["env"], json!([{"name": "A", "value": "1"}]));

    // kubectl apply: reorder only.
    let out = apply(
        &deployment(),
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}]
        }}}}),
        deployment_schema(),
    );
    assert_eq!(names(&pod_spec(&out)["containers"]), ["sidecar", "app"]);

    // kubectl apply: drop the sidecar.
    let out = apply(
        &deployment(),
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [{"$patch": "delete", "name": "sidecar"}]
        }}}}),
        deployment_schema(),
    );
    assert_eq!(names(&pod_spec(&out)["containers"]), ["app"]);

    // Patch items in another order than the directive: rejected, as upstream.
    let err = apply_strategic_merge_patch(
        &deployment(),
        &json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"name": "sidecar", "image": "s"}, {"name": "app", "image": "a"}]
        }}}}),
        deployment_schema(),
    )
    .unwrap_err();
    assert!(
        matches!(err, PatchError::SetElementOrderMismatch { .. }),
        "{err}"
    );
}

#[test]
fn finalizers_merge_as_a_set() {
    let schema = deployment_schema();
    let out = apply(
        &deployment(),
        json!({"metadata": {"finalizers": ["example.com/c"]}}),
        schema,
    );
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["example.com/c", "example.com/a", "example.com/b"])
    );

    let out = apply(
        &deployment(),
        json!({"metadata": {"finalizers": ["example.com/a"]}}),
        schema,
    );
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["example.com/a", "example.com/b"])
    );

    let out = apply(
        &deployment(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}}),
        schema,
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["example.com/b"]));

    // kubectl apply style: order directive plus deletion.
    let out = apply(
        &deployment(),
        json!({"metadata": {
            "$setElementOrder/finalizers": ["example.com/b", "example.com/c"],
            "$deleteFromPrimitiveList/finalizers": ["example.com/a"],
            "finalizers": ["example.com/c"]
        }}),
        schema,
    );
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["example.com/b", "example.com/c"])
    );
}

#[test]
fn owner_references_merge_by_uid() {
    let schema = deployment_schema();
    let out = apply(
        &deployment(),
        json!({"metadata": {"ownerReferences": [{"uid": "u-1", "controller": true}]}}),
        schema,
    );
    assert_eq!(
        out["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u-1", "controller": true}])
    );
    let out = apply(
        &deployment(),
        json!({"metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u-2"}
        ]}}),
        schema,
    );
    let uids: Vec<&str> = out["metadata"]["ownerReferences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids, ["u-2", "u-1"]);
    let out = apply(
        &deployment(),
        json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": "u-1"}]}}),
        schema,
    );
    assert_eq!(out["metadata"]["ownerReferences"], json!([]));
}

#[test]
fn labels_and_annotations_merge_with_null_deletion() {
    let out = apply(
        &deployment(),
        json!({"metadata": {
            "labels": {"tier": null, "env": "prod"},
            "annotations": {"deployment.kubernetes.io/revision": null, "note": "x"}
        }}),
        deployment_schema(),
    );
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "env": "prod"})
    );
    assert_eq!(out["metadata"]["annotations"], json!({"note": "x"}));

    // $patch: replace on a map.
    let out = apply(
        &deployment(),
        json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}}),
        deployment_schema(),
    );
    assert_eq!(out["metadata"]["labels"], json!({"only": "this"}));
}

#[test]
fn tolerations_have_no_strategy_and_are_replaced() {
    let out = apply(
        &deployment(),
        json!({"spec": {"template": {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}}}),
        deployment_schema(),
    );
    assert_eq!(
        pod_spec(&out)["tolerations"],
        json!([{"key": "b", "operator": "Exists"}])
    );
}

#[test]
fn deployment_strategy_retain_keys() {
    let out = apply(
        &deployment(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        deployment_schema(),
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    // Without the directive the map merges.
    let out = apply(
        &deployment(),
        json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 2}}}}),
        deployment_schema(),
    );
    assert_eq!(
        out["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}})
    );
}

#[test]
fn replace_list_element_directive() {
    let out = apply(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [
            {"$patch": "replace"},
            {"name": "only", "image": "only:1"}
        ]}}}}),
        deployment_schema(),
    );
    assert_eq!(
        pod_spec(&out)["containers"],
        json!([{"name": "only", "image": "only:1"}])
    );
}

#[test]
fn nulls_inside_merged_elements_delete() {
    let out = apply(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "resources": null}]}}}}),
        deployment_schema(),
    );
    assert!(pod_spec(&out)["containers"][0].get("resources").is_none());
}

#[test]
fn missing_merge_key_is_an_error() {
    let err = apply_strategic_merge_patch(
        &deployment(),
        &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
        deployment_schema(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "map: map[image:x] does not contain declared merge key: name"
    );
    assert_eq!(err.http_status(), 500);
}

#[test]
fn pod_volumes_merge_by_name_with_retain_keys() {
    let schema = schema_for("", "v1", "Pod").unwrap();
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "c", "image": "c:1", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "c1"}}
            ]
        }
    });
    // What kubectl apply sends when a volume switches its source.
    let out = apply(
        &pod,
        json!({"spec": {
            "$setElementOrder/volumes": [{"name": "data"}, {"name": "cfg"}],
            "volumes": [{
                "$retainKeys": ["name", "persistentVolumeClaim"],
                "name": "data",
                "persistentVolumeClaim": {"claimName": "pvc1"}
            }]
        }}),
        schema,
    );
    assert_eq!(
        out["spec"]["volumes"],
        json!([
            {"name": "data", "persistentVolumeClaim": {"claimName": "pvc1"}},
            {"name": "cfg", "configMap": {"name": "c1"}}
        ])
    );
    // kubectl apply adding a volume: the new element carries its own $retainKeys.
    let out = apply(
        &pod,
        json!({"spec": {
            "$setElementOrder/volumes": [{"name": "data"}, {"name": "cfg"}, {"name": "tmp"}],
            "volumes": [{"$retainKeys": ["emptyDir", "name"], "name": "tmp", "emptyDir": {}}]
        }}),
        schema,
    );
    assert_eq!(names(&out["spec"]["volumes"]), ["data", "cfg", "tmp"]);
    assert_eq!(
        out["spec"]["volumes"][2],
        json!({"name": "tmp", "emptyDir": {}})
    );
    // Merging by name without the directive keeps the old source next to the new one.
    let out = apply(
        &pod,
        json!({"spec": {"volumes": [{"name": "cfg", "configMap": {"name": "c2"}}]}}),
        schema,
    );
    assert_eq!(
        out["spec"]["volumes"][1],
        json!({"name": "cfg", "configMap": {"name": "c2"}})
    );
    // Container volume mounts merge by mountPath.
    let out = apply(
        &pod,
        json!({"spec": {"containers": [{"name": "c", "volumeMounts": [{"mountPath": "/data", "readOnly": true}]}]}}),
        schema,
    );
    assert_eq!(
        out["spec"]["containers"][0]["volumeMounts"],
        json!([{"name": "data", "mountPath": "/data", "readOnly": true}])
    );
}

#[test]
fn service_ports_merge_by_port() {
    let schema = schema_for("", "v1", "Service").unwrap();
    let svc = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}
            ]
        }
    });
    let out = apply(
        &svc,
        json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
        schema,
    );
    assert_eq!(
        out["spec"]["ports"],
        json!([
            {"name": "http", "port": 80, "targetPort": 9090, "protocol": "TCP"},
            {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}
        ])
    );
    let out = apply(
        &svc,
        json!({"spec": {"ports": [{"$patch": "delete", "port": 443}]}}),
        schema,
    );
    assert_eq!(out["spec"]["ports"].as_array().unwrap().len(), 1);
    // The selector is a plain map: merged.
    let out = apply(&svc, json!({"spec": {"selector": {"tier": "fe"}}}), schema);
    assert_eq!(out["spec"]["selector"], json!({"app": "web", "tier": "fe"}));
}

#[test]
fn pdb_selector_has_replace_strategy() {
    let schema = schema_for("policy", "v1", "PodDisruptionBudget").unwrap();
    let pdb = json!({"spec": {"minAvailable": 1, "selector": {"matchLabels": {"a": "b"}}}});
    let out = apply(
        &pdb,
        json!({"spec": {"selector": {"matchLabels": {"c": "d"}}}}),
        schema,
    );
    assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"c": "d"}}));
}

#[test]
fn unknown_fields_behave_like_merge_patch() {
    let doc = json!({"metadata": {"name": "x"}, "extra": {"list": [1, 2], "map": {"k": 1}}});
    let out = apply(
        &doc,
        json!({"extra": {"list": [3], "map": {"j": 2, "k": null}}}),
        deployment_schema(),
    );
    assert_eq!(out["extra"], json!({"list": [3], "map": {"j": 2}}));
}

#[test]
fn new_subtrees_lose_nulls_and_directives() {
    let doc = json!({"metadata": {"name": "x"}});
    let out = apply(
        &doc,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"name": "a", "image": "a:1", "args": null}],
            "nodeSelector": {"k": null, "z": "1"}
        }}}}),
        deployment_schema(),
    );
    assert_eq!(
        out["spec"],
        json!({"template": {"spec": {"containers": [{"name": "a", "image": "a:1"}], "nodeSelector": {"z": "1"}}}})
    );
}

#[test]
fn map_delete_directive_empties_the_map() {
    let out = apply(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "resources": {"$patch": "delete"}}]}}}}),
        deployment_schema(),
    );
    assert_eq!(pod_spec(&out)["containers"][0]["resources"], json!({}));
}

#[test]
fn bad_documents() {
    let err = apply_strategic_merge_patch(&json!([]), &json!({}), deployment_schema()).unwrap_err();
    assert_eq!(err, PatchError::InvalidJsonDocument);
    assert_eq!(err.http_status(), 400);
    let err =
        apply_strategic_merge_patch(&json!({}), &json!("x"), deployment_schema()).unwrap_err();
    assert_eq!(err, PatchError::InvalidJsonDocument);
}

#[test]
fn schemas_exist_for_built_in_kinds_only() {
    for (g, v, k) in [
        ("", "v1", "Pod"),
        ("", "v1", "Service"),
        ("", "v1", "ConfigMap"),
        ("", "v1", "Node"),
        ("apps", "v1", "StatefulSet"),
        ("apps", "v1", "DaemonSet"),
        ("batch", "v1", "CronJob"),
        ("networking.k8s.io", "v1", "Ingress"),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
    ] {
        assert!(schema_for(g, v, k).is_some(), "{g}/{v} {k}");
    }
    assert!(schema_for("", "v1", "PodList").is_none());
    assert!(schema_for("stable.example.com", "v1", "CronTab").is_none());
    assert_eq!(
        schema_for("batch", "v1", "Job").unwrap().definition_name(),
        Some("io.k8s.api.batch.v1.Job")
    );
}
