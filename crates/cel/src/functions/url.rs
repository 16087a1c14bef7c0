//! Kubernetes URL library: `url()`, `isURL()` and accessors.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::error::EvalError;
use crate::value::{Key, Value};

/// A parsed URL (absolute URI or absolute path, as Go's `url.ParseRequestURI` accepts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    original: String,
    scheme: String,
    host: String,
    path: String,
    query: String,
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn bad(s: &str, why: &str) -> EvalError {
    EvalError::new(format!(
        "URL parse error during conversion from string: parse \"{s}\": {why}"
    ))
}

/// Parses a URL the way Kubernetes' `url()` does.
pub fn parse_url(s: &str) -> Result<Url, EvalError> {
    if s.bytes().any(|c| c < 0x20 || c == 0x7f) {
        return Err(bad(s, "net/url: invalid control character in URL"));
    }
    if s.is_empty() {
        return Err(bad(s, "empty url"));
    }
    // ParseRequestURI rejects fragments by treating them as part of the path; Kubernetes
    // parses again with url.Parse, which strips the fragment.
    let without_fragment = s.split_once('#').map_or(s, |(a, _)| a);
    let (scheme, rest) = if without_fragment.starts_with('/') {
        (String::new(), without_fragment)
    } else {
        let Some((scheme, rest)) = without_fragment.split_once(':') else {
            return Err(bad(s, "invalid URI for request"));
        };
        let mut cs = scheme.chars();
        let valid = cs.next().is_some_and(|c| c.is_ascii_alphabetic())
            && cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !valid {
            return Err(bad(s, "invalid URI for request"));
        }
        (scheme.to_ascii_lowercase(), rest)
    };
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, path) = if let Some(after) = before_query.strip_prefix("//") {
        let end = after.find('/').unwrap_or(after.len());
        let authority = after.get(..end).unwrap_or("");
        let path = after.get(end..).unwrap_or("");
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        (host.to_string(), path.to_string())
    } else if scheme.is_empty() || before_query.starts_with('/') {
        (String::new(), before_query.to_string())
    } else {
        // Opaque URI such as `mailto:x`: no host and no path.
        (String::new(), String::new())
    };
    if host.contains(' ') || !valid_escapes(&path) {
        return Err(bad(s, "invalid URL escape or character"));
    }
    let url = Url {
        original: s.to_string(),
        scheme,
        host,
        path,
        query: query.to_string(),
    };
    if let Some(port) = url.port() {
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(s, &format!("invalid port \":{port}\" after host")));
        }
    }
    if url.host.starts_with('[') && !url.host.contains(']') {
        return Err(bad(s, "missing ']' in host"));
    }
    Ok(url)
}

impl Url {
    fn port(&self) -> Option<&str> {
        let h = self.host.as_str();
        let after_bracket = match h.rfind(']') {
            Some(i) => h.get(i + 1..)?,
            None => h,
        };
        after_bracket.rsplit_once(':').map(|(_, p)| p)
    }

    fn hostname(&self) -> &str {
        let h = self.host.as_str();
        if let Some(rest) = h.strip_prefix('[') {
            return rest.split_once(']').map_or(rest, |(inside, _)| inside);
        }
        h.rsplit_once(':').map_or(h, |(name, _)| name)
    }
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_map(q: &str) -> Value {
    let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for pair in q.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        m.entry(unescape(k))
            .or_default()
            .push(Value::from(unescape(v)));
    }
    Value::Map(Arc::new(
        m.into_iter()
            .map(|(k, v)| (Key::from(k.as_str()), Value::list(v)))
            .collect(),
    ))
}

/// Global URL functions.
pub(crate) fn global(name: &str, args: &[Value]) -> Option<Result<Value, EvalError>> {
    match (name, args) {
        ("url", [Value::String(s)]) => Some(parse_url(s).map(|u| Value::Url(Arc::new(u)))),
        ("isURL", [Value::String(s)]) => Some(Ok(Value::Bool(parse_url(s).is_ok()))),
        _ => None,
    }
}

/// URL accessor methods.
pub(crate) fn member(
    name: &str,
    target: &Value,
    args: &[Value],
) -> Option<Result<Value, EvalError>> {
    let Value::Url(u) = target else {
        return None;
    };
    if !args.is_empty() {
        return None;
    }
    let v = match name {
        "getScheme" => Value::from(u.scheme.as_str()),
        "getHost" => Value::from(u.host.as_str()),
        "getHostname" => Value::from(u.hostname()),
        "getPort" => Value::from(u.port().unwrap_or("")),
        "getEscapedPath" => Value::from(u.path.as_str()),
        "getQuery" => query_map(&u.query),
        _ => return None,
    };
    Some(Ok(v))
}
