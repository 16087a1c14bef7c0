//! Building responses: JSON objects, `metav1.Status` errors, and the shaping of objects
//! as the client asked (plain, Table, PartialObjectMetadata).

use ferrokube_api::status::Status;
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};

use crate::body::{Body, Response};
use crate::negotiation::Output;

pub fn json_with_type(code: u16, body: &Value, content_type: &'static str) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = http::Response::new(Body::full(bytes));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub fn json(code: u16, body: &Value) -> Response {
    json_with_type(code, body, "application/json")
}

pub fn status(s: &Status) -> Response {
    let mut resp = http::Response::new(Body::full(s.to_json()));
    *resp.status_mut() = StatusCode::from_u16(s.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub fn text(code: u16, body: &str) -> Response {
    let mut resp = http::Response::new(Body::full(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// `PartialObjectMetadata` of an object.
pub fn partial_metadata(obj: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// Shapes one object for the response.
/// Shapes one object for the response (custom resources are converted to the version
/// asked for first).
pub fn shape_object(out: Output, target: &crate::registry::Target<'_>, mut obj: Value) -> Value {
    if let Some(cr) = target.custom {
        cr.convert(&mut obj);
    }
    if let Some(served) = target.served {
        crate::conversion::to_served(served, &mut obj);
    }
    match out {
        Output::Json | Output::Yaml => obj,
        Output::Metadata(v) => partial_metadata(&obj, v),
        Output::Table(v) => {
            super::table::to_table(target, std::slice::from_ref(&obj), None, v, true)
        }
    }
}
