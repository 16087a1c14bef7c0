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
///
/// With `rotateCertificates` and a kubeconfig that uses
/// `<cert-dir>/kubelet-client-current.pem` (as TLS bootstrap writes it), the client
/// certificate is renewed before it expires and the kubelet restarts in-process with
/// the new one (pods keep running and are adopted).
pub async fn start(
    args: &KubeletArgs,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let config = match &args.config {
        Some(path) => KubeletConfig::load(path)?,
        None => KubeletConfig::defaults()?,
    };
    let machine_hostname = ferrokube_kubelet::host::hostname();
    // As upstream's nodeutil.GetHostname: --hostname-override is the node's name and
    // its Hostname address.
    let node_name = args
        .hostname_override
        .clone()
        .map(|h| h.trim().to_ascii_lowercase())
        .unwrap_or_else(|| machine_hostname.clone());
    let hostname = node_name.clone();
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
            &mut stop.clone(),
        )
        .await
        .context("TLS bootstrap")?;
    }
    let node_ip = args
        .node_ip
        .unwrap_or_else(|| ferrokube_kubelet::host::default_node_ip(&machine_hostname));
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
    let rotate =
        config.rotate_certificates && uses_current_client_cert(&kubeconfig, &args.cert_dir);
    if config.rotate_certificates && !rotate {
        tracing::warn!(kubeconfig = %kubeconfig.display(), "rotateCertificates: the kubeconfig does not use <cert-dir>/kubelet-client-current.pem; the client certificate is not rotated");
    }
    let instance = Instance {
        opts,
        config,
        kubeconfig,
        endpoint,
        rotate,
    };
    // The first start's errors (no runtime, bad credentials) are the caller's.
    let first = instance.build(stop.clone()).await?;
    Ok(tokio::spawn(instance.supervise(first, stop)))
}

/// Whether the kubeconfig's client certificate is the cert dir's current pair.
fn uses_current_client_cert(kubeconfig: &std::path::Path, cert_dir: &std::path::Path) -> bool {
    let current = ferrokube_kubelet::certificate::current_path(cert_dir, "kubelet-client");
    kube::config::Kubeconfig::read_from(kubeconfig).is_ok_and(|kc| {
        kc.auth_infos.iter().any(|a| {
            a.auth_info
                .as_ref()
                .and_then(|i| i.client_certificate.as_deref())
                .is_some_and(|c| std::path::Path::new(c) == current)
        })
    })
}

/// What a kubelet is (re)started from.
struct Instance {
    opts: KubeletOptions,
    config: KubeletConfig,
    kubeconfig: PathBuf,
    endpoint: String,
    rotate: bool,
}

/// A running kubelet: its stop switch, its task and (when rotating) the signal that
/// a new client certificate is in place.
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    rotated: tokio::sync::watch::Receiver<bool>,
}

impl Instance {
    /// Builds the client from the kubeconfig (reading the certificate now) and starts
    /// a kubelet with it, stopping when `outer` or its own switch turns true.
    async fn build(&self, outer: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<Running> {
        let client = ferrokube_client::ClientConfig::new(&self.kubeconfig, "kubelet", VERSION)
            .rate_limit(self.config.kube_api_qps, self.config.kube_api_burst)?
            .build()
            .await
            .context("building the API client")?;
        let (stop, own) = tokio::sync::watch::channel(false);
        // The kubelet stops on either switch.
        let mut outer_watch = outer.clone();
        let forward = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = outer_watch.wait_for(|s| *s) => { let _ = forward.send(true); }
                () = forward.closed() => {}
            }
        });
        let (rotated_tx, rotated) = tokio::sync::watch::channel(false);
        if self.rotate {
            let dir = self.opts.cert_dir.clone();
            let in_use = std::fs::read(ferrokube_kubelet::certificate::current_path(
                &dir,
                "kubelet-client",
            ))
            .unwrap_or_default();
            let req = ferrokube_kubelet::certificate::Request::client(&self.opts.node_name);
            tokio::spawn(ferrokube_kubelet::certificate::keep_current(
                client.clone(),
                req,
                dir,
                move |pem| {
                    if pem != in_use.as_slice() {
                        let _ = rotated_tx.send(true);
                    }
                },
                own.clone(),
            ));
        }
        let kubelet = Kubelet::new(
            self.opts.clone(),
            self.config.clone(),
            client,
            &self.endpoint,
            own,
        )
        .await?;
        let task = tokio::spawn(async move {
            if let Err(e) = kubelet.run().await {
                tracing::error!(error = %e, "kubelet stopped");
            }
        });
        Ok(Running {
            stop,
            task,
            rotated,
        })
    }

    /// Runs until `stop`; restarts the kubelet whenever its client certificate rotated.
    async fn supervise(self, first: Running, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut running = first;
        loop {
            let rotated = tokio::select! {
                _ = stop.wait_for(|s| *s) => false,
                r = running.rotated.wait_for(|r| *r), if self.rotate => r.is_ok(),
                _ = &mut running.task => false,
            };
            let _ = running.stop.send(true);
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(10), &mut running.task).await;
            if !rotated || *stop.borrow() {
                return;
            }
            tracing::info!("client certificate rotated; restarting the kubelet with it");
            running = loop {
                match self.build(stop.clone()).await {
                    Ok(r) => break r,
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "restarting the kubelet; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                            _ = stop.wait_for(|s| *s) => return,
                        }
                    }
                }
            };
        }
    }
}
