//! The benchmark's machine: a `ferrokube server` (and an `agent`) in a temporary
//! directory, with their own containerd, bridge and a cluster CIDR in 198.18.0.0/15;
//! everything they ran is removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use ferrokube_containerd::{daemon, oci, testimage};
use k8s_openapi::api::core::v1::Node;
use kube::Api;

pub const IMAGE: &str = testimage::BUSYBOX_IMAGE;
pub const SERVER_NODE: &str = "bench-server";
pub const AGENT_NODE: &str = "bench-agent";
const CLUSTER_CIDR: &str = "198.18.64.0/18";

/// The busybox test image as an OCI archive (Debian's busybox-static).
pub fn busybox_archive() -> anyhow::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let rootfs = dir.path().join("rootfs");
    testimage::busybox_rootfs(&rootfs).map_err(|e| {
        anyhow::anyhow!(
            "{e} (install busybox-static, containerd, runc and containernetworking-plugins)"
        )
    })?;
    let entries = oci::entries_from_dir(&rootfs)?;
    Ok(oci::build_archive(IMAGE, &entries, &testimage::busybox_image_config())?.bytes)
}

pub struct Lab {
    dir: tempfile::TempDir,
    bin: PathBuf,
    image: Vec<u8>,
    port: u16,
    bridge: String,
    procs: Vec<Child>,
}

impl Lab {
    pub fn new(bin: &Path, image: &[u8]) -> anyhow::Result<Lab> {
        Ok(Lab {
            dir: tempfile::tempdir()?,
            bin: bin.to_path_buf(),
            image: image.to_vec(),
            port: crate::cluster::free_port()?,
            bridge: format!("fkbn{}", std::process::id() % 10_000),
            procs: Vec::new(),
        })
    }

    fn spawn(&mut self, name: &str, args: &[String]) -> anyhow::Result<u32> {
        let dir = self.dir.path().join(name);
        let images = dir.join("agent/images");
        std::fs::create_dir_all(&images)?;
        std::fs::write(images.join("busybox.tar"), &self.image)?;
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log")))?;
        let child = Command::new(&self.bin)
            .args(args)
            .arg("--data-dir")
            .arg(&dir)
            .args([
                "--cluster-cidr",
                CLUSTER_CIDR,
                "--cni-bridge",
                &self.bridge,
                "--node-ip",
                "127.0.0.1",
                "--kubelet-port",
                &crate::cluster::free_port()?.to_string(),
                "--kubelet-healthz-port",
                &crate::cluster::free_port()?.to_string(),
            ])
            .env(
                "FERROKUBE_LOG",
                if std::env::var_os("BENCH_NODE_LOGS").is_some() {
                    "info"
                } else {
                    "warn"
                },
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let pid = child.id();
        self.procs.push(child);
        Ok(pid)
    }

    /// Starts `ferrokube server` with `extra` flags; its pid.
    pub fn server(&mut self, extra: &[&str]) -> anyhow::Result<u32> {
        let mut args: Vec<String> = vec![
            "server".into(),
            "--secure-port".into(),
            self.port.to_string(),
            "--node-name".into(),
            SERVER_NODE.into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        self.spawn("server", &args)
    }

    /// Starts `ferrokube agent` joining the server; its pid.
    pub fn agent(&mut self) -> anyhow::Result<u32> {
        let token = std::fs::read_to_string(self.dir.path().join("server/node-token"))
            .context("the server's node-token")?;
        let args = vec![
            "agent".into(),
            "--server".into(),
            format!("https://127.0.0.1:{}", self.port),
            "--token".into(),
            token.trim().to_string(),
            "--node-name".into(),
            AGENT_NODE.into(),
        ];
        self.spawn("agent", &args)
    }

    /// The admin client, once the API server answers.
    pub async fn client(&self, limit: Duration) -> anyhow::Result<kube::Client> {
        let kubeconfig = self.dir.path().join("server/admin.kubeconfig");
        let deadline = Instant::now() + limit;
        loop {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the server did not start; its log: {}",
                self.dir.path().join("server.log").display()
            );
            if let Ok(kc) = kube::config::Kubeconfig::read_from(&kubeconfig) {
                let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
                let client = kube::Client::try_from(config)?;
                if client.apiserver_version().await.is_ok() {
                    return Ok(client);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until Node `name` is Ready.
    pub async fn wait_ready(
        &self,
        client: &kube::Client,
        name: &str,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let api: Api<Node> = Api::all(client.clone());
        let deadline = Instant::now() + limit;
        loop {
            let ready = api.get_opt(name).await.ok().flatten().is_some_and(|n| {
                n.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
            if ready {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "node {name} not Ready after {limit:?}; logs in {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// RSS of the containerd processes this lab started.
    pub fn containerd_rss_mib(&self) -> f64 {
        let out = Command::new("pgrep")
            .args([
                "-f",
                &format!("containerd --config {}", self.dir.path().display()),
            ])
            .output();
        out.map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .map(crate::cluster::rss_mib)
                .sum()
        })
        .unwrap_or_default()
    }
}

/// CPU time of the processes this lab started, by role, in seconds: what each has used
/// plus what its reaped children used (runc under the shims, the CNI plugins under
/// containerd). Shims are found by their containerd socket, which is under the lab's dir.
pub fn cpu_by_role(lab: &Lab) -> std::collections::BTreeMap<&'static str, f64> {
    let dir = lab.dir.path().display().to_string();
    let mut out = std::collections::BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if !cmd.contains(&dir) {
            continue;
        }
        let role = if cmd.contains("containerd-shim") {
            "shims (with runc)"
        } else if cmd.starts_with("containerd ") {
            "containerd (with CNI plugins)"
        } else {
            "ferrokube (server + agent)"
        };
        if let Ok((own, children)) = cpu_times(pid) {
            *out.entry(role).or_insert(0.0) += own + children;
        }
    }
    out
}

/// Busy CPU seconds of the whole machine (all cores) since boot.
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (v.iter().sum::<f64>() - idle) / clock_ticks()
}

fn clock_ticks() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(100.0)
    })
}

/// CPU time (user + system) a process has used, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    Ok(cpu_times(pid)?.0)
}

/// (own, reaped children's) CPU seconds of a process.
fn cpu_times(pid: u32) -> anyhow::Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("malformed /proc stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let hz = clock_ticks();
    // After "pid (comm)": state is field 0, utime 11, stime 12, cutime 13, cstime 14.
    Ok(((ticks(11) + ticks(12)) / hz, (ticks(13) + ticks(14)) / hz))
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Freeze the kubelets, remove every container while the runtimes answer, then
        // stop everything and undo mounts and the bridge.
        for p in &self.procs {
            let _ = Command::new("kill")
                .args(["-STOP", &p.id().to_string()])
                .status();
        }
        for name in ["server", "agent"] {
            let socket = self
                .dir
                .path()
                .join(name)
                .join("agent/containerd/containerd.sock");
            if socket.exists() {
                if let Err(e) = daemon::remove_all_tasks(&socket) {
                    eprintln!("removing the containers of {name}: {e}");
                }
            }
        }
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
        let _ = Command::new("pkill")
            .args(["-f", &self.dir.path().display().to_string()])
            .status();
        daemon::unmount_under(self.dir.path());
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        if let Some(keep) = std::env::var_os("BENCH_NODE_LOGS") {
            // Keep the logs for a look: BENCH_NODE_LOGS=<dir>.
            let _ = std::fs::create_dir_all(&keep);
            for name in ["server", "agent"] {
                let _ = std::fs::copy(
                    self.dir.path().join(format!("{name}.log")),
                    Path::new(&keep).join(format!("{name}.log")),
                );
                let _ = std::fs::copy(
                    self.dir
                        .path()
                        .join(name)
                        .join("agent/containerd/containerd.log"),
                    Path::new(&keep).join(format!("{name}-containerd.log")),
                );
            }
        }
    }
}
