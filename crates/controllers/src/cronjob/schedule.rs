//! When a cron schedule fires next (robfig/cron v3's `SpecSchedule.Next` and
//! `ConstantDelaySchedule.Next`), on whole minutes of UTC or of a time zone's wall
//! clock: a wall time skipped by a daylight-saving jump fires at the same time after
//! the jump, and a repeated one fires once (its first occurrence).

use ferrokube_api::kinds::cron::Schedule;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Hinnant's
/// `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a civil date (Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The first activation strictly after `after` (unix seconds), on the wall clock of
/// `tz` (UTC when None), or `None` when the schedule cannot fire within five years
/// (e.g. `0 0 30 2 *`).
pub fn next(s: &Schedule, after: i64, tz: Option<&TimeZone>) -> Option<i64> {
    if let Some(every) = s.every {
        return Some(after + every as i64);
    }
    let Some(tz) = tz else {
        return next_wall(s, after);
    };
    let offset = i64::from(tz.to_offset(Timestamp::from_second(after).ok()?).seconds());
    let mut wall_after = after + offset;
    // A few rounds at most: only a repeated wall time can come out before `after`.
    for _ in 0..4 {
        let wall = next_wall(s, wall_after)?;
        let (y, mo, d) = civil(wall.div_euclid(86_400));
        let secs = wall.rem_euclid(86_400);
        let dt = jiff::civil::date(
            i16::try_from(y).ok()?,
            i8::try_from(mo).ok()?,
            i8::try_from(d).ok()?,
        )
        .at(
            i8::try_from(secs / 3600).ok()?,
            i8::try_from(secs % 3600 / 60).ok()?,
            0,
            0,
        );
        let at = tz.to_ambiguous_timestamp(dt).compatible().ok()?.as_second();
        if at > after {
            return Some(at);
        }
        wall_after = wall;
    }
    None
}

/// [`next`] on a clock without offsets: `after` and the result are wall-clock seconds.
fn next_wall(s: &Schedule, after: i64) -> Option<i64> {
    let bit = |set: u64, v: u32| set & (1u64 << v) != 0;
    let mut minute = after.div_euclid(60) + 1;
    let limit = minute + 5 * 366 * 24 * 60;
    while minute < limit {
        let days = minute.div_euclid(1440);
        let mod_ = minute.rem_euclid(1440);
        let (y, mo, d) = civil(days);
        if !bit(s.month, mo) {
            let (ny, nm) = if mo == 12 { (y + 1, 1) } else { (y, mo + 1) };
            minute = days_from_civil(ny, nm, 1) * 1440;
            continue;
        }
        let dow = (days + 4).rem_euclid(7) as u32;
        if !day_only_matches(s, d, dow) {
            minute = (days + 1) * 1440;
            continue;
        }
        let h = (mod_ / 60) as u32;
        if !bit(s.hour, h) {
            minute = days * 1440 + (i64::from(h) + 1) * 60;
            continue;
        }
        let m = (mod_ % 60) as u32;
        if bit(s.minute, m) {
            return Some(minute * 60);
        }
        minute += 1;
    }
    None
}

/// The day rule alone (minute/hour ignored).
fn day_only_matches(s: &Schedule, dom: u32, dow: u32) -> bool {
    let any = Schedule {
        minute: u64::MAX,
        hour: u64::MAX,
        month: u64::MAX,
        ..s.clone()
    };
    any.matches(0, 0, dom, 1, dow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrokube_api::kinds::cron::parse;

    // 2026-11-22T08:30:00Z is a Sunday.
    const T: i64 = 1_795_336_200;

    #[test]
    fn civil_round_trip() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(T.div_euclid(86_400)), (2026, 11, 22));
        assert_eq!(days_from_civil(2026, 11, 22), T.div_euclid(86_400));
        assert_eq!((T.div_euclid(86_400) + 4).rem_euclid(7), 0, "a Sunday");
    }

    #[test]
    fn next_activation() {
        let every_minute = parse("* * * * *").unwrap();
        assert_eq!(next(&every_minute, T, None), Some(T + 60));
        assert_eq!(next(&every_minute, T + 5, None), Some(T + 60));
        let quarter = parse("*/15 * * * *").unwrap();
        assert_eq!(next(&quarter, T, None), Some(T + 15 * 60));
        // Weekdays at 09:00: Monday 2026-11-23.
        let weekdays = parse("0 9 * * 1-5").unwrap();
        assert_eq!(next(&weekdays, T, None), Some(T + 86_400 + 30 * 60));
        // First of the month at midnight: 2026-12-01.
        let monthly = parse("@monthly").unwrap();
        assert_eq!(
            next(&monthly, T, None),
            Some(days_from_civil(2026, 12, 1) * 86_400)
        );
        assert_eq!(next(&parse("0 0 30 2 *").unwrap(), T, None), None);
        assert_eq!(next(&parse("@every 90s").unwrap(), T, None), Some(T + 90));
    }

    #[test]
    fn time_zones_use_their_wall_clock() {
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        // 09:00 in Tokyo is 00:00Z: the next one after 08:30Z is 2026-11-23T00:00Z.
        let nine = parse("0 9 * * *").unwrap();
        assert_eq!(
            next(&nine, T, Some(&tokyo)),
            Some(days_from_civil(2026, 11, 23) * 86_400)
        );
        let ny = TimeZone::get("America/New_York").unwrap();
        // 2026-03-08 02:30 does not exist in New York: it fires at 03:30 EDT (07:30Z).
        let half_two = parse("30 2 * * *").unwrap();
        let mar7 = days_from_civil(2026, 3, 7) * 86_400 + 12 * 3600;
        assert_eq!(
            next(&half_two, mar7, Some(&ny)),
            Some(days_from_civil(2026, 3, 8) * 86_400 + 7 * 3600 + 30 * 60)
        );
        // 2026-11-01 01:30 happens twice: it fires once, at 01:30 EDT (05:30Z).
        let half_one = parse("30 1 * * *").unwrap();
        let oct31 = days_from_civil(2026, 10, 31) * 86_400 + 12 * 3600;
        let first = next(&half_one, oct31, Some(&ny)).unwrap();
        assert_eq!(
            first,
            days_from_civil(2026, 11, 1) * 86_400 + 5 * 3600 + 30 * 60
        );
        assert_eq!(
            next(&half_one, first, Some(&ny)),
            Some(days_from_civil(2026, 11, 2) * 86_400 + 6 * 3600 + 30 * 60)
        );
    }
}
