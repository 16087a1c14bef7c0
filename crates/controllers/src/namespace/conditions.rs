//! The namespace status conditions the deleter maintains (upstream
//! `pkg/controller/namespace/deletion/status_condition_utils.go`): each round of
//! content deletion sets every condition type, the failing ones True with what failed
//! and the others False with upstream's "ok" reason and message.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NamespaceCondition, NamespaceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::discovery::GroupVersionResource;

pub const DISCOVERY_FAILURE: &str = "NamespaceDeletionDiscoveryFailure";
pub const GROUP_VERSION_PARSING_FAILURE: &str = "NamespaceDeletionGroupVersionParsingFailure";
pub const CONTENT_FAILURE: &str = "NamespaceDeletionContentFailure";
pub const CONTENT_REMAINING: &str = "NamespaceContentRemaining";
pub const FINALIZERS_REMAINING: &str = "NamespaceFinalizersRemaining";

/// The condition types, in upstream's order.
const CONDITION_TYPES: [&str; 5] = [
    DISCOVERY_FAILURE,
    GROUP_VERSION_PARSING_FAILURE,
    CONTENT_FAILURE,
    CONTENT_REMAINING,
    FINALIZERS_REMAINING,
];

/// upstream `okReasons` / `okMessages`.
fn ok(condition_type: &str) -> (&'static str, &'static str) {
    match condition_type {
        DISCOVERY_FAILURE => (
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        GROUP_VERSION_PARSING_FAILURE => (
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        CONTENT_FAILURE => (
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
        _ => ("ContentRemoved", "All content successfully removed"),
    }
}

/// Collects one round's failures and turns them into conditions.
#[derive(Debug)]
pub struct ConditionUpdater {
    now: Time,
    new_conditions: Vec<NamespaceCondition>,
    delete_content_errors: Vec<String>,
}

impl ConditionUpdater {
    pub fn new(now: Time) -> ConditionUpdater {
        ConditionUpdater {
            now,
            new_conditions: Vec::new(),
            delete_content_errors: Vec::new(),
        }
    }

    fn failing(&mut self, condition_type: &str, reason: &str, message: String) {
        self.new_conditions.push(NamespaceCondition {
            type_: condition_type.into(),
            status: "True".into(),
            last_transition_time: Some(self.now.clone()),
            reason: Some(reason.into()),
            message: Some(message),
        });
    }

    /// Discovery failed (wholly, or for `groups_failing` group versions).
    pub fn discovery_failed(&mut self, groups_failing: Option<usize>, error: &str) {
        let message = match groups_failing {
            Some(n) => format!("Discovery failed for some groups, {n} failing: {error}"),
            None => error.to_string(),
        };
        self.failing(DISCOVERY_FAILURE, "DiscoveryFailed", message);
    }

    /// A group version string did not parse.
    pub fn group_version_failed(&mut self, error: &str) {
        self.failing(
            GROUP_VERSION_PARSING_FAILURE,
            "GroupVersionParsingFailed",
            error.to_string(),
        );
    }

    /// Deleting one resource's content failed.
    pub fn delete_content_failed(&mut self, error: String) {
        self.delete_content_errors.push(error);
    }

    /// What remains: instances per resource and per finalizer.
    pub fn content_totals(
        &mut self,
        remaining: &BTreeMap<GroupVersionResource, usize>,
        finalizers: &BTreeMap<String, usize>,
    ) {
        if !remaining.is_empty() {
            let mut parts: Vec<String> = remaining
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(gvr, n)| {
                    format!("{}.{} has {n} resource instances", gvr.resource, gvr.group)
                })
                .collect();
            parts.sort();
            self.failing(
                CONTENT_REMAINING,
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", parts.join(", ")),
            );
        }
        if !finalizers.is_empty() {
            let mut parts: Vec<String> = finalizers
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(f, n)| format!("{f} in {n} resource instances"))
                .collect();
            parts.sort();
            self.failing(
                FINALIZERS_REMAINING,
                "SomeFinalizerRemain",
                format!("Some finalizers are remaining: {}", parts.join(", ")),
            );
        }
    }

    /// Writes the conditions into `status`; whether anything changed.
    pub fn update(mut self, status: &mut NamespaceStatus) -> bool {
        if !self.delete_content_errors.is_empty()
            && !self
                .new_conditions
                .iter()
                .any(|c| c.type_ == CONTENT_FAILURE)
        {
            let mut msgs = std::mem::take(&mut self.delete_content_errors);
            msgs.sort();
            self.failing(
                CONTENT_FAILURE,
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    msgs.len(),
                    msgs.join(", ")
                ),
            );
        }
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        let mut changed = false;
        for t in CONDITION_TYPES {
            let new = self
                .new_conditions
                .iter()
                .find(|c| c.type_ == t)
                .cloned()
                .unwrap_or_else(|| {
                    let (reason, message) = ok(t);
                    NamespaceCondition {
                        type_: t.into(),
                        status: "False".into(),
                        last_transition_time: Some(self.now.clone()),
                        reason: Some(reason.into()),
                        message: Some(message.into()),
                    }
                });
            match conditions.iter_mut().find(|c| c.type_ == t) {
                None => {
                    conditions.push(new);
                    changed = true;
                }
                Some(old)
                    if old.status != new.status
                        || old.reason != new.reason
                        || old.message != new.message =>
                {
                    if old.status != new.status {
                        old.last_transition_time = Some(self.now.clone());
                    }
                    old.status = new.status;
                    old.reason = new.reason;
                    old.message = new.message;
                    changed = true;
                }
                Some(_) => {}
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn now() -> Time {
        Time(Timestamp::UNIX_EPOCH)
    }

    fn find<'a>(s: &'a NamespaceStatus, t: &str) -> &'a NamespaceCondition {
        s.conditions
            .as_ref()
            .and_then(|c| c.iter().find(|c| c.type_ == t))
            .unwrap()
    }

    #[test]
    fn all_ok_sets_every_condition_false_once() {
        let mut status = NamespaceStatus::default();
        assert!(ConditionUpdater::new(now()).update(&mut status));
        assert_eq!(status.conditions.as_ref().unwrap().len(), 5);
        let c = find(&status, CONTENT_FAILURE);
        assert_eq!(c.status, "False");
        assert_eq!(c.reason.as_deref(), Some("ContentDeleted"));
        assert_eq!(
            find(&status, FINALIZERS_REMAINING).message.as_deref(),
            Some("All content successfully removed")
        );
        assert!(!ConditionUpdater::new(now()).update(&mut status));
    }

    #[test]
    fn remaining_content_and_failures_as_upstream_words_them() {
        let mut status = NamespaceStatus::default();
        let mut u = ConditionUpdater::new(now());
        u.discovery_failed(
            Some(1),
            "unable to retrieve the complete list of server APIs: a.io/v1: boom",
        );
        let mut remaining = BTreeMap::new();
        remaining.insert(
            GroupVersionResource {
                group: String::new(),
                version: "v1".into(),
                resource: "pods".into(),
            },
            2,
        );
        remaining.insert(
            GroupVersionResource {
                group: "example.com".into(),
                version: "v1".into(),
                resource: "widgets".into(),
            },
            1,
        );
        let mut finalizers = BTreeMap::new();
        finalizers.insert("example.com/hold".to_string(), 1);
        u.content_totals(&remaining, &finalizers);
        u.delete_content_failed("b failed".into());
        u.delete_content_failed("a failed".into());
        assert!(u.update(&mut status));
        assert_eq!(
            find(&status, CONTENT_REMAINING).message.as_deref(),
            Some("Some resources are remaining: pods. has 2 resource instances, widgets.example.com has 1 resource instances")
        );
        assert_eq!(
            find(&status, FINALIZERS_REMAINING).message.as_deref(),
            Some("Some finalizers are remaining: example.com/hold in 1 resource instances")
        );
        assert_eq!(
            find(&status, FINALIZERS_REMAINING).reason.as_deref(),
            Some("SomeFinalizerRemain")
        );
        assert_eq!(
            find(&status, CONTENT_FAILURE).message.as_deref(),
            Some("Failed to delete all resource types, 2 remaining: a failed, b failed")
        );
        assert_eq!(
            find(&status, DISCOVERY_FAILURE).message.as_deref(),
            Some("Discovery failed for some groups, 1 failing: unable to retrieve the complete list of server APIs: a.io/v1: boom")
        );
        assert_eq!(find(&status, GROUP_VERSION_PARSING_FAILURE).status, "False");
    }
}
