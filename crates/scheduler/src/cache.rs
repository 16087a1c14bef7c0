//! The scheduler cache and its snapshot (`pkg/scheduler/backend/cache/cache.go`,
//! `snapshot.go`, `node_tree.go`): nodes with their bound and assumed pods,
//! image states for ImageLocality, namespace labels for namespaceSelector, and
//! an incremental `update_snapshot` that copies only the nodes changed since
//! the last one (copy-on-write `Arc<NodeInfo>`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::labels::Labels;
use crate::node::{Node, NodeInfo};
use crate::pod::PodInfo;

/// What went wrong in a cache operation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    /// `assume_pod` for a pod the cache already has.
    #[error("pod {0} is in the cache, so can't be assumed")]
    AlreadyInCache(String),
    /// `assume_pod` for a pod without `spec.nodeName`.
    #[error("pod {0} has no node to be assumed on")]
    NoNodeName(String),
    /// `forget_pod` for a pod that is not assumed.
    #[error("pod {0} wasn't assumed so cannot be forgotten")]
    NotAssumed(String),
}

/// `imageState`: size and how many nodes have the image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageState {
    /// Size in bytes.
    pub size: i64,
    /// Number of nodes that have it.
    pub num_nodes: usize,
}

/// The state of one pod in the cache (`podState`).
#[derive(Debug, Clone)]
struct PodState {
    pod: Arc<PodInfo>,
    /// Assumed by the scheduler, the binding not yet seen by the informer.
    assumed: bool,
}

/// Nodes and pods as the scheduler believes them to be.
#[derive(Debug, Default)]
pub struct Cache {
    nodes: HashMap<String, Arc<NodeInfo>>,
    /// Node names in the order they were first added (zone interleaving base).
    order: Vec<String>,
    pods: HashMap<String, PodState>,
    images: Arc<HashMap<String, ImageState>>,
    namespaces: Arc<HashMap<String, Labels>>,
    generation: u64,
    /// generation → node name changed at that generation.
    changed: BTreeMap<u64, String>,
    /// Bumped when the node set changes (add/remove).
    list_generation: u64,
}

/// An immutable view of the cache at one point, used for one scheduling cycle.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub(crate) nodes: Vec<Arc<NodeInfo>>,
    index: HashMap<String, usize>,
    generation: u64,
    list_generation: u64,
    pub(crate) with_affinity: Vec<usize>,
    pub(crate) with_required_anti_affinity: Vec<usize>,
    pub(crate) images: Arc<HashMap<String, ImageState>>,
    pub(crate) namespaces: Arc<HashMap<String, Labels>>,
}

impl Snapshot {
    /// The nodes, in node-tree (zone-interleaved) order.
    pub fn nodes(&self) -> &[Arc<NodeInfo>] {
        &self.nodes
    }

    /// A node by name.
    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).and_then(|i| self.nodes.get(*i))
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Labels of a namespace, when known.
    pub fn namespace_labels(&self, ns: &str) -> Option<&Labels> {
        self.namespaces.get(ns)
    }

    /// Image state by normalized name.
    pub fn image(&self, name: &str) -> Option<&ImageState> {
        self.images.get(name)
    }

    fn recompute_affinity_lists(&mut self) {
        self.with_affinity.clear();
        self.with_required_anti_affinity.clear();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.pods_with_affinity > 0 {
                self.with_affinity.push(i);
            }
            if n.pods_with_required_anti_affinity > 0 {
                self.with_required_anti_affinity.push(i);
            }
        }
    }
}

fn zone_of(n: &Node) -> String {
    let region = n
        .labels
        .get("topology.kubernetes.io/region")
        .map_or("", String::as_str);
    let zone = n
        .labels
        .get("topology.kubernetes.io/zone")
        .map_or("", String::as_str);
    format!("{region}:\x00:{zone}")
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn touch(&mut self, name: &str) -> Option<&mut NodeInfo> {
        self.generation += 1;
        let gen = self.generation;
        let info = self.nodes.get_mut(name)?;
        self.changed.remove(&info.generation);
        self.changed.insert(gen, name.to_owned());
        let info = Arc::make_mut(info);
        info.generation = gen;
        Some(info)
    }

    fn node_entry(&mut self, name: &str) -> &mut NodeInfo {
        if !self.nodes.contains_key(name) {
            self.nodes
                .insert(name.to_owned(), Arc::new(NodeInfo::default()));
        }
        self.generation += 1;
        let gen = self.generation;
        let info = self.nodes.entry(name.to_owned()).or_default();
        self.changed.remove(&info.generation);
        self.changed.insert(gen, name.to_owned());
        let info = Arc::make_mut(info);
        info.generation = gen;
        info
    }

    fn images_remove(&mut self, node: &Node) {
        let images = Arc::make_mut(&mut self.images);
        for name in node.images.keys() {
            if let Some(s) = images.get_mut(name) {
                s.num_nodes = s.num_nodes.saturating_sub(1);
                if s.num_nodes == 0 {
                    images.remove(name);
                }
            }
        }
    }

    fn images_add(&mut self, node: &Node) {
        let images = Arc::make_mut(&mut self.images);
        for (name, size) in &node.images {
            let s = images.entry(name.clone()).or_default();
            s.size = *size;
            s.num_nodes += 1;
        }
    }

    /// Adds or updates a node (`AddNode`/`UpdateNode`).
    pub fn add_node(&mut self, node: Node) {
        let name = node.name.clone();
        let old = self.nodes.get(&name).and_then(|n| n.node.clone());
        if let Some(old) = &old {
            if old.images != node.images {
                self.images_remove(old);
                self.images_add(&node);
            }
        } else {
            self.images_add(&node);
            self.list_generation += 1;
            if !self.order.contains(&name) {
                self.order.push(name.clone());
            }
        }
        self.node_entry(&name).node = Some(Arc::new(node));
    }

    /// Same as [`Cache::add_node`].
    pub fn update_node(&mut self, node: Node) {
        self.add_node(node);
    }

    /// Removes a node (`RemoveNode`); its pods stay until they are removed.
    pub fn remove_node(&mut self, name: &str) {
        let Some(old) = self.nodes.get(name).and_then(|n| n.node.clone()) else {
            return;
        };
        self.images_remove(&old);
        self.list_generation += 1;
        let empty = match self.touch(name) {
            Some(info) => {
                info.node = None;
                info.pods.is_empty()
            }
            None => false,
        };
        if empty {
            self.drop_node(name);
        }
    }

    fn drop_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.remove(name) {
            self.changed.remove(&info.generation);
        }
        self.order.retain(|n| n != name);
    }

    /// Sets the labels of a namespace (for namespaceSelector in affinity terms).
    pub fn set_namespace_labels(&mut self, namespace: &str, labels: Labels) {
        Arc::make_mut(&mut self.namespaces).insert(namespace.to_owned(), labels);
        self.generation += 1;
    }

    /// Forgets a namespace.
    pub fn remove_namespace(&mut self, namespace: &str) {
        Arc::make_mut(&mut self.namespaces).remove(namespace);
        self.generation += 1;
    }

    fn add_pod_to_node(&mut self, pod: Arc<PodInfo>) {
        let node = pod.node_name.clone();
        self.node_entry(&node).add_pod(pod);
    }

    fn remove_pod_from_node(&mut self, pod: &PodInfo) {
        let empty = match self.touch(&pod.node_name) {
            Some(info) => {
                info.remove_pod(&pod.uid);
                info.node.is_none() && info.pods.is_empty()
            }
            None => false,
        };
        if empty {
            self.drop_node(&pod.node_name);
        }
    }

    /// `AssumePod`: the scheduler decided `pod.node_name`; count it there
    /// before the binding is confirmed.
    pub fn assume_pod(&mut self, pod: PodInfo) -> Result<(), CacheError> {
        if pod.node_name.is_empty() {
            return Err(CacheError::NoNodeName(pod.key()));
        }
        if self.pods.contains_key(&pod.uid) {
            return Err(CacheError::AlreadyInCache(pod.key()));
        }
        let pod = Arc::new(pod);
        self.pods.insert(
            pod.uid.clone(),
            PodState {
                pod: pod.clone(),
                assumed: true,
            },
        );
        self.add_pod_to_node(pod);
        Ok(())
    }

    /// `FinishBinding`: nothing to do since assumed pods no longer expire
    /// (upstream's `durationToExpireAssumedPod` is 0).
    pub fn finish_binding(&mut self, _uid: &str) {}

    /// `ForgetPod`: binding failed; undo the assumption.
    pub fn forget_pod(&mut self, uid: &str) -> Result<(), CacheError> {
        match self.pods.get(uid) {
            Some(s) if s.assumed => {
                let pod = s.pod.clone();
                self.pods.remove(uid);
                self.remove_pod_from_node(&pod);
                Ok(())
            }
            _ => Err(CacheError::NotAssumed(uid.to_owned())),
        }
    }

    /// Whether the pod is assumed and not yet confirmed.
    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|s| s.assumed)
    }

    /// `AddPod`: a pod with `spec.nodeName` seen by the informer; confirms an
    /// assumed pod (moving it if it landed elsewhere).
    pub fn add_pod(&mut self, pod: PodInfo) {
        if pod.node_name.is_empty() {
            return;
        }
        if let Some(old) = self.pods.get(&pod.uid).map(|s| s.pod.clone()) {
            self.remove_pod_from_node(&old);
        }
        let pod = Arc::new(pod);
        self.pods.insert(
            pod.uid.clone(),
            PodState {
                pod: pod.clone(),
                assumed: false,
            },
        );
        self.add_pod_to_node(pod);
    }

    /// `UpdatePod`.
    pub fn update_pod(&mut self, pod: PodInfo) {
        self.add_pod(pod);
    }

    /// `RemovePod`.
    pub fn remove_pod(&mut self, uid: &str) {
        if let Some(s) = self.pods.remove(uid) {
            self.remove_pod_from_node(&s.pod);
        }
    }

    /// Number of pods (bound and assumed).
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Number of nodes with a node object.
    pub fn node_count(&self) -> usize {
        self.nodes.values().filter(|n| n.node.is_some()).count()
    }

    /// `UpdateSnapshot`: brings `snapshot` up to date, copying only what changed.
    pub fn update_snapshot(&self, snapshot: &mut Snapshot) {
        snapshot.images = self.images.clone();
        snapshot.namespaces = self.namespaces.clone();
        if snapshot.list_generation != self.list_generation || snapshot.nodes.is_empty() {
            self.rebuild(snapshot);
            return;
        }
        let mut affinity_changed = false;
        for name in self
            .changed
            .range(snapshot.generation + 1..)
            .map(|(_, n)| n)
        {
            let (Some(info), Some(&i)) = (self.nodes.get(name), snapshot.index.get(name)) else {
                continue;
            };
            if let Some(old) = snapshot.nodes.get_mut(i) {
                affinity_changed |= (old.pods_with_affinity > 0) != (info.pods_with_affinity > 0)
                    || (old.pods_with_required_anti_affinity > 0)
                        != (info.pods_with_required_anti_affinity > 0);
                *old = info.clone();
            }
        }
        if affinity_changed {
            snapshot.recompute_affinity_lists();
        }
        snapshot.generation = self.generation;
    }

    /// A fresh snapshot.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        self.rebuild(&mut s);
        s
    }

    fn rebuild(&self, snapshot: &mut Snapshot) {
        // Node tree: zones interleaved, nodes of a zone in insertion order.
        let mut zones: Vec<(String, Vec<&Arc<NodeInfo>>)> = Vec::new();
        for name in &self.order {
            let Some(info) = self.nodes.get(name) else {
                continue;
            };
            let Some(node) = &info.node else { continue };
            let z = zone_of(node);
            match zones.iter_mut().find(|(k, _)| *k == z) {
                Some((_, v)) => v.push(info),
                None => zones.push((z, vec![info])),
            }
        }
        snapshot.nodes.clear();
        let longest = zones.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        for i in 0..longest {
            for (_, v) in &zones {
                if let Some(n) = v.get(i) {
                    snapshot.nodes.push((*n).clone());
                }
            }
        }
        snapshot.index = snapshot
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name().to_owned(), i))
            .collect();
        snapshot.images = self.images.clone();
        snapshot.namespaces = self.namespaces.clone();
        snapshot.generation = self.generation;
        snapshot.list_generation = self.list_generation;
        snapshot.recompute_affinity_lists();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str, zone: &str) -> Node {
        Node::from_value(
            &json!({"metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "images": [{"names": ["nginx:1.25"], "sizeBytes": 100}]}}),
        )
        .unwrap()
    }

    fn pod(name: &str, node: &str) -> PodInfo {
        PodInfo::from_value(&json!({"metadata": {"name": name, "uid": name},
            "spec": {"nodeName": node, "containers": [{"resources": {"requests": {"cpu": "1"}}}]}}))
        .unwrap()
    }

    #[test]
    fn assume_confirm_forget_and_incremental_snapshot() {
        let mut c = Cache::new();
        c.add_node(node("a1", "a"));
        c.add_node(node("a2", "a"));
        c.add_node(node("b1", "b"));
        let mut s = c.snapshot();
        let names: Vec<_> = s.nodes().iter().map(|n| n.name().to_owned()).collect();
        assert_eq!(names, ["a1", "b1", "a2"]);
        assert_eq!(s.image("nginx:1.25").map(|i| i.num_nodes), Some(3));

        c.assume_pod(pod("p", "a2")).unwrap();
        assert!(c.is_assumed("p"));
        assert_eq!(
            c.assume_pod(pod("p", "a2")),
            Err(CacheError::AlreadyInCache("default/p".into()))
        );
        c.update_snapshot(&mut s);
        assert_eq!(s.get("a2").unwrap().requested.milli_cpu, 1000);
        // The informer confirms it on another node than assumed.
        c.add_pod(pod("p", "b1"));
        assert!(!c.is_assumed("p"));
        c.update_snapshot(&mut s);
        assert_eq!(s.get("a2").unwrap().requested.milli_cpu, 0);
        assert_eq!(s.get("b1").unwrap().pods.len(), 1);
        assert_eq!(c.forget_pod("p"), Err(CacheError::NotAssumed("p".into())));

        c.assume_pod(pod("q", "a1")).unwrap();
        c.forget_pod("q").unwrap();
        c.update_snapshot(&mut s);
        assert!(s.get("a1").unwrap().pods.is_empty());

        c.remove_node("b1");
        c.update_snapshot(&mut s);
        assert_eq!(s.len(), 2);
        assert_eq!(s.image("nginx:1.25").map(|i| i.num_nodes), Some(2));
        c.remove_pod("p");
        assert_eq!(c.pod_count(), 0);
        assert_eq!(c.node_count(), 2);
    }
}
