//! Resource quantities (`resource.Quantity` from `k8s.io/apimachinery/pkg/api/resource`)
//! reduced to the two integer views components count with: `MilliValue()` for cpu,
//! `Value()` for everything else, both rounded up. Shared by the scheduler and kubelet.

/// Parses a quantity (`"500m"`, `"1.5Gi"`, `"2e3"`, `"128974848"`) and returns
/// its value multiplied by `scale` (1000 for milli-units), rounded up. `None`
/// when the string is not a quantity.
pub fn parse_scaled(s: &str, scale: i128) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (negative, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(num_end);
    if number.is_empty() || number == "." {
        return None;
    }
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    // Mantissa as an integer with `frac_part.len()` implied decimals.
    let mut mantissa: i128 = 0;
    for c in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(c - b'0'))?;
    }
    let mut pow10: i32 = -(i32::try_from(frac_part.len()).ok()?);
    let mut pow2: u32 = 0;
    match suffix {
        "" => {}
        "n" => pow10 -= 9,
        "u" => pow10 -= 6,
        "m" => pow10 -= 3,
        "k" => pow10 += 3,
        "M" => pow10 += 6,
        "G" => pow10 += 9,
        "T" => pow10 += 12,
        "P" => pow10 += 15,
        "E" => pow10 += 18,
        "Ki" => pow2 = 10,
        "Mi" => pow2 = 20,
        "Gi" => pow2 = 30,
        "Ti" => pow2 = 40,
        "Pi" => pow2 = 50,
        "Ei" => pow2 = 60,
        other => {
            let exp = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))?;
            pow10 += exp.parse::<i32>().ok()?;
        }
    }
    let mut num = mantissa
        .checked_mul(scale)?
        .checked_mul(1i128.checked_shl(pow2)?)?;
    let mut den: i128 = 1;
    if pow10 >= 0 {
        num = num.checked_mul(10i128.checked_pow(pow10.unsigned_abs())?)?;
    } else {
        den = 10i128.checked_pow(pow10.unsigned_abs())?;
    }
    let mut v = num / den;
    if num % den != 0 {
        v += 1;
    }
    if negative {
        v = -v;
    }
    Some(i64::try_from(v).unwrap_or(if negative { i64::MIN } else { i64::MAX }))
}

/// `Quantity.Value()` (rounded up).
pub fn value(s: &str) -> Option<i64> {
    parse_scaled(s, 1)
}

/// `Quantity.MilliValue()` (rounded up).
pub fn milli_value(s: &str) -> Option<i64> {
    parse_scaled(s, 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_forms() {
        assert_eq!(milli_value("500m"), Some(500));
        assert_eq!(milli_value("2"), Some(2000));
        assert_eq!(milli_value("0.1"), Some(100));
        assert_eq!(milli_value("1.5"), Some(1500));
        assert_eq!(value("1Gi"), Some(1 << 30));
        assert_eq!(value("1.5Gi"), Some(3 << 29));
        assert_eq!(value("128974848"), Some(128_974_848));
        assert_eq!(value("129e6"), Some(129_000_000));
        assert_eq!(value("129M"), Some(129_000_000));
        assert_eq!(value("100m"), Some(1));
        assert_eq!(milli_value("1n"), Some(1));
        assert_eq!(value("abc"), None);
        assert_eq!(value("1Xi"), None);
    }
}
