//! Serving: HTTPS (HTTP/1.1 and HTTP/2) on the secure port, the body size limit, routing
//! to health, version, discovery and resource handlers, and start-up bootstrap (the
//! namespaces every cluster has).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ferrokube_api::resources;
use ferrokube_api::status::Status;
use ferrokube_storage::Storage;
use http::{header, Method};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::Response;
use crate::handlers::{discovery, response, rest};
use crate::registry::{Registry, Target};
use crate::request_info::{self, Query};

/// Upstream's limit on request bodies (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    pub bind: SocketAddr,
    pub tls_cert_file: PathBuf,
    pub tls_key_file: PathBuf,
    /// `host:port` clients are told to use (`--advertise-address`:`--secure-port`).
    pub advertise: String,
    /// `--service-cluster-ip-range` (IPv4 CIDR).
    pub service_cluster_ip_range: String,
    /// `--service-node-port-range` (`FROM-TO`).
    pub service_node_port_range: String,
    /// `--event-ttl`: how long Events are kept.
    pub event_ttl: std::time::Duration,
    /// `--max-requests-inflight`: concurrent non-mutating requests (0: no limit).
    pub max_requests_inflight: usize,
    /// `--max-mutating-requests-inflight`: concurrent mutating requests (0: no limit).
    pub max_mutating_requests_inflight: usize,
    /// Authentication and authorization flags.
    pub security: crate::auth::SecurityConfig,
    /// `--audit-*` flags.
    pub audit: crate::audit::AuditConfig,
    /// `--kubelet-*` flags: how `pods/log|exec|attach|portforward` and `nodes/proxy`
    /// reach kubelets.
    pub kubelet: crate::handlers::kubelet_proxy::KubeletClientConfig,
    /// `--proxy-client-*` and `--enable-aggregator-routing`.
    pub aggregator: crate::aggregator::AggregatorConfig,
}

impl ApiServerConfig {
    /// A configuration with upstream's defaults for everything but where to listen and
    /// the serving certificate.
    pub fn new(bind: SocketAddr, tls_cert_file: PathBuf, tls_key_file: PathBuf) -> Self {
        ApiServerConfig {
            bind,
            tls_cert_file,
            tls_key_file,
            advertise: bind.to_string(),
            service_cluster_ip_range: "10.0.0.0/24".into(),
            service_node_port_range: "30000-32767".into(),
            event_ttl: std::time::Duration::from_secs(3600),
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            security: crate::auth::SecurityConfig::default(),
            audit: crate::audit::AuditConfig::default(),
            kubelet: Default::default(),
            aggregator: Default::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("bootstrapping {name}: {message}")]
    Bootstrap { name: String, message: String },
    #[error(transparent)]
    Security(#[from] crate::auth::SecurityError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error("{0}")]
    Config(String),
}

#[derive(Debug)]
struct State {
    registry: Registry,
    advertise: String,
    /// Upstream's max-in-flight filter: one budget for reads, one for writes.
    inflight_read: Option<Arc<tokio::sync::Semaphore>>,
    inflight_mutating: Option<Arc<tokio::sync::Semaphore>>,
    openapi_v2: crate::handlers::openapi_v2::Cache,
    security: crate::auth::Security,
    audit: Option<crate::audit::Auditor>,
    kubelet: Option<crate::handlers::kubelet_proxy::KubeletClient>,
    aggregator: Arc<crate::aggregator::Aggregator>,
    apf: Arc<crate::flowcontrol::Apf>,
    /// The concurrency limit APF divides among priority levels.
    server_limit: usize,
}

/// A configured API server; [`ApiServer::run`] serves until shutdown.
pub struct ApiServer {
    config: ApiServerConfig,
    state: Arc<State>,
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    /// Stops the authorization feeds.
    stop_feeds: watch::Sender<bool>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ApiServer {
    /// Loads TLS, binds the port and bootstraps the default namespaces.
    pub async fn start(
        config: ApiServerConfig,
        storage: Arc<dyn Storage>,
    ) -> Result<ApiServer, ServeError> {
        let security = crate::auth::Security::new(&config.security, &config.advertise)?;
        let tls = crate::tls::server_config_with_clients(
            &config.tls_cert_file,
            &config.tls_key_file,
            Some(security.authn.client_cert_verifier()),
        )?;
        let listener =
            TcpListener::bind(config.bind)
                .await
                .map_err(|source| ServeError::Listen {
                    addr: config.bind,
                    source,
                })?;
        let allocator = crate::registry::services::ServiceAllocator::parse(
            &config.service_cluster_ip_range,
            &config.service_node_port_range,
        )
        .map_err(ServeError::Config)?;
        // Watches are served by the watch cache: one storage watch per resource.
        let storage = crate::cache::wrap(storage);
        let mut registry = Registry::new(storage, Some(allocator));
        registry.event_ttl = config.event_ttl;
        let budget = |n: usize| (n > 0).then(|| Arc::new(tokio::sync::Semaphore::new(n)));
        let state = Arc::new(State {
            registry,
            advertise: config.advertise.clone(),
            inflight_read: budget(config.max_requests_inflight),
            inflight_mutating: budget(config.max_mutating_requests_inflight),
            openapi_v2: Default::default(),
            security,
            audit: crate::audit::Auditor::new(&config.audit)?,
            kubelet: Some(
                crate::handlers::kubelet_proxy::KubeletClient::new(&config.kubelet)
                    .map_err(ServeError::Config)?,
            ),
            aggregator: Arc::new(
                crate::aggregator::Aggregator::new(&config.aggregator)
                    .map_err(ServeError::Config)?,
            ),
            apf: crate::flowcontrol::Apf::new(),
            server_limit: config.max_requests_inflight + config.max_mutating_requests_inflight,
        });
        bootstrap(&state.registry).await?;
        crate::bootstrap::kubernetes_service(&state.registry, &config.advertise).await?;
        crate::bootstrap::system_priority_classes(&state.registry).await?;
        crate::bootstrap::extension_apiserver_authentication(
            &state.registry,
            &state.security.authn,
        )
        .await?;
        crate::aggregator::local::register(&state.registry).await;
        crate::crd::controller::sync(&state.registry)
            .await
            .map_err(|e| ServeError::Bootstrap {
                name: "customresourcedefinitions".into(),
                message: format!("{e:?}"),
            })?;
        if state.security.rbac_enabled {
            crate::auth::policy::reconcile(&state.registry)
                .await
                .map_err(|e| ServeError::Bootstrap {
                    name: "rbac/bootstrap-roles".into(),
                    message: format!("{e:?}"),
                })?;
        }
        let (stop_feeds, feeds_stopped) = watch::channel(false);
        crate::auth::feeds::start(
            &state.registry,
            &state.security,
            &state.aggregator,
            &state.apf,
            feeds_stopped,
        )
        .await
        .map_err(|e| ServeError::Bootstrap {
            name: "authorization feeds".into(),
            message: format!("{e:?}"),
        })?;
        Ok(ApiServer {
            config,
            state,
            listener,
            tls: tokio_rustls::TlsAcceptor::from(tls),
            stop_feeds,
        })
    }

    /// The serving certificate (the CA clients of a self-signed server must trust).
    pub fn tls_cert_file(&self) -> &std::path::Path {
        &self.config.tls_cert_file
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(addr = %self.config.bind, "apiserver: serving");
        tokio::spawn(crate::crd::controller::run(
            self.state.registry.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(crate::aggregator::availability::run(
            self.state.aggregator.clone(),
            self.state.registry.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(crate::flowcontrol::run(
            self.state.apf.clone(),
            self.state.registry.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(crate::endpoint_reconciler::run(
            self.state.registry.clone(),
            self.config.advertise.clone(),
            shutdown.clone(),
        ));
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "apiserver: accept failed");
                        continue;
                    }
                },
                _ = shutdown.changed() => {
                    let _ = self.stop_feeds.send(true);
                    // Stop being advertised as a backend of the `kubernetes` Service.
                    crate::endpoint_reconciler::withdraw(&self.state.registry, &self.config.advertise)
                        .await;
                    return;
                }
            };
            // Small responses and watch events must not wait for Nagle's algorithm.
            let _ = tcp.set_nodelay(true);
            let (acceptor, state) = (self.tls.clone(), self.state.clone());
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "apiserver: TLS handshake failed");
                        return;
                    }
                };
                // The client's certificate chain, for authentication.
                let chain: Arc<Option<Vec<Vec<u8>>>> = Arc::new(
                    tls.get_ref()
                        .1
                        .peer_certificates()
                        .map(|c| c.iter().map(|d| d.as_ref().to_vec()).collect()),
                );
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    let chain = chain.clone();
                    async move {
                        Ok::<_, Infallible>(handle(&state, req, (*chain).as_deref(), peer).await)
                    }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(e) = builder
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "apiserver: connection ended with an error");
                }
            });
        }
    }
}

#[cfg(test)]
pub(crate) async fn bootstrap_for_tests(registry: &Registry) {
    let _ = bootstrap(registry).await;
}

async fn bootstrap(registry: &Registry) -> Result<(), ServeError> {
    let Some(info) = resources::lookup("", "v1", "namespaces") else {
        return Ok(());
    };
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let target = Target::builtin(info, None);
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match registry.create(&target, obj, false).await {
            Ok(_) => tracing::info!(namespace = name, "apiserver: created namespace"),
            Err(e) => {
                let status = e.into_status("", "namespaces", name);
                if status.reason != "AlreadyExists" {
                    return Err(ServeError::Bootstrap {
                        name: name.into(),
                        message: status.message,
                    });
                }
            }
        }
    }
    Ok(())
}

fn header_str(req: &http::Request<Incoming>, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn handle(
    state: &State,
    mut req: http::Request<Incoming>,
    peer_chain: Option<&[Vec<u8>]>,
    peer: SocketAddr,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = Query::parse(req.uri().query());
    let info = request_info::parse(&method, &path, &query);
    let m = crate::metrics::metrics();
    let long_running = info.verb == "watch";
    let read_only = matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let _inflight = (!long_running).then(|| {
        let gauge = if read_only {
            &m.inflight_read
        } else {
            &m.inflight_mutating
        };
        crate::metrics::GaugeGuard::new(gauge)
    });
    // WithMaxInFlightLimit: long-running requests are exempt; over budget is a 429.
    let budget = if read_only {
        &state.inflight_read
    } else {
        &state.inflight_mutating
    };
    let _permit = match budget.as_ref().filter(|_| !long_running) {
        None => None,
        Some(sem) => match sem.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                let dropped = if read_only {
                    &m.dropped_read
                } else {
                    &m.dropped_mutating
                };
                dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut resp = response::status(
                    &Status::failure(
                        429,
                        "TooManyRequests",
                        "Too many requests, please try again later.",
                    )
                    .with_details(ferrokube_api::status::StatusDetails {
                        retry_after_seconds: Some(1),
                        ..Default::default()
                    }),
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
                return resp;
            }
        },
    };
    // WithAuthentication, WithAudit, WithImpersonation, WithAuthorization.
    let audit_id = uuid::Uuid::new_v4().to_string();
    let request_uri = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.to_string());
    let user_agent = header_str(&req, header::USER_AGENT).map(str::to_string);
    let authenticated = crate::auth::filter::authenticate(
        &state.security,
        &state.registry,
        req.headers_mut(),
        peer_chain,
    )
    .await;
    let requester = match &authenticated {
        Ok(u) => u.clone(),
        Err(_) => ferrokube_authz::UserInfo::default(),
    };
    let effective = authenticated
        .and_then(|u| crate::auth::filter::impersonate(&state.security, u, req.headers_mut()));
    let impersonated = match &effective {
        Ok(u) if u != &requester => Some(u.clone()),
        _ => None,
    };
    let record = state.audit.as_ref().and_then(|a| {
        a.begin(
            &info,
            &request_uri,
            &requester,
            impersonated.as_ref(),
            user_agent.as_deref(),
            Some(peer),
            &audit_id,
        )
    });
    // The authorizer's decision and what admission added, as the event's annotations.
    let decided = |d: &str, extra: Vec<(String, String)>| {
        let mut a = vec![
            ("authorization.k8s.io/decision".to_string(), d.to_string()),
            ("authorization.k8s.io/reason".to_string(), String::new()),
        ];
        a.extend(extra);
        a
    };
    let finish = |resp: Response, body: Option<&[u8]>, annotations: &[(String, String)]| {
        let mut resp = resp;
        if let Ok(v) = http::HeaderValue::from_str(&audit_id) {
            resp.headers_mut().insert("audit-id", v);
        }
        if let (Some(a), Some(r)) = (state.audit.as_ref(), record) {
            let response_body = match resp.body() {
                crate::body::Body::Full(Some(b)) => Some(b.clone()),
                _ => None,
            };
            a.finish(
                r,
                resp.status().as_u16(),
                body,
                response_body.as_deref(),
                long_running,
                annotations,
            );
        }
        resp
    };
    let user = match effective {
        Ok(u) => u,
        Err(status) => return finish(response::status(&status), None, &[]),
    };
    // WithPriorityAndFairness sits between impersonation and authorization.
    let flow = state.apf.classify(&user, &info);
    let finish = |resp: Response, body: Option<&[u8]>, annotations: &[(String, String)]| {
        let mut resp = finish(resp, body, annotations);
        if let Some((fs, pl)) = &flow {
            for (name, uid) in [
                (crate::flowcontrol::FLOW_SCHEMA_UID_HEADER, fs),
                (crate::flowcontrol::PRIORITY_LEVEL_UID_HEADER, pl),
            ] {
                if let Ok(v) = http::HeaderValue::from_str(uid) {
                    resp.headers_mut().insert(name, v);
                }
            }
        }
        resp
    };
    let attrs = crate::auth::filter::attributes(&user, &info, &query);
    if let Err(status) = crate::auth::filter::authorize(&state.security, &attrs) {
        return finish(
            response::status(&status),
            None,
            &decided("forbid", Vec::new()),
        );
    }
    // AuthorizePodWebsocketUpgradeCreatePermission (on by default upstream): a
    // WebSocket exec/attach/portforward is a GET, but must also be allowed `create`.
    if crate::auth::filter::is_pod_websocket_upgrade(&attrs, req.headers()) {
        let mut create = attrs.clone();
        create.verb = "create".into();
        if let Err(status) = crate::auth::filter::authorize(&state.security, &create) {
            return finish(
                response::status(&status),
                None,
                &decided("forbid", Vec::new()),
            );
        }
    }
    let mut request_body = None;
    let (resp, annotations) = crate::audit::annotations::collect(route(
        state,
        req,
        &info,
        &query,
        &user,
        &mut request_body,
    ))
    .await;
    let resp = finish(
        resp,
        request_body.as_deref(),
        &decided("allow", annotations),
    );
    if info.is_resource_request && !info.resource.is_empty() {
        let scope = if !info.namespace.is_empty() && info.resource != "namespaces" {
            "namespace"
        } else if info.name.is_empty() {
            "cluster"
        } else {
            "resource"
        };
        let labels = (
            crate::metrics::verb_label(&info.verb, &method),
            info.group.clone(),
            info.version.clone(),
            info.resource.clone(),
            info.subresource.clone(),
            scope.to_string(),
        );
        m.observe(labels, resp.status().as_u16(), started.elapsed());
    }
    tracing::debug!(verb = %info.verb, %path, code = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    resp
}

async fn route(
    state: &State,
    req: http::Request<Incoming>,
    info: &request_info::RequestInfo,
    query: &Query,
    user: &ferrokube_authz::UserInfo,
    request_body: &mut Option<bytes::Bytes>,
) -> Response {
    let path = info.path.trim_end_matches('/');
    let accept = header_str(&req, header::ACCEPT).map(str::to_string);
    let content_type = header_str(&req, header::CONTENT_TYPE).map(str::to_string);
    let if_none_match = header_str(&req, header::IF_NONE_MATCH).map(str::to_string);
    let user_agent = header_str(&req, header::USER_AGENT).map(str::to_string);
    let method = req.method().clone();
    // A declared length over the limit is refused before reading anything (an HTTP/1.1
    // client waiting for `100 Continue` then never sends the body).
    let declared = header_str(&req, header::CONTENT_LENGTH).and_then(|l| l.parse::<u64>().ok());
    if declared.is_some_and(|l| l > MAX_BODY_BYTES as u64) && req.version() != http::Version::HTTP_2
    {
        let mut resp = response::status(&Status::too_large(MAX_BODY_BYTES));
        resp.headers_mut()
            .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
        return resp;
    }
    if let Some(remote) = state.aggregator.route(&info.path) {
        return crate::aggregator::proxy::handle(
            &state.aggregator,
            &state.registry,
            &remote,
            req,
            user,
        )
        .await;
    }
    if crate::handlers::backend_proxy::is_backend_proxy(info) {
        return crate::handlers::backend_proxy::handle(&state.registry, req, info).await;
    }
    if crate::handlers::kubelet_proxy::is_kubelet_subresource(info) {
        return crate::handlers::kubelet_proxy::handle(
            &state.registry,
            state.kubelet.as_ref(),
            req,
            info,
        )
        .await;
    }
    // Read the body before answering anything: an HTTP/2 client still sending would
    // otherwise see its stream reset instead of the answer.
    let body = match read_body(req.into_body()).await {
        Ok(b) => b,
        Err(status) => return response::status(&status),
    };
    *request_body = Some(body.clone());
    if !info.is_resource_request || info.resource.is_empty() {
        if method != Method::GET && method != Method::HEAD {
            return response::status(&Status::failure(
                405,
                "MethodNotAllowed",
                format!("the server does not allow this method on the requested resource ({path})"),
            ));
        }
        if path == "/openapi/v2" {
            use crate::handlers::openapi_v2::{document, Format};
            let format = Format::from_accept(accept.as_deref());
            let body = document(&state.openapi_v2, &state.registry.crds, format);
            let mut resp = http::Response::new(crate::body::Body::full(body));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static(format.content_type()),
            );
            return resp;
        }
        if path == "/openapi/v3" {
            return crate::handlers::openapi::index(&state.registry.crds);
        }
        if let Some(openid) = state.security.openid.as_ref() {
            let doc = match path {
                ferrokube_authn::OPENID_CONFIGURATION_PATH => Some((
                    openid.configuration_json(),
                    ferrokube_authn::OPENID_CONFIGURATION_CONTENT_TYPE,
                )),
                ferrokube_authn::JWKS_PATH => {
                    Some((openid.jwks_json(), ferrokube_authn::JWKS_CONTENT_TYPE))
                }
                _ => None,
            };
            if let Some((bytes, content_type)) = doc {
                let mut resp = http::Response::new(crate::body::Body::full(
                    bytes::Bytes::copy_from_slice(bytes),
                ));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static(content_type),
                );
                resp.headers_mut().insert(
                    header::CACHE_CONTROL,
                    http::HeaderValue::from_static(ferrokube_authn::CACHE_CONTROL),
                );
                return resp;
            }
        }
        if let Some(key) = path.strip_prefix("/openapi/v3/") {
            return crate::handlers::openapi::document(
                &state.registry.crds,
                key,
                if_none_match.as_deref(),
            )
            .unwrap_or_else(|| response::status(&rest::not_found_resource()));
        }
        return non_resource(state, path, accept.as_deref(), query).await;
    }
    rest::handle(
        &state.registry,
        rest::Request {
            info,
            query,
            accept: accept.as_deref(),
            content_type: content_type.as_deref(),
            user_agent: user_agent.as_deref(),
            body,
            user,
            security: &state.security,
        },
    )
    .await
}

/// Bytes read past the limit (and thrown away) so that the client, which may still be
/// sending, receives the 413 instead of a reset stream.
const DRAIN_LIMIT: usize = 32 * 1024 * 1024;

pub(crate) async fn read_body(mut body: Incoming) -> Result<bytes::Bytes, Status> {
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Status::bad_request(format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > MAX_BODY_BYTES + DRAIN_LIMIT {
                break;
            }
            if seen <= MAX_BODY_BYTES {
                buf.extend_from_slice(&data);
            }
        }
    }
    if seen > MAX_BODY_BYTES {
        return Err(Status::too_large(MAX_BODY_BYTES));
    }
    Ok(buf.freeze())
}

async fn non_resource(state: &State, path: &str, accept: Option<&str>, query: &Query) -> Response {
    let aggregated = discovery::wants_aggregated(accept);
    // What is served, for the discovery documents only (not health or metrics).
    let served = || {
        discovery::Served::new(&state.registry.crds.snapshot())
            .with_remote(state.aggregator.groups())
    };
    if ["/healthz/", "/livez/", "/readyz/"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        return health(state, path, query).await;
    }
    match path {
        "/healthz" | "/livez" | "/readyz" => health(state, path, query).await,
        "/version" => response::json(200, &discovery::version()),
        "/metrics" => {
            let mut objects = Vec::new();
            let custom = state.registry.crds.snapshot();
            let storage_versions = custom
                .iter()
                .filter(|c| c.info.version == c.storage_version)
                .map(|c| c.info);
            for r in resources::served()
                .filter(|r| r.is_stored())
                .chain(storage_versions)
            {
                let req = ferrokube_storage::RangeRequest {
                    count_only: true,
                    ..ferrokube_storage::RangeRequest::prefix(r.storage_prefix())
                };
                if let Ok(Ok(resp)) = tokio::time::timeout(
                    std::time::Duration::from_secs(2),
                    state.registry.storage.range(req),
                )
                .await
                {
                    objects.push((r.qualified_resource(), resp.count));
                }
            }
            let mut text = crate::metrics::metrics().render(&objects);
            state.apf.render_metrics(state.server_limit, &mut text);
            let mut resp = response::text(200, &text);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        "/api" if aggregated => response::json_with_type(
            200,
            &discovery::aggregated(&served(), true),
            discovery::AGGREGATED_V2,
        ),
        "/api" => response::json(200, &discovery::api_versions(&state.advertise)),
        "/apis" if aggregated => response::json_with_type(
            200,
            &discovery::aggregated(&served(), false),
            discovery::AGGREGATED_V2,
        ),
        "/apis" => response::json(200, &discovery::api_group_list(&served())),
        _ => {
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let doc = match parts.as_slice() {
                ["api", v] => discovery::api_resource_list(&served(), "", v),
                ["apis", g] => discovery::api_group_doc(&served(), g),
                ["apis", g, v] => discovery::api_resource_list(&served(), g, v),
                _ => None,
            };
            match doc {
                Some(d) => response::json(200, &d),
                None => response::status(&rest::not_found_resource()),
            }
        }
    }
}

/// `/healthz`, `/livez`, `/readyz` with `?verbose` and `?exclude=<check>`, and each
/// check on its own path (`/readyz/etcd`), as upstream's healthz package.
async fn health(state: &State, path: &str, query: &Query) -> Response {
    let storage_ok = state.registry.storage.current_revision().await.is_ok();
    let (endpoint, only) = match path.trim_start_matches('/').split_once('/') {
        Some((e, check)) => (e, Some(check)),
        None => (path.trim_start_matches('/'), None),
    };
    let excluded: Vec<&str> = query
        .0
        .iter()
        .filter(|(k, _)| k.as_str() == "exclude")
        .map(|(_, v)| v.as_str())
        .collect();
    let all = [("ping", true), ("log", true), ("etcd", storage_ok)];
    if let Some(check) = only {
        return match all.iter().find(|(name, _)| *name == check) {
            Some((_, true)) => response::text(200, "ok"),
            Some((name, false)) => {
                response::text(500, &format!("internal server error: {name} check failed"))
            }
            None => response::status(&rest::not_found_resource()),
        };
    }
    let checks: Vec<(&str, bool)> = all
        .into_iter()
        .filter(|(n, _)| !excluded.contains(n))
        .collect();
    let ok = checks.iter().all(|(_, ok)| *ok);
    if query.get("verbose").is_none() {
        return if ok {
            response::text(200, "ok")
        } else {
            response::text(
                500,
                &format!("[-]etcd failed: reason withheld\n{endpoint} check failed"),
            )
        };
    }
    let mut text = String::new();
    for (check, good) in checks {
        text.push_str(&if good {
            format!("[+]{check} ok\n")
        } else {
            format!("[-]{check} failed: reason withheld\n")
        });
    }
    for ex in excluded {
        text.push_str(&format!("[+]{ex} excluded: ok\n"));
    }
    text.push_str(&format!(
        "{endpoint} check {}\n",
        if ok { "passed" } else { "failed" }
    ));
    response::text(if ok { 200 } else { 500 }, &text)
}
