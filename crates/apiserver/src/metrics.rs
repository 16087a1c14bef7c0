//! `/metrics` in Prometheus text format, with upstream's metric names:
//! `apiserver_request_total`, `apiserver_request_duration_seconds`,
//! `apiserver_current_inflight_requests`, `apiserver_longrunning_requests` (watches),
//! `apiserver_storage_objects` and the admission webhooks'
//! `apiserver_admission_webhook_admission_duration_seconds` and
//! `apiserver_admission_webhook_rejection_count`.

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

/// Upstream's buckets for apiserver_admission_webhook_admission_duration_seconds.
const WEBHOOK_BUCKETS: &[f64] = &[0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 10.0, 25.0];

#[derive(Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    total: u64,
}

impl Histogram {
    fn observe(&mut self, buckets: &[f64], secs: f64) {
        if self.counts.len() != buckets.len() {
            self.counts = vec![0; buckets.len()];
        }
        for (i, b) in buckets.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.total += 1;
    }

    /// The `_bucket`, `_sum` and `_count` lines of `name` with labels `ls`.
    fn render(&self, out: &mut String, name: &str, ls: &str, buckets: &[f64]) {
        for (i, b) in buckets.iter().enumerate() {
            let n = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{ls},le=\"{b}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{ls},le=\"+Inf\"}} {}", self.total);
        let _ = writeln!(out, "{name}_sum{{{ls}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{ls}}} {}", self.total);
    }
}

/// (name, operation, rejected, type) of a webhook call.
type WebhookLabels = (String, String, bool, &'static str);
/// (name, operation, type, error_type, rejection_code) of a webhook rejection.
type RejectionLabels = (String, String, &'static str, &'static str, u16);

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
    webhook_durations: Mutex<BTreeMap<WebhookLabels, Histogram>>,
    webhook_rejections: Mutex<BTreeMap<RejectionLabels, u64>>,
}

/// Why a webhook call rejected a request (upstream's `error_type` label).
#[derive(Debug, Clone, Copy)]
pub enum WebhookRejection {
    /// The webhook could not be called (failing closed).
    CallingWebhook,
    /// The webhook denied the request with this code.
    Denied(u16),
    /// Something else went wrong in the API server.
    Internal,
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
            d.entry(labels)
                .or_default()
                .observe(BUCKETS, took.as_secs_f64());
        }
    }

    /// One admission webhook call (`kind` is `admit` for mutating, `validating`).
    pub fn observe_webhook(
        &self,
        name: &str,
        operation: &str,
        kind: &'static str,
        rejection: Option<WebhookRejection>,
        took: Duration,
    ) {
        if let Ok(mut d) = self.webhook_durations.lock() {
            let key = (
                name.to_string(),
                operation.to_string(),
                rejection.is_some(),
                kind,
            );
            d.entry(key)
                .or_default()
                .observe(WEBHOOK_BUCKETS, took.as_secs_f64());
        }
        let Some(rejection) = rejection else {
            return;
        };
        let (error_type, code) = match rejection {
            WebhookRejection::CallingWebhook => ("calling_webhook_error", 0),
            WebhookRejection::Denied(code) => ("no_error", code),
            WebhookRejection::Internal => ("apiserver_internal_error", 0),
        };
        if let Ok(mut r) = self.webhook_rejections.lock() {
            let key = (
                name.to_string(),
                operation.to_string(),
                kind,
                error_type,
                code,
            );
            *r.entry(key).or_default() += 1;
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
                h.render(
                    &mut out,
                    "apiserver_request_duration_seconds",
                    &labels(l),
                    BUCKETS,
                );
            }
        }
        out.push_str("# HELP apiserver_admission_webhook_admission_duration_seconds Admission webhook latency histogram in seconds, identified by name and broken out for each operation and API resource and type (validate or admit).\n# TYPE apiserver_admission_webhook_admission_duration_seconds histogram\n");
        if let Ok(d) = self.webhook_durations.lock() {
            for ((name, op, rejected, kind), h) in d.iter() {
                let ls = format!(
                    "name=\"{name}\",operation=\"{op}\",rejected=\"{rejected}\",type=\"{kind}\""
                );
                h.render(
                    &mut out,
                    "apiserver_admission_webhook_admission_duration_seconds",
                    &ls,
                    WEBHOOK_BUCKETS,
                );
            }
        }
        out.push_str("# HELP apiserver_admission_webhook_rejection_count Admission webhook rejection count, identified by name and broken out for each admission type (validating or admit) and operation. Additional labels specify an error type (calling_webhook_error or apiserver_internal_error if an error occurred; no_error otherwise) and optionally a non-zero rejection code if the webhook rejects the request with an HTTP status code (honored by the apiserver when the code is greater or equal to 400). Codes greater than 600 are truncated to 600, to keep the metrics cardinality bounded.\n# TYPE apiserver_admission_webhook_rejection_count counter\n");
        if let Ok(r) = self.webhook_rejections.lock() {
            for ((name, op, kind, error_type, code), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "apiserver_admission_webhook_rejection_count{{error_type=\"{error_type}\",name=\"{name}\",operation=\"{op}\",rejection_code=\"{code}\",type=\"{kind}\"}} {n}"
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
