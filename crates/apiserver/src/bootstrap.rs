//! Objects every cluster has from the start besides namespaces: the `kubernetes`
//! Service in `default` (the first IP of the service range, port 443), as upstream's
//! `controlplane/controller/kubernetesservice` makes it, with Endpoints and an
//! EndpointSlice listing every live API server ([`crate::endpoint_reconciler`]).

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

#[allow(clippy::too_many_arguments)]
async fn ensure(
    reg: &Registry,
    namespace: &str,
    group: &str,
    version: &str,
    resource: &str,
    name: &str,
    obj: Value,
    merge: impl Fn(&Value) -> Option<Value>,
) -> Result<(), ServeError> {
    let info = resources::lookup(group, version, resource)
        .ok_or_else(|| fail(name, format!("{resource} not registered")))?;
    let target = Target::builtin(info, Some(namespace));
    match reg.get(&target, name).await {
        Ok(existing) => {
            if let Some(updated) = merge(&existing) {
                reg.update_with(&target, name, None, false, |_| Ok(updated.clone()))
                    .await
                    .map_err(|e| fail(name, e.into_status(group, resource, name).message))?;
            }
            Ok(())
        }
        Err(_) => {
            // Another API server starting at the same time may make it first, and its
            // create may take what ours would allocate (the Service's IP) a moment
            // before its object is stored: look again for a while before failing.
            let mut attempts = 0;
            loop {
                match reg.create(&target, obj.clone(), false).await {
                    Ok(_) => return Ok(()),
                    Err(_) if reg.get(&target, name).await.is_ok() => return Ok(()),
                    Err(_) if attempts < 10 => {
                        attempts += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                    Err(e) => return Err(fail(name, e.into_status(group, resource, name).message)),
                }
            }
        }
    }
}

pub async fn kubernetes_service(reg: &Registry, advertise: &str) -> Result<(), ServeError> {
    let Some(alloc) = reg.services.as_deref() else {
        return Ok(());
    };
    let (_, port) = advertise
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
    ensure(
        reg,
        "default",
        "",
        "v1",
        "services",
        "kubernetes",
        svc,
        |_| None,
    )
    .await?;
    // This server's lease, and the Service's endpoints: every live API server.
    crate::endpoint_reconciler::reconcile(reg, advertise)
        .await
        .map_err(|e| fail("kubernetes", e))
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

/// `kube-system/extension-apiserver-authentication` (upstream's
/// `start-cluster-authentication-info-controller`): the client CA and request-header
/// settings aggregated API servers (metrics-server) read to trust this server's
/// front-proxy requests. Rewritten when the flags changed.
pub async fn extension_apiserver_authentication(
    reg: &Registry,
    authn: &ferrokube_authn::Authenticator,
) -> Result<(), ServeError> {
    const NAME: &str = "extension-apiserver-authentication";
    let data = serde_json::to_value(authn.extension_apiserver_authentication_data())
        .unwrap_or_else(|_| json!({}));
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": NAME, "namespace": "kube-system"},
        "data": data,
    });
    ensure(
        reg,
        "kube-system",
        "",
        "v1",
        "configmaps",
        NAME,
        cm,
        |existing| {
            (existing.get("data") != Some(&data)).then(|| {
                let mut updated = existing.clone();
                updated["data"] = data.clone();
                updated
            })
        },
    )
    .await
}
