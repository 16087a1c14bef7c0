//! The StatefulSet controller (upstream `pkg/controller/statefulset`): pods with a
//! stable identity `<set>-<ordinal>` (hostname, the governing service as subdomain,
//! `statefulset.kubernetes.io/pod-name` and `apps.kubernetes.io/pod-index` labels)
//! and stable storage (claims `<template>-<set>-<ordinal>` created before their pod,
//! owned per `persistentVolumeClaimRetentionPolicy`), created and deleted in order
//! (OrderedReady) or all at once (Parallel), updated through ControllerRevisions
//! (RollingUpdate with partition, OnDelete), with status counters and revisions.
//!
//! Modules: [`utils`] (identity, storage, predicates), `control` (the update
//! algorithm, status, history), `podcontrol` (pod and claim writes with Events).

mod control;
mod podcontrol;
pub mod utils;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::context::ControllerContext;
use crate::error::{is_not_found, Error, ResultExt};
use crate::history;
use crate::informer::{key_of, Notification, Store};
use crate::podutil::{self, controller_ref};
use crate::selector;
use crate::workqueue::{run_workers, WorkQueue};

pub(crate) struct Controller {
    ctx: ControllerContext,
    sets: Store<StatefulSet>,
    pods: Store<Pod>,
    claims: Store<PersistentVolumeClaim>,
    revisions: Store<ControllerRevision>,
    queue: Arc<WorkQueue>,
}

/// Starts the StatefulSet controller.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let workers = ctx.config.concurrent_statefulset_syncs;
    let set_inf = ctx.informers.get::<StatefulSet>();
    let pod_inf = ctx.informers.get::<Pod>();
    let pvc_inf = ctx.informers.get::<PersistentVolumeClaim>();
    let rev_inf = ctx.informers.get::<ControllerRevision>();
    let c = Arc::new(Controller {
        sets: set_inf.store(),
        pods: pod_inf.store(),
        claims: pvc_inf.store(),
        revisions: rev_inf.store(),
        queue: WorkQueue::new(ctx.name),
        ctx,
    });
    {
        let c = c.clone();
        set_inf.add_handler(move |n| match n {
            Notification::Add(s)
            | Notification::Update { new: s, .. }
            | Notification::Delete(s) => c.queue.add(key_of(&**s)),
        });
    }
    {
        let c = c.clone();
        pod_inf.add_handler(move |n| c.on_pod(n));
    }
    let stop = c.ctx.stop.clone();
    tokio::spawn(async move {
        set_inf.wait_synced().await;
        pod_inf.wait_synced().await;
        pvc_inf.wait_synced().await;
        rev_inf.wait_synced().await;
        let queue = c.queue.clone();
        run_workers(queue, workers, stop, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    });
    Ok(())
}

pub(crate) fn set_selector(set: &StatefulSet) -> LabelSelector {
    set.spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default()
}

impl Controller {
    fn resolve(&self, pod: &Pod) -> Option<Arc<StatefulSet>> {
        let r = controller_ref(&pod.metadata)?;
        if r.kind != "StatefulSet" {
            return None;
        }
        let set = self
            .sets
            .get(&pod.namespace().unwrap_or_default(), &r.name)?;
        (set.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(set)
    }

    /// `getStatefulSetsForPod`: sets whose selector matches an orphan.
    fn enqueue_matching(&self, pod: &Pod) {
        let labels = podutil::labels(&pod.metadata);
        for set in self
            .sets
            .list_namespace(&pod.namespace().unwrap_or_default())
        {
            let sel = set_selector(&set);
            if !selector::is_empty(&sel) && selector::matches(&sel, labels) {
                self.queue.add(key_of(&*set));
            }
        }
    }

    fn on_pod(&self, n: &Notification<Pod>) {
        match n {
            Notification::Add(pod) => match self.resolve(pod) {
                Some(set) => self.queue.add(key_of(&*set)),
                None if controller_ref(&pod.metadata).is_none() => self.enqueue_matching(pod),
                None => {}
            },
            Notification::Update { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                if let Some(o) = self.resolve(old) {
                    self.queue.add(key_of(&*o));
                }
                match self.resolve(new) {
                    Some(set) => {
                        let key = key_of(&*set);
                        let mrs = utils::min_ready_seconds(&set);
                        if mrs > 0 && !podutil::is_ready(old) && podutil::is_ready(new) {
                            self.queue
                                .add_after(key.clone(), Duration::from_secs(mrs as u64));
                        }
                        self.queue.add(key);
                    }
                    None if controller_ref(&new.metadata).is_none() => self.enqueue_matching(new),
                    None => {}
                }
            }
            Notification::Delete(pod) => {
                if let Some(set) = self.resolve(pod) {
                    self.queue.add(key_of(&*set));
                }
            }
        }
    }

    async fn sync(&self, key: &str) -> Result<(), Error> {
        let Some(set) = self.sets.get_key(key) else {
            return Ok(());
        };
        let sel = set_selector(&set);
        if selector::is_empty(&sel) {
            tracing::warn!(statefulset = %key, "StatefulSet has an empty selector; skipping");
            return Ok(());
        }
        self.adopt_orphan_revisions(&set, &sel).await?;
        let pods = self.claim_pods(&set, &sel).await?;
        let status = self.update_set(&set, &pods).await?;
        let mrs = utils::min_ready_seconds(&set);
        if let Some(s) = status {
            if mrs > 0 && s.counts.available != utils::replicas(&set) {
                self.queue
                    .add_after(key.to_string(), Duration::from_secs(mrs as u64));
            }
        }
        Ok(())
    }

    /// `adoptOrphanRevisions`.
    async fn adopt_orphan_revisions(
        &self,
        set: &StatefulSet,
        sel: &LabelSelector,
    ) -> Result<(), Error> {
        let api: Api<ControllerRevision> = Api::namespaced(
            self.ctx.client.clone(),
            &set.namespace().unwrap_or_default(),
        );
        for rev in history::list_revisions(&self.revisions, set, sel) {
            if controller_ref(&rev.metadata).is_none() {
                history::adopt(&api, set, &rev).await?;
            }
        }
        Ok(())
    }

    /// `getPodsForStatefulSet` (ClaimPods with `isMemberOf`): adopts matching
    /// orphans named like the set's pods, releases owned pods that no longer match.
    async fn claim_pods(&self, set: &StatefulSet, sel: &LabelSelector) -> Result<Vec<Pod>, Error> {
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let ns = set.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &ns);
        let deleting = set.metadata.deletion_timestamp.is_some();
        let mut owned = Vec::new();
        for pod in self.pods.list_namespace(&ns) {
            let matches = selector::matches(sel, podutil::labels(&pod.metadata))
                && utils::is_member_of(set, &pod);
            let refs = pod.metadata.owner_references.clone().unwrap_or_default();
            let patch = match controller_ref(&pod.metadata) {
                Some(r) if r.uid == uid => {
                    if matches || deleting {
                        owned.push((*pod).clone());
                        continue;
                    }
                    if pod.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    let kept: Vec<_> = refs.into_iter().filter(|r| r.uid != uid).collect();
                    json!({"metadata": {"ownerReferences": kept, "uid": pod.metadata.uid}})
                }
                None if matches && !deleting && pod.metadata.deletion_timestamp.is_none() => {
                    let mut refs = refs;
                    refs.push(podutil::new_controller_ref(set));
                    json!({"metadata": {"ownerReferences": refs, "uid": pod.metadata.uid}})
                }
                _ => continue,
            };
            match api
                .patch(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(p) if matches => owned.push(p),
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e).action(format!("claiming pod {}", pod.name_any())),
            }
        }
        Ok(owned)
    }
}
