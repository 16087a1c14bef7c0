//! Memory and restart figures of the embedded store, each measured in a fresh child
//! process so that nothing else in the benchmark inflates the resident set.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use ferrokube_storage::Storage;
use ferrokube_storage_embedded::{EmbeddedConfig, EmbeddedStorage};

pub struct Memory {
    pub rss_ratio: f64,
    pub reopen_rss_ratio: f64,
    pub reopen_ms: f64,
}

const KEY_PREFIX: &str = "/registry/configmaps/default/object-";

fn rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .context("bad VmRSS")?
        .parse()?;
    Ok(kb * 1024)
}

fn raw_size(objects: usize) -> f64 {
    (objects * (1024 + KEY_PREFIX.len() + 8)) as f64
}

/// Runs in the child: the first run on an empty directory inserts `objects` values of
/// 1 KiB; a run on a filled directory reopens it. Prints `RSS_DELTA <bytes>` and
/// `OPEN_MS <ms>`.
pub fn child(dir: &Path, objects: usize) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let fresh = !dir.exists();
        let base = rss_bytes()?;
        let started = Instant::now();
        let mut config = EmbeddedConfig::new(dir);
        config.compaction_interval = None;
        let store = EmbeddedStorage::open(config).await?;
        let open_ms = started.elapsed().as_secs_f64() * 1000.0;
        if fresh {
            // Concurrent creates, as an API server would issue them.
            let mut pending = Vec::new();
            for i in 0..objects {
                let mut v = format!("{i:016}").into_bytes();
                v.resize(1024, b'd');
                let store = store.clone();
                pending.push(tokio::spawn(async move {
                    store
                        .create(&format!("{KEY_PREFIX}{i:08}"), Bytes::from(v), None)
                        .await
                }));
                if pending.len() == 64 {
                    for p in pending.drain(..) {
                        p.await??;
                    }
                }
            }
            for p in pending {
                p.await??;
            }
        }
        anyhow::ensure!(
            store.stats().keys == objects,
            "expected {objects} keys, found {}",
            store.stats().keys
        );
        let delta = rss_bytes()?.saturating_sub(base);
        println!("RSS_DELTA {delta}");
        println!("OPEN_MS {open_ms}");
        store.shutdown().await;
        Ok(())
    })
}

fn run_child(dir: &Path, objects: usize) -> anyhow::Result<(f64, f64)> {
    let out = Command::new(std::env::current_exe()?)
        .arg("--memory-child")
        .arg(dir)
        .arg("--objects")
        .arg(objects.to_string())
        .output()
        .context("running the memory child")?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "memory child failed: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> anyhow::Result<f64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in {text}"))?;
        Ok(line[name.len()..].trim().parse()?)
    };
    Ok((field("RSS_DELTA")?, field("OPEN_MS")?))
}

pub fn measure(dir: &Path, objects: usize) -> anyhow::Result<Memory> {
    let (rss, _) = run_child(dir, objects)?;
    let (reopen_rss, reopen_ms) = run_child(dir, objects)?;
    let raw = raw_size(objects);
    println!(
        "embedded: {objects} objects of 1 KiB: RSS +{:.1} MiB filling, +{:.1} MiB after reopen ({:.1} ms), raw {:.1} MiB",
        rss / 1048576.0,
        reopen_rss / 1048576.0,
        reopen_ms,
        raw / 1048576.0
    );
    Ok(Memory {
        rss_ratio: rss / raw,
        reopen_rss_ratio: reopen_rss / raw,
        reopen_ms,
    })
}
