//! The node half of `ferrokube server` and `ferrokube agent`: containerd (started under
//! the data directory unless a runtime endpoint is given), the images dropped in
//! `<data-dir>/images/`, the pod network daemon and the kubelet, as tasks of this
//! process. Everything this machine's node needs lives under one directory:
//!
//! ```text
//! <dir>/containerd/   containerd's config, root, state and socket (when we run it)
//! <dir>/cni/          the CNI conflist (net.d/) and IPAM leases
//! <dir>/images/       *.tar archives imported at start (k3s's airgap images)
//! <dir>/kubelet/      the kubelet's root dir (pods/<uid>/volumes)
//! <dir>/pod-logs/     container logs (upstream's /var/log/pods)
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use ferrokube_containerd::daemon::{Containerd, DaemonConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The node flags `server` and `agent` share.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeFlags {
    /// The pod network range (`server`: node podCIDRs are allocated from it).
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// Use this CRI endpoint (`unix:///run/containerd/containerd.sock`) instead of
    /// starting containerd under `<data-dir>/agent/containerd`.
    #[arg(long, value_name = "URL")]
    pub container_runtime_endpoint: Option<String>,
    /// The CNI conf dir of the runtime given with --container-runtime-endpoint.
    #[arg(long, value_name = "DIR", requires = "container_runtime_endpoint")]
    pub cni_conf_dir: Option<PathBuf>,
    /// This node's name (default: the host name, lower-cased).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// This node's InternalIP (default: found from the host name or default route).
    #[arg(long, value_name = "IP")]
    pub node_ip: Option<IpAddr>,
    /// The pods' Linux bridge (change it to run several nodes on one host).
    #[arg(long, value_name = "NAME", default_value = ferrokube_cni::conflist::BRIDGE_NAME)]
    pub cni_bridge: String,
    /// The kubelet's HTTPS port (logs, exec, port-forward through the API server).
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// The kubelet's plain healthz port on 127.0.0.1.
    #[arg(long, default_value_t = 10248)]
    pub kubelet_healthz_port: u16,
    /// The kubelet's KubeletConfiguration file (default: upstream's defaults with
    /// failSwapOn false and, as k3s, 5 % disk eviction thresholds).
    #[arg(long, value_name = "FILE")]
    pub kubelet_config: Option<PathBuf>,
    /// How Services reach their endpoints on this node: nftables, iptables or ipvs
    /// (ipvs runs as nftables where the kernel has no IPVS).
    #[arg(long, value_name = "MODE", default_value = "nftables", value_parser = parse_proxy_mode)]
    pub proxy_mode: ferrokube_proxy::Mode,
    /// A KubeProxyConfiguration file for the node's kube-proxy (its mode wins over
    /// --proxy-mode; clusterCIDR and hostnameOverride default to this node's).
    #[arg(long, value_name = "FILE")]
    pub kube_proxy_config: Option<PathBuf>,
    /// Do not run kube-proxy on this node (Services then need another proxy).
    #[arg(long)]
    pub disable_kube_proxy: bool,
    /// The cluster DNS address pods are given (the kubelet's clusterDNS; default:
    /// `.10` of the Service range, 10.43.0.10 for an agent).
    #[arg(long, value_name = "IP")]
    pub cluster_dns: Option<IpAddr>,
    /// The cluster's DNS domain.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
}

fn parse_proxy_mode(s: &str) -> Result<ferrokube_proxy::Mode, String> {
    ferrokube_proxy::Mode::parse(s)
}

impl NodeFlags {
    /// `--node-name`, trimmed and lower-cased, or the host name.
    pub fn node_name(&self) -> String {
        self.node_name
            .clone()
            .map(|n| n.trim().to_ascii_lowercase())
            .unwrap_or_else(ferrokube_kubelet::host::hostname)
    }

    /// `--node-ip`, or the address the kubelet would pick (host name, default route).
    pub fn node_ip_or_default(&self) -> IpAddr {
        self.node_ip.unwrap_or_else(|| {
            ferrokube_kubelet::host::default_node_ip(&ferrokube_kubelet::host::hostname())
        })
    }

    /// The agent's options: state in `dir`, credentials in `kubeconfig` (bootstrapped
    /// with `bootstrap_kubeconfig` when given), client certificates checked against
    /// `client_ca_file`.
    pub fn options(
        &self,
        dir: PathBuf,
        node_name: String,
        kubeconfig: PathBuf,
        bootstrap_kubeconfig: Option<PathBuf>,
        client_ca_file: PathBuf,
        cluster_dns: Option<IpAddr>,
    ) -> anyhow::Result<NodeAgentOptions> {
        let proxy = if self.disable_kube_proxy {
            None
        } else {
            let mut c = match &self.kube_proxy_config {
                Some(path) => ferrokube_proxy::ProxyConfig::load(path)?,
                None => ferrokube_proxy::ProxyConfig {
                    mode: self.proxy_mode,
                    ..Default::default()
                },
            };
            if c.cluster_cidrs.is_empty() {
                c.cluster_cidrs = ferrokube_cni::parse_cidr_list(&self.cluster_cidr)
                    .with_context(|| format!("--cluster-cidr {}", self.cluster_cidr))?;
            }
            c.hostname_override.get_or_insert_with(|| node_name.clone());
            Some(c)
        };
        Ok(NodeAgentOptions {
            dir,
            runtime_endpoint: self.container_runtime_endpoint.clone(),
            cni_conf_dir: self.cni_conf_dir.clone(),
            node_name,
            node_ip: self.node_ip,
            cluster_cidr: self.cluster_cidr.clone(),
            bridge: self.cni_bridge.clone(),
            kubeconfig,
            bootstrap_kubeconfig,
            kubelet_config: self.kubelet_config.clone(),
            client_ca_file,
            kubelet_port: self.kubelet_port,
            kubelet_healthz_port: self.kubelet_healthz_port,
            proxy,
            cluster_dns,
            cluster_domain: self.cluster_domain.clone(),
        })
    }
}

/// What the node runs with.
#[derive(Debug, Clone)]
pub struct NodeAgentOptions {
    /// The node's state directory (layout above).
    pub dir: PathBuf,
    /// An existing CRI endpoint; `None` runs containerd under `<dir>/containerd`.
    pub runtime_endpoint: Option<String>,
    /// CNI conf dir of that existing runtime (ours uses `<dir>/cni/net.d`).
    pub cni_conf_dir: Option<PathBuf>,
    pub node_name: String,
    pub node_ip: Option<IpAddr>,
    /// The cluster's pod range (`--cluster-cidr`), for masquerade and routes.
    pub cluster_cidr: String,
    /// The pods' Linux bridge (`cni0`).
    pub bridge: String,
    /// The node's credentials (written by TLS bootstrap when it does not exist).
    pub kubeconfig: PathBuf,
    /// A bootstrap kubeconfig (`agent`). With one, the generated kubelet
    /// configuration also sets `rotateCertificates` and `serverTLSBootstrap`.
    pub bootstrap_kubeconfig: Option<PathBuf>,
    /// A KubeletConfiguration file; without one, upstream's defaults with
    /// `failSwapOn: false` (as k3s) and `clientCAFile` below.
    pub kubelet_config: Option<PathBuf>,
    /// The cluster CA the kubelet checks client certificates (the API server's) with.
    pub client_ca_file: PathBuf,
    /// The kubelet's HTTPS port (10250) and healthz port (10248), when no
    /// `kubelet_config` is given.
    pub kubelet_port: u16,
    pub kubelet_healthz_port: u16,
    /// The node's kube-proxy (none: not run).
    pub proxy: Option<ferrokube_proxy::ProxyConfig>,
    /// The kubelet's clusterDNS (none: pods get the host's resolv.conf).
    pub cluster_dns: Option<IpAddr>,
    pub cluster_domain: String,
}

/// The running node: stop it with [`NodeAgent::stop`].
pub struct NodeAgent {
    containerd: Option<Containerd>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The CRI socket the kubelet talks to.
    pub socket: PathBuf,
}

impl NodeAgentOptions {
    fn containerd_dir(&self) -> PathBuf {
        self.dir.join("containerd")
    }

    fn conf_dir(&self) -> PathBuf {
        self.cni_conf_dir
            .clone()
            .unwrap_or_else(|| self.dir.join("cni").join("net.d"))
    }
}

/// Starts (or, when it already answers, reuses) our containerd under `<dir>/containerd`.
fn start_containerd(opts: &NodeAgentOptions) -> anyhow::Result<(Option<Containerd>, PathBuf)> {
    let dir = opts.containerd_dir();
    let socket = dir.join("containerd.sock");
    if ferrokube_containerd::daemon::running(&socket) {
        tracing::info!(socket = %socket.display(), "containerd already running; using it");
        return Ok((None, socket));
    }
    let config = DaemonConfig::new(&dir, &socket, opts.conf_dir());
    let daemon = Containerd::start(config).with_context(|| {
        format!(
            "starting containerd under {} (install containerd and runc, or pass \
             --container-runtime-endpoint)",
            dir.display()
        )
    })?;
    Ok((Some(daemon), socket))
}

/// Imports the pause image and every `*.tar` in `<dir>/images/` not imported since it
/// last changed (a `<name>.tar.imported` marker records that).
fn import_images(socket: &Path, dir: &Path) -> anyhow::Result<()> {
    ferrokube_containerd::import::ensure_pause_image(socket)
        .context("importing the pause image")?;
    let images = dir.join("images");
    let Ok(entries) = std::fs::read_dir(&images) else {
        return Ok(());
    };
    let mut archives: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    archives.sort();
    for archive in archives {
        let marker = archive.with_extension("tar.imported");
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if let (Some(done), Some(changed)) = (modified(&marker), modified(&archive)) {
            if done >= changed {
                continue;
            }
        }
        match ferrokube_containerd::import::import_file(socket, &archive) {
            Ok(names) => {
                tracing::info!(archive = %archive.display(), images = ?names, "imported");
                let _ = std::fs::write(&marker, names.join("\n"));
            }
            Err(e) => {
                tracing::warn!(archive = %archive.display(), error = %e, "image import failed")
            }
        }
    }
    Ok(())
}

/// The node's kube-proxy, with the node's credentials (`system:nodes` is bound to
/// `system:node-proxier`). Its health and metrics ports are best effort here: when
/// another process holds them, the proxy runs without them.
async fn start_proxy(
    config: ferrokube_proxy::ProxyConfig,
    client: kube::Client,
    node: &str,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let node = config
        .hostname_override
        .clone()
        .unwrap_or_else(|| node.to_string());
    match ferrokube_proxy::start(config.clone(), client.clone(), node.clone(), stop.clone()).await {
        Ok(p) => Ok(p.task),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(error = %e, "kube-proxy's healthz/metrics ports are taken; running without them");
            let config = ferrokube_proxy::ProxyConfig {
                healthz_bind_address: None,
                metrics_bind_address: None,
                ..config
            };
            Ok(ferrokube_proxy::start(config, client, node, stop)
                .await?
                .task)
        }
        Err(e) => Err(e.into()),
    }
}

impl NodeAgent {
    /// Brings the node up: runtime, images, pod network and kubelet.
    pub async fn start(opts: NodeAgentOptions) -> anyhow::Result<NodeAgent> {
        let cidrs = ferrokube_cni::parse_cidr_list(&opts.cluster_cidr)
            .with_context(|| format!("--cluster-cidr {}", opts.cluster_cidr))?;
        std::fs::create_dir_all(&opts.dir)
            .with_context(|| format!("creating {}", opts.dir.display()))?;
        let (containerd, socket) = match &opts.runtime_endpoint {
            Some(endpoint) => (
                None,
                PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint)),
            ),
            None => {
                let o = opts.clone();
                tokio::task::spawn_blocking(move || start_containerd(&o))
                    .await
                    .context("starting containerd")??
            }
        };
        let (s, d) = (socket.clone(), opts.dir.clone());
        tokio::task::spawn_blocking(move || import_images(&s, &d))
            .await
            .context("importing images")??;
        let (stop, stopped) = watch::channel(false);
        let mut agent = NodeAgent {
            containerd,
            stop,
            tasks: Vec::new(),
            socket: socket.clone(),
        };
        let mut argv = vec![
            format!("--kubeconfig={}", opts.kubeconfig.display()),
            format!("--container-runtime-endpoint=unix://{}", socket.display()),
            format!("--root-dir={}", opts.dir.join("kubelet").display()),
            format!(
                "--cert-dir={}",
                opts.dir.join("kubelet").join("pki").display()
            ),
            format!("--pod-logs-dir={}", opts.dir.join("pod-logs").display()),
            format!("--hostname-override={}", opts.node_name),
        ];
        if let Some(ip) = opts.node_ip {
            argv.push(format!("--node-ip={ip}"));
        }
        if let Some(b) = &opts.bootstrap_kubeconfig {
            argv.push(format!("--bootstrap-kubeconfig={}", b.display()));
        }
        let config = match &opts.kubelet_config {
            Some(c) => c.clone(),
            None => {
                let path = opts.dir.join("kubelet-config.yaml");
                let manifests = opts.dir.join("manifests");
                std::fs::create_dir_all(&manifests)
                    .with_context(|| format!("creating {}", manifests.display()))?;
                let ca = serde_json::to_string(&opts.client_ca_file.display().to_string())
                    .unwrap_or_default();
                std::fs::write(
                    &path,
                    format!(
                        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
                         # written by ferrokube at every start; pass --kubelet-config to use your own\n\
                         failSwapOn: false\ncgroupDriver: cgroupfs\nclusterDomain: {}\n{}\
                         # disk thresholds for a machine that is also a workstation, as k3s sets them\n\
                         evictionHard: {{memory.available: 100Mi, nodefs.available: 5%, nodefs.inodesFree: 5%, imagefs.available: 5%}}\n\
                         authentication:\n  anonymous: {{enabled: false}}\n  webhook: {{enabled: true}}\n  \
                         x509: {{clientCAFile: {ca}}}\nauthorization: {{mode: Webhook}}\n\
                         port: {}\nhealthzPort: {}\nstaticPodPath: {}\n{}",
                        serde_json::to_string(&opts.cluster_domain).unwrap_or_default(),
                        opts.cluster_dns
                            .map(|ip| format!("clusterDNS: [\"{ip}\"]\n"))
                            .unwrap_or_default(),
                        opts.kubelet_port,
                        opts.kubelet_healthz_port,
                        serde_json::to_string(&manifests.display().to_string())
                            .unwrap_or_default(),
                        if opts.bootstrap_kubeconfig.is_some() {
                            "rotateCertificates: true\nserverTLSBootstrap: true\n"
                        } else {
                            ""
                        }
                    ),
                )
                .with_context(|| format!("writing {}", path.display()))?;
                path
            }
        };
        argv.push(format!("--config={}", config.display()));
        let args: crate::kubelet_cmd::KubeletArgs =
            crate::server::component_args("kubelet", &argv)?;
        let kubelet = match crate::kubelet_cmd::start(&args, stopped.clone()).await {
            Ok(k) => k,
            Err(e) => {
                agent.stop().await;
                return Err(e);
            }
        };
        agent.tasks.push(kubelet);
        // The pod network runs with the node's own credentials (written by TLS
        // bootstrap when the kubelet started).
        let network_client = match ferrokube_client::ClientConfig::new(
            &opts.kubeconfig,
            "ferrokube-network",
            crate::kubelet_cmd::VERSION,
        )
        .build()
        .await
        {
            Ok(c) => c,
            Err(e) => {
                agent.stop().await;
                return Err(anyhow::Error::from(e).context("building the pod network's API client"));
            }
        };
        let mut net = ferrokube_cni::NetworkOptions::new(opts.node_name.clone(), cidrs);
        net.conf_dir = opts.conf_dir();
        net.data_dir = opts.dir.join("cni");
        net.bridge = opts.bridge.clone();
        let stopped_net = stopped.clone();
        let proxy_client = network_client.clone();
        agent.tasks.push(tokio::spawn(async move {
            if let Err(e) = ferrokube_cni::run(network_client, net, stopped_net).await {
                tracing::error!(error = %e, "pod network stopped");
            }
        }));
        if let Some(config) = opts.proxy.clone() {
            match start_proxy(config, proxy_client, &opts.node_name, stopped.clone()).await {
                Ok(task) => agent.tasks.push(task),
                Err(e) => {
                    agent.stop().await;
                    return Err(e.context("starting kube-proxy"));
                }
            }
        }
        Ok(agent)
    }

    /// Stops the kubelet and the network daemon, then our containerd. Containers keep
    /// running (their shims outlive containerd) and are adopted at the next start.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        if let Some(mut c) = self.containerd.take() {
            let _ = tokio::task::spawn_blocking(move || c.stop()).await;
        }
    }
}
