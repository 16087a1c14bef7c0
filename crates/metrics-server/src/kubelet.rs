//! The kubelet client: `GET https://<node address>:<port>/metrics/resource` with the
//! metrics-server's credentials (upstream's `pkg/scraper/client/resource/client.go`).
//!
//! The address is the node's first address of a preferred type
//! (`--kubelet-preferred-address-types`); the port `--kubelet-port`, or the node's
//! `status.daemonEndpoints.kubeletEndpoint.Port` with `--kubelet-use-node-status-port`.
//! The kubelet authenticates the client certificate or bearer token and authorizes
//! `get nodes/metrics` with a SubjectAccessReview.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::cluster::NodeInfo;
use crate::decode::{decode, NodeBatch};

/// Responses larger than this are refused.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Why a kubelet could not be scraped.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// No usable address.
    #[error("{0}")]
    NoAddress(String),
    /// `--kubelet-request-timeout` passed.
    #[error("request to {url} timed out after {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    /// TCP, TLS or HTTP failed.
    #[error("GET {url}: {detail}")]
    Request { url: String, detail: String },
    /// The kubelet answered with an error status (upstream's wording).
    #[error("GET {url}: request failed, status: {status:?}")]
    Status { url: String, status: String },
}

impl ScrapeError {
    /// Whether the request timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ScrapeError::Timeout { .. })
    }
}

/// The TLS half of the kubelet client: whom to trust and who we are.
#[derive(Debug, Clone, Default)]
pub struct KubeletTls {
    /// PEM bundle of the CA that signed the kubelets' serving certificates.
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any kubelet serving certificate (`--kubelet-insecure-tls`).
    pub insecure: bool,
    /// Client certificate chain and key (PEM).
    pub client_cert_pem: Option<Vec<u8>>,
    /// Client key (PEM).
    pub client_key_pem: Option<Vec<u8>>,
}

impl KubeletTls {
    /// The rustls client config (HTTP/1.1).
    pub fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if self.insecure {
            builder.dangerous().with_custom_certificate_verifier(
                ferrokube_component_base::tls::AnyServerCert::new(provider),
            )
        } else {
            let pem = self.ca_pem.as_deref().ok_or_else(|| {
                "no certificate authority to verify kubelets with: set --kubelet-certificate-authority (or a certificate-authority in the kubeconfig), or --kubelet-insecure-tls".to_string()
            })?;
            builder.with_root_certificates(ferrokube_component_base::tls::root_store(pem)?)
        };
        let mut config = match (&self.client_cert_pem, &self.client_key_pem) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("client certificate: {e}"))?;
                if chain.is_empty() {
                    return Err("client certificate: no PEM certificate found".into());
                }
                let key =
                    PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("client key: {e}"))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("client certificate and key: {e}"))?
            }
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// How to reach kubelets.
#[derive(Clone)]
pub struct KubeletClient {
    tls: tokio_rustls::TlsConnector,
    token: Option<String>,
    port: u16,
    use_node_status_port: bool,
    preferred_address_types: Vec<String>,
    timeout: Duration,
    user_agent: String,
}

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletClient")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("port", &self.port)
            .field("use_node_status_port", &self.use_node_status_port)
            .field("preferred_address_types", &self.preferred_address_types)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Upstream's `--kubelet-preferred-address-types` default.
pub const DEFAULT_ADDRESS_TYPES: &[&str] = &[
    "Hostname",
    "InternalDNS",
    "InternalIP",
    "ExternalDNS",
    "ExternalIP",
];

impl KubeletClient {
    /// A client with `tls`, sending `token` (if any) as a bearer token, to `port` (or
    /// the node's status port when `use_node_status_port`).
    pub fn new(tls: rustls::ClientConfig, token: Option<String>, port: u16) -> KubeletClient {
        KubeletClient {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            token: token.filter(|t| !t.is_empty()),
            port,
            use_node_status_port: false,
            preferred_address_types: DEFAULT_ADDRESS_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            timeout: Duration::from_secs(10),
            user_agent: "metrics-server/ferrokube".into(),
        }
    }

    /// Use `status.daemonEndpoints.kubeletEndpoint.Port` when the node has one.
    pub fn use_node_status_port(mut self, yes: bool) -> KubeletClient {
        self.use_node_status_port = yes;
        self
    }

    /// The address types to try, in order.
    pub fn preferred_address_types(mut self, types: Vec<String>) -> KubeletClient {
        self.preferred_address_types = types;
        self
    }

    /// The timeout of one scrape.
    pub fn timeout(mut self, timeout: Duration) -> KubeletClient {
        self.timeout = timeout;
        self
    }

    /// The `User-Agent` header.
    pub fn user_agent(mut self, agent: &str) -> KubeletClient {
        self.user_agent = agent.to_string();
        self
    }

    /// `host:port` of a node's kubelet.
    pub fn address(&self, node: &NodeInfo) -> Result<(String, u16), ScrapeError> {
        let host = node
            .address(&self.preferred_address_types)
            .map_err(ScrapeError::NoAddress)?;
        let port = match (self.use_node_status_port, node.kubelet_port) {
            (true, Some(p)) => p,
            _ => self.port,
        };
        Ok((host.to_string(), port))
    }

    /// Scrapes one node's `/metrics/resource` and decodes it.
    pub async fn scrape(&self, node: &NodeInfo) -> Result<NodeBatch, ScrapeError> {
        let (host, port) = self.address(node)?;
        let authority = ferrokube_component_base::net::join_host_port(&host, port);
        let url = format!("https://{authority}/metrics/resource");
        let fetch = self.fetch(&host, &authority, &url);
        let (body, scrape_time_ns) = match tokio::time::timeout(self.timeout, fetch).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(ScrapeError::Timeout {
                    url,
                    timeout: self.timeout,
                })
            }
        };
        Ok(decode(&String::from_utf8_lossy(&body), scrape_time_ns))
    }

    async fn fetch(
        &self,
        host: &str,
        authority: &str,
        url: &str,
    ) -> Result<(Bytes, i64), ScrapeError> {
        let fail = |detail: String| ScrapeError::Request {
            url: url.to_string(),
            detail,
        };
        let tcp = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| fail(format!("server name {host:?}: {e}")))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| fail(format!("TLS: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = http::Request::get("/metrics/resource")
            .header(http::header::HOST, authority)
            .header(
                http::header::ACCEPT,
                "text/plain;version=0.0.4;q=1,*/*;q=0.1",
            )
            .header(http::header::USER_AGENT, &self.user_agent);
        if let Some(token) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| fail(e.to_string()))?;
        let result = async {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let scrape_time_ns = now_ns();
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| fail(format!("reading the response: {e}")))?
                .to_bytes();
            if status != http::StatusCode::OK {
                return Err(ScrapeError::Status {
                    url: url.to_string(),
                    status: format!(
                        "{} {}",
                        status.as_u16(),
                        status.canonical_reason().unwrap_or("")
                    )
                    .trim_end()
                    .to_string(),
                });
            }
            Ok((body, scrape_time_ns))
        }
        .await;
        driver.abort();
        result
    }
}

/// Unix nanoseconds now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_ports() {
        let tls = KubeletTls {
            insecure: true,
            ..KubeletTls::default()
        };
        let client = KubeletClient::new(tls.client_config().unwrap(), None, 10250);
        let mut node = NodeInfo {
            name: "n".into(),
            addresses: vec![
                ("InternalIP".into(), "10.0.0.1".into()),
                ("Hostname".into(), "n".into()),
            ],
            kubelet_port: Some(11250),
            ..NodeInfo::default()
        };
        assert_eq!(client.address(&node).unwrap(), ("n".to_string(), 10250));
        let client = client
            .use_node_status_port(true)
            .preferred_address_types(vec!["InternalIP".into()]);
        assert_eq!(
            client.address(&node).unwrap(),
            ("10.0.0.1".to_string(), 11250)
        );
        node.kubelet_port = None;
        assert_eq!(client.address(&node).unwrap().1, 10250);
        node.addresses.clear();
        assert!(matches!(
            client.address(&node),
            Err(ScrapeError::NoAddress(_))
        ));
    }

    #[test]
    fn tls_needs_a_ca_unless_insecure() {
        let err = KubeletTls::default().client_config().unwrap_err();
        assert!(err.contains("--kubelet-certificate-authority"), "{err}");
        let bad = KubeletTls {
            ca_pem: Some(b"not pem".to_vec()),
            ..KubeletTls::default()
        };
        assert!(bad.client_config().is_err());
    }
}
