//! The `scale` subresource (autoscaling/v1 Scale) of Deployments, ReplicaSets,
//! StatefulSets and ReplicationControllers, as upstream's `ScaleREST`: a view of the
//! parent's `spec.replicas`, `status.replicas` and selector; writes change only
//! `spec.replicas` of the parent.

use ferrokube_api::status::{field, Status, Subject};
use serde_json::{json, Value};

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
pub fn apply_scale(parent: &Value, desired: &Value, name: &str) -> ApiResult<Value> {
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
            if let Some(spec) = updated.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("replicas".into(), json!(n));
            }
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
        let rc = json!({"spec": {"replicas": 1, "selector": {"app": "x"}}});
        assert_eq!(to_scale(&rc)["status"]["selector"], "app=x");
    }
}
