//! `ferrokube scheduler` (or `kube-scheduler`): the scheduler with kube-scheduler's flags
//! and `--config` (kubescheduler.config.k8s.io/v1 KubeSchedulerConfiguration), leader
//! election on the `kube-system/kube-scheduler` Lease, and the secure port (10259) with
//! /healthz and /metrics behind delegated authentication and authorization.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ferrokube_client::{ClientFlags, LeaderElectionFlags};
use ferrokube_component_base::{DelegatedAuthFlags, Handler, SecureServer, SecureServingFlags};
use serde::Deserialize;

const VERSION: &str = concat!("v1.33.0-ferrokube.", env!("CARGO_PKG_VERSION"));

#[derive(Args, Debug, Clone)]
pub struct SchedulerArgs {
    /// KubeSchedulerConfiguration file (its clientConnection and leaderElection override
    /// the flags, as upstream).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientFlags,
    #[command(flatten)]
    pub leader_election: LeaderElectionFlags,
    #[command(flatten)]
    pub serving: SecureServingFlags,
    #[command(flatten)]
    pub auth: DelegatedAuthFlags,
    /// Log verbosity (upstream's klog level; RUST_LOG decides here).
    #[arg(long = "v", hide = true)]
    pub verbosity: Option<u32>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub logtostderr: Option<String>,
}

// Every field of upstream's schema is accepted; those ferrokube does not use yet are
// read and ignored (unknown fields are still refused).
#[allow(dead_code)]
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClientConnection {
    #[serde(default)]
    kubeconfig: Option<PathBuf>,
    #[serde(default)]
    qps: Option<f32>,
    #[serde(default)]
    burst: Option<i32>,
    #[serde(default)]
    accept_content_types: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
}

// Every field of upstream's schema is accepted; those ferrokube does not use yet are
// read and ignored (unknown fields are still refused).
#[allow(dead_code)]
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LeaderElectionConfig {
    #[serde(default)]
    leader_elect: Option<bool>,
    #[serde(default)]
    lease_duration: Option<String>,
    #[serde(default)]
    renew_deadline: Option<String>,
    #[serde(default)]
    retry_period: Option<String>,
    #[serde(default)]
    resource_lock: Option<String>,
    #[serde(default)]
    resource_name: Option<String>,
    #[serde(default)]
    resource_namespace: Option<String>,
}

// Every field of upstream's schema is accepted; those ferrokube does not use yet are
// read and ignored (unknown fields are still refused).
#[allow(dead_code)]
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Profile {
    #[serde(default)]
    scheduler_name: Option<String>,
    #[serde(default)]
    plugins: Option<serde_json::Value>,
    #[serde(default)]
    plugin_config: Option<serde_json::Value>,
    #[serde(default)]
    percentage_of_nodes_to_score: Option<u32>,
}

/// kubescheduler.config.k8s.io/v1 KubeSchedulerConfiguration (the fields ferrokube reads;
/// the others are accepted).
// Every field of upstream's schema is accepted; those ferrokube does not use yet are
// read and ignored (unknown fields are still refused).
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SchedulerConfig {
    api_version: String,
    kind: String,
    #[serde(default)]
    client_connection: ClientConnection,
    #[serde(default)]
    leader_election: LeaderElectionConfig,
    #[serde(default)]
    profiles: Vec<Profile>,
    #[serde(default)]
    percentage_of_nodes_to_score: Option<u32>,
    #[serde(default)]
    pod_initial_backoff_seconds: Option<u64>,
    #[serde(default)]
    pod_max_backoff_seconds: Option<u64>,
    #[serde(default)]
    parallelism: Option<u32>,
    #[serde(default)]
    enable_profiling: Option<bool>,
    #[serde(default)]
    enable_contention_profiling: Option<bool>,
    #[serde(default)]
    delay_cache_until_active: Option<bool>,
    #[serde(default)]
    extenders: Option<serde_json::Value>,
}

fn load_config(path: &std::path::Path) -> anyhow::Result<SchedulerConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--config {}: cannot read", path.display()))?;
    let cfg: SchedulerConfig = serde_saphyr::from_str(&text)
        .map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?;
    anyhow::ensure!(
        cfg.api_version == "kubescheduler.config.k8s.io/v1" && cfg.kind == "KubeSchedulerConfiguration",
        "--config {}: expected apiVersion kubescheduler.config.k8s.io/v1 and kind KubeSchedulerConfiguration, got {} {}",
        path.display(),
        cfg.api_version,
        cfg.kind
    );
    if let Some(p) = cfg.percentage_of_nodes_to_score {
        anyhow::ensure!(
            p <= 100,
            "--config {}: percentageOfNodesToScore: Invalid value: {p}: not in valid range [0-100]",
            path.display()
        );
    }
    Ok(cfg)
}

pub async fn run(mut args: SchedulerArgs) -> anyhow::Result<()> {
    // kube-scheduler's own defaults where the shared flags default to the
    // controller-manager's (the Lease name, and client QPS/burst 50/100).
    if args.leader_election.leader_elect_resource_name == "kube-controller-manager" {
        args.leader_election.leader_elect_resource_name = "kube-scheduler".into();
    }
    if args.client.kube_api_qps == 20.0 && args.client.kube_api_burst == 30 {
        args.client.kube_api_qps = 50.0;
        args.client.kube_api_burst = 100;
    }
    let mut profile = ferrokube_scheduler::framework::Profile::default();
    let mut scheduler_name = "default-scheduler".to_string();
    if let Some(path) = args.config.clone() {
        let cfg = load_config(&path)?;
        let cc = cfg.client_connection;
        if let Some(k) = cc.kubeconfig {
            args.client.kubeconfig = Some(k);
        }
        if let Some(q) = cc.qps {
            args.client.kube_api_qps = q;
        }
        if let Some(b) = cc.burst {
            args.client.kube_api_burst = b;
        }
        let le = cfg.leader_election;
        if let Some(v) = le.leader_elect {
            args.leader_election.leader_elect = v;
        }
        if let Some(n) = le.resource_name {
            args.leader_election.leader_elect_resource_name = n;
        }
        if let Some(n) = le.resource_namespace {
            args.leader_election.leader_elect_resource_namespace = n;
        }
        let duration = |field: &str,
                        v: &Option<String>|
         -> anyhow::Result<Option<std::time::Duration>> {
            v.as_deref()
                .map(|d| {
                    ferrokube_client::leaderelection::parse_duration(d).map_err(|e| {
                        anyhow::anyhow!("--config {}: leaderElection.{field}: {e}", path.display())
                    })
                })
                .transpose()
        };
        if let Some(d) = duration("leaseDuration", &le.lease_duration)? {
            args.leader_election.leader_elect_lease_duration = d;
        }
        if let Some(d) = duration("renewDeadline", &le.renew_deadline)? {
            args.leader_election.leader_elect_renew_deadline = d;
        }
        if let Some(d) = duration("retryPeriod", &le.retry_period)? {
            args.leader_election.leader_elect_retry_period = d;
        }
        if let Some(p) = cfg.percentage_of_nodes_to_score {
            profile.percentage_of_nodes_to_score = Some(p as i32);
        }
        if cfg.profiles.len() > 1 {
            tracing::warn!("--config {}: only the first profile is run", path.display());
        }
        if let Some(p) = cfg.profiles.first() {
            if let Some(n) = &p.scheduler_name {
                scheduler_name = n.clone();
            }
            if let Some(pct) = p.percentage_of_nodes_to_score {
                anyhow::ensure!(
                    pct <= 100,
                    "--config {}: profiles[0].percentageOfNodesToScore: Invalid value: {pct}: not in valid range [0-100]",
                    path.display()
                );
                profile.percentage_of_nodes_to_score = Some(pct as i32);
            }
            if let Some(plugins) = &p.plugins {
                ferrokube_scheduler::plugins_config::apply(&mut profile, plugins)
                    .map_err(|e| anyhow::anyhow!("--config {}: profiles[0].{e}", path.display()))?;
            }
        }
    }
    let client = args
        .client
        .client("kube-scheduler", VERSION)
        .await
        .context("building the API client")?;
    let (_serving_stop, shutdown) = tokio::sync::watch::channel(false);

    let health = ferrokube_component_base::HealthChecks::default();
    let registry = ferrokube_component_base::Registry::default();
    let scheduler_metrics = ferrokube_scheduler::metrics::Metrics::register(&registry);
    let auth = args
        .auth
        .build("kube-scheduler", VERSION)
        .await
        .context("delegated authentication")?;
    let handler = Handler::new(auth)
        .with_metrics(registry)
        .with_health(health);
    if let Some(addr) = args.serving.bind_addr(10259) {
        let cert = args.serving.serving_cert("kube-scheduler")?;
        let server = SecureServer::bind(addr, cert, handler).await?;
        tokio::spawn(server.run(shutdown.clone()));
    }

    let runner = ferrokube_scheduler::runner::Runner::new(client.clone(), &scheduler_name, profile)
        .with_metrics(scheduler_metrics);
    crate::leader::run_elected(client, &args.leader_election, move |stop| async move {
        runner.run(stop).await.map_err(anyhow::Error::from)
    })
    .await
}
