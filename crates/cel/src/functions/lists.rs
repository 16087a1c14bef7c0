//! List functions: Kubernetes' list library (`isSorted`, `sum`, `min`, `max`, `indexOf`,
//! `lastIndexOf`) and cel-go's lists extension (`slice`, `flatten`, `distinct`, `reverse`,
//! `sort`, `lists.range`).

use std::cmp::Ordering;

use crate::error::{err, EvalError};
use crate::ops::no_overload;
use crate::value::{compare, equals, Value};

use super::strings::join_member;

/// The maximum nesting depth accepted by `flatten(depth)`.
const MAX_FLATTEN_DEPTH: i64 = 64;

fn order(a: &Value, b: &Value) -> Result<Ordering, EvalError> {
    match compare(a, b) {
        Ok(Some(o)) => Ok(o),
        Ok(None) => Ok(Ordering::Equal),
        Err(()) => Err(no_overload("_<_", &[a, b])),
    }
}

/// A stable merge sort with a fallible comparator (never panics on inconsistent orders).
fn merge_sort(items: Vec<Value>) -> Result<Vec<Value>, EvalError> {
    if items.len() <= 1 {
        return Ok(items);
    }
    let mut right = items;
    let left: Vec<Value> = right.drain(..right.len() / 2).collect();
    let left = merge_sort(left)?;
    let right = merge_sort(right)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut l = left.into_iter().peekable();
    let mut r = right.into_iter().peekable();
    loop {
        let take_left = match (l.peek(), r.peek()) {
            (Some(a), Some(b)) => order(a, b)? != Ordering::Greater,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_left { l.next() } else { r.next() };
        out.extend(next);
    }
    Ok(out)
}

fn sum(items: &[Value]) -> Result<Value, EvalError> {
    let Some(first) = items.first() else {
        return Ok(Value::Int(0));
    };
    let mut acc = match first {
        Value::Int(_) => Value::Int(0),
        Value::Uint(_) => Value::Uint(0),
        Value::Double(_) => Value::Double(0.0),
        Value::Duration(_) => Value::Duration(super::time::Duration::from_nanos(0)),
        other => return Err(no_overload("sum", &[other])),
    };
    for item in items {
        acc = crate::ops::binary(crate::ast::BinOp::Add, &acc, item)?;
    }
    Ok(acc)
}

fn extreme(items: &[Value], want: Ordering, name: &str) -> Result<Value, EvalError> {
    let Some(mut best) = items.first() else {
        return err(format!("{name}(list) called on an empty list"));
    };
    for item in items.iter().skip(1) {
        if order(item, best)? == want {
            best = item;
        }
    }
    Ok(best.clone())
}

fn flatten(items: &[Value], depth: i64, out: &mut Vec<Value>) {
    for item in items {
        match item {
            Value::List(inner) if depth > 0 => flatten(inner, depth - 1, out),
            other => out.push(other.clone()),
        }
    }
}

fn position(items: &[Value], x: &Value, last: bool) -> Value {
    let found = if last {
        items.iter().rposition(|v| equals(v, x))
    } else {
        items.iter().position(|v| equals(v, x))
    };
    Value::Int(found.map_or(-1, |i| i64::try_from(i).unwrap_or(-1)))
}

/// Member list functions.
pub(crate) fn member(
    name: &str,
    target: &Value,
    args: &[Value],
) -> Option<Result<Value, EvalError>> {
    if name == "join" {
        return join_member(target, args);
    }
    let Value::List(items) = target else {
        return None;
    };
    let r = match (name, args) {
        ("isSorted", []) => {
            let mut sorted = true;
            for pair in items.windows(2) {
                if let [a, b] = pair {
                    match order(a, b) {
                        Ok(Ordering::Greater) => {
                            sorted = false;
                            break;
                        }
                        Ok(_) => {}
                        Err(e) => return Some(Err(e)),
                    }
                }
            }
            Ok(Value::Bool(sorted))
        }
        ("sum", []) => sum(items),
        ("min", []) => extreme(items, Ordering::Less, "min"),
        ("max", []) => extreme(items, Ordering::Greater, "max"),
        ("indexOf", [x]) => Ok(position(items, x, false)),
        ("lastIndexOf", [x]) => Ok(position(items, x, true)),
        ("slice", [Value::Int(a), Value::Int(b)]) => {
            let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
            if *a < 0 || *b < 0 {
                err(format!(
                    "cannot slice({a}, {b}), negative indexes not supported"
                ))
            } else if a > b {
                err(format!(
                    "cannot slice({a}, {b}), start index must be less than or equal to end index"
                ))
            } else if *b > len {
                err(format!("cannot slice({a}, {b}), list is length {len}"))
            } else {
                let s = usize::try_from(*a).unwrap_or(0);
                let e = usize::try_from(*b).unwrap_or(0);
                Ok(Value::list(items.get(s..e).unwrap_or(&[]).to_vec()))
            }
        }
        ("flatten", []) => {
            let mut out = Vec::new();
            flatten(items, 1, &mut out);
            Ok(Value::list(out))
        }
        ("flatten", [Value::Int(d)]) => {
            if *d < 0 {
                err("level must be non-negative")
            } else {
                let mut out = Vec::new();
                flatten(items, (*d).min(MAX_FLATTEN_DEPTH), &mut out);
                Ok(Value::list(out))
            }
        }
        ("distinct", []) => {
            let mut out: Vec<Value> = Vec::new();
            for item in items.iter() {
                if !out.iter().any(|v| equals(v, item)) {
                    out.push(item.clone());
                }
            }
            Ok(Value::list(out))
        }
        ("reverse", []) => Ok(Value::list(items.iter().rev().cloned().collect())),
        ("sort", []) => merge_sort(items.as_ref().clone()).map(Value::list),
        _ => return None,
    };
    Some(r)
}

/// Global list functions.
pub(crate) fn global(name: &str, args: &[Value]) -> Option<Result<Value, EvalError>> {
    match (name, args) {
        ("lists.range", [Value::Int(n)]) => Some(if *n < 0 {
            err("lists.range: negative size")
        } else {
            Ok(Value::list((0..*n).map(Value::Int).collect()))
        }),
        _ => None,
    }
}
