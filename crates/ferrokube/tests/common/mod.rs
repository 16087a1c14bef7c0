//! What the kubectl end-to-end tests share: a `ferrokube server` on a free port with its
//! own data directory and kubeconfig, and kubectl runs against it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

pub mod containerd;
pub mod https;
pub mod netns;
pub mod seed;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const KUBECTL: &str = "/usr/bin/kubectl";

/// kubectl against some cluster of a test: implementors say how to start it.
pub trait Kubectl {
    /// kubectl with this cluster's kubeconfig and cache, no arguments yet.
    fn command(&self) -> Command;

    /// Runs kubectl with `args`.
    fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    /// Runs kubectl with `args`, feeding `stdin` when given.
    fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = self.command();
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Runs kubectl, requires success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.kubectl(args);
        assert!(
            o.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Feeds `yaml` to `kubectl <verb> -f -`; requires success.
    fn feed(&self, verb: &str, yaml: &str) {
        let o = self.kubectl_stdin(&[verb, "-f", "-"], Some(yaml));
        assert!(
            o.status.success(),
            "kubectl {verb}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// `kubectl get <what> -o jsonpath=<path>`: stdout, whether it succeeded or not.
    fn get(&self, what: &[&str], path: &str) -> String {
        let p = format!("jsonpath={path}");
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend(["-o", &p]);
        String::from_utf8_lossy(&self.kubectl(&args).stdout).into_owned()
    }
}

impl Kubectl for Server {
    fn command(&self) -> Command {
        let mut cmd = Command::new(KUBECTL);
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", &self.cache)
            .env("HOME", self.cache.parent().unwrap());
        cmd
    }
}

pub struct Server {
    pub child: Child,
    pub kubeconfig: PathBuf,
    pub cache: PathBuf,
    /// The flags after `--data-dir` and `--secure-port`.
    args: Vec<String>,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The node's containerd outlives a killed server (a restarted server reuses it,
        // pods keep running); a test's must not outlive the test: its containers, then
        // it and its shims, then its mounts.
        let dir = self._dir.path();
        let socket = dir.join("agent/containerd/containerd.sock");
        if socket.exists() {
            if let Err(e) = ferrokube_containerd::daemon::remove_all_tasks(&socket) {
                eprintln!("removing the test server's containers: {e}");
            }
            let _ = Command::new("pkill")
                .args(["-KILL", "-f", &dir.display().to_string()])
                .status();
            ferrokube_containerd::daemon::unmount_under(dir);
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `ferrokube server` with only the API server (tests start the components they
/// exercise themselves).
pub fn start() -> Server {
    start_with(&[
        "--disable-scheduler",
        "--disable-controller-manager",
        "--disable-agent",
    ])
}

/// A `ferrokube server` on a free port and its own data directory, with these flags;
/// its log goes to `<data-dir>/server.log`.
pub fn start_with(args: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let (child, kubeconfig) = spawn_server(dir.path(), port, &args);
    Server {
        child,
        kubeconfig,
        cache: dir.path().join("kubectl-cache"),
        args,
        port,
        _dir: dir,
    }
}

fn spawn_server(dir: &std::path::Path, port: u16, args: &[String]) -> (Child, PathBuf) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args([
            "server",
            "--data-dir",
            dir.to_str().unwrap(),
            "--secure-port",
            &port.to_string(),
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut kubeconfig = None;
    let mut line = String::new();
    while kubeconfig.is_none() {
        assert!(Instant::now() < deadline, "server did not start");
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "server exited early");
        if let Some(p) = line
            .trim()
            .strip_prefix("ferrokube server: export KUBECONFIG=")
        {
            kubeconfig = Some(PathBuf::from(p));
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink);
    });
    (child, kubeconfig.unwrap())
}

impl Server {
    /// The server's `--data-dir` (its generated PKI is under `pki/`).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// The server's log (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("server.log")).unwrap_or_default()
    }

    /// Stops the server with SIGTERM, killing it if it has not exited within `timeout`.
    pub fn terminate(&mut self, timeout: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server with SIGTERM (waiting up to 30 s) and starts it again with the
    /// same data directory, port and flags.
    pub fn restart(&mut self) {
        self.terminate(Duration::from_secs(30));
        let (child, kubeconfig) = spawn_server(self._dir.path(), self.port, &self.args);
        self.child = child;
        self.kubeconfig = kubeconfig;
    }

    fn kubeconfig_value(&self, key: &str) -> String {
        let text = std::fs::read_to_string(&self.kubeconfig).unwrap();
        text.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("{key} missing from the kubeconfig"))
            .trim_matches('"')
            .to_string()
    }

    /// `https://127.0.0.1:<port>` from the kubeconfig.
    pub fn server_url(&self) -> String {
        self.kubeconfig_value("server")
    }

    /// The admin bearer token from the kubeconfig.
    pub fn token(&self) -> String {
        self.kubeconfig_value("token")
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Kubectl::kubectl(self, args)
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        Kubectl::kubectl_stdin(self, args, stdin)
    }

    /// Runs kubectl, requires success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        Kubectl::ok(self, args)
    }

    /// Runs kubectl, requires failure, returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.kubectl(args);
        assert!(
            !o.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }
}

pub fn lines(s: &str) -> Vec<Vec<String>> {
    s.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// A `ferrokube controller-manager` run against a test server, killed on drop.
pub struct ControllerManager {
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for ControllerManager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ControllerManager {
    /// The log so far (stderr; RUST_LOG=info).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Server {
    /// The generated PKI directory: `ca.pem`, `ca-key.pem`, `sa.key`, component
    /// kubeconfigs.
    pub fn pki_dir(&self) -> PathBuf {
        self.data_dir().join("pki")
    }
}

/// Runs `ferrokube controller-manager` as the seed does (its own kubeconfig and
/// certificate, each controller with its own service-account credentials so RBAC's
/// `system:controller:*` roles apply, the cluster CA as signing pair and root CA, no
/// leader election, no secure port) plus `extra` flags (e.g. `--controllers=replicaset`).
pub fn controller_manager(s: &Server, extra: &[&str]) -> ControllerManager {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let pki = s.pki_dir();
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = s.data_dir().join(format!("controller-manager-{n}.log"));
    let mut args = vec![
        "controller-manager".to_string(),
        format!(
            "--kubeconfig={}",
            pki.join("kube-controller-manager.kubeconfig").display()
        ),
        "--secure-port=0".into(),
        "--leader-elect=false".into(),
        "--use-service-account-credentials".into(),
        format!(
            "--cluster-signing-cert-file={}",
            pki.join("ca.pem").display()
        ),
        format!(
            "--cluster-signing-key-file={}",
            pki.join("ca-key.pem").display()
        ),
        format!("--root-ca-file={}", pki.join("ca.pem").display()),
        format!(
            "--service-account-private-key-file={}",
            pki.join("sa.key").display()
        ),
    ];
    // A flag given in `extra` replaces the default of the same name.
    let flag = |a: &str| a.split('=').next().unwrap_or(a).to_string();
    let overridden: Vec<String> = extra.iter().map(|e| flag(e)).collect();
    args.retain(|a| a == "controller-manager" || !overridden.contains(&flag(a)));
    args.extend(extra.iter().map(|s| s.to_string()));
    let child = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args(&args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    ControllerManager { child, log }
}

/// Polls `f` every 200 ms until it holds; panics naming `what` after `secs`.
pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
