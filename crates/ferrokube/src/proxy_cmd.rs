//! `ferrokube proxy` (also run as `kube-proxy`): the node's Service proxy, with the
//! seeds' `--config=/etc/kubernetes/kube-proxy-config.yaml` or upstream's flags; a
//! flag given on the command line wins over the file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ferrokube_proxy::{Mode, ProxyConfig};

const VERSION: &str = concat!("v1.33.0-ferrokube.", env!("CARGO_PKG_VERSION"));

#[derive(Args, Debug, Clone)]
pub struct ProxyArgs {
    /// A KubeProxyConfiguration file (kubeproxy.config.k8s.io/v1alpha1).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The kubeconfig with the API server's address and kube-proxy's credentials
    /// (overrides clientConnection.kubeconfig).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// QPS towards the API server (overrides clientConnection.qps).
    #[arg(long, value_name = "QPS", allow_negative_numbers = true)]
    pub kube_api_qps: Option<f32>,
    /// Burst towards the API server (overrides clientConnection.burst).
    #[arg(long, value_name = "N")]
    pub kube_api_burst: Option<i32>,
    /// This node's name, as the kubelet registered it (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub hostname_override: Option<String>,
    /// iptables, nftables or ipvs (where the kernel has no IPVS, ipvs runs as nftables).
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub proxy_mode: Option<Mode>,
    /// The pod CIDR(s): traffic to Services from outside them is masqueraded.
    #[arg(long, value_name = "CIDR")]
    pub cluster_cidr: Option<String>,
    /// Masquerade all traffic sent to Service cluster IPs.
    #[arg(long)]
    pub masquerade_all: bool,
    /// Where /healthz and /livez are served (empty: off).
    #[arg(long, value_name = "IP:PORT")]
    pub healthz_bind_address: Option<String>,
    /// Where /metrics is served (empty: off).
    #[arg(long, value_name = "IP:PORT")]
    pub metrics_bind_address: Option<String>,
    /// How often the rules are checked (iptables and nftables modes).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub iptables_sync_period: Option<Duration>,
    /// The shortest time between two syncs (iptables and nftables modes).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub iptables_min_sync_period: Option<Duration>,
    /// The IPVS scheduler (rr, wrr, lc, …).
    #[arg(long, value_name = "NAME")]
    pub ipvs_scheduler: Option<String>,
    /// Remove every rule kube-proxy made (all modes) and exit.
    #[arg(long)]
    pub cleanup: bool,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::parse(s)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    ferrokube_proxy::config::parse_duration(s)
}

fn socket(flag: &str, v: &str) -> anyhow::Result<Option<SocketAddr>> {
    if v.is_empty() {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .with_context(|| format!("{flag} {v:?}: expected IP:PORT"))
}

impl ProxyArgs {
    /// The configuration file (or defaults) with the flags applied.
    pub fn resolve(&self) -> anyhow::Result<ProxyConfig> {
        let mut c = match &self.config {
            Some(path) => ProxyConfig::load(path)?,
            None => ProxyConfig::default(),
        };
        if let Some(k) = &self.kubeconfig {
            c.kubeconfig = Some(k.clone());
        }
        if let Some(q) = self.kube_api_qps {
            c.qps = q;
        }
        if let Some(b) = self.kube_api_burst {
            c.burst = b;
        }
        if let Some(h) = &self.hostname_override {
            c.hostname_override = Some(h.clone());
        }
        if let Some(m) = self.proxy_mode {
            c.mode = m;
        }
        if let Some(cidr) = &self.cluster_cidr {
            c.cluster_cidrs = ferrokube_cni::parse_cidr_list(cidr)
                .map_err(|e| anyhow::anyhow!("--cluster-cidr {cidr:?}: {e}"))?;
        }
        if self.masquerade_all {
            c.masquerade_all = true;
        }
        if let Some(a) = &self.healthz_bind_address {
            c.healthz_bind_address = socket("--healthz-bind-address", a)?;
        }
        if let Some(a) = &self.metrics_bind_address {
            c.metrics_bind_address = socket("--metrics-bind-address", a)?;
        }
        if let Some(d) = self.iptables_sync_period {
            anyhow::ensure!(
                !d.is_zero(),
                "--iptables-sync-period must be greater than 0"
            );
            c.sync_period = d;
        }
        if let Some(d) = self.iptables_min_sync_period {
            c.min_sync_period = d;
        }
        anyhow::ensure!(
            c.min_sync_period <= c.sync_period,
            "the minimum sync period ({:?}) must not exceed the sync period ({:?})",
            c.min_sync_period,
            c.sync_period
        );
        if let Some(s) = &self.ipvs_scheduler {
            c.ipvs_scheduler = s.clone();
        }
        Ok(c)
    }
}

/// The node name kube-proxy matches endpoints against (upstream lower-cases it).
pub fn node_name(config: &ProxyConfig) -> String {
    config
        .hostname_override
        .clone()
        .unwrap_or_else(ferrokube_client::leaderelection::hostname)
        .trim()
        .to_lowercase()
}

/// Builds the API client from the configuration.
pub async fn client(config: &ProxyConfig) -> anyhow::Result<kube::Client> {
    let kubeconfig = config
        .kubeconfig
        .clone()
        .context("no kubeconfig: give --kubeconfig or clientConnection.kubeconfig")?;
    Ok(
        ferrokube_client::kubeconfig::ClientConfig::new(kubeconfig, "kube-proxy", VERSION)
            .rate_limit(config.qps, config.burst)?
            .build()
            .await?,
    )
}

pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    if args.cleanup {
        let errors = ferrokube_proxy::backend::cleanup_all().await;
        anyhow::ensure!(errors.is_empty(), "cleanup: {}", errors.join("; "));
        return Ok(());
    }
    let config = args.resolve()?;
    let client = client(&config).await?;
    let node = node_name(&config);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let proxy = ferrokube_proxy::start(config, client, node, stopped).await?;
    if let Some(a) = proxy.healthz_addr {
        tracing::info!(address = %a, "serving /healthz");
    }
    if let Some(a) = proxy.metrics_addr {
        tracing::info!(address = %a, "serving /metrics");
    }
    crate::server::wait_for_signal().await?;
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), proxy.task).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProxyArgs,
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kube-proxy-config.yaml");
        std::fs::write(
            &path,
            "kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nmode: ipvs\nclusterCIDR: 172.30.0.0/16\nhostnameOverride: Node-1\n",
        )
        .unwrap();
        let cli = Cli::parse_from([
            "kube-proxy",
            "--config",
            path.to_str().unwrap(),
            "--proxy-mode",
            "nftables",
            "--metrics-bind-address",
            "",
        ]);
        let c = cli.args.resolve().unwrap();
        assert_eq!(c.mode, Mode::Nftables);
        assert_eq!(c.cluster_cidrs[0].to_string(), "172.30.0.0/16");
        assert!(c.metrics_bind_address.is_none());
        assert_eq!(node_name(&c), "node-1");
        let bad = Cli::parse_from(["kube-proxy", "--healthz-bind-address", "nowhere"]);
        let err = format!("{:#}", bad.args.resolve().unwrap_err());
        assert!(err.contains("--healthz-bind-address"), "{err}");
        assert!(Cli::try_parse_from(["kube-proxy", "--proxy-mode", "userspace"]).is_err());
    }
}
