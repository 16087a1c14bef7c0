//! `pods/proxy` and `services/proxy`: HTTP(S) requests passed through to a pod, or to one
//! of a Service's endpoints, as upstream's `ProxyREST` with `pod.ResourceLocation` and the
//! service registry's `ResourceLocation`.
//!
//! The name may carry a scheme and a port — `name`, `name:port`, `https:name:port`. A pod
//! without a port is reached on its first declared container port (else 80); a Service's
//! port is a port name, or a port number mapped to the Service port's name, then found in
//! the Endpoints object; only addresses that belong to a pod with that IP are used. HTTPS
//! backends are not verified (upstream's proxy transport skips verification too). The
//! caller's credentials are not forwarded. Upstream also rewrites links in HTML answers
//! to go through the proxy path; that is not done here.

use std::time::Duration;

use ferrokube_api::resources;
use ferrokube_api::status::Status;
use hyper::body::Incoming;
use serde_json::Value;

use crate::body::Response;
use crate::errors::ApiError;
use crate::registry::{Registry, Target};
use crate::request_info::RequestInfo;

const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether this request is a `pods/proxy` or `services/proxy` request.
pub fn is_backend_proxy(info: &RequestInfo) -> bool {
    info.is_resource_request
        && info.group.is_empty()
        && matches!(info.resource.as_str(), "pods" | "services")
        && info.subresource == "proxy"
}

/// `[scheme:]name[:port]` (upstream's `SplitSchemeNamePort`).
fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    (!name.is_empty() && matches!(scheme, "" | "http" | "https")).then_some((scheme, name, port))
}

/// Where a request goes: scheme, host and port.
#[derive(Debug, PartialEq, Eq)]
struct Location {
    https: bool,
    host: String,
    port: u16,
}

fn get_error(e: ApiError, resource: &str, name: &str) -> ApiError {
    ApiError::from(e.into_status("", resource, name))
}

fn unavailable(message: String) -> ApiError {
    ApiError::from(Status::failure(503, "ServiceUnavailable", message))
}

fn pod_ips(pod: &Value) -> Vec<&str> {
    let mut ips: Vec<&str> = pod
        .pointer("/status/podIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("ip").and_then(Value::as_str))
        .collect();
    if let Some(ip) = pod.pointer("/status/podIP").and_then(Value::as_str) {
        if !ips.contains(&ip) {
            ips.insert(0, ip);
        }
    }
    ips
}

/// A pod's location (upstream's `pod.ResourceLocation`).
fn pod_location(pod: &Value, scheme: &str, port: &str) -> Result<Location, ApiError> {
    let mut port = port.to_string();
    if port.is_empty() {
        port = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find_map(|c| {
                c.pointer("/ports/0/containerPort")
                    .and_then(Value::as_u64)
                    .map(|p| p.to_string())
            })
            .unwrap_or_default();
    }
    let ip = pod_ips(pod).first().copied().unwrap_or("");
    let global = match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            !(v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast())
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
        Err(_) => false,
    };
    if !global {
        return Err(Status::bad_request("address not allowed").into());
    }
    let https = scheme == "https";
    let port = if port.is_empty() {
        if https {
            443
        } else {
            80
        }
    } else {
        // A port name is not resolved for pods (upstream dials it as given and fails).
        port.parse::<u16>().map_err(|_| {
            unavailable(format!(
                "error trying to reach service: dial tcp {ip}:{port}: unknown port"
            ))
        })?
    };
    Ok(Location {
        https,
        host: ip.to_string(),
        port,
    })
}

/// The Service port name a `services/proxy` port means: a number maps to the port's
/// name; anything else is a name already.
fn service_port_name(svc: &Value, port: &str, svc_name: &str) -> Result<String, ApiError> {
    let Ok(number) = port.parse::<i64>() else {
        return Ok(port.to_string());
    };
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p.get("port").and_then(Value::as_i64) == Some(number))
        .map(|p| {
            p.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
        .ok_or_else(|| {
            unavailable(format!(
                "no service port {number} found for service {svc_name:?}"
            ))
        })
}

/// Candidate `(ip, port, pod namespace/name)` backends of the Endpoints for a port name,
/// subset by subset, as upstream walks them (it starts at a random subset and address;
/// the start is rotated here by `seed`).
fn endpoint_candidates(eps: &Value, port_name: &str, seed: usize) -> Vec<(String, u16, Value)> {
    let subsets: Vec<&Value> = eps
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let mut out = Vec::new();
    for i in 0..subsets.len() {
        let ss = subsets[(seed + i) % subsets.len()];
        let addresses: Vec<&Value> = ss
            .get("addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        if addresses.is_empty() {
            continue;
        }
        for p in ss
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if p.get("name").and_then(Value::as_str).unwrap_or("") != port_name {
                continue;
            }
            let Some(port) = p
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
            else {
                continue;
            };
            for j in 0..addresses.len() {
                let a = addresses[(seed + j) % addresses.len()];
                let ip = a
                    .get("ip")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let target = a.get("targetRef").cloned().unwrap_or(Value::Null);
                out.push((ip, port, target));
            }
        }
    }
    out
}

fn seed() -> usize {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as usize)
        .unwrap_or(0)
}

async fn service_location(
    registry: &Registry,
    ns: &str,
    scheme: &str,
    name: &str,
    port: &str,
    id: &str,
) -> Result<Location, ApiError> {
    let lookup = |r: &str| {
        resources::lookup("", "v1", r)
            .ok_or_else(|| ApiError::from(Status::internal(format!("{r} are not registered"))))
    };
    let mut port_name = port.to_string();
    if port.parse::<i64>().is_ok() {
        let svc = registry
            .get(&Target::builtin(lookup("services")?, Some(ns)), name)
            .await
            .map_err(|e| get_error(e, "services", name))?;
        port_name = service_port_name(&svc, port, name)?;
    }
    let eps = registry
        .get(&Target::builtin(lookup("endpoints")?, Some(ns)), name)
        .await
        .map_err(|e| get_error(e, "endpoints", name))?;
    if eps
        .get("subsets")
        .and_then(Value::as_array)
        .is_none_or(|s| s.is_empty())
    {
        return Err(unavailable(format!(
            "no endpoints available for service {name:?}"
        )));
    }
    let pods = lookup("pods")?;
    for (ip, port, target) in endpoint_candidates(&eps, &port_name, seed()) {
        // Only addresses that are pods' addresses are proxied to.
        if target.get("kind").and_then(Value::as_str) != Some("Pod") {
            continue;
        }
        let pod_ns = target
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or(ns);
        let pod_name = target.get("name").and_then(Value::as_str).unwrap_or("");
        let Ok(pod) = registry
            .get(&Target::builtin(pods, Some(pod_ns)), pod_name)
            .await
        else {
            continue;
        };
        if pod_ips(&pod).contains(&ip.as_str()) {
            return Ok(Location {
                https: scheme == "https",
                host: ip,
                port,
            });
        }
    }
    Err(unavailable(format!(
        "no endpoints available for service {id:?}"
    )))
}

/// The backend path: what follows `/proxy`, with the trailing slash kept, and the query.
fn backend_path(info: &RequestInfo, uri: &http::Uri) -> String {
    let rest: Vec<&str> = info.parts.iter().skip(3).map(String::as_str).collect();
    let mut path = format!("/{}", rest.join("/"));
    if uri.path().ends_with('/') && !path.ends_with('/') {
        path.push('/');
    }
    match uri.query() {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path,
    }
}

/// The TLS client for HTTPS backends (their certificates are not checked), made once.
fn insecure_tls() -> Result<tokio_rustls::TlsConnector, String> {
    static CONNECTOR: std::sync::OnceLock<Result<tokio_rustls::TlsConnector, String>> =
        std::sync::OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(
                    ferrokube_component_base::tls::AnyServerCert::new(provider),
                )
                .with_no_client_auth();
            Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
                config,
            )))
        })
        .clone()
}

/// Answers a `pods/proxy` or `services/proxy` request.
pub async fn handle(
    registry: &Registry,
    req: http::Request<Incoming>,
    info: &RequestInfo,
) -> Response {
    match proxy(registry, req, info).await {
        Ok(r) => r,
        Err(e) => crate::handlers::response::status(&e.into_status("", &info.resource, &info.name)),
    }
}

async fn proxy(
    registry: &Registry,
    req: http::Request<Incoming>,
    info: &RequestInfo,
) -> Result<Response, ApiError> {
    let kind = if info.resource == "pods" {
        "pod"
    } else {
        "service"
    };
    let (scheme, name, port) = split_scheme_name_port(&info.name).ok_or_else(|| {
        ApiError::from(Status::bad_request(format!(
            "invalid {kind} request {:?}",
            info.name
        )))
    })?;
    // `…/proxy` without a path: redirect to `…/proxy/` (upstream's UpgradeAwareHandler).
    if info.parts.len() == 3 && !req.uri().path().ends_with('/') {
        let mut location = format!("{}/", req.uri().path());
        if let Some(q) = req.uri().query().filter(|q| !q.is_empty()) {
            location = format!("{location}?{q}");
        }
        let mut resp = crate::handlers::response::text(301, "");
        if let Ok(v) = http::HeaderValue::from_str(&location) {
            resp.headers_mut().insert(http::header::LOCATION, v);
        }
        return Ok(resp);
    }
    let ns = info.namespace.as_str();
    let location = if info.resource == "pods" {
        let pods = resources::lookup("", "v1", "pods")
            .ok_or_else(|| ApiError::from(Status::internal("pods are not registered")))?;
        let pod = registry
            .get(&Target::builtin(pods, Some(ns)), name)
            .await
            .map_err(|e| get_error(e, "pods", name))?;
        pod_location(&pod, scheme, port)?
    } else {
        service_location(registry, ns, scheme, name, port, &info.name).await?
    };
    let path = backend_path(info, req.uri());
    let (parts, body) = req.into_parts();
    let body = crate::server::read_body(body)
        .await
        .map_err(ApiError::from)?;
    let mut req = http::Request::from_parts(parts, ());
    let authority = ferrokube_component_base::net::join_host_port(&location.host, location.port);
    let reach = |e: String| unavailable(format!("error trying to reach service: {e}"));
    let dial = async {
        tokio::net::TcpStream::connect((location.host.as_str(), location.port))
            .await
            .map_err(|e| format!("dial tcp {authority}: connect: {e}"))
    };
    let tcp = tokio::time::timeout(DIAL_TIMEOUT, dial)
        .await
        .map_err(|_| reach(format!("dial tcp {authority}: i/o timeout")))?
        .map_err(reach)?;
    let _ = tcp.set_nodelay(true);
    let drop = ["authorization", "impersonate-user", "impersonate-group"];
    let resp = if location.https {
        let server_name = rustls::pki_types::ServerName::try_from(location.host.clone())
            .map_err(|e| reach(e.to_string()))?;
        let tls = insecure_tls()
            .map_err(|e| ApiError::from(Status::internal(e)))?
            .connect(server_name, tcp)
            .await
            .map_err(|e| reach(format!("tls: {e}")))?;
        ferrokube_component_base::proxy::forward_with_body(
            tls, &mut req, &path, &authority, &drop, body,
        )
        .await
    } else {
        ferrokube_component_base::proxy::forward_with_body(
            tcp, &mut req, &path, &authority, &drop, body,
        )
        .await
    }
    .map_err(|e| reach(e.to_string()))?;
    Ok(crate::handlers::kubelet_proxy::stream_response(resp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scheme_name_port() {
        assert_eq!(split_scheme_name_port("p"), Some(("", "p", "")));
        assert_eq!(split_scheme_name_port("p:80"), Some(("", "p", "80")));
        assert_eq!(
            split_scheme_name_port("https:p:443"),
            Some(("https", "p", "443"))
        );
        assert_eq!(split_scheme_name_port("ftp:p:21"), None);
        assert_eq!(split_scheme_name_port(":80"), None);
        assert_eq!(split_scheme_name_port("a:b:c:d"), None);
    }

    #[test]
    fn pod_locations() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "ports": [{"containerPort": 8080}]}]},
            "status": {"podIP": "10.42.0.5"}});
        let loc = pod_location(&pod, "", "")
            .map_err(|_| ())
            .unwrap_or(Location {
                https: true,
                host: String::new(),
                port: 0,
            });
        assert_eq!(
            loc,
            Location {
                https: false,
                host: "10.42.0.5".into(),
                port: 8080
            }
        );
        let no_ip = json!({"spec": {"containers": [{"name": "a"}]}, "status": {}});
        assert!(pod_location(&no_ip, "", "").is_err());
        let bare =
            json!({"spec": {"containers": [{"name": "a"}]}, "status": {"podIP": "10.42.0.6"}});
        assert_eq!(
            pod_location(&bare, "https", "")
                .map(|l| l.port)
                .unwrap_or(0),
            443
        );
    }

    #[test]
    fn service_ports_and_endpoints() {
        let svc =
            json!({"spec": {"ports": [{"name": "web", "port": 80}, {"name": "", "port": 81}]}});
        assert_eq!(
            service_port_name(&svc, "80", "s").unwrap_or_default(),
            "web"
        );
        assert_eq!(service_port_name(&svc, "81", "s").unwrap_or_default(), "");
        assert_eq!(
            service_port_name(&svc, "web", "s").unwrap_or_default(),
            "web"
        );
        assert!(service_port_name(&svc, "82", "s").is_err());
        let eps = json!({"subsets": [
            {"addresses": [], "ports": [{"name": "web", "port": 8080}]},
            {"addresses": [{"ip": "10.0.0.1", "targetRef": {"kind": "Pod", "name": "p1"}},
                           {"ip": "10.0.0.2", "targetRef": {"kind": "Pod", "name": "p2"}}],
             "ports": [{"name": "web", "port": 8080}, {"name": "other", "port": 9090}]}]});
        let c = endpoint_candidates(&eps, "web", 1);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].0.as_str(), c[0].1), ("10.0.0.2", 8080));
        assert!(endpoint_candidates(&eps, "missing", 0).is_empty());
    }
}
