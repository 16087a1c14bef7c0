//! The Endpoints controller (upstream `pkg/controller/endpoint`): for every Service
//! with a selector, a core/v1 Endpoints object of the same name whose subsets list the
//! selected pods' addresses (ready ones in `addresses`, others in
//! `notReadyAddresses`, unless `publishNotReadyAddresses`) for every port the pod
//! resolves, repacked into upstream's canonical form (`RepackSubsets`), with the
//! Service's labels, the `last-change-trigger-time` annotation, and truncation to
//! 1000 addresses marked `endpoints.kubernetes.io/over-capacity: truncated`.
//! Services without a selector keep whatever Endpoints users write; a Service's
//! deletion deletes its Endpoints.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;

use crate::context::ControllerContext;
use crate::endpointslice::util::{self, TriggerTimeTracker, HEADLESS_LABEL};
use crate::error::{is_not_found, Error, ResultExt};
use crate::events::EventType;
use crate::informer::{key_of, split_key, Notification, Store};
use crate::podutil;
use crate::selector;
use crate::workqueue::{run_workers, WorkQueue};

/// Upstream `maxRetries`.
const MAX_RETRIES: u32 = 15;
/// Upstream `maxCapacity`: addresses an Endpoints object holds at most.
pub const MAX_CAPACITY: usize = 1000;
/// `endpoints.kubernetes.io/over-capacity`.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// The leader-election record annotation (old Endpoints-based locks are left alone).
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

struct Controller {
    ctx: ControllerContext,
    services: Store<Service>,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    queue: Arc<WorkQueue>,
    trigger_times: TriggerTimeTracker,
    /// Upstream `staleEndpointsTracker`: resource versions we have replaced.
    stale: Mutex<HashMap<String, String>>,
}

/// Starts the Endpoints controller.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let svc_inf = ctx.informers.get::<Service>();
    let pod_inf = ctx.informers.get::<Pod>();
    let ep_inf = ctx.informers.get::<Endpoints>();
    let workers = ctx.config.concurrent_service_endpoint_syncs;
    let c = Arc::new(Controller {
        services: svc_inf.store(),
        pods: pod_inf.store(),
        endpoints: ep_inf.store(),
        queue: WorkQueue::new(ctx.name),
        trigger_times: TriggerTimeTracker::default(),
        stale: Mutex::default(),
        ctx,
    });
    {
        let c = c.clone();
        svc_inf.add_handler(move |n| match n {
            Notification::Add(s)
            | Notification::Update { new: s, .. }
            | Notification::Delete(s) => c.queue.add(key_of(&**s)),
        });
    }
    {
        let c = c.clone();
        pod_inf.add_handler(move |n| {
            let keys = match n {
                Notification::Add(p) | Notification::Delete(p) => {
                    util::pod_service_memberships(&c.services, p)
                }
                Notification::Update { old, new } => {
                    util::services_to_update_on_pod_change(&c.services, old, new)
                }
            };
            for k in keys {
                c.queue.add(k);
            }
        });
    }
    {
        let c = c.clone();
        ep_inf.add_handler(move |n| {
            if let Notification::Delete(e) = n {
                c.queue.add(key_of(&**e));
            }
        });
    }
    let stop = c.ctx.stop.clone();
    tokio::spawn(async move {
        svc_inf.wait_synced().await;
        pod_inf.wait_synced().await;
        ep_inf.wait_synced().await;
        tracing::info!(controller = c.ctx.name, "starting controller");
        // Upstream `checkLeftoverEndpoints`: Endpoints whose Service vanished while
        // the controller was down are found by syncing every Endpoints' key once.
        for ep in c.endpoints.list() {
            if !ep.annotations().contains_key(LEADER_ANNOTATION) {
                c.queue.add(key_of(&*ep));
            }
        }
        let queue = c.queue.clone();
        run_workers(queue, workers, stop, move |key| {
            let c = c.clone();
            async move {
                match c.sync(&key).await {
                    Err(e) if c.queue.num_requeues(&key) >= MAX_RETRIES => {
                        tracing::warn!(%key, error = %e, "dropping service out of the queue");
                        Ok(())
                    }
                    r => r,
                }
            }
        })
        .await;
    });
    Ok(())
}

/// Upstream `podToEndpointAddressForService`: the pod's IP of the Service's family.
fn pod_address(svc: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let spec = svc.spec.clone().unwrap_or_default();
    let want_v6 = match spec.ip_families.as_ref().and_then(|f| f.first()) {
        Some(f) => f == "IPv6",
        None => match spec.cluster_ip.as_deref() {
            Some(ip) if !ip.is_empty() && ip != "None" => util::is_ipv6(ip),
            _ => pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .is_some_and(util::is_ipv6),
        },
    };
    let ip = util::pod_ips(pod)
        .into_iter()
        .find(|ip| util::is_ipv6(ip) == want_v6)?;
    let hostname = util::should_set_hostname(pod, svc)
        .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
        .flatten();
    Some(EndpointAddress {
        ip,
        hostname,
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.namespace(),
            name: Some(pod.name_any()),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        }),
    })
}

/// The subsets for `svc` over `pods` (before repacking), with ready and not-ready
/// counts.
pub fn compute_subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let spec = svc.spec.clone().unwrap_or_default();
    let tolerate_unready = spec.publish_not_ready_addresses.unwrap_or(false);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let mut subsets = Vec::new();
    for pod in pods {
        if !util::should_pod_be_in_endpoints(pod, tolerate_unready) {
            continue;
        }
        let Some(addr) = pod_address(svc, pod) else {
            tracing::debug!(service = %svc.name_any(), pod = %pod.name_any(), "no pod IP of the service's family");
            continue;
        };
        let ready = tolerate_unready || podutil::is_ready(pod);
        let subset = |ports: Vec<EndpointPort>| EndpointSubset {
            addresses: ready.then(|| vec![addr.clone()]),
            not_ready_addresses: (!ready).then(|| vec![addr.clone()]),
            ports: Some(ports),
        };
        let ports = spec.ports.clone().unwrap_or_default();
        if ports.is_empty() {
            // Headless Services may have no ports.
            if headless {
                subsets.push(subset(Vec::new()));
            }
            continue;
        }
        for sp in &ports {
            let Some(port) = util::find_port(pod, sp) else {
                tracing::debug!(service = %svc.name_any(), pod = %pod.name_any(), "failed to find port for service");
                continue;
            };
            subsets.push(subset(vec![EndpointPort {
                name: sp.name.clone(),
                port,
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            }]));
        }
    }
    repack_subsets(subsets)
}

type AddrKey = (String, String);

fn addr_key(a: &EndpointAddress) -> AddrKey {
    (
        a.ip.clone(),
        a.target_ref
            .as_ref()
            .and_then(|r| r.uid.clone())
            .unwrap_or_default(),
    )
}

type PortKey = (Option<String>, i32, Option<String>, Option<String>);

fn port_key(p: &EndpointPort) -> PortKey {
    (
        p.name.clone(),
        p.port,
        p.protocol.clone(),
        p.app_protocol.clone(),
    )
}

/// Upstream `RepackSubsets`: every (address, port) pair regrouped so addresses
/// offering the same ports (with the same readiness) share one subset; not-ready wins
/// over ready; addresses sorted by IP then UID. Ports and subsets are ordered
/// canonically (upstream orders them by hash).
pub fn repack_subsets(subsets: Vec<EndpointSubset>) -> Vec<EndpointSubset> {
    let mut all: BTreeMap<AddrKey, EndpointAddress> = BTreeMap::new();
    let mut by_port: BTreeMap<PortKey, (EndpointPort, BTreeMap<AddrKey, bool>)> = BTreeMap::new();
    // Subsets without ports (headless Services) are kept under a sentinel port, as
    // upstream does, and come out without ports.
    let sentinel = EndpointPort {
        port: -1,
        ..EndpointPort::default()
    };
    for s in subsets {
        let ports = match s.ports.as_deref() {
            Some(p) if !p.is_empty() => p.to_vec(),
            _ => vec![sentinel.clone()],
        };
        for port in &ports {
            let entry = by_port
                .entry(port_key(port))
                .or_insert_with(|| (port.clone(), BTreeMap::new()));
            let lists = [(true, &s.addresses), (false, &s.not_ready_addresses)];
            for (ready, list) in lists {
                for a in list.iter().flatten() {
                    let k = addr_key(a);
                    all.entry(k.clone()).or_insert_with(|| a.clone());
                    let slot = entry.1.entry(k).or_insert(ready);
                    // Not ready trumps ready.
                    *slot = *slot && ready;
                }
            }
        }
    }
    let mut by_addrs: BTreeMap<Vec<(AddrKey, bool)>, Vec<EndpointPort>> = BTreeMap::new();
    for (_, (port, addrs)) in by_port {
        let set: Vec<(AddrKey, bool)> = addrs.into_iter().collect();
        by_addrs.entry(set).or_default().push(port);
    }
    by_addrs
        .into_iter()
        .map(|(set, ports)| {
            let pick = |want: bool| {
                let v: Vec<EndpointAddress> = set
                    .iter()
                    .filter(|(_, r)| *r == want)
                    .filter_map(|(k, _)| all.get(k).cloned())
                    .collect();
                (!v.is_empty()).then_some(v)
            };
            let ports = (ports != [sentinel.clone()]).then_some(ports);
            EndpointSubset {
                addresses: pick(true),
                not_ready_addresses: pick(false),
                ports,
            }
        })
        .collect()
}

fn count(subsets: &[EndpointSubset]) -> (usize, usize) {
    subsets.iter().fold((0, 0), |(r, n), s| {
        (
            r + s.addresses.as_ref().map_or(0, Vec::len),
            n + s.not_ready_addresses.as_ref().map_or(0, Vec::len),
        )
    })
}

/// Upstream `truncateEndpoints`: keeps `MAX_CAPACITY` addresses, ready ones first,
/// each subset keeping its proportional share. Returns whether it truncated.
pub fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let (ready, not_ready) = count(subsets);
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = ready > MAX_CAPACITY;
    let (max, total) = if truncate_ready {
        (MAX_CAPACITY, ready)
    } else {
        (MAX_CAPACITY - ready, not_ready)
    };
    let mut can_add = max;
    for s in subsets.iter_mut() {
        let list = if truncate_ready {
            &mut s.addresses
        } else {
            &mut s.not_ready_addresses
        };
        let n = list.as_ref().map_or(0, Vec::len);
        let share = ((n as f64 / total as f64) * max as f64).ceil() as usize;
        let keep = share.min(can_add);
        if let Some(v) = list.as_mut() {
            v.truncate(keep);
        }
        can_add -= list.as_ref().map_or(0, Vec::len);
        if truncate_ready {
            s.not_ready_addresses = None;
        }
    }
    true
}

fn without_rv(subsets: &[EndpointSubset]) -> serde_json::Value {
    let mut v = serde_json::to_value(normalize(subsets)).unwrap_or_default();
    if let Some(arr) = v.as_array_mut() {
        for s in arr {
            for field in ["addresses", "notReadyAddresses"] {
                if let Some(list) = s.get_mut(field).and_then(|l| l.as_array_mut()) {
                    for a in list {
                        if let Some(r) = a.get_mut("targetRef").and_then(|r| r.as_object_mut()) {
                            r.remove("resourceVersion");
                        }
                    }
                }
            }
        }
    }
    v
}

/// Empty lists and absent ones are the same (upstream compares semantically).
fn normalize(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    subsets
        .iter()
        .map(|s| EndpointSubset {
            addresses: s.addresses.clone().filter(|v| !v.is_empty()),
            not_ready_addresses: s.not_ready_addresses.clone().filter(|v| !v.is_empty()),
            ports: s.ports.clone().filter(|v| !v.is_empty()),
        })
        .collect()
}

impl Controller {
    async fn sync(&self, key: &str) -> Result<(), Error> {
        let (ns, name) = split_key(key);
        let api: Api<Endpoints> = Api::namespaced(self.ctx.client.clone(), ns);
        let Some(svc) = self.services.get(ns, name) else {
            // The Service is gone: so are its Endpoints.
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e).action(format!("deleting endpoints {key}")),
            }
            self.trigger_times.delete_service(ns, name);
            self.stale.lock().remove(key);
            return Ok(());
        };
        if util::is_external_name(&svc) {
            return Ok(());
        }
        let Some(sel) = util::service_selector(&svc) else {
            return Ok(());
        };
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(ns)
            .into_iter()
            .filter(|p| selector::matches_map(sel, podutil::labels(&p.metadata)))
            .collect();
        let trigger = self.trigger_times.compute(&svc, &pods);
        let subsets = compute_subsets(&svc, &pods);

        let current = self.endpoints.get(ns, name);
        if let Some(cur) = &current {
            let rv = cur.metadata.resource_version.clone().unwrap_or_default();
            if self.stale.lock().get(key) == Some(&rv) {
                return Err(Error::Invalid {
                    what: format!("endpoints informer cache for {key}"),
                    reason: format!("out of date, resource version {rv} already processed"),
                });
            }
        }
        let svc_labels = svc.labels().clone();
        let create = current.is_none();
        let mut new = match &current {
            Some(c) => (**c).clone(),
            None => Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some(ns.to_string()),
                    labels: Some(svc_labels.clone()),
                    ..ObjectMeta::default()
                },
                subsets: None,
            },
        };
        if let Some(cur) = &current {
            let mut cur_labels = cur.labels().clone();
            cur_labels.remove(HEADLESS_LABEL);
            let over = {
                let (r, n) = count(cur.subsets.as_deref().unwrap_or_default());
                r + n > MAX_CAPACITY
            };
            let capacity_ok = !over && !cur.annotations().contains_key(OVER_CAPACITY);
            if without_rv(cur.subsets.as_deref().unwrap_or_default()) == without_rv(&subsets)
                && cur_labels == svc_labels
                && capacity_ok
            {
                return Ok(());
            }
        }
        let mut subsets = subsets;
        let annotations = new
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        match trigger {
            Some(t) => {
                annotations.insert(
                    util::LAST_CHANGE_TRIGGER_TIME.into(),
                    util::format_trigger_time(t),
                );
            }
            None => {
                annotations.remove(util::LAST_CHANGE_TRIGGER_TIME);
            }
        }
        if truncate(&mut subsets) {
            annotations.insert(OVER_CAPACITY.into(), "truncated".into());
        } else {
            annotations.remove(OVER_CAPACITY);
        }
        let mut labels = svc_labels;
        if util::is_service_ip_set(&svc) {
            labels.remove(HEADLESS_LABEL);
        } else {
            labels.insert(HEADLESS_LABEL.into(), String::new());
        }
        new.metadata.labels = Some(labels);
        new.subsets = Some(normalize(&subsets));
        let (ready, not_ready) = count(&subsets);
        tracing::debug!(service = %key, ready, not_ready, "updating endpoints");
        let pp = PostParams::default();
        let result = if create {
            api.create(&pp, &new).await
        } else {
            api.replace(name, &pp, &new).await
        };
        match result {
            Ok(updated) => {
                if let Some(cur) = &current {
                    if updated.metadata.resource_version != cur.metadata.resource_version {
                        let rv = cur.metadata.resource_version.clone().unwrap_or_default();
                        self.stale.lock().insert(key.to_string(), rv);
                    }
                }
                Ok(())
            }
            Err(e) => {
                if create
                    && matches!(&e, kube::Error::Api(s) if s.code == 403 && s.message.contains("being terminated"))
                {
                    return Ok(());
                }
                let (reason, msg) = if create {
                    (
                        "FailedToCreateEndpoint",
                        format!("Failed to create endpoint for service {key}: {e}"),
                    )
                } else {
                    (
                        "FailedToUpdateEndpoint",
                        format!("Failed to update endpoint {key}: {e}"),
                    )
                };
                self.ctx
                    .recorder
                    .event(&new, EventType::Warning, reason, msg);
                Err(e).action(format!("writing endpoints {key}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(extra: serde_json::Value) -> Service {
        let mut v = json!({
            "metadata": {"name": "web", "namespace": "d"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"],
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                          {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"}]}
        });
        if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
            for (k, val) in extra {
                spec.insert(k.clone(), val.clone());
            }
        }
        serde_json::from_value(v).unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool, named_port: bool) -> Arc<Pod> {
        let ports = if named_port {
            json!([{"name": "http", "containerPort": 8080}])
        } else {
            json!([])
        };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "d", "uid": format!("uid-{name}")},
                "spec": {"nodeName": "n1", "hostname": name, "subdomain": "web",
                    "containers": [{"name": "c", "ports": ports}]},
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
            }))
            .unwrap(),
        )
    }

    fn ips(list: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        list.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn groups_ready_and_not_ready_addresses_by_ports() {
        let pods = [
            pod("b", "10.0.0.2", true, true),
            pod("a", "10.0.0.1", true, true),
            pod("c", "10.0.0.3", false, true),
            pod("d", "10.0.0.4", true, false),
        ];
        let subsets = compute_subsets(&svc(json!({})), &pods);
        // d lacks the named port: it is only in the numeric port's subset.
        assert_eq!(subsets.len(), 2);
        let by_port = |n: &str| {
            subsets
                .iter()
                .find(|s| s.ports.as_ref().unwrap()[0].name.as_deref() == Some(n))
                .unwrap()
        };
        let both = by_port("http");
        assert_eq!(both.ports.as_ref().unwrap()[0].port, 8080);
        assert_eq!(ips(&both.addresses), vec!["10.0.0.1", "10.0.0.2"]);
        assert_eq!(ips(&both.not_ready_addresses), vec!["10.0.0.3"]);
        let metrics = by_port("metrics");
        assert_eq!(
            ips(&metrics.addresses),
            vec!["10.0.0.1", "10.0.0.2", "10.0.0.4"]
        );
        assert_eq!(metrics.ports.as_ref().unwrap()[0].port, 9090);
        // Two ports offered by the same addresses share a subset.
        let same = compute_subsets(&svc(json!({})), &pods[..2]);
        assert_eq!(same.len(), 1);
        assert_eq!(same[0].ports.as_ref().unwrap().len(), 2);
        let a = &both.addresses.as_ref().unwrap()[0];
        assert_eq!(a.hostname.as_deref(), Some("a"));
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        let r = a.target_ref.as_ref().unwrap();
        assert_eq!(
            (r.kind.as_deref(), r.uid.as_deref()),
            (Some("Pod"), Some("uid-a"))
        );
    }

    #[test]
    fn publish_not_ready_makes_everything_ready() {
        let pods = [pod("c", "10.0.0.3", false, true)];
        let subsets = compute_subsets(&svc(json!({"publishNotReadyAddresses": true})), &pods);
        assert_eq!(ips(&subsets[0].addresses), vec!["10.0.0.3"]);
        assert!(subsets[0].not_ready_addresses.is_none());
    }

    #[test]
    fn headless_without_ports() {
        let pods = [
            pod("b", "10.0.0.2", true, false),
            pod("a", "10.0.0.1", true, false),
            pod("c", "10.0.0.3", false, false),
        ];
        let s = svc(json!({"clusterIP": "None", "ports": null}));
        let subsets = compute_subsets(&s, &pods);
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), vec!["10.0.0.1", "10.0.0.2"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), vec!["10.0.0.3"]);
        assert!(subsets[0].ports.is_none());
    }

    #[test]
    fn truncates_to_capacity_keeping_ready_first() {
        let addr = |i: usize| EndpointAddress {
            ip: format!("10.1.{}.{}", i / 256, i % 256),
            ..Default::default()
        };
        let mut subsets = vec![
            EndpointSubset {
                addresses: Some((0..600).map(addr).collect()),
                not_ready_addresses: Some((600..1000).map(addr).collect()),
                ports: None,
            },
            EndpointSubset {
                addresses: Some((1000..1200).map(addr).collect()),
                not_ready_addresses: Some((1200..1400).map(addr).collect()),
                ports: None,
            },
        ];
        assert!(truncate(&mut subsets));
        assert_eq!(count(&subsets), (800, 200));
        let mut small = subsets[..1].to_vec();
        small[0].not_ready_addresses = None;
        assert!(!truncate(&mut small));
    }
}
