//! bench-lb: `ferrokube lb` against nginx's stream proxy (the seeds' kube-nginx), both
//! started by the benchmark with the same generated configuration in a temporary
//! directory, in front of the same in-process echo server, all on 127.0.0.1:
//!
//! 1. small request/response (64 bytes each way) on 256 connections at once: requests
//!    per second — target ≥ nginx;
//! 2. the p99 latency of those requests minus that of direct connections to the echo
//!    server — target ≤ nginx's;
//! 3. bulk: 256 connections streaming 64 KiB writes that come back echoed: MB/s —
//!    target ≥ nginx;
//! 4. peak RSS while loaded: the lb process against nginx's master and workers —
//!    target ≤ nginx.
//!
//! nginx runs `worker_processes 1` (as the seed); ferrokube lb runs its tokio runtime
//! (one worker thread per core). Besides its default copy engine (auto), ferrokube lb
//! also runs with only the buffer and only splice(2) (`FERROKUBE_LB_COPY`) for
//! comparison. Runs alternate between the proxies,
//! each repetition starting with the next one; each figure is the median of the
//! repetitions.
//!
//! `cargo build --release -p ferrokube -p ferrokube-bench-lb && target/release/bench-lb`
//! (`--quick`: 1 s runs, one repetition). The release `ferrokube` is used when built,
//! else the one next to this executable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
struct Args {
    /// 1 s runs, one repetition (CI smoke run, under 30 s).
    #[arg(long)]
    quick: bool,
    /// Concurrent connections.
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// Seconds per run (default 5, 1 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Repetitions per figure (default 3, 1 with --quick).
    #[arg(long)]
    reps: Option<usize>,
    /// `proxy_buffer_size` for both proxies (default: nginx's 16k).
    #[arg(long)]
    buffer: Option<String>,
    /// Worker threads of ferrokube lb's runtime (TOKIO_WORKER_THREADS; default: one
    /// per core).
    #[arg(long)]
    lb_threads: Option<usize>,
}

const SMALL: usize = 64;
/// Send and receive buffers of the benchmark's own sockets (clients, echo server).
/// Loopback autotunes buffers up to tcp_rmem's 32 MiB: 256 streaming connections
/// through a proxy then push the kernel into TCP memory pressure (drops, pruned
/// queues, retransmission back-off: stalls of minutes, for nginx as for us). Bounded
/// ends bound what is in flight; the proxies' own sockets stay as they configure them.
const SOCKET_BUFFER: u32 = 256 * 1024;
const CHUNK: usize = 64 * 1024;
const NGINX: &str = "/usr/sbin/nginx";
const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// The release `ferrokube` if built, else the one next to this executable.
fn ferrokube_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .context("benchmark executable has no directory")?;
    let release = dir.parent().map(|t| t.join("release").join("ferrokube"));
    if let Some(r) = release.filter(|r| r.is_file()) {
        return Ok(r);
    }
    let here = dir.join("ferrokube");
    anyhow::ensure!(
        here.is_file(),
        "{} not found: build it first (cargo build --release -p ferrokube)",
        here.display()
    );
    Ok(here)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// VmRSS of `pid` in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `pid` and its children (nginx's master and workers).
fn family(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid ...
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(pid) {
                out.push(child);
            }
        }
    }
    out
}

/// A proxy process under test.
struct Proxy {
    name: String,
    child: Child,
    addr: SocketAddr,
}

impl Drop for Proxy {
    /// SIGTERM (nginx's master then stops its workers), SIGKILL for whatever of the
    /// process and its children is left after 3 s: no worker outlives the run.
    fn drop(&mut self) {
        let pids = family(self.child.id());
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let alive = pids
                .iter()
                .any(|p| Path::new(&format!("/proc/{p}")).exists() && *p != self.child.id())
                || matches!(self.child.try_wait(), Ok(None));
            if !alive {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for p in pids.iter().filter(|p| **p != self.child.id()) {
            if Path::new(&format!("/proc/{p}")).exists() {
                let _ = Command::new("kill")
                    .args(["-KILL", &p.to_string()])
                    .status();
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    fn rss(&self) -> f64 {
        family(self.child.id()).into_iter().map(rss_mib).sum()
    }

    async fn ready(mut self, log: &Path) -> anyhow::Result<Proxy> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(self.addr).await.is_ok() {
                return Ok(self);
            }
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                anyhow::bail!("{} exited ({status}):\n{log}", self.name);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} did not start listening",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The one configuration both proxies run.
fn config(dir: &Path, listen: u16, upstream: SocketAddr, buffer: Option<&str>) -> String {
    let buffer = buffer
        .map(|b| format!("        proxy_buffer_size {b};\n"))
        .unwrap_or_default();
    let module = if Path::new(STREAM_MODULE).is_file() {
        format!("load_module {STREAM_MODULE};\n")
    } else {
        String::new()
    };
    format!(
        "{module}daemon off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\n\nevents {{\n    worker_connections 4096;\n}}\n\nstream {{\n    upstream echo {{\n        server {upstream};\n    }}\n    server {{\n        listen 127.0.0.1:{listen};\n        proxy_connect_timeout 1s;\n        proxy_timeout 10m;\n{buffer}        proxy_pass echo;\n    }}\n}}\n",
        dir = dir.display()
    )
}

async fn start_lb(
    bin: &Path,
    dir: &Path,
    upstream: SocketAddr,
    copy: &str,
    buffer: Option<&str>,
    threads: Option<usize>,
) -> anyhow::Result<Proxy> {
    let port = free_port()?;
    let conf = dir.join(format!("lb-{copy}.conf"));
    std::fs::write(&conf, config(dir, port, upstream, buffer))?;
    let log = dir.join(format!("lb-{copy}.log"));
    let mut cmd = Command::new(bin);
    if let Some(n) = threads {
        cmd.env("TOKIO_WORKER_THREADS", n.to_string());
    }
    let child = cmd
        .args(["lb", "-c"])
        .arg(&conf)
        // BENCH_LB_LOG=debug logs every connection's end (in the temporary directory).
        .env(
            "FERROKUBE_LOG",
            std::env::var("BENCH_LB_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env("FERROKUBE_LB_COPY", copy)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let name = if copy == "auto" {
        "ferrokube lb".to_string()
    } else {
        format!("ferrokube lb ({copy})")
    };
    Proxy {
        name,
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
    .ready(&log)
    .await
}

async fn start_nginx(
    dir: &Path,
    upstream: SocketAddr,
    buffer: Option<&str>,
) -> anyhow::Result<Proxy> {
    anyhow::ensure!(
        Path::new(NGINX).is_file(),
        "{NGINX} not found: apt-get install nginx-light libnginx-mod-stream"
    );
    let port = free_port()?;
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config(dir, port, upstream, buffer))?;
    let log = dir.join("error.log");
    let child = Command::new(NGINX)
        .arg("-e")
        .arg(&log)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nginx")?;
    Proxy {
        name: "nginx".into(),
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
    .ready(&log)
    .await
}

/// The echo server every run goes to.
async fn echo_server() -> anyhow::Result<SocketAddr> {
    // A deep accept queue: 256 connects arrive at once. Bounded socket buffers (the
    // accepted sockets inherit them): see SOCKET_BUFFER.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_send_buffer_size(SOCKET_BUFFER)?;
    socket.set_recv_buffer_size(SOCKET_BUFFER)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let l = socket.listen(4096)?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; CHUNK];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// Samples `rss` every 50 ms while `running`; the peak.
fn sample_rss(
    rss: impl Fn() -> f64 + Send + 'static,
    running: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<f64> {
    tokio::spawn(async move {
        let mut peak: f64 = 0.0;
        while running.load(Ordering::Relaxed) {
            peak = peak.max(rss());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        peak.max(rss())
    })
}

#[derive(Debug, Clone, Copy)]
struct RrResult {
    rate: f64,
    p99_ms: f64,
    /// Connections that failed (reset, refused) before their end.
    errors: usize,
}

/// `conns` connections each doing 64-byte request/response round trips for `dur`.
async fn request_response(
    addr: SocketAddr,
    conns: usize,
    dur: Duration,
) -> anyhow::Result<RrResult> {
    let mut streams = Vec::with_capacity(conns);
    for _ in 0..conns {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        streams.push(s);
    }
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::with_capacity(conns);
    for mut s in streams {
        tasks.push(tokio::spawn(async move {
            let req = [7u8; SMALL];
            let mut resp = [0u8; SMALL];
            let mut lat: Vec<u32> = Vec::with_capacity(4096);
            while Instant::now() < deadline {
                let t = Instant::now();
                if s.write_all(&req).await.is_err() || s.read_exact(&mut resp).await.is_err() {
                    return (lat, 1);
                }
                lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            (lat, 0)
        }));
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (lat, failed) = t.await?;
        all.extend(lat);
        errors += failed;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let p99 = all
        .get(((all.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0);
    Ok(RrResult {
        rate: all.len() as f64 / elapsed,
        p99_ms: f64::from(p99) / 1000.0,
        errors,
    })
}

/// `conns` connections each writing 64 KiB chunks for `dur` and reading the echo;
/// MB/s of echoed bytes, and connections that failed before the deadline.
async fn bulk(addr: SocketAddr, conns: usize, dur: Duration) -> anyhow::Result<(f64, usize)> {
    let received = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_send_buffer_size(SOCKET_BUFFER)?;
        socket.set_recv_buffer_size(SOCKET_BUFFER)?;
        let s = socket.connect(addr).await?;
        let (mut r, mut w) = s.into_split();
        let received = received.clone();
        tasks.push(tokio::spawn(async move {
            let writer = tokio::spawn(async move {
                let chunk = vec![1u8; CHUNK];
                while Instant::now() < deadline {
                    w.write_all(&chunk).await?;
                }
                // nginx (proxy_half_close off) may close both directions at once on
                // this shutdown: what happens after the deadline does not count.
                let _ = w.shutdown().await;
                anyhow::Ok(())
            });
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = match r.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(_) if Instant::now() >= deadline => break,
                    Err(e) => return Err(e.into()),
                };
                // Only what came back before the deadline counts toward the rate.
                if Instant::now() < deadline {
                    received.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            writer.await??;
            anyhow::Ok(())
        }));
    }
    let mut errors = 0;
    for t in tasks {
        if t.await?.is_err() {
            errors += 1;
        }
    }
    Ok((
        received.load(Ordering::Relaxed) as f64 / 1e6 / dur.as_secs_f64(),
        errors,
    ))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[derive(Debug, Default, Clone)]
struct Figures {
    rate: Vec<f64>,
    p99: Vec<f64>,
    mbps: Vec<f64>,
    rss: f64,
    errors: usize,
}

/// One repetition against `addr` (and its RSS sampled while loaded).
async fn measure(
    addr: SocketAddr,
    rss: Option<Box<dyn Fn() -> f64 + Send + 'static>>,
    conns: usize,
    dur: Duration,
    into: &mut Figures,
) -> anyhow::Result<()> {
    let running = Arc::new(AtomicBool::new(true));
    let sampler = rss.map(|f| sample_rss(f, running.clone()));
    // Bounded: a run that has not finished 30 s after its deadline is an error.
    let limit = dur + Duration::from_secs(30);
    let rr = tokio::time::timeout(limit, request_response(addr, conns, dur))
        .await
        .with_context(|| format!("request/response through {addr} stalled"))??;
    let (mbps, bulk_errors) = tokio::time::timeout(limit, bulk(addr, conns, dur))
        .await
        .with_context(|| format!("bulk through {addr} stalled"))??;
    into.errors += rr.errors + bulk_errors;
    running.store(false, Ordering::Relaxed);
    if let Some(s) = sampler {
        into.rss = into.rss.max(s.await?);
    }
    into.rate.push(rr.rate);
    into.p99.push(rr.p99_ms);
    into.mbps.push(mbps);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dur = Duration::from_secs_f64(args.seconds.unwrap_or(if args.quick { 1.0 } else { 5.0 }));
    let reps = args.reps.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let conns = args.connections.max(1);
    let bin = ferrokube_binary()?;
    let tmp = tempfile::Builder::new().prefix("bench-lb.").tempdir()?;
    // With BENCH_LB_LOG the directory (configurations, logs) is kept for reading.
    let (_cleanup, dir) = if std::env::var_os("BENCH_LB_LOG").is_some() {
        let path = tmp.keep();
        println!("# configurations and logs kept in {}", path.display());
        (None, path)
    } else {
        let path = tmp.path().to_path_buf();
        (Some(tmp), path)
    };
    let upstream = echo_server().await?;
    println!(
        "# ferrokube lb vs nginx stream proxy: {conns} connections, {:.0} s runs, {reps} repetition(s); {}",
        dur.as_secs_f64(),
        bin.display()
    );
    let nginx_version = Command::new(NGINX)
        .arg("-v")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();
    println!("# {nginx_version}, worker_processes 1");

    let buffer = args.buffer.as_deref();
    // Index 0 is the default engine, 1 nginx; runs alternate between them.
    let mut proxies = [
        start_lb(
            &bin,
            dir.as_path(),
            upstream,
            "auto",
            buffer,
            args.lb_threads,
        )
        .await?,
        start_nginx(dir.as_path(), upstream, buffer).await?,
        start_lb(
            &bin,
            dir.as_path(),
            upstream,
            "buffer",
            buffer,
            args.lb_threads,
        )
        .await?,
        start_lb(
            &bin,
            dir.as_path(),
            upstream,
            "splice",
            buffer,
            args.lb_threads,
        )
        .await?,
    ];
    let mut figures = vec![Figures::default(); proxies.len()];
    let mut f_direct = Figures::default();
    for rep in 0..reps {
        measure(upstream, None, conns, dur, &mut f_direct).await?;
        // Each repetition starts with the next proxy: none always follows the same
        // run (the machine's state after a bulk run differs).
        let n = proxies.len();
        for k in 0..n {
            let i = (k + rep) % n;
            let (Some(p), Some(f)) = (proxies.get_mut(i), figures.get_mut(i)) else {
                continue;
            };
            let family_of = p.child.id();
            let rss: Box<dyn Fn() -> f64 + Send> =
                Box::new(move || family(family_of).into_iter().map(rss_mib).sum());
            measure(p.addr, Some(rss), conns, dur, f).await?;
            println!(
                "rep {}: {:<22} {:>9.0} req/s  p99 {:>6.2} ms  {:>7.0} MB/s  RSS {:>5.1} MiB  failed connections so far {}",
                rep + 1,
                p.name,
                f.rate.last().copied().unwrap_or(0.0),
                f.p99.last().copied().unwrap_or(0.0),
                f.mbps.last().copied().unwrap_or(0.0),
                p.rss(),
                f.errors
            );
        }
        println!(
            "rep {}: {:<22} {:>9.0} req/s  p99 {:>6.2} ms  {:>7.0} MB/s",
            rep + 1,
            "direct (no proxy)",
            f_direct.rate.last().copied().unwrap_or(0.0),
            f_direct.p99.last().copied().unwrap_or(0.0),
            f_direct.mbps.last().copied().unwrap_or(0.0)
        );
    }
    let direct_p99 = median(f_direct.p99.clone());
    type Figure = fn(&Figures, f64) -> f64;
    let rows: [(&str, Figure, bool); 4] = [
        (
            "request/response rate (req/s)",
            |f, _| median(f.rate.clone()),
            true,
        ),
        (
            "bulk echo throughput (MB/s)",
            |f, _| median(f.mbps.clone()),
            true,
        ),
        (
            "added p99 latency over direct (ms)",
            |f, direct| (median(f.p99.clone()) - direct).max(0.01),
            false,
        ),
        ("peak RSS while loaded (MiB)", |f, _| f.rss, false),
    ];
    // Columns: ferrokube lb (default engine), its buffer and splice engines, nginx.
    let columns = [0usize, 2, 3, 1];
    println!();
    println!(
        "{:<38} {:>12} {:>10} {:>10} {:>10} {:>8}  target",
        format!("figure ({conns} connections)"),
        "ferrokube lb",
        "(buffer)",
        "(splice)",
        "nginx",
        "lb/nginx"
    );
    for (name, figure, higher_is_better) in rows {
        let v: Vec<f64> = columns
            .iter()
            .map(|&i| figures.get(i).map_or(0.0, |f| figure(f, direct_p99)))
            .collect();
        let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
        let (ours, theirs) = (at(0), at(3));
        let ratio = ours / theirs.max(1e-9);
        let met = if higher_is_better {
            ratio >= 1.0
        } else {
            ratio <= 1.0
        };
        println!(
            "{name:<38} {ours:>12.2} {:>10.2} {:>10.2} {theirs:>10.2} {ratio:>8.2}  {} ({} 1)",
            at(1),
            at(2),
            if met { "met" } else { "MISSED" },
            if higher_is_better { ">=" } else { "<=" }
        );
    }
    println!(
        "direct to the echo server: {:.0} req/s, p99 {direct_p99:.2} ms, {:.0} MB/s",
        median(f_direct.rate.clone()),
        median(f_direct.mbps.clone())
    );
    Ok(())
}
