//! cel-go's sets extension: `sets.contains`, `sets.equivalent`, `sets.intersects`.

use crate::error::EvalError;
use crate::value::{equals, Value};

fn contains_all(a: &[Value], b: &[Value]) -> bool {
    b.iter().all(|x| a.iter().any(|y| equals(x, y)))
}

/// Global set functions over lists.
pub(crate) fn global(name: &str, args: &[Value]) -> Option<Result<Value, EvalError>> {
    let [Value::List(a), Value::List(b)] = args else {
        return None;
    };
    let r = match name {
        "sets.contains" => contains_all(a, b),
        "sets.equivalent" => contains_all(a, b) && contains_all(b, a),
        "sets.intersects" => a.iter().any(|x| b.iter().any(|y| equals(x, y))),
        _ => return None,
    };
    Some(Ok(Value::Bool(r)))
}
