//! Cluster-wide configuration kinds: StorageClasses (`pkg/apis/storage/validation`),
//! RuntimeClasses (`pkg/apis/node/validation`), PriorityClasses
//! (`pkg/apis/scheduling/validation`) and Leases (`pkg/apis/coordination/validation`).

use serde_json::Value;

use super::util::*;

pub fn storage_class(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    let provisioner = s(obj, "provisioner");
    if provisioner.is_empty() {
        errs.push(required("provisioner", ""));
    } else {
        qualified_name("provisioner", &provisioner.to_ascii_lowercase(), &mut errs);
    }
    if let Some(p) = obj.get("parameters").and_then(Value::as_object) {
        if p.len() > 512 {
            errs.push(crate::status::field::too_many("parameters", p.len(), 512));
        }
        for k in p.keys() {
            if k.is_empty() {
                errs.push(invalid_str("parameters", k, "field can not be empty."));
            }
        }
    }
    if let Some(rp) = str_of(obj, "reclaimPolicy").filter(|p| !p.is_empty()) {
        if rp != "Delete" && rp != "Retain" {
            errs.push(not_supported("reclaimPolicy", rp, &["Delete", "Retain"]));
        }
    }
    if let Some(m) = str_of(obj, "volumeBindingMode") {
        if m != "Immediate" && m != "WaitForFirstConsumer" {
            errs.push(not_supported(
                "volumeBindingMode",
                m,
                &["Immediate", "WaitForFirstConsumer"],
            ));
        }
    }
    if let Some(old) = old {
        if obj.get("parameters") != old.get("parameters") {
            errs.push(forbidden(
                "parameters",
                "updates to parameters are forbidden.",
            ));
        }
        if s(obj, "provisioner") != s(old, "provisioner") {
            errs.push(forbidden(
                "provisioner",
                "updates to provisioner are forbidden.",
            ));
        }
        if obj.get("reclaimPolicy") != old.get("reclaimPolicy") {
            errs.push(forbidden(
                "reclaimPolicy",
                "updates to reclaimPolicy are forbidden.",
            ));
        }
        if obj.get("volumeBindingMode") != old.get("volumeBindingMode") {
            errs.push(invalid_str(
                "volumeBindingMode",
                s(obj, "volumeBindingMode"),
                IMMUTABLE,
            ));
        }
    }
    errs
}

pub fn runtime_class(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    let handler = s(obj, "handler");
    dns_label("handler", handler, &mut errs);
    if let Some(old) = old {
        if s(old, "handler") != handler {
            errs.push(invalid_str("handler", handler, IMMUTABLE));
        }
    }
    errs
}

const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

pub fn priority_class(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let value = int_of(obj, "value").unwrap_or(0);
    let global_default = bool_of(obj, "globalDefault");
    if name.starts_with("system-") {
        let known = match name {
            "system-node-critical" => Some(2_000_001_000),
            "system-cluster-critical" => Some(2_000_000_000),
            _ => None,
        };
        let why = match known {
            None => Some(format!("{name} is not a known system priority class")),
            Some(v) if v != value => Some(format!("value of {name} PriorityClass must be {v}")),
            Some(_) if global_default => Some(format!(
                "globalDefault of {name} PriorityClass must be false"
            )),
            Some(_) => None,
        };
        if let Some(why) = why {
            errs.push(forbidden("metadata.name", &format!("priority class names with 'system-' prefix are reserved for system use only. error: {why}")));
        }
    } else if value > HIGHEST_USER_PRIORITY {
        errs.push(forbidden(
            "value",
            &format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
        ));
    }
    if let Some(pp) = str_of(obj, "preemptionPolicy") {
        match pp {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(required("preemptionPolicy", "")),
            other => errs.push(not_supported(
                "preemptionPolicy",
                other,
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
    if let Some(old) = old {
        if int_of(old, "value").unwrap_or(0) != value {
            errs.push(forbidden("value", "may not be changed in an update."));
        }
        if old.get("preemptionPolicy") != obj.get("preemptionPolicy") {
            errs.push(invalid_str(
                "preemptionPolicy",
                s(obj, "preemptionPolicy"),
                IMMUTABLE,
            ));
        }
    }
    errs
}

pub fn lease(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    if let Some(d) = int_of(spec, "leaseDurationSeconds") {
        if d <= 0 {
            errs.push(invalid_int(
                "spec.leaseDurationSeconds",
                d,
                "must be greater than 0",
            ));
        }
    }
    if let Some(t) = int_of(spec, "leaseTransitions") {
        if t < 0 {
            errs.push(invalid_int("spec.leaseTransitions", t, NONNEGATIVE));
        }
    }
    errs
}
