//! Snapshots: the whole multi-version state at a revision, so restart reads one file and
//! replays only the WAL written since (etcd keeps the same split between its bolt
//! backend and its WAL). A snapshot is written to a temporary file, synced and renamed,
//! and carries a CRC over its whole content: a damaged one stops start-up.
//!
//! Layout (little-endian): `FKSNAP01 | current i64 | compacted i64 | keys u64 |`
//! per key `key | versions u32 |` per version `mod i64 | create i64 | version i64 |
//! expires u64 | live u8 | value`, then `crc32 u32 | FKSNEND1`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use ferrokube_storage::{Result, StorageError};

use crate::mvcc::{State, Version};
use crate::wal::{sync_dir, Cursor};

const HEAD: &[u8; 8] = b"FKSNAP01";
const TAIL: &[u8; 8] = b"FKSNEND1";

pub(crate) fn snapshot_name(rev: i64) -> String {
    format!("snap-{rev:020}.snap")
}

pub(crate) fn parse_snapshot_name(name: &str) -> Option<i64> {
    name.strip_prefix("snap-")?
        .strip_suffix(".snap")?
        .parse()
        .ok()
}

/// A writer that checksums everything passing through it.
struct Crc<W: Write> {
    inner: W,
    hasher: crc32fast::Hasher,
}

impl<W: Write> Write for Crc<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn write_bytes(w: &mut impl Write, b: &[u8]) -> std::io::Result<()> {
    w.write_all(&(b.len() as u32).to_le_bytes())?;
    w.write_all(b)
}

fn write_state(w: &mut impl Write, state: &State) -> std::io::Result<()> {
    let mut w = Crc {
        inner: w,
        hasher: crc32fast::Hasher::new(),
    };
    w.write_all(HEAD)?;
    w.write_all(&state.current.to_le_bytes())?;
    w.write_all(&state.compacted.to_le_bytes())?;
    w.write_all(&(state.index.len() as u64).to_le_bytes())?;
    for (key, history) in &state.index {
        write_bytes(&mut w, key.as_bytes())?;
        w.write_all(&(history.len() as u32).to_le_bytes())?;
        for v in history {
            w.write_all(&v.mod_rev.to_le_bytes())?;
            w.write_all(&v.create_rev.to_le_bytes())?;
            w.write_all(&v.version.to_le_bytes())?;
            w.write_all(&v.expires_at.to_le_bytes())?;
            w.write_all(&[u8::from(v.value.is_some())])?;
            write_bytes(&mut w, v.value.as_deref().unwrap_or_default())?;
        }
    }
    let crc = w.hasher.finalize();
    let inner = w.inner;
    inner.write_all(&crc.to_le_bytes())?;
    inner.write_all(TAIL)
}

/// Writes `state` durably as `snap-<current>.snap` in `dir` and returns its path.
pub(crate) fn write(dir: &Path, state: &State) -> Result<PathBuf> {
    let path = dir.join(snapshot_name(state.current));
    let tmp = path.with_extension("snap.tmp");
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        write_state(&mut w, state)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    result.map_err(|e| StorageError::io("writing snapshot", &tmp, e))?;
    sync_dir(dir)?;
    Ok(path)
}

/// Loads a snapshot, checking its framing and checksum.
pub(crate) fn read(path: &Path) -> Result<State> {
    let data = std::fs::read(path).map_err(|e| StorageError::io("reading", path, e))?;
    let corrupt = |detail: &str| StorageError::Corrupt {
        path: path.into(),
        detail: detail.into(),
    };
    if data.len() < HEAD.len() + 24 + 12 || !data.starts_with(HEAD) {
        return Err(corrupt(
            "not a ferrokube snapshot (bad header or truncated)",
        ));
    }
    if !data.ends_with(TAIL) {
        return Err(corrupt("truncated: end marker missing"));
    }
    let body = &data[..data.len() - 12];
    let crc_bytes = &data[data.len() - 12..data.len() - 8];
    let stored_crc = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
    if crc32fast::hash(body) != stored_crc {
        return Err(corrupt("checksum mismatch"));
    }
    parse(body).ok_or_else(|| corrupt("malformed content"))
}

fn parse(body: &[u8]) -> Option<State> {
    let mut c = Cursor::new(body);
    c.take(HEAD.len())?;
    let mut state = State::new();
    state.current = c.i64()?;
    state.compacted = c.i64()?;
    let keys = c.u64()?;
    for _ in 0..keys {
        let key: Arc<str> = Arc::from(std::str::from_utf8(c.bytes()?).ok()?);
        let n = c.u32()? as usize;
        let mut history = Vec::with_capacity(n);
        for _ in 0..n {
            let mod_rev = c.i64()?;
            let create_rev = c.i64()?;
            let version = c.i64()?;
            let expires_at = c.u64()?;
            let live = c.u8()? != 0;
            let value = c.bytes()?;
            let value = live.then(|| Bytes::copy_from_slice(value));
            history.push(Version {
                mod_rev,
                create_rev,
                version,
                value,
                expires_at,
            });
        }
        state.index.insert(key, history);
    }
    if c.pos != body.len() {
        return None;
    }
    state.rebuild_log();
    Some(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_detection() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::new();
        for i in 0..50 {
            s.put(
                &format!("/k/{}", i % 7),
                Bytes::from(vec![i as u8; i]),
                i as u64,
            );
        }
        s.delete("/k/3");
        s.compact(20);
        let path = write(dir.path(), &s).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.current, s.current);
        assert_eq!(back.compacted, s.compacted);
        assert_eq!(back.log, s.log);
        for (k, h) in &s.index {
            let got = &back.index[k];
            assert_eq!(got.len(), h.len());
            assert!(got
                .iter()
                .zip(h)
                .all(|(a, b)| a.mod_rev == b.mod_rev && a.value == b.value));
        }
        let data = std::fs::read(&path).unwrap();
        let mut flipped = data.clone();
        flipped[40] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("checksum"));
        std::fs::write(&path, &data[..data.len() / 2]).unwrap();
        let err = read(&path).unwrap_err();
        assert!(err.to_string().contains(&snapshot_name(s.current)), "{err}");
    }
}
