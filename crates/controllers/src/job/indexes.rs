//! Completion indexes of Indexed Jobs: `status.completedIndexes` (and `failedIndexes`)
//! is an ordered, compressed interval list such as `1,3-5,7` (upstream `indexed_job_utils.go`).

use std::collections::BTreeSet;

/// Parses `1,3-5,7` into the set of indexes below `completions` (malformed parts are
/// skipped, as upstream's parser does).
pub fn parse(s: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        if let (Ok(a), Ok(b)) = (a, b) {
            for i in a.max(0)..=b.min(completions - 1) {
                out.insert(i);
            }
        }
    }
    out
}

/// Formats indexes as upstream's interval list.
pub fn format(set: &BTreeSet<i32>) -> String {
    let mut parts = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        // Two neighbours are listed, longer runs joined with a dash (upstream's
        // `orderedIntervals.String`).
        parts.push(match end - start {
            0 => start.to_string(),
            1 => format!("{start},{end}"),
            _ => format!("{start}-{end}"),
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_interval_lists() {
        let set = parse("1,3-5,7", 10);
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), vec![1, 3, 4, 5, 7]);
        assert_eq!(format(&set), "1,3-5,7");
        assert_eq!(format(&parse("0-9", 3)), "0-2");
        assert_eq!(format(&BTreeSet::new()), "");
        assert_eq!(format(&parse("0-1,4-5,7-9", 10)), "0,1,4,5,7-9");
    }
}
