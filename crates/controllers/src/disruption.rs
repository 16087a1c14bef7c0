//! The disruption controller (upstream `pkg/controller/disruption`): for each
//! PodDisruptionBudget, the pods its selector picks in its namespace, the scale of
//! their controllers (Deployment, ReplicaSet, ReplicationController, StatefulSet, or
//! any workload through its `scale` subresource) to resolve percentages and
//! `maxUnavailable`, and the status the eviction API decides with: currentHealthy,
//! desiredHealthy, expectedPods, disruptionsAllowed, observedGeneration, the
//! `DisruptionAllowed` condition (SufficientPods / InsufficientPods / SyncFailed) and
//! `disruptedPods` — evictions the API server admitted, dropped once the pod is gone
//! or after [`DELETION_TIMEOUT`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DynamicObject, PostParams};
use kube::{Api, ResourceExt};

use crate::context::ControllerContext;
use crate::deployment::util::int_or_percent;
use crate::discovery::{parse_group_version, Discovery};
use crate::error::{is_conflict, is_not_found, Error, ResultExt};
use crate::events::EventType;
use crate::informer::{key_of, Notification, Store};
use crate::podutil::{self, controller_ref};
use crate::selector;
use crate::workqueue::{run_workers, WorkQueue};

/// How long an eviction the API server admitted is expected to take to delete the pod
/// (upstream `DeletionTimeout`).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// The condition type and its reasons (policy/v1).
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
pub const SUFFICIENT_PODS: &str = "SufficientPods";
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
pub const SYNC_FAILED: &str = "SyncFailed";

struct Controller {
    ctx: ControllerContext,
    pdbs: Store<PodDisruptionBudget>,
    pods: Store<Pod>,
    rcs: Store<ReplicationController>,
    rss: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    statefulsets: Store<StatefulSet>,
    queue: Arc<WorkQueue>,
}

/// Starts the disruption controller.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let pdb_inf = ctx.informers.get::<PodDisruptionBudget>();
    let pod_inf = ctx.informers.get::<Pod>();
    let rc_inf = ctx.informers.get::<ReplicationController>();
    let rs_inf = ctx.informers.get::<ReplicaSet>();
    let dep_inf = ctx.informers.get::<Deployment>();
    let ss_inf = ctx.informers.get::<StatefulSet>();
    let c = Arc::new(Controller {
        pdbs: pdb_inf.store(),
        pods: pod_inf.store(),
        rcs: rc_inf.store(),
        rss: rs_inf.store(),
        deployments: dep_inf.store(),
        statefulsets: ss_inf.store(),
        queue: WorkQueue::new(ctx.name),
        ctx,
    });
    {
        let c = c.clone();
        pdb_inf.add_handler(move |n| match n {
            Notification::Add(p)
            | Notification::Update { new: p, .. }
            | Notification::Delete(p) => c.queue.add(key_of(&**p)),
        });
    }
    {
        let c = c.clone();
        pod_inf.add_handler(move |n| match n {
            Notification::Add(p) | Notification::Delete(p) => c.enqueue_for_pod(p),
            Notification::Update { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                c.enqueue_for_pod(new);
                if old.metadata.labels != new.metadata.labels {
                    c.enqueue_for_pod(old);
                }
            }
        });
    }
    let workers = 1;
    let stop = c.ctx.stop.clone();
    tokio::spawn(async move {
        pdb_inf.wait_synced().await;
        pod_inf.wait_synced().await;
        rc_inf.wait_synced().await;
        rs_inf.wait_synced().await;
        dep_inf.wait_synced().await;
        ss_inf.wait_synced().await;
        let queue = c.queue.clone();
        run_workers(queue, workers, stop, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    });
    Ok(())
}

/// Whether a PDB's selector picks `pod` (policy/v1: an empty selector picks every pod
/// of the namespace, a missing one none).
fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    pdb.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|sel| selector::matches(sel, podutil::labels(&pod.metadata)))
}

/// Upstream `buildDisruptedPodMap`: the disrupted pods still expected to go, and when
/// the earliest of them times out. Pods already being deleted leave the map; pods
/// past the timeout too (with a `NotDeleted` warning).
pub fn disrupted_pods(
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Timestamp>, Vec<Arc<Pod>>) {
    let mut result = BTreeMap::new();
    let mut recheck: Option<Timestamp> = None;
    let mut overdue = Vec::new();
    let Some(map) = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref()) else {
        return (result, recheck, overdue);
    };
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(t) = map.get(&pod.name_any()) else {
            continue;
        };
        let expected = expected_deletion(t);
        if expected < now {
            overdue.push(pod.clone());
        } else {
            if recheck.is_none_or(|r| expected < r) {
                recheck = Some(expected);
            }
            result.insert(pod.name_any(), t.clone());
        }
    }
    (result, recheck, overdue)
}

fn expected_deletion(t: &Time) -> Timestamp {
    let timeout = k8s_openapi::jiff::SignedDuration::from_secs(DELETION_TIMEOUT.as_secs() as i64);
    t.0.checked_add(timeout).unwrap_or(t.0)
}

/// Upstream `countHealthyPods`: ready pods that are neither being deleted nor
/// expected to be deleted.
pub fn count_healthy(pods: &[Arc<Pod>], disrupted: &BTreeMap<String, Time>, now: Timestamp) -> i32 {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            disrupted
                .get(&p.name_any())
                .is_none_or(|t| expected_deletion(t) <= now)
        })
        .filter(|p| podutil::is_ready(p))
        .count() as i32
}

/// The condition as upstream's `apimeta.SetStatusCondition` leaves it: the transition
/// time kept unless the status changes.
fn set_condition(
    conditions: &mut Vec<Condition>,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    if let Some(c) = conditions
        .iter_mut()
        .find(|c| c.type_ == DISRUPTION_ALLOWED)
    {
        if c.status != status {
            c.last_transition_time = Time(now);
        }
        c.status = status.into();
        c.reason = reason.into();
        c.message = message.into();
        c.observed_generation = generation;
        return;
    }
    conditions.push(Condition {
        type_: DISRUPTION_ALLOWED.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(now),
    });
}

/// Whether the condition matches the counts (upstream `ConditionsAreUpToDate`).
fn conditions_up_to_date(status: &PodDisruptionBudgetStatus, generation: Option<i64>) -> bool {
    let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == DISRUPTION_ALLOWED)
    else {
        return false;
    };
    if status.observed_generation != generation {
        return false;
    }
    if status.disruptions_allowed > 0 {
        c.status == "True" && c.reason == SUFFICIENT_PODS
    } else {
        c.status == "False" && c.reason == INSUFFICIENT_PODS
    }
}

/// Upstream `updatePdbStatus` without the write: the new status, or `None` when the
/// current one already says it.
pub fn next_status(
    pdb: &PodDisruptionBudget,
    current_healthy: i32,
    desired_healthy: i32,
    expected: i32,
    disrupted: BTreeMap<String, Time>,
    now: Timestamp,
) -> Option<PodDisruptionBudgetStatus> {
    let mut allowed = current_healthy - desired_healthy;
    // No pods expected yet is the safe state: nothing may be disrupted.
    if expected <= 0 || allowed <= 0 {
        allowed = 0;
    }
    let generation = pdb.metadata.generation;
    let old = pdb.status.clone().unwrap_or_default();
    if old.current_healthy == current_healthy
        && old.desired_healthy == desired_healthy
        && old.expected_pods == expected
        && old.disruptions_allowed == allowed
        && old.disrupted_pods.clone().unwrap_or_default() == disrupted
        && old.observed_generation == generation
        && conditions_up_to_date(&old, generation)
    {
        return None;
    }
    let mut conditions = old.conditions.clone().unwrap_or_default();
    if allowed > 0 {
        set_condition(
            &mut conditions,
            "True",
            SUFFICIENT_PODS,
            "",
            generation,
            now,
        );
    } else {
        set_condition(
            &mut conditions,
            "False",
            INSUFFICIENT_PODS,
            "",
            generation,
            now,
        );
    }
    Some(PodDisruptionBudgetStatus {
        current_healthy,
        desired_healthy,
        expected_pods: expected,
        disruptions_allowed: allowed,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: generation,
        conditions: Some(conditions),
    })
}

/// A pod's controller and its scale.
struct ControllerScale {
    uid: String,
    scale: i32,
}

fn group_of(api_version: &str) -> &str {
    parse_group_version(api_version).map_or("", |(g, _)| g)
}

fn is_kind(r: &OwnerReference, kind: &str, groups: &[&str]) -> bool {
    r.kind == kind && groups.contains(&group_of(&r.api_version))
}

impl Controller {
    fn enqueue_for_pod(&self, pod: &Pod) {
        let ns = pod.namespace().unwrap_or_default();
        let matching: Vec<_> = self
            .pdbs
            .list_namespace(&ns)
            .into_iter()
            .filter(|p| selects(p, pod))
            .collect();
        if matching.len() > 1 {
            self.ctx.recorder.event(
                pod,
                EventType::Warning,
                "MultiplePodDisruptionBudgets",
                format!(
                    "Pod {ns}/{} matches multiple PodDisruptionBudgets.  Chose {:?} arbitrarily.",
                    pod.name_any(),
                    matching[0].name_any()
                ),
            );
        }
        if let Some(p) = matching.first() {
            self.queue.add(key_of(&**p));
        }
    }

    /// Upstream's finders, in their order: RC, Deployment (through its ReplicaSet),
    /// ReplicaSet not owned by a Deployment, StatefulSet, then any workload's
    /// `scale` subresource.
    async fn find_scale(
        &self,
        r: &OwnerReference,
        ns: &str,
    ) -> Result<Option<ControllerScale>, Error> {
        const APPS: &[&str] = &["apps", "extensions"];
        if is_kind(r, "ReplicationController", &[""]) {
            return Ok(self
                .rcs
                .get(ns, &r.name)
                .filter(|rc| rc.metadata.uid.as_deref() == Some(r.uid.as_str()))
                .map(|rc| ControllerScale {
                    uid: r.uid.clone(),
                    scale: rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                }));
        }
        if is_kind(r, "ReplicaSet", APPS) {
            let Some(rs) = self
                .rss
                .get(ns, &r.name)
                .filter(|rs| rs.metadata.uid.as_deref() == Some(r.uid.as_str()))
            else {
                return Ok(None);
            };
            if let Some(owner) = controller_ref(&rs.metadata) {
                if owner.kind == "Deployment" {
                    if !is_kind(owner, "Deployment", APPS) {
                        return Ok(None);
                    }
                    return Ok(self
                        .deployments
                        .get(ns, &owner.name)
                        .filter(|d| d.metadata.uid.as_deref() == Some(owner.uid.as_str()))
                        .map(|d| ControllerScale {
                            uid: owner.uid.clone(),
                            scale: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                        }));
                }
            }
            return Ok(Some(ControllerScale {
                uid: r.uid.clone(),
                scale: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            }));
        }
        if is_kind(r, "StatefulSet", &["apps"]) {
            return Ok(self
                .statefulsets
                .get(ns, &r.name)
                .filter(|s| s.metadata.uid.as_deref() == Some(r.uid.as_str()))
                .map(|s| ControllerScale {
                    uid: r.uid.clone(),
                    scale: s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                }));
        }
        self.scale_subresource(r, ns).await
    }

    /// Upstream `getScaleController`: the owner's `scale` subresource.
    async fn scale_subresource(
        &self,
        r: &OwnerReference,
        ns: &str,
    ) -> Result<Option<ControllerScale>, Error> {
        let discovery = Discovery::run(&self.ctx.client).await?;
        let Some(found) = discovery.resource_for(&r.api_version, &r.kind) else {
            return Err(Error::Invalid {
                what: format!("controller {} {}", r.kind, r.name),
                reason: format!(
                    "no matches for kind {:?} in version {:?}",
                    r.kind, r.api_version
                ),
            });
        };
        let gr = if found.resource.group.is_empty() {
            found.resource.plural.clone()
        } else {
            format!("{}.{}", found.resource.plural, found.resource.group)
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.ctx.client.clone(), ns, &found.resource);
        match api.get_scale(&r.name).await {
            Ok(scale) => {
                if scale.metadata.uid.as_deref() != Some(r.uid.as_str()) {
                    return Ok(None);
                }
                Ok(Some(ControllerScale {
                    uid: r.uid.clone(),
                    scale: scale.spec.and_then(|s| s.replicas).unwrap_or(0),
                }))
            }
            Err(e) if is_not_found(&e) => {
                let has_scale = discovery.resources.iter().any(|d| {
                    d.resource.group == found.resource.group
                        && d.resource.plural == format!("{}/scale", found.resource.plural)
                });
                if has_scale {
                    Ok(None)
                } else {
                    Err(Error::Invalid {
                        what: gr.clone(),
                        reason: format!("{gr} does not implement the scale subresource"),
                    })
                }
            }
            Err(e) => Err(e).action(format!("getting the scale of {gr} {}", r.name)),
        }
    }

    /// Upstream `getExpectedScale`: the sum of the scales of the pods' controllers,
    /// and the pods no controller manages.
    async fn expected_scale(
        &self,
        pods: &[Arc<Pod>],
        ns: &str,
    ) -> Result<(i32, Vec<String>), Error> {
        let mut scales: HashMap<String, i32> = HashMap::new();
        let mut unmanaged = Vec::new();
        for pod in pods {
            let Some(r) = controller_ref(&pod.metadata) else {
                unmanaged.push(pod.name_any());
                continue;
            };
            if scales.contains_key(&r.uid) {
                continue;
            }
            match self.find_scale(r, ns).await? {
                Some(cs) => {
                    scales.insert(cs.uid, cs.scale);
                }
                None => {
                    return Err(Error::Invalid {
                        what: format!("pod {}", pod.name_any()),
                        reason: format!("found no controllers for pod {:?}", pod.name_any()),
                    })
                }
            }
        }
        Ok((scales.values().sum(), unmanaged))
    }

    /// Upstream `getExpectedPodCount`: (expectedCount, desiredHealthy, unmanaged pods).
    async fn expected_pod_count(
        &self,
        pdb: &PodDisruptionBudget,
        pods: &[Arc<Pod>],
        ns: &str,
    ) -> Result<(i32, i32, Vec<String>), Error> {
        let spec = pdb.spec.clone().unwrap_or_default();
        let invalid = |reason: String| Error::Invalid {
            what: format!("PodDisruptionBudget {ns}/{}", pdb.name_any()),
            reason,
        };
        if let Some(max) = &spec.max_unavailable {
            let (expected, unmanaged) = self.expected_scale(pods, ns).await?;
            let max = int_or_percent(max, expected, true).map_err(invalid)?;
            return Ok((expected, (expected - max).max(0), unmanaged));
        }
        match &spec.min_available {
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => {
                Ok((pods.len() as i32, *n, Vec::new()))
            }
            Some(min) => {
                let (expected, unmanaged) = self.expected_scale(pods, ns).await?;
                let min = int_or_percent(min, expected, true).map_err(invalid)?;
                Ok((expected, min, unmanaged))
            }
            None => Ok((0, 0, Vec::new())),
        }
    }

    async fn sync(&self, key: &str) -> Result<(), Error> {
        let Some(pdb) = self.pdbs.get_key(key) else {
            return Ok(());
        };
        match self.try_sync(&pdb, key).await {
            Ok(()) => Ok(()),
            Err(e @ Error::Api { .. }) if matches!(&e, Error::Api { source, .. } if is_conflict(source)) => {
                Err(e)
            }
            Err(e) => {
                tracing::warn!(pdb = key, error = %e, "disruption: failed to sync PDB");
                self.fail_safe(&pdb, &e).await?;
                Err(e)
            }
        }
    }

    async fn try_sync(&self, pdb: &PodDisruptionBudget, key: &str) -> Result<(), Error> {
        let ns = pdb.namespace().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(&ns)
            .into_iter()
            .filter(|p| selects(pdb, p))
            .collect();
        if pods.is_empty() {
            self.ctx
                .recorder
                .event(pdb, EventType::Normal, "NoPods", "No matching pods found");
        }
        let (expected, desired, unmanaged) = match self.expected_pod_count(pdb, &pods, &ns).await {
            Ok(v) => v,
            Err(e) => {
                self.ctx.recorder.event(
                    pdb,
                    EventType::Warning,
                    "CalculateExpectedPodCountFailed",
                    format!("Failed to calculate the number of expected pods: {e}"),
                );
                return Err(e);
            }
        };
        if !unmanaged.is_empty() {
            let sel = pdb
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .map(selector::to_string)
                .unwrap_or_default();
            self.ctx.recorder.event(
                pdb,
                EventType::Warning,
                "UnmanagedPods",
                format!("Pods selected by this PodDisruptionBudget (selector: {sel}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value."),
            );
        }
        let now = Timestamp::now();
        let (disrupted, recheck, overdue) = disrupted_pods(pdb, &pods, now);
        for pod in overdue {
            self.ctx.recorder.event(
                &*pod,
                EventType::Warning,
                "NotDeleted",
                format!(
                    "Pod was expected by PDB {ns}/{} to be deleted but it wasn't",
                    pdb.name_any()
                ),
            );
        }
        let healthy = count_healthy(&pods, &disrupted, now);
        if let Some(status) = next_status(pdb, healthy, desired, expected, disrupted, now) {
            self.write_status(pdb, status).await?;
        }
        if let Some(at) = recheck {
            let wait = at.duration_since(now).unsigned_abs();
            self.queue.add_after(key.to_string(), wait);
        }
        Ok(())
    }

    /// Upstream `failSafe`: no disruption allowed, condition SyncFailed with the error.
    async fn fail_safe(&self, pdb: &PodDisruptionBudget, err: &Error) -> Result<(), Error> {
        let mut status = pdb.status.clone().unwrap_or_default();
        status.disruptions_allowed = 0;
        let mut conditions = status.conditions.take().unwrap_or_default();
        set_condition(
            &mut conditions,
            "False",
            SYNC_FAILED,
            &err.to_string(),
            status.observed_generation,
            Timestamp::now(),
        );
        status.conditions = Some(conditions);
        self.write_status(pdb, status).await
    }

    /// PUT /status, as upstream (the controller's role grants update only).
    async fn write_status(
        &self,
        pdb: &PodDisruptionBudget,
        status: PodDisruptionBudgetStatus,
    ) -> Result<(), Error> {
        let mut updated = pdb.clone();
        updated.metadata.managed_fields = None;
        updated.status = Some(status);
        let api: Api<PodDisruptionBudget> = Api::namespaced(
            self.ctx.client.clone(),
            &pdb.namespace().unwrap_or_default(),
        );
        match api
            .replace_status(&pdb.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).action(format!(
                "updating status of PodDisruptionBudget {}",
                pdb.name_any()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ready: bool, extra: serde_json::Value) -> Arc<Pod> {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        });
        if let (Some(m), Some(e)) = (v["metadata"].as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                m.insert(k.clone(), x.clone());
            }
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn pdb(status: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": "b", "namespace": "ns", "generation": 2},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn healthy_counts_skip_deleting_and_disrupted_pods() {
        let now = Timestamp::now();
        let recent = Time(
            now.checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(30))
                .unwrap(),
        );
        let old = Time(
            now.checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(300))
                .unwrap(),
        );
        let b = pdb(
            json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0,
            "disruptedPods": {"a": recent, "b": old, "gone": recent}}),
        );
        let pods = vec![
            pod("a", true, json!({})),
            pod("b", true, json!({})),
            pod(
                "c",
                true,
                json!({"deletionTimestamp": "2024-01-01T00:00:00Z"}),
            ),
            pod("d", false, json!({})),
            pod("e", true, json!({})),
        ];
        let (disrupted, recheck, overdue) = disrupted_pods(&b, &pods, now);
        assert_eq!(disrupted.keys().collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(overdue.len(), 1);
        assert!(recheck.is_some_and(|r| r > now));
        // a is disrupted, c deleting, d not ready: b and e are healthy
        assert_eq!(count_healthy(&pods, &disrupted, now), 2);
        assert!(selects(&b, &pods[0]));
    }

    #[test]
    fn status_and_condition() {
        let now = Timestamp::now();
        let b = pdb(
            json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}),
        );
        let s = next_status(&b, 3, 2, 3, BTreeMap::new(), now).unwrap();
        assert_eq!(s.disruptions_allowed, 1);
        assert_eq!(s.observed_generation, Some(2));
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", SUFFICIENT_PODS)
        );
        // the same counts again: nothing to write
        let mut b2 = b.clone();
        b2.status = Some(s.clone());
        assert!(next_status(&b2, 3, 2, 3, BTreeMap::new(), now).is_none());
        // one fewer healthy pod: no disruption allowed
        let s = next_status(&b2, 2, 2, 3, BTreeMap::new(), now).unwrap();
        assert_eq!(s.disruptions_allowed, 0);
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", INSUFFICIENT_PODS)
        );
        // no expected pods: safe state
        assert_eq!(
            next_status(&b, 3, 0, 0, BTreeMap::new(), now)
                .unwrap()
                .disruptions_allowed,
            0
        );
    }

    #[test]
    fn owner_kinds_by_group() {
        let r = |api: &str, kind: &str| OwnerReference {
            api_version: api.into(),
            kind: kind.into(),
            name: "x".into(),
            uid: "u".into(),
            ..OwnerReference::default()
        };
        assert!(is_kind(
            &r("apps/v1", "ReplicaSet"),
            "ReplicaSet",
            &["apps", "extensions"]
        ));
        assert!(!is_kind(
            &r("example.com/v1", "ReplicaSet"),
            "ReplicaSet",
            &["apps"]
        ));
        assert!(is_kind(
            &r("v1", "ReplicationController"),
            "ReplicationController",
            &[""]
        ));
    }
}
