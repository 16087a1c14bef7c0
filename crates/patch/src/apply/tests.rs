//! Server-side apply semantics on a small hand-written schema, after structured-merge-diff's
//! `merge/*_test.go` (multiple appliers, shared ownership, conflicts and force, pruning of
//! fields no longer applied, associative/set/atomic lists, granular/atomic maps) and the
//! apiserver field manager tests (update then apply, before-first-apply, reset, capping).

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::*;

pub(super) fn schema() -> TypeSchema {
    let components = json!({
        "T": {"type": "object", "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object", "properties": {
                "name": {"type": "string"},
                "uid": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                "managedFields": {"type": "array", "items": {"type": "object"}, "x-kubernetes-list-type": "atomic"}
            }},
            "spec": {"type": "object", "properties": {
                "replicas": {"type": "integer"},
                "paused": {"type": "boolean"},
                "containers": {"type": "array", "items": {"$ref": "#/components/schemas/C"},
                    "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
                "finalizers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                "args": {"type": "array", "items": {"type": "string"}},
                "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                    "properties": {"a": {"type": "string"}, "b": {"type": "string"}}},
                "data": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }},
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
        }},
        "C": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"},
            "image": {"type": "string"},
            "ports": {"type": "array", "items": {"$ref": "#/components/schemas/P"},
                "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["containerPort", "protocol"]}
        }},
        "P": {"type": "object", "properties": {
            "containerPort": {"type": "integer"},
            "protocol": {"type": "string", "default": "TCP"}
        }}
    });
    let Value::Object(components) = components else {
        unreachable!()
    };
    TypeSchema::new(
        Arc::new(components),
        json!({"$ref": "#/components/schemas/T"}),
    )
}

pub(super) fn at<'a>(name: &'a str, time: &'a str) -> Manager<'a> {
    Manager {
        name,
        api_version: "v1",
        time,
        subresource: "",
        reset_fields: &[],
    }
}

pub(super) const T1: &str = "2024-01-01T00:00:01Z";
pub(super) const T2: &str = "2024-01-01T00:00:02Z";
pub(super) const T3: &str = "2024-01-01T00:00:03Z";

fn obj(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "T", "metadata": {"name": "x"}, "spec": spec})
}

/// The FieldsV1 of `manager`'s entry with `operation`, in upstream's byte form.
pub(super) fn fields(o: &Value, manager: &str, operation: &str) -> Option<String> {
    entries(o).into_iter().find_map(|e| {
        (e["manager"] == manager && e["operation"] == operation).then(|| {
            Set::from_fields_v1(&e["fieldsV1"])
                .map(|s| s.to_fields_v1_string())
                .unwrap()
        })
    })
}

pub(super) fn entries(o: &Value) -> Vec<Value> {
    o["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn conflicts(err: ApplyError) -> Conflicts {
    match err {
        ApplyError::Conflicts(c) => c,
        other => panic!("expected conflicts, got {other:?}"),
    }
}

#[test]
fn create_by_apply_records_applier() {
    let s = schema();
    let config = obj(json!({"replicas": 1, "containers": [{"name": "a", "image": "i"}]}));
    let out = apply(&s, None, &config, &at("a", T1), false).unwrap();
    assert_eq!(out["spec"], config["spec"]);
    assert_eq!(
        fields(&out, "a", "Apply").unwrap(),
        r#"{"f:spec":{"f:containers":{"k:{\"name\":\"a\"}":{"f:image":{},"f:name":{},".":{}}},"f:replicas":{}}}"#
    );
    let e = &entries(&out)[0];
    assert_eq!(e["apiVersion"], "v1");
    assert_eq!(e["time"], T1);
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert!(e.get("subresource").is_none());
}

#[test]
fn same_value_is_shared_and_different_value_conflicts() {
    let s = schema();
    let live = apply(&s, None, &obj(json!({"replicas": 3})), &at("a", T1), false).unwrap();
    let shared = apply(
        &s,
        Some(&live),
        &obj(json!({"replicas": 3})),
        &at("b", T2),
        false,
    )
    .unwrap();
    assert_eq!(
        fields(&shared, "a", "Apply").unwrap(),
        r#"{"f:spec":{"f:replicas":{}}}"#
    );
    assert_eq!(
        fields(&shared, "b", "Apply").unwrap(),
        r#"{"f:spec":{"f:replicas":{}}}"#
    );
    // A no-op apply does not stamp a time.
    let b = entries(&shared)
        .into_iter()
        .find(|e| e["manager"] == "b")
        .unwrap();
    assert!(b.get("time").is_none());

    let err = apply(
        &s,
        Some(&live),
        &obj(json!({"replicas": 4})),
        &at("b", T2),
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "a": .spec.replicas"#
    );
    let c = conflicts(err);
    assert_eq!(c.0[0].manager, "a");
    assert_eq!(c.0[0].cause_message(), r#"conflict with "a""#);

    let forced = apply(
        &s,
        Some(&live),
        &obj(json!({"replicas": 4})),
        &at("b", T2),
        true,
    )
    .unwrap();
    assert_eq!(forced["spec"]["replicas"], 4);
    assert_eq!(fields(&forced, "a", "Apply"), None);
    assert_eq!(
        fields(&forced, "b", "Apply").unwrap(),
        r#"{"f:spec":{"f:replicas":{}}}"#
    );
}

#[test]
fn several_conflicts_are_grouped_by_manager() {
    let s = schema();
    let live = update(
        &s,
        None,
        &obj(json!({"replicas": 1, "paused": false})),
        &at("u", T1),
    )
    .unwrap();
    let live = apply(
        &s,
        Some(&live),
        &obj(json!({"args": ["x"]})),
        &at("a", T2),
        false,
    )
    .unwrap();
    let err = apply(
        &s,
        Some(&live),
        &obj(json!({"replicas": 2, "paused": true, "args": ["y"]})),
        &at("b", T3),
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 3 conflicts: conflicts with \"a\":\n- .spec.args\nconflicts with \"u\" using v1:\n- .spec.paused\n- .spec.replicas"
    );
}

#[test]
fn fields_no_longer_applied_are_removed_unless_owned_by_others() {
    let s = schema();
    let live = apply(
        &s,
        None,
        &obj(json!({"replicas": 1, "paused": true, "data": {"k": "v"}})),
        &at("a", T1),
        false,
    )
    .unwrap();
    let live = apply(
        &s,
        Some(&live),
        &obj(json!({"paused": true})),
        &at("b", T2),
        false,
    )
    .unwrap();
    let out = apply(
        &s,
        Some(&live),
        &obj(json!({"replicas": 1})),
        &at("a", T3),
        false,
    )
    .unwrap();
    // `paused` is still applied by b; `data` was a's alone and goes away entirely.
    assert_eq!(out["spec"], json!({"replicas": 1, "paused": true}));
    assert_eq!(
        fields(&out, "a", "Apply").unwrap(),
        r#"{"f:spec":{"f:replicas":{}}}"#
    );

    // An updater's field is not pruned either.
    let live = update(
        &s,
        Some(&out),
        &obj(json!({"replicas": 1, "paused": true, "args": ["z"]})),
        &at("u", T3),
    )
    .unwrap();
    let live = apply(
        &s,
        Some(&live),
        &obj(json!({"replicas": 1, "args": ["z"]})),
        &at("a", T3),
        false,
    )
    .unwrap();
    let out = apply(
        &s,
        Some(&live),
        &obj(json!({"replicas": 1})),
        &at("a", T3),
        false,
    )
    .unwrap();
    assert_eq!(out["spec"]["args"], json!(["z"]));
}

#[test]
fn associative_list_items_are_merged_and_pruned_by_key() {
    let s = schema();
    let c = |items: Value| obj(json!({"containers": items}));
    let live = apply(
        &s,
        None,
        &c(json!([{"name": "a", "image": "1"}, {"name": "b", "image": "1"}])),
        &at("a", T1),
        false,
    )
    .unwrap();
    // Another applier adds an item and sets a field of a's item.
    let live = apply(
        &s,
        Some(&live),
        &c(json!([{"name": "c", "image": "2"}])),
        &at("b", T2),
        false,
    )
    .unwrap();
    assert_eq!(live["spec"]["containers"].as_array().unwrap().len(), 3);
    // a drops b: the item goes, c (b's) stays, order kept.
    let out = apply(
        &s,
        Some(&live),
        &c(json!([{"name": "a", "image": "1"}])),
        &at("a", T3),
        false,
    )
    .unwrap();
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "a", "image": "1"}, {"name": "c", "image": "2"}])
    );
    // Changing a's image from b conflicts at the item's field path.
    let err = apply(
        &s,
        Some(&out),
        &c(json!([{"name": "a", "image": "9"}])),
        &at("b", T3),
        false,
    )
    .unwrap_err();
    assert_eq!(
        conflicts(err).0[0].field_path,
        r#".spec.containers[name="a"].image"#
    );
}

#[test]
fn list_keys_take_schema_defaults() {
    let s = schema();
    let config = obj(json!({"containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}));
    let out = apply(&s, None, &config, &at("a", T1), false).unwrap();
    assert!(fields(&out, "a", "Apply")
        .unwrap()
        .contains(r#"k:{\"containerPort\":80,\"protocol\":\"TCP\"}"#));
}

#[test]
fn set_and_atomic_lists() {
    let s = schema();
    let live = apply(
        &s,
        None,
        &obj(json!({"finalizers": ["x", "y"], "args": ["1", "2"]})),
        &at("a", T1),
        false,
    )
    .unwrap();
    assert_eq!(
        fields(&live, "a", "Apply").unwrap(),
        r#"{"f:spec":{"f:args":{},"f:finalizers":{"v:\"x\"":{},"v:\"y\"":{}}}}"#
    );
    // Set items merge; another applier adds one without conflict.
    let live = apply(
        &s,
        Some(&live),
        &obj(json!({"finalizers": ["z"]})),
        &at("b", T2),
        false,
    )
    .unwrap();
    assert_eq!(live["spec"]["finalizers"], json!(["x", "y", "z"]));
    // Atomic lists are one value: a different one conflicts, the whole list is replaced.
    let err = apply(
        &s,
        Some(&live),
        &obj(json!({"args": ["3"]})),
        &at("b", T2),
        false,
    )
    .unwrap_err();
    assert_eq!(conflicts(err).0[0].field_path, ".spec.args");
    let forced = apply(
        &s,
        Some(&live),
        &obj(json!({"args": ["3"], "finalizers": ["z"]})),
        &at("b", T2),
        true,
    )
    .unwrap();
    assert_eq!(forced["spec"]["args"], json!(["3"]));
    // b's apply set is replaced by its new one: what it stops applying is pruned.
    let dropped = apply(
        &s,
        Some(&live),
        &obj(json!({"args": ["3"]})),
        &at("b", T2),
        true,
    )
    .unwrap();
    assert_eq!(dropped["spec"]["finalizers"], json!(["x", "y"]));
    // a stops applying y: removed from the set.
    let out = apply(
        &s,
        Some(&forced),
        &obj(json!({"finalizers": ["x"]})),
        &at("a", T3),
        false,
    )
    .unwrap();
    assert_eq!(out["spec"]["finalizers"], json!(["x", "z"]));
    assert_eq!(out["spec"]["args"], json!(["3"]));
}

#[test]
fn granular_and_atomic_maps() {
    let s = schema();
    let live = apply(
        &s,
        None,
        &obj(json!({"data": {"a": "1", "b": "2"}, "selector": {"a": "x"}})),
        &at("a", T1),
        false,
    )
    .unwrap();
    assert_eq!(
        fields(&live, "a", "Apply").unwrap(),
        r#"{"f:spec":{"f:data":{"f:a":{},"f:b":{}},"f:selector":{}}}"#
    );
    let out = apply(
        &s,
        Some(&live),
        &obj(json!({"data": {"a": "1"}, "selector": {"b": "y"}})),
        &at("a", T2),
        false,
    )
    .unwrap();
    assert_eq!(out["spec"]["data"], json!({"a": "1"}));
    // Atomic: replaced whole, not merged.
    assert_eq!(out["spec"]["selector"], json!({"b": "y"}));
}

#[test]
fn deduced_parts_own_every_level() {
    let s = schema();
    let out = apply(
        &s,
        None,
        &obj(json!({"free": {"x": {"y": 1}, "l": [1, 2]}})),
        &at("a", T1),
        false,
    )
    .unwrap();
    assert_eq!(
        fields(&out, "a", "Apply").unwrap(),
        r#"{"f:spec":{"f:free":{"f:l":{},"f:x":{"f:y":{},".":{}}}}}"#
    );
    let d = TypeSchema::deduced();
    let out = apply(
        &d,
        None,
        &json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"}, "spec": {"a": 1}}),
        &at("a", T1),
        false,
    )
    .unwrap();
    assert_eq!(
        fields(&out, "a", "Apply").unwrap(),
        r#"{"f:spec":{"f:a":{},".":{}}}"#
    );
}

#[test]
fn update_moves_changed_fields_to_the_writer() {
    let s = schema();
    let created = update(
        &s,
        None,
        &obj(json!({"replicas": 1, "paused": false})),
        &at("creator", T1),
    )
    .unwrap();
    assert_eq!(
        fields(&created, "creator", "Update").unwrap(),
        r#"{"f:spec":{"f:paused":{},"f:replicas":{},".":{}}}"#
    );
    let mut next = obj(json!({"replicas": 2, "paused": false}));
    next["metadata"]["managedFields"] = created["metadata"]["managedFields"].clone();
    let out = update(&s, Some(&created), &next, &at("editor", T2)).unwrap();
    assert_eq!(
        fields(&out, "creator", "Update").unwrap(),
        r#"{"f:spec":{"f:paused":{},".":{}}}"#
    );
    assert_eq!(
        fields(&out, "editor", "Update").unwrap(),
        r#"{"f:spec":{"f:replicas":{}}}"#
    );
    // Clients that drop managedFields keep the stored ones.
    let out2 = update(
        &s,
        Some(&out),
        &obj(json!({"replicas": 2})),
        &at("editor", T3),
    )
    .unwrap();
    assert_eq!(
        fields(&out2, "creator", "Update").unwrap(),
        r#"{"f:spec":{}}"#
    );
    let editor = entries(&out2)
        .into_iter()
        .find(|e| e["manager"] == "editor")
        .unwrap();
    assert_eq!(editor["time"], T2, "nothing changed by editor, time kept");
    // Sorted by operation, then time, then manager.
    let names: Vec<Value> = entries(&out2)
        .iter()
        .map(|e| e["manager"].clone())
        .collect();
    assert_eq!(names, vec![json!("creator"), json!("editor")]);
}

#[test]
fn update_then_apply_conflicts_and_force_takes_over() {
    let s = schema();
    let created = update(&s, None, &obj(json!({"replicas": 1})), &at("creator", T1)).unwrap();
    let err = apply(
        &s,
        Some(&created),
        &obj(json!({"replicas": 2})),
        &at("applier", T2),
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "creator" using v1: .spec.replicas"#
    );
    let out = apply(
        &s,
        Some(&created),
        &obj(json!({"replicas": 2})),
        &at("applier", T2),
        true,
    )
    .unwrap();
    assert_eq!(
        fields(&out, "creator", "Update").unwrap(),
        r#"{"f:spec":{}}"#
    );
    let ops: Vec<Value> = entries(&out)
        .iter()
        .map(|e| e["operation"].clone())
        .collect();
    assert_eq!(ops, vec![json!("Apply"), json!("Update")]);
}

#[test]
fn untracked_objects_stay_untracked_until_first_apply() {
    let s = schema();
    let mut existing = obj(json!({"replicas": 1, "paused": true}));
    existing["metadata"]["uid"] = json!("u-1");
    let updated = update(&s, Some(&existing), &existing, &at("editor", T1)).unwrap();
    assert!(updated["metadata"].get("managedFields").is_none());

    let out = apply(
        &s,
        Some(&existing),
        &obj(json!({"paused": true})),
        &at("a", T2),
        false,
    )
    .unwrap();
    assert_eq!(
        fields(&out, BEFORE_FIRST_APPLY, "Update").unwrap(),
        r#"{"f:spec":{"f:paused":{},"f:replicas":{},".":{}}}"#
    );
    let err = apply(
        &s,
        Some(&existing),
        &obj(json!({"replicas": 5})),
        &at("a", T2),
        false,
    )
    .unwrap_err();
    assert_eq!(conflicts(err).0[0].manager, BEFORE_FIRST_APPLY);
}

#[test]
fn managed_fields_can_be_reset_but_not_applied() {
    let s = schema();
    let created = update(&s, None, &obj(json!({"replicas": 1})), &at("creator", T1)).unwrap();
    let mut next = created.clone();
    next["metadata"]["managedFields"] = json!([{}]);
    let out = update(&s, Some(&created), &next, &at("editor", T2)).unwrap();
    assert!(out["metadata"].get("managedFields").is_none());

    let mut config = obj(json!({}));
    config["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        apply(&s, None, &config, &at("a", T1), false),
        Err(ApplyError::ManagedFieldsInConfig)
    );
    assert_eq!(
        apply(&s, None, &json!([1]), &at("a", T1), false),
        Err(ApplyError::ConfigNotObject)
    );

    let mut broken = created.clone();
    broken["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Nope", "apiVersion": "v1", "fieldsType": "FieldsV1"}]);
    assert!(matches!(
        apply(&s, Some(&broken), &obj(json!({})), &at("a", T1), false),
        Err(ApplyError::DecodeManagedFields { .. })
    ));
    // update_no_errors never fails; a bad request list falls back to the stored one.
    let out = update_no_errors(&s, Some(&created), &broken, &at("editor", T2));
    assert!(fields(&out, "creator", "Update").is_some());
}

#[test]
fn invalid_configs_are_rejected_with_upstream_messages() {
    let s = schema();
    let err = apply(
        &s,
        None,
        &obj(json!({"replicas": "three"})),
        &at("a", T1),
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to create typed patch object: .spec.replicas: expected numeric (int or float), got string"
    );
    let err = apply(
        &s,
        None,
        &obj(json!({"nope": 1, "containers": [{"image": "x"}]})),
        &at("a", T1),
        false,
    )
    .unwrap_err();
    let ApplyError::InvalidConfig { errors } = err else {
        panic!()
    };
    assert!(
        errors.contains(&".spec.nope: field not declared in schema".to_string()),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("omits key field \"name\"")),
        "{errors:?}"
    );
    let dup = obj(json!({"containers": [{"name": "a"}, {"name": "a"}]}));
    let err = apply(&s, None, &dup, &at("a", T1), false).unwrap_err();
    assert!(
        err.to_string()
            .contains(r#"duplicate entries for key [name="a"]"#),
        "{err}"
    );
}

#[test]
fn reset_fields_are_not_owned() {
    let s = schema();
    let mgr = Manager {
        reset_fields: &[&["status"]],
        ..at("a", T1)
    };
    let config = json!({"apiVersion": "v1", "kind": "T", "metadata": {"name": "x"}, "spec": {"replicas": 1}, "status": {"ready": true}});
    let out = apply(&s, None, &config, &mgr, false).unwrap();
    assert_eq!(
        fields(&out, "a", "Apply").unwrap(),
        r#"{"f:spec":{"f:replicas":{}}}"#
    );
    let status_mgr = Manager {
        subresource: "status",
        reset_fields: &[&["spec"], &["metadata"]],
        ..at("ctrl", T2)
    };
    let mut next = out.clone();
    next["status"]["ready"] = json!(false);
    next["spec"]["replicas"] = json!(7);
    let out = update(&s, Some(&out), &next, &status_mgr).unwrap();
    let e = entries(&out)
        .into_iter()
        .find(|e| e["manager"] == "ctrl")
        .unwrap();
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        fields(&out, "ctrl", "Update").unwrap(),
        r#"{"f:status":{"f:ready":{}}}"#
    );
    assert_eq!(
        fields(&out, "a", "Apply").unwrap(),
        r#"{"f:spec":{"f:replicas":{}}}"#
    );
}

#[test]
fn update_managers_are_capped() {
    let s = schema();
    let mut live = update(
        &s,
        None,
        &obj(json!({"data": {}})),
        &at("m0", "2024-01-01T00:00:00Z"),
    )
    .unwrap();
    for i in 1..=11 {
        let mut next = live.clone();
        next["spec"]["data"][format!("k{i}")] = json!("v");
        let time = format!("2024-01-01T00:00:{i:02}Z");
        live = update(&s, Some(&live), &next, &at(&format!("m{i}"), &time)).unwrap();
    }
    let es = entries(&live);
    assert_eq!(es.len(), 10);
    assert!(es.iter().any(|e| e["manager"] == "ancient-changes"));
}

#[test]
fn kubectl_takes_over_client_side_applied_fields() {
    let s = schema();
    let last = obj(json!({"replicas": 1}));
    let mut live = obj(json!({"replicas": 1, "paused": true}));
    live["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: last.to_string()});
    let live = update(&s, None, &live, &at("kubectl-client-side-apply", T1)).unwrap();
    // replicas was client-side applied and still matches: no conflict for "kubectl".
    let out = apply(
        &s,
        Some(&live),
        &obj(json!({"replicas": 2})),
        &at("kubectl", T2),
        false,
    )
    .unwrap();
    assert_eq!(out["spec"]["replicas"], 2);
    let annotation = out["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
        .as_str()
        .unwrap();
    assert_eq!(annotation, "{\"apiVersion\":\"v1\",\"kind\":\"T\",\"metadata\":{\"name\":\"x\"},\"spec\":{\"replicas\":2}}\n");
    // paused was never in last-applied: still a conflict; other managers get none of this.
    let err = apply(
        &s,
        Some(&live),
        &obj(json!({"paused": false})),
        &at("kubectl", T2),
        false,
    )
    .unwrap_err();
    assert_eq!(conflicts(err).0[0].field_path, ".spec.paused");
    assert!(apply(
        &s,
        Some(&live),
        &obj(json!({"replicas": 2})),
        &at("other", T2),
        false
    )
    .is_err());
}

/// A custom resource's schema rarely declares `apiVersion` and `kind`; upstream adds
/// them (and ObjectMeta) to every CRD's schema, so applying such a resource works.
#[test]
fn custom_resources_have_type_meta_without_declaring_it() {
    let mut components = Map::new();
    components.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into(),
        json!({"type": "object", "properties": {
            "name": {"type": "string"},
            "finalizers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "managedFields": {"type": "array", "items": {"type": "object"}, "x-kubernetes-list-type": "atomic"}
        }}),
    );
    let s = TypeSchema::custom_resource(
        Arc::new(components),
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                "properties": {"foo": {"type": "string"}}}}}),
    );
    let cr = json!({"apiVersion": "mygroup.example.com/v1beta1", "kind": "Noxu",
        "metadata": {"name": "mytest", "finalizers": ["test-finalizer"]},
        "spec": {"unknown": "uk1", "foo": "foo2"}});
    let out = apply(&s, None, &cr, &at("a", T1), false).unwrap();
    assert_eq!(out["spec"]["foo"], "foo2");
    assert_eq!(
        fields(&out, "a", "Apply").unwrap(),
        r#"{"f:metadata":{"f:finalizers":{"v:\"test-finalizer\"":{}}},"f:spec":{"f:foo":{},"f:unknown":{}}}"#
    );
    // Anything else undeclared at the root is still refused.
    let mut bad = cr.clone();
    bad["extra"] = json!(1);
    let err = apply(&s, None, &bad, &at("a", T1), false).unwrap_err();
    assert!(
        err.to_string()
            .contains(".extra: field not declared in schema"),
        "{err}"
    );
}
