//! The EndpointSlice reconciler's planning (upstream staging
//! `k8s.io/endpointslice/reconciler.go` and `utils.go`): from a Service, the pods it
//! selects and the slices that exist, which slices to create, update and delete — per
//! address family, grouped by the set of ports, at most `maxEndpointsPerSlice`
//! endpoints each, reusing existing slices before creating new ones, with a
//! placeholder slice when there is nothing to publish. Pure: the controller applies
//! the plan.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointHints, EndpointPort, EndpointSlice, ForZone,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::util::{self, HEADLESS_LABEL};
use crate::podutil;

/// `kubernetes.io/service-name`.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// `endpointslice.kubernetes.io/managed-by`.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// The managed-by value of this controller's slices.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// `--max-endpoints-per-slice`'s default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";

/// What to do for one address type.
#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
}

/// The plans, one per address type (plus deletions of slices of families the Service
/// no longer has), and the pods left out because their node is unknown.
#[derive(Debug, Default)]
pub struct Outcome {
    pub plans: Vec<Plan>,
    pub skipped: Vec<String>,
}

/// Upstream's endpoint hash: the sorted addresses, hostname and target pod.
type EndpointKey = (Vec<String>, String, String, String);
type PortKey = Vec<(Option<String>, Option<i32>, Option<String>, Option<String>)>;

fn endpoint_key(ep: &Endpoint) -> EndpointKey {
    let mut addrs = ep.addresses.clone();
    addrs.sort();
    let (ns, name) = ep
        .target_ref
        .as_ref()
        .map_or((String::new(), String::new()), |r| {
            (
                r.namespace.clone().unwrap_or_default(),
                r.name.clone().unwrap_or_default(),
            )
        });
    (addrs, ep.hostname.clone().unwrap_or_default(), ns, name)
}

fn port_tuple(p: &EndpointPort) -> (Option<String>, Option<i32>, Option<String>, Option<String>) {
    (
        p.name.clone(),
        p.port,
        p.protocol.clone(),
        p.app_protocol.clone(),
    )
}

/// Ports in a canonical order (upstream sorts them by hash for `NewPortMapKey`).
fn sort_ports(ports: &mut [EndpointPort]) {
    ports.sort_by_key(port_tuple);
}

fn port_key(ports: &[EndpointPort]) -> PortKey {
    let mut k: PortKey = ports.iter().map(port_tuple).collect();
    k.sort();
    k
}

fn target_ref_eq(a: Option<&ObjectReference>, b: Option<&ObjectReference>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let mut a = a.clone();
            let mut b = b.clone();
            a.resource_version = None;
            b.resource_version = None;
            a == b
        }
        _ => false,
    }
}

/// Upstream `EndpointsEqualBeyondHash`.
pub fn endpoints_equal_beyond_hash(a: &Endpoint, b: &Endpoint) -> bool {
    let cond = |e: &Endpoint| {
        let c = e.conditions.clone().unwrap_or_default();
        (c.ready, c.serving, c.terminating)
    };
    a.node_name == b.node_name
        && a.zone == b.zone
        && cond(a) == cond(b)
        && target_ref_eq(a.target_ref.as_ref(), b.target_ref.as_ref())
}

/// Upstream `getAddressTypesForService`.
pub fn address_types(svc: &Service) -> BTreeSet<&'static str> {
    let spec = svc.spec.clone().unwrap_or_default();
    let mut types = BTreeSet::new();
    for f in spec.ip_families.iter().flatten() {
        match f.as_str() {
            "IPv4" => types.insert("IPv4"),
            "IPv6" => types.insert("IPv6"),
            _ => false,
        };
    }
    if !types.is_empty() {
        return types;
    }
    match spec.cluster_ip.as_deref() {
        Some(ip) if !ip.is_empty() && ip != "None" => {
            types.insert(if util::is_ipv6(ip) { "IPv6" } else { "IPv4" });
        }
        _ => {
            types.insert("IPv4");
            types.insert("IPv6");
        }
    }
    types
}

/// Upstream `getEndpointPorts`.
fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let spec = svc.spec.clone().unwrap_or_default();
    let mut out = Vec::new();
    for sp in spec.ports.iter().flatten() {
        let Some(port) = util::find_port(pod, sp) else {
            tracing::debug!(service = %svc.name_any(), pod = %pod.name_any(), "failed to find port for service");
            continue;
        };
        out.push(EndpointPort {
            name: Some(sp.name.clone().unwrap_or_default()),
            port: Some(port),
            protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
            app_protocol: sp.app_protocol.clone(),
        });
    }
    sort_ports(&mut out);
    out
}

/// Upstream `podToEndpoint`.
fn pod_to_endpoint(pod: &Pod, node: Option<&Node>, svc: &Service, address_type: &str) -> Endpoint {
    let serving = podutil::is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = util::publish_not_ready(svc) || (serving && !terminating);
    let addresses = util::pod_ips(pod)
        .into_iter()
        .filter_map(|ip| ip.parse::<std::net::IpAddr>().ok())
        .filter(|ip| ip.is_ipv6() == (address_type == "IPv6"))
        .map(|ip| ip.to_string())
        .collect();
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let zone = node
        .and_then(|n| n.labels().get(LABEL_TOPOLOGY_ZONE).cloned())
        .filter(|z| !z.is_empty());
    let hostname = util::should_set_hostname(pod, svc)
        .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
        .flatten();
    Endpoint {
        addresses,
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.namespace(),
            name: Some(pod.name_any()),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        }),
        node_name,
        zone,
        hostname,
        ..Endpoint::default()
    }
}

fn is_reserved_label(k: &str) -> bool {
    k == LABEL_SERVICE_NAME || k == LABEL_MANAGED_BY || k == HEADLESS_LABEL
}

/// Upstream `setEndpointSliceLabels`: the Service's labels plus the reserved ones,
/// and whether the non-reserved labels differ from the slice's.
fn slice_labels(
    slice_labels: &BTreeMap<String, String>,
    svc: &Service,
) -> (BTreeMap<String, String>, bool) {
    let ep: BTreeMap<_, _> = slice_labels
        .iter()
        .filter(|(k, _)| !is_reserved_label(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut labels: BTreeMap<_, _> = svc
        .labels()
        .iter()
        .filter(|(k, _)| !is_reserved_label(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let changed = ep != labels;
    if !util::is_service_ip_set(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(LABEL_SERVICE_NAME.into(), svc.name_any());
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    (labels, changed)
}

/// Upstream `ownedBy`.
pub fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    slice.owner_references().iter().any(|o| {
        Some(&o.uid) == svc.metadata.uid.as_ref() && o.kind == "Service" && o.api_version == "v1"
    })
}

/// Upstream `newEndpointSlice`.
fn new_slice(svc: &Service, ports: &[EndpointPort], address_type: &str) -> EndpointSlice {
    let (labels, _) = slice_labels(&BTreeMap::new(), svc);
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", svc.name_any())),
            namespace: svc.namespace(),
            labels: Some(labels),
            owner_references: Some(vec![podutil::new_controller_ref(svc)]),
            ..ObjectMeta::default()
        },
        address_type: address_type.into(),
        endpoints: Vec::new(),
        ports: Some(ports.to_vec()),
    }
}

/// Upstream `placeholderSliceCompare`: namespace, labels and content.
fn same_as_placeholder(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    a.metadata.namespace == b.metadata.namespace
        && a.labels() == b.labels()
        && a.address_type == b.address_type
        && a.endpoints == b.endpoints
        && a.ports.as_deref().unwrap_or_default() == b.ports.as_deref().unwrap_or_default()
}

/// Plans the slices of `svc` (upstream `Reconciler.Reconcile`). `node` looks a node up
/// in the informer.
pub fn reconcile(
    svc: &Service,
    pods: &[Arc<Pod>],
    existing: &[Arc<EndpointSlice>],
    node: impl Fn(&str) -> Option<Arc<Node>>,
    max_per_slice: usize,
) -> Outcome {
    let types = address_types(svc);
    let mut by_type: BTreeMap<&str, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    let mut foreign_family = Vec::new();
    for s in existing {
        match types.get(s.address_type.as_str()) {
            Some(t) => by_type.entry(t).or_default().push(s.clone()),
            None => foreign_family.push((**s).clone()),
        }
    }
    let mut out = Outcome::default();
    for t in &types {
        let slices = by_type.remove(t).unwrap_or_default();
        let plan = reconcile_by_address_type(
            svc,
            pods,
            &slices,
            &node,
            t,
            max_per_slice,
            &mut out.skipped,
        );
        out.plans.push(plan);
    }
    if !foreign_family.is_empty() {
        out.plans.push(Plan {
            delete: foreign_family,
            ..Plan::default()
        });
    }
    out
}

fn reconcile_by_address_type(
    svc: &Service,
    pods: &[Arc<Pod>],
    existing: &[Arc<EndpointSlice>],
    node: &impl Fn(&str) -> Option<Arc<Node>>,
    address_type: &str,
    max: usize,
    skipped: &mut Vec<String>,
) -> Plan {
    let mut plan = Plan::default();
    let mut existing_by_ports: BTreeMap<PortKey, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    for s in existing {
        if owned_by(s, svc) {
            let key = port_key(s.ports.as_deref().unwrap_or_default());
            existing_by_ports.entry(key).or_default().push(s.clone());
        } else {
            plan.delete.push((**s).clone());
        }
    }
    let mut desired: BTreeMap<PortKey, (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>)> =
        BTreeMap::new();
    for pod in pods {
        if !util::should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let ports = endpoint_ports(svc, pod);
        let key = port_key(&ports);
        let entry = desired
            .entry(key)
            .or_insert_with(|| (ports, BTreeMap::new()));
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let n = node(&node_name);
        if n.is_none() && !util::publish_not_ready(svc) {
            skipped.push(format!(
                "skipping Pod {} for Service {}/{}: Node {} Not Found",
                pod.name_any(),
                svc.namespace().unwrap_or_default(),
                svc.name_any(),
                node_name
            ));
            continue;
        }
        let ep = pod_to_endpoint(pod, n.as_deref(), svc, address_type);
        if !ep.addresses.is_empty() {
            entry.1.insert(endpoint_key(&ep), ep);
        }
    }
    let mut unchanged_all: Vec<EndpointSlice> = Vec::new();
    for (key, (ports, eps)) in desired.iter_mut() {
        let slices = existing_by_ports.get(key).cloned().unwrap_or_default();
        let r =
            reconcile_by_port_mapping(svc, &slices, std::mem::take(eps), ports, address_type, max);
        plan.create.extend(r.create);
        plan.update.extend(r.update);
        plan.delete.extend(r.delete);
        unchanged_all.extend(r.unchanged);
    }
    for (key, slices) in &existing_by_ports {
        if !desired.contains_key(key) {
            plan.delete.extend(slices.iter().map(|s| (**s).clone()));
        }
    }
    if existing.len() == plan.delete.len() && plan.create.is_empty() {
        let placeholder = new_slice(svc, &[], address_type);
        if plan.delete.len() == 1 && same_as_placeholder(&plan.delete[0], &placeholder) {
            let kept = plan.delete.remove(0);
            unchanged_all.push(kept);
        } else {
            plan.create.push(placeholder);
        }
    }
    reconcile_hints(svc, &mut plan, unchanged_all);
    plan
}

struct PortMappingResult {
    create: Vec<EndpointSlice>,
    update: Vec<EndpointSlice>,
    delete: Vec<EndpointSlice>,
    unchanged: Vec<EndpointSlice>,
}

/// Upstream `reconcileByPortMapping`.
fn reconcile_by_port_mapping(
    svc: &Service,
    existing: &[Arc<EndpointSlice>],
    mut desired: BTreeMap<EndpointKey, Endpoint>,
    ports: &[EndpointPort],
    address_type: &str,
    max: usize,
) -> PortMappingResult {
    let mut by_name: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut unchanged: BTreeSet<String> = BTreeSet::new();
    let mut to_update: BTreeSet<String> = BTreeSet::new();
    let mut to_delete: BTreeSet<String> = BTreeSet::new();

    // 1. Keep the endpoints still desired (updated where they changed).
    for slice in existing {
        let name = slice.name_any();
        let mut kept = Vec::new();
        let mut changed = false;
        for ep in &slice.endpoints {
            if let Some(got) = desired.remove(&endpoint_key(ep)) {
                if !endpoints_equal_beyond_hash(&got, ep) {
                    changed = true;
                }
                kept.push(got);
            }
        }
        let (labels, labels_changed) = slice_labels(slice.labels(), svc);
        if changed || kept.len() != slice.endpoints.len() {
            if kept.is_empty() {
                to_delete.insert(name.clone());
                by_name.insert(name, (**slice).clone());
            } else {
                let mut s = (**slice).clone();
                s.endpoints = kept;
                s.metadata.labels = Some(labels);
                to_update.insert(name.clone());
                by_name.insert(name, s);
            }
        } else if labels_changed {
            let mut s = (**slice).clone();
            s.metadata.labels = Some(labels);
            to_update.insert(name.clone());
            by_name.insert(name, s);
        } else {
            unchanged.insert(name.clone());
            by_name.insert(name, (**slice).clone());
        }
    }

    // 2. Fill the slices being updated anyway, fullest first.
    if !desired.is_empty() && !to_update.is_empty() {
        let mut names: Vec<String> = to_update.iter().cloned().collect();
        names.sort_by_key(|n| std::cmp::Reverse(by_name.get(n).map_or(0, |s| s.endpoints.len())));
        for n in names {
            if let Some(s) = by_name.get_mut(&n) {
                while s.endpoints.len() < max {
                    let Some((_, ep)) = desired.pop_first() else {
                        break;
                    };
                    s.endpoints.push(ep);
                }
            }
        }
    }

    // 3. Put what is left into the unchanged slice closest to full, or new slices.
    let mut create = Vec::new();
    while !desired.is_empty() {
        let mut fill: Option<String> = None;
        if desired.len() < max && !unchanged.is_empty() {
            let mut closest = max;
            for n in &unchanged {
                let len = by_name.get(n).map_or(0, |s| s.endpoints.len());
                if desired.len() + len <= max {
                    let diff = max - (desired.len() + len);
                    if diff < closest {
                        closest = diff;
                        fill = Some(n.clone());
                        if diff == 0 {
                            break;
                        }
                    }
                }
            }
        }
        match fill {
            Some(n) => {
                if let Some(s) = by_name.get_mut(&n) {
                    while s.endpoints.len() < max {
                        let Some((_, ep)) = desired.pop_first() else {
                            break;
                        };
                        s.endpoints.push(ep);
                    }
                }
                unchanged.remove(&n);
                to_update.insert(n);
            }
            None => {
                let mut s = new_slice(svc, ports, address_type);
                while s.endpoints.len() < max {
                    let Some((_, ep)) = desired.pop_first() else {
                        break;
                    };
                    s.endpoints.push(ep);
                }
                create.push(s);
            }
        }
    }
    let take = |names: &BTreeSet<String>, by_name: &mut BTreeMap<String, EndpointSlice>| {
        names
            .iter()
            .filter_map(|n| by_name.remove(n))
            .collect::<Vec<_>>()
    };
    PortMappingResult {
        create,
        update: take(&to_update, &mut by_name),
        delete: take(&to_delete, &mut by_name),
        unchanged: take(&unchanged, &mut by_name),
    }
}

/// Whether the topology-mode annotation asks for topology-aware hints.
fn hints_annotation(svc: &Service) -> bool {
    let a = svc.annotations();
    let v = a
        .get("service.kubernetes.io/topology-aware-hints")
        .or_else(|| a.get("service.kubernetes.io/topology-mode"));
    matches!(v.map(String::as_str), Some("Auto" | "auto"))
}

fn endpoint_ready(ep: &Endpoint) -> bool {
    ep.conditions.as_ref().and_then(|c| c.ready) == Some(true)
}

/// The hints `PreferClose` wants on a ready endpoint.
fn prefer_close_hints(ep: &Endpoint) -> Option<EndpointHints> {
    ep.zone.as_ref().map(|z| EndpointHints {
        for_zones: Some(vec![ForZone { name: z.clone() }]),
        for_nodes: None,
    })
}

/// Upstream `trafficdist.ReconcileHints` (with `RemoveHintsFromSlices` as the default
/// heuristic): `trafficDistribution: PreferClose` puts a same-zone hint on every
/// ready endpoint with a zone; otherwise hints are removed.
fn reconcile_hints(svc: &Service, plan: &mut Plan, unchanged: Vec<EndpointSlice>) {
    let prefer_close = svc
        .spec
        .as_ref()
        .and_then(|s| s.traffic_distribution.as_deref())
        == Some("PreferClose")
        && !hints_annotation(svc);
    let needs_update = |s: &EndpointSlice| {
        s.endpoints.iter().any(|ep| {
            if !prefer_close {
                return ep.hints.is_some();
            }
            endpoint_ready(ep) && {
                let zones = ep
                    .hints
                    .as_ref()
                    .and_then(|h| h.for_zones.clone())
                    .unwrap_or_default();
                match &ep.zone {
                    Some(z) => zones.len() != 1 || &zones[0].name != z,
                    None => !zones.is_empty(),
                }
            }
        })
    };
    for s in unchanged {
        if needs_update(&s) {
            plan.update.push(s);
        }
    }
    for s in plan.create.iter_mut().chain(plan.update.iter_mut()) {
        for ep in &mut s.endpoints {
            if !prefer_close {
                ep.hints = None;
            } else if endpoint_ready(ep) {
                ep.hints = prefer_close_hints(ep);
            }
        }
    }
}

/// Upstream `finalize`'s first step: creations become updates of slices that would
/// otherwise be deleted (same address type, owned by this Service).
pub fn reuse_deleted_slices(plan: &mut Plan, svc: &Service) {
    let mut i = 0;
    while i < plan.delete.len() && !plan.create.is_empty() {
        let del = &plan.delete[i];
        let last = plan.create.len() - 1;
        if del.address_type == plan.create[last].address_type && owned_by(del, svc) {
            let del = plan.delete.remove(i);
            if let Some(mut s) = plan.create.pop() {
                s.metadata.name = del.metadata.name;
                s.metadata.resource_version = del.metadata.resource_version;
                s.metadata.generate_name = del.metadata.generate_name;
                s.metadata.uid = del.metadata.uid;
                plan.update.push(s);
            }
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
#[path = "reconciler_tests.rs"]
mod tests;
