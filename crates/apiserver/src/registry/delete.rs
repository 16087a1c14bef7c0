//! Deletion as upstream's `Store.Delete`: preconditions, propagation policy (orphan and
//! foreground add their finalizers), finalizers turning a delete into setting
//! `deletionTimestamp`, graceful deletion of pods bound to a node, namespaces moving to
//! Terminating until their finalizers are gone.

use ferrokube_api::meta;
use ferrokube_api::status::Status;
use ferrokube_storage::{Preconditions, StorageError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::errors::{ApiError, ApiResult};
use crate::registry::store::{decode, encode, Registry, Target};

/// The parts of `metav1.DeleteOptions` the store acts on.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preconditions: Option<PreconditionsBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphan_dependents: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreconditionsBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// Upstream's `shouldUpdateFinalizers`: the garbage-collection finalizers become
/// exactly what the propagation policy asks for (`orphan` for Orphan,
/// `foregroundDeletion` for Foreground, neither for Background); a delete naming no
/// policy keeps the ones already there.
fn set_gc_finalizers(obj: &mut Value, policy: Option<&str>) {
    let list = meta::finalizers(obj);
    let had = |f: &str| list.iter().any(|x| x == f);
    let orphan = policy.map_or_else(|| had("orphan"), |p| p == "Orphan");
    let foreground = policy.map_or_else(|| had("foregroundDeletion"), |p| p == "Foreground");
    let mut out: Vec<String> = list
        .iter()
        .filter(|f| *f != "orphan" && *f != "foregroundDeletion")
        .cloned()
        .collect();
    if orphan {
        out.push("orphan".into());
    }
    if foreground {
        out.push("foregroundDeletion".into());
    }
    if out != list {
        meta::set(obj, "finalizers", json!(out));
    }
}

impl DeleteOptions {
    fn preconditions(&self) -> ApiResult<Preconditions> {
        let Some(p) = &self.preconditions else {
            return Ok(Preconditions::default());
        };
        let resource_version = match p.resource_version.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(rv) => Some(rv.parse::<i64>().map_err(|_| {
                Status::bad_request(format!("invalid resourceVersion precondition {rv:?}"))
            })?),
        };
        Ok(Preconditions {
            uid: p.uid.clone().filter(|u| !u.is_empty()),
            resource_version,
        })
    }

    /// The propagation policy the request asks for; `None` when it names none (the
    /// object's existing GC finalizers then stand, as upstream).
    fn policy(&self) -> ApiResult<Option<&str>> {
        match (self.propagation_policy.as_deref(), self.orphan_dependents) {
            (Some(p), Some(_)) if !p.is_empty() => Err(Status::invalid(
                ferrokube_api::status::Subject {
                    group: "",
                    resource: "DeleteOptions",
                    name: "",
                },
                vec![ferrokube_api::status::field::invalid(
                    "propagationPolicy",
                    &json!(p),
                    "orphanDependents and deletionPropagation cannot be both set",
                )],
            )
            .into()),
            (Some(p @ ("Orphan" | "Background" | "Foreground")), _) => Ok(Some(p)),
            (Some(""), _) | (None, None) => Ok(None),
            (None, Some(true)) => Ok(Some("Orphan")),
            (None, Some(false)) => Ok(Some("Background")),
            (Some(other), _) => Err(Status::bad_request(format!(
                "invalid propagationPolicy {other:?}: must be Orphan, Background or Foreground"
            ))
            .into()),
        }
    }
}

impl Registry {
    /// Deletes (or starts deleting) one object; returns it as it was last stored, and
    /// whether it is gone from storage (false: graceful or waiting for finalizers).
    pub async fn delete(
        &self,
        target: &Target<'_>,
        name: &str,
        opts: &DeleteOptions,
        dry_run: bool,
    ) -> ApiResult<(Value, bool)> {
        let key = target.key(name);
        let preconditions = opts.preconditions()?;
        let policy = opts.policy()?;
        loop {
            let Some(kv) = self.storage.get(&key, None).await? else {
                return Err(StorageError::NotFound { key: name.into() }.into());
            };
            let mut obj = decode(&kv)?;
            preconditions
                .check(&kv, meta::str_field(&obj, "uid"))
                .map_err(ApiError::from)?;
            let already_deleting = meta::str_field(&obj, "deletionTimestamp").is_some();
            set_gc_finalizers(&mut obj, policy);
            let now = ferrokube_api::time::now_unix();
            let is_pod = target.info.group.is_empty() && target.info.resource == "pods";
            let is_namespace = target.info.group.is_empty() && target.info.resource == "namespaces";
            let grace = if is_pod {
                pod_grace_period(&obj, opts.grace_period_seconds)
            } else {
                0
            };
            let has_finalizers = !meta::finalizers(&obj).is_empty();
            let ns_finalizers = is_namespace
                && obj
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
            if grace > 0 || has_finalizers || ns_finalizers {
                if !already_deleting || grace > 0 {
                    let at = ferrokube_api::time::format_rfc3339(now + grace);
                    meta::set(&mut obj, "deletionTimestamp", json!(at));
                    meta::set(&mut obj, "deletionGracePeriodSeconds", json!(grace));
                }
                if is_namespace {
                    // Only the phase changes: the namespace controller's deletion
                    // conditions survive a repeated delete (upstream namespace REST).
                    if let Some(m) = obj.as_object_mut() {
                        let status = m.entry("status").or_insert_with(|| json!({}));
                        match status.as_object_mut() {
                            Some(s) => {
                                s.insert("phase".into(), json!("Terminating"));
                            }
                            None => *status = json!({"phase": "Terminating"}),
                        }
                    }
                }
                let bytes = encode(&obj)?;
                if dry_run || bytes == kv.value {
                    return Ok((obj, false));
                }
                match self
                    .storage
                    .update(&key, bytes, kv.mod_revision, None)
                    .await
                {
                    Ok(kv) => return Ok((decode(&kv)?, false)),
                    Err(StorageError::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            if dry_run {
                return Ok((obj, true));
            }
            match self.storage.delete(&key, Some(kv.mod_revision)).await {
                Ok(_) => {
                    let is_service =
                        target.info.group.is_empty() && target.info.resource == "services";
                    if let Some(a) = self.services.as_deref().filter(|_| is_service) {
                        let held = crate::registry::services::ServiceAllocator::held_by(&obj);
                        a.release(self, &held).await;
                    }
                    return Ok((obj, true));
                }
                Err(StorageError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Upstream's pod graceful deletion: the requested period, else the pod's
/// terminationGracePeriodSeconds (default 30); 0 for pods no kubelet runs (unscheduled
/// or finished) and for pods already being deleted with a shorter period.
fn pod_grace_period(pod: &Value, requested: Option<i64>) -> i64 {
    let scheduled = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if !scheduled || finished {
        return 0;
    }
    let default = pod
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(30);
    let grace = requested.unwrap_or(default).max(0);
    match pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
    {
        Some(current) if current <= grace => current,
        _ => grace,
    }
}
