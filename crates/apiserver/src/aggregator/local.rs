//! Local APIServices: at start, one APIService per built-in group-version
//! (`v1.`, `v1.apps`, …) with upstream's group and version priorities and the label
//! `kube-aggregator.kubernetes.io/automanaged: onstart`, as upstream's autoregister
//! controller does, so `kubectl get apiservices` lists what this server serves.

use std::collections::BTreeSet;

use ferrokube_api::resources;
use serde_json::json;

use crate::registry::{Registry, Target};

/// Upstream's `apiVersionPriorities` (group minimum, version) for the built-in groups.
fn priority(group: &str, version: &str) -> (i64, i64) {
    let group_priority = match group {
        "" => 18000,
        "apiregistration.k8s.io" => 18000,
        "apps" => 17800,
        "events.k8s.io" => 17750,
        "authentication.k8s.io" => 17700,
        "authorization.k8s.io" => 17600,
        "autoscaling" => 17500,
        "batch" => 17400,
        "certificates.k8s.io" => 17300,
        "networking.k8s.io" => 17200,
        "policy" => 17100,
        "rbac.authorization.k8s.io" => 17000,
        "storage.k8s.io" => 16800,
        "apiextensions.k8s.io" | "admissionregistration.k8s.io" => 16700,
        "scheduling.k8s.io" => 16600,
        "coordination.k8s.io" => 16500,
        "node.k8s.io" => 16300,
        "discovery.k8s.io" => 16200,
        "flowcontrol.apiserver.k8s.io" => 16100,
        _ => 15000,
    };
    let version_priority = match (group, version) {
        ("", "v1") => 1,
        ("autoscaling", "v2") => 30,
        ("flowcontrol.apiserver.k8s.io", "v1") => 21,
        (_, "v1") => 15,
        _ => 9,
    };
    (group_priority, version_priority)
}

/// Creates the missing local APIServices (existing ones are left as they are).
pub async fn register(registry: &Registry) {
    let Some(info) = resources::lookup("apiregistration.k8s.io", "v1", "apiservices") else {
        return;
    };
    let target = Target::builtin(info, None);
    let versions: BTreeSet<(&str, &str)> =
        resources::served().map(|r| (r.group, r.version)).collect();
    for (group, version) in versions {
        let name = format!("{version}.{group}");
        if registry.get(&target, &name).await.is_ok() {
            continue;
        }
        let (gp, vp) = priority(group, version);
        let obj = json!({
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": name, "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
            "spec": {"group": group, "version": version, "groupPriorityMinimum": gp, "versionPriority": vp},
        });
        if let Err(e) = registry.create(&target, obj, false).await {
            let status = e.into_status("apiregistration.k8s.io", "apiservices", &name);
            if status.reason != "AlreadyExists" {
                tracing::warn!(apiservice = %name, message = %status.message, "aggregator: registering a local APIService");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_upstream() {
        assert_eq!(priority("", "v1"), (18000, 1));
        assert_eq!(priority("apps", "v1"), (17800, 15));
        assert_eq!(priority("autoscaling", "v2"), (17500, 30));
        assert_eq!(priority("example.io", "v1beta1"), (15000, 9));
    }
}
