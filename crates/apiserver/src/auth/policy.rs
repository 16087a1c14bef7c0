//! Reconciles upstream's bootstrap RBAC policy at start (the `rbac/bootstrap-roles`
//! post-start hook): missing roles and bindings are created; existing ones annotated
//! `rbac.authorization.kubernetes.io/autoupdate: "true"` get the missing rules (roles) or
//! subjects (bindings) added; `autoupdate: "false"` leaves an object alone.

use ferrokube_api::resources;
use ferrokube_storage::StorageError;
use serde_json::Value;

use crate::errors::{ApiError, ApiResult};
use crate::registry::{Registry, Target};

const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

fn autoupdate(obj: &Value) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(AUTOUPDATE))
        .and_then(Value::as_str)
        != Some("false")
}

/// Adds to `current[field]` (an array) what `wanted[field]` has and it lacks.
fn union_into(current: &mut Value, wanted: &Value, field: &str) -> bool {
    let want = wanted
        .get(field)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(map) = current.as_object_mut() else {
        return false;
    };
    let list = map.entry(field).or_insert_with(|| Value::Array(Vec::new()));
    let Some(list) = list.as_array_mut() else {
        return false;
    };
    let mut changed = false;
    for w in want {
        if !list.contains(&w) {
            list.push(w);
            changed = true;
        }
    }
    changed
}

async fn reconcile_one(
    registry: &Registry,
    resource: &str,
    namespace: Option<&str>,
    wanted: Value,
    field: &str,
) -> ApiResult<()> {
    let Some(info) = resources::lookup("rbac.authorization.k8s.io", "v1", resource) else {
        return Ok(());
    };
    let target = Target::builtin(info, namespace);
    let name = ferrokube_api::meta::name(&wanted).unwrap_or("").to_string();
    match registry.get(&target, &name).await {
        Err(ApiError::Storage(StorageError::NotFound { .. })) => {
            match registry.create(&target, wanted, false).await {
                Ok(_) | Err(ApiError::Storage(StorageError::AlreadyExists { .. })) => Ok(()),
                // Another API server created it meanwhile.
                Err(ApiError::Status(s)) if s.reason == "AlreadyExists" => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
        Ok(current) => {
            if !autoupdate(&current) {
                return Ok(());
            }
            let mut next = current.clone();
            let mut changed = union_into(&mut next, &wanted, field);
            if resource.ends_with("roles")
                && wanted.get("aggregationRule").is_some()
                && next.get("aggregationRule") != wanted.get("aggregationRule")
            {
                next["aggregationRule"] = wanted["aggregationRule"].clone();
                changed = true;
            }
            if !changed {
                return Ok(());
            }
            registry
                .update_with(&target, &name, None, false, |_| Ok(next.clone()))
                .await
                .map(|_| ())
        }
    }
}

/// Creates or updates every bootstrap role and binding.
pub async fn reconcile(registry: &Registry) -> ApiResult<()> {
    // With the aggregated roles (admin, edit, view) filled in from the bootstrap roles,
    // as the controller-manager's clusterrole-aggregation controller leaves them.
    for role in ferrokube_authz::bootstrap::aggregated_cluster_roles() {
        reconcile_one(registry, "clusterroles", None, role, "rules").await?;
    }
    for binding in ferrokube_authz::bootstrap::cluster_role_bindings() {
        reconcile_one(registry, "clusterrolebindings", None, binding, "subjects").await?;
    }
    for (ns, role) in ferrokube_authz::bootstrap::namespaced_roles() {
        reconcile_one(registry, "roles", Some(&ns), role, "rules").await?;
    }
    for (ns, binding) in ferrokube_authz::bootstrap::namespaced_role_bindings() {
        reconcile_one(registry, "rolebindings", Some(&ns), binding, "subjects").await?;
    }
    Ok(())
}
