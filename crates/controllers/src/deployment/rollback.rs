//! Upstream `pkg/controller/deployment/rollback.go`: the server-side rollback of
//! extensions/v1beta1's `spec.rollbackTo`, which apps/v1 objects carry as the
//! `deprecated.deployment.rollback.to` annotation. (kubectl's `rollout undo` rolls
//! back client-side instead: it copies an old ReplicaSet's template into the
//! Deployment, which then rolls out like any template change.)

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::PostParams;
use kube::ResourceExt;

use super::util;
use super::Controller;
use crate::error::{is_not_found, Error, ResultExt};
use crate::events::EventType;

const ROLLBACK_REVISION_NOT_FOUND: &str = "DeploymentRollbackRevisionNotFound";
const ROLLBACK_TEMPLATE_UNCHANGED: &str = "DeploymentRollbackTemplateUnchanged";
const ROLLBACK_DONE: &str = "DeploymentRollback";

/// `getRollbackTo`: the revision asked for (0: the previous one); unparsable values
/// are ignored.
pub(super) fn rollback_to(d: &Deployment) -> Option<i64> {
    let v = d
        .metadata
        .annotations
        .as_ref()?
        .get(util::DEPRECATED_ROLLBACK_TO)?;
    if v.is_empty() {
        return None;
    }
    v.parse().ok()
}

/// `LastRevision`: the second highest revision.
fn last_revision(rss: &[ReplicaSet]) -> i64 {
    let (mut max, mut second) = (0i64, 0i64);
    for v in rss.iter().filter_map(util::revision) {
        if v >= max {
            second = max;
            max = v;
        } else if v > second {
            second = v;
        }
    }
    second
}

impl Controller {
    /// `rollback`: copies the template (and annotations) of the ReplicaSet of the
    /// requested revision into the Deployment and clears the request, whatever the
    /// outcome.
    pub(super) async fn rollback(
        &self,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
    ) -> Result<(), Error> {
        self.get_all_rss_and_sync_revision(d, rs_list, true).await?;
        let mut revision = rollback_to(d).unwrap_or(0);
        if revision == 0 {
            revision = last_revision(rs_list);
            if revision == 0 {
                self.ctx.recorder.event(
                    &*d,
                    EventType::Warning,
                    ROLLBACK_REVISION_NOT_FOUND,
                    "Unable to find last revision.",
                );
                return self.update_and_clear_rollback_to(d).await;
            }
        }
        let target = rs_list
            .iter()
            .find(|rs| util::revision(rs) == Some(revision))
            .cloned();
        let Some(rs) = target else {
            self.ctx.recorder.event(
                &*d,
                EventType::Warning,
                ROLLBACK_REVISION_NOT_FOUND,
                "Unable to find the revision to rollback to.",
            );
            return self.update_and_clear_rollback_to(d).await;
        };
        let rs_template = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .unwrap_or_default();
        if util::equal_ignore_hash(&util::template(d), &rs_template) {
            let msg = format!(
                "The rollback revision contains the same template as current deployment \"{}\"",
                d.name_any()
            );
            self.ctx
                .recorder
                .event(&*d, EventType::Warning, ROLLBACK_TEMPLATE_UNCHANGED, msg);
            return self.update_and_clear_rollback_to(d).await;
        }
        // SetFromReplicaSetTemplate + SetDeploymentAnnotationsTo.
        let mut template = rs_template;
        if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(util::POD_TEMPLATE_HASH);
        }
        if let Some(spec) = d.spec.as_mut() {
            spec.template = template;
        }
        let mut annotations: BTreeMap<String, String> = d
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| util::skip_copy(k))
            .collect();
        for (k, v) in rs.metadata.annotations.clone().unwrap_or_default() {
            if !util::skip_copy(&k) {
                annotations.insert(k, v);
            }
        }
        d.metadata.annotations = Some(annotations);
        self.update_and_clear_rollback_to(d).await?;
        self.ctx.recorder.event(
            &*d,
            EventType::Normal,
            ROLLBACK_DONE,
            format!(
                "Rolled back deployment \"{}\" to revision {revision}",
                d.name_any()
            ),
        );
        Ok(())
    }

    /// `updateDeploymentAndClearRollbackTo`.
    async fn update_and_clear_rollback_to(&self, d: &mut Deployment) -> Result<(), Error> {
        if let Some(a) = d.metadata.annotations.as_mut() {
            a.remove(util::DEPRECATED_ROLLBACK_TO);
        }
        let ns = d.namespace().unwrap_or_default();
        match self
            .d_api(&ns)
            .replace(&d.name_any(), &PostParams::default(), d)
            .await
        {
            Ok(updated) => {
                *d = updated;
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).action(format!(
                "clearing the rollback of deployment {ns}/{}",
                d.name_any()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn rs(rev: &str) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                annotations: Some([(util::REVISION.to_string(), rev.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn last_revision_is_the_second_highest() {
        assert_eq!(last_revision(&[rs("1"), rs("3"), rs("2")]), 2);
        assert_eq!(last_revision(&[rs("4")]), 0);
        assert_eq!(last_revision(&[rs("x"), rs("5"), rs("1")]), 1);
    }

    #[test]
    fn rollback_to_reads_the_deprecated_annotation() {
        let mut d = Deployment::default();
        assert_eq!(rollback_to(&d), None);
        d.metadata.annotations =
            Some([(util::DEPRECATED_ROLLBACK_TO.to_string(), "0".to_string())].into());
        assert_eq!(rollback_to(&d), Some(0));
        d.metadata.annotations =
            Some([(util::DEPRECATED_ROLLBACK_TO.to_string(), "x".to_string())].into());
        assert_eq!(rollback_to(&d), None);
    }
}
