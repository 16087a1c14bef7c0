//! The shared conformance suite: every backend must pass every case.
//!
//! A backend's test crate calls [`conformance_tests!`](crate::conformance_tests) with an
//! async factory that returns a [`Harness`] (the store plus whatever keeps it alive: a
//! temporary directory, an etcd process). Each case becomes its own `#[tokio::test]`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::{
    guaranteed_delete, guaranteed_update, EventKind, KeyValue, Preconditions, RangeRequest,
    Storage, StorageError, UpdateDecision, WatchMessage, WatchRequest, WatchStream, MAX_VALUE_SIZE,
};

/// A store under test and whatever must live as long as it.
pub trait Harness: Send + Sync {
    fn store(&self) -> Arc<dyn Storage>;
}

/// Generates one test per conformance case. `$factory` is an expression evaluating to
/// an async function (or closure) returning a [`Harness`].
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@cases $factory;
            create_then_get, create_existing_fails, get_missing_is_none,
            update_compare_and_swap, update_missing_is_not_found,
            delete_returns_previous_value, delete_with_stale_revision_conflicts,
            recreate_starts_new_generation, revisions_increase,
            get_at_revision, range_prefix_is_ordered_and_isolated,
            range_paginates_with_limit_and_continue, range_at_revision,
            future_revision_is_refused, compaction_discards_old_revisions,
            watch_prefix_sees_changes_in_order, watch_from_past_revision_replays_history,
            watch_exact_key_ignores_siblings, watch_from_compacted_revision_fails,
            watch_progress_notifications, watch_many_watchers_see_every_event,
            guaranteed_update_serialises_concurrent_writers, guaranteed_update_keep_and_not_found,
            guaranteed_delete_checks_preconditions, ttl_keys_expire,
            oversized_values_are_refused, empty_key_is_refused);
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = ($factory)().await;
                $crate::conformance::$case(
                    $crate::conformance::Harness::store(&harness)).await;
            }
        )*
    };
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

const WAIT: Duration = Duration::from_secs(10);

/// The next message of a watch, failing the test after 10 s.
pub async fn next_message(w: &mut WatchStream) -> Result<WatchMessage, StorageError> {
    tokio::time::timeout(WAIT, w.recv())
        .await
        .expect("timed out waiting for a watch message")
        .expect("watch ended unexpectedly")
}

/// The next event of a watch, skipping progress notifications.
pub async fn next_event(w: &mut WatchStream) -> crate::Event {
    loop {
        match next_message(w).await.expect("watch error") {
            WatchMessage::Event(e) => return e,
            WatchMessage::Progress { .. } => continue,
        }
    }
}

pub async fn create_then_get(s: Arc<dyn Storage>) {
    let kv = s.create("/c/a", b("one"), None).await.unwrap();
    assert_eq!(kv.key, "/c/a");
    assert_eq!(kv.value, b("one"));
    assert_eq!(kv.create_revision, kv.mod_revision);
    assert_eq!(kv.version, 1);
    let got = s.get("/c/a", None).await.unwrap().unwrap();
    assert_eq!(got, kv);
}

pub async fn create_existing_fails(s: Arc<dyn Storage>) {
    s.create("/c/a", b("one"), None).await.unwrap();
    let err = s.create("/c/a", b("two"), None).await.unwrap_err();
    assert!(
        matches!(err, StorageError::AlreadyExists { ref key } if key == "/c/a"),
        "{err:?}"
    );
    assert_eq!(s.get("/c/a", None).await.unwrap().unwrap().value, b("one"));
}

pub async fn get_missing_is_none(s: Arc<dyn Storage>) {
    assert_eq!(s.get("/nothing/here", None).await.unwrap(), None);
}

pub async fn update_compare_and_swap(s: Arc<dyn Storage>) {
    let v1 = s.create("/u/a", b("1"), None).await.unwrap();
    let v2 = s
        .update("/u/a", b("2"), v1.mod_revision, None)
        .await
        .unwrap();
    assert!(v2.mod_revision > v1.mod_revision);
    assert_eq!(v2.create_revision, v1.create_revision);
    assert_eq!(v2.version, 2);
    // A writer still holding v1's revision loses, and learns the current value.
    match s.update("/u/a", b("stale"), v1.mod_revision, None).await {
        Err(StorageError::Conflict {
            current: Some(cur),
            expected,
            ..
        }) => {
            assert_eq!(expected, v1.mod_revision);
            assert_eq!(*cur, v2);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(s.get("/u/a", None).await.unwrap().unwrap(), v2);
}

pub async fn update_missing_is_not_found(s: Arc<dyn Storage>) {
    let err = s.update("/u/none", b("x"), 5, None).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(s.get("/u/none", None).await.unwrap(), None);
}

pub async fn delete_returns_previous_value(s: Arc<dyn Storage>) {
    let v1 = s.create("/d/a", b("gone"), None).await.unwrap();
    let (prev, rev) = s.delete("/d/a", None).await.unwrap();
    assert_eq!(prev, v1);
    assert!(rev > v1.mod_revision);
    assert_eq!(s.get("/d/a", None).await.unwrap(), None);
    assert!(s.delete("/d/a", None).await.unwrap_err().is_not_found());
    assert_eq!(
        s.current_revision().await.unwrap(),
        rev,
        "a failed delete takes no revision"
    );
}

pub async fn delete_with_stale_revision_conflicts(s: Arc<dyn Storage>) {
    let v1 = s.create("/d/a", b("1"), None).await.unwrap();
    let v2 = s
        .update("/d/a", b("2"), v1.mod_revision, None)
        .await
        .unwrap();
    match s.delete("/d/a", Some(v1.mod_revision)).await {
        Err(StorageError::Conflict {
            current: Some(cur), ..
        }) => assert_eq!(*cur, v2),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let (prev, _) = s.delete("/d/a", Some(v2.mod_revision)).await.unwrap();
    assert_eq!(prev, v2);
}

pub async fn recreate_starts_new_generation(s: Arc<dyn Storage>) {
    let v1 = s.create("/g/a", b("1"), None).await.unwrap();
    s.update("/g/a", b("2"), v1.mod_revision, None)
        .await
        .unwrap();
    s.delete("/g/a", None).await.unwrap();
    let again = s.create("/g/a", b("3"), None).await.unwrap();
    assert_eq!(again.version, 1);
    assert_eq!(again.create_revision, again.mod_revision);
    assert!(again.create_revision > v1.create_revision);
}

pub async fn revisions_increase(s: Arc<dyn Storage>) {
    let start = s.current_revision().await.unwrap();
    let mut last = start;
    for i in 0..20 {
        let kv = s.create(&format!("/r/{i}"), b("x"), None).await.unwrap();
        assert!(kv.mod_revision > last, "revision did not increase");
        last = kv.mod_revision;
    }
    assert_eq!(s.current_revision().await.unwrap(), last);
    assert_eq!(last - start, 20, "each write takes exactly one revision");
}

pub async fn get_at_revision(s: Arc<dyn Storage>) {
    let v1 = s.create("/h/a", b("1"), None).await.unwrap();
    let v2 = s
        .update("/h/a", b("2"), v1.mod_revision, None)
        .await
        .unwrap();
    let (_, del) = s.delete("/h/a", None).await.unwrap();
    assert_eq!(
        s.get("/h/a", Some(v1.mod_revision)).await.unwrap().unwrap(),
        v1
    );
    assert_eq!(
        s.get("/h/a", Some(v2.mod_revision)).await.unwrap().unwrap(),
        v2
    );
    assert_eq!(s.get("/h/a", Some(del)).await.unwrap(), None);
    assert_eq!(
        s.get("/h/a", Some(v1.mod_revision - 1)).await.unwrap(),
        None
    );
}

async fn fill(s: &dyn Storage, prefix: &str, n: usize) -> Vec<KeyValue> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            s.create(&format!("{prefix}{i:04}"), b(&format!("v{i}")), None)
                .await
                .unwrap(),
        );
    }
    out
}

pub async fn range_prefix_is_ordered_and_isolated(s: Arc<dyn Storage>) {
    // Inserted out of order; "/p/" must not match "/pp/x" or "/p" itself.
    for k in ["/p/c", "/p/a", "/pp/x", "/p", "/p/b", "/o/z", "/p/a/nested"] {
        s.create(k, b(k), None).await.unwrap();
    }
    let r = s.range(RangeRequest::prefix("/p/")).await.unwrap();
    let keys: Vec<_> = r.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/p/a", "/p/a/nested", "/p/b", "/p/c"]);
    assert_eq!(r.count, 4);
    assert!(!r.more);
    assert_eq!(r.revision, s.current_revision().await.unwrap());
    for kv in &r.kvs {
        assert_eq!(kv.value, b(&kv.key));
    }
    let exact = s
        .range(RangeRequest {
            key: "/p".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(exact.kvs.len(), 1);
    let count = s
        .range(RangeRequest {
            count_only: true,
            ..RangeRequest::prefix("/p/")
        })
        .await
        .unwrap();
    assert_eq!((count.count, count.kvs.len()), (4, 0));
    let none = s.range(RangeRequest::prefix("/q/")).await.unwrap();
    assert_eq!((none.count, none.kvs.len(), none.more), (0, 0, false));
}

pub async fn range_paginates_with_limit_and_continue(s: Arc<dyn Storage>) {
    fill(&*s, "/l/", 25).await;
    let first = s
        .range(RangeRequest::prefix("/l/").with_limit(10))
        .await
        .unwrap();
    assert_eq!(first.kvs.len(), 10);
    assert!(first.more);
    assert_eq!(first.count, 25);
    let mut seen: Vec<String> = first.kvs.iter().map(|kv| kv.key.clone()).collect();
    let mut page = first;
    // Continue pages are read at the first page's revision, as upstream's continue token.
    let rev = page.revision;
    s.create("/l/9999", b("late"), None).await.unwrap();
    while page.more {
        let next = format!("{}\0", page.kvs.last().unwrap().key);
        page = s
            .range(
                RangeRequest::prefix("/l/")
                    .with_limit(10)
                    .with_start(next)
                    .at_revision(rev),
            )
            .await
            .unwrap();
        assert_eq!(page.revision, rev);
        seen.extend(page.kvs.iter().map(|kv| kv.key.clone()));
    }
    let expected: Vec<String> = (0..25).map(|i| format!("/l/{i:04}")).collect();
    assert_eq!(seen, expected);
}

pub async fn range_at_revision(s: Arc<dyn Storage>) {
    let kvs = fill(&*s, "/ra/", 3).await;
    let at = kvs[2].mod_revision;
    s.update("/ra/0000", b("changed"), kvs[0].mod_revision, None)
        .await
        .unwrap();
    s.delete("/ra/0001", None).await.unwrap();
    s.create("/ra/0003", b("new"), None).await.unwrap();
    let old = s
        .range(RangeRequest::prefix("/ra/").at_revision(at))
        .await
        .unwrap();
    assert_eq!(old.kvs, kvs);
    assert_eq!(old.revision, at);
    let now = s.range(RangeRequest::prefix("/ra/")).await.unwrap();
    let keys: Vec<_> = now.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/ra/0000", "/ra/0002", "/ra/0003"]);
}

pub async fn future_revision_is_refused(s: Arc<dyn Storage>) {
    s.create("/f/a", b("x"), None).await.unwrap();
    let future = s.current_revision().await.unwrap() + 1000;
    let err = s.get("/f/a", Some(future)).await.unwrap_err();
    assert!(
        matches!(err, StorageError::FutureRevision { .. }),
        "{err:?}"
    );
    let err = s
        .range(RangeRequest::prefix("/f/").at_revision(future))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::FutureRevision { .. }),
        "{err:?}"
    );
}

pub async fn compaction_discards_old_revisions(s: Arc<dyn Storage>) {
    let v1 = s.create("/k/a", b("1"), None).await.unwrap();
    let v2 = s
        .update("/k/a", b("2"), v1.mod_revision, None)
        .await
        .unwrap();
    let other = s.create("/k/b", b("b"), None).await.unwrap();
    s.delete("/k/b", None).await.unwrap();
    let v3 = s
        .update("/k/a", b("3"), v2.mod_revision, None)
        .await
        .unwrap();
    s.compact(v3.mod_revision).await.unwrap();
    for rev in [v1.mod_revision, v2.mod_revision, other.mod_revision] {
        let err = s.get("/k/a", Some(rev)).await.unwrap_err();
        assert!(matches!(err, StorageError::Compacted { .. }), "{err:?}");
        let err = s
            .range(RangeRequest::prefix("/k/").at_revision(rev))
            .await
            .unwrap_err();
        assert!(err.is_compacted(), "{err:?}");
    }
    assert_eq!(
        s.get("/k/a", Some(v3.mod_revision)).await.unwrap().unwrap(),
        v3
    );
    assert_eq!(s.get("/k/a", None).await.unwrap().unwrap(), v3);
    assert_eq!(s.get("/k/b", None).await.unwrap(), None);
    // Compacting again to an older revision is refused like etcd does.
    assert!(s.compact(v2.mod_revision).await.unwrap_err().is_compacted());
    // Writes keep working after compaction.
    let v4 = s
        .update("/k/a", b("4"), v3.mod_revision, None)
        .await
        .unwrap();
    assert_eq!(v4.version, 4);
}

pub async fn watch_prefix_sees_changes_in_order(s: Arc<dyn Storage>) {
    let mut w = s.watch(WatchRequest::prefix("/w/")).await.unwrap();
    let v1 = s.create("/w/a", b("1"), None).await.unwrap();
    s.create("/elsewhere", b("x"), None).await.unwrap();
    let v2 = s
        .update("/w/a", b("2"), v1.mod_revision, None)
        .await
        .unwrap();
    let (_, del) = s.delete("/w/a", None).await.unwrap();

    let e = next_event(&mut w).await;
    assert_eq!(
        (e.kind, &e.kv, &e.prev_kv),
        (EventKind::Created, &v1, &None)
    );
    let e = next_event(&mut w).await;
    assert_eq!(
        (e.kind, &e.kv, e.prev_kv.as_ref()),
        (EventKind::Modified, &v2, Some(&v1))
    );
    let e = next_event(&mut w).await;
    assert_eq!(e.kind, EventKind::Deleted);
    assert_eq!((e.kv.key.as_str(), e.kv.mod_revision), ("/w/a", del));
    assert_eq!(e.prev_kv.as_ref(), Some(&v2));
}

pub async fn watch_from_past_revision_replays_history(s: Arc<dyn Storage>) {
    let kvs = fill(&*s, "/wh/", 5).await;
    let mut w = s
        .watch(WatchRequest::prefix("/wh/").from_revision(kvs[2].mod_revision))
        .await
        .unwrap();
    for kv in &kvs[2..] {
        let e = next_event(&mut w).await;
        assert_eq!((e.kind, &e.kv), (EventKind::Created, kv));
    }
    let live = s.create("/wh/live", b("x"), None).await.unwrap();
    assert_eq!(next_event(&mut w).await.kv, live);
}

pub async fn watch_exact_key_ignores_siblings(s: Arc<dyn Storage>) {
    let mut w = s.watch(WatchRequest::key("/x/a")).await.unwrap();
    s.create("/x/ab", b("no"), None).await.unwrap();
    s.create("/x/", b("no"), None).await.unwrap();
    let kv = s.create("/x/a", b("yes"), None).await.unwrap();
    assert_eq!(next_event(&mut w).await.kv, kv);
}

pub async fn watch_from_compacted_revision_fails(s: Arc<dyn Storage>) {
    let v1 = s.create("/wc/a", b("1"), None).await.unwrap();
    let v2 = s
        .update("/wc/a", b("2"), v1.mod_revision, None)
        .await
        .unwrap();
    s.compact(v2.mod_revision).await.unwrap();
    match s
        .watch(WatchRequest::prefix("/wc/").from_revision(v1.mod_revision))
        .await
    {
        Err(err) => assert!(err.is_compacted(), "{err:?}"),
        Ok(mut w) => {
            let err = next_message(&mut w).await.unwrap_err();
            assert!(err.is_compacted(), "{err:?}");
        }
    }
}

pub async fn watch_progress_notifications(s: Arc<dyn Storage>) {
    let kv = s.create("/wp/a", b("1"), None).await.unwrap();
    let mut w = s
        .watch(WatchRequest::prefix("/wp/").with_progress_notify(Duration::from_millis(200)))
        .await
        .unwrap();
    s.create("/other/b", b("1"), None).await.unwrap();
    let current = s.current_revision().await.unwrap();
    // Progress must eventually report a revision covering every write made so far.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match next_message(&mut w).await.unwrap() {
            WatchMessage::Progress { revision } if revision >= current => break,
            WatchMessage::Progress { revision } => assert!(revision >= kv.mod_revision),
            WatchMessage::Event(e) => panic!("unexpected event {e:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress notification"
        );
    }
}

pub async fn watch_many_watchers_see_every_event(s: Arc<dyn Storage>) {
    let mut watchers = Vec::new();
    for _ in 0..50 {
        watchers.push(s.watch(WatchRequest::prefix("/m/")).await.unwrap());
    }
    let kvs = fill(&*s, "/m/", 20).await;
    for w in &mut watchers {
        for kv in &kvs {
            assert_eq!(&next_event(w).await.kv, kv);
        }
    }
}

pub async fn guaranteed_update_serialises_concurrent_writers(s: Arc<dyn Storage>) {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                guaranteed_update::<StorageError, _>(&*s, "/counter", true, |cur| {
                    let n: u64 = cur.map_or(0, |kv| {
                        std::str::from_utf8(&kv.value).unwrap().parse().unwrap()
                    });
                    Ok(UpdateDecision::Write {
                        value: b(&(n + 1).to_string()),
                        ttl: None,
                    })
                })
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let kv = s.get("/counter", None).await.unwrap().unwrap();
    assert_eq!(kv.value, b("80"));
    assert_eq!(kv.version, 80);
}

pub async fn guaranteed_update_keep_and_not_found(s: Arc<dyn Storage>) {
    let err = guaranteed_update::<StorageError, _>(&*s, "/gu/none", false, |_| {
        panic!("closure must not run for a missing key")
    })
    .await
    .unwrap_err();
    assert!(err.is_not_found());
    let v1 = s.create("/gu/a", b("1"), None).await.unwrap();
    let kept =
        guaranteed_update::<StorageError, _>(&*s, "/gu/a", false, |_| Ok(UpdateDecision::Keep))
            .await
            .unwrap();
    assert_eq!(kept, v1);
    // Writing identical bytes is a no-op: no new revision.
    let same = guaranteed_update::<StorageError, _>(&*s, "/gu/a", false, |_| {
        Ok(UpdateDecision::Write {
            value: b("1"),
            ttl: None,
        })
    })
    .await
    .unwrap();
    assert_eq!(same.mod_revision, v1.mod_revision);
}

pub async fn guaranteed_delete_checks_preconditions(s: Arc<dyn Storage>) {
    let v1 = s.create("/gd/a", b("uid-1"), None).await.unwrap();
    let uid_of = |kv: &KeyValue| String::from_utf8(kv.value.to_vec()).unwrap();
    let wrong = Preconditions {
        uid: Some("uid-2".into()),
        resource_version: None,
    };
    let err =
        guaranteed_delete::<StorageError, _>(&*s, "/gd/a", |kv| wrong.check(kv, Some(&uid_of(kv))))
            .await
            .unwrap_err();
    assert!(
        matches!(err, StorageError::PreconditionFailed { what: "UID", .. }),
        "{err:?}"
    );
    assert!(s.get("/gd/a", None).await.unwrap().is_some());
    let stale_rv = Preconditions {
        uid: None,
        resource_version: Some(v1.mod_revision + 100),
    };
    let err = guaranteed_delete::<StorageError, _>(&*s, "/gd/a", |kv| stale_rv.check(kv, None))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StorageError::PreconditionFailed {
            what: "ResourceVersion",
            ..
        }
    ));
    let right = Preconditions {
        uid: Some("uid-1".into()),
        resource_version: Some(v1.mod_revision),
    };
    let (prev, _) =
        guaranteed_delete::<StorageError, _>(&*s, "/gd/a", |kv| right.check(kv, Some(&uid_of(kv))))
            .await
            .unwrap();
    assert_eq!(prev, v1);
    let err = guaranteed_delete::<StorageError, _>(&*s, "/gd/a", |_| Ok(()))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
}

pub async fn ttl_keys_expire(s: Arc<dyn Storage>) {
    let mut w = s.watch(WatchRequest::prefix("/ttl/")).await.unwrap();
    let kv = s
        .create("/ttl/event", b("x"), Some(Duration::from_secs(2)))
        .await
        .unwrap();
    s.create("/ttl/keep", b("y"), None).await.unwrap();
    assert!(s.get("/ttl/event", None).await.unwrap().is_some());
    assert_eq!(next_event(&mut w).await.kv, kv);
    next_event(&mut w).await; // /ttl/keep created
                              // etcd rounds short TTLs up to its minimum lease TTL and reuses leases for up to a
                              // minute; allow for both.
    let e = tokio::time::timeout(Duration::from_secs(90), next_event(&mut w))
        .await
        .expect("key did not expire");
    assert_eq!(
        (e.kind, e.kv.key.as_str()),
        (EventKind::Deleted, "/ttl/event")
    );
    assert_eq!(s.get("/ttl/event", None).await.unwrap(), None);
    assert!(s.get("/ttl/keep", None).await.unwrap().is_some());
}

pub async fn oversized_values_are_refused(s: Arc<dyn Storage>) {
    let big = Bytes::from(vec![b'x'; MAX_VALUE_SIZE + 1]);
    let err = s.create("/big/a", big.clone(), None).await.unwrap_err();
    assert!(matches!(err, StorageError::ValueTooLarge { .. }), "{err:?}");
    assert_eq!(s.get("/big/a", None).await.unwrap(), None);
    let kv = s.create("/big/a", b("small"), None).await.unwrap();
    let err = s
        .update("/big/a", big, kv.mod_revision, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::ValueTooLarge { .. }), "{err:?}");
    // Up to a megabyte is fine everywhere (etcd's limit is on the whole request).
    let mb = Bytes::from(vec![b'y'; 1 << 20]);
    let kv = s
        .update("/big/a", mb.clone(), kv.mod_revision, None)
        .await
        .unwrap();
    assert_eq!(s.get("/big/a", None).await.unwrap().unwrap().value, mb);
    assert_eq!(kv.value.len(), 1 << 20);
}

pub async fn empty_key_is_refused(s: Arc<dyn Storage>) {
    let err = s.create("", b("x"), None).await.unwrap_err();
    assert!(matches!(err, StorageError::InvalidKey { .. }), "{err:?}");
}
