//! Start-up: lock the data directory, load the newest snapshot, replay the WAL written
//! after it, and check that revisions are contiguous. Anything that does not add up
//! stops start-up with an error naming the file, rather than serving partial data.

use std::fs::File;
use std::path::{Path, PathBuf};

use ferrokube_storage::{Result, StorageError};

use crate::mvcc::State;
use crate::snapshot::{self, parse_snapshot_name};
use crate::wal::{self, parse_segment_name, Record};

pub(crate) const LOCK_FILE: &str = "LOCK";

/// What recovery hands to the commit thread.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub state: State,
    /// The segment to append to (its first revision) and its valid length.
    pub tail_segment: Option<(i64, u64)>,
    /// WAL bytes that a snapshot does not cover yet.
    pub wal_bytes: u64,
}

/// Creates the data directory (mode 0700) if needed and takes its exclusive lock.
pub(crate) fn lock(dir: &Path) -> Result<File> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StorageError::io("creating data directory", dir, e))?;
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StorageError::io("opening", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::io(
            "locking",
            &path,
            std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "the data directory is in use by another ferrokube process",
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(StorageError::io("locking", &path, e)),
    }
}

/// Snapshots and WAL segments of a data directory, each sorted by revision.
#[derive(Debug, Default)]
struct Listing {
    snapshots: Vec<(i64, PathBuf)>,
    segments: Vec<(i64, PathBuf)>,
}

fn list(dir: &Path) -> Result<Listing> {
    let mut snaps = Vec::new();
    let mut segments = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("listing", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(rev) = parse_snapshot_name(&name) {
            snaps.push((rev, entry.path()));
        } else if let Some(rev) = parse_segment_name(&name) {
            segments.push((rev, entry.path()));
        } else if name.ends_with(".snap.tmp") {
            // An interrupted snapshot: its WAL segments are all still there.
            let _ = std::fs::remove_file(entry.path());
        }
    }
    snaps.sort();
    segments.sort();
    Ok(Listing {
        snapshots: snaps,
        segments,
    })
}

fn replay(state: &mut State, record: Record, path: &Path) -> Result<()> {
    let corrupt = |detail: String| StorageError::Corrupt {
        path: path.into(),
        detail,
    };
    let rev = match &record {
        Record::Put { rev, .. } | Record::Delete { rev, .. } => *rev,
        Record::Compact { rev } => {
            if *rev > state.current {
                return Err(corrupt(format!("compaction to future revision {rev}")));
            }
            if *rev > state.compacted {
                state.compact(*rev);
            }
            return Ok(());
        }
    };
    if rev <= state.current {
        return Ok(()); // already in the snapshot
    }
    if rev != state.current + 1 {
        return Err(corrupt(format!(
            "revisions {} to {} are missing (found revision {rev})",
            state.current + 1,
            rev - 1
        )));
    }
    match record {
        Record::Put {
            key,
            value,
            expires_at,
            ..
        } => {
            state.put(&key, value, expires_at);
        }
        Record::Delete { key, .. } => {
            if state.delete(&key).is_none() {
                return Err(corrupt(format!(
                    "revision {rev} deletes absent key {key:?}"
                )));
            }
        }
        Record::Compact { .. } => {}
    }
    Ok(())
}

pub(crate) fn recover(dir: &Path) -> Result<Recovered> {
    let Listing {
        snapshots,
        segments,
    } = list(dir)?;
    let mut state = match snapshots.last() {
        Some((_, path)) => snapshot::read(path)?,
        None => State::new(),
    };
    let snapshot_rev = state.current;
    let mut wal_bytes = 0;
    let mut tail_segment = None;
    for (i, (first_rev, path)) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let contents = wal::read_segment(path, is_last)?;
        if contents.torn_tail {
            tracing::warn!(path = %path.display(), valid_bytes = contents.valid_len,
                "embedded store: dropping a torn record at the end of the WAL (an unacknowledged write)");
        }
        for record in contents.records {
            replay(&mut state, record, path)?;
        }
        if *first_rev > snapshot_rev {
            wal_bytes += contents.valid_len;
        }
        if is_last {
            tail_segment = Some((*first_rev, contents.valid_len));
        }
    }
    Ok(Recovered {
        state,
        tail_segment,
        wal_bytes,
    })
}

/// After a snapshot at `snapshot_rev` is durable: drop older snapshots and the WAL
/// segments before `first_kept_segment` (all their records are in the snapshot).
pub(crate) fn remove_obsolete(dir: &Path, snapshot_rev: i64, first_kept_segment: i64) {
    let Ok(Listing {
        snapshots: snaps,
        segments,
    }) = list(dir)
    else {
        return;
    };
    let old_snaps = snaps.into_iter().filter(|(rev, _)| *rev < snapshot_rev);
    let old_segments = segments
        .into_iter()
        .filter(|(rev, _)| *rev < first_kept_segment);
    for (_, path) in old_snaps.chain(old_segments) {
        if let Err(err) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %err, "embedded store: cannot remove an obsolete file");
        }
    }
}
