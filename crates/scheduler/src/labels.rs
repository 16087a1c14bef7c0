//! Label selectors, node selectors, taints and tolerations as the scheduler
//! evaluates them: `k8s.io/apimachinery/pkg/labels` (selector requirements),
//! `k8s.io/component-helpers/scheduling/corev1/nodeaffinity` (node selector
//! terms incl. `Gt`/`Lt` and `matchFields` on `metadata.name`) and
//! `k8s.io/api/core/v1/toleration.go` (`ToleratesTaint`).

use std::collections::BTreeMap;

use ferrokube_api::meta::string_list as strings;
use serde_json::Value;

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// Reads a string → string map (labels, nodeSelector).
pub fn string_map(v: Option<&Value>) -> Labels {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A selector operator (label selectors use the first four, node selectors all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// The label's value is one of the values.
    In,
    /// The label is absent or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
    /// The label's value, an integer, is greater than the single value.
    Gt,
    /// The label's value, an integer, is less than the single value.
    Lt,
}

impl Operator {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "In" => Self::In,
            "NotIn" => Self::NotIn,
            "Exists" => Self::Exists,
            "DoesNotExist" => Self::DoesNotExist,
            "Gt" => Self::Gt,
            "Lt" => Self::Lt,
            _ => return None,
        })
    }
}

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key (or field name for `matchFields`).
    pub key: String,
    /// The operator.
    pub op: Operator,
    /// The values.
    pub values: Vec<String>,
}

impl Requirement {
    /// Whether the requirement holds for `value` (the label's value if present).
    pub fn matches_value(&self, value: Option<&str>) -> bool {
        match self.op {
            Operator::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Operator::NotIn => !value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::Gt | Operator::Lt => {
                let (Some(v), Some(bound)) = (value, self.values.first()) else {
                    return false;
                };
                let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else {
                    return false;
                };
                if self.op == Operator::Gt {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }

    fn parse(v: &Value) -> Option<Self> {
        Some(Self {
            key: str_of(v, "key").to_owned(),
            op: Operator::parse(str_of(v, "operator"))?,
            values: strings(v.get("values")),
        })
    }
}

/// A `metav1.LabelSelector` (matchLabels folded into `In` requirements). The
/// empty selector matches everything; an absent one is represented by `None`
/// by its users and matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// ANDed requirements.
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses a `metav1.LabelSelector`; an invalid operator makes a selector that
    /// matches nothing (upstream refuses it; such objects fail validation anyway).
    pub fn parse(v: &Value) -> Self {
        let mut requirements: Vec<Requirement> = string_map(v.get("matchLabels"))
            .into_iter()
            .map(|(key, value)| Requirement {
                key,
                op: Operator::In,
                values: vec![value],
            })
            .collect();
        for e in v
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match Requirement::parse(e) {
                Some(r) => requirements.push(r),
                None => requirements.push(Requirement {
                    key: String::new(),
                    op: Operator::In,
                    values: Vec::new(),
                }),
            }
        }
        Self { requirements }
    }

    /// Parses an optional selector: `None` when absent or null.
    pub fn parse_opt(v: Option<&Value>) -> Option<Self> {
        v.filter(|v| !v.is_null()).map(Self::parse)
    }

    /// Whether the selector matches the labels.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches_value(labels.get(&r.key).map(String::as_str)))
    }

    /// Whether the selector has no requirements (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Adds `key In (value)` — how `matchLabelKeys` are merged into selectors.
    pub fn require_equal(&mut self, key: &str, value: &str) {
        self.requirements.push(Requirement {
            key: key.to_owned(),
            op: Operator::In,
            values: vec![value.to_owned()],
        });
    }

    /// Adds `key NotIn (value)` — how `mismatchLabelKeys` are merged.
    pub fn require_not_equal(&mut self, key: &str, value: &str) {
        self.requirements.push(Requirement {
            key: key.to_owned(),
            op: Operator::NotIn,
            values: vec![value.to_owned()],
        });
    }
}

/// One `NodeSelectorTerm`: label expressions and field expressions, ANDed. A
/// term with neither matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSelectorTerm {
    /// `matchExpressions` on node labels.
    pub match_expressions: Vec<Requirement>,
    /// `matchFields` (only `metadata.name` is supported upstream).
    pub match_fields: Vec<Requirement>,
    /// Some expression could not be parsed: the term matches nothing.
    pub invalid: bool,
}

impl NodeSelectorTerm {
    fn parse(v: &Value) -> Self {
        let mut t = Self::default();
        for (field, out) in [
            ("matchExpressions", &mut t.match_expressions),
            ("matchFields", &mut t.match_fields),
        ] {
            for e in v.get(field).and_then(Value::as_array).into_iter().flatten() {
                match Requirement::parse(e) {
                    Some(r) => out.push(r),
                    None => t.invalid = true,
                }
            }
        }
        if t.match_fields
            .iter()
            .any(|r| r.key != "metadata.name" || !matches!(r.op, Operator::In | Operator::NotIn))
        {
            t.invalid = true;
        }
        t
    }

    /// Whether the term matches a node with these labels and name.
    pub fn matches(&self, labels: &Labels, node_name: &str) -> bool {
        if self.invalid || (self.match_expressions.is_empty() && self.match_fields.is_empty()) {
            return false;
        }
        self.match_expressions
            .iter()
            .all(|r| r.matches_value(labels.get(&r.key).map(String::as_str)))
            && self
                .match_fields
                .iter()
                .all(|r| r.matches_value(Some(node_name)))
    }
}

/// A `NodeSelector`: terms ORed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSelector {
    /// The terms.
    pub terms: Vec<NodeSelectorTerm>,
}

impl NodeSelector {
    /// Parses a `v1.NodeSelector`.
    pub fn parse(v: &Value) -> Self {
        Self {
            terms: v
                .get("nodeSelectorTerms")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(NodeSelectorTerm::parse)
                .collect(),
        }
    }

    /// Whether any term matches.
    pub fn matches(&self, labels: &Labels, node_name: &str) -> bool {
        self.terms.iter().any(|t| t.matches(labels, node_name))
    }
}

/// A preferred node affinity term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferredTerm {
    /// The weight (1-100).
    pub weight: i64,
    /// The term.
    pub term: NodeSelectorTerm,
}

impl PreferredTerm {
    pub(crate) fn parse(v: &Value) -> Self {
        Self {
            weight: v.get("weight").and_then(Value::as_i64).unwrap_or(0),
            term: v
                .get("preference")
                .map(NodeSelectorTerm::parse)
                .unwrap_or_default(),
        }
    }
}

/// A taint effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaintEffect {
    /// Do not schedule new pods.
    NoSchedule,
    /// Prefer not to schedule new pods.
    PreferNoSchedule,
    /// Do not schedule and evict running pods.
    NoExecute,
}

impl TaintEffect {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "NoSchedule" => Self::NoSchedule,
            "PreferNoSchedule" => Self::PreferNoSchedule,
            "NoExecute" => Self::NoExecute,
            _ => return None,
        })
    }
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// The effect.
    pub effect: TaintEffect,
}

impl Taint {
    pub(crate) fn parse(v: &Value) -> Option<Self> {
        Some(Self {
            key: str_of(v, "key").to_owned(),
            value: str_of(v, "value").to_owned(),
            effect: TaintEffect::parse(str_of(v, "effect"))?,
        })
    }
}

/// A pod toleration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    /// The key; empty with `Exists` tolerates every key.
    pub key: String,
    /// `Exists` (true) or `Equal` (false, the default).
    pub exists: bool,
    /// The value for `Equal`.
    pub value: String,
    /// The effect; `None` tolerates every effect.
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    pub(crate) fn parse(v: &Value) -> Self {
        Self {
            key: str_of(v, "key").to_owned(),
            exists: str_of(v, "operator") == "Exists",
            value: str_of(v, "value").to_owned(),
            effect: TaintEffect::parse(str_of(v, "effect")),
        }
    }

    /// `Toleration.ToleratesTaint`.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        if self.exists {
            return true;
        }
        // An empty key with Equal matches nothing (validation forbids it).
        !self.key.is_empty() && self.value == taint.value
    }
}

/// Whether any toleration tolerates the taint.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_selector_operators() {
        let s = LabelSelector::parse(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "NotIn", "values": ["db"]},
                {"key": "env", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"}
            ]
        }));
        assert!(s.matches(&labels(&[("app", "web"), ("env", "x")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "x"), ("tier", "db")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "x"), ("legacy", "")])));
        assert!(LabelSelector::default().matches(&Labels::new()));
    }

    #[test]
    fn node_selector_gt_lt_and_fields() {
        let ns = NodeSelector::parse(&json!({"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]},
                                  {"key": "cores", "operator": "Lt", "values": ["64"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]}
        ]}));
        assert!(ns.matches(&labels(&[("cores", "8")]), "n1"));
        assert!(!ns.matches(&labels(&[("cores", "4")]), "n1"));
        assert!(!ns.matches(&labels(&[("cores", "x")]), "n1"));
        assert!(ns.matches(&Labels::new(), "special"));
        let empty_term = NodeSelector::parse(&json!({"nodeSelectorTerms": [{}]}));
        assert!(!empty_term.matches(&Labels::new(), "n1"));
    }

    #[test]
    fn tolerations() {
        let taint = Taint {
            key: "k".into(),
            value: "v".into(),
            effect: TaintEffect::NoSchedule,
        };
        let t = |v: Value| Toleration::parse(&v).tolerates(&taint);
        assert!(t(
            json!({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"})
        ));
        assert!(t(json!({"key": "k", "value": "v"})));
        assert!(!t(json!({"key": "k", "value": "w"})));
        assert!(t(json!({"key": "k", "operator": "Exists"})));
        assert!(t(json!({"operator": "Exists"})));
        assert!(!t(
            json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})
        ));
    }
}
