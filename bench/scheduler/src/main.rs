//! bench-scheduler: issue #5's scheduler targets, measured through the real processes
//! (API server with the embedded store and the scheduler) on simulated nodes:
//! - 5,000 Node objects and 10,000 pending pods, scheduled and bound at ≥ 1,000
//!   pods/s (upstream's CI floor for this workload is 680 pods/s, printed as the peer);
//! - scheduler RSS with 5,000 nodes and 10k pods (target ≤ 150 MB).
//!
//! Build first: `cargo build --release -p ferrokube -p ferrokube-bench-scheduler`,
//! then `target/release/bench-scheduler` (`--quick` for a small smoke run).

// The harness is shared with bench-controllers; this benchmark uses part of it.
#[allow(dead_code)]
#[path = "../../controllers/src/cluster.rs"]
mod cluster;

use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

/// Upstream's scheduler_perf floor for SchedulingBasic 5000 nodes / 10000 pods.
const UPSTREAM_FLOOR: f64 = 680.0;

#[derive(Parser, Debug)]
struct Args {
    /// A small run (500 nodes, 1,000 pods) to check the benchmark works.
    #[arg(long)]
    quick: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (nodes, pods) = if args.quick {
        (500, 1000)
    } else {
        (5000, 10_000)
    };
    let mut c = cluster::Cluster::start().await?;
    let t = Instant::now();
    c.create_nodes(nodes, 32).await?;
    println!(
        "{nodes} nodes registered in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let t = Instant::now();
    stream::iter(0..pods)
        .map(|i| {
            let api = api.clone();
            async move {
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": format!("p-{i}")},
                    "spec": {"containers": [{"name": "c", "image": "busybox",
                        "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}]}
                }))?;
                api.create(&PostParams::default(), &pod).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    println!(
        "{pods} pending pods created in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let bound = c.count_bound();
    let sched = c.scheduler()?;
    // Time from the first binding to the last: the scheduler's own start-up (listing
    // nodes and pods) is not scheduling throughput.
    cluster::wait_for(&bound, 1, Duration::from_secs(120)).await?;
    let start = Instant::now();
    cluster::wait_for(&bound, pods, Duration::from_secs(600)).await?;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let rate = (pods - 1) as f64 / secs;
    println!(
        "scheduled and bound {pods} pods on {nodes} nodes: {rate:.0} pods/s (target >= 1000; upstream CI floor {UPSTREAM_FLOOR:.0}; ours/upstream {:.2})",
        rate / UPSTREAM_FLOOR
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = cluster::rss_mib(sched);
    println!(
        "scheduler RSS with {nodes} nodes and {pods} pods: {rss:.1} MiB (target <= 150 MB; target/actual {:.2})",
        150.0 / 1.048_576 / rss.max(1e-9)
    );
    Ok(())
}
