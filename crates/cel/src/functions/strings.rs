//! String functions: the standard `contains`/`startsWith`/`endsWith` and cel-go's strings
//! extension (`charAt`, `indexOf`, `split`, `join`, ...).

use crate::error::{err, EvalError};
use crate::value::Value;

fn int_arg(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn chars(s: &str) -> Vec<char> {
    s.chars().collect()
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn index_err<T>(i: i64) -> Result<T, EvalError> {
    err(format!("index out of range: {i}"))
}

/// Finds `needle` in `hay` (both as code points) starting at code point `from`.
fn find_from(hay: &[char], needle: &[char], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return Some(from);
    }
    let last = hay.len().checked_sub(needle.len())?;
    (from..=last).find(|&i| hay.get(i..i + needle.len()) == Some(needle))
}

fn rfind_upto(hay: &[char], needle: &[char], upto: usize) -> Option<usize> {
    if needle.is_empty() {
        return Some(upto);
    }
    let last = hay.len().checked_sub(needle.len())?.min(upto);
    (0..=last)
        .rev()
        .find(|&i| hay.get(i..i + needle.len()) == Some(needle))
}

fn index_of(s: &str, sub: &str, offset: Option<i64>, last: bool) -> Result<Value, EvalError> {
    let hay = chars(s);
    let needle = chars(sub);
    let len = to_i64(hay.len());
    let found = if last {
        let upto = offset.unwrap_or(len);
        if upto < 0 || upto > len {
            return index_err(upto);
        }
        rfind_upto(&hay, &needle, usize::try_from(upto).unwrap_or(0))
    } else {
        let from = offset.unwrap_or(0);
        if from < 0 || from > len {
            return index_err(from);
        }
        find_from(&hay, &needle, usize::try_from(from).unwrap_or(0))
    };
    Ok(Value::Int(found.map_or(-1, to_i64)))
}

fn substring(s: &str, start: i64, end: Option<i64>) -> Result<Value, EvalError> {
    let cs = chars(s);
    let len = to_i64(cs.len());
    let end = end.unwrap_or(len);
    if start < 0 || start > len {
        return index_err(start);
    }
    if end < 0 || end > len {
        return index_err(end);
    }
    if start > end {
        return err(format!(
            "invalid substring range. start: {start}, end: {end}"
        ));
    }
    let a = usize::try_from(start).unwrap_or(0);
    let b = usize::try_from(end).unwrap_or(0);
    Ok(Value::from(
        cs.get(a..b).unwrap_or(&[]).iter().collect::<String>(),
    ))
}

fn split(s: &str, sep: &str, n: i64) -> Value {
    if n == 0 {
        return Value::list(Vec::new());
    }
    let limit = usize::try_from(n).ok();
    let parts: Vec<Value> = if sep.is_empty() {
        let cs = chars(s);
        match limit {
            Some(l) if l < cs.len() => {
                let mut out: Vec<Value> = cs
                    .iter()
                    .take(l - 1)
                    .map(|c| Value::from(c.to_string()))
                    .collect();
                out.push(Value::from(
                    cs.get(l - 1..).unwrap_or(&[]).iter().collect::<String>(),
                ));
                out
            }
            _ => cs.iter().map(|c| Value::from(c.to_string())).collect(),
        }
    } else {
        match limit {
            Some(l) => s.splitn(l, sep).map(Value::from).collect(),
            None => s.split(sep).map(Value::from).collect(),
        }
    };
    Value::list(parts)
}

fn replace(s: &str, from: &str, to: &str, n: i64) -> Value {
    match usize::try_from(n) {
        Ok(count) => Value::from(s.replacen(from, to, count)),
        Err(_) => Value::from(s.replace(from, to)),
    }
}

fn join(items: &[Value], sep: &str) -> Result<Value, EvalError> {
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s) => parts.push(s.as_ref()),
            other => {
                return err(format!(
                    "join: list contains non-string element of type {}",
                    other.type_name()
                ))
            }
        }
    }
    Ok(Value::from(parts.join(sep)))
}

/// Quotes a string as a CEL string literal.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Member string functions.
pub(crate) fn member(
    name: &str,
    target: &Value,
    args: &[Value],
) -> Option<Result<Value, EvalError>> {
    let Value::String(s) = target else {
        return None;
    };
    let s: &str = s;
    let str_arg = |i: usize| match args.get(i) {
        Some(Value::String(a)) => Some(a.as_ref()),
        _ => None,
    };
    let r = match (name, args.len()) {
        ("contains", 1) => Ok(Value::Bool(s.contains(str_arg(0)?))),
        ("startsWith", 1) => Ok(Value::Bool(s.starts_with(str_arg(0)?))),
        ("endsWith", 1) => Ok(Value::Bool(s.ends_with(str_arg(0)?))),
        ("charAt", 1) => {
            let i = int_arg(args.first()?)?;
            let cs = chars(s);
            if i < 0 || i > to_i64(cs.len()) {
                index_err(i)
            } else {
                let c = usize::try_from(i).ok().and_then(|u| cs.get(u));
                Ok(Value::from(c.map(char::to_string).unwrap_or_default()))
            }
        }
        ("indexOf" | "lastIndexOf", 1 | 2) => {
            let sub = str_arg(0)?;
            let offset = match args.get(1) {
                Some(v) => Some(int_arg(v)?),
                None => None,
            };
            index_of(s, sub, offset, name == "lastIndexOf")
        }
        ("lowerAscii", 0) => Ok(Value::from(s.to_ascii_lowercase())),
        ("upperAscii", 0) => Ok(Value::from(s.to_ascii_uppercase())),
        ("replace", 2 | 3) => {
            let n = match args.get(2) {
                Some(v) => int_arg(v)?,
                None => -1,
            };
            Ok(replace(s, str_arg(0)?, str_arg(1)?, n))
        }
        ("split", 1 | 2) => {
            let n = match args.get(1) {
                Some(v) => int_arg(v)?,
                None => -1,
            };
            Ok(split(s, str_arg(0)?, n))
        }
        ("substring", 1 | 2) => {
            let start = int_arg(args.first()?)?;
            let end = match args.get(1) {
                Some(v) => Some(int_arg(v)?),
                None => None,
            };
            substring(s, start, end)
        }
        ("trim", 0) => Ok(Value::from(s.trim())),
        ("reverse", 0) => Ok(Value::from(s.chars().rev().collect::<String>())),
        _ => return None,
    };
    Some(r)
}

/// `list.join()` lives here because it produces a string.
pub(crate) fn join_member(target: &Value, args: &[Value]) -> Option<Result<Value, EvalError>> {
    let Value::List(items) = target else {
        return None;
    };
    match args {
        [] => Some(join(items, "")),
        [Value::String(sep)] => Some(join(items, sep)),
        _ => None,
    }
}

/// Global string functions.
pub(crate) fn global(name: &str, args: &[Value]) -> Option<Result<Value, EvalError>> {
    match (name, args) {
        ("strings.quote", [Value::String(s)]) => Some(Ok(Value::from(quote(s)))),
        _ => None,
    }
}
