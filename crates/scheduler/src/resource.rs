//! `framework.Resource` and pod requests as `k8s.io/kubernetes/pkg/api/v1/resource`
//! (`PodRequests`) computes them: regular containers summed, restartable init
//! containers (sidecars) added and carried into later init containers, the max
//! of that and every init container, plus `spec.overhead`; and the non-zero
//! variant (`NonMissingContainerRequests`: 100m cpu, 200Mi memory) used for scoring.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::quantity;

/// `DefaultMilliCPURequest` in `pkg/scheduler/util/pod_resources.go`.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// `DefaultMemoryRequest`: 200 MiB.
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Requested or allocatable resources of a pod or node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Pod count (only meaningful for allocatable).
    pub allowed_pod_number: i64,
    /// Extended resources, hugepages … by name.
    pub scalar: BTreeMap<String, i64>,
}

impl Resource {
    /// Reads a `ResourceList` (`{"cpu": "1", "memory": "1Gi", …}`).
    pub fn from_list(v: Option<&Value>) -> Self {
        let mut r = Self::default();
        for (name, q) in v.and_then(Value::as_object).into_iter().flatten() {
            let Some(q) = q.as_str() else { continue };
            match name.as_str() {
                "cpu" => r.milli_cpu = quantity::milli_value(q).unwrap_or(0),
                "memory" => r.memory = quantity::value(q).unwrap_or(0),
                "ephemeral-storage" => r.ephemeral_storage = quantity::value(q).unwrap_or(0),
                "pods" => r.allowed_pod_number = quantity::value(q).unwrap_or(0),
                other => {
                    r.scalar
                        .insert(other.to_owned(), quantity::value(q).unwrap_or(0));
                }
            }
        }
        r
    }

    /// Adds another resource set.
    pub fn add(&mut self, o: &Self) {
        self.milli_cpu = self.milli_cpu.saturating_add(o.milli_cpu);
        self.memory = self.memory.saturating_add(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(o.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.saturating_add(o.allowed_pod_number);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }

    /// Subtracts another resource set (used when a pod leaves a node).
    pub fn sub(&mut self, o: &Self) {
        self.milli_cpu = self.milli_cpu.saturating_sub(o.milli_cpu);
        self.memory = self.memory.saturating_sub(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_sub(o.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.saturating_sub(o.allowed_pod_number);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_sub(*v);
        }
        self.scalar.retain(|_, v| *v != 0);
    }

    /// Element-wise maximum.
    pub fn max_with(&mut self, o: &Self) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.max(o.allowed_pod_number);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
    }

    /// Whether nothing at all is requested (`fits.go` short-cut).
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }
}

/// The effective requests of a pod and its non-zero cpu/memory for scoring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRequests {
    /// `PodRequests(pod)`.
    pub requests: Resource,
    /// `PodRequests` with `NonMissingContainerRequests` — cpu.
    pub non_zero_milli_cpu: i64,
    /// … and memory.
    pub non_zero_memory: i64,
}

fn container_requests(c: &Value) -> Resource {
    Resource::from_list(c.get("resources").and_then(|r| r.get("requests")))
}

fn non_zero(mut r: Resource, c: &Value) -> Resource {
    let reqs = c.get("resources").and_then(|r| r.get("requests"));
    if reqs.and_then(|r| r.get("cpu")).is_none() {
        r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
    }
    if reqs.and_then(|r| r.get("memory")).is_none() {
        r.memory = DEFAULT_MEMORY_REQUEST;
    }
    r
}

fn aggregate(spec: &Value, per_container: impl Fn(&Value) -> Resource) -> Resource {
    let mut reqs = Resource::default();
    for c in spec
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        reqs.add(&per_container(c));
    }
    let mut restartable = Resource::default();
    let mut init_max = Resource::default();
    for c in spec
        .get("initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let c_reqs = per_container(c);
        let effective = if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            reqs.add(&c_reqs);
            restartable.add(&c_reqs);
            restartable.clone()
        } else {
            let mut tmp = c_reqs;
            tmp.add(&restartable);
            tmp
        };
        init_max.max_with(&effective);
    }
    reqs.max_with(&init_max);
    reqs.add(&Resource::from_list(spec.get("overhead")));
    reqs
}

/// Computes the requests of a pod from its `spec`.
pub fn pod_requests(spec: &Value) -> PodRequests {
    let requests = aggregate(spec, container_requests);
    let nz = aggregate(spec, |c| non_zero(container_requests(c), c));
    PodRequests {
        requests,
        non_zero_milli_cpu: nz.milli_cpu,
        non_zero_memory: nz.memory,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn init_containers_max_rule_sidecars_and_overhead() {
        let spec = json!({
            "containers": [
                {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
                {"resources": {"requests": {"cpu": "500m"}}}
            ],
            "initContainers": [
                {"resources": {"requests": {"cpu": "2", "memory": "512Mi"}}},
                {"restartPolicy": "Always", "resources": {"requests": {"cpu": "300m"}}},
                {"resources": {"requests": {"cpu": "1800m"}}}
            ],
            "overhead": {"cpu": "100m"}
        });
        let r = pod_requests(&spec);
        // containers 1500m + sidecar 300m = 1800m; init: 2000m, 300m, 1800+300=2100m.
        assert_eq!(r.requests.milli_cpu, 2100 + 100);
        assert_eq!(r.requests.memory, 1 << 30);
        // non-zero: the second container's memory defaults to 200Mi, the sidecar's too.
        assert_eq!(r.non_zero_memory, (1 << 30) + 2 * DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn best_effort_pod_non_zero_defaults() {
        let r = pod_requests(&json!({"containers": [{}]}));
        assert!(r.requests.is_zero());
        assert_eq!(r.non_zero_milli_cpu, DEFAULT_MILLI_CPU_REQUEST);
        assert_eq!(r.non_zero_memory, DEFAULT_MEMORY_REQUEST);
    }
}
