//! A custom resource against its CRD's structural schema, in upstream's order: pruning of
//! fields the schema does not specify (`x-kubernetes-preserve-unknown-fields` keeps them;
//! reported as unknown fields by `fieldValidation`), non-nullable nulls dropped, defaults
//! applied (`structuraldefaulting`), then OpenAPI value validation (types, int-or-string,
//! enum, bounds, lengths, patterns, list/map sizes, list-type uniqueness, required,
//! allOf/anyOf/oneOf/not) reported as 422 field causes with kube-openapi's wording.
//! CEL rules (`x-kubernetes-validations`) are evaluated after, in [`super::rules`].

use std::collections::HashMap;
use std::sync::OnceLock;

use ferrokube_api::status::{field, StatusCause};
use parking_lot::Mutex;
use serde_json::{Map, Value};

/// ObjectMeta's fields: what survives pruning of `metadata` (upstream decodes it typed).
const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key) == Some(&Value::Bool(true))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Removes what the schema does not specify; returns the paths removed.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    if let Some(map) = obj.as_object_mut() {
        prune_object(schema, map, "", true, &mut unknown);
    }
    unknown
}

fn prune_meta(map: &mut Map<String, Value>, path: &str, unknown: &mut Vec<String>) {
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        let extra: Vec<String> = meta
            .keys()
            .filter(|k| !OBJECT_META.contains(&k.as_str()))
            .cloned()
            .collect();
        for k in extra {
            meta.remove(&k);
            unknown.push(join(&join(path, "metadata"), &k));
        }
    }
}

fn prune_object(
    schema: &Value,
    map: &mut Map<String, Value>,
    path: &str,
    embedded: bool,
    unknown: &mut Vec<String>,
) {
    if embedded {
        prune_meta(map, path, unknown);
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        let is_meta = embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata");
        let child = props
            .and_then(|p| p.get(&k))
            .or_else(|| additional.filter(|a| a.is_object()));
        match child {
            Some(child) if !is_meta || props.is_some_and(|p| p.contains_key(&k)) => {
                if k == "metadata" && embedded {
                    continue;
                }
                if let Some(v) = map.get_mut(&k) {
                    prune_value(child, v, &join(path, &k), unknown);
                }
            }
            _ if is_meta => {}
            None if preserve || additional == Some(&Value::Bool(true)) => {}
            _ => {
                map.remove(&k);
                unknown.push(join(path, &k));
            }
        }
    }
}

fn prune_value(schema: &Value, v: &mut Value, path: &str, unknown: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            let embedded = flag(schema, "x-kubernetes-embedded-resource");
            prune_object(schema, map, path, embedded, unknown);
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_value(item_schema, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Drops non-nullable nulls and applies `default`s, recursively.
pub fn default(schema: &Value, obj: &mut Value) {
    match obj {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, prop) in props {
                    let nullable = flag(prop, "nullable");
                    match map.get(k) {
                        Some(Value::Null) if !nullable => {
                            map.remove(k);
                        }
                        _ => {}
                    }
                    if !map.contains_key(k) {
                        if let Some(d) = prop.get("default") {
                            map.insert(k.clone(), d.clone());
                        }
                    }
                    if let Some(v) = map.get_mut(k) {
                        default(prop, v);
                    }
                }
            } else if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for v in map.values_mut() {
                    default(add, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    default(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// Value validation; the causes upstream would report (empty: valid).
pub fn validate(schema: &Value, obj: &Value) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    if let Value::Object(map) = obj {
        // The root's apiVersion/kind/metadata are checked elsewhere.
        let mut root = map.clone();
        for k in ["apiVersion", "kind", "metadata"] {
            root.remove(k);
        }
        let mut schema = schema.clone();
        if let Some(req) = schema.get_mut("required").and_then(Value::as_array_mut) {
            req.retain(|r| !matches!(r.as_str(), Some("apiVersion" | "kind" | "metadata")));
        }
        check(&schema, &Value::Object(root), "", &mut causes);
    }
    causes
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn in_body(path: &str) -> String {
    if path.is_empty() {
        "body".to_string()
    } else {
        format!("{path} in body")
    }
}

fn type_ok(schema: &Value, v: &Value) -> bool {
    if flag(schema, "x-kubernetes-int-or-string") {
        return matches!(type_name(v), "integer" | "string");
    }
    let Some(t) = schema.get("type").and_then(Value::as_str) else {
        return true;
    };
    match (t, v) {
        ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        (t, v) => t == type_name(v),
    }
}

fn regex(pattern: &str) -> Option<regex::Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock();
    if cache.len() > 1024 {
        cache.clear();
    }
    cache
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok())
        .clone()
}

fn num(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

fn show_num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

fn check(schema: &Value, v: &Value, path: &str, causes: &mut Vec<StatusCause>) {
    if v.is_null() {
        if !flag(schema, "nullable") && schema.get("type").is_some() {
            causes.push(field::type_invalid(
                path,
                v,
                &format!(
                    "{} must be of type {}: \"null\"",
                    in_body(path),
                    schema["type"].as_str().unwrap_or("object")
                ),
            ));
        }
        return;
    }
    if !type_ok(schema, v) {
        let want = if flag(schema, "x-kubernetes-int-or-string") {
            "integer,string"
        } else {
            schema.get("type").and_then(Value::as_str).unwrap_or("")
        };
        causes.push(field::type_invalid(
            path,
            v,
            &format!(
                "{} must be of type {want}: {:?}",
                in_body(path),
                type_name(v)
            ),
        ));
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(v) {
            let valid: Vec<String> = options
                .iter()
                .map(|o| match o {
                    Value::String(s) => format!("{s:?}"),
                    other => other.to_string(),
                })
                .collect();
            causes.push(field::not_supported(path, v, &valid));
        }
    }
    let before = causes.len();
    match v {
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or(0.0), v, path, causes),
        Value::String(s) => check_string(schema, s, v, path, causes),
        Value::Array(items) => check_array(schema, items, v, path, causes),
        Value::Object(map) => check_object(schema, map, v, path, causes),
        _ => {}
    }
    if causes.len() > before {
        return;
    }
    check_combinators(schema, v, path, causes);
}

fn check_number(schema: &Value, f: f64, v: &Value, path: &str, causes: &mut Vec<StatusCause>) {
    if let Some(max) = num(schema, "maximum") {
        let exclusive = flag(schema, "exclusiveMaximum");
        if f > max || (exclusive && f == max) {
            let how = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            causes.push(field::invalid(
                path,
                v,
                &format!("{} should be {how} {}", in_body(path), show_num(max)),
            ));
        }
    }
    if let Some(min) = num(schema, "minimum") {
        let exclusive = flag(schema, "exclusiveMinimum");
        if f < min || (exclusive && f == min) {
            let how = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            causes.push(field::invalid(
                path,
                v,
                &format!("{} should be {how} {}", in_body(path), show_num(min)),
            ));
        }
    }
    if let Some(m) = num(schema, "multipleOf").filter(|m| *m > 0.0) {
        if (f / m).fract() != 0.0 {
            causes.push(field::invalid(
                path,
                v,
                &format!("{} should be a multiple of {}", in_body(path), show_num(m)),
            ));
        }
    }
}

fn check_string(schema: &Value, s: &str, v: &Value, path: &str, causes: &mut Vec<StatusCause>) {
    let chars = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        if chars > max {
            causes.push(field::too_long(path, max));
        }
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
        if chars < min {
            causes.push(field::invalid(
                path,
                v,
                &format!("{} should be at least {min} chars long", in_body(path)),
            ));
        }
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
        if regex(p).is_some_and(|re| !re.is_match(s)) {
            causes.push(field::invalid(
                path,
                v,
                &format!("{} should match '{p}'", in_body(path)),
            ));
        }
    }
}

fn check_array(
    schema: &Value,
    items: &[Value],
    v: &Value,
    path: &str,
    causes: &mut Vec<StatusCause>,
) {
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
        if items.len() as u64 > max {
            causes.push(field::too_many(path, items.len(), max));
        }
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
        if (items.len() as u64) < min {
            causes.push(field::invalid(
                path,
                v,
                &format!("{} should have at least {min} items", in_body(path)),
            ));
        }
    }
    let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
    if flag(schema, "uniqueItems") || list_type == Some("set") {
        for (i, item) in items.iter().enumerate() {
            if items[..i].contains(item) {
                causes.push(field::duplicate(&format!("{path}[{i}]"), item));
            }
        }
    }
    if list_type == Some("map") {
        let keys: Vec<&str> = schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|k| k.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let key_of = |item: &Value| -> Vec<Value> {
            keys.iter()
                .map(|k| item.get(*k).cloned().unwrap_or(Value::Null))
                .collect()
        };
        for (i, item) in items.iter().enumerate() {
            let key = key_of(item);
            if items[..i].iter().any(|other| key_of(other) == key) {
                let shown: Map<String, Value> = keys
                    .iter()
                    .zip(key)
                    .map(|(k, v)| ((*k).to_string(), v))
                    .collect();
                causes.push(field::duplicate(
                    &format!("{path}[{i}]"),
                    &Value::Object(shown),
                ));
            }
        }
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(item_schema, item, &format!("{path}[{i}]"), causes);
        }
    }
}

fn check_object(
    schema: &Value,
    map: &Map<String, Value>,
    v: &Value,
    path: &str,
    causes: &mut Vec<StatusCause>,
) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                causes.push(field::required(&join(path, r), ""));
            }
        }
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64) {
        if map.len() as u64 > max {
            causes.push(field::too_many(path, map.len(), max));
        }
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64) {
        if (map.len() as u64) < min {
            causes.push(field::invalid(
                path,
                v,
                &format!("{} should have at least {min} properties", in_body(path)),
            ));
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let embedded = flag(schema, "x-kubernetes-embedded-resource");
    for (k, child) in map {
        if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(s) = props.and_then(|p| p.get(k)).or(additional) {
            check(s, child, &join(path, k), causes);
        }
    }
}

fn check_combinators(schema: &Value, v: &Value, path: &str, causes: &mut Vec<StatusCause>) {
    let passes = |s: &Value| {
        let mut sub = Vec::new();
        check(s, v, path, &mut sub);
        sub
    };
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            causes.extend(passes(s));
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let results: Vec<Vec<StatusCause>> = any.iter().map(passes).collect();
        if !results.iter().any(Vec::is_empty) {
            causes.push(field::invalid(
                path,
                v,
                &format!(
                    "{} must validate at least one schema (anyOf)",
                    in_body(path)
                ),
            ));
            causes.extend(results.into_iter().flatten());
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        let ok = one.iter().filter(|s| passes(s).is_empty()).count();
        if ok != 1 {
            causes.push(field::invalid(
                path,
                v,
                &format!(
                    "{} must validate one and only one schema (oneOf)",
                    in_body(path)
                ),
            ));
        }
    }
    if let Some(not) = schema.get("not") {
        if passes(not).is_empty() {
            causes.push(field::invalid(
                path,
                v,
                &format!("{} must not validate the schema (not)", in_body(path)),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["size"], "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
                "port": {"x-kubernetes-int-or-string": true},
                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set", "maxItems": 3},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}},
                "opt": {"type": "string", "nullable": true}
            }},
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
        }})
    }

    #[test]
    fn prunes_unknown_fields_but_keeps_preserved_and_meta() {
        let mut obj = json!({"apiVersion": "example.com/v1", "kind": "W", "metadata": {"name": "a", "bogus": 1},
            "spec": {"size": 1, "junk": true, "extra": {"anything": [1]}, "labels": {"a": "b"},
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}, "nope": 1}},
            "top": 1});
        let unknown = prune(&schema(), &mut obj);
        assert_eq!(
            unknown,
            // `template.spec` is an object without properties: its fields go too.
            [
                "metadata.bogus",
                "spec.junk",
                "spec.template.nope",
                "spec.template.spec.x",
                "top"
            ]
        );
        assert_eq!(obj["spec"]["extra"], json!({"anything": [1]}));
        assert_eq!(obj["spec"]["template"]["kind"], "Pod");
        assert_eq!(obj["metadata"], json!({"name": "a"}));
    }

    #[test]
    fn defaults_and_nulls() {
        let mut obj = json!({"spec": {"size": 2, "color": null, "opt": null}});
        default(&schema(), &mut obj);
        assert_eq!(obj["spec"]["color"], "red");
        assert_eq!(obj["spec"]["opt"], Value::Null);
    }

    #[test]
    fn value_validation_causes() {
        let obj = json!({"apiVersion": "x", "kind": "W", "metadata": {},
            "spec": {"size": 11, "color": "green", "name": "TooLong1", "port": true, "tags": ["a", "a", "b", "c"]},
            "status": {"ready": "yes"}});
        let causes = validate(&schema(), &obj);
        let msgs: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            msgs,
            [
                "spec.color: Unsupported value: \"green\": supported values: \"red\", \"blue\"",
                "spec.name: Too long: may not be more than 5 bytes",
                "spec.name: Invalid value: \"TooLong1\": spec.name in body should match '^[a-z]+$'",
                "spec.port: Invalid value: true: spec.port in body must be of type integer,string: \"boolean\"",
                "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10",
                "spec.tags: Too many: 4: must have at most 3 items",
                "spec.tags[1]: Duplicate value: \"a\"",
                "status.ready: Invalid value: \"yes\": status.ready in body must be of type boolean: \"string\"",
            ]
        );
        let missing = validate(&schema(), &json!({"spec": {}}));
        assert_eq!(missing[0].field, "spec.size");
        assert_eq!(missing[0].message, "Required value");
        assert!(validate(&schema(), &json!({"spec": {"size": 3, "port": "http"}})).is_empty());
    }
}
