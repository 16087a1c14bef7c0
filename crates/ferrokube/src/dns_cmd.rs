//! `ferrokube dns`: the cluster DNS server (what CoreDNS with the `kubernetes`,
//! `forward . /etc/resolv.conf`, `health`, `ready` and `prometheus` plugins is in the
//! seeds' cluster): Service and Pod names of the cluster domain from the API server,
//! everything else forwarded to the host's resolvers.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ferrokube_dns::{Config, Server};

const VERSION: &str = concat!("v1.33.0-ferrokube.", env!("CARGO_PKG_VERSION"));

#[derive(Args, Debug, Clone)]
pub struct DnsArgs {
    /// A kubeconfig with credentials that may list and watch Services and
    /// EndpointSlices (default: $KUBECONFIG, ~/.kube/config, or the in-cluster
    /// service account).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Where to answer, UDP and TCP (repeat the flag for several addresses).
    #[arg(
        long = "listen",
        value_name = "ADDR:PORT",
        default_value = "0.0.0.0:53"
    )]
    pub listen: Vec<SocketAddr>,
    /// The cluster domain (the kubelet's clusterDomain).
    #[arg(long, value_name = "DOMAIN", default_value = ferrokube_dns::DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
    /// A resolver for names outside the cluster domain, `IP` or `IP:PORT` (repeat the
    /// flag for several, tried in order; default: the nameservers of --resolv-conf).
    #[arg(long = "upstream", value_name = "ADDR", value_parser = parse_upstream)]
    pub upstream: Vec<SocketAddr>,
    /// Where the default upstreams are read from when no --upstream is given.
    #[arg(long, value_name = "FILE", default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// TTL of answers, and of negative answers (seconds, at most 3600).
    #[arg(long, value_name = "SECONDS", default_value_t = ferrokube_dns::DEFAULT_TTL)]
    pub ttl: u32,
    /// How long to wait for one upstream before trying the next (Go duration).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = crate::duration::parse_go_duration)]
    pub forward_timeout: Duration,
    /// Plain-HTTP /healthz, /readyz and /metrics (CoreDNS's metrics port); empty to
    /// disable.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:9153", value_parser = parse_health)]
    pub health_bind_address: HealthAddr,
    /// `insecure`: answer `<a-b-c-d>.<ns>.pod.<zone>` with the address it spells
    /// (CoreDNS's `pods insecure`, the kube-dns behaviour); `disabled`: NXDOMAIN.
    #[arg(long, value_name = "MODE", default_value = "insecure", value_parser = ["insecure", "disabled"])]
    pub pods: String,
}

/// `--health-bind-address`: an address, or none.
#[derive(Debug, Clone, Copy)]
pub struct HealthAddr(pub Option<SocketAddr>);

fn parse_health(s: &str) -> Result<HealthAddr, String> {
    if s.trim().is_empty() {
        return Ok(HealthAddr(None));
    }
    s.parse::<SocketAddr>()
        .map(|a| HealthAddr(Some(a)))
        .map_err(|e| format!("{s:?}: {e} (want IP:PORT, or empty to disable)"))
}

fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{s:?}: want IP, IP:PORT or [IPv6]:PORT"))
}

async fn client(args: &DnsArgs) -> anyhow::Result<kube::Client> {
    match &args.kubeconfig {
        Some(path) => Ok(
            ferrokube_client::ClientConfig::new(path, "ferrokube-dns", VERSION)
                .build()
                .await?,
        ),
        None => {
            let config = kube::Config::infer().await.context(
                "--kubeconfig not given, and neither $KUBECONFIG, ~/.kube/config nor an in-cluster service account is usable",
            )?;
            kube::Client::try_from(config).context("building the API client")
        }
    }
}

impl DnsArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let upstreams = if self.upstream.is_empty() {
            match ferrokube_dns::forward::resolv_conf_upstreams(&self.resolv_conf) {
                Ok(u) => u,
                Err(err) => {
                    tracing::warn!(path = %self.resolv_conf.display(), %err, "no upstream resolvers: names outside the cluster domain get SERVFAIL");
                    Vec::new()
                }
            }
        } else {
            self.upstream.clone()
        };
        Ok(Config {
            listen: self.listen.clone(),
            cluster_domain: self.cluster_domain.clone(),
            upstreams,
            ttl: self.ttl,
            health_listen: self.health_bind_address.0,
            forward_timeout: self.forward_timeout,
            pods: self.pods == "insecure",
            ..Config::default()
        }
        .validated()?)
    }
}

pub async fn run(args: DnsArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let client = client(&args).await?;
    let handle = Server::start(config, Some(client)).await?;
    crate::server::wait_for_signal().await?;
    tracing::info!("ferrokube dns: shutting down");
    handle.stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        dns: DnsArgs,
    }

    #[test]
    fn flags_and_defaults() {
        let cli = Cli::try_parse_from(["dns"]).unwrap();
        assert_eq!(
            cli.dns.listen,
            vec!["0.0.0.0:53".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(cli.dns.cluster_domain, "cluster.local");
        assert_eq!(cli.dns.ttl, 30);
        assert!(cli.dns.health_bind_address.0.is_some());
        let cli = Cli::try_parse_from([
            "dns",
            "--listen=127.0.0.1:5300",
            "--listen=[::1]:5300",
            "--upstream=127.0.0.1",
            "--upstream=127.0.0.2:5353",
            "--health-bind-address=",
            "--pods=disabled",
        ])
        .unwrap();
        assert_eq!(cli.dns.listen.len(), 2);
        assert_eq!(
            cli.dns.upstream,
            vec![
                "127.0.0.1:53".parse::<SocketAddr>().unwrap(),
                "127.0.0.2:5353".parse().unwrap()
            ]
        );
        assert!(cli.dns.health_bind_address.0.is_none());
        let config = cli.dns.config().unwrap();
        assert!(!config.pods);
        assert!(Cli::try_parse_from(["dns", "--upstream=nope"]).is_err());
        let bad = Cli::try_parse_from(["dns", "--cluster-domain=a..b"]).unwrap();
        let err = bad.dns.config().unwrap_err().to_string();
        assert!(err.contains("--cluster-domain"), "{err}");
    }
}
