//! The DaemonSet controller (upstream `pkg/controller/daemon`): one daemon pod on
//! every node that should run it (`NodeShouldRunDaemonPod`), created with a
//! `metadata.name In [<node>]` node affinity for the scheduler to bind; surplus,
//! misplaced and finished pods deleted (failed ones with a per-node backoff);
//! ControllerRevisions labelled `controller-revision-hash`; RollingUpdate
//! (maxUnavailable / maxSurge) and OnDelete; status counters.
//!
//! Modules: [`nodes`] (node eligibility, tolerations, node-name affinity) and
//! [`update`] (revision history and the rolling update).

pub mod nodes;
mod update;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod, PodTemplateSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;

use crate::context::ControllerContext;
use crate::error::{is_not_found, Error, ResultExt};
use crate::events::EventType;
use crate::expectations::Expectations;
use crate::history::{self, CONTROLLER_REVISION_HASH_LABEL};
use crate::informer::{key_of, Notification, Store};
use crate::podutil::{self, controller_ref};
use crate::selector;
use crate::workqueue::{run_workers, WorkQueue};

/// Upstream's `BurstReplicas` for daemon sets.
const BURST_REPLICAS: usize = 250;
/// `extensions.DaemonSetTemplateGenerationKey`.
const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// The annotation the API server keeps the template generation in.
const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// Failed-pod backoff: 1 s doubling to 15 min (`flowcontrol.NewBackOff`).
const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

pub(crate) struct Controller {
    ctx: ControllerContext,
    dss: Store<DaemonSet>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    expectations: Expectations,
    queue: Arc<WorkQueue>,
    /// Failed-pod backoff per `<ds uid>/<node>`: (current delay, last update).
    backoff: Mutex<HashMap<String, (Duration, Instant)>>,
}

/// Daemon pods by the node they target.
type NodePods = BTreeMap<String, Vec<Arc<Pod>>>;

/// Starts the DaemonSet controller.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let workers = ctx.config.concurrent_daemonset_syncs;
    let ds_inf = ctx.informers.get::<DaemonSet>();
    let pod_inf = ctx.informers.get::<Pod>();
    let node_inf = ctx.informers.get::<Node>();
    let rev_inf = ctx.informers.get::<ControllerRevision>();
    let c = Arc::new(Controller {
        dss: ds_inf.store(),
        pods: pod_inf.store(),
        nodes: node_inf.store(),
        revisions: rev_inf.store(),
        expectations: Expectations::default(),
        queue: WorkQueue::new(ctx.name),
        backoff: Mutex::default(),
        ctx,
    });
    {
        let c = c.clone();
        ds_inf.add_handler(move |n| match n {
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
        pod_inf.add_handler(move |n| c.on_pod(n));
    }
    {
        let c = c.clone();
        node_inf.add_handler(move |n| c.on_node(n));
    }
    {
        let c = c.clone();
        rev_inf.add_handler(move |n| match n {
            Notification::Add(r)
            | Notification::Delete(r)
            | Notification::Update { new: r, .. } => c.on_revision(r),
        });
    }
    let stop = c.ctx.stop.clone();
    tokio::spawn(async move {
        ds_inf.wait_synced().await;
        pod_inf.wait_synced().await;
        node_inf.wait_synced().await;
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

fn ds_selector(ds: &DaemonSet) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
    ds.spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default()
}

fn min_ready_seconds(ds: &DaemonSet) -> i32 {
    ds.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

fn template(ds: &DaemonSet) -> PodTemplateSpec {
    ds.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// `GetTemplateGeneration`: the template generation annotation, if set.
fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata
        .annotations
        .as_ref()?
        .get(TEMPLATE_GENERATION_ANNOTATION)?
        .parse()
        .ok()
}

/// `IsPodUpdated`: the pod carries the current revision hash (or template
/// generation).
fn is_pod_updated(pod: &Pod, hash: &str, generation: Option<i64>) -> bool {
    let labels = podutil::labels(&pod.metadata);
    let by_generation =
        generation.is_some_and(|g| labels.get(TEMPLATE_GENERATION_LABEL) == Some(&g.to_string()));
    let by_hash = !hash.is_empty()
        && labels
            .get(CONTROLLER_REVISION_HASH_LABEL)
            .map(String::as_str)
            == Some(hash);
    by_hash || by_generation
}

/// `podByCreationTimestampAndPhase`: pods bound to a node first, then older
/// first, then by name.
fn by_creation_and_phase(a: &Arc<Pod>, b: &Arc<Pod>) -> std::cmp::Ordering {
    let has_node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let ts = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    has_node(b)
        .cmp(&has_node(a))
        .then_with(|| ts(a).cmp(&ts(b)))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

impl Controller {
    fn resolve(&self, pod: &Pod) -> Option<Arc<DaemonSet>> {
        let r = controller_ref(&pod.metadata)?;
        if r.kind != "DaemonSet" {
            return None;
        }
        let ds = self
            .dss
            .get(&pod.namespace().unwrap_or_default(), &r.name)?;
        (ds.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(ds)
    }

    fn matching(&self, ns: &str, labels: &BTreeMap<String, String>) -> Vec<Arc<DaemonSet>> {
        self.dss
            .list_namespace(ns)
            .into_iter()
            .filter(|d| {
                let s = ds_selector(d);
                !selector::is_empty(&s) && selector::matches(&s, labels)
            })
            .collect()
    }

    fn on_pod(&self, n: &Notification<Pod>) {
        match n {
            Notification::Add(pod) => {
                if let Some(ds) = self.resolve(pod) {
                    let key = key_of(&*ds);
                    if pod.metadata.deletion_timestamp.is_some() {
                        self.expectations.deletion_observed(&key);
                    } else {
                        self.expectations.creation_observed(&key);
                    }
                    self.queue.add(key);
                } else if controller_ref(&pod.metadata).is_none() {
                    let ns = pod.namespace().unwrap_or_default();
                    for d in self.matching(&ns, podutil::labels(&pod.metadata)) {
                        self.queue.add(key_of(&*d));
                    }
                }
            }
            Notification::Update { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                if let Some(o) = self.resolve(old) {
                    self.queue.add(key_of(&*o));
                }
                match self.resolve(new) {
                    Some(ds) => {
                        let key = key_of(&*ds);
                        if new.metadata.deletion_timestamp.is_some()
                            && old.metadata.deletion_timestamp.is_none()
                        {
                            self.expectations.deletion_observed(&key);
                        }
                        let mrs = min_ready_seconds(&ds);
                        if mrs > 0 && !podutil::is_ready(old) && podutil::is_ready(new) {
                            self.queue
                                .add_after(key.clone(), Duration::from_secs(mrs as u64 + 1));
                        }
                        self.queue.add(key);
                    }
                    None if controller_ref(&new.metadata).is_none() => {
                        let ns = new.namespace().unwrap_or_default();
                        for d in self.matching(&ns, podutil::labels(&new.metadata)) {
                            self.queue.add(key_of(&*d));
                        }
                    }
                    None => {}
                }
            }
            Notification::Delete(pod) => {
                if let Some(ds) = self.resolve(pod) {
                    let key = key_of(&*ds);
                    self.expectations.deletion_observed(&key);
                    self.queue.add(key);
                }
            }
        }
    }

    /// Node add/delete: every daemon set that would (or did) run there; update:
    /// those whose verdict for the node changed (upstream `updateNode`).
    fn on_node(&self, n: &Notification<Node>) {
        for ds in self.dss.list() {
            let wake = match n {
                Notification::Add(node) => should_run_node(node, &ds).0,
                Notification::Delete(_) => true,
                Notification::Update { old, new } => {
                    should_run_node(old, &ds) != should_run_node(new, &ds)
                }
            };
            if wake {
                self.queue.add(key_of(&*ds));
            }
        }
    }

    fn on_revision(&self, rev: &ControllerRevision) {
        let ns = rev.namespace().unwrap_or_default();
        match controller_ref(&rev.metadata) {
            Some(r) if r.kind == "DaemonSet" => {
                if let Some(ds) = self.dss.get(&ns, &r.name) {
                    self.queue.add(key_of(&*ds));
                }
            }
            Some(_) => {}
            None => {
                for d in self.matching(&ns, podutil::labels(&rev.metadata)) {
                    self.queue.add(key_of(&*d));
                }
            }
        }
    }

    fn pod_api(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.ctx.client.clone(), ns)
    }

    async fn sync(&self, key: &str) -> Result<(), Error> {
        let Some(ds) = self.dss.get_key(key) else {
            self.expectations.delete(key);
            return Ok(());
        };
        let sel = ds_selector(&ds);
        if selector::is_empty(&sel) {
            self.ctx.recorder.event(
                &*ds,
                EventType::Warning,
                "SelectingAll",
                "This daemon set is selecting all pods. A non-empty selector is required.",
            );
            return Ok(());
        }
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let mut nodes: Vec<Arc<Node>> = self.nodes.list();
        nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let (cur, old) = self.construct_history(&ds).await?;
        let hash = podutil::labels(&cur.metadata)
            .get(CONTROLLER_REVISION_HASH_LABEL)
            .cloned()
            .unwrap_or_default();
        let pods = self.claim_pods(&ds, &sel).await?;
        if !self.expectations.satisfied(key) {
            return self.update_status(&ds, &nodes, &pods, &hash, false).await;
        }
        self.manage(&ds, key, &nodes, &pods, &hash).await?;
        if self.expectations.satisfied(key) && is_rolling_update(&ds) {
            self.rolling_update(&ds, key, &nodes, &pods, &hash).await?;
        }
        self.cleanup_history(&ds, &old, &pods).await?;
        self.update_status(&ds, &nodes, &pods, &hash, true).await
    }

    /// `getDaemonPods` (ClaimPods): adopt matching orphans, release owned pods that
    /// stopped matching.
    async fn claim_pods(
        &self,
        ds: &DaemonSet,
        sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    ) -> Result<Vec<Arc<Pod>>, Error> {
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let ns = ds.namespace().unwrap_or_default();
        let mut owned = Vec::new();
        for pod in self.pods.list_namespace(&ns) {
            let matches = selector::matches(sel, podutil::labels(&pod.metadata));
            let refs = pod.metadata.owner_references.clone().unwrap_or_default();
            let patch = match controller_ref(&pod.metadata) {
                Some(r) if r.uid == uid => {
                    if matches {
                        owned.push(pod);
                        continue;
                    }
                    if pod.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    let kept: Vec<_> = refs.into_iter().filter(|r| r.uid != uid).collect();
                    json!({"metadata": {"ownerReferences": kept, "uid": pod.metadata.uid}})
                }
                None if matches && pod.metadata.deletion_timestamp.is_none() => {
                    let mut refs = refs;
                    refs.push(podutil::new_controller_ref(ds));
                    json!({"metadata": {"ownerReferences": refs, "uid": pod.metadata.uid}})
                }
                _ => continue,
            };
            let adopting = matches;
            match self
                .pod_api(&ns)
                .patch(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(p) if adopting => owned.push(Arc::new(p)),
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e).action(format!("claiming pod {}", pod.name_any())),
            }
        }
        Ok(owned)
    }

    /// `manage`: which nodes need a daemon pod and which pods must go.
    async fn manage(
        &self,
        ds: &Arc<DaemonSet>,
        key: &str,
        nodes: &[Arc<Node>],
        pods: &[Arc<Pod>],
        hash: &str,
    ) -> Result<(), Error> {
        let by_node = nodes_to_pods(pods, true);
        let mut create = Vec::new();
        let mut delete = Vec::new();
        for node in nodes {
            let (c, d) = self.pods_should_be_on_node(node, &by_node, ds, hash);
            create.extend(c);
            delete.extend(d);
        }
        // `getUnscheduledPodsWithoutNode`: unbound pods aimed at nodes that are gone.
        for (node, list) in &by_node {
            if nodes
                .iter()
                .any(|n| n.metadata.name.as_deref() == Some(node))
            {
                continue;
            }
            for p in list {
                let bound = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_some_and(|n| !n.is_empty());
                if !bound {
                    delete.push(p.name_any());
                }
            }
        }
        self.sync_nodes(ds, key, &delete, &create, hash).await
    }

    /// `podsShouldBeOnNode`: (node needing a pod, pods to delete) for one node.
    fn pods_should_be_on_node(
        &self,
        node: &Node,
        by_node: &NodePods,
        ds: &Arc<DaemonSet>,
        hash: &str,
    ) -> (Option<String>, Vec<String>) {
        let name = node.name_any();
        let (should_run, should_continue) = should_run_node(node, ds);
        let existing = by_node.get(&name);
        let mut delete = Vec::new();
        if should_run && existing.is_none() {
            return (Some(name), delete);
        }
        let Some(list) = existing else {
            return (None, delete);
        };
        if !should_continue {
            delete.extend(
                list.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .map(|p| p.name_any()),
            );
            return (None, delete);
        }
        let mut running = Vec::new();
        for pod in list {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            match phase {
                Some("Failed") => {
                    let bkey = format!("{}/{name}", ds.metadata.uid.as_deref().unwrap_or_default());
                    if let Some(delay) = self.in_backoff(&bkey) {
                        self.queue.add_after(key_of(&**ds), delay);
                        continue;
                    }
                    self.next_backoff(&bkey);
                    self.ctx.recorder.event(
                        &**ds,
                        EventType::Warning,
                        "FailedDaemonPod",
                        format!(
                            "Found failed daemon pod {}/{} on node {name}, will try to kill it",
                            pod.namespace().unwrap_or_default(),
                            pod.name_any()
                        ),
                    );
                    delete.push(pod.name_any());
                }
                Some("Succeeded") => delete.push(pod.name_any()),
                _ => running.push(pod.clone()),
            }
        }
        if running.len() <= 1 {
            return (None, delete);
        }
        running.sort_by(by_creation_and_phase);
        if !allows_surge(ds) {
            // More than one pod: keep the oldest.
            delete.extend(running.iter().skip(1).map(|p| p.name_any()));
            return (None, delete);
        }
        // With surge, keep the oldest updated pod and the oldest old one.
        let mut kept_new = false;
        let mut kept_old = false;
        for pod in running {
            let updated = podutil::labels(&pod.metadata)
                .get(CONTROLLER_REVISION_HASH_LABEL)
                .map(String::as_str)
                == Some(hash);
            let slot = if updated {
                &mut kept_new
            } else {
                &mut kept_old
            };
            if !*slot {
                *slot = true;
                continue;
            }
            delete.push(pod.name_any());
        }
        (None, delete)
    }

    /// `IsInBackOffSinceUpdate`: the remaining delay if `key` is backing off.
    fn in_backoff(&self, key: &str) -> Option<Duration> {
        let b = self.backoff.lock();
        let (delay, at) = b.get(key)?;
        let since = at.elapsed();
        (since < *delay).then_some(*delay)
    }

    /// `Backoff.Next`: doubles the delay (reset after twice the maximum unused).
    fn next_backoff(&self, key: &str) {
        let mut b = self.backoff.lock();
        let now = Instant::now();
        let entry = b.entry(key.to_string()).or_insert((Duration::ZERO, now));
        entry.0 = if entry.0.is_zero() || entry.1.elapsed() > 2 * BACKOFF_MAX {
            BACKOFF_INITIAL
        } else {
            (entry.0 * 2).min(BACKOFF_MAX)
        };
        entry.1 = now;
    }

    /// `syncNodes`: deletes `delete` and creates a pod for each of `create`, in
    /// slow-start batches, under expectations.
    async fn sync_nodes(
        &self,
        ds: &Arc<DaemonSet>,
        key: &str,
        delete: &[String],
        create: &[String],
        hash: &str,
    ) -> Result<(), Error> {
        let create = &create[..create.len().min(BURST_REPLICAS)];
        let delete = &delete[..delete.len().min(BURST_REPLICAS)];
        if create.is_empty() && delete.is_empty() {
            return Ok(());
        }
        self.expectations
            .expect(key, create.len() as i64, delete.len() as i64);
        let ns = ds.namespace().unwrap_or_default();
        let api = self.pod_api(&ns);
        let mut failure: Option<Error> = None;
        // `CreatePodTemplate`: the daemon tolerations and the revision labels.
        let mut tmpl = template(ds);
        nodes::add_daemon_tolerations(tmpl.spec.get_or_insert_with(Default::default));
        let labels = tmpl
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new);
        if let Some(g) = template_generation(ds) {
            labels.insert(TEMPLATE_GENERATION_LABEL.into(), g.to_string());
        }
        if !hash.is_empty() {
            labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash.into());
        }
        let mut batch = 1usize;
        let mut pos = 0usize;
        while pos < create.len() {
            let size = batch.min(create.len() - pos);
            let pp = PostParams::default();
            let pods: Vec<Pod> = create[pos..pos + size]
                .iter()
                .map(|node| {
                    let mut pod = podutil::pod_from_template(&tmpl, &**ds, &ds.name_any());
                    if let Some(spec) = pod.spec.as_mut() {
                        spec.affinity = Some(nodes::replace_node_name_affinity(
                            spec.affinity.take(),
                            node,
                        ));
                    }
                    pod
                })
                .collect();
            let results = join_all(pods.iter().map(|p| api.create(&pp, p))).await;
            for r in results {
                match r {
                    Ok(p) => self.ctx.recorder.event(
                        &**ds,
                        EventType::Normal,
                        "SuccessfulCreate",
                        format!("Created pod: {}", p.name_any()),
                    ),
                    Err(e) => {
                        self.expectations.creation_observed(key);
                        self.ctx.recorder.event(
                            &**ds,
                            EventType::Warning,
                            "FailedCreate",
                            format!("Error creating: {e}"),
                        );
                        failure = Some(Error::Api {
                            action: format!("creating daemon pods for {key}"),
                            source: e,
                        });
                    }
                }
            }
            pos += size;
            if failure.is_some() {
                // The rest are skipped: their creations will not be observed.
                for _ in pos..create.len() {
                    self.expectations.creation_observed(key);
                }
                break;
            }
            batch *= 2;
        }
        let results = join_all(delete.iter().map(|name| {
            let api = api.clone();
            async move { (name, api.delete(name, &DeleteParams::default()).await) }
        }))
        .await;
        for (name, r) in results {
            match r {
                Ok(_) => self.ctx.recorder.event(
                    &**ds,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                ),
                Err(e) => {
                    self.expectations.deletion_observed(key);
                    if !is_not_found(&e) {
                        self.ctx.recorder.event(
                            &**ds,
                            EventType::Warning,
                            "FailedDelete",
                            format!("Error deleting: {e}"),
                        );
                        failure = Some(Error::Api {
                            action: format!("deleting daemon pod {name}"),
                            source: e,
                        });
                    }
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `updateDaemonSetStatus`.
    async fn update_status(
        &self,
        ds: &DaemonSet,
        nodes: &[Arc<Node>],
        pods: &[Arc<Pod>],
        hash: &str,
        observe_generation: bool,
    ) -> Result<(), Error> {
        let by_node = nodes_to_pods(pods, false);
        let now = Timestamp::now();
        let mrs = min_ready_seconds(ds);
        let generation = template_generation(ds);
        let (mut desired, mut current, mut misscheduled) = (0i32, 0i32, 0i32);
        let (mut ready, mut available, mut updated) = (0i32, 0i32, 0i32);
        for node in nodes {
            let (should_run, _) = should_run_node(node, ds);
            let list = by_node.get(&node.name_any()).filter(|l| !l.is_empty());
            if !should_run {
                misscheduled += i32::from(list.is_some());
                continue;
            }
            desired += 1;
            let Some(list) = list else { continue };
            current += 1;
            let mut list = list.clone();
            list.sort_by(by_creation_and_phase);
            let pod = &list[0];
            if podutil::is_ready(pod) {
                ready += 1;
                if podutil::is_available(pod, mrs, now) {
                    available += 1;
                }
            }
            if is_pod_updated(pod, hash, generation) {
                updated += 1;
            }
        }
        let old = ds.status.clone().unwrap_or_default();
        let observed = if observe_generation {
            ds.metadata.generation
        } else {
            old.observed_generation
        };
        let unchanged = old.desired_number_scheduled == desired
            && old.current_number_scheduled == current
            && old.number_misscheduled == misscheduled
            && old.number_ready == ready
            && old.number_available.unwrap_or(0) == available
            && old.updated_number_scheduled.unwrap_or(0) == updated
            && old.number_unavailable.unwrap_or(0) == desired - available
            && old.observed_generation.unwrap_or(0) >= observed.unwrap_or(0);
        if mrs > 0 && ready != available {
            self.queue
                .add_after(key_of(ds), Duration::from_secs(mrs as u64));
        }
        if unchanged {
            return Ok(());
        }
        let mut status = serde_json::to_value(&old).unwrap_or_else(|_| json!({}));
        status["desiredNumberScheduled"] = json!(desired);
        status["currentNumberScheduled"] = json!(current);
        status["numberMisscheduled"] = json!(misscheduled);
        status["numberReady"] = json!(ready);
        status["numberAvailable"] = json!(available);
        status["numberUnavailable"] = json!(desired - available);
        status["updatedNumberScheduled"] = json!(updated);
        status["observedGeneration"] = json!(observed);
        let api: Api<DaemonSet> =
            Api::namespaced(self.ctx.client.clone(), &ds.namespace().unwrap_or_default());
        history::put_status(&api, ds, status).await
    }
}

/// `NodeShouldRunDaemonPod` for a node.
fn should_run_node(node: &Node, ds: &DaemonSet) -> (bool, bool) {
    nodes::should_run(node, ds)
}

fn is_rolling_update(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

/// `AllowsSurge`: a rolling update with a non-zero maxSurge.
fn allows_surge(ds: &DaemonSet) -> bool {
    is_rolling_update(ds) && update::surge_count(ds, 1) > 0
}

/// `getNodesToDaemonPods`: pods by target node; unless `include_deleted_terminal`,
/// terminal pods already being deleted are left out.
fn nodes_to_pods(pods: &[Arc<Pod>], include_deleted_terminal: bool) -> NodePods {
    let mut map = NodePods::new();
    for pod in pods {
        if !include_deleted_terminal
            && podutil::is_terminal(pod)
            && pod.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        match nodes::target_node(pod) {
            Some(node) => map.entry(node).or_default().push(pod.clone()),
            None => tracing::info!(pod = %pod.name_any(), "daemon pod has no target node"),
        }
    }
    map
}
