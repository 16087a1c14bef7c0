//! Arithmetic, comparison and membership operators.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::ast::BinOp;
use crate::error::{err, EvalError};
use crate::functions::time;
use crate::value::{compare, equals, map_get, Value};

/// The standard "no matching overload" error for an operator or function.
pub(crate) fn no_overload(name: &str, args: &[&Value]) -> EvalError {
    let types: Vec<&str> = args.iter().map(|v| v.type_name()).collect();
    EvalError::new(format!(
        "no matching overload for '{name}' applied to '({})'",
        types.join(", ")
    ))
}

fn overflow<T>() -> Result<T, EvalError> {
    err("integer overflow")
}

/// Applies a binary operator to two evaluated operands.
pub(crate) fn binary(op: BinOp, a: &Value, b: &Value) -> Result<Value, EvalError> {
    match op {
        BinOp::Eq => Ok(Value::Bool(equals(a, b))),
        BinOp::Ne => Ok(Value::Bool(!equals(a, b))),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let ord = compare(a, b).map_err(|()| no_overload(op.name(), &[a, b]))?;
            Ok(Value::Bool(match ord {
                None => false,
                Some(o) => match op {
                    BinOp::Lt => o == Ordering::Less,
                    BinOp::Le => o != Ordering::Greater,
                    BinOp::Gt => o == Ordering::Greater,
                    _ => o != Ordering::Less,
                },
            }))
        }
        BinOp::In => membership(a, b),
        BinOp::Add => add(a, b),
        BinOp::Sub => sub(a, b),
        BinOp::Mul => mul(a, b),
        BinOp::Div => div(a, b),
        BinOp::Rem => rem(a, b),
    }
}

fn membership(elem: &Value, container: &Value) -> Result<Value, EvalError> {
    match container {
        Value::List(items) => Ok(Value::Bool(items.iter().any(|v| equals(v, elem)))),
        Value::Map(m) => match elem {
            Value::String(_)
            | Value::Int(_)
            | Value::Uint(_)
            | Value::Bool(_)
            | Value::Double(_) => Ok(Value::Bool(map_get(m, elem)?.is_some())),
            _ => Ok(Value::Bool(false)),
        },
        _ => Err(no_overload("@in", &[elem, container])),
    }
}

fn add(a: &Value, b: &Value) -> Result<Value, EvalError> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x
            .checked_add(*y)
            .map_or_else(overflow, |v| Ok(Value::Int(v))),
        (Value::Uint(x), Value::Uint(y)) => x
            .checked_add(*y)
            .map_or_else(overflow, |v| Ok(Value::Uint(v))),
        (Value::Double(x), Value::Double(y)) => Ok(Value::Double(x + y)),
        (Value::String(x), Value::String(y)) => {
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            Ok(Value::String(Arc::from(s)))
        }
        (Value::Bytes(x), Value::Bytes(y)) => {
            let mut v = Vec::with_capacity(x.len() + y.len());
            v.extend_from_slice(x);
            v.extend_from_slice(y);
            Ok(Value::Bytes(Arc::from(v)))
        }
        (Value::List(x), Value::List(y)) => {
            if y.is_empty() {
                return Ok(a.clone());
            }
            if x.is_empty() {
                return Ok(b.clone());
            }
            let mut v = Vec::with_capacity(x.len() + y.len());
            v.extend(x.iter().cloned());
            v.extend(y.iter().cloned());
            Ok(Value::List(Arc::new(v)))
        }
        _ => time::add(a, b).unwrap_or_else(|| Err(no_overload("_+_", &[a, b]))),
    }
}

fn sub(a: &Value, b: &Value) -> Result<Value, EvalError> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x
            .checked_sub(*y)
            .map_or_else(overflow, |v| Ok(Value::Int(v))),
        (Value::Uint(x), Value::Uint(y)) => x
            .checked_sub(*y)
            .map_or_else(overflow, |v| Ok(Value::Uint(v))),
        (Value::Double(x), Value::Double(y)) => Ok(Value::Double(x - y)),
        _ => time::sub(a, b).unwrap_or_else(|| Err(no_overload("_-_", &[a, b]))),
    }
}

fn mul(a: &Value, b: &Value) -> Result<Value, EvalError> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x
            .checked_mul(*y)
            .map_or_else(overflow, |v| Ok(Value::Int(v))),
        (Value::Uint(x), Value::Uint(y)) => x
            .checked_mul(*y)
            .map_or_else(overflow, |v| Ok(Value::Uint(v))),
        (Value::Double(x), Value::Double(y)) => Ok(Value::Double(x * y)),
        _ => Err(no_overload("_*_", &[a, b])),
    }
}

fn div(a: &Value, b: &Value) -> Result<Value, EvalError> {
    match (a, b) {
        (Value::Int(_), Value::Int(0)) | (Value::Uint(_), Value::Uint(0)) => {
            err("division by zero")
        }
        (Value::Int(x), Value::Int(y)) => x
            .checked_div(*y)
            .map_or_else(overflow, |v| Ok(Value::Int(v))),
        (Value::Uint(x), Value::Uint(y)) => x
            .checked_div(*y)
            .map_or_else(overflow, |v| Ok(Value::Uint(v))),
        (Value::Double(x), Value::Double(y)) => Ok(Value::Double(x / y)),
        _ => Err(no_overload("_/_", &[a, b])),
    }
}

fn rem(a: &Value, b: &Value) -> Result<Value, EvalError> {
    match (a, b) {
        (Value::Int(_), Value::Int(0)) | (Value::Uint(_), Value::Uint(0)) => err("modulus by zero"),
        (Value::Int(x), Value::Int(y)) => x
            .checked_rem(*y)
            .map_or_else(overflow, |v| Ok(Value::Int(v))),
        (Value::Uint(x), Value::Uint(y)) => x
            .checked_rem(*y)
            .map_or_else(overflow, |v| Ok(Value::Uint(v))),
        _ => Err(no_overload("_%_", &[a, b])),
    }
}

/// Unary negation.
pub(crate) fn negate(v: &Value) -> Result<Value, EvalError> {
    match v {
        Value::Int(i) => i.checked_neg().map_or_else(overflow, |n| Ok(Value::Int(n))),
        Value::Double(d) => Ok(Value::Double(-d)),
        Value::Duration(d) => d.nanos.checked_neg().map_or_else(overflow, |n| {
            Ok(Value::Duration(time::Duration::from_nanos(n)))
        }),
        other => Err(no_overload("-_", &[other])),
    }
}
