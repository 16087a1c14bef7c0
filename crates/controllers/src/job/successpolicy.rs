//! `spec.successPolicy` of Indexed Jobs (upstream `pkg/controller/job/success_policy.go`):
//! the Job has succeeded once any rule is met — enough of its `succeededIndexes` (all
//! of them, or `succeededCount` of them) succeeded, or, with only `succeededCount`, that
//! many indexes succeeded.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::SuccessPolicy;

use super::indexes;

/// The index of the first rule the succeeded indexes meet.
pub fn matched(
    policy: &SuccessPolicy,
    succeeded: &BTreeSet<i32>,
    completions: i32,
) -> Option<usize> {
    policy.rules.iter().position(
        |rule| match (&rule.succeeded_indexes, rule.succeeded_count) {
            (Some(list), count) => {
                let wanted = indexes::parse(list, completions);
                if wanted.is_empty() {
                    return false;
                }
                let have = wanted.intersection(succeeded).count();
                have >= count.map_or(wanted.len(), |c| usize::try_from(c).unwrap_or(0))
            }
            (None, Some(count)) => succeeded.len() >= usize::try_from(count).unwrap_or(0),
            (None, None) => false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::SuccessPolicyRule;

    fn rule(indexes: Option<&str>, count: Option<i32>) -> SuccessPolicyRule {
        SuccessPolicyRule {
            succeeded_indexes: indexes.map(str::to_string),
            succeeded_count: count,
        }
    }

    #[test]
    fn rules_match_as_upstream() {
        let set = |v: &[i32]| v.iter().copied().collect::<BTreeSet<i32>>();
        let policy = SuccessPolicy {
            rules: vec![rule(Some("0,2-3"), None), rule(None, Some(4))],
        };
        assert_eq!(matched(&policy, &set(&[0, 2]), 10), None);
        assert_eq!(matched(&policy, &set(&[0, 2, 3]), 10), Some(0));
        assert_eq!(matched(&policy, &set(&[1, 5, 6, 7]), 10), Some(1));
        let some = SuccessPolicy {
            rules: vec![rule(Some("0-4"), Some(2))],
        };
        assert_eq!(matched(&some, &set(&[1, 8]), 10), None);
        assert_eq!(matched(&some, &set(&[1, 3]), 10), Some(0));
        // Indexes beyond completions do not exist.
        let beyond = SuccessPolicy {
            rules: vec![rule(Some("20-30"), None)],
        };
        assert_eq!(matched(&beyond, &set(&[1]), 10), None);
    }
}
