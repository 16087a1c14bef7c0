//! `google.protobuf.Duration` and `google.protobuf.Timestamp` support.

use std::fmt;

use crate::error::{err, EvalError};
use crate::value::Value;

const NANOS_PER_SEC: i128 = 1_000_000_000;
/// 0001-01-01T00:00:00Z in unix seconds.
const MIN_UNIX_SECONDS: i128 = -62_135_596_800;
/// 9999-12-31T23:59:59Z in unix seconds.
const MAX_UNIX_SECONDS: i128 = 253_402_300_799;

/// A signed span of time with nanosecond precision (Go `time.Duration` range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    /// Total nanoseconds.
    pub nanos: i64,
}

/// An instant in time with nanosecond precision, between years 1 and 9999 (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Nanoseconds since the unix epoch (always within the supported range).
    nanos: i128,
}

impl Duration {
    /// Creates a duration from a nanosecond count.
    pub fn from_nanos(nanos: i64) -> Duration {
        Duration { nanos }
    }
}

impl Timestamp {
    /// Creates a timestamp, checking the supported range.
    pub fn from_unix_nanos(nanos: i128) -> Result<Timestamp, EvalError> {
        let secs = nanos.div_euclid(NANOS_PER_SEC);
        if !(MIN_UNIX_SECONDS..=MAX_UNIX_SECONDS).contains(&secs) {
            return err("timestamp out of range");
        }
        Ok(Timestamp { nanos })
    }

    /// Nanoseconds since the unix epoch.
    pub fn unix_nanos(&self) -> i128 {
        self.nanos
    }

    /// Whole seconds since the unix epoch (floor).
    pub fn unix_seconds(&self) -> i64 {
        i64::try_from(self.nanos.div_euclid(NANOS_PER_SEC)).unwrap_or(0)
    }
}

fn overflow<T>() -> Result<T, EvalError> {
    err("integer overflow")
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = i128::from(self.nanos);
        let sign = if n < 0 { "-" } else { "" };
        let abs = n.abs();
        let secs = abs / NANOS_PER_SEC;
        let frac = abs % NANOS_PER_SEC;
        if frac == 0 {
            write!(f, "{sign}{secs}s")
        } else {
            let digits = format!("{frac:09}");
            write!(f, "{sign}{secs}.{}s", digits.trim_end_matches('0'))
        }
    }
}

/// Civil date from days since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// Days since 1970-01-01 for a civil date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

/// Broken-down civil time.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    nanos: i64,
    weekday: i64,
    yearday: i64,
}

fn civil(ts: &Timestamp, offset_secs: i64) -> Civil {
    let total = ts.nanos + i128::from(offset_secs) * NANOS_PER_SEC;
    let secs = i64::try_from(total.div_euclid(NANOS_PER_SEC)).unwrap_or(0);
    let nanos = i64::try_from(total.rem_euclid(NANOS_PER_SEC)).unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: sod / 3600,
        minute: (sod % 3600) / 60,
        second: sod % 60,
        nanos,
        weekday: (days + 4).rem_euclid(7),
        yearday: days - days_from_civil(year, 1, 1),
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = civil(self, 0);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )?;
        if c.nanos != 0 {
            let digits = format!("{:09}", c.nanos);
            write!(f, ".{}", digits.trim_end_matches('0'))?;
        }
        write!(f, "Z")
    }
}

fn digits(s: &str, start: usize, len: usize) -> Option<i64> {
    let part = s.get(start..start + len)?;
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Parses an RFC 3339 timestamp such as `2023-01-01T00:00:00Z`.
pub(crate) fn parse_timestamp(s: &str) -> Result<Timestamp, EvalError> {
    parse_rfc3339(s).ok_or_else(|| {
        EvalError::new(format!(
            "timestamp conversion error: cannot parse \"{s}\" as RFC3339"
        ))
    })?
}

fn parse_rfc3339(s: &str) -> Option<Result<Timestamp, EvalError>> {
    let b = s.as_bytes();
    let year = digits(s, 0, 4)?;
    let month = u32::try_from(digits(s, 5, 2)?).ok()?;
    let day = u32::try_from(digits(s, 8, 2)?).ok()?;
    let hour = digits(s, 11, 2)?;
    let minute = digits(s, 14, 2)?;
    let second = digits(s, 17, 2)?;
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't'))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = s.get(start..i)?;
        if frac.is_empty() || frac.len() > 9 {
            return None;
        }
        let padded = format!("{frac:0<9}");
        nanos = padded.parse().ok()?;
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(b'+' | b'-') if i + 6 == b.len() => {
            let sign = if b.get(i) == Some(&b'-') { -1 } else { 1 };
            let oh = digits(s, i + 1, 2)?;
            let om = digits(s, i + 4, 2)?;
            if b.get(i + 3) != Some(&b':') || oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(Timestamp::from_unix_nanos(
        i128::from(secs) * NANOS_PER_SEC + i128::from(nanos),
    ))
}

/// Parses a Go-style duration string such as `1h30m`, `1.5s` or `-300ms`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, EvalError> {
    let bad = || EvalError::new(format!("invalid duration: \"{s}\""));
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, s.get(1..).unwrap_or("")),
        Some(b'+') => (false, s.get(1..).unwrap_or("")),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(Duration { nanos: 0 });
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = rest.get(..int_len).ok_or_else(bad)?;
        rest = rest.get(int_len..).ok_or_else(bad)?;
        let mut frac_part = "";
        if rest.starts_with('.') {
            rest = rest.get(1..).ok_or_else(bad)?;
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = rest.get(..frac_len).ok_or_else(bad)?;
            rest = rest.get(frac_len..).ok_or_else(bad)?;
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let unit = rest.get(..unit_len).ok_or_else(bad)?;
        rest = rest.get(unit_len..).ok_or_else(bad)?;
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let int_value: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        let mut value = int_value.checked_mul(scale).ok_or_else(bad)?;
        if !frac_part.is_empty() {
            let mut frac_scale = scale;
            for d in frac_part.bytes().take(30) {
                frac_scale /= 10;
                value = value
                    .checked_add(u128::from(d - b'0') * frac_scale)
                    .ok_or_else(bad)?;
            }
        }
        total = total.checked_add(value).ok_or_else(bad)?;
        if total > 1u128 << 63 {
            return Err(bad());
        }
    }
    let signed = if neg {
        -i128::try_from(total).map_err(|_| bad())?
    } else {
        i128::try_from(total).map_err(|_| bad())?
    };
    let nanos = i64::try_from(signed).map_err(|_| bad())?;
    Ok(Duration { nanos })
}

/// Parses a timezone argument: `UTC` or a fixed offset like `+05:30` / `-08:00`.
fn parse_timezone(tz: &str) -> Result<i64, EvalError> {
    if tz == "UTC" || tz == "Z" || tz == "Etc/UTC" || tz == "GMT" {
        return Ok(0);
    }
    let (sign, rest) = match tz.as_bytes().first() {
        Some(b'+') => (1, tz.get(1..).unwrap_or("")),
        Some(b'-') => (-1, tz.get(1..).unwrap_or("")),
        _ => (1, tz),
    };
    let mut parts = rest.split(':');
    let h = parts.next().and_then(|p| p.parse::<i64>().ok());
    let m = parts.next().and_then(|p| p.parse::<i64>().ok());
    match (h, m, parts.next()) {
        (Some(h), Some(m), None) if (0..24).contains(&h) && (0..60).contains(&m) => {
            Ok(sign * (h * 3600 + m * 60))
        }
        _ => err(format!("unsupported timezone: {tz}")),
    }
}

/// Timestamp and duration accessor methods.
pub(crate) fn member(
    name: &str,
    target: &Value,
    args: &[Value],
) -> Option<Result<Value, EvalError>> {
    match target {
        Value::Timestamp(ts) => {
            let offset = match args {
                [] => 0,
                [Value::String(tz)] => match parse_timezone(tz) {
                    Ok(o) => o,
                    Err(e) => return Some(Err(e)),
                },
                _ => return None,
            };
            let c = civil(ts, offset);
            let v = match name {
                "getFullYear" => c.year,
                "getMonth" => i64::from(c.month) - 1,
                "getDayOfMonth" => i64::from(c.day) - 1,
                "getDate" => i64::from(c.day),
                "getDayOfWeek" => c.weekday,
                "getDayOfYear" => c.yearday,
                "getHours" => c.hour,
                "getMinutes" => c.minute,
                "getSeconds" => c.second,
                "getMilliseconds" => c.nanos / 1_000_000,
                _ => return None,
            };
            Some(Ok(Value::Int(v)))
        }
        Value::Duration(d) if args.is_empty() => {
            let n = d.nanos;
            let v = match name {
                "getHours" => n / 3_600_000_000_000,
                "getMinutes" => n / 60_000_000_000,
                "getSeconds" => n / 1_000_000_000,
                "getMilliseconds" => n / 1_000_000,
                _ => return None,
            };
            Some(Ok(Value::Int(v)))
        }
        _ => None,
    }
}

/// `timestamp + duration`, `duration + duration`, ...
pub(crate) fn add(a: &Value, b: &Value) -> Option<Result<Value, EvalError>> {
    Some(match (a, b) {
        (Value::Timestamp(t), Value::Duration(d)) | (Value::Duration(d), Value::Timestamp(t)) => {
            Timestamp::from_unix_nanos(t.nanos + i128::from(d.nanos)).map(Value::Timestamp)
        }
        (Value::Duration(x), Value::Duration(y)) => match x.nanos.checked_add(y.nanos) {
            Some(n) => Ok(Value::Duration(Duration { nanos: n })),
            None => overflow(),
        },
        _ => return None,
    })
}

/// `timestamp - timestamp`, `timestamp - duration`, `duration - duration`.
pub(crate) fn sub(a: &Value, b: &Value) -> Option<Result<Value, EvalError>> {
    Some(match (a, b) {
        (Value::Timestamp(t), Value::Duration(d)) => {
            Timestamp::from_unix_nanos(t.nanos - i128::from(d.nanos)).map(Value::Timestamp)
        }
        (Value::Timestamp(x), Value::Timestamp(y)) => match i64::try_from(x.nanos - y.nanos) {
            Ok(n) => Ok(Value::Duration(Duration { nanos: n })),
            Err(_) => overflow(),
        },
        (Value::Duration(x), Value::Duration(y)) => match x.nanos.checked_sub(y.nanos) {
            Some(n) => Ok(Value::Duration(Duration { nanos: n })),
            None => overflow(),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in (-719_162..2_932_896).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!(d >= 1 && d <= days_in_month(y, m));
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_358), (2023, 1, 1));
    }

    #[test]
    fn durations_parse_like_go() {
        let ns = |s: &str| parse_duration(s).unwrap().nanos;
        assert_eq!(ns("1h30m"), 5_400_000_000_000);
        assert_eq!(ns("1.5h"), 5_400_000_000_000);
        assert_eq!(ns("300ms"), 300_000_000);
        assert_eq!(ns("-1m"), -60_000_000_000);
        assert_eq!(ns("1\u{b5}s"), 1_000);
        assert_eq!(ns("2h45m10.5s"), 9_910_500_000_000);
        assert_eq!(ns(".5s"), 500_000_000);
        for bad in ["", "1", "h", "1hh", "1.h.", "--1s", "1e3s", "9223372037s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(Duration::from_nanos(-1_500_000_000).to_string(), "-1.5s");
    }

    #[test]
    fn timestamps_parse_and_format() {
        let t = parse_timestamp("2000-02-29T12:00:00.000000001-01:30").unwrap();
        assert_eq!(t.to_string(), "2000-02-29T13:30:00.000000001Z");
        assert!(parse_timestamp("0001-01-01T00:00:00Z").is_ok());
        assert!(parse_timestamp("9999-12-31T23:59:59.999999999Z").is_ok());
        assert!(parse_timestamp("2001-02-29T00:00:00Z").is_err());
        assert!(parse_timestamp("2001-01-01 00:00:00Z").is_err());
        assert!(parse_timestamp("2001-01-01T00:00:00").is_err());
        assert!(parse_timestamp("2001-01-01T24:00:00Z").is_err());
    }
}
