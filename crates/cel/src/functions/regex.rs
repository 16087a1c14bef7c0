//! Regular expressions: `matches`, and Kubernetes' `find` / `findAll`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use regex::{Regex, RegexBuilder};

use crate::error::{err, EvalError};
use crate::value::Value;

const CACHE_CAPACITY: usize = 256;
const REGEX_SIZE_LIMIT: usize = 4 << 20;

fn cache() -> &'static Mutex<HashMap<String, Arc<Regex>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Regex>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Compiles a pattern (RE2 syntax), caching compiled programs.
pub(crate) fn compile(pattern: &str) -> Result<Arc<Regex>, EvalError> {
    if let Ok(guard) = cache().lock() {
        if let Some(re) = guard.get(pattern) {
            return Ok(re.clone());
        }
    }
    let re = RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| EvalError::new(format!("invalid regular expression '{pattern}': {e}")))?;
    let re = Arc::new(re);
    if let Ok(mut guard) = cache().lock() {
        if guard.len() >= CACHE_CAPACITY {
            guard.clear();
        }
        guard.insert(pattern.to_string(), re.clone());
    }
    Ok(re)
}

fn matches(s: &str, pattern: &str) -> Result<Value, EvalError> {
    Ok(Value::Bool(compile(pattern)?.is_match(s)))
}

/// Member regex functions on strings.
pub(crate) fn member(
    name: &str,
    target: &Value,
    args: &[Value],
) -> Option<Result<Value, EvalError>> {
    let Value::String(s) = target else {
        return None;
    };
    let r = match (name, args) {
        ("matches", [Value::String(p)]) => matches(s, p),
        ("find", [Value::String(p)]) => {
            compile(p).map(|re| Value::from(re.find(s).map(|m| m.as_str()).unwrap_or("")))
        }
        ("findAll", [Value::String(p)]) => find_all(s, p, -1),
        ("findAll", [Value::String(p), Value::Int(n)]) => find_all(s, p, *n),
        _ => return None,
    };
    Some(r)
}

fn find_all(s: &str, pattern: &str, n: i64) -> Result<Value, EvalError> {
    let re = compile(pattern)?;
    if n == 0 {
        return Ok(Value::list(Vec::new()));
    }
    let limit = usize::try_from(n).unwrap_or(usize::MAX);
    Ok(Value::list(
        re.find_iter(s)
            .take(limit)
            .map(|m| Value::from(m.as_str()))
            .collect(),
    ))
}

/// Global `matches(string, pattern)`.
pub(crate) fn global(name: &str, args: &[Value]) -> Option<Result<Value, EvalError>> {
    match (name, args) {
        ("matches", [Value::String(s), Value::String(p)]) => Some(matches(s, p)),
        ("matches", [a, b]) => Some(err(format!(
            "no such overload: matches({}, {})",
            a.type_name(),
            b.type_name()
        ))),
        _ => None,
    }
}
