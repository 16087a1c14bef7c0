//! bench-controllers: issue #5's controller-manager targets, measured through the real
//! processes (API server with the embedded store, scheduler, controller-manager as the
//! seed runs it) on simulated nodes:
//! - a Deployment of 5,000 replicas on 500 nodes: every pod created and bound
//!   (target ≤ 15 s);
//! - controller-manager RSS with 10k pods and 1k ReplicaSets (target ≤ 150 MB).
//!
//! Build first: `cargo build --release -p ferrokube -p ferrokube-bench-controllers`,
//! then `target/release/bench-controllers` (`--quick` for a small smoke run).

mod cluster;

use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, PostParams};
use serde_json::json;

#[derive(Parser, Debug)]
struct Args {
    /// A small run (50 nodes, 500 replicas, 100 ReplicaSets) to check the benchmark works.
    #[arg(long)]
    quick: bool,
}

fn template(app: &str) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}}}]}
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (nodes, replicas, sets, per_set) = if args.quick {
        (50, 500, 100, 5)
    } else {
        (500, 5000, 1000, 5)
    };
    let mut c = cluster::Cluster::start().await?;
    let t = Instant::now();
    c.create_nodes(nodes, 64).await?;
    println!(
        "{nodes} nodes registered in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let sched = c.scheduler()?;
    let cm = c.controller_manager("deployment,replicaset,garbagecollector")?;
    let bound = c.count_bound();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "big"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "big"}}, "template": template("big")}
    }))?;
    let start = Instant::now();
    deployments.create(&PostParams::default(), &d).await?;
    let took = cluster::wait_for(&bound, replicas, Duration::from_secs(300)).await?;
    let target = 15.0;
    println!(
        "Deployment of {replicas} replicas on {nodes} nodes: all pods created and bound in {:.2} s (target <= {target} s; target/actual {:.2})",
        took.as_secs_f64(),
        target / took.as_secs_f64().max(1e-9)
    );
    let _ = start;

    let rs_api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let t = Instant::now();
    stream::iter(0..sets)
        .map(|i| {
            let api = rs_api.clone();
            async move {
                let app = format!("rs-{i}");
                let rs: ReplicaSet = serde_json::from_value(json!({
                    "metadata": {"name": app},
                    "spec": {"replicas": per_set, "selector": {"matchLabels": {"app": app}}, "template": template(&app)}
                }))?;
                api.create(&PostParams::default(), &rs).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    let total = replicas + sets * per_set;
    cluster::wait_for(&bound, total, Duration::from_secs(600)).await?;
    println!(
        "{sets} more ReplicaSets x {per_set}: {total} pods bound after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cm_rss = cluster::rss_mib(cm);
    let sched_rss = cluster::rss_mib(sched);
    println!(
        "controller-manager RSS with {total} pods and {} ReplicaSets: {cm_rss:.1} MiB (target <= 150 MB; target/actual {:.2})",
        sets + 1,
        150.0 / 1.048_576 / cm_rss.max(1e-9)
    );
    println!("scheduler RSS with {nodes} nodes and {total} pods: {sched_rss:.1} MiB");
    Ok(())
}
