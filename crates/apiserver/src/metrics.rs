//! `/metrics` in Prometheus text format, with upstream's metric names:
//! `apiserver_request_total`, `apiserver_request_duration_seconds`,
//! `apiserver_current_inflight_requests`, `apiserver_longrunning_requests` (watches) and
//! `apiserver_storage_objects`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Upstream's buckets for apiserver_request_duration_seconds.
const BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// (verb, group, version, resource, subresource, scope)
pub type RequestLabels = (String, String, String, String, String, String);

#[derive(Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    total: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(RequestLabels, u16), u64>>,
    durations: Mutex<BTreeMap<RequestLabels, Histogram>>,
    pub inflight_read: AtomicI64,
    pub inflight_mutating: AtomicI64,
    pub watches: AtomicI64,
    /// Requests refused by the max-in-flight limits (429), read-only and mutating.
    pub dropped_read: AtomicI64,
    pub dropped_mutating: AtomicI64,
}

pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::default)
}

/// Decrements a gauge when dropped (a request or watch ending however it ends).
#[derive(Debug)]
pub struct GaugeGuard(&'static AtomicI64);

impl GaugeGuard {
    pub fn new(g: &'static AtomicI64) -> Self {
        g.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(g)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn observe(&self, labels: RequestLabels, code: u16, took: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((labels.clone(), code)).or_default() += 1;
        }
        if let Ok(mut d) = self.durations.lock() {
            let h = d.entry(labels).or_insert_with(|| Histogram {
                counts: vec![0; BUCKETS.len()],
                ..Default::default()
            });
            let secs = took.as_secs_f64();
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += secs;
            h.total += 1;
        }
    }

    /// The exposition text; `objects` are (resource, count) pairs read at scrape time.
    pub fn render(&self, objects: &[(String, i64)]) -> String {
        let mut out = String::new();
        let labels = |l: &RequestLabels| {
            format!(
                "component=\"apiserver\",group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"",
                l.1, l.3, l.5, l.4, l.0, l.2
            )
        };
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n# TYPE apiserver_request_total counter\n");
        if let Ok(r) = self.requests.lock() {
            for ((l, code), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "apiserver_request_total{{code=\"{code}\",{}}} {n}",
                    labels(l)
                );
            }
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.\n# TYPE apiserver_request_duration_seconds histogram\n");
        if let Ok(d) = self.durations.lock() {
            for (l, h) in d.iter() {
                let ls = labels(l);
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "apiserver_request_duration_seconds_bucket{{{ls},le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "apiserver_request_duration_seconds_bucket{{{ls},le=\"+Inf\"}} {}",
                    h.total
                );
                let _ = writeln!(
                    out,
                    "apiserver_request_duration_seconds_sum{{{ls}}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "apiserver_request_duration_seconds_count{{{ls}}} {}",
                    h.total
                );
            }
        }
        out.push_str("# HELP apiserver_current_inflight_requests Maximal number of currently used inflight request limit of this apiserver per request kind in last second.\n# TYPE apiserver_current_inflight_requests gauge\n");
        let _ = writeln!(
            out,
            "apiserver_current_inflight_requests{{request_kind=\"mutating\"}} {}",
            self.inflight_mutating.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "apiserver_current_inflight_requests{{request_kind=\"readOnly\"}} {}",
            self.inflight_read.load(Ordering::Relaxed)
        );
        out.push_str("# HELP apiserver_dropped_requests_total Number of requests dropped with 'Try again later' response.\n# TYPE apiserver_dropped_requests_total counter\n");
        for (kind, n) in [
            ("mutating", &self.dropped_mutating),
            ("readOnly", &self.dropped_read),
        ] {
            let _ = writeln!(
                out,
                "apiserver_dropped_requests_total{{request_kind=\"{kind}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP apiserver_longrunning_requests Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component.\n# TYPE apiserver_longrunning_requests gauge\n");
        let _ = writeln!(
            out,
            "apiserver_longrunning_requests{{component=\"apiserver\",verb=\"WATCH\"}} {}",
            self.watches.load(Ordering::Relaxed)
        );
        out.push_str("# HELP apiserver_storage_objects Number of stored objects at the time of last check split by kind.\n# TYPE apiserver_storage_objects gauge\n");
        for (resource, n) in objects {
            let _ = writeln!(
                out,
                "apiserver_storage_objects{{resource=\"{resource}\"}} {n}"
            );
        }
        out
    }
}

/// Upstream's verb label: LIST and WATCH split from GET, APPLY from PATCH.
pub fn verb_label(verb: &str, method: &http::Method) -> String {
    match verb {
        "list" => "LIST".into(),
        "watch" => "WATCH".into(),
        "deletecollection" => "DELETECOLLECTION".into(),
        "create" | "update" | "patch" | "delete" | "get" => method.as_str().to_string(),
        _ => method.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        let l: RequestLabels = (
            "POST".into(),
            "".into(),
            "v1".into(),
            "configmaps".into(),
            "".into(),
            "resource".into(),
        );
        m.observe(l.clone(), 201, Duration::from_millis(3));
        m.observe(l, 201, Duration::from_millis(30));
        let text = m.render(&[("configmaps".into(), 2)]);
        assert!(text.contains(r#"apiserver_request_total{code="201",component="apiserver",group="",resource="configmaps",scope="resource",subresource="",verb="POST",version="v1"} 2"#), "{text}");
        assert!(
            text.contains(r#"le="0.005"} 1"#) && text.contains(r#"le="0.05"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"apiserver_storage_objects{resource="configmaps"} 2"#));
    }
}
