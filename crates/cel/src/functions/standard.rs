//! Standard definitions: `size`, `type`, `dyn` and the type conversion functions.

use std::sync::Arc;

use super::time::{parse_duration, parse_timestamp, Timestamp};
use crate::error::{err, EvalError};
use crate::value::Value;

fn size_of(v: &Value) -> Option<Result<Value, EvalError>> {
    let n = match v {
        Value::String(s) => s.chars().count(),
        Value::Bytes(b) => b.len(),
        Value::List(l) => l.len(),
        Value::Map(m) => m.len(),
        _ => return None,
    };
    Some(
        i64::try_from(n)
            .map(Value::Int)
            .map_err(|_| EvalError::new("integer overflow")),
    )
}

/// Formats a double like Go's `%g`.
pub(crate) fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".to_string();
    }
    if d.is_infinite() {
        return if d > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let sci = format!("{d:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return d.to_string();
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        d.to_string()
    }
}

fn to_int(v: &Value) -> Result<Value, EvalError> {
    match v {
        Value::Int(i) => Ok(Value::Int(*i)),
        Value::Uint(u) => i64::try_from(*u)
            .map(Value::Int)
            .map_err(|_| EvalError::new("range error converting uint to int")),
        Value::Double(d) => {
            if d.is_nan() || *d <= -9.223_372_036_854_776e18 || *d >= 9.223_372_036_854_776e18 {
                return err("range error converting double to int");
            }
            #[allow(clippy::cast_possible_truncation)]
            let i = d.trunc() as i64;
            Ok(Value::Int(i))
        }
        Value::String(s) => s
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| EvalError::new(format!("cannot convert string '{s}' to int"))),
        Value::Timestamp(t) => Ok(Value::Int(t.unix_seconds())),
        Value::Duration(d) => Ok(Value::Int(d.nanos)),
        Value::Bool(b) => Ok(Value::Int(i64::from(*b))),
        other => err(format!(
            "type conversion error from '{}' to 'int'",
            other.type_name()
        )),
    }
}

fn to_uint(v: &Value) -> Result<Value, EvalError> {
    match v {
        Value::Uint(u) => Ok(Value::Uint(*u)),
        Value::Int(i) => u64::try_from(*i)
            .map(Value::Uint)
            .map_err(|_| EvalError::new("range error converting int to uint")),
        Value::Double(d) => {
            if d.is_nan() || *d < 0.0 || *d >= 1.844_674_407_370_955_2e19 {
                return err("range error converting double to uint");
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let u = d.trunc() as u64;
            Ok(Value::Uint(u))
        }
        Value::String(s) => s
            .parse::<u64>()
            .map(Value::Uint)
            .map_err(|_| EvalError::new(format!("cannot convert string '{s}' to uint"))),
        other => err(format!(
            "type conversion error from '{}' to 'uint'",
            other.type_name()
        )),
    }
}

#[allow(clippy::cast_precision_loss)]
fn to_double(v: &Value) -> Result<Value, EvalError> {
    match v {
        Value::Double(d) => Ok(Value::Double(*d)),
        Value::Int(i) => Ok(Value::Double(*i as f64)),
        Value::Uint(u) => Ok(Value::Double(*u as f64)),
        Value::String(s) => s
            .parse::<f64>()
            .map(Value::Double)
            .map_err(|_| EvalError::new(format!("cannot convert string '{s}' to double"))),
        other => err(format!(
            "type conversion error from '{}' to 'double'",
            other.type_name()
        )),
    }
}

fn to_string(v: &Value) -> Option<Result<Value, EvalError>> {
    let s = match v {
        Value::String(_) => return Some(Ok(v.clone())),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Double(d) => format_double(*d),
        Value::Bool(b) => b.to_string(),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => return Some(err("invalid UTF-8 in bytes, cannot convert to string")),
        },
        Value::Duration(d) => d.to_string(),
        Value::Timestamp(t) => t.to_string(),
        Value::Ip(ip) => ip.to_string(),
        Value::Cidr(c) => c.to_string(),
        Value::Url(u) => u.to_string(),
        Value::Quantity(q) => q.to_string(),
        Value::Type(t) => (*t).to_string(),
        _ => return None,
    };
    Some(Ok(Value::from(s)))
}

fn to_bool(v: &Value) -> Result<Value, EvalError> {
    match v {
        Value::Bool(b) => Ok(Value::Bool(*b)),
        Value::String(s) => match s.as_ref() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
            _ => err(format!(
                "type conversion error from 'string' to 'bool': '{s}'"
            )),
        },
        other => err(format!(
            "type conversion error from '{}' to 'bool'",
            other.type_name()
        )),
    }
}

/// Global standard functions.
pub(crate) fn global(name: &str, args: &[Value]) -> Option<Result<Value, EvalError>> {
    let [arg] = args else {
        return None;
    };
    Some(match name {
        "size" => return size_of(arg),
        "type" => Ok(Value::Type(arg.type_name())),
        "dyn" => Ok(arg.clone()),
        "int" => to_int(arg),
        "uint" => to_uint(arg),
        "double" => to_double(arg),
        "string" => return to_string(arg),
        "bool" => to_bool(arg),
        "bytes" => match arg {
            Value::Bytes(_) => Ok(arg.clone()),
            Value::String(s) => Ok(Value::Bytes(Arc::from(s.as_bytes()))),
            _ => return None,
        },
        "duration" => match arg {
            Value::Duration(_) => Ok(arg.clone()),
            Value::String(s) => parse_duration(s).map(Value::Duration),
            _ => return None,
        },
        "timestamp" => match arg {
            Value::Timestamp(_) => Ok(arg.clone()),
            Value::String(s) => parse_timestamp(s).map(Value::Timestamp),
            Value::Int(i) => {
                Timestamp::from_unix_nanos(i128::from(*i) * 1_000_000_000).map(Value::Timestamp)
            }
            _ => return None,
        },
        _ => return None,
    })
}

/// Member form of `size`.
pub(crate) fn member(
    name: &str,
    target: &Value,
    args: &[Value],
) -> Option<Result<Value, EvalError>> {
    match (name, args) {
        ("size", []) => size_of(target),
        _ => None,
    }
}
