//! `rbac.authorization.k8s.io/v1` PolicyRule and the rule algebra upstream builds on it:
//! matching a request (`RuleAllows` in `plugin/pkg/auth/authorizer/rbac/rbac.go` and the
//! `*Matches` helpers of `pkg/apis/rbac/v1/evaluation_helpers.go`), and the coverage
//! check behind escalation prevention (`Covers`, `BreakdownRule`, `CompactRules` and
//! `CompactString` of `pkg/registry/rbac/validation`).

use serde::{Deserialize, Serialize};

use crate::Attributes;

/// `*` in verbs, apiGroups, resources and nonResourceURLs.
pub const ALL: &str = "*";

/// One rule of a Role or ClusterRole, as served (`verbs` always present, the rest
/// omitted when empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub verbs: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub api_groups: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub resources: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub resource_names: Vec<String>,
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl PolicyRule {
    /// Upstream's `rbacv1helpers.NewRule(verbs...)` builder: verbs, then `.groups()`,
    /// `.resources()`, `.names()` or `.urls()`.
    pub fn new(verbs: &[&str]) -> Self {
        PolicyRule {
            verbs: strings(verbs),
            ..PolicyRule::default()
        }
    }
    pub fn groups(mut self, groups: &[&str]) -> Self {
        self.api_groups
            .extend(groups.iter().map(|s| (*s).to_owned()));
        self
    }
    pub fn resources(mut self, resources: &[&str]) -> Self {
        self.resources
            .extend(resources.iter().map(|s| (*s).to_owned()));
        self
    }
    pub fn names(mut self, names: &[&str]) -> Self {
        self.resource_names
            .extend(names.iter().map(|s| (*s).to_owned()));
        self
    }
    pub fn urls(mut self, urls: &[&str]) -> Self {
        self.non_resource_urls
            .extend(urls.iter().map(|s| (*s).to_owned()));
        self
    }

    /// `RuleOrDie`'s normalisation: verbs, groups, resources, names and URLs sorted and
    /// de-duplicated (the form the bootstrap policy is stored in).
    pub fn normalized(mut self) -> Self {
        for v in [
            &mut self.verbs,
            &mut self.api_groups,
            &mut self.resources,
            &mut self.resource_names,
            &mut self.non_resource_urls,
        ] {
            v.sort();
            v.dedup();
        }
        self
    }

    /// This rule as JSON, as the API serves it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Upstream's `CompactString`, used in escalation error messages:
    /// `{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`.
    pub fn compact_string(&self) -> String {
        let mut parts = Vec::new();
        for (label, values) in [
            ("APIGroups", &self.api_groups),
            ("Resources", &self.resources),
            ("NonResourceURLs", &self.non_resource_urls),
            ("ResourceNames", &self.resource_names),
            ("Verbs", &self.verbs),
        ] {
            if !values.is_empty() {
                parts.push(format!("{label}:{}", go_quote_list(values)));
            }
        }
        format!("{{{}}}", parts.join(", "))
    }
}

/// Go's `strconv.Quote` (what `%q` prints for a string).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub fn go_quote_list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s.as_ref())).collect();
    format!("[{}]", quoted.join(" "))
}

fn has(set: &[String], item: &str) -> bool {
    set.iter().any(|s| s == item)
}

/// `VerbMatches`.
pub fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

/// `APIGroupMatches`.
pub fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().any(|g| g == ALL || g == group)
}

/// `ResourceMatches`: exact `resource[/subresource]`, `*`, or `*/subresource`.
pub fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        if r == ALL || r == combined {
            return true;
        }
        !subresource.is_empty()
            && r.len() == subresource.len() + 2
            && r.starts_with("*/")
            && r.ends_with(subresource)
    })
}

/// `ResourceNameMatches`: no names in the rule means every name.
pub fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    rule.resource_names.is_empty() || has(&rule.resource_names, name)
}

/// `NonResourceURLMatches`: `*`, exact, or a `prefix*` wildcard.
pub fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls
        .iter()
        .any(|u| u == ALL || u == path || url_prefix_covers(u, path))
}

fn url_prefix_covers(owner: &str, path: &str) -> bool {
    owner.ends_with('*') && path.starts_with(owner.trim_end_matches('*'))
}

/// Upstream's `RuleAllows`.
pub fn rule_allows(a: &Attributes, rule: &PolicyRule) -> bool {
    if a.resource_request {
        if !verb_matches(rule, &a.verb) || !api_group_matches(rule, &a.api_group) {
            return false;
        }
        let matched = if a.subresource.is_empty() {
            resource_matches(rule, &a.resource, "")
        } else {
            let combined = format!("{}/{}", a.resource, a.subresource);
            resource_matches(rule, &combined, &a.subresource)
        };
        matched && resource_name_matches(rule, &a.name)
    } else {
        verb_matches(rule, &a.verb) && non_resource_url_matches(rule, &a.path)
    }
}

/// Upstream's `RulesAllow`: any of the rules allows the request.
pub fn rules_allow(a: &Attributes, rules: &[PolicyRule]) -> bool {
    rules.iter().any(|r| rule_allows(a, r))
}

/// `BreakdownRule`: one rule per (group, resource, verb[, name]) and per (URL, verb).
pub fn breakdown_rule(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    api_groups: vec![group.clone()],
                    resources: vec![resource.clone()],
                    verbs: vec![verb.clone()],
                    ..PolicyRule::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    for name in &rule.resource_names {
                        out.push(PolicyRule {
                            resource_names: vec![name.clone()],
                            ..base.clone()
                        });
                    }
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                non_resource_urls: vec![url.clone()],
                verbs: vec![verb.clone()],
                ..PolicyRule::default()
            });
        }
    }
    out
}

fn has_all(set: &[String], items: &[String]) -> bool {
    items.iter().all(|i| has(set, i))
}

fn resource_covers_all(set: &[String], covers: &[String]) -> bool {
    if has(set, ALL) || has_all(set, covers) {
        return true;
    }
    covers.iter().all(|path| {
        if has(set, path) {
            return true;
        }
        match path.split_once('/') {
            Some((_, sub)) => has(set, &format!("*/{sub}")),
            None => false,
        }
    })
}

fn non_resource_urls_cover_all(set: &[String], covers: &[String]) -> bool {
    covers
        .iter()
        .all(|path| set.iter().any(|o| o == path || url_prefix_covers(o, path)))
}

/// `ruleCovers`: does `owner` cover the broken-down `sub` rule?
pub fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, ALL) || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, ALL) || has_all(&owner.api_groups, &sub.api_groups);
    let resources = resource_covers_all(&owner.resources, &sub.resources);
    let urls = non_resource_urls_cover_all(&owner.non_resource_urls, &sub.non_resource_urls);
    let names = if sub.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty() || has_all(&owner.resource_names, &sub.resource_names)
    };
    verbs && groups && resources && names && urls
}

/// Upstream's `Covers`: whether `owner` rules cover every `servant` rule, and the
/// broken-down rules that are not covered.
pub fn covers(owner: &[PolicyRule], servant: &[PolicyRule]) -> (bool, Vec<PolicyRule>) {
    let uncovered: Vec<PolicyRule> = servant
        .iter()
        .flat_map(breakdown_rule)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect();
    (uncovered.is_empty(), uncovered)
}

/// Upstream's `CompactRules`: rules naming one group and one resource (and at most one
/// name) that differ only by verb are merged.
pub fn compact_rules(rules: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut compacted = Vec::new();
    let mut simple: Vec<PolicyRule> = Vec::new();
    for rule in rules {
        let is_simple = rule.resource_names.len() <= 1
            && rule.non_resource_urls.is_empty()
            && rule.api_groups.len() == 1
            && rule.resources.len() == 1;
        if !is_simple {
            compacted.push(rule.clone());
            continue;
        }
        let existing = simple.iter_mut().find(|s| {
            s.api_groups == rule.api_groups
                && s.resources == rule.resources
                && s.resource_names == rule.resource_names
        });
        match existing {
            Some(existing) => {
                for verb in &rule.verbs {
                    if !has(&existing.verbs, verb) {
                        existing.verbs.push(verb.clone());
                    }
                }
            }
            None => simple.push(rule.clone()),
        }
    }
    compacted.extend(simple);
    compacted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UserInfo;

    fn res(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes::resource(UserInfo::default(), verb, group, resource, "ns", name)
            .with_subresource(sub)
    }

    #[test]
    fn resource_matching_follows_upstream() {
        let r = PolicyRule::new(&["get"]).groups(&[""]).resources(&["pods"]);
        assert!(rule_allows(&res("get", "", "pods", "", ""), &r));
        assert!(!rule_allows(&res("list", "", "pods", "", ""), &r));
        assert!(!rule_allows(&res("get", "apps", "pods", "", ""), &r));
        assert!(!rule_allows(&res("get", "", "pods", "log", ""), &r));

        let star_sub = PolicyRule::new(&["get"])
            .groups(&["*"])
            .resources(&["*/scale"]);
        assert!(rule_allows(
            &res("get", "apps", "deployments", "scale", ""),
            &star_sub
        ));
        assert!(!rule_allows(
            &res("get", "apps", "deployments", "", ""),
            &star_sub
        ));
        assert!(!rule_allows(
            &res("get", "apps", "deployments", "xscale", ""),
            &star_sub
        ));

        let named = PolicyRule::new(&["update"])
            .groups(&["coordination.k8s.io"])
            .resources(&["leases"])
            .names(&["kube-scheduler"]);
        assert!(rule_allows(
            &res(
                "update",
                "coordination.k8s.io",
                "leases",
                "",
                "kube-scheduler"
            ),
            &named
        ));
        assert!(!rule_allows(
            &res("update", "coordination.k8s.io", "leases", "", "other"),
            &named
        ));
        // a list has no name, so a named rule does not allow it
        assert!(!rule_allows(
            &res("update", "coordination.k8s.io", "leases", "", ""),
            &named
        ));

        let all = PolicyRule::new(&["*"]).groups(&["*"]).resources(&["*"]);
        assert!(rule_allows(&res("escalate", "x.io", "y", "z", "n"), &all));
    }

    #[test]
    fn non_resource_matching_follows_upstream() {
        let r = PolicyRule::new(&["get"]).urls(&["/healthz", "/apis/*", "/logs**"]);
        let a = |p: &str| Attributes::non_resource(UserInfo::default(), "get", p);
        assert!(rule_allows(&a("/healthz"), &r));
        assert!(!rule_allows(&a("/healthz/etcd"), &r));
        assert!(rule_allows(&a("/apis/apps/v1"), &r));
        assert!(rule_allows(&a("/apis/"), &r));
        assert!(!rule_allows(&a("/apis"), &r));
        assert!(rule_allows(&a("/logs/x"), &r));
        // a resource rule never matches a non-resource request and vice versa
        let res_rule = PolicyRule::new(&["*"]).groups(&["*"]).resources(&["*"]);
        assert!(!rule_allows(&a("/healthz"), &res_rule));
        assert!(!rule_allows(&res("get", "", "pods", "", ""), &r));
    }

    #[test]
    fn covers_and_compaction() {
        let owner = vec![
            PolicyRule::new(&["get", "list"])
                .groups(&[""])
                .resources(&["pods", "*/status"]),
            PolicyRule::new(&["get"]).urls(&["/api/*"]),
        ];
        let servant = vec![
            PolicyRule::new(&["get"])
                .groups(&[""])
                .resources(&["pods", "services/status"]),
            PolicyRule::new(&["get"]).urls(&["/api/v1"]),
        ];
        assert_eq!(covers(&owner, &servant), (true, vec![]));

        let servant = vec![PolicyRule::new(&["get", "delete", "update"])
            .groups(&[""])
            .resources(&["pods", "secrets"])];
        let (ok, missing) = covers(&owner, &servant);
        assert!(!ok);
        assert_eq!(missing.len(), 5);
        let compact: Vec<String> = compact_rules(&missing)
            .iter()
            .map(PolicyRule::compact_string)
            .collect();
        assert_eq!(
            compact,
            vec![
                r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete" "update"]}"#,
                r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get" "delete" "update"]}"#,
            ]
        );

        // resource names: an unnamed owner rule covers named requests, not the reverse
        let named = vec![PolicyRule::new(&["get"])
            .groups(&[""])
            .resources(&["configmaps"])
            .names(&["a"])];
        let unnamed = vec![PolicyRule::new(&["get"])
            .groups(&[""])
            .resources(&["configmaps"])];
        assert!(covers(&unnamed, &named).0);
        assert!(!covers(&named, &unnamed).0);
    }

    #[test]
    fn json_round_trip_uses_upstream_field_names() {
        let v = serde_json::json!({"verbs":["get"],"nonResourceURLs":["/x"],"apiGroups":null});
        let r: PolicyRule = serde_json::from_value(v).unwrap_or_default();
        assert_eq!(r.non_resource_urls, vec!["/x"]);
        assert_eq!(
            r.to_json(),
            serde_json::json!({"verbs":["get"],"nonResourceURLs":["/x"]})
        );
        assert_eq!(go_quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
    }
}
