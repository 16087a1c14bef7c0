//! Kubernetes `resource.Quantity` support (`quantity()`, `isQuantity()` and methods).

use std::cmp::Ordering;
use std::fmt;

use crate::error::{err, EvalError};
use crate::value::Value;

const NANO: i128 = 1_000_000_000;

/// An exact Kubernetes resource quantity, stored in units of 10^-9.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    /// The value multiplied by 10^9.
    pub nanos: i128,
    /// Whether the quantity was written with a binary (Ki, Mi, ...) suffix.
    pub binary: bool,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Quantity) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Quantity) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Quantity) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

fn pow10(p: u32) -> Option<i128> {
    10i128.checked_pow(p)
}

fn parse_err(s: &str) -> EvalError {
    EvalError::new(format!("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': \"{s}\""))
}

/// Parses a quantity string such as `500m`, `1Gi`, `1e3` or `-1.5`.
pub fn parse_quantity(s: &str) -> Result<Quantity, EvalError> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let int_start = i;
    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let int_part = s.get(int_start..i).ok_or_else(|| parse_err(s))?;
    let mut frac_part = "";
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        frac_part = s.get(start..i).ok_or_else(|| parse_err(s))?;
    }
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(parse_err(s));
    }
    let suffix = s.get(i..).ok_or_else(|| parse_err(s))?;
    let (exp10, exp2, binary): (i64, u32, bool) = match suffix {
        "" => (0, 0, false),
        "n" => (-9, 0, false),
        "u" => (-6, 0, false),
        "m" => (-3, 0, false),
        "k" => (3, 0, false),
        "M" => (6, 0, false),
        "G" => (9, 0, false),
        "T" => (12, 0, false),
        "P" => (15, 0, false),
        "E" => (18, 0, false),
        "Ki" => (0, 10, true),
        "Mi" => (0, 20, true),
        "Gi" => (0, 30, true),
        "Ti" => (0, 40, true),
        "Pi" => (0, 50, true),
        "Ei" => (0, 60, true),
        _ => {
            let rest = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .ok_or_else(|| parse_err(s))?;
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 6
            {
                return Err(parse_err(s));
            }
            let e: i64 = rest.parse().map_err(|_| parse_err(s))?;
            (e, 0, false)
        }
    };
    let frac_trimmed = frac_part.trim_end_matches('0');
    let digits: String = format!("{int_part}{frac_trimmed}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 38 {
        return Err(EvalError::new(format!("quantity is too precise: \"{s}\"")));
    }
    let mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| parse_err(s))?
    };
    let frac_len = i64::try_from(frac_trimmed.len()).map_err(|_| parse_err(s))?;
    let p = 9 - frac_len + exp10;
    let out_of_range = || EvalError::new(format!("quantity out of range: \"{s}\""));
    let scaled = mantissa
        .checked_mul(1i128.checked_shl(exp2).ok_or_else(out_of_range)?)
        .ok_or_else(out_of_range)?;
    let nanos = if p >= 0 {
        let f = pow10(u32::try_from(p).map_err(|_| out_of_range())?).ok_or_else(out_of_range)?;
        scaled.checked_mul(f).ok_or_else(out_of_range)?
    } else {
        // Kubernetes rounds values more precise than nano up (away from zero).
        match pow10(u32::try_from(-p).map_err(|_| out_of_range())?) {
            Some(d) => {
                let q = scaled / d;
                if scaled % d != 0 {
                    q + 1
                } else {
                    q
                }
            }
            None => i128::from(scaled != 0),
        }
    };
    Ok(Quantity {
        nanos: if negative { -nanos } else { nanos },
        binary,
    })
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.nanos;
        if self.binary && n % NANO == 0 && n != 0 {
            let whole = n / NANO;
            for (suffix, shift) in [
                ("Ei", 60),
                ("Pi", 50),
                ("Ti", 40),
                ("Gi", 30),
                ("Mi", 20),
                ("Ki", 10),
            ] {
                let unit = 1i128 << shift;
                if whole % unit == 0 {
                    return write!(f, "{}{suffix}", whole / unit);
                }
            }
        }
        if n == 0 {
            return write!(f, "0");
        }
        let suffixes: [(&str, i128); 10] = [
            ("E", NANO * 1_000_000_000_000_000_000),
            ("P", NANO * 1_000_000_000_000_000),
            ("T", NANO * 1_000_000_000_000),
            ("G", NANO * 1_000_000_000),
            ("M", NANO * 1_000_000),
            ("k", NANO * 1_000),
            ("", NANO),
            ("m", 1_000_000),
            ("u", 1_000),
            ("n", 1),
        ];
        for (suffix, unit) in suffixes {
            if n % unit == 0 {
                return write!(f, "{}{suffix}", n / unit);
            }
        }
        write!(f, "{n}n")
    }
}

fn operand(v: &Value) -> Option<Result<Quantity, EvalError>> {
    match v {
        Value::Quantity(q) => Some(Ok(*q)),
        Value::Int(i) => Some(
            i128::from(*i)
                .checked_mul(NANO)
                .map(|nanos| Quantity {
                    nanos,
                    binary: false,
                })
                .ok_or_else(|| EvalError::new("quantity out of range")),
        ),
        _ => None,
    }
}

/// Global functions `quantity(string)` and `isQuantity(string)`.
pub(crate) fn global(name: &str, args: &[Value]) -> Option<Result<Value, EvalError>> {
    match (name, args) {
        ("quantity", [Value::String(s)]) => Some(parse_quantity(s).map(Value::Quantity)),
        ("isQuantity", [Value::String(s)]) => Some(Ok(Value::Bool(parse_quantity(s).is_ok()))),
        _ => None,
    }
}

/// Quantity methods.
pub(crate) fn member(
    name: &str,
    target: &Value,
    args: &[Value],
) -> Option<Result<Value, EvalError>> {
    let Value::Quantity(q) = target else {
        return None;
    };
    let result = match (name, args) {
        ("isInteger", []) => Ok(Value::Bool(q.nanos % NANO == 0)),
        ("asInteger", []) => {
            if q.nanos % NANO != 0 {
                err("cannot convert value to integer")
            } else {
                i64::try_from(q.nanos / NANO)
                    .map(Value::Int)
                    .map_err(|_| EvalError::new("cannot convert value to integer"))
            }
        }
        #[allow(clippy::cast_precision_loss)]
        ("asApproximateFloat", []) => Ok(Value::Double(q.nanos as f64 / 1e9)),
        ("sign", []) => Ok(Value::Int(match q.nanos.cmp(&0) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        })),
        ("add" | "sub", [other]) => {
            let other = match operand(other)? {
                Ok(o) => o,
                Err(e) => return Some(Err(e)),
            };
            let r = if name == "add" {
                q.nanos.checked_add(other.nanos)
            } else {
                q.nanos.checked_sub(other.nanos)
            };
            r.map(|nanos| {
                Value::Quantity(Quantity {
                    nanos,
                    binary: q.binary,
                })
            })
            .ok_or_else(|| EvalError::new("quantity out of range"))
        }
        ("isGreaterThan", [Value::Quantity(o)]) => Ok(Value::Bool(q > o)),
        ("isLessThan", [Value::Quantity(o)]) => Ok(Value::Bool(q < o)),
        ("compareTo", [Value::Quantity(o)]) => Ok(Value::Int(match q.cmp(o) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        })),
        _ => return None,
    };
    Some(result)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn parses_exactly() {
        let n = |s: &str| parse_quantity(s).unwrap().nanos;
        assert_eq!(n("1"), NANO);
        assert_eq!(n("500m"), NANO / 2);
        assert_eq!(n("1Ki"), 1024 * NANO);
        assert_eq!(n("1.5Gi"), 1_610_612_736 * NANO);
        assert_eq!(n("1e-9"), 1);
        assert_eq!(n("-0.0000000001"), -1);
        assert_eq!(n("0"), 0);
        assert_eq!(n("100E"), 100 * NANO * 1_000_000_000_000_000_000);
        for bad in [
            "",
            "-",
            ".",
            "1.2.3",
            "1 Gi",
            "1Gib",
            "Gi",
            "1e",
            "1e+",
            "1e1000000",
        ] {
            assert!(parse_quantity(bad).is_err(), "{bad}");
        }
        assert!(parse_quantity(&"9".repeat(60)).is_err());
    }

    #[test]
    fn formats_canonically() {
        let f = |s: &str| parse_quantity(s).unwrap().to_string();
        assert_eq!(f("1000"), "1k");
        assert_eq!(f("1500m"), "1500m");
        assert_eq!(f("1024Mi"), "1Gi");
        assert_eq!(f("1.5Ki"), "1536");
        assert_eq!(f("0"), "0");
        assert_eq!(f("1n"), "1n");
    }
}
