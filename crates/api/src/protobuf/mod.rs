//! Reading Kubernetes protobuf bodies (`application/vnd.kubernetes.protobuf`) into the
//! JSON form the API server works on, as upstream's `runtime/serializer/protobuf`: the
//! `k8s\0` magic, a `runtime.Unknown` envelope naming apiVersion and kind, and the object's
//! message. Message layouts are generated (`hack/gen-protobuf.py`) from upstream's
//! generated.proto (via the k8s-pb crate) and OpenAPI document.
//!
//! JSON follows upstream's conventions: zero scalars are dropped unless the field is
//! required or a pointer upstream (Go's `omitempty`), bytes become base64, and the
//! wrapper types (Time, Quantity, IntOrString, RawExtension, …) become their JSON forms.

use base64::Engine;
use serde_json::{Map, Number, Value};

pub use crate::generated::protobuf::{KINDS, MESSAGES};

pub mod encode;
pub use encode::{encode_object, watch_frame, EncodeError};

/// The prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8] = b"k8s\0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Int32,
    Int64,
    Bool,
    Double,
    Bytes,
    Message(u16),
    MapString,
    MapBytes,
    MapMessage(u16),
}

/// Messages whose JSON form is not an object of their fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    None,
    Time,
    MicroTime,
    Duration,
    RawString,
    Quantity,
    IntOrString,
    RawBytes,
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub tag: u32,
    pub name: &'static str,
    pub kind: Kind,
    pub repeated: bool,
    pub keep_zero: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Message {
    pub name: &'static str,
    pub special: Special,
    pub fields: &'static [Field],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(what: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(what.into()))
}

/// A protobuf wire reader.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return err("truncated varint");
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return err("varint overflows 64 bits");
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        err("varint too long")
    }
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n =
            usize::try_from(self.varint()?).map_err(|_| DecodeError("length overflows".into()))?;
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| DecodeError("truncated length-delimited field".into()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn fixed(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| DecodeError("truncated fixed-width field".into()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn skip(&mut self, wire: u64) -> Result<(), DecodeError> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.fixed(8).map(|_| ()),
            2 => self.bytes().map(|_| ()),
            5 => self.fixed(4).map(|_| ()),
            w => err(format!("unsupported wire type {w}")),
        }
    }
}

/// Scalar fields and map entries: (tag, wire type, raw varint or bytes).
enum Raw<'a> {
    Varint(u64),
    Fixed64(&'a [u8]),
    Bytes(&'a [u8]),
}

fn fields(buf: &[u8]) -> Result<Vec<(u32, Raw<'_>)>, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let mut out = Vec::new();
    while !r.done() {
        let key = r.varint()?;
        let tag =
            u32::try_from(key >> 3).map_err(|_| DecodeError("field number overflows".into()))?;
        let raw = match key & 7 {
            0 => Raw::Varint(r.varint()?),
            1 => Raw::Fixed64(r.fixed(8)?),
            2 => Raw::Bytes(r.bytes()?),
            w => {
                r.skip(w)?;
                continue;
            }
        };
        out.push((tag, raw));
    }
    Ok(out)
}

fn utf8(b: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError("string field is not UTF-8".into()))
}

pub(crate) fn message(index: u16) -> Result<&'static Message, DecodeError> {
    MESSAGES
        .get(usize::from(index))
        .ok_or_else(|| DecodeError(format!("no message {index}")))
}

fn scalar(kind: Kind, raw: &Raw<'_>, depth: usize) -> Result<Value, DecodeError> {
    Ok(match (kind, raw) {
        (Kind::String, Raw::Bytes(b)) => Value::String(utf8(b)?),
        (Kind::Bytes, Raw::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Kind::Int32, Raw::Varint(v)) => Value::Number(Number::from(*v as i64 as i32)),
        (Kind::Int64, Raw::Varint(v)) => Value::Number(Number::from(*v as i64)),
        (Kind::Bool, Raw::Varint(v)) => Value::Bool(*v != 0),
        (Kind::Double, Raw::Fixed64(b)) => {
            let f = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            Number::from_f64(f).map_or(Value::Null, Value::Number)
        }
        (Kind::Message(i), Raw::Bytes(b)) => decode_message(message(i)?, b, depth + 1)?,
        _ => return err(format!("wire type does not match field type {kind:?}")),
    })
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
        Value::Null => true,
        _ => false,
    }
}

fn decode_map(kind: Kind, entry: &[u8], depth: usize) -> Result<(String, Value), DecodeError> {
    let mut key = String::new();
    let mut value = match kind {
        Kind::MapMessage(_) => Value::Object(Map::new()),
        _ => Value::String(String::new()),
    };
    for (tag, raw) in fields(entry)? {
        match (tag, &raw) {
            (1, Raw::Bytes(b)) => key = utf8(b)?,
            (2, raw) => {
                value = match kind {
                    Kind::MapString => scalar(Kind::String, raw, depth)?,
                    Kind::MapBytes => scalar(Kind::Bytes, raw, depth)?,
                    Kind::MapMessage(i) => scalar(Kind::Message(i), raw, depth)?,
                    _ => return err("not a map"),
                }
            }
            _ => {}
        }
    }
    Ok((key, value))
}

fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let mut n = nanos.unsigned_abs();
    let mut out = String::new();
    let (h, m) = (n / 3_600_000_000_000, n / 60_000_000_000 % 60);
    n %= 60_000_000_000;
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    let secs = n as f64 / 1e9;
    out.push_str(&format!("{}s", secs));
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

fn decode_special(special: Special, buf: &[u8]) -> Result<Value, DecodeError> {
    let fs = fields(buf)?;
    let int = |t: u32| {
        fs.iter()
            .find_map(|(tag, r)| match r {
                Raw::Varint(v) if *tag == t => Some(*v as i64),
                _ => None,
            })
            .unwrap_or(0)
    };
    let bytes = |t: u32| {
        fs.iter().find_map(|(tag, r)| match r {
            Raw::Bytes(b) if *tag == t => Some(*b),
            _ => None,
        })
    };
    Ok(match special {
        Special::Time | Special::MicroTime => {
            let (secs, nanos) = (int(1), int(2));
            if secs == 0 && nanos == 0 {
                Value::Null
            } else if special == Special::Time {
                Value::String(crate::time::format_rfc3339(secs))
            } else {
                let base = crate::time::format_rfc3339(secs);
                Value::String(format!(
                    "{}.{:06}Z",
                    base.trim_end_matches('Z'),
                    nanos / 1000
                ))
            }
        }
        Special::Duration => Value::String(go_duration(int(1))),
        Special::Quantity => Value::String(bytes(1).map(utf8).transpose()?.unwrap_or_default()),
        Special::IntOrString => {
            if int(1) == 1 {
                Value::String(bytes(3).map(utf8).transpose()?.unwrap_or_default())
            } else {
                Value::Number(Number::from(int(2) as i32))
            }
        }
        Special::RawString | Special::RawBytes => match bytes(1) {
            None => Value::Null,
            Some(raw) => serde_json::from_slice(raw)
                .map_err(|e| DecodeError(format!("embedded JSON: {e}")))?,
        },
        Special::None => Value::Null,
    })
}

/// Decodes one message into its JSON value.
pub fn decode_message(msg: &Message, buf: &[u8], depth: usize) -> Result<Value, DecodeError> {
    if depth > 64 {
        return err("message nesting too deep");
    }
    if msg.special != Special::None {
        return decode_special(msg.special, buf);
    }
    let mut obj = Map::new();
    for (tag, raw) in fields(buf)? {
        let Some(f) = msg.fields.iter().find(|f| f.tag == tag) else {
            continue;
        };
        match f.kind {
            Kind::MapString | Kind::MapBytes | Kind::MapMessage(_) => {
                let Raw::Bytes(entry) = raw else {
                    return err(format!("{}: map entry is not length-delimited", f.name));
                };
                let (k, v) = decode_map(f.kind, entry, depth)?;
                let map = obj
                    .entry(f.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = map {
                    m.insert(k, v);
                }
            }
            _ if f.repeated => {
                let items: Vec<Value> = match (&raw, f.kind) {
                    // Packed repeated scalars.
                    (Raw::Bytes(b), Kind::Int32 | Kind::Int64 | Kind::Bool) => {
                        let mut r = Reader { buf: b, pos: 0 };
                        let mut v = Vec::new();
                        while !r.done() {
                            v.push(scalar(f.kind, &Raw::Varint(r.varint()?), depth)?);
                        }
                        v
                    }
                    _ => vec![scalar(f.kind, &raw, depth)?],
                };
                let list = obj
                    .entry(f.name)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(a) = list {
                    a.extend(items);
                }
            }
            // An embedded (`json:",inline"`) struct: its fields are the parent's.
            Kind::Message(_) if f.name.is_empty() => {
                if let Value::Object(inner) = scalar(f.kind, &raw, depth)? {
                    obj.extend(inner);
                }
            }
            _ => {
                let v = scalar(f.kind, &raw, depth)?;
                let drop = match f.kind {
                    Kind::Message(_) => v.is_null(),
                    _ => is_zero(&v) && !f.keep_zero,
                };
                if drop {
                    obj.remove(f.name);
                } else {
                    obj.insert(f.name.to_string(), v);
                }
            }
        }
    }
    Ok(Value::Object(obj))
}

/// The message of a kind.
pub fn message_for(group: &str, version: &str, kind: &str) -> Option<&'static Message> {
    KINDS
        .iter()
        .find(|(g, v, k, _)| *g == group && *v == version && *k == kind)
        .and_then(|(_, _, _, i)| MESSAGES.get(usize::from(*i)))
}

/// Decodes a whole protobuf body: magic, `runtime.Unknown`, then the object, returned
/// with its `apiVersion` and `kind`.
pub fn decode_object(body: &[u8]) -> Result<Value, DecodeError> {
    let Some(rest) = body.strip_prefix(MAGIC) else {
        return err("provided object is not a Kubernetes protobuf message (no k8s magic prefix)");
    };
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    for (tag, r) in fields(rest)? {
        match (tag, r) {
            (1, Raw::Bytes(tm)) => {
                for (t, r) in fields(tm)? {
                    match (t, r) {
                        (1, Raw::Bytes(b)) => api_version = utf8(b)?,
                        (2, Raw::Bytes(b)) => kind = utf8(b)?,
                        _ => {}
                    }
                }
            }
            (2, Raw::Bytes(b)) => raw = Some(b),
            (3, Raw::Bytes(b)) if !b.is_empty() => {
                return err("compressed protobuf bodies are not supported")
            }
            _ => {}
        }
    }
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version.as_str()),
    };
    let msg = message_for(group, version, &kind).ok_or_else(|| {
        DecodeError(format!(
            "no protobuf encoding known for {api_version}, Kind={kind}"
        ))
    })?;
    let mut obj = decode_message(msg, raw.unwrap_or_default(), 0)?;
    if let Value::Object(m) = &mut obj {
        m.insert("apiVersion".into(), Value::String(api_version));
        m.insert("kind".into(), Value::String(kind));
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn field_bytes(tag: u32, b: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(tag) << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }
    fn field_varint(tag: u32, v: u64, out: &mut Vec<u8>) {
        varint(u64::from(tag) << 3, out);
        varint(v, out);
    }

    /// A ConfigMap as client-go's protobuf serializer writes it.
    fn configmap() -> Vec<u8> {
        let mut meta = Vec::new();
        field_bytes(1, b"app", &mut meta); // name
        field_bytes(2, b"", &mut meta); // generateName, empty: dropped
        field_bytes(3, b"demo", &mut meta); // namespace
        field_bytes(8, b"", &mut meta); // creationTimestamp Time{}: dropped
        let mut label = Vec::new();
        field_bytes(1, b"tier", &mut label);
        field_bytes(2, b"web", &mut label);
        field_bytes(11, &label, &mut meta);
        let mut cm = Vec::new();
        field_bytes(1, &meta, &mut cm);
        let mut entry = Vec::new();
        field_bytes(1, b"color", &mut entry);
        field_bytes(2, b"blue", &mut entry);
        field_bytes(2, &entry, &mut cm);
        field_varint(4, 0, &mut cm); // immutable=false: kept (a pointer upstream)
        let mut type_meta = Vec::new();
        field_bytes(1, b"v1", &mut type_meta);
        field_bytes(2, b"ConfigMap", &mut type_meta);
        let mut unknown = Vec::new();
        field_bytes(1, &type_meta, &mut unknown);
        field_bytes(2, &cm, &mut unknown);
        field_bytes(3, b"", &mut unknown);
        field_bytes(4, b"", &mut unknown);
        let mut body = MAGIC.to_vec();
        body.extend(unknown);
        body
    }

    #[test]
    fn decodes_a_configmap() {
        let v = decode_object(&configmap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "app", "namespace": "demo", "labels": {"tier": "web"}},
                "data": {"color": "blue"},
                "immutable": false,
            })
        );
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(decode_object(b"{}").is_err());
        let body = configmap();
        for cut in 0..body.len() {
            let _ = decode_object(&body[..cut]);
        }
        let mut flipped = body.clone();
        for i in 4..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = decode_object(&flipped);
            flipped[i] ^= 0xff;
        }
    }

    #[test]
    fn special_types() {
        let mut ios = Vec::new();
        field_varint(1, 1, &mut ios);
        field_bytes(3, b"25%", &mut ios);
        assert_eq!(
            decode_special(Special::IntOrString, &ios).unwrap(),
            serde_json::json!("25%")
        );
        let mut t = Vec::new();
        field_varint(1, 1_700_000_000, &mut t);
        assert_eq!(
            decode_special(Special::Time, &t).unwrap(),
            serde_json::json!("2023-11-14T22:13:20Z")
        );
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert!(message_for("apps", "v1", "Deployment").is_some());
        assert!(message_for("", "v1", "DeleteOptions").is_some());
    }
}
