//! `ferrokube kubelet` (or `kubelet`): the node agent with the seeds' flags —
//! `--kubeconfig`, `--config` (KubeletConfiguration), `--hostname-override`,
//! `--container-runtime-endpoint`, `--root-dir`, `--node-ip` — running pods through
//! containerd's CRI.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ferrokube_kubelet::{Kubelet, KubeletConfig, KubeletOptions};

pub(crate) const VERSION: &str = concat!("v1.33.0-ferrokube.", env!("CARGO_PKG_VERSION"));

#[derive(Args, Debug, Clone)]
pub struct KubeletArgs {
    /// The kubeconfig with this node's credentials.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig used to request this node's client certificate when
    /// `--kubeconfig` does not exist yet (TLS bootstrap).
    #[arg(long, value_name = "FILE")]
    pub bootstrap_kubeconfig: Option<PathBuf>,
    /// Where the bootstrapped client certificates go.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/kubelet/pki")]
    pub cert_dir: PathBuf,
    /// The KubeletConfiguration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The node's name instead of the host name.
    #[arg(long, value_name = "NAME")]
    pub hostname_override: Option<String>,
    /// The CRI endpoint (containerd's socket).
    #[arg(
        long,
        value_name = "URL",
        default_value = "unix:///run/containerd/containerd.sock"
    )]
    pub container_runtime_endpoint: String,
    /// The kubelet's state directory (pod volumes under pods/<uid>/).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/kubelet")]
    pub root_dir: PathBuf,
    /// The node's InternalIP (found from the host name or default route when absent).
    #[arg(long, value_name = "IP")]
    pub node_ip: Option<std::net::IpAddr>,
    /// Where container logs are written (KubeletConfiguration podLogsDir).
    #[arg(long, value_name = "DIR", default_value = "/var/log/pods", hide = true)]
    pub pod_logs_dir: PathBuf,
    /// Log verbosity (upstream's klog level; RUST_LOG decides here).
    #[arg(long = "v", hide = true)]
    pub verbosity: Option<u32>,
}

pub async fn run(args: KubeletArgs) -> anyhow::Result<()> {
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let running = start(&args, stop).await?;
    crate::server::wait_for_signal().await?;
    tracing::info!("kubelet: shutting down");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), running).await;
    Ok(())
}

/// Loads the configuration, bootstraps credentials if needed, connects to the runtime
/// and starts the kubelet as a task that ends when `stop` turns true. Shared by
/// `ferrokube kubelet`, `server` and `agent`.
pub async fn start(
    args: &KubeletArgs,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let config = match &args.config {
        Some(path) => KubeletConfig::load(path)?,
        None => KubeletConfig::defaults()?,
    };
    let hostname = ferrokube_kubelet::host::hostname();
    let node_name = args
        .hostname_override
        .clone()
        .map(|h| h.trim().to_ascii_lowercase())
        .unwrap_or_else(|| hostname.clone());
    let kubeconfig = args
        .kubeconfig
        .clone()
        .context("--kubeconfig is required")?;
    if !kubeconfig.exists() {
        let bootstrap = args.bootstrap_kubeconfig.as_ref().with_context(|| {
            format!(
                "--kubeconfig {} does not exist and no --bootstrap-kubeconfig was given",
                kubeconfig.display()
            )
        })?;
        ferrokube_kubelet::bootstrap::load_client_cert(
            &kubeconfig,
            bootstrap,
            &args.cert_dir,
            &node_name,
        )
        .await
        .context("TLS bootstrap")?;
    }
    let client = ferrokube_client::ClientConfig::new(&kubeconfig, "kubelet", VERSION)
        .rate_limit(config.kube_api_qps, config.kube_api_burst)?
        .build()
        .await
        .context("building the API client")?;
    let node_ip = args
        .node_ip
        .unwrap_or_else(|| ferrokube_kubelet::host::default_node_ip(&hostname));
    let endpoint = config
        .container_runtime_endpoint
        .clone()
        .unwrap_or_else(|| args.container_runtime_endpoint.clone());
    let opts = KubeletOptions {
        node_name,
        hostname,
        node_ip,
        root_dir: args.root_dir.clone(),
        pod_logs_dir: args.pod_logs_dir.clone(),
        cert_dir: args.cert_dir.clone(),
    };
    let kubelet = Kubelet::new(opts, config, client, &endpoint, stop).await?;
    Ok(tokio::spawn(async move {
        if let Err(e) = kubelet.run().await {
            tracing::error!(error = %e, "kubelet stopped");
        }
    }))
}
