//! Label selectors (`labels.Parse`: `=`, `==`, `!=`, `in`, `notin`, exists, `!key`,
//! `>`, `<`) and field selectors (`fields.ParseSelector`: `=`, `==`, `!=`, with `\`
//! escapes), plus the fields each kind supports, as upstream's registries declare them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::validation::{label_value, qualified_name};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    GreaterThan(i64),
    LessThan(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

fn split_top_level(s: &str) -> Vec<&str> {
    // Commas inside parentheses belong to an `in (...)` list.
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_values(list: &str) -> Result<Vec<String>, String> {
    let inner = list
        .trim()
        .strip_prefix('(')
        .and_then(|l| l.strip_suffix(')'))
        .ok_or_else(|| format!("found '{}', expected: '('", list.trim()))?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    for v in &values {
        if let Some(e) = label_value(v).first() {
            return Err(format!("invalid label value: \"{v}\": at key: {e}"));
        }
    }
    Ok(values)
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector::default());
        }
        for raw in split_top_level(s) {
            let part = raw.trim();
            if part.is_empty() {
                return Err(format!(
                    "unable to parse requirement: found '', expected: identifier in {s:?}"
                ));
            }
            let req = Self::parse_requirement(part)
                .map_err(|e| format!("unable to parse requirement: {e}"))?;
            requirements.push(req);
        }
        Ok(LabelSelector { requirements })
    }

    fn parse_requirement(part: &str) -> Result<Requirement, String> {
        let check_key = |k: &str| -> Result<String, String> {
            match qualified_name(k).first() {
                Some(e) => Err(format!("invalid label key \"{k}\": {e}")),
                None => Ok(k.to_string()),
            }
        };
        let check_value = |v: &str| -> Result<String, String> {
            match label_value(v).first() {
                Some(e) => Err(format!("invalid label value: \"{v}\": at key: {e}")),
                None => Ok(v.to_string()),
            }
        };
        if let Some(k) = part.strip_prefix('!') {
            return Ok(Requirement {
                key: check_key(k.trim())?,
                op: Op::DoesNotExist,
            });
        }
        for token in ["!=", "==", "=", ">", "<"] {
            if let Some((k, v)) = part.split_once(token) {
                let key = check_key(k.trim())?;
                let v = v.trim();
                let number = || -> Result<i64, String> {
                    v.parse().map_err(|_| {
                        format!("for 'Gt', 'Lt' operators, the value must be an integer: {v:?}")
                    })
                };
                let op = match token {
                    "!=" => Op::NotEquals(check_value(v)?),
                    ">" => Op::GreaterThan(number()?),
                    "<" => Op::LessThan(number()?),
                    _ => Op::Equals(check_value(v)?),
                };
                return Ok(Requirement { key, op });
            }
        }
        let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
        match words.as_slice() {
            [k] => Ok(Requirement {
                key: check_key(k)?,
                op: Op::Exists,
            }),
            [k, rest] => {
                let rest = rest.trim_start();
                if let Some(list) = rest.strip_prefix("notin") {
                    Ok(Requirement {
                        key: check_key(k)?,
                        op: Op::NotIn(parse_values(list)?),
                    })
                } else if let Some(list) = rest.strip_prefix("in") {
                    Ok(Requirement {
                        key: check_key(k)?,
                        op: Op::In(parse_values(list)?),
                    })
                } else {
                    Err(format!(
                        "found '{rest}', expected: in, notin, =, ==, !=, gt, lt"
                    ))
                }
            }
            _ => Err(format!("found '{part}', expected: identifier")),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| {
            let v = labels.get(&r.key);
            match &r.op {
                Op::Equals(x) => v == Some(x),
                Op::NotEquals(x) => v != Some(x),
                Op::In(xs) => v.is_some_and(|v| xs.contains(v)),
                Op::NotIn(xs) => v.is_none_or(|v| !xs.contains(v)),
                Op::Exists => v.is_some(),
                Op::DoesNotExist => v.is_none(),
                Op::GreaterThan(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v > *n),
                Op::LessThan(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v < *n),
            }
        })
    }

    /// Matches the `metadata.labels` of a JSON object.
    pub fn matches_object(&self, obj: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        self.matches(&crate::meta::labels(obj))
    }
}

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
    pub negate: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

/// Splits on unescaped `sep`, keeping escapes for the next step.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            if let Some(l) = out.last_mut() {
                l.push('\\');
                l.push(c);
            }
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(String::new());
        } else if let Some(l) = out.last_mut() {
            l.push(c);
        }
    }
    out
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('\\' | ',' | '=' | '!')) => out.push(e),
                Some(e) => return Err(format!("invalid escape sequence: \\{e}")),
                None => return Err("unterminated escape sequence".into()),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector::default());
        }
        for term in split_unescaped(s, ',') {
            let (field, value, negate) = if let Some(i) = find_unescaped(&term, "!=") {
                (&term[..i], &term[i + 2..], true)
            } else if let Some(i) = find_unescaped(&term, "==") {
                (&term[..i], &term[i + 2..], false)
            } else if let Some(i) = find_unescaped(&term, "=") {
                (&term[..i], &term[i + 1..], false)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                ));
            };
            requirements.push(FieldRequirement {
                field: unescape(field.trim())?,
                value: unescape(value)?,
                negate,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Checks that every field is supported for `resource`; upstream's message otherwise.
    pub fn check_supported(&self, group: &str, resource: &str) -> Result<(), String> {
        for r in &self.requirements {
            if field_path(group, resource, &r.field).is_none() {
                return Err(format!("field label not supported: {}", r.field));
            }
        }
        Ok(())
    }

    pub fn matches_object(&self, group: &str, resource: &str, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let actual = field_value(group, resource, &r.field, obj).unwrap_or_default();
            (actual == r.value) != r.negate
        })
    }
}

fn find_unescaped(s: &str, pat: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len()).find(|&i| s[i..].starts_with(pat) && (i == 0 || b[i - 1] != b'\\'))
}

/// The JSON path behind a selectable field of a resource (upstream's per-kind
/// `GetAttrs`/`SelectableFields`); `metadata.name` and `metadata.namespace` everywhere.
pub fn field_path(group: &str, resource: &str, field: &str) -> Option<&'static [&'static str]> {
    const COMMON: &[(&str, &[&str])] = &[
        ("metadata.name", &["metadata", "name"]),
        ("metadata.namespace", &["metadata", "namespace"]),
    ];
    let specific: &[(&str, &[&str])] = match (group, resource) {
        ("", "pods") => &[
            ("spec.nodeName", &["spec", "nodeName"]),
            ("spec.restartPolicy", &["spec", "restartPolicy"]),
            ("spec.schedulerName", &["spec", "schedulerName"]),
            ("spec.serviceAccountName", &["spec", "serviceAccountName"]),
            ("spec.hostNetwork", &["spec", "hostNetwork"]),
            ("status.phase", &["status", "phase"]),
            ("status.podIP", &["status", "podIP"]),
            ("status.nominatedNodeName", &["status", "nominatedNodeName"]),
        ],
        ("", "events") => &[
            ("involvedObject.kind", &["involvedObject", "kind"]),
            ("involvedObject.namespace", &["involvedObject", "namespace"]),
            ("involvedObject.name", &["involvedObject", "name"]),
            ("involvedObject.uid", &["involvedObject", "uid"]),
            (
                "involvedObject.apiVersion",
                &["involvedObject", "apiVersion"],
            ),
            (
                "involvedObject.resourceVersion",
                &["involvedObject", "resourceVersion"],
            ),
            ("involvedObject.fieldPath", &["involvedObject", "fieldPath"]),
            ("reason", &["reason"]),
            ("reportingComponent", &["reportingComponent"]),
            ("source", &["source", "component"]),
            ("type", &["type"]),
        ],
        ("", "secrets") => &[("type", &["type"])],
        ("", "namespaces") => &[("status.phase", &["status", "phase"])],
        ("", "nodes") => &[("spec.unschedulable", &["spec", "unschedulable"])],
        ("", "replicationcontrollers") | ("apps", "replicasets") => {
            &[("status.replicas", &["status", "replicas"])]
        }
        ("", "services") => &[
            ("spec.clusterIP", &["spec", "clusterIP"]),
            ("spec.type", &["spec", "type"]),
        ],
        ("batch", "jobs") => &[("status.successful", &["status", "successful"])],
        ("certificates.k8s.io", "certificatesigningrequests") => {
            &[("spec.signerName", &["spec", "signerName"])]
        }
        _ => &[],
    };
    COMMON
        .iter()
        .chain(specific)
        .find(|(f, _)| *f == field)
        .map(|(_, p)| *p)
}

/// The value of a selectable field as upstream renders it (booleans and numbers as text,
/// absent as empty; `spec.hostNetwork` and `spec.unschedulable` default to false).
pub fn field_value(group: &str, resource: &str, field: &str, obj: &Value) -> Option<String> {
    let path = field_path(group, resource, field)?;
    let v = path.iter().try_fold(obj, |v, k| v.get(k));
    Some(match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        None if field == "spec.hostNetwork" || field == "spec.unschedulable" => "false".into(),
        None if field == "status.replicas" || field == "status.successful" => "0".into(),
        _ => String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn l(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selectors() {
        let s =
            LabelSelector::parse("app=web, tier in (front,back),!canary,env!=prod,ver>2").unwrap();
        assert_eq!(s.requirements.len(), 5);
        assert!(s.matches(&l(&[("app", "web"), ("tier", "front"), ("ver", "3")])));
        assert!(!s.matches(&l(&[
            ("app", "web"),
            ("tier", "front"),
            ("ver", "3"),
            ("canary", "")
        ])));
        assert!(!s.matches(&l(&[("app", "web"), ("tier", "mid"), ("ver", "3")])));
        let s = LabelSelector::parse("app,x notin (a, b)").unwrap();
        assert!(s.matches(&l(&[("app", "")])));
        assert!(!s.matches(&l(&[("app", ""), ("x", "a")])));
        assert!(LabelSelector::parse("app==a")
            .unwrap()
            .matches(&l(&[("app", "a")])));
        for bad in ["a b", "a in b", "=x", "a=b c", "a,,b", "a in (x", "-a=b"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let s = FieldSelector::parse("spec.nodeName=n1,status.phase!=Pending").unwrap();
        assert!(s.check_supported("", "pods").is_ok());
        assert!(s.matches_object("", "pods", &pod));
        assert!(FieldSelector::parse("spec.hostNetwork=false")
            .unwrap()
            .matches_object("", "pods", &pod));
        let s = FieldSelector::parse("spec.nodeName=").unwrap();
        assert!(!s.matches_object("", "pods", &pod));
        let err = FieldSelector::parse("spec.foo=x")
            .unwrap()
            .check_supported("", "configmaps")
            .unwrap_err();
        assert_eq!(err, "field label not supported: spec.foo");
        let s = FieldSelector::parse(r"metadata.name=a\,b").unwrap();
        assert_eq!(s.requirements[0].value, "a,b");
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
