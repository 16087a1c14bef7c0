//! Upstream `pkg/controller/deployment/progress.go`: the Progressing condition of a
//! rollout (NewReplicaSetAvailable, ReplicaSetUpdated, ProgressDeadlineExceeded),
//! ReplicaSet failures promoted to the Deployment, and the re-check scheduled for
//! when the progress deadline would pass.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use kube::ResourceExt;

use super::sync::{all_of, partition, same_status};
use super::util;
use super::Controller;
use crate::error::Error;

impl Controller {
    /// `syncRolloutStatus`.
    pub(super) async fn sync_rollout_status(
        &self,
        key: &str,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
        new_uid: Option<&str>,
    ) -> Result<(), Error> {
        let (new, old) = partition(rs_list, new_uid);
        let all = all_of(&new, &old);
        let now = util::now();
        let mut status = util::calculate_status(&all, new.as_ref(), d, now);
        let deadline = util::progress_deadline(d);
        if deadline.is_none() {
            util::remove_condition(&mut status, util::PROGRESSING);
        }
        let current_status = d.status.clone().unwrap_or_default();
        let current = util::get_condition(&current_status, util::PROGRESSING).cloned();
        let complete_before = status.replicas == status.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(util::NEW_RS_AVAILABLE));
        if deadline.is_some() && !complete_before {
            let subject = match &new {
                Some(rs) => format!("ReplicaSet \"{}\"", rs.name_any()),
                None => format!("Deployment \"{}\"", d.name_any()),
            };
            if util::deployment_complete(d, &status) {
                let c = util::new_condition(
                    util::PROGRESSING,
                    "True",
                    util::NEW_RS_AVAILABLE,
                    format!("{subject} has successfully progressed."),
                    now,
                );
                util::set_condition(&mut status, c);
            } else if util::deployment_progressing(d, &status) {
                let mut c = util::new_condition(
                    util::PROGRESSING,
                    "True",
                    util::REPLICA_SET_UPDATED,
                    format!("{subject} is progressing."),
                    now,
                );
                // Progress refreshes lastUpdateTime even when the reason stays.
                if let Some(cur) = &current {
                    if cur.status == "True" {
                        c.last_transition_time = cur.last_transition_time.clone();
                    }
                    util::remove_condition(&mut status, util::PROGRESSING);
                }
                util::set_condition(&mut status, c);
            } else if util::deployment_timed_out(d, &status, now) {
                let c = util::new_condition(
                    util::PROGRESSING,
                    "False",
                    util::TIMED_OUT,
                    format!("{subject} has timed out progressing."),
                    now,
                );
                util::set_condition(&mut status, c);
            }
        }
        match replica_failure(new.as_ref(), &all) {
            Some(c) => util::set_condition(&mut status, c),
            None => util::remove_condition(&mut status, util::REPLICA_FAILURE),
        }
        if same_status(d.status.as_ref(), &status) {
            self.requeue_stuck_deployment(key, d, &status);
            return Ok(());
        }
        self.write_status(d, status).await
    }

    /// `requeueStuckDeployment`: a rollout showing no progress is looked at again
    /// when its deadline would pass.
    fn requeue_stuck_deployment(&self, key: &str, d: &Deployment, new: &DeploymentStatus) {
        let Some(deadline) = util::progress_deadline(d) else {
            return;
        };
        let current_status = d.status.clone().unwrap_or_default();
        let Some(cur) = util::get_condition(&current_status, util::PROGRESSING) else {
            return;
        };
        if util::deployment_complete(d, new) || cur.reason.as_deref() == Some(util::TIMED_OUT) {
            return;
        }
        let Some(updated) = cur.last_update_time.as_ref() else {
            return;
        };
        let after = updated.0.as_second() + i64::from(deadline) - util::now().as_second();
        // A second more than the remaining time, so the check lands past the
        // deadline (upstream adds one against clock skew in AddAfter).
        let after = Duration::from_secs(after.max(0) as u64 + 1);
        tracing::debug!(%key, ?after, "queueing deployment for a progress check");
        self.queue.add_after(key.to_string(), after);
    }
}

/// `getReplicaFailures`: the new ReplicaSet's ReplicaFailure condition, else any
/// ReplicaSet's.
fn replica_failure(new: Option<&ReplicaSet>, all: &[ReplicaSet]) -> Option<DeploymentCondition> {
    let from = |rs: &ReplicaSet| {
        rs.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == util::REPLICA_FAILURE))
            .map(|c| DeploymentCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                last_transition_time: c.last_transition_time.clone(),
                last_update_time: c.last_transition_time.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
            })
    };
    new.and_then(from).or_else(|| all.iter().find_map(from))
}
