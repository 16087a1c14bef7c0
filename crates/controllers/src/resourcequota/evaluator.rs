//! The quota evaluators (upstream `pkg/quota/v1/evaluator/core` and
//! `pkg/quota/v1/generic`): which quota resource names each kind of object is charged
//! under, what one object uses, which scopes it falls in, and the usage sum over a
//! namespace's objects (`CalculateUsageStats`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, Pod, ScopeSelector, ScopedResourceSelectorRequirement,
    Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use k8s_openapi::jiff::Timestamp;

use super::quantity::Amount;

/// Resource usage by quota resource name.
pub type Usage = BTreeMap<String, Amount>;

/// One evaluator: a group-resource whose objects are charged.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Evaluator {
    /// core/v1 pods: counts and compute resources, scopes.
    Pods,
    /// core/v1 services: counts, load balancers, node ports.
    Services,
    /// core/v1 persistentvolumeclaims: counts and storage, per storage class too.
    PersistentVolumeClaims,
    /// Any other resource: `count/<resource>[.<group>]` (and the legacy aliases of
    /// configmaps, secrets, replicationcontrollers and resourcequotas).
    ObjectCount { group: String, resource: String },
}

const POD_RESOURCES: &[&str] = &[
    "pods",
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
];
const SERVICE_RESOURCES: &[&str] = &[
    "services",
    "count/services",
    "services.loadbalancers",
    "services.nodeports",
];
const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// The legacy quota name of a core object count (`configmaps` for `count/configmaps`).
fn legacy_alias(group: &str, resource: &str) -> Option<&'static str> {
    match (group, resource) {
        ("", "configmaps") => Some("configmaps"),
        ("", "secrets") => Some("secrets"),
        ("", "replicationcontrollers") => Some("replicationcontrollers"),
        ("", "resourcequotas") => Some("resourcequotas"),
        _ => None,
    }
}

/// `count/<resource>` for the core group, `count/<resource>.<group>` otherwise.
pub fn count_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    }
}

/// `requests.<extended resource>` (upstream `isExtendedResourceNameForQuota`).
fn is_extended_request(name: &str) -> bool {
    name.strip_prefix("requests.").is_some_and(|r| {
        r.contains('/') && !r.starts_with("kubernetes.io/") && !r.starts_with("requests.")
    })
}

/// The evaluators the quota resource `name` needs (upstream's registry, as the
/// `MatchingResources` of each evaluator decides).
pub fn evaluator_for(name: &str) -> Option<Evaluator> {
    if POD_RESOURCES.contains(&name)
        || name.starts_with("hugepages-")
        || name.starts_with("requests.hugepages-")
        || is_extended_request(name)
    {
        return Some(Evaluator::Pods);
    }
    if SERVICE_RESOURCES.contains(&name) {
        return Some(Evaluator::Services);
    }
    if matches!(
        name,
        "persistentvolumeclaims" | "count/persistentvolumeclaims" | "requests.storage"
    ) || name.contains(STORAGE_CLASS_SUFFIX)
    {
        return Some(Evaluator::PersistentVolumeClaims);
    }
    if let Some(alias) = [
        "configmaps",
        "secrets",
        "replicationcontrollers",
        "resourcequotas",
    ]
    .into_iter()
    .find(|a| *a == name)
    {
        return Some(Evaluator::ObjectCount {
            group: String::new(),
            resource: alias.to_string(),
        });
    }
    let gr = name.strip_prefix("count/")?;
    let (resource, group) = gr.split_once('.').unwrap_or((gr, ""));
    if resource.is_empty() {
        return None;
    }
    Some(Evaluator::ObjectCount {
        group: group.to_string(),
        resource: resource.to_string(),
    })
}

/// The evaluators a quota with these hard names needs, each with the names it tracks.
pub fn evaluators<'a>(
    names: impl IntoIterator<Item = &'a String>,
) -> BTreeMap<Evaluator, BTreeSet<String>> {
    let mut out: BTreeMap<Evaluator, BTreeSet<String>> = BTreeMap::new();
    for n in names {
        if let Some(e) = evaluator_for(n) {
            out.entry(e).or_default().insert(n.clone());
        }
    }
    out
}

fn amount(q: &ApiQuantity) -> Option<Amount> {
    Amount::parse_str(&q.0)
}

fn add_list(to: &mut Usage, list: Option<&BTreeMap<String, ApiQuantity>>) {
    for (k, q) in list.into_iter().flatten() {
        if let Some(a) = amount(q) {
            let cur = to.remove(k);
            to.insert(k.clone(), cur.map_or(a, |c| c.plus(a)));
        }
    }
}

fn max_list(to: &mut Usage, from: &Usage) {
    for (k, a) in from {
        match to.get(k) {
            Some(cur) if cur.nanos >= a.nanos => {}
            _ => {
                to.insert(k.clone(), *a);
            }
        }
    }
}

/// A pod's effective requests or limits (upstream resourcehelper `PodRequests` /
/// `PodLimits`): the sum over containers and restartable (sidecar) init containers,
/// at least each regular init container plus the sidecars started before it, plus
/// the pod overhead.
fn pod_aggregate(
    pod: &Pod,
    pick: fn(&Container) -> Option<&BTreeMap<String, ApiQuantity>>,
    with_overhead: bool,
) -> Usage {
    let mut total = Usage::new();
    let Some(spec) = &pod.spec else {
        return total;
    };
    for c in &spec.containers {
        add_list(&mut total, pick(c));
    }
    let mut sidecars = Usage::new();
    let mut init_max = Usage::new();
    for c in spec.init_containers.iter().flatten() {
        if c.restart_policy.as_deref() == Some("Always") {
            add_list(&mut total, pick(c));
            add_list(&mut sidecars, pick(c));
            let cur = sidecars.clone();
            max_list(&mut init_max, &cur);
        } else {
            let mut tmp = Usage::new();
            add_list(&mut tmp, pick(c));
            for (k, a) in &sidecars {
                let cur = tmp.remove(k);
                tmp.insert(k.clone(), cur.map_or(*a, |c| c.plus(*a)));
            }
            max_list(&mut init_max, &tmp);
        }
    }
    max_list(&mut total, &init_max);
    if with_overhead {
        add_list(&mut total, spec.overhead.as_ref());
    }
    total
}

fn requests(c: &Container) -> Option<&BTreeMap<String, ApiQuantity>> {
    c.resources.as_ref()?.requests.as_ref()
}

fn limits(c: &Container) -> Option<&BTreeMap<String, ApiQuantity>> {
    c.resources.as_ref()?.limits.as_ref()
}

/// Whether a pod is charged for compute resources (upstream `QuotaV1Pod`): not
/// terminal, and not stuck terminating past its grace period.
pub fn pod_counts(pod: &Pod, now: Timestamp) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    if let (Some(ts), Some(grace)) = (
        &pod.metadata.deletion_timestamp,
        pod.metadata.deletion_grace_period_seconds,
    ) {
        if now.as_second() > ts.0.as_second().saturating_add(grace) {
            return false;
        }
    }
    true
}

/// What one pod uses (upstream `PodUsageFunc` + `podComputeUsageHelper`).
pub fn pod_usage(pod: &Pod, now: Timestamp) -> Usage {
    let mut out = Usage::new();
    out.insert("count/pods".into(), Amount::units(1));
    if !pod_counts(pod, now) {
        return out;
    }
    let req = pod_aggregate(pod, requests, true);
    let mut lim = pod_aggregate(pod, limits, false);
    // Overhead is added to the limits that are set, only.
    for (k, q) in pod
        .spec
        .as_ref()
        .and_then(|s| s.overhead.as_ref())
        .into_iter()
        .flatten()
    {
        if let (Some(cur), Some(a)) = (lim.get_mut(k), amount(q)) {
            *cur = cur.plus(a);
        }
    }
    out.insert("pods".into(), Amount::units(1));
    for (res, alias) in [
        ("cpu", "cpu"),
        ("memory", "memory"),
        ("ephemeral-storage", "ephemeral-storage"),
    ] {
        if let Some(a) = req.get(res) {
            out.insert(alias.into(), *a);
            out.insert(format!("requests.{res}"), *a);
        }
        if let Some(a) = lim.get(res) {
            out.insert(format!("limits.{res}"), *a);
        }
    }
    for (res, a) in &req {
        if res.starts_with("hugepages-") {
            out.insert(res.clone(), *a);
            out.insert(format!("requests.{res}"), *a);
        }
        let masked = format!("requests.{res}");
        if is_extended_request(&masked) {
            out.insert(masked, *a);
        }
    }
    for (res, a) in &lim {
        if res.starts_with("hugepages-") {
            out.insert(format!("limits.{res}"), *a);
        }
    }
    out
}

/// Whether a pod falls in a scope requirement (upstream `podMatchesScopeFunc`, shared
/// with the API server's quota admission through [`ferrokube_api::quota_scopes`]).
pub fn pod_matches_scope(req: &ScopedResourceSelectorRequirement, pod: &Pod) -> bool {
    let req = ferrokube_api::quota_scopes::Requirement {
        scope: req.scope_name.clone(),
        operator: req.operator.clone(),
        values: req.values.clone().unwrap_or_default(),
    };
    serde_json::to_value(pod).is_ok_and(|pod| ferrokube_api::quota_scopes::pod_matches(&req, &pod))
}

/// The quota's scopes and scope selector as requirements (a scope named in
/// `spec.scopes` is an `Exists` requirement).
pub fn scope_requirements(
    scopes: Option<&Vec<String>>,
    selector: Option<&ScopeSelector>,
) -> Vec<ScopedResourceSelectorRequirement> {
    let mut out: Vec<ScopedResourceSelectorRequirement> = scopes
        .into_iter()
        .flatten()
        .map(|s| ScopedResourceSelectorRequirement {
            scope_name: s.clone(),
            operator: "Exists".into(),
            values: None,
        })
        .collect();
    out.extend(
        selector
            .and_then(|s| s.match_expressions.clone())
            .unwrap_or_default(),
    );
    out
}

/// What one service uses (upstream service evaluator).
pub fn service_usage(svc: &Service) -> Usage {
    let mut out = Usage::new();
    out.insert("services".into(), Amount::units(1));
    out.insert("count/services".into(), Amount::units(1));
    let spec = svc.spec.as_ref();
    let ports = spec.and_then(|s| s.ports.as_ref());
    let n = ports.map_or(0, Vec::len) as i64;
    match spec.and_then(|s| s.type_.as_deref()) {
        Some("NodePort") => {
            out.insert("services.nodeports".into(), Amount::units(n));
        }
        Some("LoadBalancer") => {
            let allocate = spec
                .and_then(|s| s.allocate_load_balancer_node_ports)
                .unwrap_or(true);
            let node_ports = if allocate {
                n
            } else {
                ports
                    .into_iter()
                    .flatten()
                    .filter(|p| p.node_port.is_some_and(|np| np != 0))
                    .count() as i64
            };
            out.insert("services.nodeports".into(), Amount::units(node_ports));
            out.insert("services.loadbalancers".into(), Amount::units(1));
        }
        _ => {}
    }
    out
}

/// What one claim uses (upstream PVC evaluator): the larger of the requested and the
/// allocated storage, also under its storage class.
pub fn pvc_usage(pvc: &PersistentVolumeClaim) -> Usage {
    let mut out = Usage::new();
    out.insert("persistentvolumeclaims".into(), Amount::units(1));
    out.insert("count/persistentvolumeclaims".into(), Amount::units(1));
    let class = pvc
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .or_else(|| {
            pvc.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class").cloned())
        })
        .unwrap_or_default();
    if !class.is_empty() {
        out.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
            Amount::units(1),
        );
    }
    let requested = pvc
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(amount);
    let allocated = pvc
        .status
        .as_ref()
        .and_then(|s| s.allocated_resources.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(amount);
    let storage = match (requested, allocated) {
        (Some(r), Some(a)) => Some(r.max(a)),
        (r, a) => r.or(a),
    };
    if let Some(s) = storage {
        out.insert("requests.storage".into(), s);
        if !class.is_empty() {
            out.insert(format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"), s);
        }
    }
    out
}

/// What one object of a counted resource uses: 1 under its count name and alias.
pub fn object_count_usage(group: &str, resource: &str) -> Usage {
    let mut out = Usage::new();
    out.insert(count_name(group, resource), Amount::units(1));
    if let Some(a) = legacy_alias(group, resource) {
        out.insert(a.into(), Amount::units(1));
    }
    out
}

/// Upstream `CalculateUsageStats`: every tracked name starts at zero, and the usage of
/// each object in every scope requirement is added. Objects of evaluators without
/// scope support match no scope (`MatchesNoScopeFunc`).
pub fn usage_stats<'a, T: 'a>(
    tracked: &BTreeSet<String>,
    items: impl IntoIterator<Item = &'a T>,
    requirements: &[ScopedResourceSelectorRequirement],
    matches_scope: impl Fn(&ScopedResourceSelectorRequirement, &T) -> bool,
    usage: impl Fn(&T) -> Usage,
) -> Usage {
    let mut used: Usage = tracked
        .iter()
        .map(|n| (n.clone(), Amount::default()))
        .collect();
    for item in items {
        if !requirements.iter().all(|r| matches_scope(r, item)) {
            continue;
        }
        for (k, a) in usage(item) {
            if let Some(cur) = used.get_mut(&k) {
                *cur = cur.plus(a);
            }
        }
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn names(ns: &[&str]) -> BTreeSet<String> {
        ns.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_find_their_evaluators() {
        assert_eq!(evaluator_for("requests.cpu"), Some(Evaluator::Pods));
        assert_eq!(evaluator_for("hugepages-2Mi"), Some(Evaluator::Pods));
        assert_eq!(
            evaluator_for("requests.nvidia.com/gpu"),
            Some(Evaluator::Pods)
        );
        assert_eq!(
            evaluator_for("gold.storageclass.storage.k8s.io/requests.storage"),
            Some(Evaluator::PersistentVolumeClaims)
        );
        assert_eq!(
            evaluator_for("count/deployments.apps"),
            Some(Evaluator::ObjectCount {
                group: "apps".into(),
                resource: "deployments".into()
            })
        );
        assert_eq!(
            evaluator_for("configmaps"),
            Some(Evaluator::ObjectCount {
                group: String::new(),
                resource: "configmaps".into()
            })
        );
        assert_eq!(
            evaluator_for("services.nodeports"),
            Some(Evaluator::Services)
        );
        assert_eq!(evaluator_for("bogus"), None);
    }

    #[test]
    fn pod_compute_with_init_and_sidecar_containers() {
        let p = pod(json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "250m", "memory": "64Mi", "hugepages-2Mi": "4Mi"}}}
                ],
                "initContainers": [
                    {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
                    {"name": "init", "resources": {"requests": {"cpu": "2"}}}
                ],
                "overhead": {"memory": "1Mi"}
            }
        }));
        let u = pod_usage(&p, Timestamp::now());
        // containers 500m + sidecar 100m = 600m < init 2 + sidecar 100m = 2100m
        assert_eq!(u["requests.cpu"].canonical(), "2100m");
        assert_eq!(u["cpu"].canonical(), "2100m");
        assert_eq!(u["requests.memory"].canonical(), "129Mi");
        assert_eq!(u["limits.cpu"].canonical(), "1");
        assert_eq!(u["requests.hugepages-2Mi"].canonical(), "4Mi");
        assert_eq!(u["pods"].canonical(), "1");
        assert!(!ferrokube_api::quota_scopes::is_best_effort(
            &serde_json::to_value(&p).unwrap()
        ));
    }

    #[test]
    fn terminal_pods_only_count_as_objects() {
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": []}, "status": {"phase": "Succeeded"}}),
        );
        let u = pod_usage(&p, Timestamp::now());
        assert!(u.contains_key("count/pods"));
        assert!(!u.contains_key("pods"));
        let stuck = pod(
            json!({"metadata": {"name": "p", "deletionTimestamp": "2020-01-01T00:00:00Z", "deletionGracePeriodSeconds": 30}, "spec": {"containers": []}}),
        );
        assert!(!pod_counts(&stuck, Timestamp::now()));
    }

    #[test]
    fn scopes_select_pods() {
        let be = pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": [{"name": "c"}], "priorityClassName": "high"}}),
        );
        let term = pod(
            json!({"metadata": {"name": "b"}, "spec": {"activeDeadlineSeconds": 5, "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}}),
        );
        let reqs = scope_requirements(Some(&vec!["BestEffort".to_string()]), None);
        let tracked = names(&["pods", "requests.cpu"]);
        let used = usage_stats(&tracked, [&be, &term], &reqs, pod_matches_scope, |p| {
            pod_usage(p, Timestamp::now())
        });
        assert_eq!(used["pods"].canonical(), "1");
        assert_eq!(used["requests.cpu"].canonical(), "0");
        let reqs = scope_requirements(Some(&vec!["Terminating".to_string()]), None);
        let used = usage_stats(&tracked, [&be, &term], &reqs, pod_matches_scope, |p| {
            pod_usage(p, Timestamp::now())
        });
        assert_eq!(used["requests.cpu"].canonical(), "1");
        let sel = ScopeSelector {
            match_expressions: Some(vec![ScopedResourceSelectorRequirement {
                scope_name: "PriorityClass".into(),
                operator: "In".into(),
                values: Some(vec!["high".into()]),
            }]),
        };
        let reqs = scope_requirements(None, Some(&sel));
        assert!(pod_matches_scope(&reqs[0], &be));
        assert!(!pod_matches_scope(&reqs[0], &term));
    }

    #[test]
    fn services_and_claims() {
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}})).unwrap();
        let u = service_usage(&svc);
        assert_eq!(u["services.nodeports"].canonical(), "2");
        assert_eq!(u["services.loadbalancers"].canonical(), "1");
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "c"}, "spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "1Gi"}}}, "status": {"allocatedResources": {"storage": "2Gi"}}})).unwrap();
        let u = pvc_usage(&pvc);
        assert_eq!(u["requests.storage"].canonical(), "2Gi");
        assert_eq!(
            u["gold.storageclass.storage.k8s.io/requests.storage"].canonical(),
            "2Gi"
        );
        let c = object_count_usage("", "configmaps");
        assert!(c.contains_key("configmaps") && c.contains_key("count/configmaps"));
    }
}
