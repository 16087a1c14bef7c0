//! The StatefulSet update algorithm (upstream
//! `pkg/controller/statefulset/stateful_set_control.go`): current and update
//! revisions, pods split into replicas (ordinals in range, missing ones built at
//! the right revision) and condemned (out of range), OrderedReady (one step at a
//! time, each predecessor Running and Ready) or Parallel processing, scale-down
//! from the highest ordinal, RollingUpdate from the highest ordinal down to the
//! partition, OnDelete, status, and history truncation.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::utils::{self, Counts};
use super::Controller;
use crate::error::Error;
use crate::history;

/// The status one sync computes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Status {
    pub observed_generation: Option<i64>,
    pub current_revision: String,
    pub update_revision: String,
    pub collision_count: i32,
    pub counts: Counts,
}

fn is_rolling_update(set: &StatefulSet) -> bool {
    strategy_type(set) == "RollingUpdate"
}

fn strategy_type(set: &StatefulSet) -> &str {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

fn partition(set: &StatefulSet) -> Option<i32> {
    set.spec
        .as_ref()?
        .update_strategy
        .as_ref()?
        .rolling_update
        .as_ref()
        .map(|r| r.partition.unwrap_or(0))
}

/// `allowsBurst`: podManagementPolicy Parallel.
fn allows_burst(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        == Some("Parallel")
}

/// `ApplyRevision`: the set with the revision's template.
fn apply_revision(set: &StatefulSet, rev: &ControllerRevision) -> Result<StatefulSet, Error> {
    let template = history::template_of(rev).ok_or_else(|| Error::Invalid {
        what: format!("controller revision {}", rev.name_any()),
        reason: "its data holds no pod template".into(),
    })?;
    let mut clone = set.clone();
    if let Some(spec) = clone.spec.as_mut() {
        spec.template = template;
    }
    Ok(clone)
}

/// `newVersionedStatefulSetPod`: ordinals below the partition (or, without a
/// rollingUpdate block, below currentReplicas) are built at the current revision.
fn new_versioned_pod(
    current_set: &StatefulSet,
    update_set: &StatefulSet,
    current: &str,
    update: &str,
    ordinal: i32,
) -> Pod {
    let start = utils::start_ordinal(current_set);
    let current_replicas = current_set
        .status
        .as_ref()
        .and_then(|s| s.current_replicas)
        .unwrap_or(0);
    let use_current = match partition(current_set) {
        None => is_rolling_update(current_set) && ordinal < start + current_replicas,
        Some(p) => ordinal < start + p,
    };
    let (set, rev) = if use_current {
        (current_set, current)
    } else {
        (update_set, update)
    };
    let mut pod = utils::new_pod(set, ordinal);
    utils::set_pod_revision(&mut pod, rev);
    pod
}

fn counts(set: &StatefulSet, lists: &[&[Pod]], current: &str, update: &str) -> Counts {
    let all: Vec<&Pod> = lists.iter().flat_map(|l| l.iter()).collect();
    utils::count(&all, utils::min_ready_seconds(set), current, update)
}

impl Controller {
    fn revisions_api(&self, set: &StatefulSet) -> Api<ControllerRevision> {
        Api::namespaced(
            self.ctx.client.clone(),
            &set.namespace().unwrap_or_default(),
        )
    }

    /// `UpdateStatefulSet`: revisions, pods, status, history.
    pub(super) async fn update_set(
        &self,
        set: &StatefulSet,
        pods: &[Pod],
    ) -> Result<Option<Status>, Error> {
        let mut revisions =
            history::list_revisions(&self.revisions, set, &super::set_selector(set));
        revisions.sort_by(history::by_revision);
        let (current, update, collision) = self.revisions_of(set, &revisions).await?;
        let (status, result) = match self
            .update_pods(set, &current, &update, collision, pods)
            .await
        {
            Ok(r) => r,
            Err(e) => (None, Err(e)),
        };
        if let Some(status) = &status {
            self.put_status(set, status.clone()).await?;
        }
        let truncated = self
            .truncate_history(set, pods, &revisions, &current, &update)
            .await;
        result?;
        truncated?;
        Ok(status)
    }

    /// `getStatefulSetRevisions`: (current, update, collision count). The update
    /// revision is the last revision if equal to the set's template, an older
    /// equal one renumbered (a rollback), or a new one.
    async fn revisions_of(
        &self,
        set: &StatefulSet,
        revisions: &[ControllerRevision],
    ) -> Result<(ControllerRevision, ControllerRevision, i32), Error> {
        let api = self.revisions_api(set);
        let mut collision = set
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let template = set
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let mut candidate = history::new_revision(
            set,
            template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
            history::template_patch(&template),
            history::next_revision(revisions),
            Some(collision),
        );
        if let Some(a) = &set.metadata.annotations {
            candidate
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .extend(a.clone());
        }
        let equal = history::find_equal(revisions, &candidate);
        let update = match (equal.last(), revisions.last()) {
            (Some(eq), Some(last)) if history::equal_revision(last, eq) => last.clone(),
            (Some(eq), _) => history::set_revision_number(&api, eq, candidate.revision).await?,
            (None, _) => history::create(&api, set, &candidate, &mut collision).await?,
        };
        let current_name = set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.clone())
            .unwrap_or_default();
        let current = revisions
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(current_name.as_str()))
            .cloned()
            .unwrap_or_else(|| update.clone());
        Ok((current, update, collision))
    }

    /// `updateStatefulSet`: one step of the set's pods toward the spec; the status
    /// is reported even when a step fails.
    async fn update_pods(
        &self,
        set: &StatefulSet,
        current: &ControllerRevision,
        update: &ControllerRevision,
        collision: i32,
        pods: &[Pod],
    ) -> Result<(Option<Status>, Result<(), Error>), Error> {
        let current_set = apply_revision(set, current)?;
        let update_set = apply_revision(set, update)?;
        let (cur_name, upd_name) = (current.name_any(), update.name_any());
        let mut status = Status {
            observed_generation: set.metadata.generation,
            current_revision: cur_name.clone(),
            update_revision: upd_name.clone(),
            collision_count: collision,
            counts: counts(set, &[pods], &cur_name, &upd_name),
        };
        let start = utils::start_ordinal(set);
        let replica_count = utils::replicas(set).max(0) as usize;
        let mut slots: Vec<Option<Pod>> = vec![None; replica_count];
        let mut condemned: Vec<Pod> = Vec::new();
        for pod in pods {
            let ord = utils::ordinal(pod);
            if utils::in_ordinal_range(pod, set) {
                slots[(ord - start) as usize] = Some(pod.clone());
            } else if ord >= 0 {
                condemned.push(pod.clone());
            }
        }
        let replicas: Vec<Pod> = slots
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                p.unwrap_or_else(|| {
                    new_versioned_pod(
                        &current_set,
                        &update_set,
                        &cur_name,
                        &upd_name,
                        start + i as i32,
                    )
                })
            })
            .collect();
        condemned.sort_by_key(|p| std::cmp::Reverse(utils::ordinal(p)));
        let first_unhealthy: Option<String> = replicas
            .iter()
            .chain(condemned.iter().rev())
            .find(|p| !utils::is_healthy(p))
            .map(|p| p.name_any());
        if set.metadata.deletion_timestamp.is_some() {
            return Ok((Some(status), Ok(())));
        }
        let monotonic = !allows_burst(set);
        let recount = |status: &mut Status| {
            status.counts = counts(set, &[&replicas, &condemned], &cur_name, &upd_name);
        };

        // Replicas: create, recreate finished ones, restore identity and storage.
        for pod in &replicas {
            match self.process_replica(set, &update_set, monotonic, pod).await {
                Ok(true) if monotonic => {
                    recount(&mut status);
                    return Ok((Some(status), Ok(())));
                }
                Ok(_) => {}
                Err(e) => {
                    recount(&mut status);
                    return Ok((Some(status), Err(e)));
                }
            }
        }
        // Claims of condemned pods follow the retention policy.
        for pod in &condemned {
            if !self.claims_match_policy(&update_set, pod) {
                if let Err(e) = self.update_claims_for_policy(&update_set, pod).await {
                    recount(&mut status);
                    return Ok((Some(status), Err(e)));
                }
            }
        }
        // Scale down, highest ordinal first.
        for pod in &condemned {
            match self
                .process_condemned(set, first_unhealthy.as_deref(), monotonic, pod)
                .await
            {
                Ok(true) if monotonic => {
                    recount(&mut status);
                    return Ok((Some(status), Ok(())));
                }
                Ok(_) => {}
                Err(e) => {
                    recount(&mut status);
                    return Ok((Some(status), Err(e)));
                }
            }
        }
        recount(&mut status);
        if !is_rolling_update(set) {
            return Ok((Some(status), Ok(())));
        }
        // Rolling update: the highest ordinal not at the update revision is deleted
        // (and recreated at it next time); unhealthy pods on the way block.
        let update_min = partition(set).unwrap_or(0).max(0) as usize;
        for target in (update_min..replicas.len()).rev() {
            let pod = &replicas[target];
            if utils::pod_revision(pod) != Some(upd_name.as_str()) && !utils::is_terminating(pod) {
                tracing::info!(statefulset = %set.name_any(), pod = %pod.name_any(), "pod of StatefulSet is terminating for update");
                let r = self.delete_pod(set, pod).await;
                status.counts.current -= 1;
                return Ok((Some(status), r));
            }
            if !utils::is_healthy(pod) {
                return Ok((Some(status), Ok(())));
            }
        }
        Ok((Some(status), Ok(())))
    }

    /// `processReplica`: `Ok(true)` when an ordered set must stop here.
    async fn process_replica(
        &self,
        set: &StatefulSet,
        update_set: &StatefulSet,
        monotonic: bool,
        pod: &Pod,
    ) -> Result<bool, Error> {
        if utils::is_failed(pod) || utils::is_succeeded(pod) {
            // Finished pods are deleted; the next sync recreates them.
            if !utils::is_terminating(pod) {
                self.delete_pod(set, pod).await?;
            }
            return Ok(true);
        }
        if !utils::is_created(pod) {
            if self.claim_is_stale(set, pod) {
                return Ok(true);
            }
            self.create_pod(set, pod).await?;
            return Ok(monotonic);
        }
        if utils::is_pending(pod) {
            self.create_missing_claims(set, pod).await?;
        }
        if monotonic {
            if utils::is_terminating(pod) || !utils::is_running_and_ready(pod) {
                return Ok(true);
            }
            if !utils::is_running_and_available(pod, utils::min_ready_seconds(set)) {
                return Ok(true);
            }
        }
        let retention = self.claims_match_policy(update_set, pod);
        if utils::identity_matches(set, pod) && utils::storage_matches(set, pod) && retention {
            return Ok(false);
        }
        self.update_pod(update_set, pod).await?;
        Ok(false)
    }

    /// `processCondemned`: deletes an out-of-range pod; ordered sets wait for
    /// terminations and for the pod to be healthy unless it is the first unhealthy
    /// one.
    async fn process_condemned(
        &self,
        set: &StatefulSet,
        first_unhealthy: Option<&str>,
        monotonic: bool,
        pod: &Pod,
    ) -> Result<bool, Error> {
        if utils::is_terminating(pod) {
            return Ok(monotonic);
        }
        let is_first_unhealthy = first_unhealthy == pod.metadata.name.as_deref();
        let healthy = utils::is_running_and_ready(pod)
            && utils::is_running_and_available(pod, utils::min_ready_seconds(set));
        if monotonic && !is_first_unhealthy && !healthy {
            return Ok(true);
        }
        tracing::info!(statefulset = %set.name_any(), pod = %pod.name_any(), "pod of StatefulSet is terminating for scale down");
        self.delete_pod(set, pod).await?;
        Ok(true)
    }

    /// `updateStatefulSetStatus`: completes a finished rolling update and PUTs the
    /// status when it changed.
    async fn put_status(&self, set: &StatefulSet, mut s: Status) -> Result<(), Error> {
        if is_rolling_update(set)
            && s.counts.updated == s.counts.replicas
            && s.counts.ready == s.counts.replicas
        {
            s.counts.current = s.counts.updated;
            s.current_revision = s.update_revision.clone();
        }
        let old = set.status.clone().unwrap_or_default();
        let consistent = s.observed_generation.unwrap_or(0) <= old.observed_generation.unwrap_or(0)
            && old.replicas == s.counts.replicas
            && old.current_replicas.unwrap_or(0) == s.counts.current
            && old.ready_replicas.unwrap_or(0) == s.counts.ready
            && old.updated_replicas.unwrap_or(0) == s.counts.updated
            && old.available_replicas.unwrap_or(0) == s.counts.available
            && old.current_revision.as_deref().unwrap_or("") == s.current_revision
            && old.update_revision.as_deref().unwrap_or("") == s.update_revision
            && old.collision_count.unwrap_or(0) == s.collision_count;
        if consistent {
            return Ok(());
        }
        let status = json!({
            "observedGeneration": s.observed_generation,
            "replicas": s.counts.replicas,
            "readyReplicas": s.counts.ready,
            "currentReplicas": s.counts.current,
            "updatedReplicas": s.counts.updated,
            "availableReplicas": s.counts.available,
            "currentRevision": s.current_revision,
            "updateRevision": s.update_revision,
            "collisionCount": s.collision_count,
        });
        let api: Api<StatefulSet> = Api::namespaced(
            self.ctx.client.clone(),
            &set.namespace().unwrap_or_default(),
        );
        history::put_status(&api, set, status).await
    }

    /// `truncateHistory`: deletes the oldest revisions no pod, nor the current or
    /// update revision, uses beyond revisionHistoryLimit.
    async fn truncate_history(
        &self,
        set: &StatefulSet,
        pods: &[Pod],
        revisions: &[ControllerRevision],
        current: &ControllerRevision,
        update: &ControllerRevision,
    ) -> Result<(), Error> {
        let mut live: BTreeSet<String> = pods
            .iter()
            .filter_map(|p| utils::pod_revision(p).map(str::to_string))
            .collect();
        live.insert(current.name_any());
        live.insert(update.name_any());
        let old: Vec<&ControllerRevision> = revisions
            .iter()
            .filter(|r| !live.contains(&r.name_any()))
            .collect();
        let limit =
            history::history_limit(set.spec.as_ref().and_then(|s| s.revision_history_limit));
        if old.len() <= limit {
            return Ok(());
        }
        let api = self.revisions_api(set);
        for r in &old[..old.len() - limit] {
            history::delete(&api, &r.name_any()).await?;
        }
        Ok(())
    }
}
