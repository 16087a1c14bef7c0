//! YAML request and response bodies (`application/yaml`), as upstream's YAML serializer:
//! a YAML body is read as the JSON object it denotes, and a response asked for as YAML is
//! the JSON answer re-encoded. Server-side apply bodies (`application/apply-patch+yaml`)
//! are YAML too.

use serde_json::Value;

/// The JSON value a YAML document denotes (JSON is YAML, so JSON bodies read too); of
/// a key given twice in a mapping the later value wins, as upstream's non-strict
/// conversion keeps it. Also upstream's strict error when a mapping has a key twice:
/// `error converting YAML to JSON: yaml: unmarshal errors:\n  line 11: key "foo"
/// already set in map` (the first duplicate).
pub fn decode_checked(bytes: &[u8]) -> Result<(Value, Option<String>), String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("invalid UTF-8: {e}"))?;
    if text.trim().is_empty() {
        return Err("empty body".into());
    }
    let first_line = |e: serde_saphyr::Error| {
        // The first line says what went wrong; the rest is a snippet of the input.
        e.to_string()
            .lines()
            .next()
            .unwrap_or("invalid YAML")
            .to_string()
    };
    match serde_saphyr::from_str::<Value>(text) {
        Ok(v) => Ok((v, None)),
        Err(e) => {
            let serde_saphyr::Error::DuplicateMappingKey { key, location } = e.without_snippet()
            else {
                return Err(first_line(e));
            };
            let strict = format!(
                "error converting YAML to JSON: yaml: unmarshal errors:\n  line {}: key {:?} already set in map",
                location.line(),
                key.as_deref().unwrap_or("")
            );
            let mut options = serde_saphyr::Options::default();
            options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
            let v =
                serde_saphyr::from_str_with_options::<Value>(text, options).map_err(first_line)?;
            Ok((v, Some(strict)))
        }
    }
}

pub fn encode(v: &Value) -> Result<String, String> {
    serde_saphyr::to_string(v).map_err(|e| e.to_string())
}

/// Re-encodes a whole JSON response as YAML (streams and non-JSON bodies pass through).
pub fn response_as_yaml(resp: crate::body::Response) -> crate::body::Response {
    crate::body::reencode_json(resp, "application/yaml", |bytes| {
        let v = serde_json::from_slice::<Value>(bytes).ok()?;
        encode(&v).ok().map(String::into_bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_bodies() {
        let (v, _) = decode_checked(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  n: \"1\"\n  list: |\n    x\n").unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"n": "1", "list": "x\n"}})
        );
        assert_eq!(
            decode_checked(br#"{"a": [1, 2.5, true, null]}"#).unwrap(),
            (json!({"a": [1, 2.5, true, null]}), None)
        );
        assert!(decode_checked(b"a: [1, 2").is_err());
        assert!(decode_checked(b"  ").is_err());
        assert!(decode_checked(&[0xff, 0xfe]).is_err());
        let (v, strict) = decode_checked(b"\na: 1\nb:\n  c: 1\n  c: 2\n").unwrap();
        assert_eq!(v, json!({"a": 1, "b": {"c": 2}}));
        assert_eq!(
            strict.as_deref(),
            Some("error converting YAML to JSON: yaml: unmarshal errors:\n  line 5: key \"c\" already set in map")
        );
        let (back, _) = decode_checked(encode(&v).unwrap().as_bytes()).unwrap();
        assert_eq!(back, v);
    }
}
