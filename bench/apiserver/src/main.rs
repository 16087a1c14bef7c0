//! `bench-apiserver`: ferrokube's API server (a child process on the embedded store)
//! driven over HTTPS/HTTP2 by 64 concurrent clients, with the raw embedded store measured
//! in the same run for the ratio, and the server's RSS read from /proc.

mod client;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use ferrokube_storage::Storage;
use http_body_util::BodyExt;

use crate::client::Client;

#[derive(Parser, Debug)]
#[command(
    name = "bench-apiserver",
    about = "Benchmark ferrokube's API server against its raw store in one run"
)]
struct Args {
    /// Smaller workloads (a smoke run for CI); targets are printed but not judged.
    #[arg(long)]
    quick: bool,
    /// Exit non-zero when a target is missed.
    #[arg(long)]
    check: bool,
    /// Only the authorization figure (GETs with token authn + RBAC / allow-all), for
    /// profiling it.
    #[arg(long)]
    authz_only: bool,
    /// Internal: serve the API on this data directory (the child process).
    #[arg(long, hide = true)]
    serve: Option<PathBuf>,
    #[arg(long, hide = true, default_value_t = 0)]
    port: u16,
    /// Internal: the child authenticates tokens and authorizes with RBAC.
    #[arg(long, hide = true)]
    secure: bool,
}

const CONCURRENCY: usize = 64;

fn configmap(ns: &str, i: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"cm-{i:07}","namespace":"{ns}","labels":{{"app":"bench"}}}},"data":{{"key":"{}"}}}}"#,
        "v".repeat(256)
    ))
}

fn pct(samples: &mut [Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * p / 100.0).round() as usize].as_secs_f64() * 1000.0
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The child: an API server on the embedded store in `dir`.
fn serve(dir: &Path, port: u16, secure: bool) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut cfg = ferrokube_storage_embedded::EmbeddedConfig::new(dir.join("db"));
        cfg.compaction_interval = None;
        let store = ferrokube_storage_embedded::EmbeddedStorage::open(cfg).await?;
        let (cert, key) = ferrokube_apiserver::tls::ensure_self_signed(
            &dir.join("tls"),
            &["localhost".into(), "127.0.0.1".into()],
        )?;
        let mut config = ferrokube_apiserver::ApiServerConfig {
            service_cluster_ip_range: "10.0.0.0/16".into(),
            ..ferrokube_apiserver::ApiServerConfig::new(([127, 0, 0, 1], port).into(), cert, key)
        };
        if secure {
            let tokens = dir.join("tokens.csv");
            std::fs::write(
                &tokens,
                format!("{ADMIN_TOKEN},admin,admin,\"system:masters\"\n{USER_TOKEN},bench,bench\n"),
            )?;
            config.security.authn.token_auth_file = Some(tokens);
            config.security.authn.anonymous_auth = false;
            config.security.authorization_mode = "Node,RBAC".into();
        }
        let server =
            ferrokube_apiserver::ApiServer::start(config, store as Arc<dyn Storage>).await?;
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        server.run(stopped).await;
        Ok(())
    })
}

struct Child {
    proc: std::process::Child,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

/// Starts the server child and waits for /readyz; returns it, a client, and the time
/// from spawn to ready.
async fn start_server(dir: &Path, port: u16) -> anyhow::Result<(Child, Client, Duration)> {
    start_server_with(dir, port, false).await
}

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
const USER_TOKEN: &str = "bench-user-token-0123456789";

async fn start_server_with(
    dir: &Path,
    port: u16,
    secure: bool,
) -> anyhow::Result<(Child, Client, Duration)> {
    let started = Instant::now();
    let mut args = vec![
        "--serve".to_string(),
        dir.to_str().context("dir")?.to_string(),
        "--port".into(),
        port.to_string(),
    ];
    if secure {
        args.push("--secure".into());
    }
    let proc = std::process::Command::new(std::env::current_exe()?)
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let child = Child { proc };
    let deadline = started + Duration::from_secs(60);
    loop {
        anyhow::ensure!(Instant::now() < deadline, "server did not become ready");
        if let Ok(c) = Client::connect(port, 1).await {
            let c = if secure { c.with_token(ADMIN_TOKEN) } else { c };
            if let Ok((200, _)) = c.call("GET", "/readyz", None).await {
                let ready = started.elapsed();
                let client = Client::connect(port, 8).await?;
                return Ok((child, client, ready));
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// GETs of one ConfigMap per second, with `CONCURRENCY` clients.
async fn get_rate(client: &Client, count: usize) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let (code, _) = client
                    .call("GET", "/api/v1/namespaces/authz/configmaps/target", None)
                    .await?;
                anyhow::ensure!(code == 200, "GET answered {code}");
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// Request throughput with token authentication and RBAC (with `bindings` RoleBindings
/// of other users in the namespace) over the same with anonymous AlwaysAllow. Both
/// servers run side by side and are measured in alternating rounds, so that drift of
/// the machine (other load, frequency) falls on both alike; the figures are each
/// server's median round.
async fn authz_cost(base: &Path, bindings: usize, requests: usize) -> anyhow::Result<(f64, f64)> {
    const ROUNDS: usize = 7;
    let mut servers = Vec::new();
    for secure in [false, true] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = base.join(if secure { "authz-rbac" } else { "authz-open" });
        let (child, client, _) = start_server_with(&dir, port, secure).await?;
        let admin = if secure {
            client.with_token(ADMIN_TOKEN)
        } else {
            client.clone()
        };
        admin
            .call("POST", "/api/v1/namespaces", Some(namespace("authz")))
            .await?;
        admin
            .call("POST", "/api/v1/namespaces/authz/configmaps", Some(Bytes::from_static(
                br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"target"},"data":{"k":"v"}}"#,
            )))
            .await?;
        if secure {
            bind_users(&admin, bindings).await?;
            // The bindings reach the authorizer through its watch.
            let user = client.with_token(USER_TOKEN);
            let deadline = Instant::now() + Duration::from_secs(30);
            while user
                .call("GET", "/api/v1/namespaces/authz/configmaps/target", None)
                .await?
                .0
                != 200
            {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the bench user was never allowed"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            servers.push((child, user));
        } else {
            servers.push((child, client));
        }
    }
    for (_, client) in &servers {
        get_rate(client, requests / 10).await?; // warm-up
    }
    let mut rates = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for (i, (_, client)) in servers.iter().enumerate() {
            rates[i].push(get_rate(client, requests / ROUNDS).await?);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok((median(&mut rates[0]), median(&mut rates[1])))
}

/// Creates `bindings` RoleBindings of other users, and the last one of the bench user.
async fn bind_users(admin: &Client, bindings: usize) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (admin, next) = (admin.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i > bindings {
                    return Ok::<_, anyhow::Error>(());
                }
                // The last binding is the benchmark user's.
                let user = if i == bindings { "bench".to_string() } else { format!("user-{i}") };
                let body = format!(
                    r#"{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{{"name":"rb-{i}"}},"roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"view"}},"subjects":[{{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"{user}"}}]}}"#
                );
                let (code, resp) = admin
                    .call("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/authz/rolebindings", Some(Bytes::from(body)))
                    .await?;
                anyhow::ensure!(code == 201, "RoleBinding: {code} {}", String::from_utf8_lossy(&resp));
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

async fn create_many(client: &Client, ns: &str, from: usize, count: usize) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicUsize::new(from));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, next, ns) = (client.clone(), next.clone(), ns.to_string());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= from + count {
                    return Ok::<_, anyhow::Error>(());
                }
                let (code, body) = client
                    .call(
                        "POST",
                        &format!("/api/v1/namespaces/{ns}/configmaps"),
                        Some(configmap(&ns, i)),
                    )
                    .await?;
                anyhow::ensure!(
                    code == 201,
                    "create: {code} {}",
                    String::from_utf8_lossy(&body)
                );
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

async fn raw_throughput(dir: &Path, count: usize) -> anyhow::Result<f64> {
    let mut cfg = ferrokube_storage_embedded::EmbeddedConfig::new(dir);
    cfg.compaction_interval = None;
    let store = ferrokube_storage_embedded::EmbeddedStorage::open(cfg).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (store, next) = (store.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(());
                }
                store
                    .create(
                        &format!("/configmaps/raw/cm-{i:07}"),
                        configmap("raw", i),
                        None,
                    )
                    .await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let ops = count as f64 / started.elapsed().as_secs_f64();
    store.shutdown().await;
    Ok(ops)
}

fn namespace(name: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{name}"}}}}"#
    ))
}

/// Opens `n` watches on a namespace's configmaps, writes `events` configmaps one at a
/// time and measures write start → event receipt for every watcher.
async fn watch_fanout(
    client: &Client,
    port: u16,
    n: usize,
    events: usize,
    server_pid: u32,
) -> anyhow::Result<(f64, f64, f64)> {
    client
        .call("POST", "/api/v1/namespaces", Some(namespace("watch")))
        .await?;
    let mut conns = Vec::new();
    for _ in 0..n.div_ceil(100) {
        conns.push(Client::connect(port, 1).await?);
    }
    let received = Arc::new(std::sync::Mutex::new(vec![Vec::<Instant>::new(); events]));
    let seen = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..n {
        let mut body = conns[i / 100]
            .watch("/api/v1/namespaces/watch/configmaps?watch=true&resourceVersion=0")
            .await?;
        let (received, seen) = (received.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut got = 0;
            while got < events {
                let Some(frame) = body.frame().await else {
                    break;
                };
                let Ok(data) = frame?.into_data() else {
                    continue;
                };
                let at = Instant::now();
                buf.extend_from_slice(&data);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let v: serde_json::Value = serde_json::from_slice(&line)?;
                    let name = v["object"]["metadata"]["name"].as_str().unwrap_or("");
                    if let Some(idx) = name
                        .strip_prefix("cm-")
                        .and_then(|n| n.parse::<usize>().ok())
                    {
                        if let Ok(mut r) = received.lock() {
                            r[idx].push(at);
                        }
                        seen.fetch_add(1, Ordering::Relaxed);
                        got += 1;
                    }
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut sent = Vec::new();
    for i in 0..events {
        let before = seen.load(Ordering::Relaxed);
        sent.push(Instant::now());
        client
            .call(
                "POST",
                "/api/v1/namespaces/watch/configmaps",
                Some(configmap("watch", i)),
            )
            .await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.load(Ordering::Relaxed) < before + n {
            anyhow::ensure!(
                Instant::now() < deadline,
                "event {i} did not reach every watcher"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let rss = rss_mib(server_pid);
    for t in tasks {
        t.await??;
    }
    let received = received.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut lat: Vec<Duration> = Vec::new();
    for (i, times) in received.iter().enumerate() {
        lat.extend(times.iter().map(|t| t.duration_since(sent[i])));
    }
    Ok((pct(&mut lat, 50.0), pct(&mut lat, 99.0), rss))
}

struct Row(String, f64, String, Option<bool>);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(dir) = &args.serve {
        return serve(dir, args.port, args.secure);
    }
    let (raw_n, list_n, watchers, events, bulk, writes) = if args.quick {
        (2_000, 2_000, 200, 10, 10_000, 50)
    } else {
        (20_000, 10_000, 1_000, 50, 100_000, 200)
    };
    let base = tempfile::Builder::new()
        .prefix("bench-apiserver")
        .tempdir_in(std::env::current_dir()?)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.authz_only {
        let (bindings, gets) = if args.quick {
            (1_000, 5_000)
        } else {
            (10_000, 50_000)
        };
        let (open, rbac) = rt.block_on(authz_cost(base.path(), bindings, gets))?;
        println!("API: GET throughput {open:.0}/s anonymous with AlwaysAllow, {rbac:.0}/s with token authentication and RBAC ({bindings} RoleBindings): ratio {:.2} (target >= 0.9)", rbac / open);
        return Ok(());
    }
    let mut rows: Vec<Row> = Vec::new();
    rt.block_on(async {
        println!("# ferrokube API server benchmark ({} mode)", if args.quick { "quick" } else { "full" });
        let raw = raw_throughput(&base.path().join("raw"), raw_n).await?;
        println!("raw embedded store: {raw_n} creates at {raw:.0}/s");

        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = base.path().join("server");
        let (child, client, ready_empty) = start_server(&dir, port).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let idle = rss_mib(child.proc.id());
        println!("server: ready in {:.0} ms (empty), idle RSS {idle:.1} MiB", ready_empty.as_secs_f64() * 1000.0);

        client.call("POST", "/api/v1/namespaces", Some(namespace("list"))).await?;
        let empty_rate = create_many(&client, "list", 0, list_n).await?;
        println!("API: {list_n} creates at {empty_rate:.0}/s on an (almost) empty store");
        let mut lat = Vec::new();
        for _ in 0..10 {
            let t = Instant::now();
            let (code, body) = client.call("GET", "/api/v1/namespaces/list/configmaps", None).await?;
            lat.push(t.elapsed());
            anyhow::ensure!(code == 200 && body.len() > list_n * 100, "list failed");
        }
        let list_p50 = pct(&mut lat, 50.0);
        println!("API: LIST of {list_n} configmaps p50 {list_p50:.1} ms");

        drop(client);
        drop(child);
        let (child, client, ready_full) = start_server(&dir, port).await?;
        println!("server: ready in {:.0} ms with {list_n} objects stored", ready_full.as_secs_f64() * 1000.0);

        let (w50, w99, rss_watch) = watch_fanout(&client, port, watchers, events, child.proc.id()).await?;
        println!("API: one event to {watchers} watchers p50 {w50:.1} ms, p99 {w99:.1} ms; server RSS {rss_watch:.1} MiB");

        client.call("POST", "/api/v1/namespaces", Some(namespace("single"))).await?;
        let mut body = client.watch("/api/v1/namespaces/single/configmaps?watch=true&resourceVersion=0").await?;
        let mut single = Vec::new();
        let mut buf = Vec::new();
        for i in 0..writes {
            let t = Instant::now();
            client.call("POST", "/api/v1/namespaces/single/configmaps", Some(configmap("single", i))).await?;
            loop {
                if buf.contains(&b'\n') {
                    let pos = buf.iter().position(|b| *b == b'\n').unwrap_or(0);
                    buf.drain(..=pos);
                    break;
                }
                let frame = body.frame().await.context("watch ended")??;
                if let Ok(d) = frame.into_data() {
                    buf.extend_from_slice(&d);
                }
            }
            single.push(t.elapsed());
        }
        let single_p99 = pct(&mut single, 99.0);
        println!("API: create → watch event p99 {single_p99:.2} ms ({writes} writes)");

        client.call("POST", "/api/v1/namespaces", Some(namespace("bulk"))).await?;
        let t = Instant::now();
        create_many(&client, "bulk", 0, bulk).await?;
        println!("API: loaded {bulk} more objects in {:.1} s", t.elapsed().as_secs_f64());
        let full_rate = create_many(&client, "bulk", bulk, list_n).await?;
        println!("API: {list_n} creates at {full_rate:.0}/s with {} objects stored", bulk + list_n + watchers.min(events));
        drop(child);

        let (bindings, gets) = if args.quick { (1_000, 5_000) } else { (10_000, 50_000) };
        let (open, rbac) = authz_cost(base.path(), bindings, gets).await?;
        println!("API: GET throughput {open:.0}/s anonymous with AlwaysAllow, {rbac:.0}/s with token authentication and RBAC ({bindings} RoleBindings)");

        let judge = |ok: bool| if args.quick { None } else { Some(ok) };
        rows.push(Row("create throughput over HTTPS / raw store".into(), empty_rate / raw, "target >= 0.5".into(), judge(empty_rate / raw >= 0.5)));
        rows.push(Row(format!("LIST of {list_n} configmaps p50 (ms)"), list_p50, "target <= 50".into(), judge(list_p50 <= 50.0)));
        rows.push(Row(format!("one event to {watchers} watchers p99 (ms)"), w99, "target <= 100".into(), judge(w99 <= 100.0)));
        rows.push(Row(format!("server RSS with {watchers} watchers and {list_n}+ objects (MiB)"), rss_watch, "target <= 200".into(), judge(rss_watch <= 200.0)));
        rows.push(Row("create → watch event p99 (ms)".into(), single_p99, "target <= 20".into(), judge(single_p99 <= 20.0)));
        rows.push(Row(format!("create throughput with {bulk}+ stored / empty store"), full_rate / empty_rate, "target >= 0.8".into(), judge(full_rate / empty_rate >= 0.8)));
        rows.push(Row("idle server RSS (MiB)".into(), idle, "target <= 30".into(), judge(idle <= 30.0)));
        rows.push(Row(format!("GET rate, authn + RBAC ({bindings} bindings) / allow-all"), rbac / open, "target >= 0.9".into(), judge(rbac / open >= 0.9)));
        rows.push(Row(format!("start → /readyz with {list_n} objects (ms)"), ready_full.as_secs_f64() * 1000.0, "target <= 1000".into(), judge(ready_full.as_millis() <= 1000)));
        Ok::<_, anyhow::Error>(())
    })?;
    println!();
    println!("{:<58} {:>10}  target", "figure", "value");
    let mut missed = 0;
    for Row(name, v, target, ok) in &rows {
        let verdict = match ok {
            None => target.clone(),
            Some(true) => format!("met ({target})"),
            Some(false) => {
                missed += 1;
                format!("MISSED ({target})")
            }
        };
        println!("{name:<58} {v:>10.2}  {verdict}");
    }
    if args.check && missed > 0 {
        anyhow::bail!("{missed} target(s) missed");
    }
    Ok(())
}
