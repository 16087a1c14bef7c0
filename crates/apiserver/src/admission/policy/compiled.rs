//! ValidatingAdmissionPolicies and bindings as the dispatcher uses them: parsed once when
//! stored, every CEL expression compiled then (a stored expression that no longer
//! compiles fails at evaluation under the policy's failurePolicy), and the match
//! resources turned into rules the webhook predicates share.

use std::sync::Arc;

use ferrokube_cel::Program;
use serde_json::Value;

use crate::admission::webhook::config::{parse_rules, selector, Rule};
use crate::admission::webhook::rules::{self, Request};

/// A compiled expression, or why it does not compile.
pub type Compiled = Result<Arc<Program>, String>;

fn compile(expr: &str, env: &ferrokube_cel::Env) -> Compiled {
    ferrokube_cel::compile(expr, env)
        .map(Arc::new)
        .map_err(|e| format!("compilation failed: {e}"))
}

/// One rule of resourceRules/excludeResourceRules.
#[derive(Debug, Clone)]
pub struct NamedRule {
    pub rule: Rule,
    /// Empty: every name.
    pub names: Vec<String>,
}

/// `matchConstraints` of a policy, or `matchResources` of a binding.
#[derive(Debug, Clone, Default)]
pub struct MatchResources {
    pub rules: Vec<NamedRule>,
    pub exclude: Vec<NamedRule>,
    pub namespace_selector: Option<Value>,
    pub object_selector: Option<Value>,
    /// matchPolicy Exact.
    pub exact: bool,
}

fn named_rules(v: &Value, key: &str) -> Vec<NamedRule> {
    let names = |r: &Value| ferrokube_api::meta::string_list(r.get("resourceNames"));
    let rules = parse_rules(v, key);
    let raw = v.get(key).and_then(Value::as_array);
    rules
        .into_iter()
        .enumerate()
        .map(|(i, rule)| NamedRule {
            rule,
            names: raw.and_then(|r| r.get(i)).map(names).unwrap_or_default(),
        })
        .collect()
}

impl MatchResources {
    pub fn parse(v: &Value) -> MatchResources {
        MatchResources {
            rules: named_rules(v, "resourceRules"),
            exclude: named_rules(v, "excludeResourceRules"),
            namespace_selector: selector(v, "namespaceSelector"),
            object_selector: selector(v, "objectSelector"),
            exact: v.get("matchPolicy").and_then(Value::as_str) == Some("Exact"),
        }
    }

    fn rule_matches(&self, rules: &[NamedRule], r: &Request<'_>, name: &str) -> bool {
        let hit = |exact: bool| {
            rules.iter().any(|n| {
                n.rule.matches(r, exact)
                    && (n.names.is_empty() || n.names.iter().any(|x| x == name))
            })
        };
        hit(true) || (!self.exact && hit(false))
    }

    /// Whether the request is selected by the rules (before the selectors); with no
    /// resourceRules (a binding's) every request is.
    pub fn selects(&self, r: &Request<'_>, name: &str) -> bool {
        if self.rule_matches(&self.exclude, r, name) {
            return false;
        }
        self.rules.is_empty() || self.rule_matches(&self.rules, r, name)
    }

    /// The namespace selector against the namespace (None: a cluster-scoped request,
    /// which always matches).
    pub fn namespace_matches(&self, namespace: Option<&Value>) -> bool {
        rules::namespace_selected(self.namespace_selector.as_ref(), namespace)
    }

    /// The object selector against the new or the old object.
    pub fn object_matches(&self, obj: Option<&Value>, old: Option<&Value>) -> bool {
        rules::object_selected(self.object_selector.as_ref(), obj, old)
    }
}

/// One of a policy's validations.
#[derive(Debug)]
pub struct Validation {
    pub expression: String,
    pub program: Compiled,
    pub message: String,
    pub message_expression: Option<Compiled>,
    /// The Status reason of a denial (Invalid by default).
    pub reason: String,
}

/// A named expression: a matchCondition, a variable or an audit annotation.
#[derive(Debug)]
pub struct Named {
    pub name: String,
    pub expression: String,
    pub program: Compiled,
}

/// A stored ValidatingAdmissionPolicy.
#[derive(Debug)]
pub struct Policy {
    pub name: String,
    /// `paramKind` as (apiVersion, kind).
    pub param_kind: Option<(String, String)>,
    pub constraints: MatchResources,
    pub conditions: Vec<Named>,
    pub variables: Vec<Named>,
    pub validations: Vec<Validation>,
    pub audit_annotations: Vec<Named>,
    /// failurePolicy Ignore.
    pub ignore_failures: bool,
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The named expressions of `spec[list]`, compiled in `env`.
pub fn named(
    spec: &Value,
    list: &str,
    name_key: &str,
    expr_key: &str,
    env: &ferrokube_cel::Env,
) -> Vec<Named> {
    spec.get(list)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|v| {
                    let expression = str_of(v, expr_key).trim().to_string();
                    Named {
                        name: str_of(v, name_key).to_string(),
                        program: compile(&expression, env),
                        expression,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Policy {
    pub fn parse(obj: &Value) -> Policy {
        let null = Value::Null;
        let spec = obj.get("spec").unwrap_or(&null);
        let param_kind = spec.get("paramKind").filter(|p| p.is_object()).map(|p| {
            (
                str_of(p, "apiVersion").to_string(),
                str_of(p, "kind").to_string(),
            )
        });
        let env = ferrokube_api::kinds::cel_env(param_kind.is_some(), true);
        let message_env = ferrokube_api::kinds::cel_env(param_kind.is_some(), false);
        let validations = spec
            .get("validations")
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .map(|v| {
                        let expression = str_of(v, "expression").trim().to_string();
                        Validation {
                            program: compile(&expression, &env),
                            expression,
                            message: str_of(v, "message").trim().to_string(),
                            message_expression: v
                                .get("messageExpression")
                                .and_then(Value::as_str)
                                .filter(|m| !m.trim().is_empty())
                                .map(|m| compile(m, &message_env)),
                            reason: match str_of(v, "reason") {
                                "" => "Invalid".to_string(),
                                r => r.to_string(),
                            },
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Policy {
            name: ferrokube_api::meta::name(obj).unwrap_or("").to_string(),
            constraints: spec
                .get("matchConstraints")
                .map(MatchResources::parse)
                .unwrap_or_default(),
            conditions: named(spec, "matchConditions", "name", "expression", &env),
            variables: named(spec, "variables", "name", "expression", &env),
            validations,
            audit_annotations: named(spec, "auditAnnotations", "key", "valueExpression", &env),
            ignore_failures: str_of(spec, "failurePolicy") == "Ignore",
            param_kind,
        }
    }
}

/// `paramRef` of a binding.
#[derive(Debug, Clone)]
pub struct ParamRef {
    pub name: String,
    pub namespace: String,
    pub selector: Option<Value>,
    /// parameterNotFoundAction Deny.
    pub deny_when_missing: bool,
}

/// A stored ValidatingAdmissionPolicyBinding.
#[derive(Debug)]
pub struct Binding {
    pub name: String,
    pub policy: String,
    pub param_ref: Option<ParamRef>,
    /// None: whatever the policy matches.
    pub resources: Option<MatchResources>,
    pub deny: bool,
    pub warn: bool,
    pub audit: bool,
    /// validationActions as given (for the audit annotation).
    pub actions: Vec<String>,
}

impl Binding {
    pub fn parse(obj: &Value) -> Binding {
        let null = Value::Null;
        let spec = obj.get("spec").unwrap_or(&null);
        let actions = ferrokube_api::meta::string_list(spec.get("validationActions"));
        let has = |a: &str| actions.iter().any(|x| x == a);
        Binding {
            name: ferrokube_api::meta::name(obj).unwrap_or("").to_string(),
            policy: str_of(spec, "policyName").to_string(),
            param_ref: spec
                .get("paramRef")
                .filter(|p| p.is_object())
                .map(|p| ParamRef {
                    name: str_of(p, "name").to_string(),
                    namespace: str_of(p, "namespace").to_string(),
                    selector: p.get("selector").filter(|s| s.is_object()).cloned(),
                    deny_when_missing: str_of(p, "parameterNotFoundAction") == "Deny",
                }),
            resources: spec
                .get("matchResources")
                .filter(|m| m.is_object())
                .map(MatchResources::parse),
            deny: has("Deny"),
            warn: has("Warn"),
            audit: has("Audit"),
            actions,
        }
    }
}
