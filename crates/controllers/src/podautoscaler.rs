//! The horizontal pod autoscaler controller (upstream `pkg/controller/podautoscaler`
//! `horizontal.go`): every `--horizontal-pod-autoscaler-sync-period` each autoscaling/v2
//! HPA reads its target's `scale` subresource, brings replicas into
//! [minReplicas, maxReplicas], and otherwise proposes a count from its metrics —
//! resource metrics from `pods.metrics.k8s.io` through the ratio with 10% tolerance
//! ([`replicas`]) — normalised by the min/max rules and the scale-up limit, or by
//! `behavior`'s stabilisation windows and rate policies. Conditions (AbleToScale,
//! ScalingActive, ScalingLimited), status and Events (SuccessfulRescale,
//! FailedGetResourceMetric, FailedComputeMetricsReplicas, …) are upstream's. Pods,
//! Object and External metrics need the custom/external metrics APIs, which ferrokube
//! does not read: such metrics are reported unavailable.

pub mod compute;
pub mod metrics;
pub mod replicas;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrokube_api::selectors::LabelSelector as SelectorExpr;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
    MetricSpec, MetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DynamicObject, PostParams};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;

use crate::context::ControllerContext;
use crate::discovery::Discovery;
use crate::error::{is_not_found, Error, ResultExt};
use crate::events::EventType;
use crate::informer::{key_of, Notification, Store};
use crate::workqueue::{run_workers, WorkQueue};
use replicas::{Recommendation, ScaleEvent};

#[derive(Default)]
struct History {
    recommendations: Vec<Recommendation>,
    ups: Vec<ScaleEvent>,
    downs: Vec<ScaleEvent>,
}

struct Controller {
    ctx: ControllerContext,
    hpas: Store<HorizontalPodAutoscaler>,
    pods: Store<Pod>,
    queue: Arc<WorkQueue>,
    /// Keys with a resync timer running (the delaying queue keeps one per key).
    scheduled: Mutex<HashSet<String>>,
    history: Mutex<HashMap<String, History>>,
    /// Each HPA's last seen target selector (upstream `hpaSelectors`).
    selectors: Mutex<HashMap<String, String>>,
    /// The last discovery reading, for finding targets' scale subresources.
    discovery: Mutex<Option<(Instant, Arc<Discovery>)>>,
}

/// How long a discovery reading is reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(30);

/// Starts the horizontal pod autoscaler controller.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let hpa_inf = ctx.informers.get::<HorizontalPodAutoscaler>();
    let pod_inf = ctx.informers.get::<Pod>();
    let c = Arc::new(Controller {
        hpas: hpa_inf.store(),
        pods: pod_inf.store(),
        queue: WorkQueue::new(ctx.name),
        scheduled: Mutex::default(),
        history: Mutex::default(),
        discovery: Mutex::default(),
        selectors: Mutex::default(),
        ctx,
    });
    {
        let c = c.clone();
        hpa_inf.add_handler(move |n| match n {
            Notification::Add(h) | Notification::Update { new: h, .. } => {
                c.schedule(key_of(&**h));
            }
            Notification::Delete(h) => {
                c.history.lock().remove(&key_of(&**h));
                c.selectors.lock().remove(&key_of(&**h));
            }
        });
    }
    let workers = c.ctx.config.concurrent_horizontal_pod_autoscaler_syncs;
    let stop = c.ctx.stop.clone();
    tokio::spawn(async move {
        hpa_inf.wait_synced().await;
        pod_inf.wait_synced().await;
        let queue = c.queue.clone();
        run_workers(queue, workers, stop, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    });
    Ok(())
}

fn set_condition(
    status: &mut HorizontalPodAutoscalerStatus,
    type_: &str,
    value: bool,
    reason: &str,
    message: String,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let idx = match conditions.iter().position(|c| c.type_ == type_) {
        Some(i) => i,
        None => {
            conditions.push(HorizontalPodAutoscalerCondition {
                type_: type_.into(),
                ..HorizontalPodAutoscalerCondition::default()
            });
            conditions.len() - 1
        }
    };
    let c = &mut conditions[idx];
    let status_str = if value { "True" } else { "False" };
    if c.status != status_str {
        c.last_transition_time = Some(Time(Timestamp::now()));
    }
    c.status = status_str.into();
    c.reason = Some(reason.into());
    c.message = Some(message);
}

/// An API error as client-go prints it (the Status message).
fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        e => e.to_string(),
    }
}

impl Controller {
    /// Queues `key` after the sync period unless a timer for it already runs.
    fn schedule(self: &Arc<Self>, key: String) {
        if !self.scheduled.lock().insert(key.clone()) {
            return;
        }
        let c = self.clone();
        let period = self.ctx.config.horizontal_pod_autoscaler_sync_period;
        let mut stop = self.ctx.stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            c.scheduled.lock().remove(&key);
            c.queue.add(key);
        });
    }

    async fn sync(self: &Arc<Self>, key: &str) -> Result<(), Error> {
        let Some(hpa) = self.hpas.get_key(key) else {
            self.history.lock().remove(key);
            self.selectors.lock().remove(key);
            return Ok(());
        };
        if let Err(e) = self.reconcile(&hpa, key).await {
            tracing::warn!(hpa = key, error = %e, "horizontal-pod-autoscaler: reconcile failed");
        }
        // Every HPA is looked at again one period later, failed or not.
        self.schedule(key.to_string());
        Ok(())
    }

    /// Upstream `reconcileAutoscaler`.
    async fn reconcile(&self, hpa: &HorizontalPodAutoscaler, key: &str) -> Result<(), Error> {
        let ns = hpa.namespace().unwrap_or_default();
        let spec = hpa.spec.clone().unwrap_or_default();
        let target = &spec.scale_target_ref;
        let reference = format!("{}/{ns}/{}", target.kind, target.name);
        let original = hpa.status.clone().unwrap_or_default();
        let mut status = original.clone();
        let api_version = target.api_version.clone().unwrap_or_default();

        let scale = match self
            .get_scale(&api_version, &target.kind, &ns, &target.name)
            .await
        {
            Ok(s) => s,
            Err(msg) => {
                self.ctx
                    .recorder
                    .event(hpa, EventType::Warning, "FailedGetScale", msg.clone());
                set_condition(
                    &mut status,
                    "AbleToScale",
                    false,
                    "FailedGetScale",
                    format!(
                        "the HPA controller was unable to get the target's current scale: {msg}"
                    ),
                );
                self.update_status_if_needed(hpa, &original, status).await?;
                return Err(Error::Invalid {
                    what: format!("HPA {key}"),
                    reason: format!("failed to query scale subresource for {reference}: {msg}"),
                });
            }
        };
        set_condition(
            &mut status,
            "AbleToScale",
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale".into(),
        );
        let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let now = Timestamp::now();
        {
            let mut h = self.history.lock();
            let e = h.entry(key.to_string()).or_default();
            if e.recommendations.is_empty() {
                e.recommendations.push(Recommendation {
                    replicas: current,
                    at: now,
                });
            }
        }
        let min = spec.min_replicas.unwrap_or(1);
        let max = spec.max_replicas;
        let mut desired = 0;
        let mut reason = String::new();
        let mut rescale = true;
        let mut statuses: Option<Vec<MetricStatus>> = None;
        if current == 0 && min != 0 {
            rescale = false;
            set_condition(
                &mut status,
                "ScalingActive",
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
            );
        } else if current > max {
            reason = "Current number of replicas above Spec.MaxReplicas".into();
            desired = max;
        } else if current < min {
            reason = "Current number of replicas below Spec.MinReplicas".into();
            desired = min;
        } else {
            let specs = spec
                .metrics
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(compute::default_metrics);
            match self
                .replicas_for_metrics(hpa, &scale, &specs, &mut status, now)
                .await
            {
                Err((sts, err)) => {
                    status.current_replicas = Some(current);
                    status.current_metrics = sts;
                    self.update_status_if_needed(hpa, &original, status).await?;
                    self.ctx.recorder.event(
                        hpa,
                        EventType::Warning,
                        "FailedComputeMetricsReplicas",
                        err.clone(),
                    );
                    return Err(Error::Invalid {
                        what: format!("HPA {key}"),
                        reason: format!("failed to compute desired number of replicas based on listed metrics for {reference}: {err}"),
                    });
                }
                Ok((proposal, metric, sts)) => {
                    statuses = Some(sts);
                    let mut rescale_metric = String::new();
                    if proposal > desired {
                        desired = proposal;
                        rescale_metric = metric;
                    }
                    if desired > current {
                        reason = format!("{rescale_metric} above target");
                    }
                    if desired < current {
                        reason = "All metrics below target".into();
                    }
                    desired = self.normalize(&spec, key, current, desired, min, &mut status, now);
                    rescale = desired != current;
                }
            }
        }
        if rescale {
            let mut new_scale = scale.clone();
            new_scale.spec.get_or_insert_with(Default::default).replicas = Some(desired);
            if let Err(msg) = self
                .update_scale(&api_version, &target.kind, &ns, &target.name, &new_scale)
                .await
            {
                self.ctx.recorder.event(
                    hpa,
                    EventType::Warning,
                    "FailedRescale",
                    format!("New size: {desired}; reason: {reason}; error: {msg}"),
                );
                set_condition(
                    &mut status,
                    "AbleToScale",
                    false,
                    "FailedUpdateScale",
                    format!("the HPA controller was unable to update the target scale: {msg}"),
                );
                status.current_replicas = Some(current);
                status.current_metrics = statuses;
                self.update_status_if_needed(hpa, &original, status).await?;
                return Err(Error::Invalid {
                    what: format!("HPA {key}"),
                    reason: format!("failed to rescale {reference}: {msg}"),
                });
            }
            set_condition(
                &mut status,
                "AbleToScale",
                true,
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
            );
            self.ctx.recorder.event(
                hpa,
                EventType::Normal,
                "SuccessfulRescale",
                format!("New size: {desired}; reason: {reason}"),
            );
            if let Some(b) = &spec.behavior {
                let mut h = self.history.lock();
                let e = h.entry(key.to_string()).or_default();
                if desired > current {
                    let rules = replicas::scale_up_rules(b.scale_up.as_ref());
                    replicas::store_scale_event(&mut e.ups, &rules, desired - current, now);
                } else {
                    let rules = replicas::scale_down_rules(b.scale_down.as_ref());
                    replicas::store_scale_event(&mut e.downs, &rules, current - desired, now);
                }
            }
            tracing::info!(hpa = key, current, desired, %reason, "successfully rescaled");
            status.last_scale_time = Some(Time(now));
        } else {
            desired = current;
        }
        status.current_replicas = Some(current);
        status.desired_replicas = desired;
        status.current_metrics = statuses.filter(|s| !s.is_empty());
        self.update_status_if_needed(hpa, &original, status).await
    }

    /// `normalizeDesiredReplicas` / `normalizeDesiredReplicasWithBehaviors`.
    #[allow(clippy::too_many_arguments)]
    fn normalize(
        &self,
        spec: &k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerSpec,
        key: &str,
        current: i32,
        desired: i32,
        min: i32,
        status: &mut HorizontalPodAutoscalerStatus,
        now: Timestamp,
    ) -> i32 {
        let mut h = self.history.lock();
        let e = h.entry(key.to_string()).or_default();
        let (stabilized, out, reason, message) = match &spec.behavior {
            None => {
                let stabilized = replicas::stabilize(&mut e.recommendations, desired, now);
                if stabilized != desired {
                    set_condition(status, "AbleToScale", true, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation".into());
                } else {
                    set_condition(
                        status,
                        "AbleToScale",
                        true,
                        "ReadyForNewScale",
                        "recommended size matches current size".into(),
                    );
                }
                let (out, r, m) =
                    replicas::apply_rules(current, stabilized, min, spec.max_replicas);
                (stabilized, out, r, m)
            }
            Some(b) => {
                let up = replicas::scale_up_rules(b.scale_up.as_ref());
                let down = replicas::scale_down_rules(b.scale_down.as_ref());
                let (stabilized, r, m) = replicas::stabilize_with_behavior(
                    &mut e.recommendations,
                    current,
                    desired,
                    &up,
                    &down,
                    now,
                );
                if stabilized != desired {
                    set_condition(status, "AbleToScale", true, r, m.into());
                } else {
                    set_condition(
                        status,
                        "AbleToScale",
                        true,
                        "ReadyForNewScale",
                        "recommended size matches current size".into(),
                    );
                }
                let (out, r, m) = replicas::apply_behavior_rate(
                    current,
                    stabilized,
                    min,
                    spec.max_replicas,
                    &e.ups,
                    &e.downs,
                    &up,
                    &down,
                    now,
                );
                (stabilized, out, r, m)
            }
        };
        set_condition(
            status,
            "ScalingLimited",
            out != stabilized,
            reason,
            message.into(),
        );
        out
    }

    /// Upstream `computeReplicasForMetrics`: the highest proposal of the valid metrics.
    async fn replicas_for_metrics(
        &self,
        hpa: &HorizontalPodAutoscaler,
        scale: &Scale,
        specs: &[MetricSpec],
        status: &mut HorizontalPodAutoscalerStatus,
        now: Timestamp,
    ) -> Result<(i32, String, Vec<MetricStatus>), (Option<Vec<MetricStatus>>, String)> {
        let ns = hpa.namespace().unwrap_or_default();
        let sel = scale
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        if sel.is_empty() {
            self.ctx.recorder.event(
                hpa,
                EventType::Warning,
                "SelectorRequired",
                "selector is required",
            );
            set_condition(
                status,
                "ScalingActive",
                false,
                "InvalidSelector",
                "the HPA target's scale is missing a selector".into(),
            );
            return Err((None, "selector is required".into()));
        }
        let parsed = match SelectorExpr::parse(&sel) {
            Ok(p) => p,
            Err(e) => {
                let msg = format!(
                    "couldn't convert selector into a corresponding internal selector object: {e}"
                );
                self.ctx
                    .recorder
                    .event(hpa, EventType::Warning, "InvalidSelector", msg.clone());
                set_condition(
                    status,
                    "ScalingActive",
                    false,
                    "InvalidSelector",
                    msg.clone(),
                );
                return Err((None, msg));
            }
        };
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(&ns)
            .into_iter()
            .filter(|p| parsed.matches(crate::podutil::labels(&p.metadata)))
            .collect();
        // Upstream's hpaSelectors: pods under more than one HPA make both ambiguous.
        let mut selecting: Vec<String> = {
            let mut selectors = self.selectors.lock();
            selectors.insert(key_of(hpa), sel.clone());
            selectors
                .iter()
                .filter(|(k, _)| crate::informer::split_key(k).0 == ns)
                .filter(|(_, s)| {
                    SelectorExpr::parse(s).is_ok_and(|p| {
                        pods.iter()
                            .any(|pod| p.matches(crate::podutil::labels(&pod.metadata)))
                    })
                })
                .map(|(k, _)| k.clone())
                .collect()
        };
        if selecting.len() > 1 {
            selecting.sort();
            let msg = format!(
                "pods by selector {sel} are controlled by multiple HPAs: [{}]",
                selecting.join(" ")
            );
            self.ctx
                .recorder
                .event(hpa, EventType::Warning, "AmbiguousSelector", msg.clone());
            set_condition(
                status,
                "ScalingActive",
                false,
                "AmbiguousSelector",
                msg.clone(),
            );
            return Err((None, msg));
        }
        let pod_refs: Vec<&Pod> = pods.iter().map(|p| &**p).collect();
        let spec_replicas = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let mut statuses = vec![MetricStatus::default(); specs.len()];
        let mut best: Option<(i32, String)> = None;
        let mut invalid = 0usize;
        let mut first: Option<compute::MetricFailure> = None;
        for (i, m) in specs.iter().enumerate() {
            match compute::replicas_for_metric(
                &self.ctx.client,
                &ns,
                m,
                spec_replicas,
                &sel,
                &pod_refs,
                now,
            )
            .await
            {
                Ok(p) => {
                    statuses[i] = p.status;
                    if best
                        .as_ref()
                        .is_none_or(|(r, _)| *r == 0 || p.replicas > *r)
                    {
                        best = Some((p.replicas, p.metric));
                    }
                }
                Err(f) => {
                    self.ctx
                        .recorder
                        .event(hpa, EventType::Warning, f.reason, f.inner.clone());
                    invalid += 1;
                    if first.is_none() {
                        first = Some(f);
                    }
                }
            }
        }
        let (replicas, metric) = best.unwrap_or((0, String::new()));
        if let Some(f) = &first {
            if invalid >= specs.len() || replicas < spec_replicas {
                set_condition(
                    status,
                    "ScalingActive",
                    false,
                    f.reason,
                    format!(
                        "the HPA was unable to compute the replica count: {}",
                        f.inner
                    ),
                );
                return Err((
                    Some(statuses),
                    format!(
                        "invalid metrics ({invalid} invalid out of {}), first error is: {}",
                        specs.len(),
                        f.outer
                    ),
                ));
            }
        }
        set_condition(
            status,
            "ScalingActive",
            true,
            "ValidMetricFound",
            format!("the HPA was able to successfully calculate a replica count from {metric}"),
        );
        Ok((replicas, metric, statuses))
    }

    /// The target's scale API (upstream's RESTMapper + scale client).
    async fn scale_api(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
    ) -> Result<Api<DynamicObject>, String> {
        // A cached reading (upstream's deferred RESTMapper), read again when stale or
        // when it does not know the kind.
        let cached = self.discovery.lock().clone().filter(|(at, d)| {
            at.elapsed() < DISCOVERY_TTL && d.resource_for(api_version, kind).is_some()
        });
        let discovery = match cached {
            Some((_, d)) => d,
            None => {
                let d = Arc::new(
                    Discovery::run(&self.ctx.client)
                        .await
                        .map_err(|e| e.to_string())?,
                );
                *self.discovery.lock() = Some((Instant::now(), d.clone()));
                d
            }
        };
        let Some(found) = discovery.resource_for(api_version, kind) else {
            let group = crate::discovery::parse_group_version(api_version).map_or("", |(g, _)| g);
            return Err(format!("no matches for kind {kind:?} in group {group:?}"));
        };
        Ok(Api::namespaced_with(
            self.ctx.client.clone(),
            ns,
            &found.resource,
        ))
    }

    async fn get_scale(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> Result<Scale, String> {
        let api = self.scale_api(api_version, kind, ns).await?;
        api.get_scale(name).await.map_err(|e| api_message(&e))
    }

    async fn update_scale(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        scale: &Scale,
    ) -> Result<(), String> {
        let api = self.scale_api(api_version, kind, ns).await?;
        api.replace_scale(name, &PostParams::default(), scale)
            .await
            .map(|_| ())
            .map_err(|e| api_message(&e))
    }

    /// Upstream `updateStatusIfNeeded`: PUT /status when it changed (the role grants
    /// update only).
    async fn update_status_if_needed(
        &self,
        hpa: &HorizontalPodAutoscaler,
        original: &HorizontalPodAutoscalerStatus,
        status: HorizontalPodAutoscalerStatus,
    ) -> Result<(), Error> {
        if *original == status {
            return Ok(());
        }
        let mut updated = hpa.clone();
        updated.metadata.managed_fields = None;
        updated.status = Some(status);
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(
            self.ctx.client.clone(),
            &hpa.namespace().unwrap_or_default(),
        );
        match api
            .replace_status(&hpa.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => {
                self.ctx.recorder.event(
                    hpa,
                    EventType::Warning,
                    "FailedUpdateStatus",
                    api_message(&e),
                );
                Err(e).action(format!("updating status of HPA {}", hpa.name_any()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_keep_transition_times() {
        let mut st = HorizontalPodAutoscalerStatus::default();
        set_condition(
            &mut st,
            "AbleToScale",
            true,
            "SucceededGetScale",
            "m".into(),
        );
        let t = st.conditions.as_ref().unwrap()[0]
            .last_transition_time
            .clone();
        set_condition(&mut st, "AbleToScale", true, "SucceededRescale", "n".into());
        let c = &st.conditions.as_ref().unwrap()[0];
        assert_eq!(c.last_transition_time, t);
        assert_eq!(c.reason.as_deref(), Some("SucceededRescale"));
        set_condition(
            &mut st,
            "ScalingActive",
            false,
            "FailedGetResourceMetric",
            "x".into(),
        );
        assert_eq!(st.conditions.as_ref().unwrap().len(), 2);
    }
}
