//! Go `fmt` renderings of decoded JSON values (`%v`, `%s`, `reflect.TypeOf`), so error
//! messages read byte-for-byte like upstream's `mergepatch` errors, which format the
//! `map[string]interface{}` values that `k8s.io/apimachinery/pkg/util/json` decodes
//! (integers as `int64`, other numbers as `float64`).

use serde_json::Value;

/// `fmt.Sprintf("%v", v)`.
pub(crate) fn v(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, Verb::V);
    out
}

/// `fmt.Sprintf("%s", v)`: strings print raw, other scalars as `%!s(type=value)`.
pub(crate) fn s(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, Verb::S);
    out
}

/// `fmt.Sprint(reflect.TypeOf(v))` for a decoded JSON value.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "%!s(<nil>)",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// `fmt.Sprint` of several lists, as in `fmt.Sprint(slices)` for a `[][]interface{}`.
pub(crate) fn lists(values: &[&[Value]]) -> String {
    let mut out = String::from("[");
    for (i, list) in values.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push('[');
        for (j, item) in list.iter().enumerate() {
            if j > 0 {
                out.push(' ');
            }
            write_value(&mut out, item, Verb::V);
        }
        out.push(']');
    }
    out.push(']');
    out
}

#[derive(Clone, Copy)]
enum Verb {
    V,
    S,
}

fn write_value(out: &mut String, value: &Value, verb: Verb) {
    match value {
        Value::Null => out.push_str(match verb {
            Verb::V => "<nil>",
            Verb::S => "%!s(<nil>)",
        }),
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => match verb {
            Verb::V => out.push_str(if *b { "true" } else { "false" }),
            Verb::S => out.push_str(if *b {
                "%!s(bool=true)"
            } else {
                "%!s(bool=false)"
            }),
        },
        Value::Number(n) => {
            let text = number(n);
            match verb {
                Verb::V => out.push_str(&text),
                Verb::S => {
                    out.push_str("%!s(");
                    out.push_str(type_name(value));
                    out.push('=');
                    out.push_str(&text);
                    out.push(')');
                }
            }
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_value(out, item, verb);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Go prints map keys sorted.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("map[");
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                if let Some(item) = map.get(k.as_str()) {
                    write_value(out, item, verb);
                }
            }
            out.push(']');
        }
    }
}

/// Go's `%v` for int64 (plain) and float64 (shortest `%g`, exponent from 1e21 or below 1e-4).
fn number(n: &serde_json::Number) -> String {
    if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
        let abs = f.abs();
        if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
            let text = format!("{f:e}");
            // Rust writes `1e21` / `1.5e-5`; Go writes `1e+21` / `1.5e-05`.
            if let Some((mantissa, exp)) = text.split_once('e') {
                let (sign, digits) = match exp.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', exp),
                };
                let digits = if digits.len() < 2 {
                    format!("0{digits}")
                } else {
                    digits.to_string()
                };
                return format!("{mantissa}e{sign}{digits}");
            }
            return text;
        }
        return format!("{f}");
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_like_go() {
        assert_eq!(
            v(&json!({"b": 1, "a": "x", "c": null})),
            "map[a:x b:1 c:<nil>]"
        );
        assert_eq!(v(&json!([1, "a", [true]])), "[1 a [true]]");
        assert_eq!(s(&json!(5)), "%!s(int64=5)");
        assert_eq!(s(&json!("merge")), "merge");
        assert_eq!(v(&json!(1.5)), "1.5");
        assert_eq!(v(&json!(1e21)), "1e+21");
        assert_eq!(v(&json!(0.00001)), "1e-05");
        assert_eq!(type_name(&json!({})), "map[string]interface {}");
        assert_eq!(lists(&[&[json!(1)], &[json!("a")]]), "[[1] [a]]");
    }
}
