//! Where the API server connects to reach a Service it calls itself (admission webhooks,
//! aggregated API servers): upstream's `ServiceResolver`s. The default resolver dials
//! the Service's cluster IP (an ExternalName Service's name); the endpoint resolver
//! (`--enable-aggregator-routing`) dials a ready endpoint address of the Service's port.

use std::net::{IpAddr, SocketAddr};

use ferrokube_api::resources;
use serde_json::Value;

use crate::registry::list::ListOptions;
use crate::registry::{Registry, Target};

async fn get(registry: &Registry, resource: &str, namespace: &str, name: &str) -> Option<Value> {
    let info = resources::lookup("", "v1", resource)?;
    registry
        .get(&Target::builtin(info, Some(namespace)), name)
        .await
        .ok()
}

/// The Service `namespace/name`, or upstream's "not found" message.
pub async fn service(registry: &Registry, namespace: &str, name: &str) -> Result<Value, String> {
    get(registry, "services", namespace, name)
        .await
        .ok_or_else(|| format!("service \"{name}\" not found"))
}

/// The entry of `spec.ports` serving `port`.
pub fn service_port(svc: &Value, port: u16) -> Option<&Value> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)?
        .iter()
        .find(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(port)))
}

/// An ExternalName Service's name to dial.
fn external_name(svc: &Value) -> Option<&str> {
    (svc.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName")).then(|| {
        svc.pointer("/spec/externalName")
            .and_then(Value::as_str)
            .unwrap_or("")
    })
}

/// The cluster IP and port (or the external name) of `namespace/name`'s `port`.
pub async fn cluster_ip(
    registry: &Registry,
    namespace: &str,
    name: &str,
    port: u16,
) -> Result<SocketAddr, String> {
    let svc = service(registry, namespace, name).await?;
    if let Some(ext) = external_name(&svc) {
        return host(ext, port).await;
    }
    let ip = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        .ok_or_else(|| format!("service {namespace}/{name} has no cluster IP"))?;
    if service_port(&svc, port).is_none() {
        return Err(format!(
            "unable to find service port {port} for service {namespace}/{name}"
        ));
    }
    Ok(SocketAddr::new(ip, port))
}

/// The EndpointSlices of Service `namespace/name` (label `kubernetes.io/service-name`).
pub async fn endpoint_slices(
    registry: &Registry,
    namespace: &str,
    name: &str,
) -> Result<Vec<Value>, String> {
    let info = resources::lookup("discovery.k8s.io", "v1", "endpointslices")
        .ok_or("endpointslices are not registered")?;
    let options = ListOptions {
        labels: ferrokube_api::selectors::LabelSelector::parse(&format!(
            "kubernetes.io/service-name={name}"
        ))?,
        ..ListOptions::default()
    };
    let (items, ..) = registry
        .list(&Target::builtin(info, Some(namespace)), &options)
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(items)
}

/// The ready addresses of `slices` with a port named `port_name`, with that port.
pub fn ready_addresses(slices: &[Value], port_name: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for slice in slices {
        let port = slice
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
            .and_then(|p| p.get("port").and_then(Value::as_u64))
            .and_then(|p| u16::try_from(p).ok());
        let Some(port) = port else { continue };
        for ep in slice
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if ep.pointer("/conditions/ready") == Some(&Value::Bool(false)) {
                continue;
            }
            for ip in ep
                .get("addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(|ip| ip.parse::<IpAddr>().ok())
            {
                out.push(SocketAddr::new(ip, port));
            }
        }
    }
    out
}

/// The ready endpoint addresses serving `namespace/name`'s `port` (the EndpointSlice
/// port named as the Service port), as upstream's `ResolveEndpoint`.
pub async fn endpoints(
    registry: &Registry,
    namespace: &str,
    name: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, String> {
    let svc = service(registry, namespace, name).await?;
    if let Some(ext) = external_name(&svc) {
        return Ok(vec![host(ext, port).await?]);
    }
    let port_name = service_port(&svc, port)
        .ok_or_else(|| format!("no service port {port} found for service \"{name}\""))?
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let slices = endpoint_slices(registry, namespace, name).await?;
    let out = ready_addresses(&slices, &port_name);
    if out.is_empty() {
        return Err(format!(
            "endpointslices for service/{name} in \"{namespace}\" have no addresses with port name \"{port_name}\""
        ));
    }
    Ok(out)
}

/// `host:port` resolved (an IP as it is, a name through the system resolver).
pub async fn host(host: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let mut addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("dial tcp: lookup {host}: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("dial tcp: lookup {host}: no such host"))
}
