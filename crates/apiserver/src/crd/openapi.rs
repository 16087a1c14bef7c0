//! OpenAPI v3 documents for custom resources (upstream's `controller/openapi/builder`):
//! one document per CRD group-version, holding the kind's schema (its `openAPIV3Schema`
//! with apiVersion/kind/metadata added and `x-kubernetes-group-version-kind`), the list
//! kind, the metadata types it refers to, and the paths with their query parameters
//! (kubectl learns from them that the server validates fields itself).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::CustomResource;
use crate::openapi_files::DOCUMENTS;

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

/// The schema name upstream gives a custom kind: the group reversed, then version and kind.
pub fn schema_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// The metadata schemas every document refers to, from the built-in apps/v1 document.
fn meta_schemas() -> Map<String, Value> {
    let Some((_, doc)) = DOCUMENTS.iter().find(|(k, _)| *k == "apis/apps/v1") else {
        return Map::new();
    };
    let Ok(v) = serde_json::from_slice::<Value>(doc) else {
        return Map::new();
    };
    let wanted = [
        "ObjectMeta",
        "ListMeta",
        "ManagedFieldsEntry",
        "OwnerReference",
        "Time",
        "FieldsV1",
        "Status",
        "StatusDetails",
        "StatusCause",
    ];
    v.pointer("/components/schemas")
        .and_then(Value::as_object)
        .map(|all| {
            all.iter()
                .filter(|(k, _)| wanted.iter().any(|w| **k == format!("{META}.{w}")))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn kind_schema(cr: &CustomResource) -> Value {
    let mut schema = cr
        .schema
        .clone()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    if let Some(m) = schema.as_object_mut() {
        let props = m
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let mut all = Map::new();
        all.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
        all.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
        all.insert(
            "metadata".into(),
            json!({"allOf": [{"$ref": format!("#/components/schemas/{META}.ObjectMeta")}], "description": "Standard object's metadata."}),
        );
        for (k, v) in props {
            if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                all.insert(k, v);
            }
        }
        m.insert("properties".into(), Value::Object(all));
        m.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": cr.info.group, "version": cr.info.version, "kind": cr.info.kind}]),
        );
    }
    schema
}

fn param(name: &str, location: &str) -> Value {
    json!({"name": name, "in": location, "required": location == "path", "schema": {"type": "string", "uniqueItems": true}})
}

fn paths(cr: &CustomResource, kind_ref: &str) -> Map<String, Value> {
    let info = cr.info;
    let base = if info.namespaced {
        format!(
            "/apis/{}/{}/namespaces/{{namespace}}/{}",
            info.group, info.version, info.resource
        )
    } else {
        format!("/apis/{}/{}/{}", info.group, info.version, info.resource)
    };
    let body = json!({"content": {"application/json": {"schema": {"$ref": kind_ref}}}});
    let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": kind_ref}}}}});
    let writes = |verb: &str| {
        let mut params = vec![
            param("dryRun", "query"),
            param("fieldManager", "query"),
            param("fieldValidation", "query"),
        ];
        if verb == "patch" {
            params.push(param("force", "query"));
        }
        json!({"operationId": format!("{verb}{}", info.kind), "parameters": params, "requestBody": body, "responses": ok,
            "x-kubernetes-action": verb, "x-kubernetes-group-version-kind": {"group": info.group, "version": info.version, "kind": info.kind}})
    };
    let mut path_params = vec![param("name", "path")];
    if info.namespaced {
        path_params.push(param("namespace", "path"));
    }
    let mut out = Map::new();
    out.insert(
        base.clone(),
        json!({"post": writes("post"), "parameters": if info.namespaced { vec![param("namespace", "path")] } else { Vec::new() }}),
    );
    let mut item = json!({"get": {"operationId": format!("read{}", info.kind), "responses": ok},
        "put": writes("put"), "patch": writes("patch"), "parameters": path_params});
    item["patch"]["requestBody"] = json!({"content": {
        "application/json-patch+json": {"schema": {"type": "object"}},
        "application/merge-patch+json": {"schema": {"type": "object"}},
        "application/apply-patch+yaml": {"schema": {"type": "object"}}}});
    out.insert(format!("{base}/{{name}}"), item);
    out
}

/// `apis/<group>/<version>` → document, for every served custom group-version.
pub fn documents(served: &[Arc<CustomResource>]) -> Vec<(String, Vec<u8>)> {
    let mut by_gv: BTreeMap<String, Vec<&CustomResource>> = BTreeMap::new();
    for cr in served {
        by_gv
            .entry(format!("apis/{}/{}", cr.info.group, cr.info.version))
            .or_default()
            .push(cr);
    }
    if by_gv.is_empty() {
        return Vec::new();
    }
    let meta = meta_schemas();
    by_gv
        .into_iter()
        .map(|(key, crs)| {
            let mut schemas = meta.clone();
            let mut all_paths = Map::new();
            for cr in crs {
                let name = schema_name(cr.info.group, cr.info.version, cr.info.kind);
                let kind_ref = format!("#/components/schemas/{name}");
                schemas.insert(name.clone(), kind_schema(cr));
                schemas.insert(
                    format!("{name}List"),
                    json!({"type": "object", "required": ["items"], "properties": {
                        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                        "items": {"type": "array", "items": {"$ref": kind_ref}},
                        "metadata": {"allOf": [{"$ref": format!("#/components/schemas/{META}.ListMeta")}]}},
                        "x-kubernetes-group-version-kind": [{"group": cr.info.group, "version": cr.info.version, "kind": cr.info.list_kind()}]}),
                );
                all_paths.extend(paths(cr, &kind_ref));
            }
            let doc = json!({"openapi": "3.0.0", "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
                "paths": all_paths, "components": {"schemas": schemas}});
            (key, serde_json::to_vec(&doc).unwrap_or_default())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_group_names() {
        assert_eq!(
            schema_name("stable.example.com", "v1", "CronTab"),
            "com.example.stable.v1.CronTab"
        );
    }
}
