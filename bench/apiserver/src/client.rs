//! A minimal HTTPS (HTTP/2) client for the benchmark: a pool of connections to the API
//! server on loopback. The server's self-signed certificate is accepted as is
//! (`insecure_client_config`: the benchmark only talks to the server it started).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;

#[derive(Clone)]
pub struct Client {
    conns: Arc<Vec<SendRequest<Full<Bytes>>>>,
    next: Arc<AtomicUsize>,
    port: u16,
    token: Option<Arc<str>>,
}

impl Client {
    pub async fn connect(port: u16, connections: usize) -> anyhow::Result<Client> {
        let cfg = ferrokube_apiserver::tls::insecure_client_config(&[b"h2"])?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let mut conns = Vec::new();
        for _ in 0..connections {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            tcp.set_nodelay(true)?;
            let tls = connector
                .connect(ServerName::try_from("localhost")?, tcp)
                .await?;
            let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .initial_stream_window_size(4 << 20)
                .initial_connection_window_size(16 << 20)
                .handshake(TokioIo::new(tls))
                .await?;
            tokio::spawn(conn);
            conns.push(sender);
        }
        Ok(Client {
            conns: Arc::new(conns),
            next: Arc::new(AtomicUsize::new(0)),
            port,
            token: None,
        })
    }

    /// The same connections, sending `Authorization: Bearer <token>`.
    pub fn with_token(&self, token: &str) -> Client {
        Client {
            token: Some(Arc::from(token)),
            ..self.clone()
        }
    }

    fn sender(&self) -> SendRequest<Full<Bytes>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<http::Request<Full<Bytes>>> {
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("https://127.0.0.1:{}{path}", self.port))
            .header("content-type", "application/json")
            .header("accept", "application/json");
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        Ok(b.body(Full::new(body.unwrap_or_default()))?)
    }

    /// Sends a request and reads the whole response: (status, body).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let mut sender = self.sender();
        sender.ready().await?;
        let resp = sender
            .send_request(self.request(method, path, body)?)
            .await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// Starts a watch; returns the streaming body.
    pub async fn watch(&self, path: &str) -> anyhow::Result<hyper::body::Incoming> {
        let mut sender = self.sender();
        sender.ready().await?;
        let resp = sender
            .send_request(self.request("GET", path, None)?)
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "watch {path}: {}",
            resp.status()
        );
        Ok(resp.into_body())
    }
}
