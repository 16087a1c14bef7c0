//! Runtime values.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::error::{err, EvalError};
use crate::functions::ip::Cidr;
use crate::functions::quantity::Quantity;
use crate::functions::time::{Duration, Timestamp};
use crate::functions::url::Url;

/// A map key: CEL allows bool, int, uint and string keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// A boolean key.
    Bool(bool),
    /// A signed integer key.
    Int(i64),
    /// An unsigned integer key.
    Uint(u64),
    /// A string key.
    String(Arc<str>),
}

impl Key {
    /// Converts a value into a key; other kinds of values cannot be map keys.
    pub fn from_value(v: &Value) -> Result<Key, EvalError> {
        match v {
            Value::Bool(b) => Ok(Key::Bool(*b)),
            Value::Int(i) => Ok(Key::Int(*i)),
            Value::Uint(u) => Ok(Key::Uint(*u)),
            Value::String(s) => Ok(Key::String(s.clone())),
            other => err(format!("unsupported map key type: {}", other.type_name())),
        }
    }

    /// The key as a value.
    pub fn to_value(&self) -> Value {
        match self {
            Key::Bool(b) => Value::Bool(*b),
            Key::Int(i) => Value::Int(*i),
            Key::Uint(u) => Value::Uint(*u),
            Key::String(s) => Value::String(s.clone()),
        }
    }

    fn to_json_key(&self) -> String {
        match self {
            Key::Bool(b) => b.to_string(),
            Key::Int(i) => i.to_string(),
            Key::Uint(u) => u.to_string(),
            Key::String(s) => s.to_string(),
        }
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Key {
        Key::String(Arc::from(s))
    }
}

/// The representation of CEL maps (deterministic key order).
pub type MapValue = BTreeMap<Key, Value>;

/// A CEL value.
#[derive(Debug, Clone)]
pub enum Value {
    /// `null`.
    Null,
    /// `bool`.
    Bool(bool),
    /// `int` (64-bit signed).
    Int(i64),
    /// `uint` (64-bit unsigned).
    Uint(u64),
    /// `double`.
    Double(f64),
    /// `string`.
    String(Arc<str>),
    /// `bytes`.
    Bytes(Arc<[u8]>),
    /// `list`.
    List(Arc<Vec<Value>>),
    /// `map`.
    Map(Arc<MapValue>),
    /// `google.protobuf.Duration`.
    Duration(Duration),
    /// `google.protobuf.Timestamp`.
    Timestamp(Timestamp),
    /// A type value such as `int` (the result of `type(x)`).
    Type(&'static str),
    /// `optional_type`: `None` is `optional.none()`.
    Optional(Option<Box<Value>>),
    /// Kubernetes `resource.Quantity`.
    Quantity(Quantity),
    /// Kubernetes URL library value.
    Url(Arc<Url>),
    /// Kubernetes IP library value.
    Ip(IpAddr),
    /// Kubernetes CIDR library value.
    Cidr(Cidr),
    /// The Kubernetes authorizer library's `authorizer` variable.
    Authorizer(Arc<crate::functions::authz::AuthzRoot>),
    /// An authorizer check being built, or its decision.
    Authz(Arc<crate::functions::authz::Authz>),
}

impl Value {
    /// The CEL type name of the value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null_type",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint(_) => "uint",
            Value::Double(_) => "double",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Duration(_) => "google.protobuf.Duration",
            Value::Timestamp(_) => "google.protobuf.Timestamp",
            Value::Type(_) => "type",
            Value::Optional(_) => "optional_type",
            Value::Quantity(_) => "kubernetes.Quantity",
            Value::Url(_) => "kubernetes.URL",
            Value::Ip(_) => "net.IP",
            Value::Cidr(_) => "net.CIDR",
            Value::Authorizer(_) => "kubernetes.authorization.Authorizer",
            Value::Authz(a) => a.type_name(),
        }
    }

    /// Builds a list value.
    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Arc::new(items))
    }

    /// Builds a map value with string keys.
    pub fn map_of<I, K>(entries: I) -> Value
    where
        I: IntoIterator<Item = (K, Value)>,
        K: AsRef<str>,
    {
        Value::Map(Arc::new(
            entries
                .into_iter()
                .map(|(k, v)| (Key::from(k.as_ref()), v))
                .collect(),
        ))
    }

    /// Converts the value to JSON. Returns `None` for values without a JSON form
    /// (NaN / infinite doubles).
    pub fn to_json(&self) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        Some(match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Uint(u) => J::from(*u),
            Value::Double(d) => J::Number(serde_json::Number::from_f64(*d)?),
            Value::String(s) => J::String(s.to_string()),
            Value::Bytes(b) => {
                use base64::Engine;
                J::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
            Value::List(items) => J::Array(
                items
                    .iter()
                    .map(Value::to_json)
                    .collect::<Option<Vec<_>>>()?,
            ),
            Value::Map(m) => {
                let mut out = serde_json::Map::new();
                for (k, v) in m.iter() {
                    out.insert(k.to_json_key(), v.to_json()?);
                }
                J::Object(out)
            }
            Value::Duration(d) => J::String(d.to_string()),
            Value::Timestamp(t) => J::String(t.to_string()),
            Value::Type(name) => J::String((*name).to_string()),
            Value::Optional(None) => J::Null,
            Value::Optional(Some(v)) => v.to_json()?,
            Value::Quantity(q) => J::String(q.to_string()),
            Value::Url(u) => J::String(u.to_string()),
            Value::Ip(ip) => J::String(ip.to_string()),
            Value::Cidr(c) => J::String(c.to_string()),
            Value::Authorizer(_) | Value::Authz(_) => return None,
        })
    }

    /// Shallow size used for cost accounting.
    pub(crate) fn cost_size(&self) -> u64 {
        let n = match self {
            Value::String(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::List(l) => l.len(),
            Value::Map(m) => m.len(),
            _ => 0,
        };
        u64::try_from(n).unwrap_or(u64::MAX)
    }
}

impl From<&serde_json::Value> for Value {
    fn from(v: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match v {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Value::Uint(u)
                } else {
                    Value::Double(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            J::String(s) => Value::String(Arc::from(s.as_str())),
            J::Array(items) => Value::List(Arc::new(items.iter().map(Value::from).collect())),
            J::Object(m) => Value::Map(Arc::new(
                m.iter()
                    .map(|(k, v)| (Key::String(Arc::from(k.as_str())), Value::from(v)))
                    .collect(),
            )),
        }
    }
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Value {
        Value::from(&v)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<u64> for Value {
    fn from(u: u64) -> Value {
        Value::Uint(u)
    }
}

impl From<f64> for Value {
    fn from(d: f64) -> Value {
        Value::Double(d)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(Arc::from(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(Arc::from(s))
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Value {
        Value::List(Arc::new(items))
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        equals(self, other)
    }
}

/// Compares two numbers of possibly different numeric kinds.
/// `None` when either is not a number or the comparison is unordered (NaN).
pub(crate) fn compare_numbers(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Uint(x), Value::Uint(y)) => Some(x.cmp(y)),
        (Value::Double(x), Value::Double(y)) => x.partial_cmp(y),
        (Value::Int(x), Value::Uint(y)) => Some(i128::from(*x).cmp(&i128::from(*y))),
        (Value::Uint(x), Value::Int(y)) => Some(i128::from(*x).cmp(&i128::from(*y))),
        (Value::Int(x), Value::Double(y)) => cmp_int_double(i128::from(*x), *y),
        (Value::Uint(x), Value::Double(y)) => cmp_int_double(i128::from(*x), *y),
        (Value::Double(x), Value::Int(y)) => {
            cmp_int_double(i128::from(*y), *x).map(Ordering::reverse)
        }
        (Value::Double(x), Value::Uint(y)) => {
            cmp_int_double(i128::from(*y), *x).map(Ordering::reverse)
        }
        _ => None,
    }
}

fn cmp_int_double(i: i128, d: f64) -> Option<Ordering> {
    if d.is_nan() {
        return None;
    }
    // Exact comparison: compare against the integral part first, then the fraction.
    if d >= 1.0e19 {
        return Some(Ordering::Less);
    }
    if d <= -1.0e19 {
        return Some(Ordering::Greater);
    }
    let t = d.trunc();
    #[allow(clippy::cast_possible_truncation)]
    let ti = t as i128;
    match i.cmp(&ti) {
        Ordering::Equal => {
            if d > t {
                Some(Ordering::Less)
            } else if d < t {
                Some(Ordering::Greater)
            } else {
                Some(Ordering::Equal)
            }
        }
        other => Some(other),
    }
}

fn is_number(v: &Value) -> bool {
    matches!(v, Value::Int(_) | Value::Uint(_) | Value::Double(_))
}

/// CEL heterogeneous equality: values of different kinds are unequal, except numbers.
pub(crate) fn equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (x, y) if is_number(x) && is_number(y) => compare_numbers(x, y) == Some(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            Arc::ptr_eq(x, y)
                || (x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| equals(p, q)))
        }
        (Value::Map(x), Value::Map(y)) => {
            Arc::ptr_eq(x, y)
                || (x.len() == y.len()
                    && x.iter().all(
                        |(k, v)| matches!(map_get(y, &k.to_value()), Ok(Some(w)) if equals(v, w)),
                    ))
        }
        (Value::Duration(x), Value::Duration(y)) => x == y,
        (Value::Timestamp(x), Value::Timestamp(y)) => x == y,
        (Value::Type(x), Value::Type(y)) => x == y,
        (Value::Optional(x), Value::Optional(y)) => match (x, y) {
            (None, None) => true,
            (Some(p), Some(q)) => equals(p, q),
            _ => false,
        },
        (Value::Quantity(x), Value::Quantity(y)) => x == y,
        (Value::Url(x), Value::Url(y)) => x == y,
        (Value::Ip(x), Value::Ip(y)) => x == y,
        (Value::Cidr(x), Value::Cidr(y)) => x == y,
        _ => false,
    }
}

/// Orders two values for the relational operators.
/// `Err(())` when the kinds cannot be compared; `Ok(None)` when unordered (NaN).
pub(crate) fn compare(a: &Value, b: &Value) -> Result<Option<Ordering>, ()> {
    if is_number(a) && is_number(b) {
        return Ok(compare_numbers(a, b));
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => Ok(Some(x.cmp(y))),
        (Value::String(x), Value::String(y)) => Ok(Some(x.cmp(y))),
        (Value::Bytes(x), Value::Bytes(y)) => Ok(Some(x.cmp(y))),
        (Value::Duration(x), Value::Duration(y)) => Ok(Some(x.cmp(y))),
        (Value::Timestamp(x), Value::Timestamp(y)) => Ok(Some(x.cmp(y))),
        _ => Err(()),
    }
}

/// Looks a key up in a map, honouring numeric equality between int, uint and double keys.
pub(crate) fn map_get<'a>(m: &'a MapValue, key: &Value) -> Result<Option<&'a Value>, EvalError> {
    match key {
        Value::String(s) => Ok(m.get(&Key::String(s.clone()))),
        Value::Bool(b) => Ok(m.get(&Key::Bool(*b))),
        Value::Int(i) => Ok(m
            .get(&Key::Int(*i))
            .or_else(|| u64::try_from(*i).ok().and_then(|u| m.get(&Key::Uint(u))))),
        Value::Uint(u) => Ok(m
            .get(&Key::Uint(*u))
            .or_else(|| i64::try_from(*u).ok().and_then(|i| m.get(&Key::Int(i))))),
        Value::Double(d) => {
            if d.fract() != 0.0 || !d.is_finite() {
                return Ok(None);
            }
            if *d >= -9.2e18 && *d <= 9.2e18 {
                #[allow(clippy::cast_possible_truncation)]
                let i = *d as i64;
                return map_get(m, &Value::Int(i));
            }
            if *d >= 0.0 && *d < 1.8e19 {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let u = *d as u64;
                return map_get(m, &Value::Uint(u));
            }
            Ok(None)
        }
        other => err(format!("unsupported map key type: {}", other.type_name())),
    }
}

/// Human readable rendering used by `string()` for simple values and by error messages.
pub(crate) fn key_display(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Double(d) => d.to_string(),
        other => other.type_name().to_string(),
    }
}
