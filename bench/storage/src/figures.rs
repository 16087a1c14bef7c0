//! Percentiles and the printed report: each figure for both backends and the ratio.

use std::time::Duration;

/// p-th percentile (0..=100) of `samples` in milliseconds.
pub fn percentile_ms(samples: &mut [Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_unstable();
    let idx = ((samples.len() - 1) as f64 * p / 100.0).round() as usize;
    samples[idx].as_secs_f64() * 1000.0
}

#[derive(Clone, Copy, Debug)]
pub enum Target {
    None,
    /// embedded / etcd must be at least this.
    RatioAtLeast(f64),
    /// embedded / etcd must be at most this.
    RatioAtMost(f64),
    /// The embedded figure itself must be at most this.
    EmbeddedAtMost(f64),
}

#[derive(Debug)]
struct Row {
    name: String,
    embedded: f64,
    etcd: Option<f64>,
    target: Target,
}

#[derive(Debug, Default)]
pub struct Report {
    rows: Vec<Row>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.etcd.map(|x| self.embedded / x)
    }
    fn met(&self) -> Option<bool> {
        match self.target {
            Target::None => None,
            Target::RatioAtLeast(t) => self.ratio().map(|r| r >= t),
            Target::RatioAtMost(t) => self.ratio().map(|r| r <= t),
            Target::EmbeddedAtMost(t) => Some(self.embedded <= t),
        }
    }
    fn target_text(&self) -> String {
        match self.target {
            Target::None => String::new(),
            Target::RatioAtLeast(t) => format!("target ratio >= {t}"),
            Target::RatioAtMost(t) => format!("target ratio <= {t}"),
            Target::EmbeddedAtMost(t) => format!("target embedded <= {t}"),
        }
    }
}

impl Report {
    pub fn compare(&mut self, name: &str, embedded: f64, etcd: f64, target: Target) {
        self.rows.push(Row {
            name: name.into(),
            embedded,
            etcd: Some(etcd),
            target,
        });
    }
    pub fn single(&mut self, name: &str, embedded: f64, target: Target) {
        self.rows.push(Row {
            name: name.into(),
            embedded,
            etcd: None,
            target,
        });
    }
    pub fn missed(&self) -> usize {
        self.rows.iter().filter(|r| r.met() == Some(false)).count()
    }
    pub fn print(&self) {
        println!();
        println!(
            "{:<52} {:>12} {:>12} {:>8}  target",
            "figure", "embedded", "etcd", "ratio"
        );
        for r in &self.rows {
            let etcd = r.etcd.map_or("-".to_string(), |x| format!("{x:.2}"));
            let ratio = r.ratio().map_or("-".to_string(), |x| format!("{x:.2}"));
            let verdict = match r.met() {
                None => String::new(),
                Some(true) => format!("met ({})", r.target_text()),
                Some(false) => format!("MISSED ({})", r.target_text()),
            };
            println!(
                "{:<52} {:>12.2} {:>12} {:>8}  {}",
                r.name, r.embedded, etcd, ratio, verdict
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&mut v, 50.0), 51.0);
        assert_eq!(percentile_ms(&mut v, 99.0), 99.0);
        assert!(percentile_ms(&mut [], 50.0).is_nan());
    }

    #[test]
    fn targets_are_judged() {
        let mut r = Report::default();
        r.compare("a", 30.0, 10.0, Target::RatioAtLeast(3.0));
        r.compare("b", 2.0, 1.0, Target::RatioAtMost(1.0));
        r.single("c", 10.0, Target::EmbeddedAtMost(5.0));
        assert_eq!(r.missed(), 2);
    }
}
