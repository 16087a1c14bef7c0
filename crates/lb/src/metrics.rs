//! Prometheus metrics and health over plain HTTP on the metrics address (as
//! kube-proxy serves `--metrics-bind-address`): `/metrics` (component-base's
//! registry), `/healthz`, `/livez`, `/readyz` (component-base's checks; `/readyz`
//! fails while an upstream has no server that can be used).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use ferrokube_component_base::{
    Counter, CounterVec, Endpoint, Gauge, GaugeVec, HealthChecks, Registry,
};
use http_body_util::Full;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The load balancer's metric families.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    pub registry: Registry,
    pub health: HealthChecks,
    accepted: CounterVec,
    active: GaugeVec,
    rejected: CounterVec,
    upstream_connections: CounterVec,
    connect_failures: CounterVec,
    sent: CounterVec,
    received: CounterVec,
    up: GaugeVec,
    no_live: CounterVec,
    reloads: CounterVec,
    pub last_reload_ok: Gauge,
}

/// Series of one listener.
#[derive(Debug, Clone)]
pub(crate) struct ListenerMetrics {
    pub accepted: Counter,
    pub active: Gauge,
    pub rejected: Counter,
}

/// Series of one upstream server.
#[derive(Debug, Clone)]
pub(crate) struct PeerMetrics {
    pub connections: Counter,
    pub connect_failures: Counter,
    /// Bytes sent to the server (from clients).
    pub sent: Counter,
    /// Bytes received from the server (to clients).
    pub received: Counter,
    pub up: Gauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let l = &["listener"];
        let s = &["upstream", "server"];
        Metrics {
            accepted: registry.counter_vec(
                "ferrokube_lb_connections_accepted_total",
                "Client connections accepted, per listener.",
                l,
            ),
            active: registry.gauge_vec(
                "ferrokube_lb_connections_active",
                "Client connections open now, per listener.",
                l,
            ),
            rejected: registry.counter_vec(
                "ferrokube_lb_connections_rejected_total",
                "Client connections closed at once because maxConnections (worker_connections) were open.",
                l,
            ),
            upstream_connections: registry.counter_vec(
                "ferrokube_lb_upstream_connections_total",
                "Connections made to an upstream server.",
                s,
            ),
            connect_failures: registry.counter_vec(
                "ferrokube_lb_upstream_connect_failures_total",
                "Failed or timed-out connects to an upstream server.",
                s,
            ),
            sent: registry.counter_vec(
                "ferrokube_lb_upstream_sent_bytes_total",
                "Bytes sent to an upstream server.",
                s,
            ),
            received: registry.counter_vec(
                "ferrokube_lb_upstream_received_bytes_total",
                "Bytes received from an upstream server.",
                s,
            ),
            up: registry.gauge_vec(
                "ferrokube_lb_upstream_up",
                "1 if the upstream server can be chosen (not down, not failed), else 0.",
                s,
            ),
            no_live: registry.counter_vec(
                "ferrokube_lb_no_live_upstreams_total",
                "Client connections closed because no server of the upstream could be reached.",
                &["upstream"],
            ),
            reloads: registry.counter_vec(
                "ferrokube_lb_config_reloads_total",
                "Configuration reloads, by result.",
                &["result"],
            ),
            last_reload_ok: registry.gauge(
                "ferrokube_lb_config_last_reload_successful",
                "1 if the last reload applied, 0 if it was rejected.",
            ),
            registry,
            health: HealthChecks::new(),
        }
    }

    pub fn listener(&self, name: &str) -> ListenerMetrics {
        ListenerMetrics {
            accepted: self.accepted.with(&[name]),
            active: self.active.with(&[name]),
            rejected: self.rejected.with(&[name]),
        }
    }

    pub fn peer(&self, upstream: &str, server: &str) -> PeerMetrics {
        let l = &[upstream, server];
        PeerMetrics {
            connections: self.upstream_connections.with(l),
            connect_failures: self.connect_failures.with(l),
            sent: self.sent.with(l),
            received: self.received.with(l),
            up: self.up.with(l),
        }
    }

    pub fn no_live(&self, upstream: &str) -> Counter {
        self.no_live.with(&[upstream])
    }

    pub fn reload(&self, ok: bool) {
        self.reloads
            .with(&[if ok { "success" } else { "failure" }])
            .inc();
        self.last_reload_ok.set(if ok { 1.0 } else { 0.0 });
    }
}

/// Refreshes gauges computed at scrape time (up/down depends on the clock).
pub(crate) type Refresh = Arc<dyn Fn() + Send + Sync>;

fn respond(
    metrics: &Metrics,
    refresh: &Refresh,
    path: &str,
    query: Option<&str>,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = if path == "/metrics" {
        refresh();
        (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.registry.encode(),
        )
    } else if let Some((endpoint, single)) = Endpoint::from_path(path) {
        refresh();
        let r = metrics.health.respond(endpoint, single, query);
        (r.status, "text/plain; charset=utf-8", r.body)
    } else {
        (
            404,
            "text/plain; charset=utf-8",
            "404 page not found\n".to_string(),
        )
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

/// Serves `/metrics` and the health endpoints on `listener` until `shutdown`.
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    refresh: Refresh,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(err) => {
                    tracing::warn!(%err, "metrics: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let (metrics, refresh) = (metrics.clone(), refresh.clone());
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let resp =
                    if req.method() == http::Method::GET || req.method() == http::Method::HEAD {
                        respond(&metrics, &refresh, req.uri().path(), req.uri().query())
                    } else {
                        let mut r =
                            Response::new(Full::new(Bytes::from_static(b"method not allowed\n")));
                        *r.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
                        r
                    };
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}
