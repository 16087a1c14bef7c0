#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::config::{HealthCheckConfig, HealthCheckKind};
use crate::metrics::Metrics;

fn server(addr: &str, weight: u32, max_fails: u32, backup: bool) -> ServerConfig {
    ServerConfig {
        name: addr.to_string(),
        address: addr.parse().unwrap(),
        weight,
        max_fails,
        fail_timeout: Duration::from_secs(10),
        backup,
        down: false,
    }
}

fn pool(balance: Balance, servers: Vec<ServerConfig>) -> Pool {
    let metrics = Metrics::new();
    let cfg = UpstreamConfig {
        name: "u".into(),
        balance,
        servers,
        health_check: None,
    };
    Pool::new(&cfg, |s| {
        Arc::new(PeerState::new(metrics.peer("u", &s.address.to_string())))
    })
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Chooses for `client` with nothing tried; the index.
fn pick(p: &Pool, client: &str, now: Instant) -> Option<usize> {
    let mut tried = vec![false; p.peers.len()];
    p.select(ip(client), &mut tried, now).map(|c| c.index)
}

#[test]
fn round_robin_honours_weights_smoothly() {
    let p = pool(
        Balance::RoundRobin,
        vec![
            server("127.0.0.1:1", 5, 1, false),
            server("127.0.0.1:2", 1, 1, false),
            server("127.0.0.1:3", 1, 1, false),
        ],
    );
    let now = Instant::now();
    let seq: Vec<usize> = (0..7).map(|_| pick(&p, "10.0.0.1", now).unwrap()).collect();
    // nginx's smooth weighted round robin: a a b a c a a.
    assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0]);
}

#[test]
fn least_conn_prefers_the_idle_server() {
    let p = pool(
        Balance::LeastConn,
        vec![
            server("127.0.0.1:1", 1, 1, false),
            server("127.0.0.1:2", 1, 1, false),
        ],
    );
    let now = Instant::now();
    let mut tried = vec![false; 2];
    let a = p.select(ip("10.0.0.1"), &mut tried, now).unwrap();
    // While `a` is held, the other server has fewer connections.
    for _ in 0..5 {
        let b = pick(&p, "10.0.0.1", now).unwrap();
        assert_ne!(b, a.index);
    }
    let held = a.index;
    drop(a);
    assert_eq!(p.peers[held].state.conns.load(Ordering::Relaxed), 0);
}

#[test]
fn consistent_hash_keeps_a_client_and_walks_the_ring_past_failures() {
    let servers: Vec<ServerConfig> = (1..=3)
        .map(|i| server(&format!("127.0.0.{i}:6443"), 1, 1, false))
        .collect();
    let p = pool(Balance::HashRemoteAddr { consistent: true }, servers);
    let now = Instant::now();
    let first = pick(&p, "192.168.1.7", now).unwrap();
    for _ in 0..10 {
        assert_eq!(pick(&p, "192.168.1.7", now), Some(first));
    }
    // Its server fails (max_fails=1): the client moves to the next server on the
    // ring, and stays there while the failed one is out.
    p.failed(first, now);
    let next = pick(&p, "192.168.1.7", now).unwrap();
    assert_ne!(next, first);
    assert_eq!(pick(&p, "192.168.1.7", now), Some(next));
    // Clients of other servers do not move.
    let mut others = 0;
    for i in 0..200 {
        let c = format!("10.1.{}.{}", i / 100, i % 100);
        let fresh = pool(
            Balance::HashRemoteAddr { consistent: true },
            (1..=3)
                .map(|i| server(&format!("127.0.0.{i}:6443"), 1, 1, false))
                .collect(),
        );
        let before = pick(&fresh, &c, now).unwrap();
        if before != first {
            assert_eq!(pick(&p, &c, now), Some(before));
            others += 1;
        }
    }
    assert!(others > 50);
    // After fail_timeout the server is tried again; a success brings it back.
    let later = now + Duration::from_secs(11);
    assert_eq!(pick(&p, "192.168.1.7", later), Some(first));
    p.succeeded(first);
    assert_eq!(pick(&p, "192.168.1.7", later), Some(first));
}

#[test]
fn passive_health_counts_max_fails_within_fail_timeout() {
    let p = pool(
        Balance::RoundRobin,
        vec![
            server("127.0.0.1:1", 1, 3, false),
            server("127.0.0.1:2", 1, 3, false),
        ],
    );
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let choose_a = |now| {
        let mut tried = vec![false, true];
        p.select(ip("10.0.0.1"), &mut tried, now).map(|c| c.index)
    };
    p.failed(0, t0);
    p.failed(0, t0 + s(1));
    assert!(p.is_up(0, t0 + s(2)), "2 of 3 fails");
    p.failed(0, t0 + s(2));
    assert!(!p.is_up(0, t0 + s(3)), "3 fails: out");
    assert!(
        !p.is_up(0, t0 + s(12)),
        "out for fail_timeout after the last"
    );
    assert!(p.is_up(0, t0 + s(13)), "back after fail_timeout");
    assert_eq!(choose_a(t0 + s(13)), Some(0));
    // One more failure right away takes it out again (fails were not reset)...
    p.failed(0, t0 + s(13));
    assert!(!p.is_up(0, t0 + s(14)));
    // ...while a success after the re-check resets the count.
    assert_eq!(choose_a(t0 + s(24)), Some(0));
    p.succeeded(0);
    p.failed(0, t0 + s(25));
    assert!(p.is_up(0, t0 + s(25)));
}

#[test]
fn max_fails_zero_and_single_servers_never_go_out() {
    let p = pool(
        Balance::RoundRobin,
        vec![
            server("127.0.0.1:1", 1, 0, false),
            server("127.0.0.1:2", 1, 1, false),
        ],
    );
    let now = Instant::now();
    for _ in 0..5 {
        p.failed(0, now);
    }
    assert!(p.is_up(0, now));
    let single = pool(
        Balance::RoundRobin,
        vec![server("127.0.0.1:1", 1, 1, false)],
    );
    single.failed(0, now);
    single.failed(0, now);
    assert_eq!(pick(&single, "10.0.0.1", now), Some(0));
}

#[test]
fn backups_only_when_no_primary_and_reset_when_nothing_is_left() {
    let p = pool(
        Balance::RoundRobin,
        vec![
            server("127.0.0.1:1", 1, 1, false),
            server("127.0.0.1:2", 1, 1, true),
        ],
    );
    let now = Instant::now();
    for _ in 0..4 {
        assert_eq!(pick(&p, "10.0.0.1", now), Some(0));
    }
    p.failed(0, now);
    assert_eq!(pick(&p, "10.0.0.1", now), Some(1));
    p.failed(1, now);
    // Nothing usable: no choice, and the counts reset for quick recovery.
    assert_eq!(pick(&p, "10.0.0.1", now), None);
    assert_eq!(pick(&p, "10.0.0.1", now), Some(0));
}

#[test]
fn tried_servers_are_skipped_and_down_servers_never_chosen() {
    let mut servers = vec![
        server("127.0.0.1:1", 1, 1, false),
        server("127.0.0.1:2", 1, 1, false),
        server("127.0.0.1:3", 1, 1, false),
    ];
    servers[2].down = true;
    for balance in [
        Balance::RoundRobin,
        Balance::LeastConn,
        Balance::HashRemoteAddr { consistent: true },
        Balance::HashRemoteAddr { consistent: false },
    ] {
        let p = pool(balance, servers.clone());
        let now = Instant::now();
        let mut tried = vec![false; 3];
        let a = p.select(ip("10.9.8.7"), &mut tried, now).unwrap().index;
        let b = p.select(ip("10.9.8.7"), &mut tried, now).unwrap().index;
        assert_ne!(a, b, "{balance:?}");
        assert!(a != 2 && b != 2, "{balance:?}");
        assert!(
            p.select(ip("10.9.8.7"), &mut tried, now).is_none(),
            "{balance:?}"
        );
    }
}

#[test]
fn active_down_servers_are_skipped_but_tried_as_a_last_resort() {
    let metrics = Metrics::new();
    let cfg = UpstreamConfig {
        name: "u".into(),
        balance: Balance::RoundRobin,
        servers: vec![
            server("127.0.0.1:1", 1, 1, false),
            server("127.0.0.1:2", 1, 1, false),
        ],
        health_check: Some(HealthCheckConfig::new(HealthCheckKind::Tcp)),
    };
    let p = Pool::new(&cfg, |s| {
        Arc::new(PeerState::new(metrics.peer("u", &s.address.to_string())))
    });
    let now = Instant::now();
    p.peers[0].state.active_up.store(false, Ordering::Relaxed);
    for _ in 0..4 {
        assert_eq!(pick(&p, "10.0.0.1", now), Some(1));
    }
    assert!(!p.is_up(0, now));
    p.peers[1].state.active_up.store(false, Ordering::Relaxed);
    assert!(
        pick(&p, "10.0.0.1", now).is_some(),
        "fail open when every check fails"
    );
}

#[test]
fn modulo_hash_is_sticky() {
    let p = pool(
        Balance::HashRemoteAddr { consistent: false },
        (1..=4)
            .map(|i| server(&format!("127.0.0.1:{i}"), 1, 1, false))
            .collect(),
    );
    let now = Instant::now();
    let mut seen = std::collections::HashSet::new();
    for c in 0..100 {
        let client = format!("10.0.0.{c}");
        let a = pick(&p, &client, now).unwrap();
        assert_eq!(pick(&p, &client, now), Some(a));
        seen.insert(a);
    }
    assert_eq!(seen.len(), 4, "clients spread over every server");
}
