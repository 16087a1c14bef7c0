//! PodDisruptionBudgets and HorizontalPodAutoscalers as upstream's
//! `pkg/apis/policy/validation/validation.go` (`ValidatePodDisruptionBudgetSpec`) and
//! `pkg/apis/autoscaling/validation/validation.go` (`validateHorizontalPodAutoscalerSpec`,
//! `ValidateCrossVersionObjectReference`, the metric specs' basics).

use serde_json::Value;

use super::util::*;

fn int_or_percent(path: &str, v: &Value, errs: &mut Errs) {
    match v {
        Value::String(s) => {
            let n = s
                .strip_suffix('%')
                .filter(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
            match n {
                None => errs.push(invalid_raw(path, &go_int_or_string(Some(v)), "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")),
                Some(n) if n.parse::<u64>().unwrap_or(0) > 100 => {
                    errs.push(invalid_raw(path, &go_int_or_string(Some(v)), "must not be greater than 100%"));
                }
                Some(_) => {}
            }
        }
        other => {
            let n = other.as_i64().unwrap_or(0);
            if n < 0 {
                errs.push(invalid_int(path, n, NONNEGATIVE));
            }
        }
    }
}

pub fn pod_disruption_budget(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    let (min, max) = (get(spec, "minAvailable"), get(spec, "maxUnavailable"));
    if min.is_some() && max.is_some() {
        errs.push(invalid_raw(
            "spec",
            &format!("policy.PodDisruptionBudgetSpec{spec}"),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    if let Some(v) = min {
        int_or_percent("spec.minAvailable", v, &mut errs);
    }
    if let Some(v) = max {
        int_or_percent("spec.maxUnavailable", v, &mut errs);
    }
    label_selector("spec.selector", get(spec, "selector"), &mut errs);
    if let Some(p) = str_of(spec, "unhealthyPodEvictionPolicy") {
        if p != "IfHealthyBudget" && p != "AlwaysAllow" {
            errs.push(not_supported(
                "spec.unhealthyPodEvictionPolicy",
                p,
                &["AlwaysAllow", "IfHealthyBudget"],
            ));
        }
    }
    errs
}

fn path_segment(path: &str, value: &str, errs: &mut Errs) {
    for msg in crate::validation::path_segment_name(value) {
        errs.push(invalid_str(path, value, &msg));
    }
}

pub fn horizontal_pod_autoscaler(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    let min = int_of(spec, "minReplicas");
    let max = int_of(spec, "maxReplicas").unwrap_or(0);
    if let Some(m) = min {
        if m < 1 {
            errs.push(invalid_int(
                "spec.minReplicas",
                m,
                "must be greater than or equal to 1",
            ));
        }
    }
    if max < 1 {
        errs.push(invalid_int(
            "spec.maxReplicas",
            max,
            "must be greater than 0",
        ));
    }
    if min.is_some_and(|m| max < m) {
        errs.push(invalid_int(
            "spec.maxReplicas",
            max,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    let target = get(spec, "scaleTargetRef").unwrap_or(&null);
    for k in ["kind", "name"] {
        let v = s(target, k);
        let p = join("spec.scaleTargetRef", k);
        if v.is_empty() {
            errs.push(required(&p, ""));
        } else {
            path_segment(&p, v, &mut errs);
        }
    }
    const TYPES: &[&str] = &[
        "ContainerResource",
        "External",
        "Object",
        "Pods",
        "Resource",
    ];
    for (i, m) in arr(spec, "metrics").iter().enumerate() {
        let p = idx("spec.metrics", i);
        let t = s(m, "type");
        if t.is_empty() {
            errs.push(required(
                &join(&p, "type"),
                "must specify a metric source type",
            ));
        } else if !TYPES.contains(&t) {
            errs.push(not_supported(&join(&p, "type"), t, TYPES));
        }
    }
    errs
}
