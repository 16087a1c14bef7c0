//! `spec.podFailurePolicy` (upstream `pkg/controller/job/pod_failure_policy.go`): the
//! first rule matching a failed pod decides whether the failure fails the Job, fails
//! its index, is ignored, or counts towards `backoffLimit`.

use k8s_openapi::api::batch::v1::PodFailurePolicy;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// What a matching rule says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `FailJob`: the Job fails with this message (reason `PodFailurePolicy`).
    FailJob(String),
    /// `FailIndex`: the pod's index fails (Indexed Jobs with backoffLimitPerIndex).
    FailIndex,
    /// `Ignore`: the failure does not count.
    Ignore,
    /// `Count` or no rule matched: the failure counts towards backoffLimit.
    Count,
}

/// The verdict for a failed pod.
pub fn evaluate(policy: &PodFailurePolicy, pod: &Pod) -> Verdict {
    let status = pod.status.as_ref();
    let containers = status
        .into_iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .collect::<Vec<_>>();
    for (i, rule) in policy.rules.iter().enumerate() {
        let mut message = None;
        if let Some(codes) = &rule.on_exit_codes {
            for c in &containers {
                if codes.container_name.as_ref().is_some_and(|n| n != &c.name) {
                    continue;
                }
                let Some(code) = c
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| t.exit_code)
                else {
                    continue;
                };
                if code == 0 {
                    continue;
                }
                let hit = match codes.operator.as_str() {
                    "In" => codes.values.contains(&code),
                    "NotIn" => !codes.values.contains(&code),
                    _ => false,
                };
                if hit {
                    message = Some(format!(
                        "Container {} for pod {}/{} failed with exit code {code} matching {} rule at index {i}",
                        c.name,
                        pod.namespace().unwrap_or_default(),
                        pod.name_any(),
                        rule.action
                    ));
                    break;
                }
            }
        }
        for pc in rule.on_pod_conditions.iter().flatten() {
            if message.is_some() {
                break;
            }
            let want = pc.status.as_str();
            let has = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == pc.type_ && c.status == want));
            if has {
                message = Some(format!(
                    "Pod {}/{} has condition {} matching {} rule at index {i}",
                    pod.namespace().unwrap_or_default(),
                    pod.name_any(),
                    pc.type_,
                    rule.action
                ));
            }
        }
        if let Some(m) = message {
            return match rule.action.as_str() {
                "FailJob" => Verdict::FailJob(m),
                "FailIndex" => Verdict::FailIndex,
                "Ignore" => Verdict::Ignore,
                _ => Verdict::Count,
            };
        }
    }
    Verdict::Count
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_matching_rule_decides() {
        let policy: PodFailurePolicy = serde_json::from_value(json!({"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
        ]}))
        .unwrap();
        let pod = |code: i32, cond: bool| -> Pod {
            let mut v = json!({"metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": "Failed",
                "containerStatuses": [{"name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                  "state": {"terminated": {"exitCode": code}}}]}});
            if cond {
                v["status"]["conditions"] = json!([{"type": "DisruptionTarget", "status": "True"}]);
            }
            serde_json::from_value(v).unwrap()
        };
        assert_eq!(
            evaluate(&policy, &pod(42, false)),
            Verdict::FailJob(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1".into()
            )
        );
        assert_eq!(evaluate(&policy, &pod(42, true)), Verdict::Ignore);
        assert_eq!(evaluate(&policy, &pod(1, false)), Verdict::Count);
    }
}
