//! The one API request `pki bootstrap-token create` makes (a POST of a Secret), over
//! HTTPS with the kubeconfig's CA, client certificate or bearer token. Deliberately
//! small: the components' real client is kube-rs; this crate only needs to create an
//! object, and must not pull a whole client library into `ferrokube pki`.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::kubeconfig::ResolvedConfig;
use crate::{Error, Result};

/// How long one request may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// POSTs `body` (JSON) to `path` on the API server; 2xx is success, anything else an
/// [`Error::ApiStatus`] carrying the `metav1.Status` message.
pub async fn post_json(config: &ResolvedConfig, path: &str, body: Vec<u8>) -> Result<()> {
    let server = config.server.clone();
    let request_err = |reason: String| Error::Request {
        server: server.clone(),
        reason,
    };
    let (status, bytes) = tokio::time::timeout(TIMEOUT, send(config, path, body))
        .await
        .map_err(|_| request_err(format!("no answer within {}s", TIMEOUT.as_secs())))??;
    if status.is_success() {
        return Ok(());
    }
    let message = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
    Err(Error::ApiStatus {
        server,
        code: status.as_u16(),
        message,
    })
}

async fn send(
    config: &ResolvedConfig,
    path: &str,
    body: Vec<u8>,
) -> Result<(http::StatusCode, Bytes)> {
    let server = &config.server;
    let request_err = |reason: String| Error::Request {
        server: server.clone(),
        reason,
    };
    let uri: http::Uri = server
        .parse()
        .map_err(|e: http::uri::InvalidUri| request_err(e.to_string()))?;
    let https = uri.scheme_str() == Some("https");
    let host = uri
        .host()
        .ok_or_else(|| request_err("no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_else(|| host.clone());
    let full_path = format!("{}{path}", uri.path().trim_end_matches('/'));
    let mut request = http::Request::post(full_path)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, "ferrokube-pki");
    if let Some(token) = &config.token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| request_err(e.to_string()))?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|source| Error::Connect {
            server: server.clone(),
            source,
        })?;
    if https {
        let tls = tokio_rustls::TlsConnector::from(Arc::new(tls_config(config)?));
        let name = config.tls_server_name.clone().unwrap_or(host);
        let name = ServerName::try_from(name.clone())
            .map_err(|_| request_err(format!("{name:?} is not a valid TLS server name")))?;
        let stream = tls
            .connect(name, tcp)
            .await
            .map_err(|source| Error::Connect {
                server: server.clone(),
                source,
            })?;
        exchange(stream, request, server).await
    } else {
        exchange(tcp, request, server).await
    }
}

async fn exchange<S>(
    io: S,
    request: http::Request<Full<Bytes>>,
    server: &str,
) -> Result<(http::StatusCode, Bytes)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let request_err = |reason: String| Error::Request {
        server: server.to_string(),
        reason,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| request_err(e.to_string()))?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| request_err(e.to_string()))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| request_err(e.to_string()))?
        .to_bytes();
    driver.abort();
    Ok((status, body))
}

/// TLS as client-go sets it up from a kubeconfig: trust only the cluster's CA, present
/// the client certificate if there is one.
fn tls_config(config: &ResolvedConfig) -> Result<rustls::ClientConfig> {
    let fail = |reason: &str| Error::Request {
        server: config.server.clone(),
        reason: reason.to_string(),
    };
    if config.insecure_skip_tls_verify {
        return Err(fail(
            "insecure-skip-tls-verify is not supported; give the cluster's certificate-authority",
        ));
    }
    let ca = config
        .ca_pem
        .as_ref()
        .ok_or_else(|| fail("the kubeconfig names no certificate-authority for the cluster"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca) {
        let cert = cert.map_err(|e| fail(&format!("certificate-authority: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| fail(&format!("certificate-authority: {e}")))?;
    }
    if roots.is_empty() {
        return Err(fail("certificate-authority holds no PEM certificate"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(Error::TlsConfig)?
        .with_root_certificates(roots);
    let mut tls = match (&config.client_cert_pem, &config.client_key_pem) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| fail(&format!("client-certificate: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| fail(&format!("client-key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(Error::TlsConfig)?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(fail(
                "client-certificate and client-key must be given together",
            ))
        }
    };
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}
