//! What the Endpoints and EndpointSlice controllers share (upstream staging
//! `k8s.io/endpointslice/util`: `ShouldPodBeInEndpoints`, `ShouldSetHostname`,
//! `FindPort`, the pod-change → Services projection, and `TriggerTimeTracker`, which
//! computes the `endpoints.kubernetes.io/last-change-trigger-time` annotation).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use parking_lot::Mutex;

use crate::informer::Store;
use crate::podutil;
use crate::selector;

/// `endpoints.kubernetes.io/last-change-trigger-time`.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// `service.kubernetes.io/headless`: set on Endpoints and slices of headless Services.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn pod_ip_strings(pod: &Pod) -> Vec<&str> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let mut ips: Vec<&str> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.as_str())
        .filter(|ip| !ip.is_empty())
        .collect();
    if ips.is_empty() {
        ips.extend(status.pod_ip.as_deref().filter(|ip| !ip.is_empty()));
    }
    ips
}

/// The pod's IPs (`status.podIPs`, else `status.podIP`).
pub fn pod_ips(pod: &Pod) -> Vec<String> {
    pod_ip_strings(pod)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// Whether an IP string is IPv6 (`utilnet.IsIPv6String`).
pub fn is_ipv6(ip: &str) -> bool {
    ip.parse::<std::net::Ipv6Addr>().is_ok()
}

/// Upstream `ShouldPodBeInEndpoints`: not terminal, has an IP, and (unless
/// `include_terminating`) not being deleted.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if matches!(phase(pod), "Failed" | "Succeeded") {
        return false;
    }
    if pod_ip_strings(pod).is_empty() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// Upstream `ShouldSetHostname`: the pod's hostname is published when its subdomain
/// names the Service (in the same namespace).
pub fn should_set_hostname(pod: &Pod, svc: &Service) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.hostname.as_deref().is_some_and(|h| !h.is_empty())
        && spec.subdomain.as_deref().unwrap_or("") == svc.name_any()
        && pod.namespace() == svc.namespace()
}

/// Upstream `FindPort`: a numeric targetPort as is; a named one looked up among the
/// containers' ports (then restartable init containers') with the same protocol.
/// `None` when the pod has no such named port.
pub fn find_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    match sp.target_port.as_ref() {
        None => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let proto = sp.protocol.as_deref().unwrap_or("TCP");
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == proto
                })
                .map(|p| p.container_port)
        }
    }
}

/// Upstream `IsServiceIPSet`: a ClusterIP that is neither empty nor `None`.
pub fn is_service_ip_set(svc: &Service) -> bool {
    let ip = svc
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap_or("");
    !ip.is_empty() && ip != "None"
}

/// The Service's selector; `None` (upstream's nil) selects nothing and means "not
/// managed by these controllers".
pub fn service_selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec.as_ref()?.selector.as_ref()
}

/// `type: ExternalName` Services get no endpoints.
pub fn is_external_name(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName")
}

/// `publishNotReadyAddresses`.
pub fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// Keys of the Services in `namespace` whose selector matches `labels`.
fn services_for_labels(
    services: &Store<Service>,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    services
        .list_namespace(namespace)
        .into_iter()
        .filter(|s| service_selector(s).is_some_and(|sel| selector::matches_map(sel, labels)))
        .map(|s| format!("{namespace}/{}", s.name_any()))
        .collect()
}

/// Upstream `GetPodServiceMemberships`: the Services selecting `pod`.
pub fn pod_service_memberships(services: &Store<Service>, pod: &Pod) -> BTreeSet<String> {
    services_for_labels(
        services,
        &pod.namespace().unwrap_or_default(),
        podutil::labels(&pod.metadata),
    )
}

fn pod_ready(pod: &Pod) -> bool {
    podutil::is_ready(pod)
}

/// Upstream `podEndpointsChanged`: (the pod changed in a way that changes its
/// endpoints, its labels/hostname changed so its Services may differ).
pub fn pod_endpoints_changed(old: &Pod, new: &Pod) -> (bool, bool) {
    let host = |p: &Pod| {
        p.spec
            .as_ref()
            .map(|s| (s.hostname.clone(), s.subdomain.clone()))
    };
    let labels_changed =
        podutil::labels(&old.metadata) != podutil::labels(&new.metadata) || host(old) != host(new);
    let changed = old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
        || pod_ready(old) != pod_ready(new)
        || pod_ip_strings(old) != pod_ip_strings(new);
    (changed, labels_changed)
}

/// Upstream `GetServicesToUpdateOnPodChange`: which Services to re-sync when a pod
/// changes from `old` to `new`.
pub fn services_to_update_on_pod_change(
    services: &Store<Service>,
    old: &Pod,
    new: &Pod,
) -> BTreeSet<String> {
    if old.metadata.resource_version == new.metadata.resource_version {
        return BTreeSet::new();
    }
    let (pod_changed, labels_changed) = pod_endpoints_changed(old, new);
    if !pod_changed && !labels_changed {
        return BTreeSet::new();
    }
    let now = pod_service_memberships(services, new);
    if !labels_changed {
        return now;
    }
    let before = pod_service_memberships(services, old);
    if pod_changed {
        now.union(&before).cloned().collect()
    } else {
        now.symmetric_difference(&before).cloned().collect()
    }
}

#[derive(Debug, Default)]
struct ServiceState {
    last_service_trigger: Option<Timestamp>,
    last_pod_triggers: HashMap<String, Timestamp>,
}

/// Upstream `TriggerTimeTracker`: the earliest change (a pod's Ready transition, or
/// the Service's creation) not yet reflected in the endpoints object.
#[derive(Debug, Default)]
pub struct TriggerTimeTracker {
    states: Mutex<HashMap<(String, String), ServiceState>>,
}

fn pod_trigger_time(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

impl TriggerTimeTracker {
    /// Updates the state of `svc` and returns the time to export (`None`: clear the
    /// annotation).
    pub fn compute(&self, svc: &Service, pods: &[std::sync::Arc<Pod>]) -> Option<Timestamp> {
        let key = (svc.namespace().unwrap_or_default(), svc.name_any());
        let mut states = self.states.lock();
        let was_known = states.contains_key(&key);
        let state = states.entry(key).or_default();
        let mut min_changed: Option<Timestamp> = None;
        let mut pod_triggers = HashMap::new();
        for pod in pods {
            if let Some(t) = pod_trigger_time(pod) {
                let name = pod.name_any();
                if state
                    .last_pod_triggers
                    .get(&name)
                    .is_none_or(|last| t > *last)
                {
                    min_changed = Some(min_changed.map_or(t, |m| m.min(t)));
                }
                pod_triggers.insert(name, t);
            }
        }
        let svc_trigger = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(t) = svc_trigger {
            if state.last_service_trigger.is_none_or(|last| t > last) {
                min_changed = Some(min_changed.map_or(t, |m| m.min(t)));
            }
        }
        state.last_pod_triggers = pod_triggers;
        state.last_service_trigger = svc_trigger;
        if !was_known {
            return svc_trigger;
        }
        min_changed
    }

    /// Forgets a deleted Service.
    pub fn delete_service(&self, namespace: &str, name: &str) {
        self.states
            .lock()
            .remove(&(namespace.to_string(), name.to_string()));
    }
}

/// RFC 3339 in UTC as Go's `time.RFC3339Nano` writes it (trailing zeros dropped).
pub fn format_trigger_time(t: Timestamp) -> String {
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, PodStatus};
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn finds_named_and_numeric_ports() {
        let p = Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("http".into()),
                        container_port: 8080,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let sp = |t: IntOrString, proto: Option<&str>| ServicePort {
            port: 80,
            target_port: Some(t),
            protocol: proto.map(str::to_string),
            ..Default::default()
        };
        assert_eq!(find_port(&p, &sp(IntOrString::Int(9000), None)), Some(9000));
        assert_eq!(
            find_port(&p, &sp(IntOrString::String("http".into()), Some("TCP"))),
            Some(8080)
        );
        assert_eq!(
            find_port(&p, &sp(IntOrString::String("http".into()), Some("UDP"))),
            None
        );
        assert_eq!(
            find_port(&p, &sp(IntOrString::String("grpc".into()), None)),
            None
        );
    }

    #[test]
    fn pods_in_endpoints() {
        let running = pod(json!({"status": {"phase": "Running", "podIP": "10.0.0.1"}}));
        assert!(should_pod_be_in_endpoints(&running, false));
        let no_ip = Pod {
            status: Some(PodStatus {
                phase: Some("Running".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(!should_pod_be_in_endpoints(&no_ip, true));
        let done = pod(json!({"status": {"phase": "Succeeded", "podIP": "10.0.0.1"}}));
        assert!(!should_pod_be_in_endpoints(&done, true));
        let deleting = pod(
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}]}}),
        );
        assert!(!should_pod_be_in_endpoints(&deleting, false));
        assert!(should_pod_be_in_endpoints(&deleting, true));
    }

    #[test]
    fn pod_changes() {
        let a = pod(
            json!({"metadata": {"labels": {"app": "a"}, "resourceVersion": "1"},
            "status": {"podIP": "10.0.0.1"}}),
        );
        let mut b = a.clone();
        b.metadata.resource_version = Some("2".into());
        assert_eq!(pod_endpoints_changed(&a, &b), (false, false));
        b.metadata.labels = None;
        assert_eq!(pod_endpoints_changed(&a, &b), (false, true));
        let c = pod(json!({"metadata": {"labels": {"app": "a"}},
            "status": {"podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}}));
        assert_eq!(pod_endpoints_changed(&a, &c), (true, false));
    }

    #[test]
    fn trigger_times() {
        let tracker = TriggerTimeTracker::default();
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "s",
            "namespace": "d", "creationTimestamp": "2024-01-01T00:00:00Z"}}))
        .unwrap();
        let p = std::sync::Arc::new(pod(
            json!({"metadata": {"name": "p"}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:05Z"}]}}),
        ));
        let first = tracker.compute(&svc, std::slice::from_ref(&p));
        assert_eq!(format_trigger_time(first.unwrap()), "2024-01-01T00:00:00Z");
        // Nothing changed since: no trigger time.
        assert_eq!(tracker.compute(&svc, std::slice::from_ref(&p)), None);
        let p2 = std::sync::Arc::new(pod(
            json!({"metadata": {"name": "p"}, "status": {"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": "2024-01-01T00:01:00Z"}]}}),
        ));
        let t = tracker.compute(&svc, &[p2]).unwrap();
        assert_eq!(format_trigger_time(t), "2024-01-01T00:01:00Z");
    }
}
