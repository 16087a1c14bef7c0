//! A component's secure port: upstream's `SecureServingOptions` (`--bind-address`,
//! `--secure-port`, `--cert-dir`, `--tls-cert-file`, `--tls-private-key-file`) and the
//! handler chain kube-controller-manager and kube-scheduler put on it
//! (`BuildHandlerChain`: authentication → authorization → mux), serving `/healthz`,
//! `/livez`, `/readyz`, `/metrics` and whatever paths the component adds, over
//! HTTP/1.1 and HTTP/2 with TLS.
//!
//! Errors are `metav1.Status` JSON as upstream writes them: 401 `Unauthorized`, 403
//! `forbidden: User "<name>" cannot get path "/metrics"`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::delegated::{non_resource_verb, AuthnOutcome, AuthzOutcome, DelegatedAuth};
use crate::healthz::{Endpoint, HealthChecks};
use crate::metrics::Registry;
use crate::tls::{self, TlsError};

/// Why the secure port could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The certificate.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Binding the port.
    #[error("--bind-address {addr} / --secure-port: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Upstream's secure serving flags. `--secure-port`'s default is per component
/// (kube-controller-manager 10257, kube-scheduler 10259): pass it to
/// [`SecureServingFlags::bind_addr`].
#[derive(Debug, Clone, clap::Args)]
pub struct SecureServingFlags {
    /// The IP address on which to listen for the --secure-port port.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// The port on which to serve HTTPS with authentication and authorization. If 0,
    /// don't serve HTTPS at all.
    #[arg(long)]
    pub secure_port: Option<u16>,
    /// The directory where the TLS certs are located. If --tls-cert-file and
    /// --tls-private-key-file are provided, this flag will be ignored.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// File containing the default x509 Certificate for HTTPS (CA cert, if any,
    /// concatenated after server cert).
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// File containing the default x509 private key matching --tls-cert-file.
    #[arg(long, value_name = "FILE")]
    pub tls_private_key_file: Option<PathBuf>,
}

impl Default for SecureServingFlags {
    fn default() -> Self {
        SecureServingFlags {
            bind_address: IpAddr::from([0, 0, 0, 0]),
            secure_port: None,
            cert_dir: None,
            tls_cert_file: None,
            tls_private_key_file: None,
        }
    }
}

impl SecureServingFlags {
    /// The address to listen on, `None` when `--secure-port=0` (serving disabled).
    pub fn bind_addr(&self, default_port: u16) -> Option<SocketAddr> {
        let port = self.secure_port.unwrap_or(default_port);
        (port != 0).then_some(SocketAddr::new(self.bind_address, port))
    }

    /// The serving certificate: the files, or a self-signed pair named after
    /// `component` in `--cert-dir` (in memory without one).
    pub fn serving_cert(&self, component: &str) -> Result<tls::CertKey, TlsError> {
        tls::serving_cert(
            self.tls_cert_file.as_deref(),
            self.tls_private_key_file.as_deref(),
            self.cert_dir.as_deref(),
            component,
            &tls::default_hosts(self.bind_address),
        )
    }
}

/// A handler for an extra path: returns (status, content type, body).
pub type PathHandler = Arc<dyn Fn() -> (StatusCode, &'static str, Bytes) + Send + Sync>;

/// What the secure port serves and how it checks callers.
#[derive(Clone)]
pub struct Handler {
    auth: Arc<DelegatedAuth>,
    health: HealthChecks,
    metrics: Registry,
    paths: BTreeMap<String, PathHandler>,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("auth", &self.auth)
            .field("health", &self.health)
            .field("paths", &self.paths.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

type Resp = Response<Full<Bytes>>;

fn text(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    r
}

/// A `metav1.Status` failure as upstream's `responsewriters` write it.
fn status(code: StatusCode, reason: &str, message: &str) -> Resp {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {},
        "code": code.as_u16(),
    });
    let mut bytes = serde_json::to_vec_pretty(&body).unwrap_or_default();
    bytes.push(b'\n');
    text(code, "application/json", bytes)
}

impl Handler {
    /// Health checks with `ping`, an empty registry.
    pub fn new(auth: DelegatedAuth) -> Handler {
        Handler {
            auth: Arc::new(auth),
            health: HealthChecks::new(),
            metrics: Registry::new(),
            paths: BTreeMap::new(),
        }
    }

    /// Serves this registry on `/metrics`.
    pub fn with_metrics(mut self, registry: Registry) -> Handler {
        self.metrics = registry;
        self
    }

    /// Uses these health checks.
    pub fn with_health(mut self, health: HealthChecks) -> Handler {
        self.health = health;
        self
    }

    /// Serves `path` (e.g. `/configz`) behind authentication and authorization.
    pub fn with_path(mut self, path: &str, handler: PathHandler) -> Handler {
        self.paths.insert(path.to_string(), handler);
        self
    }

    /// The health checks (add component checks here).
    pub fn health(&self) -> &HealthChecks {
        &self.health
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Registry {
        &self.metrics
    }

    /// One request through the chain: authenticate, authorize, route.
    pub async fn handle<B>(
        &self,
        mut req: http::Request<B>,
        peer_chain: Option<&[Vec<u8>]>,
    ) -> Resp {
        let user = match self.auth.authenticate(req.headers(), peer_chain).await {
            AuthnOutcome::User(u) => u,
            AuthnOutcome::Unauthorized => {
                return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
            }
        };
        self.auth.clear_authentication_headers(req.headers_mut());
        let path = req.uri().path().to_string();
        let verb = non_resource_verb(req.method());
        match self.auth.authorize(&user, &verb, &path).await {
            AuthzOutcome::Allowed => {}
            AuthzOutcome::Denied(reason) => {
                let mut message = format!(
                    "forbidden: User \"{}\" cannot {verb} path \"{path}\"",
                    user.name
                );
                if !reason.is_empty() {
                    message = format!("{message}: {reason}");
                }
                tracing::debug!(user = %user.name, %path, %verb, "forbidden");
                return status(StatusCode::FORBIDDEN, "Forbidden", &message);
            }
            AuthzOutcome::Error(e) => {
                tracing::warn!(error = %e, %path, "SubjectAccessReview failed");
                return status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    &format!("Internal error occurred: {e}"),
                );
            }
        }
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            );
        }
        if let Some((endpoint, single)) = Endpoint::from_path(&path) {
            let r = self.health.respond(endpoint, single, req.uri().query());
            let code = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return text(code, "text/plain; charset=utf-8", r.body);
        }
        if path == "/metrics" {
            return text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.encode(),
            );
        }
        if let Some(h) = self.paths.get(&path) {
            let (code, content_type, body) = h();
            return text(code, content_type, body);
        }
        text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "404 page not found\n",
        )
    }
}

/// Resolves when the shutdown signal turns true or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// A bound secure port.
pub struct SecureServer {
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    handler: Handler,
}

impl std::fmt::Debug for SecureServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureServer")
            .field("addr", &self.local_addr())
            .field("handler", &self.handler)
            .finish_non_exhaustive()
    }
}

impl SecureServer {
    /// Binds `addr` with `cert`, asking clients for certificates as `handler`'s auth
    /// wants.
    pub async fn bind(
        addr: SocketAddr,
        cert: tls::CertKey,
        handler: Handler,
    ) -> Result<SecureServer, ServeError> {
        let config = tls::server_config(cert, handler.auth.client_cert_verifier())?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(SecureServer {
            listener,
            tls: tokio_rustls::TlsAcceptor::from(config),
            handler,
        })
    }

    /// The bound address (port 0 resolved).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` turns true (or its sender is dropped); open connections
    /// are closed gracefully then.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        tracing::info!(addr = ?self.local_addr(), "serving securely");
        let handler = Arc::new(self.handler);
        serve_tls(self.listener, self.tls, shutdown, move |req, chain| {
            let handler = handler.clone();
            async move { handler.handle(req, (*chain).as_deref()).await }
        })
        .await;
    }
}

/// The TLS client's certificate chain (DER), if it sent one.
pub type PeerChain = Arc<Option<Vec<Vec<u8>>>>;

/// Accepts TLS connections on `listener` and serves HTTP/1.1 (with upgrades) and
/// HTTP/2 on each, calling `handle` with every request and the client's certificate
/// chain, until `shutdown` turns true (or its sender is dropped); open connections
/// are then closed gracefully (5 s at most). Handshakes time out after 10 s.
pub async fn serve_tls<H, F, B>(
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    mut shutdown: watch::Receiver<bool>,
    handle: H,
) where
    H: Fn(http::Request<Incoming>, PeerChain) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut shutdown) => return,
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, handle, mut conn_shutdown) = (tls.clone(), handle.clone(), shutdown.clone());
        tokio::spawn(async move {
            let handshake = tokio::select! {
                r = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)) => r,
                () = stopped(&mut conn_shutdown) => return,
            };
            let tls = match handshake {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let chain: PeerChain = Arc::new(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| c.iter().map(|d| d.as_ref().to_vec()).collect()),
            );
            let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let fut = handle(req, chain.clone());
                async move { Ok::<_, Infallible>(fut.await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                () = stopped(&mut conn_shutdown) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
                }
            }
        });
    }
}

#[cfg(test)]
#[path = "serving_tests.rs"]
mod tests;
