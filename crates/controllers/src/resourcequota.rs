//! The resource quota controller (upstream `pkg/controller/resourcequota` with the
//! evaluators of `pkg/quota/v1`): each ResourceQuota's `status.hard` mirrors
//! `spec.hard` and `status.used` is recalculated for every tracked resource — pods and
//! their compute requests/limits (non-terminal pods only, in the quota's scopes),
//! services, persistent volume claims and their storage (per storage class too), and
//! object counts of any resource — whenever objects of a tracked resource come or go
//! in the namespace, and for every quota each [`RESOURCE_QUOTA_SYNC_PERIOD`].
//!
//! The API server's quota admission recounts the namespace for the resource it admits
//! and writes `status.used` itself; both use upstream's evaluator rules, and this
//! controller compares quantities by value, so it only writes when usage differs.

pub mod evaluator;
pub mod monitor;
pub mod quantity;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, Pod, ResourceQuota, ResourceQuotaStatus, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, ResourceExt};

use crate::context::ControllerContext;
use crate::error::{is_conflict, is_not_found, Error, ResultExt};
use crate::informer::{key_of, Notification, Store};
use crate::workqueue::{run_workers, WorkQueue};
use evaluator::{Evaluator, Usage};
use monitor::{Count, Monitors};
use quantity::Amount;

/// `--resource-quota-sync-period`'s default: every quota is recalculated this often.
pub const RESOURCE_QUOTA_SYNC_PERIOD: Duration = Duration::from_secs(300);

/// How soon a quota waiting for a starting monitor is looked at again.
const MONITOR_WAIT: Duration = Duration::from_millis(500);

struct Controller {
    ctx: ControllerContext,
    quotas: Store<ResourceQuota>,
    pods: Store<Pod>,
    services: Store<Service>,
    claims: Store<PersistentVolumeClaim>,
    monitors: Arc<Monitors>,
    queue: Arc<WorkQueue>,
}

/// Starts the resource quota controller.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let quotas_inf = ctx.informers.get::<ResourceQuota>();
    let pods_inf = ctx.informers.get::<Pod>();
    let services_inf = ctx.informers.get::<Service>();
    let claims_inf = ctx.informers.get::<PersistentVolumeClaim>();
    let queue = WorkQueue::new(ctx.name);
    let quotas = quotas_inf.store();
    let on_change: monitor::OnChange = {
        let (queue, quotas) = (queue.clone(), quotas.clone());
        Arc::new(move |ns: &str, group: &str, resource: &str| {
            let ev = Evaluator::ObjectCount {
                group: group.to_string(),
                resource: resource.to_string(),
            };
            replenish(&queue, &quotas, ns, &ev);
        })
    };
    let c = Arc::new(Controller {
        monitors: Arc::new(Monitors::new(
            ctx.client.clone(),
            ctx.stop.clone(),
            on_change,
        )),
        quotas,
        pods: pods_inf.store(),
        services: services_inf.store(),
        claims: claims_inf.store(),
        queue,
        ctx,
    });
    {
        let c = c.clone();
        quotas_inf.add_handler(move |n| match n {
            Notification::Add(q) => c.queue.add(key_of(&**q)),
            Notification::Update { old, new } => {
                if old.spec != new.spec || needs_status(new) {
                    c.queue.add(key_of(&**new));
                }
            }
            Notification::Delete(_) => {}
        });
    }
    {
        let c = c.clone();
        pods_inf.add_handler(move |n| {
            let changed = match n {
                Notification::Add(p) | Notification::Delete(p) => Some(p),
                Notification::Update { old, new } => {
                    let now = Timestamp::now();
                    let counted = |p: &Pod| evaluator::pod_counts(p, now);
                    (counted(old) != counted(new)
                        || evaluator::pod_usage(old, now) != evaluator::pod_usage(new, now))
                    .then_some(new)
                }
            };
            if let Some(p) = changed {
                c.replenish_ns(&p.namespace().unwrap_or_default(), &Evaluator::Pods);
            }
        });
    }
    {
        let c = c.clone();
        services_inf.add_handler(move |n| {
            let changed = match n {
                Notification::Add(s) | Notification::Delete(s) => Some(s),
                Notification::Update { old, new } => {
                    (evaluator::service_usage(old) != evaluator::service_usage(new)).then_some(new)
                }
            };
            if let Some(s) = changed {
                c.replenish_ns(&s.namespace().unwrap_or_default(), &Evaluator::Services);
            }
        });
    }
    {
        let c = c.clone();
        claims_inf.add_handler(move |n| {
            let changed = match n {
                Notification::Add(s) | Notification::Delete(s) => Some(s),
                Notification::Update { old, new } => {
                    (evaluator::pvc_usage(old) != evaluator::pvc_usage(new)).then_some(new)
                }
            };
            if let Some(s) = changed {
                c.replenish_ns(
                    &s.namespace().unwrap_or_default(),
                    &Evaluator::PersistentVolumeClaims,
                );
            }
        });
    }
    let workers = c.ctx.config.concurrent_resource_quota_syncs;
    let stop = c.ctx.stop.clone();
    tokio::spawn(async move {
        quotas_inf.wait_synced().await;
        pods_inf.wait_synced().await;
        services_inf.wait_synced().await;
        claims_inf.wait_synced().await;
        {
            let c = c.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(RESOURCE_QUOTA_SYNC_PERIOD) => {
                            for q in c.quotas.list() {
                                c.queue.add(key_of(&*q));
                            }
                        }
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            });
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

/// Queues every quota of `ns` that tracks a resource `ev` evaluates
/// (upstream `replenishQuota`).
fn replenish(queue: &WorkQueue, quotas: &Store<ResourceQuota>, ns: &str, ev: &Evaluator) {
    for q in quotas.list_namespace(ns) {
        let hard = q.spec.as_ref().and_then(|s| s.hard.as_ref());
        if evaluator::evaluators(hard.into_iter().flat_map(BTreeMap::keys)).contains_key(ev) {
            queue.add(key_of(&*q));
        }
    }
}

/// Whether a quota's status lags its spec: `status.hard` differs from `spec.hard`, or
/// a tracked resource has no usage yet (upstream's `missingUsageQueue` case).
fn needs_status(q: &ResourceQuota) -> bool {
    let hard = q
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let status = q.status.as_ref();
    let st_hard = status.and_then(|s| s.hard.clone()).unwrap_or_default();
    let used = status.and_then(|s| s.used.clone()).unwrap_or_default();
    status.and_then(|s| s.hard.as_ref()).is_none()
        || !same_list(&hard, &st_hard)
        || hard
            .keys()
            .any(|k| evaluator::evaluator_for(k).is_some() && !used.contains_key(k))
}

fn value(q: &ApiQuantity) -> Option<i128> {
    Amount::parse_str(&q.0).map(|a| a.nanos)
}

/// Semantic equality of two resource lists (quantities compared by value).
fn same_list(a: &BTreeMap<String, ApiQuantity>, b: &BTreeMap<String, ApiQuantity>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| value(v) == value(w) || v.0 == w.0))
}

/// A quantity in canonical form (kept as written when it does not parse).
fn canonical(q: &ApiQuantity) -> ApiQuantity {
    ApiQuantity(Amount::parse_str(&q.0).map_or_else(|| q.0.clone(), |a| a.canonical()))
}

impl Controller {
    fn replenish_ns(&self, ns: &str, ev: &Evaluator) {
        replenish(&self.queue, &self.quotas, ns, ev);
    }

    /// The usage of the resources an evaluator tracks for a quota, or `None` while a
    /// monitor it needs is starting.
    fn usage(
        &self,
        ev: &Evaluator,
        tracked: &std::collections::BTreeSet<String>,
        ns: &str,
        reqs: &[k8s_openapi::api::core::v1::ScopedResourceSelectorRequirement],
    ) -> Option<Usage> {
        let now = Timestamp::now();
        Some(match ev {
            Evaluator::Pods => {
                let pods = self.pods.list_namespace(ns);
                evaluator::usage_stats(
                    tracked,
                    pods.iter().map(|p| &**p),
                    reqs,
                    evaluator::pod_matches_scope,
                    |p| evaluator::pod_usage(p, now),
                )
            }
            Evaluator::Services => {
                let items = self.services.list_namespace(ns);
                evaluator::usage_stats(
                    tracked,
                    items.iter().map(|s| &**s),
                    reqs,
                    |_, _| false,
                    evaluator::service_usage,
                )
            }
            Evaluator::PersistentVolumeClaims => {
                let items = self.claims.list_namespace(ns);
                evaluator::usage_stats(
                    tracked,
                    items.iter().map(|s| &**s),
                    reqs,
                    |_, _| false,
                    evaluator::pvc_usage,
                )
            }
            Evaluator::ObjectCount { group, resource } => {
                let n = match self.monitors.count(group, resource, ns) {
                    Count::Synced(n) => n,
                    Count::Pending => return None,
                    // no evaluator for a resource not served: nothing is recorded
                    Count::NotServed => return Some(Usage::new()),
                };
                // Object counts match no scope.
                let n = if reqs.is_empty() { n } else { 0 };
                tracked
                    .iter()
                    .map(|k| (k.clone(), Amount::units(n as i64)))
                    .collect()
            }
        })
    }

    /// Upstream `syncResourceQuota`.
    async fn sync(&self, key: &str) -> Result<(), Error> {
        let Some(quota) = self.quotas.get_key(key) else {
            return Ok(());
        };
        let ns = quota.namespace().unwrap_or_default();
        let spec = quota.spec.clone().unwrap_or_default();
        let hard: BTreeMap<String, ApiQuantity> = spec
            .hard
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), canonical(v)))
            .collect();
        let reqs =
            evaluator::scope_requirements(spec.scopes.as_ref(), spec.scope_selector.as_ref());
        let old_status = quota.status.clone().unwrap_or_default();
        let old_used = old_status.used.clone().unwrap_or_default();
        // Previous observations are kept for names no evaluator recalculates.
        let mut used: BTreeMap<String, ApiQuantity> = old_used
            .iter()
            .filter(|(k, _)| hard.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut pending = false;
        for (ev, tracked) in evaluator::evaluators(hard.keys()) {
            match self.usage(&ev, &tracked, &ns, &reqs) {
                Some(u) => {
                    for (k, a) in u {
                        if tracked.contains(&k) {
                            used.insert(k, ApiQuantity(a.canonical()));
                        }
                    }
                }
                None => pending = true,
            }
        }
        if pending {
            self.queue.add_after(key.to_string(), MONITOR_WAIT);
        }
        let dirty = old_status.hard.is_none()
            || old_status.used.is_none()
            || !same_list(&hard, old_status.hard.as_ref().unwrap_or(&BTreeMap::new()))
            || !same_list(&used, &old_used);
        if !dirty {
            return Ok(());
        }
        let mut updated = (*quota).clone();
        updated.metadata.managed_fields = None;
        updated.status = Some(ResourceQuotaStatus {
            hard: Some(hard),
            used: Some(used),
        });
        // PUT /status, as upstream (the controller's role grants update only).
        let api: Api<ResourceQuota> = Api::namespaced(self.ctx.client.clone(), &ns);
        match api
            .replace_status(&quota.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) if is_conflict(&e) => {
                // The informer brings the newer copy; recalculate on it.
                self.queue.add_after(key.to_string(), MONITOR_WAIT);
                Ok(())
            }
            Err(e) => Err(e).action(format!("updating status of resource quota {key}")),
        }
    }
}
