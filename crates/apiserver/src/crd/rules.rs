//! CRD validation rules (`x-kubernetes-validations`, upstream's
//! `apiextensions-apiserver/pkg/apiserver/schema/cel`): CEL rules on any schema node,
//! evaluated with `self` bound to the value there (the resource root sees apiVersion,
//! kind and metadata.name/generateName) and, on updates, `oldSelf` to the value it
//! replaces. A transition rule (one that uses `oldSelf`) runs only where an old value
//! correlates (object properties, map entries, map-list items by key), unless it sets
//! `optionalOldSelf`, when `oldSelf` is an optional. A rule that fails reports its
//! `messageExpression`, `message` or `failed rule: <rule>` with its `reason` at the
//! node's path (plus `fieldPath`); values an update leaves unchanged are not held to
//! rules they already broke (ratcheting). Rules are compiled when the CRD is written.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use ferrokube_api::status::{field, StatusCause};
use ferrokube_cel::{Activation, Program, Value as Cel};
use parking_lot::Mutex;
use serde_json::{Map, Value};

fn env() -> ferrokube_cel::Env {
    ferrokube_cel::Env::with_variables(["self", "oldSelf"])
}

/// A compiled expression, or why it does not compile.
type Compiled = Result<Arc<Program>, String>;

/// A compiled expression, from a small cache (rules repeat on every write).
fn compiled(expr: &str) -> Compiled {
    static CACHE: OnceLock<Mutex<HashMap<String, Compiled>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock();
    if cache.len() > 4096 {
        cache.clear();
    }
    cache
        .entry(expr.to_string())
        .or_insert_with(|| {
            ferrokube_cel::compile(expr, &env())
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
}

fn rules(schema: &Value) -> &[Value] {
    schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

// ---- at CRD write: every rule compiles -------------------------------------------------

/// The compile errors of every rule under `schema` (at `path`, the schema's field path
/// in the CRD).
pub fn check_schema(schema: &Value, path: &str, causes: &mut Vec<StatusCause>) {
    for (i, rule) in rules(schema).iter().enumerate() {
        let p = format!("{path}.x-kubernetes-validations[{i}]");
        let text = str_of(rule, "rule");
        if text.trim().is_empty() {
            causes.push(field::required(&format!("{p}.rule"), ""));
        } else if let Err(e) = compiled(text) {
            causes.push(field::invalid(
                &format!("{p}.rule"),
                &Value::String(text.into()),
                &format!("compilation failed: {e}"),
            ));
        }
        if let Some(me) = rule.get("messageExpression").and_then(Value::as_str) {
            if !me.trim().is_empty() {
                if let Err(e) = compiled(me) {
                    causes.push(field::invalid(
                        &format!("{p}.messageExpression"),
                        &Value::String(me.into()),
                        &format!("messageExpression compilation failed: {e}"),
                    ));
                }
            }
        }
        if let Some(reason) = rule.get("reason").and_then(Value::as_str) {
            const REASONS: &[&str] = &[
                "FieldValueRequired",
                "FieldValueForbidden",
                "FieldValueInvalid",
                "FieldValueDuplicate",
            ];
            if !REASONS.contains(&reason) {
                let valid: Vec<String> = REASONS.iter().map(|r| format!("{r:?}")).collect();
                causes.push(field::not_supported(
                    &format!("{p}.reason"),
                    &Value::String(reason.into()),
                    &valid,
                ));
            }
        }
    }
    let children = |key: &str| schema.get(key).and_then(Value::as_object);
    for (k, child) in children("properties").into_iter().flatten() {
        check_schema(child, &format!("{path}.properties[{k}]"), causes);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = schema.get(key).filter(|c| c.is_object()) {
            check_schema(child, &format!("{path}.{key}"), causes);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, child) in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            check_schema(child, &format!("{path}.{key}[{i}]"), causes);
        }
    }
}

// ---- at custom-resource write: every rule holds ----------------------------------------

/// Whether any node of `schema` has rules (most schemas have none: writes skip the walk).
fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => m.contains_key("x-kubernetes-validations") || m.values().any(has_rules),
        Value::Array(items) => items.iter().any(has_rules),
        _ => false,
    }
}

/// The causes of the rules `obj` breaks (`old`: the stored object on update).
pub fn validate(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    if !has_rules(schema) {
        return causes;
    }
    // The root's self: the object with its type and only name/generateName of metadata.
    let root = |o: &Value| {
        let mut o = o.clone();
        if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| k == "name" || k == "generateName");
        }
        o
    };
    let old_root = old.map(root);
    walk(schema, &root(obj), old_root.as_ref(), "", &mut causes);
    causes
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(schema: &Value, v: &Value, old: Option<&Value>, path: &str, causes: &mut Vec<StatusCause>) {
    if v.is_null() {
        return;
    }
    // Unchanged values keep what they had (ratcheting).
    let unchanged = old == Some(v);
    if !rules(schema).is_empty() {
        evaluate(schema, v, old, path, unchanged, causes);
    }
    for child in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        walk(child, v, old, path, causes);
    }
    match v {
        Value::Object(map) => walk_object(schema, map, old, path, causes),
        Value::Array(items) => walk_array(schema, items, old, path, causes),
        _ => {}
    }
}

fn walk_object(
    schema: &Value,
    map: &Map<String, Value>,
    old: Option<&Value>,
    path: &str,
    causes: &mut Vec<StatusCause>,
) {
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (k, child) in map {
        let Some(child_schema) = props.and_then(|p| p.get(k)).or(additional) else {
            continue;
        };
        let child_path = if props.is_some_and(|p| p.contains_key(k)) {
            join(path, k)
        } else {
            format!("{path}[{k}]")
        };
        let old_child = old.and_then(|o| o.get(k));
        walk(child_schema, child, old_child, &child_path, causes);
    }
}

fn walk_array(
    schema: &Value,
    items: &[Value],
    old: Option<&Value>,
    path: &str,
    causes: &mut Vec<StatusCause>,
) {
    let Some(item_schema) = schema.get("items") else {
        return;
    };
    // Only map-list items correlate with old ones (by their keys).
    let keys: Vec<&str> = match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|k| k.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let old_items = old.and_then(Value::as_array);
    for (i, item) in items.iter().enumerate() {
        let old_item = (!keys.is_empty())
            .then(|| {
                old_items?
                    .iter()
                    .find(|o| keys.iter().all(|k| o.get(*k) == item.get(*k)))
            })
            .flatten();
        walk(item_schema, item, old_item, &format!("{path}[{i}]"), causes);
    }
}

/// Upstream's `fieldPath` appended to the node's path (`.a.b`, `['a']` → `[a]`).
fn with_field_path(path: &str, field_path: &str) -> String {
    let normalized = field_path
        .trim_start_matches('.')
        .replace("['", "[")
        .replace("']", "]");
    if normalized.is_empty() {
        path.to_string()
    } else if path.is_empty() || normalized.starts_with('[') {
        format!("{path}{normalized}")
    } else {
        format!("{path}.{normalized}")
    }
}

/// The rules at one node.
fn evaluate(
    schema: &Value,
    v: &Value,
    old: Option<&Value>,
    path: &str,
    unchanged: bool,
    causes: &mut Vec<StatusCause>,
) {
    let typ = match schema.get("type").and_then(Value::as_str) {
        Some(t) => t,
        None if v.is_object() => "object",
        None => "",
    };
    let shown = Value::String(typ.to_string());
    let this = Cel::from(v);
    let node_path = path;
    // The resource root has no path: upstream prints a nil field.Path as "<nil>".
    let path = if path.is_empty() { "<nil>" } else { path };
    let old_cel = old.map(Cel::from);
    for rule in rules(schema) {
        let text = str_of(rule, "rule").trim();
        if text.is_empty() {
            continue;
        }
        let program = match compiled(text) {
            Ok(p) => p,
            Err(e) => {
                causes.push(field::invalid(
                    path,
                    &shown,
                    &format!("rule compile error: {e}"),
                ));
                continue;
            }
        };
        let uses_old = text.contains("oldSelf");
        let optional_old = rule.get("optionalOldSelf") == Some(&Value::Bool(true));
        if uses_old && old.is_none() && !optional_old {
            continue;
        }
        if unchanged && !uses_old {
            continue;
        }
        let mut activation = Activation::new();
        activation.bind("self", this.clone());
        let old_binding = match (&old_cel, optional_old) {
            (Some(o), true) => Cel::Optional(Some(Box::new(o.clone()))),
            (None, true) => Cel::Optional(None),
            (Some(o), false) => o.clone(),
            (None, false) => Cel::Null,
        };
        activation.bind("oldSelf", old_binding);
        match program.eval(&activation) {
            Ok(Cel::Bool(true)) => {}
            Ok(Cel::Bool(false)) => {
                let detail = message(rule, &activation).unwrap_or_else(|| {
                    match str_of(rule, "message").trim() {
                        "" => format!("failed rule: {text}"),
                        m => m.to_string(),
                    }
                });
                let p = match str_of(rule, "fieldPath") {
                    "" => path.to_string(),
                    fp => with_field_path(node_path, fp),
                };
                causes.push(match str_of(rule, "reason") {
                    "FieldValueForbidden" => field::forbidden(&p, &detail),
                    "FieldValueRequired" => field::required(&p, &detail),
                    "FieldValueDuplicate" => field::duplicate(&p, &shown),
                    _ => field::invalid(&p, &shown, &detail),
                });
            }
            Ok(other) => causes.push(field::invalid(
                path,
                &shown,
                &format!(
                    "'no such overload: {} is not a bool': call arguments did not match a supported operator, function or macro signature for rule: {text}",
                    other.type_name()
                ),
            )),
            Err(e) if e.message.starts_with("no such overload") || e.message.starts_with("no matching overload") => {
                causes.push(field::invalid(
                    path,
                    &shown,
                    &format!("'{e}': call arguments did not match a supported operator, function or macro signature for rule: {text}"),
                ))
            }
            Err(e) if e.message == ferrokube_cel::COST_LIMIT_MESSAGE => {
                causes.push(field::invalid(
                    path,
                    &shown,
                    &format!("'{e}': no further validation rules will be run due to call cost exceeds limit for rule: {text}"),
                ));
                return;
            }
            Err(e) => causes.push(field::invalid(
                path,
                &shown,
                &format!("{e} evaluating rule: {text}"),
            )),
        }
    }
}

/// A failed rule's messageExpression, when it yields a usable message.
fn message(rule: &Value, activation: &Activation) -> Option<String> {
    let expr = rule.get("messageExpression").and_then(Value::as_str)?;
    let program = compiled(expr).ok()?;
    crate::cel_message::usable(&program.eval(activation).ok()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object",
        "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('w-')", "message": "names start with w-"}],
        "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.minReplicas <= self.maxReplicas", "messageExpression": "'min ' + string(self.minReplicas) + ' exceeds max ' + string(self.maxReplicas)"},
            {"rule": "self.mode == oldSelf.mode", "message": "mode is immutable", "reason": "FieldValueForbidden", "fieldPath": ".mode"}
        ],
        "properties": {
            "minReplicas": {"type": "integer"},
            "maxReplicas": {"type": "integer"},
            "mode": {"type": "string"},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "x-kubernetes-validations": [{"rule": "self.port > 0"}],
                    "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() <= 3"}]}}
        }}}})
    }

    fn msgs(causes: Vec<StatusCause>) -> Vec<String> {
        causes
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn rules_report_upstreams_causes() {
        let obj = json!({"apiVersion": "example.com/v1", "kind": "W", "metadata": {"name": "x", "uid": "u"},
            "spec": {"minReplicas": 3, "maxReplicas": 2, "mode": "a", "ports": [{"name": "http", "port": 0}], "labels": {"k": "long"}}});
        assert_eq!(
            msgs(validate(&schema(), &obj, None)),
            [
                "<nil>: Invalid value: \"object\": names start with w-",
                "spec: Invalid value: \"object\": min 3 exceeds max 2",
                "spec.labels[k]: Invalid value: \"string\": failed rule: self.size() <= 3",
                "spec.ports[0]: Invalid value: \"object\": failed rule: self.port > 0",
            ]
        );
        // Transition rules run on update only; unchanged values are not re-judged.
        let old = obj.clone();
        let mut new = obj.clone();
        new["spec"]["mode"] = json!("b");
        assert_eq!(
            msgs(validate(&schema(), &new, Some(&old))),
            [
                "<nil>: Invalid value: \"object\": names start with w-",
                "spec: Invalid value: \"object\": min 3 exceeds max 2",
                "spec.mode: Forbidden: mode is immutable",
            ]
        );
        let good = json!({"metadata": {"name": "w-1"}, "spec": {"minReplicas": 1, "maxReplicas": 2, "mode": "a",
            "ports": [{"name": "http", "port": 80}], "labels": {"k": "v"}}});
        assert!(validate(&schema(), &good, Some(&good)).is_empty());
        assert!(validate(&schema(), &good, None).is_empty());
    }

    #[test]
    fn crd_rules_are_compiled() {
        let mut s = schema();
        s["properties"]["spec"]["x-kubernetes-validations"][0]["rule"] =
            json!("self.minReplicas <=");
        s["properties"]["spec"]["x-kubernetes-validations"][1]["reason"] = json!("Nope");
        let mut causes = Vec::new();
        check_schema(&s, "spec.validation.openAPIV3Schema", &mut causes);
        let m = msgs(causes);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].starts_with("spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: \"self.minReplicas <=\": compilation failed: ERROR: <input>:1:"), "{m:?}");
        assert!(m[1].starts_with("spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[1].reason: Unsupported value: \"Nope\""), "{m:?}");
    }
}
