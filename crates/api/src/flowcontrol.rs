//! API Priority and Fairness configuration (flowcontrol.apiserver.k8s.io/v1): upstream's
//! bootstrap FlowSchemas and PriorityLevelConfigurations (`apis/flowcontrol/bootstrap`),
//! the mandatory ones (`exempt`, `catch-all`) that validation pins, and the suggested ones
//! the API server creates on start.

use serde_json::{json, Value};

pub const GROUP: &str = "flowcontrol.apiserver.k8s.io";
/// Marks an object the API server keeps in line with its bootstrap definition.
pub const AUTO_UPDATE_ANNOTATION: &str = "apf.kubernetes.io/autoupdate-spec";
/// An annotation of v1beta3 that v1 refuses.
pub const PRESERVE_ZERO_SHARES_ANNOTATION: &str =
    "flowcontrol.k8s.io/v1beta3-preserve-zero-concurrency-shares";
pub const EXEMPT: &str = "exempt";
pub const CATCH_ALL: &str = "catch-all";

fn object(kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/v1"),
        "kind": kind,
        "metadata": {"name": name, "annotations": {AUTO_UPDATE_ANNOTATION: "true"}},
        "spec": spec,
    })
}

fn queued(shares: i64, lendable: i64, queues: i64, hand: i64) -> Value {
    json!({"type": "Limited", "limited": {
        "nominalConcurrencyShares": shares,
        "lendablePercent": lendable,
        "limitResponse": {"type": "Queue", "queuing": {
            "queues": queues, "handSize": hand, "queueLengthLimit": 50}}}})
}

/// The bootstrap PriorityLevelConfigurations: `(mandatory, object)`.
pub fn priority_levels() -> Vec<(bool, Value)> {
    let plc = |name: &str, spec: Value| object("PriorityLevelConfiguration", name, spec);
    vec![
        (
            true,
            plc(CATCH_ALL, mandatory_priority_level_spec(CATCH_ALL)),
        ),
        (true, plc(EXEMPT, mandatory_priority_level_spec(EXEMPT))),
        (false, plc("system", queued(30, 33, 64, 6))),
        (false, plc("node-high", queued(40, 25, 64, 6))),
        (false, plc("leader-election", queued(10, 0, 16, 4))),
        (false, plc("workload-high", queued(40, 50, 128, 6))),
        (false, plc("workload-low", queued(100, 90, 128, 6))),
        (false, plc("global-default", queued(20, 50, 128, 6))),
    ]
}

/// The defaulted spec validation requires of a mandatory priority level.
pub fn mandatory_priority_level_spec(name: &str) -> Value {
    if name == EXEMPT {
        json!({"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}})
    } else {
        json!({"type": "Limited", "limited": {"nominalConcurrencyShares": 5,
            "lendablePercent": 0, "limitResponse": {"type": "Reject"}}})
    }
}

fn group(name: &str) -> Value {
    json!({"kind": "Group", "group": {"name": name}})
}
fn user(name: &str) -> Value {
    json!({"kind": "User", "user": {"name": name}})
}
fn service_account(namespace: &str, name: &str) -> Value {
    json!({"kind": "ServiceAccount", "serviceAccount": {"namespace": namespace, "name": name}})
}

/// One rule matching every request of `subjects`.
fn everything(subjects: Vec<Value>) -> Value {
    json!([{"subjects": subjects,
        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
            "clusterScope": true, "namespaces": ["*"]}],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}])
}

fn namespaced_rule(verbs: &[&str], group: &str, resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": [group], "resources": resources, "namespaces": ["*"]})
}

fn schema(pl: &str, precedence: i64, distinguisher: Option<&str>, rules: Value) -> Value {
    let mut spec = json!({"priorityLevelConfiguration": {"name": pl},
        "matchingPrecedence": precedence, "rules": rules});
    if let Some(d) = distinguisher {
        spec["distinguisherMethod"] = json!({"type": d});
    }
    spec
}

/// The defaulted spec validation requires of a mandatory FlowSchema.
pub fn mandatory_flow_schema_spec(name: &str) -> Value {
    if name == EXEMPT {
        schema(EXEMPT, 1, None, everything(vec![group("system:masters")]))
    } else {
        schema(
            CATCH_ALL,
            10000,
            Some("ByUser"),
            everything(vec![
                group("system:unauthenticated"),
                group("system:authenticated"),
            ]),
        )
    }
}

/// The bootstrap FlowSchemas: `(mandatory, object)`.
pub fn flow_schemas() -> Vec<(bool, Value)> {
    let fs = |name: &str, spec: Value| object("FlowSchema", name, spec);
    let rw = ["get", "create", "update"];
    let everyone = || {
        vec![
            group("system:unauthenticated"),
            group("system:authenticated"),
        ]
    };
    vec![
        (true, fs(EXEMPT, mandatory_flow_schema_spec(EXEMPT))),
        (true, fs(CATCH_ALL, mandatory_flow_schema_spec(CATCH_ALL))),
        (
            false,
            fs(
                "system-nodes",
                schema(
                    "system",
                    500,
                    Some("ByUser"),
                    everything(vec![group("system:nodes")]),
                ),
            ),
        ),
        (
            false,
            fs(
                "system-node-high",
                schema(
                    "node-high",
                    400,
                    Some("ByUser"),
                    json!([{"subjects": [group("system:nodes")], "resourceRules": [
                        {"verbs": ["*"], "apiGroups": [""], "resources": ["nodes", "nodes/status"],
                         "clusterScope": true, "namespaces": ["*"]},
                        namespaced_rule(&["*"], "coordination.k8s.io", &["leases"])]}]),
                ),
            ),
        ),
        (
            false,
            fs(
                "probes",
                schema(
                    EXEMPT,
                    2,
                    None,
                    json!([{"subjects": everyone(), "nonResourceRules": [
                        {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/readyz", "/livez"]}]}]),
                ),
            ),
        ),
        (
            false,
            fs(
                "system-leader-election",
                schema(
                    "leader-election",
                    100,
                    Some("ByUser"),
                    json!([{"subjects": [user("system:kube-controller-manager"),
                        user("system:kube-scheduler"), service_account("kube-system", "*")],
                        "resourceRules": [namespaced_rule(&rw, "coordination.k8s.io", &["leases"])]}]),
                ),
            ),
        ),
        (
            false,
            fs(
                "workload-leader-election",
                schema(
                    "leader-election",
                    200,
                    Some("ByUser"),
                    json!([{"subjects": [service_account("kube-system", "*")],
                        "resourceRules": [namespaced_rule(&rw, "", &["endpoints", "configmaps"]),
                            namespaced_rule(&rw, "coordination.k8s.io", &["leases"])]}]),
                ),
            ),
        ),
        (
            false,
            fs(
                "endpoint-controller",
                schema(
                    "workload-high",
                    150,
                    Some("ByUser"),
                    json!([{"subjects": [user("system:kube-controller-manager"),
                        service_account("kube-system", "endpoint-controller"),
                        service_account("kube-system", "endpointslicemirroring-controller")],
                        "resourceRules": [namespaced_rule(&rw, "", &["endpoints"])]}]),
                ),
            ),
        ),
        (
            false,
            fs(
                "kube-controller-manager",
                schema(
                    "workload-high",
                    800,
                    Some("ByNamespace"),
                    everything(vec![user("system:kube-controller-manager")]),
                ),
            ),
        ),
        (
            false,
            fs(
                "kube-scheduler",
                schema(
                    "workload-high",
                    800,
                    Some("ByNamespace"),
                    everything(vec![user("system:kube-scheduler")]),
                ),
            ),
        ),
        (
            false,
            fs(
                "kube-system-service-accounts",
                schema(
                    "workload-high",
                    900,
                    Some("ByNamespace"),
                    everything(vec![service_account("kube-system", "*")]),
                ),
            ),
        ),
        (
            false,
            fs(
                "service-accounts",
                schema(
                    "workload-low",
                    9000,
                    Some("ByUser"),
                    everything(vec![group("system:serviceaccounts")]),
                ),
            ),
        ),
        (
            false,
            fs(
                "global-default",
                schema(
                    "global-default",
                    9900,
                    Some("ByUser"),
                    everything(everyone()),
                ),
            ),
        ),
    ]
}

/// Semantic equality of two specs as upstream's `apiequality.Semantic.DeepEqual` on the
/// internal types sees them: absent, null, false, 0 and empty lists are all the zero
/// value.
pub fn spec_equal(a: &Value, b: &Value) -> bool {
    fn zero(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(_) => false,
        }
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().all(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => spec_equal(p, q),
                (Some(v), None) | (None, Some(v)) => zero(v),
                (None, None) => true,
            })
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| spec_equal(p, q))
        }
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (x, y) if zero(x) && zero(y) => true,
        (x, y) => x == y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_sets_are_complete() {
        let pls = priority_levels();
        let fss = flow_schemas();
        assert_eq!(pls.len(), 8);
        assert_eq!(fss.len(), 13);
        // Every schema's priority level exists.
        for (_, fs) in &fss {
            let pl = fs["spec"]["priorityLevelConfiguration"]["name"]
                .as_str()
                .unwrap_or("");
            assert!(pls.iter().any(|(_, p)| p["metadata"]["name"] == pl), "{pl}");
        }
        assert_eq!(pls.iter().filter(|(m, _)| *m).count(), 2);
        assert_eq!(fss.iter().filter(|(m, _)| *m).count(), 2);
    }

    #[test]
    fn semantic_equality_ignores_zero_values() {
        assert!(spec_equal(
            &json!({"a": 1, "b": false, "c": []}),
            &json!({"a": 1.0})
        ));
        assert!(!spec_equal(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!spec_equal(&json!({"a": {"b": 1}}), &json!({})));
    }
}
