//! The namespace controller (upstream `pkg/controller/namespace` and its
//! `deletion/namespaced_resources_deleter.go`): a namespace with a deletionTimestamp is
//! moved to Terminating, every namespaced resource the API serves is deleted from it
//! (deletecollection where supported, else list + delete, background propagation),
//! the namespace's deletion conditions report what failed or remains, and once nothing
//! remains the `kubernetes` finalizer is removed through `/finalize` — after which the
//! API server removes the namespace. Pods that terminate gracefully are waited for
//! (re-queued after half their grace period), as upstream does.

mod conditions;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::PartialObjectMeta;
use parking_lot::Mutex;

use crate::context::ControllerContext;
use crate::discovery::{DiscoveredResource, Discovery, GroupVersionResource};
use crate::error::{is_conflict, is_not_found, Error, ResultExt};
use crate::informer::{Notification, Store};
use crate::workqueue::{run_workers, WorkQueue};
use conditions::ConditionUpdater;

/// upstream `namespaceDeletionGracePeriod`: events are delayed so that HA API servers
/// observe the deletion and last-minute creations inside the namespace land.
const NAMESPACE_DELETION_GRACE_PERIOD: Duration = Duration::from_secs(5);
/// The finalizer this controller owns (`v1.FinalizerKubernetes`).
const FINALIZER_KUBERNETES: &str = "kubernetes";
/// upstream `finalizerEstimateSeconds`: the wait assumed for items held by finalizers.
const FINALIZER_ESTIMATE_SECONDS: i64 = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Operation {
    List,
    DeleteCollection,
}

/// How one namespace's deletion went.
enum Progress {
    Done,
    /// Content remains; try again after about this many seconds.
    Remaining(i64),
}

/// What deleting one resource's content left.
#[derive(Default)]
struct GvrDeletion {
    estimate: i64,
    remaining: usize,
    finalizers: BTreeMap<String, usize>,
    error: Option<Error>,
}

struct NamespaceController {
    ctx: ControllerContext,
    namespaces: Store<Namespace>,
    queue: Arc<WorkQueue>,
    /// Operations the API answered 404/405 for (upstream `operationNotSupportedCache`).
    unsupported: Mutex<HashSet<(Operation, GroupVersionResource)>>,
}

/// Starts the namespace controller.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let informer = ctx.informers.get::<Namespace>();
    let c = Arc::new(NamespaceController {
        namespaces: informer.store(),
        queue: WorkQueue::new(ctx.name),
        unsupported: Mutex::default(),
        ctx,
    });
    {
        let c = c.clone();
        informer.add_handler(move |n| match n {
            Notification::Add(ns) | Notification::Update { new: ns, .. } => c.enqueue(ns),
            Notification::Delete(_) => {}
        });
    }
    let workers = c.ctx.config.concurrent_namespace_syncs;
    tokio::spawn(async move {
        informer.wait_synced().await;
        // the informer's resync (--namespace-sync-period) re-offers every namespace
        let resync = {
            let c = c.clone();
            let mut stop = c.ctx.stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(c.ctx.config.namespace_sync_period) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    for ns in c.namespaces.list() {
                        c.enqueue(&ns);
                    }
                }
            })
        };
        let stop = c.ctx.stop.clone();
        let queue = c.queue.clone();
        run_workers(queue, workers, stop, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
        let _ = resync.await;
    });
    Ok(())
}

/// utilerrors.NewAggregate's message.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

impl NamespaceController {
    fn enqueue(&self, ns: &Namespace) {
        if ns.metadata.deletion_timestamp.is_none() {
            return;
        }
        if let Some(name) = &ns.metadata.name {
            self.queue
                .add_after(name.clone(), NAMESPACE_DELETION_GRACE_PERIOD);
        }
    }

    fn api(&self) -> Api<Namespace> {
        Api::all(self.ctx.client.clone())
    }

    async fn sync(&self, name: &str) -> Result<(), Error> {
        if self.namespaces.get("", name).is_none() {
            return Ok(());
        }
        match self.delete(name).await? {
            Progress::Done => Ok(()),
            Progress::Remaining(estimate) => {
                let wait = estimate / 2 + 1;
                tracing::info!(
                    namespace = name,
                    estimate,
                    "content remains in the namespace; checking again in {wait}s"
                );
                self.queue
                    .add_after(name.to_string(), Duration::from_secs(wait.max(1) as u64));
                Ok(())
            }
        }
    }

    /// upstream `namespacedResourcesDeleter.Delete`.
    async fn delete(&self, name: &str) -> Result<Progress, Error> {
        let mut ns = match self.api().get(name).await {
            Ok(ns) => ns,
            Err(e) if is_not_found(&e) => return Ok(Progress::Done),
            Err(e) => return Err(e).action(format!("getting namespace {name}")),
        };
        if ns.metadata.deletion_timestamp.is_none() {
            return Ok(Progress::Done);
        }
        // make sure the phase says Terminating
        loop {
            let terminating =
                ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
            if terminating {
                break;
            }
            let mut update = ns.clone();
            update.status.get_or_insert_with(Default::default).phase = Some("Terminating".into());
            match self
                .api()
                .replace_status(name, &PostParams::default(), &update)
                .await
            {
                Ok(updated) => {
                    ns = updated;
                    break;
                }
                Err(e) if is_not_found(&e) => return Ok(Progress::Done),
                Err(e) if is_conflict(&e) => ns = self.latest(&ns).await?,
                Err(e) => return Err(e).action(format!("updating the status of namespace {name}")),
            }
        }
        if ns.metadata.deletion_timestamp.is_none() {
            return Ok(Progress::Done);
        }
        let finalized = ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_none_or(|f| f.is_empty());
        if finalized {
            return Ok(Progress::Done);
        }
        let estimate = self.delete_all_content(&ns).await?;
        if estimate > 0 {
            return Ok(Progress::Remaining(estimate));
        }
        // nothing remains: remove our finalizer
        loop {
            let rest: BTreeSet<String> = ns
                .spec
                .as_ref()
                .and_then(|s| s.finalizers.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|f| f != FINALIZER_KUBERNETES)
                .collect();
            let finalize = Namespace {
                metadata: ns.metadata.clone(),
                spec: Some(NamespaceSpec {
                    finalizers: Some(rest.into_iter().collect()),
                }),
                status: None,
            };
            match self
                .api()
                .replace_subresource("finalize", name, &PostParams::default(), &finalize)
                .await
            {
                Ok(_) => break,
                Err(e) if is_not_found(&e) => break,
                Err(e) if is_conflict(&e) => ns = self.latest(&ns).await?,
                Err(e) => return Err(e).action(format!("finalizing namespace {name}")),
            }
        }
        tracing::info!(
            namespace = name,
            "namespace content removed; finalizer {FINALIZER_KUBERNETES:?} dropped"
        );
        Ok(Progress::Done)
    }

    /// The namespace again after a conflict; fails if it was re-created meanwhile.
    async fn latest(&self, prev: &Namespace) -> Result<Namespace, Error> {
        let name = prev.metadata.name.clone().unwrap_or_default();
        let ns = self
            .api()
            .get(&name)
            .await
            .action(format!("getting namespace {name}"))?;
        if ns.metadata.uid != prev.metadata.uid {
            return Err(Error::Invalid {
                what: format!("namespace {name}"),
                reason: "namespace uid has changed across retries".into(),
            });
        }
        Ok(ns)
    }

    /// upstream `deleteAllContent`: returns the estimated seconds until the remaining
    /// content is gone (0: nothing remains).
    async fn delete_all_content(&self, ns: &Namespace) -> Result<i64, Error> {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let deleted_at = ns
            .metadata
            .deletion_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or_else(Timestamp::now);
        let mut errors: Vec<String> = Vec::new();
        let mut cond = ConditionUpdater::new(Time(Timestamp::now()));
        let discovery = match Discovery::run(&self.ctx.client).await {
            Ok(d) => {
                if let Some(f) = d.failure() {
                    // not fatal: the resources that were discovered are still deleted
                    errors.push(f.to_string());
                    cond.discovery_failed(Some(f.groups.len()), &f.to_string());
                }
                d
            }
            Err(e) => {
                errors.push(e.to_string());
                cond.discovery_failed(None, &e.to_string());
                Discovery::default()
            }
        };
        let mut resources: Vec<&DiscoveredResource> = Vec::new();
        if let Some(bad) = discovery.invalid_group_versions.first() {
            let msg = format!("unexpected GroupVersion string: {bad}");
            errors.push(msg.clone());
            cond.group_version_failed(&msg);
        } else {
            resources = discovery
                .preferred_namespaced()
                .filter(|r| r.supports("delete"))
                .collect();
        }
        let mut estimate = 0;
        let mut remaining: BTreeMap<GroupVersionResource, usize> = BTreeMap::new();
        let mut finalizers: BTreeMap<String, usize> = BTreeMap::new();
        for r in resources {
            let gvr = r.gvr();
            let d = self.delete_all_content_for(r, &name, deleted_at).await;
            if let Some(e) = d.error {
                errors.push(e.to_string());
                cond.delete_content_failed(e.to_string());
            }
            estimate = estimate.max(d.estimate);
            if d.remaining > 0 {
                remaining.insert(gvr, d.remaining);
                for (f, n) in d.finalizers {
                    *finalizers.entry(f).or_default() += n;
                }
            }
        }
        cond.content_totals(&remaining, &finalizers);
        let mut status_ns = ns.clone();
        if cond.update(status_ns.status.get_or_insert_with(Default::default)) {
            if let Err(e) = self
                .api()
                .replace_status(&name, &PostParams::default(), &status_ns)
                .await
            {
                tracing::warn!(namespace = %name, error = %e, "couldn't update status condition for namespace");
            }
        }
        if !errors.is_empty() {
            return Err(Error::Invalid {
                what: format!("deleting the content of namespace {name}"),
                reason: aggregate(&errors),
            });
        }
        Ok(estimate)
    }

    fn supported(&self, op: Operation, r: &DiscoveredResource) -> bool {
        let verb = match op {
            Operation::List => "list",
            Operation::DeleteCollection => "deletecollection",
        };
        r.supports(verb) && !self.unsupported.lock().contains(&(op, r.gvr()))
    }

    fn mark_unsupported(&self, op: Operation, r: &DiscoveredResource) {
        self.unsupported.lock().insert((op, r.gvr()));
    }

    /// upstream `deleteAllContentForGroupVersionResource`.
    async fn delete_all_content_for(
        &self,
        r: &DiscoveredResource,
        ns: &str,
        deleted_at: Timestamp,
    ) -> GvrDeletion {
        let estimate = match self.estimate_graceful_termination(r, ns, deleted_at).await {
            Ok(e) => e,
            Err(e) => {
                return GvrDeletion {
                    error: Some(e),
                    ..GvrDeletion::default()
                }
            }
        };
        let failed = |e: Error| GvrDeletion {
            estimate,
            error: Some(e),
            ..GvrDeletion::default()
        };
        let dyn_api: Api<DynamicObject> =
            Api::namespaced_with(self.ctx.client.clone(), ns, &r.resource);
        let collection_deleted = match self.delete_collection(r, &dyn_api).await {
            Ok(done) => done,
            Err(e) => return failed(e),
        };
        if !collection_deleted {
            let items = match self.list_collection(r, ns).await {
                Ok(items) => items.unwrap_or_default(),
                Err(e) => return failed(e),
            };
            for item in items {
                let name = item.metadata.name.unwrap_or_default();
                match dyn_api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {}
                    Err(e) => {
                        return failed(Error::Api {
                            action: format!("deleting {} {ns}/{name}", r.gvr()),
                            source: e,
                        })
                    }
                }
            }
        }
        // what is left?
        let items = match self.list_collection(r, ns).await {
            Ok(Some(items)) => items,
            Ok(None) => {
                return GvrDeletion {
                    estimate,
                    ..GvrDeletion::default()
                }
            }
            Err(e) => return failed(e),
        };
        if items.is_empty() {
            return GvrDeletion::default();
        }
        let mut finalizers: BTreeMap<String, usize> = BTreeMap::new();
        for item in &items {
            for f in item.metadata.finalizers.iter().flatten() {
                *finalizers.entry(f.clone()).or_default() += 1;
            }
        }
        let remaining = items.len();
        if estimate != 0 {
            return GvrDeletion {
                estimate,
                remaining,
                finalizers,
                error: None,
            };
        }
        if !finalizers.is_empty() {
            // items held by finalizers are normal: give them time to finish
            return GvrDeletion {
                estimate: FINALIZER_ESTIMATE_SECONDS,
                remaining,
                finalizers,
                error: None,
            };
        }
        GvrDeletion {
            estimate,
            remaining,
            finalizers: BTreeMap::new(),
            error: Some(Error::Invalid {
                what: format!("namespace {ns}"),
                reason: format!(
                    "unexpected items still remain in namespace: {ns} for gvr: {}",
                    r.gvr()
                ),
            }),
        }
    }

    /// Deletes the whole collection; `Ok(false)` when the resource does not support it.
    async fn delete_collection(
        &self,
        r: &DiscoveredResource,
        api: &Api<DynamicObject>,
    ) -> Result<bool, Error> {
        if !self.supported(Operation::DeleteCollection, r) {
            return Ok(false);
        }
        // background: the namespace is only released once everything is gone anyway,
        // so the collector must not orphan anything
        match api
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {
                self.mark_unsupported(Operation::DeleteCollection, r);
                Ok(false)
            }
            Err(e) => Err(e).action(format!("deleting the collection of {}", r.gvr())),
        }
    }

    /// Lists the resource's objects' metadata; `Ok(None)` when listing is not
    /// supported.
    async fn list_collection(
        &self,
        r: &DiscoveredResource,
        ns: &str,
    ) -> Result<Option<Vec<PartialObjectMeta<DynamicObject>>>, Error> {
        if !self.supported(Operation::List, r) {
            return Ok(None);
        }
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::namespaced_with(self.ctx.client.clone(), ns, &r.resource);
        match api.list(&ListParams::default()).await {
            Ok(list) => Ok(Some(list.items)),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {
                self.mark_unsupported(Operation::List, r);
                Ok(None)
            }
            Err(e) => Err(e).action(format!("listing {} in namespace {ns}", r.gvr())),
        }
    }

    /// upstream `estimateGracefulTermination`: for pods, the longest grace period of a
    /// pod still running, unless that much time has passed since the namespace's
    /// deletion.
    async fn estimate_graceful_termination(
        &self,
        r: &DiscoveredResource,
        ns: &str,
        deleted_at: Timestamp,
    ) -> Result<i64, Error> {
        if !(r.resource.group.is_empty() && r.resource.plural == "pods") {
            return Ok(0);
        }
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
        let list = pods
            .list(&ListParams::default())
            .await
            .action(format!("listing pods in namespace {ns}"))?;
        let estimate = list
            .items
            .iter()
            .filter(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                !matches!(phase, Some("Succeeded" | "Failed"))
            })
            .filter_map(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .max()
            .unwrap_or(0);
        let elapsed = Timestamp::now().as_second() - deleted_at.as_second();
        Ok(if elapsed >= estimate { 0 } else { estimate })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_errors_as_upstream() {
        assert_eq!(aggregate(&["a".into()]), "a");
        assert_eq!(aggregate(&["a".into(), "b".into()]), "[a, b]");
    }
}
