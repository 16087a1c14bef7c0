//! ResourceQuota admission (upstream `plugin/pkg/admission/resourcequota` with the core
//! evaluators): before an object is created in a namespace with quotas, the usage of every
//! constrained resource is counted from what the namespace holds now plus the new
//! object; over `spec.hard` → 403 `exceeded quota`; otherwise each quota's `status.hard`
//! and `status.used` are written with the new usage (the quota controller's
//! recalculation, done here at every admission so deletions are reflected too). A quota
//! with scopes charges only the pods in them ([`ferrokube_api::quota_scopes`]).

use std::collections::BTreeMap;

use ferrokube_api::kinds::Quantity;
use ferrokube_api::quota_scopes;
use ferrokube_api::resources;
use ferrokube_api::status::{Status, Subject};
use serde_json::{json, Value};

use crate::errors::ApiResult;
use crate::registry::list::ListOptions;
use crate::registry::{Registry, Target};

const NANO: i128 = 1_000_000_000;

/// An exceeded quota resource: (name, requested, used, limit) in nano-units.
type Exceeded = (String, i128, i128, i128);

fn is_terminal(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// A pod's summed container requests or limits of `res` (init containers: the max).
fn pod_resource(pod: &Value, part: &str, res: &str) -> Option<i128> {
    let sum = |key: &str| -> (i128, bool) {
        let mut total = 0;
        let mut any = false;
        for c in pod
            .pointer(&format!("/spec/{key}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(q) = c
                .get("resources")
                .and_then(|r| r.get(part))
                .and_then(|p| p.get(res))
                .and_then(Quantity::parse)
            {
                total += q.0;
                any = true;
            }
        }
        (total, any)
    };
    let (containers, any) = sum("containers");
    let (init, any_init) = sum("initContainers");
    (any || any_init).then_some(containers.max(init))
}

/// The usage of one object under a quota's resource names (nano-units).
fn usage(resource: &str, group: &str, obj: &Value, names: &[String]) -> BTreeMap<String, i128> {
    let mut out = BTreeMap::new();
    let count_name = if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    };
    for name in names {
        let v = match (group, resource, name.as_str()) {
            (_, _, n) if n == count_name => Some(NANO),
            ("", "pods", "pods") => (!is_terminal(obj)).then_some(NANO),
            ("", "pods", "requests.cpu" | "cpu") if !is_terminal(obj) => {
                pod_resource(obj, "requests", "cpu")
            }
            ("", "pods", "requests.memory" | "memory") if !is_terminal(obj) => {
                pod_resource(obj, "requests", "memory")
            }
            ("", "pods", "limits.cpu") if !is_terminal(obj) => pod_resource(obj, "limits", "cpu"),
            ("", "pods", "limits.memory") if !is_terminal(obj) => {
                pod_resource(obj, "limits", "memory")
            }
            ("", "services", "services") => Some(NANO),
            ("", "services", "services.loadbalancers") => {
                (obj.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer"))
                    .then_some(NANO)
            }
            ("", "services", "services.nodeports") => {
                let t = obj.pointer("/spec/type").and_then(Value::as_str);
                matches!(t, Some("NodePort" | "LoadBalancer")).then(|| {
                    let ports = obj
                        .pointer("/spec/ports")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    ports as i128 * NANO
                })
            }
            ("", "persistentvolumeclaims", "persistentvolumeclaims") => Some(NANO),
            ("", "persistentvolumeclaims", "requests.storage") => obj
                .pointer("/spec/resources/requests/storage")
                .and_then(Quantity::parse)
                .map(|q| q.0),
            (
                "",
                r @ ("configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas"),
                n,
            ) if n == r => Some(NANO),
            _ => None,
        };
        if let Some(v) = v {
            out.insert(name.clone(), v);
        }
    }
    out
}

/// Whether objects of (group, resource) count against the quota resource `name`.
fn tracks(resource: &str, group: &str, name: &str) -> bool {
    let count_name = if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    };
    if name == count_name {
        return true;
    }
    match (group, resource) {
        ("", "pods") => matches!(
            name,
            "pods"
                | "cpu"
                | "memory"
                | "requests.cpu"
                | "requests.memory"
                | "limits.cpu"
                | "limits.memory"
        ),
        ("", "services") => name.starts_with("services"),
        ("", "persistentvolumeclaims") => {
            matches!(name, "persistentvolumeclaims" | "requests.storage")
        }
        ("", r @ ("configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas")) => {
            name == r
        }
        _ => false,
    }
}

/// A sum of nano-units written back as a quantity (`3`, `500m`, `128Mi`).
fn format_quantity(name: &str, v: i128) -> String {
    let memory_like = name.contains("memory") || name.contains("storage");
    if memory_like && v % NANO == 0 {
        let bytes = v / NANO;
        for (suffix, unit) in [("Gi", 1_i128 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
            if bytes != 0 && bytes % unit == 0 {
                return format!("{}{suffix}", bytes / unit);
            }
        }
        return bytes.to_string();
    }
    if v % NANO == 0 {
        (v / NANO).to_string()
    } else if v % 1_000_000 == 0 {
        format!("{}m", v / 1_000_000)
    } else {
        format!("{v}n")
    }
}

async fn list(registry: &Registry, group: &str, resource: &str, ns: &str) -> Vec<Value> {
    let Some(info) = resources::served().find(|r| r.group == group && r.resource == resource)
    else {
        return Vec::new();
    };
    registry
        .list(&Target::builtin(info, Some(ns)), &ListOptions::default())
        .await
        .map(|(items, ..)| items)
        .unwrap_or_default()
}

/// Checks and records the quota usage of a new object.
pub async fn admit(
    registry: &Registry,
    group: &str,
    resource: &str,
    namespace: &str,
    name: &str,
    obj: &Value,
) -> ApiResult<()> {
    if namespace.is_empty() || (group.is_empty() && resource == "resourcequotas") {
        return Ok(());
    }
    let quotas = list(registry, "", "resourcequotas", namespace).await;
    if quotas.is_empty() {
        return Ok(());
    }
    let existing = list(registry, group, resource, namespace).await;
    let subject = Subject {
        group,
        resource,
        name,
    };
    let mut updates = Vec::new();
    for quota in &quotas {
        // A scoped quota charges only the pods in its scopes, as the controller counts.
        let scopes = quota_scopes::requirements(quota.get("spec").unwrap_or(&Value::Null));
        if !quota_scopes::charged(&scopes, group, resource, obj) {
            continue;
        }
        let hard: BTreeMap<String, Value> = quota
            .pointer("/spec/hard")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let names: Vec<String> = hard.keys().cloned().collect();
        let delta = usage(resource, group, obj, &names);
        if delta.is_empty() {
            continue;
        }
        let qname = quota
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        // Pods must say what they use of constrained compute resources.
        if group.is_empty() && resource == "pods" {
            let missing: Vec<&String> = names
                .iter()
                .filter(|n| {
                    matches!(
                        n.as_str(),
                        "requests.cpu"
                            | "cpu"
                            | "requests.memory"
                            | "memory"
                            | "limits.cpu"
                            | "limits.memory"
                    ) && !delta.contains_key(*n)
                })
                .collect();
            if !missing.is_empty() && !is_terminal(obj) {
                let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                return Err(Status::forbidden(
                    subject,
                    &format!("failed quota: {qname}: must specify {}", list.join(",")),
                )
                .into());
            }
        }
        let mut used: BTreeMap<String, i128> = BTreeMap::new();
        for item in existing
            .iter()
            .filter(|i| quota_scopes::charged(&scopes, group, resource, i))
        {
            for (k, v) in usage(resource, group, item, &names) {
                *used.entry(k).or_default() += v;
            }
        }
        let mut exceeded: Vec<Exceeded> = Vec::new();
        for (k, d) in &delta {
            let Some(limit) = hard.get(k).and_then(Quantity::parse) else {
                continue;
            };
            let now = used.get(k).copied().unwrap_or(0);
            if now + d > limit.0 {
                exceeded.push((k.clone(), *d, now, limit.0));
            }
        }
        if !exceeded.is_empty() {
            // (name, requested, used, limit) per exceeded resource, as upstream lists them.
            let part = |pick: fn(&Exceeded) -> i128| {
                exceeded
                    .iter()
                    .map(|e| format!("{}={}", e.0, format_quantity(&e.0, pick(e))))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            return Err(Status::forbidden(
                subject,
                &format!(
                    "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                    part(|e| e.1),
                    part(|e| e.2),
                    part(|e| e.3),
                ),
            )
            .into());
        }
        for (k, d) in delta {
            *used.entry(k).or_default() += d;
        }
        let previous = quota.pointer("/status/used").cloned().unwrap_or(json!({}));
        updates.push((qname.to_string(), hard, used, previous));
    }
    // status: hard as specified, used with the new object.
    let Some(info) = resources::lookup("", "v1", "resourcequotas") else {
        return Ok(());
    };
    let target = Target::builtin(info, Some(namespace));
    for (qname, hard, used, previous) in updates {
        // Names this resource does not count keep what was recorded for them.
        let used_json: serde_json::Map<String, Value> = hard
            .keys()
            .map(|k| {
                let v = if tracks(resource, group, k) {
                    json!(format_quantity(k, used.get(k).copied().unwrap_or(0)))
                } else {
                    previous.get(k).cloned().unwrap_or_else(|| json!("0"))
                };
                (k.clone(), v)
            })
            .collect();
        let hard_json: serde_json::Map<String, Value> = hard.into_iter().collect();
        let _ = registry
            .update_with(&target, &qname, Some("status"), false, |cur| {
                let mut next = cur.cloned().unwrap_or(Value::Null);
                next["status"] = json!({"hard": hard_json, "used": used_json});
                Ok(next)
            })
            .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_usage_and_formatting() {
        let pod = json!({"spec": {"containers": [
            {"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
            {"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}]}});
        let names: Vec<String> = [
            "pods",
            "requests.cpu",
            "requests.memory",
            "limits.cpu",
            "count/pods",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let u = usage("pods", "", &pod, &names);
        assert_eq!(format_quantity("requests.cpu", u["requests.cpu"]), "500m");
        assert_eq!(
            format_quantity("requests.memory", u["requests.memory"]),
            "128Mi"
        );
        assert_eq!(format_quantity("limits.cpu", u["limits.cpu"]), "1");
        assert_eq!(u["pods"], NANO);
        let done = json!({"status": {"phase": "Succeeded"}, "spec": {}});
        assert!(!usage("pods", "", &done, &names).contains_key("pods"));
        assert_eq!(usage("pods", "", &done, &names)["count/pods"], NANO);
    }
}
