//! The ReplicaSet and ReplicationController controllers (upstream
//! `pkg/controller/replicaset`; the RC controller is the same code over the older
//! type, as upstream's adapter makes it): keep `spec.replicas` active pods matching the
//! selector, adopting orphans and releasing pods that stopped matching, creating in
//! slow-start batches and deleting the least valuable pods first, and report
//! replicas/fullyLabeled/ready/available in status.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::context::ControllerContext;
use crate::error::{is_not_found, Error, JsonResultExt, ResultExt};
use crate::events::EventType;
use crate::expectations::Expectations;
use crate::informer::{key_of, Notification, Store};
use crate::podutil::{self, controller_ref};
use crate::selector;
use crate::workqueue::{run_workers, WorkQueue};

/// Upstream's `BurstReplicas`: at most this many creations or deletions per sync.
const BURST_REPLICAS: usize = 500;

/// What the controller needs of a ReplicaSet or a ReplicationController.
pub trait ReplicaOwner:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// `spec.replicas` (default 1).
    fn replicas(&self) -> i32;
    /// The selector as a LabelSelector (an RC's map becomes matchLabels).
    fn selector(&self) -> LabelSelector;
    fn template(&self) -> Option<&PodTemplateSpec>;
    fn min_ready_seconds(&self) -> i32;
    /// The status fields this controller owns, as JSON (for comparison).
    fn status_json(&self) -> serde_json::Value;
}

impl ReplicaOwner for ReplicaSet {
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn selector(&self) -> LabelSelector {
        self.spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default()
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn status_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.status).unwrap_or_default()
    }
}

impl ReplicaOwner for ReplicationController {
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn selector(&self) -> LabelSelector {
        LabelSelector {
            match_labels: self.spec.as_ref().and_then(|s| s.selector.clone()),
            match_expressions: None,
        }
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn status_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.status).unwrap_or_default()
    }
}

struct Controller<K: ReplicaOwner> {
    ctx: ControllerContext,
    owners: Store<K>,
    pods: Store<Pod>,
    expectations: Expectations,
    queue: Arc<WorkQueue>,
}

/// Starts the ReplicaSet controller.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let workers = ctx.config.concurrent_replicaset_syncs;
    start_generic::<ReplicaSet>(ctx, workers);
    Ok(())
}

/// Starts the ReplicationController controller.
pub fn start_replication_controller(ctx: ControllerContext) -> Result<(), Error> {
    let workers = ctx.config.concurrent_rc_syncs;
    start_generic::<ReplicationController>(ctx, workers);
    Ok(())
}

fn start_generic<K: ReplicaOwner>(ctx: ControllerContext, workers: usize) {
    let owners_inf = ctx.informers.get::<K>();
    let pods_inf = ctx.informers.get::<Pod>();
    let c = Arc::new(Controller {
        owners: owners_inf.store(),
        pods: pods_inf.store(),
        expectations: Expectations::default(),
        queue: WorkQueue::new(ctx.name),
        ctx,
    });
    {
        let c = c.clone();
        owners_inf.add_handler(move |n| match n {
            Notification::Add(o) | Notification::Update { new: o, .. } => c.queue.add(key_of(&**o)),
            Notification::Delete(o) => {
                let key = key_of(&**o);
                c.expectations.delete(&key);
                c.queue.add(key);
            }
        });
    }
    {
        let c = c.clone();
        pods_inf.add_handler(move |n| c.on_pod(n));
    }
    let stop = c.ctx.stop.clone();
    tokio::spawn(async move {
        owners_inf.wait_synced().await;
        pods_inf.wait_synced().await;
        let queue = c.queue.clone();
        run_workers(queue, workers, stop, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    });
}

impl<K: ReplicaOwner> Controller<K> {
    /// The owner a pod's controller ref names, if it is one of ours and still exists.
    fn resolve(&self, pod: &Pod) -> Option<Arc<K>> {
        let r = controller_ref(&pod.metadata)?;
        if r.kind != K::kind(&()) {
            return None;
        }
        let owner = self
            .owners
            .get(&pod.namespace().unwrap_or_default(), &r.name)?;
        (owner.meta().uid.as_deref() == Some(r.uid.as_str())).then_some(owner)
    }

    /// Owners whose selector matches an orphan pod.
    fn matching_owners(&self, pod: &Pod) -> Vec<Arc<K>> {
        let labels = podutil::labels(&pod.metadata);
        self.owners
            .list_namespace(&pod.namespace().unwrap_or_default())
            .into_iter()
            .filter(|o| {
                let s = o.selector();
                !selector::is_empty(&s) && selector::matches(&s, labels)
            })
            .collect()
    }

    fn on_pod(&self, n: &Notification<Pod>) {
        match n {
            Notification::Add(pod) => {
                if let Some(owner) = self.resolve(pod) {
                    let key = key_of(&*owner);
                    if pod.metadata.deletion_timestamp.is_some() {
                        self.expectations.deletion_observed(&key);
                    } else {
                        self.expectations.creation_observed(&key);
                    }
                    self.queue.add(key);
                } else if controller_ref(&pod.metadata).is_none() {
                    for o in self.matching_owners(pod) {
                        self.queue.add(key_of(&*o));
                    }
                }
            }
            Notification::Update { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let old_owner = self.resolve(old);
                let new_owner = self.resolve(new);
                if let Some(o) = &old_owner {
                    if new_owner.as_ref().map(|n| n.meta().uid.clone())
                        != Some(o.meta().uid.clone())
                    {
                        self.queue.add(key_of(&**o));
                    }
                }
                match new_owner {
                    Some(owner) => {
                        let key = key_of(&*owner);
                        if new.metadata.deletion_timestamp.is_some()
                            && old.metadata.deletion_timestamp.is_none()
                        {
                            self.expectations.deletion_observed(&key);
                        }
                        self.queue.add(key.clone());
                        let mrs = owner.min_ready_seconds();
                        if mrs > 0 && !podutil::is_ready(old) && podutil::is_ready(new) {
                            self.queue
                                .add_after(key, Duration::from_secs(mrs as u64 + 1));
                        }
                    }
                    None if controller_ref(&new.metadata).is_none() => {
                        for o in self.matching_owners(new) {
                            self.queue.add(key_of(&*o));
                        }
                    }
                    None => {}
                }
            }
            Notification::Delete(pod) => {
                if let Some(owner) = self.resolve(pod) {
                    let key = key_of(&*owner);
                    self.expectations.deletion_observed(&key);
                    self.queue.add(key);
                }
            }
        }
    }

    fn pod_api(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.ctx.client.clone(), ns)
    }

    async fn sync(&self, key: &str) -> Result<(), Error> {
        let Some(owner) = self.owners.get_key(key) else {
            self.expectations.delete(key);
            return Ok(());
        };
        let ns = owner.namespace().unwrap_or_default();
        let sel = owner.selector();
        let needs_sync = self.expectations.satisfied(key);
        let pods = self.claim(&owner, &sel, &ns).await?;
        let active: Vec<Arc<Pod>> = pods
            .iter()
            .filter(|p| podutil::is_active(p))
            .cloned()
            .collect();
        let mut manage_err = None;
        if needs_sync && owner.meta().deletion_timestamp.is_none() {
            if let Err(e) = self.manage(&owner, key, &ns, &active).await {
                manage_err = Some(e);
            }
        }
        self.update_status(&owner, &ns, &active, manage_err.as_ref())
            .await?;
        let mrs = owner.min_ready_seconds();
        if manage_err.is_none() && mrs > 0 {
            let now = Timestamp::now();
            if active
                .iter()
                .any(|p| podutil::is_ready(p) && !podutil::is_available(p, mrs, now))
            {
                self.queue
                    .add_after(key.to_string(), Duration::from_secs(mrs as u64));
            }
        }
        match manage_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Upstream's `ClaimPods`: the pods this owner controls after adopting matching
    /// orphans and releasing owned pods that no longer match.
    async fn claim(
        &self,
        owner: &K,
        sel: &LabelSelector,
        ns: &str,
    ) -> Result<Vec<Arc<Pod>>, Error> {
        let uid = owner.meta().uid.clone().unwrap_or_default();
        let deleting = owner.meta().deletion_timestamp.is_some();
        let mut owned = Vec::new();
        for pod in self.pods.list_namespace(ns) {
            let matches =
                !selector::is_empty(sel) && selector::matches(sel, podutil::labels(&pod.metadata));
            match controller_ref(&pod.metadata) {
                Some(r) if r.uid == uid => {
                    if matches || deleting {
                        owned.push(pod);
                    } else if pod.metadata.deletion_timestamp.is_none() {
                        self.release(&pod, &uid).await?;
                    }
                }
                Some(_) => {}
                None if matches && !deleting && pod.metadata.deletion_timestamp.is_none() => {
                    let adopted = self.adopt(owner, &pod).await?;
                    owned.extend(adopted.then_some(pod));
                }
                None => {}
            }
        }
        Ok(owned)
    }

    async fn adopt(&self, owner: &K, pod: &Pod) -> Result<bool, Error> {
        let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
        refs.push(podutil::new_controller_ref(owner));
        let patch = json!({"metadata": {"ownerReferences": refs, "uid": pod.metadata.uid}});
        match self
            .pod_api(&pod.namespace().unwrap_or_default())
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e).action(format!("adopting pod {}", pod.name_any())),
        }
    }

    async fn release(&self, pod: &Pod, owner_uid: &str) -> Result<(), Error> {
        let refs: Vec<_> = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .filter(|r| r.uid != owner_uid)
            .cloned()
            .collect();
        let patch = json!({"metadata": {"ownerReferences": refs, "uid": pod.metadata.uid}});
        match self
            .pod_api(&pod.namespace().unwrap_or_default())
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).action(format!("releasing pod {}", pod.name_any())),
        }
    }

    async fn manage(
        &self,
        owner: &Arc<K>,
        key: &str,
        ns: &str,
        active: &[Arc<Pod>],
    ) -> Result<(), Error> {
        let want = owner.replicas().max(0) as usize;
        let have = active.len();
        if have < want {
            let Some(template) = owner.template() else {
                return Ok(());
            };
            let n = (want - have).min(BURST_REPLICAS);
            self.expectations.expect(key, n as i64, 0);
            let pod = podutil::pod_from_template(template, &**owner, &owner.name_any());
            let api = self.pod_api(ns);
            // Slow start (upstream `slowStartBatch`): 1, 2, 4 … creations at once, so
            // a quota or admission refusal costs one request, not hundreds.
            let mut batch = 1usize;
            let mut created = 0usize;
            while created < n {
                let size = batch.min(n - created);
                let pp = PostParams::default();
                let results = join_all((0..size).map(|_| api.create(&pp, &pod))).await;
                let mut failure = None;
                for r in results {
                    match r {
                        Ok(p) => self.ctx.recorder.event(
                            &**owner,
                            EventType::Normal,
                            "SuccessfulCreate",
                            format!("Created pod: {}", p.name_any()),
                        ),
                        Err(e) => {
                            self.expectations.creation_observed(key);
                            self.ctx.recorder.event(
                                &**owner,
                                EventType::Warning,
                                "FailedCreate",
                                format!("Error creating: {e}"),
                            );
                            failure = Some(e);
                        }
                    }
                }
                created += size;
                if let Some(e) = failure {
                    for _ in created..n {
                        self.expectations.creation_observed(key);
                    }
                    return Err(e).action(format!("creating pods for {key}"));
                }
                batch *= 2;
            }
        } else if have > want {
            let n = (have - want).min(BURST_REPLICAS);
            let mut victims: Vec<&Arc<Pod>> = active.iter().collect();
            victims.sort_by(|a, b| podutil::deletion_order(a, b));
            victims.truncate(n);
            self.expectations.expect(key, 0, n as i64);
            let api = self.pod_api(ns);
            let results = join_all(victims.iter().map(|p| {
                let name = p.name_any();
                let api = api.clone();
                async move {
                    (
                        name.clone(),
                        api.delete(&name, &DeleteParams::default()).await,
                    )
                }
            }))
            .await;
            let mut failure = None;
            for (name, r) in results {
                match r {
                    Ok(_) => self.ctx.recorder.event(
                        &**owner,
                        EventType::Normal,
                        "SuccessfulDelete",
                        format!("Deleted pod: {name}"),
                    ),
                    Err(e) if is_not_found(&e) => self.expectations.deletion_observed(key),
                    Err(e) => {
                        self.expectations.deletion_observed(key);
                        self.ctx.recorder.event(
                            &**owner,
                            EventType::Warning,
                            "FailedDelete",
                            format!("Error deleting: {e}"),
                        );
                        failure = Some(e);
                    }
                }
            }
            if let Some(e) = failure {
                return Err(e).action(format!("deleting pods of {key}"));
            }
        }
        Ok(())
    }

    async fn update_status(
        &self,
        owner: &K,
        ns: &str,
        active: &[Arc<Pod>],
        manage_err: Option<&Error>,
    ) -> Result<(), Error> {
        let template_labels: BTreeMap<String, String> = owner
            .template()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let now = Timestamp::now();
        let mrs = owner.min_ready_seconds();
        let fully = active
            .iter()
            .filter(|p| selector::matches_map(&template_labels, podutil::labels(&p.metadata)))
            .count();
        let ready = active.iter().filter(|p| podutil::is_ready(p)).count();
        let available = active
            .iter()
            .filter(|p| podutil::is_available(p, mrs, now))
            .count();
        let old = owner.status_json();
        let old_conditions = old.get("conditions").cloned().unwrap_or(json!([]));
        let mut conditions: Vec<serde_json::Value> = old_conditions
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c["type"] != "ReplicaFailure")
            .collect();
        if let Some(e) = manage_err {
            let reason = if active.len() < owner.replicas().max(0) as usize {
                "FailedCreate"
            } else {
                "FailedDelete"
            };
            let previous = old_conditions
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "ReplicaFailure").cloned());
            conditions.push(json!({
                "type": "ReplicaFailure",
                "status": "True",
                "reason": reason,
                "message": e.to_string(),
                "lastTransitionTime": previous
                    .and_then(|p| p.get("lastTransitionTime").cloned())
                    .unwrap_or_else(|| json!(now.to_string())),
            }));
        }
        let mut status = json!({
            "replicas": active.len(),
            "fullyLabeledReplicas": fully,
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": owner.meta().generation,
        });
        if !conditions.is_empty() {
            status["conditions"] = json!(conditions);
        }
        if same_status(&old, &status) {
            return Ok(());
        }
        // PUT /status, as upstream: the controllers' RBAC roles grant `update` on
        // the status subresource, not `patch`. A stale resourceVersion is a 409 and a
        // retry with the informer's newer copy.
        let mut updated = serde_json::to_value(owner).action_invalid("encoding the owner")?;
        updated["status"] = status;
        let updated: K = serde_json::from_value(updated).action_invalid("encoding the owner")?;
        let api: Api<K> = Api::namespaced(self.ctx.client.clone(), ns);
        match api
            .replace_status(&owner.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).action(format!("updating status of {}", owner.name_any())),
        }
    }
}

/// Status equality treating absent counters as 0 (the API omits zero values).
fn same_status(old: &serde_json::Value, new: &serde_json::Value) -> bool {
    let field = |v: &serde_json::Value, k: &str| v.get(k).cloned().unwrap_or(json!(0));
    [
        "replicas",
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
        "observedGeneration",
    ]
    .iter()
    .all(|k| field(old, k) == field(new, k))
        && old.get("conditions").cloned().unwrap_or(json!([]))
            == new.get("conditions").cloned().unwrap_or(json!([]))
}
