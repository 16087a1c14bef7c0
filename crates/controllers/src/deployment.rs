//! The Deployment controller (upstream `pkg/controller/deployment`): rolls a
//! Deployment's pod template out through ReplicaSets it owns — one per template,
//! named `<deployment>-<pod-template-hash>` — by the RollingUpdate (maxSurge /
//! maxUnavailable) or Recreate strategy, scales them proportionally when the
//! Deployment is scaled mid-rollout, keeps `revisionHistoryLimit` old ones for
//! `kubectl rollout undo`, and reports replicas and the Available / Progressing
//! conditions (with the progress deadline) in status.
//!
//! This file holds what upstream's `deployment_controller.go` does: the informer
//! handlers, `syncDeployment`'s dispatch and ReplicaSet adoption
//! (`ClaimReplicaSets`). [`sync`] mirrors `sync.go` (new ReplicaSet, scaling,
//! clean-up, status), [`rolling`] `rolling.go` and `recreate.go`, [`progress`]
//! `progress.go`, [`rollback`] `rollback.go`, [`util`] `util/deployment_util.go`.

mod progress;
mod rollback;
mod rolling;
mod sync;
pub mod util;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::context::ControllerContext;
use crate::error::{is_not_found, Error, ResultExt};
use crate::events::EventType;
use crate::informer::{key_of, Notification, Store};
use crate::podutil::{self, controller_ref};
use crate::selector;
use crate::workqueue::{run_workers, WorkQueue};

struct Controller {
    ctx: ControllerContext,
    deployments: Store<Deployment>,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    queue: Arc<WorkQueue>,
}

/// Starts the Deployment controller.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let workers = ctx.config.concurrent_deployment_syncs;
    let d_inf = ctx.informers.get::<Deployment>();
    let rs_inf = ctx.informers.get::<ReplicaSet>();
    let pod_inf = ctx.informers.get::<Pod>();
    let c = Arc::new(Controller {
        deployments: d_inf.store(),
        replica_sets: rs_inf.store(),
        pods: pod_inf.store(),
        queue: WorkQueue::new(ctx.name),
        ctx,
    });
    {
        let c = c.clone();
        d_inf.add_handler(move |n| match n {
            Notification::Add(d)
            | Notification::Update { new: d, .. }
            | Notification::Delete(d) => c.queue.add(key_of(&**d)),
        });
    }
    {
        let c = c.clone();
        rs_inf.add_handler(move |n| c.on_replica_set(n));
    }
    {
        let c = c.clone();
        pod_inf.add_handler(move |n| {
            if let Notification::Delete(pod) = n {
                c.on_pod_deleted(pod);
            }
        });
    }
    let stop = c.ctx.stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = async {
                d_inf.wait_synced().await;
                rs_inf.wait_synced().await;
                pod_inf.wait_synced().await;
            } => {}
            _ = async { let mut s = stop.clone(); let _ = s.wait_for(|s| *s).await; } => return,
        }
        let queue = c.queue.clone();
        run_workers(queue, workers, stop, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    });
    Ok(())
}

impl Controller {
    /// The Deployment a controller reference names, if it still exists with that uid.
    fn resolve(&self, namespace: &str, r: &OwnerReference) -> Option<Arc<Deployment>> {
        if r.kind != "Deployment" {
            return None;
        }
        let d = self.deployments.get(namespace, &r.name)?;
        (d.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(d)
    }

    /// Deployments whose selector matches an orphan ReplicaSet
    /// (`getDeploymentsForReplicaSet`).
    fn deployments_for(&self, rs: &ReplicaSet) -> Vec<Arc<Deployment>> {
        let labels = podutil::labels(&rs.metadata);
        self.deployments
            .list_namespace(&rs.namespace().unwrap_or_default())
            .into_iter()
            .filter(|d| {
                let s = util::selector(d);
                !selector::is_empty(&s) && selector::matches(&s, labels)
            })
            .collect()
    }

    fn enqueue_owner(&self, rs: &ReplicaSet) -> bool {
        let ns = rs.namespace().unwrap_or_default();
        match controller_ref(&rs.metadata) {
            Some(r) => {
                if let Some(d) = self.resolve(&ns, r) {
                    self.queue.add(key_of(&*d));
                }
                true
            }
            None => false,
        }
    }

    fn on_replica_set(&self, n: &Notification<ReplicaSet>) {
        match n {
            Notification::Add(rs) => {
                // A ReplicaSet seen first while being deleted counts as deleted; one
                // with a controller concerns only that controller.
                if self.enqueue_owner(rs) || rs.metadata.deletion_timestamp.is_some() {
                    return;
                }
                for d in self.deployments_for(rs) {
                    self.queue.add(key_of(&*d));
                }
            }
            Notification::Update { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let old_ref = controller_ref(&old.metadata);
                let new_ref = controller_ref(&new.metadata);
                let ref_changed = old_ref.map(|r| &r.uid) != new_ref.map(|r| &r.uid);
                if ref_changed {
                    if let Some(r) = old_ref {
                        if let Some(d) = self.resolve(&old.namespace().unwrap_or_default(), r) {
                            self.queue.add(key_of(&*d));
                        }
                    }
                }
                if self.enqueue_owner(new) {
                    return;
                }
                if ref_changed || old.metadata.labels != new.metadata.labels {
                    for d in self.deployments_for(new) {
                        self.queue.add(key_of(&*d));
                    }
                }
            }
            Notification::Delete(rs) => {
                self.enqueue_owner(rs);
            }
        }
    }

    /// A Recreate Deployment waits for its old pods to be gone: each deletion may
    /// be the last one.
    fn on_pod_deleted(&self, pod: &Pod) {
        let ns = pod.namespace().unwrap_or_default();
        let Some(r) = controller_ref(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else {
            return;
        };
        let Some(rs) = self
            .replica_sets
            .get(&ns, &r.name)
            .filter(|rs| rs.metadata.uid.as_deref() == Some(r.uid.as_str()))
        else {
            return;
        };
        let Some(d) = controller_ref(&rs.metadata).and_then(|r| self.resolve(&ns, r)) else {
            return;
        };
        if util::strategy_type(&d) == "Recreate" {
            self.queue.add(key_of(&*d));
        }
    }

    fn rs_api(&self, ns: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.ctx.client.clone(), ns)
    }

    fn d_api(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.ctx.client.clone(), ns)
    }

    /// `syncDeployment`.
    async fn sync(&self, key: &str) -> Result<(), Error> {
        let Some(cached) = self.deployments.get_key(key) else {
            return Ok(());
        };
        let mut d = (*cached).clone();
        tracing::debug!(%key, "syncing deployment");
        let sel = util::selector(&d);
        if selector::is_empty(&sel) {
            self.ctx.recorder.event(
                &d,
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            );
            let observed = d
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            let generation = d.metadata.generation.unwrap_or(0);
            if observed < generation {
                let mut st = d.status.clone().unwrap_or_default();
                st.observed_generation = Some(generation);
                self.write_status(&mut d, st).await?;
            }
            return Ok(());
        }
        let mut rs_list = self.claim_replica_sets(&d).await?;
        if d.metadata.deletion_timestamp.is_some() {
            return self.sync_status_only(&mut d, &mut rs_list).await;
        }
        self.check_paused_conditions(&mut d).await?;
        if util::paused(&d) {
            return self.sync_scale(&mut d, &mut rs_list).await;
        }
        if rollback::rollback_to(&d).is_some() {
            return self.rollback(&mut d, &mut rs_list).await;
        }
        if self.is_scaling_event(&mut d, &mut rs_list).await? {
            return self.sync_scale(&mut d, &mut rs_list).await;
        }
        match util::strategy_type(&d) {
            "Recreate" => self.rollout_recreate(key, &mut d, &mut rs_list).await,
            "RollingUpdate" => self.rollout_rolling(key, &mut d, &mut rs_list).await,
            other => Err(Error::Invalid {
                what: format!("deployment {key}"),
                reason: format!("unexpected deployment strategy type: {other}"),
            }),
        }
    }

    /// `getReplicaSetsForDeployment` / `ClaimReplicaSets`: the ReplicaSets this
    /// Deployment controls after adopting matching orphans and releasing owned ones
    /// that stopped matching.
    async fn claim_replica_sets(&self, d: &Deployment) -> Result<Vec<ReplicaSet>, Error> {
        let ns = d.namespace().unwrap_or_default();
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let sel = util::selector(d);
        let deleting = d.metadata.deletion_timestamp.is_some();
        let mut can_adopt: Option<bool> = None;
        let mut owned = Vec::new();
        for rs in self.replica_sets.list_namespace(&ns) {
            let matches = selector::matches(&sel, podutil::labels(&rs.metadata));
            match controller_ref(&rs.metadata) {
                Some(r) if r.uid == uid => {
                    if matches {
                        owned.push((*rs).clone());
                    } else if !deleting {
                        self.release(&rs, &uid).await?;
                    }
                }
                Some(_) => {}
                None => {
                    if deleting || !matches || rs.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    let ok = match can_adopt {
                        Some(ok) => ok,
                        None => {
                            let ok = self.recheck_deletion(d).await?;
                            can_adopt = Some(ok);
                            ok
                        }
                    };
                    if !ok {
                        continue;
                    }
                    if let Some(adopted) = self.adopt(d, &rs).await? {
                        owned.push(adopted);
                    }
                }
            }
        }
        Ok(owned)
    }

    /// `RecheckDeletionTimestamp`: adopt only for a Deployment that, read fresh,
    /// is the same object and not being deleted.
    async fn recheck_deletion(&self, d: &Deployment) -> Result<bool, Error> {
        let ns = d.namespace().unwrap_or_default();
        match self.d_api(&ns).get(&d.name_any()).await {
            Ok(fresh) => {
                Ok(fresh.metadata.uid == d.metadata.uid
                    && fresh.metadata.deletion_timestamp.is_none())
            }
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e).action(format!("re-reading deployment {ns}/{}", d.name_any())),
        }
    }

    async fn adopt(&self, d: &Deployment, rs: &ReplicaSet) -> Result<Option<ReplicaSet>, Error> {
        let mut refs = rs.metadata.owner_references.clone().unwrap_or_default();
        refs.push(podutil::new_controller_ref(d));
        let patch = json!({"metadata": {"ownerReferences": refs, "uid": rs.metadata.uid}});
        let ns = rs.namespace().unwrap_or_default();
        match self
            .rs_api(&ns)
            .patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(rs) => Ok(Some(rs)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).action(format!("adopting replica set {ns}/{}", rs.name_any())),
        }
    }

    async fn release(&self, rs: &ReplicaSet, owner_uid: &str) -> Result<(), Error> {
        let refs: Vec<_> = rs
            .metadata
            .owner_references
            .iter()
            .flatten()
            .filter(|r| r.uid != owner_uid)
            .cloned()
            .collect();
        let patch = json!({"metadata": {"ownerReferences": refs, "uid": rs.metadata.uid}});
        let ns = rs.namespace().unwrap_or_default();
        match self
            .rs_api(&ns)
            .patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).action(format!("releasing replica set {ns}/{}", rs.name_any())),
        }
    }

    /// The pods of the Deployment's ReplicaSets other than `new_uid`, whatever
    /// their phase (`getPodMapForDeployment` minus the new RS).
    fn old_pods(
        &self,
        d: &Deployment,
        rs_list: &[ReplicaSet],
        new_uid: Option<&str>,
    ) -> Vec<Arc<Pod>> {
        let sel = util::selector(d);
        let old_uids: Vec<&str> = rs_list
            .iter()
            .filter_map(|r| r.metadata.uid.as_deref())
            .filter(|u| Some(*u) != new_uid)
            .collect();
        self.pods
            .list_namespace(&d.namespace().unwrap_or_default())
            .into_iter()
            .filter(|p| selector::matches(&sel, podutil::labels(&p.metadata)))
            .filter(|p| {
                controller_ref(&p.metadata).is_some_and(|r| old_uids.contains(&r.uid.as_str()))
            })
            .collect()
    }
}
