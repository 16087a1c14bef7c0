//! `ferrokube apiserver` (or `kube-apiserver`): the API server with kube-apiserver's
//! flag names. Authentication and authorization flags arrive with the security work;
//! until then every request is served (bind to loopback).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ferrokube_apiserver::{ApiServer, ApiServerConfig};

use crate::storage_flags::StorageFlags;

#[derive(Args, Debug, Clone)]
pub struct ApiServerArgs {
    /// The IP address on which to listen for the --secure-port port.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// The port on which to serve HTTPS.
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    /// The address advertised to clients (discovery's serverAddressByClientCIDRs).
    #[arg(long)]
    pub advertise_address: Option<IpAddr>,
    /// Serving certificate (PEM). Without it a self-signed one is kept in --cert-dir.
    #[arg(long, value_name = "FILE", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// Key of --tls-cert-file (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Where the self-signed serving certificate is kept.
    #[arg(long, value_name = "DIR", default_value = "/var/run/kubernetes")]
    pub cert_dir: PathBuf,
    /// The IPv4 range ClusterIPs are allocated from; its first address is the
    /// `kubernetes` Service's.
    #[arg(long, default_value = "10.0.0.0/24")]
    pub service_cluster_ip_range: String,
    /// The port range NodePorts are allocated from.
    #[arg(long, default_value = "30000-32767")]
    pub service_node_port_range: String,
    /// Amount of time to retain events (Go duration).
    #[arg(long, default_value = "1h", value_parser = crate::duration::parse_go_duration)]
    pub event_ttl: std::time::Duration,
    /// The maximum number of non-mutating requests in flight (0: no limit); more are
    /// answered 429 with Retry-After.
    #[arg(long, default_value_t = 400)]
    pub max_requests_inflight: usize,
    /// The maximum number of mutating requests in flight (0: no limit).
    #[arg(long, default_value_t = 200)]
    pub max_mutating_requests_inflight: usize,
    #[command(flatten)]
    pub security: crate::apiserver_flags::SecurityFlags,
    #[command(flatten)]
    pub compat: crate::apiserver_flags::CompatFlags,
    #[command(flatten)]
    pub storage: StorageFlags,
}

impl ApiServerArgs {
    /// The serving certificate and key to use, generating a self-signed pair if needed.
    pub fn serving_pair(&self) -> anyhow::Result<(PathBuf, PathBuf)> {
        match (&self.tls_cert_file, &self.tls_private_key_file) {
            (Some(c), Some(k)) => Ok((c.clone(), k.clone())),
            _ => {
                let mut hosts = vec![
                    "localhost".to_string(),
                    "127.0.0.1".to_string(),
                    "kubernetes".to_string(),
                    "kubernetes.default".to_string(),
                    "kubernetes.default.svc".to_string(),
                ];
                if let Some(a) = self.advertise_address {
                    hosts.push(a.to_string());
                }
                if !self.bind_address.is_unspecified() && !self.bind_address.is_loopback() {
                    hosts.push(self.bind_address.to_string());
                }
                ferrokube_apiserver::tls::ensure_self_signed(&self.cert_dir, &hosts)
                    .with_context(|| format!("--cert-dir {}", self.cert_dir.display()))
            }
        }
    }

    pub fn advertise(&self) -> String {
        let host = self
            .advertise_address
            .unwrap_or(if self.bind_address.is_unspecified() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                self.bind_address
            });
        SocketAddr::new(host, self.secure_port).to_string()
    }

    pub async fn start(
        &self,
        storage: std::sync::Arc<dyn ferrokube_storage::Storage>,
    ) -> anyhow::Result<ApiServer> {
        let (cert, key) = self.serving_pair()?;
        // Encryption at rest wraps the store: every value of the configured resources is
        // encrypted before the backend sees it.
        let storage = match &self.compat.encryption_provider_config {
            None => storage,
            Some(path) => {
                let cfg = ferrokube_encryption::EncryptionConfig::load(path)
                    .with_context(|| format!("--encryption-provider-config {}", path.display()))?;
                ferrokube_apiserver::encryption::wrap(storage, &cfg)
            }
        };
        let config = ApiServerConfig {
            advertise: self.advertise(),
            service_cluster_ip_range: self.service_cluster_ip_range.clone(),
            service_node_port_range: self.service_node_port_range.clone(),
            event_ttl: self.event_ttl,
            max_requests_inflight: self.max_requests_inflight,
            max_mutating_requests_inflight: self.max_mutating_requests_inflight,
            security: ferrokube_apiserver::SecurityConfig {
                admission_plugins: self.compat.enable_admission_plugins.clone(),
                disabled_admission_plugins: self.compat.disable_admission_plugins.clone(),
                ..self.security.to_config()
            },
            audit: self.compat.audit_config(),
            kubelet: self.compat.kubelet_config(),
            aggregator: self.compat.aggregator_config(),
            ..ApiServerConfig::new(
                SocketAddr::new(self.bind_address, self.secure_port),
                cert,
                key,
            )
        };
        Ok(ApiServer::start(config, storage).await?)
    }
}

pub async fn run(args: ApiServerArgs) -> anyhow::Result<()> {
    args.compat.warn_unsupported();
    let backend = args.storage.open(true).await?;
    let server = args.start(backend.store()).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let serving = tokio::spawn(server.run(stopped));
    crate::server::wait_for_signal().await?;
    let _ = stop.send(true);
    let _ = serving.await;
    backend.shutdown().await;
    Ok(())
}
