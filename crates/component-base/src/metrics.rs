//! A small Prometheus registry: counters, gauges and histograms (with label vectors)
//! that a component fills and `/metrics` renders in the text exposition format 0.0.4
//! (upstream's `k8s.io/component-base/metrics/legacyregistry` as scraped from
//! `/metrics`). Dependency-free and lock-free on the update path: each series is an
//! atomic; the registry's lock is taken only to create series and to render.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// upstream's `prometheus.DefBuckets`.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An f64 in an atomic.
#[derive(Debug, Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    fn add(&self, d: f64) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(cur) + d).to_bits();
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(seen) => cur = seen,
            }
        }
    }
}

/// A monotonically increasing counter.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicF64>);

impl Counter {
    /// +1.
    pub fn inc(&self) {
        self.0.add(1.0);
    }
    /// +`v` (negative values are ignored: counters only go up).
    pub fn inc_by(&self, v: f64) {
        if v > 0.0 {
            self.0.add(v);
        }
    }
    /// The current value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicF64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.set(v);
    }
    /// +1.
    pub fn inc(&self) {
        self.0.add(1.0);
    }
    /// -1.
    pub fn dec(&self) {
        self.0.add(-1.0);
    }
    /// +`d`.
    pub fn add(&self, d: f64) {
        self.0.add(d);
    }
    /// The current value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

#[derive(Debug)]
struct HistogramInner {
    bounds: Vec<f64>,
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum: AtomicF64,
}

/// Observations counted into cumulative buckets.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<HistogramInner>);

impl Histogram {
    fn new(bounds: &[f64]) -> Histogram {
        let mut bounds: Vec<f64> = bounds.iter().copied().filter(|b| b.is_finite()).collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        Histogram(Arc::new(HistogramInner {
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            bounds,
            count: AtomicU64::new(0),
            sum: AtomicF64::default(),
        }))
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.0.bounds.iter().position(|b| v <= *b) {
            if let Some(b) = self.0.buckets.get(i) {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.0.count.fetch_add(1, Ordering::Relaxed);
        self.0.sum.add(v);
    }

    /// How many observations.
    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone)]
enum Series {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: &'static str,
    label_names: Vec<String>,
    buckets: Vec<f64>,
    series: Mutex<BTreeMap<Vec<String>, Series>>,
}

impl Family {
    fn get(&self, values: &[&str]) -> Series {
        let key: Vec<String> = self
            .label_names
            .iter()
            .enumerate()
            .map(|(i, _)| values.get(i).copied().unwrap_or_default().to_string())
            .collect();
        lock(&self.series)
            .entry(key)
            .or_insert_with(|| match self.kind {
                "counter" => Series::Counter(Counter::default()),
                "gauge" => Series::Gauge(Gauge::default()),
                _ => Series::Histogram(Histogram::new(&self.buckets)),
            })
            .clone()
    }
}

/// A family of counters by label values.
#[derive(Debug, Clone)]
pub struct CounterVec(Arc<Family>);

impl CounterVec {
    /// The counter for these label values (in the order the labels were declared).
    pub fn with(&self, values: &[&str]) -> Counter {
        match self.0.get(values) {
            Series::Counter(c) => c,
            _ => Counter::default(),
        }
    }
}

/// A family of gauges by label values.
#[derive(Debug, Clone)]
pub struct GaugeVec(Arc<Family>);

impl GaugeVec {
    /// The gauge for these label values.
    pub fn with(&self, values: &[&str]) -> Gauge {
        match self.0.get(values) {
            Series::Gauge(g) => g,
            _ => Gauge::default(),
        }
    }
}

/// A family of histograms by label values.
#[derive(Debug, Clone)]
pub struct HistogramVec(Arc<Family>);

impl HistogramVec {
    /// The histogram for these label values.
    pub fn with(&self, values: &[&str]) -> Histogram {
        match self.0.get(values) {
            Series::Histogram(h) => h,
            _ => Histogram::new(&self.0.buckets),
        }
    }
}

/// The registry `/metrics` renders. Registering a name twice returns the existing
/// family (so independent parts of a component can share a metric).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    families: Arc<Mutex<BTreeMap<String, Arc<Family>>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    fn family(
        &self,
        name: &str,
        help: &str,
        kind: &'static str,
        labels: &[&str],
        buckets: &[f64],
    ) -> Arc<Family> {
        lock(&self.families)
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Family {
                    name: name.to_string(),
                    help: help.to_string(),
                    kind,
                    label_names: labels.iter().map(|l| l.to_string()).collect(),
                    buckets: buckets.to_vec(),
                    series: Mutex::new(BTreeMap::new()),
                })
            })
            .clone()
    }

    /// A counter without labels.
    pub fn counter(&self, name: &str, help: &str) -> Counter {
        self.counter_vec(name, help, &[]).with(&[])
    }

    /// A counter family.
    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> CounterVec {
        CounterVec(self.family(name, help, "counter", labels, &[]))
    }

    /// A gauge without labels.
    pub fn gauge(&self, name: &str, help: &str) -> Gauge {
        self.gauge_vec(name, help, &[]).with(&[])
    }

    /// A gauge family.
    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        GaugeVec(self.family(name, help, "gauge", labels, &[]))
    }

    /// A histogram without labels.
    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        self.histogram_vec(name, help, &[], buckets).with(&[])
    }

    /// A histogram family.
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> HistogramVec {
        HistogramVec(self.family(name, help, "histogram", labels, buckets))
    }

    /// The text exposition format (`text/plain; version=0.0.4`).
    pub fn encode(&self) -> String {
        let families: Vec<Arc<Family>> = lock(&self.families).values().cloned().collect();
        let mut out = String::new();
        for f in families {
            let series: Vec<(Vec<String>, Series)> = lock(&f.series)
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if series.is_empty() {
                continue;
            }
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
            for (values, s) in series {
                let labels = |extra: Option<(&str, String)>| {
                    let mut pairs: Vec<String> = f
                        .label_names
                        .iter()
                        .zip(&values)
                        .map(|(n, v)| format!("{n}=\"{}\"", escape_label(v)))
                        .collect();
                    if let Some((n, v)) = extra {
                        pairs.push(format!("{n}=\"{v}\""));
                    }
                    if pairs.is_empty() {
                        String::new()
                    } else {
                        format!("{{{}}}", pairs.join(","))
                    }
                };
                match s {
                    Series::Counter(c) => {
                        let _ = writeln!(out, "{}{} {}", f.name, labels(None), fmt_f64(c.get()));
                    }
                    Series::Gauge(g) => {
                        let _ = writeln!(out, "{}{} {}", f.name, labels(None), fmt_f64(g.get()));
                    }
                    Series::Histogram(h) => {
                        let mut cumulative = 0u64;
                        for (bound, n) in h.0.bounds.iter().zip(&h.0.buckets) {
                            cumulative += n.load(Ordering::Relaxed);
                            let le = Some(("le", fmt_f64(*bound)));
                            let _ = writeln!(out, "{}_bucket{} {cumulative}", f.name, labels(le));
                        }
                        let count = h.count();
                        let inf = Some(("le", "+Inf".to_string()));
                        let _ = writeln!(out, "{}_bucket{} {count}", f.name, labels(inf));
                        let _ = writeln!(
                            out,
                            "{}_sum{} {}",
                            f.name,
                            labels(None),
                            fmt_f64(h.0.sum.get())
                        );
                        let _ = writeln!(out, "{}_count{} {count}", f.name, labels(None));
                    }
                }
            }
        }
        out
    }
}

fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let r = Registry::new();
        let c = r.counter_vec("requests_total", "Requests.", &["code"]);
        c.with(&["200"]).inc();
        c.with(&["200"]).inc();
        c.with(&["4\"0\"4"]).inc_by(3.0);
        r.gauge("leader", "Is leader.").set(1.0);
        let h = r.histogram("latency_seconds", "Latency.", &[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        let text = r.encode();
        assert!(text.contains("# TYPE requests_total counter\n"), "{text}");
        assert!(text.contains("requests_total{code=\"200\"} 2\n"), "{text}");
        assert!(
            text.contains("requests_total{code=\"4\\\"0\\\"4\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE leader gauge\nleader 1\n"), "{text}");
        assert!(
            text.contains("latency_seconds_bucket{le=\"0.1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("latency_seconds_bucket{le=\"1\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("latency_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("latency_seconds_sum 5.55\n"), "{text}");
        assert!(text.contains("latency_seconds_count 3\n"), "{text}");
        // Same name → same family.
        r.counter_vec("requests_total", "Requests.", &["code"])
            .with(&["200"])
            .inc();
        assert_eq!(c.with(&["200"]).get(), 3.0);
    }
}
