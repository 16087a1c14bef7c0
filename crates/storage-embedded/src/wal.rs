//! The write-ahead log: one record per revision, appended by the commit thread and made
//! durable with one `fdatasync` per batch (group commit), as etcd's `wal` package.
//!
//! Record framing: `magic u32 | len u32 | crc32 u32 | payload[len]`, little-endian.
//! Segments are named `wal-<first revision>.log`; a new one starts after each snapshot,
//! and segments wholly covered by a snapshot are deleted.
//!
//! A crash can leave a torn record at the end of the last segment (it was never
//! acknowledged): recovery truncates it. Damage anywhere else (a bad record followed by
//! a valid one, or in an older segment) is corruption and stops start-up.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ferrokube_storage::{Result, StorageError};

const MAGIC: u32 = 0x4B46_5741;
const HEADER: usize = 12;

/// One logged change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    Put {
        rev: i64,
        key: String,
        value: Bytes,
        expires_at: u64,
    },
    Delete {
        rev: i64,
        key: String,
    },
    /// History below `rev` was discarded (takes no revision of its own).
    Compact {
        rev: i64,
    },
}

const PUT: u8 = 1;
const DELETE: u8 = 2;
const COMPACT: u8 = 3;

pub(crate) fn encode_put(buf: &mut Vec<u8>, rev: i64, key: &str, value: &[u8], expires_at: u64) {
    frame(buf, |p| {
        p.push(PUT);
        p.extend_from_slice(&rev.to_le_bytes());
        put_bytes(p, key.as_bytes());
        put_bytes(p, value);
        p.extend_from_slice(&expires_at.to_le_bytes());
    });
}

pub(crate) fn encode_delete(buf: &mut Vec<u8>, rev: i64, key: &str) {
    frame(buf, |p| {
        p.push(DELETE);
        p.extend_from_slice(&rev.to_le_bytes());
        put_bytes(p, key.as_bytes());
    });
}

pub(crate) fn encode_compact(buf: &mut Vec<u8>, rev: i64) {
    frame(buf, |p| {
        p.push(COMPACT);
        p.extend_from_slice(&rev.to_le_bytes());
    });
}

fn put_bytes(p: &mut Vec<u8>, b: &[u8]) {
    p.extend_from_slice(&(b.len() as u32).to_le_bytes());
    p.extend_from_slice(b);
}

/// Appends a framed record whose payload `fill` writes, in place.
fn frame(buf: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER]);
    fill(buf);
    let payload = &buf[start + HEADER..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    buf[start..start + 4].copy_from_slice(&MAGIC.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
    buf[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

/// A bounds-checked reader over a record payload.
pub(crate) struct Cursor<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    pub fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
    pub fn i64(&mut self) -> Option<i64> {
        self.u64().map(|v| v as i64)
    }
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn string(&mut self) -> Option<String> {
        self.bytes()
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_string)
    }
}

fn decode_payload(payload: &[u8]) -> Option<Record> {
    let mut c = Cursor::new(payload);
    let record = match c.u8()? {
        PUT => Record::Put {
            rev: c.i64()?,
            key: c.string()?,
            value: Bytes::copy_from_slice(c.bytes()?),
            expires_at: c.u64()?,
        },
        DELETE => Record::Delete {
            rev: c.i64()?,
            key: c.string()?,
        },
        COMPACT => Record::Compact { rev: c.i64()? },
        _ => return None,
    };
    (c.pos == payload.len()).then_some(record)
}

/// Decodes the record at the start of `buf`: the record and its framed length.
fn decode_at(buf: &[u8]) -> Option<(Record, usize)> {
    let mut c = Cursor::new(buf);
    if c.u32()? != MAGIC {
        return None;
    }
    let len = c.u32()? as usize;
    let crc = c.u32()?;
    let payload = c.take(len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    Some((decode_payload(payload)?, HEADER + len))
}

/// The records of one segment, and the length of its valid prefix.
pub(crate) struct SegmentContents {
    pub records: Vec<Record>,
    pub valid_len: u64,
    pub torn_tail: bool,
}

/// Reads a segment. A bad record followed by no valid record is a torn tail, allowed
/// only when `is_last`; anything else is corruption.
pub(crate) fn read_segment(path: &Path, is_last: bool) -> Result<SegmentContents> {
    let data = std::fs::read(path).map_err(|e| StorageError::io("reading", path, e))?;
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        match decode_at(&data[pos..]) {
            Some((record, n)) => {
                records.push(record);
                pos += n;
            }
            None => {
                let later_valid = (pos + 1..data.len()).find(|&i| {
                    data[i..].starts_with(&MAGIC.to_le_bytes()) && decode_at(&data[i..]).is_some()
                });
                if let Some(at) = later_valid {
                    return Err(StorageError::Corrupt {
                        path: path.into(),
                        detail: format!(
                            "damaged record at byte {pos} followed by valid data at byte {at}"
                        ),
                    });
                }
                if !is_last {
                    return Err(StorageError::Corrupt {
                        path: path.into(),
                        detail: format!(
                            "truncated or damaged record at byte {pos} of a completed segment"
                        ),
                    });
                }
                return Ok(SegmentContents {
                    records,
                    valid_len: pos as u64,
                    torn_tail: true,
                });
            }
        }
    }
    Ok(SegmentContents {
        records,
        valid_len: pos as u64,
        torn_tail: false,
    })
}

pub(crate) fn segment_name(first_rev: i64) -> String {
    format!("wal-{first_rev:020}.log")
}

/// Parses `wal-<rev>.log`.
pub(crate) fn parse_segment_name(name: &str) -> Option<i64> {
    name.strip_prefix("wal-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// The open segment being appended to.
#[derive(Debug)]
pub(crate) struct WalWriter {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    /// Bytes written since the last snapshot started (across segments).
    pub bytes_since_snapshot: u64,
}

impl WalWriter {
    /// Opens (or creates) the segment starting at `first_rev` for appending, truncated to
    /// `valid_len` (dropping a torn tail).
    pub fn open(dir: &Path, first_rev: i64, valid_len: u64) -> Result<Self> {
        let path = dir.join(segment_name(first_rev));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| StorageError::io("opening", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io("reading metadata of", &path, e))?
            .len();
        if len > valid_len {
            file.set_len(valid_len)
                .map_err(|e| StorageError::io("truncating", &path, e))?;
            file.sync_all()
                .map_err(|e| StorageError::io("syncing", &path, e))?;
        }
        sync_dir(dir)?;
        Ok(WalWriter {
            dir: dir.into(),
            file,
            path,
            bytes_since_snapshot: valid_len,
        })
    }

    /// Appends `buf` and makes it durable.
    pub fn append_durable(&mut self, buf: &[u8]) -> Result<()> {
        self.file
            .write_all(buf)
            .map_err(|e| StorageError::io("appending to", &self.path, e))?;
        self.file
            .sync_data()
            .map_err(|e| StorageError::io("syncing", &self.path, e))?;
        self.bytes_since_snapshot += buf.len() as u64;
        Ok(())
    }

    /// Starts a new segment whose first record will be `first_rev`.
    pub fn rotate(&mut self, first_rev: i64) -> Result<()> {
        *self = WalWriter::open(&self.dir.clone(), first_rev, 0)?;
        Ok(())
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("syncing directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut buf = Vec::new();
        encode_put(&mut buf, 2, "/a", b"hello", 0);
        encode_delete(&mut buf, 3, "/a");
        encode_compact(&mut buf, 3);
        encode_put(&mut buf, 4, "/b", b"world", 77);
        buf
    }

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_name(2));
        std::fs::write(&path, sample()).unwrap();
        let c = read_segment(&path, false).unwrap();
        assert_eq!(c.records.len(), 4);
        assert_eq!(
            c.records[3],
            Record::Put {
                rev: 4,
                key: "/b".into(),
                value: Bytes::from_static(b"world"),
                expires_at: 77
            }
        );
        assert!(!c.torn_tail);
    }

    #[test]
    fn torn_tail_is_truncated_only_in_the_last_segment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_name(2));
        let full = sample();
        for cut in 1..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let c = read_segment(&path, true).unwrap();
            assert!(c.valid_len as usize <= cut);
            assert!(read_segment(&path, false).is_err() || c.valid_len as usize == cut);
        }
    }

    #[test]
    fn damage_before_valid_records_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_name(2));
        let mut data = sample();
        data[HEADER + 3] ^= 0xff; // inside the first record's payload
        std::fs::write(&path, &data).unwrap();
        let err = read_segment(&path, true).err().unwrap();
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("wal-"), "{err}");
    }
}
