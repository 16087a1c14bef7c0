//! The node lifecycle controller (upstream `pkg/controller/nodelifecycle`): every
//! `--node-monitor-period` it checks each node's Ready heartbeat and its Lease in
//! `kube-node-lease`; a node silent for `--node-monitor-grace-period`
//! (`--node-startup-grace-period` if it never posted Ready) has its conditions set to
//! Unknown, its pods marked NotReady and — through a per-zone rate-limited queue —
//! the `node.kubernetes.io/unreachable:NoExecute` taint (`not-ready` when Ready is
//! False), removed again once the node is Ready. Node conditions are mirrored as
//! NoSchedule taints (TaintNodesByCondition) and the beta OS/arch labels reconciled.
//! Evicting pods from NoExecute-tainted nodes is the taint-eviction controller's job.

pub mod health;
pub mod nodeutil;
pub mod zones;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;
use tokio::time::Instant;

use crate::context::ControllerContext;
use crate::error::{Error, ResultExt};
use crate::informer::{key_of, Notification, Store};
use crate::workqueue::{run_workers, WorkQueue};
use health::Health;
use nodeutil::{
    node_condition, node_taints, taint, taint_exists, TAINT_NOT_READY, TAINT_UNREACHABLE,
};
use zones::{compute_zone_state, zone_key, RateLimitedTimedQueue, ZoneState};

/// `--node-eviction-rate` (default 0.1 nodes/s): how fast nodes of a healthy zone
/// are NoExecute-tainted.
const EVICTION_LIMITER_QPS: f64 = 0.1;
/// `--secondary-node-eviction-rate` (0.01): the rate in a partially disrupted large
/// zone.
const SECONDARY_EVICTION_LIMITER_QPS: f64 = 0.01;
/// `--large-cluster-size-threshold` (50).
const LARGE_CLUSTER_THRESHOLD: usize = 50;
/// `--unhealthy-zone-threshold` (0.55).
const UNHEALTHY_ZONE_THRESHOLD: f32 = 0.55;
/// Upstream `scheduler.NodeEvictionPeriod`: how often the taint queues are drained.
const NODE_EVICTION_PERIOD: Duration = Duration::from_millis(100);
/// Upstream `nodeUpdateWorkerSize` / `podUpdateWorkerSize`.
const NODE_UPDATE_WORKERS: usize = 8;
const POD_UPDATE_WORKERS: usize = 4;
/// Upstream `retrySleepTime` and `NodeHealthUpdateRetry`.
const RETRY_SLEEP: Duration = Duration::from_millis(20);
const NODE_HEALTH_UPDATE_RETRY: usize = 5;
/// Nodes carrying this label are left out of zone-disruption accounting.
const LABEL_EXCLUDE_DISRUPTION: &str = "node.kubernetes.io/exclude-disruption";
/// The Lease namespace the kubelet heartbeats in.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Which condition status maps to which NoSchedule taint (upstream
/// `nodeConditionToTaintKeyStatusMap`).
const CONDITION_TAINTS: [(&str, &str, &str); 6] = [
    ("Ready", "False", TAINT_NOT_READY),
    ("Ready", "Unknown", TAINT_UNREACHABLE),
    (
        "MemoryPressure",
        "True",
        "node.kubernetes.io/memory-pressure",
    ),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    (
        "NetworkUnavailable",
        "True",
        "node.kubernetes.io/network-unavailable",
    ),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
];
const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// Stable labels whose deprecated beta twins are kept in step (upstream
/// `labelReconcileInfo`).
const LABEL_RECONCILE: [(&str, &str); 2] = [
    ("kubernetes.io/os", "beta.kubernetes.io/os"),
    ("kubernetes.io/arch", "beta.kubernetes.io/arch"),
];

fn not_ready_taint() -> Taint {
    taint(TAINT_NOT_READY, "NoExecute")
}

fn unreachable_taint() -> Taint {
    taint(TAINT_UNREACHABLE, "NoExecute")
}

#[derive(Debug, Default)]
struct State {
    known: BTreeMap<String, Arc<Node>>,
    health: HashMap<String, Health>,
    zone_states: HashMap<String, ZoneState>,
    tainters: HashMap<String, RateLimitedTimedQueue>,
    nodes_to_retry: HashSet<String>,
}

impl State {
    fn add_zone(&mut self, node: &Node) {
        let zone = zone_key(node);
        if !self.zone_states.contains_key(&zone) {
            tracing::info!(zone = %zone.replace('\0', ""), "initializing eviction metric for zone");
            self.zone_states.insert(zone.clone(), ZoneState::Initial);
            self.tainters
                .insert(zone, RateLimitedTimedQueue::new(EVICTION_LIMITER_QPS));
        }
    }

    fn tainter(&mut self, zone: &str) -> &mut RateLimitedTimedQueue {
        self.tainters
            .entry(zone.to_string())
            .or_insert_with(|| RateLimitedTimedQueue::new(EVICTION_LIMITER_QPS))
    }

    fn set_limiter_in_zone(&mut self, zone: &str, size: usize, state: ZoneState) {
        let qps = match state {
            ZoneState::Normal | ZoneState::FullDisruption => EVICTION_LIMITER_QPS,
            ZoneState::PartialDisruption if size > LARGE_CLUSTER_THRESHOLD => {
                SECONDARY_EVICTION_LIMITER_QPS
            }
            ZoneState::PartialDisruption => 0.0,
            ZoneState::Initial => return,
        };
        self.tainter(zone).swap_limiter(qps, Instant::now());
    }
}

struct Controller {
    ctx: ControllerContext,
    nodes: Store<Node>,
    pods: Store<Pod>,
    leases: Store<Lease>,
    state: Mutex<State>,
    node_queue: Arc<WorkQueue>,
    pod_queue: Arc<WorkQueue>,
}

/// Starts the node lifecycle controller.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let nodes_inf = ctx.informers.get::<Node>();
    let pods_inf = ctx.informers.get::<Pod>();
    let leases_inf = ctx.informers.get::<Lease>();
    let c = Arc::new(Controller {
        nodes: nodes_inf.store(),
        pods: pods_inf.store(),
        leases: leases_inf.store(),
        state: Mutex::default(),
        node_queue: WorkQueue::new(ctx.name),
        pod_queue: WorkQueue::new(ctx.name),
        ctx,
    });
    {
        let c = c.clone();
        nodes_inf.add_handler(move |n| match n {
            Notification::Add(node) | Notification::Update { new: node, .. } => {
                c.node_queue.add(node.name_any())
            }
            Notification::Delete(node) => {
                c.state.lock().nodes_to_retry.remove(&node.name_any());
            }
        });
    }
    {
        let c = c.clone();
        pods_inf.add_handler(move |n| match n {
            Notification::Add(pod) => c.pod_updated(None, pod),
            Notification::Update { old, new } => c.pod_updated(Some(old), new),
            Notification::Delete(_) => {}
        });
    }
    tokio::spawn(async move {
        nodes_inf.wait_synced().await;
        pods_inf.wait_synced().await;
        leases_inf.wait_synced().await;
        tracing::info!(controller = c.ctx.name, "starting controller");
        let mut tasks = Vec::new();
        {
            let c2 = c.clone();
            tasks.push(tokio::spawn(run_workers(
                c.node_queue.clone(),
                NODE_UPDATE_WORKERS,
                c.ctx.stop.clone(),
                move |name| {
                    let c = c2.clone();
                    async move { c.process_node(&name).await }
                },
            )));
        }
        {
            let c2 = c.clone();
            tasks.push(tokio::spawn(run_workers(
                c.pod_queue.clone(),
                POD_UPDATE_WORKERS,
                c.ctx.stop.clone(),
                move |key| {
                    let c = c2.clone();
                    async move { c.process_pod(&key).await }
                },
            )));
        }
        tasks.push(tokio::spawn(c.clone().tainting_loop()));
        c.clone().monitor_loop().await;
        for t in tasks {
            let _ = t.await;
        }
    });
    Ok(())
}

impl Controller {
    /// Pods newly bound to a node are checked against its health (upstream
    /// `podUpdated`).
    fn pod_updated(&self, old: Option<&Arc<Pod>>, new: &Arc<Pod>) {
        let node_of = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.clone());
        let Some(node) = node_of(new).filter(|n| !n.is_empty()) else {
            return;
        };
        if old.is_none_or(|o| node_of(o).as_deref() != Some(node.as_str())) {
            self.pod_queue.add(key_of(&**new));
        }
    }

    async fn sleep_or_stop(&self, d: Duration) -> bool {
        let mut stop = self.ctx.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = stop.wait_for(|s| *s) => true,
        }
    }

    async fn monitor_loop(self: Arc<Self>) {
        loop {
            if *self.ctx.stop.borrow() {
                return;
            }
            self.monitor_node_health().await;
            if self
                .sleep_or_stop(self.ctx.config.node_monitor_period)
                .await
            {
                return;
            }
        }
    }

    async fn tainting_loop(self: Arc<Self>) {
        loop {
            self.do_no_execute_tainting_pass().await;
            if self.sleep_or_stop(NODE_EVICTION_PERIOD).await {
                return;
            }
        }
    }

    /// Upstream `monitorNodeHealth`.
    async fn monitor_node_health(self: &Arc<Self>) {
        let nodes = self.nodes.list();
        let (added, deleted) = {
            let mut st = self.state.lock();
            let mut added = Vec::new();
            for n in &nodes {
                if st.known.contains_key(&n.name_any()) {
                    st.add_zone(n);
                } else {
                    added.push(n.clone());
                }
            }
            let present: HashSet<String> = nodes.iter().map(|n| n.name_any()).collect();
            let deleted: Vec<Arc<Node>> = st
                .known
                .values()
                .filter(|n| !present.contains(&n.name_any()))
                .cloned()
                .collect();
            for n in &added {
                st.known.insert(n.name_any(), n.clone());
                st.add_zone(n);
            }
            for n in &deleted {
                st.known.remove(&n.name_any());
            }
            (added, deleted)
        };
        for n in &added {
            let name = n.name_any();
            tracing::info!(node = %name, "controller observed a new node");
            nodeutil::record_node_event(
                &self.ctx.recorder,
                n,
                "RegisteredNode",
                format!("Registered Node {name} in Controller"),
            );
            if let Err(e) = self.mark_node_as_reachable(n).await {
                tracing::warn!(node = %name, error = %e, "failed to remove taints from node");
            }
        }
        for n in &deleted {
            let name = n.name_any();
            tracing::info!(node = %name, "controller observed a node deletion");
            nodeutil::record_node_event(
                &self.ctx.recorder,
                n,
                "RemovingNode",
                format!("Removing Node {name} from Controller"),
            );
        }
        let mut pods_by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        for pod in self.pods.list() {
            if let Some(n) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
                pods_by_node.entry(n).or_default().push(pod);
            }
        }
        let pods_by_node = Arc::new(pods_by_node);
        let results: Vec<Option<(String, Option<NodeCondition>)>> =
            futures_util::stream::iter(nodes.clone())
                .map(|node| {
                    let c = self.clone();
                    let pods = pods_by_node.clone();
                    async move { c.update_node(&node, &pods).await }
                })
                .buffer_unordered(NODE_UPDATE_WORKERS)
                .collect()
                .await;
        let mut zone_conditions: HashMap<String, Vec<Option<NodeCondition>>> = HashMap::new();
        for (zone, cond) in results.into_iter().flatten() {
            zone_conditions.entry(zone).or_default().push(cond);
        }
        self.handle_disruption(zone_conditions, &nodes).await;
    }

    /// Checks one node's health and acts on it; returns its zone and Ready condition
    /// for the disruption accounting (None: left out).
    async fn update_node(
        &self,
        node: &Node,
        pods_by_node: &HashMap<String, Vec<Arc<Pod>>>,
    ) -> Option<(String, Option<NodeCondition>)> {
        let name = node.name_any();
        let mut node = node.clone();
        let mut outcome = None;
        for _ in 0..NODE_HEALTH_UPDATE_RETRY {
            match self.try_update_node_health(&mut node).await {
                Ok(r) => {
                    outcome = Some(r);
                    break;
                }
                Err(e) => {
                    tracing::warn!(node = %name, error = %e, "error updating node health");
                    tokio::time::sleep(RETRY_SLEEP).await;
                    let api: Api<Node> = Api::all(self.ctx.client.clone());
                    match api.get(&name).await {
                        Ok(n) => node = n,
                        Err(e) => {
                            tracing::warn!(node = %name, error = %e, "failed while getting a node to retry updating node health; probably the node was deleted");
                            return None;
                        }
                    }
                }
            }
        }
        let Some((observed, current)) = outcome else {
            tracing::warn!(node = %name, "update health of node from controller failed; skipping - no pods will be evicted");
            return None;
        };
        let excluded = node
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(LABEL_EXCLUDE_DISRUPTION));
        let result = (!excluded).then(|| (zone_key(&node), current.clone()));
        if let Some(current) = &current {
            let empty = Vec::new();
            let pods = pods_by_node.get(&name).unwrap_or(&empty);
            self.process_taint_based_eviction(&node, &observed).await;
            let needs_retry = self.state.lock().nodes_to_retry.contains(&name);
            let became_not_ready = current.status != "True" && observed.status == "True";
            if became_not_ready {
                nodeutil::record_node_status_change(&self.ctx.recorder, &node, "NodeNotReady");
            }
            if became_not_ready || (needs_retry && observed.status != "True") {
                if let Err(e) =
                    nodeutil::mark_pods_not_ready(&self.ctx.client, &self.ctx.recorder, pods, &name)
                        .await
                {
                    tracing::warn!(node = %name, error = %e, "unable to mark all pods NotReady on node; queuing for retry");
                    self.state.lock().nodes_to_retry.insert(name);
                    return result;
                }
            }
        }
        self.state.lock().nodes_to_retry.remove(&name);
        result
    }

    /// Upstream `tryUpdateNodeHealth`: returns the Ready condition as read and as it
    /// is now.
    async fn try_update_node_health(
        &self,
        node: &mut Node,
    ) -> Result<(NodeCondition, Option<NodeCondition>), Error> {
        let name = node.name_any();
        let saved = self.state.lock().health.get(&name).cloned();
        let lease = self.leases.get(NODE_LEASE_NAMESPACE, &name);
        let cfg = &self.ctx.config;
        let a = health::assess(
            node,
            saved,
            lease.as_deref(),
            Timestamp::now(),
            cfg.node_monitor_grace_period,
            cfg.node_startup_grace_period,
        );
        let mut remember = a.health;
        if let Some(written) = a.written {
            let api: Api<Node> = Api::all(self.ctx.client.clone());
            if let Err(e) = api
                .replace_status(&name, &PostParams::default(), node)
                .await
            {
                // The bookkeeping still counts, as upstream's deferred save does.
                self.state.lock().health.insert(name.clone(), remember);
                return Err(e).action(format!("updating status of node {name}"));
            }
            tracing::info!(node = %name, "node stopped posting status: conditions set to Unknown");
            remember = written;
        }
        self.state.lock().health.insert(name, remember);
        Ok((a.observed, node_condition(node, "Ready").cloned()))
    }

    /// Upstream `processTaintBaseEviction`.
    async fn process_taint_based_eviction(&self, node: &Node, observed: &NodeCondition) {
        let name = node.name_any();
        let taints = node_taints(node);
        match observed.status.as_str() {
            "False" => {
                if taint_exists(taints, &unreachable_taint()) {
                    if !nodeutil::swap_node_controller_taint(
                        &self.ctx.client,
                        &[not_ready_taint()],
                        &[unreachable_taint()],
                        node,
                    )
                    .await
                    {
                        tracing::warn!(node = %name, "failed to instantly swap UnreachableTaint to NotReadyTaint; will try again in the next cycle");
                    }
                } else if self.mark_node_for_tainting(node, "False") {
                    tracing::debug!(node = %name, "node is NotReady; adding it to the taint queue");
                }
            }
            "Unknown" => {
                if taint_exists(taints, &not_ready_taint()) {
                    if !nodeutil::swap_node_controller_taint(
                        &self.ctx.client,
                        &[unreachable_taint()],
                        &[not_ready_taint()],
                        node,
                    )
                    .await
                    {
                        tracing::warn!(node = %name, "failed to instantly swap NotReadyTaint to UnreachableTaint; will try again in the next cycle");
                    }
                } else if self.mark_node_for_tainting(node, "Unknown") {
                    tracing::debug!(node = %name, "node is unresponsive; adding it to the taint queue");
                }
            }
            "True" => match self.mark_node_as_reachable(node).await {
                Ok(true) => {
                    tracing::info!(node = %name, "node is healthy again, removed all taints")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(node = %name, error = %e, "failed to remove taints from node; will retry in next iteration")
                }
            },
            _ => {}
        }
    }

    /// Upstream `markNodeForTainting`.
    fn mark_node_for_tainting(&self, node: &Node, status: &str) -> bool {
        let name = node.name_any();
        let taints = node_taints(node);
        let mut st = self.state.lock();
        let q = st.tainter(&zone_key(node));
        if (status == "False" && !taint_exists(taints, &not_ready_taint()))
            || (status == "Unknown" && !taint_exists(taints, &unreachable_taint()))
        {
            q.remove(&name);
        }
        q.add(
            &name,
            node.metadata.uid.as_deref().unwrap_or_default(),
            Instant::now(),
        )
    }

    /// Upstream `markNodeAsReachable`: both NoExecute taints off, out of the taint
    /// queue; true if it was queued.
    async fn mark_node_as_reachable(&self, node: &Node) -> Result<bool, Error> {
        let name = node.name_any();
        let client = &self.ctx.client;
        nodeutil::remove_taints_off_node(client, &name, Some(node), &[unreachable_taint()]).await?;
        nodeutil::remove_taints_off_node(client, &name, Some(node), &[not_ready_taint()]).await?;
        Ok(self.state.lock().tainter(&zone_key(node)).remove(&name))
    }

    /// Upstream `doNoExecuteTaintingPass`: taints the queued nodes as far as each
    /// zone's rate allows.
    async fn do_no_execute_tainting_pass(&self) {
        let zones: Vec<String> = self.state.lock().tainters.keys().cloned().collect();
        for zone in zones {
            loop {
                let item = match self.state.lock().tainters.get_mut(&zone) {
                    Some(q) => q.take(Instant::now()),
                    None => None,
                };
                let Some(v) = item else { break };
                let (ok, wait) = self.taint_queued_node(&v.value).await;
                if !ok {
                    if let Some(q) = self.state.lock().tainters.get_mut(&zone) {
                        q.retry(v, Instant::now(), wait);
                    }
                }
            }
        }
    }

    async fn taint_queued_node(&self, name: &str) -> (bool, Duration) {
        let Some(node) = self.nodes.get("", name) else {
            tracing::info!(node = name, "node no longer present in the node store");
            return (true, Duration::ZERO);
        };
        let Some(cond) = node_condition(&node, "Ready") else {
            return (false, Duration::from_millis(50));
        };
        // "unreachable" and "not ready" mirror the Ready condition and exclude each
        // other.
        let (add, opposite) = match cond.status.as_str() {
            "False" => (not_ready_taint(), unreachable_taint()),
            "Unknown" => (unreachable_taint(), not_ready_taint()),
            _ => return (true, Duration::ZERO),
        };
        let ok = nodeutil::swap_node_controller_taint(&self.ctx.client, &[add], &[opposite], &node)
            .await;
        (ok, Duration::ZERO)
    }

    /// Upstream `handleDisruption`: adjusts each zone's tainting rate to its health;
    /// when every zone is fully disrupted (the control plane is probably the one cut
    /// off) all tainting stops and the NoExecute taints are removed.
    async fn handle_disruption(
        &self,
        zone_conditions: HashMap<String, Vec<Option<NodeCondition>>>,
        nodes: &[Arc<Node>],
    ) {
        let mut new_states: HashMap<String, ZoneState> = HashMap::new();
        let mut all_are_fully_disrupted = true;
        let enter_full = {
            let mut st = self.state.lock();
            for (zone, conds) in &zone_conditions {
                let (_, state) = compute_zone_state(conds, UNHEALTHY_ZONE_THRESHOLD);
                if state != ZoneState::FullDisruption {
                    all_are_fully_disrupted = false;
                }
                new_states.insert(zone.clone(), state);
                st.zone_states
                    .entry(zone.clone())
                    .or_insert(ZoneState::Initial);
            }
            st.zone_states
                .retain(|zone, _| zone_conditions.contains_key(zone));
            let all_were_fully_disrupted = st
                .zone_states
                .values()
                .all(|s| *s == ZoneState::FullDisruption);
            if all_are_fully_disrupted && all_were_fully_disrupted {
                return;
            }
            if all_are_fully_disrupted {
                tracing::info!("controller detected that all nodes are not-Ready; entering master disruption mode");
                let now = Instant::now();
                let zones: Vec<String> = st.zone_states.keys().cloned().collect();
                for z in zones {
                    st.tainter(&z).swap_limiter(0.0, now);
                    st.zone_states.insert(z, ZoneState::FullDisruption);
                }
                true
            } else if all_were_fully_disrupted {
                tracing::info!(
                    "controller detected that some nodes are Ready; exiting master disruption mode"
                );
                let now = Timestamp::now();
                for n in nodes {
                    if let Some(h) = st.health.get_mut(&n.name_any()) {
                        h.probe = now;
                        h.ready_transition = now;
                    }
                }
                let zones: Vec<String> = st.zone_states.keys().cloned().collect();
                for z in zones {
                    let state = new_states.get(&z).copied().unwrap_or(ZoneState::Normal);
                    let size = zone_conditions.get(&z).map_or(0, Vec::len);
                    st.set_limiter_in_zone(&z, size, state);
                    st.zone_states.insert(z, state);
                }
                false
            } else {
                let zones: Vec<(String, ZoneState)> = st
                    .zone_states
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect();
                for (z, old) in zones {
                    let state = new_states.get(&z).copied().unwrap_or(ZoneState::Normal);
                    if old == state {
                        continue;
                    }
                    tracing::info!(zone = %z.replace('\0', ""), ?state, "controller detected that zone is now in new state");
                    let size = zone_conditions.get(&z).map_or(0, Vec::len);
                    st.set_limiter_in_zone(&z, size, state);
                    st.zone_states.insert(z, state);
                }
                false
            }
        };
        if enter_full {
            for n in nodes {
                if let Err(e) = self.mark_node_as_reachable(n).await {
                    tracing::warn!(node = %n.name_any(), error = %e, "failed to remove taints from node");
                }
            }
        }
    }

    /// The node-update worker: NoSchedule taints from conditions, then labels.
    async fn process_node(&self, name: &str) -> Result<(), Error> {
        let tainting = self.do_no_schedule_tainting_pass(name).await;
        let labels = self.reconcile_node_labels(name).await;
        tainting.and(labels)
    }

    /// Upstream `doNoScheduleTaintingPass` (TaintNodesByCondition).
    async fn do_no_schedule_tainting_pass(&self, name: &str) -> Result<(), Error> {
        let Some(node) = self.nodes.get("", name) else {
            return Ok(());
        };
        let mut want: Vec<Taint> = Vec::new();
        for c in node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
        {
            for (type_, status, key) in CONDITION_TAINTS {
                if c.type_ == type_ && c.status == status {
                    want.push(taint(key, "NoSchedule"));
                }
            }
        }
        if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
            want.push(taint(TAINT_UNSCHEDULABLE, "NoSchedule"));
        }
        let have: Vec<Taint> = node_taints(&node)
            .iter()
            .filter(|t| {
                t.effect == "NoSchedule"
                    && (t.key == TAINT_UNSCHEDULABLE
                        || CONDITION_TAINTS.iter().any(|(_, _, k)| *k == t.key))
            })
            .cloned()
            .collect();
        let add: Vec<Taint> = want
            .iter()
            .filter(|t| !taint_exists(&have, t))
            .cloned()
            .collect();
        let del: Vec<Taint> = have
            .iter()
            .filter(|t| !taint_exists(&want, t))
            .cloned()
            .collect();
        if add.is_empty() && del.is_empty() {
            return Ok(());
        }
        if !nodeutil::swap_node_controller_taint(&self.ctx.client, &add, &del, &node).await {
            return Err(Error::Invalid {
                what: format!("node {name}"),
                reason: "failed to swap NoSchedule taints".into(),
            });
        }
        Ok(())
    }

    /// Upstream `reconcileNodeLabels`: beta OS/arch labels follow the stable ones.
    async fn reconcile_node_labels(&self, name: &str) -> Result<(), Error> {
        let Some(node) = self.nodes.get("", name) else {
            return Ok(());
        };
        let Some(labels) = node.metadata.labels.as_ref() else {
            return Ok(());
        };
        let mut update = BTreeMap::new();
        for (primary, secondary) in LABEL_RECONCILE {
            let Some(value) = labels.get(primary) else {
                continue;
            };
            if labels.get(secondary) != Some(value) {
                update.insert(secondary, value.clone());
            }
        }
        if update.is_empty() {
            return Ok(());
        }
        let api: Api<Node> = Api::all(self.ctx.client.clone());
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Strategic(&json!({"metadata": {"labels": update}})),
        )
        .await
        .action(format!("updating labels of node {name}"))?;
        Ok(())
    }

    /// Upstream `processPod`: a pod bound to a node that is not Ready is marked
    /// NotReady.
    async fn process_pod(&self, key: &str) -> Result<(), Error> {
        let Some(pod) = self.pods.get_key(key) else {
            return Ok(());
        };
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let Some(health) = self.state.lock().health.get(&node_name).cloned() else {
            return Ok(());
        };
        if self.nodes.get("", &node_name).is_none() {
            return Err(Error::Invalid {
                what: format!("node {node_name} of pod {key}"),
                reason: "not in the node store".into(),
            });
        }
        let Some(ready) = health.ready else {
            return Ok(());
        };
        if ready.status != "True" {
            nodeutil::mark_pods_not_ready(&self.ctx.client, &self.ctx.recorder, &[pod], &node_name)
                .await?;
        }
        Ok(())
    }
}
