//! Optional values: `optional.of`, `optional.none`, `optional.ofNonZeroValue` and methods.

use crate::error::{err, EvalError};
use crate::value::Value;

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Uint(u) => *u == 0,
        Value::Double(d) => *d == 0.0,
        Value::String(s) => s.is_empty(),
        Value::Bytes(b) => b.is_empty(),
        Value::List(l) => l.is_empty(),
        Value::Map(m) => m.is_empty(),
        Value::Duration(d) => d.nanos == 0,
        Value::Timestamp(t) => t.unix_nanos() == 0,
        Value::Optional(o) => o.is_none(),
        _ => false,
    }
}

/// Global optional constructors.
pub(crate) fn global(name: &str, args: &[Value]) -> Option<Result<Value, EvalError>> {
    let v = match (name, args) {
        ("optional.of", [x]) => Value::Optional(Some(Box::new(x.clone()))),
        ("optional.none", []) => Value::Optional(None),
        ("optional.ofNonZeroValue", [x]) => {
            if is_zero(x) {
                Value::Optional(None)
            } else {
                Value::Optional(Some(Box::new(x.clone())))
            }
        }
        _ => return None,
    };
    Some(Ok(v))
}

/// Optional methods.
pub(crate) fn member(
    name: &str,
    target: &Value,
    args: &[Value],
) -> Option<Result<Value, EvalError>> {
    let Value::Optional(opt) = target else {
        return None;
    };
    let r = match (name, args) {
        ("hasValue", []) => Ok(Value::Bool(opt.is_some())),
        ("value", []) => match opt {
            Some(v) => Ok(v.as_ref().clone()),
            None => err("optional.none() dereference"),
        },
        ("orValue", [d]) => Ok(opt.as_deref().cloned().unwrap_or_else(|| d.clone())),
        ("or", [other @ Value::Optional(_)]) => Ok(if opt.is_some() {
            target.clone()
        } else {
            other.clone()
        }),
        _ => return None,
    };
    Some(r)
}
