//! The garbage collector (upstream `pkg/controller/garbagecollector`): a graph of every
//! object of every deletable resource by uid, linked by `ownerReferences`
//! ([`graph`], fed by metadata-only [`monitor`]s that follow discovery, re-read every
//! 30s), and two work queues:
//!
//! - **attemptToDelete**: an object whose owners are all gone — confirmed by a live GET
//!   of each owner, as upstream's `attemptToDeleteItem` does — is deleted (with the
//!   propagation its own finalizers ask for); references to absent owners are removed
//!   when another owner remains; an owner deleted in the foreground
//!   (`foregroundDeletion` finalizer) has its dependents deleted (in the foreground
//!   themselves when they have dependents) and loses the finalizer once no dependent
//!   with `blockOwnerDeletion` remains.
//! - **attemptToOrphan**: an owner deleted with the `orphan` finalizer has its
//!   reference removed from every dependent, then loses the finalizer.
//!
//! Together with the API server's handling of `propagationPolicy` this is what makes
//! `kubectl delete --cascade=background|foreground|orphan` keep its promise.

pub mod graph;
mod monitor;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::core::PartialObjectMeta;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::context::ControllerContext;
use crate::discovery::{DiscoveredResource, SharedDiscovery};
use crate::error::{is_conflict, is_not_found, Error, ResultExt};
use crate::events::EventType;
use crate::workqueue::WorkQueue;
use graph::{
    AbsentOwnerCache, Effects, Event, Graph, Meta, NodeView, ObjectRef,
    FINALIZER_DELETE_DEPENDENTS, FINALIZER_ORPHAN,
};
use monitor::Monitors;

/// How often discovery is re-read and the monitors resynced (upstream's 30s).
const RESOURCE_RESYNC_PERIOD: Duration = Duration::from_secs(30);
/// upstream's absentOwnerCache size.
const ABSENT_OWNER_CACHE_SIZE: usize = 500;
/// client-go `retry.DefaultRetry` steps for conflicting patches.
const PATCH_RETRIES: u32 = 5;

/// What a worker does with an item after processing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Forget,
    Requeue,
}

/// How `attemptToDeleteItem` ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    /// The object is gone; a virtual delete event will update the graph.
    VirtualDeleteEnqueued,
    /// A cluster-scoped object names a namespaced owner: retrying cannot help.
    NamespacedOwnerOfClusterScoped,
}

/// What a live lookup says about one owner reference.
enum OwnerState {
    Dangling,
    Exists(Box<ObjectMeta>),
    NamespacedOwnerOfClusterScoped,
}

struct GarbageCollector {
    ctx: ControllerContext,
    discovery: Arc<SharedDiscovery>,
    graph: Mutex<Graph>,
    absent: Mutex<AbsentOwnerCache>,
    attempt_to_delete: Arc<WorkQueue>,
    attempt_to_orphan: Arc<WorkQueue>,
    graph_changes: mpsc::UnboundedSender<Event>,
}

/// The resources the collector watches: preferred versions supporting delete, list
/// and watch (upstream `GetDeletableResources`), less the ignored ones.
fn deletable(d: &crate::discovery::Discovery) -> Vec<&DiscoveredResource> {
    d.preferred()
        .filter(|r| r.supports_all(&["delete", "list", "watch"]) && !monitor::ignored(r))
        .collect()
}

/// Starts the garbage collector.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let (tx, rx) = mpsc::unbounded_channel();
    let gc = Arc::new(GarbageCollector {
        discovery: SharedDiscovery::new(ctx.client.clone()),
        graph: Mutex::default(),
        absent: Mutex::new(AbsentOwnerCache::new(ABSENT_OWNER_CACHE_SIZE)),
        attempt_to_delete: WorkQueue::new("garbage-collector-attempt-to-delete"),
        attempt_to_orphan: WorkQueue::new("garbage-collector-attempt-to-orphan"),
        graph_changes: tx.clone(),
        ctx,
    });
    let monitors = Arc::new(Monitors::new(
        gc.ctx.client.clone(),
        tx,
        gc.ctx.stop.clone(),
    ));
    tokio::spawn(gc.clone().process_graph_changes(rx));
    tokio::spawn(gc.run(monitors));
    Ok(())
}

impl GarbageCollector {
    async fn run(self: Arc<Self>, monitors: Arc<Monitors>) {
        let mut stop = self.ctx.stop.clone();
        let mut watched = loop {
            let refreshed = tokio::select! {
                r = self.discovery.refresh() => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            match refreshed {
                Ok(d) => break deletable(&d).into_iter().cloned().collect::<Vec<_>>(),
                Err(e) => {
                    tracing::warn!(error = %e, "garbage collector: discovery failed; retrying")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        };
        monitors.sync(&watched.iter().collect::<Vec<_>>());
        tokio::select! {
            _ = monitors.wait_synced() => tracing::info!("garbage collector: all resource monitors have synced"),
            _ = tokio::time::sleep(RESOURCE_RESYNC_PERIOD) => {
                tracing::info!("garbage collector: all resource monitors could not be synced, proceeding anyways");
            }
            _ = stop.wait_for(|s| *s) => {
                monitors.stop_all();
                return;
            }
        }
        let workers = self.ctx.config.concurrent_gc_syncs.max(1);
        for _ in 0..workers {
            tokio::spawn(self.clone().worker(self.attempt_to_delete.clone(), false));
            tokio::spawn(self.clone().worker(self.attempt_to_orphan.clone(), true));
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RESOURCE_RESYNC_PERIOD) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let refreshed = tokio::select! {
                r = self.discovery.refresh() => r,
                _ = stop.wait_for(|s| *s) => break,
            };
            let d = match refreshed {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "garbage collector: discovery failed; keeping the current monitors");
                    continue;
                }
            };
            let now: Vec<DiscoveredResource> = deletable(&d).into_iter().cloned().collect();
            if now != watched {
                tracing::info!(
                    resources = now.len(),
                    "garbage collector: syncing monitors with updated resources from discovery"
                );
                monitors.sync(&now.iter().collect::<Vec<_>>());
                watched = now;
            }
            if let Some(f) = d.failure() {
                tracing::info!(error = %f, "garbage collector: failed to discover some groups");
            }
        }
        monitors.stop_all();
        self.attempt_to_delete.shut_down();
        self.attempt_to_orphan.shut_down();
    }

    /// upstream `runProcessGraphChanges`: one task applies events to the graph.
    async fn process_graph_changes(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Event>) {
        let mut stop = self.ctx.stop.clone();
        loop {
            let ev = tokio::select! {
                e = rx.recv() => e,
                _ = stop.wait_for(|s| *s) => return,
            };
            let Some(ev) = ev else { return };
            let fx = self.graph.lock().process(&ev);
            self.apply(fx);
        }
    }

    fn apply(&self, fx: Effects) {
        {
            let mut absent = self.absent.lock();
            for r in fx.absent {
                absent.add(r);
            }
        }
        for (dep, owner) in fx.invalid_namespace {
            let invalid = ObjectRef::from_owner(&owner, &dep.namespace);
            self.ctx.recorder.event_ref(
                ObjectReference {
                    api_version: Some(dep.api_version.clone()),
                    kind: Some(dep.kind.clone()),
                    name: Some(dep.name.clone()),
                    namespace: Some(dep.namespace.clone()).filter(|n| !n.is_empty()),
                    uid: Some(dep.uid.clone()),
                    ..ObjectReference::default()
                },
                EventType::Warning,
                "OwnerRefInvalidNamespace",
                format!(
                    "ownerRef {invalid} does not exist in namespace {:?}",
                    dep.namespace
                ),
            );
        }
        for uid in fx.attempt_to_delete {
            self.attempt_to_delete.add(uid);
        }
        for uid in fx.attempt_to_delete_rate_limited {
            self.attempt_to_delete.add_rate_limited(uid);
        }
        for uid in fx.attempt_to_orphan {
            self.attempt_to_orphan.add(uid);
        }
    }

    async fn worker(self: Arc<Self>, queue: Arc<WorkQueue>, orphan: bool) {
        while let Some(uid) = queue.get().await {
            let action = if orphan {
                self.attempt_to_orphan_worker(&uid).await
            } else {
                self.attempt_to_delete_worker(&uid).await
            };
            match action {
                Action::Forget => queue.forget(&uid),
                Action::Requeue => queue.add_rate_limited(uid.clone()),
            }
            queue.done(&uid);
        }
    }

    fn enqueue_virtual_delete(&self, id: &ObjectRef) {
        let _ = self.graph_changes.send(Event {
            event_type: graph::EventType::Delete,
            virtual_: true,
            api_version: id.api_version.clone(),
            kind: id.kind.clone(),
            obj: Meta {
                uid: id.uid.clone(),
                name: id.name.clone(),
                namespace: id.namespace.clone(),
                ..Meta::default()
            },
            old: None,
        });
    }

    // ---- API access by identity (the RESTMapper + metadata client of upstream) ----

    fn mapping(&self, api_version: &str, kind: &str) -> Result<DiscoveredResource, Error> {
        self.discovery
            .current()
            .resource_for(api_version, kind)
            .cloned()
            .ok_or_else(|| Error::Invalid {
                what: format!("REST mapping for {api_version}/{kind}"),
                reason: "the API does not serve this kind (yet) according to discovery".into(),
            })
    }

    fn meta_api(&self, r: &DiscoveredResource, ns: &str) -> Api<PartialObjectMeta<DynamicObject>> {
        if r.namespaced {
            Api::namespaced_with(self.ctx.client.clone(), ns, &r.resource)
        } else {
            Api::all_with(self.ctx.client.clone(), &r.resource)
        }
    }

    fn dyn_api(&self, r: &DiscoveredResource, ns: &str) -> Api<DynamicObject> {
        if r.namespaced {
            Api::namespaced_with(self.ctx.client.clone(), ns, &r.resource)
        } else {
            Api::all_with(self.ctx.client.clone(), &r.resource)
        }
    }

    /// The live object's metadata; `None` when not found.
    async fn get_object(&self, id: &ObjectRef) -> Result<Option<ObjectMeta>, Error> {
        let r = self.mapping(&id.api_version, &id.kind)?;
        match self.meta_api(&r, &id.namespace).get(&id.name).await {
            Ok(o) => Ok(Some(o.metadata)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).action(format!("getting {id}")),
        }
    }

    /// Reads the object, builds a JSON merge patch of its metadata (`None`: nothing
    /// to change), and patches with the read resourceVersion and uid as preconditions,
    /// retrying on conflict. A vanished object is not an error.
    async fn patch_metadata(
        &self,
        id: &ObjectRef,
        what: &str,
        build: impl Fn(&ObjectMeta) -> Option<serde_json::Map<String, Value>>,
    ) -> Result<(), Error> {
        let r = self.mapping(&id.api_version, &id.kind)?;
        let meta_api = self.meta_api(&r, &id.namespace);
        let api = self.dyn_api(&r, &id.namespace);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let live = match meta_api.get(&id.name).await {
                Ok(o) => o.metadata,
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) => return Err(e).action(format!("{what}: getting {id}")),
            };
            if live.uid.as_deref() != Some(id.uid.as_str()) {
                return Ok(());
            }
            let Some(mut patch) = build(&live) else {
                return Ok(());
            };
            patch.insert("uid".into(), json!(id.uid));
            patch.insert("resourceVersion".into(), json!(live.resource_version));
            let body = json!({ "metadata": patch });
            match api
                .patch(&id.name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) if is_conflict(&e) && attempt < PATCH_RETRIES => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => return Err(e).action(format!("{what}: patching {id}")),
            }
        }
    }

    /// Removes the references to `owner_uids` from the object's ownerReferences.
    async fn delete_owner_refs(&self, id: &ObjectRef, owner_uids: &[String]) -> Result<(), Error> {
        self.patch_metadata(id, "removing owner references", |m| {
            let refs = m.owner_references.clone().unwrap_or_default();
            let keep: Vec<OwnerReference> = refs
                .iter()
                .filter(|r| !owner_uids.contains(&r.uid))
                .cloned()
                .collect();
            if keep.len() == refs.len() {
                return None;
            }
            let mut p = serde_json::Map::new();
            let value = if keep.is_empty() {
                Value::Null
            } else {
                json!(keep)
            };
            p.insert("ownerReferences".into(), value);
            Some(p)
        })
        .await
    }

    /// Sets `blockOwnerDeletion: false` on every blocking reference of the object
    /// (upstream `unblockOwnerReferences`).
    async fn unblock_owner_references(&self, id: &ObjectRef) -> Result<(), Error> {
        self.patch_metadata(id, "unblocking owner references", |m| {
            let mut refs = m.owner_references.clone().unwrap_or_default();
            let mut changed = false;
            for r in refs
                .iter_mut()
                .filter(|r| r.block_owner_deletion == Some(true))
            {
                r.block_owner_deletion = Some(false);
                changed = true;
            }
            let mut p = serde_json::Map::new();
            p.insert("ownerReferences".into(), json!(refs));
            changed.then_some(p)
        })
        .await
    }

    /// Removes `finalizer` from the object (upstream `removeFinalizer`).
    async fn remove_finalizer(&self, id: &ObjectRef, finalizer: &str) -> Result<(), Error> {
        self.patch_metadata(id, &format!("removing finalizer {finalizer}"), |m| {
            let finalizers = m.finalizers.clone().unwrap_or_default();
            if !finalizers.iter().any(|f| f == finalizer) {
                return None;
            }
            let rest: Vec<&String> = finalizers.iter().filter(|f| *f != finalizer).collect();
            let mut p = serde_json::Map::new();
            let value = if rest.is_empty() {
                Value::Null
            } else {
                json!(rest)
            };
            p.insert("finalizers".into(), value);
            Some(p)
        })
        .await
    }

    /// Deletes the object with uid and resourceVersion preconditions; on a conflict
    /// whose ownerReferences did not change, retries with the uid alone (upstream
    /// `deleteObject`). `Ok(false)`: the object was not found.
    async fn delete_object(
        &self,
        id: &ObjectRef,
        resource_version: &str,
        owners: &[OwnerReference],
        policy: PropagationPolicy,
    ) -> Result<bool, Error> {
        let r = self.mapping(&id.api_version, &id.kind)?;
        let api = self.dyn_api(&r, &id.namespace);
        let mut dp = DeleteParams {
            propagation_policy: Some(policy.clone()),
            preconditions: Some(Preconditions {
                uid: Some(id.uid.clone()),
                resource_version: (!resource_version.is_empty())
                    .then(|| resource_version.to_string()),
            }),
            ..DeleteParams::default()
        };
        tracing::debug!(item = %id, ?policy, "garbage collector: deleting object");
        let err = match api.delete(&id.name, &dp).await {
            Ok(_) => return Ok(true),
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => e,
        };
        if is_conflict(&err) && !resource_version.is_empty() {
            match self.meta_api(&r, &id.namespace).get(&id.name).await {
                Err(e) if is_not_found(&e) => return Ok(false),
                Ok(live)
                    if live.metadata.uid.as_deref() == Some(id.uid.as_str())
                        && live.metadata.resource_version.as_deref() != Some(resource_version)
                        && live.metadata.owner_references.clone().unwrap_or_default() == owners =>
                {
                    dp.preconditions = Some(Preconditions {
                        uid: Some(id.uid.clone()),
                        resource_version: None,
                    });
                    return match api.delete(&id.name, &dp).await {
                        Ok(_) => Ok(true),
                        Err(e) if is_not_found(&e) => Ok(false),
                        Err(e) => Err(e).action(format!("deleting {id}")),
                    };
                }
                _ => {}
            }
        }
        Err(err).action(format!("deleting {id}"))
    }

    // ---- attemptToDelete ----

    async fn attempt_to_delete_worker(&self, uid: &str) -> Action {
        let Some(node) = self.graph.lock().view(uid) else {
            return Action::Forget;
        };
        match self.attempt_to_delete_item(&node).await {
            Ok(Outcome::VirtualDeleteEnqueued | Outcome::NamespacedOwnerOfClusterScoped) => {
                Action::Forget
            }
            // a virtual node confirmed to exist is polled until a monitor observes it
            Ok(Outcome::Done) if !node.observed => Action::Requeue,
            Ok(Outcome::Done) => Action::Forget,
            Err(e) => {
                tracing::warn!(item = %node.identity, error = %e, "garbage collector: error syncing item");
                Action::Requeue
            }
        }
    }

    /// upstream `isDangling`: whether the owner `reference` names is gone, by the
    /// absent-owner cache or a live GET by uid.
    async fn owner_state(
        &self,
        reference: &OwnerReference,
        item: &ObjectRef,
    ) -> Result<OwnerState, Error> {
        let mut key = ObjectRef::from_owner(reference, "");
        if self.absent.lock().has(&key) {
            return Ok(OwnerState::Dangling);
        }
        key.namespace = item.namespace.clone();
        if self.absent.lock().has(&key) {
            return Ok(OwnerState::Dangling);
        }
        let r = self.mapping(&reference.api_version, &reference.kind)?;
        if !r.namespaced {
            key.namespace.clear();
        }
        if item.namespace.is_empty() && r.namespaced {
            tracing::debug!(%item, owner = %reference.name, "item is cluster-scoped, but refers to a namespaced owner");
            return Ok(OwnerState::NamespacedOwnerOfClusterScoped);
        }
        match self
            .meta_api(&r, &item.namespace)
            .get(&reference.name)
            .await
        {
            Err(e) if is_not_found(&e) => {
                self.absent.lock().add(key);
                Ok(OwnerState::Dangling)
            }
            Err(e) => Err(e).action(format!("getting owner {} of {item}", reference.name)),
            Ok(owner) if owner.metadata.uid.as_deref() != Some(reference.uid.as_str()) => {
                self.absent.lock().add(key);
                Ok(OwnerState::Dangling)
            }
            Ok(owner) => Ok(OwnerState::Exists(Box::new(owner.metadata))),
        }
    }

    /// upstream `attemptToDeleteItem`.
    async fn attempt_to_delete_item(&self, node: &NodeView) -> Result<Outcome, Error> {
        let item = &node.identity;
        // being deleted is a one-way trip; the dependents are handled once it is gone
        if node.being_deleted && !node.deleting_dependents {
            return Ok(Outcome::Done);
        }
        let latest = match self.get_object(item).await? {
            Some(m) if m.uid.as_deref() == Some(item.uid.as_str()) => m,
            _ => {
                self.enqueue_virtual_delete(item);
                return Ok(Outcome::VirtualDeleteEnqueued);
            }
        };
        if node.deleting_dependents {
            self.process_deleting_dependents_item(node).await?;
            return Ok(Outcome::Done);
        }
        let references = latest.owner_references.clone().unwrap_or_default();
        if references.is_empty() {
            return Ok(Outcome::Done);
        }
        let (mut solid, mut dangling, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
        for reference in &references {
            match self.owner_state(reference, item).await? {
                OwnerState::NamespacedOwnerOfClusterScoped => {
                    return Ok(Outcome::NamespacedOwnerOfClusterScoped)
                }
                OwnerState::Dangling => dangling.push(reference.uid.clone()),
                OwnerState::Exists(owner)
                    if owner.deletion_timestamp.is_some()
                        && owner.finalizers.as_ref().is_some_and(|f| {
                            f.iter().any(|f| f == FINALIZER_DELETE_DEPENDENTS)
                        }) =>
                {
                    waiting.push(reference.uid.clone())
                }
                OwnerState::Exists(_) => solid.push(reference.uid.clone()),
            }
        }
        let rv = latest.resource_version.clone().unwrap_or_default();
        if !solid.is_empty() {
            if dangling.is_empty() && waiting.is_empty() {
                return Ok(Outcome::Done);
            }
            // references to owners waiting for their dependents must go too, or those
            // owners would wait forever
            tracing::debug!(%item, ?dangling, ?waiting, "garbage collector: removing dangling and waiting owner references");
            dangling.extend(waiting);
            self.delete_owner_refs(item, &dangling).await?;
            return Ok(Outcome::Done);
        }
        let policy = if !waiting.is_empty() && !node.dependents.is_empty() {
            if node.dependents.iter().any(|d| d.deleting_dependents) {
                // a possible cycle: stop blocking the owners before deleting in the
                // foreground
                tracing::debug!(%item, "garbage collector: unblocking owner references to prevent a cycle");
                self.unblock_owner_references(item).await?;
            }
            PropagationPolicy::Foreground
        } else {
            let has = |f: &str| {
                latest
                    .finalizers
                    .as_ref()
                    .is_some_and(|l| l.iter().any(|x| x == f))
            };
            if has(FINALIZER_ORPHAN) {
                PropagationPolicy::Orphan
            } else if has(FINALIZER_DELETE_DEPENDENTS) {
                PropagationPolicy::Foreground
            } else {
                PropagationPolicy::Background
            }
        };
        if self
            .delete_object(item, &rv, &references, policy.clone())
            .await?
        {
            tracing::info!(%item, ?policy, "garbage collector: deleted object whose owners are gone");
            Ok(Outcome::Done)
        } else {
            self.enqueue_virtual_delete(item);
            Ok(Outcome::VirtualDeleteEnqueued)
        }
    }

    /// An owner waiting for its dependents: drop `foregroundDeletion` once no blocking
    /// dependent remains, else push the blocking ones to deletion.
    async fn process_deleting_dependents_item(&self, node: &NodeView) -> Result<(), Error> {
        let blocking: Vec<_> = node.blocking_dependents().collect();
        if blocking.is_empty() {
            tracing::debug!(item = %node.identity, "garbage collector: removing the foregroundDeletion finalizer");
            return self
                .remove_finalizer(&node.identity, FINALIZER_DELETE_DEPENDENTS)
                .await;
        }
        for dep in blocking {
            if !dep.deleting_dependents {
                self.attempt_to_delete.add(dep.identity.uid.clone());
            }
        }
        Ok(())
    }

    // ---- attemptToOrphan ----

    /// upstream `attemptToOrphanWorker`: remove the owner from its dependents'
    /// ownerReferences, then drop the `orphan` finalizer.
    async fn attempt_to_orphan_worker(&self, uid: &str) -> Action {
        let Some(owner) = self.graph.lock().view(uid) else {
            return Action::Forget;
        };
        let owner_uid = [uid.to_string()];
        let results = join_all(
            owner
                .dependents
                .iter()
                .map(|d| self.delete_owner_refs(&d.identity, &owner_uid)),
        )
        .await;
        let errors: Vec<String> = results
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        if !errors.is_empty() {
            tracing::warn!(
                owner = %owner.identity,
                "garbage collector: failed to orphan dependents of owner {}, got errors: {}",
                owner.identity,
                errors.join(", ")
            );
            return Action::Requeue;
        }
        if let Err(e) = self
            .remove_finalizer(&owner.identity, FINALIZER_ORPHAN)
            .await
        {
            tracing::warn!(owner = %owner.identity, error = %e, "garbage collector: removing the orphan finalizer failed");
            return Action::Requeue;
        }
        tracing::debug!(owner = %owner.identity, dependents = owner.dependents.len(), "garbage collector: orphaned dependents");
        Action::Forget
    }
}
