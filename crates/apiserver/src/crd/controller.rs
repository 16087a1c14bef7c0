//! The CRD controllers of upstream's apiextensions-apiserver folded into one task: it
//! lists and watches CustomResourceDefinitions, keeps [`CrdRegistry`] (what is served)
//! current, writes `acceptedNames` with the NamesAccepted and Established conditions
//! (naming and establishing controllers), and on deletion removes every custom resource
//! before dropping the `customresourcecleanup.apiextensions.k8s.io` finalizer (finalizer
//! controller).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ferrokube_api::meta;
use ferrokube_api::resources::{self, ResourceInfo};
use ferrokube_storage::{EventKind, WatchMessage, WatchRequest};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::columns::PrinterColumn;
use super::intern::{resource_info, Shape};
use super::{CrdRegistry, CustomResource, ScaleSpec};
use crate::errors::ApiResult;
use crate::registry::delete::DeleteOptions;
use crate::registry::list::ListOptions;
use crate::registry::store::decode;
use crate::registry::{Registry, Target};

pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

fn crd_info() -> Option<&'static ResourceInfo> {
    resources::lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
}

fn condition_true(crd: &Value, typ: &str) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == typ && c["status"] == "True"))
}

/// The resources an established CRD serves: one per served version.
pub fn build(crd: &Value) -> Vec<CustomResource> {
    if !condition_true(crd, "Established") || condition_true(crd, "Terminating") {
        return Vec::new();
    }
    let s = |p: &str| {
        crd.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (group, plural, kind) = (
        s("/spec/group"),
        s("/spec/names/plural"),
        s("/spec/names/kind"),
    );
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Vec::new();
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let served_versions: Vec<String> = versions
        .iter()
        .filter(|v| v["served"] == true)
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect();
    let storage_version = super::defaults::storage_version(crd).unwrap_or_default();
    let mut out = Vec::new();
    for v in versions.iter().filter(|v| v["served"] == true) {
        let Some(version) = v["name"].as_str() else {
            continue;
        };
        let scale = v.pointer("/subresources/scale").map(|sc| ScaleSpec {
            spec_replicas_path: sc["specReplicasPath"].as_str().unwrap_or("").into(),
            status_replicas_path: sc["statusReplicasPath"].as_str().unwrap_or("").into(),
            label_selector_path: sc["labelSelectorPath"].as_str().map(str::to_string),
        });
        let shape = Shape {
            group: group.clone(),
            version: version.to_string(),
            resource: plural.clone(),
            kind: kind.clone(),
            namespaced: s("/spec/scope") == "Namespaced",
            short_names: meta::string_list(crd.pointer("/spec/names/shortNames")),
            categories: meta::string_list(crd.pointer("/spec/names/categories")),
            status: v.pointer("/subresources/status").is_some(),
            scale: scale.is_some(),
        };
        let mut columns: Vec<PrinterColumn> = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cs| cs.iter().filter_map(PrinterColumn::from_crd).collect())
            .unwrap_or_default();
        if columns.is_empty() {
            columns.push(PrinterColumn::age());
        }
        let schema = v.pointer("/schema/openAPIV3Schema").cloned();
        let apply_schema = ferrokube_patch::apply::TypeSchema::custom_resource(
            crate::schema::meta_components(),
            schema.clone().unwrap_or_else(
                || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            ),
        );
        out.push(CustomResource {
            apply_schema,
            info: resource_info(&shape),
            crd_name: meta::name(crd).unwrap_or_default().to_string(),
            storage_version: storage_version.clone(),
            schema,
            preserve_unknown_fields: crd.pointer("/spec/preserveUnknownFields")
                == Some(&json!(true)),
            scale,
            columns,
            served_versions: served_versions.clone(),
            deprecated: (v["deprecated"] == true).then(|| {
                v["deprecationWarning"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{group}/{version} {kind} is deprecated"))
            }),
        });
    }
    out
}

/// Names another CRD of the same group already uses (the naming controller's check).
fn name_conflict(crd: &Value, others: &[Value]) -> Option<String> {
    let group = crd.pointer("/spec/group");
    let mine = |c: &Value| -> Vec<String> {
        let mut n = meta::string_list(c.pointer("/spec/names/shortNames"));
        for k in ["plural", "singular"] {
            if let Some(v) = c
                .pointer(&format!("/spec/names/{k}"))
                .and_then(Value::as_str)
            {
                n.push(v.to_string());
            }
        }
        n
    };
    let names = mine(crd);
    let kind = crd.pointer("/spec/names/kind");
    for other in others {
        if other.pointer("/metadata/name") == crd.pointer("/metadata/name")
            || other.pointer("/spec/group") != group
        {
            continue;
        }
        if let Some(n) = mine(other).into_iter().find(|n| names.contains(n)) {
            return Some(format!("{n:?} is already in use"));
        }
        if other.pointer("/spec/names/kind") == kind {
            return Some(format!(
                "{:?} is already in use",
                kind.and_then(Value::as_str).unwrap_or("")
            ));
        }
    }
    None
}

fn condition(typ: &str, status: bool, reason: &str, message: &str, old: &Value) -> Value {
    let status = if status { "True" } else { "False" };
    let previous = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == typ));
    let time = match previous {
        Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
        _ => json!(ferrokube_api::time::now_rfc3339()),
    };
    json!({"type": typ, "status": status, "lastTransitionTime": time, "reason": reason, "message": message})
}

/// The status the naming and establishing controllers would write.
fn desired_status(crd: &Value, others: &[Value]) -> Value {
    let mut status = crd.get("status").cloned().unwrap_or_else(|| json!({}));
    let conflict = name_conflict(crd, others);
    let mut conditions: Vec<Value> = crd
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| !matches!(c["type"].as_str(), Some("NamesAccepted" | "Established")))
        .collect();
    match &conflict {
        None => {
            status["acceptedNames"] = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
            conditions.push(condition(
                "NamesAccepted",
                true,
                "NoConflicts",
                "no conflicts found",
                crd,
            ));
            conditions.push(condition(
                "Established",
                true,
                "InitialNamesAccepted",
                "the initial names have been accepted",
                crd,
            ));
        }
        Some(why) => {
            conditions.push(condition(
                "NamesAccepted",
                false,
                "ListKindConflict",
                why,
                crd,
            ));
            conditions.push(condition(
                "Established",
                false,
                "NotAccepted",
                "not all names are accepted",
                crd,
            ));
        }
    }
    status["conditions"] = Value::Array(conditions);
    status
}

/// Serves the CRDs stored now (called once before the server accepts requests).
pub async fn sync(registry: &Registry) -> ApiResult<()> {
    if let Some(info) = crd_info() {
        sync_all(registry, &registry.crds, info).await?;
    }
    Ok(())
}

/// Runs until `shutdown`.
pub async fn run(registry: Registry, mut shutdown: watch::Receiver<bool>) {
    let Some(info) = crd_info() else {
        return;
    };
    let crds: Arc<CrdRegistry> = registry.crds.clone();
    loop {
        let start = match sync_all(&registry, &crds, info).await {
            Ok(rv) => rv,
            Err(e) => {
                tracing::warn!(error = ?e, "crd controller: listing CRDs failed");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        let req = WatchRequest::prefix(info.storage_prefix()).from_revision(start + 1);
        let mut stream = match registry.storage.watch(req).await {
            Ok(s) => s,
            Err(_) => continue,
        };
        // CRDs waiting for their custom resources to go away are revisited each second.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {
                    if crds_terminating(&registry, info).await {
                        break; // a full resync handles the cleanup
                    }
                }
                msg = stream.recv() => match msg {
                    Some(Ok(WatchMessage::Event(e))) => {
                        if e.kind == EventKind::Deleted {
                            if let Some(prev) = e.prev_kv.as_ref().and_then(|kv| decode(kv).ok()) {
                                crds.set_crd(meta::name(&prev).unwrap_or_default(), Vec::new());
                            }
                            continue;
                        }
                        // Names can conflict across CRDs: reconcile all of them.
                        break;
                    }
                    Some(Ok(WatchMessage::Progress { .. })) => {}
                    Some(Err(_)) | None => break,
                }
            }
        }
    }
}

async fn crds_terminating(registry: &Registry, info: &'static ResourceInfo) -> bool {
    let target = Target::builtin(info, None);
    match registry.list(&target, &ListOptions::default()).await {
        Ok((items, ..)) => items
            .iter()
            .any(|c| meta::str_field(c, "deletionTimestamp").is_some()),
        Err(_) => false,
    }
}

/// Lists every CRD, reconciles each, and returns the list's revision.
async fn sync_all(
    registry: &Registry,
    crds: &CrdRegistry,
    info: &'static ResourceInfo,
) -> ApiResult<i64> {
    let target = Target::builtin(info, None);
    let (items, rv, _, _) = registry.list(&target, &ListOptions::default()).await?;
    let names: BTreeSet<String> = items
        .iter()
        .filter_map(|c| meta::name(c).map(str::to_string))
        .collect();
    for served in crds.snapshot().iter() {
        if !names.contains(&served.crd_name) {
            crds.set_crd(&served.crd_name, Vec::new());
        }
    }
    let mut last = rv;
    for crd in &items {
        let name = meta::name(crd).unwrap_or_default().to_string();
        let obj = if meta::str_field(crd, "deletionTimestamp").is_some() {
            crds.set_crd(&name, Vec::new());
            cleanup(registry, crd).await?
        } else {
            let want = desired_status(crd, &items);
            if crd.get("status") != Some(&want) {
                let (updated, _) = registry
                    .update_with(&target, &name, Some("status"), false, |cur| {
                        let mut next = cur.cloned().unwrap_or_else(|| crd.clone());
                        next["status"] = want.clone();
                        Ok(next)
                    })
                    .await?;
                Some(updated)
            } else {
                Some(crd.clone())
            }
        };
        if let Some(obj) = obj {
            if let Some(rv) = meta::str_field(&obj, "resourceVersion").and_then(|r| r.parse().ok())
            {
                last = last.max(rv);
            }
            crds.set_crd(&name, build(&obj));
        }
    }
    Ok(last)
}

/// Deletes the custom resources of a terminating CRD; once none is left, removes the
/// cleanup finalizer (which lets the CRD go). Returns the CRD if it still exists.
async fn cleanup(registry: &Registry, crd: &Value) -> ApiResult<Option<Value>> {
    let Some(info) = crd_info() else {
        return Ok(None);
    };
    let name = meta::name(crd).unwrap_or_default().to_string();
    let mut remaining = 0usize;
    // Serve the resources for deletion one last time, from the storage version.
    let mut terminating = crd.clone();
    if let Some(conds) = terminating
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        conds.retain(|c| c["type"] != "Terminating");
    }
    if let Some(cr) = build(&terminating).into_iter().next() {
        let target = Target {
            info: cr.info,
            namespace: None,
            custom: Some(&cr),
            served: None,
        };
        let (items, ..) = registry.list(&target, &ListOptions::default()).await?;
        for item in items {
            let ns = meta::namespace(&item).map(str::to_string);
            let item_target = Target {
                namespace: ns.as_deref(),
                ..target
            };
            let obj_name = meta::name(&item).unwrap_or_default().to_string();
            match registry
                .delete(&item_target, &obj_name, &DeleteOptions::default(), false)
                .await
            {
                Ok((_, true)) => {}
                Ok((_, false)) => remaining += 1,
                Err(crate::errors::ApiError::Storage(
                    ferrokube_storage::StorageError::NotFound { .. },
                )) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let target = Target::builtin(info, None);
    let message = if remaining == 0 {
        "removed all instances".to_string()
    } else {
        format!("waiting for {remaining} instances to be deleted")
    };
    let (obj, _) = registry
        .update_with(&target, &name, Some("status"), false, |cur| {
            let mut next = cur.cloned().unwrap_or_else(|| crd.clone());
            let mut conds: Vec<Value> = next
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            conds.retain(|c| c["type"] != "Terminating" && c["type"] != "Established");
            conds.push(condition(
                "Established",
                false,
                "Terminating",
                "the CRD is being deleted",
                &next,
            ));
            conds.push(condition(
                "Terminating",
                true,
                "InstanceDeletionInProgress",
                &message,
                &next,
            ));
            next["status"]["conditions"] = Value::Array(conds);
            Ok(next)
        })
        .await?;
    if remaining > 0 {
        return Ok(Some(obj));
    }
    let (obj, _) = registry
        .update_with(&target, &name, None, false, |cur| {
            let mut next = cur.cloned().unwrap_or_else(|| obj.clone());
            if let Some(f) = next
                .pointer_mut("/metadata/finalizers")
                .and_then(Value::as_array_mut)
            {
                f.retain(|f| f != CLEANUP_FINALIZER);
            }
            Ok(next)
        })
        .await?;
    Ok(
        (meta::str_field(&obj, "deletionTimestamp").is_some()
            && !meta::finalizers(&obj).is_empty())
        .then_some(obj),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str, plural: &str, kind: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural.trim_end_matches('s'), "kind": kind, "listKind": format!("{kind}List"), "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}},
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}}},
                {"name": "v1beta1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}},
                {"name": "v0", "served": false, "storage": false}]}})
    }

    #[test]
    fn established_crds_serve_their_versions() {
        let c = crd("widgets.example.com", "widgets", "Widget");
        assert!(build(&c).is_empty(), "not established yet");
        let mut c2 = c.clone();
        c2["status"] = desired_status(&c, std::slice::from_ref(&c));
        assert_eq!(c2["status"]["acceptedNames"]["kind"], "Widget");
        let served = build(&c2);
        assert_eq!(served.len(), 2);
        assert_eq!(served[0].info.version, "v1");
        assert!(served[0].info.subresource("status").is_some() && served[0].scale.is_some());
        assert_eq!(served[0].info.short_names, ["wd"]);
        assert_eq!(served[1].info.api_version(), "example.com/v1beta1");
        assert_eq!(served[0].columns[0].name, "Age");
    }

    #[test]
    fn conflicting_names_are_not_accepted() {
        let a = crd("widgets.example.com", "widgets", "Widget");
        let b = crd("gadgets.example.com", "gadgets", "Gadget");
        let status = desired_status(&b, &[a.clone(), b.clone()]);
        let conds = status["conditions"].as_array().unwrap();
        assert_eq!(conds[0]["status"], "False");
        assert!(conds[0]["message"].as_str().unwrap().contains("\"wd\""));
    }
}
