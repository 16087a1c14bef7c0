//! Cron schedules as the CronJob API takes them: robfig/cron v3's `ParseStandard`
//! (five fields, `@hourly`-style descriptors, `@every <duration>`, a `CRON_TZ=`/`TZ=`
//! prefix) with its error texts for validation, and `Next` for the controller.

use super::util::go_quote;

/// Set on a day field written as `*`/`?` (robfig's `starBit`): day-of-month and
/// day-of-week are ANDed when either is a star, ORed otherwise.
pub const STAR: u64 = 1 << 63;

/// A parsed schedule: one bit per allowed value of each field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    pub minute: u64,
    pub hour: u64,
    pub dom: u64,
    pub month: u64,
    pub dow: u64,
    /// `@every <d>`: a fixed period in whole seconds.
    pub every: Option<u64>,
    /// The `CRON_TZ=`/`TZ=` prefix's zone name.
    pub tz: Option<String>,
}

fn bit(set: u64, v: u32) -> bool {
    set & (1u64 << v) != 0
}

impl Schedule {
    /// Whether the calendar fields allow this minute (robfig's `dayMatches` for the
    /// day fields). `dow` 0 = Sunday.
    pub fn matches(&self, minute: u32, hour: u32, dom: u32, month: u32, dow: u32) -> bool {
        if !(bit(self.minute, minute) && bit(self.hour, hour) && bit(self.month, month)) {
            return false;
        }
        let dom_ok = bit(self.dom, dom);
        let dow_ok = bit(self.dow, dow);
        if self.dom & STAR != 0 || self.dow & STAR != 0 {
            dom_ok && dow_ok
        } else {
            dom_ok || dow_ok
        }
    }
}

/// Whole seconds of a Go duration already checked by `go_duration_ok`.
fn go_duration_secs(d: &str) -> u64 {
    let mut total = 0f64;
    let mut rest = d;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let v: f64 = rest[..n].parse().unwrap_or(0.0);
        rest = &rest[n..];
        let (unit, secs) = [
            ("ns", 1e-9),
            ("us", 1e-6),
            ("µs", 1e-6),
            ("ms", 1e-3),
            ("s", 1.0),
            ("m", 60.0),
            ("h", 3600.0),
        ]
        .into_iter()
        .filter(|(u, _)| rest.starts_with(u))
        .max_by_key(|(u, _)| u.len())
        .unwrap_or(("", 0.0));
        rest = &rest[unit.len()..];
        total += v * secs;
        if unit.is_empty() {
            break;
        }
    }
    total as u64
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// `cron.ParseStandard` of robfig/cron v3: its error texts, or Ok.
pub fn parse_standard(spec: &str) -> Result<(), String> {
    parse(spec).map(|_| ())
}

/// Parses a schedule as robfig/cron v3's `ParseStandard` does.
pub fn parse(spec: &str) -> Result<Schedule, String> {
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    let mut spec = spec;
    let mut tz = None;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let i = spec.find(' ').unwrap_or(spec.len());
        let eq = spec.find('=').unwrap_or(0);
        let name = &spec[eq + 1..i];
        let zoneinfo = std::path::Path::new("/usr/share/zoneinfo");
        if name != "UTC" && zoneinfo.is_dir() && !zoneinfo.join(name).is_file() {
            return Err(format!(
                "provided bad location {name}: unknown time zone {name}"
            ));
        }
        tz = Some(name.to_string());
        spec = spec[i..].trim();
    }
    if let Some(desc) = spec.strip_prefix('@') {
        let fixed = match desc {
            "yearly" | "annually" => Some("0 0 1 1 *"),
            "monthly" => Some("0 0 1 * *"),
            "weekly" => Some("0 0 * * 0"),
            "daily" | "midnight" => Some("0 0 * * *"),
            "hourly" => Some("0 * * * *"),
            _ => None,
        };
        if let Some(f) = fixed {
            let mut s = parse(f)?;
            s.tz = tz;
            return Ok(s);
        }
        return match desc {
            d if d.starts_with("every ") => {
                let dur = &d["every ".len()..];
                if go_duration_ok(dur) {
                    Ok(Schedule {
                        every: Some(go_duration_secs(dur).max(1)),
                        tz,
                        ..Schedule::default()
                    })
                } else {
                    Err(format!(
                        "failed to parse duration {spec}: time: invalid duration {}",
                        go_quote(dur)
                    ))
                }
            }
            _ => Err(format!("unrecognized descriptor: {spec}")),
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    let mut bits = [0u64; 5];
    for ((f, b), out) in fields
        .iter()
        .zip([MINUTES, HOURS, DOM, MONTHS, DOW])
        .zip(bits.iter_mut())
    {
        for expr in f.split(',') {
            *out |= range(expr, &b)?;
        }
    }
    Ok(Schedule {
        minute: bits[0],
        hour: bits[1],
        dom: bits[2],
        month: bits[3],
        dow: bits[4],
        every: None,
        tz,
    })
}

fn go_duration_ok(d: &str) -> bool {
    let mut rest = d;
    if rest.is_empty() {
        return false;
    }
    if rest == "0" {
        return true;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n == 0 {
            return false;
        }
        rest = &rest[n..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(**u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

fn parse_int(expr: &str) -> Result<u32, String> {
    let n: i64 = expr.parse().map_err(|_| {
        format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {}: invalid syntax",
            go_quote(expr)
        )
    })?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {expr}"));
    }
    u32::try_from(n).map_err(|_| {
        format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {}: value out of range",
            go_quote(expr)
        )
    })
}

fn parse_value(expr: &str, b: &Bounds) -> Result<u32, String> {
    let lower = expr.to_ascii_lowercase();
    if let Some(i) = b.names.iter().position(|n| *n == lower) {
        return Ok(u32::try_from(i).unwrap_or(0) + b.min);
    }
    parse_int(expr)
}

/// robfig/cron's `getRange`: the field's bits, with [`STAR`] when the field is `*`/`?`
/// without a step above 1.
fn range(expr: &str, b: &Bounds) -> Result<u64, String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single_digit = low_and_high.len() == 1;
    let (start, mut end);
    let mut extra = 0u64;
    let mut step = 1u32;
    if low_and_high[0] == "*" || low_and_high[0] == "?" {
        start = b.min;
        end = b.max;
        extra = STAR;
    } else {
        start = parse_value(low_and_high[0], b)?;
        end = match low_and_high.len() {
            1 => start,
            2 => parse_value(low_and_high[1], b)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
    }
    match range_and_step.len() {
        1 => {}
        2 => {
            step = parse_int(range_and_step[1])?;
            if single_digit {
                end = b.max;
            }
            if step == 0 {
                return Err(format!("step of range should be a positive number: {expr}"));
            }
            if step > 1 {
                extra = 0;
            }
        }
        _ => return Err(format!("too many slashes: {expr}")),
    }
    if start < b.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    let mut bits = extra;
    let mut i = start;
    while i <= end {
        bits |= 1u64 << i;
        i += step;
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_descriptors_and_day_rules() {
        let s = parse("*/15 9-17 * * mon-fri").unwrap();
        assert!(s.matches(30, 10, 5, 3, 1));
        assert!(!s.matches(31, 10, 5, 3, 1));
        assert!(!s.matches(30, 10, 5, 3, 0));
        // Both day fields restricted: either matches.
        let s = parse("0 0 1 * 1").unwrap();
        assert!(s.matches(0, 0, 1, 6, 4));
        assert!(s.matches(0, 0, 9, 6, 1));
        assert!(!s.matches(0, 0, 9, 6, 2));
        assert_eq!(parse("@hourly").unwrap(), parse("0 * * * *").unwrap());
        assert_eq!(parse("@every 1m30s").unwrap().every, Some(90));
        assert_eq!(
            parse("CRON_TZ=UTC 0 * * * *").unwrap().tz.as_deref(),
            Some("UTC")
        );
        assert!(parse("61 * * * *").is_err());
    }
}
