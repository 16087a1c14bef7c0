//! Helpers shared by the per-kind rules: field errors with upstream's value rendering
//! (`field.Error.ErrorBody`: strings quoted, other values as Go's `%#v`), JSON accessors,
//! and the value checks of `apimachinery/pkg/util/validation` (`IsValidPortNum`,
//! `IsValidPortName`, `IsEnvVarName`, `IsConfigMapKey`, `IsValidIP`, `IsValidCIDR`),
//! `ValidateLabels`, `ValidateLabelSelector` and `resource.Quantity` parsing.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::status::{field, StatusCause};
use crate::validation;

pub type Errs = Vec<StatusCause>;

pub const NONNEGATIVE: &str = "must be greater than or equal to 0";
pub const IMMUTABLE: &str = "field is immutable";
pub const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

// ---- accessors -------------------------------------------------------------------------

pub fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}
pub fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}
/// The string at `key`, "" when absent (Go's zero value).
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    str_of(v, key).unwrap_or("")
}
pub fn int_of(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}
pub fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}
pub fn obj<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}
pub fn bool_of(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}
/// A `map[string]string` field (non-string values shown as JSON).
pub fn string_map(v: &Value, key: &str) -> Option<BTreeMap<String, String>> {
    obj(v, key).map(|m| {
        m.iter()
            .map(|(k, v)| {
                let text = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                (k.clone(), text)
            })
            .collect()
    })
}
pub fn join(path: &str, child: &str) -> String {
    if path.is_empty() {
        child.to_string()
    } else {
        format!("{path}.{child}")
    }
}
pub fn idx(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}
/// `fldPath.Key(k)`: `path[k]`.
pub fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

// ---- error builders --------------------------------------------------------------------

/// `field.Invalid` with the value already rendered as upstream prints it.
pub fn invalid_raw(path: &str, shown: &str, why: &str) -> StatusCause {
    StatusCause {
        cause_type: "FieldValueInvalid".into(),
        message: format!("Invalid value: {shown}: {why}"),
        field: path.into(),
    }
}
pub fn invalid_str(path: &str, value: &str, why: &str) -> StatusCause {
    invalid_raw(path, &go_quote(value), why)
}
pub fn invalid_int(path: &str, value: i64, why: &str) -> StatusCause {
    invalid_raw(path, &value.to_string(), why)
}
pub fn required(path: &str, why: &str) -> StatusCause {
    field::required(path, why)
}
pub fn forbidden(path: &str, why: &str) -> StatusCause {
    field::forbidden(path, why)
}
pub fn duplicate_str(path: &str, value: &str) -> StatusCause {
    field::duplicate(path, &Value::String(value.into()))
}
/// `field.NotFound`.
pub fn not_found(path: &str, value: &str) -> StatusCause {
    StatusCause {
        cause_type: "FieldValueNotFound".into(),
        message: format!("Not found: {}", go_quote(value)),
        field: path.into(),
    }
}
/// `field.NotSupported` for a string value: the valid values are quoted as upstream.
pub fn not_supported(path: &str, value: &str, valid: &[&str]) -> StatusCause {
    let quoted: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
    field::not_supported(path, &Value::String(value.into()), &quoted)
}

/// `field.NotSupported` for a value rendered as upstream prints it (structs, pointers).
pub fn not_supported_raw(path: &str, shown: &str, valid: &[&str]) -> StatusCause {
    let quoted: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
    StatusCause {
        cause_type: "FieldValueNotSupported".into(),
        message: format!(
            "Unsupported value: {shown}: supported values: {}",
            quoted.join(", ")
        ),
        field: path.into(),
    }
}

/// Go's `%q` for the strings we meet (ASCII escapes as Go prints them).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%#v` of a `map[string]string` (nil when absent), keys sorted as fmt prints them.
pub fn go_string_map(m: Option<&BTreeMap<String, String>>) -> String {
    match m {
        None => "map[string]string(nil)".into(),
        Some(m) => format!(
            "map[string]string{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Go's `%#v` of a `[]string`.
pub fn go_string_slice(items: &[Value]) -> String {
    if items.is_empty() {
        return "[]string(nil)".into();
    }
    let shown: Vec<String> = items
        .iter()
        .map(|v| go_quote(v.as_str().unwrap_or_default()))
        .collect();
    format!("[]string{{{}}}", shown.join(", "))
}

/// Go's `%#v` of an `intstr.IntOrString` value.
pub fn go_int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => {
            format!(
                "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
                go_quote(s)
            )
        }
        Some(other) => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            other.as_i64().unwrap_or(0)
        ),
        None => "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}".into(),
    }
}

/// Go's `%#v` of a `metav1.LabelSelector` (nil pointer printed as `null`).
pub fn go_label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|s| s.is_object()) else {
        return "null".into();
    };
    let labels = string_map(sel, "matchLabels");
    let exprs = arr(sel, "matchExpressions");
    let exprs = if exprs.is_empty() {
        "[]v1.LabelSelectorRequirement(nil)".to_string()
    } else {
        let items: Vec<String> = exprs
            .iter()
            .map(|e| {
                format!(
                    "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                    go_quote(s(e, "key")),
                    go_quote(s(e, "operator")),
                    go_string_slice(arr(e, "values"))
                )
            })
            .collect();
        format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}",
        go_string_map(labels.as_ref())
    )
}

// ---- value checks ----------------------------------------------------------------------

pub fn dns_label(path: &str, value: &str, errs: &mut Errs) {
    for msg in dns1123_label_msgs(value) {
        errs.push(invalid_str(path, value, &msg));
    }
}
/// `IsDNS1123Label`, with upstream's "must not contain dots" for valid subdomains.
pub fn dns1123_label_msgs(value: &str) -> Vec<String> {
    let mut msgs = validation::dns1123_label(value);
    if value.len() <= 63 && !msgs.is_empty() && validation::dns1123_subdomain(value).is_empty() {
        msgs = vec!["must not contain dots".into()];
    }
    msgs
}
pub fn dns_subdomain(path: &str, value: &str, errs: &mut Errs) {
    for msg in validation::dns1123_subdomain(value) {
        errs.push(invalid_str(path, value, &msg));
    }
}
pub fn qualified_name(path: &str, value: &str, errs: &mut Errs) {
    for msg in validation::qualified_name(value) {
        errs.push(invalid_str(path, value, &msg));
    }
}
pub fn nonnegative(path: &str, v: &Value, key_name: &str, errs: &mut Errs) {
    if let Some(n) = int_of(v, key_name) {
        if n < 0 {
            errs.push(invalid_int(&join(path, key_name), n, NONNEGATIVE));
        }
    }
}

pub fn port_num_ok(port: i64) -> bool {
    (1..=65535).contains(&port)
}

/// `IsValidPortName` (IANA_SVC_NAME).
pub fn port_name_msgs(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push("must be no more than 15 characters".into());
    }
    if port.is_empty()
        || !port
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !port.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// `ValidatePortNumOrName` for an int-or-string port.
pub fn port_num_or_name(path: &str, v: Option<&Value>, errs: &mut Errs) {
    match v {
        Some(Value::String(name)) => {
            for msg in port_name_msgs(name) {
                errs.push(invalid_str(path, name, &msg));
            }
        }
        other => {
            let n = other.and_then(Value::as_i64).unwrap_or(0);
            if !port_num_ok(n) {
                errs.push(invalid_int(path, n, PORT_RANGE));
            }
        }
    }
}

fn chdir_prefix(value: &str) -> Option<&'static str> {
    match value {
        "." => Some("must not be '.'"),
        ".." => Some("must not be '..'"),
        v if v.starts_with("..") => Some("must not start with '..'"),
        _ => None,
    }
}

/// `IsEnvVarName`.
pub fn env_var_name_msgs(value: &str) -> Vec<String> {
    let b = value.as_bytes();
    let ok_char = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_');
    let mut errs = Vec::new();
    if b.is_empty() || b[0].is_ascii_digit() || !b.iter().all(|&c| ok_char(c)) {
        errs.push("a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')".into());
    }
    errs.extend(chdir_prefix(value).map(str::to_string));
    errs
}

/// `IsConfigMapKey`.
pub fn config_key_msgs(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push("must be no more than 253 characters".into());
    }
    if value.is_empty()
        || !value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
    {
        errs.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".into());
    }
    errs.extend(chdir_prefix(value).map(str::to_string));
    errs
}

/// `netutils.ParseIPSloppy`: std parsing, plus IPv4 parts with leading zeros.
pub fn parse_ip(value: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = value.parse() {
        return Some(ip);
    }
    let parts: Vec<&str> = value.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (o, p) in octets.iter_mut().zip(&parts) {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *o = p.parse().ok()?;
    }
    Some(std::net::IpAddr::from(octets))
}

pub fn is_valid_ip(path: &str, value: &str, errs: &mut Errs) -> bool {
    if parse_ip(value).is_none() {
        errs.push(invalid_str(
            path,
            value,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
        return false;
    }
    true
}

/// `ParseCIDRSloppy`: the address and the prefix length.
pub fn parse_cidr(value: &str) -> Option<(std::net::IpAddr, u8)> {
    let (ip, bits) = value.split_once('/')?;
    let ip = parse_ip(ip)?;
    if bits.is_empty() || !bits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

pub fn is_valid_cidr(path: &str, value: &str, errs: &mut Errs) -> bool {
    if parse_cidr(value).is_none() {
        errs.push(invalid_str(
            path,
            value,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ));
        return false;
    }
    true
}

/// `unversionedvalidation.ValidateLabels`.
pub fn labels(path: &str, map: Option<&Map<String, Value>>, errs: &mut Errs) {
    let Some(map) = map else { return };
    for (k, v) in map {
        qualified_name(path, k, errs);
        let value = v.as_str().unwrap_or_default();
        for msg in validation::label_value(value) {
            errs.push(invalid_str(path, value, &msg));
        }
    }
}

/// `ValidateLabelName` (keys of tolerations, taints, selector requirements).
pub fn label_name(path: &str, value: &str, errs: &mut Errs) {
    qualified_name(path, value, errs);
}

/// `unversionedvalidation.ValidateLabelSelector`.
pub fn label_selector(path: &str, sel: Option<&Value>, errs: &mut Errs) {
    let Some(sel) = sel.filter(|s| s.is_object()) else {
        return;
    };
    for (i, e) in arr(sel, "matchExpressions").iter().enumerate() {
        let p = idx(&join(path, "matchExpressions"), i);
        let values = arr(e, "values");
        match s(e, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(required(
                        &join(&p, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(forbidden(
                        &join(&p, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(invalid_str(
                &join(&p, "operator"),
                other,
                "not a valid selector operator",
            )),
        }
        label_name(&join(&p, "key"), s(e, "key"), errs);
        for (j, v) in values.iter().enumerate() {
            let value = v.as_str().unwrap_or_default();
            for msg in validation::label_value(value) {
                errs.push(invalid_str(&idx(&join(&p, "values"), j), value, &msg));
            }
        }
    }
    labels(&join(path, "matchLabels"), obj(sel, "matchLabels"), errs);
}

/// Whether a `metav1.LabelSelector` matches a label set (`LabelSelectorAsSelector`).
pub fn selector_matches(sel: &Value, labels: &BTreeMap<String, String>) -> bool {
    let match_labels = string_map(sel, "matchLabels").unwrap_or_default();
    if !match_labels
        .iter()
        .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
    {
        return false;
    }
    arr(sel, "matchExpressions").iter().all(|e| {
        let k = s(e, "key");
        let values: Vec<&str> = arr(e, "values").iter().filter_map(Value::as_str).collect();
        let have = labels.get(k).map(String::as_str);
        match s(e, "operator") {
            "In" => have.is_some_and(|h| values.contains(&h)),
            "NotIn" => have.is_none_or(|h| !values.contains(&h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        }
    })
}

/// Whether a selector selects nothing-in-particular (no labels, no expressions).
pub fn selector_empty(sel: &Value) -> bool {
    obj(sel, "matchLabels").is_none_or(Map::is_empty) && arr(sel, "matchExpressions").is_empty()
}

// ---- quantities ------------------------------------------------------------------------

pub const QUANTITY_FORMAT: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A `resource.Quantity` in nano-units (enough to compare requests with limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(pub i128);

impl Quantity {
    pub fn parse(v: &Value) -> Option<Quantity> {
        match v {
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    return Some(Quantity(i128::from(i).saturating_mul(1_000_000_000)));
                }
                Quantity::parse_str(&n.to_string())
            }
            Value::String(s) => Quantity::parse_str(s.trim()),
            _ => None,
        }
    }

    pub fn parse_str(s: &str) -> Option<Quantity> {
        let (neg, body) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let split = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let (num, suffix) = body.split_at(split);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        // nanos = mantissa * 10^9, then scaled by the suffix.
        let mut nanos: i128 = 0;
        for c in int_part.bytes() {
            nanos = nanos.checked_mul(10)?.checked_add(i128::from(c - b'0'))?;
        }
        nanos = nanos.checked_mul(1_000_000_000)?;
        let mut unit: i128 = 100_000_000;
        for c in frac_part.bytes() {
            nanos = nanos.checked_add(i128::from(c - b'0') * unit)?;
            unit /= 10;
        }
        let scaled = match suffix {
            "" => nanos,
            "n" => nanos / 1_000_000_000,
            "u" => nanos / 1_000_000,
            "m" => nanos / 1000,
            "k" => nanos.checked_mul(1000)?,
            "M" => nanos.checked_mul(1_000_000)?,
            "G" => nanos.checked_mul(1_000_000_000)?,
            "T" => nanos.checked_mul(10i128.pow(12))?,
            "P" => nanos.checked_mul(10i128.pow(15))?,
            "E" => nanos.checked_mul(10i128.pow(18))?,
            "Ki" => nanos.checked_mul(1 << 10)?,
            "Mi" => nanos.checked_mul(1 << 20)?,
            "Gi" => nanos.checked_mul(1 << 30)?,
            "Ti" => nanos.checked_mul(1 << 40)?,
            "Pi" => nanos.checked_mul(1 << 50)?,
            "Ei" => nanos.checked_mul(1 << 60)?,
            exp if exp.starts_with(['e', 'E']) => {
                let e: i32 = exp[1..].parse().ok()?;
                if e >= 0 {
                    nanos.checked_mul(10i128.checked_pow(u32::try_from(e).ok()?)?)?
                } else {
                    let d = 10i128
                        .checked_pow(u32::try_from(-e).ok()?)
                        .unwrap_or(i128::MAX);
                    nanos / d
                }
            }
            _ => return None,
        };
        Some(Quantity(if neg { -scaled } else { scaled }))
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }
    /// Whether the value is a whole number of units.
    pub fn is_integer(self) -> bool {
        self.0 % 1_000_000_000 == 0
    }
}

/// How a quantity is shown in messages: upstream prints its canonical string; the
/// client's own spelling is kept here.
pub fn quantity_text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_compare() {
        let q = |s: &str| Quantity::parse_str(s).unwrap();
        assert!(q("500m") < q("1"));
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("1e3"), q("1k"));
        assert_eq!(q("0.5"), q("500m"));
        assert!(q("-1").is_negative());
        assert!(Quantity::parse_str("1x").is_none());
        assert!(Quantity::parse_str("abc").is_none());
        assert_eq!(Quantity::parse(&json!(2)), Some(q("2")));
    }

    #[test]
    fn go_renderings() {
        let m: BTreeMap<String, String> =
            [("b".into(), "2".into()), ("a".into(), "1".into())].into();
        assert_eq!(
            go_string_map(Some(&m)),
            "map[string]string{\"a\":\"1\", \"b\":\"2\"}"
        );
        assert_eq!(
            go_label_selector(Some(&json!({"matchLabels": {"app": "x"}}))),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
        assert_eq!(
            go_int_or_string(Some(&json!(0))),
            "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}"
        );
    }

    #[test]
    fn names_and_addresses() {
        assert!(port_name_msgs("http").is_empty());
        assert_eq!(
            port_name_msgs("80"),
            vec!["must contain at least one letter (a-z)"]
        );
        assert!(env_var_name_msgs("MY_VAR.x-1").is_empty());
        assert!(!env_var_name_msgs("1A").is_empty());
        assert!(config_key_msgs("tls.crt").is_empty());
        assert!(!config_key_msgs("a/b").is_empty());
        assert!(parse_ip("10.0.0.1").is_some() && parse_ip("010.0.0.1").is_some());
        assert!(parse_ip("10.0.0").is_none());
        assert!(parse_cidr("10.0.0.0/8").is_some() && parse_cidr("10.0.0.0/33").is_none());
        assert_eq!(dns1123_label_msgs("a.b"), vec!["must not contain dots"]);
    }
}
