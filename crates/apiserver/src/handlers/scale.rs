//! The `scale` subresource (autoscaling/v1 Scale) of Deployments, ReplicaSets,
//! StatefulSets and ReplicationControllers, as upstream's `ScaleREST`: a view of the
//! parent's `spec.replicas`, `status.replicas` and selector; writes change only
//! `spec.replicas` of the parent.

use ferrokube_api::status::{field, Status, Subject};
use serde_json::{json, Value};

use crate::crd::ScaleSpec;
use crate::errors::ApiResult;

/// A label selector (matchLabels and matchExpressions, or an RC's map) as a string.
pub fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else { return String::new() };
    let mut parts = Vec::new();
    let labels = sel.get("matchLabels").or_else(|| {
        sel.as_object()
            .filter(|m| !m.contains_key("matchExpressions"))
            .map(|_| sel)
    });
    if let Some(m) = labels.and_then(Value::as_object) {
        for (k, v) in m {
            if let Some(v) = v.as_str() {
                parts.push(format!("{k}={v}"));
            }
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        });
    }
    parts.join(",")
}

/// A CRD's JSONPath (`.spec.replicas`) as a JSON pointer (`/spec/replicas`).
fn pointer(path: &str) -> String {
    path.replace('.', "/")
}

/// Where the replica counts live: the built-in workloads' fixed fields, or a CRD's paths.
fn paths(custom: Option<&ScaleSpec>) -> (String, String) {
    match custom {
        Some(c) => (
            pointer(&c.spec_replicas_path),
            pointer(&c.status_replicas_path),
        ),
        None => ("/spec/replicas".into(), "/status/replicas".into()),
    }
}

/// The Scale view of a parent; `custom` for custom resources.
pub fn to_scale_of(parent: &Value, custom: Option<&ScaleSpec>) -> Value {
    let Some(c) = custom else {
        return to_scale(parent);
    };
    let mut scale = to_scale(parent);
    let (spec, status) = paths(Some(c));
    scale["spec"]["replicas"] = json!(parent.pointer(&spec).and_then(Value::as_i64).unwrap_or(0));
    scale["status"]["replicas"] =
        json!(parent.pointer(&status).and_then(Value::as_i64).unwrap_or(0));
    let selector = c
        .label_selector_path
        .as_deref()
        .and_then(|p| parent.pointer(&pointer(p)))
        .and_then(Value::as_str)
        .unwrap_or("");
    scale["status"]["selector"] = json!(selector);
    scale
}

pub fn to_scale(parent: &Value) -> Value {
    let meta = &parent["metadata"];
    let mut metadata = json!({});
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(k) {
            metadata[k] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": parent.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)},
        "status": {
            "replicas": parent.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector_string(parent.pointer("/spec/selector")),
        },
    })
}

/// Applies a desired Scale to the parent: checks its resourceVersion precondition and
/// replicas, returns the parent with the new `spec.replicas`.
#[cfg(test)]
fn apply_scale(parent: &Value, desired: &Value, name: &str) -> ApiResult<Value> {
    apply_scale_of(parent, desired, name, None)
}

/// [`apply_scale`] for any parent; `custom` names a custom resource's replicas path.
pub fn apply_scale_of(
    parent: &Value,
    desired: &Value,
    name: &str,
    custom: Option<&ScaleSpec>,
) -> ApiResult<Value> {
    let subject = Subject {
        group: "autoscaling",
        resource: "Scale",
        name,
    };
    if let Some(rv) = desired
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        if Some(rv)
            != parent
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
        {
            return Err(Status::conflict(
                Subject {
                    group: "autoscaling",
                    resource: "scale",
                    name,
                },
                Status::MODIFIED,
            )
            .into());
        }
    }
    let replicas = desired
        .pointer("/spec/replicas")
        .cloned()
        .unwrap_or(json!(0));
    match replicas.as_i64() {
        Some(n) if n >= 0 && n <= i64::from(i32::MAX) => {
            let mut updated = parent.clone();
            let (spec_path, _) = paths(custom);
            set_path(&mut updated, &spec_path, json!(n));
            Ok(updated)
        }
        _ => Err(Status::invalid(
            subject,
            vec![field::invalid(
                "spec.replicas",
                &replicas,
                "must be greater than or equal to 0",
            )],
        )
        .into()),
    }
}

/// Sets the value at a JSON pointer, creating the objects on the way.
fn set_path(obj: &mut Value, ptr: &str, value: Value) {
    let mut cur = obj;
    let parts: Vec<&str> = ptr.split('/').skip(1).collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        if i + 1 == parts.len() {
            map.insert((*part).to_string(), value);
            return;
        }
        cur = map.entry(*part).or_insert_with(|| json!({}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_view_and_update() {
        let d = json!({"metadata": {"name": "web", "namespace": "d", "resourceVersion": "7", "labels": {"x": "y"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}},
            "status": {"replicas": 2}});
        let s = to_scale(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(
            s["status"],
            json!({"replicas": 2, "selector": "app=web,tier in (a,b)"})
        );
        assert!(s["metadata"].get("labels").is_none());
        let up = apply_scale(&d, &json!({"spec": {"replicas": 5}}), "web").unwrap();
        assert_eq!(up["spec"]["replicas"], 5);
        assert!(apply_scale(&d, &json!({"spec": {"replicas": -1}}), "web").is_err());
        assert!(apply_scale(
            &d,
            &json!({"metadata": {"resourceVersion": "6"}, "spec": {"replicas": 1}}),
            "web"
        )
        .is_err());
        let custom = ScaleSpec {
            spec_replicas_path: ".spec.size".into(),
            status_replicas_path: ".status.count".into(),
            label_selector_path: Some(".status.sel".into()),
        };
        let w =
            json!({"metadata": {"name": "w"}, "spec": {}, "status": {"count": 2, "sel": "a=b"}});
        let s = to_scale_of(&w, Some(&custom));
        assert_eq!(
            (s["spec"]["replicas"].clone(), s["status"].clone()),
            (json!(0), json!({"replicas": 2, "selector": "a=b"}))
        );
        let up = apply_scale_of(&w, &json!({"spec": {"replicas": 4}}), "w", Some(&custom)).unwrap();
        assert_eq!(up["spec"]["size"], 4);
        let rc = json!({"spec": {"replicas": 1, "selector": {"app": "x"}}});
        assert_eq!(to_scale(&rc)["status"]["selector"], "app=x");
    }
}
