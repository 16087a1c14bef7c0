//! The plain-HTTP health and metrics port (CoreDNS serves `health`, `ready` and
//! `prometheus` on plain HTTP too; kubelet probes and Prometheus scrape it inside
//! the cluster): `/healthz` and `/livez` (the process answers), `/readyz` (the zone
//! holds the first complete lists of Services and EndpointSlices), `/metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use ferrokube_component_base::{Endpoint, HealthChecks, Registry};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}

fn route(
    req: &Request<Incoming>,
    health: &HealthChecks,
    metrics: &Registry,
) -> Response<Full<Bytes>> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed\n",
        );
    }
    let path = req.uri().path();
    if path == "/metrics" {
        return text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.encode(),
        );
    }
    if let Some((endpoint, single)) = Endpoint::from_path(path) {
        let r = health.respond(endpoint, single, req.uri().query());
        let code = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return text(code, "text/plain; charset=utf-8", r.body);
    }
    text(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "404 page not found\n",
    )
}

/// Serves `listener` until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, health: HealthChecks, metrics: Registry) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(err) => {
                tracing::debug!(%err, "health port: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (health, metrics) = (health.clone(), metrics.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let resp = route(&req, &health, &metrics);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(err) = tokio::time::timeout(std::time::Duration::from_secs(60), conn).await {
                tracing::debug!(%peer, %err, "health port: connection timed out");
            }
        });
    }
}

/// Binds the health port.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
