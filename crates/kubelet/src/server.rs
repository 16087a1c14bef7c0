//! The kubelet's HTTPS server (KubeletConfiguration `address`:`port`, 10250) and its
//! plain healthz endpoint (`healthzBindAddress`:`healthzPort`, 127.0.0.1:10248), as
//! upstream's `pkg/kubelet/server`:
//!
//! - authentication from the configuration: x509 client certificates from
//!   `authentication.x509.clientCAFile`, bearer tokens through TokenReview when
//!   `authentication.webhook.enabled`, `system:anonymous` only when
//!   `authentication.anonymous.enabled`;
//! - authorization: `Webhook` asks the API server with a SubjectAccessReview for the
//!   `nodes/<subresource>` of this node (`proxy` for exec, logs, port-forward; `stats`,
//!   `metrics`, `log`; `pods`, `healthz`, `configz` falling back to `proxy`, as
//!   KubeletFineGrainedAuthz does), `AlwaysAllow` lets everyone in;
//! - `/healthz`, `/pods`, `/containerLogs/{ns}/{pod}/{container}` ([`logs`]),
//!   `/stats/summary`, `/metrics`, `/metrics/resource`, `/metrics/cadvisor` ([`stats`]), and the
//!   streaming `/exec`, `/attach`, `/portForward` handed to the runtime's streaming
//!   server ([`stream`]).
//!
//! The serving certificate is, with `serverTLSBootstrap`, one the cluster signs for a
//! kubelet-serving CSR (`kubelet-server-current.pem` in the cert dir, renewed before
//! it expires; no TLS until the first is issued); else `tlsCertFile`/
//! `tlsPrivateKeyFile`, else a self-signed pair `kubelet.crt`/`kubelet.key` in the
//! cert dir (upstream's default).

mod logs;
mod node_logs;
pub(crate) mod stats;
mod stream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use ferrokube_component_base::delegated::non_resource_verb;
use ferrokube_component_base::{tls, AuthnOutcome, AuthzOutcome, DelegatedAuth};
use http::{header, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::Kubelet;

/// Every response body the server sends (whole or streamed).
pub type Body = BoxBody<Bytes, std::io::Error>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn text(code: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A `metav1.Status` failure, as upstream's kubelet writes its errors.
pub fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("serving certificate: {0}")]
    Tls(#[from] ferrokube_component_base::tls::TlsError),
    #[error("authentication: {0}")]
    Auth(#[from] ferrokube_component_base::DelegatedAuthError),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The `nodes` subresource upstream's kubelet authorizes a path as, and the one to
/// fall back to when that is denied.
fn subresource(path: &str) -> (&'static str, Option<&'static str>) {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("/stats") {
        ("stats", None)
    } else if under("/metrics") {
        ("metrics", None)
    } else if under("/logs") {
        ("log", None)
    } else if under("/checkpoint") {
        ("checkpoint", None)
    } else if under("/pods") {
        ("pods", Some("proxy"))
    } else if under("/healthz") {
        ("healthz", Some("proxy"))
    } else if under("/configz") {
        ("configz", Some("proxy"))
    } else {
        ("proxy", None)
    }
}

/// The server's shared state.
struct Server {
    k: Arc<Kubelet>,
    auth: DelegatedAuth,
    /// CPU samples for usageNanoCores in `/stats/summary`.
    cpu: stats::CpuHistory,
}

impl Server {
    async fn handle(
        &self,
        mut req: Request<Incoming>,
        chain: Option<&[Vec<u8>]>,
    ) -> Response<Body> {
        let user = match self.auth.authenticate(req.headers(), chain).await {
            AuthnOutcome::User(u) => u,
            AuthnOutcome::Unauthorized => return text(StatusCode::UNAUTHORIZED, "Unauthorized"),
        };
        let path = req.uri().path().to_string();
        let verb = non_resource_verb(req.method());
        let node = self.k.opts.node_name.clone();
        let (sub, fallback) = subresource(&path);
        let mut outcome = self
            .auth
            .authorize_resource(&user, &verb, "nodes", sub, &node)
            .await;
        if let (AuthzOutcome::Denied(_), Some(fb)) = (&outcome, fallback) {
            outcome = self
                .auth
                .authorize_resource(&user, &verb, "nodes", fb, &node)
                .await;
        }
        match outcome {
            AuthzOutcome::Allowed => {}
            AuthzOutcome::Denied(_) => {
                // Upstream's wording (pkg/kubelet/server/server.go).
                let msg = format!(
                    "Forbidden (user={}, verb={verb}, resource=nodes, subresource={sub})",
                    user.name
                );
                tracing::debug!(user = %user.name, %path, "forbidden");
                return text(StatusCode::FORBIDDEN, msg);
            }
            AuthzOutcome::Error(e) => {
                tracing::warn!(error = %e, %path, "SubjectAccessReview failed");
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Authorization error (user={}, verb={verb}, resource=nodes, subresource={sub})", user.name),
                );
            }
        }
        self.route(&mut req, &path).await
    }

    async fn route(&self, req: &mut Request<Incoming>, path: &str) -> Response<Body> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let get = matches!(*req.method(), http::Method::GET | http::Method::HEAD);
        let query = req.uri().query().unwrap_or("").to_string();
        match parts.as_slice() {
            ["healthz"] | ["healthz", "ping" | "log" | "syncloop"] if get => {
                text(StatusCode::OK, "ok")
            }
            ["pods"] if get => self.pods().await,
            ["configz"] if get => {
                let body = json!({"kubeletconfig": self.k.config.configz()});
                let mut r = Response::new(full(body.to_string()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                r
            }
            ["logs", rest @ ..] if get => {
                node_logs::serve(Path::new(node_logs::ROOT), &rest.join("/"), path).await
            }
            ["stats", "summary"] if get => stats::summary(&self.k, &self.cpu).await,
            ["metrics"] if get => stats::kubelet(&self.k).await,
            ["metrics", "resource"] if get => stats::resource(&self.k).await,
            ["metrics", "cadvisor"] if get => stats::cadvisor(&self.k).await,
            ["containerLogs", ns, pod, container] if get => {
                logs::serve(&self.k, ns, pod, container, &query).await
            }
            ["exec" | "attach", ns, pod, container]
            | ["exec" | "attach", ns, pod, _, container] => {
                let kind = if parts[0] == "exec" {
                    stream::Kind::Exec
                } else {
                    stream::Kind::Attach
                };
                stream::serve(&self.k, req, kind, ns, pod, Some(container), &query).await
            }
            ["portForward", ns, pod] | ["portForward", ns, pod, _] => {
                stream::serve(
                    &self.k,
                    req,
                    stream::Kind::PortForward,
                    ns,
                    pod,
                    None,
                    &query,
                )
                .await
            }
            _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
        }
    }

    /// `/pods`: the pods bound to this node, as a PodList.
    async fn pods(&self) -> Response<Body> {
        let api: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::all(self.k.client.clone());
        let lp = kube::api::ListParams::default()
            .fields(&format!("spec.nodeName={}", self.k.opts.node_name));
        match api.list(&lp).await {
            Ok(list) => {
                let body = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {},
                    "items": list.items});
                let mut r = Response::new(full(body.to_string()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                r
            }
            Err(e) => status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &format!("listing pods: {e}"),
            ),
        }
    }
}

/// The kubelet's authentication and authorization from its configuration; the API
/// client makes the TokenReviews and SubjectAccessReviews.
fn auth(k: &Kubelet) -> Result<DelegatedAuth, ServeError> {
    let c = &k.config;
    let webhook_authz = c.authorization_mode == "Webhook";
    Ok(DelegatedAuth::direct(
        c.client_ca_file.clone(),
        c.anonymous_auth,
        c.webhook_authn.then(|| k.client.clone()),
        webhook_authz.then(|| k.client.clone()),
        std::time::Duration::from_secs(30),
    )?)
}

/// The serving pair: the configured files, else `kubelet.crt`/`kubelet.key` in
/// `cert_dir` (generated once, for the node's name and addresses).
fn serving_cert(k: &Kubelet, cert_dir: &Path) -> Result<tls::CertKey, ServeError> {
    let hosts = vec![
        k.opts.node_name.clone(),
        k.opts.hostname.clone(),
        k.opts.node_ip.to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ];
    Ok(tls::serving_cert(
        k.config.tls_cert_file.as_deref(),
        k.config.tls_private_key_file.as_deref(),
        Some(cert_dir),
        "kubelet",
        &hosts,
    )?)
}

/// Binds the secure port and serves until the kubelet stops. Returns the bound address.
pub async fn start(k: Arc<Kubelet>, cert_dir: &Path) -> Result<Option<SocketAddr>, ServeError> {
    if k.config.port == 0 {
        return Ok(None);
    }
    let ip: std::net::IpAddr = k
        .config
        .address
        .parse()
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let addr = SocketAddr::new(ip, k.config.port);
    let auth = auth(&k)?;
    let config = if k.config.server_tls_bootstrap {
        // serverTLSBootstrap: the certificate comes from a kubelet-serving CSR; until it
        // is approved and issued, handshakes fail (as upstream).
        let current = Arc::new(tls::SwappableCert::default());
        let node = &k.opts;
        let mut dns = vec![node.hostname.clone()];
        if node.node_name != node.hostname {
            dns.push(node.node_name.clone());
        }
        let req = crate::certificate::Request::serving(&node.node_name, dns, vec![node.node_ip]);
        let target = current.clone();
        tokio::spawn(crate::certificate::keep_current(
            k.client.clone(),
            req,
            cert_dir.to_path_buf(),
            move |pem| match tls::certified_key(pem) {
                Ok(key) => target.set(key),
                Err(e) => tracing::error!(error = %e, "the serving certificate is unusable"),
            },
            k.stop.clone(),
        ));
        tls::server_config_with_resolver(current, auth.client_cert_verifier())?
    } else {
        tls::server_config(serving_cert(&k, cert_dir)?, auth.client_cert_verifier())?
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener.local_addr().ok();
    tracing::info!(addr = ?bound, "kubelet server listening");
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let server = Arc::new(Server {
        k: k.clone(),
        auth,
        cpu: stats::CpuHistory::default(),
    });
    tokio::spawn(ferrokube_component_base::serving::serve_tls(
        listener,
        acceptor,
        k.stop.clone(),
        move |req, chain| {
            let server = server.clone();
            async move { server.handle(req, (*chain).as_deref()).await }
        },
    ));
    Ok(bound)
}

/// Serves `GET /healthz` in plain HTTP on `healthzBindAddress:healthzPort` (no auth,
/// loopback by default), until the kubelet stops.
pub async fn start_healthz(k: Arc<Kubelet>) -> Result<Option<SocketAddr>, ServeError> {
    if k.config.healthz_port == 0 {
        return Ok(None);
    }
    let ip: std::net::IpAddr = k
        .config
        .healthz_bind_address
        .parse()
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    let addr = SocketAddr::new(ip, k.config.healthz_port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener.local_addr().ok();
    let mut stop = k.stop.clone();
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                a = listener.accept() => match a { Ok((t, _)) => t, Err(_) => continue },
                () = async { let _ = stop.wait_for(|s| *s).await; } => return,
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    Ok::<_, Infallible>(match req.uri().path() {
                        "/healthz" | "/healthz/ping" | "/healthz/syncloop" => {
                            text(StatusCode::OK, "ok")
                        }
                        _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
                    })
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_upstreams_subresources() {
        assert_eq!(subresource("/stats/summary"), ("stats", None));
        assert_eq!(subresource("/metrics/cadvisor"), ("metrics", None));
        assert_eq!(subresource("/logs/syslog"), ("log", None));
        assert_eq!(subresource("/pods"), ("pods", Some("proxy")));
        assert_eq!(subresource("/healthz"), ("healthz", Some("proxy")));
        assert_eq!(subresource("/exec/ns/p/c"), ("proxy", None));
        assert_eq!(subresource("/containerLogs/ns/p/c"), ("proxy", None));
        assert_eq!(subresource("/statsx"), ("proxy", None));
    }
}
