//! ferrokube's kubelet: registers its Node, reports status and heartbeats, and runs the
//! pods bound to it through a CRI runtime (containerd + runc), as upstream's
//! `pkg/kubelet`. The pieces: [`config`] (KubeletConfiguration), [`host`] (machine
//! facts), [`node`] (registration, status, lease), [`pods`] (the pod workers and the
//! relist that wakes them), [`runtime`] (CRI sandbox and container configs),
//! [`volumes`], [`status`] (pod status as upstream computes it), [`events`].

pub mod bootstrap;
pub mod certificate;
pub mod cgroups;
pub mod config;
pub mod events;
pub mod eviction;
pub mod host;
mod image_gc;
pub mod log_rotation;
pub mod node;
pub mod pods;
pub mod probes;
pub mod runtime;
pub mod server;
pub mod static_pods;
pub mod status;
pub mod volumes;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ferrokube_cri::{v1 as cri, CallExt, Runtime};
use parking_lot::Mutex;
use tokio::sync::watch;

pub use config::KubeletConfig;

/// What went wrong starting the kubelet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("container runtime: {0}")]
    Runtime(#[from] ferrokube_cri::Error),
    #[error("registering node {node}: {source}")]
    Register {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("running with swap on is not supported, please disable swap or set failSwapOn: false")]
    SwapOn,
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where and as whom the kubelet runs (flags, after defaulting).
#[derive(Debug, Clone)]
pub struct KubeletOptions {
    /// The Node's name (`--hostname-override` or the host name).
    pub node_name: String,
    /// The Hostname address reported.
    pub hostname: String,
    /// The InternalIP reported (`--node-ip` or found).
    pub node_ip: IpAddr,
    /// `--root-dir`: pod volumes and state under `pods/<uid>/`.
    pub root_dir: PathBuf,
    /// Where container logs go (`podLogsDir`, /var/log/pods by default).
    pub pod_logs_dir: PathBuf,
    /// `--cert-dir`: the self-signed serving pair `kubelet.crt`/`kubelet.key` when no
    /// `tlsCertFile` is configured.
    pub cert_dir: PathBuf,
}

/// The running kubelet: shared by its tasks.
pub struct Kubelet {
    pub opts: KubeletOptions,
    pub config: KubeletConfig,
    /// The machine's facts, read once at start (as upstream's cadvisor MachineInfo).
    pub host: host::HostInfo,
    pub client: kube::Client,
    pub cri: Runtime,
    /// `containerd://1.6.20` as the runtime reports itself.
    pub runtime_version: String,
    /// Image names and sizes, refreshed by the relist.
    pub images: Mutex<Vec<(Vec<String>, i64)>>,
    /// Bound service-account tokens of projected volumes.
    pub tokens: volumes::TokenCache,
    pub events: events::Events,
    pub stop: watch::Receiver<bool>,
    /// When this kubelet started (ns since the epoch): the node's startTime in stats.
    pub started_ns: i64,
    /// The pressure conditions the last eviction pass found.
    pub pressure: Mutex<Vec<eviction::Pressure>>,
    /// The runtime's image filesystem (CRI ImageFsInfo), as the eviction loop last
    /// learned it: the `imagefs.*` signals are observed there.
    pub image_fs: Mutex<Option<std::path::PathBuf>>,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field("node", &self.opts.node_name)
            .finish()
    }
}

impl Kubelet {
    /// Connects to the runtime and builds the kubelet (nothing runs yet).
    pub async fn new(
        opts: KubeletOptions,
        config: KubeletConfig,
        client: kube::Client,
        runtime_endpoint: &str,
        stop: watch::Receiver<bool>,
    ) -> Result<Arc<Kubelet>, Error> {
        if config.fail_swap_on && host::swap_on() {
            return Err(Error::SwapOn);
        }
        for dir in [&opts.root_dir, &opts.pod_logs_dir] {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                what: "creating",
                path: dir.clone(),
                source,
            })?;
        }
        let cri = Runtime::connect(runtime_endpoint).await?;
        let version = cri
            .runtime
            .clone()
            .version(cri::VersionRequest {
                version: "v1".into(),
            })
            .await
            .call("Version")?;
        let runtime_version = format!("{}://{}", version.runtime_name, version.runtime_version);
        tracing::info!(runtime = %runtime_version, api = %version.runtime_api_version, "connected to the container runtime");
        let events = events::Events::new(client.clone(), &opts.node_name);
        Ok(Arc::new(Kubelet {
            opts,
            config,
            host: host::HostInfo::read(),
            client,
            cri,
            runtime_version,
            images: Mutex::new(Vec::new()),
            tokens: volumes::TokenCache::default(),
            events,
            stop,
            started_ns: host::now_ns(),
            pressure: Mutex::new(Vec::new()),
            image_fs: Mutex::new(None),
        }))
    }

    /// Whether the runtime and its network are ready, as the Ready condition reports
    /// it (`Err` carries upstream's NotReady message).
    pub async fn runtime_ready(&self) -> Result<(), String> {
        let status = self
            .cri
            .runtime
            .clone()
            .status(cri::StatusRequest { verbose: false })
            .await
            .call("Status")
            .map_err(|e| format!("container runtime is down: {e}"))?;
        let conds = status.status.map(|s| s.conditions).unwrap_or_default();
        let find = |t: &str| conds.iter().find(|c| c.r#type == t);
        for (kind, what) in [
            (
                "RuntimeReady",
                "container runtime status check may not have completed yet",
            ),
            ("NetworkReady", "container runtime network not ready"),
        ] {
            match find(kind) {
                Some(c) if c.status => {}
                Some(c) => {
                    return Err(if kind == "NetworkReady" {
                        format!(
                            "{what}: NetworkReady=false reason:{} message:{}",
                            c.reason, c.message
                        )
                    } else {
                        format!(
                            "container runtime not ready: RuntimeReady=false reason:{} message:{}",
                            c.reason, c.message
                        )
                    })
                }
                None => return Err(format!("{what}: {kind} missing")),
            }
        }
        Ok(())
    }

    /// Resolves once the kubelet is told to stop. Unlike a `wait_for` on `stop` in a
    /// `select!` arm, it holds no watch guard across the other arms' awaits.
    pub async fn stopped(&self) {
        let mut stop = self.stop.clone();
        let _ = stop.wait_for(|s| *s).await;
    }

    /// The runtime's containers, those `filter` selects when given.
    pub async fn list_containers(
        &self,
        filter: Option<cri::ContainerFilter>,
    ) -> Result<Vec<cri::Container>, ferrokube_cri::Error> {
        Ok(self
            .cri
            .runtime
            .clone()
            .list_containers(cri::ListContainersRequest { filter })
            .await
            .call("ListContainers")?
            .containers)
    }

    /// The runtime's status of a container (`None` if it is gone or CRI fails).
    pub async fn container_status(&self, id: &str) -> Option<cri::ContainerStatus> {
        self.cri
            .runtime
            .clone()
            .container_status(cri::ContainerStatusRequest {
                container_id: id.to_string(),
                verbose: false,
            })
            .await
            .call("ContainerStatus")
            .ok()
            .and_then(|r| r.status)
    }

    /// Registers the node and runs everything until `stop`.
    pub async fn run(self: Arc<Self>) -> Result<(), Error> {
        // As upstream, a port that cannot be bound is logged, not fatal to the pods.
        match server::start(self.clone(), &self.opts.cert_dir).await {
            Ok(Some(addr)) => tracing::info!(%addr, "kubelet server started"),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "kubelet server not started"),
        }
        if let Err(e) = server::start_healthz(self.clone()).await {
            tracing::error!(error = %e, "kubelet healthz server not started");
        }
        let node = loop {
            match self.register().await {
                Ok(n) => break n,
                Err(e) => {
                    tracing::warn!(error = %e, "unable to register node, retrying");
                    let mut stop = self.stop.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                        _ = stop.wait_for(|s| *s) => return Ok(()),
                    }
                }
            }
        };
        let status = tokio::spawn(self.clone().run_status(node.clone()));
        let lease = tokio::spawn(self.clone().run_lease(node));
        let pods = tokio::spawn(pods::run(self.clone()));
        let logs = tokio::spawn(log_rotation::run(self.clone()));
        let eviction = tokio::spawn(eviction::run(self.clone()));
        let _ = tokio::join!(status, lease, pods, logs, eviction);
        Ok(())
    }
}
