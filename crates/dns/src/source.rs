//! Filling the zone from the API server: watches of Services and
//! discovery.k8s.io/v1 EndpointSlices (kube-rs's runtime watcher: list, then watch,
//! re-listing after a 410 or a broken watch with backoff), each list replacing the
//! zone's set and each event updating one object. The zone reports synced, and the
//! server ready, once both first lists have been applied.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::zone::{EndpointInfo, PortInfo, ServiceInfo, ServiceKind, SliceInfo, Zone};

/// The label naming an EndpointSlice's service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The pre-`publishNotReadyAddresses` annotation the specification still honours.
pub const TOLERATE_UNREADY: &str = "service.alpha.kubernetes.io/tolerate-unready-endpoints";

/// A Service as the zone sees it; `None` while it has no cluster IP yet (or no spec).
pub fn service_info(svc: &Service) -> Option<ServiceInfo> {
    let spec = svc.spec.as_ref()?;
    let namespace = svc.metadata.namespace.clone()?;
    let name = svc.metadata.name.clone()?;
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        ServiceKind::ExternalName(spec.external_name.clone()?)
    } else {
        let ips: Vec<&str> = match &spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips.iter().map(String::as_str).collect(),
            _ => spec.cluster_ip.as_deref().into_iter().collect(),
        };
        if ips.contains(&"None") {
            ServiceKind::Headless
        } else {
            let parsed: Vec<IpAddr> = ips.iter().filter_map(|ip| ip.parse().ok()).collect();
            if parsed.is_empty() {
                return None;
            }
            ServiceKind::ClusterIp(parsed)
        }
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(PortInfo {
                name: p.name.clone().filter(|n| !n.is_empty()),
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                port: u16::try_from(p.port).ok()?,
            })
        })
        .collect();
    let tolerate = svc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TOLERATE_UNREADY))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    Some(ServiceInfo {
        namespace,
        name,
        kind,
        ports,
        publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false) || tolerate,
    })
}

/// An EndpointSlice as the zone sees it; `None` without a service-name label. FQDN
/// slices carry no addresses.
pub fn slice_info(slice: &EndpointSlice) -> Option<SliceInfo> {
    let namespace = slice.metadata.namespace.clone()?;
    let name = slice.metadata.name.clone()?;
    let service = slice
        .metadata
        .labels
        .as_ref()?
        .get(SERVICE_NAME_LABEL)?
        .clone();
    let ip_family = matches!(slice.address_type.as_str(), "IPv4" | "IPv6");
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(PortInfo {
                name: p.name.clone().filter(|n| !n.is_empty()),
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                port: u16::try_from(p.port?).ok()?,
            })
        })
        .collect();
    let endpoints = slice
        .endpoints
        .iter()
        .filter(|_| ip_family)
        .map(|e| EndpointInfo {
            addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
            hostname: e.hostname.clone().filter(|h| !h.is_empty()),
            ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
        })
        .collect();
    Some(SliceInfo {
        namespace,
        name,
        service,
        ports,
        endpoints,
    })
}

/// Which first lists have been applied.
#[derive(Debug, Default)]
struct Synced {
    services: AtomicBool,
    slices: AtomicBool,
}

/// Starts the two watches; `ready` turns true when both first lists are in the zone.
pub(crate) fn spawn(
    client: kube::Client,
    zone: Zone,
    ready: watch::Sender<bool>,
) -> Vec<JoinHandle<()>> {
    let synced = Arc::new(Synced::default());
    let ready = Arc::new(ready);
    let services = {
        let (zone, synced, ready) = (zone.clone(), synced.clone(), ready.clone());
        let api: Api<Service> = Api::all(client.clone());
        tokio::spawn(async move {
            let mut listed: Vec<ServiceInfo> = Vec::new();
            let mut stream = watcher::watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Init) => listed.clear(),
                    Ok(Event::InitApply(svc)) => listed.extend(service_info(&svc)),
                    Ok(Event::InitDone) => {
                        let n = listed.len();
                        zone.replace_services(std::mem::take(&mut listed));
                        tracing::debug!(services = n, "services listed");
                        synced.services.store(true, Ordering::Release);
                        mark_ready(&zone, &synced, &ready);
                    }
                    Ok(Event::Apply(svc)) => match service_info(&svc) {
                        Some(info) => zone.upsert_service(info),
                        // No cluster IP yet (or no longer a usable spec): no records.
                        None => delete_service(&zone, &svc),
                    },
                    Ok(Event::Delete(svc)) => delete_service(&zone, &svc),
                    Err(err) => tracing::warn!(%err, "watching services (retrying)"),
                }
            }
        })
    };
    let slices = {
        let api: Api<EndpointSlice> = Api::all(client);
        let config = watcher::Config::default().labels(SERVICE_NAME_LABEL);
        tokio::spawn(async move {
            let mut listed: Vec<SliceInfo> = Vec::new();
            let mut stream = watcher::watcher(api, config).default_backoff().boxed();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Init) => listed.clear(),
                    Ok(Event::InitApply(s)) => listed.extend(slice_info(&s)),
                    Ok(Event::InitDone) => {
                        let n = listed.len();
                        zone.replace_slices(std::mem::take(&mut listed));
                        tracing::debug!(slices = n, "endpointslices listed");
                        synced.slices.store(true, Ordering::Release);
                        mark_ready(&zone, &synced, &ready);
                    }
                    Ok(Event::Apply(s)) => match slice_info(&s) {
                        Some(info) => zone.upsert_slice(info),
                        None => delete_slice(&zone, &s),
                    },
                    Ok(Event::Delete(s)) => delete_slice(&zone, &s),
                    Err(err) => tracing::warn!(%err, "watching endpointslices (retrying)"),
                }
            }
        })
    };
    vec![services, slices]
}

fn mark_ready(zone: &Zone, synced: &Synced, ready: &watch::Sender<bool>) {
    if synced.services.load(Ordering::Acquire) && synced.slices.load(Ordering::Acquire) {
        if !zone.is_synced() {
            tracing::info!(
                services = zone.service_count(),
                names = zone.name_count(),
                "cluster DNS: services and endpointslices synced"
            );
        }
        zone.set_synced(true);
        ready.send_replace(true);
    }
}

fn delete_service(zone: &Zone, svc: &Service) {
    if let (Some(ns), Some(name)) = (&svc.metadata.namespace, &svc.metadata.name) {
        zone.delete_service(ns, name);
    }
}

fn delete_slice(zone: &Zone, s: &EndpointSlice) {
    if let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) {
        zone.delete_slice(ns, name);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn svc(json: serde_json::Value) -> Service {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn services_convert() {
        let s = svc(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns",
                "annotations": {TOLERATE_UNREADY: "true"}},
            "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::a"],
                "ports": [{"name": "http", "port": 80}, {"port": 81, "protocol": "UDP"}]}
        }));
        let info = service_info(&s).unwrap();
        assert_eq!(
            info.kind,
            ServiceKind::ClusterIp(vec![
                "10.96.0.10".parse().unwrap(),
                "fd00::a".parse().unwrap()
            ])
        );
        assert!(info.publish_not_ready);
        assert_eq!(info.ports[0].protocol, "tcp");
        assert_eq!(info.ports[1].name, None);
        assert_eq!(info.ports[1].protocol, "udp");
        let headless = svc(serde_json::json!({
            "metadata": {"name": "h", "namespace": "ns"},
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": true}
        }));
        let info = service_info(&headless).unwrap();
        assert_eq!(info.kind, ServiceKind::Headless);
        assert!(info.publish_not_ready);
        let ext = svc(serde_json::json!({
            "metadata": {"name": "e", "namespace": "ns"},
            "spec": {"type": "ExternalName", "externalName": "www.example.com"}
        }));
        assert_eq!(
            service_info(&ext).unwrap().kind,
            ServiceKind::ExternalName("www.example.com".into())
        );
        let pending = svc(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"}, "spec": {}
        }));
        assert_eq!(service_info(&pending), None);
    }

    #[test]
    fn slices_convert() {
        let s: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "h-abc", "namespace": "ns",
                "labels": {SERVICE_NAME_LABEL: "h"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.1.0.1"], "hostname": "pet-0"},
                {"addresses": ["10.1.0.2", "bogus"], "conditions": {"ready": false}}
            ]
        }))
        .unwrap();
        let info = slice_info(&s).unwrap();
        assert_eq!(info.service, "h");
        assert_eq!(info.ports[0].port, 8080);
        assert_eq!(info.endpoints[0].hostname.as_deref(), Some("pet-0"));
        assert!(info.endpoints[0].ready);
        assert!(!info.endpoints[1].ready);
        assert_eq!(info.endpoints[1].addresses.len(), 1);
        let unlabeled: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x", "namespace": "ns"},
            "addressType": "IPv4", "endpoints": []
        }))
        .unwrap();
        assert_eq!(slice_info(&unlabeled), None);
    }
}
