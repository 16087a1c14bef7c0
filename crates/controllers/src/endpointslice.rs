//! The EndpointSlice controller (upstream `pkg/controller/endpointslice` with the
//! staging `k8s.io/endpointslice` reconciler): for every Service with a selector,
//! `discovery.k8s.io/v1` EndpointSlices listing the selected pods per address family,
//! owned by the Service and labelled `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`.
//!
//! The planning is in [`reconciler`]; this module watches Services, pods and slices,
//! applies plans through the API and keeps upstream's `EndpointSliceTracker`, which
//! recognises the controller's own writes (and a cache not yet showing them).

pub mod reconciler;
pub mod util;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;

use crate::context::ControllerContext;
use crate::error::{is_not_found, Error, ResultExt};
use crate::events::EventType;
use crate::informer::{key_of, Notification, Store};
use crate::selector;
use crate::workqueue::{run_workers, WorkQueue};
use reconciler::{Plan, CONTROLLER_NAME, LABEL_MANAGED_BY, LABEL_SERVICE_NAME};
use util::TriggerTimeTracker;

/// Upstream `maxRetries`: a Service failing this many times in a row is dropped.
const MAX_RETRIES: u32 = 15;
/// Upstream `endpointSliceChangeMinSyncDelay`.
const SLICE_CHANGE_MIN_SYNC_DELAY: Duration = Duration::from_secs(1);
/// A generation upstream's tracker records for a slice it deleted.
const DELETION_EXPECTED: i64 = -1;

/// Upstream `EndpointSliceTracker`: the generation of every slice this controller
/// wrote, per Service.
#[derive(Debug, Default)]
struct SliceTracker {
    by_service: Mutex<HashMap<(String, String), HashMap<String, i64>>>,
}

fn service_of(slice: &EndpointSlice) -> Option<(String, String)> {
    let name = slice.labels().get(LABEL_SERVICE_NAME)?.clone();
    (!name.is_empty()).then(|| (slice.namespace().unwrap_or_default(), name))
}

impl SliceTracker {
    fn uid(slice: &EndpointSlice) -> String {
        slice.metadata.uid.clone().unwrap_or_default()
    }

    fn generation(slice: &EndpointSlice) -> i64 {
        slice.metadata.generation.unwrap_or(0)
    }

    fn has(&self, slice: &EndpointSlice) -> bool {
        let Some(svc) = service_of(slice) else {
            return false;
        };
        self.by_service
            .lock()
            .get(&svc)
            .is_some_and(|g| g.contains_key(&Self::uid(slice)))
    }

    /// Whether a slice event is news: not written by us, or newer than our write.
    fn should_sync(&self, slice: &EndpointSlice) -> bool {
        let Some(svc) = service_of(slice) else {
            return true;
        };
        match self
            .by_service
            .lock()
            .get(&svc)
            .and_then(|g| g.get(&Self::uid(slice)))
        {
            Some(g) => Self::generation(slice) > *g,
            None => true,
        }
    }

    /// Whether the cache lacks one of our writes (or still shows a slice we deleted).
    fn stale(&self, svc: (String, String), slices: &[Arc<EndpointSlice>]) -> bool {
        let map = self.by_service.lock();
        let Some(gens) = map.get(&svc) else {
            return false;
        };
        let mut seen = std::collections::HashSet::new();
        for s in slices {
            let uid = Self::uid(s);
            if let Some(g) = gens.get(&uid) {
                if *g == DELETION_EXPECTED || *g > Self::generation(s) {
                    return true;
                }
            }
            seen.insert(uid);
        }
        gens.iter()
            .any(|(uid, g)| *g != DELETION_EXPECTED && !seen.contains(uid))
    }

    fn update(&self, slice: &EndpointSlice) {
        if let Some(svc) = service_of(slice) {
            self.by_service
                .lock()
                .entry(svc)
                .or_default()
                .insert(Self::uid(slice), Self::generation(slice));
        }
    }

    fn expect_deletion(&self, slice: &EndpointSlice) {
        if let Some(svc) = service_of(slice) {
            self.by_service
                .lock()
                .entry(svc)
                .or_default()
                .insert(Self::uid(slice), DELETION_EXPECTED);
        }
    }

    /// Forgets a deleted slice; true if we deleted it.
    fn handle_deletion(&self, slice: &EndpointSlice) -> bool {
        let Some(svc) = service_of(slice) else {
            return true;
        };
        let mut map = self.by_service.lock();
        let Some(gens) = map.get_mut(&svc) else {
            return true;
        };
        match gens.remove(&Self::uid(slice)) {
            Some(g) => g == DELETION_EXPECTED,
            None => true,
        }
    }

    fn delete_service(&self, ns: &str, name: &str) {
        self.by_service
            .lock()
            .remove(&(ns.to_string(), name.to_string()));
    }
}

fn managed_by_us(slice: &EndpointSlice) -> bool {
    slice.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME)
}

struct Controller {
    ctx: ControllerContext,
    services: Store<Service>,
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
    nodes: Store<Node>,
    queue: Arc<WorkQueue>,
    tracker: SliceTracker,
    trigger_times: TriggerTimeTracker,
}

/// Starts the EndpointSlice controller.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let svc_inf = ctx.informers.get::<Service>();
    let pod_inf = ctx.informers.get::<Pod>();
    let slice_inf = ctx.informers.get::<EndpointSlice>();
    let node_inf = ctx.informers.get::<Node>();
    let workers = ctx.config.concurrent_service_endpoint_syncs;
    let c = Arc::new(Controller {
        services: svc_inf.store(),
        pods: pod_inf.store(),
        slices: slice_inf.store(),
        nodes: node_inf.store(),
        queue: WorkQueue::new(ctx.name),
        tracker: SliceTracker::default(),
        trigger_times: TriggerTimeTracker::default(),
        ctx,
    });
    {
        let c = c.clone();
        svc_inf.add_handler(move |n| match n {
            Notification::Add(s)
            | Notification::Update { new: s, .. }
            | Notification::Delete(s) => c.queue.add(key_of(&**s)),
        });
    }
    {
        let c = c.clone();
        pod_inf.add_handler(move |n| {
            let keys = match n {
                Notification::Add(p) | Notification::Delete(p) => {
                    util::pod_service_memberships(&c.services, p)
                }
                Notification::Update { old, new } => {
                    util::services_to_update_on_pod_change(&c.services, old, new)
                }
            };
            for k in keys {
                c.queue.add(k);
            }
        });
    }
    {
        let c = c.clone();
        slice_inf.add_handler(move |n| c.on_slice(n));
    }
    let stop = c.ctx.stop.clone();
    tokio::spawn(async move {
        svc_inf.wait_synced().await;
        pod_inf.wait_synced().await;
        slice_inf.wait_synced().await;
        node_inf.wait_synced().await;
        tracing::info!(controller = c.ctx.name, "starting controller");
        let queue = c.queue.clone();
        run_workers(queue, workers, stop, move |key| {
            let c = c.clone();
            async move { c.sync_with_budget(&key).await }
        })
        .await;
    });
    Ok(())
}

impl Controller {
    fn queue_for_slice(&self, slice: &EndpointSlice) {
        if let Some((ns, name)) = service_of(slice) {
            self.queue
                .add_after(format!("{ns}/{name}"), SLICE_CHANGE_MIN_SYNC_DELAY);
        }
    }

    fn on_slice(&self, n: &Notification<EndpointSlice>) {
        match n {
            Notification::Add(s) => {
                if managed_by_us(s) && self.tracker.should_sync(s) {
                    self.queue_for_slice(s);
                }
            }
            Notification::Update { old, new } => {
                if service_of(old) != service_of(new) {
                    self.queue_for_slice(new);
                    self.queue_for_slice(old);
                } else if managed_by_us(old) != managed_by_us(new)
                    || (managed_by_us(new) && self.tracker.should_sync(new))
                {
                    self.queue_for_slice(new);
                }
            }
            Notification::Delete(s) => {
                if managed_by_us(s) && self.tracker.has(s) && !self.tracker.handle_deletion(s) {
                    self.queue_for_slice(s);
                }
            }
        }
    }

    /// Upstream `handleErr`: retried with backoff, dropped after `MAX_RETRIES`.
    async fn sync_with_budget(&self, key: &str) -> Result<(), Error> {
        match self.sync(key).await {
            Err(e) if self.queue.num_requeues(key) >= MAX_RETRIES => {
                tracing::warn!(%key, error = %e, "retry budget exceeded, dropping service out of the queue");
                Ok(())
            }
            r => r,
        }
    }

    async fn sync(&self, key: &str) -> Result<(), Error> {
        let (ns, name) = crate::informer::split_key(key);
        let Some(svc) = self.services.get(ns, name) else {
            self.trigger_times.delete_service(ns, name);
            self.tracker.delete_service(ns, name);
            return Ok(());
        };
        if util::is_external_name(&svc) {
            return Ok(());
        }
        let Some(sel) = util::service_selector(&svc) else {
            return Ok(());
        };
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(ns)
            .into_iter()
            .filter(|p| selector::matches_map(sel, crate::podutil::labels(&p.metadata)))
            .collect();
        let slices: Vec<Arc<EndpointSlice>> = self
            .slices
            .list_namespace(ns)
            .into_iter()
            .filter(|s| {
                s.labels().get(LABEL_SERVICE_NAME).map(String::as_str) == Some(name)
                    && managed_by_us(s)
                    && s.metadata.deletion_timestamp.is_none()
            })
            .collect();
        if self
            .tracker
            .stale((ns.to_string(), name.to_string()), &slices)
        {
            return Err(Error::Invalid {
                what: format!("EndpointSlice informer cache for Service {key}"),
                reason: "out of date".into(),
            });
        }
        let trigger = self.trigger_times.compute(&svc, &pods);
        let outcome = reconciler::reconcile(
            &svc,
            &pods,
            &slices,
            |n| self.nodes.get("", n),
            reconciler::MAX_ENDPOINTS_PER_SLICE,
        );
        let mut errors: Vec<String> = outcome.skipped;
        for mut plan in outcome.plans {
            if let Err(e) = self.finalize(&svc, &mut plan, trigger).await {
                errors.push(e.to_string());
            }
        }
        if errors.is_empty() {
            return Ok(());
        }
        let msg = errors.join("; ");
        self.ctx.recorder.event(
            &*svc,
            EventType::Warning,
            "FailedToUpdateEndpointSlices",
            format!("Error updating Endpoint Slices for Service {key}: {msg}"),
        );
        Err(Error::Invalid {
            what: format!("EndpointSlices for Service {key}"),
            reason: msg,
        })
    }

    /// Upstream `finalize`: creations (unless the Service is being deleted), then
    /// updates, then deletions.
    async fn finalize(
        &self,
        svc: &Service,
        plan: &mut Plan,
        trigger: Option<Timestamp>,
    ) -> Result<(), Error> {
        reconciler::reuse_deleted_slices(plan, svc);
        let ns = svc.namespace().unwrap_or_default();
        let api: Api<EndpointSlice> = Api::namespaced(self.ctx.client.clone(), &ns);
        let pp = PostParams::default();
        if svc.metadata.deletion_timestamp.is_none() {
            for slice in &mut plan.create {
                set_trigger_time(slice, trigger);
                match api.create(&pp, slice).await {
                    Ok(created) => self.tracker.update(&created),
                    Err(e) if namespace_terminating(&e) => return Ok(()),
                    Err(e) => {
                        return Err(e).action(format!(
                            "failed to create EndpointSlice for Service {ns}/{}",
                            svc.name_any()
                        ))
                    }
                }
            }
        }
        for slice in &mut plan.update {
            set_trigger_time(slice, trigger);
            let updated = api
                .replace(&slice.name_any(), &pp, slice)
                .await
                .action(format!(
                    "failed to update {} EndpointSlice for Service {ns}/{}",
                    slice.name_any(),
                    svc.name_any()
                ))?;
            self.tracker.update(&updated);
        }
        for slice in &plan.delete {
            match api
                .delete(&slice.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => self.tracker.expect_deletion(slice),
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    return Err(e).action(format!(
                        "failed to delete {} EndpointSlice for Service {ns}/{}",
                        slice.name_any(),
                        svc.name_any()
                    ))
                }
            }
        }
        Ok(())
    }
}

fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403 && s.message.contains("being terminated"))
}

/// Upstream `addTriggerTimeAnnotation`.
fn set_trigger_time(slice: &mut EndpointSlice, trigger: Option<Timestamp>) {
    let annotations = slice
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    match trigger {
        Some(t) => {
            annotations.insert(
                util::LAST_CHANGE_TRIGGER_TIME.into(),
                util::format_trigger_time(t),
            );
        }
        None => {
            annotations.remove(util::LAST_CHANGE_TRIGGER_TIME);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(uid: &str, generation: i64) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": uid, "namespace": "d", "uid": uid, "generation": generation,
                    "labels": {LABEL_SERVICE_NAME: "web", LABEL_MANAGED_BY: CONTROLLER_NAME}},
                "addressType": "IPv4", "endpoints": []
            }))
            .unwrap(),
        )
    }

    #[test]
    fn tracker_recognises_own_writes_and_stale_caches() {
        let t = SliceTracker::default();
        let key = ("d".to_string(), "web".to_string());
        let a1 = slice("a", 1);
        assert!(t.should_sync(&a1));
        assert!(!t.stale(key.clone(), &[]));
        t.update(&a1);
        assert!(!t.should_sync(&a1));
        assert!(t.should_sync(&slice("a", 2)));
        // Our creation is not in the cache yet.
        assert!(t.stale(key.clone(), &[]));
        assert!(!t.stale(key.clone(), std::slice::from_ref(&a1)));
        t.update(&slice("a", 3));
        assert!(t.stale(key.clone(), std::slice::from_ref(&a1)));
        t.expect_deletion(&a1);
        assert!(t.stale(key.clone(), std::slice::from_ref(&a1)));
        assert!(!t.stale(key.clone(), &[]));
        assert!(t.has(&a1));
        assert!(t.handle_deletion(&a1));
        assert!(!t.has(&a1));
        t.update(&a1);
        assert!(!t.handle_deletion(&a1));
    }

    #[test]
    fn trigger_time_annotation_is_set_and_cleared() {
        let mut s = (*slice("a", 1)).clone();
        set_trigger_time(&mut s, Some(Timestamp::UNIX_EPOCH));
        assert_eq!(
            s.annotations()
                .get(util::LAST_CHANGE_TRIGGER_TIME)
                .map(String::as_str),
            Some("1970-01-01T00:00:00Z")
        );
        set_trigger_time(&mut s, None);
        assert!(s.annotations().is_empty());
    }
}
