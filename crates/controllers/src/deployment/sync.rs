//! Upstream `pkg/controller/deployment/sync.go`: finding or creating the new
//! ReplicaSet (revision, hash, collision count), scaling events and proportional
//! scaling, `ScalingReplicaSet` events, old-ReplicaSet clean-up, the paused
//! conditions and status writes.
//!
//! A sync works on one copy of the Deployment and of its ReplicaSets (`rs_list`);
//! every write replaces the copy with what the API server returned, so later steps
//! of the same sync see it (upstream re-reads stale copies and retries on conflict).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::ResourceExt;
use serde_json::{json, Value};

use super::util::{self, replicas, rs_replicas};
use super::Controller;
use crate::error::{is_conflict, is_not_found, Error, ResultExt};
use crate::events::EventType;
use crate::podutil;

/// The new ReplicaSet (by uid) and the old ones, from the sync's copy.
pub(super) fn partition(
    rs_list: &[ReplicaSet],
    new_uid: Option<&str>,
) -> (Option<ReplicaSet>, Vec<ReplicaSet>) {
    let mut new = None;
    let mut old = Vec::new();
    for rs in rs_list {
        if new_uid.is_some() && rs.metadata.uid.as_deref() == new_uid {
            new = Some(rs.clone());
        } else {
            old.push(rs.clone());
        }
    }
    (new, old)
}

/// Old and new together (upstream's `append(oldRSs, newRS)`).
pub(super) fn all_of(new: &Option<ReplicaSet>, old: &[ReplicaSet]) -> Vec<ReplicaSet> {
    let mut all = old.to_vec();
    all.extend(new.clone());
    all
}

fn store(rs_list: &mut Vec<ReplicaSet>, rs: ReplicaSet) {
    match rs_list
        .iter_mut()
        .find(|r| r.metadata.uid == rs.metadata.uid)
    {
        Some(slot) => *slot = rs,
        None => rs_list.push(rs),
    }
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Status equality as the API stores it: zero counters and empty lists are omitted.
pub(super) fn same_status(old: Option<&DeploymentStatus>, new: &DeploymentStatus) -> bool {
    fn norm(s: Option<&DeploymentStatus>) -> Value {
        let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
        if let Some(m) = v.as_object_mut() {
            m.retain(|_, v| !(v.is_null() || *v == json!(0) || *v == json!([])));
        }
        if v.is_null() {
            v = json!({});
        }
        v
    }
    norm(old) == norm(Some(new))
}

impl Controller {
    /// `UpdateStatus` with `status` (the deployment-controller role may update, not
    /// patch); the sync's copy becomes what the API server returned.
    pub(super) async fn write_status(
        &self,
        d: &mut Deployment,
        status: DeploymentStatus,
    ) -> Result<(), Error> {
        let mut obj = d.clone();
        obj.status = Some(status);
        let ns = d.namespace().unwrap_or_default();
        match self
            .d_api(&ns)
            .replace_status(&d.name_any(), &PostParams::default(), &obj)
            .await
        {
            Ok(updated) => *d = updated,
            Err(e) if is_not_found(&e) => *d = obj,
            Err(e) => {
                return Err(e).action(format!(
                    "updating status of deployment {ns}/{}",
                    d.name_any()
                ))
            }
        }
        Ok(())
    }

    /// `SetDeploymentRevision`. Upstream carries the annotation in its next status
    /// update (the apps status strategy keeps metadata changes); here it is an update
    /// of the Deployment itself, which works whether or not the API server does so.
    async fn set_deployment_revision(
        &self,
        d: &mut Deployment,
        revision: &str,
    ) -> Result<(), Error> {
        let current = d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(util::REVISION));
        if revision.is_empty() || current.map(String::as_str) == Some(revision) {
            return Ok(());
        }
        let mut obj = d.clone();
        obj.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(util::REVISION.into(), revision.into());
        let ns = d.namespace().unwrap_or_default();
        match self
            .d_api(&ns)
            .replace(&d.name_any(), &PostParams::default(), &obj)
            .await
        {
            Ok(updated) => *d = updated,
            Err(e) if is_not_found(&e) => *d = obj,
            Err(e) => {
                return Err(e).action(format!(
                    "setting the revision of deployment {ns}/{}",
                    d.name_any()
                ))
            }
        }
        Ok(())
    }

    async fn update_rs(&self, rs: &ReplicaSet) -> Result<ReplicaSet, Error> {
        let ns = rs.namespace().unwrap_or_default();
        self.rs_api(&ns)
            .replace(&rs.name_any(), &PostParams::default(), rs)
            .await
            .action(format!("updating replica set {ns}/{}", rs.name_any()))
    }

    /// `getAllReplicaSetsAndSyncRevision`: syncs the new ReplicaSet's revision and
    /// annotations (creating it when `create`) and returns its uid.
    pub(super) async fn get_all_rss_and_sync_revision(
        &self,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
        create: bool,
    ) -> Result<Option<String>, Error> {
        let (_, old) = util::split(d, rs_list);
        let new = self.get_new_replica_set(d, rs_list, &old, create).await?;
        Ok(new.and_then(|rs| rs.metadata.uid))
    }

    /// `getNewReplicaSet`.
    async fn get_new_replica_set(
        &self,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
        old: &[ReplicaSet],
        create: bool,
    ) -> Result<Option<ReplicaSet>, Error> {
        let new_revision = util::max_revision(old.iter()) + 1;
        let now = util::now();
        if let Some(i) = util::find_new(d, rs_list) {
            let mut copy = rs_list[i].clone();
            let annotations_updated =
                util::set_new_rs_annotations(d, &mut copy, new_revision, true);
            let mrs = util::min_ready_seconds(d);
            let rs_mrs = copy
                .spec
                .as_ref()
                .and_then(|s| s.min_ready_seconds)
                .unwrap_or(0);
            if annotations_updated || rs_mrs != mrs {
                copy.spec
                    .get_or_insert_with(Default::default)
                    .min_ready_seconds = Some(mrs);
                let updated = self.update_rs(&copy).await?;
                store(rs_list, updated.clone());
                return Ok(Some(updated));
            }
            let rev = copy
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(util::REVISION))
                .cloned()
                .unwrap_or_default();
            self.set_deployment_revision(d, &rev).await?;
            let status = d.status.clone().unwrap_or_default();
            if util::progress_deadline(d).is_some()
                && util::get_condition(&status, util::PROGRESSING).is_none()
            {
                let mut st = status;
                let msg = format!("Found new replica set \"{}\"", copy.name_any());
                let c =
                    util::new_condition(util::PROGRESSING, "True", util::FOUND_NEW_RS, msg, now);
                util::set_condition(&mut st, c);
                self.write_status(d, st).await?;
            }
            return Ok(Some(copy));
        }
        if !create {
            return Ok(None);
        }
        self.create_new_replica_set(d, rs_list, old, new_revision)
            .await
    }

    /// The creation half of `getNewReplicaSet`.
    async fn create_new_replica_set(
        &self,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
        old: &[ReplicaSet],
        new_revision: i64,
    ) -> Result<Option<ReplicaSet>, Error> {
        let ns = d.namespace().unwrap_or_default();
        let now = util::now();
        let mut template = util::template(d);
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = util::compute_hash(&template, collision);
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(util::POD_TEMPLATE_HASH.into(), hash.clone());
        let mut sel = util::selector(d);
        sel.match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(util::POD_TEMPLATE_HASH.into(), hash.clone());
        let name = format!("{}-{hash}", d.name_any());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                owner_references: Some(vec![podutil::new_controller_ref(d)]),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: Some(util::min_ready_seconds(d)),
                selector: sel,
                template: Some(template),
            }),
            status: None,
        };
        let mut all = old.to_vec();
        all.push(rs.clone());
        let new_replicas = util::new_rs_new_replicas(d, &all, &rs);
        util::set_rs_replicas(&mut rs, new_replicas);
        util::set_new_rs_annotations(d, &mut rs, new_revision, false);

        let api = self.rs_api(&ns);
        let (created, already_exists) = match api.create(&PostParams::default(), &rs).await {
            Ok(created) => (created, false),
            Err(e) if is_conflict(&e) => {
                // A slow cache, or a hash collision with a ReplicaSet of another
                // template: only the first is ours to use.
                let existing = api
                    .get(&name)
                    .await
                    .action(format!("reading replica set {ns}/{name}"))?;
                let ours = podutil::controller_ref(&existing.metadata)
                    .is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref());
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| util::equal_ignore_hash(t, &util::template(d)));
                if ours && same {
                    (existing, true)
                } else {
                    let mut st = d.status.clone().unwrap_or_default();
                    let before = st.collision_count.unwrap_or(0);
                    st.collision_count = Some(before + 1);
                    self.write_status(d, st).await?;
                    tracing::info!(deployment = %d.name_any(), old = before, new = before + 1,
                        "found a hash collision for deployment - bumping collisionCount to resolve it");
                    return Err(e).action(format!("creating replica set {ns}/{name}"));
                }
            }
            Err(e) if api_message(&e).contains("because it is being terminated") => {
                return Err(e).action(format!("creating replica set {ns}/{name}"));
            }
            Err(e) => {
                let msg = format!(
                    "Failed to create new replica set \"{name}\": {}",
                    api_message(&e)
                );
                if util::progress_deadline(d).is_some() {
                    let mut st = d.status.clone().unwrap_or_default();
                    let c = util::new_condition(
                        util::PROGRESSING,
                        "False",
                        util::FAILED_RS_CREATE,
                        msg.clone(),
                        now,
                    );
                    util::set_condition(&mut st, c);
                    if let Err(err) = self.write_status(d, st).await {
                        tracing::debug!(error = %err, "recording the replica set creation failure");
                    }
                }
                self.ctx
                    .recorder
                    .event(&*d, EventType::Warning, util::FAILED_RS_CREATE, msg);
                return Err(e).action(format!("creating replica set {ns}/{name}"));
            }
        };
        if !already_exists && new_replicas > 0 {
            self.ctx.recorder.event(
                &*d,
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {new_replicas}"),
            );
        }
        store(rs_list, created.clone());
        self.set_deployment_revision(d, &new_revision.to_string())
            .await?;
        if !already_exists && util::progress_deadline(d).is_some() {
            let mut st = d.status.clone().unwrap_or_default();
            let msg = format!("Created new replica set \"{name}\"");
            let c = util::new_condition(util::PROGRESSING, "True", util::NEW_REPLICA_SET, msg, now);
            util::set_condition(&mut st, c);
            self.write_status(d, st).await?;
        }
        Ok(Some(created))
    }

    /// `scaleReplicaSetAndRecordEvent`: whether the size changed.
    pub(super) async fn scale_rs_and_record(
        &self,
        d: &Deployment,
        rs_list: &mut Vec<ReplicaSet>,
        uid: Option<&str>,
        new_scale: i32,
    ) -> Result<bool, Error> {
        let Some(rs) = rs_list.iter().find(|r| r.metadata.uid.as_deref() == uid) else {
            return Ok(false);
        };
        if rs_replicas(rs) == new_scale {
            return Ok(false);
        }
        let op = if rs_replicas(rs) < new_scale {
            "up"
        } else {
            "down"
        };
        self.scale_replica_set(d, rs_list, uid, new_scale, op).await
    }

    /// `scaleReplicaSet`: sets the size and the replicas annotations; an event when
    /// the size changed.
    pub(super) async fn scale_replica_set(
        &self,
        d: &Deployment,
        rs_list: &mut Vec<ReplicaSet>,
        uid: Option<&str>,
        new_scale: i32,
        op: &str,
    ) -> Result<bool, Error> {
        let Some(rs) = rs_list.iter().find(|r| r.metadata.uid.as_deref() == uid) else {
            return Ok(false);
        };
        let desired = replicas(d);
        let max = desired + util::max_surge(d);
        let size_changes = rs_replicas(rs) != new_scale;
        if !size_changes && !util::replicas_annotations_need_update(rs, desired, max) {
            return Ok(false);
        }
        let old_scale = rs_replicas(rs);
        let mut copy = rs.clone();
        util::set_rs_replicas(&mut copy, new_scale);
        util::set_replicas_annotations(&mut copy, desired, max);
        let updated = self.update_rs(&copy).await?;
        let name = updated.name_any();
        store(rs_list, updated);
        if size_changes {
            self.ctx.recorder.event(
                d,
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled {op} replica set {name} from {old_scale} to {new_scale}"),
            );
        }
        Ok(size_changes)
    }

    /// `scale`: a scaling event (or a paused Deployment): the only active
    /// ReplicaSet takes the new size, a saturated new one leaves old ones at 0, else
    /// the change is spread proportionally (larger ReplicaSets first).
    async fn scale(
        &self,
        d: &Deployment,
        rs_list: &mut Vec<ReplicaSet>,
        new_uid: Option<&str>,
    ) -> Result<(), Error> {
        let (new, old) = partition(rs_list, new_uid);
        if let Some(target) = util::find_active_or_latest(new.as_ref(), &old) {
            if rs_replicas(&target) == replicas(d) {
                return Ok(());
            }
            let uid = target.metadata.uid.clone();
            self.scale_rs_and_record(d, rs_list, uid.as_deref(), replicas(d))
                .await?;
            return Ok(());
        }
        if util::is_saturated(d, new.as_ref()) {
            for o in util::active(&old) {
                let uid = o.metadata.uid.clone();
                self.scale_rs_and_record(d, rs_list, uid.as_deref(), 0)
                    .await?;
            }
            return Ok(());
        }
        if !util::is_rolling_update(d) {
            return Ok(());
        }
        let mut all = util::active(&all_of(&new, &old));
        let total: i32 = all.iter().map(rs_replicas).sum();
        let allowed = if replicas(d) > 0 {
            replicas(d) + util::max_surge(d)
        } else {
            0
        };
        let to_add = allowed - total;
        let op = match to_add.signum() {
            1 => {
                all.sort_by(util::by_size_newer);
                "up"
            }
            -1 => {
                all.sort_by(util::by_size_older);
                "down"
            }
            _ => "",
        };
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(all.len());
        for rs in &all {
            if to_add != 0 {
                let p = util::get_proportion(rs, d, to_add, added);
                sizes.push(rs_replicas(rs) + p);
                added += p;
            } else {
                sizes.push(rs_replicas(rs));
            }
        }
        for (i, rs) in all.iter().enumerate() {
            if i == 0 && to_add != 0 {
                sizes[0] = (sizes[0] + to_add - added).max(0);
            }
            let uid = rs.metadata.uid.clone();
            self.scale_replica_set(d, rs_list, uid.as_deref(), sizes[i], op)
                .await?;
        }
        Ok(())
    }

    /// `cleanupDeployment`: deletes the oldest old ReplicaSets beyond
    /// `revisionHistoryLimit` that run nothing.
    pub(super) async fn cleanup_deployment(
        &self,
        d: &Deployment,
        rs_list: &[ReplicaSet],
        new_uid: Option<&str>,
    ) -> Result<(), Error> {
        let Some(limit) = util::revision_history_limit(d) else {
            return Ok(());
        };
        let (_, old) = partition(rs_list, new_uid);
        let mut cleanable: Vec<ReplicaSet> = old
            .into_iter()
            .filter(|r| r.metadata.deletion_timestamp.is_none())
            .collect();
        let diff = cleanable.len() as i64 - i64::from(limit);
        if diff <= 0 {
            return Ok(());
        }
        cleanable.sort_by(util::by_revision);
        for rs in cleanable.iter().take(diff as usize) {
            let generation = rs.metadata.generation.unwrap_or(0);
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if util::rs_actual(rs) != 0 || rs_replicas(rs) != 0 || generation > observed {
                continue;
            }
            let ns = rs.namespace().unwrap_or_default();
            tracing::debug!(replicaset = %rs.name_any(), deployment = %d.name_any(), "cleaning up old replica set");
            match self
                .rs_api(&ns)
                .delete(&rs.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    return Err(e).action(format!("deleting replica set {ns}/{}", rs.name_any()))
                }
            }
        }
        Ok(())
    }

    /// `isScalingEvent`: an active ReplicaSet was sized for another replica count.
    pub(super) async fn is_scaling_event(
        &self,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
    ) -> Result<bool, Error> {
        let new_uid = self
            .get_all_rss_and_sync_revision(d, rs_list, false)
            .await?;
        let (new, old) = partition(rs_list, new_uid.as_deref());
        Ok(util::active(&all_of(&new, &old))
            .iter()
            .filter_map(util::desired_replicas_annotation)
            .any(|desired| desired != replicas(d)))
    }

    /// upstream `sync`: scaling events and paused Deployments.
    pub(super) async fn sync_scale(
        &self,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
    ) -> Result<(), Error> {
        let new_uid = self
            .get_all_rss_and_sync_revision(d, rs_list, false)
            .await?;
        self.scale(d, rs_list, new_uid.as_deref()).await?;
        if util::paused(d) && super::rollback::rollback_to(d).is_none() {
            self.cleanup_deployment(d, rs_list, new_uid.as_deref())
                .await?;
        }
        self.sync_deployment_status(d, rs_list, new_uid.as_deref())
            .await
    }

    /// `syncStatusOnly`: a Deployment being deleted only reports.
    pub(super) async fn sync_status_only(
        &self,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
    ) -> Result<(), Error> {
        let new_uid = self
            .get_all_rss_and_sync_revision(d, rs_list, false)
            .await?;
        self.sync_deployment_status(d, rs_list, new_uid.as_deref())
            .await
    }

    /// `syncDeploymentStatus`.
    async fn sync_deployment_status(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
        new_uid: Option<&str>,
    ) -> Result<(), Error> {
        let (new, old) = partition(rs_list, new_uid);
        let status = util::calculate_status(&all_of(&new, &old), new.as_ref(), d, util::now());
        if same_status(d.status.as_ref(), &status) {
            return Ok(());
        }
        self.write_status(d, status).await
    }

    /// `checkPausedConditions`: Progressing Unknown while paused, and on resume, so
    /// a pause never counts against the progress deadline.
    pub(super) async fn check_paused_conditions(&self, d: &mut Deployment) -> Result<(), Error> {
        if util::progress_deadline(d).is_none() {
            return Ok(());
        }
        let mut status = d.status.clone().unwrap_or_default();
        let reason = util::get_condition(&status, util::PROGRESSING).and_then(|c| c.reason.clone());
        if reason.as_deref() == Some(util::TIMED_OUT) {
            return Ok(());
        }
        let paused_exists = reason.as_deref() == Some(util::PAUSED);
        let now = util::now();
        let cond = if util::paused(d) && !paused_exists {
            util::new_condition(
                util::PROGRESSING,
                "Unknown",
                util::PAUSED,
                "Deployment is paused".into(),
                now,
            )
        } else if !util::paused(d) && paused_exists {
            util::new_condition(
                util::PROGRESSING,
                "Unknown",
                util::RESUMED,
                "Deployment is resumed".into(),
                now,
            )
        } else {
            return Ok(());
        };
        util::set_condition(&mut status, cond);
        self.write_status(d, status).await
    }
}
