//! The secure port: every request authenticated (client certificate, the API server's
//! front-proxy request headers, bearer token through TokenReview) and authorized
//! (resource requests by a SubjectAccessReview with their resource attributes, the
//! rest by path), then `/healthz`, `/livez`, `/readyz`, `/metrics`, `/version` or the
//! metrics API. As upstream's generic API server chain: authentication → authorization
//! → handler.

use std::sync::Arc;

use bytes::Bytes;
use ferrokube_api::status::{Status, Subject};
use ferrokube_component_base::delegated::ResourceAttrs;
use ferrokube_component_base::healthz::Endpoint;
use ferrokube_component_base::{
    AuthnOutcome, AuthzOutcome, DelegatedAuth, HealthChecks, Registry, ServeError,
};
use http::{header, Response, StatusCode};
use http_body_util::Full;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{request_info, Api, Reply, RequestInfo};

/// The request handler of the secure port.
#[derive(Debug)]
pub struct Server {
    auth: Arc<DelegatedAuth>,
    api: Api,
    health: HealthChecks,
    registry: Registry,
    version: serde_json::Value,
}

fn respond(reply: Reply) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(reply.body)));
    *r.status_mut() = reply.status;
    if let Ok(v) = header::HeaderValue::from_str(&reply.content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    r
}

fn text(status: StatusCode, content_type: &str, body: impl Into<Vec<u8>>) -> Response<Full<Bytes>> {
    respond(Reply {
        status,
        content_type: content_type.into(),
        body: body.into(),
    })
}

/// Upstream's `forbiddenMessage` inside `NewForbidden`.
fn forbidden(user: &str, info: &RequestInfo, reason: &str) -> Status {
    let mut resource = info.resource.clone();
    if !info.subresource.is_empty() {
        resource = format!("{resource}/{}", info.subresource);
    }
    let scope = if info.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", info.namespace)
    };
    let mut why = format!(
        "User {user:?} cannot {} resource {resource:?} in API group {:?} {scope}",
        info.verb, info.group
    );
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    let subject = Subject {
        group: &info.group,
        resource: &info.resource,
        name: &info.name,
    };
    if info.name.is_empty() {
        let qualified = if info.group.is_empty() {
            info.resource.clone()
        } else {
            format!("{}.{}", info.resource, info.group)
        };
        let mut s = Status::failure(403, "Forbidden", format!("{qualified} is forbidden: {why}"));
        s.details = Some(ferrokube_api::status::StatusDetails {
            group: info.group.clone(),
            kind: info.resource.clone(),
            ..Default::default()
        });
        s
    } else {
        Status::forbidden(subject, &why)
    }
}

impl Server {
    /// A handler serving `api` behind `auth`, with these health checks and metrics.
    pub fn new(auth: DelegatedAuth, api: Api, health: HealthChecks, registry: Registry) -> Server {
        Server {
            auth: Arc::new(auth),
            api,
            health,
            registry,
            version: serde_json::json!({
                "major": "0",
                "minor": "8",
                "gitVersion": concat!("v0.8.0-ferrokube.", env!("CARGO_PKG_VERSION")),
                "gitCommit": "",
                "gitTreeState": "",
                "buildDate": "",
                "goVersion": "",
                "compiler": "rustc",
                "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
            }),
        }
    }

    /// The authenticator/authorizer (its client-certificate verifier is the TLS
    /// server's).
    pub fn auth(&self) -> &DelegatedAuth {
        &self.auth
    }

    /// One request: authenticate, authorize, route.
    pub async fn handle<B>(
        &self,
        mut req: http::Request<B>,
        peer_chain: Option<&[Vec<u8>]>,
    ) -> Response<Full<Bytes>> {
        let user = match self.auth.authenticate(req.headers(), peer_chain).await {
            AuthnOutcome::User(u) => u,
            AuthnOutcome::Unauthorized => {
                return respond(Reply::status(&Status::failure(
                    401,
                    "Unauthorized",
                    "Unauthorized",
                )))
            }
        };
        self.auth.clear_authentication_headers(req.headers_mut());
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().map(str::to_string);
        let info = request_info(&method, &path, query.as_deref());
        let outcome = match &info {
            Some(info) => {
                let attrs = ResourceAttrs {
                    verb: &info.verb,
                    group: &info.group,
                    version: &info.version,
                    resource: &info.resource,
                    subresource: &info.subresource,
                    namespace: &info.namespace,
                    name: &info.name,
                };
                self.auth.authorize_attributes(&user, &attrs).await
            }
            None => {
                let verb = ferrokube_component_base::delegated::non_resource_verb(&method);
                self.auth.authorize(&user, &verb, &path).await
            }
        };
        match outcome {
            AuthzOutcome::Allowed => {}
            AuthzOutcome::Denied(reason) => {
                let status = match &info {
                    Some(info) => forbidden(&user.name, info, &reason),
                    None => {
                        let verb = ferrokube_component_base::delegated::non_resource_verb(&method);
                        let mut message = format!(
                            "forbidden: User {:?} cannot {verb} path {path:?}",
                            user.name
                        );
                        if !reason.is_empty() {
                            message = format!("{message}: {reason}");
                        }
                        Status::failure(403, "Forbidden", message)
                    }
                };
                tracing::debug!(user = %user.name, %path, "forbidden");
                return respond(Reply::status(&status));
            }
            AuthzOutcome::Error(e) => {
                tracing::warn!(error = %e, %path, "SubjectAccessReview failed");
                return respond(Reply::status(&Status::internal(e)));
            }
        }
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(reply) = self
            .api
            .handle(&method, &path, query.as_deref(), accept.as_deref())
        {
            return respond(reply);
        }
        let reading = matches!(method, http::Method::GET | http::Method::HEAD);
        if let Some((endpoint, single)) = Endpoint::from_path(&path) {
            if !reading {
                return method_not_allowed();
            }
            let r = self.health.respond(endpoint, single, query.as_deref());
            let code = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return text(code, "text/plain; charset=utf-8", r.body);
        }
        match path.as_str() {
            "/metrics" if reading => text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.registry.encode(),
            ),
            "/version" if reading => respond(Reply::json(StatusCode::OK, &self.version)),
            "/metrics" | "/version" => method_not_allowed(),
            _ => respond(Reply::not_found_text()),
        }
    }

    /// Serves TLS connections on `listener` until `shutdown` turns true.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: tokio_rustls::TlsAcceptor,
        shutdown: watch::Receiver<bool>,
    ) {
        tracing::info!(addr = ?listener.local_addr().ok(), "serving metrics.k8s.io securely");
        ferrokube_component_base::serving::serve_tls(listener, tls, shutdown, move |req, chain| {
            let server = self.clone();
            async move { server.handle(req, (*chain).as_deref()).await }
        })
        .await;
    }
}

fn method_not_allowed() -> Response<Full<Bytes>> {
    respond(Reply::status(&Status::failure(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    )))
}

/// A bound secure port.
pub struct SecurePort {
    /// The listener.
    pub listener: TcpListener,
    /// The TLS acceptor (asking for client certificates as the auth wants).
    pub tls: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for SecurePort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurePort")
            .field("addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl SecurePort {
    /// Binds `addr` with `cert`, asking clients for certificates as `auth` wants.
    pub async fn bind(
        addr: std::net::SocketAddr,
        cert: ferrokube_component_base::tls::CertKey,
        auth: &DelegatedAuth,
    ) -> Result<SecurePort, ServeError> {
        let config =
            ferrokube_component_base::tls::server_config(cert, auth.client_cert_verifier())?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(SecurePort {
            listener,
            tls: tokio_rustls::TlsAcceptor::from(config),
        })
    }

    /// The bound address (port 0 resolved).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.local_addr().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_are_upstreams() {
        let info = RequestInfo {
            verb: "list".into(),
            group: "metrics.k8s.io".into(),
            version: "v1beta1".into(),
            resource: "pods".into(),
            namespace: "kube-system".into(),
            ..RequestInfo::default()
        };
        let s = forbidden("bob", &info, "");
        assert_eq!(
            s.message,
            "pods.metrics.k8s.io is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"metrics.k8s.io\" in the namespace \"kube-system\""
        );
        assert_eq!(s.code, 403);
        let info = RequestInfo {
            verb: "get".into(),
            resource: "nodes".into(),
            name: "n1".into(),
            ..info
        };
        let info = RequestInfo {
            namespace: String::new(),
            ..info
        };
        let s = forbidden("bob", &info, "no RBAC");
        assert_eq!(
            s.message,
            "nodes.metrics.k8s.io \"n1\" is forbidden: User \"bob\" cannot get resource \"nodes\" in API group \"metrics.k8s.io\" at the cluster scope: no RBAC"
        );
    }
}
