//! ClusterRole aggregation: the rules a ClusterRole with an `aggregationRule` should
//! hold, as computed by the controller-manager's clusterrole-aggregation controller
//! (`pkg/controller/clusterroleaggregation`): for each selector in order, the matching
//! ClusterRoles sorted by name (the role itself excluded), their rules appended unless
//! an equal rule is already present.

use serde_json::Value;

fn labels(obj: &Value) -> Option<&serde_json::Map<String, Value>> {
    obj.get("metadata")?.get("labels")?.as_object()
}

fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    labels(obj)?.get(key)?.as_str()
}

/// Whether `obj`'s labels match a `metav1.LabelSelector` (matchLabels and
/// matchExpressions with In, NotIn, Exists, DoesNotExist; an empty selector matches
/// everything). `None` when the selector is invalid.
pub fn label_selector_matches(selector: &Value, obj: &Value) -> Option<bool> {
    if selector.is_null() {
        return Some(true);
    }
    let selector = selector.as_object()?;
    if let Some(ml) = selector.get("matchLabels").filter(|v| !v.is_null()) {
        for (k, v) in ml.as_object()? {
            if label(obj, k) != Some(v.as_str()?) {
                return Some(false);
            }
        }
    }
    if let Some(exprs) = selector.get("matchExpressions").filter(|v| !v.is_null()) {
        for e in exprs.as_array()? {
            let key = e.get("key")?.as_str()?;
            let values: Vec<&str> = match e.get("values").filter(|v| !v.is_null()) {
                Some(vs) => vs.as_array()?.iter().filter_map(Value::as_str).collect(),
                None => Vec::new(),
            };
            let have = label(obj, key);
            let ok = match e.get("operator")?.as_str()? {
                "In" if !values.is_empty() => have.is_some_and(|h| values.contains(&h)),
                "NotIn" if !values.is_empty() => !have.is_some_and(|h| values.contains(&h)),
                "Exists" if values.is_empty() => have.is_some(),
                "DoesNotExist" if values.is_empty() => have.is_none(),
                _ => return None,
            };
            if !ok {
                return Some(false);
            }
        }
    }
    Some(true)
}

/// The rules `cluster_role` should have given all ClusterRoles (`all` may include it).
/// `None` when it has no aggregationRule or a selector is invalid (upstream leaves the
/// role untouched then); compare the result with the role's current `rules` to decide
/// whether to write.
pub fn aggregate(cluster_role: &Value, all: &[Value]) -> Option<Vec<Value>> {
    let selectors = cluster_role
        .get("aggregationRule")
        .filter(|v| !v.is_null())?
        .get("clusterRoleSelectors")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let own_name = cluster_role.get("metadata")?.get("name")?.as_str()?;
    let name_of = |v: &Value| {
        v.get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let mut rules: Vec<Value> = Vec::new();
    for selector in &selectors {
        let mut matching: Vec<&Value> = Vec::new();
        for role in all {
            if label_selector_matches(selector, role)? {
                matching.push(role);
            }
        }
        matching.sort_by_key(|r| name_of(r));
        for role in matching {
            if name_of(role) == own_name {
                continue;
            }
            for rule in role
                .get("rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !rules.iter().any(|r| rule_equal(r, rule)) {
                    rules.push(rule.clone());
                }
            }
        }
    }
    Some(rules)
}

/// Semantic equality of two rules (absent, null and empty lists alike).
fn rule_equal(a: &Value, b: &Value) -> bool {
    let norm = |v: &Value| -> Option<crate::PolicyRule> { serde_json::from_value(v.clone()).ok() };
    match (norm(a), norm(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role(name: &str, labels: Value, rules: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "rules": rules})
    }

    #[test]
    fn aggregates_matching_roles_in_name_order_without_duplicates() {
        let admin = json!({
            "metadata": {"name": "admin"},
            "aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}}
            ]},
        });
        let r1 = json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]});
        let r2 = json!({"verbs": ["create"], "apiGroups": ["x.io"], "resources": ["foos"]});
        let all = vec![
            admin.clone(),
            role(
                "zz",
                json!({"rbac.authorization.k8s.io/aggregate-to-admin": "true"}),
                json!([r2.clone(), r1.clone()]),
            ),
            role(
                "aa",
                json!({"rbac.authorization.k8s.io/aggregate-to-admin": "true"}),
                json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": []}]),
            ),
            role("other", json!({}), json!([{"verbs": ["*"]}])),
        ];
        let rules = aggregate(&admin, &all).unwrap_or_default();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1], r2);
        assert!(aggregate(&all[1], &all).is_none());
    }

    #[test]
    fn match_expressions() {
        let obj = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let sel = |e: Value| json!({"matchExpressions": [e]});
        let m = |s: Value| label_selector_matches(&s, &obj);
        assert_eq!(
            m(sel(
                json!({"key": "a", "operator": "In", "values": ["1", "3"]})
            )),
            Some(true)
        );
        assert_eq!(
            m(sel(
                json!({"key": "a", "operator": "NotIn", "values": ["1"]})
            )),
            Some(false)
        );
        assert_eq!(
            m(sel(json!({"key": "c", "operator": "DoesNotExist"}))),
            Some(true)
        );
        assert_eq!(
            m(sel(json!({"key": "b", "operator": "Exists"}))),
            Some(true)
        );
        assert_eq!(m(sel(json!({"key": "b", "operator": "Bogus"}))), None);
        assert_eq!(m(json!({})), Some(true));
    }
}
