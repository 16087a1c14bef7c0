//! What every controller is started with (upstream `ControllerContext` and the
//! `KubeControllerManagerConfiguration` fields the controllers read).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::events::Recorder;
use crate::informer::Informers;

/// A CIDR such as `10.244.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR address: {s}"))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("invalid CIDR address: {s}"))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| format!("invalid CIDR address: {s}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(format!("invalid CIDR address: {s}"));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The controller-manager's settings the controllers read, with upstream's defaults.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub concurrent_deployment_syncs: usize,
    pub concurrent_replicaset_syncs: usize,
    pub concurrent_rc_syncs: usize,
    pub concurrent_statefulset_syncs: usize,
    pub concurrent_daemonset_syncs: usize,
    pub concurrent_job_syncs: usize,
    pub concurrent_cron_job_syncs: usize,
    pub concurrent_gc_syncs: usize,
    pub concurrent_namespace_syncs: usize,
    pub concurrent_serviceaccount_token_syncs: usize,
    pub concurrent_service_endpoint_syncs: usize,
    pub concurrent_resource_quota_syncs: usize,
    pub concurrent_ttl_after_finished_syncs: usize,
    pub concurrent_horizontal_pod_autoscaler_syncs: usize,
    /// `--cluster-signing-cert-file` / `--cluster-signing-key-file`.
    pub cluster_signing_cert_file: Option<PathBuf>,
    pub cluster_signing_key_file: Option<PathBuf>,
    /// `--cluster-signing-duration` (default 8760h).
    pub cluster_signing_duration: Duration,
    /// `--root-ca-file`: published as `kube-root-ca.crt` in every namespace.
    pub root_ca_file: Option<PathBuf>,
    /// `--service-account-private-key-file` (legacy token signing).
    pub service_account_private_key_file: Option<PathBuf>,
    /// `--cluster-cidr`, `--allocate-node-cidrs`, `--node-cidr-mask-size`.
    pub cluster_cidr: Vec<Cidr>,
    pub allocate_node_cidrs: bool,
    pub node_cidr_mask_size: Option<u8>,
    /// `--service-cluster-ip-range`.
    pub service_cluster_ip_range: Vec<Cidr>,
    /// `--node-monitor-period` (5s), `--node-monitor-grace-period` (40s),
    /// `--node-startup-grace-period` (1m).
    pub node_monitor_period: Duration,
    pub node_monitor_grace_period: Duration,
    pub node_startup_grace_period: Duration,
    /// `--terminated-pod-gc-threshold` (12500).
    pub terminated_pod_gc_threshold: usize,
    /// `--horizontal-pod-autoscaler-sync-period` (15s).
    pub horizontal_pod_autoscaler_sync_period: Duration,
    /// `--namespace-sync-period` (5m).
    pub namespace_sync_period: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            concurrent_deployment_syncs: 5,
            concurrent_replicaset_syncs: 5,
            concurrent_rc_syncs: 5,
            concurrent_statefulset_syncs: 5,
            concurrent_daemonset_syncs: 2,
            concurrent_job_syncs: 5,
            concurrent_cron_job_syncs: 5,
            concurrent_gc_syncs: 20,
            concurrent_namespace_syncs: 10,
            concurrent_serviceaccount_token_syncs: 5,
            concurrent_service_endpoint_syncs: 5,
            concurrent_resource_quota_syncs: 5,
            concurrent_ttl_after_finished_syncs: 5,
            concurrent_horizontal_pod_autoscaler_syncs: 5,
            cluster_signing_cert_file: None,
            cluster_signing_key_file: None,
            cluster_signing_duration: Duration::from_secs(8760 * 3600),
            root_ca_file: None,
            service_account_private_key_file: None,
            cluster_cidr: Vec::new(),
            allocate_node_cidrs: false,
            node_cidr_mask_size: None,
            service_cluster_ip_range: Vec::new(),
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(40),
            node_startup_grace_period: Duration::from_secs(60),
            terminated_pod_gc_threshold: 12500,
            horizontal_pod_autoscaler_sync_period: Duration::from_secs(15),
            namespace_sync_period: Duration::from_secs(300),
        }
    }
}

/// What one controller is started with.
#[derive(Clone)]
pub struct ControllerContext {
    /// The controller's canonical name (e.g. `deployment-controller`).
    pub name: &'static str,
    /// This controller's client: its own service account's credentials with
    /// `--use-service-account-credentials`, else the controller-manager's.
    pub client: kube::Client,
    /// The shared informers (listing with the controller-manager's credentials).
    pub informers: Arc<Informers>,
    /// Events as this controller (`source.component` = its service account name, as
    /// upstream's recorders are named).
    pub recorder: Recorder,
    pub config: Arc<ControllerConfig>,
    /// Flips to `true` when the controller must stop (shutdown or lost leadership).
    pub stop: watch::Receiver<bool>,
}

impl std::fmt::Debug for ControllerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerContext")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
