//! `ferrokube network`: the per-node pod network daemon (what flanneld with the host-gw
//! backend is in a flannel cluster), and `ferrokube network apply`, one pass from a Node
//! list file instead of the API server (for nodes set up by hand, and for tests run with
//! `ip netns exec`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use ferrokube_client::ClientFlags;
use ferrokube_cni::{Cidr, NetworkOptions, NodeNetwork, SyncOutcome};

const VERSION: &str = concat!("v1.33.0-ferrokube.", env!("CARGO_PKG_VERSION"));

/// Flags every form of the command shares.
#[derive(Args, Debug, Clone)]
pub struct NodeFlags {
    /// This node's name (its Node object's metadata.name).
    #[arg(long, value_name = "NAME", required = true)]
    pub node_name: Option<String>,
    /// The cluster's pod CIDRs (the controller-manager's --cluster-cidr), comma-separated,
    /// at most one per IP family; IPv4 required.
    #[arg(long, value_name = "CIDR", required = true, value_parser = parse_cidrs)]
    pub cluster_cidr: Option<CidrList>,
    /// containerd's CNI configuration directory, where the conflist is written.
    #[arg(long, value_name = "DIR", default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
    /// Our state directory (host-local IPAM leases under networks/).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/ferrokube/cni")]
    pub data_dir: PathBuf,
    /// The pods' Linux bridge.
    #[arg(long, value_name = "NAME", default_value = ferrokube_cni::conflist::BRIDGE_NAME)]
    pub bridge: String,
}

/// `--cluster-cidr`'s value (one flag, comma-separated: clap must not see a `Vec`).
#[derive(Debug, Clone)]
pub struct CidrList(pub Vec<Cidr>);

fn parse_cidrs(s: &str) -> Result<CidrList, String> {
    ferrokube_cni::parse_cidr_list(s)
        .map(CidrList)
        .map_err(|e| e.to_string())
}

impl NodeFlags {
    fn options(&self) -> anyhow::Result<NetworkOptions> {
        let node_name = self.node_name.clone().context("--node-name is required")?;
        let cluster_cidr = self
            .cluster_cidr
            .clone()
            .context("--cluster-cidr is required")?
            .0;
        let mut opts = NetworkOptions::new(node_name, cluster_cidr);
        opts.conf_dir = self.cni_conf_dir.clone();
        opts.data_dir = self.data_dir.clone();
        opts.bridge = self.bridge.clone();
        Ok(opts)
    }
}

#[derive(Args, Debug, Clone)]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct NetworkArgs {
    #[command(subcommand)]
    pub action: Option<NetworkAction>,
    #[command(flatten)]
    pub client: ClientFlags,
    #[command(flatten)]
    pub node: NodeFlags,
    /// How often routes, tables and the conflist are reapplied without Node changes.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub resync_period: u64,
}

#[derive(Subcommand, Debug, Clone)]
pub enum NetworkAction {
    /// One pass from a Node list (`kubectl get nodes -o json`) instead of the API server:
    /// conflist, forwarding, nftables tables and routes, then exit.
    Apply(ApplyArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub node: NodeFlags,
    /// The Nodes, as JSON (a NodeList, a v1 List or one Node).
    #[arg(long, value_name = "FILE")]
    pub nodes_file: PathBuf,
}

pub async fn run(args: NetworkArgs) -> anyhow::Result<()> {
    if let Some(NetworkAction::Apply(apply)) = args.action {
        return run_apply(apply).await;
    }
    let mut opts = args.node.options()?;
    opts.resync_period = Duration::from_secs(args.resync_period);
    opts.validate()?;
    let client = args
        .client
        .client("ferrokube-network", VERSION)
        .await
        .context("building the API client")?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut daemon = tokio::spawn(ferrokube_cni::run(client, opts, stop));
    tokio::select! {
        signal = crate::server::wait_for_signal() => {
            signal?;
            tracing::info!("ferrokube network: shutting down");
            let _ = stop_tx.send(true);
            daemon.await.context("the pod network task")??;
        }
        // The daemon ends by itself only on an error.
        result = &mut daemon => result.context("the pod network task")??,
    }
    Ok(())
}

async fn run_apply(args: ApplyArgs) -> anyhow::Result<()> {
    let opts = args.node.options()?;
    let text = tokio::fs::read_to_string(&args.nodes_file)
        .await
        .with_context(|| format!("--nodes-file {}", args.nodes_file.display()))?;
    let nodes = NodeNetwork::list_from_json(&text)
        .with_context(|| format!("--nodes-file {}", args.nodes_file.display()))?;
    match ferrokube_cni::sync(&opts, &nodes).await? {
        SyncOutcome::WaitingForPodCidr => anyhow::bail!(
            "node {:?} in --nodes-file {} has no spec.podCIDRs",
            opts.node_name,
            args.nodes_file.display()
        ),
        SyncOutcome::Synced(report) => {
            let cidrs: Vec<String> = report.pod_cidrs.iter().map(ToString::to_string).collect();
            println!(
                "node {}: podCIDRs {}; conflist {}; routes: {} replaced, {} deleted, {} nodes unreachable",
                opts.node_name,
                cidrs.join(","),
                if report.conflist_written {
                    "written"
                } else {
                    "unchanged"
                },
                report.routes.replaced.len(),
                report.routes.deleted.len(),
                report.routes.unreachable.len()
            );
            Ok(())
        }
    }
}
