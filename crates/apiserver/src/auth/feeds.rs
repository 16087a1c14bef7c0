//! The authorizers' (and the admission webhooks') view of the cluster, kept current like
//! upstream's informers: each fed resource is listed once before the server answers
//! requests, then watched; a broken or compacted watch re-lists and forgets what
//! disappeared meanwhile.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferrokube_api::meta;
use ferrokube_api::resources::{self, ResourceInfo};
use ferrokube_authz::{NodeAuthorizer, Rbac, RbacKind};
use ferrokube_storage::{EventKind, WatchMessage, WatchRequest};
use serde_json::Value;
use tokio::sync::watch;

use crate::errors::ApiResult;
use crate::registry::list::ListOptions;
use crate::registry::store::decode;
use crate::registry::{Registry, Target};

/// Receives one resource's objects.
pub trait Sink: Send + Sync {
    fn upsert(&self, obj: &Value);
    fn remove(&self, obj: &Value);
}

struct RbacSink(Arc<Rbac>, RbacKind);

impl Sink for RbacSink {
    fn upsert(&self, obj: &Value) {
        self.0.upsert(self.1, obj);
    }
    fn remove(&self, obj: &Value) {
        self.0.remove(
            self.1,
            meta::namespace(obj).unwrap_or(""),
            meta::name(obj).unwrap_or(""),
        );
    }
}

#[derive(Clone, Copy)]
enum NodeFeed {
    Pods,
    PersistentVolumes,
    VolumeAttachments,
}

struct NodeSink(Arc<NodeAuthorizer>, NodeFeed);

impl Sink for NodeSink {
    fn upsert(&self, obj: &Value) {
        match self.1 {
            NodeFeed::Pods => self.0.upsert_pod(obj),
            NodeFeed::PersistentVolumes => self.0.upsert_pv(obj),
            NodeFeed::VolumeAttachments => self.0.upsert_volume_attachment(obj),
        }
    }
    fn remove(&self, obj: &Value) {
        let name = meta::name(obj).unwrap_or("");
        match self.1 {
            NodeFeed::Pods => self.0.remove_pod(meta::namespace(obj).unwrap_or(""), name),
            NodeFeed::PersistentVolumes => self.0.remove_pv(name),
            NodeFeed::VolumeAttachments => self.0.remove_volume_attachment(name),
        }
    }
}

/// Webhook configurations for the admission webhooks.
struct WebhookSink(Arc<crate::admission::webhook::Webhooks>, bool);

impl Sink for WebhookSink {
    fn upsert(&self, obj: &Value) {
        self.0.upsert(obj, self.1);
    }
    fn remove(&self, obj: &Value) {
        self.0.remove(meta::name(obj).unwrap_or(""), self.1);
    }
}

/// ValidatingAdmissionPolicies (or their bindings) for the policy plugin.
struct PolicySink(Arc<crate::admission::policy::Policies>, bool);

impl Sink for PolicySink {
    fn upsert(&self, obj: &Value) {
        if self.1 {
            self.0.upsert_binding(obj);
        } else {
            self.0.upsert_policy(obj);
        }
    }
    fn remove(&self, obj: &Value) {
        let name = meta::name(obj).unwrap_or("");
        if self.1 {
            self.0.remove_binding(name);
        } else {
            self.0.remove_policy(name);
        }
    }
}

/// APIServices for the aggregator.
struct ApiServiceSink(Arc<crate::aggregator::Aggregator>);

impl Sink for ApiServiceSink {
    fn upsert(&self, obj: &Value) {
        self.0.upsert(obj);
    }
    fn remove(&self, obj: &Value) {
        self.0.remove(meta::name(obj).unwrap_or(""));
    }
}

fn key_of(obj: &Value) -> String {
    format!(
        "{}/{}",
        meta::namespace(obj).unwrap_or(""),
        meta::name(obj).unwrap_or("")
    )
}

/// One fed resource: its known objects (to forget what a re-list no longer has).
struct Feed {
    info: &'static ResourceInfo,
    sink: Box<dyn Sink>,
    known: BTreeMap<String, Value>,
}

impl Feed {
    /// Lists everything; returns the list's revision.
    async fn relist(&mut self, registry: &Registry) -> ApiResult<i64> {
        let target = Target::builtin(self.info, None);
        let (items, rv, _, _) = registry.list(&target, &ListOptions::default()).await?;
        let mut seen = BTreeMap::new();
        for obj in items {
            self.sink.upsert(&obj);
            seen.insert(key_of(&obj), obj);
        }
        for (key, gone) in &self.known {
            if !seen.contains_key(key) {
                self.sink.remove(gone);
            }
        }
        self.known = seen;
        Ok(rv)
    }

    fn apply(&mut self, e: &ferrokube_storage::Event) {
        match e.kind {
            EventKind::Deleted => {
                if let Some(prev) = e.prev_kv.as_ref().and_then(|kv| decode(kv).ok()) {
                    self.sink.remove(&prev);
                    self.known.remove(&key_of(&prev));
                }
            }
            EventKind::Created | EventKind::Modified => {
                if let Ok(obj) = decode(&e.kv) {
                    self.sink.upsert(&obj);
                    self.known.insert(key_of(&obj), obj);
                }
            }
        }
    }

    async fn run(mut self, registry: Registry, mut rv: i64, mut shutdown: watch::Receiver<bool>) {
        loop {
            let req = WatchRequest::prefix(self.info.storage_prefix()).from_revision(rv + 1);
            match registry.storage.watch(req).await {
                Ok(mut stream) => loop {
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        msg = stream.recv() => match msg {
                            Some(Ok(WatchMessage::Event(e))) => {
                                rv = rv.max(e.kv.mod_revision);
                                self.apply(&e);
                            }
                            Some(Ok(WatchMessage::Progress { .. })) => {}
                            Some(Err(_)) | None => break,
                        }
                    }
                },
                Err(e) => {
                    tracing::warn!(resource = self.info.resource, error = %e, "authorization feed: watch failed")
                }
            }
            loop {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                match self.relist(&registry).await {
                    Ok(new_rv) => {
                        rv = new_rv;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(resource = self.info.resource, error = ?e, "authorization feed: re-list failed")
                    }
                }
            }
        }
    }
}

/// Lists what the enabled authorizers, admission webhooks and the aggregator need
/// (before serving), then keeps it current until `shutdown`.
pub async fn start(
    registry: &Registry,
    security: &super::Security,
    aggregator: &Arc<crate::aggregator::Aggregator>,
    apf: &Arc<crate::flowcontrol::Apf>,
    shutdown: watch::Receiver<bool>,
) -> ApiResult<()> {
    let mut feeds: Vec<Feed> = Vec::new();
    let mut add = |group: &str, version: &str, resource: &str, sink: Box<dyn Sink>| {
        if let Some(info) = resources::lookup(group, version, resource) {
            feeds.push(Feed {
                info,
                sink,
                known: BTreeMap::new(),
            });
        }
    };
    let rbac_group = "rbac.authorization.k8s.io";
    if security.rbac_enabled {
        for (resource, kind) in [
            ("roles", RbacKind::Role),
            ("clusterroles", RbacKind::ClusterRole),
            ("rolebindings", RbacKind::RoleBinding),
            ("clusterrolebindings", RbacKind::ClusterRoleBinding),
        ] {
            add(
                rbac_group,
                "v1",
                resource,
                Box::new(RbacSink(security.rbac.clone(), kind)),
            );
        }
    }
    if security.node_enabled {
        let node = &security.node;
        add(
            "",
            "v1",
            "pods",
            Box::new(NodeSink(node.clone(), NodeFeed::Pods)),
        );
        add(
            "",
            "v1",
            "persistentvolumes",
            Box::new(NodeSink(node.clone(), NodeFeed::PersistentVolumes)),
        );
        add(
            "storage.k8s.io",
            "v1",
            "volumeattachments",
            Box::new(NodeSink(node.clone(), NodeFeed::VolumeAttachments)),
        );
    }
    let admission = &security.admission;
    for (resource, mutating, on) in [
        (
            "mutatingwebhookconfigurations",
            true,
            admission.mutating_webhook,
        ),
        (
            "validatingwebhookconfigurations",
            false,
            admission.validating_webhook,
        ),
    ] {
        if on {
            add(
                "admissionregistration.k8s.io",
                "v1",
                resource,
                Box::new(WebhookSink(admission.webhooks.clone(), mutating)),
            );
        }
    }
    if admission.validating_admission_policy {
        for (resource, binding) in [
            ("validatingadmissionpolicies", false),
            ("validatingadmissionpolicybindings", true),
        ] {
            add(
                "admissionregistration.k8s.io",
                "v1",
                resource,
                Box::new(PolicySink(admission.policies.clone(), binding)),
            );
        }
    }
    for (resource, levels) in [
        ("prioritylevelconfigurations", true),
        ("flowschemas", false),
    ] {
        add(
            ferrokube_api::flowcontrol::GROUP,
            "v1",
            resource,
            Box::new(crate::flowcontrol::ApfSink(apf.clone(), levels)),
        );
    }
    add(
        "apiregistration.k8s.io",
        "v1",
        "apiservices",
        Box::new(ApiServiceSink(aggregator.clone())),
    );
    for mut feed in feeds {
        let rv = feed.relist(registry).await?;
        tokio::spawn(feed.run(registry.clone(), rv, shutdown.clone()));
    }
    Ok(())
}
