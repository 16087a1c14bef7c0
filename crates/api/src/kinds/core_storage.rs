//! PersistentVolumes and PersistentVolumeClaims as upstream's
//! `pkg/apis/core/validation/validation.go` (`ValidatePersistentVolumeSpec`,
//! `ValidatePersistentVolumeUpdate`, `ValidatePersistentVolumeClaimSpec`,
//! `ValidatePersistentVolumeClaimUpdate`).

use serde_json::Value;

use super::core_config::{obj_key_set, quantity_check};
use super::util::*;

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

fn access_modes(path: &str, spec: &Value, required_detail: &str, errs: &mut Errs) {
    let modes = arr(spec, "accessModes");
    if modes.is_empty() {
        errs.push(required(path, required_detail));
    }
    let (mut rwop, mut other) = (false, false);
    for m in modes {
        let m = m.as_str().unwrap_or_default();
        if !ACCESS_MODES.contains(&m) {
            errs.push(not_supported(path, m, ACCESS_MODES));
        } else if m == "ReadWriteOncePod" {
            rwop = true;
        } else {
            other = true;
        }
    }
    if rwop && other {
        errs.push(forbidden(
            path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

const PV_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "flocker",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

pub fn persistent_volume(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    access_modes("spec.accessModes", spec, "", &mut errs);
    let cap = obj_key_set(spec, "capacity");
    if cap.is_empty() {
        errs.push(required("spec.capacity", ""));
    }
    if !cap.contains("storage") || cap.len() > 1 {
        let shown = format!(
            "core.ResourceList{}",
            spec.get("capacity")
                .map(Value::to_string)
                .unwrap_or_else(|| "(nil)".into())
        );
        errs.push(not_supported_raw("spec.capacity", &shown, &["storage"]));
    }
    for (r, v) in spec
        .get("capacity")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let p = key("spec.capacity", r);
        if let Some(q) = quantity_check(&p, r, v, &mut errs) {
            if q.0 <= 0 && !q.is_negative() {
                errs.push(invalid_str(
                    &p,
                    &quantity_text(v),
                    "must be greater than zero",
                ));
            }
        }
    }
    if let Some(rp) = str_of(spec, "persistentVolumeReclaimPolicy").filter(|p| !p.is_empty()) {
        if !matches!(rp, "Delete" | "Recycle" | "Retain") {
            errs.push(not_supported(
                "spec.persistentVolumeReclaimPolicy",
                rp,
                &["Delete", "Recycle", "Retain"],
            ));
        }
    }
    let mut count = 0;
    for src in PV_SOURCES {
        if get(spec, src).is_some() {
            if count > 0 {
                errs.push(forbidden(
                    &join("spec", src),
                    "may not specify more than 1 volume type",
                ));
            }
            count += 1;
        }
    }
    if count == 0 {
        errs.push(required("spec", "must specify a volume type"));
    }
    if let Some(hp) = get(spec, "hostPath") {
        if s(hp, "path").is_empty() {
            errs.push(required("spec.hostPath.path", ""));
        }
    }
    if let Some(vm) = str_of(spec, "volumeMode") {
        if vm != "Block" && vm != "Filesystem" {
            errs.push(not_supported(
                "spec.volumeMode",
                vm,
                &["Block", "Filesystem"],
            ));
        }
    }
    if let Some(old) = old {
        let old_spec = get(old, "spec").unwrap_or(&null);
        let source = |s: &Value| -> Vec<(String, Value)> {
            PV_SOURCES
                .iter()
                .filter_map(|k| get(s, k).map(|v| ((*k).to_string(), v.clone())))
                .collect()
        };
        if source(spec) != source(old_spec) {
            errs.push(forbidden(
                "spec.persistentvolumesource",
                "spec.persistentvolumesource is immutable after creation",
            ));
        }
        if get(spec, "volumeMode") != get(old_spec, "volumeMode") {
            errs.push(invalid_str("volumeMode", s(spec, "volumeMode"), IMMUTABLE));
        }
    }
    errs
}

pub fn persistent_volume_claim(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    access_modes(
        "spec.accessModes",
        spec,
        "at least 1 access mode is required",
        &mut errs,
    );
    label_selector("spec.selector", get(spec, "selector"), &mut errs);
    match spec.pointer("/resources/requests/storage") {
        None => errs.push(required("spec.resources[storage]", "")),
        Some(v) => {
            if let Some(q) = quantity_check("spec.resources[storage]", "storage", v, &mut errs) {
                if q.0 == 0 {
                    errs.push(invalid_str(
                        "spec.resources[storage]",
                        &quantity_text(v),
                        "must be greater than zero",
                    ));
                }
            }
        }
    }
    if let Some(sc) = str_of(spec, "storageClassName").filter(|s| !s.is_empty()) {
        dns_subdomain("spec.storageClassName", sc, &mut errs);
    }
    if let Some(vm) = str_of(spec, "volumeMode") {
        if vm != "Block" && vm != "Filesystem" {
            errs.push(not_supported(
                "spec.volumeMode",
                vm,
                &["Block", "Filesystem"],
            ));
        }
    }
    if let Some(old) = old {
        let old_spec = get(old, "spec").unwrap_or(&null);
        let mut munged = spec.clone();
        if let Some(m) = munged.as_object_mut() {
            let mut keep_old = |k: &str| {
                match old_spec.get(k) {
                    Some(v) => m.insert(k.into(), v.clone()),
                    None => m.remove(k),
                };
            };
            if s(old_spec, "volumeName").is_empty() {
                keep_old("volumeName");
            }
            if get(old_spec, "storageClassName").is_none() {
                keep_old("storageClassName");
            }
            if obj.pointer("/status/phase").and_then(Value::as_str) == Some("Bound") {
                keep_old("resources");
                keep_old("volumeAttributesClassName");
            }
        }
        if &munged != old_spec {
            errs.push(forbidden("spec", "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"));
        }
        let size = |v: &Value| {
            v.pointer("/spec/resources/requests/storage")
                .and_then(Quantity::parse)
        };
        // RecoverVolumeExpansionFailure (on in v1.33): shrinking is refused only down to
        // the capacity the volume reports.
        let capacity = obj
            .pointer("/status/capacity/storage")
            .and_then(Quantity::parse);
        if let (Some(n), Some(o)) = (size(obj), size(old)) {
            if n < o && capacity.is_none_or(|c| n <= c) {
                errs.push(forbidden(
                    "spec.resources.requests.storage",
                    "field can not be less than status.capacity",
                ));
            }
        }
    }
    errs
}
