//! ControllerRevision history shared by the DaemonSet and StatefulSet controllers
//! (upstream `pkg/controller/history` and the revision helpers of
//! `pkg/controller/daemon` and `pkg/controller/statefulset`): revisions hold a
//! `{"spec":{"template":{…,"$patch":"replace"}}}` strategic-merge patch that
//! `kubectl rollout undo` applies back onto the owner; they are named
//! `<owner>-<hash>`, labelled `controller-revision-hash`, numbered by `revision`,
//! adopted when orphaned, and pruned to `revisionHistoryLimit`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{is_conflict, is_not_found, Error, JsonResultExt, ResultExt};
use crate::informer::Store;
use crate::podutil::{self, controller_ref};
use crate::selector;

/// `apps.ControllerRevisionHashLabelKey` (also `DefaultDaemonSetUniqueLabelKey`).
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// Revision names keep at most this much of the owner's name (upstream
/// `ControllerRevisionName`).
const MAX_PREFIX: usize = 223;

/// apimachinery `rand.SafeEncodeString`: no vowels, no confusable characters.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// Go's `hash/fnv` `New32` (FNV-1, 32 bits).
fn fnv1_32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        h.wrapping_mul(0x0100_0193) ^ u32::from(*b)
    })
}

/// Go's `hash/fnv` `New32a` (FNV-1a, 32 bits), continuing from `h`.
fn fnv1a_32(mut h: u32, bytes: &[u8]) -> u32 {
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// `history.HashControllerRevision`: FNV-1 over the revision's data and the
/// collision count in decimal, in the safe alphabet.
pub fn hash_revision(data: &Value, probe: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(data).unwrap_or_default();
    if let Some(p) = probe {
        bytes.extend_from_slice(p.to_string().as_bytes());
    }
    safe_encode(&fnv1_32(&bytes).to_string())
}

/// `controller.ComputeHash` (the DaemonSet's revision hash): FNV-1a over the pod
/// template (its JSON form, where upstream hashes Go's dump of the struct) and the
/// collision count as a little-endian 8-byte word.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut h = fnv1a_32(
        0x811c_9dc5,
        &serde_json::to_vec(template).unwrap_or_default(),
    );
    if let Some(c) = collision_count {
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h = fnv1a_32(h, &buf);
    }
    safe_encode(&h.to_string())
}

/// `ControllerRevisionName`: `<prefix>-<hash>`, the prefix cut to 223 characters.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let prefix: String = prefix.chars().take(MAX_PREFIX).collect();
    format!("{prefix}-{hash}")
}

/// The revision's data: the owner's `spec.template` with `$patch: replace`
/// (upstream `getPatch` of both controllers).
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The pod template a revision restores (`ApplyRevision`: the patch replaces the
/// template whole).
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.pointer("/spec/template")?.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// `history.NewControllerRevision`: a revision of `parent` carrying `data`, labelled
/// with the template's labels and its hash, named `<parent>-<hash>`.
pub fn new_revision<K: Resource<DynamicType = ()>>(
    parent: &K,
    template_labels: Option<&BTreeMap<String, String>>,
    data: Value,
    revision: i64,
    collision_count: Option<i32>,
) -> ControllerRevision {
    let hash = hash_revision(&data, collision_count);
    let mut labels = template_labels.cloned().unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&parent.name_any(), &hash)),
            namespace: parent.namespace(),
            labels: Some(labels),
            owner_references: Some(vec![podutil::new_controller_ref(parent)]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

/// `EqualRevision`: same data (and, where both carry a numeric hash, the same
/// hash).
pub fn equal_revision(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    a.data.as_ref().map(|d| &d.0) == b.data.as_ref().map(|d| &d.0)
}

/// `FindEqualRevisions`.
pub fn find_equal<'a>(
    revisions: &'a [ControllerRevision],
    needle: &ControllerRevision,
) -> Vec<&'a ControllerRevision> {
    revisions
        .iter()
        .filter(|r| equal_revision(r, needle))
        .collect()
}

/// `SortControllerRevisions` order: by revision, then creation, then name.
pub fn by_revision(a: &ControllerRevision, b: &ControllerRevision) -> Ordering {
    let ts = |r: &ControllerRevision| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
    a.revision
        .cmp(&b.revision)
        .then_with(|| ts(a).cmp(&ts(b)))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// `nextRevision`: one past the highest revision (1 for none).
pub fn next_revision(revisions: &[ControllerRevision]) -> i64 {
    revisions.iter().map(|r| r.revision).max().unwrap_or(0) + 1
}

/// `ListControllerRevisions`: the revisions in `parent`'s namespace matching
/// `sel` that `parent` controls or nobody controls.
pub fn list_revisions<K: Resource>(
    store: &Store<ControllerRevision>,
    parent: &K,
    sel: &LabelSelector,
) -> Vec<ControllerRevision> {
    let uid = parent.meta().uid.clone().unwrap_or_default();
    store
        .list_namespace(&parent.namespace().unwrap_or_default())
        .into_iter()
        .filter(|r| {
            !selector::is_empty(sel) && selector::matches(sel, podutil::labels(&r.metadata))
        })
        .filter(|r| controller_ref(&r.metadata).is_none_or(|c| c.uid == uid))
        .map(|r| (*r).clone())
        .collect()
}

/// `AdoptControllerRevision`: makes `parent` the controller of an orphan revision.
pub async fn adopt<K: Resource<DynamicType = ()>>(
    api: &Api<ControllerRevision>,
    parent: &K,
    rev: &ControllerRevision,
) -> Result<Option<ControllerRevision>, Error> {
    let mut refs = rev.metadata.owner_references.clone().unwrap_or_default();
    refs.push(podutil::new_controller_ref(parent));
    let patch = json!({"metadata": {"ownerReferences": refs, "uid": rev.metadata.uid}});
    match api
        .patch(
            &rev.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(r) => Ok(Some(r)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e).action(format!("adopting controller revision {}", rev.name_any())),
    }
}

/// `CreateControllerRevision`: creates `rev`, re-hashing with a bumped
/// `collision_count` while the name is taken by a revision with other data; an
/// existing equal revision is returned as is.
pub async fn create<K: Resource<DynamicType = ()>>(
    api: &Api<ControllerRevision>,
    parent: &K,
    rev: &ControllerRevision,
    collision_count: &mut i32,
) -> Result<ControllerRevision, Error> {
    let data = rev
        .data
        .as_ref()
        .map(|d| d.0.clone())
        .unwrap_or(Value::Null);
    loop {
        let hash = hash_revision(&data, Some(*collision_count));
        let mut clone = rev.clone();
        let name = revision_name(&parent.name_any(), &hash);
        clone.metadata.name = Some(name.clone());
        clone
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash);
        match api.create(&PostParams::default(), &clone).await {
            Ok(created) => return Ok(created),
            Err(e) if is_conflict(&e) => {
                let existing = api
                    .get(&name)
                    .await
                    .action(format!("getting controller revision {name}"))?;
                if equal_revision(&existing, &clone) {
                    return Ok(existing);
                }
                *collision_count = collision_count.saturating_add(1);
            }
            Err(e) => return Err(e).action(format!("creating controller revision {name}")),
        }
    }
}

/// `UpdateControllerRevision`: sets `rev.revision` (retrying on conflicts with the
/// server's copy).
pub async fn set_revision_number(
    api: &Api<ControllerRevision>,
    rev: &ControllerRevision,
    revision: i64,
) -> Result<ControllerRevision, Error> {
    let mut current = rev.clone();
    for _ in 0..5 {
        if current.revision == revision {
            return Ok(current);
        }
        current.revision = revision;
        match api
            .replace(&current.name_any(), &PostParams::default(), &current)
            .await
        {
            Ok(r) => return Ok(r),
            Err(e) if is_conflict(&e) => {
                current = api
                    .get(&rev.name_any())
                    .await
                    .action(format!("getting controller revision {}", rev.name_any()))?;
            }
            Err(e) => {
                return Err(e).action(format!("updating controller revision {}", rev.name_any()))
            }
        }
    }
    Err(Error::Invalid {
        what: format!("controller revision {}", rev.name_any()),
        reason: "conflicting updates".into(),
    })
}

/// Deletes a revision (already gone is fine).
pub async fn delete(api: &Api<ControllerRevision>, name: &str) -> Result<(), Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e).action(format!("deleting controller revision {name}")),
    }
}

/// The revision history limit (`spec.revisionHistoryLimit`, default 10).
pub fn history_limit(limit: Option<i32>) -> usize {
    limit.unwrap_or(10).max(0) as usize
}

/// Replaces `owner`'s status with `status` through PUT `/status` (the controllers'
/// RBAC roles grant `update` there, not `patch`); a conflict from a stale cache is
/// retried once on a fresh copy, as upstream's status updaters do.
pub async fn put_status<K>(api: &Api<K>, owner: &K, status: Value) -> Result<(), Error>
where
    K: Resource + Clone + Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = owner.name_any();
    let mut current = owner.clone();
    for attempt in 0..2 {
        let mut updated = serde_json::to_value(&current).action_invalid("encoding the owner")?;
        updated["status"] = status.clone();
        let updated: K = serde_json::from_value(updated).action_invalid("encoding the owner")?;
        match api
            .replace_status(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) if is_conflict(&e) && attempt == 0 => match api.get(&name).await {
                Ok(fresh) if fresh.meta().uid == owner.meta().uid => current = fresh,
                Ok(_) => return Ok(()),
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) => return Err(e).action(format!("getting {name}")),
            },
            Err(e) => return Err(e).action(format!("updating status of {name}")),
        }
    }
    Err(Error::Invalid {
        what: format!("status of {name}"),
        reason: "conflicting updates".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSet;

    #[test]
    fn fnv_matches_go() {
        // hash/fnv test vectors.
        assert_eq!(fnv1_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1_32(b"a"), 0x050c_5d7e);
        assert_eq!(fnv1a_32(0x811c_9dc5, b"a"), 0xe40c_292c);
    }

    #[test]
    fn names_hashes_and_templates_round_trip() {
        let mut set = StatefulSet::default();
        set.metadata.name = Some("web".into());
        set.metadata.namespace = Some("ns".into());
        set.metadata.uid = Some("u1".into());
        let template: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}
        }))
        .unwrap();
        let data = template_patch(&template);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
        let a = new_revision(&set, labels, data.clone(), 1, None);
        let b = new_revision(&set, labels, data, 2, Some(0));
        let hash = a.metadata.labels.as_ref().unwrap()[CONTROLLER_REVISION_HASH_LABEL].clone();
        assert_eq!(
            a.metadata.name.as_deref(),
            Some(format!("web-{hash}").as_str())
        );
        assert!(equal_revision(&a, &b));
        assert_ne!(
            a.metadata.name, b.metadata.name,
            "the probe changes the hash"
        );
        assert_eq!(template_of(&a), Some(template.clone()));
        assert_eq!(next_revision(&[a.clone(), b.clone()]), 3);
        let mut revs = [b, a];
        revs.sort_by(by_revision);
        assert_eq!(revs[0].revision, 1);
        assert_ne!(
            template_hash(&template, None),
            template_hash(&template, Some(1))
        );
        assert_eq!(revision_name(&"x".repeat(300), "h").len(), 225);
    }
}
