//! Pods, pod templates and the pod spec every workload embeds, as upstream's
//! `pkg/apis/core/validation/validation.go` (`ValidatePodSpec`, `validateContainers`,
//! `validateInitContainers`, `ValidateTolerations`, `validatePodDNSConfig`,
//! `ValidatePodTemplateSpec`, `ValidatePodUpdate`); containers and volumes are in
//! `core_container`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::core_container::{container_common, host_port_conflicts, lifecycle, probe, volumes};
use super::util::*;

/// Tolerations (`ValidateTolerations`).
pub fn tolerations(path: &str, list: &[Value], errs: &mut Errs) {
    for (i, t) in list.iter().enumerate() {
        let p = idx(path, i);
        let k = s(t, "key");
        if !k.is_empty() {
            label_name(&join(&p, "key"), k, errs);
        }
        let op = s(t, "operator");
        if k.is_empty() && op != "Exists" {
            errs.push(invalid_str(&join(&p, "operator"), op, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""));
        }
        let effect = s(t, "effect");
        if get(t, "tolerationSeconds").is_some() && effect != "NoExecute" {
            errs.push(invalid_str(
                &join(&p, "effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        let value = s(t, "value");
        match op {
            "" | "Equal" => {
                let msgs = crate::validation::label_value(value);
                if !msgs.is_empty() {
                    errs.push(invalid_str(&join(&p, "operator"), value, &msgs.join(";")));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(invalid_str(
                        &join(&p, "operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(not_supported(
                &join(&p, "operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() {
            taint_effect(&join(&p, "effect"), effect, errs);
        }
    }
}

pub fn taint_effect(path: &str, effect: &str, errs: &mut Errs) {
    const EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
    if !EFFECTS.contains(&effect) {
        errs.push(not_supported(path, effect, EFFECTS));
    }
}

/// `ValidatePodSpec`; `is_pod` adds the checks upstream makes only for real pods.
pub fn pod_spec(path: &str, spec: &Value, is_pod: bool, errs: &mut Errs) {
    if get(spec, "terminationGracePeriodSeconds").is_none() {
        errs.push(required(&join(path, "terminationGracePeriodSeconds"), ""));
    }
    let vols = volumes(&join(path, "volumes"), spec, errs);
    // Regular containers.
    let containers = arr(spec, "containers");
    let cpath = join(path, "containers");
    if containers.is_empty() {
        errs.push(required(&cpath, ""));
    }
    let mut names = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = idx(&cpath, i);
        container_common(&p, c, &vols, is_pod, errs);
        let name = s(c, "name");
        if !names.insert(name.to_string()) {
            errs.push(duplicate_str(&join(&p, "name"), name));
        }
        lifecycle(&p, c, errs);
        for which in ["livenessProbe", "readinessProbe", "startupProbe"] {
            probe(&p, c, which, errs);
        }
        if get(c, "restartPolicy").is_some() {
            errs.push(forbidden(
                &join(&p, "restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    host_port_conflicts(&cpath, containers, errs);
    // Init containers.
    let ipath = join(path, "initContainers");
    for (i, c) in arr(spec, "initContainers").iter().enumerate() {
        let p = idx(&ipath, i);
        container_common(&p, c, &vols, is_pod, errs);
        let mut restart_always = false;
        if let Some(rp) = str_of(c, "restartPolicy") {
            if rp == "Always" {
                restart_always = true;
            } else {
                errs.push(not_supported(&join(&p, "restartPolicy"), rp, &["Always"]));
            }
        }
        let name = s(c, "name");
        if names.contains(name) {
            errs.push(duplicate_str(&join(&p, "name"), name));
        } else if !name.is_empty() {
            names.insert(name.to_string());
        }
        host_port_conflicts(&ipath, std::slice::from_ref(c), errs);
        if restart_always {
            lifecycle(&p, c, errs);
            for which in ["livenessProbe", "readinessProbe", "startupProbe"] {
                probe(&p, c, which, errs);
            }
        } else {
            for k in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if get(c, k).is_some() {
                    errs.push(forbidden(
                        &join(&p, k),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
    ephemeral_containers(path, spec, &vols, &mut names, is_pod, errs);
    // Host network: host ports must match container ports.
    if spec.pointer("/hostNetwork").and_then(Value::as_bool) == Some(true) {
        for (i, c) in containers.iter().enumerate() {
            for (j, port) in arr(c, "ports").iter().enumerate() {
                let hp = int_of(port, "hostPort").unwrap_or(0);
                let cp = int_of(port, "containerPort").unwrap_or(0);
                if (is_pod || hp != 0) && hp != cp {
                    errs.push(invalid_int(
                        &join(&idx(&join(&idx(&cpath, i), "ports"), j), "hostPort"),
                        hp,
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
    match s(spec, "restartPolicy") {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(required(&join(path, "restartPolicy"), "")),
        other => errs.push(not_supported(
            &join(path, "restartPolicy"),
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    match s(spec, "dnsPolicy") {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(required(&join(path, "dnsPolicy"), "")),
        other => errs.push(not_supported(
            &join(path, "dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    labels(&join(path, "nodeSelector"), obj(spec, "nodeSelector"), errs);
    for (i, ps) in arr(spec, "imagePullSecrets").iter().enumerate() {
        if ps
            .as_object()
            .is_some_and(|m| m.keys().any(|k| k != "name"))
        {
            errs.push(invalid_raw(
                &idx(&join(path, "imagePullSecrets"), i),
                &format!(
                    "core.LocalObjectReference{{Name:{}}}",
                    go_quote(s(ps, "name"))
                ),
                "only name may be set",
            ));
        }
    }
    dns_config(path, spec, errs);
    for (i, g) in arr(spec, "readinessGates").iter().enumerate() {
        qualified_name(
            &join(&idx(&join(path, "readinessGates"), i), "conditionType"),
            s(g, "conditionType"),
            errs,
        );
    }
    let sa = s(spec, "serviceAccountName");
    if !sa.is_empty() {
        dns_subdomain(&join(path, "serviceAccountName"), sa, errs);
    }
    let node = s(spec, "nodeName");
    if !node.is_empty() {
        dns_subdomain(&join(path, "nodeName"), node, errs);
    }
    if let Some(ads) = int_of(spec, "activeDeadlineSeconds") {
        if !(1..=i64::from(i32::MAX)).contains(&ads) {
            errs.push(invalid_int(
                &join(path, "activeDeadlineSeconds"),
                ads,
                "must be between 1 and 2147483647, inclusive",
            ));
        }
    }
    for k in ["hostname", "subdomain"] {
        let v = s(spec, k);
        if !v.is_empty() {
            dns_label(&join(path, k), v, errs);
        }
    }
    tolerations(&join(path, "tolerations"), arr(spec, "tolerations"), errs);
    for (i, ha) in arr(spec, "hostAliases").iter().enumerate() {
        let p = idx(&join(path, "hostAliases"), i);
        is_valid_ip(&join(&p, "ip"), s(ha, "ip"), errs);
        for (j, h) in arr(ha, "hostnames").iter().enumerate() {
            dns_subdomain(
                &idx(&join(&p, "hostnames"), j),
                h.as_str().unwrap_or_default(),
                errs,
            );
        }
    }
    let pc = s(spec, "priorityClassName");
    if !pc.is_empty() {
        dns_subdomain(&join(path, "priorityClassName"), pc, errs);
    }
    if let Some(rc) = str_of(spec, "runtimeClassName") {
        dns_subdomain(&join(path, "runtimeClassName"), rc, errs);
    }
    if let Some(pp) = str_of(spec, "preemptionPolicy") {
        match pp {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(required(&join(path, "preemptionPolicy"), "")),
            other => errs.push(not_supported(
                &join(path, "preemptionPolicy"),
                other,
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
    if let Some(os) = get(spec, "os") {
        match s(os, "name") {
            "" => errs.push(required(
                &join(&join(path, "os"), "name"),
                "cannot be empty",
            )),
            "linux" | "windows" => {}
            other => errs.push(not_supported(
                &join(path, "os"),
                other,
                &["linux", "windows"],
            )),
        }
    }
}

fn dns_config(path: &str, spec: &Value, errs: &mut Errs) {
    let cfg = get(spec, "dnsConfig");
    let p = join(path, "dnsConfig");
    if s(spec, "dnsPolicy") == "None" {
        let Some(cfg) = cfg else {
            errs.push(required(
                &p,
                "must provide `dnsConfig` when `dnsPolicy` is None",
            ));
            return;
        };
        if arr(cfg, "nameservers").is_empty() {
            errs.push(required(
                &join(&p, "nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            ));
            return;
        }
    }
    let Some(cfg) = cfg else { return };
    for (i, ns) in arr(cfg, "nameservers").iter().enumerate() {
        is_valid_ip(
            &idx(&join(&p, "nameservers"), i),
            ns.as_str().unwrap_or_default(),
            errs,
        );
    }
    for (i, o) in arr(cfg, "options").iter().enumerate() {
        if s(o, "name").is_empty() {
            errs.push(required(&idx(&join(&p, "options"), i), "must not be empty"));
        }
    }
}

/// `ValidatePodTemplateSpec` (workloads and PodTemplates).
pub fn pod_template_spec(path: &str, template: Option<&Value>, errs: &mut Errs) {
    let Some(t) = template else {
        errs.push(required(path, ""));
        return;
    };
    let meta = get(t, "metadata");
    labels(
        &join(&join(path, "metadata"), "labels"),
        meta.and_then(|m| obj(m, "labels")),
        errs,
    );
    let spec_path = join(path, "spec");
    let null = Value::Null;
    let spec = get(t, "spec").unwrap_or(&null);
    pod_spec(&spec_path, spec, false, errs);
    if !arr(spec, "ephemeralContainers").is_empty() {
        errs.push(forbidden(
            &join(&spec_path, "ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// Template labels as a map (for selector checks), None when absent.
pub fn template_labels(template: Option<&Value>) -> Option<BTreeMap<String, String>> {
    template
        .and_then(|t| get(t, "metadata"))
        .and_then(|m| string_map(m, "labels"))
}

pub fn validate_pod(pod: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(pod, "spec").unwrap_or(&null);
    pod_spec("spec", spec, true, &mut errs);
    match old {
        Some(old) => pod_update(spec, get(old, "spec").unwrap_or(&null), &mut errs),
        None if !arr(spec, "ephemeralContainers").is_empty() => errs.push(forbidden(
            "spec.ephemeralContainers",
            "cannot be set on create",
        )),
        None => {}
    }
    errs
}

/// Fields an ephemeral container may not set (upstream's allow list, inverted).
const NOT_FOR_EPHEMERAL: &[&str] = &[
    "ports",
    "resources",
    "resizePolicy",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "restartPolicy",
];
const EPHEMERAL_FORBIDDEN: &str = "cannot be set for an Ephemeral Container";

/// `validateEphemeralContainers`: the common container rules, names unique across every
/// container, a target among the pod's other containers, and no ports, resources,
/// probes, lifecycle, restart policy or subPath mounts.
fn ephemeral_containers(
    path: &str,
    spec: &Value,
    vols: &BTreeMap<String, bool>,
    names: &mut BTreeSet<String>,
    is_pod: bool,
    errs: &mut Errs,
) {
    let others = names.clone();
    let epath = join(path, "ephemeralContainers");
    for (i, c) in arr(spec, "ephemeralContainers").iter().enumerate() {
        let p = idx(&epath, i);
        container_common(&p, c, vols, is_pod, errs);
        let name = s(c, "name");
        if !names.insert(name.to_string()) {
            errs.push(duplicate_str(&join(&p, "name"), name));
        }
        let target = s(c, "targetContainerName");
        if !target.is_empty() && !others.contains(target) {
            errs.push(not_found(&join(&p, "targetContainerName"), target));
        }
        for k in NOT_FOR_EPHEMERAL {
            let set = match get(c, k) {
                None | Some(Value::Null) => false,
                Some(Value::Object(m)) => !m.is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(Value::String(v)) => !v.is_empty(),
                Some(_) => true,
            };
            if set {
                errs.push(forbidden(&join(&p, k), EPHEMERAL_FORBIDDEN));
            }
        }
        for (j, m) in arr(c, "volumeMounts").iter().enumerate() {
            for k in ["subPath", "subPathExpr"] {
                if !s(m, k).is_empty() {
                    let mp = join(&idx(&join(&p, "volumeMounts"), j), k);
                    errs.push(forbidden(&mp, EPHEMERAL_FORBIDDEN));
                }
            }
        }
    }
}

/// `ValidatePodEphemeralContainersUpdate` beyond the spec rules: static pods take none,
/// and ephemeral containers once added may be neither removed nor changed.
pub fn ephemeral_containers_update(new: &Value, old: &Value) -> Errs {
    if old
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some()
    {
        return vec![forbidden(
            "",
            "static pods do not support ephemeral containers",
        )];
    }
    let path = "spec.ephemeralContainers";
    let null = Value::Null;
    let new_list = new.pointer("/spec/ephemeralContainers").unwrap_or(&null);
    let old_list = old.pointer("/spec/ephemeralContainers").unwrap_or(&null);
    let mut errs = Vec::new();
    for o in old_list.as_array().into_iter().flatten() {
        let name = s(o, "name");
        match new_list
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| s(n, "name") == name)
        {
            None => errs.push(forbidden(
                path,
                &format!(
                    "existing ephemeral containers {} may not be removed\n",
                    go_quote(name)
                ),
            )),
            Some(n) if n != o => errs.push(forbidden(
                &join(path, name),
                &format!(
                    "existing ephemeral containers {} may not be changed\n{}",
                    go_quote(name),
                    spec_diff(o, n, "")
                ),
            )),
            Some(_) => {}
        }
    }
    errs
}

pub fn validate_pod_template(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    pod_template_spec("template", get(obj, "template"), &mut errs);
    errs
}

const UPDATABLE: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `ValidatePodUpdate`: only images, activeDeadlineSeconds, added tolerations and
/// removed scheduling gates may change. The binding subresource's `spec.nodeName` (set
/// once, on an unbound pod) is let through as upstream's binding storage does.
fn pod_update(new: &Value, old: &Value, errs: &mut Errs) {
    for list in ["containers", "initContainers"] {
        let (n, o) = (arr(new, list), arr(old, list));
        let p = join("spec", list);
        if n.len() != o.len() {
            errs.push(forbidden(
                &p,
                "pod updates may not add or remove containers",
            ));
            return;
        }
        for (i, c) in n.iter().enumerate() {
            if s(c, "image").is_empty() {
                errs.push(required(&join(&idx(&p, i), "image"), ""));
            }
        }
    }
    let ads_path = "spec.activeDeadlineSeconds";
    match (
        int_of(new, "activeDeadlineSeconds"),
        int_of(old, "activeDeadlineSeconds"),
    ) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(invalid_int(
                ads_path,
                n,
                "must be between 0 and 2147483647, inclusive",
            ));
            return;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(invalid_int(
                ads_path,
                n,
                "must be less than or equal to previous value",
            ));
            return;
        }
        (None, Some(_)) => errs.push(invalid_raw(
            ads_path,
            "null",
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    // Existing tolerations may only gain a tolerationSeconds change.
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(m) = t.as_object_mut() {
            m.remove("tolerationSeconds");
        }
        t
    };
    let new_tols: Vec<Value> = arr(new, "tolerations").iter().map(strip).collect();
    if arr(old, "tolerations")
        .iter()
        .any(|o| !new_tols.contains(&strip(o)))
    {
        errs.push(forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    let mut munged = new.clone();
    for list in ["containers", "initContainers"] {
        if let Some(items) = munged.get_mut(list).and_then(Value::as_array_mut) {
            for (i, c) in items.iter_mut().enumerate() {
                if let (Some(m), Some(img)) = (
                    c.as_object_mut(),
                    old.pointer(&format!("/{list}/{i}/image")),
                ) {
                    m.insert("image".into(), img.clone());
                }
            }
        }
    }
    if let Some(m) = munged.as_object_mut() {
        for k in ["activeDeadlineSeconds", "tolerations", "schedulingGates"] {
            match old.get(k) {
                Some(v) => m.insert(k.into(), v.clone()),
                None => m.remove(k),
            };
        }
        let old_node = s(old, "nodeName");
        if old_node.is_empty() {
            match old.get("nodeName") {
                Some(v) => m.insert("nodeName".into(), v.clone()),
                None => m.remove("nodeName"),
            };
        }
        let old_grace = int_of(old, "terminationGracePeriodSeconds");
        if old_grace.is_some_and(|g| g < 0)
            && int_of(new, "terminationGracePeriodSeconds") == Some(1)
        {
            m.insert(
                "terminationGracePeriodSeconds".into(),
                Value::from(old_grace.unwrap_or(0)),
            );
        }
    }
    if &munged != old {
        let diff = spec_diff(old, &munged, "");
        errs.push(forbidden(
            "spec",
            &format!("pod updates may not change fields other than {UPDATABLE}\n{diff}"),
        ));
    }
}

/// A short account of what differs (upstream prints a `cmp.Diff` of the Go structs).
fn spec_diff(old: &Value, new: &Value, at: &str) -> String {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            keys.into_iter()
                .filter(|k| o.get(*k) != n.get(*k))
                .map(|k| {
                    let here = join(at, k);
                    spec_diff(
                        o.get(k).unwrap_or(&Value::Null),
                        n.get(k).unwrap_or(&Value::Null),
                        &here,
                    )
                })
                .collect()
        }
        (Value::Array(o), Value::Array(n)) if o.len() == n.len() => o
            .iter()
            .zip(n)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| spec_diff(a, b, &idx(at, i)))
            .collect(),
        _ => format!("  {at}:\n  - {old}\n  + {new}\n"),
    }
}

/// `ValidatePodResize` beyond the spec rules: static, Windows and pod-level-resources
/// pods are not resized; the QoS class stays; requests and limits are not removed; a
/// memory limit only shrinks with a RestartContainer policy; only cpu and memory change.
/// `new` is the stored pod with the request's resources and resize policies.
pub fn pod_resize_update(new: &Value, old: &Value) -> Errs {
    let root_forbidden = |why: &str| vec![forbidden("", why)];
    if old
        .pointer("/spec/resources")
        .is_some_and(|r| r.as_object().is_some_and(|m| !m.is_empty()))
        || new
            .pointer("/spec/resources")
            .is_some_and(|r| r.as_object().is_some_and(|m| !m.is_empty()))
    {
        return root_forbidden("pods with pod-level resources cannot be resized");
    }
    if old
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some()
    {
        return root_forbidden("static pods cannot be resized");
    }
    if old.pointer("/spec/os/name").and_then(Value::as_str) == Some("windows") {
        return root_forbidden("windows pods cannot be resized");
    }
    let mut errs = Vec::new();
    let stored_qos = old
        .pointer("/status/qosClass")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| crate::qos::class(old).to_string());
    if stored_qos != crate::qos::class(new) {
        errs.push(invalid_str(
            "spec",
            &stored_qos,
            "Pod QOS Class may not change as a result of resizing",
        ));
    }
    for list in ["containers", "initContainers"] {
        let olds = old
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let news = new
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (i, (o, n)) in olds.iter().zip(news).enumerate() {
            // Init containers resize only as sidecars.
            if list == "initContainers" && s(o, "restartPolicy") != "Always" {
                continue;
            }
            container_resize(&format!("spec.{list}[{i}].resources"), n, o, &mut errs);
        }
        // Anything but cpu and memory must stay as it was.
        let others = |c: &Value, which: &str| -> Option<Value> {
            let mut m = c
                .pointer(&format!("/resources/{which}"))?
                .as_object()?
                .clone();
            m.remove("cpu");
            m.remove("memory");
            (!m.is_empty()).then_some(Value::Object(m))
        };
        let changed = olds.iter().zip(news).any(|(o, n)| {
            others(o, "requests") != others(n, "requests")
                || others(o, "limits") != others(n, "limits")
                || o.pointer("/resources/claims") != n.pointer("/resources/claims")
        });
        if changed {
            errs.push(forbidden(
                "spec",
                "only cpu and memory resources are mutable",
            ));
        }
    }
    errs
}

fn container_resize(path: &str, new: &Value, old: &Value, errs: &mut Errs) {
    for which in ["requests", "limits"] {
        let before = old
            .pointer(&format!("/resources/{which}"))
            .and_then(Value::as_object);
        let after = new
            .pointer(&format!("/resources/{which}"))
            .and_then(Value::as_object);
        for k in before.into_iter().flat_map(|m| m.keys()) {
            if !after.is_some_and(|m| m.contains_key(k)) {
                errs.push(forbidden(
                    &key(&join(path, which), k),
                    &format!("resource {which} cannot be removed"),
                ));
            }
        }
    }
    let memory_limit = |c: &Value| {
        c.pointer("/resources/limits/memory")
            .and_then(Quantity::parse)
    };
    let restart_on_memory = arr(old, "resizePolicy")
        .iter()
        .any(|p| s(p, "resourceName") == "memory" && s(p, "restartPolicy") == "RestartContainer");
    if let (Some(before), Some(after)) = (memory_limit(old), memory_limit(new)) {
        if after < before && !restart_on_memory {
            errs.push(forbidden(
                &key(&join(path, "limits"), "memory"),
                "memory limits cannot be decreased unless resizePolicy is RestartContainer",
            ));
        }
    }
}
