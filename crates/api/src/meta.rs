//! Reading and writing `metadata` of objects held as JSON, and the metadata rules every
//! kind shares (upstream's `ValidateObjectMeta`, `rest.BeforeCreate`/`BeforeUpdate`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::status::{field, StatusCause};
use crate::validation::{label_value, qualified_name, NameRule};

pub fn metadata(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// The object's `metadata`, created (replacing a non-object) if needed.
pub fn metadata_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = obj.as_object_mut()?;
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
}

pub fn str_field<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    metadata(obj)
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
}

pub fn name(obj: &Value) -> Option<&str> {
    str_field(obj, "name").filter(|s| !s.is_empty())
}

pub fn namespace(obj: &Value) -> Option<&str> {
    str_field(obj, "namespace").filter(|s| !s.is_empty())
}

pub fn labels(obj: &Value) -> BTreeMap<String, String> {
    metadata(obj)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    string_list(metadata(obj).and_then(|m| m.get("finalizers")))
}

/// The strings of a JSON array (other entries skipped; nothing for a non-array).
pub fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn set(obj: &mut Value, key: &str, value: Value) {
    if let Some(m) = metadata_mut(obj) {
        m.insert(key.to_string(), value);
    }
}

pub fn remove(obj: &mut Value, key: &str) {
    if let Some(m) = metadata_mut(obj) {
        m.remove(key);
    }
}

/// Validates the metadata every kind shares: name (per the kind's rule), generateName,
/// labels, annotations (total size 256 KiB), finalizers. Field paths as upstream's.
pub fn validate(obj: &Value, rule: NameRule, namespaced: bool) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    let Some(meta) = metadata(obj) else {
        return vec![field::required("metadata", "")];
    };
    for key in [
        "name",
        "generateName",
        "namespace",
        "resourceVersion",
        "uid",
    ] {
        if let Some(v) = meta.get(key).filter(|v| !v.is_string() && !v.is_null()) {
            causes.push(field::invalid(
                &format!("metadata.{key}"),
                v,
                "must be a string",
            ));
        }
    }
    match name(obj) {
        None => causes.push(field::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(n) => {
            for why in rule.check(n) {
                causes.push(field::invalid(
                    "metadata.name",
                    &Value::String(n.into()),
                    &why,
                ));
            }
        }
    }
    if namespaced && namespace(obj).is_none() {
        causes.push(field::required("metadata.namespace", ""));
    }
    if !namespaced {
        if let Some(ns) = namespace(obj) {
            causes.push(field::forbidden(
                "metadata.namespace",
                &format!("not allowed on this type (got {ns:?})"),
            ));
        }
    }
    match meta.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                for why in qualified_name(k) {
                    causes.push(field::invalid(
                        "metadata.labels",
                        &Value::String(k.clone()),
                        &why,
                    ));
                }
                match v.as_str() {
                    Some(s) => {
                        for why in label_value(s) {
                            causes.push(field::invalid(
                                "metadata.labels",
                                &Value::String(s.into()),
                                &why,
                            ));
                        }
                    }
                    None => causes.push(field::invalid(
                        &format!("metadata.labels.{k}"),
                        v,
                        "must be a string",
                    )),
                }
            }
        }
        Some(other) => causes.push(field::invalid(
            "metadata.labels",
            other,
            "must be an object",
        )),
    }
    match meta.get("annotations") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            let mut total = 0;
            for (k, v) in m {
                for why in qualified_name(&k.to_ascii_lowercase()) {
                    causes.push(field::invalid(
                        "metadata.annotations",
                        &Value::String(k.clone()),
                        &why,
                    ));
                }
                match v.as_str() {
                    Some(s) => total += k.len() + s.len(),
                    None => causes.push(field::invalid(
                        &format!("metadata.annotations.{k}"),
                        v,
                        "must be a string",
                    )),
                }
            }
            if total > 256 * 1024 {
                causes.push(StatusCause {
                    cause_type: "FieldValueTooLong".into(),
                    message: "Too long: may not be more than 262144 bytes".to_string(),
                    field: "metadata.annotations".into(),
                });
            }
        }
        Some(other) => causes.push(field::invalid(
            "metadata.annotations",
            other,
            "must be an object",
        )),
    }
    match meta.get("finalizers") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for (i, f) in a.iter().enumerate() {
                match f.as_str() {
                    Some(s) => {
                        for why in qualified_name(s) {
                            causes.push(field::invalid(
                                &format!("metadata.finalizers[{i}]"),
                                f,
                                &why,
                            ));
                        }
                    }
                    None => causes.push(field::invalid(
                        &format!("metadata.finalizers[{i}]"),
                        f,
                        "must be a string",
                    )),
                }
            }
        }
        Some(other) => causes.push(field::invalid(
            "metadata.finalizers",
            other,
            "must be an array",
        )),
    }
    causes
}

/// Upstream's `SimpleNameGenerator`: generateName + 5 random characters from an
/// alphabet without vowels or confusable characters.
pub fn generate_name(base: &str, random: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let base = if base.len() > 58 { &base[..58] } else { base };
    let mut r = random;
    let suffix: String = (0..5)
        .map(|_| {
            let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
            r /= ALPHABET.len() as u64;
            c
        })
        .collect();
    format!("{base}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validates_shared_metadata() {
        let ok = json!({"metadata": {"name": "a", "namespace": "d", "labels": {"app": "x"}}});
        assert!(validate(&ok, NameRule::Subdomain, true).is_empty());
        let bad =
            json!({"metadata": {"name": "A_b", "labels": {"-x": "y"}, "finalizers": ["a/b/c"]}});
        let causes = validate(&bad, NameRule::Subdomain, true);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "metadata.namespace",
                "metadata.labels",
                "metadata.finalizers[0]"
            ]
        );
        let cluster = json!({"metadata": {"name": "n", "namespace": "x"}});
        assert_eq!(
            validate(&cluster, NameRule::Subdomain, false)[0].field,
            "metadata.namespace"
        );
    }

    #[test]
    fn generated_names() {
        let n = generate_name("web-", 123_456_789);
        assert_eq!(n.len(), 9);
        assert!(n.starts_with("web-"));
        assert_ne!(generate_name("web-", 1), generate_name("web-", 2));
    }
}
