//! The two rollout strategies: upstream `rolling.go` (scale the new ReplicaSet up
//! within maxSurge, old ones down within maxUnavailable, unhealthy old replicas
//! first) and `recreate.go` (old ReplicaSets to zero, wait for their pods to be
//! gone, then the new one to full size).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::sync::{all_of, partition};
use super::util::{self, replicas, rs_available, rs_replicas};
use super::Controller;
use crate::error::Error;
use crate::podutil;

impl Controller {
    /// `rolloutRolling`.
    pub(super) async fn rollout_rolling(
        &self,
        key: &str,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
    ) -> Result<(), Error> {
        let new_uid = self.get_all_rss_and_sync_revision(d, rs_list, true).await?;
        let new_uid = new_uid.as_deref();
        if new_uid.is_some() {
            if self.reconcile_new_replica_set(d, rs_list, new_uid).await? {
                return self.sync_rollout_status(key, d, rs_list, new_uid).await;
            }
            if self.reconcile_old_replica_sets(d, rs_list, new_uid).await? {
                return self.sync_rollout_status(key, d, rs_list, new_uid).await;
            }
        }
        let current = d.status.clone().unwrap_or_default();
        if util::deployment_complete(d, &current) {
            self.cleanup_deployment(d, rs_list, new_uid).await?;
        }
        self.sync_rollout_status(key, d, rs_list, new_uid).await
    }

    /// `reconcileNewReplicaSet`: whether the new ReplicaSet was scaled.
    async fn reconcile_new_replica_set(
        &self,
        d: &Deployment,
        rs_list: &mut Vec<ReplicaSet>,
        new_uid: Option<&str>,
    ) -> Result<bool, Error> {
        let (Some(new), old) = partition(rs_list, new_uid) else {
            return Ok(false);
        };
        let want = replicas(d);
        if rs_replicas(&new) == want {
            return Ok(false);
        }
        if rs_replicas(&new) > want {
            return self.scale_rs_and_record(d, rs_list, new_uid, want).await;
        }
        let all = all_of(&Some(new.clone()), &old);
        let count = util::new_rs_new_replicas(d, &all, &new);
        self.scale_rs_and_record(d, rs_list, new_uid, count).await
    }

    /// `reconcileOldReplicaSets`: whether any old ReplicaSet was scaled down. As
    /// upstream, a failed scale-down ends this step quietly (the next sync retries).
    async fn reconcile_old_replica_sets(
        &self,
        d: &Deployment,
        rs_list: &mut Vec<ReplicaSet>,
        new_uid: Option<&str>,
    ) -> Result<bool, Error> {
        let (Some(new), old) = partition(rs_list, new_uid) else {
            return Ok(false);
        };
        let old_active = util::active(&old);
        let old_pods: i32 = old_active.iter().map(rs_replicas).sum();
        if old_pods == 0 {
            return Ok(false);
        }
        let all_pods: i32 = all_of(&Some(new.clone()), &old)
            .iter()
            .map(rs_replicas)
            .sum();
        let min_available = replicas(d) - util::max_unavailable(d);
        let new_unavailable = rs_replicas(&new) - rs_available(&new);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        let mut old_uids: Vec<(ReplicaSet, Option<String>)> = old_active
            .into_iter()
            .map(|r| {
                let uid = r.metadata.uid.clone();
                (r, uid)
            })
            .collect();
        old_uids.sort_by(|a, b| util::by_creation(&a.0, &b.0));
        let old_uids: Vec<Option<String>> = old_uids.into_iter().map(|(_, u)| u).collect();
        let cleaned = match self
            .cleanup_unhealthy_replicas(d, rs_list, &old_uids, max_scaled_down)
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(deployment = %key_name(d), error = %e, "cleaning up unhealthy replicas");
                return Ok(false);
            }
        };
        let scaled = match self
            .scale_down_old_replica_sets_for_rolling_update(d, rs_list, &old_uids, new_uid)
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(deployment = %key_name(d), error = %e, "scaling down old replica sets");
                return Ok(false);
            }
        };
        Ok(cleaned + scaled > 0)
    }

    /// `cleanupUnhealthyReplicas`: scales old ReplicaSets down by their unavailable
    /// replicas (oldest first, at most `max_cleanup` in all) — removing those costs
    /// no availability.
    async fn cleanup_unhealthy_replicas(
        &self,
        d: &Deployment,
        rs_list: &mut Vec<ReplicaSet>,
        old_uids: &[Option<String>],
        max_cleanup: i32,
    ) -> Result<i32, Error> {
        let mut total = 0;
        for uid in old_uids {
            if total >= max_cleanup {
                break;
            }
            let Some(rs) = find(rs_list, uid.as_deref()) else {
                continue;
            };
            let (want, available) = (rs_replicas(rs), rs_available(rs));
            if want == 0 || want == available {
                continue;
            }
            let down = (max_cleanup - total).min(want - available);
            let target = want - down;
            if target > want {
                return Err(Error::Invalid {
                    what: format!("replica set {}", rs.metadata.name.clone().unwrap_or_default()),
                    reason: format!(
                        "when cleaning up unhealthy replicas, got invalid request to scale down {want} -> {target}"
                    ),
                });
            }
            self.scale_rs_and_record(d, rs_list, uid.as_deref(), target)
                .await?;
            total += down;
        }
        Ok(total)
    }

    /// `scaleDownOldReplicaSetsForRollingUpdate`: scales old ReplicaSets down (oldest
    /// first) by as many available replicas as exceed the minimum availability.
    async fn scale_down_old_replica_sets_for_rolling_update(
        &self,
        d: &Deployment,
        rs_list: &mut Vec<ReplicaSet>,
        old_uids: &[Option<String>],
        new_uid: Option<&str>,
    ) -> Result<i32, Error> {
        let min_available = replicas(d) - util::max_unavailable(d);
        let available: i32 = old_uids
            .iter()
            .map(|u| u.as_deref())
            .chain(std::iter::once(new_uid))
            .filter_map(|u| find(rs_list, u))
            .map(rs_available)
            .sum();
        if available <= min_available {
            return Ok(0);
        }
        let to_scale_down = available - min_available;
        let mut total = 0;
        for uid in old_uids {
            if total >= to_scale_down {
                break;
            }
            let Some(rs) = find(rs_list, uid.as_deref()) else {
                continue;
            };
            let want = rs_replicas(rs);
            if want == 0 {
                continue;
            }
            let down = want.min(to_scale_down - total);
            self.scale_rs_and_record(d, rs_list, uid.as_deref(), want - down)
                .await?;
            total += down;
        }
        Ok(total)
    }

    /// `rolloutRecreate`.
    pub(super) async fn rollout_recreate(
        &self,
        key: &str,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
    ) -> Result<(), Error> {
        // The new ReplicaSet is not created yet, so nothing scales up before the
        // old pods are down.
        let mut new_uid = self
            .get_all_rss_and_sync_revision(d, rs_list, false)
            .await?;
        let (_, old) = partition(rs_list, new_uid.as_deref());
        let mut scaled_down = false;
        for o in util::active(&old) {
            let uid = o.metadata.uid.clone();
            scaled_down |= self
                .scale_rs_and_record(d, rs_list, uid.as_deref(), 0)
                .await?;
        }
        if scaled_down {
            return self
                .sync_rollout_status(key, d, rs_list, new_uid.as_deref())
                .await;
        }
        if self.old_pods_running(d, rs_list, new_uid.as_deref()) {
            return self
                .sync_rollout_status(key, d, rs_list, new_uid.as_deref())
                .await;
        }
        if new_uid.is_none() {
            new_uid = self.get_all_rss_and_sync_revision(d, rs_list, true).await?;
        }
        self.scale_rs_and_record(d, rs_list, new_uid.as_deref(), replicas(d))
            .await?;
        let current = d.status.clone().unwrap_or_default();
        if util::deployment_complete(d, &current) {
            self.cleanup_deployment(d, rs_list, new_uid.as_deref())
                .await?;
        }
        self.sync_rollout_status(key, d, rs_list, new_uid.as_deref())
            .await
    }

    /// `oldPodsRunning`: an old ReplicaSet still reports replicas, or a pod of one
    /// is not terminal (terminating pods count: they may still run).
    fn old_pods_running(
        &self,
        d: &Deployment,
        rs_list: &[ReplicaSet],
        new_uid: Option<&str>,
    ) -> bool {
        let (_, old) = partition(rs_list, new_uid);
        if old.iter().map(util::rs_actual).sum::<i32>() > 0 {
            return true;
        }
        self.old_pods(d, rs_list, new_uid)
            .iter()
            .any(|p| !podutil::is_terminal(p))
    }
}

fn find<'a>(rs_list: &'a [ReplicaSet], uid: Option<&str>) -> Option<&'a ReplicaSet> {
    uid?;
    rs_list.iter().find(|r| r.metadata.uid.as_deref() == uid)
}

fn key_name(d: &Deployment) -> String {
    format!(
        "{}/{}",
        d.metadata.namespace.clone().unwrap_or_default(),
        d.metadata.name.clone().unwrap_or_default()
    )
}
