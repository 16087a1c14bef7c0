//! Which API servers back the `kubernetes` Service, as upstream's lease endpoint
//! reconciler (`--endpoint-reconciler-type=lease`, the default) decides it: every API
//! server renews a lease of its own every [`INTERVAL`], and rewrites the `kubernetes`
//! Endpoints and EndpointSlice in `default` to the addresses whose lease is younger than
//! [`TTL`]. A server that is killed drops out within `TTL + INTERVAL`; one that shuts
//! down cleanly removes itself at once ([`withdraw`]).
//!
//! Upstream keeps its leases as bare etcd keys under `/masterleases/`; ours are
//! `coordination.k8s.io` Leases in `kube-system` named `kube-apiserver-endpoint-<ip>`
//! and labelled [`LABEL`], so they work on every storage backend and can be looked at
//! with `kubectl get leases -n kube-system`.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use crate::registry::list::ListOptions;
use crate::registry::{Registry, Target};
use ferrokube_api::resources;

/// How long an API server's lease counts after its last renewal (upstream's
/// `DefaultEndpointReconcilerTTL`).
pub const TTL: Duration = Duration::from_secs(15);
/// How often each API server renews its lease and reconciles (upstream's
/// `DefaultEndpointReconcilerInterval`).
pub const INTERVAL: Duration = Duration::from_secs(10);
/// The label on our endpoint leases.
pub const LABEL: &str = "ferrokube.io/apiserver-endpoint";
/// Leases not renewed for this long are deleted (servers that went away for good).
const FORGET_AFTER: i64 = 3600;

/// `host:port` of an advertise address (`198.18.1.1:6443`, `[fd00::1]:6443`).
fn split(advertise: &str) -> Option<(String, u16)> {
    let (host, port) = advertise.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// The lease name of an API server address.
pub fn lease_name(ip: &str) -> String {
    format!("kube-apiserver-endpoint-{}", ip.replace(':', "-"))
}

/// What went wrong with a write, as the API would tell a client.
fn describe(e: crate::errors::ApiError, group: &str, resource: &str, name: &str) -> String {
    e.into_status(group, resource, name).message
}

fn target(group: &str, resource: &str, namespace: &'static str) -> Option<Target<'static>> {
    resources::lookup(group, "v1", resource).map(|info| Target::builtin(info, Some(namespace)))
}

/// A MicroTime (`2006-01-02T15:04:05.000000Z`) for Unix seconds.
fn micro_time(unix: i64) -> String {
    let t = ferrokube_api::time::format_rfc3339(unix);
    format!("{}.000000Z", t.trim_end_matches('Z'))
}

/// Renews (or creates) this server's lease.
async fn renew(reg: &Registry, ip: &str, port: u16) -> Result<(), String> {
    let t = target("coordination.k8s.io", "leases", "kube-system")
        .ok_or("leases are not registered")?;
    let name = lease_name(ip);
    let now = micro_time(ferrokube_api::time::now_unix());
    // The holder is the address the Service's endpoints get.
    let address = format!("{ip}:{port}");
    reg.update_or_create_with(&t, &name, None, false, true, |current| {
        let acquired = current
            .and_then(|c| c.pointer("/spec/acquireTime").cloned())
            .unwrap_or_else(|| json!(now));
        let mut l = current.cloned().unwrap_or_else(|| {
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": {"name": name, "namespace": "kube-system"}})
        });
        l["metadata"]["labels"][LABEL] = json!("true");
        l["spec"] = json!({"holderIdentity": address,
                           "leaseDurationSeconds": TTL.as_secs(),
                           "acquireTime": acquired,
                           "renewTime": now});
        Ok(l)
    })
    .await
    .map(|_| ())
    .map_err(|e| {
        format!(
            "renewing: {}",
            describe(e, "coordination.k8s.io", "leases", &name)
        )
    })
}

/// The addresses of the leases renewed within [`TTL`] (sorted), deleting leases
/// abandoned for an hour. `except` is left out (a server shutting down).
async fn live(reg: &Registry, except: Option<&str>) -> Result<Vec<String>, String> {
    let t = target("coordination.k8s.io", "leases", "kube-system")
        .ok_or("leases are not registered")?;
    let opts = ListOptions {
        labels: ferrokube_api::selectors::LabelSelector::parse(LABEL)
            .map_err(|e| format!("label selector: {e}"))?,
        ..ListOptions::default()
    };
    let (leases, ..) = reg.list(&t, &opts).await.map_err(|e| {
        format!(
            "listing endpoint leases: {}",
            describe(e, "coordination.k8s.io", "leases", "")
        )
    })?;
    let now = ferrokube_api::time::now_unix();
    let mut ips = Vec::new();
    for l in leases {
        let Some(ip) = l
            .pointer("/spec/holderIdentity")
            .and_then(Value::as_str)
            .and_then(split)
            .map(|(ip, _)| ip)
        else {
            continue;
        };
        let renewed = l
            .pointer("/spec/renewTime")
            .and_then(Value::as_str)
            .and_then(ferrokube_api::time::parse_rfc3339)
            .unwrap_or(0);
        let ttl = l
            .pointer("/spec/leaseDurationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(TTL.as_secs() as i64);
        if Some(ip.as_str()) != except && now - renewed < ttl {
            ips.push(ip);
        } else if now - renewed > FORGET_AFTER {
            if let Some(name) = l.pointer("/metadata/name").and_then(Value::as_str) {
                if let Err(e) = reg.delete(&t, name, &Default::default(), false).await {
                    let e = describe(e, "coordination.k8s.io", "leases", name);
                    tracing::debug!(lease = name, error = %e, "forgetting an endpoint lease");
                }
            }
        }
    }
    ips.sort();
    ips.dedup();
    Ok(ips)
}

/// Writes the `kubernetes` Endpoints and EndpointSlice for `ips` on `port`, when
/// they say something else.
async fn write_endpoints(reg: &Registry, ips: &[String], port: u16) -> Result<(), String> {
    let ports = json!([{"name": "https", "port": port, "protocol": "TCP"}]);
    if let Some(t) = target("", "endpoints", "default") {
        let subsets = if ips.is_empty() {
            json!([])
        } else {
            json!([{"addresses": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
                    "ports": ports}])
        };
        reg.update_or_create_with(&t, "kubernetes", None, false, true, |current| {
            let mut ep = current.cloned().unwrap_or_else(|| {
                json!({"apiVersion": "v1", "kind": "Endpoints",
                       "metadata": {"name": "kubernetes", "namespace": "default",
                                    "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}})
            });
            ep["subsets"] = subsets.clone();
            Ok(ep)
        })
        .await
        .map_err(|e| describe(e, "", "endpoints", "kubernetes"))?;
    }
    if let Some(t) = target("discovery.k8s.io", "endpointslices", "default") {
        let family = if ips.iter().any(|ip| ip.contains(':')) {
            "IPv6"
        } else {
            "IPv4"
        };
        let endpoints: Vec<Value> = ips
            .iter()
            .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
            .collect();
        reg.update_or_create_with(&t, "kubernetes", None, false, true, |current| {
            let mut slice = current.cloned().unwrap_or_else(|| {
                json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                       "metadata": {"name": "kubernetes", "namespace": "default",
                                    "labels": {"kubernetes.io/service-name": "kubernetes"}},
                       "addressType": family})
            });
            slice["endpoints"] = json!(endpoints);
            slice["ports"] = ports.clone();
            Ok(slice)
        })
        .await
        .map_err(|e| describe(e, "discovery.k8s.io", "endpointslices", "kubernetes"))?;
    }
    Ok(())
}

/// One round: renew this server's lease, then point the `kubernetes` Service at every
/// live server.
pub async fn reconcile(reg: &Registry, advertise: &str) -> Result<(), String> {
    let (ip, port) =
        split(advertise).ok_or_else(|| format!("bad advertise address {advertise:?}"))?;
    renew(reg, &ip, port).await?;
    let mut ips = live(reg, None).await?;
    if !ips.contains(&ip) {
        // Our own lease is live even if this host's clock is behind another's.
        ips.push(ip);
        ips.sort();
    }
    write_endpoints(reg, &ips, port).await
}

/// Reconciles every [`INTERVAL`] until `shutdown` turns true.
pub async fn run(reg: Registry, advertise: String, mut shutdown: watch::Receiver<bool>) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        match reconcile(&reg, &advertise).await {
            Ok(()) if failing => {
                tracing::info!("kubernetes service endpoints: reconciling again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "kubernetes service endpoints: reconcile failed; retrying");
                }
                failing = true;
            }
        }
    }
}

/// A clean shutdown: this server's lease goes, and the Service points at the others.
pub async fn withdraw(reg: &Registry, advertise: &str) {
    let Some((ip, port)) = split(advertise) else {
        return;
    };
    if let Some(t) = target("coordination.k8s.io", "leases", "kube-system") {
        let _ = reg
            .delete(&t, &lease_name(&ip), &Default::default(), false)
            .await;
    }
    match live(reg, Some(&ip)).await {
        Ok(ips) => {
            if let Err(e) = write_endpoints(reg, &ips, port).await {
                tracing::warn!(error = %e, "kubernetes service endpoints: withdrawing");
            }
        }
        Err(e) => tracing::warn!(error = %e, "kubernetes service endpoints: withdrawing"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names() {
        assert_eq!(split("198.18.1.1:6443"), Some(("198.18.1.1".into(), 6443)));
        assert_eq!(split("[fd00::1]:6443"), Some(("fd00::1".into(), 6443)));
        assert_eq!(split("nope"), None);
        assert_eq!(lease_name("fd00::1"), "kube-apiserver-endpoint-fd00--1");
        assert_eq!(micro_time(0), "1970-01-01T00:00:00.000000Z");
    }
}
