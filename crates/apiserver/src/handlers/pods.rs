//! `pods/binding` (and the `bindings` collection) and `pods/eviction`, as upstream's
//! `BindingREST` and `EvictionREST`: binding sets `spec.nodeName` and the PodScheduled
//! condition of an unbound pod; eviction deletes a pod if its PodDisruptionBudget allows
//! one more disruption (decrementing `status.disruptionsAllowed`), else answers 429.

use ferrokube_api::meta;
use ferrokube_api::resources::{self, ResourceInfo};
use ferrokube_api::selectors::LabelSelector;
use ferrokube_api::status::{field, Status, StatusCause, StatusDetails, Subject};
use ferrokube_storage::StorageError;
use serde_json::{json, Value};

use crate::body::Response;
use crate::errors::ApiResult;
use crate::handlers::response;
use crate::registry::delete::DeleteOptions;
use crate::registry::list::ListOptions;
use crate::registry::{Registry, Target};

/// Sets `value` at `path`, making every step an object (never panics on odd shapes).
fn set_path(obj: &mut Value, path: &[&str], value: Value) {
    let mut cur = obj;
    for key in path {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        cur = map.entry(key.to_string()).or_insert(Value::Null);
    }
    *cur = value;
}

fn success(code: u16) -> Response {
    let mut st = Status::success();
    st.code = code;
    response::status(&st)
}

/// Binds pod `name` to the node named in `binding.target`.
pub async fn bind(
    registry: &Registry,
    pods: &'static ResourceInfo,
    namespace: &str,
    name: &str,
    binding: &Value,
) -> ApiResult<Response> {
    let subject = Subject {
        group: "",
        resource: "Binding",
        name,
    };
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = binding
        .pointer("/target/kind")
        .and_then(Value::as_str)
        .unwrap_or("Node");
    let mut causes = Vec::new();
    if node.is_empty() {
        causes.push(field::required("target.name", ""));
    }
    if !kind.is_empty() && kind != "Node" {
        causes.push(field::invalid(
            "target.kind",
            &json!(kind),
            "must be empty or 'Node'",
        ));
    }
    if !causes.is_empty() {
        return Err(Status::invalid(subject, causes).into());
    }
    let annotations = binding
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let target = Target::builtin(pods, Some(namespace));
    registry
        .update_with(&target, name, None, false, |current| {
            let Some(pod) = current else {
                return Err(StorageError::NotFound { key: name.into() }.into());
            };
            if meta::str_field(pod, "deletionTimestamp").is_some() {
                return Err(Status::conflict(
                    Subject {
                        group: "",
                        resource: "pods",
                        name,
                    },
                    &format!("pod {name} is being deleted, cannot be assigned to a host"),
                )
                .into());
            }
            if let Some(bound) = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                return Err(Status::conflict(
                    Subject {
                        group: "",
                        resource: "pods",
                        name,
                    },
                    &format!("pod {name} is already assigned to node \"{bound}\""),
                )
                .into());
            }
            if pod
                .pointer("/spec/schedulingGates")
                .and_then(Value::as_array)
                .is_some_and(|g| !g.is_empty())
            {
                return Err(Status::conflict(
                    Subject {
                        group: "",
                        resource: "pods",
                        name,
                    },
                    &format!("pod {name} has non-empty .spec.schedulingGates"),
                )
                .into());
            }
            let mut pod = pod.clone();
            set_path(&mut pod, &["spec", "nodeName"], json!(node));
            if !annotations.is_empty() {
                let meta = meta::metadata_mut(&mut pod)
                    .ok_or_else(|| Status::internal("pod without metadata"))?;
                let existing = meta.entry("annotations").or_insert_with(|| json!({}));
                if let Some(existing) = existing.as_object_mut() {
                    existing.extend(annotations.clone());
                }
            }
            Ok(pod)
        })
        .await?;
    // PodScheduled goes through the status subresource, as the binding REST does.
    registry
        .update_with(&target, name, Some("status"), false, |current| {
            let Some(pod) = current else {
                return Err(StorageError::NotFound { key: name.into() }.into());
            };
            let mut pod = pod.clone();
            let now = ferrokube_api::time::now_rfc3339();
            let conds = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let mut conds: Vec<Value> = conds.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
            conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
            set_path(&mut pod, &["status", "conditions"], json!(conds));
            Ok(pod)
        })
        .await?;
    Ok(success(201))
}

/// Evicts pod `name`, honouring the PodDisruptionBudget that selects it.
pub async fn evict(
    registry: &Registry,
    pods: &'static ResourceInfo,
    namespace: &str,
    name: &str,
    eviction: &Value,
) -> ApiResult<Response> {
    let target = Target::builtin(pods, Some(namespace));
    let pod = registry.get(&target, name).await?;
    let opts: DeleteOptions = match eviction.get("deleteOptions") {
        Some(o) if !o.is_null() => serde_json::from_value(o.clone())
            .map_err(|e| Status::bad_request(format!("invalid deleteOptions: {e}")))?,
        _ => DeleteOptions::default(),
    };
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    // Finished or not-yet-running pods need no budget, as upstream.
    if !matches!(phase, "Succeeded" | "Failed" | "Pending") {
        let pdb_info: &'static ResourceInfo =
            resources::lookup("policy", "v1", "poddisruptionbudgets")
                .ok_or_else(|| Status::internal("poddisruptionbudgets are not registered"))?;
        let pdb_target = Target::builtin(pdb_info, Some(namespace));
        let (pdbs, _, _, _) = registry.list(&pdb_target, &ListOptions::default()).await?;
        let labels = meta::labels(&pod);
        let matching: Vec<Value> = pdbs
            .into_iter()
            .filter(|p| {
                let sel = crate::handlers::scale::selector_string(p.pointer("/spec/selector"));
                p.pointer("/spec/selector").is_some()
                    && LabelSelector::parse(&sel).is_ok_and(|s| s.matches(&labels))
            })
            .collect();
        if matching.len() > 1 {
            return Err(Status::internal("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.").into());
        }
        if let Some(pdb) = matching.first() {
            let pdb_name = meta::name(pdb).unwrap_or_default().to_string();
            let pod_name = name.to_string();
            registry
                .update_with(&pdb_target, &pdb_name, Some("status"), false, |current| {
                    let Some(pdb) = current else {
                        return Err(StorageError::NotFound { key: pdb_name.clone() }.into());
                    };
                    let allowed = pdb.pointer("/status/disruptionsAllowed").and_then(Value::as_i64).unwrap_or(0);
                    if allowed <= 0 {
                        let desired = pdb.pointer("/status/desiredHealthy").and_then(Value::as_i64).unwrap_or(0);
                        let healthy = pdb.pointer("/status/currentHealthy").and_then(Value::as_i64).unwrap_or(0);
                        let mut st = Status::failure(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.");
                        st.details = Some(StatusDetails {
                            causes: vec![StatusCause {
                                cause_type: "DisruptionBudget".into(),
                                message: format!("The disruption budget {pdb_name} needs {desired} healthy pods and has {healthy} currently"),
                                field: String::new(),
                            }],
                            ..Default::default()
                        });
                        return Err(st.into());
                    }
                    let mut pdb = pdb.clone();
                    set_path(&mut pdb, &["status", "disruptionsAllowed"], json!(allowed - 1));
                    set_path(&mut pdb, &["status", "disruptedPods", &pod_name], json!(ferrokube_api::time::now_rfc3339()));
                    Ok(pdb)
                })
                .await?;
        }
    }
    registry.delete(&target, name, &opts, false).await?;
    Ok(success(201))
}
