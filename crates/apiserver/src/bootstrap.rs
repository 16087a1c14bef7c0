//! Objects every cluster has from the start besides namespaces: the `kubernetes`
//! Service in `default` (the first IP of the service range, port 443) with Endpoints and
//! an EndpointSlice listing this API server's advertise address and secure port, as
//! upstream's `controlplane/controller/kubernetesservice` reconciles them.

use ferrokube_api::resources;
use serde_json::{json, Value};

use crate::registry::{Registry, Target};
use crate::server::ServeError;

fn fail(name: &str, message: String) -> ServeError {
    ServeError::Bootstrap {
        name: name.into(),
        message,
    }
}

async fn ensure(
    reg: &Registry,
    group: &str,
    version: &str,
    resource: &str,
    name: &str,
    obj: Value,
    merge: impl Fn(&Value) -> Option<Value>,
) -> Result<(), ServeError> {
    let info = resources::lookup(group, version, resource)
        .ok_or_else(|| fail(name, format!("{resource} not registered")))?;
    let target = Target::builtin(info, Some("default"));
    match reg.get(&target, name).await {
        Ok(existing) => {
            if let Some(updated) = merge(&existing) {
                reg.update_with(&target, name, None, false, |_| Ok(updated.clone()))
                    .await
                    .map_err(|e| fail(name, e.into_status(group, resource, name).message))?;
            }
            Ok(())
        }
        Err(_) => reg
            .create(&target, obj, false)
            .await
            .map(|_| ())
            .map_err(|e| fail(name, e.into_status(group, resource, name).message)),
    }
}

pub async fn kubernetes_service(reg: &Registry, advertise: &str) -> Result<(), ServeError> {
    let Some(alloc) = reg.services.as_deref() else {
        return Ok(());
    };
    let (host, port) = advertise
        .rsplit_once(':')
        .ok_or_else(|| fail("kubernetes", format!("bad advertise address {advertise:?}")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| fail("kubernetes", format!("bad advertise port in {advertise:?}")))?;
    let ip = alloc.first_ip().to_string();
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
    });
    ensure(reg, "", "v1", "services", "kubernetes", svc, |_| None).await?;
    let address = json!({"ip": host});
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [address.clone()], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    });
    // Add this server's address to what other API servers registered.
    let merge_endpoints = |existing: &Value| -> Option<Value> {
        let addrs = existing
            .pointer("/subsets/0/addresses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if addrs.iter().any(|a| a["ip"] == address["ip"]) {
            return None;
        }
        let mut updated = existing.clone();
        let mut all = addrs;
        all.push(address.clone());
        updated["subsets"] = json!([{"addresses": all, "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]);
        Some(updated)
    };
    ensure(
        reg,
        "",
        "v1",
        "endpoints",
        "kubernetes",
        endpoints,
        merge_endpoints,
    )
    .await?;
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [host], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    let merge_slice = |existing: &Value| -> Option<Value> {
        let eps = existing
            .pointer("/endpoints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if eps.iter().any(|e| e["addresses"][0] == json!(host)) {
            return None;
        }
        let mut updated = existing.clone();
        let mut all = eps;
        all.push(json!({"addresses": [host], "conditions": {"ready": true}}));
        updated["endpoints"] = json!(all);
        Some(updated)
    };
    ensure(
        reg,
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "kubernetes",
        slice,
        merge_slice,
    )
    .await
}

/// Removes this server's address from the `kubernetes` Endpoints and EndpointSlice on a
/// graceful shutdown (best effort: other API servers keep serving the Service).
pub async fn withdraw(reg: &Registry, advertise: &str) {
    let Some((host, _)) = advertise.rsplit_once(':') else {
        return;
    };
    if let Some(info) = resources::lookup("", "v1", "endpoints") {
        let target = Target::builtin(info, Some("default"));
        let _ = reg
            .update_with(&target, "kubernetes", None, false, |current| {
                let mut ep = current.cloned().unwrap_or(Value::Null);
                if let Some(addrs) = ep
                    .pointer_mut("/subsets/0/addresses")
                    .and_then(Value::as_array_mut)
                {
                    addrs.retain(|a| a["ip"] != json!(host));
                }
                if ep
                    .pointer("/subsets/0/addresses")
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty)
                {
                    if let Some(m) = ep.as_object_mut() {
                        m.insert("subsets".into(), json!([]));
                    }
                }
                Ok(ep)
            })
            .await;
    }
    if let Some(info) = resources::lookup("discovery.k8s.io", "v1", "endpointslices") {
        let target = Target::builtin(info, Some("default"));
        let _ = reg
            .update_with(&target, "kubernetes", None, false, |current| {
                let mut slice = current.cloned().unwrap_or(Value::Null);
                if let Some(eps) = slice.get_mut("endpoints").and_then(Value::as_array_mut) {
                    eps.retain(|e| e["addresses"][0] != json!(host));
                }
                Ok(slice)
            })
            .await;
    }
}

/// The system PriorityClasses (upstream's `scheduling/bootstrap-system-priority-classes`
/// post-start hook): `system-node-critical` and `system-cluster-critical`.
pub async fn system_priority_classes(reg: &Registry) -> Result<(), ServeError> {
    let Some(info) = resources::lookup("scheduling.k8s.io", "v1", "priorityclasses") else {
        return Ok(());
    };
    let target = Target::builtin(info, None);
    for (name, value, description) in [
        (
            "system-node-critical",
            2_000_001_000_i64,
            "Used for system critical pods that must not be moved from their current node.",
        ),
        (
            "system-cluster-critical",
            2_000_000_000,
            "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
        ),
    ] {
        if reg.get(&target, name).await.is_ok() {
            continue;
        }
        let pc = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "description": description,
            "preemptionPolicy": "PreemptLowerPriority"});
        if let Err(e) = reg.create(&target, pc, false).await {
            let status = e.into_status("scheduling.k8s.io", "priorityclasses", name);
            if status.reason != "AlreadyExists" {
                return Err(fail(name, status.message));
            }
        }
    }
    Ok(())
}
