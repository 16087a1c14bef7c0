//! Deployments, ReplicaSets, StatefulSets and DaemonSets as upstream's
//! `pkg/apis/apps/validation/validation.go` (`ValidateDeploymentSpec`,
//! `ValidateReplicaSetSpec`, `ValidateStatefulSetSpec`, `ValidateDaemonSetSpec`, their
//! updates and the apps/v1 selector immutability of the registry strategies), and
//! ReplicationControllers as `pkg/apis/core/validation` (`ValidateReplicationControllerSpec`).

use serde_json::Value;

use super::core_pod::{pod_template_spec, template_labels};
use super::util::*;

const NOT_MATCH: &str = "`selector` does not match template `labels`";

/// The selector of a workload as upstream's `LabelSelectorAsSelector` sees it.
enum Selector<'a> {
    /// A nil selector selects nothing.
    Nothing,
    /// `{}` selects everything (and is never compared with the template).
    Everything,
    Some(&'a Value),
    /// An operator `LabelSelectorAsSelector` refuses.
    Invalid,
}

fn selector_of(sel: Option<&Value>) -> Selector<'_> {
    match sel.filter(|s| s.is_object()) {
        None => Selector::Nothing,
        Some(s) if selector_empty(s) => Selector::Everything,
        Some(s) => {
            let ops_ok = arr(s, "matchExpressions").iter().all(|e| {
                matches!(
                    (str_of(e, "operator"), arr(e, "values").is_empty()),
                    (Some("In" | "NotIn"), false) | (Some("Exists" | "DoesNotExist"), true)
                )
            });
            if ops_ok {
                Selector::Some(s)
            } else {
                Selector::Invalid
            }
        }
    }
}

fn template_matches(path: &str, sel: &Selector<'_>, template: Option<&Value>, errs: &mut Errs) {
    let labels = template_labels(template);
    let matches = match sel {
        Selector::Nothing => false,
        Selector::Everything | Selector::Invalid => true,
        Selector::Some(s) => selector_matches(s, &labels.clone().unwrap_or_default()),
    };
    if !matches {
        errs.push(invalid_raw(
            &join(&join(path, "metadata"), "labels"),
            &go_string_map(labels.as_ref()),
            NOT_MATCH,
        ));
    }
}

/// The selector checks shared by Deployments, ReplicaSets and StatefulSets.
fn required_selector(spec: &Value, kind: &str, errs: &mut Errs) -> bool {
    let sel = get(spec, "selector");
    match sel {
        None => errs.push(required("spec.selector", "")),
        Some(s) => {
            label_selector("spec.selector", Some(s), errs);
            if selector_empty(s) {
                errs.push(invalid_raw(
                    "spec.selector",
                    &go_label_selector(Some(s)),
                    &format!("empty selector is invalid for {kind}"),
                ));
            }
        }
    }
    !matches!(selector_of(sel), Selector::Invalid)
}

fn restart_always(spec: &Value, kind: &str, forbid_deadline: bool, errs: &mut Errs) {
    let tspec = spec.pointer("/template/spec");
    let rp = tspec.and_then(|t| str_of(t, "restartPolicy")).unwrap_or("");
    if rp != "Always" {
        errs.push(not_supported(
            "spec.template.spec.restartPolicy",
            rp,
            &["Always"],
        ));
    }
    if let Some(ads) = tspec.and_then(|t| int_of(t, "activeDeadlineSeconds")) {
        let p = "spec.template.spec.activeDeadlineSeconds";
        if forbid_deadline {
            errs.push(forbidden(
                p,
                &format!("activeDeadlineSeconds in {kind} is not Supported"),
            ));
        } else {
            errs.push(invalid_int(
                p,
                ads,
                &format!("activeDeadlineSeconds in {kind} is not Supported"),
            ));
        }
    }
}

/// `ValidatePodTemplateSpecForReplicaSet`.
fn template_for_replica_set(spec: &Value, kind: &str, errs: &mut Errs) {
    let template = get(spec, "template");
    if template.is_some() {
        template_matches(
            "spec.template",
            &selector_of(get(spec, "selector")),
            template,
            errs,
        );
    }
    pod_template_spec("spec.template", template, errs);
    if template.is_some() {
        restart_always(spec, kind, true, errs);
    }
}

fn percent_value(v: Option<&Value>) -> (i64, bool) {
    match v {
        Some(Value::String(s)) => (
            s.strip_suffix('%')
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            true,
        ),
        Some(other) => (other.as_i64().unwrap_or(0), false),
        None => (0, false),
    }
}

/// `ValidatePositiveIntOrPercent`.
fn positive_int_or_percent(path: &str, v: Option<&Value>, errs: &mut Errs) {
    match v {
        Some(Value::String(s)) => {
            let ok = s
                .strip_suffix('%')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
            if !ok {
                errs.push(invalid_raw(path, &go_int_or_string(v), "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"));
            }
        }
        Some(n) => {
            let n = n.as_i64().unwrap_or(0);
            if n < 0 {
                errs.push(invalid_int(path, n, NONNEGATIVE));
            }
        }
        None => {}
    }
}

fn not_more_than_100_percent(path: &str, v: Option<&Value>, errs: &mut Errs) {
    let (n, is_percent) = percent_value(v);
    if is_percent && n > 100 {
        errs.push(invalid_raw(
            path,
            &go_int_or_string(v),
            "must not be greater than 100%",
        ));
    }
}

fn deployment_strategy(spec: &Value, errs: &mut Errs) {
    let null = Value::Null;
    let st = get(spec, "strategy").unwrap_or(&null);
    let ru = get(st, "rollingUpdate");
    match s(st, "type") {
        "Recreate" => {
            if ru.is_some() {
                errs.push(forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match ru {
            None => errs.push(required(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            )),
            Some(ru) => {
                let (mu, ms) = (get(ru, "maxUnavailable"), get(ru, "maxSurge"));
                let p = "spec.strategy.rollingUpdate";
                positive_int_or_percent(&join(p, "maxUnavailable"), mu, errs);
                positive_int_or_percent(&join(p, "maxSurge"), ms, errs);
                if percent_value(mu).0 == 0 && percent_value(ms).0 == 0 {
                    errs.push(invalid_raw(
                        &join(p, "maxUnavailable"),
                        &go_int_or_string(mu),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                not_more_than_100_percent(&join(p, "maxUnavailable"), mu, errs);
            }
        },
        other => {
            let ru_shown = if ru.is_some() {
                "(*apps.RollingUpdateDeployment)(0xc000000000)"
            } else {
                "(*apps.RollingUpdateDeployment)(nil)"
            };
            errs.push(super::util::not_supported_raw(
                "spec.strategy",
                &format!(
                    "apps.DeploymentStrategy{{Type:{}, RollingUpdate:{ru_shown}}}",
                    go_quote(other)
                ),
                &["Recreate", "RollingUpdate"],
            ));
        }
    }
}

fn selector_immutable(spec: &Value, old: Option<&Value>, errs: &mut Errs) {
    let Some(old) = old else { return };
    let (new_sel, old_sel) = (spec.get("selector"), old.pointer("/spec/selector"));
    if new_sel != old_sel {
        errs.push(invalid_raw(
            "spec.selector",
            &go_label_selector(new_sel),
            IMMUTABLE,
        ));
    }
}

pub fn deployment(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    nonnegative("spec", spec, "replicas", &mut errs);
    if required_selector(spec, "deployment", &mut errs) {
        template_for_replica_set(spec, "ReplicaSet", &mut errs);
    } else {
        errs.push(invalid_raw(
            "spec.selector",
            &go_label_selector(get(spec, "selector")),
            "invalid label selector",
        ));
    }
    deployment_strategy(spec, &mut errs);
    nonnegative("spec", spec, "minReadySeconds", &mut errs);
    nonnegative("spec", spec, "revisionHistoryLimit", &mut errs);
    if let Some(pds) = int_of(spec, "progressDeadlineSeconds") {
        nonnegative("spec", spec, "progressDeadlineSeconds", &mut errs);
        if pds <= int_of(spec, "minReadySeconds").unwrap_or(0) {
            errs.push(invalid_int(
                "spec.progressDeadlineSeconds",
                pds,
                "must be greater than minReadySeconds",
            ));
        }
    }
    selector_immutable(spec, old, &mut errs);
    errs
}

pub fn replica_set(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    nonnegative("spec", spec, "replicas", &mut errs);
    nonnegative("spec", spec, "minReadySeconds", &mut errs);
    if required_selector(spec, "deployment", &mut errs) {
        template_for_replica_set(spec, "ReplicaSet", &mut errs);
    } else {
        errs.push(invalid_raw(
            "spec.selector",
            &go_label_selector(get(spec, "selector")),
            "invalid label selector",
        ));
    }
    selector_immutable(spec, old, &mut errs);
    errs
}

pub fn stateful_set(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    match s(spec, "podManagementPolicy") {
        "" => errs.push(required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(invalid_str(
            "spec.podManagementPolicy",
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let us = get(spec, "updateStrategy").unwrap_or(&null);
    match s(us, "type") {
        "" => errs.push(required("spec.updateStrategy", "")),
        "OnDelete" => {
            if get(us, "rollingUpdate").is_some() {
                errs.push(invalid_raw("spec.updateStrategy.rollingUpdate", "apps.RollingUpdateStatefulSetStrategy{}", "only allowed for updateStrategy 'RollingUpdate'"));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = get(us, "rollingUpdate") {
                nonnegative("spec.updateStrategy.rollingUpdate", ru, "partition", &mut errs);
                if let Some(mu) = get(ru, "maxUnavailable") {
                    positive_int_or_percent("spec.updateStrategy.rollingUpdate.maxUnavailable", Some(mu), &mut errs);
                }
            }
        }
        other => errs.push(invalid_raw(
            "spec.updateStrategy",
            &format!("apps.StatefulSetUpdateStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}}", go_quote(other)),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    nonnegative("spec", spec, "revisionHistoryLimit", &mut errs);
    nonnegative("spec", spec, "replicas", &mut errs);
    if let Some(ord) = get(spec, "ordinals") {
        nonnegative("spec.ordinals", ord, "start", &mut errs);
    }
    nonnegative("spec", spec, "minReadySeconds", &mut errs);
    if required_selector(spec, "statefulset", &mut errs) {
        let template = get(spec, "template");
        template_matches(
            "spec.template",
            &selector_of(get(spec, "selector")),
            template,
            &mut errs,
        );
        pod_template_spec("spec.template", template, &mut errs);
    } else {
        errs.push(invalid_raw(
            "spec.selector",
            &go_label_selector(get(spec, "selector")),
            "",
        ));
    }
    restart_always(spec, "StatefulSet", true, &mut errs);
    if let Some(old) = old {
        let mut new_spec = spec.clone();
        let old_spec = get(old, "spec").unwrap_or(&null);
        if let Some(m) = new_spec.as_object_mut() {
            for k in [
                "replicas",
                "template",
                "updateStrategy",
                "minReadySeconds",
                "ordinals",
                "revisionHistoryLimit",
                "persistentVolumeClaimRetentionPolicy",
            ] {
                match old_spec.get(k) {
                    Some(v) => m.insert(k.into(), v.clone()),
                    None => m.remove(k),
                };
            }
        }
        if &new_spec != old_spec {
            errs.push(forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"));
        }
    }
    errs
}

pub fn daemon_set(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    let sel = get(spec, "selector");
    label_selector("spec.selector", sel, &mut errs);
    let selector = selector_of(sel);
    if !matches!(selector, Selector::Invalid | Selector::Everything) {
        template_matches("spec.template", &selector, get(spec, "template"), &mut errs);
    }
    if let Some(s) = sel.filter(|s| selector_empty(s)) {
        errs.push(invalid_raw(
            "spec.selector",
            &go_label_selector(Some(s)),
            "empty selector is invalid for daemonset",
        ));
    }
    pod_template_spec("spec.template", get(spec, "template"), &mut errs);
    restart_always(spec, "DaemonSet", false, &mut errs);
    nonnegative("spec", spec, "minReadySeconds", &mut errs);
    nonnegative("spec", spec, "templateGeneration", &mut errs);
    let us = get(spec, "updateStrategy").unwrap_or(&null);
    match s(us, "type") {
        "OnDelete" => {}
        "RollingUpdate" => match get(us, "rollingUpdate") {
            None => errs.push(required("spec.updateStrategy.rollingUpdate", "")),
            Some(ru) => {
                let p = "spec.updateStrategy.rollingUpdate";
                let (mu, ms) = (get(ru, "maxUnavailable"), get(ru, "maxSurge"));
                positive_int_or_percent(&join(p, "maxUnavailable"), mu, &mut errs);
                positive_int_or_percent(&join(p, "maxSurge"), ms, &mut errs);
                not_more_than_100_percent(&join(p, "maxUnavailable"), mu, &mut errs);
                not_more_than_100_percent(&join(p, "maxSurge"), ms, &mut errs);
                match (percent_value(mu).0 != 0, percent_value(ms).0 != 0) {
                    (true, true) => errs.push(invalid_raw(&join(p, "maxSurge"), &go_int_or_string(ms), "may not be set when maxUnavailable is non-zero")),
                    (false, false) => errs.push(required(&join(p, "maxUnavailable"), "cannot be 0 when maxSurge is 0")),
                    _ => {}
                }
            }
        },
        other => errs.push(super::util::not_supported_raw(
            "spec.updateStrategy",
            &format!("apps.DaemonSetUpdateStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}}", go_quote(other)),
            &["RollingUpdate", "OnDelete"],
        )),
    }
    nonnegative("spec", spec, "revisionHistoryLimit", &mut errs);
    selector_immutable(spec, old, &mut errs);
    errs
}

pub fn replication_controller(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    nonnegative("spec", spec, "minReadySeconds", &mut errs);
    let selector = string_map(spec, "selector").unwrap_or_default();
    if selector.is_empty() {
        errs.push(required("spec.selector", ""));
    }
    nonnegative("spec", spec, "replicas", &mut errs);
    let template = get(spec, "template");
    if template.is_some() && !selector.is_empty() {
        let labels = template_labels(template);
        let have = labels.clone().unwrap_or_default();
        if !selector.iter().all(|(k, v)| have.get(k) == Some(v)) {
            errs.push(invalid_raw(
                "spec.template.metadata.labels",
                &go_string_map(labels.as_ref()),
                NOT_MATCH,
            ));
        }
    }
    pod_template_spec("spec.template", template, &mut errs);
    if template.is_some() {
        restart_always(spec, "ReplicationController", true, &mut errs);
    }
    errs
}
