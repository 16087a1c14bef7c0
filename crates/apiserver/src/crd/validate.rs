//! Validation of CustomResourceDefinitions (upstream's
//! `apiextensions/validation.ValidateCustomResourceDefinition`): names, group, scope,
//! versions (exactly one storage version), schemas present and structural, subresource
//! paths and printer-column JSONPaths; on update, scope is immutable.

use ferrokube_api::status::{field, StatusCause};
use ferrokube_api::validation::{dns1035_label, dns1123_subdomain};
use serde_json::Value;

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

pub fn validate(crd: &Value, old: Option<&Value>) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");
    let name = s(crd, "/metadata/name");
    if name != format!("{plural}.{group}") {
        causes.push(field::invalid(
            "metadata.name",
            &Value::String(name.into()),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        causes.push(field::required("spec.group", ""));
    } else {
        for e in dns1123_subdomain(group) {
            causes.push(field::invalid(
                "spec.group",
                &Value::String(group.into()),
                &e,
            ));
        }
        if !group.contains('.') {
            causes.push(field::invalid(
                "spec.group",
                &Value::String(group.into()),
                "should be a domain with at least one dot",
            ));
        }
    }
    let scope = s(crd, "/spec/scope");
    if !matches!(scope, "Cluster" | "Namespaced") {
        causes.push(field::not_supported(
            "spec.scope",
            &Value::String(scope.into()),
            &["\"Cluster\"".into(), "\"Namespaced\"".into()],
        ));
    }
    names(crd, &mut causes);
    versions(crd, &mut causes);
    let strategy = s(crd, "/spec/conversion/strategy");
    if !matches!(strategy, "None" | "Webhook") {
        causes.push(field::not_supported(
            "spec.conversion.strategy",
            &Value::String(strategy.into()),
            &["\"None\"".into(), "\"Webhook\"".into()],
        ));
    }
    if let Some(old) = old {
        let old_scope = s(old, "/spec/scope");
        if old_scope != scope {
            causes.push(field::invalid(
                "spec.scope",
                &Value::String(scope.into()),
                "field is immutable",
            ));
        }
    }
    causes
}

fn names(crd: &Value, causes: &mut Vec<StatusCause>) {
    for key in ["plural", "singular"] {
        let v = s(crd, &format!("/spec/names/{key}"));
        let path = format!("spec.names.{key}");
        if v.is_empty() {
            causes.push(field::required(&path, ""));
        } else {
            for e in dns1035_label(v) {
                causes.push(field::invalid(&path, &Value::String(v.into()), &e));
            }
        }
    }
    for key in ["kind", "listKind"] {
        let v = s(crd, &format!("/spec/names/{key}"));
        let path = format!("spec.names.{key}");
        if v.is_empty() {
            causes.push(field::required(&path, ""));
        } else if !dns1035_label(&v.to_ascii_lowercase()).is_empty() {
            causes.push(field::invalid(
                &path,
                &Value::String(v.into()),
                "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
            ));
        }
    }
    if let Some(short) = crd
        .pointer("/spec/names/shortNames")
        .and_then(Value::as_array)
    {
        for (i, n) in short.iter().enumerate() {
            let v = n.as_str().unwrap_or("");
            for e in dns1035_label(v) {
                causes.push(field::invalid(
                    &format!("spec.names.shortNames[{i}]"),
                    n,
                    &e,
                ));
            }
        }
    }
}

fn versions(crd: &Value, causes: &mut Vec<StatusCause>) {
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(field::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
        return;
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage") == Some(&Value::Bool(true)))
        .count();
    if storage != 1 {
        causes.push(field::invalid(
            "spec.versions",
            &Value::Array(versions.clone()),
            "must have exactly one version marked as storage version",
        ));
    }
    if !versions
        .iter()
        .any(|v| v.get("served") == Some(&Value::Bool(true)))
    {
        causes.push(field::invalid(
            "spec.versions",
            &Value::Array(versions.clone()),
            "must have at least one served version",
        ));
    }
    let mut seen = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let base = format!("spec.versions[{i}]");
        let name = s(v, "/name");
        if name.is_empty() {
            causes.push(field::required(&format!("{base}.name"), ""));
        } else {
            for e in dns1035_label(name) {
                causes.push(field::invalid(
                    &format!("{base}.name"),
                    &Value::String(name.into()),
                    &e,
                ));
            }
            if seen.contains(&name) {
                causes.push(field::invalid(
                    "spec.versions",
                    &Value::String(name.into()),
                    "must contain unique version names",
                ));
            }
            seen.push(name);
        }
        match v.pointer("/schema/openAPIV3Schema") {
            None => causes.push(field::required(
                &format!("{base}.schema.openAPIV3Schema"),
                "schemas are required",
            )),
            Some(schema) => {
                if s(schema, "/type") != "object" {
                    causes.push(field::invalid(
                        &format!("{base}.schema.openAPIV3Schema.type"),
                        schema.get("type").unwrap_or(&Value::Null),
                        "must be object at the root",
                    ));
                }
                let path = format!("{base}.schema.openAPIV3Schema");
                structural(schema, &path, causes);
                super::rules::check_schema(schema, &path, causes);
            }
        }
        if let Some(scale) = v.pointer("/subresources/scale") {
            for (key, prefix) in [
                ("specReplicasPath", ".spec."),
                ("statusReplicasPath", ".status."),
            ] {
                let p = s(scale, &format!("/{key}"));
                if p.is_empty() {
                    causes.push(field::required(
                        &format!("{base}.subresources.scale.{key}"),
                        "",
                    ));
                } else if !p.starts_with(prefix) {
                    causes.push(field::invalid(
                        &format!("{base}.subresources.scale.{key}"),
                        &Value::String(p.into()),
                        &format!(
                            "should be a json path under {}",
                            prefix.trim_end_matches('.')
                        ),
                    ));
                }
            }
        }
        if let Some(cols) = v.get("additionalPrinterColumns").and_then(Value::as_array) {
            for (j, c) in cols.iter().enumerate() {
                let path = format!("{base}.additionalPrinterColumns[{j}]");
                if s(c, "/name").is_empty() {
                    causes.push(field::required(&format!("{path}.name"), ""));
                }
                let t = s(c, "/type");
                if !matches!(t, "integer" | "number" | "string" | "boolean" | "date") {
                    causes.push(field::not_supported(
                        &format!("{path}.type"),
                        &Value::String(t.into()),
                        &[
                            "\"boolean\"",
                            "\"date\"",
                            "\"integer\"",
                            "\"number\"",
                            "\"string\"",
                        ]
                        .map(String::from),
                    ));
                }
                if let Err(e) = super::columns::parse(s(c, "/jsonPath")) {
                    causes.push(field::invalid(
                        &format!("{path}.jsonPath"),
                        c.get("jsonPath").unwrap_or(&Value::Null),
                        &e,
                    ));
                }
            }
        }
    }
}

/// The structural-schema rules that matter most: every specified field has a type unless
/// it is int-or-string or preserves unknown fields.
fn structural(schema: &Value, path: &str, causes: &mut Vec<StatusCause>) {
    let typ = s(schema, "/type");
    let free = schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
        || schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if typ.is_empty() && !free {
        causes.push(field::required(
            &format!("{path}.type"),
            "must not be empty for specified object fields",
        ));
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        if !typ.is_empty() && typ != "object" {
            causes.push(field::forbidden(
                &format!("{path}.properties"),
                "must not be specified for non-object types",
            ));
        }
        for (k, child) in props {
            structural(child, &format!("{path}.properties[{k}]"), causes);
        }
    }
    if let Some(items) = schema.get("items") {
        structural(items, &format!("{path}.items"), causes);
    } else if typ == "array" {
        causes.push(field::required(
            &format!("{path}.items"),
            "must be specified",
        ));
    }
    if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        if schema.get("properties").is_some() {
            causes.push(field::forbidden(
                &format!("{path}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        structural(add, &format!("{path}.additionalProperties"), causes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd() -> Value {
        json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "conversion": {"strategy": "None"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}})
    }

    #[test]
    fn valid_crd_passes() {
        assert!(
            validate(&crd(), None).is_empty(),
            "{:?}",
            validate(&crd(), None)
        );
    }

    #[test]
    fn invalid_crds_name_the_field() {
        let mut c = crd();
        c["metadata"]["name"] = json!("widget.example.com");
        c["spec"]["versions"][0]["storage"] = json!(false);
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["x"] = json!({});
        let fields: Vec<String> = validate(&c, None).into_iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "spec.versions",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[x].type"
            ]
        );
        let mut cluster = crd();
        cluster["spec"]["scope"] = json!("Cluster");
        let causes = validate(&cluster, Some(&crd()));
        assert_eq!(causes[0].field, "spec.scope");
        let mut nodot = crd();
        nodot["spec"]["group"] = json!("example");
        nodot["metadata"]["name"] = json!("widgets.example");
        assert_eq!(validate(&nodot, None)[0].field, "spec.group");
    }
}
