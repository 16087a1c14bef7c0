//! What only a real etcd cluster can show: TLS client certificates (and the errors when
//! they are wrong), unreachable endpoints, fail-over of writes and watches when a member
//! dies, etcd's request size limit, error details, and key-prefix isolation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::Duration;

use bytes::Bytes;
use ferrokube_storage::{
    EventKind, KeyValue, RangeRequest, Storage, StorageError, WatchMessage, WatchRequest,
    WatchStream, MAX_VALUE_SIZE,
};
use ferrokube_storage_etcd::testing::{EtcdCluster, TestPki};
use ferrokube_storage_etcd::{EtcdConfig, EtcdStorage};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn next_event(w: &mut WatchStream) -> ferrokube_storage::Event {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), w.recv())
            .await
            .expect("timed out waiting for a watch event")
            .expect("watch ended")
            .expect("watch error");
        if let WatchMessage::Event(e) = msg {
            return e;
        }
    }
}

/// Connecting must fail; returns the error and its message.
async fn connect_err(config: EtcdConfig) -> (StorageError, String) {
    let started = std::time::Instant::now();
    let err = EtcdStorage::connect(config)
        .await
        .expect_err("connecting should fail");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "connect took {:?}",
        started.elapsed()
    );
    let msg = err.to_string();
    (err, msg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates_reads_and_writes() {
    let cluster = EtcdCluster::start(1, true).await;
    assert!(cluster.endpoints()[0].starts_with("https://127.0.0.1:"));
    let store = EtcdStorage::connect(cluster.config())
        .await
        .expect("TLS connect");
    let mut w = store.watch(WatchRequest::prefix("/tls/")).await.unwrap();
    let kv = store.create("/tls/a", b("secret"), None).await.unwrap();
    assert_eq!(store.get("/tls/a", None).await.unwrap().unwrap(), kv);
    let v2 = store
        .update("/tls/a", b("two"), kv.mod_revision, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .range(RangeRequest::prefix("/tls/"))
            .await
            .unwrap()
            .kvs,
        vec![v2.clone()]
    );
    assert_eq!(next_event(&mut w).await.kv, kv);
    assert_eq!(next_event(&mut w).await.kv, v2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_misconfiguration_names_the_endpoint_and_the_cause() {
    let cluster = EtcdCluster::start(1, true).await;
    let endpoint = cluster.endpoints()[0].clone();
    let pki = cluster.pki().unwrap().clone();
    let timeout = Duration::from_secs(3);

    // A CA that did not sign the server's certificate.
    let other = TestPki::generate(cluster.dir(), "other");
    let wrong_ca = EtcdConfig::new([endpoint.clone()])
        .with_tls(&other.ca_file, &pki.client_cert_file, &pki.client_key_file)
        .with_dial_timeout(timeout);
    let (err, msg) = connect_err(wrong_ca).await;
    assert!(matches!(err, StorageError::Unavailable { .. }), "{err:?}");
    assert!(msg.contains(&endpoint), "{msg}");
    assert!(
        msg.to_lowercase().contains("certificate"),
        "cause missing: {msg}"
    );

    // No client certificate: the server requires one.
    let no_client_cert = EtcdConfig {
        ca_file: Some(pki.ca_file.clone()),
        ..EtcdConfig::new([endpoint.clone()]).with_dial_timeout(timeout)
    };
    let (err, msg) = connect_err(no_client_cert).await;
    assert!(matches!(err, StorageError::Unavailable { .. }), "{err:?}");
    assert!(msg.contains(&endpoint), "{msg}");
    assert!(msg.contains("client certificate"), "cause missing: {msg}");

    // A client certificate signed by another CA.
    let foreign_cert = EtcdConfig::new([endpoint.clone()])
        .with_tls(
            &pki.ca_file,
            &other.client_cert_file,
            &other.client_key_file,
        )
        .with_dial_timeout(timeout);
    let (_, msg) = connect_err(foreign_cert).await;
    assert!(msg.contains(&endpoint), "{msg}");

    // Plain gRPC to a TLS port.
    let (_, msg) = connect_err(
        EtcdConfig::new([endpoint.replace("https://", "http://")]).with_dial_timeout(timeout),
    )
    .await;
    assert!(msg.contains("127.0.0.1"), "{msg}");

    // Unreadable files are named before any connection is tried.
    let missing = cluster.dir().join("nope.pem");
    let (err, msg) = connect_err(EtcdConfig::new([endpoint.clone()]).with_tls(
        &missing,
        &pki.client_cert_file,
        &pki.client_key_file,
    ))
    .await;
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    assert!(msg.contains("nope.pem"), "{msg}");
    let (err, msg) = connect_err(EtcdConfig::new([endpoint]).with_tls(
        &pki.ca_file,
        &pki.client_key_file, // a key where a certificate belongs
        &pki.client_key_file,
    ))
    .await;
    assert!(
        matches!(err, StorageError::InvalidRequest { .. }),
        "{err:?}"
    );
    assert!(
        msg.contains("--etcd-certfile") && msg.contains("client-key.pem"),
        "{msg}"
    );
}

fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoints_are_named() {
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let config = EtcdConfig::new([dead.clone()]).with_dial_timeout(Duration::from_secs(2));
    let (err, msg) = connect_err(config).await;
    match &err {
        StorageError::Unavailable { endpoint, .. } => assert_eq!(endpoint, &dead),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(
        msg.contains(&dead) && msg.to_lowercase().contains("refused"),
        "{msg}"
    );

    // Several dead endpoints: each is named with its cause.
    let dead2 = format!("http://127.0.0.1:{}", closed_port());
    let config =
        EtcdConfig::new([dead.clone(), dead2.clone()]).with_dial_timeout(Duration::from_secs(2));
    let (_, msg) = connect_err(config).await;
    assert!(
        msg.contains(&format!("{dead}: ")) && msg.contains(&format!("{dead2}: ")),
        "{msg}"
    );

    // One live member is enough to start.
    let cluster = EtcdCluster::start(1, false).await;
    let mut endpoints = vec![dead];
    endpoints.extend(cluster.endpoints());
    let store = EtcdStorage::connect(EtcdConfig::new(endpoints))
        .await
        .expect("one member answers");
    for i in 0..10 {
        store
            .create(&format!("/half/{i}"), b("x"), None)
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .range(RangeRequest::prefix("/half/"))
            .await
            .unwrap()
            .count,
        10
    );
}

/// Creates `key`, retrying the ambiguous failures etcd can return while a new leader is
/// elected (as an API client would); a retry that finds the key means the first try
/// was applied. Returns the created value and the number of retries.
async fn create_surely(store: &EtcdStorage, key: &str) -> (KeyValue, usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut retries = 0;
    loop {
        match store.create(key, b(key), None).await {
            Ok(kv) => return (kv, retries),
            Err(StorageError::AlreadyExists { .. }) if retries > 0 => {
                return (store.get(key, None).await.unwrap().unwrap(), retries);
            }
            Err(err @ StorageError::Unavailable { .. }) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "writes did not resume: {err}"
                );
                retries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("create {key}: {err:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_watches_survive_the_death_of_a_member() {
    let mut cluster = EtcdCluster::start(3, false).await;
    let store = EtcdStorage::connect(cluster.config()).await.unwrap();
    // Several watches, so that some are on the member that dies (the balancer spreads
    // streams over the members).
    let mut watches = Vec::new();
    for _ in 0..9 {
        watches.push(store.watch(WatchRequest::prefix("/ha/")).await.unwrap());
    }
    let mut written = Vec::new();
    for i in 0..10 {
        written.push(
            store
                .create(&format!("/ha/{i:03}"), b("before"), None)
                .await
                .unwrap(),
        );
    }

    cluster.kill_member(0); // the first endpoint of the list
    let mut retries = 0;
    for i in 10..40 {
        let (kv, r) = create_surely(&store, &format!("/ha/{i:03}")).await;
        retries += r;
        written.push(kv);
    }
    // Reads go on too.
    let listed = store.range(RangeRequest::prefix("/ha/")).await.unwrap();
    assert_eq!(listed.kvs.len(), 40);

    cluster.restart_member(0).await;
    for i in 40..50 {
        let (kv, r) = create_surely(&store, &format!("/ha/{i:03}")).await;
        retries += r;
        written.push(kv);
    }
    eprintln!("writes retried by the test after the kill: {retries}");

    for (n, w) in watches.iter_mut().enumerate() {
        for (i, expected) in written.iter().enumerate() {
            let e = next_event(w).await;
            assert_eq!(e.kind, EventKind::Created, "watch {n}, event {i}");
            assert_eq!(
                &e.kv, expected,
                "watch {n}, event {i}: lost, repeated or out of order"
            );
        }
        // Nothing more: no duplicates after the last write.
        let extra = tokio::time::timeout(Duration::from_millis(300), w.recv()).await;
        assert!(
            extra.is_err(),
            "watch {n} delivered more than was written: {extra:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_values_are_refused_by_the_client_and_by_etcd() {
    let cluster = EtcdCluster::start(1, false).await;
    let store = EtcdStorage::connect(cluster.config()).await.unwrap();
    let too_big = Bytes::from(vec![b'x'; MAX_VALUE_SIZE + 1]);
    let err = store.create("/big/a", too_big, None).await.unwrap_err();
    assert!(matches!(err, StorageError::ValueTooLarge { .. }), "{err:?}");
    // Exactly the limit passes the client's check, but the whole request is over
    // etcd's --max-request-bytes: etcd's "request is too large" maps to the same error.
    let at_limit = Bytes::from(vec![b'x'; MAX_VALUE_SIZE]);
    match store.create("/big/b", at_limit, None).await {
        Err(StorageError::ValueTooLarge { key, size, .. }) => {
            assert_eq!((key.as_str(), size), ("/big/b", MAX_VALUE_SIZE));
        }
        other => panic!("expected ValueTooLarge from etcd, got {other:?}"),
    }
    assert_eq!(
        store
            .range(RangeRequest::prefix("/big/"))
            .await
            .unwrap()
            .count,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_isolate_stores_sharing_a_cluster() {
    let cluster = EtcdCluster::start(1, false).await;
    let a = EtcdStorage::connect(cluster.config().with_prefix("/a"))
        .await
        .unwrap();
    let b_store = EtcdStorage::connect(cluster.config().with_prefix("/b/"))
        .await
        .unwrap();
    let raw = EtcdStorage::connect(cluster.config().with_prefix("/"))
        .await
        .unwrap();
    assert_eq!(a.prefix(), "/a/");

    let mut wa = a.watch(WatchRequest::prefix("/")).await.unwrap();
    let ka = a.create("/pods/x", b("from a"), None).await.unwrap();
    let kb = b_store.create("/pods/x", b("from b"), None).await.unwrap();
    raw.create("/ab/pods/x", b("sibling prefix"), None)
        .await
        .unwrap();
    let ka2 = a.create("/pods/y", b("from a"), None).await.unwrap();

    assert_eq!(a.get("/pods/x", None).await.unwrap().unwrap(), ka);
    assert_eq!(b_store.get("/pods/x", None).await.unwrap().unwrap(), kb);
    let all_a = a.range(RangeRequest::prefix("/")).await.unwrap();
    assert_eq!(all_a.kvs, vec![ka.clone(), ka2.clone()]);
    assert_eq!(
        b_store
            .range(RangeRequest::prefix("/"))
            .await
            .unwrap()
            .count,
        1
    );
    assert!(a.delete("/pods/y", None).await.is_ok());
    assert!(b_store
        .delete("/pods/y", None)
        .await
        .unwrap_err()
        .is_not_found());

    // In etcd the keys sit under their prefixes.
    let keys: BTreeSet<String> = raw
        .range(RangeRequest::prefix("/"))
        .await
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    let expected: BTreeSet<String> = ["/a/pods/x", "/b/pods/x", "/ab/pods/x"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(keys, expected);

    // A's watch on its whole prefix saw only A's writes.
    assert_eq!(next_event(&mut wa).await.kv, ka);
    assert_eq!(next_event(&mut wa).await.kv, ka2);
    let e = next_event(&mut wa).await;
    assert_eq!((e.kind, e.kv.key.as_str()), (EventKind::Deleted, "/pods/y"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_errors_carry_etcd_revisions() {
    let cluster = EtcdCluster::start(1, false).await;
    let store = EtcdStorage::connect(cluster.config()).await.unwrap();
    let v1 = store.create("/rev/a", b("1"), None).await.unwrap();
    let v2 = store
        .update("/rev/a", b("2"), v1.mod_revision, None)
        .await
        .unwrap();
    let current = store.current_revision().await.unwrap();
    assert_eq!(current, v2.mod_revision);

    match store.get("/rev/a", Some(current + 10)).await {
        Err(StorageError::FutureRevision {
            requested,
            current: c,
        }) => {
            assert_eq!((requested, c), (current + 10, current));
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
    store.compact(v2.mod_revision).await.unwrap();
    // Another client compacts; errors report etcd's compacted revision, not this one's.
    let other = EtcdStorage::connect(cluster.config()).await.unwrap();
    match other.get("/rev/a", Some(v1.mod_revision)).await {
        Err(StorageError::Compacted {
            requested,
            compacted,
        }) => {
            assert_eq!((requested, compacted), (v1.mod_revision, v2.mod_revision));
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    let mut w = other
        .watch(WatchRequest::prefix("/rev/").from_revision(v1.mod_revision))
        .await
        .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(10), w.recv())
        .await
        .unwrap()
        .unwrap();
    match msg {
        Err(StorageError::Compacted {
            requested,
            compacted,
        }) => {
            assert_eq!((requested, compacted), (v1.mod_revision, v2.mod_revision));
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(tokio::time::timeout(Duration::from_secs(5), w.recv())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_shared_by_keys_with_close_ttls() {
    let cluster = EtcdCluster::start(1, true).await;
    let store = EtcdStorage::connect(cluster.config()).await.unwrap();
    for i in 0..5 {
        store
            .create(&format!("/ev/{i}"), b("x"), Some(Duration::from_secs(600)))
            .await
            .unwrap();
    }
    let kv = store.create("/ev/u", b("x"), None).await.unwrap();
    // An update with a TTL gets a lease; one without drops it (etcd semantics).
    store
        .update(
            "/ev/u",
            b("y"),
            kv.mod_revision,
            Some(Duration::from_secs(600)),
        )
        .await
        .unwrap();

    let mut options = etcd_client::ConnectOptions::new();
    options = options.with_tls(cluster.pki().unwrap().client_tls());
    let mut client = etcd_client::Client::connect(cluster.endpoints(), Some(options))
        .await
        .unwrap();
    let leases = client.leases().await.unwrap();
    assert_eq!(
        leases.leases().len(),
        1,
        "six keys with the same TTL share one lease"
    );
    let ttl = client
        .lease_time_to_live(leases.leases()[0].id(), None)
        .await
        .unwrap();
    // 600 s plus upstream's reuse window of 5% (30 s).
    assert!(ttl.granted_ttl() == 630, "granted {}", ttl.granted_ttl());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_sharing_a_revision_are_all_delivered() {
    let cluster = EtcdCluster::start(1, false).await;
    let store = EtcdStorage::connect(cluster.config()).await.unwrap();
    let mut w = store.watch(WatchRequest::prefix("/multi/")).await.unwrap();
    let mut kvs = Vec::new();
    for i in 0..3 {
        kvs.push(
            store
                .create(&format!("/multi/{i}"), b("x"), None)
                .await
                .unwrap(),
        );
    }
    // Another client (etcdctl del --prefix) deletes them all at one revision.
    let mut client = etcd_client::Client::connect(cluster.endpoints(), None)
        .await
        .unwrap();
    let opts = etcd_client::DeleteOptions::new().with_prefix();
    let resp = client.delete("/registry/multi/", Some(opts)).await.unwrap();
    assert_eq!(resp.deleted(), 3);
    let rev = resp.header().unwrap().revision();
    for kv in &kvs {
        assert_eq!(next_event(&mut w).await.kv, *kv);
    }
    for kv in &kvs {
        let e = next_event(&mut w).await;
        assert_eq!(
            (e.kind, e.kv.key.as_str(), e.kv.mod_revision),
            (EventKind::Deleted, kv.key.as_str(), rev)
        );
        assert_eq!(e.prev_kv.as_ref(), Some(kv));
    }
}
