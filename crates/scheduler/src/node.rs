//! `framework.NodeInfo` (`pkg/scheduler/framework/types.go`): a node with its
//! pods and the aggregates the plugins read — requested and non-zero requested
//! resources, used host ports, pods with (anti-)affinity — kept incrementally
//! as pods are added and removed, so no plugin rescans the pods of a node.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::labels::{str_of, string_map, Labels, Taint};
use crate::pod::{normalize_image, HostPort, PodInfo};
use crate::resource::Resource;

/// Why a node object could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NodeParseError {
    /// `metadata.name` is missing.
    #[error("node has no metadata.name")]
    MissingName,
}

/// The parsed node object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: Labels,
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
    /// `status.allocatable`.
    pub allocatable: Resource,
    /// `status.images`: normalized name → size in bytes.
    pub images: HashMap<String, i64>,
}

impl Node {
    /// Parses a v1 Node as served by the API.
    pub fn from_value(node: &Value) -> Result<Self, NodeParseError> {
        let meta = node.get("metadata").cloned().unwrap_or(Value::Null);
        let name = str_of(&meta, "name").to_owned();
        if name.is_empty() {
            return Err(NodeParseError::MissingName);
        }
        let spec = node.get("spec");
        let status = node.get("status");
        let mut images = HashMap::new();
        for img in status
            .and_then(|s| s.get("images"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let size = img.get("sizeBytes").and_then(Value::as_i64).unwrap_or(0);
            for n in img
                .get("names")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(n) = n.as_str() {
                    images.insert(normalize_image(n), size);
                }
            }
        }
        Ok(Self {
            name,
            labels: string_map(meta.get("labels")),
            unschedulable: spec
                .and_then(|s| s.get("unschedulable"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            taints: spec
                .and_then(|s| s.get("taints"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Taint::parse)
                .collect(),
            allocatable: Resource::from_list(status.and_then(|s| s.get("allocatable"))),
            images,
        })
    }
}

/// A node and its pods, with incremental aggregates.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    /// The node; `None` while only pods bound to it are known (or after the
    /// node was deleted before its pods).
    pub node: Option<Arc<Node>>,
    /// Pods assigned (or assumed) to the node.
    pub pods: Vec<Arc<PodInfo>>,
    /// How many pods have pod affinity or anti-affinity terms.
    pub pods_with_affinity: usize,
    /// How many pods have required anti-affinity terms.
    pub pods_with_required_anti_affinity: usize,
    /// Sum of the pods' requests.
    pub requested: Resource,
    /// Sum of the pods' non-zero cpu requests (scoring).
    pub non_zero_milli_cpu: i64,
    /// Sum of the pods' non-zero memory requests (scoring).
    pub non_zero_memory: i64,
    /// Host ports in use.
    pub used_ports: Vec<HostPort>,
    /// Bumped by the cache on every change.
    pub generation: u64,
}

impl NodeInfo {
    /// The node's name, empty when the node object is not known.
    pub fn name(&self) -> &str {
        self.node.as_ref().map_or("", |n| n.name.as_str())
    }

    /// Adds a pod and its aggregates.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests.requests);
        self.non_zero_milli_cpu += pod.requests.non_zero_milli_cpu;
        self.non_zero_memory += pod.requests.non_zero_memory;
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if pod.has_required_anti_affinity() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.push(pod);
    }

    /// Removes a pod by uid; returns whether it was there.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.uid == uid) else {
            return false;
        };
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests.requests);
        self.non_zero_milli_cpu -= pod.requests.non_zero_milli_cpu;
        self.non_zero_memory -= pod.requests.non_zero_memory;
        for hp in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        if pod.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if pod.has_required_anti_affinity() {
            self.pods_with_required_anti_affinity -= 1;
        }
        true
    }
}
