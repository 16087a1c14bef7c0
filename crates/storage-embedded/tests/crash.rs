#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Crash test: a writer process doing concurrent writes is SIGKILLed repeatedly; after
//! every kill the store must open cleanly, hold every write acknowledged before the kill,
//! and continue at revisions above every acknowledged one.
//!
//! The test binary re-runs itself as the writer (selected by an environment variable),
//! so no extra binary is needed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrokube_storage::{guaranteed_update, Storage, StorageError, UpdateDecision};
use ferrokube_storage_embedded::{EmbeddedConfig, EmbeddedStorage};

const CHILD_ENV: &str = "FERROKUBE_CRASH_WRITER_DIR";
const ROUNDS: usize = 8;
const WRITERS: usize = 16;

fn value_for(key: &str) -> Bytes {
    Bytes::from(format!("{key}|").repeat(8))
}

fn config(dir: &str) -> EmbeddedConfig {
    let mut c = EmbeddedConfig::new(dir);
    // Small snapshots so kills also land during WAL rotation and snapshot writing.
    c.snapshot_threshold_bytes = 256 << 10;
    c
}

/// The writer: prints `OPEN <rev>` once recovered, then `ACK <key> <rev>` for each
/// create and `COUNT <writer> <n> <rev>` for each counter update it got acknowledged.
fn writer(dir: String, round: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = EmbeddedStorage::open(config(&dir)).await.unwrap();
        // libtest has printed "test <name> ... " without a newline: start a fresh line.
        println!("\nOPEN {}", store.current_revision().await.unwrap());
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let store: Arc<dyn Storage> = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("/crash/r{round}/w{w}/{i}");
                    let kv = store.create(&key, value_for(&key), None).await.unwrap();
                    println!("ACK {key} {}", kv.mod_revision);
                    let counter = format!("/crash/counter/{w}");
                    let kv = guaranteed_update::<StorageError, _>(&*store, &counter, true, |cur| {
                        let n: u64 =
                            cur.map_or(0, |kv| String::from_utf8_lossy(&kv.value).parse().unwrap());
                        Ok(UpdateDecision::Write {
                            value: Bytes::from((n + 1).to_string()),
                            ttl: None,
                        })
                    })
                    .await
                    .unwrap();
                    println!(
                        "COUNT {w} {} {}",
                        String::from_utf8_lossy(&kv.value),
                        kv.mod_revision
                    );
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let round = std::env::var("FERROKUBE_CRASH_ROUND")
            .unwrap()
            .parse()
            .unwrap();
        return writer(dir, round);
    }
    let dir = tempfile::tempdir().unwrap();
    let dir_str = dir.path().to_str().unwrap().to_string();
    let exe = std::env::current_exe().unwrap();
    let mut acked: BTreeMap<String, i64> = BTreeMap::new();
    let mut counters: BTreeMap<usize, u64> = BTreeMap::new();
    let mut max_acked_rev = 0;
    let rt = tokio::runtime::Runtime::new().unwrap();

    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "acknowledged_writes_survive_sigkill",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir_str)
            .env("FERROKUBE_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        // Let it write for a varying while, then kill it without warning.
        std::thread::sleep(Duration::from_millis(300 + (round as u64 * 137) % 500));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();

        let mut opened_at = None;
        let mut acks_this_round = 0;
        for line in &lines {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["OPEN", rev] => opened_at = Some(rev.parse::<i64>().unwrap()),
                ["ACK", key, rev] => {
                    let rev: i64 = rev.parse().unwrap();
                    // Every new write lands above the revision the store reopened at,
                    // which itself is at or above everything acknowledged before.
                    let opened = opened_at.expect("ACK before OPEN");
                    assert!(
                        rev > opened,
                        "round {round}: revision {rev} not above reopen revision {opened}"
                    );
                    acked.insert(key.to_string(), rev);
                    acks_this_round += 1;
                }
                ["COUNT", w, n, _rev] => {
                    let e = counters.entry(w.parse().unwrap()).or_default();
                    *e = (*e).max(n.parse().unwrap());
                }
                _ => {}
            }
        }
        let opened_at = opened_at.expect("writer never opened the store");
        assert!(
            opened_at >= max_acked_rev,
            "round {round}: reopened at {opened_at}, below acknowledged {max_acked_rev}"
        );
        assert!(
            acks_this_round > 0,
            "round {round}: no write was acknowledged"
        );
        max_acked_rev = max_acked_rev.max(acked.values().copied().max().unwrap_or(0));

        // Verify in this process: everything acknowledged in any round is there.
        rt.block_on(async {
            let store = EmbeddedStorage::open(config(&dir_str)).await.unwrap();
            let current = store.current_revision().await.unwrap();
            assert!(
                current >= max_acked_rev,
                "round {round}: store at {current}, acknowledged {max_acked_rev}"
            );
            for (key, rev) in &acked {
                let kv = store
                    .get(key, None)
                    .await
                    .unwrap()
                    .unwrap_or_else(|| panic!("round {round}: lost {key}"));
                assert_eq!(kv.mod_revision, *rev, "{key}");
                assert_eq!(kv.value, value_for(key), "{key}");
            }
            for (w, n) in &counters {
                let kv = store
                    .get(&format!("/crash/counter/{w}"), None)
                    .await
                    .unwrap()
                    .unwrap();
                let stored: u64 = String::from_utf8_lossy(&kv.value).parse().unwrap();
                assert!(
                    stored >= *n,
                    "counter {w}: stored {stored} < acknowledged {n}"
                );
            }
            store.shutdown().await;
        });
        eprintln!(
            "round {round}: {acks_this_round} acknowledged creates survived (total {})",
            acked.len()
        );
    }
    let started = Instant::now();
    rt.block_on(async {
        let store = EmbeddedStorage::open(config(&dir_str)).await.unwrap();
        assert!(store.stats().keys >= acked.len());
        store.shutdown().await;
    });
    eprintln!("final reopen in {:?}", started.elapsed());
}
