//! Jobs and CronJobs as upstream's `pkg/apis/batch/validation/validation.go`
//! (`validateJobSpec`, `ValidateJobSpec`, `ValidateJobSpecUpdate`, `validateCronJobSpec`,
//! `validateTimeZone`), with cron schedules parsed as `robfig/cron/v3`'s `ParseStandard`.
//!
//! The API server's Job strategy generates `spec.selector` (and the template's
//! `batch.kubernetes.io/controller-uid`/`job-name` labels) at creation unless
//! `manualSelector` is set; a given selector must match the template.

use serde_json::Value;

use super::core_pod::{pod_template_spec, template_labels};
use super::cron::parse_standard;
use super::util::*;

/// `validateJobSpec`: the rules shared by Jobs and CronJob job templates.
fn job_spec(path: &str, spec: &Value, errs: &mut Errs) {
    for k in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        nonnegative(path, spec, k, errs);
    }
    if let Some(mode) = str_of(spec, "completionMode") {
        if mode != "NonIndexed" && mode != "Indexed" {
            errs.push(not_supported(
                &join(path, "completionMode"),
                mode,
                &["NonIndexed", "Indexed"],
            ));
        }
        if mode == "Indexed" && get(spec, "completions").is_none() {
            errs.push(required(
                &join(path, "completions"),
                "when completion mode is Indexed",
            ));
        }
    }
    success_policy(path, spec, errs);
    let tpath = join(path, "template");
    let template = get(spec, "template");
    pod_template_spec(&tpath, template, errs);
    let rp = template
        .and_then(|t| t.pointer("/spec/restartPolicy"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let rp_path = join(&tpath, "spec.restartPolicy");
    match rp {
        "Always" | "" => errs.push(required(&rp_path, "valid values: \"OnFailure\", \"Never\"")),
        "OnFailure" | "Never" => {
            if get(spec, "podFailurePolicy").is_some() && rp != "Never" {
                errs.push(invalid_str(
                    &rp_path,
                    rp,
                    "only \"Never\" is supported when podFailurePolicy is specified",
                ));
            }
        }
        other => errs.push(not_supported(&rp_path, other, &["OnFailure", "Never"])),
    }
}

/// Upstream's `validateSuccessPolicy` (Indexed Jobs only, 1 to 20 rules, each with
/// succeededIndexes and/or a succeededCount within completions).
fn success_policy(path: &str, spec: &Value, errs: &mut Errs) {
    let Some(policy) = get(spec, "successPolicy").filter(|p| !p.is_null()) else {
        return;
    };
    let path = join(path, "successPolicy");
    if s(spec, "completionMode") != "Indexed" {
        errs.push(invalid_raw(
            &path,
            &policy.to_string(),
            "requires indexed completion mode",
        ));
    }
    let rules_path = join(&path, "rules");
    let rules = arr(policy, "rules");
    if rules.is_empty() {
        errs.push(required(
            &rules_path,
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    if rules.len() > 20 {
        errs.push(crate::status::field::too_many(&rules_path, rules.len(), 20));
    }
    let completions = int_of(spec, "completions");
    for (i, rule) in rules.iter().enumerate() {
        let rp = idx(&rules_path, i);
        let count = int_of(rule, "succeededCount");
        if count.is_none() && str_of(rule, "succeededIndexes").is_none() {
            errs.push(required(
                &rp,
                "at least one of succeededCount or succeededIndexes must be specified",
            ));
        }
        if let Some(c) = count {
            let cp = join(&rp, "succeededCount");
            if c < 0 {
                errs.push(invalid_int(&cp, c, "must be greater than or equal to 0"));
            }
            if let Some(n) = completions.filter(|n| c > *n) {
                errs.push(invalid_int(
                    &cp,
                    c,
                    &format!(
                        "must be less than or equal to {n} (the number of specified completions)"
                    ),
                ));
            }
        }
    }
}

pub fn job(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    job_spec("spec", spec, &mut errs);
    if let Some(sel) = get(spec, "selector") {
        label_selector("spec.selector", Some(sel), &mut errs);
        let labels = template_labels(get(spec, "template"));
        if !selector_matches(sel, &labels.clone().unwrap_or_default()) {
            errs.push(invalid_raw(
                "spec.template.metadata.labels",
                &go_string_map(labels.as_ref()),
                "`selector` does not match template `labels`",
            ));
        }
    }
    if let Some(old) = old {
        let old_spec = get(old, "spec").unwrap_or(&null);
        let elastic = s(spec, "completionMode") == "Indexed"
            && get(spec, "completions") == get(spec, "parallelism");
        let mut immutable = |k: &str, shown: &dyn Fn(Option<&Value>) -> String| {
            if get(spec, k) != get(old_spec, k) {
                errs.push(invalid_raw(
                    &join("spec", k),
                    &shown(get(spec, k)),
                    IMMUTABLE,
                ));
            }
        };
        let plain = |v: Option<&Value>| match v {
            None => "null".to_string(),
            Some(Value::String(s)) => go_quote(s),
            Some(v) => v.to_string(),
        };
        if !elastic {
            immutable("completions", &plain);
        }
        immutable("selector", &|v| go_label_selector(v));
        // Upstream lets a suspended Job that never started change its scheduling fields.
        let suspended = old_spec.get("suspend").and_then(Value::as_bool) == Some(true);
        if !suspended {
            immutable("template", &|v| {
                format!(
                    "core.PodTemplateSpec{}",
                    v.map(Value::to_string).unwrap_or_default()
                )
            });
        }
        for k in [
            "completionMode",
            "podFailurePolicy",
            "backoffLimitPerIndex",
            "managedBy",
            "successPolicy",
        ] {
            immutable(k, &plain);
        }
    }
    errs
}

pub fn cron_job(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.len() > 52 {
        errs.push(invalid_str(
            "metadata.name",
            name,
            "must be no more than 52 characters",
        ));
    }
    let spec = get(obj, "spec").unwrap_or(&null);
    let old_spec = old.and_then(|o| get(o, "spec"));
    let schedule = s(spec, "schedule");
    if schedule.is_empty() {
        errs.push(required("spec.schedule", ""));
    } else {
        if let Err(e) = parse_standard(schedule) {
            errs.push(invalid_str("spec.schedule", schedule, &e));
        }
        let allow_tz = old_spec.is_some_and(|o| s(o, "schedule").contains("TZ"));
        if allow_tz && schedule.contains("TZ") && get(spec, "timeZone").is_some() {
            errs.push(invalid_str(
                "spec.schedule",
                schedule,
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && schedule.contains("TZ") {
            errs.push(invalid_str(
                "spec.schedule",
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    nonnegative("spec", spec, "startingDeadlineSeconds", &mut errs);
    if old_spec.is_none_or(|o| get(o, "timeZone") != get(spec, "timeZone")) {
        if let Some(tz) = str_of(spec, "timeZone") {
            time_zone(tz, &mut errs);
        }
    }
    match s(spec, "concurrencyPolicy") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(required("spec.concurrencyPolicy", "")),
        other => errs.push(not_supported(
            "spec.concurrencyPolicy",
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let jt = get(spec, "jobTemplate").unwrap_or(&null);
    let jspec = get(jt, "spec").unwrap_or(&null);
    job_spec("spec.jobTemplate.spec", jspec, &mut errs);
    if jspec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        errs.push(not_supported_raw(
            "spec.jobTemplate.spec.manualSelector",
            "true",
            &["nil", "false"],
        ));
    }
    nonnegative("spec", spec, "successfulJobsHistoryLimit", &mut errs);
    nonnegative("spec", spec, "failedJobsHistoryLimit", &mut errs);
    errs
}

fn time_zone(tz: &str, errs: &mut Errs) {
    let p = "spec.timeZone";
    if tz.is_empty() {
        errs.push(invalid_str(
            p,
            tz,
            "timeZone must be nil or non-empty string",
        ));
        return;
    }
    let part_ok = |part: &str| {
        part != "."
            && part != ".."
            && !part.starts_with('-')
            && (1..=14).contains(&part.len())
            && part
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'+'))
    };
    if !tz.split('/').all(part_ok) {
        errs.push(invalid_str(p, tz, &format!("unknown time zone {tz}")));
        return;
    }
    if tz.eq_ignore_ascii_case("Local") {
        errs.push(invalid_str(
            p,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    // Go's time.LoadLocation reads the system's zoneinfo (UTC is built in).
    let zoneinfo = std::path::Path::new("/usr/share/zoneinfo");
    if tz != "UTC" && zoneinfo.is_dir() && !zoneinfo.join(tz).is_file() {
        errs.push(invalid_str(p, tz, &format!("unknown time zone {tz}")));
    }
}
