#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! ferrokube-client's leader election against `ferrokube server`: two candidates, one
//! leads; the leader dies and the other takes over within lease duration + retry with
//! leaseTransitions incremented; a stolen Lease makes the leader lose leadership within
//! the renew deadline; ReleaseOnCancel writes an empty holder. The Lease is judged by
//! kubectl's YAML, as the seeds check `kubectl -n kube-system get leases`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrokube_client::{ClientConfig, Ended, LeaderElectionConfig, LeaderElector};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const LEASE: &str = "ferrokube-test-lease";

fn config(release_on_cancel: bool) -> LeaderElectionConfig {
    LeaderElectionConfig {
        lease_duration: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(500),
        release_on_cancel,
    }
}

struct Candidate {
    identity: String,
    leading: Arc<AtomicBool>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Ended>,
}

async fn candidate(client: &kube::Client, n: u32, release_on_cancel: bool) -> Candidate {
    let identity = format!("{}-{n}", ferrokube_client::new_identity());
    let elector = LeaderElector::new(
        client.clone(),
        "kube-system",
        LEASE,
        identity.clone(),
        config(release_on_cancel),
    )
    .unwrap();
    let leading = Arc::new(AtomicBool::new(false));
    let (shutdown, rx) = watch::channel(false);
    let flag = leading.clone();
    let task = tokio::spawn(async move {
        elector
            .run(rx, |mut leadership| async move {
                flag.store(true, Ordering::SeqCst);
                leadership.stopped().await;
                flag.store(false, Ordering::SeqCst);
            })
            .await
            .unwrap()
    });
    Candidate {
        identity,
        leading,
        shutdown,
        task,
    }
}

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// `kubectl -n kube-system get lease <name> -o yaml`'s spec fields.
fn lease_yaml(s: &common::Server) -> std::collections::BTreeMap<String, String> {
    let yaml = s.ok(&["-n", "kube-system", "get", "lease", LEASE, "-o", "yaml"]);
    let spec = yaml.split("\nspec:\n").nth(1).expect("spec in the YAML");
    spec.lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.trim().split_once(": "))
        .map(|(k, v)| (k.to_string(), v.trim_matches(['"', '\'']).to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_candidates_one_leader_failover_loss_and_release() {
    let s = common::start();
    let client = ClientConfig::new(&s.kubeconfig, "leader-election-test", "v0.0.0")
        .rate_limit(50.0, 100)
        .unwrap()
        .build()
        .await
        .unwrap();

    // Two candidates: exactly one leads, and keeps leading.
    let a = candidate(&client, 1, false).await;
    let b = candidate(&client, 2, false).await;
    wait_until("a leader", Duration::from_secs(10), || {
        a.leading.load(Ordering::SeqCst) || b.leading.load(Ordering::SeqCst)
    })
    .await;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            a.leading.load(Ordering::SeqCst) ^ b.leading.load(Ordering::SeqCst),
            "exactly one leader"
        );
    }
    let (leader, follower) = if a.leading.load(Ordering::SeqCst) {
        (a, b)
    } else {
        (b, a)
    };
    let spec = lease_yaml(&s);
    assert_eq!(spec["holderIdentity"], leader.identity, "{spec:?}");
    assert_eq!(spec["leaseDurationSeconds"], "4");
    assert_eq!(spec["leaseTransitions"], "0");
    assert!(
        spec["acquireTime"].ends_with('Z') && spec["renewTime"].ends_with('Z'),
        "{spec:?}"
    );
    // The renewals move renewTime, not acquireTime.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let later = lease_yaml(&s);
    assert_eq!(later["acquireTime"], spec["acquireTime"]);
    assert_ne!(later["renewTime"], spec["renewTime"]);
    // The HOLDER column of the seeds' check.
    let table = s.ok(&["-n", "kube-system", "get", "leases", LEASE]);
    assert!(table.contains(&leader.identity), "{table}");

    // The leader dies without releasing: the follower takes over once the lease has
    // expired from its point of view, i.e. within lease duration + (jittered) retry.
    leader.task.abort();
    let took = wait_until("fail-over", Duration::from_secs(10), || {
        follower.leading.load(Ordering::SeqCst)
    })
    .await;
    assert!(
        took <= Duration::from_millis(4000 + 1100 + 800),
        "fail-over took {took:?}"
    );
    let spec = lease_yaml(&s);
    assert_eq!(spec["holderIdentity"], follower.identity);
    assert_eq!(spec["leaseTransitions"], "1");

    // Someone else takes the Lease: the leader cannot renew, loses leadership within
    // the renew deadline, its work is told to stop and run() says so.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let steal = serde_json::json!({"spec": {
        "holderIdentity": "intruder",
        "renewTime": MicroTime(k8s_openapi::jiff::Timestamp::now()),
        "leaseDurationSeconds": 4,
    }});
    leases
        .patch(LEASE, &PatchParams::default(), &Patch::Merge(&steal))
        .await
        .unwrap();
    let lost = wait_until("loss of leadership", Duration::from_secs(6), || {
        !follower.leading.load(Ordering::SeqCst)
    })
    .await;
    assert!(
        lost <= Duration::from_millis(2000 + 1500),
        "lost after {lost:?}"
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), follower.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended, Ended::LostLeadership);
    drop(follower.shutdown);

    // A candidate with ReleaseOnCancel takes over the intruder's unrenewed lease
    // (a transition: the intruder's patch did not count one), then shuts down and
    // releases it.
    let c = candidate(&client, 3, true).await;
    wait_until(
        "take-over from the intruder",
        Duration::from_secs(10),
        || c.leading.load(Ordering::SeqCst),
    )
    .await;
    assert_eq!(lease_yaml(&s)["leaseTransitions"], "2");
    c.shutdown.send(true).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), c.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended, Ended::Shutdown);
    assert!(!c.leading.load(Ordering::SeqCst));
    let spec = lease_yaml(&s);
    assert_eq!(spec["holderIdentity"], "", "{spec:?}");
    assert_eq!(spec["leaseDurationSeconds"], "1");
    assert_eq!(spec["leaseTransitions"], "2");

    // A released lease is taken at the next try, not after a lease duration.
    let d = candidate(&client, 4, false).await;
    let took = wait_until(
        "take-over of a released lease",
        Duration::from_secs(5),
        || d.leading.load(Ordering::SeqCst),
    )
    .await;
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert_eq!(lease_yaml(&s)["leaseTransitions"], "3");
    d.shutdown.send(true).unwrap();
    let _ = d.task.await;
}
