//! The workloads, run identically against any `Storage`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use ferrokube_storage::{RangeRequest, Storage, WatchMessage, WatchRequest};
use tokio::sync::Mutex;

use crate::figures::percentile_ms;
use crate::Sizes;

const CONCURRENCY: usize = 64;

#[derive(Debug, Default)]
pub struct Figures {
    pub put_ops: f64,
    pub put_p50: f64,
    pub put_p99: f64,
    pub get_ops: f64,
    pub get_p99: f64,
    pub range_p50: f64,
    pub watch_p50: f64,
    pub watch_p99: f64,
}

fn value_1k(i: usize) -> Bytes {
    let mut v = format!("{i:016}").into_bytes();
    v.resize(1024, b'v');
    Bytes::from(v)
}

/// Creates `count` keys `<prefix><i>` from 64 concurrent tasks; returns the
/// throughput and every latency.
async fn create_many(
    store: &Arc<dyn Storage>,
    prefix: &str,
    count: usize,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (store, next, prefix) = (store.clone(), next.clone(), prefix.to_string());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                store
                    .create(&format!("{prefix}{i:08}"), value_1k(i), None)
                    .await?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::with_capacity(count);
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((count as f64 / started.elapsed().as_secs_f64(), all))
}

pub async fn run_all(name: &str, store: Arc<dyn Storage>, sizes: Sizes) -> anyhow::Result<Figures> {
    let mut f = Figures::default();

    let (ops, mut lat) = create_many(&store, "/bench/put/", sizes.puts)
        .await
        .context("creates")?;
    f.put_ops = ops;
    f.put_p50 = percentile_ms(&mut lat, 50.0);
    f.put_p99 = percentile_ms(&mut lat, 99.0);
    println!(
        "{name}: {} creates at {ops:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
        sizes.puts, f.put_p50, f.put_p99
    );

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (store, next) = (store.clone(), next.clone());
        let (gets, puts) = (sizes.gets, sizes.puts);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= gets {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let key = format!("/bench/put/{:08}", i.wrapping_mul(2_654_435_761) % puts);
                let t = Instant::now();
                let kv = store.get(&key, None).await?;
                lat.push(t.elapsed());
                anyhow::ensure!(kv.is_some(), "{key} missing");
            }
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    f.get_ops = sizes.gets as f64 / started.elapsed().as_secs_f64();
    f.get_p99 = percentile_ms(&mut lat, 99.0);
    println!(
        "{name}: {} gets at {:.0}/s, p99 {:.2} ms",
        sizes.gets, f.get_ops, f.get_p99
    );

    create_many(&store, "/bench/range/", sizes.range_keys)
        .await
        .context("filling the range")?;
    let mut lat = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let r = store
            .range(RangeRequest::prefix("/bench/range/"))
            .await
            .context("range")?;
        lat.push(t.elapsed());
        anyhow::ensure!(
            r.kvs.len() == sizes.range_keys,
            "range returned {} keys",
            r.kvs.len()
        );
    }
    f.range_p50 = percentile_ms(&mut lat, 50.0);
    println!(
        "{name}: range of {} keys p50 {:.2} ms",
        sizes.range_keys, f.range_p50
    );

    let (watch_p50, watch_p99) = watch_fanout(&store, sizes.watchers, sizes.watch_events)
        .await
        .context("watch")?;
    f.watch_p50 = watch_p50;
    f.watch_p99 = watch_p99;
    println!(
        "{name}: one event to {} watchers: p50 {watch_p50:.2} ms, p99 {watch_p99:.2} ms",
        sizes.watchers
    );
    Ok(f)
}

/// Opens `watchers` prefix watches, then writes `events` keys one at a time (waiting
/// for every watcher to see each one) and measures write-start → receipt per watcher.
async fn watch_fanout(
    store: &Arc<dyn Storage>,
    watchers: usize,
    events: usize,
) -> anyhow::Result<(f64, f64)> {
    let received: Arc<Mutex<Vec<Vec<Instant>>>> = Arc::new(Mutex::new(vec![Vec::new(); events]));
    let seen = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let mut w = store.watch(WatchRequest::prefix("/bench/watch/")).await?;
        let (received, seen) = (received.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            while got < events {
                match tokio::time::timeout(Duration::from_secs(30), w.recv()).await {
                    Ok(Some(Ok(WatchMessage::Event(e)))) => {
                        let at = Instant::now();
                        let idx: usize = e.kv.key.trim_start_matches("/bench/watch/").parse()?;
                        received.lock().await[idx].push(at);
                        seen.fetch_add(1, Ordering::Relaxed);
                        got += 1;
                    }
                    Ok(Some(Ok(WatchMessage::Progress { .. }))) => {}
                    Ok(Some(Err(e))) => return Err(e.into()),
                    Ok(None) => anyhow::bail!("watch ended"),
                    Err(_) => anyhow::bail!("watch timed out"),
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    // Let every watch be established on the server side before writing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut sent = Vec::with_capacity(events);
    for i in 0..events {
        let before = seen.load(Ordering::Relaxed);
        sent.push(Instant::now());
        store
            .create(&format!("/bench/watch/{i}"), value_1k(i), None)
            .await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.load(Ordering::Relaxed) < before + watchers {
            anyhow::ensure!(
                Instant::now() < deadline,
                "event {i} not delivered to every watcher"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    for t in tasks {
        t.await??;
    }
    let received = received.lock().await;
    let mut lat: Vec<Duration> = Vec::new();
    for (i, times) in received.iter().enumerate() {
        lat.extend(times.iter().map(|t| t.duration_since(sent[i])));
    }
    Ok((percentile_ms(&mut lat, 50.0), percentile_ms(&mut lat, 99.0)))
}
