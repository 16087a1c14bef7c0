//! `bench-storage`: measures the embedded store and a single local etcd member (both
//! durable: fsync on every commit) with the same workloads through the same `Storage`
//! trait, in one run, and prints each figure with the ratio embedded/etcd.
//!
//! Workloads: creates of 1 KiB values from 64 concurrent writers; gets from 64
//! concurrent readers; a LIST of a 10k-key prefix; one event delivered to 1,000 prefix
//! watchers; and (embedded only, in a child process) RSS with 100k 1 KiB objects and the
//! time to reopen that store.

mod figures;
mod memory;
mod workloads;

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use ferrokube_storage::Storage;
use ferrokube_storage_embedded::{EmbeddedConfig, EmbeddedStorage};
use ferrokube_storage_etcd::testing::EtcdCluster;
use ferrokube_storage_etcd::EtcdStorage;

use crate::figures::{Report, Target};

#[derive(Parser, Debug)]
#[command(
    name = "bench-storage",
    about = "Benchmark the embedded store against a local etcd in one run"
)]
struct Args {
    /// Smaller workloads (a smoke run for CI); targets are printed but not judged.
    #[arg(long)]
    quick: bool,
    /// Exit non-zero when a target is missed.
    #[arg(long)]
    check: bool,
    /// Directory for the stores' data (default: a temporary directory on the same disk
    /// for both backends).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Internal: run the memory measurement in this process (used by the parent run).
    #[arg(long, hide = true)]
    memory_child: Option<std::path::PathBuf>,
    #[arg(long, hide = true, default_value_t = 100_000)]
    objects: usize,
}

#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub puts: usize,
    pub gets: usize,
    pub range_keys: usize,
    pub watchers: usize,
    pub watch_events: usize,
    pub memory_objects: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(dir) = &args.memory_child {
        return memory::child(dir, args.objects);
    }
    let sizes = if args.quick {
        Sizes {
            puts: 4_000,
            gets: 10_000,
            range_keys: 10_000,
            watchers: 1_000,
            watch_events: 10,
            memory_objects: 20_000,
        }
    } else {
        Sizes {
            puts: 30_000,
            gets: 100_000,
            range_keys: 10_000,
            watchers: 1_000,
            watch_events: 50,
            memory_objects: 100_000,
        }
    };
    let base = match &args.data_dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::Builder::new()
            .prefix("bench-storage")
            .tempdir_in(std::env::current_dir()?)?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut report = Report::default();

    rt.block_on(async {
        println!(
            "# ferrokube storage benchmark ({} mode)",
            if args.quick { "quick" } else { "full" }
        );
        let mut config = EmbeddedConfig::new(base.path().join("embedded"));
        config.compaction_interval = None;
        let embedded = EmbeddedStorage::open(config)
            .await
            .context("opening the embedded store")?;
        let e = workloads::run_all("embedded", embedded.clone() as Arc<dyn Storage>, sizes).await?;
        embedded.shutdown().await;
        drop(embedded);

        let cluster = EtcdCluster::start(1, false).await;
        let etcd = EtcdStorage::connect(cluster.config())
            .await
            .context("connecting to etcd")?;
        let x = workloads::run_all("etcd", Arc::new(etcd) as Arc<dyn Storage>, sizes).await?;
        drop(cluster);

        report.compare(
            "create throughput (ops/s), 64 writers",
            e.put_ops,
            x.put_ops,
            Target::RatioAtLeast(3.0),
        );
        report.compare(
            "create latency p50 (ms)",
            e.put_p50,
            x.put_p50,
            Target::None,
        );
        report.compare(
            "create latency p99 (ms)",
            e.put_p99,
            x.put_p99,
            Target::RatioAtMost(1.0),
        );
        report.compare(
            "get throughput (ops/s), 64 readers",
            e.get_ops,
            x.get_ops,
            Target::None,
        );
        report.compare("get latency p99 (ms)", e.get_p99, x.get_p99, Target::None);
        report.compare(
            &format!("range of {} keys p50 (ms)", sizes.range_keys),
            e.range_p50,
            x.range_p50,
            Target::None,
        );
        report.compare(
            &format!("watch delivery to {} watchers p50 (ms)", sizes.watchers),
            e.watch_p50,
            x.watch_p50,
            Target::None,
        );
        report.compare(
            &format!("watch delivery to {} watchers p99 (ms)", sizes.watchers),
            e.watch_p99,
            x.watch_p99,
            Target::EmbeddedAtMost(50.0),
        );
        Ok::<_, anyhow::Error>(())
    })?;

    let mem = memory::measure(&base.path().join("memory"), sizes.memory_objects)?;
    report.single(
        &format!(
            "embedded RSS with {}k objects of 1 KiB / raw data size",
            sizes.memory_objects / 1000
        ),
        mem.rss_ratio,
        Target::EmbeddedAtMost(2.0),
    );
    report.single(
        "embedded RSS after reopen / raw data size",
        mem.reopen_rss_ratio,
        Target::EmbeddedAtMost(2.0),
    );
    report.single(
        &format!(
            "embedded reopen time with {}k objects (ms)",
            sizes.memory_objects / 1000
        ),
        mem.reopen_ms,
        Target::EmbeddedAtMost(1000.0),
    );
    report.print();
    if args.check && !args.quick && report.missed() > 0 {
        anyhow::bail!("{} target(s) missed", report.missed());
    }
    Ok(())
}
