//! Mirror pods: the API's read-only copies of static pods, as upstream's mirror
//! client. Each static pod has one, of the same name, annotated with the static
//! pod's hash and owned by the Node. One being deleted, or of an older hash, is
//! deleted and made again; one whose static pod is gone is deleted. The static pod
//! itself keeps running throughout: its worker reports status onto the mirror.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use crate::static_pods::{mirror_hash, HASH, MIRROR};
use crate::Kubelet;

/// Namespace and name.
pub type Key = (String, String);

pub fn key(pod: &Pod) -> Key {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

const RETRY: Duration = Duration::from_secs(10);

/// The mirror pods seen in the API and what is being done about them.
#[derive(Debug, Default)]
pub struct Mirrors {
    /// The mirror pods bound to this node, from the pod watch.
    pub seen: HashMap<Key, Pod>,
    /// No new attempt on a key before this time, after a failure.
    retry_at: HashMap<Key, Instant>,
    node_uid: Option<String>,
}

impl Mirrors {
    /// A watch event's mirror pod.
    pub fn applied(&mut self, pod: Pod) {
        self.seen.insert(key(&pod), pod);
    }

    /// A watch event's deletion: forgotten unless a newer pod has taken its name.
    pub fn deleted(&mut self, pod: &Pod) {
        let k = key(pod);
        if self.seen.get(&k).map(|p| &p.metadata.uid) == Some(&pod.metadata.uid) {
            self.seen.remove(&k);
        }
    }

    /// Makes the API's mirrors match `statics`; returns the UIDs of static pods whose
    /// mirror was just created (their status must be written again).
    pub async fn reconcile(&mut self, k: &Kubelet, statics: &HashMap<String, Pod>) -> Vec<String> {
        let now = Instant::now();
        self.retry_at.retain(|_, t| *t > now);
        let mut created = Vec::new();
        let mut wanted: HashMap<Key, (&String, &Pod)> = HashMap::new();
        for (uid, pod) in statics {
            wanted.insert(key(pod), (uid, pod));
        }
        // Orphans and stale copies first, so that their names are free.
        let stale: Vec<Pod> = self
            .seen
            .iter()
            .filter(|(k, m)| {
                m.metadata.deletion_timestamp.is_some()
                    || wanted
                        .get(*k)
                        .is_none_or(|(uid, _)| mirror_hash(m) != Some(uid.as_str()))
            })
            .map(|(_, m)| m.clone())
            .collect();
        for m in stale {
            let mk = key(&m);
            if self.retry_at.contains_key(&mk) {
                continue;
            }
            if let Err(e) = self.delete(k, &m).await {
                tracing::warn!(pod = %format!("{}/{}", mk.0, mk.1), error = %e, "deleting a mirror pod");
                self.retry_at.insert(mk, now + RETRY);
            }
        }
        for (mk, (uid, pod)) in wanted {
            if self.seen.contains_key(&mk) || self.retry_at.contains_key(&mk) {
                continue;
            }
            match self.create(k, pod, uid).await {
                Ok(m) => {
                    tracing::info!(pod = %format!("{}/{}", mk.0, mk.1), "created the mirror pod of a static pod");
                    self.seen.insert(mk, m);
                    created.push(uid.clone());
                }
                Err(e) => {
                    tracing::warn!(pod = %format!("{}/{}", mk.0, mk.1), error = %e, "creating a mirror pod");
                    self.retry_at.insert(mk, now + RETRY);
                }
            }
        }
        created
    }

    async fn delete(&mut self, k: &Kubelet, m: &Pod) -> Result<(), kube::Error> {
        let (ns, name) = key(m);
        let api: Api<Pod> = Api::namespaced(k.client.clone(), &ns);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: m.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e),
        }
        tracing::info!(pod = %format!("{ns}/{name}"), "deleted a mirror pod");
        self.deleted(m);
        Ok(())
    }

    async fn create(&mut self, k: &Kubelet, pod: &Pod, hash: &str) -> Result<Pod, kube::Error> {
        let node_uid = match &self.node_uid {
            Some(u) => u.clone(),
            None => {
                let nodes: Api<Node> = Api::all(k.client.clone());
                let uid = nodes
                    .get(&k.opts.node_name)
                    .await?
                    .metadata
                    .uid
                    .unwrap_or_default();
                self.node_uid = Some(uid.clone());
                uid
            }
        };
        let mirror = mirror_of(pod, hash, &k.opts.node_name, &node_uid);
        let (ns, name) = key(pod);
        let api: Api<Pod> = Api::namespaced(k.client.clone(), &ns);
        match api.create(&PostParams::default(), &mirror).await {
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Ours already (made before the watch showed it)? Else someone's pod.
                let existing = api.get(&name).await?;
                if mirror_hash(&existing) == Some(hash) {
                    Ok(existing)
                } else {
                    Err(kube::Error::Api(e))
                }
            }
            r => {
                if let Err(kube::Error::Api(e)) = &r {
                    if e.code == 404 || e.code == 422 {
                        // The node may have been made again: look its UID up anew.
                        self.node_uid = None;
                    }
                }
                r
            }
        }
    }
}

/// The mirror of a static pod: its metadata and spec, the mirror annotation, and the
/// Node as controlling owner.
pub fn mirror_of(pod: &Pod, hash: &str, node: &str, node_uid: &str) -> Pod {
    let mut annotations = pod.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(MIRROR.to_string(), hash.to_string());
    annotations
        .entry(HASH.to_string())
        .or_insert_with(|| hash.to_string());
    Pod {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            labels: pod.metadata.labels.clone(),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.to_string(),
                uid: node_uid.to_string(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        spec: pod.spec.clone(),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_mirror_copies_the_static_pod_and_names_its_hash_and_node() {
        let pod = crate::static_pods::decode(
            std::path::Path::new("/m/a.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {app: a}}\nspec: {containers: [{name: c, image: i}]}\n",
            "n1",
        )
        .unwrap()
        .remove(0);
        let hash = pod.metadata.uid.clone().unwrap();
        let m = mirror_of(&pod, &hash, "n1", "node-uid");
        assert!(m.metadata.uid.is_none() && m.status.is_none());
        assert_eq!(mirror_hash(&m), Some(hash.as_str()));
        assert_eq!(m.metadata.labels, pod.metadata.labels);
        assert_eq!(m.spec, pod.spec);
        let owner = &m.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Node", "n1"));
        assert_eq!(owner.controller, Some(true));
    }
}
