//! `ferrokube controller-manager` (or `kube-controller-manager`): the controllers with
//! kube-controller-manager's flags as the seeds pass them, leader election on the
//! `kube-system/kube-controller-manager` Lease, and the secure port (10257) with
//! /healthz and /metrics behind delegated authentication and authorization.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ferrokube_client::{ClientFlags, LeaderElectionFlags};
use ferrokube_component_base::{DelegatedAuthFlags, Handler, SecureServer, SecureServingFlags};
use ferrokube_controllers::{Cidr, ClientBuilder, ControllerConfig};

use crate::duration::parse_go_duration;

const VERSION: &str = concat!("v1.33.0-ferrokube.", env!("CARGO_PKG_VERSION"));

#[derive(Args, Debug, Clone)]
pub struct ControllerManagerArgs {
    #[command(flatten)]
    pub client: ClientFlags,
    #[command(flatten)]
    pub leader_election: LeaderElectionFlags,
    #[command(flatten)]
    pub serving: SecureServingFlags,
    #[command(flatten)]
    pub auth: DelegatedAuthFlags,
    /// Controllers to enable: '*' enables all on-by-default controllers, 'foo' enables
    /// the controller named 'foo', '-foo' disables it (canonical names or aliases).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// Each controller uses its own service account's credentials
    /// (kube-system/<controller>), so RBAC's system:controller:* roles apply.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub use_service_account_credentials: bool,
    /// PEM CA certificate the csrsigning controller issues kubernetes.io/* certificates with.
    #[arg(long, value_name = "FILE")]
    pub cluster_signing_cert_file: Option<PathBuf>,
    /// PEM private key of --cluster-signing-cert-file.
    #[arg(long, value_name = "FILE")]
    pub cluster_signing_key_file: Option<PathBuf>,
    /// The longest validity of issued certificates.
    #[arg(long, value_parser = parse_go_duration, default_value = "8760h0m0s")]
    pub cluster_signing_duration: Duration,
    /// Root CA published to every namespace as ConfigMap kube-root-ca.crt.
    #[arg(long, value_name = "FILE")]
    pub root_ca_file: Option<PathBuf>,
    /// PEM private key for signing legacy service-account tokens.
    #[arg(long, value_name = "FILE")]
    pub service_account_private_key_file: Option<PathBuf>,
    /// CIDR range(s) for pods (comma-separated, one per IP family).
    #[arg(long, value_delimiter = ',')]
    pub cluster_cidr: Vec<Cidr>,
    /// Allocate each node a podCIDR from --cluster-cidr.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub allocate_node_cidrs: bool,
    /// Mask size of node CIDRs (default 24 for IPv4, 64 for IPv6).
    #[arg(long)]
    pub node_cidr_mask_size: Option<u8>,
    /// CIDR range(s) of Service cluster IPs.
    #[arg(long, value_delimiter = ',')]
    pub service_cluster_ip_range: Vec<Cidr>,
    /// Name of the cluster (instance prefix).
    #[arg(long, default_value = "kubernetes")]
    pub cluster_name: String,
    #[arg(long, default_value_t = 5)]
    pub concurrent_deployment_syncs: usize,
    #[arg(long, default_value_t = 5)]
    pub concurrent_replicaset_syncs: usize,
    #[arg(long, default_value_t = 5)]
    pub concurrent_rc_syncs: usize,
    #[arg(long, default_value_t = 5)]
    pub concurrent_statefulset_syncs: usize,
    #[arg(long, default_value_t = 2)]
    pub concurrent_daemonset_syncs: usize,
    #[arg(long, default_value_t = 5)]
    pub concurrent_job_syncs: usize,
    #[arg(long, default_value_t = 5)]
    pub concurrent_cron_job_syncs: usize,
    #[arg(long, default_value_t = 20)]
    pub concurrent_gc_syncs: usize,
    #[arg(long, default_value_t = 10)]
    pub concurrent_namespace_syncs: usize,
    #[arg(long, default_value_t = 5)]
    pub concurrent_serviceaccount_token_syncs: usize,
    #[arg(long, default_value_t = 5)]
    pub concurrent_service_endpoint_syncs: usize,
    #[arg(long, default_value_t = 5)]
    pub concurrent_resource_quota_syncs: usize,
    #[arg(long, default_value_t = 5)]
    pub concurrent_ttl_after_finished_syncs: usize,
    #[arg(long, default_value_t = 5)]
    pub concurrent_horizontal_pod_autoscaler_syncs: usize,
    /// Service load-balancer syncs (the cloud service controller is not part of
    /// ferrokube; accepted for the seeds' units).
    #[arg(long, default_value_t = 1)]
    pub concurrent_service_syncs: usize,
    #[arg(long, value_parser = parse_go_duration, default_value = "5s")]
    pub node_monitor_period: Duration,
    #[arg(long, value_parser = parse_go_duration, default_value = "40s")]
    pub node_monitor_grace_period: Duration,
    #[arg(long, value_parser = parse_go_duration, default_value = "1m0s")]
    pub node_startup_grace_period: Duration,
    #[arg(long, default_value_t = 12500)]
    pub terminated_pod_gc_threshold: usize,
    #[arg(long, value_parser = parse_go_duration, default_value = "15s")]
    pub horizontal_pod_autoscaler_sync_period: Duration,
    #[arg(long, value_parser = parse_go_duration, default_value = "5m0s")]
    pub namespace_sync_period: Duration,
    /// Profiling via /debug/pprof (accepted; ferrokube serves no pprof).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "true")]
    pub profiling: bool,
    /// Log verbosity (upstream's klog level; RUST_LOG decides here).
    #[arg(long = "v", hide = true)]
    pub verbosity: Option<u32>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub logtostderr: Option<String>,
}

impl ControllerManagerArgs {
    fn config(&self) -> anyhow::Result<ControllerConfig> {
        anyhow::ensure!(
            !self.allocate_node_cidrs || !self.cluster_cidr.is_empty(),
            "--allocate-node-cidrs requires --cluster-cidr"
        );
        anyhow::ensure!(
            self.cluster_signing_cert_file.is_some() == self.cluster_signing_key_file.is_some(),
            "--cluster-signing-cert-file and --cluster-signing-key-file must be given together"
        );
        for (flag, path) in [
            (
                "--cluster-signing-cert-file",
                &self.cluster_signing_cert_file,
            ),
            ("--cluster-signing-key-file", &self.cluster_signing_key_file),
            ("--root-ca-file", &self.root_ca_file),
            (
                "--service-account-private-key-file",
                &self.service_account_private_key_file,
            ),
        ] {
            if let Some(p) = path {
                std::fs::metadata(p)
                    .with_context(|| format!("{flag} {}: cannot read", p.display()))?;
            }
        }
        if let Some(m) = self.node_cidr_mask_size {
            for c in &self.cluster_cidr {
                let max = if c.addr.is_ipv4() { 32 } else { 128 };
                anyhow::ensure!(
                    m >= c.prefix && m <= max,
                    "--node-cidr-mask-size {m}: must be between the --cluster-cidr prefix {} and {max}",
                    c.prefix
                );
            }
        }
        Ok(ControllerConfig {
            concurrent_deployment_syncs: self.concurrent_deployment_syncs,
            concurrent_replicaset_syncs: self.concurrent_replicaset_syncs,
            concurrent_rc_syncs: self.concurrent_rc_syncs,
            concurrent_statefulset_syncs: self.concurrent_statefulset_syncs,
            concurrent_daemonset_syncs: self.concurrent_daemonset_syncs,
            concurrent_job_syncs: self.concurrent_job_syncs,
            concurrent_cron_job_syncs: self.concurrent_cron_job_syncs,
            concurrent_gc_syncs: self.concurrent_gc_syncs,
            concurrent_namespace_syncs: self.concurrent_namespace_syncs,
            concurrent_serviceaccount_token_syncs: self.concurrent_serviceaccount_token_syncs,
            concurrent_service_endpoint_syncs: self.concurrent_service_endpoint_syncs,
            concurrent_resource_quota_syncs: self.concurrent_resource_quota_syncs,
            concurrent_ttl_after_finished_syncs: self.concurrent_ttl_after_finished_syncs,
            concurrent_horizontal_pod_autoscaler_syncs: self
                .concurrent_horizontal_pod_autoscaler_syncs,
            cluster_signing_cert_file: self.cluster_signing_cert_file.clone(),
            cluster_signing_key_file: self.cluster_signing_key_file.clone(),
            cluster_signing_duration: self.cluster_signing_duration,
            root_ca_file: self.root_ca_file.clone(),
            service_account_private_key_file: self.service_account_private_key_file.clone(),
            cluster_cidr: self.cluster_cidr.clone(),
            allocate_node_cidrs: self.allocate_node_cidrs,
            node_cidr_mask_size: self.node_cidr_mask_size,
            service_cluster_ip_range: self.service_cluster_ip_range.clone(),
            node_monitor_period: self.node_monitor_period,
            node_monitor_grace_period: self.node_monitor_grace_period,
            node_startup_grace_period: self.node_startup_grace_period,
            terminated_pod_gc_threshold: self.terminated_pod_gc_threshold,
            horizontal_pod_autoscaler_sync_period: self.horizontal_pod_autoscaler_sync_period,
            namespace_sync_period: self.namespace_sync_period,
        })
    }
}

pub async fn run(args: ControllerManagerArgs) -> anyhow::Result<()> {
    let enabled = ferrokube_controllers::enabled_controllers(&args.controllers)
        .map_err(anyhow::Error::msg)?;
    let config = Arc::new(args.config()?);
    let client_config = args
        .client
        .config("kube-controller-manager", VERSION)
        .context("--kubeconfig")?;
    let client = client_config
        .build()
        .await
        .context("building the API client")?;
    let builder = if args.use_service_account_credentials {
        let base = client_config
            .kube_config()
            .await
            .context("building the API client")?;
        ClientBuilder::service_accounts(
            client.clone(),
            base,
            client_config.qps.map(|q| (q, client_config.burst)),
        )
    } else {
        ClientBuilder::root(client.clone())
    };

    let (_serving_stop, serving_shutdown) = tokio::sync::watch::channel(false);
    let auth = args
        .auth
        .build("kube-controller-manager", VERSION)
        .await
        .context("delegated authentication")?;
    let registry = ferrokube_component_base::Registry::default();
    ferrokube_controllers::workqueue::install_metrics(&registry);
    let handler = Handler::new(auth)
        .with_metrics(registry)
        .with_health(ferrokube_component_base::HealthChecks::default());
    if let Some(addr) = args.serving.bind_addr(10257) {
        let cert = args.serving.serving_cert("kube-controller-manager")?;
        let server = SecureServer::bind(addr, cert, handler).await?;
        tokio::spawn(server.run(serving_shutdown));
    }

    crate::leader::run_elected(client, &args.leader_election, move |stop| async move {
        let _informers =
            ferrokube_controllers::start_controllers(&builder, config, &enabled, stop.clone())
                .await?;
        let mut stop = stop;
        let _ = stop.wait_for(|s| *s).await;
        Ok(())
    })
    .await
}
