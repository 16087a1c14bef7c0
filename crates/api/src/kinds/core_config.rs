//! ConfigMaps, Secrets, Namespaces, Nodes, Events, LimitRanges and ResourceQuotas as
//! upstream's `pkg/apis/core/validation/validation.go` (`ValidateConfigMap(Update)`,
//! `ValidateSecret(Update)`, `ValidateNamespace`, `ValidateNode(Update)`,
//! `ValidateLimitRange`, `ValidateResourceQuota(Update)`) and `events.go` (the namespace
//! rules of `legacyValidateEvent`).

use std::collections::BTreeSet;

use base64::Engine;
use serde_json::Value;

use super::util::*;

const MAX_SECRET_SIZE: u64 = 1024 * 1024;

fn decoded_len(v: &Value) -> usize {
    let text = v.as_str().unwrap_or_default();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(|b| b.len())
        .unwrap_or(text.len())
}

fn decoded(v: Option<&Value>) -> Option<Vec<u8>> {
    v.and_then(Value::as_str)
        .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
}

fn immutable_flag(obj: &Value) -> bool {
    obj.get("immutable").and_then(Value::as_bool) == Some(true)
}

fn immutable_data(obj: &Value, old: &Value, fields: &[&str], errs: &mut Errs) {
    if !immutable_flag(old) {
        return;
    }
    if !immutable_flag(obj) {
        errs.push(forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
    for f in fields {
        // An absent map and an empty one are the same to upstream's DeepEqual of nil maps
        // only when both are nil; keep it simple: compare as JSON, absent = null.
        if obj.get(*f).filter(|v| !v.is_null()) != old.get(*f).filter(|v| !v.is_null()) {
            errs.push(forbidden(f, "field is immutable when `immutable` is set"));
        }
    }
}

pub fn config_map(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    if let Some(old) = old {
        immutable_data(obj, old, &["data", "binaryData"], &mut errs);
    }
    let binary = obj_key_set(obj, "binaryData");
    let mut total = 0usize;
    if let Some(data) = obj.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            for msg in config_key_msgs(k) {
                errs.push(invalid_str(&key("data", k), k, &msg));
            }
            if binary.contains(k.as_str()) {
                errs.push(invalid_str(
                    &key("data", k),
                    k,
                    "duplicate of key present in binaryData",
                ));
            }
            total += v.as_str().map(str::len).unwrap_or(0);
        }
    }
    if let Some(data) = obj.get("binaryData").and_then(Value::as_object) {
        for (k, v) in data {
            for msg in config_key_msgs(k) {
                errs.push(invalid_str(&key("binaryData", k), k, &msg));
            }
            total += decoded_len(v);
        }
    }
    if total as u64 > MAX_SECRET_SIZE {
        errs.push(crate::status::field::too_long("", MAX_SECRET_SIZE));
    }
    errs
}

pub(super) fn obj_key_set<'a>(obj: &'a Value, k: &str) -> BTreeSet<&'a str> {
    obj.get(k)
        .and_then(Value::as_object)
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

pub fn secret(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    if let Some(old) = old {
        let (t, ot) = (s(obj, "type"), s(old, "type"));
        if t != ot {
            errs.push(invalid_str("type", t, IMMUTABLE));
        }
        immutable_data(obj, old, &["data"], &mut errs);
    }
    let data = obj.get("data").and_then(Value::as_object);
    let mut total = 0usize;
    for (k, v) in data.into_iter().flatten() {
        for msg in config_key_msgs(k) {
            errs.push(invalid_str(&key("data", k), k, &msg));
        }
        total += decoded_len(v);
    }
    if total as u64 > MAX_SECRET_SIZE {
        errs.push(crate::status::field::too_long("data", MAX_SECRET_SIZE));
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    match s(obj, "type") {
        "kubernetes.io/service-account-token" => {
            let name = obj
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                errs.push(required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" => docker_json(data, ".dockercfg", &mut errs),
        "kubernetes.io/dockerconfigjson" => docker_json(data, ".dockerconfigjson", &mut errs),
        "kubernetes.io/basic-auth" => {
            if !has("username") && !has("password") {
                errs.push(required("data[username]", ""));
                errs.push(required("data[password]", ""));
            }
        }
        "kubernetes.io/ssh-auth" => {
            if decoded(data.and_then(|d| d.get("ssh-privatekey"))).is_none_or(|b| b.is_empty()) {
                errs.push(required("data[ssh-privatekey]", ""));
            }
        }
        "kubernetes.io/tls" => {
            if !has("tls.crt") {
                errs.push(required("data[tls.crt]", ""));
            }
            if !has("tls.key") {
                errs.push(required("data[tls.key]", ""));
            }
        }
        _ => {}
    }
    errs
}

fn docker_json(data: Option<&serde_json::Map<String, Value>>, k: &str, errs: &mut Errs) {
    let path = key("data", k);
    let Some(raw) = data.and_then(|d| d.get(k)) else {
        errs.push(required(&path, ""));
        return;
    };
    let bytes = decoded(Some(raw)).unwrap_or_default();
    if let Err(e) = serde_json::from_slice::<serde_json::Map<String, Value>>(&bytes) {
        errs.push(invalid_str(
            &path,
            "<secret contents redacted>",
            &e.to_string(),
        ));
    }
}

pub fn namespace(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    for f in obj
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let f = f.as_str().unwrap_or_default();
        qualified_name("spec.finalizers", f, &mut errs);
        if !f.contains('/') && !matches!(f, "kubernetes" | "orphan" | "foregroundDeletion") {
            errs.push(invalid_str(
                "spec.finalizers",
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    errs
}

fn taint_repr(t: &Value) -> String {
    format!(
        "core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:(*v1.Time)(nil)}}",
        go_quote(s(t, "key")),
        go_quote(s(t, "value")),
        go_quote(s(t, "effect"))
    )
}

pub fn node(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    // Upstream names taints under metadata (`fldPath` is metadata's there).
    let mut unique = BTreeSet::new();
    for (i, t) in arr(spec, "taints").iter().enumerate() {
        let p = idx("metadata.taints", i);
        label_name(&join(&p, "key"), s(t, "key"), &mut errs);
        let v = s(t, "value");
        let msgs = crate::validation::label_value(v);
        if !msgs.is_empty() {
            errs.push(invalid_str(&join(&p, "value"), v, &msgs.join(";")));
        }
        let effect = s(t, "effect");
        if effect.is_empty() {
            errs.push(required(&join(&p, "effect"), ""));
        } else {
            super::core_pod::taint_effect(&join(&p, "effect"), effect, &mut errs);
        }
        if !unique.insert((effect, s(t, "key"))) {
            errs.push(crate::status::StatusCause {
                cause_type: "FieldValueDuplicate".into(),
                message: format!(
                    "Duplicate value: {}: taints must be unique by key and effect pair",
                    taint_repr(t)
                ),
                field: p,
            });
        }
    }
    for section in ["capacity", "allocatable"] {
        if let Some(m) = obj
            .pointer(&format!("/status/{section}"))
            .and_then(Value::as_object)
        {
            for (k, v) in m {
                if Quantity::parse(v).is_some_and(Quantity::is_negative) {
                    errs.push(invalid_str(
                        &format!("status.{section}.{k}"),
                        &quantity_text(v),
                        NONNEGATIVE,
                    ));
                }
            }
        }
    }
    let cidrs = arr(spec, "podCIDRs");
    for (i, c) in cidrs.iter().enumerate() {
        is_valid_cidr(
            &idx("spec.podCIDRs", i),
            c.as_str().unwrap_or_default(),
            &mut errs,
        );
    }
    if cidrs.len() > 1 {
        let families: Vec<bool> = cidrs
            .iter()
            .filter_map(|c| parse_cidr(c.as_str().unwrap_or_default()))
            .map(|(ip, _)| ip.is_ipv4())
            .collect();
        let dual = families.len() == 2 && families[0] != families[1];
        if !dual || cidrs.len() > 2 {
            errs.push(invalid_raw(
                "spec.podCIDRs",
                &go_string_slice(cidrs),
                "may specify no more than one CIDR for each IP family",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, c) in cidrs.iter().enumerate() {
            let c = c.as_str().unwrap_or_default();
            if !seen.insert(c) {
                errs.push(duplicate_str(&idx("spec.podCIDRs", i), c));
            }
        }
    }
    if let Some(old) = old {
        let old_spec = get(old, "spec").unwrap_or(&null);
        if !arr(old_spec, "podCIDRs").is_empty() && arr(old_spec, "podCIDRs") != cidrs {
            errs.push(forbidden(
                "spec.podCIDRs",
                "node updates may not change podCIDR except from \"\" to valid",
            ));
        }
        let old_pid = s(old_spec, "providerID");
        if !old_pid.is_empty() && old_pid != s(spec, "providerID") {
            errs.push(forbidden(
                "spec.providerID",
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
        if get(spec, "externalID") != get(old_spec, "externalID") {
            errs.push(forbidden("spec.externalID", "may not be updated"));
        }
    }
    errs
}

/// The namespace rules of upstream's `legacyValidateEvent` (every Event passes them).
pub fn event(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let involved = obj
        .pointer("/involvedObject/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let has_event_time = obj
        .get("eventTime")
        .is_some_and(|t| t.as_str().is_some_and(|t| !t.is_empty()));
    let mismatch = if has_event_time {
        involved.is_empty() && ns != "default" && ns != "kube-system"
    } else if involved.is_empty() {
        !ns.is_empty() && ns != "default"
    } else {
        ns != involved
    };
    if mismatch {
        errs.push(invalid_str(
            "involvedObject.namespace",
            involved,
            "does not match event.namespace",
        ));
    }
    errs
}

pub(super) fn quantity_check(
    path: &str,
    name: &str,
    v: &Value,
    errs: &mut Errs,
) -> Option<Quantity> {
    let Some(q) = Quantity::parse(v) else {
        errs.push(invalid_str(path, &quantity_text(v), QUANTITY_FORMAT));
        return None;
    };
    if q.is_negative() {
        errs.push(invalid_str(path, &quantity_text(v), NONNEGATIVE));
    }
    let integer = matches!(
        name,
        "pods"
            | "services"
            | "replicationcontrollers"
            | "resourcequotas"
            | "secrets"
            | "configmaps"
            | "persistentvolumeclaims"
            | "services.nodeports"
            | "services.loadbalancers"
    ) || name.starts_with("count/")
        || (name.contains('/')
            && !name.contains("kubernetes.io/")
            && !name.starts_with("requests."));
    if integer && !q.is_integer() {
        errs.push(invalid_str(path, &quantity_text(v), "must be an integer"));
    }
    Some(q)
}

pub fn limit_range(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    let mut types = BTreeSet::new();
    for (i, limit) in obj
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = idx("spec.limits", i);
        let typ = s(limit, "type");
        let tp = join(&p, "type");
        let before = errs.len();
        qualified_name(&tp, typ, &mut errs);
        if errs.len() == before
            && !typ.contains('/')
            && !matches!(typ, "Pod" | "Container" | "PersistentVolumeClaim")
        {
            errs.push(invalid_str(
                &tp,
                typ,
                "must be a standard limit type or fully qualified",
            ));
        }
        if !types.insert(typ) {
            errs.push(duplicate_str(&tp, typ));
        }
        let section = |k: &str| limit.get(k).and_then(Value::as_object);
        if typ == "Pod" {
            for k in ["default", "defaultRequest"] {
                if section(k).is_some_and(|m| !m.is_empty()) {
                    errs.push(forbidden(
                        &join(&p, k),
                        "may not be specified when `type` is 'Pod'",
                    ));
                }
            }
        }
        if typ == "PersistentVolumeClaim" {
            let has = |k: &str| section(k).is_some_and(|m| m.contains_key("storage"));
            if !has("min") && !has("max") {
                errs.push(required(
                    &join(&p, "limits"),
                    "either minimum or maximum storage value is required, but neither was provided",
                ));
            }
        }
        let q = |k: &str, r: &str| {
            section(k)
                .and_then(|m| m.get(r))
                .and_then(|v| Quantity::parse(v).map(|q| (q, quantity_text(v))))
        };
        let mut names = BTreeSet::new();
        for k in [
            "max",
            "min",
            "default",
            "defaultRequest",
            "maxLimitRequestRatio",
        ] {
            for (r, v) in section(k).into_iter().flatten() {
                names.insert(r.clone());
                quantity_check(&key(&join(&p, k), r), r, v, &mut errs);
            }
        }
        for r in &names {
            let (min, max, def, def_req) = (
                q("min", r),
                q("max", r),
                q("default", r),
                q("defaultRequest", r),
            );
            if let (Some(min), Some(max)) = (&min, &max) {
                if min.0 > max.0 {
                    errs.push(invalid_str(
                        &key(&join(&p, "min"), r),
                        &min.1,
                        &format!("min value {} is greater than max value {}", min.1, max.1),
                    ));
                }
            }
            if let (Some(dr), Some(min)) = (&def_req, &min) {
                if min.0 > dr.0 {
                    errs.push(invalid_str(
                        &key(&join(&p, "defaultRequest"), r),
                        &dr.1,
                        &format!(
                            "min value {} is greater than default request value {}",
                            min.1, dr.1
                        ),
                    ));
                }
            }
            if let (Some(dr), Some(max)) = (&def_req, &max) {
                if dr.0 > max.0 {
                    errs.push(invalid_str(
                        &key(&join(&p, "defaultRequest"), r),
                        &dr.1,
                        &format!(
                            "default request value {} is greater than max value {}",
                            dr.1, max.1
                        ),
                    ));
                }
            }
            if let (Some(dr), Some(d)) = (&def_req, &def) {
                if dr.0 > d.0 {
                    errs.push(invalid_str(
                        &key(&join(&p, "defaultRequest"), r),
                        &dr.1,
                        &format!(
                            "default request value {} is greater than default limit value {}",
                            dr.1, d.1
                        ),
                    ));
                }
            }
            if let (Some(d), Some(min)) = (&def, &min) {
                if min.0 > d.0 {
                    errs.push(invalid_str(
                        &key(&join(&p, "default"), r),
                        &min.1,
                        &format!("min value {} is greater than default value {}", min.1, d.1),
                    ));
                }
            }
            if let (Some(d), Some(max)) = (&def, &max) {
                if d.0 > max.0 {
                    errs.push(invalid_str(
                        &key(&join(&p, "default"), r),
                        &max.1,
                        &format!("default value {} is greater than max value {}", d.1, max.1),
                    ));
                }
            }
            if let Some(ratio) = q("maxLimitRequestRatio", r) {
                if ratio.0 < Quantity(1_000_000_000) {
                    errs.push(invalid_str(
                        &key(&join(&p, "maxLimitRequestRatio"), r),
                        &ratio.1,
                        &format!("ratio {} is less than 1", ratio.1),
                    ));
                }
            }
        }
    }
    errs
}

const QUOTA_SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

fn scopes_repr(scopes: &[Value]) -> String {
    let items: Vec<String> = scopes
        .iter()
        .map(|s| go_quote(s.as_str().unwrap_or_default()))
        .collect();
    format!("[]core.ResourceQuotaScope{{{}}}", items.join(", "))
}

pub fn resource_quota(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    for (section, base) in [
        ("hard", "spec.hard"),
        ("", "status.hard"),
        ("", "status.used"),
    ] {
        let m = if section.is_empty() {
            obj.pointer(&format!("/{}", base.replace('.', "/")))
        } else {
            spec.get(section)
        };
        for (name, v) in m.and_then(Value::as_object).into_iter().flatten() {
            let p = key(base, name);
            let before = errs.len();
            qualified_name(&p, name, &mut errs);
            if errs.len() == before && !name.contains('/') {
                if !super::core_container::is_standard_resource(name) {
                    errs.push(invalid_str(
                        &p,
                        name,
                        "must be a standard resource type or fully qualified",
                    ));
                }
                let quota = super::core_container::is_standard_resource(name) && name != "quota"
                    || name.starts_with("requests.hugepages-");
                if !quota {
                    errs.push(invalid_str(
                        &p,
                        name,
                        "must be a standard resource for quota",
                    ));
                }
            }
            quantity_check(&p, name, v, &mut errs);
        }
    }
    let scopes = arr(spec, "scopes");
    let mut set = BTreeSet::new();
    for sc in scopes {
        let sc = sc.as_str().unwrap_or_default();
        if !QUOTA_SCOPES.contains(&sc) {
            errs.push(invalid_raw(
                "spec.scopes",
                &scopes_repr(scopes),
                "unsupported scope",
            ));
        }
        set.insert(sc);
    }
    for (a, b) in [
        ("BestEffort", "NotBestEffort"),
        ("Terminating", "NotTerminating"),
    ] {
        if set.contains(a) && set.contains(b) {
            errs.push(invalid_raw(
                "spec.scopes",
                &scopes_repr(scopes),
                "conflicting scopes",
            ));
        }
    }
    for (i, req) in spec
        .pointer("/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = idx("spec.scopeSelector.matchExpressions", i);
        let name = s(req, "scopeName");
        if !QUOTA_SCOPES.contains(&name) {
            errs.push(invalid_str(
                &join("spec.scopeSelector.matchExpressions", "scopeName"),
                name,
                "unsupported scope",
            ));
        }
        let values = arr(req, "values");
        match s(req, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(required(&join("spec.scopeSelector.matchExpressions", "values"), "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(invalid_raw(&join("spec.scopeSelector.matchExpressions", "values"), &go_string_slice(values), "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"));
                }
            }
            other => errs.push(invalid_str(
                &join(&p, "operator"),
                other,
                "not a valid selector operator",
            )),
        }
    }
    if let Some(old) = old {
        let old_scopes: BTreeSet<&str> = old
            .pointer("/spec/scopes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if old_scopes != set {
            errs.push(invalid_raw("spec.scopes", &scopes_repr(scopes), IMMUTABLE));
        }
    }
    errs
}
