//! ferrokube-metrics-server: the resource metrics pipeline of a cluster, as
//! kubernetes-sigs/metrics-server runs it — so `kubectl top` and the
//! HorizontalPodAutoscaler work.
//!
//! - [`scraper`]: every `--metric-resolution`, list the nodes and pods, scrape each
//!   node's kubelet `/metrics/resource` ([`kubelet`], decoded by [`decode`]);
//! - [`storage`]: the last two points per node and container → CPU rate, working set,
//!   window;
//! - [`api`]: `metrics.k8s.io/v1beta1` NodeMetrics and PodMetrics (JSON, Table),
//!   served by [`server`] behind delegated authentication and authorization, to be
//!   registered with the API server as the APIService `v1beta1.metrics.k8s.io`.
//!
//! ```no_run
//! # async fn demo(client: kube::Client, kubelet_tls: rustls::ClientConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use ferrokube_metrics_server::{cluster::KubeCluster, kubelet::KubeletClient, server::SecurePort, MetricsServer, Options};
//! let auth = ferrokube_component_base::DelegatedAuth::anonymous_only()?;
//! let kubelet = KubeletClient::new(kubelet_tls, None, 10250);
//! let ms = MetricsServer::new(Arc::new(KubeCluster::new(client)), kubelet, auth, Options::default());
//! let cert = ferrokube_component_base::SecureServingFlags::default().serving_cert("metrics-server")?;
//! let port = SecurePort::bind("0.0.0.0:4443".parse()?, cert, ms.server().auth()).await?;
//! let (_stop, shutdown) = tokio::sync::watch::channel(false);
//! ms.run(Some(port), shutdown).await;
//! # Ok(()) }
//! ```

pub mod api;
pub mod authentication;
pub mod cluster;
pub mod decode;
pub mod format;
pub mod kubelet;
pub mod scraper;
pub mod server;
pub mod storage;

use std::sync::Arc;
use std::time::Duration;

pub use ferrokube_api::selectors::LabelSelector;
use ferrokube_component_base::healthz::Endpoint;
use ferrokube_component_base::{DelegatedAuth, HealthChecks, Registry};
use tokio::sync::watch;

use crate::api::Api;
use crate::cluster::Cluster;
use crate::kubelet::KubeletClient;
use crate::scraper::{ClusterState, Scraper};
use crate::server::{SecurePort, Server};
use crate::storage::Storage;

/// How the metrics-server runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--metric-resolution`: time between scrapes (the first interval is at most 5 s).
    pub resolution: Duration,
    /// `--node-selector`: only nodes matching it are scraped and served.
    pub node_selector: LabelSelector,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            resolution: Duration::from_secs(15),
            node_selector: LabelSelector::default(),
        }
    }
}

/// A metrics-server: the scraper and the secure port's handler over one storage.
#[derive(Debug)]
pub struct MetricsServer {
    scraper: Scraper,
    server: Arc<Server>,
    storage: Arc<Storage>,
    registry: Registry,
}

impl MetricsServer {
    /// Wires the scraper of `cluster` (through `kubelet`), the storage and the API
    /// (behind `auth`), with upstream's health checks (`/readyz`
    /// `metric-storage-ready`, `/livez` `metric-collection-timely`) and metrics.
    pub fn new(
        cluster: Arc<dyn Cluster>,
        kubelet: KubeletClient,
        auth: DelegatedAuth,
        options: Options,
    ) -> MetricsServer {
        let registry = Registry::new();
        let storage = Arc::new(Storage::new(options.resolution));
        let state = Arc::new(ClusterState::default());
        let scraper = Scraper::new(
            cluster,
            kubelet,
            storage.clone(),
            state.clone(),
            options.node_selector.clone(),
            &registry,
            options.resolution,
        );
        let health = HealthChecks::new();
        let status = scraper.status();
        let ready_storage = storage.clone();
        health.add(
            Endpoint::Readyz,
            "metric-storage-ready",
            Arc::new(move || {
                status.last_ok()?;
                if !ready_storage.ready() {
                    return Err("metrics-server needs at least 2 scrapes to serve metrics".into());
                }
                Ok(())
            }),
        );
        let status = scraper.status();
        health.add(
            Endpoint::Livez,
            "metric-collection-timely",
            Arc::new(move || status.live()),
        );
        let freshness = registry.histogram(
            "metrics_server_api_metric_freshness_seconds",
            "Freshness of metrics exported",
            &exponential_buckets(1.0, 1.364, 20),
        );
        let api = Api::new(storage.clone(), state, options.node_selector).with_freshness(freshness);
        let server = Arc::new(Server::new(auth, api, health, registry.clone()));
        MetricsServer {
            scraper,
            server,
            storage,
            registry,
        }
    }

    /// The secure port's request handler.
    pub fn server(&self) -> Arc<Server> {
        self.server.clone()
    }

    /// The scraper (to run single cycles in tests).
    pub fn scraper(&self) -> &Scraper {
        &self.scraper
    }

    /// The metric points.
    pub fn storage(&self) -> Arc<Storage> {
        self.storage.clone()
    }

    /// The metrics registry `/metrics` renders.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Scrapes and serves `port` (if any) until `shutdown` turns true or its sender is
    /// dropped.
    pub async fn run(self, port: Option<SecurePort>, shutdown: watch::Receiver<bool>) {
        let scrape = tokio::spawn(self.scraper.run(shutdown.clone()));
        match port {
            Some(port) => self.server.serve(port.listener, port.tls, shutdown).await,
            None => {
                let mut shutdown = shutdown;
                let _ = shutdown.wait_for(|s| *s).await;
            }
        }
        scrape.abort();
        let _ = scrape.await;
    }
}

/// Prometheus' `ExponentialBuckets`.
fn exponential_buckets(start: f64, factor: f64, count: usize) -> Vec<f64> {
    let mut v = Vec::with_capacity(count);
    let mut b = start;
    for _ in 0..count {
        v.push(b);
        b *= factor;
    }
    v
}
