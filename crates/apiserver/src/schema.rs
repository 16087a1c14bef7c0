//! Field validation against the built-in kinds' OpenAPI schemas, as upstream's decoding
//! into typed structs: unknown fields are dropped from what is stored and reported as
//! `fieldValidation` asks (Ignore, Warn – the default –, Strict → 400 "strict decoding
//! error"); values of the wrong JSON type fail decoding (400) whatever the mode.
//! Schemas come from the embedded OpenAPI v3 documents, parsed per group-version on
//! first use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use ferrokube_api::resources::ResourceInfo;
use ferrokube_api::status::Status;
use serde_json::{Map, Value};

use crate::errors::ApiResult;
use crate::openapi_files::DOCUMENTS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ignore,
    Warn,
    Strict,
}

impl Mode {
    pub fn from_query(v: Option<&str>) -> ApiResult<Mode> {
        match v {
            None | Some("") | Some("Warn") => Ok(Mode::Warn),
            Some("Ignore") => Ok(Mode::Ignore),
            Some("Strict") => Ok(Mode::Strict),
            Some(other) => Err(Status::bad_request(format!(
                "fieldValidation parameter unsupported: {other:?}. Supported values: Ignore, Warn, Strict"
            ))
            .into()),
        }
    }
}

type Schemas = Arc<Map<String, Value>>;

/// (group, version, kind) → the name of its schema, if any.
type RootCache = HashMap<(&'static str, &'static str, &'static str), Option<String>>;

fn schemas_for(info: &ResourceInfo) -> Option<Schemas> {
    static CACHE: OnceLock<Mutex<HashMap<String, Schemas>>> = OnceLock::new();
    let key = if info.group.is_empty() {
        format!("api/{}", info.version)
    } else {
        format!("apis/{}/{}", info.group, info.version)
    };
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(s) = cache.lock().ok()?.get(&key) {
        return Some(s.clone());
    }
    let (_, doc) = DOCUMENTS.iter().find(|(k, _)| *k == key)?;
    let mut v: Value = serde_json::from_slice(doc).ok()?;
    let schemas = Arc::new(
        v.pointer_mut("/components/schemas")?
            .as_object_mut()
            .map(std::mem::take)?,
    );
    cache.lock().ok()?.insert(key, schemas.clone());
    Some(schemas)
}

/// The schema name of a kind, looked up once per kind (a scan of its group-version's
/// schemas) and remembered.
fn root_name(schemas: &Map<String, Value>, info: &ResourceInfo) -> Option<String> {
    static ROOTS: OnceLock<Mutex<RootCache>> = OnceLock::new();
    let roots = ROOTS.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (info.group, info.version, info.kind);
    if let Some(found) = roots.lock().ok()?.get(&key) {
        return found.clone();
    }
    let found = scan_root_name(schemas, info);
    roots.lock().ok()?.insert(key, found.clone());
    found
}

fn scan_root_name(schemas: &Map<String, Value>, info: &ResourceInfo) -> Option<String> {
    schemas.iter().find_map(|(name, s)| {
        let gvks = s.get("x-kubernetes-group-version-kind")?.as_array()?;
        gvks.iter()
            .any(|g| {
                g["group"] == info.group && g["version"] == info.version && g["kind"] == info.kind
            })
            .then(|| name.clone())
    })
}

/// The server-side apply type of a built-in kind (deduced when it has no schema), built
/// once per kind.
pub fn apply_schema(info: &ResourceInfo) -> ferrokube_patch::apply::TypeSchema {
    use ferrokube_patch::apply::TypeSchema;
    type Cache = HashMap<(&'static str, &'static str, &'static str), TypeSchema>;
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (info.group, info.version, info.kind);
    if let Some(found) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return found;
    }
    let built = schemas_for(info)
        .and_then(|schemas| {
            let root = root_name(&schemas, info)?;
            Some(TypeSchema::new(
                schemas,
                serde_json::json!({ "$ref": format!("#/components/schemas/{root}") }),
            ))
        })
        .unwrap_or_else(TypeSchema::deduced);
    if let Ok(mut c) = cache.lock() {
        c.insert(key, built.clone());
    }
    built
}

/// The components custom resources' apply types refer to (ObjectMeta and its parts).
pub fn meta_components() -> Schemas {
    static META: OnceLock<Schemas> = OnceLock::new();
    META.get_or_init(|| {
        ferrokube_api::resources::lookup("apps", "v1", "deployments")
            .and_then(schemas_for)
            .unwrap_or_default()
    })
    .clone()
}

struct Walk<'a> {
    schemas: &'a Map<String, Value>,
    unknown: Vec<String>,
    type_error: Option<String>,
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

impl<'a> Walk<'a> {
    fn resolve(&self, mut schema: &'a Value) -> (&'a Value, Option<&'a str>) {
        let mut name = None;
        for _ in 0..8 {
            let r = schema.get("$ref").and_then(Value::as_str).or_else(|| {
                schema
                    .get("allOf")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                    .and_then(|f| f.get("$ref"))
                    .and_then(Value::as_str)
            });
            let Some(r) = r.and_then(|r| r.strip_prefix("#/components/schemas/")) else {
                break;
            };
            let Some(next) = self.schemas.get(r) else {
                break;
            };
            name = Some(r);
            schema = next;
        }
        (schema, name)
    }

    fn walk(&mut self, value: &mut Value, schema: &'a Value, path: &str) {
        if value.is_null() || self.type_error.is_some() {
            return;
        }
        let (schema, name) = self.resolve(schema);
        let lenient_number = name.is_some_and(|n| n.ends_with("api.resource.Quantity"));
        let int_or_string = schema.get("format").and_then(Value::as_str) == Some("int-or-string")
            || schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
        let Some(typ) = schema.get("type").and_then(Value::as_str) else {
            return;
        };
        let ok = match (typ, &*value) {
            ("string", Value::String(_)) => true,
            ("string", Value::Number(_)) => int_or_string || lenient_number,
            ("integer", Value::Number(n)) => n.is_i64() || n.is_u64(),
            ("number", Value::Number(_)) => true,
            ("boolean", Value::Bool(_)) => true,
            ("array", Value::Array(_)) => true,
            ("object", Value::Object(_)) => true,
            _ => false,
        };
        if !ok {
            self.type_error = Some(format!(
                "json: cannot unmarshal {} into Go struct field {} of type {typ}",
                json_type(value),
                path.trim_start_matches('.')
            ));
            return;
        }
        match value {
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter_mut().enumerate() {
                        self.walk(item, item_schema, &format!("{path}[{i}]"));
                    }
                }
            }
            Value::Object(map) => {
                if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
                    return;
                }
                if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                    let unknown: Vec<String> = map
                        .keys()
                        .filter(|k| !props.contains_key(*k))
                        .cloned()
                        .collect();
                    for k in unknown {
                        map.remove(&k);
                        self.unknown
                            .push(format!("{path}.{k}").trim_start_matches('.').to_string());
                    }
                    for (k, v) in map.iter_mut() {
                        if let Some(s) = props.get(k) {
                            self.walk(v, s, &format!("{path}.{k}"));
                        }
                    }
                    // Go's omitempty, as the typed round trip upstream applies it: nulls,
                    // empty maps and empty lists of optional fields are not kept (empty
                    // structs such as `emptyDir: {}` are).
                    let required: Vec<&str> = schema
                        .get("required")
                        .and_then(Value::as_array)
                        .map_or(Vec::new(), |r| r.iter().filter_map(Value::as_str).collect());
                    map.retain(|k, v| {
                        if required.contains(&k.as_str()) {
                            return true;
                        }
                        let Some(prop) = props.get(k) else {
                            return true;
                        };
                        let (prop, _) = self.resolve(prop);
                        let is_map = prop
                            .get("additionalProperties")
                            .is_some_and(Value::is_object)
                            && prop.get("properties").is_none();
                        match v {
                            Value::Null => false,
                            Value::Array(a) => !a.is_empty(),
                            Value::Object(o) if is_map => !o.is_empty(),
                            _ => true,
                        }
                    });
                } else if let Some(add) =
                    schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    for (k, v) in map.iter_mut() {
                        self.walk(v, add, &format!("{path}.{k}"));
                    }
                }
            }
            _ => {}
        }
    }
}

/// [`validate`] for any target, as upstream's decoding of a request body: custom resources
/// are pruned against their CRD's structural schema (unknown fields reported as
/// `fieldValidation` asks) and defaulted, their value validation happening with the
/// strategy's (422); a version stored as another is validated, then converted to it.
///
/// `strict` are the decoder's own findings (duplicate fields), reported with the
/// unknown fields.
pub fn validate_for(
    target: &crate::registry::Target<'_>,
    obj: &mut Value,
    mode: Mode,
    strict: &[String],
) -> ApiResult<Vec<String>> {
    if let Some(served) = target.served {
        let warnings = validate(served, obj, mode, strict)?;
        crate::conversion::to_storage(served, obj);
        return Ok(warnings);
    }
    let Some(cr) = target.custom else {
        return validate(target.info, obj, mode, strict);
    };
    let Some(schema) = cr.schema.as_ref().filter(|_| !cr.preserve_unknown_fields) else {
        return report_unknown(target.info, &[], strict, mode);
    };
    let unknown = crate::crd::structural::prune(schema, obj);
    crate::crd::structural::default(schema, obj);
    report_unknown(target.info, &unknown, strict, mode)
}

/// Unknown fields (and the decoder's strict findings) as `fieldValidation` asks:
/// warnings, nothing, or upstream's 400.
fn report_unknown(
    info: &ResourceInfo,
    unknown: &[String],
    strict: &[String],
    mode: Mode,
) -> ApiResult<Vec<String>> {
    let messages: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .chain(strict.iter().cloned())
        .collect();
    match mode {
        Mode::Strict if !messages.is_empty() => Err(Status::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
            info.kind,
            info.version,
            info.kind,
            messages.join(", ")
        ))
        .into()),
        Mode::Warn => Ok(messages),
        _ => Ok(Vec::new()),
    }
}

/// Drops unknown fields from `obj` (a built-in kind) and checks value types. Returns the
/// warnings to send (Warn mode); Strict turns unknown fields into a 400.
pub fn validate(
    info: &ResourceInfo,
    obj: &mut Value,
    mode: Mode,
    strict: &[String],
) -> ApiResult<Vec<String>> {
    let Some(schemas) = schemas_for(info) else {
        return report_unknown(info, &[], strict, mode);
    };
    let Some(root) = root_name(&schemas, info) else {
        return report_unknown(info, &[], strict, mode);
    };
    let Some(schema) = schemas.get(&root) else {
        return report_unknown(info, &[], strict, mode);
    };
    let mut walk = Walk {
        schemas: &schemas,
        unknown: Vec::new(),
        type_error: None,
    };
    walk.walk(obj, schema, "");
    if let Some(e) = walk.type_error {
        return Err(Status::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            info.kind, info.version, info.kind
        ))
        .into());
    }
    report_unknown(info, &walk.unknown, strict, mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> &'static ResourceInfo {
        ferrokube_api::resources::lookup("apps", "v1", "deployments").unwrap()
    }

    #[test]
    fn unknown_fields_are_dropped_and_reported() {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "labels": {"x": "y"}, "bogus": 1},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}}, "extra": true,
                "template": {"spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicyy": "Always",
                    "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}}]}},
                "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}}}});
        let warnings = validate(deploy(), &mut d, Mode::Warn, &[]).unwrap();
        assert_eq!(
            warnings,
            [
                "unknown field \"metadata.bogus\"",
                "unknown field \"spec.extra\"",
                "unknown field \"spec.template.spec.containers[0].imagePullPolicyy\"",
            ]
        );
        assert!(d["spec"].get("extra").is_none() && d["metadata"].get("bogus").is_none());
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            1
        );
        let mut again = d.clone();
        assert!(validate(deploy(), &mut again, Mode::Strict, &[])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn duplicates_join_unknown_fields() {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"unknownField": "foo", "replicas": 3}});
        let dup = ["duplicate field \"spec.replicas\"".to_string()];
        let err = validate(deploy(), &mut d.clone(), Mode::Strict, &dup)
            .unwrap_err()
            .into_status("apps", "deployments", "");
        assert!(
            err.message.ends_with(
                "strict decoding error: unknown field \"spec.unknownField\", duplicate field \"spec.replicas\""
            ),
            "{}",
            err.message
        );
        let warnings = validate(deploy(), &mut d, Mode::Warn, &dup).unwrap();
        assert_eq!(
            warnings,
            vec![
                "unknown field \"spec.unknownField\"",
                "duplicate field \"spec.replicas\""
            ]
        );
    }

    #[test]
    fn strict_mode_and_type_errors() {
        let mut d = json!({"spec": {"replicas": 1, "foo": 1}});
        let err = validate(deploy(), &mut d, Mode::Strict, &[])
            .unwrap_err()
            .into_status("apps", "deployments", "a");
        assert_eq!(
            (err.code, err.message.as_str()),
            (
                400,
                "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.foo\""
            )
        );
        let mut d = json!({"spec": {"replicas": "three"}});
        let err = validate(deploy(), &mut d, Mode::Ignore, &[])
            .unwrap_err()
            .into_status("apps", "deployments", "a");
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains(
                "cannot unmarshal string into Go struct field spec.replicas of type integer"
            ),
            "{}",
            err.message
        );
        assert!(Mode::from_query(Some("Loud")).is_err());
    }
}
