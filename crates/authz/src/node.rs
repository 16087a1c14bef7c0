//! The Node authorizer (`plugin/pkg/auth/authorizer/node/node_authorizer.go`, v1.33
//! with AuthorizeNodeWithSelectors on, its default). Only users named
//! `system:node:<name>` in group `system:nodes` get an opinion:
//! - secrets, configmaps (get/list/watch of one named object), PVCs, PVs,
//!   resourceclaims, volumeattachments (get) and serviceaccount tokens (create) only
//!   when the graph relates the object to a pod bound to the node; PVC status
//!   update/patch likewise;
//! - its own Lease (kube-node-lease) and CSINode; ResourceSlices with an edge to it;
//! - its own Node object (create/update/patch any, read only its own), pods: get
//!   related ones, list/watch only with `spec.nodeName=<node>`, create/delete (mirror
//!   pods), status and eviction;
//! - anything else against the static `system:node` rules ([`crate::bootstrap::node_rules`]).
//!
//! Otherwise NoOpinion, with upstream's reason, so RBAC gets its say.

mod graph;

use parking_lot::RwLock;
use serde_json::Value;

use crate::rule::{rules_allow, PolicyRule};
use crate::{Attributes, Authorizer, Decision, NODES_GROUP, NODE_USER_PREFIX};
use graph::{Graph, VType};

/// The Node authorizer and its graph, fed with Pods, PersistentVolumes,
/// VolumeAttachments and ResourceSlices (upstream's graph populator has no other
/// feeds in v1.33).
#[derive(Debug)]
pub struct NodeAuthorizer {
    graph: RwLock<Graph>,
    node_rules: Vec<PolicyRule>,
}

impl Default for NodeAuthorizer {
    fn default() -> Self {
        Self::new()
    }
}

/// `nodeidentifier.NodeIdentity`: the node name, if the user is a node.
fn node_identity(a: &Attributes) -> Option<&str> {
    let name = a.user.name.strip_prefix(NODE_USER_PREFIX)?;
    a.user.in_group(NODES_GROUP).then_some(name)
}

fn deny(reason: impl Into<String>) -> Decision {
    Decision::no_opinion(reason)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

impl NodeAuthorizer {
    pub fn new() -> Self {
        NodeAuthorizer {
            graph: RwLock::new(Graph::default()),
            node_rules: crate::bootstrap::node_rules(),
        }
    }

    /// A pod was added or changed. Pods not yet bound to a node are ignored (binding
    /// is a later update).
    pub fn upsert_pod(&self, pod: &Value) {
        self.graph.write().add_pod(pod);
    }

    pub fn remove_pod(&self, namespace: &str, name: &str) {
        self.graph.write().delete_pod(namespace, name);
    }

    pub fn upsert_pv(&self, pv: &Value) {
        self.graph.write().add_pv(pv);
    }

    pub fn remove_pv(&self, name: &str) {
        self.graph.write().delete_pv(name);
    }

    /// A VolumeAttachment (its `spec.nodeName`).
    pub fn upsert_volume_attachment(&self, va: &Value) {
        let name = str_at(va, &["metadata", "name"]);
        let node = str_at(va, &["spec", "nodeName"]);
        self.graph
            .write()
            .add_node_object(VType::VolumeAttachment, name, node);
    }

    pub fn remove_volume_attachment(&self, name: &str) {
        self.graph
            .write()
            .delete_node_object(VType::VolumeAttachment, name);
    }

    /// A ResourceSlice (its `spec.nodeName`).
    pub fn upsert_resource_slice(&self, slice: &Value) {
        let name = str_at(slice, &["metadata", "name"]);
        let node = str_at(slice, &["spec", "nodeName"]);
        self.graph.write().add_node_object(VType::Slice, name, node);
    }

    pub fn remove_resource_slice(&self, name: &str) {
        self.graph.write().delete_node_object(VType::Slice, name);
    }

    /// Replaces the graph after a (re-)list.
    pub fn replace_all(&self, pods: &[Value], pvs: &[Value], volume_attachments: &[Value]) {
        let mut g = Graph::default();
        for p in pods {
            g.add_pod(p);
        }
        for p in pvs {
            g.add_pv(p);
        }
        for va in volume_attachments {
            g.add_node_object(
                VType::VolumeAttachment,
                str_at(va, &["metadata", "name"]),
                str_at(va, &["spec", "nodeName"]),
            );
        }
        *self.graph.write() = g;
    }

    /// Number of graph vertices (for metrics and tests).
    pub fn graph_size(&self) -> usize {
        self.graph.read().vertex_count()
    }

    fn authorize_related(&self, node: &str, t: VType, a: &Attributes) -> Decision {
        if a.name.is_empty() {
            return deny("No Object name found");
        }
        match self
            .graph
            .read()
            .has_path_from(node, t, &a.namespace, &a.name)
        {
            Ok(()) => Decision::allow(""),
            Err(msg) => {
                tracing::debug!(node, %msg, "NODE DENY");
                deny(format!(
                    "no relationship found between node '{node}' and this object"
                ))
            }
        }
    }

    fn authorize_get(&self, node: &str, t: VType, a: &Attributes) -> Decision {
        if a.verb != "get" {
            return deny("can only get individual resources of this type");
        }
        if !a.subresource.is_empty() {
            return deny("cannot get subresource");
        }
        self.authorize_related(node, t, a)
    }

    fn authorize_read_namespaced(&self, node: &str, t: VType, a: &Attributes) -> Decision {
        if !matches!(a.verb.as_str(), "get" | "list" | "watch") {
            return deny("can only read resources of this type");
        }
        if !a.subresource.is_empty() {
            return deny("cannot read subresource");
        }
        if a.namespace.is_empty() {
            return deny("can only read namespaced object of this type");
        }
        self.authorize_related(node, t, a)
    }

    fn authorize_status_update(&self, node: &str, t: VType, a: &Attributes) -> Decision {
        if !matches!(a.verb.as_str(), "update" | "patch") {
            return deny("can only get/update/patch this type");
        }
        if a.subresource != "status" {
            return deny("can only update status subresource");
        }
        self.authorize_related(node, t, a)
    }

    fn authorize_create_token(&self, node: &str, a: &Attributes) -> Decision {
        if a.verb != "create" || a.name.is_empty() {
            return deny("can only create tokens for individual service accounts");
        }
        if a.subresource != "token" {
            return deny("can only create token subresource of serviceaccount");
        }
        self.authorize_related(node, VType::ServiceAccount, a)
    }

    fn authorize_lease(node: &str, a: &Attributes) -> Decision {
        if !matches!(
            a.verb.as_str(),
            "get" | "create" | "update" | "patch" | "delete"
        ) {
            return deny("can only get, create, update, patch, or delete a node lease");
        }
        if a.namespace != "kube-node-lease" {
            return deny("can only access leases in the \"kube-node-lease\" system namespace");
        }
        if a.verb != "create" && a.name != node {
            return deny("can only access node lease with the same name as the requesting node");
        }
        Decision::allow("")
    }

    fn authorize_csi_node(node: &str, a: &Attributes) -> Decision {
        if !matches!(
            a.verb.as_str(),
            "get" | "create" | "update" | "patch" | "delete"
        ) {
            return deny("can only get, create, update, patch, or delete a CSINode");
        }
        if !a.subresource.is_empty() {
            return deny("cannot authorize CSINode subresources");
        }
        if a.verb != "create" && a.name != node {
            return deny("can only access CSINode with the same name as the requesting node");
        }
        Decision::allow("")
    }

    fn authorize_resource_slice(&self, node: &str, a: &Attributes) -> Decision {
        if !a.subresource.is_empty() {
            return deny("cannot authorize ResourceSlice subresources");
        }
        match a.verb.as_str() {
            "create" => Decision::allow(""),
            "get" | "update" | "patch" | "delete" => self.authorize_related(node, VType::Slice, a),
            "watch" | "list" | "deletecollection" => {
                if a.field_equals().any(|(k, v)| k == "nodeName" && v == node) {
                    Decision::allow("")
                } else {
                    deny("can only list/watch/deletecollection resourceslices with nodeName field selector")
                }
            }
            _ => deny("only the following verbs are allowed for a ResourceSlice: get, watch, list, create, update, patch, delete, deletecollection"),
        }
    }

    fn authorize_node(node: &str, a: &Attributes) -> Decision {
        match (a.subresource.as_str(), a.verb.as_str()) {
            ("", "create" | "update" | "patch") => Decision::allow(""),
            ("", "get" | "list" | "watch") => {
                if a.name == node {
                    Decision::allow("")
                } else if a.name.is_empty() {
                    deny(format!(
                        "node '{node}' cannot read all nodes, only its own Node object"
                    ))
                } else {
                    deny(format!(
                        "node '{node}' cannot read '{}', only its own Node object",
                        a.name
                    ))
                }
            }
            ("status", "update" | "patch") => Decision::allow(""),
            _ => deny(""),
        }
    }

    fn authorize_pod(&self, node: &str, a: &Attributes) -> Decision {
        match (a.subresource.as_str(), a.verb.as_str()) {
            ("", "get") => self.authorize_get(node, VType::Pod, a),
            ("", "list" | "watch") => {
                if a.field_equals()
                    .any(|(k, v)| k == "spec.nodeName" && v == node)
                {
                    return Decision::allow("");
                }
                if !a.name.is_empty() {
                    return self.authorize_related(node, VType::Pod, a);
                }
                deny("can only list/watch pods with spec.nodeName field selector")
            }
            ("", "create" | "delete") => Decision::allow(""),
            ("status", "update" | "patch") => Decision::allow(""),
            ("eviction", "create") => Decision::allow(""),
            _ => deny(""),
        }
    }
}

impl Authorizer for NodeAuthorizer {
    fn authorize(&self, a: &Attributes) -> Decision {
        let Some(node) = node_identity(a) else {
            return Decision::no_opinion("");
        };
        if node.is_empty() {
            return deny(format!(
                "unknown node for user {}",
                crate::go_quote(&a.user.name)
            ));
        }
        if a.resource_request {
            match (a.api_group.as_str(), a.resource.as_str()) {
                ("", "secrets") => return self.authorize_read_namespaced(node, VType::Secret, a),
                ("", "configmaps") => {
                    return self.authorize_read_namespaced(node, VType::ConfigMap, a)
                }
                ("", "persistentvolumeclaims") => {
                    return if a.subresource == "status" {
                        self.authorize_status_update(node, VType::Pvc, a)
                    } else {
                        self.authorize_get(node, VType::Pvc, a)
                    }
                }
                ("", "persistentvolumes") => return self.authorize_get(node, VType::Pv, a),
                ("resource.k8s.io", "resourceclaims") => {
                    return self.authorize_get(node, VType::ResourceClaim, a)
                }
                ("storage.k8s.io", "volumeattachments") => {
                    return self.authorize_get(node, VType::VolumeAttachment, a)
                }
                ("", "serviceaccounts") => return self.authorize_create_token(node, a),
                ("coordination.k8s.io", "leases") => return Self::authorize_lease(node, a),
                ("storage.k8s.io", "csinodes") => return Self::authorize_csi_node(node, a),
                ("resource.k8s.io", "resourceslices") => {
                    return self.authorize_resource_slice(node, a)
                }
                ("", "nodes") => return Self::authorize_node(node, a),
                ("", "pods") => return self.authorize_pod(node, a),
                _ => {}
            }
        }
        if rules_allow(a, &self.node_rules) {
            Decision::allow("")
        } else {
            Decision::no_opinion("")
        }
    }
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
