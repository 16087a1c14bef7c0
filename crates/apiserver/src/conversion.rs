//! Versions served from another version's storage, as upstream's conversion functions:
//! events.k8s.io/v1 Events are core v1 Events (`note` is `message`, `regarding` is
//! `involvedObject`, the `deprecated*` fields are the old counters), and autoscaling/v1
//! HorizontalPodAutoscalers are autoscaling/v2 ones (the CPU utilization target is the
//! v1 field; other metrics, behavior, conditions and current metrics travel in the
//! `autoscaling.alpha.kubernetes.io/*` annotations so that nothing is lost either way).

use ferrokube_api::resources::{self, ResourceInfo};
use serde_json::{json, Map, Value};

/// The resource a served version is stored as, when it is another one.
pub fn storage_for(served: &ResourceInfo) -> Option<&'static ResourceInfo> {
    match (served.group, served.version, served.resource) {
        ("events.k8s.io", "v1", "events") => resources::lookup("", "v1", "events"),
        ("autoscaling", "v1", "horizontalpodautoscalers") => {
            resources::lookup("autoscaling", "v2", "horizontalpodautoscalers")
        }
        _ => None,
    }
}

/// Core Event field ↔ events.k8s.io/v1 field.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("message", "note"),
    ("involvedObject", "regarding"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";

fn rename(map: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = map.remove(from) {
        map.insert(to.into(), v);
    }
}

fn set_type(obj: &mut Map<String, Value>, info: &ResourceInfo) {
    obj.insert("apiVersion".into(), json!(info.api_version()));
    obj.insert("kind".into(), json!(info.kind));
}

/// Converts an object of the served version into its storage version, in place.
pub fn to_storage(served: &ResourceInfo, obj: &mut Value) {
    convert(served, obj, true);
}

/// Converts a stored object into the served version, in place.
pub fn to_served(served: &ResourceInfo, obj: &mut Value) {
    convert(served, obj, false);
}

fn convert(served: &ResourceInfo, obj: &mut Value, into_storage: bool) {
    let Some(storage) = storage_for(served) else {
        return;
    };
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    set_type(map, if into_storage { storage } else { served });
    match (served.group, into_storage) {
        ("events.k8s.io", _) => {
            for (core, new) in EVENT_FIELDS {
                let (from, to) = if into_storage {
                    (new, core)
                } else {
                    (core, new)
                };
                rename(map, from, to);
            }
        }
        ("autoscaling", true) => hpa_v1_to_v2(map),
        ("autoscaling", false) => hpa_v2_to_v1(map),
        _ => {}
    }
}

fn annotations(map: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    let ann = meta
        .as_object_mut()?
        .entry("annotations")
        .or_insert_with(|| json!({}));
    ann.as_object_mut()
}

fn take_annotation(map: &mut Map<String, Value>, key: &str) -> Option<Value> {
    let ann = map
        .get_mut("metadata")?
        .get_mut("annotations")?
        .as_object_mut()?;
    let raw = ann.remove(key)?;
    let parsed = raw.as_str().and_then(|s| serde_json::from_str(s).ok());
    if ann.is_empty() {
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("annotations");
        }
    }
    parsed
}

fn put_annotation(map: &mut Map<String, Value>, key: &str, value: &Value) {
    if let Some(ann) = annotations(map) {
        ann.insert(key.into(), json!(value.to_string()));
    }
}

fn is_cpu_utilization(m: &Value) -> bool {
    m["type"] == "Resource"
        && m["resource"]["name"] == "cpu"
        && m["resource"]["target"]["type"] == "Utilization"
}

fn hpa_v2_to_v1(map: &mut Map<String, Value>) {
    let spec = map.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = map.get("status").cloned();
    let mut v1_spec = Map::new();
    for k in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
        if let Some(v) = spec.get(k) {
            v1_spec.insert(k.into(), v.clone());
        }
    }
    let metrics = spec["metrics"].as_array().cloned().unwrap_or_default();
    let (cpu, other): (Vec<Value>, Vec<Value>) = metrics.into_iter().partition(is_cpu_utilization);
    if let Some(c) = cpu.first() {
        v1_spec.insert(
            "targetCPUUtilizationPercentage".into(),
            c["resource"]["target"]["averageUtilization"].clone(),
        );
    }
    map.insert("spec".into(), Value::Object(v1_spec));
    if !other.is_empty() {
        put_annotation(map, METRICS, &Value::Array(other));
    }
    if let Some(b) = spec.get("behavior") {
        put_annotation(map, BEHAVIOR, b);
    }
    if let Some(status) = status {
        let mut v1 = Map::new();
        for k in [
            "observedGeneration",
            "lastScaleTime",
            "currentReplicas",
            "desiredReplicas",
        ] {
            if let Some(v) = status.get(k) {
                v1.insert(k.into(), v.clone());
            }
        }
        let current = status["currentMetrics"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let (cpu, other): (Vec<Value>, Vec<Value>) = current
            .into_iter()
            .partition(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu");
        if let Some(u) = cpu
            .first()
            .and_then(|c| c["resource"]["current"].get("averageUtilization"))
        {
            v1.insert("currentCPUUtilizationPercentage".into(), u.clone());
        }
        if !other.is_empty() {
            put_annotation(map, CURRENT_METRICS, &Value::Array(other));
        }
        if let Some(c) = status
            .get("conditions")
            .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
        {
            put_annotation(map, CONDITIONS, c);
        }
        map.insert("status".into(), Value::Object(v1));
    }
}

fn hpa_v1_to_v2(map: &mut Map<String, Value>) {
    let spec = map.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut v2_spec = Map::new();
    for k in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
        if let Some(v) = spec.get(k) {
            v2_spec.insert(k.into(), v.clone());
        }
    }
    let mut metrics = Vec::new();
    if let Some(cpu) = spec.get("targetCPUUtilizationPercentage") {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": cpu}}}));
    }
    if let Some(Value::Array(other)) = take_annotation(map, METRICS) {
        metrics.extend(other);
    }
    if !metrics.is_empty() {
        v2_spec.insert("metrics".into(), Value::Array(metrics));
    }
    if let Some(b) = take_annotation(map, BEHAVIOR) {
        v2_spec.insert("behavior".into(), b);
    }
    map.insert("spec".into(), Value::Object(v2_spec));
    let conditions = take_annotation(map, CONDITIONS);
    let current_other = take_annotation(map, CURRENT_METRICS);
    if let Some(status) = map.get("status").cloned() {
        let mut v2 = Map::new();
        for k in [
            "observedGeneration",
            "lastScaleTime",
            "currentReplicas",
            "desiredReplicas",
        ] {
            if let Some(v) = status.get(k) {
                v2.insert(k.into(), v.clone());
            }
        }
        let mut current = Vec::new();
        if let Some(u) = status.get("currentCPUUtilizationPercentage") {
            current.push(json!({"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": u}}}));
        }
        if let Some(Value::Array(other)) = current_other {
            current.extend(other);
        }
        if !current.is_empty() {
            v2.insert("currentMetrics".into(), Value::Array(current));
        }
        if let Some(c) = conditions {
            v2.insert("conditions".into(), c);
        }
        map.insert("status".into(), Value::Object(v2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let served = resources::BUILTIN
            .iter()
            .find(|r| r.group == "events.k8s.io" && r.resource == "events")
            .unwrap();
        let mut e = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "note": "hello", "regarding": {"kind": "Pod", "name": "p"}, "reason": "Started",
            "reportingController": "kubelet", "deprecatedCount": 2, "type": "Normal"});
        let original = e.clone();
        to_storage(served, &mut e);
        assert_eq!(e["apiVersion"], "v1");
        assert_eq!(e["message"], "hello");
        assert_eq!(e["involvedObject"]["name"], "p");
        assert_eq!(e["count"], 2);
        to_served(served, &mut e);
        assert_eq!(e, original);
    }

    #[test]
    fn hpa_round_trip_keeps_everything() {
        let served = resources::BUILTIN
            .iter()
            .find(|r| r.group == "autoscaling" && r.version == "v1")
            .unwrap();
        let v2 = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}, "minReplicas": 1, "maxReplicas": 5,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}}],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}}},
            "status": {"currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}],
                "conditions": [{"type": "AbleToScale", "status": "True"}]}});
        let mut v1 = v2.clone();
        to_served(served, &mut v1);
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 40);
        assert!(v1["metadata"]["annotations"][METRICS]
            .as_str()
            .unwrap()
            .contains("memory"));
        let mut back = v1.clone();
        to_storage(served, &mut back);
        assert_eq!(back, v2);
    }
}
