//! The health (`healthzBindAddress`, 10256) and metrics (`metricsBindAddress`, 10249)
//! endpoints, plain HTTP as upstream: `/healthz` and `/livez` answer JSON with
//! `lastUpdated`, `currentTime` and `nodeEligible`, 200 when the proxier is keeping up
//! and 503 when not; `/metrics` on the metrics address.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use crate::metrics::{format_rfc3339, ProxyMetrics};
use crate::runner::SharedHealth;

fn health_body(health: &SharedHealth) -> (StatusCode, String) {
    let h = health
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let ok = h.healthy(Instant::now());
    let body = serde_json::json!({
        "lastUpdated": h.last_updated.map(format_rfc3339).unwrap_or_default(),
        "currentTime": format_rfc3339(SystemTime::now()),
        "nodeEligible": true,
    });
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body.to_string())
}

fn respond(code: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}

fn route(
    path: &str,
    with_metrics: bool,
    health: &SharedHealth,
    metrics: &ProxyMetrics,
) -> Response<Full<Bytes>> {
    match path {
        "/healthz" | "/livez" => {
            let (code, body) = health_body(health);
            let counter = if path == "/healthz" {
                &metrics.healthz
            } else {
                &metrics.livez
            };
            counter.with(&[code.as_str()]).inc();
            respond(code, "application/json", body)
        }
        "/metrics" if with_metrics => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.registry.encode(),
        ),
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "404 page not found\n".into(),
        ),
    }
}

/// Serves until `stop`; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    with_metrics: bool,
    health: SharedHealth,
    metrics: ProxyMetrics,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                a = listener.accept() => match a { Ok((t, _)) => t, Err(_) => continue },
                _ = stop.wait_for(|s| *s) => return,
            };
            let (health, metrics) = (health.clone(), metrics.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let r = route(req.uri().path(), with_metrics, &health, &metrics);
                    async move { Ok::<_, Infallible>(r) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    Ok(bound)
}
