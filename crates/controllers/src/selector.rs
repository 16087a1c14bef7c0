//! Label selectors (apimachinery `labels.Selector` from a `metav1.LabelSelector`,
//! and the map selectors of ReplicationControllers and Services).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `labels` satisfy `selector`. An empty selector matches everything; a
/// malformed requirement (unknown operator, values where none belong) matches
/// nothing, as upstream's conversion error leaves the controller with no pods.
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(ml) = &selector.match_labels {
        if !ml.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return false;
        }
    }
    for req in selector.match_expressions.iter().flatten() {
        let values = req.values.as_deref().unwrap_or_default();
        let have = labels.get(&req.key);
        let ok = match req.operator.as_str() {
            "In" => !values.is_empty() && have.is_some_and(|v| values.contains(v)),
            "NotIn" => !values.is_empty() && have.is_none_or(|v| !values.contains(v)),
            "Exists" => values.is_empty() && have.is_some(),
            "DoesNotExist" => values.is_empty() && have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether the selector selects nothing by construction (nil selector: upstream's
/// `labels.Nothing()`).
pub fn is_empty(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

/// A map selector (RC, Service): every pair must be present.
pub fn matches_map(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// `a=b,c=d` for messages and list calls.
pub fn to_string(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for r in selector.match_expressions.iter().flatten() {
        let vals = r.values.clone().unwrap_or_default().join(",");
        parts.push(match r.operator.as_str() {
            "In" => format!("{} in ({vals})", r.key),
            "NotIn" => format!("{} notin ({vals})", r.key),
            "Exists" => r.key.clone(),
            _ => format!("!{}", r.key),
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn match_labels_and_expressions() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["a".into(), "b".into()]),
            }]),
        };
        assert!(matches(&sel, &labels(&[("app", "web"), ("tier", "b")])));
        assert!(!matches(&sel, &labels(&[("app", "web"), ("tier", "c")])));
        assert!(!matches(&sel, &labels(&[("tier", "a")])));
        assert_eq!(to_string(&sel), "app=web,tier in (a,b)");
        assert!(matches(&LabelSelector::default(), &labels(&[])));
        assert!(is_empty(&LabelSelector::default()));
    }
}
