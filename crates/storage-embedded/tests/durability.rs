#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Restart, corruption and locking behaviour of the embedded store's files.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrokube_storage::{RangeRequest, Storage, StorageError, WatchMessage, WatchRequest};
use ferrokube_storage_embedded::{EmbeddedConfig, EmbeddedStorage};

fn config(dir: &Path, snapshot_threshold_bytes: u64) -> EmbeddedConfig {
    let mut c = EmbeddedConfig::new(dir);
    c.snapshot_threshold_bytes = snapshot_threshold_bytes;
    c.compaction_interval = None;
    c
}

async fn open(dir: &Path, threshold: u64) -> Arc<EmbeddedStorage> {
    EmbeddedStorage::open(config(dir, threshold)).await.unwrap()
}

fn files(dir: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Writes a mix of creates, updates, deletes and a compaction; returns the final state.
async fn workload(s: &EmbeddedStorage, n: usize) -> Vec<(String, Bytes, i64)> {
    for i in 0..n {
        let key = format!("/w/{:05}", i % (n / 3).max(1));
        let value = Bytes::from(format!("value-{i}-{}", "x".repeat(i % 200)));
        match s.get(&key, None).await.unwrap() {
            Some(kv) if i % 7 == 0 => {
                s.delete(&key, Some(kv.mod_revision)).await.unwrap();
            }
            Some(kv) => {
                s.update(&key, value, kv.mod_revision, None).await.unwrap();
            }
            None => {
                s.create(&key, value, None).await.unwrap();
            }
        }
        if i == n / 2 {
            let rev = s.current_revision().await.unwrap();
            s.compact(rev - 10).await.unwrap();
        }
    }
    let r = s.range(RangeRequest::prefix("/w/")).await.unwrap();
    r.kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value, kv.mod_revision))
        .collect()
}

#[tokio::test]
async fn state_survives_restart_across_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), 8 << 10).await;
    let before = workload(&s, 1500).await;
    let stats = s.stats();
    s.shutdown().await;
    // Snapshots were taken and old WAL segments deleted.
    assert_eq!(
        files(dir.path(), "snap-").len(),
        1,
        "{:?}",
        files(dir.path(), "")
    );
    assert!(
        files(dir.path(), "wal-").len() <= 2,
        "{:?}",
        files(dir.path(), "wal-")
    );

    let s = open(dir.path(), 8 << 10).await;
    assert_eq!(s.stats(), stats);
    let r = s.range(RangeRequest::prefix("/w/")).await.unwrap();
    let after: Vec<_> = r
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value, kv.mod_revision))
        .collect();
    assert_eq!(after, before);
    // History after the compaction point is still readable after restart.
    let old = s
        .range(RangeRequest::prefix("/w/").at_revision(stats.revision - 5))
        .await;
    assert!(old.is_ok());
    let err = s
        .get("/w/00001", Some(stats.compacted_revision - 1))
        .await
        .unwrap_err();
    assert!(err.is_compacted());
    // And writes continue at the next revision.
    let kv = s
        .create("/after/restart", Bytes::from_static(b"x"), None)
        .await
        .unwrap();
    assert_eq!(kv.mod_revision, stats.revision + 1);
}

#[tokio::test]
async fn watch_resumes_from_a_revision_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), 1 << 20).await;
    let first = s
        .create("/r/a", Bytes::from_static(b"1"), None)
        .await
        .unwrap();
    s.create("/r/b", Bytes::from_static(b"2"), None)
        .await
        .unwrap();
    s.shutdown().await;
    let s = open(dir.path(), 1 << 20).await;
    let mut w = s
        .watch(WatchRequest::prefix("/r/").from_revision(first.mod_revision))
        .await
        .unwrap();
    let keys: Vec<String> = futures_keys(&mut w, 2).await;
    assert_eq!(keys, ["/r/a", "/r/b"]);
}

async fn futures_keys(w: &mut ferrokube_storage::WatchStream, n: usize) -> Vec<String> {
    let mut keys = Vec::new();
    while keys.len() < n {
        match tokio::time::timeout(Duration::from_secs(5), w.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchMessage::Event(e) => keys.push(e.kv.key),
            WatchMessage::Progress { .. } => {}
        }
    }
    keys
}

#[tokio::test]
async fn second_open_of_a_locked_directory_fails() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), 1 << 20).await;
    let err = EmbeddedStorage::open(config(dir.path(), 1 << 20))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("LOCK"), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
    s.shutdown().await;
    let again = open(dir.path(), 1 << 20).await;
    again.shutdown().await;
}

#[tokio::test]
async fn torn_wal_tail_is_dropped_and_earlier_writes_kept() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), 1 << 30).await;
    for i in 0..10 {
        s.create(&format!("/t/{i}"), Bytes::from(vec![b'a'; 100]), None)
            .await
            .unwrap();
    }
    let rev = s.current_revision().await.unwrap();
    s.shutdown().await;
    // Simulate a crash in the middle of appending an unacknowledged batch.
    let wal = dir.path().join(&files(dir.path(), "wal-")[0]);
    let mut data = std::fs::read(&wal).unwrap();
    let good_len = data.len();
    data.extend_from_slice(&[0x41, 0x57, 0x46, 0x4b, 200, 0, 0, 0, 1, 2]);
    std::fs::write(&wal, &data).unwrap();
    let s = open(dir.path(), 1 << 30).await;
    assert_eq!(s.current_revision().await.unwrap(), rev);
    assert_eq!(
        s.range(RangeRequest::prefix("/t/")).await.unwrap().count,
        10
    );
    assert_eq!(
        std::fs::metadata(&wal).unwrap().len() as usize,
        good_len,
        "torn tail truncated"
    );
    s.create("/t/next", Bytes::from_static(b"x"), None)
        .await
        .unwrap();
    s.shutdown().await;
    let s = open(dir.path(), 1 << 30).await;
    assert_eq!(
        s.range(RangeRequest::prefix("/t/")).await.unwrap().count,
        11
    );
}

#[tokio::test]
async fn corrupt_wal_stops_startup_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), 1 << 30).await;
    for i in 0..10 {
        s.create(&format!("/c/{i}"), Bytes::from(vec![b'a'; 100]), None)
            .await
            .unwrap();
    }
    s.shutdown().await;
    let name = files(dir.path(), "wal-")[0].clone();
    let wal = dir.path().join(&name);
    let mut data = std::fs::read(&wal).unwrap();
    data[60] ^= 0x55; // inside an early record, valid records follow
    std::fs::write(&wal, &data).unwrap();
    let err = EmbeddedStorage::open(config(dir.path(), 1 << 30))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(&name), "{err}");
    // Nothing was modified by the failed start.
    assert_eq!(std::fs::read(&wal).unwrap(), data);
}

#[tokio::test]
async fn corrupt_or_truncated_snapshot_stops_startup_naming_the_file() {
    for damage in ["flip", "truncate"] {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), 2048).await;
        for i in 0..100 {
            s.create(&format!("/s/{i}"), Bytes::from(vec![b'b'; 100]), None)
                .await
                .unwrap();
        }
        // Let the background snapshot finish before shutting down.
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.shutdown().await;
        let name = files(dir.path(), "snap-")
            .pop()
            .expect("a snapshot was written");
        let path = dir.path().join(&name);
        let data = std::fs::read(&path).unwrap();
        match damage {
            "flip" => {
                let mut d = data.clone();
                d[data.len() / 2] ^= 1;
                std::fs::write(&path, d).unwrap();
            }
            _ => std::fs::write(&path, &data[..data.len() - 100]).unwrap(),
        }
        let err = EmbeddedStorage::open(config(dir.path(), 2048))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::Corrupt { .. }),
            "{damage}: {err}"
        );
        assert!(err.to_string().contains(&name), "{damage}: {err}");
    }
}

/// Byte offsets of the records in a WAL segment (framing: magic, len, crc, payload).
fn record_offsets(data: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        offsets.push(pos);
        let len = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap()) as usize;
        pos += 12 + len;
    }
    offsets.push(pos);
    offsets
}

#[tokio::test]
async fn records_missing_from_the_wal_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), 1 << 30).await;
    for i in 0..6 {
        s.create(&format!("/m/{i}"), Bytes::from_static(b"v"), None)
            .await
            .unwrap();
    }
    s.shutdown().await;
    let name = files(dir.path(), "wal-")[0].clone();
    let path = dir.path().join(&name);
    let data = std::fs::read(&path).unwrap();
    let at = record_offsets(&data);
    assert_eq!(at.len(), 7);
    // Cut out the 3rd and 4th records: every remaining record is intact.
    let mut cut = data[..at[2]].to_vec();
    cut.extend_from_slice(&data[at[4]..]);
    std::fs::write(&path, &cut).unwrap();
    let err = EmbeddedStorage::open(config(dir.path(), 1 << 30))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains(&name) && err.to_string().contains("missing"),
        "{err}"
    );
}

#[tokio::test]
async fn oversized_value_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), 1 << 30).await;
    let before = s.current_revision().await.unwrap();
    let err = s
        .create("/big", Bytes::from(vec![0; 2 << 20]), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    s.shutdown().await;
    let s = open(dir.path(), 1 << 30).await;
    assert_eq!(s.current_revision().await.unwrap(), before);
}

#[tokio::test]
async fn automatic_compaction_bounds_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 1 << 30);
    c.compaction_interval = Some(Duration::from_millis(200));
    let s = EmbeddedStorage::open(c).await.unwrap();
    let mut kv = s
        .create("/hot", Bytes::from_static(b"0"), None)
        .await
        .unwrap();
    for i in 0..20 {
        kv = s
            .update("/hot", Bytes::from(i.to_string()), kv.mod_revision, None)
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while s.stats().compacted_revision < kv.mod_revision {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no automatic compaction"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(s
        .get("/hot", Some(kv.mod_revision - 5))
        .await
        .unwrap_err()
        .is_compacted());
    assert_eq!(s.get("/hot", None).await.unwrap().unwrap(), kv);
}
