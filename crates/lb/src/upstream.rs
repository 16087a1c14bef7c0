//! An upstream's servers at run time and how one is chosen for a connection
//! (nginx's `ngx_stream_upstream_round_robin`, `_least_conn` and `_hash` modules):
//!
//! - a server is *usable* unless it is `down`, failed its active health checks, or
//!   had `max_fails` failed connects and `fail_timeout` has not passed since the last
//!   one (nginx's passive health, `peer->fails`/`checked`/`accessed`); a pool of one
//!   server ignores failures, as nginx does;
//! - primary servers first, by the balancing method; `backup` servers (round robin)
//!   only when no primary is usable;
//! - if active checks leave nothing usable, servers that only failed those checks are
//!   tried anyway (a broken check must not take every server out);
//! - if nothing at all can be chosen, every failure count is reset (nginx: "mark
//!   them as live for quick recovery") and the connection is closed.
//!
//! A server's state (failure counts, health, open connections, metric series) is
//! kept by address across reloads.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::balance::{build_ring, crc32, find_point, ModuloHash, Point};
use crate::config::{Balance, ServerConfig, UpstreamConfig};
use crate::metrics::PeerMetrics;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// nginx's passive-health bookkeeping of one server.
#[derive(Debug, Default)]
struct Passive {
    /// Failed connects counted so far.
    fails: u32,
    /// When the last failure was.
    accessed: Option<Instant>,
    /// When the server was last "checked": a failure, or a selection after
    /// `fail_timeout` passed.
    checked: Option<Instant>,
    /// A "disabled" warning was logged and not yet followed by "back".
    disabled: bool,
}

/// What one server carries across reloads.
#[derive(Debug)]
pub(crate) struct PeerState {
    passive: Mutex<Passive>,
    /// Verdict of the active health checks (true without checks).
    pub active_up: AtomicBool,
    /// Connections chosen for this server and not finished.
    pub conns: AtomicUsize,
    pub metrics: PeerMetrics,
}

impl PeerState {
    pub fn new(metrics: PeerMetrics) -> PeerState {
        PeerState {
            passive: Mutex::new(Passive::default()),
            active_up: AtomicBool::new(true),
            conns: AtomicUsize::new(0),
            metrics,
        }
    }
}

/// One server of a pool.
#[derive(Debug)]
pub(crate) struct Peer {
    pub cfg: ServerConfig,
    pub state: Arc<PeerState>,
}

/// An upstream at run time.
#[derive(Debug)]
pub(crate) struct Pool {
    pub name: String,
    pub balance: Balance,
    pub peers: Vec<Peer>,
    /// Whether active health checks run (so "active down" may be ignored as a last
    /// resort).
    pub has_active_checks: bool,
    /// One primary server and no backup: failures never take it out (nginx's
    /// `peers->single`).
    single: bool,
    /// The ketama ring over distinct server names (`consistent` hash).
    ring: Vec<Point>,
    /// Peer indices per ring name.
    ring_names: Vec<Vec<usize>>,
    /// Total weight of the primary servers (modulo hash).
    total_weight: u64,
    /// Smooth weighted round robin's current weights.
    rr: Mutex<Vec<i64>>,
}

/// A server chosen for a connection; counts as one of its connections until dropped.
#[derive(Debug)]
pub(crate) struct Chosen {
    pub index: usize,
    pub state: Arc<PeerState>,
}

impl Drop for Chosen {
    fn drop(&mut self) {
        self.state.conns.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    /// A pool for `cfg`; `state` gives the state of a server (existing or new).
    pub fn new(
        cfg: &UpstreamConfig,
        mut state: impl FnMut(&ServerConfig) -> Arc<PeerState>,
    ) -> Pool {
        let peers: Vec<Peer> = cfg
            .servers
            .iter()
            .map(|s| Peer {
                cfg: s.clone(),
                state: state(s),
            })
            .collect();
        let mut names: Vec<(&str, u32)> = Vec::new();
        let mut ring_names: Vec<Vec<usize>> = Vec::new();
        for (i, p) in peers.iter().enumerate().filter(|(_, p)| !p.cfg.backup) {
            match names.iter().position(|(n, _)| *n == p.cfg.name) {
                Some(at) => {
                    if let Some(v) = ring_names.get_mut(at) {
                        v.push(i);
                    }
                }
                None => {
                    names.push((&p.cfg.name, p.cfg.weight));
                    ring_names.push(vec![i]);
                }
            }
        }
        let ring = match cfg.balance {
            Balance::HashRemoteAddr { consistent: true } => build_ring(&names),
            _ => Vec::new(),
        };
        let total_weight = peers
            .iter()
            .filter(|p| !p.cfg.backup)
            .map(|p| u64::from(p.cfg.weight))
            .sum();
        let single = peers.len() == 1;
        Pool {
            name: cfg.name.clone(),
            balance: cfg.balance,
            has_active_checks: cfg.health_check.is_some(),
            single,
            ring,
            ring_names,
            total_weight,
            rr: Mutex::new(vec![0; peers.len()]),
            peers,
        }
    }

    fn passive_failed(&self, peer: &Peer, now: Instant) -> bool {
        if self.single || peer.cfg.max_fails == 0 {
            return false;
        }
        let p = lock(&peer.state.passive);
        p.fails >= peer.cfg.max_fails
            && p.checked
                .is_some_and(|c| now.saturating_duration_since(c) <= peer.cfg.fail_timeout)
    }

    /// Whether server `i` may be chosen now.
    fn usable(&self, i: usize, tried: &[bool], now: Instant, ignore_active: bool) -> bool {
        let Some(peer) = self.peers.get(i) else {
            return false;
        };
        !tried.get(i).copied().unwrap_or(true)
            && !peer.cfg.down
            && (ignore_active || peer.state.active_up.load(Ordering::Relaxed))
            && !self.passive_failed(peer, now)
    }

    /// Whether server `i` is up for the `up` gauge and `/readyz`.
    pub fn is_up(&self, i: usize, now: Instant) -> bool {
        self.peers.get(i).is_some_and(|p| {
            !p.cfg.down && p.state.active_up.load(Ordering::Relaxed) && !self.passive_failed(p, now)
        })
    }

    /// Smooth weighted round robin among `candidates`.
    fn round_robin(&self, candidates: impl Iterator<Item = usize>) -> Option<usize> {
        let mut cw = lock(&self.rr);
        let mut total: i64 = 0;
        let mut best: Option<usize> = None;
        for i in candidates {
            let w = i64::from(self.peers.get(i).map_or(1, |p| p.cfg.weight));
            let Some(c) = cw.get_mut(i) else { continue };
            *c += w;
            total += w;
            let c = *c;
            if best.is_none_or(|b| c > cw.get(b).copied().unwrap_or(i64::MIN)) {
                best = Some(i);
            }
        }
        if let Some(b) = best.and_then(|b| cw.get_mut(b).map(|c| (b, c))) {
            *b.1 -= total;
            return Some(b.0);
        }
        None
    }

    /// Fewest connections relative to weight; round robin among equals.
    fn least_conn(&self, candidates: &[usize]) -> Option<usize> {
        let load = |i: usize| {
            let p = self.peers.get(i)?;
            Some((
                p.state.conns.load(Ordering::Relaxed) as u128,
                u128::from(p.cfg.weight),
            ))
        };
        let mut ties: Vec<usize> = Vec::new();
        let mut best: Option<(u128, u128)> = None;
        for &i in candidates {
            let Some((c, w)) = load(i) else { continue };
            match best {
                Some((bc, bw)) if c * bw > bc * w => {}
                Some((bc, bw)) if c * bw == bc * w => ties.push(i),
                _ => {
                    best = Some((c, w));
                    ties.clear();
                    ties.push(i);
                }
            }
        }
        match ties.len() {
            0 => None,
            1 => ties.first().copied(),
            _ => self.round_robin(ties.into_iter()),
        }
    }

    fn pick_primary(
        &self,
        client: IpAddr,
        tried: &[bool],
        now: Instant,
        ignore_active: bool,
    ) -> Option<usize> {
        let ok = |i: usize| self.usable(i, tried, now, ignore_active);
        let primaries =
            || (0..self.peers.len()).filter(|&i| self.peers.get(i).is_some_and(|p| !p.cfg.backup));
        match self.balance {
            Balance::RoundRobin => self.round_robin(primaries().filter(|&i| ok(i))),
            Balance::LeastConn => {
                let c: Vec<usize> = primaries().filter(|&i| ok(i)).collect();
                self.least_conn(&c)
            }
            Balance::HashRemoteAddr { consistent: true } => {
                if self.ring.is_empty() {
                    return None;
                }
                let key = client.to_string();
                let start = find_point(&self.ring, crc32(key.as_bytes()));
                // Walk the ring from the key's point to the first usable server.
                for step in 0..self.ring.len() {
                    let point = self.ring.get((start + step) % self.ring.len())?;
                    let Some(group) = self.ring_names.get(point.server) else {
                        continue;
                    };
                    let usable: Vec<usize> = group.iter().copied().filter(|&i| ok(i)).collect();
                    match usable.len() {
                        0 => continue,
                        1 => return usable.first().copied(),
                        _ => return self.round_robin(usable.into_iter()),
                    }
                }
                None
            }
            Balance::HashRemoteAddr { consistent: false } => {
                let key = client.to_string();
                let mut h = ModuloHash::default();
                for _ in 0..=20 {
                    let mut w = h.next(key.as_bytes(), self.total_weight);
                    for i in primaries() {
                        let weight = u64::from(self.peers.get(i).map_or(1, |p| p.cfg.weight));
                        if w < weight {
                            if ok(i) {
                                return Some(i);
                            }
                            break;
                        }
                        w -= weight;
                    }
                }
                // nginx falls back to round robin after 20 rehashes.
                self.round_robin(primaries().filter(|&i| ok(i)))
            }
        }
    }

    /// Chooses a server for a connection from `client`, skipping those in `tried`
    /// (and marking the chosen one there). `None`: nothing can be used.
    pub fn select(&self, client: IpAddr, tried: &mut [bool], now: Instant) -> Option<Chosen> {
        let passes: &[bool] = if self.has_active_checks {
            &[false, true]
        } else {
            &[false]
        };
        for &ignore_active in passes {
            let pick = self
                .pick_primary(client, tried, now, ignore_active)
                .or_else(|| {
                    self.round_robin(
                        (0..self.peers.len())
                            .filter(|&i| self.peers.get(i).is_some_and(|p| p.cfg.backup))
                            .filter(|&i| self.usable(i, tried, now, ignore_active)),
                    )
                });
            if let Some(i) = pick {
                let peer = self.peers.get(i)?;
                {
                    let mut p = lock(&peer.state.passive);
                    if p.checked
                        .is_none_or(|c| now.saturating_duration_since(c) > peer.cfg.fail_timeout)
                    {
                        p.checked = Some(now);
                    }
                }
                if let Some(t) = tried.get_mut(i) {
                    *t = true;
                }
                peer.state.conns.fetch_add(1, Ordering::Relaxed);
                return Some(Chosen {
                    index: i,
                    state: peer.state.clone(),
                });
            }
        }
        for peer in &self.peers {
            lock(&peer.state.passive).fails = 0;
        }
        None
    }

    /// A connect to server `i` failed.
    pub fn failed(&self, i: usize, now: Instant) {
        let Some(peer) = self.peers.get(i) else {
            return;
        };
        peer.state.metrics.connect_failures.inc();
        let mut p = lock(&peer.state.passive);
        p.fails = p.fails.saturating_add(1);
        p.accessed = Some(now);
        p.checked = Some(now);
        if peer.cfg.max_fails > 0 && p.fails >= peer.cfg.max_fails && !p.disabled && !self.single {
            p.disabled = true;
            tracing::warn!(
                upstream = %self.name,
                server = %peer.cfg.address,
                fails = p.fails,
                fail_timeout = ?peer.cfg.fail_timeout,
                "upstream server temporarily disabled after failed connects"
            );
        }
    }

    /// A connect to server `i` succeeded.
    pub fn succeeded(&self, i: usize) {
        let Some(peer) = self.peers.get(i) else {
            return;
        };
        peer.state.metrics.connections.inc();
        let mut p = lock(&peer.state.passive);
        if p.accessed < p.checked {
            p.fails = 0;
            if p.disabled {
                p.disabled = false;
                tracing::info!(upstream = %self.name, server = %peer.cfg.address, "upstream server accepts connections again");
            }
        }
    }
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
