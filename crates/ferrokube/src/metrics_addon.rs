//! The metrics-server of `ferrokube server` (the seeds' metrics-server add-on): it runs
//! in the server process on `<node IP>:<port>` with the PKI's `metrics-server`
//! certificate (API client, kubelet client and serving certificate), and the server
//! publishes what upstream's `components.yaml` deploys — the Service
//! `kube-system/metrics-server` (with a hand-made EndpointSlice pointing at that
//! listener), the APIService `v1beta1.metrics.k8s.io` (its caBundle the cluster CA) and
//! the RBAC objects: `system:metrics-server`, `system:aggregated-metrics-reader`, the
//! auth-delegator and authentication-reader bindings. Then `kubectl top` and the HPA
//! work through the API server's aggregation layer.

use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{json, Value};

/// The field manager of what we publish.
const MANAGER: &str = "ferrokube-server";

/// The port to serve on: `wanted` if it is free on `ip`, else (or when 0) one the
/// system picks, so that several servers on one host (tests) do not collide.
pub fn free_port(ip: IpAddr, wanted: u16) -> anyhow::Result<u16> {
    let probe = |port: u16| std::net::TcpListener::bind((ip, port)).and_then(|l| l.local_addr());
    if wanted != 0 {
        if let Ok(addr) = probe(wanted) {
            return Ok(addr.port());
        }
        tracing::warn!(%ip, port = wanted, "metrics-server: port in use, picking another");
    }
    Ok(probe(0)
        .with_context(|| format!("finding a port for metrics-server on {ip}"))?
        .port())
}

/// The metrics-server's flags in a `ferrokube server`.
pub fn argv(pki: &Path, node_ip: IpAddr, port: u16) -> Vec<String> {
    let p = |f: &str| pki.join(f).display().to_string();
    vec![
        format!("--kubeconfig={}", p("metrics-server.kubeconfig")),
        format!(
            "--authentication-kubeconfig={}",
            p("metrics-server.kubeconfig")
        ),
        format!(
            "--authorization-kubeconfig={}",
            p("metrics-server.kubeconfig")
        ),
        format!("--client-ca-file={}", p("ca.pem")),
        format!("--requestheader-client-ca-file={}", p("ca.pem")),
        "--requestheader-allowed-names=aggregator".to_string(),
        format!("--tls-cert-file={}", p("metrics-server.pem")),
        format!("--tls-private-key-file={}", p("metrics-server-key.pem")),
        // Kubelets serve with certificates of their own (self-signed unless they
        // bootstrap serving certificates), as upstream's kind/minikube setups.
        "--kubelet-insecure-tls".to_string(),
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname".to_string(),
        "--kubelet-use-node-status-port".to_string(),
        format!("--bind-address={node_ip}"),
        format!("--secure-port={port}"),
    ]
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

async fn apply(
    client: &kube::Client,
    ar: &ApiResource,
    namespace: Option<&str>,
    obj: Value,
) -> anyhow::Result<()> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    };
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .with_context(|| format!("publishing {} {name}", ar.kind))?;
    Ok(())
}

/// The RBAC objects, Service, EndpointSlice (to `server`:`port`) and APIService.
pub async fn publish(
    client: &kube::Client,
    server: IpAddr,
    port: u16,
    ca_pem: &[u8],
) -> anyhow::Result<()> {
    let rbac = "rbac.authorization.k8s.io";
    let cluster_role = resource(rbac, "v1", "ClusterRole", "clusterroles");
    let cluster_binding = resource(rbac, "v1", "ClusterRoleBinding", "clusterrolebindings");
    let role_binding = resource(rbac, "v1", "RoleBinding", "rolebindings");
    let user = json!([{"kind": "User", "apiGroup": rbac, "name": "system:metrics-server"}]);
    let labels = json!({"k8s-app": "metrics-server"});
    apply(
        client,
        &cluster_role,
        None,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "system:aggregated-metrics-reader", "labels": {
                "k8s-app": "metrics-server",
                "rbac.authorization.k8s.io/aggregate-to-admin": "true",
                "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                "rbac.authorization.k8s.io/aggregate-to-view": "true"}},
            "rules": [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"],
                       "verbs": ["get", "list", "watch"]}]
        }),
    )
    .await?;
    apply(client, &cluster_role, None, json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "system:metrics-server", "labels": labels},
        "rules": [
            {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}]
    })).await?;
    for (name, role) in [
        ("system:metrics-server", "system:metrics-server"),
        (
            "metrics-server:system:auth-delegator",
            "system:auth-delegator",
        ),
    ] {
        apply(
            client,
            &cluster_binding,
            None,
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": name, "labels": labels},
                "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": role},
                "subjects": user
            }),
        )
        .await?;
    }
    apply(client, &role_binding, Some("kube-system"), json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "metrics-server-auth-reader", "namespace": "kube-system", "labels": labels},
        "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "extension-apiserver-authentication-reader"},
        "subjects": user
    })).await?;
    apply(client, &resource("", "v1", "Service", "services"), Some("kube-system"), json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "metrics-server", "namespace": "kube-system", "labels": labels},
        "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}
    })).await?;
    let family = if server.is_ipv4() { "IPv4" } else { "IPv6" };
    apply(
        client,
        &resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
        Some("kube-system"),
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "metrics-server-ferrokube", "namespace": "kube-system",
                         "labels": {"kubernetes.io/service-name": "metrics-server",
                                    "endpointslice.kubernetes.io/managed-by": MANAGER}},
            "addressType": family,
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [server.to_string()], "conditions": {"ready": true}}]
        }),
    )
    .await?;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    apply(
        client,
        &resource("apiregistration.k8s.io", "v1", "APIService", "apiservices"),
        None,
        json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io", "labels": labels},
            "spec": {"group": "metrics.k8s.io", "version": "v1beta1",
                     "groupPriorityMinimum": 100, "versionPriority": 100, "caBundle": ca,
                     "service": {"namespace": "kube-system", "name": "metrics-server", "port": 443}}
        }),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_point_at_the_pki() {
        let argv = argv(Path::new("/pki"), "198.18.0.5".parse().unwrap(), 4443);
        assert!(argv.contains(&"--kubeconfig=/pki/metrics-server.kubeconfig".to_string()));
        assert!(argv.contains(&"--bind-address=198.18.0.5".to_string()));
        assert!(argv.contains(&"--secure-port=4443".to_string()));
        let args: crate::metrics_server_cmd::MetricsServerArgs =
            crate::server::component_args("metrics-server", &argv).unwrap();
        assert!(args.kubelet_insecure_tls && args.kubelet_use_node_status_port);
    }

    #[test]
    fn a_busy_port_is_replaced() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let taken = std::net::TcpListener::bind((lo, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let other = free_port(lo, port).unwrap();
        assert!(other != port && other != 0);
    }
}
