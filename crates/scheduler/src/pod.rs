//! The scheduler's parsed view of a v1 Pod: `framework.PodInfo` (with its
//! pre-parsed affinity terms) from `pkg/scheduler/framework/types.go`, plus the
//! fields the default plugins read, taken once from the JSON the API serves so
//! that filtering never touches `serde_json::Value`.

use serde_json::Value;

use crate::labels::{
    str_of, string_map, LabelSelector, Labels, NodeSelector, PreferredTerm, Toleration,
};
use crate::resource::{pod_requests, PodRequests};

/// Why a pod object could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PodParseError {
    /// `metadata.name` is missing.
    #[error("pod has no metadata.name")]
    MissingName,
}

/// A host port a container asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// `hostIP`, `0.0.0.0` when unset.
    pub ip: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The port.
    pub port: i64,
}

impl HostPort {
    /// `HostPortInfo` conflict rule: same protocol and port, and the same IP or
    /// either side on `0.0.0.0`.
    pub fn conflicts(&self, o: &Self) -> bool {
        self.port == o.port
            && self.protocol == o.protocol
            && (self.ip == o.ip || self.ip == "0.0.0.0" || o.ip == "0.0.0.0")
    }
}

/// A pod (anti-)affinity term: `framework.AffinityTerm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityTerm {
    /// The label selector (with matchLabelKeys/mismatchLabelKeys merged);
    /// `None` matches no pod.
    pub selector: Option<LabelSelector>,
    /// Namespaces named (defaulted to the pod's own when neither field is set).
    pub namespaces: Vec<String>,
    /// `namespaceSelector`; empty means all namespaces.
    pub namespace_selector: Option<LabelSelector>,
    /// The topology key.
    pub topology_key: String,
    /// The weight for preferred terms (required terms: 0).
    pub weight: i64,
}

impl AffinityTerm {
    fn parse(term: &Value, weight: i64, pod_ns: &str, pod_labels: &Labels) -> Self {
        let mut selector = LabelSelector::parse_opt(term.get("labelSelector"));
        if let Some(sel) = selector.as_mut() {
            for key in term
                .get("matchLabelKeys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(v) = key.as_str().and_then(|k| pod_labels.get(k).map(|v| (k, v))) {
                    sel.require_equal(v.0, v.1);
                }
            }
            for key in term
                .get("mismatchLabelKeys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(v) = key.as_str().and_then(|k| pod_labels.get(k).map(|v| (k, v))) {
                    sel.require_not_equal(v.0, v.1);
                }
            }
        }
        let mut namespaces: Vec<String> = term
            .get("namespaces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        let namespace_selector = LabelSelector::parse_opt(term.get("namespaceSelector"));
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.push(pod_ns.to_owned());
        }
        Self {
            selector,
            namespaces,
            namespace_selector,
            topology_key: str_of(term, "topologyKey").to_owned(),
            weight,
        }
    }

    /// `AffinityTerm.Matches`: the pod is in one of the term's namespaces and
    /// its labels match. `ns_labels` are the labels of the pod's namespace when
    /// known.
    pub fn matches(&self, pod: &PodInfo, ns_labels: Option<&Labels>) -> bool {
        let in_ns = self.namespaces.contains(&pod.namespace)
            || self
                .namespace_selector
                .as_ref()
                .is_some_and(|s| s.is_empty() || ns_labels.is_some_and(|l| s.matches(l)));
        in_ns
            && self
                .selector
                .as_ref()
                .is_some_and(|s| s.matches(&pod.labels))
    }
}

/// `whenUnsatisfiable` of a topology spread constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenUnsatisfiable {
    /// Hard constraint (Filter).
    DoNotSchedule,
    /// Soft constraint (Score).
    ScheduleAnyway,
}

/// A topology spread constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpreadConstraint {
    /// `maxSkew`.
    pub max_skew: i64,
    /// `topologyKey`.
    pub topology_key: String,
    /// `whenUnsatisfiable`.
    pub when_unsatisfiable: WhenUnsatisfiable,
    /// Selector (with matchLabelKeys merged); `None` matches nothing.
    pub selector: Option<LabelSelector>,
    /// `minDomains` (1 when unset).
    pub min_domains: i64,
    /// `nodeAffinityPolicy: Honor` (the default) — only nodes matching the
    /// pod's node affinity/selector count.
    pub honor_node_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (default Ignore) — only nodes whose taints the
    /// pod tolerates count.
    pub honor_node_taints: bool,
}

impl SpreadConstraint {
    fn parse(v: &Value, pod_labels: &Labels) -> Self {
        let mut selector = LabelSelector::parse_opt(v.get("labelSelector"));
        if let Some(sel) = selector.as_mut() {
            for key in v
                .get("matchLabelKeys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some((k, val)) = key.as_str().and_then(|k| pod_labels.get(k).map(|v| (k, v)))
                {
                    sel.require_equal(k, val);
                }
            }
        }
        Self {
            max_skew: v.get("maxSkew").and_then(Value::as_i64).unwrap_or(1),
            topology_key: str_of(v, "topologyKey").to_owned(),
            when_unsatisfiable: if str_of(v, "whenUnsatisfiable") == "ScheduleAnyway" {
                WhenUnsatisfiable::ScheduleAnyway
            } else {
                WhenUnsatisfiable::DoNotSchedule
            },
            selector,
            min_domains: v
                .get("minDomains")
                .and_then(Value::as_i64)
                .unwrap_or(1)
                .max(1),
            honor_node_affinity: str_of(v, "nodeAffinityPolicy") != "Ignore",
            honor_node_taints: str_of(v, "nodeTaintsPolicy") == "Honor",
        }
    }
}

/// The parsed pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid` (namespace/name when absent, e.g. in tests).
    pub uid: String,
    /// `metadata.labels`.
    pub labels: Labels,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// `spec.nodeName`.
    pub node_name: String,
    /// `spec.schedulerName` (`default-scheduler` when unset).
    pub scheduler_name: String,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
    /// `spec.preemptionPolicy: Never`.
    pub preemption_never: bool,
    /// `spec.schedulingGates` is non-empty.
    pub scheduling_gated: bool,
    /// Requests.
    pub requests: PodRequests,
    /// `spec.nodeSelector`.
    pub node_selector: Labels,
    /// Required node affinity.
    pub required_node_affinity: Option<NodeSelector>,
    /// Preferred node affinity.
    pub preferred_node_affinity: Vec<PreferredTerm>,
    /// `spec.tolerations`.
    pub tolerations: Vec<Toleration>,
    /// Host ports of all containers (incl. init containers).
    pub host_ports: Vec<HostPort>,
    /// Normalized images of the init and regular containers.
    pub images: Vec<String>,
    /// Number of init and regular containers (ImageLocality's threshold).
    pub num_containers: usize,
    /// `spec.topologySpreadConstraints`.
    pub spread_constraints: Vec<SpreadConstraint>,
    /// Required pod affinity terms.
    pub required_affinity: Vec<AffinityTerm>,
    /// Required pod anti-affinity terms.
    pub required_anti_affinity: Vec<AffinityTerm>,
    /// Preferred pod affinity terms (weighted).
    pub preferred_affinity: Vec<AffinityTerm>,
    /// Preferred pod anti-affinity terms (weighted).
    pub preferred_anti_affinity: Vec<AffinityTerm>,
    /// `status.startTime` (RFC 3339, compares lexically) for preemption order.
    pub start_time: Option<String>,
    /// `status.nominatedNodeName`.
    pub nominated_node_name: String,
    /// Selector for the default (system) spread constraints: the I/O layer
    /// sets it from the Services/ReplicaSets/… selecting the pod
    /// (`helper.DefaultSelector`); `None` means no default constraints apply.
    pub default_spread_selector: Option<LabelSelector>,
}

/// `normalizedImageName`: an image without tag or digest means `:latest`.
pub fn normalize_image(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

fn weighted_terms(v: Option<&Value>, ns: &str, labels: &Labels) -> Vec<AffinityTerm> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|w| {
            let weight = w.get("weight").and_then(Value::as_i64).unwrap_or(0);
            let term = w.get("podAffinityTerm").cloned().unwrap_or(Value::Null);
            AffinityTerm::parse(&term, weight, ns, labels)
        })
        .collect()
}

fn required_terms(v: Option<&Value>, ns: &str, labels: &Labels) -> Vec<AffinityTerm> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| AffinityTerm::parse(t, 0, ns, labels))
        .collect()
}

impl PodInfo {
    /// Parses a v1 Pod as served by the API.
    pub fn from_value(pod: &Value) -> Result<Self, PodParseError> {
        let meta = pod.get("metadata").cloned().unwrap_or(Value::Null);
        let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
        let status = pod.get("status").cloned().unwrap_or(Value::Null);
        let name = str_of(&meta, "name").to_owned();
        if name.is_empty() {
            return Err(PodParseError::MissingName);
        }
        let namespace = match str_of(&meta, "namespace") {
            "" => "default".to_owned(),
            ns => ns.to_owned(),
        };
        let uid = match str_of(&meta, "uid") {
            "" => format!("{namespace}/{name}"),
            u => u.to_owned(),
        };
        let labels = string_map(meta.get("labels"));
        let affinity = spec.get("affinity");
        let node_aff = affinity.and_then(|a| a.get("nodeAffinity"));
        let pod_aff = affinity.and_then(|a| a.get("podAffinity"));
        let pod_anti = affinity.and_then(|a| a.get("podAntiAffinity"));
        let mut host_ports = Vec::new();
        let mut images = Vec::new();
        let mut num_containers = 0;
        for field in ["initContainers", "containers"] {
            for c in spec
                .get(field)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                num_containers += 1;
                if let Some(img) = c.get("image").and_then(Value::as_str) {
                    images.push(normalize_image(img));
                }
                for p in c
                    .get("ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let port = p.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
                    if port <= 0 {
                        continue;
                    }
                    host_ports.push(HostPort {
                        ip: match str_of(p, "hostIP") {
                            "" => "0.0.0.0".to_owned(),
                            ip => ip.to_owned(),
                        },
                        protocol: match str_of(p, "protocol") {
                            "" => "TCP".to_owned(),
                            pr => pr.to_owned(),
                        },
                        port,
                    });
                }
            }
        }
        Ok(Self {
            required_affinity: required_terms(
                pod_aff.and_then(|a| a.get("requiredDuringSchedulingIgnoredDuringExecution")),
                &namespace,
                &labels,
            ),
            required_anti_affinity: required_terms(
                pod_anti.and_then(|a| a.get("requiredDuringSchedulingIgnoredDuringExecution")),
                &namespace,
                &labels,
            ),
            preferred_affinity: weighted_terms(
                pod_aff.and_then(|a| a.get("preferredDuringSchedulingIgnoredDuringExecution")),
                &namespace,
                &labels,
            ),
            preferred_anti_affinity: weighted_terms(
                pod_anti.and_then(|a| a.get("preferredDuringSchedulingIgnoredDuringExecution")),
                &namespace,
                &labels,
            ),
            spread_constraints: spec
                .get("topologySpreadConstraints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| SpreadConstraint::parse(c, &labels))
                .collect(),
            terminating: meta.get("deletionTimestamp").is_some_and(|t| !t.is_null()),
            node_name: str_of(&spec, "nodeName").to_owned(),
            scheduler_name: match str_of(&spec, "schedulerName") {
                "" => "default-scheduler".to_owned(),
                s => s.to_owned(),
            },
            priority: spec
                .get("priority")
                .and_then(Value::as_i64)
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(0),
            preemption_never: str_of(&spec, "preemptionPolicy") == "Never",
            scheduling_gated: spec
                .get("schedulingGates")
                .and_then(Value::as_array)
                .is_some_and(|g| !g.is_empty()),
            requests: pod_requests(&spec),
            node_selector: string_map(spec.get("nodeSelector")),
            required_node_affinity: node_aff
                .and_then(|a| a.get("requiredDuringSchedulingIgnoredDuringExecution"))
                .filter(|v| !v.is_null())
                .map(NodeSelector::parse),
            preferred_node_affinity: node_aff
                .and_then(|a| a.get("preferredDuringSchedulingIgnoredDuringExecution"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(PreferredTerm::parse)
                .collect(),
            tolerations: spec
                .get("tolerations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(Toleration::parse)
                .collect(),
            host_ports,
            images,
            num_containers,
            start_time: status
                .get("startTime")
                .and_then(Value::as_str)
                .map(str::to_owned),
            nominated_node_name: str_of(&status, "nominatedNodeName").to_owned(),
            default_spread_selector: None,
            namespace,
            name,
            uid,
            labels,
        })
    }

    /// Whether the pod has any pod affinity or anti-affinity (required or preferred).
    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }

    /// Whether the pod has required anti-affinity terms.
    pub fn has_required_anti_affinity(&self) -> bool {
        !self.required_anti_affinity.is_empty()
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether node affinity/selector of the pod match the node
    /// (`nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)`).
    pub fn matches_node_selector(&self, labels: &Labels, node_name: &str) -> bool {
        self.node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self
                .required_node_affinity
                .as_ref()
                .is_none_or(|ns| ns.matches(labels, node_name))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_a_pod() {
        let p = PodInfo::from_value(&json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "a", "rev": "1"}},
            "spec": {
                "priority": 100, "preemptionPolicy": "Never",
                "containers": [{"image": "nginx", "ports": [{"containerPort": 80, "hostPort": 8080}]}],
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "a"}}, "topologyKey": "kubernetes.io/hostname",
                     "matchLabelKeys": ["rev"]}
                ]}}
            }
        }))
        .unwrap();
        assert_eq!(p.priority, 100);
        assert!(p.preemption_never);
        assert_eq!(p.images, vec!["nginx:latest".to_owned()]);
        assert_eq!(
            p.host_ports[0],
            HostPort {
                ip: "0.0.0.0".into(),
                protocol: "TCP".into(),
                port: 8080
            }
        );
        let term = &p.required_anti_affinity[0];
        assert_eq!(term.namespaces, vec!["ns".to_owned()]);
        assert_eq!(term.selector.as_ref().unwrap().requirements.len(), 2);
        assert!(term.matches(&p, None));
        assert_eq!(
            PodInfo::from_value(&json!({})),
            Err(PodParseError::MissingName)
        );
    }
}
