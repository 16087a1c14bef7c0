//! The scheduler's I/O (upstream `pkg/scheduler/scheduler.go`, `schedule_one.go`,
//! `eventhandlers.go`): informers on nodes and pods feed the cache and the scheduling
//! queue; one loop pops pods, schedules them against a snapshot, assumes the chosen
//! node and binds through `pods/binding`; pods that fit nowhere get the PodScheduled
//! condition False and a FailedScheduling event with upstream's message, and wait in
//! the queue for a cluster event. A pod that preemption can place gets
//! `status.nominatedNodeName`; its victims get the DisruptionTarget condition and are
//! deleted gracefully, and the pod schedules once they are gone.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use crate::cache::{Cache, Snapshot};
use crate::framework::Profile;
use crate::node::Node;
use crate::pod::PodInfo;
use crate::preemption::{schedule_pod, Outcome};
use crate::queue::{ClusterEvent, QueuedPodInfo, RealClock, SchedulingQueue};
use crate::schedule::Scheduler;

/// Errors that stop the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("listing {what}: {source}")]
    List {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
}

struct State {
    cache: Cache,
    queue: SchedulingQueue<RealClock>,
}

/// The scheduler, for one profile (`schedulerName`).
pub struct Runner {
    client: kube::Client,
    scheduler_name: String,
    profile: Profile,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    binds: Arc<tokio::sync::Semaphore>,
    metrics: Option<crate::metrics::Metrics>,
}

/// Bindings waiting on the API server at once.
const MAX_BINDS_IN_FLIGHT: usize = 64;

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("scheduler_name", &self.scheduler_name)
            .finish_non_exhaustive()
    }
}

fn api(client: &kube::Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("", "v1", kind);
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

fn value(obj: &DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

/// What an informer delivers.
enum Change {
    Upsert(Value),
    Delete(Value),
}

/// List then watch, re-listing when the watch breaks; `apply` sees every change.
async fn inform(
    api: Api<DynamicObject>,
    what: &'static str,
    mut apply: impl FnMut(Change, bool),
    mut stop: watch::Receiver<bool>,
    synced: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), RunError> {
    let mut synced = synced;
    loop {
        // Pages of 500, as client-go's reflector lists: the whole cluster is never
        // held twice in memory.
        let mut rv = String::new();
        let mut token: Option<String> = None;
        let mut failure = None;
        loop {
            let mut lp = ListParams::default().limit(500);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            match api.list(&lp).await {
                Ok(page) => {
                    for obj in &page.items {
                        apply(Change::Upsert(value(obj)), true);
                    }
                    rv = page.metadata.resource_version.unwrap_or_default();
                    token = page.metadata.continue_.filter(|t| !t.is_empty());
                    if token.is_none() {
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        match failure {
            Some(source) if synced.is_some() => return Err(RunError::List { what, source }),
            Some(e) => {
                tracing::warn!(error = %e, what, "scheduler: re-list failed");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.changed() => return Ok(()),
                }
            }
            None => {}
        }
        if let Some(tx) = synced.take() {
            let _ = tx.send(());
        }
        'watch: loop {
            let wp = WatchParams::default().timeout(290);
            let stream = match api.watch(&wp, &rv).await {
                Ok(s) => s,
                Err(_) => break 'watch,
            };
            let mut stream = Box::pin(stream);
            loop {
                let next = tokio::select! {
                    n = stream.next() => n,
                    _ = stop.changed() => return Ok(()),
                };
                match next {
                    Some(Ok(WatchEvent::Added(o) | WatchEvent::Modified(o))) => {
                        rv = o.metadata.resource_version.clone().unwrap_or(rv);
                        apply(Change::Upsert(value(&o)), false);
                    }
                    Some(Ok(WatchEvent::Deleted(o))) => {
                        rv = o.metadata.resource_version.clone().unwrap_or(rv);
                        apply(Change::Delete(value(&o)), false);
                    }
                    Some(Ok(WatchEvent::Bookmark(b))) => rv = b.metadata.resource_version,
                    Some(Ok(WatchEvent::Error(_))) | Some(Err(_)) => break 'watch,
                    None => continue 'watch, // timeout: watch again from rv
                }
            }
        }
    }
}

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // RFC 3339 in UTC, seconds.
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl Runner {
    pub fn new(client: kube::Client, scheduler_name: &str, profile: Profile) -> Runner {
        Runner {
            client,
            scheduler_name: scheduler_name.to_string(),
            profile,
            state: Arc::new(Mutex::new(State {
                cache: Cache::new(),
                queue: SchedulingQueue::new(RealClock::default()),
            })),
            wake: Arc::new(Notify::new()),
            binds: Arc::new(tokio::sync::Semaphore::new(MAX_BINDS_IN_FLIGHT)),
            metrics: None,
        }
    }

    /// Records scheduling attempts and queue sizes in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Runner {
        self.metrics = Some(metrics);
        self
    }

    /// Runs until `stop` turns true.
    pub async fn run(self, stop: watch::Receiver<bool>) -> Result<(), RunError> {
        let (nodes_synced, nodes_ready) = tokio::sync::oneshot::channel();
        let (pods_synced, pods_ready) = tokio::sync::oneshot::channel();
        let state = self.state.clone();
        let wake = self.wake.clone();
        let nodes = inform(
            api(&self.client, "Node", "nodes"),
            "nodes",
            move |change, _| {
                let mut st = state.lock();
                let event = match change {
                    Change::Upsert(v) => match Node::from_value(&v) {
                        Ok(n) => {
                            st.cache.add_node(n);
                            ClusterEvent::NodeAdd
                        }
                        Err(_) => return,
                    },
                    Change::Delete(v) => {
                        let name = v
                            .pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        st.cache.remove_node(name);
                        ClusterEvent::NodeDelete
                    }
                };
                st.queue.move_all_to_active_or_backoff(event);
                wake.notify_one();
            },
            stop.clone(),
            Some(nodes_synced),
        );
        let state = self.state.clone();
        let wake = self.wake.clone();
        let name = self.scheduler_name.clone();
        let pods = inform(
            api(&self.client, "Pod", "pods"),
            "pods",
            move |change, _| {
                let mut st = state.lock();
                match change {
                    Change::Upsert(v) => {
                        let Ok(pod) = PodInfo::from_value(&v) else {
                            return;
                        };
                        let phase = v.pointer("/status/phase").and_then(Value::as_str);
                        let done = matches!(phase, Some("Succeeded" | "Failed"));
                        if !pod.node_name.is_empty() {
                            st.queue.delete(&pod.uid);
                            if done {
                                st.cache.remove_pod(&pod.uid);
                                st.queue
                                    .move_all_to_active_or_backoff(ClusterEvent::AssignedPodDelete);
                            } else {
                                st.cache.add_pod(pod);
                                st.queue
                                    .move_all_to_active_or_backoff(ClusterEvent::AssignedPodAdd);
                            }
                        } else if pod.scheduler_name == name && !done && !pod.terminating {
                            st.queue.add(pod);
                        }
                    }
                    Change::Delete(v) => {
                        let Ok(pod) = PodInfo::from_value(&v) else {
                            return;
                        };
                        st.queue.delete(&pod.uid);
                        if !pod.node_name.is_empty() {
                            st.cache.remove_pod(&pod.uid);
                            st.queue
                                .move_all_to_active_or_backoff(ClusterEvent::AssignedPodDelete);
                        }
                    }
                }
                wake.notify_one();
            },
            stop.clone(),
            Some(pods_synced),
        );
        let node_task = tokio::spawn(nodes);
        let pod_task = tokio::spawn(pods);
        // Schedule only once both caches are filled (upstream's WaitForCacheSync).
        if nodes_ready.await.is_err() || pods_ready.await.is_err() {
            return match (node_task.await, pod_task.await) {
                (Ok(Err(e)), _) | (_, Ok(Err(e))) => Err(e),
                _ => Ok(()),
            };
        }
        let gauges = self.metrics.clone().map(|m| {
            let state = self.state.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    let (active, backoff, unschedulable) = state.lock().queue.pending();
                    m.pending(active, backoff, unschedulable);
                }
            })
        });
        self.schedule_loop(stop).await;
        if let Some(g) = gauges {
            g.abort();
        }
        node_task.abort();
        pod_task.abort();
        Ok(())
    }

    async fn schedule_loop(&self, mut stop: watch::Receiver<bool>) {
        let mut sched = Scheduler::new(self.profile.clone(), rand_seed());
        let mut snapshot = Snapshot::default();
        let mut flush = tokio::time::interval(Duration::from_secs(1));
        loop {
            let popped = {
                let mut st = self.state.lock();
                st.queue.flush();
                st.queue.pop().map(|q| (q, st.queue.scheduling_cycle()))
            };
            let Some((q, cycle)) = popped else {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = flush.tick() => {}
                    _ = stop.changed() => return,
                }
                continue;
            };
            let started = std::time::Instant::now();
            let outcome = {
                let st = self.state.lock();
                st.cache.update_snapshot(&mut snapshot);
                drop(st);
                schedule_pod(&mut sched, &q.pod, &snapshot, &[])
            };
            if let Some(m) = &self.metrics {
                use crate::metrics::Attempt;
                let result = match &outcome {
                    Outcome::Scheduled(_) => Attempt::Scheduled,
                    _ => Attempt::Unschedulable,
                };
                m.attempt(&self.scheduler_name, result, started.elapsed());
            }
            match outcome {
                Outcome::Scheduled(result) => {
                    self.bind(q, result.node, result.feasible, snapshot.len())
                        .await
                }
                Outcome::Unschedulable(e) => {
                    let plugins = e.diagnosis.unschedulable_plugins.clone();
                    self.unschedulable(q, e.to_string(), plugins, cycle).await;
                }
                Outcome::Nominated { candidate, error } => {
                    let plugins = error.diagnosis.unschedulable_plugins.clone();
                    self.preempt(&q.pod, &candidate);
                    self.unschedulable_nominated(
                        q,
                        error.to_string(),
                        plugins,
                        cycle,
                        Some(candidate.node.clone()),
                    )
                    .await;
                }
                Outcome::NoNodes => {
                    self.unschedulable(
                        q,
                        "no nodes available to schedule pods".into(),
                        BTreeSet::new(),
                        cycle,
                    )
                    .await;
                }
            }
        }
    }

    /// Assumes the pod on `node` (so the next cycle sees it there) and binds it in
    /// the background, as upstream's binding cycle runs beside the next scheduling
    /// cycle; at most [`MAX_BINDS_IN_FLIGHT`] bindings wait on the API server at once.
    async fn bind(&self, q: QueuedPodInfo, node: String, _feasible: usize, _all: usize) {
        let mut assumed = q.pod.clone();
        assumed.node_name = node.clone();
        if self.state.lock().cache.assume_pod(assumed).is_err() {
            self.state.lock().queue.requeue_after_error(q);
            return;
        }
        let Ok(permit) = self.binds.clone().acquire_owned().await else {
            return;
        };
        let io = self.io();
        let state = self.state.clone();
        let wake = self.wake.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (ns, name, uid) = (
                q.pod.namespace.clone(),
                q.pod.name.clone(),
                q.pod.uid.clone(),
            );
            let binding = json!({"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name, "namespace": ns, "uid": uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
            let path = format!("/api/v1/namespaces/{ns}/pods/{name}/binding");
            match io.post(&path, &binding).await {
                Ok(()) => {
                    {
                        let mut st = state.lock();
                        st.cache.finish_binding(&uid);
                        st.queue.done(&uid);
                    }
                    io.event(
                        &q.pod,
                        "Normal",
                        "Scheduled",
                        &format!("Successfully assigned {ns}/{name} to {node}"),
                    )
                    .await;
                }
                Err(e) => {
                    tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "scheduler: binding failed");
                    {
                        let mut st = state.lock();
                        let _ = st.cache.forget_pod(&uid);
                        st.queue.requeue_after_error(q);
                    }
                    wake.notify_one();
                }
            }
        });
    }

    fn io(&self) -> Io {
        Io {
            client: self.client.clone(),
            scheduler_name: self.scheduler_name.clone(),
        }
    }

    async fn unschedulable(
        &self,
        q: QueuedPodInfo,
        message: String,
        plugins: BTreeSet<crate::framework::PluginName>,
        cycle: u64,
    ) {
        self.unschedulable_nominated(q, message, plugins, cycle, None)
            .await;
    }

    /// Upstream's `PrepareCandidate`: each victim gets the DisruptionTarget condition
    /// (reason PreemptionByScheduler) and a Preempted event, then is deleted
    /// gracefully; the preemptor waits in the queue, nominated to the node, until the
    /// victims' deletion frees it.
    fn preempt(&self, preemptor: &PodInfo, candidate: &crate::preemption::Candidate) {
        let io = self.io();
        let victims = candidate.victims.clone();
        let node = candidate.node.clone();
        let (pns, pname, puid) = (
            preemptor.namespace.clone(),
            preemptor.name.clone(),
            preemptor.uid.clone(),
        );
        tokio::spawn(async move {
            for v in victims {
                let (ns, name) = (v.namespace.clone(), v.name.clone());
                let patch = json!({"status": {"conditions": [{"type": "DisruptionTarget", "status": "True",
                    "reason": "PreemptionByScheduler",
                    "message": format!("{}: preempting to accommodate a higher priority pod", io.scheduler_name),
                    "lastTransitionTime": now()}]}});
                let req =
                    http::Request::patch(format!("/api/v1/namespaces/{ns}/pods/{name}/status"))
                        .header("content-type", "application/strategic-merge-patch+json")
                        .body(serde_json::to_vec(&patch).unwrap_or_default());
                if let Ok(req) = req {
                    let _ = io.client.request_text(req).await;
                }
                let req = http::Request::delete(format!("/api/v1/namespaces/{ns}/pods/{name}"))
                    .header("content-type", "application/json")
                    .body(
                        serde_json::to_vec(&json!({"preconditions": {"uid": v.uid}}))
                            .unwrap_or_default(),
                    );
                match req {
                    Ok(req) => match io.client.request_text(req).await {
                        Ok(_) => {
                            io.event(
                                &v,
                                "Normal",
                                "Preempted",
                                &format!("Preempted by pod {puid} on node {node}"),
                            )
                            .await;
                            tracing::info!(victim = %format!("{ns}/{name}"), preemptor = %format!("{pns}/{pname}"), %node, "scheduler: preempted");
                        }
                        Err(e) => {
                            tracing::warn!(victim = %format!("{ns}/{name}"), error = %e, "scheduler: preempting failed")
                        }
                    },
                    Err(e) => tracing::warn!(error = %e, "scheduler: preemption request"),
                }
            }
        });
    }

    async fn unschedulable_nominated(
        &self,
        q: QueuedPodInfo,
        message: String,
        plugins: BTreeSet<crate::framework::PluginName>,
        cycle: u64,
        nominated: Option<String>,
    ) {
        let pod = q.pod.clone();
        self.state
            .lock()
            .queue
            .add_unschedulable_if_not_present(q, plugins, cycle);
        // The condition and the event are written in the background, as upstream's
        // status patch and event broadcaster do.
        let io = self.io();
        tokio::spawn(async move {
            let (ns, name) = (pod.namespace.clone(), pod.name.clone());
            let mut patch = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": message, "lastProbeTime": null,
                "lastTransitionTime": now()}]}});
            if let Some(node) = nominated {
                patch["status"]["nominatedNodeName"] = json!(node);
            }
            let req = http::Request::patch(format!("/api/v1/namespaces/{ns}/pods/{name}/status"))
                .header("content-type", "application/strategic-merge-patch+json")
                .body(serde_json::to_vec(&patch).unwrap_or_default());
            if let Ok(req) = req {
                let _ = io.client.request_text(req).await;
            }
            io.event(&pod, "Warning", "FailedScheduling", &message)
                .await;
        });
    }
}

/// What the background binding and reporting tasks need.
struct Io {
    client: kube::Client,
    scheduler_name: String,
}

impl Io {
    async fn post(&self, path: &str, body: &Value) -> Result<(), kube::Error> {
        let req = http::Request::post(path)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap_or_default())
            .map_err(kube::Error::HttpError)?;
        self.client.request_text(req).await.map(|_| ())
    }

    async fn event(&self, pod: &PodInfo, typ: &str, reason: &str, message: &str) {
        let ts = now();
        let event = json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": format!("{}.", pod.name), "namespace": pod.namespace},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
            "reason": reason, "message": message, "type": typ,
            "source": {"component": self.scheduler_name},
            "reportingComponent": self.scheduler_name, "reportingInstance": self.scheduler_name,
            "firstTimestamp": ts, "lastTimestamp": ts, "count": 1});
        let path = format!("/api/v1/namespaces/{}/events", pod.namespace);
        if let Err(e) = self.post(&path, &event).await {
            tracing::debug!(error = %e, "scheduler: recording an event failed");
        }
    }
}

fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
    }
}
