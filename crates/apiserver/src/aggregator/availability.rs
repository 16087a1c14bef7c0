//! The availability controllers (upstream's `AvailableConditionController`, remote and
//! local): every APIService gets an `Available` condition. A local one is always
//! available (`Local`). A remote one is checked as upstream does — the Service exists
//! (`ServiceNotFound`), a ClusterIP Service listens on the port (`ServicePortError`)
//! and has EndpointSlices (`EndpointsNotFound`) with a ready address on that port
//! (`MissingEndpoints`), and a GET of its discovery document answers 2xx within 5 s
//! (`FailedDiscoveryCheck`) — else `Passed`. The document read is kept for discovery.
//! Checks run when an APIService changes and every few seconds.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrokube_api::resources;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::{Aggregator, Remote};
use crate::registry::{Registry, Target};
use crate::service_resolver as sr;

/// How often every APIService is checked again.
const RESYNC: Duration = Duration::from_secs(5);
/// Upstream's discovery check timeout.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest discovery document read.
const MAX_DISCOVERY: usize = 4 << 20;

/// The condition an APIService should carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl Condition {
    fn new(status: &'static str, reason: &'static str, message: String) -> Condition {
        Condition {
            status,
            reason,
            message,
        }
    }
}

/// Checks a remote APIService; the discovery document comes back on success.
pub async fn check(
    agg: &Aggregator,
    registry: &Registry,
    remote: &Remote,
) -> (Condition, Option<Value>) {
    let (ns, name) = (&remote.namespace, &remote.service);
    let svc = match sr::service(registry, ns, name).await {
        Ok(s) => s,
        Err(_) => {
            let msg = format!("service/{name} in {ns:?} is not present");
            return (Condition::new("False", "ServiceNotFound", msg), None);
        }
    };
    let cluster_ip_type = svc
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .is_none_or(|t| t == "ClusterIP");
    if cluster_ip_type {
        let Some(port) = sr::service_port(&svc, remote.port) else {
            let msg = format!(
                "service/{name} in {ns:?} is not listening on port {}",
                remote.port
            );
            return (Condition::new("False", "ServicePortError", msg), None);
        };
        let port_name = port.get("name").and_then(Value::as_str).unwrap_or("");
        let slices = match sr::endpoint_slices(registry, ns, name).await {
            Ok(s) => s,
            Err(e) => {
                let msg = format!("service/{name} in {ns:?} cannot be checked due to: {e}");
                return (Condition::new("Unknown", "EndpointsAccessError", msg), None);
            }
        };
        if slices.is_empty() {
            let msg = format!("cannot find endpointslices for service/{name} in {ns:?}");
            return (Condition::new("False", "EndpointsNotFound", msg), None);
        }
        if sr::ready_addresses(&slices, port_name).is_empty() {
            let msg = format!(
                "endpointslices for service/{name} in {ns:?} have no addresses with port name {port_name:?}"
            );
            return (Condition::new("False", "MissingEndpoints", msg), None);
        }
    }
    match discovery(agg, registry, remote).await {
        Ok(doc) => (
            Condition::new("True", "Passed", "all checks passed".into()),
            Some(doc),
        ),
        Err(e) => (Condition::new("False", "FailedDiscoveryCheck", e), None),
    }
}

/// GETs the APIService's discovery document as upstream's check does: no certificate
/// check, the proxy identity, and user `system:kube-aggregator` in `system:masters`.
async fn discovery(
    agg: &Aggregator,
    registry: &Registry,
    remote: &Remote,
) -> Result<Value, String> {
    let addr = super::proxy::resolve(agg, registry, remote).await?;
    let path = remote.discovery_path();
    let url = format!(
        "https://{}{path}",
        ferrokube_component_base::net::join_host_port(&addr.ip().to_string(), addr.port())
    );
    let fetch = async {
        let tls = agg.insecure_tls()?;
        let stream = super::proxy::dial(tls, addr, &remote.server_name()).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(conn);
        let mut req = http::Request::get(path.as_str())
            .header(http::header::HOST, remote.server_name())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let user = ferrokube_authz::UserInfo::new("system:kube-aggregator", &["system:masters"]);
        super::proxy::set_identity(req.headers_mut(), &user);
        let result = async {
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_DISCOVERY)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            if !status.is_success() {
                return Err(format!("bad status from {url}: {}", status.as_u16()));
            }
            serde_json::from_slice::<Value>(&body)
                .map_err(|e| format!("failing or missing response from {url}: {e}"))
        }
        .await;
        driver.abort();
        result
    };
    match tokio::time::timeout(DISCOVERY_TIMEOUT, fetch).await {
        Ok(Ok(doc)) => Ok(doc),
        Ok(Err(e)) if e.starts_with("bad status") || e.starts_with("failing") => Err(e),
        Ok(Err(e)) => Err(format!("failing or missing response from {url}: {e}")),
        Err(_) => Err(format!(
            "failing or missing response from {url}: context deadline exceeded"
        )),
    }
}

fn now() -> String {
    ferrokube_api::time::now_rfc3339()
}

/// Writes `cond` as the APIService's `Available` condition, unless it already says so
/// (the transition time moves only when the status changes).
async fn record(registry: &Registry, name: &str, cond: &Condition) {
    let Some(info) = resources::lookup("apiregistration.k8s.io", "v1", "apiservices") else {
        return;
    };
    let target = Target::builtin(info, None);
    let Ok(current) = registry.get(&target, name).await else {
        return;
    };
    if current_condition(&current).as_ref() == Some(cond) {
        return;
    }
    let result = registry
        .update_with(&target, name, Some("status"), false, |cur| {
            let mut obj = cur.cloned().ok_or_else(|| {
                crate::errors::ApiError::from(ferrokube_api::status::Status::failure(
                    404,
                    "NotFound",
                    format!("apiservices.apiregistration.k8s.io {name:?} not found"),
                ))
            })?;
            let previous = obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Available").cloned());
            let since = match &previous {
                Some(p) if p["status"] == cond.status => p
                    .get("lastTransitionTime")
                    .cloned()
                    .unwrap_or_else(|| json!(now())),
                _ => json!(now()),
            };
            let mut conditions: Vec<Value> = obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .filter(|c| c["type"] != "Available")
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            conditions.push(json!({
                "type": "Available",
                "status": cond.status,
                "lastTransitionTime": since,
                "reason": cond.reason,
                "message": cond.message,
            }));
            obj["status"] = json!({"conditions": conditions});
            Ok(obj)
        })
        .await;
    match result {
        Ok(_) => {
            tracing::info!(apiservice = name, status = cond.status, reason = cond.reason, message = %cond.message, "aggregator: APIService availability")
        }
        Err(e) => {
            tracing::debug!(apiservice = name, error = ?e, "aggregator: writing the Available condition")
        }
    }
}

fn current_condition(obj: &Value) -> Option<Condition> {
    let c = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == "Available")?;
    let status = match c["status"].as_str()? {
        "True" => "True",
        "False" => "False",
        _ => "Unknown",
    };
    let reason = c.get("reason").and_then(Value::as_str).unwrap_or("");
    Some(Condition {
        status,
        reason: KNOWN_REASONS.iter().find(|r| **r == reason).copied()?,
        message: c
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

const KNOWN_REASONS: &[&str] = &[
    "Local",
    "Passed",
    "ServiceNotFound",
    "ServicePortError",
    "EndpointsNotFound",
    "EndpointsAccessError",
    "MissingEndpoints",
    "FailedDiscoveryCheck",
];

/// Marks local APIServices available (upstream's local availability controller).
async fn sync_local(registry: &Registry) {
    let Some(info) = resources::lookup("apiregistration.k8s.io", "v1", "apiservices") else {
        return;
    };
    let target = Target::builtin(info, None);
    let Ok((items, ..)) = registry.list(&target, &Default::default()).await else {
        return;
    };
    let local = Condition::new(
        "True",
        "Local",
        "Local APIServices are always available".into(),
    );
    for item in items {
        if item.pointer("/spec/service").is_some_and(|s| !s.is_null()) {
            continue;
        }
        let name = ferrokube_api::meta::name(&item).unwrap_or("").to_string();
        if current_condition(&item).as_ref() != Some(&local) {
            record(registry, &name, &local).await;
        }
    }
}

/// Checks every remote APIService (concurrently) and records the results.
async fn sync_remote(agg: &Arc<Aggregator>, registry: &Registry) {
    let checks = agg.remotes().into_iter().map(|remote| {
        let (agg, registry) = (agg.clone(), registry.clone());
        tokio::spawn(async move {
            let (cond, doc) = check(&agg, &registry, &remote).await;
            agg.set_discovered(&remote.name, doc);
            record(&registry, &remote.name, &cond).await;
        })
    });
    for task in checks.collect::<Vec<_>>() {
        let _ = task.await;
    }
}

/// Runs the controllers until `shutdown`.
pub async fn run(agg: Arc<Aggregator>, registry: Registry, mut shutdown: watch::Receiver<bool>) {
    let mut local_synced = false;
    loop {
        if !local_synced {
            sync_local(&registry).await;
            local_synced = true;
        }
        sync_remote(&agg, &registry).await;
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = agg.changed.notified() => {
                // A changed APIService may be a new local one.
                local_synced = false;
            }
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}
