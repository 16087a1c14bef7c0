//! ResourceQuota scopes (upstream `pkg/quota/v1/evaluator/core` `podMatchesScopeFunc`
//! and the generic `Matches`): which objects a quota with `spec.scopes` or
//! `spec.scopeSelector` charges. Shared by the API server's quota admission and the
//! resource-quota controller, so both count the same objects.

use serde_json::Value;

/// One scope requirement (a name in `spec.scopes` is an `Exists` requirement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub scope: String,
    pub operator: String,
    pub values: Vec<String>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// The requirements of a quota's `spec`.
pub fn requirements(spec: &Value) -> Vec<Requirement> {
    let mut out: Vec<Requirement> = strings(spec.get("scopes"))
        .into_iter()
        .map(|scope| Requirement {
            scope,
            operator: "Exists".into(),
            values: Vec::new(),
        })
        .collect();
    for e in spec
        .pointer("/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        out.push(Requirement {
            scope: s("scopeName"),
            operator: s("operator"),
            values: strings(e.get("values")),
        });
    }
    out
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["/spec/containers", "/spec/initContainers"]
        .into_iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
}

/// Whether a pod's QoS class is BestEffort: no container asks for or limits a positive
/// amount of cpu or memory.
pub fn is_best_effort(pod: &Value) -> bool {
    let positive = |list: Option<&Value>| {
        list.and_then(Value::as_object)
            .into_iter()
            .flatten()
            .any(|(k, q)| {
                (k == "cpu" || k == "memory")
                    && crate::kinds::Quantity::parse(q).is_some_and(|q| q.0 > 0)
            })
    };
    !containers(pod).any(|c| {
        positive(c.pointer("/resources/requests")) || positive(c.pointer("/resources/limits"))
    })
}

fn is_terminating(pod: &Value) -> bool {
    pod.pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|s| s >= 0)
}

fn uses_cross_namespace_affinity(pod: &Value) -> bool {
    let cross = |t: &Value| {
        t.get("namespaces")
            .and_then(Value::as_array)
            .is_some_and(|n| !n.is_empty())
            || t.get("namespaceSelector").is_some_and(|s| !s.is_null())
    };
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let Some(a) = pod.pointer(&format!("/spec/affinity/{kind}")) else {
            return false;
        };
        let required = a
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(cross);
        let preferred = a
            .get("preferredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|w| w.get("podAffinityTerm"))
            .any(cross);
        required || preferred
    })
}

/// Whether a pod falls in a scope requirement.
pub fn pod_matches(req: &Requirement, pod: &Value) -> bool {
    match req.scope.as_str() {
        "Terminating" => is_terminating(pod),
        "NotTerminating" => !is_terminating(pod),
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(pod),
        "PriorityClass" => {
            let class = pod
                .pointer("/spec/priorityClassName")
                .and_then(Value::as_str)
                .unwrap_or("");
            match req.operator.as_str() {
                "Exists" => !class.is_empty(),
                "In" => req.values.iter().any(|v| v == class),
                "NotIn" => !req.values.iter().any(|v| v == class),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether an object of (group, resource) is charged to a quota with `reqs`: every
/// object to an unscoped quota; to a scoped one only pods in every scope (the other
/// evaluators match no scope).
pub fn charged(reqs: &[Requirement], group: &str, resource: &str, obj: &Value) -> bool {
    if reqs.is_empty() {
        return true;
    }
    group.is_empty() && resource == "pods" && reqs.iter().all(|r| pod_matches(r, obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scopes_pick_pods() {
        let spec = json!({"scopes": ["BestEffort"], "scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}});
        let reqs = requirements(&spec);
        assert_eq!(reqs.len(), 2);
        let best_effort_high = json!({"spec": {"priorityClassName": "high", "containers": [{}]}});
        let burstable_high = json!({"spec": {"priorityClassName": "high", "containers": [
            {"resources": {"requests": {"cpu": "100m"}}}]}});
        let best_effort_low = json!({"spec": {"priorityClassName": "low", "containers": [{}]}});
        assert!(charged(&reqs, "", "pods", &best_effort_high));
        assert!(!charged(&reqs, "", "pods", &burstable_high));
        assert!(!charged(&reqs, "", "pods", &best_effort_low));
        // Other kinds are charged to unscoped quotas only.
        assert!(!charged(&reqs, "", "services", &json!({})));
        assert!(charged(&[], "", "services", &json!({})));
        let zero = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "0"}}}]}});
        assert!(is_best_effort(&zero));
        let terminating = json!({"spec": {"activeDeadlineSeconds": 30}});
        let t = requirements(&json!({"scopes": ["Terminating"]}));
        assert!(pod_matches(&t[0], &terminating) && !pod_matches(&t[0], &zero));
        let cross = json!({"spec": {"affinity": {"podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "podAffinityTerm": {"namespaces": ["other"], "topologyKey": "x"}}]}}}});
        let c = requirements(&json!({"scopes": ["CrossNamespacePodAffinity"]}));
        assert!(pod_matches(&c[0], &cross) && !pod_matches(&c[0], &zero));
    }
}
