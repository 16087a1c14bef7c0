//! kube-proxy's Prometheus metrics (`kubeproxy_…` on `metricsBindAddress`/metrics).

use std::time::SystemTime;

use ferrokube_component_base::metrics::{Counter, CounterVec, Gauge, Histogram, Registry};

/// The series the proxier updates.
#[derive(Clone, Debug)]
pub struct ProxyMetrics {
    pub registry: Registry,
    pub sync_duration: Histogram,
    pub full_sync_duration: Histogram,
    pub partial_sync_duration: Histogram,
    pub network_programming: Histogram,
    pub last_sync: Gauge,
    pub objects: Gauge,
    pub service_changes: Counter,
    pub endpoint_changes: Counter,
    pub sync_failures: Counter,
    pub healthz: CounterVec,
    pub livez: CounterVec,
}

/// upstream's sync buckets: 1 ms doubling to ~16 s.
fn sync_buckets() -> Vec<f64> {
    (0..15).map(|i| 0.001 * f64::from(1u32 << i)).collect()
}

impl ProxyMetrics {
    pub fn new(mode: &str) -> ProxyMetrics {
        let r = Registry::new();
        let b = sync_buckets();
        let failures = if mode == "iptables" {
            "kubeproxy_sync_proxy_rules_iptables_restore_failures_total"
        } else {
            "kubeproxy_sync_proxy_rules_nftables_sync_failures_total"
        };
        ProxyMetrics {
            sync_duration: r.histogram(
                "kubeproxy_sync_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds",
                &b,
            ),
            full_sync_duration: r.histogram(
                "kubeproxy_sync_full_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds for full resyncs",
                &b,
            ),
            partial_sync_duration: r.histogram(
                "kubeproxy_sync_partial_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds for partial resyncs",
                &b,
            ),
            network_programming: r.histogram(
                "kubeproxy_network_programming_duration_seconds",
                "In Cluster Network Programming Latency in seconds",
                &[
                    0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0, 30.0,
                    60.0, 120.0, 300.0,
                ],
            ),
            last_sync: r.gauge(
                "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                "The last time proxy rules were successfully synced",
            ),
            objects: r.gauge(
                "kubeproxy_sync_proxy_rules_objects",
                "Kernel objects (rules, map elements) the last sync left in place",
            ),
            service_changes: r.counter(
                "kubeproxy_sync_proxy_rules_service_changes_total",
                "Cumulative proxy rules Service changes",
            ),
            endpoint_changes: r.counter(
                "kubeproxy_sync_proxy_rules_endpoint_changes_total",
                "Cumulative proxy rules Endpoint changes",
            ),
            sync_failures: r.counter(failures, "Cumulative proxy rules sync failures"),
            healthz: r.counter_vec(
                "kubeproxy_proxy_healthz_total",
                "Cumulative proxy healthz HTTP status",
                &["code"],
            ),
            livez: r.counter_vec(
                "kubeproxy_proxy_livez_total",
                "Cumulative proxy livez HTTP status",
                &["code"],
            ),
            registry: r,
        }
    }
}

/// An RFC 3339 time (`2026-01-01T00:00:00Z`).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    s.parse::<jiff::Timestamp>().ok().map(SystemTime::from)
}

/// RFC 3339 with the time's own precision.
pub fn format_rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_metrics_render() {
        let t = parse_rfc3339("2026-11-22T10:00:00Z").unwrap();
        assert_eq!(format_rfc3339(t), "2026-11-22T10:00:00Z");
        assert!(parse_rfc3339("yesterday").is_none());
        let m = ProxyMetrics::new("nftables");
        m.sync_duration.observe(0.003);
        let text = m.registry.encode();
        assert!(
            text.contains("kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.004\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("kubeproxy_sync_proxy_rules_nftables_sync_failures_total 0"),
            "{text}"
        );
    }
}
