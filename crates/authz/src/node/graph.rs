//! The Node authorizer's graph (`plugin/pkg/auth/authorizer/node/graph.go` and
//! `graph_populator.go`): vertices for objects, edges pointing towards the node that
//! may read them. Edges into a pod and into a node carry that node ("destination
//! edges") so a walk for one node never crosses another node's pods.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// Vertex kinds, named as upstream's `vertexTypes` (they appear in messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum VType {
    ConfigMap,
    Slice,
    Node,
    Pod,
    Pvc,
    Pv,
    ResourceClaim,
    Secret,
    VolumeAttachment,
    ServiceAccount,
}

impl VType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            VType::ConfigMap => "configmap",
            VType::Slice => "slice",
            VType::Node => "node",
            VType::Pod => "pod",
            VType::Pvc => "pvc",
            VType::Pv => "pv",
            VType::ResourceClaim => "resourceclaim",
            VType::Secret => "secret",
            VType::VolumeAttachment => "volumeattachment",
            VType::ServiceAccount => "serviceAccount",
        }
    }
}

type Key = (VType, String, String);

#[derive(Debug, Default)]
struct Vertex {
    key: Option<Key>,
    /// to → destination node of the edge (None for plain edges).
    out: HashMap<u32, Option<u32>>,
    inbound: HashSet<u32>,
}

impl Vertex {
    fn degree(&self) -> usize {
        self.out.len() + self.inbound.len()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Graph {
    ids: HashMap<Key, u32>,
    vertices: HashMap<u32, Vertex>,
    next_id: u32,
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

fn arr<'a>(v: &'a Value, path: &[&str]) -> impl Iterator<Item = &'a Value> {
    let mut cur = Some(v);
    for p in path {
        cur = cur.and_then(|c| c.get(p));
    }
    cur.and_then(Value::as_array).into_iter().flatten()
}

/// Secrets a pod references (upstream's `podutil.VisitPodSecretNames`).
fn pod_secret_names(pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for ips in arr(pod, &["spec", "imagePullSecrets"]) {
        out.push(s(ips, &["name"]).to_owned());
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in arr(pod, &["spec", list]) {
            for e in arr(c, &["envFrom"]) {
                out.push(s(e, &["secretRef", "name"]).to_owned());
            }
            for e in arr(c, &["env"]) {
                out.push(s(e, &["valueFrom", "secretKeyRef", "name"]).to_owned());
            }
        }
    }
    for v in arr(pod, &["spec", "volumes"]) {
        out.push(s(v, &["azureFile", "secretName"]).to_owned());
        out.push(s(v, &["secret", "secretName"]).to_owned());
        for src in [
            "cephfs",
            "cinder",
            "flexVolume",
            "rbd",
            "scaleIO",
            "iscsi",
            "storageos",
        ] {
            out.push(s(v, &[src, "secretRef", "name"]).to_owned());
        }
        out.push(s(v, &["csi", "nodePublishSecretRef", "name"]).to_owned());
        for p in arr(v, &["projected", "sources"]) {
            out.push(s(p, &["secret", "name"]).to_owned());
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

/// ConfigMaps a pod references (`podutil.VisitPodConfigmapNames`).
fn pod_configmap_names(pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in arr(pod, &["spec", list]) {
            for e in arr(c, &["envFrom"]) {
                out.push(s(e, &["configMapRef", "name"]).to_owned());
            }
            for e in arr(c, &["env"]) {
                out.push(s(e, &["valueFrom", "configMapKeyRef", "name"]).to_owned());
            }
        }
    }
    for v in arr(pod, &["spec", "volumes"]) {
        out.push(s(v, &["configMap", "name"]).to_owned());
        for p in arr(v, &["projected", "sources"]) {
            out.push(s(p, &["configMap", "name"]).to_owned());
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

impl Graph {
    fn vertex_id(&self, t: VType, ns: &str, name: &str) -> Option<u32> {
        self.ids.get(&(t, ns.to_owned(), name.to_owned())).copied()
    }

    fn get_or_create(&mut self, t: VType, ns: &str, name: &str) -> u32 {
        let key = (t, ns.to_owned(), name.to_owned());
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.ids.insert(key.clone(), id);
        self.vertices.insert(
            id,
            Vertex {
                key: Some(key),
                ..Vertex::default()
            },
        );
        id
    }

    fn add_edge(&mut self, from: u32, to: u32, destination: Option<u32>) {
        if let Some(v) = self.vertices.get_mut(&from) {
            v.out.insert(to, destination);
        }
        if let Some(v) = self.vertices.get_mut(&to) {
            v.inbound.insert(from);
        }
    }

    fn remove_vertex(&mut self, id: u32) {
        if let Some(v) = self.vertices.remove(&id) {
            if let Some(key) = v.key {
                self.ids.remove(&key);
            }
        }
    }

    /// Removes a vertex, its edges, and neighbours left without edges.
    fn delete_vertex(&mut self, t: VType, ns: &str, name: &str) {
        let Some(id) = self.vertex_id(t, ns, name) else {
            return;
        };
        let Some(v) = self.vertices.get(&id) else {
            return;
        };
        let outs: Vec<u32> = v.out.keys().copied().collect();
        let ins: Vec<u32> = v.inbound.iter().copied().collect();
        self.remove_vertex(id);
        for n in outs {
            if let Some(nv) = self.vertices.get_mut(&n) {
                nv.inbound.remove(&id);
                if nv.degree() == 0 {
                    self.remove_vertex(n);
                }
            }
        }
        for n in ins {
            if let Some(nv) = self.vertices.get_mut(&n) {
                nv.out.remove(&id);
                if nv.degree() == 0 {
                    self.remove_vertex(n);
                }
            }
        }
    }

    /// `AddPod`: pod → node, and (unless a mirror pod) service account, secrets,
    /// configmaps, PVCs and resource claims → pod, each marked with the node.
    pub(crate) fn add_pod(&mut self, pod: &Value) {
        let ns = s(pod, &["metadata", "namespace"]);
        let name = s(pod, &["metadata", "name"]);
        let node_name = s(pod, &["spec", "nodeName"]);
        if name.is_empty() || node_name.is_empty() {
            return;
        }
        self.delete_vertex(VType::Pod, ns, name);
        let pod_v = self.get_or_create(VType::Pod, ns, name);
        let node_v = self.get_or_create(VType::Node, "", node_name);
        self.add_edge(pod_v, node_v, Some(node_v));

        let mirror = pod
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get("kubernetes.io/config.mirror"))
            .is_some();
        if mirror {
            return;
        }
        let mut sources: Vec<(VType, String)> = Vec::new();
        let sa = s(pod, &["spec", "serviceAccountName"]);
        if !sa.is_empty() {
            sources.push((VType::ServiceAccount, sa.to_owned()));
        }
        sources.extend(
            pod_secret_names(pod)
                .into_iter()
                .map(|n| (VType::Secret, n)),
        );
        sources.extend(
            pod_configmap_names(pod)
                .into_iter()
                .map(|n| (VType::ConfigMap, n)),
        );
        for v in arr(pod, &["spec", "volumes"]) {
            let claim = s(v, &["persistentVolumeClaim", "claimName"]);
            if !claim.is_empty() {
                sources.push((VType::Pvc, claim.to_owned()));
            } else if v.get("ephemeral").is_some_and(|e| !e.is_null()) {
                sources.push((VType::Pvc, format!("{name}-{}", s(v, &["name"]))));
            }
        }
        for c in arr(pod, &["spec", "resourceClaims"]) {
            let direct = s(c, &["resourceClaimName"]);
            if !direct.is_empty() {
                sources.push((VType::ResourceClaim, direct.to_owned()));
                continue;
            }
            let claim_name = s(c, &["name"]);
            let generated = arr(pod, &["status", "resourceClaimStatuses"])
                .find(|st| s(st, &["name"]) == claim_name)
                .map(|st| s(st, &["resourceClaimName"]))
                .unwrap_or("");
            if !generated.is_empty() {
                sources.push((VType::ResourceClaim, generated.to_owned()));
            }
        }
        for (t, n) in sources {
            let v = self.get_or_create(t, ns, &n);
            self.add_edge(v, pod_v, Some(node_v));
        }
    }

    pub(crate) fn delete_pod(&mut self, ns: &str, name: &str) {
        self.delete_vertex(VType::Pod, ns, name);
    }

    /// `AddPV`: pv → its bound PVC, and kubelet-visible secrets → pv.
    pub(crate) fn add_pv(&mut self, pv: &Value) {
        let name = s(pv, &["metadata", "name"]);
        if name.is_empty() {
            return;
        }
        self.delete_vertex(VType::Pv, "", name);
        let claim_ns = s(pv, &["spec", "claimRef", "namespace"]);
        let claim_name = s(pv, &["spec", "claimRef", "name"]);
        if pv
            .get("spec")
            .and_then(|sp| sp.get("claimRef"))
            .is_none_or(Value::is_null)
        {
            return;
        }
        let pv_v = self.get_or_create(VType::Pv, "", name);
        let pvc_v = self.get_or_create(VType::Pvc, claim_ns, claim_name);
        self.add_edge(pv_v, pvc_v, None);
        let mut secrets: Vec<(String, String)> = Vec::new();
        let spec = pv.get("spec").unwrap_or(&Value::Null);
        let az = s(spec, &["azureFile", "secretName"]);
        if !az.is_empty() {
            let ns = s(spec, &["azureFile", "secretNamespace"]);
            secrets.push((ns.to_owned(), az.to_owned()));
        }
        let refs = [
            ["cephfs", "secretRef"],
            ["cinder", "secretRef"],
            ["flexVolume", "secretRef"],
            ["rbd", "secretRef"],
            ["scaleIO", "secretRef"],
            ["iscsi", "secretRef"],
            ["storageos", "secretRef"],
            ["csi", "nodeStageSecretRef"],
            ["csi", "nodePublishSecretRef"],
            ["csi", "nodeExpandSecretRef"],
        ];
        for path in refs {
            let n = s(spec, &[path[0], path[1], "name"]);
            if !n.is_empty() {
                let ns = s(spec, &[path[0], path[1], "namespace"]);
                secrets.push((ns.to_owned(), n.to_owned()));
            }
        }
        for (ns, secret) in secrets {
            let ns = if ns.is_empty() { claim_ns } else { ns.as_str() };
            let v = self.get_or_create(VType::Secret, ns, &secret);
            self.add_edge(v, pv_v, None);
        }
    }

    pub(crate) fn delete_pv(&mut self, name: &str) {
        self.delete_vertex(VType::Pv, "", name);
    }

    /// `AddVolumeAttachment` / `AddResourceSlice`: object → node.
    pub(crate) fn add_node_object(&mut self, t: VType, name: &str, node_name: &str) {
        self.delete_vertex(t, "", name);
        if name.is_empty() || node_name.is_empty() {
            return;
        }
        let v = self.get_or_create(t, "", name);
        let node_v = self.get_or_create(VType::Node, "", node_name);
        self.add_edge(v, node_v, Some(node_v));
    }

    pub(crate) fn delete_node_object(&mut self, t: VType, name: &str) {
        self.delete_vertex(t, "", name);
    }

    /// `hasPathFrom`: is there a path from the object to the node that does not cross
    /// another node's destination edges? `Err` carries upstream's log message.
    pub(crate) fn has_path_from(
        &self,
        node_name: &str,
        t: VType,
        ns: &str,
        name: &str,
    ) -> Result<(), String> {
        let Some(node_v) = self.vertex_id(VType::Node, "", node_name) else {
            return Err(format!(
                "unknown node '{node_name}' cannot get {} {ns}/{name}",
                t.name()
            ));
        };
        let Some(start) = self.vertex_id(t, ns, name) else {
            return Err(format!(
                "node '{node_name}' cannot get unknown {} {ns}/{name}",
                t.name()
            ));
        };
        let mut seen: HashSet<u32> = HashSet::new();
        let mut stack = vec![start];
        seen.insert(start);
        while let Some(v) = stack.pop() {
            if v == node_v {
                return Ok(());
            }
            let Some(vertex) = self.vertices.get(&v) else {
                continue;
            };
            for (to, dest) in &vertex.out {
                if dest.is_some_and(|d| d != node_v) {
                    continue;
                }
                if dest.is_some() || *to == node_v {
                    return Ok(());
                }
                if seen.insert(*to) {
                    stack.push(*to);
                }
            }
        }
        Err(format!(
            "node '{node_name}' cannot get {} {ns}/{name}, no relationship to this object was found in the node authorizer graph",
            t.name()
        ))
    }

    pub(crate) fn vertex_count(&self) -> usize {
        self.vertices.len()
    }
}
