//! The server's Prometheus metrics, named as CoreDNS names them where CoreDNS has
//! one (`coredns_dns_requests_total`, `coredns_dns_responses_total`,
//! `coredns_dns_request_duration_seconds`; the forwarder's are in `crate::forward`).
//! Every series the query path touches is created up front, so counting a query is
//! a few atomic adds with no lock and no allocation.

use std::time::Duration;

use ferrokube_component_base::{Counter, Gauge, Histogram, Registry};

use crate::answer::Proto;
use crate::wire::{rcode, rtype};

/// CoreDNS's duration buckets: 0.25 ms doubling to about 8 s.
const BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024,
    2.048, 4.096, 8.192,
];

const TYPES: &[(u16, &str)] = &[
    (rtype::A, "A"),
    (rtype::AAAA, "AAAA"),
    (rtype::SRV, "SRV"),
    (rtype::PTR, "PTR"),
    (rtype::TXT, "TXT"),
    (rtype::CNAME, "CNAME"),
    (rtype::SOA, "SOA"),
    (rtype::NS, "NS"),
    (rtype::ANY, "ANY"),
];
const OTHER_TYPE: &str = "other";

const RCODES: &[(u16, &str)] = &[
    (rcode::NOERROR, "NOERROR"),
    (rcode::FORMERR, "FORMERR"),
    (rcode::SERVFAIL, "SERVFAIL"),
    (rcode::NXDOMAIN, "NXDOMAIN"),
    (rcode::NOTIMP, "NOTIMP"),
    (rcode::REFUSED, "REFUSED"),
];
const OTHER_RCODE: &str = "other";

/// The query path's metrics.
#[derive(Debug, Clone)]
pub struct DnsMetrics {
    /// `[proto][type]`, the last type slot being "other".
    requests: [Vec<Counter>; 2],
    responses: Vec<Counter>,
    duration: Histogram,
    dropped: Counter,
    services: Gauge,
    names: Gauge,
}

impl DnsMetrics {
    /// Registers the series in `registry`.
    pub fn new(registry: &Registry) -> DnsMetrics {
        let requests = registry.counter_vec(
            "coredns_dns_requests_total",
            "Counter of DNS requests made per protocol and type.",
            &["proto", "type"],
        );
        let per_proto = |proto: &str| -> Vec<Counter> {
            TYPES
                .iter()
                .map(|(_, t)| *t)
                .chain([OTHER_TYPE])
                .map(|t| requests.with(&[proto, t]))
                .collect()
        };
        let responses = registry.counter_vec(
            "coredns_dns_responses_total",
            "Counter of response status codes.",
            &["rcode"],
        );
        DnsMetrics {
            requests: [per_proto("udp"), per_proto("tcp")],
            responses: RCODES
                .iter()
                .map(|(_, r)| *r)
                .chain([OTHER_RCODE])
                .map(|r| responses.with(&[r]))
                .collect(),
            duration: registry.histogram(
                "coredns_dns_request_duration_seconds",
                "Histogram of the time (in seconds) each request took.",
                BUCKETS,
            ),
            dropped: registry.counter(
                "ferrokube_dns_dropped_total",
                "Packets dropped without an answer (too short to carry an ID, or not a query).",
            ),
            services: registry.gauge(
                "ferrokube_dns_zone_services",
                "Services in the cluster zone.",
            ),
            names: registry.gauge("ferrokube_dns_zone_names", "Names in the cluster zone."),
        }
    }

    /// Counts one answered query.
    pub fn observe(&self, proto: Proto, qtype: u16, rc: u16, took: Duration) {
        let p = match proto {
            Proto::Udp => 0,
            Proto::Tcp => 1,
        };
        let t = TYPES
            .iter()
            .position(|(v, _)| *v == qtype)
            .unwrap_or(TYPES.len());
        if let Some(c) = self.requests[p].get(t) {
            c.inc();
        }
        let r = RCODES
            .iter()
            .position(|(v, _)| *v == rc)
            .unwrap_or(RCODES.len());
        if let Some(c) = self.responses.get(r) {
            c.inc();
        }
        self.duration.observe(took.as_secs_f64());
    }

    /// Counts a dropped packet.
    pub fn dropped(&self) {
        self.dropped.inc();
    }

    /// Sets the zone size gauges.
    pub fn zone_size(&self, services: usize, names: usize) {
        self.services.set(services as f64);
        self.names.set(names as f64);
    }
}
