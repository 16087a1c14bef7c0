//! `string.format(list)` from cel-go's strings extension.

use crate::error::{err, EvalError};
use crate::value::Value;

use super::standard::format_double;
use super::strings::quote;

/// Renders a value for `%s`; nested strings are quoted.
fn display(v: &Value, nested: bool) -> Result<String, EvalError> {
    Ok(match v {
        Value::String(s) if nested => quote(s),
        Value::String(s) => s.to_string(),
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Double(d) => format_double(*d),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) if nested => format!("b{}", quote(s)),
            Ok(s) => s.to_string(),
            Err(_) => return err("format: invalid UTF-8 in bytes"),
        },
        Value::List(items) => {
            let parts: Result<Vec<String>, EvalError> =
                items.iter().map(|i| display(i, true)).collect();
            format!("[{}]", parts?.join(", "))
        }
        Value::Map(m) => {
            let mut parts = Vec::with_capacity(m.len());
            for (k, v) in m.iter() {
                parts.push(format!(
                    "{}: {}",
                    display(&k.to_value(), true)?,
                    display(v, true)?
                ));
            }
            format!("{{{}}}", parts.join(", "))
        }
        Value::Duration(d) if nested => format!("duration(\"{d}\")"),
        Value::Timestamp(t) if nested => format!("timestamp(\"{t}\")"),
        Value::Duration(d) => d.to_string(),
        Value::Timestamp(t) => t.to_string(),
        Value::Type(t) => (*t).to_string(),
        Value::Optional(None) => "optional.none()".to_string(),
        Value::Optional(Some(inner)) => format!("optional.of({})", display(inner, true)?),
        Value::Quantity(q) => q.to_string(),
        Value::Url(u) => u.to_string(),
        Value::Ip(ip) => ip.to_string(),
        Value::Cidr(c) => c.to_string(),
        Value::Authorizer(_) | Value::Authz(_) => {
            return err(format!("format: cannot format a {}", v.type_name()))
        }
    })
}

#[allow(clippy::cast_precision_loss)]
fn as_f64(v: &Value, verb: char) -> Result<f64, EvalError> {
    match v {
        Value::Double(d) => Ok(*d),
        Value::Int(i) => Ok(*i as f64),
        Value::Uint(u) => Ok(*u as f64),
        other => err(format!(
            "error during formatting: fixed-point clause can only be used on doubles, was given {} for %{verb}",
            other.type_name()
        )),
    }
}

fn radix(v: &Value, verb: char) -> Result<String, EvalError> {
    let upper = verb == 'X';
    let num = |n: i128| match verb {
        'b' => format!("{:b}", n.unsigned_abs()),
        'o' => format!("{:o}", n.unsigned_abs()),
        'X' => format!("{:X}", n.unsigned_abs()),
        _ => format!("{:x}", n.unsigned_abs()),
    };
    let sign = |n: i128| if n < 0 { "-" } else { "" };
    match v {
        Value::Int(i) => Ok(format!("{}{}", sign(i128::from(*i)), num(i128::from(*i)))),
        Value::Uint(u) => Ok(num(i128::from(*u))),
        Value::Bool(b) if verb == 'b' => Ok(if *b { "1" } else { "0" }.to_string()),
        Value::String(s) if verb == 'x' || verb == 'X' => Ok(hex(s.as_bytes(), upper)),
        Value::Bytes(b) if verb == 'x' || verb == 'X' => Ok(hex(b, upper)),
        other => err(format!(
            "error during formatting: %{verb} cannot be used on {}",
            other.type_name()
        )),
    }
}

fn hex(bytes: &[u8], upper: bool) -> String {
    bytes
        .iter()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect()
}

/// Formats `template` with `args` using `%s %d %f %e %b %o %x %X %%` clauses.
pub(crate) fn format(template: &str, args: &[Value]) -> Result<Value, EvalError> {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    let mut next_arg = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut digits = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                digits.push(d);
                chars.next();
            }
            precision = Some(digits.parse::<usize>().unwrap_or(0).min(64));
        }
        let Some(verb) = chars.next() else {
            return err("error during formatting: unterminated format clause");
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next_arg) else {
            return err(format!(
                "index {next_arg} out of range for format arguments"
            ));
        };
        next_arg += 1;
        let piece = match verb {
            's' => display(arg, false)?,
            'd' => match arg {
                Value::Int(i) => i.to_string(),
                Value::Uint(u) => u.to_string(),
                other => {
                    return err(format!(
                        "error during formatting: decimal clause can only be used on integers, was given {}",
                        other.type_name()
                    ))
                }
            },
            'f' => format!("{:.*}", precision.unwrap_or(6), as_f64(arg, verb)?),
            'e' => {
                let s = format!("{:.*e}", precision.unwrap_or(6), as_f64(arg, verb)?);
                match s.split_once('e') {
                    Some((m, e)) => {
                        let exp: i32 = e.parse().unwrap_or(0);
                        let sign = if exp < 0 { '-' } else { '+' };
                        format!("{m}e{sign}{:02}", exp.unsigned_abs())
                    }
                    None => s,
                }
            }
            'b' | 'o' | 'x' | 'X' => radix(arg, verb)?,
            other => {
                return err(format!(
                    "could not parse formatting clause: unrecognized formatting clause \"{other}\""
                ))
            }
        };
        out.push_str(&piece);
    }
    Ok(Value::from(out))
}

/// `string.format(list)`.
pub(crate) fn member(
    name: &str,
    target: &Value,
    args: &[Value],
) -> Option<Result<Value, EvalError>> {
    match (name, target, args) {
        ("format", Value::String(t), [Value::List(items)]) => Some(format(t, items)),
        _ => None,
    }
}
