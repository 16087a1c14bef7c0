//! RFC 3339 timestamps as `metav1.Time` writes them (second precision, UTC, `Z`), and
//! the human durations of upstream's `duration.HumanDuration` (table AGE columns).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's civil_from_days).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats Unix seconds as `2006-01-02T15:04:05Z`.
pub fn format_rfc3339(unix_secs: i64) -> String {
    let (days, secs) = (unix_secs.div_euclid(86_400), unix_secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            sign * (rest[1..3].parse::<i64>().ok()? * 3600 + rest[4..6].parse::<i64>().ok()? * 60)
        }
    };
    Some(days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + se - offset)
}

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub fn now_rfc3339() -> String {
    format_rfc3339(now_unix())
}

/// Upstream's `duration.HumanDuration` (as in `kubectl get`'s AGE column).
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs() as i64;
    if s < 0 {
        return "<invalid>".into();
    }
    let (m, h) = (s / 60, s / 3600);
    match s {
        _ if s < 60 * 2 => format!("{s}s"),
        _ if m < 10 => {
            let rem = s % 60;
            if rem == 0 {
                format!("{m}m")
            } else {
                format!("{m}m{rem}s")
            }
        }
        _ if m < 60 * 3 => format!("{m}m"),
        _ if h < 8 => {
            let rem = m % 60;
            if rem == 0 {
                format!("{h}h")
            } else {
                format!("{h}h{rem}m")
            }
        }
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 => {
            let rem = h % 24;
            if rem == 0 {
                format!("{}d", h / 24)
            } else {
                format!("{}d{rem}h", h / 24)
            }
        }
        _ if h < 24 * 365 * 2 => format!("{}d", h / 24),
        _ if h < 24 * 365 * 8 => {
            let dy = h / 24 % 365;
            if dy == 0 {
                format!("{}y", h / 24 / 365)
            } else {
                format!("{}y{dy}d", h / 24 / 365)
            }
        }
        _ => format!("{}y", h / 24 / 365),
    }
}

/// AGE of an object whose creationTimestamp is `ts`, as upstream's printers show it.
pub fn age(ts: Option<&str>) -> String {
    match ts.and_then(parse_rfc3339) {
        Some(t) => human_duration(Duration::from_secs((now_unix() - t).max(0) as u64)),
        None => "<unknown>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for t in [
            0,
            1_700_000_000,
            951_782_400, /* 2000-02-29 */
            4_102_444_800,
        ] {
            assert_eq!(
                parse_rfc3339(&format_rfc3339(t)),
                Some(t),
                "{}",
                format_rfc3339(t)
            );
        }
        assert_eq!(format_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123456Z"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("2023-11-14 22:13:20"), None);
        assert_eq!(parse_rfc3339("2023-13-14T22:13:20Z"), None);
    }

    #[test]
    fn human_durations_match_upstream() {
        let d = |s| human_duration(Duration::from_secs(s));
        assert_eq!(d(5), "5s");
        assert_eq!(d(119), "119s");
        assert_eq!(d(150), "2m30s");
        assert_eq!(d(600), "10m");
        assert_eq!(d(3 * 3600 + 120), "3h2m");
        assert_eq!(d(30 * 3600), "30h");
        assert_eq!(d(3 * 86400 + 3600), "3d1h");
        assert_eq!(d(30 * 86400), "30d");
        assert_eq!(d(3 * 365 * 86400), "3y");
    }
}
