//! `bench-dns`: ferrokube's cluster DNS server in-process on 127.0.0.1, its zone
//! filled directly (1,000 ClusterIP services in 10 namespaces and 100 headless ones
//! with 5 endpoints each), driven by UDP clients on their own threads, each keeping a
//! window of queries in flight, for a fixed time. Reports answered queries per
//! second and latency percentiles against the targets, and — when Debian's dnsmasq
//! is installed — dnsmasq answering the same A names from a hosts file in the same
//! run, for the ratio. Every answer's rcode is checked.

use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use ferrokube_dns::wire::{rcode, rtype, Header};
use ferrokube_dns::{
    query_bytes, Config, EndpointInfo, PortInfo, Server, ServiceInfo, ServiceKind, SliceInfo,
};

#[derive(Parser, Debug)]
#[command(
    name = "bench-dns",
    about = "Benchmark ferrokube's cluster DNS server (and dnsmasq on the same names)"
)]
#[derive(Clone, Copy)]
struct Args {
    /// Smaller zone and 2 s runs (a smoke run for CI); targets are printed but not
    /// judged.
    #[arg(long)]
    quick: bool,
    /// Exit non-zero when a target is missed.
    #[arg(long)]
    check: bool,
    /// Seconds per measurement (default 10, 2 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Client threads (one UDP socket each).
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Queries in flight per client.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// The server's UDP receiving tasks (default: the server's own default).
    #[arg(long)]
    udp_workers: Option<usize>,
}

const TARGET_QPS: f64 = 20_000.0;
const TARGET_P99_MS: f64 = 1.0;

/// One query to send and the rcode it must get.
#[derive(Clone)]
struct Probe {
    pkt: Vec<u8>,
    rcode: u16,
}

fn probe(name: &str, t: u16, rc: u16) -> anyhow::Result<Probe> {
    Ok(Probe {
        pkt: query_bytes(0, name, t).with_context(|| format!("query for {name}"))?,
        rcode: rc,
    })
}

/// The zone: `svc-<i>.ns-<i%10>` ClusterIP services with a named port, and every
/// tenth also a headless `hl-<i>` with 5 ready endpoints.
fn fill(zone: &ferrokube_dns::Zone, services: usize) {
    for i in 0..services {
        let ns = format!("ns-{}", i % 10);
        zone.upsert_service(ServiceInfo {
            namespace: ns.clone(),
            name: format!("svc-{i}"),
            kind: ServiceKind::ClusterIp(vec![std::net::IpAddr::from([
                10,
                96,
                (i / 250) as u8,
                (i % 250 + 1) as u8,
            ])]),
            ports: vec![PortInfo {
                name: Some("http".into()),
                protocol: "tcp".into(),
                port: 80,
            }],
            publish_not_ready: false,
        });
        if i % 10 == 0 {
            zone.upsert_service(ServiceInfo {
                namespace: ns.clone(),
                name: format!("hl-{i}"),
                kind: ServiceKind::Headless,
                ports: vec![],
                publish_not_ready: false,
            });
            zone.upsert_slice(SliceInfo {
                namespace: ns,
                name: format!("hl-{i}-x"),
                service: format!("hl-{i}"),
                ports: vec![PortInfo {
                    name: Some("http".into()),
                    protocol: "tcp".into(),
                    port: 8080,
                }],
                endpoints: (0..5)
                    .map(|e| EndpointInfo {
                        addresses: vec![std::net::IpAddr::from([
                            10,
                            (i / 250) as u8 + 100,
                            (i % 250) as u8,
                            e + 1,
                        ])],
                        hostname: Some(format!("pod-{e}")),
                        ready: true,
                    })
                    .collect(),
            });
        }
    }
}

/// What pods ask: mostly service A records, some headless, SRV, and the NXDOMAINs of
/// search-path expansion (`<name>.<ns>.svc.<zone>` for an outside name).
fn mixed(services: usize) -> anyhow::Result<Vec<Probe>> {
    let mut v = Vec::new();
    for i in 0..services {
        let ns = i % 10;
        v.push(probe(
            &format!("svc-{i}.ns-{ns}.svc.cluster.local"),
            rtype::A,
            rcode::NOERROR,
        )?);
        match i % 10 {
            0 => v.push(probe(
                &format!("hl-{i}.ns-{ns}.svc.cluster.local"),
                rtype::A,
                rcode::NOERROR,
            )?),
            1 => v.push(probe(
                &format!("_http._tcp.svc-{i}.ns-{ns}.svc.cluster.local"),
                rtype::SRV,
                rcode::NOERROR,
            )?),
            2 => v.push(probe(
                &format!("www.example.com.ns-{ns}.svc.cluster.local"),
                rtype::A,
                rcode::NXDOMAIN,
            )?),
            3 => v.push(probe(
                &format!("svc-{i}.ns-{ns}.svc.cluster.local"),
                rtype::AAAA,
                rcode::NOERROR,
            )?),
            _ => {}
        }
    }
    Ok(v)
}

fn a_only(services: usize) -> anyhow::Result<Vec<Probe>> {
    (0..services)
        .map(|i| {
            probe(
                &format!("svc-{i}.ns-{}.svc.cluster.local", i % 10),
                rtype::A,
                rcode::NOERROR,
            )
        })
        .collect()
}

#[derive(Default)]
struct Stats {
    answered: u64,
    lost: u64,
    wrong: u64,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Stats {
    fn qps(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64()
    }

    fn pct_ms(&mut self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() - 1) as f64 * p / 100.0).round() as usize;
        self.latencies[i].as_secs_f64() * 1000.0
    }
}

/// xorshift64: which probe to send next.
struct Pick(u64);

impl Pick {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn client(
    server: SocketAddr,
    probes: &[Probe],
    window: usize,
    seed: u64,
    until: Instant,
) -> anyhow::Result<Stats> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.connect(server)?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut inflight: Vec<Option<(Instant, usize)>> = vec![None; 65_536];
    let mut outstanding = 0usize;
    let mut next_id: u16 = 0;
    let mut pick = Pick(seed | 1);
    let mut stats = Stats::default();
    let mut pkt = Vec::with_capacity(128);
    let mut buf = vec![0u8; 4096];
    let start = Instant::now();
    let mut send = |outstanding: &mut usize,
                    inflight: &mut Vec<Option<(Instant, usize)>>|
     -> anyhow::Result<()> {
        let i = pick.next(probes.len());
        next_id = next_id.wrapping_add(1);
        pkt.clear();
        pkt.extend_from_slice(&probes[i].pkt);
        pkt[..2].copy_from_slice(&next_id.to_be_bytes());
        inflight[usize::from(next_id)] = Some((Instant::now(), i));
        sock.send(&pkt)?;
        *outstanding += 1;
        Ok(())
    };
    loop {
        let now = Instant::now();
        if now >= until {
            break;
        }
        while outstanding < window {
            send(&mut outstanding, &mut inflight)?;
        }
        match sock.recv(&mut buf) {
            Ok(n) => {
                let Ok(h) = Header::parse(&buf[..n]) else {
                    stats.wrong += 1;
                    continue;
                };
                let Some((sent, i)) = inflight[usize::from(h.id)].take() else {
                    continue;
                };
                outstanding -= 1;
                stats.answered += 1;
                stats.latencies.push(sent.elapsed());
                if h.rcode() != probes[i].rcode || h.truncated() {
                    stats.wrong += 1;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                stats.lost += outstanding as u64;
                outstanding = 0;
                inflight.iter_mut().for_each(|s| *s = None);
            }
            Err(e) => return Err(e.into()),
        }
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}

fn drive(server: SocketAddr, probes: &[Probe], args: &Args, seconds: f64) -> anyhow::Result<Stats> {
    // Warm up (the server's buffers, the kernel's socket paths).
    let warm = Instant::now() + Duration::from_millis(300);
    client(server, probes, args.window, 7, warm)?;
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let results: Vec<anyhow::Result<Stats>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.clients.max(1))
            .map(|c| {
                s.spawn(move || {
                    client(
                        server,
                        probes,
                        args.window,
                        0x9E37_79B9 * (c as u64 + 1),
                        until,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("client thread panicked")))
            })
            .collect()
    });
    let mut total = Stats::default();
    for r in results {
        let s = r?;
        total.answered += s.answered;
        total.lost += s.lost;
        total.wrong += s.wrong;
        total.latencies.extend(s.latencies);
        total.elapsed = total.elapsed.max(s.elapsed);
    }
    if total.wrong > 0 {
        anyhow::bail!(
            "{} answers had the wrong rcode or were truncated",
            total.wrong
        );
    }
    Ok(total)
}

/// dnsmasq answering the A names from a hosts file on a loopback port.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    version: String,
    _dir: tempfile::TempDir,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dnsmasq(services: usize) -> anyhow::Result<Option<Dnsmasq>> {
    let bin = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(bin) = bin else {
        return Ok(None);
    };
    let version = Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    let version = version
        .split_whitespace()
        .nth(2)
        .map(|v| format!("dnsmasq {v}"))
        .unwrap_or_else(|| "dnsmasq".into());
    let dir = tempfile::tempdir()?;
    let hosts = dir.path().join("hosts");
    let mut f = std::fs::File::create(&hosts)?;
    for i in 0..services {
        writeln!(
            f,
            "10.96.{}.{} svc-{i}.ns-{}.svc.cluster.local",
            i / 250,
            i % 250 + 1,
            i % 10
        )?;
    }
    drop(f);
    let port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(bin)
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--pid-file=",
            "--local=/cluster.local/",
            "--log-facility=-",
            "--user=root",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--addn-hosts={}", hosts.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {bin}"))?;
    let mut d = Dnsmasq {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        version,
        _dir: dir,
    };
    // Wait until it answers.
    let probe = query_bytes(1, "svc-0.ns-0.svc.cluster.local", rtype::A)?;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 512];
    loop {
        if let Some(status) = d.child.try_wait()? {
            anyhow::bail!("dnsmasq exited at start: {status}");
        }
        sock.send_to(&probe, d.addr)?;
        if let Ok(n) = sock.recv(&mut buf) {
            if Header::parse(&buf[..n]).map(|h| h.rcode()) == Ok(rcode::NOERROR) {
                return Ok(Some(d));
            }
        }
        if Instant::now() > deadline {
            let _ = d.child.kill();
            anyhow::bail!("dnsmasq did not answer within 5 s");
        }
    }
}

struct Row {
    name: String,
    value: f64,
    target: String,
    ratio: f64,
    met: Option<bool>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let services = if args.quick { 200 } else { 1000 };
    let seconds = args.seconds.unwrap_or(if args.quick { 2.0 } else { 10.0 });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut config = Config {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        ..Config::default()
    };
    if let Some(n) = args.udp_workers {
        config.udp_workers = n;
    }
    let handle = runtime.block_on(Server::start(config, None))?;
    fill(handle.zone(), services);
    let addr = handle.local_addrs()[0];
    println!(
        "# ferrokube DNS benchmark ({} mode): {} services, {} names; {} client threads x {} in flight, {seconds} s per run",
        if args.quick { "quick" } else { "full" },
        handle.zone().service_count(),
        handle.zone().name_count(),
        args.clients,
        args.window
    );
    let mixed = mixed(services)?;
    let mut m = drive(addr, &mixed, &args, seconds)?;
    let (p50, p99) = (m.pct_ms(50.0), m.pct_ms(99.0));
    // At saturation the latency is the clients' own queueing on 2 cores: shown, not
    // judged.
    println!(
        "ferrokube-dns, mixed cluster names: {} answered ({:.0}/s), {} lost; p50 {p50:.3} ms, p99 {p99:.3} ms",
        m.answered,
        m.qps(),
        m.lost
    );
    // Latency without queueing: one client, one query at a time.
    let light = Args {
        clients: 1,
        window: 1,
        ..args
    };
    let mut one = drive(addr, &mixed, &light, seconds)?;
    let light_p99 = one.pct_ms(99.0);
    println!(
        "ferrokube-dns, one query at a time: {:.0}/s; p50 {:.3} ms, p99 {light_p99:.3} ms",
        one.qps(),
        one.pct_ms(50.0)
    );
    let a = a_only(services)?;
    let mut ours = drive(addr, &a, &args, seconds)?;
    println!(
        "ferrokube-dns, service A names: {:.0}/s, p99 {:.3} ms",
        ours.qps(),
        ours.pct_ms(99.0)
    );
    let judge = |ok: bool| if args.quick { None } else { Some(ok) };
    let mut rows = vec![
        Row {
            name: "queries/s, mixed cluster names".into(),
            value: m.qps(),
            target: format!(">= {TARGET_QPS:.0}"),
            ratio: m.qps() / TARGET_QPS,
            met: judge(m.qps() >= TARGET_QPS),
        },
        Row {
            name: "p99 latency, one query at a time (ms)".into(),
            value: light_p99,
            target: format!("<= {TARGET_P99_MS}"),
            ratio: TARGET_P99_MS / light_p99,
            met: judge(light_p99 <= TARGET_P99_MS),
        },
    ];
    match dnsmasq(services) {
        Ok(Some(peer)) => {
            let mut theirs = drive(peer.addr, &a, &args, seconds)?;
            println!(
                "{}, the same A names from a hosts file: {:.0}/s, p99 {:.3} ms",
                peer.version,
                theirs.qps(),
                theirs.pct_ms(99.0)
            );
            rows.push(Row {
                name: format!("A queries/s, ferrokube-dns / {}", peer.version),
                value: ours.qps() / theirs.qps(),
                target: ">= 1".into(),
                ratio: ours.qps() / theirs.qps(),
                met: judge(ours.qps() >= theirs.qps()),
            });
        }
        Ok(None) => println!("dnsmasq not installed (Debian's dnsmasq-base): no peer ratio"),
        Err(err) => println!("dnsmasq peer skipped: {err:#}"),
    }
    println!();
    println!(
        "{:<48} {:>12}  {:>10}  {:>6}",
        "figure", "value", "target", "ratio"
    );
    let mut missed = 0;
    for r in &rows {
        let verdict = match r.met {
            None => "",
            Some(true) => "met",
            Some(false) => {
                missed += 1;
                "MISSED"
            }
        };
        println!(
            "{:<48} {:>12.2}  {:>10}  {:>6.2}  {verdict}",
            r.name, r.value, r.target, r.ratio
        );
    }
    drop(handle);
    if args.check && missed > 0 {
        anyhow::bail!("{missed} target(s) missed");
    }
    Ok(())
}
