//! The DaemonSet's revision history and rolling update (upstream
//! `pkg/controller/daemon/update.go`): `constructHistory` (current revision by
//! template patch, snapshot with collision handling, de-duplication, renumbering),
//! `cleanupHistory` (revisionHistoryLimit, sparing revisions pods still run), and
//! `rollingUpdate` with maxUnavailable (delete old pods, the manage loop recreates
//! them) or maxSurge (create the new pod first, delete the old once it is
//! available).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{
    is_pod_updated, min_ready_seconds, nodes_to_pods, should_run_node, template,
    template_generation, Controller,
};
use crate::deployment::util::int_or_percent;
use crate::error::{is_conflict, Error, ResultExt};
use crate::history::{self, CONTROLLER_REVISION_HASH_LABEL};
use crate::podutil;

fn rolling(ds: &DaemonSet) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateDaemonSet> {
    ds.spec
        .as_ref()?
        .update_strategy
        .as_ref()?
        .rolling_update
        .as_ref()
}

/// `SurgeCount`: maxSurge of `desired` (percentages round up; default 0).
pub(super) fn surge_count(ds: &DaemonSet, desired: i32) -> i32 {
    rolling(ds)
        .and_then(|r| r.max_surge.as_ref())
        .and_then(|v| int_or_percent(v, desired, true).ok())
        .unwrap_or(0)
}

/// `UnavailableCount`: maxUnavailable of `desired` (percentages round up; default
/// 1).
pub(super) fn unavailable_count(ds: &DaemonSet, desired: i32) -> i32 {
    let v = rolling(ds)
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or(IntOrString::Int(1));
    int_or_percent(&v, desired, true).unwrap_or(0)
}

fn hash_of(rev: &ControllerRevision) -> Option<&String> {
    podutil::labels(&rev.metadata).get(CONTROLLER_REVISION_HASH_LABEL)
}

/// A node's (updated pod, old pod).
type NewAndOld<'a> = (Option<&'a Arc<Pod>>, Option<&'a Arc<Pod>>);

/// `findUpdatedPodsOnNode`: (new pod, old pod), or `None` when a node has more than
/// one of either (the manage loop cleans up).
fn updated_on_node<'a>(
    pods: &'a [Arc<Pod>],
    hash: &str,
    generation: Option<i64>,
) -> Option<NewAndOld<'a>> {
    let (mut new, mut old) = (None, None);
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_pod_updated(pod, hash, generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(pod);
    }
    Some((new, old))
}

impl Controller {
    fn revision_api(&self, ns: &str) -> Api<ControllerRevision> {
        Api::namespaced(self.ctx.client.clone(), ns)
    }

    /// `constructHistory`: (current revision, older revisions).
    pub(super) async fn construct_history(
        &self,
        ds: &Arc<DaemonSet>,
    ) -> Result<(ControllerRevision, Vec<ControllerRevision>), Error> {
        let ns = ds.namespace().unwrap_or_default();
        let api = self.revision_api(&ns);
        let patch = history::template_patch(&template(ds));
        let mut current = Vec::new();
        let mut old = Vec::new();
        for mut rev in history::list_revisions(&self.revisions, &**ds, &super::ds_selector(ds)) {
            if podutil::controller_ref(&rev.metadata).is_none() {
                match history::adopt(&api, &**ds, &rev).await? {
                    Some(r) => rev = r,
                    None => continue,
                }
            }
            if hash_of(&rev).is_none() {
                // Label with the name rather than a recomputed hash: no collisions.
                let name = rev.name_any();
                rev.metadata
                    .labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert(CONTROLLER_REVISION_HASH_LABEL.into(), name.clone());
                rev = api
                    .replace(&name, &PostParams::default(), &rev)
                    .await
                    .action(format!("labelling controller revision {name}"))?;
            }
            if rev.data.as_ref().map(|d| &d.0) == Some(&patch) {
                current.push(rev);
            } else {
                old.push(rev);
            }
        }
        let next = old.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
        let cur = if current.is_empty() {
            self.snapshot(ds, patch, next).await?
        } else {
            let cur = self.dedup(ds, current).await?;
            if cur.revision < next {
                history::set_revision_number(&api, &cur, next).await?
            } else {
                cur
            }
        };
        Ok((cur, old))
    }

    /// `snapshot`: creates the revision of the current template; a name taken by
    /// different data bumps `status.collisionCount` and retries.
    async fn snapshot(
        &self,
        ds: &DaemonSet,
        patch: serde_json::Value,
        revision: i64,
    ) -> Result<ControllerRevision, Error> {
        let ns = ds.namespace().unwrap_or_default();
        let api = self.revision_api(&ns);
        let collision = ds.status.as_ref().and_then(|s| s.collision_count);
        let tmpl = template(ds);
        let hash = history::template_hash(&tmpl, collision);
        let name = format!("{}-{hash}", ds.name_any());
        let mut labels = tmpl
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash);
        let rev = ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                labels: Some(labels),
                annotations: ds.metadata.annotations.clone(),
                owner_references: Some(vec![podutil::new_controller_ref(ds)]),
                ..ObjectMeta::default()
            },
            data: Some(RawExtension(patch.clone())),
            revision,
        };
        match api.create(&PostParams::default(), &rev).await {
            Ok(r) => Ok(r),
            Err(e) if is_conflict(&e) => {
                let existing = api
                    .get(&name)
                    .await
                    .action(format!("getting controller revision {name}"))?;
                if existing.data.as_ref().map(|d| &d.0) == Some(&patch) {
                    return Ok(existing);
                }
                let ds_api: Api<DaemonSet> = Api::namespaced(self.ctx.client.clone(), &ns);
                let live = ds_api
                    .get(&ds.name_any())
                    .await
                    .action(format!("getting daemon set {}", ds.name_any()))?;
                let live_count = live.status.as_ref().and_then(|s| s.collision_count);
                if live_count != collision {
                    return Err(Error::Invalid {
                        what: format!("daemon set {}", ds.name_any()),
                        reason: format!(
                            "found a stale collision count ({collision:?}, expected {live_count:?}); will retry until it is updated"
                        ),
                    });
                }
                let mut status = serde_json::to_value(&live.status).unwrap_or(json!({}));
                if !status.is_object() {
                    status = json!({});
                }
                status["collisionCount"] = json!(live_count.unwrap_or(0) + 1);
                history::put_status(&ds_api, &live, status).await?;
                tracing::info!(daemonset = %ds.name_any(), "hash collision: bumped collisionCount");
                Err(e).action(format!("creating controller revision {name}"))
            }
            Err(e) => Err(e).action(format!("creating controller revision {name}")),
        }
    }

    /// `dedupCurHistories`: keeps the highest-numbered equal revision, relabels pods
    /// of the others to its hash and deletes them.
    async fn dedup(
        &self,
        ds: &DaemonSet,
        mut current: Vec<ControllerRevision>,
    ) -> Result<ControllerRevision, Error> {
        current.sort_by(history::by_revision);
        let Some(keep) = current.pop() else {
            return Err(Error::Invalid {
                what: format!("daemon set {}", ds.name_any()),
                reason: "no current revision".into(),
            });
        };
        if current.is_empty() {
            return Ok(keep);
        }
        let ns = ds.namespace().unwrap_or_default();
        let keep_hash = hash_of(&keep).cloned().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &ns);
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        for pod in self.pods.list_namespace(&ns) {
            let ours = podutil::controller_ref(&pod.metadata).is_some_and(|r| r.uid == uid);
            if ours
                && podutil::labels(&pod.metadata).get(CONTROLLER_REVISION_HASH_LABEL)
                    != Some(&keep_hash)
            {
                let patch =
                    json!({"metadata": {"labels": {CONTROLLER_REVISION_HASH_LABEL: keep_hash}}});
                pods.patch(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .action(format!("relabelling pod {}", pod.name_any()))?;
            }
        }
        let api = self.revision_api(&ns);
        for dup in current {
            history::delete(&api, &dup.name_any()).await?;
        }
        Ok(keep)
    }

    /// `cleanupHistory`: deletes the oldest revisions beyond revisionHistoryLimit
    /// that no pod runs.
    pub(super) async fn cleanup_history(
        &self,
        ds: &DaemonSet,
        old: &[ControllerRevision],
        pods: &[Arc<Pod>],
    ) -> Result<(), Error> {
        let keep = history::history_limit(ds.spec.as_ref().and_then(|s| s.revision_history_limit));
        let mut to_kill = old.len().saturating_sub(keep);
        if to_kill == 0 {
            return Ok(());
        }
        let live: std::collections::BTreeSet<&String> = pods
            .iter()
            .filter_map(|p| podutil::labels(&p.metadata).get(CONTROLLER_REVISION_HASH_LABEL))
            .collect();
        let mut old = old.to_vec();
        old.sort_by(history::by_revision);
        let api = self.revision_api(&ds.namespace().unwrap_or_default());
        for rev in old {
            if to_kill == 0 {
                break;
            }
            if hash_of(&rev).is_some_and(|h| live.contains(h)) {
                continue;
            }
            history::delete(&api, &rev.name_any()).await?;
            to_kill -= 1;
        }
        Ok(())
    }

    /// `rollingUpdate`.
    pub(super) async fn rolling_update(
        &self,
        ds: &Arc<DaemonSet>,
        key: &str,
        nodes: &[Arc<Node>],
        pods: &[Arc<Pod>],
        hash: &str,
    ) -> Result<(), Error> {
        let mut by_node = nodes_to_pods(pods, false);
        // `updatedDesiredNodeCounts`: every node that should run a pod counts, with
        // or without one.
        let mut desired = 0;
        for node in nodes {
            if should_run_node(node, ds).0 {
                desired += 1;
                by_node.entry(node.name_any()).or_default();
            }
        }
        let max_surge = surge_count(ds, desired);
        let mut max_unavailable = unavailable_count(ds, desired);
        if desired > 0 && max_surge == 0 && max_unavailable == 0 {
            max_unavailable = 1;
        }
        let now = Timestamp::now();
        let mrs = min_ready_seconds(ds);
        let generation = template_generation(ds);
        let available = |p: &Pod| podutil::is_available(p, mrs, now);
        if max_surge == 0 {
            let mut unavailable = 0;
            let mut replace = Vec::new();
            let mut candidates = Vec::new();
            for list in by_node.values() {
                let Some((new, old)) = updated_on_node(list, hash, generation) else {
                    unavailable += 1;
                    continue;
                };
                match (new, old) {
                    (None, None) | (Some(_), Some(_)) => unavailable += 1,
                    (Some(new), None) => unavailable += i32::from(!available(new)),
                    (None, Some(old)) => {
                        if !available(old) {
                            replace.push(old.name_any());
                        } else if unavailable < max_unavailable {
                            candidates.push(old.name_any());
                        }
                    }
                }
            }
            let room = (max_unavailable - unavailable).clamp(0, candidates.len() as i32) as usize;
            replace.extend(candidates.into_iter().take(room));
            tracing::debug!(daemonset = %key, deleting = replace.len(), "rolling update");
            return self.sync_nodes(ds, key, &replace, &[], hash).await;
        }
        let mut delete = Vec::new();
        let mut allowed_new = Vec::new();
        let mut candidates = Vec::new();
        let mut surged = 0;
        for (node_name, list) in &by_node {
            let Some((new, old)) = updated_on_node(list, hash, generation) else {
                surged += 1;
                continue;
            };
            match (new, old) {
                (_, None) => {}
                (None, Some(old)) => {
                    if !available(old) {
                        let node = nodes
                            .iter()
                            .find(|n| n.metadata.name.as_deref() == Some(node_name));
                        if node.is_none_or(|n| !should_run_node(n, ds).0) {
                            delete.push(old.name_any());
                        } else {
                            allowed_new.push(node_name.clone());
                        }
                    } else if surged < max_surge {
                        candidates.push(node_name.clone());
                    }
                }
                (Some(new), Some(old)) => {
                    if available(new) {
                        delete.push(old.name_any());
                    } else {
                        surged += 1;
                    }
                }
            }
        }
        let room = (max_surge - surged).clamp(0, candidates.len() as i32) as usize;
        allowed_new.extend(candidates.into_iter().take(room));
        self.sync_nodes(ds, key, &delete, &allowed_new, hash).await
    }
}
