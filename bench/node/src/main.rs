//! bench-node: issue #6's node targets on this machine, with real containerd, runc and
//! the bridge CNI plugin (root needed):
//! 1. `ferrokube server` cold start (empty data dir: PKI, store, containerd, images,
//!    pod network, kubelet) until its node is Ready — target ≤ 3 s; then the RSS of its
//!    ferrokube process with no pods — target ≤ 100 MB (containerd printed apart);
//! 2. on a `server --disable-agent` joined by a `ferrokube agent` process: 50 pods
//!    created at once, create → Running latency p50 ≤ 1 s and p99 ≤ 2 s;
//! 3. the agent (kubelet and pod network) with 100 running pods: RSS ≤ 50 MB and
//!    ≤ 2 % of a core while idle.
//!
//! No upstream node can be run here (no registry, no internet), so each line prints
//! the target as the peer: target/actual (≥ 1 is met).
//!
//! Build first: `cargo build --release -p ferrokube -p ferrokube-bench-node`, then
//! `target/release/bench-node` (`--quick`: 10 and 20 pods, shorter windows).

// The harness is shared with bench-controllers; this benchmark uses part of it.
#[allow(dead_code)]
#[path = "../../controllers/src/cluster.rs"]
mod cluster;
mod lab;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;

#[derive(Parser, Debug)]
struct Args {
    /// A small run (10 pods at once, 20 running, 5 s idle window) to check it works.
    #[arg(long)]
    quick: bool,
}

/// `q`-quantile of sorted `v` (nearest rank).
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let rank = (q * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// When each pod of `default` was first seen Running, fed by a watch.
fn running_times(client: kube::Client) -> Arc<Mutex<HashMap<String, Instant>>> {
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let out = seen.clone();
    let api: Api<Pod> = Api::namespaced(client, "default");
    tokio::spawn(async move {
        let mut s = Box::pin(watcher(api, watcher::Config::default()).default_backoff());
        while let Some(ev) = s.next().await {
            let pod = match ev {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
                _ => continue,
            };
            let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            if running {
                let name = pod.metadata.name.unwrap_or_default();
                let mut seen = seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                seen.entry(name).or_insert_with(Instant::now);
            }
        }
    });
    out
}

/// Creates pods `first..first+n` at once; returns when each create was sent.
async fn create_pods(
    client: &kube::Client,
    first: usize,
    n: usize,
) -> anyhow::Result<HashMap<String, Instant>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let sent = stream::iter(first..first + n)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = format!("bench-{i}");
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": name},
                    "spec": {
                        "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "c", "image": lab::IMAGE,
                            "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]
                    }
                }))?;
                let at = Instant::now();
                api.create(&PostParams::default(), &pod).await?;
                anyhow::Ok((name, at))
            }
        })
        .buffer_unordered(n.max(1))
        .try_collect::<HashMap<_, _>>()
        .await?;
    Ok(sent)
}

/// Waits until every pod in `sent` was seen Running; their latencies in seconds.
async fn wait_running(
    seen: &Mutex<HashMap<String, Instant>>,
    sent: &HashMap<String, Instant>,
    limit: Duration,
) -> anyhow::Result<Vec<f64>> {
    let start = Instant::now();
    loop {
        {
            let seen = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut lat: Vec<f64> = sent
                .iter()
                .filter_map(|(name, at)| {
                    seen.get(name).map(|r| r.duration_since(*at).as_secs_f64())
                })
                .collect();
            if lat.len() == sent.len() {
                lat.sort_by(f64::total_cmp);
                return Ok(lat);
            }
            anyhow::ensure!(
                start.elapsed() < limit,
                "only {} of {} pods Running after {limit:?}",
                lat.len(),
                sent.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ratio(target: f64, actual: f64) -> f64 {
    target / actual.max(1e-9)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (at_once, running, idle) = if args.quick {
        (10, 20, Duration::from_secs(5))
    } else {
        (50, 100, Duration::from_secs(30))
    };
    let bin = cluster::ferrokube_binary()?;
    let image = lab::busybox_archive()?;

    // 1. Cold start of the all-in-one server, then its memory with no pods.
    {
        let mut l = lab::Lab::new(&bin, &image)?;
        let started = Instant::now();
        let server = l.server(&[])?;
        let client = l.client(Duration::from_secs(30)).await?;
        l.wait_ready(&client, lab::SERVER_NODE, Duration::from_secs(60))
            .await?;
        let cold = started.elapsed().as_secs_f64();
        println!(
            "server cold start to a Ready node: {cold:.2} s (target <= 3 s; target/actual {:.2})",
            ratio(3.0, cold)
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        let rss = cluster::rss_mib(server);
        println!(
            "server RSS with no pods (control plane, kubelet, pod network in one process): {rss:.1} MiB (target <= 100 MB; target/actual {:.2}); containerd beside it: {:.1} MiB",
            ratio(100.0 / 1.048_576, rss),
            l.containerd_rss_mib()
        );
    }

    // 2. Pods created at once on an agent's node.
    let mut l = lab::Lab::new(&bin, &image)?;
    l.server(&["--disable-agent"])?;
    let client = l.client(Duration::from_secs(30)).await?;
    let agent = l.agent()?;
    l.wait_ready(&client, lab::AGENT_NODE, Duration::from_secs(60))
        .await?;
    let seen = running_times(client.clone());
    // One pod first, so the node's first sandbox (image unpack, network setup) is
    // not counted against the batch.
    let warm = create_pods(&client, 0, 1).await?;
    wait_running(&seen, &warm, Duration::from_secs(60)).await?;
    let cpu_before = lab::cpu_by_role(&l);
    let busy_before = lab::machine_busy_seconds();
    let burst = Instant::now();
    let sent = create_pods(&client, 1, at_once).await?;
    let lat = wait_running(&seen, &sent, Duration::from_secs(180)).await?;
    let burst = burst.elapsed().as_secs_f64();
    let busy = lab::machine_busy_seconds() - busy_before;
    let cpu_after = lab::cpu_by_role(&l);
    let (p50, p99) = (quantile(&lat, 0.5), quantile(&lat, 0.99));
    println!(
        "{at_once} pods created at once, create -> Running: p50 {p50:.2} s (target <= 1 s; target/actual {:.2}), p99 {p99:.2} s (target <= 2 s; target/actual {:.2}), max {:.2} s",
        ratio(1.0, p50),
        ratio(2.0, p99),
        lat.last().copied().unwrap_or_default()
    );
    // Where the time went: the machine's CPU while the pods started, by process.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let by_role: Vec<String> = cpu_after
        .iter()
        .map(|(role, after)| {
            let used = after - cpu_before.get(role).copied().unwrap_or(0.0);
            format!(
                "{role} {used:.1} s ({:.0} ms a pod)",
                used * 1000.0 / at_once as f64
            )
        })
        .collect();
    println!(
        "  CPU while they started: {busy:.1} s busy of {:.1} s ({cores} cores x {burst:.1} s): {}",
        cores as f64 * burst,
        by_role.join(", ")
    );

    // 3. The agent with `running` pods, idle.
    let more = create_pods(&client, 1 + at_once, running - 1 - at_once).await?;
    wait_running(&seen, &more, Duration::from_secs(300)).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = lab::cpu_seconds(agent)?;
    let t = Instant::now();
    tokio::time::sleep(idle).await;
    let cpu = (lab::cpu_seconds(agent)? - before) / t.elapsed().as_secs_f64() * 100.0;
    let rss = cluster::rss_mib(agent);
    println!(
        "agent (kubelet + pod network) with {running} running pods: RSS {rss:.1} MiB (target <= 50 MB; target/actual {:.2}); idle CPU over {:.0} s {cpu:.2} % of a core (target <= 2 %; target/actual {:.2})",
        ratio(50.0 / 1.048_576, rss),
        idle.as_secs_f64(),
        ratio(2.0, cpu)
    );
    Ok(())
}
