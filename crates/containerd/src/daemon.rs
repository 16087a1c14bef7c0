//! containerd as ferrokube runs it when the user has none (and as the tests run it): a
//! version 2 `config.toml` with every path under one directory (root, state, the
//! `/opt` plugin dir), the gRPC socket where the caller says, and the CRI plugin set up
//! for ferrokube — our pause image as `sandbox_image`, the caller's CNI config dir, the
//! distribution's CNI plugins, runc through `io.containerd.runc.v2` with cgroupfs
//! (`SystemdCgroup = false`). Then the `containerd --config …` process: logs to a file,
//! ready when `ctr version` answers on the socket, SIGTERM (then SIGKILL) to stop.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::import::ctr;
use crate::Error;

/// Where Debian's containernetworking-plugins and upstream's tarball put the CNI
/// plugins, in the order they are tried.
pub const CNI_BIN_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];
/// The containerd program.
pub const CONTAINERD: &str = "containerd";
/// How long `stop` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The first of [`CNI_BIN_DIRS`] that holds the `loopback` plugin (CRI needs it for
/// every sandbox), else the first that exists.
pub fn find_cni_bin_dir() -> Option<PathBuf> {
    let dirs = CNI_BIN_DIRS.iter().map(PathBuf::from);
    dirs.clone()
        .find(|d| d.join("loopback").is_file())
        .or_else(|| dirs.into_iter().find(|d| d.is_dir()))
}

/// What a containerd ferrokube runs looks like.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Everything lives here: `config.toml`, `containerd.log`, `root/`, `state/`, `opt/`.
    pub dir: PathBuf,
    /// The gRPC socket containerd listens on (the ttrpc one is next to it).
    pub socket: PathBuf,
    /// Where CRI reads CNI network configs (`conf_dir`); created if missing.
    pub cni_conf_dir: PathBuf,
    /// Where the CNI plugin binaries are (`bin_dir`).
    pub cni_bin_dir: PathBuf,
    /// CRI's `sandbox_image`.
    pub sandbox_image: String,
    /// The containerd binary (looked up in `PATH` when relative).
    pub program: PathBuf,
    /// How long `start` waits for the socket to answer.
    pub start_timeout: Duration,
}

impl DaemonConfig {
    /// Defaults: the CNI plugins from [`find_cni_bin_dir`] (else `/opt/cni/bin`), our
    /// pause image, `containerd` from `PATH`, 30 s to start.
    pub fn new(
        dir: impl Into<PathBuf>,
        socket: impl Into<PathBuf>,
        cni_conf_dir: impl Into<PathBuf>,
    ) -> Self {
        DaemonConfig {
            dir: dir.into(),
            socket: socket.into(),
            cni_conf_dir: cni_conf_dir.into(),
            cni_bin_dir: find_cni_bin_dir().unwrap_or_else(|| PathBuf::from(CNI_BIN_DIRS[1])),
            sandbox_image: crate::PAUSE_IMAGE.to_string(),
            program: PathBuf::from(CONTAINERD),
            start_timeout: Duration::from_secs(30),
        }
    }

    /// `DIR/config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// `DIR/containerd.log`: containerd's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    /// The config.toml (version 2) for this daemon.
    pub fn render(&self) -> String {
        let q = |p: &Path| toml_string(&p.to_string_lossy());
        let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            r#"# Written by ferrokube: containerd for the kubelet (CRI), everything under one directory.
version = 2
root = {root}
state = {state}

[grpc]
  address = {socket}

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = {opt}

  [{cri}]
    sandbox_image = {sandbox}
    # The CRI streaming server (exec/attach/port-forward) on loopback, any free port.
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    # Without CAP_SYS_RESOURCE (some sandboxes and VMs) nobody may lower an OOM score,
    # so sandboxes (-998) and Guaranteed pods (-997) would fail to start.
    restrict_oom_score_adj = {restrict_oom}

    [{cri}.cni]
      bin_dir = {cni_bin}
      conf_dir = {cni_conf}
      max_conf_num = 1

    [{cri}.containerd]
      default_runtime_name = "runc"
      snapshotter = "overlayfs"

      [{cri}.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"

        [{cri}.containerd.runtimes.runc.options]
          SystemdCgroup = false
"#,
            root = q(&self.dir.join("root")),
            state = q(&self.dir.join("state")),
            socket = q(&self.socket),
            opt = q(&self.dir.join("opt")),
            sandbox = toml_string(&self.sandbox_image),
            cni_bin = q(&self.cni_bin_dir),
            cni_conf = q(&self.cni_conf_dir),
            restrict_oom = !has_sys_resource(),
        );
        out
    }
}

/// Whether this process has CAP_SYS_RESOURCE (bit 24 of CapEff), which lowering an
/// OOM score adjustment needs.
pub fn has_sys_resource() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether a containerd answers on `socket` (`ctr version` succeeds). Errors, a missing
/// `ctr` included, count as no.
pub fn running(socket: &Path) -> bool {
    matches!(answers(socket), Ok(true))
}

/// Like [`running`], but a missing `ctr` is an error rather than a no.
fn answers(socket: &Path) -> Result<bool, Error> {
    match ctr(socket, &["version"], None) {
        Ok(_) => Ok(true),
        Err(err @ Error::ProgramMissing { .. }) => Err(err),
        Err(_) => Ok(false),
    }
}

/// Kills (SIGKILL) and deletes every task in the `k8s.io` namespace — pod sandboxes,
/// containers, `ctr run` leftovers — so their shims exit and their mounts go away,
/// and removes the pods' `cni-…` network namespaces. Returns how many it removed. For tests and teardown; a kubelet restart must not do it.
pub fn remove_all_tasks(socket: &Path) -> Result<usize, Error> {
    let listing = ctr(socket, &["tasks", "ls", "-q"], None)?;
    let ids: Vec<&str> = listing
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // The pods' network namespaces (/var/run/netns/cni-…), named in the sandboxes'
    // specs: removing tasks by force skips CNI DEL, which would delete them.
    let netns = pod_network_namespaces(socket);
    let mut first_error = None;
    for id in &ids {
        // Already-stopped tasks refuse the kill; delete -f handles both. A task the
        // CRI plugin deleted itself once it exited is "not found", and one whose shim
        // went with its pod's sandbox answers "ttrpc: closed": done too.
        let _ = ctr(
            socket,
            &["tasks", "kill", "--all", "--signal", "SIGKILL", id],
            None,
        );
        match ctr(socket, &["tasks", "delete", "--force", id], None) {
            Ok(_) => {}
            Err(e)
                if ["not found", "ttrpc: closed"]
                    .iter()
                    .any(|m| e.to_string().contains(m)) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    for path in netns {
        let _ = Command::new("umount")
            .args(["-l"])
            .arg(&path)
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(&path);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(ids.len()),
    }
}

/// The network namespace files (`/var/run/netns/cni-…`) of the containers in the
/// runtime at `socket`, from their OCI specs.
fn pod_network_namespaces(socket: &Path) -> Vec<PathBuf> {
    let Ok(listing) = ctr(socket, &["containers", "ls", "-q"], None) else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    for id in listing.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Ok(info) = ctr(socket, &["containers", "info", id], None) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&info) else {
            continue;
        };
        for ns in v["Spec"]["linux"]["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let (Some("network"), Some(path)) = (ns["type"].as_str(), ns["path"].as_str()) {
                let path = PathBuf::from(path);
                let named = path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("cni-"));
                if named && !paths.contains(&path) {
                    paths.push(path);
                }
            }
        }
    }
    paths
}

/// Lazily unmounts whatever is still mounted under `dir` (snapshots and volumes of
/// sandboxes left running), deepest first, so the directory can be removed. For
/// tests and benchmarks that clean up after a runtime of their own.
pub fn unmount_under(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = Command::new("umount")
            .args(["-l", point])
            .stderr(Stdio::null())
            .status();
    }
}

/// A containerd process we started; stopped on [`Containerd::stop`] or drop.
#[derive(Debug)]
pub struct Containerd {
    child: Option<Child>,
    config: DaemonConfig,
}

impl Containerd {
    /// Writes the config, starts `containerd --config DIR/config.toml` (output to
    /// `DIR/containerd.log`) and waits until it answers on its socket.
    pub fn start(config: DaemonConfig) -> Result<Self, Error> {
        if answers(&config.socket)? {
            return Err(Error::SocketInUse {
                path: config.socket.clone(),
            });
        }
        let prepare = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::PrepareDaemon { path, source }
        };
        for dir in [&config.dir, &config.cni_conf_dir] {
            std::fs::create_dir_all(dir).map_err(prepare(dir))?;
        }
        if let Some(parent) = config.socket.parent() {
            std::fs::create_dir_all(parent).map_err(prepare(parent))?;
        }
        let config_path = config.config_path();
        std::fs::write(&config_path, config.render()).map_err(prepare(&config_path))?;
        let log_path = config.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(prepare(&log_path))?;
        let log_err = log.try_clone().map_err(prepare(&log_path))?;
        let program = config.program.to_string_lossy().into_owned();
        let child = Command::new(&config.program)
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    Error::ProgramMissing {
                        program: program.clone(),
                        hint: crate::import::CONTAINERD_HINT,
                    }
                } else {
                    Error::Spawn {
                        program: program.clone(),
                        source,
                    }
                }
            })?;
        tracing::info!(pid = child.id(), socket = %config.socket.display(), log = %log_path.display(), "started containerd");
        let mut daemon = Containerd {
            child: Some(child),
            config,
        };
        daemon.wait_ready()?;
        Ok(daemon)
    }

    fn wait_ready(&mut self) -> Result<(), Error> {
        let deadline = Instant::now() + self.config.start_timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                let exited = child.try_wait().map_err(|source| Error::Spawn {
                    program: CONTAINERD.to_string(),
                    source,
                })?;
                if let Some(status) = exited {
                    self.child = None;
                    return Err(Error::DaemonExited {
                        status,
                        socket: self.config.socket.clone(),
                        log: self.config.log_path(),
                        tail: log_tail(&self.config.log_path()),
                    });
                }
            }
            if self.config.socket.exists() && answers(&self.config.socket)? {
                tracing::info!(socket = %self.config.socket.display(), "containerd is ready");
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.stop();
                return Err(Error::DaemonTimeout {
                    socket: self.config.socket.clone(),
                    seconds: self.config.start_timeout.as_secs(),
                    log: self.config.log_path(),
                    tail: log_tail(&self.config.log_path()),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The gRPC socket it listens on.
    pub fn socket(&self) -> &Path {
        &self.config.socket
    }

    /// What it was started with.
    pub fn config(&self) -> &DaemonConfig {
        &self.config
    }

    /// Its process ID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, then SIGKILL if it has not exited within 10 s; returns how it exited
    /// (`None` when it was already stopped). Running containers are left alone, as
    /// containerd itself leaves them (their shims outlive it).
    pub fn stop(&mut self) -> Result<Option<ExitStatus>, Error> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        let pid = child.id();
        let wait_err = |source| Error::Signal { pid, source };
        if let Some(status) = child.try_wait().map_err(wait_err)? {
            return Ok(Some(status));
        }
        if let Some(raw) = rustix::process::Pid::from_raw(pid as i32) {
            if let Err(errno) = rustix::process::kill_process(raw, rustix::process::Signal::TERM) {
                tracing::warn!(pid, error = %errno, "SIGTERM to containerd failed");
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().map_err(wait_err)? {
                tracing::info!(pid, %status, "containerd stopped");
                return Ok(Some(status));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::warn!(pid, "containerd ignored SIGTERM for 10s; killing it");
        child.kill().map_err(wait_err)?;
        child.wait().map(Some).map_err(wait_err)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            tracing::warn!(error = %err, "stopping containerd");
        }
    }
}

/// The last lines of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_config_puts_everything_under_the_dir() {
        let mut config = DaemonConfig::new("/x/ctd", "/x/ctd/containerd.sock", "/x/net.d");
        config.cni_bin_dir = PathBuf::from("/usr/lib/cni");
        let toml = config.render();
        for line in [
            "version = 2",
            "root = \"/x/ctd/root\"",
            "state = \"/x/ctd/state\"",
            "address = \"/x/ctd/containerd.sock\"",
            "path = \"/x/ctd/opt\"",
            "sandbox_image = \"ferrokube.local/pause:3.10\"",
            "bin_dir = \"/usr/lib/cni\"",
            "conf_dir = \"/x/net.d\"",
            "SystemdCgroup = false",
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]",
        ] {
            assert!(toml.lines().any(|l| l.trim() == line), "{line} in\n{toml}");
        }
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_string("a\nb"), r#""a\u000Ab""#);
    }

    #[test]
    fn nothing_answers_on_a_missing_socket() {
        assert!(!running(Path::new("/nonexistent/containerd.sock")));
    }
}
