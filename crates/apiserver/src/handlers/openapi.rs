//! OpenAPI v3 (`/openapi/v3` and `/openapi/v3/<group-version>`): upstream's v1.33
//! documents for the served group-versions, generated from upstream's OpenAPI v2 document
//! by `hack/gen-openapi-v3.py`. kubectl uses them for `explain`, and to learn that the
//! server validates fields itself (`fieldValidation`). Each document has a content hash
//! in its URL and ETag, and is cached by clients as immutable.

use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use http::{header, HeaderValue, StatusCode};
use serde_json::json;

use crate::body::{Body, Response};
use crate::crd::CrdRegistry;
use crate::handlers::response;
use crate::openapi_files::DOCUMENTS;

fn hashes() -> &'static Vec<String> {
    static HASHES: OnceLock<Vec<String>> = OnceLock::new();
    HASHES.get_or_init(|| {
        DOCUMENTS
            .iter()
            .map(|(_, doc)| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                doc.hash(&mut h);
                format!("{:016X}", h.finish())
            })
            .collect()
    })
}

pub fn index(crds: &CrdRegistry) -> Response {
    let mut paths = serde_json::Map::new();
    for ((key, _), hash) in DOCUMENTS.iter().zip(hashes()) {
        paths.insert(
            (*key).to_string(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
        );
    }
    for doc in crds.openapi_documents().iter() {
        paths.insert(
            doc.key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{}?hash={}", doc.key, doc.hash)}),
        );
    }
    response::json(200, &json!({"paths": paths}))
}

/// The document of `key` (e.g. `apis/apps/v1`), or None.
pub fn document(crds: &CrdRegistry, key: &str, if_none_match: Option<&str>) -> Option<Response> {
    let (hash, body) = match DOCUMENTS.iter().position(|(k, _)| *k == key) {
        Some(i) => (
            hashes()[i].clone(),
            bytes::Bytes::from_static(DOCUMENTS[i].1),
        ),
        None => {
            let docs = crds.openapi_documents();
            let doc = docs.iter().find(|d| d.key == key)?;
            (doc.hash.clone(), doc.body.clone())
        }
    };
    let etag = format!("\"{hash}\"");
    let mut resp = if if_none_match == Some(etag.as_str()) {
        let mut r = http::Response::new(Body::full(bytes::Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = http::Response::new(Body::full(body));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, immutable"),
    );
    Some(resp)
}
