//! Writing Kubernetes protobuf bodies from the JSON form, the inverse of the decoder beside
//! it and what upstream's `runtime/serializer/protobuf` writes: the `k8s\0` magic, a
//! `runtime.Unknown` envelope naming apiVersion and kind, and the object's message.
//!
//! Every field present in the JSON is written (so pointer fields set to zero survive);
//! absent and `null` fields are left out, which a reader takes as the zero value, as it
//! does for upstream's always-written empty fields. Map entries are written in key order.
//! Watch streams use the raw form: length-prefixed `WatchEvent` messages (no envelope)
//! whose object is an enveloped body ([`watch_event`]).

use base64::Engine;
use serde_json::Value;

use super::{message, message_for, Kind, Message, Special, MAGIC, MESSAGES};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(what: impl Into<String>) -> Result<T, EncodeError> {
    Err(EncodeError(what.into()))
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(tag: u32, wire: u8, out: &mut Vec<u8>) {
    varint(u64::from(tag) << 3 | u64::from(wire), out);
}

fn bytes_field(tag: u32, b: &[u8], out: &mut Vec<u8>) {
    key(tag, 2, out);
    varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

fn varint_field(tag: u32, v: u64, out: &mut Vec<u8>) {
    key(tag, 0, out);
    varint(v, out);
}

/// Writes a nested message as a length-delimited field without a scratch buffer per level:
/// the body is written in place and the length inserted in front of it.
fn nested(
    tag: u32,
    out: &mut Vec<u8>,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    key(tag, 2, out);
    let start = out.len();
    body(out)?;
    let len = out.len() - start;
    let mut prefix = Vec::with_capacity(10);
    varint(len as u64, &mut prefix);
    out.splice(start..start, prefix);
    Ok(())
}

fn int(v: &Value, what: &str) -> Result<i64, EncodeError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map_or_else(|| err(format!("{what}: {n} is not an integer")), Ok),
        Value::String(s) => s
            .parse()
            .map_err(|_| EncodeError(format!("{what}: {s:?} is not an integer"))),
        Value::Bool(b) => Ok(i64::from(*b)),
        _ => err(format!("{what}: expected an integer")),
    }
}

fn text(v: &Value) -> Result<std::borrow::Cow<'_, str>, EncodeError> {
    match v {
        Value::String(s) => Ok(s.as_str().into()),
        Value::Number(n) => Ok(n.to_string().into()),
        Value::Bool(b) => Ok(b.to_string().into()),
        _ => err("expected a string"),
    }
}

fn base64_bytes(v: &Value, what: &str) -> Result<Vec<u8>, EncodeError> {
    let s = text(v)?;
    let engine = &base64::engine::general_purpose::STANDARD;
    engine
        .decode(s.as_bytes())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s.as_bytes()))
        .map_err(|e| EncodeError(format!("{what}: not base64: {e}")))
}

/// `2006-01-02T15:04:05.999999999Z` → (Unix seconds, nanoseconds).
fn timestamp(s: &str) -> Result<(i64, i64), EncodeError> {
    let secs = crate::time::parse_rfc3339(s)
        .ok_or_else(|| EncodeError(format!("{s:?} is not an RFC 3339 time")))?;
    let nanos = s
        .get(19..)
        .and_then(|rest| rest.strip_prefix('.'))
        .map(|frac| {
            let digits: String = frac
                .chars()
                .take_while(char::is_ascii_digit)
                .take(9)
                .collect();
            format!("{digits:0<9}").parse::<i64>().unwrap_or(0)
        })
        .unwrap_or(0);
    Ok((secs, nanos))
}

/// Go's `time.ParseDuration` ("1h2m3.5s", "300ms", "-1.5h") → nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[u..];
        total += value * unit;
    }
    let total = total.round();
    if total > i64::MAX as f64 {
        return None;
    }
    Some(if neg { -(total as i64) } else { total as i64 })
}

fn encode_special(special: Special, v: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match special {
        Special::Time | Special::MicroTime => {
            let (secs, nanos) = timestamp(&text(v)?)?;
            varint_field(1, secs as u64, out);
            if special == Special::MicroTime && nanos != 0 {
                varint_field(2, nanos as u64, out);
            }
        }
        Special::Duration => {
            let s = text(v)?;
            let nanos = parse_go_duration(&s)
                .ok_or_else(|| EncodeError(format!("{s:?} is not a duration")))?;
            varint_field(1, nanos as u64, out);
        }
        Special::Quantity => bytes_field(1, text(v)?.as_bytes(), out),
        Special::IntOrString => match v {
            Value::Number(_) => {
                varint_field(1, 0, out);
                varint_field(2, int(v, "intVal")? as i32 as i64 as u64, out);
                bytes_field(3, b"", out);
            }
            _ => {
                varint_field(1, 1, out);
                varint_field(2, 0, out);
                bytes_field(3, text(v)?.as_bytes(), out);
            }
        },
        Special::RawString | Special::RawBytes => {
            let raw = serde_json::to_vec(v).map_err(|e| EncodeError(e.to_string()))?;
            bytes_field(1, &raw, out);
        }
        Special::None => {}
    }
    Ok(())
}

fn scalar(
    kind: Kind,
    tag: u32,
    v: &Value,
    name: &str,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), EncodeError> {
    match kind {
        Kind::String => bytes_field(tag, text(v)?.as_bytes(), out),
        Kind::Bytes => bytes_field(tag, &base64_bytes(v, name)?, out),
        // Negative int32s are sign-extended to ten bytes, as protobuf writes them.
        Kind::Int32 => varint_field(tag, int(v, name)? as i32 as i64 as u64, out),
        Kind::Int64 => varint_field(tag, int(v, name)? as u64, out),
        Kind::Bool => varint_field(
            tag,
            u64::from(match v {
                Value::Bool(b) => *b,
                other => int(other, name)? != 0,
            }),
            out,
        ),
        Kind::Double => {
            let f = v
                .as_f64()
                .ok_or_else(|| EncodeError(format!("{name}: expected a number")))?;
            key(tag, 1, out);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Kind::Message(i) => {
            let msg = message(i).map_err(|e| EncodeError(e.0))?;
            nested(tag, out, |out| encode_message(msg, v, out, depth + 1))?;
        }
        Kind::MapString | Kind::MapBytes | Kind::MapMessage(_) => {
            return err(format!("{name}: a map is not a scalar"))
        }
    }
    Ok(())
}

/// Writes one message's fields from its JSON value.
pub fn encode_message(
    msg: &Message,
    v: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), EncodeError> {
    if depth > 64 {
        return err("object nesting too deep");
    }
    if msg.special != Special::None {
        return encode_special(msg.special, v, out);
    }
    let Value::Object(obj) = v else {
        return err(format!("{}: expected an object", msg.name));
    };
    for f in msg.fields {
        // An embedded (`json:",inline"`) struct: its fields are this object's.
        if f.name.is_empty() {
            if let Kind::Message(i) = f.kind {
                let inner = message(i).map_err(|e| EncodeError(e.0))?;
                nested(f.tag, out, |out| encode_message(inner, v, out, depth + 1))?;
            }
            continue;
        }
        let Some(val) = obj.get(f.name).filter(|v| !v.is_null()) else {
            continue;
        };
        match f.kind {
            Kind::MapString | Kind::MapBytes | Kind::MapMessage(_) => {
                let Value::Object(map) = val else {
                    return err(format!("{}: expected an object", f.name));
                };
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                for k in keys {
                    let item = &map[k];
                    nested(f.tag, out, |out| {
                        bytes_field(1, k.as_bytes(), out);
                        match f.kind {
                            Kind::MapString if item.is_null() => bytes_field(2, b"", out),
                            Kind::MapString => bytes_field(2, text(item)?.as_bytes(), out),
                            Kind::MapBytes => bytes_field(2, &base64_bytes(item, f.name)?, out),
                            Kind::MapMessage(i) => {
                                let inner = message(i).map_err(|e| EncodeError(e.0))?;
                                nested(2, out, |out| {
                                    if item.is_null() {
                                        return Ok(());
                                    }
                                    encode_message(inner, item, out, depth + 1)
                                })?;
                            }
                            _ => {}
                        }
                        Ok(())
                    })?;
                }
            }
            _ if f.repeated => {
                let Value::Array(items) = val else {
                    return err(format!("{}: expected a list", f.name));
                };
                for item in items {
                    if item.is_null() {
                        if let Kind::Message(_) = f.kind {
                            bytes_field(f.tag, b"", out);
                        }
                        continue;
                    }
                    scalar(f.kind, f.tag, item, f.name, out, depth)?;
                }
            }
            _ => scalar(f.kind, f.tag, val, f.name, out, depth)?,
        }
    }
    Ok(())
}

fn named(name: &str) -> Result<&'static Message, EncodeError> {
    MESSAGES
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| EncodeError(format!("no message {name}")))
}

/// PartialObjectMetadata(List) of meta.k8s.io, which have no generated layout: an
/// ObjectMeta at 1, and for the list a ListMeta at 1 and the items at 2.
fn partial_metadata(obj: &Value, kind: &str, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let object_meta = named("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")?;
    let item = |v: &Value, out: &mut Vec<u8>| -> Result<(), EncodeError> {
        if let Some(m) = v.get("metadata").filter(|m| !m.is_null()) {
            nested(1, out, |out| encode_message(object_meta, m, out, 1))?;
        }
        Ok(())
    };
    if kind == "PartialObjectMetadata" {
        return item(obj, out);
    }
    if let Some(m) = obj.get("metadata").filter(|m| !m.is_null()) {
        let list_meta = named("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")?;
        nested(1, out, |out| encode_message(list_meta, m, out, 1))?;
    }
    for i in obj
        .get("items")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        nested(2, out, |out| item(i, out))?;
    }
    Ok(())
}

/// Whether objects of this apiVersion and kind have a protobuf encoding.
pub fn supports(api_version: &str, kind: &str) -> bool {
    if api_version.starts_with("meta.k8s.io/") {
        return matches!(kind, "PartialObjectMetadata" | "PartialObjectMetadataList");
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    message_for(group, version, kind).is_some()
}

/// The message of an object (its fields only, no envelope).
pub fn encode_raw(obj: &Value) -> Result<Vec<u8>, EncodeError> {
    let field = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("");
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    let mut out = Vec::new();
    if api_version.starts_with("meta.k8s.io/")
        && matches!(kind, "PartialObjectMetadata" | "PartialObjectMetadataList")
    {
        partial_metadata(obj, kind, &mut out)?;
        return Ok(out);
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let msg = message_for(group, version, kind).ok_or_else(|| {
        EncodeError(format!(
            "no protobuf encoding known for {api_version}, Kind={kind}"
        ))
    })?;
    encode_message(msg, obj, &mut out, 0)?;
    Ok(out)
}

/// A whole protobuf body: magic, then `runtime.Unknown` { typeMeta, raw, contentEncoding,
/// contentType } as upstream writes it.
pub fn encode_object(obj: &Value) -> Result<Vec<u8>, EncodeError> {
    let raw = encode_raw(obj)?;
    let field = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("");
    let mut out = Vec::with_capacity(raw.len() + 64);
    out.extend_from_slice(MAGIC);
    nested(1, &mut out, |out| {
        bytes_field(1, field("apiVersion").as_bytes(), out);
        bytes_field(2, field("kind").as_bytes(), out);
        Ok(())
    })?;
    bytes_field(2, &raw, &mut out);
    bytes_field(3, b"", &mut out);
    bytes_field(4, b"", &mut out);
    Ok(out)
}

/// One frame of a protobuf watch stream: a big-endian length, then a raw
/// `metav1.WatchEvent` { type, object: RawExtension { raw: enveloped object } }.
pub fn watch_frame(event_type: &str, object: &[u8]) -> Vec<u8> {
    let mut event = Vec::with_capacity(object.len() + 24);
    bytes_field(1, event_type.as_bytes(), &mut event);
    key(2, 2, &mut event);
    let mut raw_ext = Vec::with_capacity(object.len() + 6);
    bytes_field(1, object, &mut raw_ext);
    varint(raw_ext.len() as u64, &mut event);
    event.extend_from_slice(&raw_ext);
    let mut frame = Vec::with_capacity(event.len() + 4);
    frame.extend_from_slice(&(event.len() as u32).to_be_bytes());
    frame.extend_from_slice(&event);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protobuf::decode_object;
    use serde_json::json;

    fn round_trip(v: Value) {
        let bytes = encode_object(&v).unwrap();
        assert!(bytes.starts_with(MAGIC));
        assert_eq!(decode_object(&bytes).unwrap(), v);
    }

    #[test]
    fn objects_round_trip_through_the_decoder() {
        round_trip(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "app", "namespace": "demo", "labels": {"b": "2", "a": "1"},
                         "creationTimestamp": "2024-05-01T10:00:00Z", "resourceVersion": "12",
                         "managedFields": [{"manager": "kubectl", "operation": "Apply",
                             "apiVersion": "v1", "time": "2024-05-01T10:00:00Z",
                             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:color": {}}}}]},
            "data": {"color": "blue"},
            "binaryData": {"bin": "AAEC"},
            "immutable": false,
        }));
        round_trip(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "generation": 3,
                         "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o",
                             "uid": "u", "controller": true}]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "c", "image": "busybox",
                            "args": ["sleep", "1"], "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                            "securityContext": {"runAsUser": 0, "privileged": false},
                            "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 10},
                            "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}],
                            "volumes": [{"name": "v", "configMap": {"name": "cm", "defaultMode": 420}}],
                            "terminationGracePeriodSeconds": 30}}},
            "status": {"replicas": 2, "conditions": [{"type": "Available", "status": "True",
                        "lastUpdateTime": "2024-05-01T10:00:00Z"}]},
        }));
        round_trip(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "type": "Opaque", "data": {"k": "c2VjcmV0"},
        }));
        round_trip(json!({
            "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
            "message": "nope", "reason": "NotFound", "code": 404,
            "details": {"name": "x", "kind": "pods", "causes": [{"reason": "FieldValueInvalid", "field": "a"}]},
        }));
        round_trip(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "n", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "n", "leaseDurationSeconds": 40,
                     "renewTime": "2024-05-01T10:00:00.123456Z"},
        }));
        round_trip(json!({
            "apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "5", "continue": "x"},
            "items": [{"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}],
                "overhead": {"cpu": "1"}}, "status": {"phase": "Running", "podIPs": [{"ip": "198.18.0.2"}]}}],
        }));
    }

    #[test]
    fn negative_numbers_and_int_or_string() {
        round_trip(json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 8081}]},
        }));
        round_trip(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}], "securityContext": {"runAsUser": -1}},
        }));
    }

    #[test]
    fn partial_metadata_and_watch_frames() {
        let list = json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
            "metadata": {"resourceVersion": "9"},
            "items": [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                       "metadata": {"name": "a", "uid": "u1"}}],
        });
        assert!(supports("meta.k8s.io/v1", "PartialObjectMetadataList"));
        assert!(!supports("example.com/v1", "Widget"));
        // Its layout is a ConfigMapList's where ConfigMaps have nothing but metadata.
        let raw = encode_raw(&list).unwrap();
        let as_list = crate::protobuf::decode_message(
            message_for("", "v1", "ConfigMapList").unwrap(),
            &raw,
            0,
        )
        .unwrap();
        assert_eq!(
            as_list,
            json!({"metadata": {"resourceVersion": "9"}, "items": [{"metadata": {"name": "a", "uid": "u1"}}]})
        );

        let obj = encode_object(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
        )
        .unwrap();
        let frame = watch_frame("ADDED", &obj);
        let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(len, frame.len() - 4);
        assert_eq!(&frame[4..11], b"\x0a\x05ADDED");
        // object (2) → RawExtension { raw (1): the enveloped object }.
        let rest = &frame[11..];
        assert_eq!(rest[0], 0x12);
        assert!(rest.ends_with(&obj));
        assert_eq!(decode_object(&obj).unwrap()["metadata"]["name"], "a");
    }

    #[test]
    fn durations_and_errors() {
        assert_eq!(parse_go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration("300ms"), Some(300_000_000));
        assert_eq!(parse_go_duration("-2s"), Some(-2_000_000_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("1d"), None);
        assert!(encode_object(&json!({"apiVersion": "v1", "kind": "Nope"})).is_err());
        assert!(
            encode_object(&json!({"apiVersion": "v1", "kind": "ConfigMap", "data": [1]})).is_err()
        );
        assert!(
            encode_object(&json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": "!!"}}))
                .is_err()
        );
    }
}
