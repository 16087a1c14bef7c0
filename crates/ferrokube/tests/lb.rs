//! `ferrokube lb` (the seeds' kube-nginx) as a process: the seed's own configuration
//! with upstreams that are small TCP servers of the test on 127.0.0.1; a killed
//! upstream, SIGHUP reloads (good and bad), an unreachable upstream, bad
//! configurations, metrics, and the `kube-nginx -c -p -t / -s reload` forms of the
//! seed's systemd unit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

const LIMIT: Duration = Duration::from_secs(10);

/// A TCP server that greets with `tag\n`, then echoes; dropping it (or `kill`)
/// closes the listener and every connection.
struct Upstream {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start(tag: &'static str) -> Upstream {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                conns.spawn(async move {
                    let _ = s.write_all(format!("{tag}\n").as_bytes()).await;
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Upstream { addr, task }
    }

    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// An address nothing listens on.
fn dead_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The seed's kube-nginx.conf with these servers and listen address.
fn seed_conf(listen: SocketAddr, servers: &[SocketAddr]) -> String {
    let servers: String = servers
        .iter()
        .map(|s| format!("        server {s}        max_fails=3 fail_timeout=30s;\n"))
        .collect();
    format!(
        "worker_processes 1;\n\nevents {{\n    worker_connections  1024;\n}}\n\nstream {{\n    upstream backend {{\n        hash $remote_addr consistent;\n{servers}    }}\n\n    server {{\n        listen {listen};\n        proxy_connect_timeout 1s;\n        proxy_pass backend;\n    }}\n}}\n"
    )
}

/// A running `ferrokube lb`, its log in the temp dir.
struct Lb {
    child: Child,
    log: PathBuf,
}

impl Drop for Lb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Lb {
    fn start(dir: &Path, args: &[&str]) -> Lb {
        Lb::start_as(
            Path::new(env!("CARGO_BIN_EXE_ferrokube")),
            dir,
            &[&["lb"], args].concat(),
        )
    }

    fn start_as(bin: &Path, dir: &Path, args: &[&str]) -> Lb {
        let log = dir.join(format!("lb-{}.log", std::process::id()));
        let child = Command::new(bin)
            .args(args)
            .env("FERROKUBE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Lb { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits until the log contains `what` `times` times.
    async fn wait_log(&self, what: &str, times: usize) {
        let deadline = Instant::now() + LIMIT;
        while self.log().matches(what).count() < times {
            assert!(
                Instant::now() < deadline,
                "no {what:?} in the log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits until `addr` accepts connections.
async fn wait_listening(lb: &mut Lb, addr: SocketAddr) {
    let deadline = Instant::now() + LIMIT;
    loop {
        if TcpStream::connect(addr).await.is_ok() {
            return;
        }
        if let Some(status) = lb.child.try_wait().unwrap() {
            panic!("lb exited ({status}):\n{}", lb.log());
        }
        assert!(Instant::now() < deadline, "lb not listening:\n{}", lb.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Connects through the lb: the greeting, or `None` if the connection closed first.
async fn greet(addr: SocketAddr) -> Option<(TcpStream, String)> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match tokio::time::timeout(LIMIT, s.read(&mut b)).await {
            Ok(Ok(1)) if b[0] == b'\n' => break,
            Ok(Ok(1)) => line.push(b[0]),
            _ => return None,
        }
    }
    Some((s, String::from_utf8(line).unwrap()))
}

async fn echo(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut got = vec![0u8; msg.len()];
    tokio::time::timeout(LIMIT, s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, msg);
}

fn free_addr() -> SocketAddr {
    dead_addr()
}

#[tokio::test]
async fn seed_config_survives_a_killed_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let a = Upstream::start("A").await;
    let b = Upstream::start("B").await;
    let listen = free_addr();
    let conf = dir.path().join("kube-nginx.conf");
    std::fs::write(&conf, seed_conf(listen, &[a.addr, b.addr])).unwrap();
    let mut lb = Lb::start(dir.path(), &["-c", conf.to_str().unwrap()]);
    wait_listening(&mut lb, listen).await;

    // hash $remote_addr consistent: every connection from 127.0.0.1 to one server.
    let (mut first, owner) = greet(listen).await.unwrap();
    echo(&mut first, b"hello").await;
    for _ in 0..5 {
        assert_eq!(greet(listen).await.unwrap().1, owner);
    }
    let (victim, survivor, other) = if owner == "A" {
        (a, b.addr, "B")
    } else {
        (b, a.addr, "A")
    };
    let victim_addr = victim.addr;
    victim.kill().await;

    // Each new connection goes to the other server; at most one client connection
    // may fail on the way (nginx tries the next server on a refused connect, so
    // none should).
    let mut failed = 0;
    for _ in 0..10 {
        match greet(listen).await {
            Some((mut s, tag)) => {
                assert_eq!(tag, other);
                echo(&mut s, b"ping").await;
            }
            None => failed += 1,
        }
    }
    assert!(failed <= 1, "{failed} failed connections");
    let log = lb.log();
    assert!(
        log.contains("connect to upstream server failed") && log.contains(&victim_addr.to_string()),
        "{log}"
    );
    // max_fails=3: after three refused connects the server is out for 30 s.
    assert!(
        log.contains("upstream server temporarily disabled"),
        "{log}"
    );
    assert_eq!(
        log.matches("connect to upstream server failed").count(),
        3,
        "{log}"
    );
    let _ = survivor;
}

#[tokio::test]
async fn sighup_reload_keeps_established_connections() {
    let dir = tempfile::tempdir().unwrap();
    let a = Upstream::start("A").await;
    let b = Upstream::start("B").await;
    let listen = free_addr();
    let conf = dir.path().join("kube-nginx.conf");
    std::fs::write(&conf, seed_conf(listen, &[a.addr])).unwrap();
    let mut lb = Lb::start(dir.path(), &["--config", conf.to_str().unwrap()]);
    wait_listening(&mut lb, listen).await;
    let (mut established, tag) = greet(listen).await.unwrap();
    assert_eq!(tag, "A");

    // New upstream list and a second listener.
    let second = free_addr();
    let text = seed_conf(listen, &[b.addr]).replace(
        "    server {\n",
        &format!("    server {{\n        listen {second};\n        proxy_pass backend;\n    }}\n    server {{\n"),
    );
    std::fs::write(&conf, text).unwrap();
    lb.signal("-HUP");
    lb.wait_log("configuration reloaded", 1).await;
    assert_eq!(greet(listen).await.unwrap().1, "B");
    assert_eq!(greet(second).await.unwrap().1, "B");
    echo(&mut established, b"still through A").await;

    // A bad file: logged with file, line and directive; the running one stays.
    std::fs::write(
        &conf,
        seed_conf(listen, &[b.addr]).replace("proxy_pass", "proxy_passs"),
    )
    .unwrap();
    lb.signal("-HUP");
    lb.wait_log("reload failed", 1).await;
    let log = lb.log();
    let expected = format!(
        "unknown directive \\\"proxy_passs\\\" in {}:16",
        conf.display()
    );
    let plain = format!("unknown directive \"proxy_passs\" in {}:16", conf.display());
    assert!(log.contains(&expected) || log.contains(&plain), "{log}");
    assert_eq!(greet(listen).await.unwrap().1, "B");
    assert_eq!(greet(second).await.unwrap().1, "B");
    echo(&mut established, b"and still").await;
    assert!(lb.child.try_wait().unwrap().is_none());

    // SIGTERM stops it.
    lb.signal("-TERM");
    let deadline = Instant::now() + LIMIT;
    while lb.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_unreachable_upstream_is_logged_and_the_rest_work() {
    let dir = tempfile::tempdir().unwrap();
    let a = Upstream::start("A").await;
    let dead = dead_addr();
    let listen = free_addr();
    let metrics = free_addr();
    let conf = dir.path().join("lb.yaml");
    std::fs::write(
        &conf,
        format!(
            "metricsAddress: {metrics}\nlisteners:\n  - address: {listen}\n    upstream: apiservers\n    connectTimeout: 1s\nupstreams:\n  - name: apiservers\n    balance: round-robin\n    maxFails: 0\n    servers: ['{dead}', '{}']\n",
            a.addr
        ),
    )
    .unwrap();
    let mut lb = Lb::start(dir.path(), &["--config", conf.to_str().unwrap()]);
    wait_listening(&mut lb, listen).await;
    for _ in 0..6 {
        let (mut s, tag) = greet(listen)
            .await
            .expect("every client connection is served");
        assert_eq!(tag, "A");
        echo(&mut s, b"x").await;
    }
    let log = lb.log();
    let line = log
        .lines()
        .find(|l| l.contains("connect to upstream server failed"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains(&dead.to_string()) && line.contains("refused"),
        "{line}"
    );
    assert!(line.contains("trying the next server"), "{line}");

    let mut s = TcpStream::connect(metrics).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    tokio::time::timeout(LIMIT, s.read_to_string(&mut body))
        .await
        .unwrap()
        .unwrap();
    let failures = format!("ferrokube_lb_upstream_connect_failures_total{{upstream=\"apiservers\",server=\"{dead}\"}} ");
    let count: f64 = body
        .lines()
        .find_map(|l| l.strip_prefix(&failures))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{body}"));
    assert!(count >= 1.0, "{body}");
    assert!(
        body.contains(&format!(
            "ferrokube_lb_connections_accepted_total{{listener=\"{listen}\"}} 7"
        )),
        "{body}"
    );
}

#[tokio::test]
async fn bad_configurations_exit_nonzero_naming_file_line_and_directive() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kube-nginx.conf");
    let text = seed_conf(free_addr(), &[dead_addr()])
        .replace("proxy_connect_timeout 1s;", "proxy_conect_timeout 1s;");
    std::fs::write(&conf, text).unwrap();
    let bin = env!("CARGO_BIN_EXE_ferrokube");
    for extra in [&[][..], &["-t"][..]] {
        let out = Command::new(bin)
            .args(["lb", "-c", conf.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "unknown directive \"proxy_conect_timeout\" in {}:15",
                conf.display()
            )),
            "{err}"
        );
    }
    let yaml = dir.path().join("lb.yaml");
    std::fs::write(&yaml, "listeners:\n  - address: 127.0.0.1:1\n    upstream: u\n    idleTimeout: forever\nupstreams:\n  - name: u\n    servers: ['127.0.0.1:2']\n").unwrap();
    let out = Command::new(bin)
        .args(["lb", "-c", yaml.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:4: listeners[0].idleTimeout", yaml.display())),
        "{err}"
    );
    let out = Command::new(bin).args(["lb"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config FILE, or --listen"));
    let out = Command::new(bin)
        .args(["lb", "-c", "/nonexistent/kube-nginx.conf"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/kube-nginx.conf"));
}

#[tokio::test]
async fn the_seed_unit_as_kube_nginx_with_prefix_test_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path();
    std::fs::create_dir_all(prefix.join("conf")).unwrap();
    std::fs::create_dir_all(prefix.join("sbin")).unwrap();
    let bin = prefix.join("sbin/kube-nginx");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ferrokube"), &bin).unwrap();
    let a = Upstream::start("A").await;
    let b = Upstream::start("B").await;
    let listen = free_addr();
    let conf = prefix.join("conf/kube-nginx.conf");
    std::fs::write(&conf, seed_conf(listen, &[a.addr])).unwrap();
    let p = prefix.to_str().unwrap();
    // ExecStartPre: -t.
    let out = Command::new(&bin)
        .args(["-c", "conf/kube-nginx.conf", "-p", p, "-t"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("test is successful"));
    // ExecStart.
    let mut lb = Lb::start_as(&bin, prefix, &["-c", conf.to_str().unwrap(), "-p", p]);
    wait_listening(&mut lb, listen).await;
    assert_eq!(greet(listen).await.unwrap().1, "A");
    let pid = std::fs::read_to_string(prefix.join("logs/nginx.pid")).unwrap();
    assert_eq!(pid.trim(), lb.child.id().to_string());
    // ExecReload: -s reload.
    std::fs::write(&conf, seed_conf(listen, &[b.addr])).unwrap();
    let out = Command::new(&bin)
        .args(["-c", conf.to_str().unwrap(), "-p", p, "-s", "reload"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lb.wait_log("configuration reloaded", 1).await;
    assert_eq!(greet(listen).await.unwrap().1, "B");
    // -s stop, and the pid file goes away.
    let out = Command::new(&bin)
        .args(["-p", p, "-s", "stop"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let deadline = Instant::now() + LIMIT;
    while lb.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!prefix.join("logs/nginx.pid").exists());
}

#[tokio::test]
async fn flags_instead_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = Upstream::start("A").await;
    let b = Upstream::start("B").await;
    let listen = free_addr();
    let (sa, sb) = (a.addr.to_string(), b.addr.to_string());
    let mut lb = Lb::start(
        dir.path(),
        &[
            "--listen",
            &listen.to_string(),
            "--upstream",
            &sa,
            "--upstream",
            &sb,
            "--balance",
            "round-robin",
        ],
    );
    wait_listening(&mut lb, listen).await;
    let mut tags = Vec::new();
    for _ in 0..4 {
        tags.push(greet(listen).await.unwrap().1);
    }
    tags.sort();
    // wait_listening's probe took one turn of the round robin.
    assert!(
        tags.contains(&"A".to_string()) && tags.contains(&"B".to_string()),
        "{tags:?}"
    );
}
