//! Go-style durations as upstream flags take them (`5m`, `1h30m`, `300ms`, `2m0s`).

use std::time::Duration;

/// Parses a Go `time.ParseDuration` string (units ns, us, µs, ms, s, m, h; no sign): the
/// components' parser, shared with the leader-election flags.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    ferrokube_client::leaderelection::parse_duration(text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_go_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_go_duration("2m0s").unwrap(), Duration::from_secs(120));
        assert_eq!(
            parse_go_duration("1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_go_duration("300ms").unwrap(),
            Duration::from_millis(300)
        );
        assert_eq!(
            parse_go_duration("1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "5", "m", "5x", "-5m", "5m3"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }
}
