//! Forwarding one HTTP request to a backend over a connection the caller opened (TCP
//! or TLS), upgrades included: what upstream's `UpgradeAwareHandler` does for the API
//! server's `pods/exec|attach|portforward|log` and `nodes/proxy`, and for the
//! kubelet's hand-off to the runtime's streaming server. The bytes of an upgraded
//! connection (WebSocket or SPDY) are spliced both ways untouched, so every protocol
//! version the two ends agree on works through the proxy.

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("error dialing backend: {0}")]
    Handshake(#[source] hyper::Error),
    #[error("error sending request to backend: {0}")]
    Send(#[source] hyper::Error),
    #[error("invalid backend request: {0}")]
    Request(#[from] http::Error),
}

/// Headers that describe one hop only (RFC 9110 §7.6.1) and are not forwarded — except
/// `Connection: Upgrade` and `Upgrade`, kept on upgrade requests.
const HOP_BY_HOP: &[&str] = &[
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Whether a request asks for a protocol upgrade (`Connection: Upgrade` + `Upgrade`).
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    let connection_upgrade = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && req.headers().contains_key(header::UPGRADE)
}

/// Sends `req`'s method and headers (minus `drop_headers` and hop-by-hop ones), with
/// `path_and_query` and `host`, over `io` as HTTP/1.1 with an empty body. A `101
/// Switching Protocols` answer is returned to be sent to the client, and the two
/// upgraded connections are spliced in a task of their own; any other answer is
/// returned with its body streaming from the backend.
pub async fn forward<IO, B>(
    io: IO,
    req: &mut Request<B>,
    path_and_query: &str,
    host: &str,
    drop_headers: &[&str],
) -> Result<Response<Incoming>, ProxyError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    forward_with_body(io, req, path_and_query, host, drop_headers, Bytes::new()).await
}

/// [`forward`] with `body` (read by the caller) as the request body.
pub async fn forward_with_body<IO, B>(
    io: IO,
    req: &mut Request<B>,
    path_and_query: &str,
    host: &str,
    drop_headers: &[&str],
    body: Bytes,
) -> Result<Response<Incoming>, ProxyError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let upgrade = is_upgrade(req);
    let mut out = Request::builder()
        .method(req.method().clone())
        .uri(path_and_query)
        .header(header::HOST, host);
    for (name, value) in req.headers() {
        let n = name.as_str();
        let skip = n == "host"
            || HOP_BY_HOP.contains(&n)
            || drop_headers.iter().any(|d| d.eq_ignore_ascii_case(n))
            || (!upgrade && (n == "connection" || n == "upgrade"));
        if !skip {
            out = out.header(name, value);
        }
    }
    let out = out.body(Full::new(body))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(ProxyError::Handshake)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "backend connection ended with an error");
        }
    });
    let mut resp = sender.send_request(out).await.map_err(ProxyError::Send)?;
    if upgrade && resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let client = hyper::upgrade::on(&mut *req);
        let backend = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (client, backend) = match tokio::try_join!(client, backend) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "upgrade failed");
                    return;
                }
            };
            let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
                tracing::debug!(error = %e, "upgraded stream ended");
            }
        });
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_requests_are_recognised() {
        let req = Request::get("/")
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "websocket")
            .body(())
            .unwrap_or_default();
        assert!(is_upgrade(&req));
        let plain = Request::get("/").body(()).unwrap_or_default();
        assert!(!is_upgrade(&plain));
        let half = Request::get("/")
            .header("upgrade", "SPDY/3.1")
            .body(())
            .unwrap_or_default();
        assert!(!is_upgrade(&half));
    }
}
