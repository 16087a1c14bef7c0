//! The subresources the API server answers by asking a node's kubelet: `pods/log`,
//! `pods/exec`, `pods/attach`, `pods/portforward` and `nodes/proxy` (upstream's
//! `registry/core/pod/rest` `LogREST`, `ExecREST`, … and `node/rest.ProxyREST`). The
//! kubelet is reached at the node's preferred address (`--kubelet-preferred-address-types`)
//! and `status.daemonEndpoints.kubeletEndpoint.Port`, over TLS with the API server's
//! kubelet client certificate (`--kubelet-client-certificate`/`--kubelet-client-key`),
//! checking the kubelet's certificate against `--kubelet-certificate-authority` when
//! given. Streams (WebSocket or SPDY upgrades, followed logs) pass through untouched.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use ferrokube_api::resources;
use ferrokube_api::status::Status;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rustls::pki_types::ServerName;
use serde_json::Value;

use crate::body::{Body, Response};
use crate::errors::ApiError;
use crate::registry::{Registry, Target};
use crate::request_info::RequestInfo;

/// `--kubelet-*` flags.
#[derive(Debug, Clone)]
pub struct KubeletClientConfig {
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub certificate_authority: Option<PathBuf>,
    /// Address types in order of preference.
    pub preferred_address_types: Vec<String>,
}

impl Default for KubeletClientConfig {
    fn default() -> Self {
        KubeletClientConfig {
            client_certificate: None,
            client_key: None,
            certificate_authority: None,
            // Upstream's default order.
            preferred_address_types: [
                "Hostname",
                "InternalDNS",
                "InternalIP",
                "ExternalDNS",
                "ExternalIP",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }
}

/// The TLS client the API server talks to kubelets with.
#[derive(Clone)]
pub struct KubeletClient {
    tls: tokio_rustls::TlsConnector,
    preferred: Vec<String>,
}

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletClient")
            .field("preferred", &self.preferred)
            .finish_non_exhaustive()
    }
}

fn read_pem(flag: &str, path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
}

impl KubeletClient {
    /// Loads the flags' files; errors name the flag.
    pub fn new(cfg: &KubeletClientConfig) -> Result<KubeletClient, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match &cfg.certificate_authority {
            Some(path) => {
                let pem = read_pem("--kubelet-certificate-authority", path)?;
                let roots = ferrokube_component_base::tls::root_store(&pem).map_err(|e| {
                    format!("--kubelet-certificate-authority {}: {e}", path.display())
                })?;
                builder.with_root_certificates(roots)
            }
            // No CA configured: the kubelet's (often self-signed) certificate is not
            // checked, as upstream without --kubelet-certificate-authority.
            None => builder.dangerous().with_custom_certificate_verifier(
                ferrokube_component_base::tls::AnyServerCert::new(provider),
            ),
        };
        let mut config = match (&cfg.client_certificate, &cfg.client_key) {
            (Some(c), Some(k)) => {
                let pair = ferrokube_component_base::tls::load_named_pair(
                    "--kubelet-client-certificate",
                    c,
                    "--kubelet-client-key",
                    k,
                )
                .map_err(|e| e.to_string())?;
                builder
                    .with_client_auth_cert(pair.chain, pair.key)
                    .map_err(|e| format!("--kubelet-client-certificate: {e}"))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(
                    "--kubelet-client-certificate and --kubelet-client-key go together".into(),
                )
            }
        };
        // Upgrades (exec, port-forward) need HTTP/1.1.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            preferred: cfg.preferred_address_types.clone(),
        })
    }
}

fn bad_request(message: String) -> ApiError {
    Status::bad_request(message).into()
}

/// The node's kubelet `host:port`, by the preferred address types.
fn kubelet_address(node: &Value, preferred: &[String]) -> Result<(String, u16), ApiError> {
    let name = node
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let addresses = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let find = |kind: &str| {
        addresses.iter().find_map(|a| {
            (a.get("type").and_then(Value::as_str) == Some(kind))
                .then(|| a.get("address").and_then(Value::as_str))
                .flatten()
        })
    };
    let host = preferred.iter().find_map(|t| find(t)).ok_or_else(|| {
        ApiError::from(Status::internal(format!(
            "no preferred addresses found; known addresses: {}",
            serde_json::to_string(&addresses).unwrap_or_default()
        )))
    })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(10250);
    tracing::debug!(node = name, %host, port, "kubelet address");
    Ok((host.to_string(), port))
}

/// The container a `pods/log|exec|attach` request means: `?container=` (a container,
/// init container or ephemeral container), else the only one (upstream's messages
/// otherwise).
fn container_name(pod: &Value, requested: Option<&str>, name: &str) -> Result<String, ApiError> {
    let names: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let init: Vec<&str> = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let ephemeral: Vec<&str> = pod
        .pointer("/spec/ephemeralContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if names.contains(&c) || init.contains(&c) || ephemeral.contains(&c) => {
            Ok(c.to_string())
        }
        Some(c) => Err(bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if names.len() == 1 => Ok(names[0].to_string()),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            );
            if !init.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            if !ephemeral.is_empty() {
                msg.push_str(&format!(
                    " or one of the ephemeral containers: [{}]",
                    ephemeral.join(" ")
                ));
            }
            Err(bad_request(msg))
        }
    }
}

/// Whether this request is one the kubelet answers.
pub fn is_kubelet_subresource(info: &RequestInfo) -> bool {
    info.is_resource_request
        && info.group.is_empty()
        && ((info.resource == "pods"
            && matches!(
                info.subresource.as_str(),
                "log" | "exec" | "attach" | "portforward"
            ))
            || (info.resource == "nodes" && info.subresource == "proxy"))
}

/// Keeps only the `pods/log` options the kubelet understands, re-encoded.
fn log_query(raw: &str) -> String {
    let keep = [
        "follow",
        "previous",
        "timestamps",
        "tailLines",
        "limitBytes",
        "sinceSeconds",
        "sinceTime",
    ];
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        if keep.contains(&k.as_ref()) {
            out.append_pair(&k, &v);
        }
    }
    out.finish()
}

/// Answers a kubelet subresource request.
pub async fn handle(
    registry: &Registry,
    client: Option<&KubeletClient>,
    mut req: http::Request<Incoming>,
    info: &RequestInfo,
) -> Response {
    match proxy(registry, client, &mut req, info).await {
        Ok(r) => r,
        Err(e) => crate::handlers::response::status(&e.into_status("", &info.resource, &info.name)),
    }
}

async fn proxy(
    registry: &Registry,
    client: Option<&KubeletClient>,
    req: &mut http::Request<Incoming>,
    info: &RequestInfo,
) -> Result<Response, ApiError> {
    let client = client.ok_or_else(|| {
        ApiError::from(Status::internal(
            "the API server has no kubelet client configured",
        ))
    })?;
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let query = crate::request_info::Query::parse(Some(&raw_query));
    let nodes = resources::lookup("", "v1", "nodes")
        .ok_or_else(|| ApiError::from(Status::internal("nodes are not registered")))?;
    let (node_name, path) = if info.resource == "nodes" {
        // /api/v1/nodes/{name}/proxy/{path…}
        let rest: Vec<&str> = info.parts.iter().skip(3).map(String::as_str).collect();
        let mut path = format!("/{}", rest.join("/"));
        if req.uri().path().ends_with('/') && !path.ends_with('/') {
            path.push('/');
        }
        if !raw_query.is_empty() {
            path = format!("{path}?{raw_query}");
        }
        (info.name.clone(), path)
    } else {
        let pods = resources::lookup("", "v1", "pods")
            .ok_or_else(|| ApiError::from(Status::internal("pods are not registered")))?;
        let ns = info.namespace.as_str();
        let pod = registry
            .get(&Target::builtin(pods, Some(ns)), &info.name)
            .await?;
        let node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if node.is_empty() {
            return Err(bad_request(format!(
                "pod {} does not have a host assigned",
                info.name
            )));
        }
        let name = &info.name;
        let path = match info.subresource.as_str() {
            "portforward" => format!("/portForward/{ns}/{name}?{raw_query}"),
            "log" => {
                let c = container_name(&pod, query.get("container"), name)?;
                format!("/containerLogs/{ns}/{name}/{c}?{}", log_query(&raw_query))
            }
            sub => {
                let c = container_name(&pod, query.get("container"), name)?;
                let kubelet_path = if sub == "exec" { "exec" } else { "attach" };
                format!("/{kubelet_path}/{ns}/{name}/{c}?{raw_query}")
            }
        };
        (node, path)
    };
    let node = registry
        .get(&Target::builtin(nodes, None), &node_name)
        .await?;
    let (host, port) = kubelet_address(&node, &client.preferred)?;
    let unavailable =
        |what: String| ApiError::from(Status::failure(503, "ServiceUnavailable", what));
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| {
            unavailable(format!(
                "error dialing backend: dial tcp {host}:{port}: {e}"
            ))
        })?;
    let _ = tcp.set_nodelay(true);
    let server_name = ServerName::try_from(host.clone())
        .map_err(|e| unavailable(format!("kubelet address {host}: {e}")))?;
    let tls = client
        .tls
        .connect(server_name, tcp)
        .await
        .map_err(|e| unavailable(format!("error dialing backend: {e}")))?;
    let authority = ferrokube_component_base::net::join_host_port(&host, port);
    // The caller's credentials are not the kubelet's business.
    let resp = ferrokube_component_base::proxy::forward(
        tls,
        req,
        &path,
        &authority,
        &["authorization", "impersonate-user", "impersonate-group"],
    )
    .await
    .map_err(|e| unavailable(e.to_string()))?;
    Ok(stream_response(resp))
}

/// The kubelet's answer with its body streamed through.
pub(crate) fn stream_response(resp: http::Response<Incoming>) -> Response {
    let (parts, mut body) = resp.into_parts();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return };
            if let Ok(data) = frame.into_data() {
                if tx.send(data).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut out = http::Response::from_parts(parts, Body::Stream(rx));
    // Lengths and encodings describe the kubelet's hop.
    out.headers_mut().remove(http::header::CONTENT_LENGTH);
    out.headers_mut().remove(http::header::TRANSFER_ENCODING);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_defaulting_and_messages() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "i"}]}});
        assert_eq!(
            container_name(&pod, Some("b"), "p").unwrap_or_default(),
            "b"
        );
        assert_eq!(
            container_name(&pod, Some("i"), "p").unwrap_or_default(),
            "i"
        );
        let one = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(container_name(&one, None, "p").unwrap_or_default(), "only");
        assert!(container_name(&pod, None, "p").is_err());
        assert!(container_name(&pod, Some("zz"), "p").is_err());
    }

    #[test]
    fn addresses_follow_the_preference() {
        let node = json!({"metadata": {"name": "n"}, "status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10251}}}});
        let pref = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (h, p) = kubelet_address(&node, &pref(&["InternalIP", "Hostname"])).unwrap_or_default();
        assert_eq!((h.as_str(), p), ("10.0.0.1", 10251));
        assert!(kubelet_address(&node, &pref(&["ExternalIP"])).is_err());
    }

    #[test]
    fn log_options_are_filtered() {
        assert_eq!(
            log_query("container=c&follow=true&tailLines=5&pretty=1"),
            "follow=true&tailLines=5"
        );
    }
}
