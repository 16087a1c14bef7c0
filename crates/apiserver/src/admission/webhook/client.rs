//! One webhook call: an HTTPS POST of the AdmissionReview (HTTP/1.1, the caBundle's
//! roots, the endpoint's server name), bounded by the webhook's timeout. Errors read as
//! client-go's (`Post "<url>": <cause>`), which upstream puts in its messages.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio_rustls::TlsConnector;

/// The largest response read from a webhook.
const MAX_RESPONSE: usize = 10 << 20;

/// Posts `body` to `addr` (TLS checked against `server_name`) at `path`; `url` names the
/// call in errors. Returns the response body of a 2xx answer.
pub async fn post(
    tls: &TlsConnector,
    addr: SocketAddr,
    server_name: &str,
    path: &str,
    url: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Bytes, String> {
    let fail = |cause: String| format!("Post {url:?}: {cause}");
    match tokio::time::timeout(timeout, exchange(tls, addr, server_name, path, body)).await {
        Ok(r) => r.map_err(fail),
        Err(_) => Err(fail("context deadline exceeded".into())),
    }
}

async fn exchange(
    tls: &TlsConnector,
    addr: SocketAddr,
    server_name: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<Bytes, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("dial tcp {addr}: {}", connect_cause(&e)))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| format!("invalid server name {server_name:?}: {e}"))?;
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let request = http::Request::post(path)
        .header(http::header::HOST, server_name)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, */*")
        .header(http::header::USER_AGENT, "ferrokube-apiserver")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string());
    let result = match response {
        Ok(resp) => {
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(|e| format!("reading the response: {e}"));
            match body {
                Ok(b) if status.is_success() => Ok(b),
                Ok(b) => Err(status_error(status, &b)),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    driver.abort();
    result
}

fn connect_cause(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        _ => format!("connect: {e}"),
    }
}

/// What a non-2xx answer says: its Status message when it sent one, as client-go.
fn status_error(status: http::StatusCode, body: &[u8]) -> String {
    let message = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.get("message")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .map(str::to_string)
    });
    match message {
        Some(m) => m,
        None => format!(
            "the server responded with the status code {} but did not return more information",
            status.as_u16()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_success_answers_are_explained() {
        assert_eq!(
            status_error(
                http::StatusCode::NOT_FOUND,
                br#"{"kind":"Status","message":"no such hook"}"#
            ),
            "no such hook"
        );
        assert_eq!(
            status_error(http::StatusCode::BAD_GATEWAY, b"oops"),
            "the server responded with the status code 502 but did not return more information"
        );
    }
}
