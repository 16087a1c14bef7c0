//! StatefulSet pod identity and storage (upstream
//! `pkg/controller/statefulset/stateful_set_utils.go`): ordinals and names,
//! identity and storage invariants, pods and claims from the template, revision
//! labels, pod health predicates, the PVC retention policy's owner references, and
//! the replica counters of the status.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};

use crate::history::CONTROLLER_REVISION_HASH_LABEL;
use crate::podutil;

/// `apps.StatefulSetPodNameLabel`.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// `apps.PodIndexLabel`.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// `getStartOrdinal`: `spec.ordinals.start` (default 0).
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
}

/// `getEndOrdinal`: start + replicas - 1.
pub fn end_ordinal(set: &StatefulSet) -> i32 {
    start_ordinal(set) + replicas(set) - 1
}

/// `getParentNameAndOrdinal`: `<parent>-<ordinal>`; ordinal -1 when the name does
/// not end in one.
pub fn parent_and_ordinal(pod: &Pod) -> (Option<String>, i32) {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let Some((parent, ord)) = name.rsplit_once('-') else {
        return (None, -1);
    };
    if ord.is_empty() || !ord.bytes().all(|b| b.is_ascii_digit()) {
        return (None, -1);
    }
    match ord.parse::<i32>() {
        Ok(o) => (Some(parent.to_string()), o),
        Err(_) => (Some(parent.to_string()), -1),
    }
}

pub fn ordinal(pod: &Pod) -> i32 {
    parent_and_ordinal(pod).1
}

/// `isMemberOf`: the pod's name makes it one of `set`'s.
pub fn is_member_of(set: &StatefulSet, pod: &Pod) -> bool {
    parent_and_ordinal(pod).0.as_deref() == set.metadata.name.as_deref()
}

pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set.name_any())
}

/// `podInOrdinalRange`.
pub fn in_ordinal_range(pod: &Pod, set: &StatefulSet) -> bool {
    let o = ordinal(pod);
    o >= start_ordinal(set) && o <= end_ordinal(set)
}

/// `getPersistentVolumeClaimName`: `<claim>-<set>-<ordinal>`.
pub fn claim_name(set: &StatefulSet, template: &PersistentVolumeClaim, ordinal: i32) -> String {
    format!("{}-{}-{ordinal}", template.name_any(), set.name_any())
}

fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or_default()
}

/// `getPersistentVolumeClaims`: the pod's claims by template name, labelled with
/// the set's selector labels.
pub fn claims_for(set: &StatefulSet, pod: &Pod) -> BTreeMap<String, PersistentVolumeClaim> {
    let ord = ordinal(pod);
    let match_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    claim_templates(set)
        .iter()
        .map(|t| {
            let mut claim = t.clone();
            claim.metadata.name = Some(claim_name(set, t, ord));
            claim.metadata.namespace = set.namespace();
            let labels = claim.metadata.labels.get_or_insert_with(BTreeMap::new);
            labels.extend(match_labels.clone());
            claim.status = None;
            (t.name_any(), claim)
        })
        .collect()
}

/// `updateIdentity`: name, namespace and the pod-name / pod-index labels.
pub fn update_identity(set: &StatefulSet, pod: &mut Pod) {
    let ord = ordinal(pod);
    let name = pod_name(set, ord);
    pod.metadata.name = Some(name.clone());
    pod.metadata.namespace = set.namespace();
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), name);
    labels.insert(POD_INDEX_LABEL.into(), ord.to_string());
}

/// `identityMatches`.
pub fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let (parent, ord) = parent_and_ordinal(pod);
    let labels = podutil::labels(&pod.metadata);
    ord >= 0
        && parent.as_deref() == set.metadata.name.as_deref()
        && pod.metadata.name.as_deref() == Some(pod_name(set, ord).as_str())
        && pod.metadata.namespace == set.namespace()
        && labels.get(POD_NAME_LABEL) == pod.metadata.name.as_ref()
        && labels.get(POD_INDEX_LABEL) == Some(&ord.to_string())
}

/// `updateStorage`: a PVC volume per claim template (replacing same-named
/// volumes), other volumes kept.
pub fn update_storage(set: &StatefulSet, pod: &mut Pod) {
    let claims = claims_for(set, pod);
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    let current = spec.volumes.take().unwrap_or_default();
    let mut volumes: Vec<Volume> = claims
        .iter()
        .map(|(name, claim)| Volume {
            name: name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.name_any(),
                read_only: Some(false),
            }),
            ..Volume::default()
        })
        .collect();
    volumes.extend(
        current
            .into_iter()
            .filter(|v| !claims.contains_key(&v.name)),
    );
    spec.volumes = (!volumes.is_empty()).then_some(volumes);
}

/// `storageMatches`: every claim template is mounted from its claim.
pub fn storage_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let ord = ordinal(pod);
    if ord < 0 {
        return false;
    }
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    claim_templates(set).iter().all(|t| {
        volumes.iter().any(|v| {
            v.name == t.name_any()
                && v.persistent_volume_claim
                    .as_ref()
                    .map(|c| c.claim_name.as_str())
                    == Some(claim_name(set, t, ord).as_str())
        })
    })
}

/// `newStatefulSetPod`: the template's pod named `<set>-<ordinal>` with hostname,
/// subdomain (the governing service), identity labels and claim volumes.
pub fn new_pod(set: &StatefulSet, ordinal: i32) -> Pod {
    let template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut pod = podutil::pod_from_template(&template, set, &set.name_any());
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(pod_name(set, ordinal));
    update_identity(set, &mut pod);
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = pod.metadata.name.clone();
    spec.subdomain = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    update_storage(set, &mut pod);
    pod
}

/// `getPodRevision`: the `controller-revision-hash` label (a revision's name).
pub fn pod_revision(pod: &Pod) -> Option<&str> {
    podutil::labels(&pod.metadata)
        .get(CONTROLLER_REVISION_HASH_LABEL)
        .map(String::as_str)
}

pub fn set_pod_revision(pod: &mut Pod, revision: &str) {
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(CONTROLLER_REVISION_HASH_LABEL.into(), revision.into());
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// `isCreated`: the pod has a phase (pods built locally have none).
pub fn is_created(pod: &Pod) -> bool {
    !phase(pod).is_empty()
}

pub fn is_pending(pod: &Pod) -> bool {
    phase(pod) == "Pending"
}

pub fn is_failed(pod: &Pod) -> bool {
    phase(pod) == "Failed"
}

pub fn is_succeeded(pod: &Pod) -> bool {
    phase(pod) == "Succeeded"
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && podutil::is_ready(pod)
}

pub fn is_running_and_available(pod: &Pod, min_ready_seconds: i32) -> bool {
    phase(pod) == "Running" && podutil::is_available(pod, min_ready_seconds, Timestamp::now())
}

/// `isHealthy`: running, ready and not terminating.
pub fn is_healthy(pod: &Pod) -> bool {
    is_running_and_ready(pod) && !is_terminating(pod)
}

/// Counters of `computeReplicaStatus`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i32,
    pub ready: i32,
    pub available: i32,
    pub current: i32,
    pub updated: i32,
}

/// `computeReplicaStatus` over every list.
pub fn count(pods: &[&Pod], mrs: i32, current: &str, update: &str) -> Counts {
    let mut c = Counts::default();
    for pod in pods {
        if is_created(pod) {
            c.replicas += 1;
        }
        if is_running_and_ready(pod) {
            c.ready += 1;
            if is_running_and_available(pod, mrs) {
                c.available += 1;
            }
        }
        if is_created(pod) && !is_terminating(pod) {
            let rev = pod_revision(pod);
            c.current += i32::from(rev == Some(current));
            c.updated += i32::from(rev == Some(update));
        }
    }
    c
}

/// (whenScaled, whenDeleted), each `Retain` unless `Delete`.
pub fn retention_policy(set: &StatefulSet) -> (bool, bool) {
    let p = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let delete = |v: Option<&String>| v.map(String::as_str) == Some("Delete");
    (
        delete(p.and_then(|p| p.when_scaled.as_ref())),
        delete(p.and_then(|p| p.when_deleted.as_ref())),
    )
}

fn uid<K: Resource>(o: &K) -> String {
    o.meta().uid.clone().unwrap_or_default()
}

/// `matchesRef`: a reference to the object's kind and name (any UID).
fn matches_ref<K: Resource<DynamicType = ()>>(r: &OwnerReference, owner: &K) -> bool {
    r.api_version == K::api_version(&())
        && r.kind == K::kind(&())
        && Some(&r.name) == owner.meta().name.as_ref()
}

fn has_owner_ref<K: Resource>(claim: &PersistentVolumeClaim, owner: &K) -> bool {
    let u = uid(owner);
    claim.owner_references().iter().any(|r| r.uid == u)
}

/// `hasStaleOwnerRef`: a reference by kind and name with another UID.
pub fn has_stale_owner_ref<K: Resource<DynamicType = ()>>(
    claim: &PersistentVolumeClaim,
    owner: &K,
) -> bool {
    claim
        .owner_references()
        .iter()
        .find(|r| matches_ref(r, owner))
        .is_some_and(|r| r.uid != uid(owner))
}

/// `hasUnexpectedController`: under a deleting policy, a controller other than the
/// set or the pod (or a stale reference to either).
pub fn has_unexpected_controller(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Pod,
) -> bool {
    let (scaled, deleted) = retention_policy(set);
    if !scaled && !deleted {
        return false;
    }
    claim.owner_references().iter().any(|r| {
        if matches_ref(r, set) {
            return r.uid != uid(set);
        }
        if matches_ref(r, pod) {
            return r.uid != uid(pod);
        }
        r.controller == Some(true)
    })
}

fn has_non_controller_owner(claim: &PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> bool {
    let (s, p) = (uid(set), uid(pod));
    claim
        .owner_references()
        .iter()
        .any(|r| (r.uid == s || r.uid == p) && r.controller != Some(true))
}

/// `isClaimOwnerUpToDate`: the claim's owner references follow the retention
/// policy (Retain/Retain: none; Delete on deletion: the set; Delete on scale-down:
/// the pod once it is out of range).
pub fn claim_owner_up_to_date(claim: &PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> bool {
    if has_stale_owner_ref(claim, set) || has_stale_owner_ref(claim, pod) {
        return true;
    }
    if has_unexpected_controller(claim, set, pod) {
        return !(has_owner_ref(claim, set) || has_owner_ref(claim, pod));
    }
    if has_non_controller_owner(claim, set, pod) {
        return false;
    }
    let (want_set, want_pod) = wanted_refs(set, pod);
    has_owner_ref(claim, set) == want_set && has_owner_ref(claim, pod) == want_pod
}

/// Which of (set, pod) the policy wants as the claim's controller.
fn wanted_refs(set: &StatefulSet, pod: &Pod) -> (bool, bool) {
    let (scaled, deleted) = retention_policy(set);
    let scaled_down = !in_ordinal_range(pod, set);
    match (scaled, deleted) {
        (false, false) => (false, false),
        (false, true) => (true, false),
        (true, false) => (false, scaled_down),
        (true, true) => (!scaled_down, scaled_down),
    }
}

/// `updateClaimOwnerRefForSetAndPod`: the claim's references rewritten for the
/// policy.
pub fn update_claim_owner_refs(claim: &mut PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) {
    let unexpected = has_unexpected_controller(claim, set, pod);
    let mut refs: Vec<OwnerReference> = claim
        .owner_references()
        .iter()
        .filter(|r| !matches_ref(r, set) && !matches_ref(r, pod))
        .cloned()
        .collect();
    if !unexpected {
        let (want_set, want_pod) = wanted_refs(set, pod);
        if want_set {
            refs.push(podutil::new_controller_ref(set));
        }
        if want_pod {
            refs.push(podutil::new_controller_ref(pod));
        }
    }
    claim.metadata.owner_references = (!refs.is_empty()).then_some(refs);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(extra: serde_json::Value) -> StatefulSet {
        let mut v = json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid"},
            "spec": {
                "replicas": 3, "serviceName": "nginx",
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": "i"}],
                                      "volumes": [{"name": "scratch", "emptyDir": {}}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "www"},
                    "spec": {"accessModes": ["ReadWriteOnce"]}}]
            }
        });
        if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pods_have_identity_and_storage() {
        let s = set(json!({"ordinals": {"start": 5}}));
        assert_eq!((start_ordinal(&s), end_ordinal(&s)), (5, 7));
        let pod = new_pod(&s, 6);
        assert_eq!(pod.metadata.name.as_deref(), Some("web-6"));
        assert_eq!(parent_and_ordinal(&pod), (Some("web".into()), 6));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-6"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let vols = spec.volumes.as_ref().unwrap();
        assert_eq!(
            vols[0].persistent_volume_claim.as_ref().unwrap().claim_name,
            "www-web-6"
        );
        assert_eq!(vols[1].name, "scratch");
        assert!(identity_matches(&s, &pod) && storage_matches(&s, &pod));
        assert!(in_ordinal_range(&pod, &s));
        let claims = claims_for(&s, &pod);
        assert_eq!(
            claims["www"].metadata.labels.as_ref().unwrap()["app"],
            "web"
        );
        let mut other = pod.clone();
        other
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .remove(POD_INDEX_LABEL);
        assert!(!identity_matches(&s, &other));
        let mut odd = Pod::default();
        odd.metadata.name = Some("web-x".into());
        assert_eq!(ordinal(&odd), -1);
    }

    #[test]
    fn claim_owner_refs_follow_the_retention_policy() {
        let mut pod = new_pod(&set(json!({})), 1);
        pod.metadata.uid = Some("pod-uid".into());
        let mut claim = claims_for(&set(json!({})), &pod)["www"].clone();
        let retain = set(json!({}));
        assert!(claim_owner_up_to_date(&claim, &retain, &pod));
        let on_delete = set(json!({"persistentVolumeClaimRetentionPolicy":
            {"whenDeleted": "Delete", "whenScaled": "Retain"}}));
        assert!(!claim_owner_up_to_date(&claim, &on_delete, &pod));
        update_claim_owner_refs(&mut claim, &on_delete, &pod);
        assert!(claim_owner_up_to_date(&claim, &on_delete, &pod));
        assert_eq!(claim.owner_references()[0].uid, "set-uid");
        let scaled = set(
            json!({"replicas": 1, "persistentVolumeClaimRetentionPolicy":
            {"whenDeleted": "Retain", "whenScaled": "Delete"}}),
        );
        assert!(!claim_owner_up_to_date(&claim, &scaled, &pod));
        update_claim_owner_refs(&mut claim, &scaled, &pod);
        assert_eq!(claim.owner_references().len(), 1);
        assert_eq!(claim.owner_references()[0].uid, "pod-uid");
        assert!(claim_owner_up_to_date(&claim, &scaled, &pod));
    }
}
