//! YAML request and response bodies (`application/yaml`), as upstream's YAML serializer:
//! a YAML body is read as the JSON object it denotes, and a response asked for as YAML is
//! the JSON answer re-encoded. Server-side apply bodies (`application/apply-patch+yaml`)
//! are YAML too.

use serde_json::Value;

/// The JSON value a YAML document denotes (JSON is YAML, so JSON bodies read too).
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("invalid UTF-8: {e}"))?;
    if text.trim().is_empty() {
        return Err("empty body".into());
    }
    serde_saphyr::from_str::<Value>(text).map_err(|e| {
        // The first line says what went wrong; the rest is a snippet of the input.
        e.to_string()
            .lines()
            .next()
            .unwrap_or("invalid YAML")
            .to_string()
    })
}

pub fn encode(v: &Value) -> Result<String, String> {
    serde_saphyr::to_string(v).map_err(|e| e.to_string())
}

/// Re-encodes a whole JSON response as YAML (streams and non-JSON bodies pass through).
pub fn response_as_yaml(resp: crate::body::Response) -> crate::body::Response {
    let is_json = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/json"));
    if !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let crate::body::Body::Full(Some(bytes)) = body else {
        return http::Response::from_parts(parts, body);
    };
    let yaml = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| encode(&v).ok());
    match yaml {
        Some(y) => {
            parts.headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/yaml"),
            );
            parts.headers.remove(http::header::CONTENT_LENGTH);
            http::Response::from_parts(parts, crate::body::Body::full(y))
        }
        None => http::Response::from_parts(parts, crate::body::Body::Full(Some(bytes))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_bodies() {
        let v = decode(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  n: \"1\"\n  list: |\n    x\n").unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"n": "1", "list": "x\n"}})
        );
        assert_eq!(
            decode(br#"{"a": [1, 2.5, true, null]}"#).unwrap(),
            json!({"a": [1, 2.5, true, null]})
        );
        assert!(decode(b"a: [1, 2").is_err());
        assert!(decode(b"  ").is_err());
        assert!(decode(&[0xff, 0xfe]).is_err());
        let back = decode(encode(&v).unwrap().as_bytes()).unwrap();
        assert_eq!(back, v);
    }
}
