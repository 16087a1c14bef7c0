//! The client side of the gRPC health checking protocol (`grpc.health.v1.Health/Check`)
//! as the kubelet's grpc probe uses it (upstream's `pkg/probe/grpc`): a plaintext
//! HTTP/2 connection to the container, one Check call, success only for SERVING. The
//! failure messages are upstream's.

use std::time::Duration;

use tonic::transport::Endpoint;

/// The generated health messages and client.
pub use crate::generated::health as v1;

use v1::health_check_response::ServingStatus;

/// Checks `service` at `host:port` within `timeout`; `Err` carries the probe's message.
pub async fn check(host: &str, port: u16, service: &str, timeout: Duration) -> Result<(), String> {
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("error: failed to connect service at {addr:?}: {e}"))?
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent("kube-probe/1.33")
        .map_err(|e| format!("error: failed to connect service at {addr:?}: {e}"))?;
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let cause = std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string());
            return Err(format!(
                "error: failed to connect service at {addr:?}: {cause}"
            ));
        }
        Err(_) => {
            return Err(format!(
                "timeout: failed to connect service {addr:?} within {}s",
                timeout.as_secs_f64()
            ))
        }
    };
    let mut client = v1::health_client::HealthClient::new(channel);
    let call = client.check(v1::HealthCheckRequest {
        service: service.to_string(),
    });
    let resp = match tokio::time::timeout(timeout, call).await {
        Err(_) => {
            return Err(format!(
                "timeout: health rpc did not complete within {}s",
                timeout.as_secs_f64()
            ))
        }
        Ok(Err(status)) => {
            return Err(match status.code() {
                tonic::Code::Unimplemented => format!(
                    "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                    status.message()
                ),
                tonic::Code::DeadlineExceeded => format!(
                    "timeout: health rpc did not complete within {}s",
                    timeout.as_secs_f64()
                ),
                code => format!(
                    "error: health rpc probe failed: rpc error: code = {code:?} desc = {}",
                    status.message()
                ),
            })
        }
        Ok(Ok(r)) => r.into_inner(),
    };
    match ServingStatus::try_from(resp.status) {
        Ok(ServingStatus::Serving) => Ok(()),
        Ok(s) => Err(format!(
            "service unhealthy (responded with {:?})",
            s.as_str_name()
        )),
        Err(_) => Err(format!(
            "service unhealthy (responded with \"{}\")",
            resp.status
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http_body_util::BodyExt;
    use hyper::body::Frame;

    /// A response body of fixed frames (data, then trailers).
    struct Frames(VecDeque<Frame<Bytes>>);

    impl hyper::body::Body for Frames {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    /// A gRPC server by hand: Check answers SERVING for service "ok", NOT_SERVING for
    /// "down", and the Unimplemented status for anything else.
    async fn answer(
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<Frames>, Infallible> {
        assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
        assert!(req.headers()["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("kube-probe/"));
        let body = req.into_body().collect().await.unwrap().to_bytes();
        // The 5-byte frame header, then field 1 (service): tag, length, bytes.
        let service = String::from_utf8_lossy(body.get(7..).unwrap_or_default()).into_owned();
        let (msg, status): (&[u8], &str) = match service.as_str() {
            "ok" => (&[0x08, 0x01], "0"),
            "down" => (&[0x08, 0x02], "0"),
            _ => (&[], "12"),
        };
        let mut frames = VecDeque::new();
        if status == "0" {
            let mut data = vec![0u8, 0, 0, 0, u8::try_from(msg.len()).unwrap()];
            data.extend_from_slice(msg);
            frames.push_back(Frame::data(Bytes::from(data)));
        }
        let mut trailers = hyper::HeaderMap::new();
        trailers.insert("grpc-status", status.parse().unwrap());
        trailers.insert("grpc-message", "unknown service".parse().unwrap());
        frames.push_back(Frame::trailers(trailers));
        Ok(hyper::Response::builder()
            .header("content-type", "application/grpc")
            .body(Frames(frames))
            .unwrap())
    }

    async fn serve() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(
                            hyper_util::rt::TokioIo::new(conn),
                            hyper::service::service_fn(answer),
                        ),
                );
            }
        });
        port
    }

    #[tokio::test]
    async fn serving_passes_and_the_rest_fail_with_upstreams_messages() {
        let port = serve().await;
        let t = Duration::from_secs(2);
        assert_eq!(check("127.0.0.1", port, "ok", t).await, Ok(()));
        assert_eq!(
            check("127.0.0.1", port, "down", t).await,
            Err("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        let e = check("127.0.0.1", port, "other", t).await.unwrap_err();
        assert!(
            e.starts_with("error: this server does not implement the grpc health protocol"),
            "{e}"
        );
        // Nothing listening.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let free = closed.local_addr().unwrap().port();
        drop(closed);
        let e = check("127.0.0.1", free, "", t).await.unwrap_err();
        assert!(
            e.starts_with("error: failed to connect service at \"127.0.0.1:"),
            "{e}"
        );
    }
}
