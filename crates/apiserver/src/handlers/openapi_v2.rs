//! OpenAPI v2 (`/openapi/v2`): upstream's v1.33 swagger document with the served custom
//! resources merged in, as JSON, or as the gnostic `openapi.v2.Document` protobuf that
//! client-go asks for (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`;
//! kubectl reads it for client-side validation when a kind is missing from OpenAPI v3).
//! The protobuf follows gnostic's compiler: `x-` extensions and `default`/`enum`/`example`
//! values are `Any` messages carrying YAML.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};

use crate::crd::{CrdRegistry, CustomResource};

static SWAGGER: &[u8] = include_bytes!("../../openapi/v2/swagger.json");

/// The wire formats of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Protobuf,
}

impl Format {
    pub fn from_accept(accept: Option<&str>) -> Format {
        let wants_pb = accept.is_some_and(|a| {
            a.split(',').any(|t| {
                let t = t.split(';').next().unwrap_or("").trim();
                t.starts_with("application/com.github.proto-openapi.spec.v2")
            })
        });
        if wants_pb {
            Format::Protobuf
        } else {
            Format::Json
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Protobuf => "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        }
    }
}

/// (CRD generation, JSON document, protobuf document), each built on first use.
type Built = (u64, Option<Bytes>, Option<Bytes>);

/// Documents built for one CRD generation, per format.
#[derive(Debug, Default)]
pub struct Cache(Mutex<Option<Built>>);

/// The document in `format`, with the custom resources of `crds`.
pub fn document(cache: &Cache, crds: &CrdRegistry, format: Format) -> Bytes {
    let generation = crds.generation();
    let mut slot = cache.0.lock();
    if slot.as_ref().is_none_or(|(g, _, _)| *g != generation) {
        *slot = Some((generation, None, None));
    }
    let Some((_, json_doc, pb_doc)) = slot.as_mut() else {
        return Bytes::new();
    };
    let custom = crds.snapshot();
    match format {
        Format::Json => json_doc
            .get_or_insert_with(|| {
                if custom.is_empty() {
                    return Bytes::from_static(SWAGGER);
                }
                let doc = merged(&custom);
                Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
            })
            .clone(),
        Format::Protobuf => pb_doc
            .get_or_insert_with(|| {
                let doc = merged(&custom);
                Bytes::from(encode_document(&doc))
            })
            .clone(),
    }
}

fn merged(custom: &[Arc<CustomResource>]) -> Value {
    let mut doc: Value = serde_json::from_slice(SWAGGER).unwrap_or_else(|_| json!({}));
    for cr in custom {
        add_custom(&mut doc, cr);
    }
    doc
}

/// A structural schema as OpenAPI v2 allows it (no nullable, anyOf/oneOf/not).
fn to_v2(schema: &Value) -> Value {
    match schema {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                match k.as_str() {
                    "nullable" | "anyOf" | "oneOf" | "not" | "x-kubernetes-validations" => {}
                    "properties" => {
                        let props: Map<String, Value> = v
                            .as_object()
                            .map(|p| p.iter().map(|(k, v)| (k.clone(), to_v2(v))).collect())
                            .unwrap_or_default();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    "items" | "additionalProperties" => {
                        out.insert(k.clone(), to_v2(v));
                    }
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn add_custom(doc: &mut Value, cr: &CustomResource) {
    let info = cr.info;
    let name = crate::crd::openapi::schema_name(info.group, info.version, info.kind);
    let gvk = json!([{"group": info.group, "version": info.version, "kind": info.kind}]);
    let mut schema = cr
        .schema
        .as_ref()
        .map(to_v2)
        .unwrap_or_else(|| json!({"type": "object"}));
    if let Some(m) = schema.as_object_mut() {
        let props = m.entry("properties").or_insert_with(|| json!({}));
        if let Some(p) = props.as_object_mut() {
            p.insert("apiVersion".into(), json!({"type": "string"}));
            p.insert("kind".into(), json!({"type": "string"}));
            p.insert(
                "metadata".into(),
                json!({"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}),
            );
        }
        m.insert("x-kubernetes-group-version-kind".into(), gvk.clone());
    }
    if let Some(defs) = doc.get_mut("definitions").and_then(Value::as_object_mut) {
        defs.insert(name.clone(), schema);
    }
    let base = if info.namespaced {
        format!(
            "/apis/{}/{}/namespaces/{{namespace}}/{}",
            info.group, info.version, info.resource
        )
    } else {
        format!("/apis/{}/{}/{}", info.group, info.version, info.resource)
    };
    let query = |n: &str| json!({"in": "query", "name": n, "type": "string", "uniqueItems": true});
    let op = |action: &str| {
        json!({"operationId": format!("{action}{}", info.kind), "consumes": ["application/json", "application/merge-patch+json", "application/json-patch+json", "application/apply-patch+yaml"],
            "produces": ["application/json", "application/yaml"], "schemes": ["https"],
            "parameters": [{"in": "body", "name": "body", "required": true, "schema": {"type": "object"}}, query("dryRun"), query("fieldManager"), query("fieldValidation")],
            "responses": {"200": {"description": "OK", "schema": {"$ref": format!("#/definitions/{name}")}}},
            "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk[0]})
    };
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        paths.insert(
            format!("{base}/{{name}}"),
            json!({"patch": op("patch"), "put": op("put"),
                "parameters": [{"in": "path", "name": "name", "required": true, "type": "string", "uniqueItems": true}]}),
        );
        paths.insert(base, json!({"post": op("post")}));
    }
}

// ---- protobuf encoding (gnostic openapi_v2) ----

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    varint(out, (u64::from(field) << 3) | 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn string(out: &mut Vec<u8>, field: u32, v: Option<&Value>) {
    if let Some(s) = v.and_then(Value::as_str).filter(|s| !s.is_empty()) {
        bytes_field(out, field, s.as_bytes());
    }
}

fn strings(out: &mut Vec<u8>, field: u32, v: Option<&Value>) {
    for s in v.and_then(Value::as_array).into_iter().flatten() {
        if let Some(s) = s.as_str() {
            bytes_field(out, field, s.as_bytes());
        }
    }
}

fn boolean(out: &mut Vec<u8>, field: u32, v: Option<&Value>) {
    if v == Some(&Value::Bool(true)) {
        varint(out, u64::from(field) << 3);
        varint(out, 1);
    }
}

fn int64(out: &mut Vec<u8>, field: u32, v: Option<&Value>) {
    if let Some(n) = v.and_then(Value::as_i64).filter(|n| *n != 0) {
        varint(out, u64::from(field) << 3);
        varint(out, n as u64);
    }
}

fn double(out: &mut Vec<u8>, field: u32, v: Option<&Value>) {
    if let Some(f) = v.and_then(Value::as_f64).filter(|f| *f != 0.0) {
        varint(out, (u64::from(field) << 3) | 1);
        out.extend_from_slice(&f.to_le_bytes());
    }
}

fn message(out: &mut Vec<u8>, field: u32, body: Vec<u8>) {
    bytes_field(out, field, &body);
}

/// gnostic `Any`: the value as YAML.
fn any(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let yaml = crate::yaml::encode(v).unwrap_or_default();
    bytes_field(&mut out, 2, yaml.as_bytes());
    out
}

fn named_any(name: &str, v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    bytes_field(&mut out, 1, name.as_bytes());
    message(&mut out, 2, any(v));
    out
}

fn extensions(out: &mut Vec<u8>, field: u32, obj: &Map<String, Value>) {
    for (k, v) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
        message(out, field, named_any(k, v));
    }
}

fn schema(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(m) = v.as_object() else {
        return out;
    };
    string(&mut out, 1, m.get("$ref"));
    string(&mut out, 2, m.get("format"));
    string(&mut out, 3, m.get("title"));
    string(&mut out, 4, m.get("description"));
    if let Some(d) = m.get("default") {
        message(&mut out, 5, any(d));
    }
    double(&mut out, 6, m.get("multipleOf"));
    double(&mut out, 7, m.get("maximum"));
    boolean(&mut out, 8, m.get("exclusiveMaximum"));
    double(&mut out, 9, m.get("minimum"));
    boolean(&mut out, 10, m.get("exclusiveMinimum"));
    int64(&mut out, 11, m.get("maxLength"));
    int64(&mut out, 12, m.get("minLength"));
    string(&mut out, 13, m.get("pattern"));
    int64(&mut out, 14, m.get("maxItems"));
    int64(&mut out, 15, m.get("minItems"));
    boolean(&mut out, 16, m.get("uniqueItems"));
    int64(&mut out, 17, m.get("maxProperties"));
    int64(&mut out, 18, m.get("minProperties"));
    strings(&mut out, 19, m.get("required"));
    for e in m
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        message(&mut out, 20, any(e));
    }
    match m.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut item = Vec::new();
            varint(&mut item, 2 << 3);
            varint(&mut item, u64::from(*b));
            message(&mut out, 21, item);
        }
        Some(s @ Value::Object(_)) => {
            let mut item = Vec::new();
            message(&mut item, 1, schema(s));
            message(&mut out, 21, item);
        }
        _ => {}
    }
    if let Some(t) = m.get("type") {
        let mut item = Vec::new();
        match t {
            Value::Array(_) => strings(&mut item, 1, Some(t)),
            other => string(&mut item, 1, Some(other)),
        }
        message(&mut out, 22, item);
    }
    if let Some(items) = m.get("items") {
        let mut item = Vec::new();
        match items {
            Value::Array(list) => list.iter().for_each(|s| message(&mut item, 1, schema(s))),
            one => message(&mut item, 1, schema(one)),
        }
        message(&mut out, 23, item);
    }
    for s in m
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        message(&mut out, 24, schema(s));
    }
    if let Some(props) = m.get("properties").and_then(Value::as_object) {
        let mut p = Vec::new();
        for (k, s) in props {
            let mut named = Vec::new();
            bytes_field(&mut named, 1, k.as_bytes());
            message(&mut named, 2, schema(s));
            message(&mut p, 1, named);
        }
        message(&mut out, 25, p);
    }
    string(&mut out, 26, m.get("discriminator"));
    boolean(&mut out, 27, m.get("readOnly"));
    if let Some(e) = m.get("example") {
        message(&mut out, 30, any(e));
    }
    extensions(&mut out, 31, m);
    out
}

/// A non-body parameter; `query` layout (with allowEmptyValue) or path/header layout.
fn sub_schema(p: &Map<String, Value>, query_layout: bool) -> Vec<u8> {
    let mut out = Vec::new();
    boolean(&mut out, 1, p.get("required"));
    string(&mut out, 2, p.get("in"));
    string(&mut out, 3, p.get("description"));
    string(&mut out, 4, p.get("name"));
    let shift = u32::from(query_layout);
    boolean(
        &mut out,
        5,
        p.get("allowEmptyValue").filter(|_| query_layout),
    );
    string(&mut out, 5 + shift, p.get("type"));
    string(&mut out, 6 + shift, p.get("format"));
    string(&mut out, 8 + shift, p.get("collectionFormat"));
    if let Some(d) = p.get("default") {
        message(&mut out, 9 + shift, any(d));
    }
    boolean(&mut out, 19 + shift, p.get("uniqueItems"));
    for e in p
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        message(&mut out, 20 + shift, any(e));
    }
    extensions(&mut out, 22 + shift, p);
    out
}

fn parameter(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(p) = v.as_object() else {
        return out;
    };
    if let Some(r) = p.get("$ref") {
        let mut reference = Vec::new();
        string(&mut reference, 1, Some(r));
        message(&mut out, 2, reference);
        return out;
    }
    let mut param = Vec::new();
    if p.get("in").and_then(Value::as_str) == Some("body") {
        let mut body = Vec::new();
        string(&mut body, 1, p.get("description"));
        string(&mut body, 2, p.get("name"));
        string(&mut body, 3, p.get("in"));
        boolean(&mut body, 4, p.get("required"));
        if let Some(s) = p.get("schema") {
            message(&mut body, 5, schema(s));
        }
        extensions(&mut body, 6, p);
        message(&mut param, 1, body);
    } else {
        let mut non_body = Vec::new();
        match p.get("in").and_then(Value::as_str) {
            Some("header") => message(&mut non_body, 1, sub_schema(p, false)),
            Some("formData") => message(&mut non_body, 2, sub_schema(p, true)),
            Some("path") => message(&mut non_body, 4, sub_schema(p, false)),
            _ => message(&mut non_body, 3, sub_schema(p, true)),
        }
        message(&mut param, 2, non_body);
    }
    message(&mut out, 1, param);
    out
}

/// A bare `Parameter` (in the document's `parameters`), not a `ParametersItem`.
fn parameter_definition(v: &Value) -> Vec<u8> {
    let item = parameter(v);
    // ParametersItem{parameter(1): Parameter} → unwrap the one field.
    strip_one_field(&item).unwrap_or_default()
}

fn strip_one_field(msg: &[u8]) -> Option<Vec<u8>> {
    let (_, rest) = read_varint(msg)?;
    let (len, rest) = read_varint(rest)?;
    rest.get(..usize::try_from(len).ok()?).map(<[u8]>::to_vec)
}

fn read_varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

fn operation(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(o) = v.as_object() else {
        return out;
    };
    strings(&mut out, 1, o.get("tags"));
    string(&mut out, 2, o.get("summary"));
    string(&mut out, 3, o.get("description"));
    string(&mut out, 5, o.get("operationId"));
    strings(&mut out, 6, o.get("produces"));
    strings(&mut out, 7, o.get("consumes"));
    for p in o
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        message(&mut out, 8, parameter(p));
    }
    if let Some(rs) = o.get("responses").and_then(Value::as_object) {
        let mut responses = Vec::new();
        for (code, r) in rs {
            let mut resp = Vec::new();
            string(&mut resp, 1, r.get("description"));
            if let Some(s) = r.get("schema") {
                let mut item = Vec::new();
                message(&mut item, 1, schema(s));
                message(&mut resp, 2, item);
            }
            let mut value = Vec::new();
            message(&mut value, 1, resp);
            let mut named = Vec::new();
            bytes_field(&mut named, 1, code.as_bytes());
            message(&mut named, 2, value);
            message(&mut responses, 1, named);
        }
        message(&mut out, 9, responses);
    }
    strings(&mut out, 10, o.get("schemes"));
    boolean(&mut out, 11, o.get("deprecated"));
    extensions(&mut out, 13, o);
    out
}

fn path_item(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(p) = v.as_object() else {
        return out;
    };
    for (field, verb) in [
        (2, "get"),
        (3, "put"),
        (4, "post"),
        (5, "delete"),
        (6, "options"),
        (7, "head"),
        (8, "patch"),
    ] {
        if let Some(op) = p.get(verb) {
            message(&mut out, field, operation(op));
        }
    }
    for param in p
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        message(&mut out, 9, parameter(param));
    }
    extensions(&mut out, 10, p);
    out
}

fn named(name: &str, body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    bytes_field(&mut out, 1, name.as_bytes());
    message(&mut out, 2, body);
    out
}

/// The whole document as gnostic's `openapi.v2.Document`.
pub fn encode_document(doc: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    string(&mut out, 1, doc.get("swagger"));
    if let Some(info) = doc.get("info") {
        let mut i = Vec::new();
        string(&mut i, 1, info.get("title"));
        string(&mut i, 2, info.get("version"));
        string(&mut i, 3, info.get("description"));
        message(&mut out, 2, i);
    }
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        let mut p = Vec::new();
        for (k, item) in paths {
            message(&mut p, 2, named(k, path_item(item)));
        }
        message(&mut out, 8, p);
    }
    if let Some(defs) = doc.get("definitions").and_then(Value::as_object) {
        let mut d = Vec::new();
        for (k, s) in defs {
            message(&mut d, 1, named(k, schema(s)));
        }
        message(&mut out, 9, d);
    }
    if let Some(params) = doc.get("parameters").and_then(Value::as_object) {
        let mut d = Vec::new();
        for (k, p) in params {
            message(&mut d, 1, named(k, parameter_definition(p)));
        }
        message(&mut out, 10, d);
    }
    for req in doc
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut r = Vec::new();
        for (k, scopes) in req.as_object().into_iter().flatten() {
            let mut arr = Vec::new();
            strings(&mut arr, 1, Some(scopes));
            message(&mut r, 1, named(k, arr));
        }
        message(&mut out, 12, r);
    }
    if let Some(defs) = doc.get("securityDefinitions").and_then(Value::as_object) {
        let mut d = Vec::new();
        for (k, s) in defs {
            let mut api_key = Vec::new();
            string(&mut api_key, 1, s.get("type"));
            string(&mut api_key, 2, s.get("name"));
            string(&mut api_key, 3, s.get("in"));
            string(&mut api_key, 4, s.get("description"));
            let mut item = Vec::new();
            message(&mut item, 2, api_key);
            message(&mut d, 1, named(k, item));
        }
        message(&mut out, 13, d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_schemas_as_gnostic_does() {
        let s = schema(
            &json!({"type": "string", "description": "d", "x-kubernetes-list-type": "atomic"}),
        );
        // description(4), type(22) TypeItem{"string"}, vendor_extension(31)
        assert_eq!(&s[..3], &[0x22, 0x01, b'd']);
        assert_eq!(&s[3..6], &[0xb2, 0x01, 0x08]);
        assert!(s.windows(22).any(|w| w == b"x-kubernetes-list-type"));
        assert!(s.windows(7).any(|w| w == b"atomic\n"));
    }

    #[test]
    fn whole_document_encodes_and_negotiates() {
        let doc: Value = serde_json::from_slice(SWAGGER).unwrap();
        let pb = encode_document(&doc);
        assert!(pb.len() > 1_000_000, "{}", pb.len());
        assert_eq!(&pb[..5], &[0x0a, 0x03, b'2', b'.', b'0']);
        assert_eq!(
            Format::from_accept(Some(
                "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
            )),
            Format::Protobuf
        );
        assert_eq!(Format::from_accept(Some("application/json")), Format::Json);
        assert_eq!(Format::from_accept(None), Format::Json);
        assert_eq!(
            parameter_definition(&json!({"in": "query", "name": "pretty", "type": "string"}))[0],
            0x12
        );
    }
}
