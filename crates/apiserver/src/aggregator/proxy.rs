//! Proxying a request to the API server behind a remote APIService, as upstream's
//! `proxyHandler`: only while the APIService is Available (else `503 service
//! unavailable`), to the Service's cluster IP (or a ready endpoint with
//! `--enable-aggregator-routing`), over TLS checked against the caBundle for
//! `<service>.<namespace>.svc`, presenting the proxy client certificate. The caller's
//! credentials stay here; its identity travels as `X-Remote-User`, `X-Remote-Group`
//! and `X-Remote-Extra-<key>`, which the backend trusts through its request-header
//! authentication. Upgrades (exec-like subresources) and watches stream through.

use std::net::SocketAddr;
use std::time::Duration;

use ferrokube_authz::UserInfo;
use http::{header, HeaderName, HeaderValue};
use hyper::body::Incoming;
use rustls::pki_types::ServerName;

use super::{Aggregator, Remote};
use crate::body::{Body, Response};
use crate::registry::Registry;

/// How long dialling a backend (TCP and TLS) may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A plain-text error as Go's `http.Error` writes it.
pub fn text_error(code: u16, message: &str) -> Response {
    let mut resp = http::Response::new(Body::full(bytes::Bytes::from(format!("{message}\n"))));
    *resp.status_mut() =
        http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Where to dial `remote`: its cluster IP, or with routing one of its ready endpoints.
pub async fn resolve(
    agg: &Aggregator,
    registry: &Registry,
    remote: &Remote,
) -> Result<SocketAddr, String> {
    use crate::service_resolver as sr;
    if agg.routing {
        let addrs =
            sr::endpoints(registry, &remote.namespace, &remote.service, remote.port).await?;
        let pick = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as usize)
            .unwrap_or(0))
            % addrs.len().max(1);
        addrs
            .get(pick)
            .copied()
            .ok_or_else(|| "no endpoints".to_string())
    } else {
        sr::cluster_ip(registry, &remote.namespace, &remote.service, remote.port).await
    }
}

/// Opens a TLS connection to `addr`, checked as `server_name`.
pub async fn dial(
    tls: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    server_name: &str,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| format!("invalid server name {server_name:?}: {e}"))?;
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("dial tcp {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        tls.connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))
    };
    tokio::time::timeout(DIAL_TIMEOUT, connect)
        .await
        .map_err(|_| format!("dial tcp {addr}: i/o timeout"))?
}

/// Escapes a header key as client-go's `headerKeyEscape` (bytes outside an HTTP token,
/// and `%`, as `%XX`).
fn escape_key(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        let token = b.is_ascii_alphanumeric() || b"!#$&'*+-.^_`|~".contains(&b);
        if token {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Replaces the caller's credentials and identity headers with `user`'s request-header
/// identity (`transport.SetAuthProxyHeaders`).
pub fn set_identity(headers: &mut http::HeaderMap, user: &UserInfo) {
    let drop: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let k = k.as_str();
            k == "authorization" || k.starts_with("impersonate-") || k.starts_with("x-remote-")
        })
        .cloned()
        .collect();
    for k in drop {
        headers.remove(k);
    }
    if let Ok(v) = HeaderValue::from_str(&user.name) {
        headers.insert("x-remote-user", v);
    }
    for g in &user.groups {
        if let Ok(v) = HeaderValue::from_str(g) {
            headers.append("x-remote-group", v);
        }
    }
    for (key, values) in &user.extra {
        let Ok(name) =
            HeaderName::from_bytes(format!("x-remote-extra-{}", escape_key(key)).as_bytes())
        else {
            continue;
        };
        for value in values {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.append(name.clone(), v);
            }
        }
    }
}

/// Proxies `req` (already authenticated as `user` and authorized) to `remote`.
pub async fn handle(
    agg: &Aggregator,
    registry: &Registry,
    remote: &Remote,
    req: http::Request<Incoming>,
    user: &UserInfo,
) -> Response {
    if !remote.available {
        return text_error(503, "service unavailable");
    }
    let tls = match &remote.tls {
        Ok(t) => t,
        Err(e) => return text_error(500, e),
    };
    let addr = match resolve(agg, registry, remote).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(apiservice = %remote.name, error = %e, "aggregator: resolving the service");
            return text_error(503, "service unavailable");
        }
    };
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |p| p.to_string());
    let (parts, body) = req.into_parts();
    let body = match crate::server::read_body(body).await {
        Ok(b) => b,
        Err(status) => return crate::handlers::response::status(&status),
    };
    let mut req = http::Request::from_parts(parts, ());
    set_identity(req.headers_mut(), user);
    let stream = match dial(tls, addr, &remote.server_name()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(apiservice = %remote.name, error = %e, "aggregator: dialling the backend");
            return text_error(503, &format!("error trying to reach service: {e}"));
        }
    };
    let authority =
        ferrokube_component_base::net::join_host_port(&remote.server_name(), remote.port);
    match ferrokube_component_base::proxy::forward_with_body(
        stream,
        &mut req,
        &path_and_query,
        &authority,
        &[],
        body,
    )
    .await
    {
        Ok(resp) => crate::handlers::kubelet_proxy::stream_response(resp),
        Err(e) => text_error(503, &format!("error trying to reach service: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_replace_the_callers() {
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer secret"));
        headers.insert("impersonate-user", HeaderValue::from_static("root"));
        headers.insert("x-remote-user", HeaderValue::from_static("spoofed"));
        headers.insert("accept", HeaderValue::from_static("application/json"));
        let mut user = UserInfo::new("alice", &["dev", "system:authenticated"]);
        user.extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec!["X509SHA256=ab".into()],
        );
        set_identity(&mut headers, &user);
        assert!(
            headers.get("authorization").is_none() && headers.get("impersonate-user").is_none()
        );
        assert_eq!(headers["x-remote-user"], "alice");
        let groups: Vec<_> = headers.get_all("x-remote-group").iter().collect();
        assert_eq!(groups, ["dev", "system:authenticated"]);
        assert_eq!(
            headers["x-remote-extra-authentication.kubernetes.io%2Fcredential-id"],
            "X509SHA256=ab"
        );
        assert_eq!(headers["accept"], "application/json");
    }

    #[test]
    fn errors_are_plain_text() {
        let resp = text_error(503, "service unavailable");
        assert_eq!(resp.status(), 503);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }
}
