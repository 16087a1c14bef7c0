//! The default-on mutating admission plugins of kube-apiserver 1.33 that need no
//! controller: Priority (a pod's `priorityClassName` resolved to `priority` and
//! `preemptionPolicy`, the global default class applied), DefaultTolerationSeconds
//! (5-minute NoExecute tolerations for not-ready and unreachable nodes), LimitRanger
//! (Container defaults from the namespace's LimitRanges, then their min/max checked) and
//! DefaultStorageClass (a PVC without a class gets the default one) and RuntimeClass (a
//! pod's RuntimeClass must exist; its overhead and scheduling constraints are copied
//! into the pod).

use ferrokube_api::kinds::Quantity;
use ferrokube_api::resources;
use ferrokube_api::status::{Status, Subject};
use serde_json::{json, Map, Value};

use crate::errors::ApiResult;
use crate::registry::list::ListOptions;
use crate::registry::{Registry, Target};

/// `--default-not-ready-toleration-seconds` / `--default-unreachable-toleration-seconds`.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

async fn list(registry: &Registry, group: &str, resource: &str, ns: Option<&str>) -> Vec<Value> {
    let Some(info) = resources::lookup(group, "v1", resource) else {
        return Vec::new();
    };
    registry
        .list(&Target::builtin(info, ns), &ListOptions::default())
        .await
        .map(|(items, ..)| items)
        .unwrap_or_default()
}

fn forbidden(resource: &str, name: &str, why: String) -> crate::errors::ApiError {
    Status::forbidden(
        Subject {
            group: "",
            resource,
            name,
        },
        &why,
    )
    .into()
}

/// Priority: resolves the pod's class.
pub async fn priority(registry: &Registry, pod: &mut Value, name: &str) -> ApiResult<()> {
    let classes = list(registry, "scheduling.k8s.io", "priorityclasses", None).await;
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let wanted = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let class = match &wanted {
        Some(n) => Some(
            classes
                .iter()
                .find(|c| c.pointer("/metadata/name").and_then(Value::as_str) == Some(n))
                .ok_or_else(|| {
                    forbidden(
                        "pods",
                        name,
                        format!("no PriorityClass with name {n} was found"),
                    )
                })?,
        ),
        None => classes
            .iter()
            .find(|c| c.get("globalDefault") == Some(&Value::Bool(true))),
    };
    let (value, policy) = match class {
        Some(c) => (
            c.get("value").and_then(Value::as_i64).unwrap_or(0),
            c.get("preemptionPolicy")
                .and_then(Value::as_str)
                .unwrap_or("PreemptLowerPriority")
                .to_string(),
        ),
        None => (0, "PreemptLowerPriority".to_string()),
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64) {
        if given != value {
            return Err(forbidden(
                "pods",
                name,
                format!("the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"),
            ));
        }
    }
    if let (None, Some(c)) = (&wanted, class) {
        if let Some(n) = c.pointer("/metadata/name") {
            spec.insert("priorityClassName".into(), n.clone());
        }
    }
    spec.insert("priority".into(), json!(value));
    spec.entry("preemptionPolicy")
        .or_insert_with(|| json!(policy));
    Ok(())
}

/// RuntimeClass (upstream's `plugin/pkg/admission/runtimeclass`): the class named by
/// `runtimeClassName` must exist; its `overhead.podFixed` becomes `spec.overhead` (a
/// different overhead already in the pod is refused, as is an overhead without one in
/// the class), its `scheduling.nodeSelector` is merged into the pod's (a conflicting
/// value is refused) and its tolerations are added.
pub async fn runtime_class(registry: &Registry, pod: &mut Value, name: &str) -> ApiResult<()> {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let wanted = spec
        .get("runtimeClassName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let class = match &wanted {
        None => None,
        Some(n) => {
            let info = resources::lookup("node.k8s.io", "v1", "runtimeclasses")
                .ok_or_else(|| Status::internal("runtimeclasses are not registered"))?;
            match registry.get(&Target::builtin(info, None), n).await {
                Ok(rc) => Some(rc),
                Err(crate::errors::ApiError::Storage(
                    ferrokube_storage::StorageError::NotFound { .. },
                )) => {
                    return Err(forbidden(
                        "pods",
                        name,
                        format!("pod rejected: RuntimeClass {n:?} not found"),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
    };
    let overhead = class
        .as_ref()
        .and_then(|c| c.pointer("/overhead/podFixed"))
        .filter(|o| o.as_object().is_some_and(|m| !m.is_empty()));
    let given = spec
        .get("overhead")
        .filter(|o| o.as_object().is_some_and(|m| !m.is_empty()));
    match (overhead, given) {
        (Some(want), Some(have)) if !same_quantities(want, have) => {
            return Err(forbidden(
                "pods",
                name,
                "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(forbidden(
                "pods",
                name,
                "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead".into(),
            ));
        }
        (Some(want), _) => {
            spec.insert("overhead".into(), want.clone());
        }
        (None, None) => {}
    }
    let Some(scheduling) = class.as_ref().and_then(|c| c.get("scheduling")) else {
        return Ok(());
    };
    if let Some(selector) = scheduling.get("nodeSelector").and_then(Value::as_object) {
        let pod_selector = spec.entry("nodeSelector").or_insert_with(|| json!({}));
        if !pod_selector.is_object() {
            *pod_selector = json!({});
        }
        if let Some(ps) = pod_selector.as_object_mut() {
            for (k, v) in selector {
                match ps.get(k) {
                    Some(have) if have != v => {
                        let (want, have) = (v.as_str().unwrap_or(""), have.as_str().unwrap_or(""));
                        return Err(forbidden(
                            "pods",
                            name,
                            format!("conflict: runtimeClass.scheduling.nodeSelector[{k}] = {want}; pod.spec.nodeSelector[{k}] = {have}"),
                        ));
                    }
                    _ => {
                        ps.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
    if let Some(extra) = scheduling.get("tolerations").and_then(Value::as_array) {
        let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
        if let Some(list) = tolerations.as_array_mut() {
            for t in extra {
                if !list.contains(t) {
                    list.push(t.clone());
                }
            }
        }
    }
    Ok(())
}

/// Whether two resource lists hold the same quantities (`1` equals `1000m`).
fn same_quantities(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return false;
    };
    let q = Quantity::parse;
    a.len() == b.len()
        && a.iter().all(|(k, va)| {
            b.get(k).is_some_and(|vb| match (q(va), q(vb)) {
                (Some(x), Some(y)) => x == y,
                _ => va == vb,
            })
        })
}

/// DefaultTolerationSeconds.
pub fn default_tolerations(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let list = spec.entry("tolerations").or_insert_with(|| json!([]));
    let Some(list) = list.as_array_mut() else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerated = list.iter().any(|t| {
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
            let exists_all =
                k.is_empty() && t.get("operator").and_then(Value::as_str) == Some("Exists");
            (k == key || exists_all) && (effect.is_empty() || effect == "NoExecute")
        });
        if !tolerated {
            list.push(
                json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS}),
            );
        }
    }
}

fn resources_of<'a>(
    c: &'a mut Map<String, Value>,
    kind: &str,
) -> Option<&'a mut Map<String, Value>> {
    let res = c.entry("resources").or_insert_with(|| json!({}));
    if !res.is_object() {
        *res = json!({});
    }
    let part = res
        .as_object_mut()?
        .entry(kind)
        .or_insert_with(|| json!({}));
    if !part.is_object() {
        *part = json!({});
    }
    part.as_object_mut()
}

/// LimitRanger: Container defaults, then min/max, for every container of a new pod.
pub async fn limit_ranger(
    registry: &Registry,
    namespace: &str,
    pod: &mut Value,
    name: &str,
) -> ApiResult<()> {
    let ranges = list(registry, "", "limitranges", Some(namespace)).await;
    let items: Vec<Value> = ranges
        .iter()
        .flat_map(|r| {
            r.pointer("/spec/limits")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter(|l| l.get("type").and_then(Value::as_str) == Some("Container"))
        .collect();
    if items.is_empty() {
        return Ok(());
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    for key in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(key).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            for item in &items {
                for (part, from) in [("limits", "default"), ("requests", "defaultRequest")] {
                    let Some(defaults) = item.get(from).and_then(Value::as_object) else {
                        continue;
                    };
                    if let Some(target) = resources_of(c, part) {
                        for (res, q) in defaults {
                            target.entry(res.clone()).or_insert_with(|| q.clone());
                        }
                    }
                }
                // A limit without a request: the request is the limit (upstream's defaulting).
                let limits = resources_of(c, "limits").cloned().unwrap_or_default();
                if let Some(requests) = resources_of(c, "requests") {
                    for (res, q) in limits {
                        requests.entry(res).or_insert(q);
                    }
                }
                let container = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                check_bounds(item, c, name, &container)?;
            }
            for part in ["limits", "requests"] {
                let empty = c
                    .get("resources")
                    .and_then(|r| r.get(part))
                    .and_then(Value::as_object)
                    .is_some_and(Map::is_empty);
                if empty {
                    if let Some(r) = c.get_mut("resources").and_then(Value::as_object_mut) {
                        r.remove(part);
                    }
                }
            }
        }
    }
    Ok(())
}

fn check_bounds(item: &Value, c: &Map<String, Value>, pod: &str, container: &str) -> ApiResult<()> {
    let get = |part: &str, res: &str| {
        c.get("resources")
            .and_then(|r| r.get(part))
            .and_then(|p| p.get(res))
            .and_then(Quantity::parse)
    };
    let show = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if let Some(max) = item.get("max").and_then(Value::as_object) {
        for (res, q) in max {
            let (Some(limit_max), limit) = (Quantity::parse(q), get("limits", res)) else {
                continue;
            };
            match limit {
                None => {
                    return Err(forbidden(
                        "pods",
                        pod,
                        format!(
                            "maximum {res} usage per Container is {}.  No limit is specified",
                            show(q)
                        ),
                    ))
                }
                Some(l) if l > limit_max => {
                    let given = c["resources"]["limits"][res.as_str()].clone();
                    return Err(forbidden(
                        "pods",
                        pod,
                        format!(
                            "maximum {res} usage per Container is {}, but limit is {}",
                            show(q),
                            show(&given)
                        ),
                    ));
                }
                _ => {}
            }
        }
    }
    if let Some(min) = item.get("min").and_then(Value::as_object) {
        for (res, q) in min {
            let (Some(request_min), request) = (Quantity::parse(q), get("requests", res)) else {
                continue;
            };
            if request.is_none_or(|r| r < request_min) {
                let given = c
                    .get("resources")
                    .and_then(|r| r.get("requests"))
                    .and_then(|r| r.get(res.as_str()))
                    .map_or("none".to_string(), show);
                return Err(forbidden(
                    "pods",
                    pod,
                    format!(
                        "minimum {res} usage per Container is {}, but request is {given}",
                        show(q)
                    ),
                ));
            }
        }
    }
    let _ = container;
    Ok(())
}

/// DefaultStorageClass: a PVC without `storageClassName` gets the default class.
pub async fn default_storage_class(registry: &Registry, pvc: &mut Value) {
    let has_class = pvc
        .pointer("/spec/storageClassName")
        .is_some_and(|c| !c.is_null());
    if has_class {
        return;
    }
    let classes = list(registry, "storage.k8s.io", "storageclasses", None).await;
    let default = classes.iter().filter(|c| {
        let ann = c.pointer("/metadata/annotations");
        [
            "storageclass.kubernetes.io/is-default-class",
            "storageclass.beta.kubernetes.io/is-default-class",
        ]
        .iter()
        .any(|k| ann.and_then(|a| a.get(*k)).and_then(Value::as_str) == Some("true"))
    });
    // Upstream picks the newest default when several are marked.
    let newest = default.max_by(|a, b| {
        let t = |c: &&Value| {
            c.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        t(a).cmp(&t(b))
    });
    if let (Some(class), Some(spec)) = (newest, pvc.get_mut("spec").and_then(Value::as_object_mut))
    {
        if let Some(n) = class.pointer("/metadata/name") {
            spec.insert("storageClassName".into(), n.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerations_are_added_once() {
        let mut pod = json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]}});
        default_tolerations(&mut pod);
        let t = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1]["key"], "node.kubernetes.io/not-ready");
        assert_eq!(t[1]["tolerationSeconds"], 300);
        default_tolerations(&mut pod);
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn limit_bounds() {
        let item = json!({"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "64Mi"}});
        let ok = json!({"resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "128Mi"}}});
        assert!(check_bounds(&item, ok.as_object().unwrap(), "p", "c").is_ok());
        let over = json!({"resources": {"limits": {"cpu": "2"}, "requests": {"memory": "128Mi"}}});
        let e = check_bounds(&item, over.as_object().unwrap(), "p", "c")
            .unwrap_err()
            .into_status("", "pods", "p");
        assert!(
            e.message
                .contains("maximum cpu usage per Container is 1, but limit is 2"),
            "{}",
            e.message
        );
        let under = json!({"resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Mi"}}});
        assert!(check_bounds(&item, under.as_object().unwrap(), "p", "c").is_err());
    }
}
