//! ferrokube's kube-proxy: each node turns Services and EndpointSlices into kernel
//! load-balancing rules, so a Service's ClusterIP, NodePort, externalIPs and
//! LoadBalancer IPs reach its ready endpoints.
//!
//! - [`config`]: the seeds' `KubeProxyConfiguration`.
//! - [`model`]: what a Service and its slices mean to this node (upstream's endpoint
//!   categorisation, traffic policies, session affinity).
//! - [`nftables`] and [`iptables`]: the proxiers (IPVS mode falls back to nftables
//!   where the kernel has no IPVS; see [`runner::backend`]).
//! - [`runner`]: watches and the bounded-frequency sync loop; [`http`] and [`metrics`]:
//!   `/healthz`, `/livez`, `/metrics`.

pub mod backend;
pub mod config;
pub mod conntrack;
pub mod http;
pub mod iptables;
pub mod metrics;
pub mod model;
pub mod nftables;
pub mod runner;
pub mod service_health;

pub use backend::{Backend, SyncError, SyncStats};
pub use config::{Mode, ProxyConfig};
pub use runner::{Health, SharedHealth};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

/// A running proxier and its endpoints.
#[derive(Debug)]
pub struct Proxy {
    pub healthz_addr: Option<std::net::SocketAddr>,
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the proxier for `node` with `config` (health and metrics servers included)
/// until `stop` turns true.
pub async fn start(
    config: ProxyConfig,
    client: kube::Client,
    node: String,
    stop: watch::Receiver<bool>,
) -> std::io::Result<Proxy> {
    let backend = runner::backend(&config);
    let metrics = metrics::ProxyMetrics::new(backend.mode().as_str());
    let health: SharedHealth = Arc::new(Mutex::new(Health {
        timeout: (config.sync_period * 2).max(Duration::from_secs(1)),
        ..Health::default()
    }));
    let healthz_addr = match config.healthz_bind_address {
        Some(a) => {
            Some(http::serve(a, false, health.clone(), metrics.clone(), stop.clone()).await?)
        }
        None => None,
    };
    let metrics_addr = match config.metrics_bind_address {
        Some(a) => Some(http::serve(a, true, health.clone(), metrics.clone(), stop.clone()).await?),
        None => None,
    };
    let task = tokio::spawn(runner::run(
        config, client, node, backend, metrics, health, stop,
    ));
    Ok(Proxy {
        healthz_addr,
        metrics_addr,
        task,
    })
}
