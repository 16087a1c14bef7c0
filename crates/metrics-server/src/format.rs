//! How upstream writes the values of a metrics object: `resource.Quantity` in its
//! canonical form (CPU as a DecimalSI quantity at nano scale, memory as a BinarySI
//! quantity of bytes — `k8s.io/apimachinery/pkg/api/resource` `CanonicalizeBytes`),
//! Go's `time.Duration.String()` for `window`, and `metav1.Time` for timestamps.

/// DecimalSI suffixes by power-of-ten exponent.
fn decimal_suffix(exponent: i32) -> Option<&'static str> {
    Some(match exponent {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => return None,
    })
}

/// `value × 10^scale` as a canonical DecimalSI quantity (`AsCanonicalBytes`: trailing
/// zeros folded into the exponent, the exponent brought down to a multiple of three).
fn decimal_si(value: i64, scale: i32) -> String {
    if value == 0 {
        return "0".into();
    }
    // i128: bringing the exponent down may take the amount past i64 (Go then falls
    // back to its arbitrary-precision path, which prints the same digits).
    let (mut amount, mut exponent) = (i128::from(value), scale);
    while amount % 10 == 0 {
        amount /= 10;
        exponent += 1;
    }
    match exponent % 3 {
        1 | -2 => {
            amount *= 10;
            exponent -= 1;
        }
        2 | -1 => {
            amount *= 100;
            exponent -= 2;
        }
        _ => {}
    }
    match decimal_suffix(exponent) {
        Some(suffix) => format!("{amount}{suffix}"),
        // Past exa: Go falls back to the exponent form.
        None => format!("{amount}e{exponent}"),
    }
}

/// A CPU rate in nanocores as upstream serializes it (`NewScaledQuantity(n, Nano)`,
/// DecimalSI): `123456789n`, `5m` for 5000000 nanocores, `2` for two cores, `0`.
pub fn cpu(nanocores: u64) -> String {
    match i64::try_from(nanocores) {
        Ok(v) => decimal_si(v, -9),
        // upstream's uint64Quantity: lose one decimal digit to fit an int64.
        Err(_) => decimal_si(i64::try_from(nanocores / 10).unwrap_or(i64::MAX), -8),
    }
}

/// A byte count as upstream serializes it (BinarySI): below 1024 in DecimalSI
/// (`512`, `1k` for 1000), else the largest power-of-1024 suffix that divides it
/// exactly (`4000Ki`, `1Mi`), or plain bytes when none does (`1234567`).
pub fn memory(bytes: u64) -> String {
    let Ok(value) = i64::try_from(bytes) else {
        return decimal_si(i64::try_from(bytes / 10).unwrap_or(i64::MAX), 1);
    };
    if value < 1024 {
        return decimal_si(value, 0);
    }
    let (mut amount, mut power) = (value, 0usize);
    while amount % 1024 == 0 && power < 6 {
        amount /= 1024;
        power += 1;
    }
    const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    format!("{amount}{}", SUFFIXES[power])
}

/// Go's `time.Duration.String()` for a duration in nanoseconds: `15.012s`, `1m0.5s`,
/// `2h0m0s`, `500ms`, `1.5µs`, `0s`.
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let negative = nanos < 0;
    let u = nanos.unsigned_abs();
    let sign = if negative { "-" } else { "" };
    // Fraction of `v / 10^prec` with trailing zeros removed ("" when exact).
    let fraction = |v: u64, prec: u32| -> String {
        let unit = 10u64.pow(prec);
        let frac = v % unit;
        if frac == 0 {
            return String::new();
        }
        let digits = format!("{frac:0width$}", width = prec as usize);
        format!(".{}", digits.trim_end_matches('0'))
    };
    if u < 1_000_000_000 {
        let (prec, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "µs")
        } else {
            (6, "ms")
        };
        let whole = u / 10u64.pow(prec);
        return format!("{sign}{whole}{}{unit}", fraction(u, prec));
    }
    let secs_total = u / 1_000_000_000;
    let mut out = String::from(sign);
    let hours = secs_total / 3600;
    let minutes = secs_total / 60 % 60;
    let seconds = secs_total % 60;
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{seconds}{}s", fraction(u, 9)));
    out
}

/// A `metav1.Time` (RFC 3339, seconds, UTC) from Unix nanoseconds.
pub fn timestamp(unix_nanos: i64) -> String {
    ferrokube_api::time::format_rfc3339(unix_nanos.div_euclid(1_000_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities_are_canonical() {
        assert_eq!(cpu(0), "0");
        assert_eq!(cpu(123), "123n");
        assert_eq!(cpu(123_456_789), "123456789n");
        assert_eq!(cpu(5_000_000), "5m");
        assert_eq!(cpu(1_500_000), "1500u");
        assert_eq!(cpu(250_000_000), "250m");
        assert_eq!(cpu(2_000_000_000), "2");
        assert_eq!(cpu(1_200_000_000), "1200m");
        assert_eq!(cpu(10), "10n");
        assert_eq!(cpu(100_000), "100u");
        assert_eq!(cpu(u64::MAX), "18446744073709551610n");
    }

    #[test]
    fn memory_quantities_are_canonical() {
        assert_eq!(memory(0), "0");
        assert_eq!(memory(512), "512");
        assert_eq!(memory(1000), "1k");
        assert_eq!(memory(1023), "1023");
        assert_eq!(memory(1024), "1Ki");
        assert_eq!(memory(4_096_000), "4000Ki");
        assert_eq!(memory(1 << 20), "1Mi");
        assert_eq!(memory(3 << 30), "3Gi");
        assert_eq!(memory(1_234_567), "1234567");
        assert_eq!(memory(1536), "1536");
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(15_012_000_000), "15.012s");
        assert_eq!(go_duration(15_000_000_000), "15s");
        assert_eq!(go_duration(60_500_000_000), "1m0.5s");
        assert_eq!(go_duration(7_200_000_000_000), "2h0m0s");
        assert_eq!(go_duration(500_000_000), "500ms");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(42), "42ns");
        assert_eq!(go_duration(-2_000_000_000), "-2s");
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(1_700_000_000_999_000_000), "2023-11-14T22:13:20Z");
    }
}
