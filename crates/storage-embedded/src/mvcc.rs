//! The in-memory multi-version index, etcd's `mvcc` package in miniature: every key keeps
//! its versions (tombstones included) since the compacted revision, and a revision log
//! maps each revision to the key it changed, so watchers can replay history in order.
//!
//! Revisions are global and contiguous: each write takes exactly one. The state is
//! mutated only by the commit thread; readers see it through a read lock and never look
//! past the committed revision (versions beyond it are written but not yet durable).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use ferrokube_storage::{
    Event, EventKind, KeyValue, RangeRequest, RangeResponse, Result, StorageError, WatchRequest,
};

/// One version of a key. A tombstone (`value == None`) records a delete.
#[derive(Clone, Debug)]
pub(crate) struct Version {
    pub mod_rev: i64,
    pub create_rev: i64,
    pub version: i64,
    pub value: Option<Bytes>,
    /// Wall-clock expiry in Unix milliseconds; 0 = never.
    pub expires_at: u64,
}

impl Version {
    fn to_kv(&self, key: &str) -> Option<KeyValue> {
        self.value.as_ref().map(|value| KeyValue {
            key: key.to_string(),
            value: value.clone(),
            create_revision: self.create_rev,
            mod_revision: self.mod_rev,
            version: self.version,
        })
    }
}

/// A key's history, oldest first.
pub(crate) type History = Vec<Version>;

#[derive(Clone, Debug)]
pub(crate) struct State {
    pub index: BTreeMap<Arc<str>, History>,
    /// (revision, key) for every revision in (compacted - 1, current], in order.
    pub log: VecDeque<(i64, Arc<str>)>,
    /// (expires_at, key, mod_rev) of live versions that carry a TTL.
    pub expiries: BTreeSet<(u64, Arc<str>, i64)>,
    /// Revision of the last applied write (committed or not).
    pub current: i64,
    /// Reads below this revision fail with Compacted.
    pub compacted: i64,
}

/// The newest version visible at `rev`, if it is live.
fn visible(history: &History, rev: i64) -> Option<&Version> {
    let idx = history.partition_point(|v| v.mod_rev <= rev);
    history[..idx].last().filter(|v| v.value.is_some())
}

impl State {
    /// An empty store is at revision 1, as etcd's; the first write gets revision 2.
    pub fn new() -> Self {
        State {
            index: BTreeMap::new(),
            log: VecDeque::new(),
            expiries: BTreeSet::new(),
            current: 1,
            compacted: 0,
        }
    }

    /// The latest version of `key`, committed or not, if live.
    pub fn latest(&self, key: &str) -> Option<&Version> {
        self.index
            .get(key)
            .and_then(|h| h.last())
            .filter(|v| v.value.is_some())
    }

    pub fn latest_kv(&self, key: &str) -> Option<KeyValue> {
        self.latest(key).and_then(|v| v.to_kv(key))
    }

    /// Checks that `rev` can be read given the committed revision; returns the revision
    /// to read at (None/0 → committed).
    pub fn read_revision(&self, rev: Option<i64>, committed: i64) -> Result<i64> {
        match rev.filter(|r| *r > 0) {
            None => Ok(committed),
            Some(r) if r < self.compacted => Err(StorageError::Compacted {
                requested: r,
                compacted: self.compacted,
            }),
            Some(r) if r > committed => Err(StorageError::FutureRevision {
                requested: r,
                current: committed,
            }),
            Some(r) => Ok(r),
        }
    }

    pub fn get(&self, key: &str, rev: i64) -> Option<KeyValue> {
        self.index
            .get(key)
            .and_then(|h| visible(h, rev))
            .and_then(|v| v.to_kv(key))
    }

    pub fn range(&self, req: &RangeRequest, rev: i64) -> Result<RangeResponse> {
        let first = req.first_key()?;
        let mut resp = RangeResponse {
            revision: rev,
            ..Default::default()
        };
        let mut take = |key: &str, history: &History| {
            if let Some(v) = visible(history, rev) {
                resp.count += 1;
                if !req.count_only && (req.limit == 0 || resp.kvs.len() < req.limit) {
                    resp.kvs.extend(v.to_kv(key));
                }
            }
        };
        if req.prefix {
            let range = self
                .index
                .range::<str, _>((Bound::Included(first), Bound::Unbounded));
            for (key, history) in range.take_while(|(k, _)| k.starts_with(req.key.as_str())) {
                take(key, history);
            }
        } else if let Some((key, history)) = self.index.get_key_value(first) {
            take(key, history);
        }
        resp.more = !req.count_only && (resp.count as usize) > resp.kvs.len();
        Ok(resp)
    }

    fn key_arc(&self, key: &str) -> Arc<str> {
        match self.index.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => Arc::from(key),
        }
    }

    fn push(&mut self, key: Arc<str>, version: Version) {
        let rev = version.mod_rev;
        let history = self.index.entry(key.clone()).or_default();
        if let Some(old) = history.last() {
            if old.expires_at != 0 && old.value.is_some() {
                self.expiries
                    .remove(&(old.expires_at, key.clone(), old.mod_rev));
            }
        }
        if version.expires_at != 0 && version.value.is_some() {
            self.expiries.insert((version.expires_at, key.clone(), rev));
        }
        history.push(version);
        self.log.push_back((rev, key));
        self.current = rev;
    }

    /// Writes a new version of `key` at the next revision.
    pub fn put(&mut self, key: &str, value: Bytes, expires_at: u64) -> KeyValue {
        let rev = self.current + 1;
        let (create_rev, version) = match self.latest(key) {
            Some(v) => (v.create_rev, v.version + 1),
            None => (rev, 1),
        };
        let kv = KeyValue {
            key: key.to_string(),
            value: value.clone(),
            create_revision: create_rev,
            mod_revision: rev,
            version,
        };
        let arc = self.key_arc(key);
        self.push(
            arc,
            Version {
                mod_rev: rev,
                create_rev,
                version,
                value: Some(value),
                expires_at,
            },
        );
        kv
    }

    /// Deletes `key` at the next revision; returns the deleted value and that revision.
    pub fn delete(&mut self, key: &str) -> Option<(KeyValue, i64)> {
        let prev = self.latest_kv(key)?;
        let rev = self.current + 1;
        let arc = self.key_arc(key);
        self.push(
            arc,
            Version {
                mod_rev: rev,
                create_rev: 0,
                version: 0,
                value: None,
                expires_at: 0,
            },
        );
        Some((prev, rev))
    }

    /// Drops history below `rev` (etcd's `kvstore.Compact`): per key, the newest version
    /// older than `rev` survives unless it is a tombstone; revisions >= `rev` are intact.
    pub fn compact(&mut self, rev: i64) {
        let split = self.log.partition_point(|(r, _)| *r < rev);
        let touched: BTreeSet<Arc<str>> = self.log.drain(..split).map(|(_, k)| k).collect();
        for key in touched {
            let Some(history) = self.index.get_mut(&key) else {
                continue;
            };
            let older = history.partition_point(|v| v.mod_rev < rev);
            if older == 0 {
                continue;
            }
            let keep_newest_older = history[older - 1].value.is_some();
            let drop_to = if keep_newest_older { older - 1 } else { older };
            history.drain(..drop_to);
            if history.is_empty() {
                self.index.remove(&key);
            }
        }
        self.compacted = self.compacted.max(rev);
    }

    /// Rebuilds the revision log from the histories (after loading a snapshot).
    pub fn rebuild_log(&mut self) {
        let mut log: Vec<(i64, Arc<str>)> = Vec::new();
        self.expiries.clear();
        for (key, history) in &self.index {
            for v in history.iter().filter(|v| v.mod_rev >= self.compacted) {
                log.push((v.mod_rev, key.clone()));
            }
            if let Some(last) = history
                .last()
                .filter(|v| v.expires_at != 0 && v.value.is_some())
            {
                self.expiries
                    .insert((last.expires_at, key.clone(), last.mod_rev));
            }
        }
        log.sort_unstable_by_key(|(rev, _)| *rev);
        self.log = log.into();
    }

    /// Up to `max` events matching `req` with revisions in [from, to]; returns them and
    /// the next revision to read from.
    pub fn events(&self, req: &WatchRequest, from: i64, to: i64, max: usize) -> (Vec<Event>, i64) {
        let start = self.log.partition_point(|(r, _)| *r < from);
        let mut events = Vec::new();
        let mut next = from;
        for (rev, key) in self.log.range(start..) {
            if *rev > to || events.len() >= max {
                break;
            }
            next = rev + 1;
            if !req.matches(key) {
                continue;
            }
            if let Some(event) = self.event_at(key, *rev) {
                events.push(event);
            }
        }
        if events.len() < max {
            next = next.max(to + 1);
        }
        (events, next)
    }

    fn event_at(&self, key: &str, rev: i64) -> Option<Event> {
        let history = self.index.get(key)?;
        let idx = history.binary_search_by_key(&rev, |v| v.mod_rev).ok()?;
        let prev_kv = idx.checked_sub(1).and_then(|i| history[i].to_kv(key));
        let v = &history[idx];
        Some(match v.to_kv(key) {
            Some(kv) => {
                let kind = if v.version == 1 {
                    EventKind::Created
                } else {
                    EventKind::Modified
                };
                Event {
                    kind,
                    kv,
                    prev_kv: if v.version == 1 { None } else { prev_kv },
                }
            }
            None => Event {
                kind: EventKind::Deleted,
                kv: KeyValue {
                    key: key.to_string(),
                    value: Bytes::new(),
                    create_revision: 0,
                    mod_revision: rev,
                    version: 0,
                },
                prev_kv,
            },
        })
    }

    /// Live keys whose TTL has passed at `now_ms`: (key, mod_rev) pairs.
    pub fn expired(&self, now_ms: u64, max: usize) -> Vec<(String, i64)> {
        self.expiries
            .iter()
            .take_while(|(at, _, _)| *at <= now_ms)
            .take(max)
            .map(|(_, key, rev)| (key.to_string(), *rev))
            .collect()
    }

    pub fn key_count(&self) -> usize {
        self.index
            .values()
            .filter(|h| h.last().is_some_and(|v| v.value.is_some()))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn compaction_keeps_what_reads_at_the_compacted_revision_need() {
        let mut s = State::new();
        let a1 = s.put("/a", b("1"), 0); // 2
        let a2 = s.put("/a", b("2"), 0); // 3
        s.put("/b", b("1"), 0); // 4
        s.delete("/b"); // 5
        let a3 = s.put("/a", b("3"), 0); // 6
        s.compact(a3.mod_revision);
        assert_eq!(s.get("/a", 6), Some(a3.clone()));
        assert!(!s.index.contains_key("/b"), "deleted key's history is gone");
        assert_eq!(
            s.index["/a"].len(),
            2,
            "newest older version kept for prev_kv"
        );
        assert!(s.log.iter().all(|(r, _)| *r >= 6));
        let (ev, _) = s.events(&WatchRequest::prefix("/"), 6, 6, 10);
        assert_eq!(ev[0].prev_kv, Some(a2));
        assert_ne!(a1.mod_revision, 0);
    }

    #[test]
    fn rebuilt_log_matches_incremental_log() {
        let mut s = State::new();
        for i in 0..10 {
            s.put(
                &format!("/k{}", i % 3),
                b("v"),
                if i % 2 == 0 { 99 } else { 0 },
            );
        }
        s.delete("/k1");
        s.compact(5);
        let mut rebuilt = s.clone();
        rebuilt.rebuild_log();
        assert_eq!(rebuilt.log, s.log);
        assert_eq!(rebuilt.expiries, s.expiries);
    }
}
