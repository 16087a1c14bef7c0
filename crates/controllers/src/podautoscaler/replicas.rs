//! The HPA's replica arithmetic as pure functions (upstream
//! `pkg/controller/podautoscaler/replica_calculator.go` and the normalisation half of
//! `horizontal.go`): pods grouped into ready / unready / missing / ignored, the
//! utilisation ratio with the 10% tolerance, the scale-up limit and min/max rules, and
//! `behavior`'s stabilisation windows and rate policies over recorded
//! recommendations and scale events.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::autoscaling::v2::{HPAScalingPolicy, HPAScalingRules};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// `--horizontal-pod-autoscaler-tolerance`'s default.
pub const TOLERANCE: f64 = 0.1;
/// `--horizontal-pod-autoscaler-cpu-initialization-period`'s default.
pub const CPU_INITIALIZATION_PERIOD: SignedDuration = SignedDuration::from_secs(300);
/// `--horizontal-pod-autoscaler-initial-readiness-delay`'s default.
pub const INITIAL_READINESS_DELAY: SignedDuration = SignedDuration::from_secs(30);
/// `--horizontal-pod-autoscaler-downscale-stabilization`'s default.
pub const DOWNSCALE_STABILIZATION: SignedDuration = SignedDuration::from_secs(300);

/// One pod's metric (milli-units), when it was taken and over which window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodMetric {
    pub value: i64,
    pub timestamp: Timestamp,
    pub window: SignedDuration,
}

/// Pod name → metric.
pub type PodMetrics = BTreeMap<String, PodMetric>;

/// Upstream `groupPods`.
#[derive(Debug, Default, PartialEq)]
pub struct Groups {
    pub ready: usize,
    pub unready: BTreeSet<String>,
    pub missing: BTreeSet<String>,
    pub ignored: BTreeSet<String>,
}

/// Sorts the pods as upstream's `groupPods` does: deleted or failed pods are ignored,
/// pending ones unready, pods without a metric missing, and for cpu pods still
/// starting (or never ready) unready.
pub fn group_pods(pods: &[&Pod], metrics: &PodMetrics, cpu: bool, now: Timestamp) -> Groups {
    let mut g = Groups::default();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref());
        if pod.metadata.deletion_timestamp.is_some() || phase == Some("Failed") {
            g.ignored.insert(name);
            continue;
        }
        if phase == Some("Pending") {
            g.unready.insert(name);
            continue;
        }
        let Some(metric) = metrics.get(&name) else {
            g.missing.insert(name);
            continue;
        };
        if cpu {
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
            let start = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
            let unready = match (ready, start) {
                (Some(c), Some(start)) => {
                    let transition = c
                        .last_transition_time
                        .as_ref()
                        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
                    if start
                        .saturating_add(CPU_INITIALIZATION_PERIOD)
                        .unwrap_or(start)
                        > now
                    {
                        c.status == "False"
                            || metric.timestamp
                                < transition
                                    .saturating_add(metric.window)
                                    .unwrap_or(transition)
                    } else {
                        c.status == "False"
                            && start
                                .saturating_add(INITIAL_READINESS_DELAY)
                                .unwrap_or(start)
                                > transition
                    }
                }
                _ => true,
            };
            if unready {
                g.unready.insert(name);
                continue;
            }
        }
        g.ready += 1;
    }
    g
}

/// Upstream `GetResourceUtilizationRatio`: (ratio, utilisation %, raw average).
pub fn utilization_ratio(
    metrics: &PodMetrics,
    requests: &BTreeMap<String, i64>,
    target_utilization: i32,
) -> Result<(f64, i32, i64), String> {
    let mut metrics_total: i64 = 0;
    let mut requests_total: i64 = 0;
    let mut n: i64 = 0;
    for (pod, m) in metrics {
        let Some(r) = requests.get(pod) else { continue };
        metrics_total += m.value;
        requests_total += r;
        n += 1;
    }
    if requests_total == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = ((metrics_total * 100) / requests_total) as i32;
    Ok((
        f64::from(utilization) / f64::from(target_utilization.max(1)),
        utilization,
        metrics_total / n.max(1),
    ))
}

/// Upstream `GetResourceReplicas` after the metrics are read: (replicas, utilisation %,
/// raw average).
pub fn resource_replicas(
    current: i32,
    target_utilization: i32,
    pods: &[&Pod],
    mut metrics: PodMetrics,
    requests: &BTreeMap<String, i64>,
    cpu: bool,
    now: Timestamp,
) -> Result<(i32, i32, i64), String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let g = group_pods(pods, &metrics, cpu, now);
    for name in g.ignored.iter().chain(g.unready.iter()) {
        metrics.remove(name);
    }
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let (ratio, utilization, raw) = utilization_ratio(&metrics, requests, target_utilization)?;
    let scale_up_with_unready = !g.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && g.missing.is_empty() {
        if (1.0 - ratio).abs() <= TOLERANCE {
            return Ok((current, utilization, raw));
        }
        return Ok(((ratio * g.ready as f64).ceil() as i32, utilization, raw));
    }
    let filler = |value: i64| PodMetric {
        value,
        timestamp: now,
        window: SignedDuration::ZERO,
    };
    if ratio < 1.0 {
        // a scale-down counts missing pods at 100% (or the target, if higher)
        let fallback = i64::from(target_utilization.max(100));
        for name in &g.missing {
            let r = requests.get(name).copied().unwrap_or(0);
            metrics.insert(name.clone(), filler(r * fallback / 100));
        }
    } else if ratio > 1.0 {
        for name in &g.missing {
            metrics.insert(name.clone(), filler(0));
        }
    }
    if scale_up_with_unready {
        for name in &g.unready {
            metrics.insert(name.clone(), filler(0));
        }
    }
    let (new_ratio, ..) = utilization_ratio(&metrics, requests, target_utilization)?;
    if (1.0 - new_ratio).abs() <= TOLERANCE
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok((current, utilization, raw));
    }
    let replicas = (new_ratio * metrics.len() as f64).ceil() as i32;
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok((current, utilization, raw));
    }
    Ok((replicas, utilization, raw))
}

/// Upstream `GetMetricUsageRatio`: (ratio, average usage).
fn usage_ratio(metrics: &PodMetrics, target: i64) -> (f64, i64) {
    let total: i64 = metrics.values().map(|m| m.value).sum();
    let avg = total / (metrics.len().max(1) as i64);
    (avg as f64 / target.max(1) as f64, avg)
}

/// Upstream `GetRawResourceReplicas` / `calcPlainMetricReplicas` (an average-value
/// target, milli-units): (replicas, average usage).
pub fn raw_resource_replicas(
    current: i32,
    target: i64,
    pods: &[&Pod],
    mut metrics: PodMetrics,
    cpu: bool,
    now: Timestamp,
) -> Result<(i32, i64), String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let g = group_pods(pods, &metrics, cpu, now);
    for name in g.ignored.iter().chain(g.unready.iter()) {
        metrics.remove(name);
    }
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let (ratio, usage) = usage_ratio(&metrics, target);
    let scale_up_with_unready = !g.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && g.missing.is_empty() {
        if (1.0 - ratio).abs() <= TOLERANCE {
            return Ok((current, usage));
        }
        return Ok(((ratio * g.ready as f64).ceil() as i32, usage));
    }
    let filler = |value: i64| PodMetric {
        value,
        timestamp: now,
        window: SignedDuration::ZERO,
    };
    for name in &g.missing {
        // a scale-down counts missing pods at the target, a scale-up at zero
        let v = if ratio < 1.0 { target } else { 0 };
        metrics.insert(name.clone(), filler(v));
    }
    if scale_up_with_unready {
        for name in &g.unready {
            metrics.insert(name.clone(), filler(0));
        }
    }
    let (new_ratio, _) = usage_ratio(&metrics, target);
    if (1.0 - new_ratio).abs() <= TOLERANCE
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok((current, usage));
    }
    let replicas = (new_ratio * metrics.len() as f64).ceil() as i32;
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok((current, usage));
    }
    Ok((replicas, usage))
}

/// Upstream `calculateScaleUpLimit`: at most double, at least 4.
pub fn scale_up_limit(current: i32) -> i32 {
    (2.0 * f64::from(current)).max(4.0) as i32
}

/// Upstream `convertDesiredReplicasWithRules`: (replicas, ScalingLimited reason,
/// message).
pub fn apply_rules(
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
) -> (i32, &'static str, &'static str) {
    let limit = scale_up_limit(current);
    let (max_allowed, mut reason, mut message) = if max > limit {
        (
            limit,
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate",
        )
    } else {
        (
            max,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        )
    };
    if desired < min {
        reason = "TooFewReplicas";
        message = "the desired replica count is less than the minimum replica count";
        return (min, reason, message);
    }
    if desired > max_allowed {
        return (max_allowed, reason, message);
    }
    (
        desired,
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    )
}

/// A recorded recommendation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recommendation {
    pub replicas: i32,
    pub at: Timestamp,
}

/// Upstream `stabilizeRecommendation` (no `behavior`): the highest recommendation of
/// the downscale window; records this one, reusing an expired slot.
pub fn stabilize(recs: &mut Vec<Recommendation>, desired: i32, now: Timestamp) -> i32 {
    let cutoff = now - DOWNSCALE_STABILIZATION;
    let mut best = desired;
    let mut old = None;
    for (i, r) in recs.iter().enumerate() {
        if r.at < cutoff {
            old = Some(i);
        } else if r.replicas > best {
            best = r.replicas;
        }
    }
    record(recs, old, desired, now);
    best
}

fn record(recs: &mut Vec<Recommendation>, slot: Option<usize>, replicas: i32, at: Timestamp) {
    let rec = Recommendation { replicas, at };
    match slot.and_then(|i| recs.get_mut(i)) {
        Some(r) => *r = rec,
        None => recs.push(rec),
    }
}

/// A scaling event (for `behavior` rate policies).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleEvent {
    pub change: i32,
    pub at: Timestamp,
    pub outdated: bool,
}

/// `behavior.scaleUp` with the API's defaults filled in.
pub fn scale_up_rules(r: Option<&HPAScalingRules>) -> HPAScalingRules {
    let mut r = r.cloned().unwrap_or_default();
    r.stabilization_window_seconds.get_or_insert(0);
    r.select_policy.get_or_insert_with(|| "Max".into());
    if r.policies.as_ref().is_none_or(Vec::is_empty) {
        r.policies = Some(vec![policy("Percent", 100, 15), policy("Pods", 4, 15)]);
    }
    r
}

/// `behavior.scaleDown` with the API's defaults (and the controller's 300 s window).
pub fn scale_down_rules(r: Option<&HPAScalingRules>) -> HPAScalingRules {
    let mut r = r.cloned().unwrap_or_default();
    r.stabilization_window_seconds
        .get_or_insert(DOWNSCALE_STABILIZATION.as_secs() as i32);
    r.select_policy.get_or_insert_with(|| "Max".into());
    if r.policies.as_ref().is_none_or(Vec::is_empty) {
        r.policies = Some(vec![policy("Percent", 100, 15)]);
    }
    r
}

fn policy(type_: &str, value: i32, period: i32) -> HPAScalingPolicy {
    HPAScalingPolicy {
        type_: type_.into(),
        value,
        period_seconds: period,
    }
}

/// Upstream `stabilizeRecommendationWithBehaviors`: (replicas, reason, message).
pub fn stabilize_with_behavior(
    recs: &mut Vec<Recommendation>,
    current: i32,
    desired: i32,
    up: &HPAScalingRules,
    down: &HPAScalingRules,
    now: Timestamp,
) -> (i32, &'static str, &'static str) {
    let secs = |r: &HPAScalingRules| i64::from(r.stabilization_window_seconds.unwrap_or(0));
    let up_cutoff = now - SignedDuration::from_secs(secs(up));
    let down_cutoff = now - SignedDuration::from_secs(secs(down));
    let mut up_rec = desired;
    let mut down_rec = desired;
    let mut old = None;
    for (i, r) in recs.iter().enumerate() {
        if r.at > up_cutoff {
            up_rec = up_rec.min(r.replicas);
        }
        if r.at > down_cutoff {
            down_rec = down_rec.max(r.replicas);
        }
        if r.at < up_cutoff && r.at < down_cutoff {
            old = Some(i);
        }
    }
    let rec = current.max(up_rec).min(down_rec);
    record(recs, old, desired, now);
    if desired >= current {
        (
            rec,
            "ScaleUpStabilized",
            "recent recommendations were lower than current one, applying the lowest recent recommendation",
        )
    } else {
        (
            rec,
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation",
        )
    }
}

fn change_in_period(period_seconds: i32, events: &[ScaleEvent], now: Timestamp) -> i32 {
    let cutoff = now - SignedDuration::from_secs(i64::from(period_seconds));
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| e.change)
        .sum()
}

/// Upstream `calculateScaleUpLimitWithScalingRules`.
pub fn scale_up_limit_with_rules(
    current: i32,
    ups: &[ScaleEvent],
    downs: &[ScaleEvent],
    rules: &HPAScalingRules,
    now: Timestamp,
) -> i32 {
    let select = rules.select_policy.as_deref().unwrap_or("Max");
    if select == "Disabled" {
        return current;
    }
    let min_change = select == "Min";
    let mut result = if min_change { i32::MAX } else { i32::MIN };
    for p in rules.policies.iter().flatten() {
        let start = current - change_in_period(p.period_seconds, ups, now)
            + change_in_period(p.period_seconds, downs, now);
        let proposed = match p.type_.as_str() {
            "Pods" => start + p.value,
            _ => (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32,
        };
        result = if min_change {
            result.min(proposed)
        } else {
            result.max(proposed)
        };
    }
    result
}

/// Upstream `calculateScaleDownLimitWithBehaviors`.
pub fn scale_down_limit_with_rules(
    current: i32,
    ups: &[ScaleEvent],
    downs: &[ScaleEvent],
    rules: &HPAScalingRules,
    now: Timestamp,
) -> i32 {
    let select = rules.select_policy.as_deref().unwrap_or("Max");
    if select == "Disabled" {
        return current;
    }
    let min_change = select == "Min";
    let mut result = if min_change { i32::MIN } else { i32::MAX };
    for p in rules.policies.iter().flatten() {
        let start = current - change_in_period(p.period_seconds, ups, now)
            + change_in_period(p.period_seconds, downs, now);
        let proposed = match p.type_.as_str() {
            "Pods" => start - p.value,
            _ => (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32,
        };
        result = if min_change {
            result.max(proposed)
        } else {
            result.min(proposed)
        };
    }
    result
}

/// Upstream `convertDesiredReplicasWithBehaviorRate`: (replicas, reason, message).
#[allow(clippy::too_many_arguments)]
pub fn apply_behavior_rate(
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    ups: &[ScaleEvent],
    downs: &[ScaleEvent],
    up: &HPAScalingRules,
    down: &HPAScalingRules,
    now: Timestamp,
) -> (i32, &'static str, &'static str) {
    if desired > current {
        let limit = scale_up_limit_with_rules(current, ups, downs, up, now).max(current);
        let (allowed, reason, message) = if max > limit {
            (
                limit,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        } else {
            (
                max,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        };
        if desired > allowed {
            return (allowed, reason, message);
        }
    } else if desired < current {
        let limit = scale_down_limit_with_rules(current, ups, downs, down, now).min(current);
        let (allowed, reason, message) = if min < limit {
            (
                limit,
                "ScaleDownLimit",
                "the desired replica count is decreasing faster than the maximum scale rate",
            )
        } else {
            (
                min,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        };
        if desired < allowed {
            return (allowed, reason, message);
        }
    }
    (
        desired,
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    )
}

/// Upstream `storeScaleEvent`: records a rescale, reusing a slot older than the
/// longest policy period.
pub fn store_scale_event(
    events: &mut Vec<ScaleEvent>,
    rules: &HPAScalingRules,
    change: i32,
    now: Timestamp,
) {
    let longest = rules
        .policies
        .iter()
        .flatten()
        .map(|p| p.period_seconds)
        .max()
        .unwrap_or(0);
    let cutoff = now - SignedDuration::from_secs(i64::from(longest));
    for e in events.iter_mut() {
        if e.at < cutoff {
            e.outdated = true;
        }
    }
    let new = ScaleEvent {
        change,
        at: now,
        outdated: false,
    };
    match events.iter().rposition(|e| e.outdated) {
        Some(i) => events[i] = new,
        None => events.push(new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": phase, "startTime": "2020-01-01T00:00:00Z",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:10Z"}]}
        }))
        .unwrap()
    }

    fn metrics(now: Timestamp, vals: &[(&str, i64)]) -> PodMetrics {
        vals.iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    PodMetric {
                        value: *v,
                        timestamp: now,
                        window: SignedDuration::from_secs(30),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn ratio_scales_and_tolerance_holds() {
        let now = Timestamp::now();
        let pods = [pod("a", "Running"), pod("b", "Running")];
        let refs: Vec<&Pod> = pods.iter().collect();
        let req: BTreeMap<String, i64> = [("a".into(), 100), ("b".into(), 100)].into();
        // 2 pods at 160% against 80%: ratio 2 → 4 replicas
        let (r, util, raw) = resource_replicas(
            2,
            80,
            &refs,
            metrics(now, &[("a", 160), ("b", 160)]),
            &req,
            true,
            now,
        )
        .unwrap();
        assert_eq!((r, util, raw), (4, 160, 160));
        // 85% against 80%: within 10% → unchanged
        let (r, ..) = resource_replicas(
            2,
            80,
            &refs,
            metrics(now, &[("a", 85), ("b", 85)]),
            &req,
            true,
            now,
        )
        .unwrap();
        assert_eq!(r, 2);
        // scale-down with a missing pod counts it at 100%
        let (r, ..) =
            resource_replicas(2, 80, &refs, metrics(now, &[("a", 10)]), &req, true, now).unwrap();
        assert_eq!(r, 2);
        assert!(resource_replicas(2, 80, &[], PodMetrics::new(), &req, true, now).is_err());
    }

    #[test]
    fn pending_and_failed_pods() {
        let now = Timestamp::now();
        let pods = [pod("a", "Running"), pod("b", "Pending"), pod("c", "Failed")];
        let refs: Vec<&Pod> = pods.iter().collect();
        let g = group_pods(&refs, &metrics(now, &[("a", 1)]), true, now);
        assert_eq!(g.ready, 1);
        assert!(g.unready.contains("b") && g.ignored.contains("c"));
    }

    #[test]
    fn rules_limit_replicas() {
        assert_eq!(apply_rules(1, 10, 1, 20).0, 4);
        assert_eq!(apply_rules(1, 10, 1, 20).1, "ScaleUpLimit");
        assert_eq!(
            apply_rules(5, 30, 1, 8),
            (
                8,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count"
            )
        );
        assert_eq!(apply_rules(5, 0, 2, 8).1, "TooFewReplicas");
        assert_eq!(apply_rules(5, 6, 2, 8).1, "DesiredWithinRange");
    }

    #[test]
    fn downscale_is_stabilized() {
        let t0 = Timestamp::now();
        let mut recs = Vec::new();
        assert_eq!(stabilize(&mut recs, 5, t0), 5);
        assert_eq!(
            stabilize(&mut recs, 2, t0 + SignedDuration::from_secs(60)),
            5
        );
        // after the window the old recommendation is gone
        assert_eq!(
            stabilize(&mut recs, 2, t0 + SignedDuration::from_secs(400)),
            2
        );
    }

    #[test]
    fn behavior_policies() {
        let now = Timestamp::now();
        let up = scale_up_rules(None);
        let down = scale_down_rules(None);
        // default scale-up: max(100%, +4 pods) per 15s
        assert_eq!(scale_up_limit_with_rules(2, &[], &[], &up, now), 6);
        assert_eq!(scale_up_limit_with_rules(10, &[], &[], &up, now), 20);
        let ups = [ScaleEvent {
            change: 4,
            at: now,
            outdated: false,
        }];
        assert_eq!(scale_up_limit_with_rules(6, &ups, &[], &up, now), 6);
        assert_eq!(scale_down_limit_with_rules(10, &[], &[], &down, now), 0);
        let (r, reason, _) = apply_behavior_rate(2, 20, 1, 10, &[], &[], &up, &down, now);
        assert_eq!((r, reason), (6, "ScaleUpLimit"));
        let mut recs = Vec::new();
        let (r, reason, _) = stabilize_with_behavior(&mut recs, 5, 5, &up, &down, now);
        assert_eq!((r, reason), (5, "ScaleUpStabilized"));
        let (r, reason, _) = stabilize_with_behavior(
            &mut recs,
            5,
            2,
            &up,
            &down,
            now + SignedDuration::from_secs(10),
        );
        assert_eq!((r, reason), (5, "ScaleDownStabilized"));
        let mut events = Vec::new();
        store_scale_event(&mut events, &up, 3, now);
        store_scale_event(&mut events, &up, 1, now + SignedDuration::from_secs(60));
        assert_eq!(events.len(), 1);
    }
}
