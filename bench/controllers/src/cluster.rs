//! What the control-plane benchmarks share: a `ferrokube server` (API server and
//! embedded store only) in a temporary directory, the scheduler and controller-manager
//! as separate processes of the same release binary (so their memory is measured on
//! its own), simulated Node objects, and a watch counting bound pods.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;

/// A running cluster; every process is killed on drop.
pub struct Cluster {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    pub pki: PathBuf,
    pub client: kube::Client,
    procs: Vec<Child>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// The release `ferrokube` binary next to this benchmark's executable.
pub fn ferrokube_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .context("benchmark executable has no directory")?
        .join("ferrokube");
    anyhow::ensure!(
        bin.is_file(),
        "{} not found: build it first (cargo build --release -p ferrokube)",
        bin.display()
    );
    Ok(bin)
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Resident memory of a process in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

impl Cluster {
    /// Starts `ferrokube server` without its in-process components.
    pub async fn start() -> anyhow::Result<Cluster> {
        let bin = ferrokube_binary()?;
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let server = Command::new(&bin)
            .args(["server", "--data-dir"])
            .arg(dir.path())
            .args([
                "--secure-port",
                &port.to_string(),
                "--disable-scheduler",
                "--disable-controller-manager",
                "--disable-agent",
            ])
            .env("FERROKUBE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let kubeconfig = dir.path().join("admin.kubeconfig");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            anyhow::ensure!(Instant::now() < deadline, "the server did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
            if !kubeconfig.is_file() {
                continue;
            }
            let Ok(kc) = kube::config::Kubeconfig::read_from(&kubeconfig) else {
                continue;
            };
            let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
            let client = kube::Client::try_from(config)?;
            if client.apiserver_version().await.is_ok() {
                break client;
            }
        };
        Ok(Cluster {
            pki: dir.path().join("pki"),
            _dir: dir,
            bin,
            client,
            procs: vec![server],
        })
    }

    fn spawn(&mut self, args: Vec<String>) -> anyhow::Result<u32> {
        let child = Command::new(&self.bin)
            .args(&args)
            .env("FERROKUBE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let pid = child.id();
        self.procs.push(child);
        Ok(pid)
    }

    /// Starts `ferrokube scheduler` (no leader election, no secure port); its pid.
    pub fn scheduler(&mut self) -> anyhow::Result<u32> {
        let kc = self.pki.join("kube-scheduler.kubeconfig");
        self.spawn(vec![
            "scheduler".into(),
            format!("--kubeconfig={}", kc.display()),
            "--secure-port=0".into(),
            "--leader-elect=false".into(),
            "--kube-api-qps=5000".into(),
            "--kube-api-burst=10000".into(),
        ])
    }

    /// Starts `ferrokube controller-manager` as the seed runs it (service-account
    /// credentials, its QPS 1000/2000), with `controllers`; its pid.
    pub fn controller_manager(&mut self, controllers: &str) -> anyhow::Result<u32> {
        let kc = self.pki.join("kube-controller-manager.kubeconfig");
        self.spawn(vec![
            "controller-manager".into(),
            format!("--kubeconfig={}", kc.display()),
            "--secure-port=0".into(),
            "--leader-elect=false".into(),
            "--use-service-account-credentials".into(),
            "--kube-api-qps=1000".into(),
            "--kube-api-burst=2000".into(),
            format!("--controllers={controllers}"),
        ])
    }

    /// Registers `n` Ready nodes (no kubelet) with `cpu` cores and 110 pods each.
    pub async fn create_nodes(&self, n: usize, cpu: u32) -> anyhow::Result<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        stream::iter(0..n)
            .map(|i| {
                let api = api.clone();
                async move {
                    let node: Node = serde_json::from_value(json!({
                        "metadata": {"name": format!("node-{i}"), "labels": {"kubernetes.io/hostname": format!("node-{i}")}},
                        "status": {
                            "capacity": {"cpu": cpu.to_string(), "memory": "64Gi", "pods": "110"},
                            "allocatable": {"cpu": cpu.to_string(), "memory": "64Gi", "pods": "110"},
                            "conditions": [{"type": "Ready", "status": "True"}]
                        }
                    }))?;
                    api.create(&PostParams::default(), &node).await?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(32)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// A counter of pods that are bound (spec.nodeName set), fed by a watch.
    pub fn count_bound(&self) -> Arc<AtomicUsize> {
        let count = Arc::new(AtomicUsize::new(0));
        let api: Api<Pod> = Api::all(self.client.clone());
        let c = count.clone();
        tokio::spawn(async move {
            let mut bound = std::collections::HashSet::new();
            let mut s = Box::pin(watcher(api, watcher::Config::default()).default_backoff());
            while let Some(ev) = s.next().await {
                let pod = match ev {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
                    _ => continue,
                };
                if pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some()
                    && bound.insert(pod.metadata.uid.clone().unwrap_or_default())
                {
                    c.store(bound.len(), Ordering::Relaxed);
                }
            }
        });
        count
    }
}

/// Waits until `count` reaches `target` or `limit` passes; the time taken.
pub async fn wait_for(
    count: &AtomicUsize,
    target: usize,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    while count.load(Ordering::Relaxed) < target {
        anyhow::ensure!(
            start.elapsed() < limit,
            "only {} of {target} after {limit:?}",
            count.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(start.elapsed())
}
