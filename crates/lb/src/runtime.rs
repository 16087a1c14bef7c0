//! The running load balancer: listeners with their accept loops, the pools, health
//! checks and the metrics server — and how a new configuration is applied to them
//! without dropping a connection (nginx's `-s reload`, minus the new worker
//! processes: one process swaps what new connections see).
//!
//! A reload binds what is new first (listeners, the metrics address) and only then
//! commits, so a configuration that cannot be applied leaves the old one running.
//! Established connections keep the settings and server they started with.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Notify};

use crate::config::Config;
use crate::health;
use crate::metrics::{self, Metrics};
use crate::proxy::{self, CopyMode, ListenerSettings};
use crate::upstream::{PeerState, Pool};
use crate::Error;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Open client connections, against `maxConnections`.
#[derive(Debug)]
struct Tracker {
    active: AtomicUsize,
    limit: AtomicUsize,
    /// Millis since `born` of the last "limit reached" warning (one a second).
    last_warning: AtomicU64,
    born: Instant,
    drained: Notify,
}

/// One open client connection.
#[derive(Debug)]
struct Slot(Arc<Tracker>);

impl Drop for Slot {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

impl Tracker {
    fn enter(self: &Arc<Tracker>) -> Option<Slot> {
        let limit = self.limit.load(Ordering::Relaxed);
        let mut cur = self.active.load(Ordering::Relaxed);
        loop {
            if cur >= limit {
                return None;
            }
            match self.active.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(Slot(self.clone())),
                Err(seen) => cur = seen,
            }
        }
    }

    /// True at most once a second.
    fn should_warn(&self) -> bool {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_warning.load(Ordering::Relaxed);
        now.saturating_sub(last) >= 1000
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[derive(Debug)]
struct RunningListener {
    configured: SocketAddr,
    local: SocketAddr,
    settings: Arc<RwLock<Arc<ListenerSettings>>>,
    stop: watch::Sender<bool>,
}

#[derive(Debug)]
struct MetricsServer {
    configured: SocketAddr,
    local: SocketAddr,
    _stop: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct State {
    listeners: Vec<RunningListener>,
    peers: HashMap<(String, SocketAddr), Arc<PeerState>>,
    health: Vec<watch::Sender<bool>>,
    metrics_server: Option<MetricsServer>,
    config: Config,
    stopped: bool,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    pools: Arc<RwLock<Vec<Arc<Pool>>>>,
    metrics: Metrics,
    tracker: Arc<Tracker>,
    /// Set to end every open connection (fast shutdown).
    close_all: watch::Sender<bool>,
    copy: CopyMode,
}

/// Starts load balancers.
#[derive(Debug)]
pub struct Lb;

/// A running load balancer; clones share it.
#[derive(Debug, Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

impl Lb {
    /// Binds every listener (and the metrics address) of `config` and starts serving.
    pub async fn start(config: Config) -> Result<Handle, Error> {
        Lb::start_with(config, CopyMode::from_env()).await
    }

    /// [`Lb::start`] with a chosen copy engine.
    pub async fn start_with(config: Config, copy: CopyMode) -> Result<Handle, Error> {
        let metrics = Metrics::new();
        let pools: Arc<RwLock<Vec<Arc<Pool>>>> = Arc::default();
        let readiness = pools.clone();
        metrics.health.add(
            ferrokube_component_base::Endpoint::Readyz,
            "upstreams",
            Arc::new(move || {
                let now = Instant::now();
                let pools = readiness
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for p in pools.iter() {
                    if !(0..p.peers.len()).any(|i| p.is_up(i, now)) {
                        return Err(format!("no server of upstream {:?} is up", p.name));
                    }
                }
                Ok(())
            }),
        );
        let (close_all, _) = watch::channel(false);
        let handle = Handle {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                pools,
                metrics,
                tracker: Arc::new(Tracker {
                    active: AtomicUsize::new(0),
                    limit: AtomicUsize::new(usize::MAX),
                    last_warning: AtomicU64::new(0),
                    born: Instant::now(),
                    drained: Notify::new(),
                }),
                close_all,
                copy,
            }),
        };
        handle.apply(config)?;
        Ok(handle)
    }
}

/// Binds a listening socket (SO_REUSEADDR, backlog 1024; nginx uses 511).
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl Handle {
    /// Applies a new configuration; on error the running one is kept unchanged.
    pub async fn reload(&self, config: Config) -> Result<(), Error> {
        let result = self.apply(config);
        self.inner.metrics.reload(result.is_ok());
        result
    }

    /// Re-reads the configuration file `path` (off the runtime: names may be
    /// resolved) and applies it; a file that does not load is an error like a
    /// configuration that cannot be applied, and the running one stays.
    pub async fn reload_file(&self, path: &std::path::Path) -> Result<(), Error> {
        let owned = path.to_path_buf();
        let loaded = tokio::task::spawn_blocking(move || crate::config::load_file(&owned))
            .await
            .map_err(|_| Error::Stopped)?;
        match loaded {
            Ok(config) => self.reload(config).await,
            Err(e) => {
                self.inner.metrics.reload(false);
                Err(e.into())
            }
        }
    }

    /// The addresses the listeners are bound to (port 0 resolved), in configuration
    /// order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        lock(&self.inner.state)
            .listeners
            .iter()
            .map(|l| l.local)
            .collect()
    }

    /// The metrics server's bound address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        lock(&self.inner.state)
            .metrics_server
            .as_ref()
            .map(|m| m.local)
    }

    /// The configuration running now.
    pub fn config(&self) -> Config {
        lock(&self.inner.state).config.clone()
    }

    /// Client connections open now.
    pub fn active_connections(&self) -> usize {
        self.inner.tracker.active.load(Ordering::Relaxed)
    }

    /// Stops accepting, waits up to `grace` for open connections to end, then closes
    /// the rest (`Duration::ZERO`: nginx's fast shutdown).
    pub async fn shutdown(&self, grace: Duration) {
        {
            let mut st = lock(&self.inner.state);
            st.stopped = true;
            for l in st.listeners.drain(..) {
                let _ = l.stop.send(true);
            }
            for h in st.health.drain(..) {
                let _ = h.send(true);
            }
            st.metrics_server = None;
        }
        let tracker = &self.inner.tracker;
        let wait = async {
            loop {
                let drained = tracker.drained.notified();
                if tracker.active.load(Ordering::Acquire) == 0 {
                    return;
                }
                drained.await;
            }
        };
        if tokio::time::timeout(grace, wait).await.is_err() || grace.is_zero() {
            let _ = self.inner.close_all.send(true);
            let wait = async {
                while tracker.active.load(Ordering::Acquire) > 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
        }
    }

    fn apply(&self, config: Config) -> Result<(), Error> {
        let inner = &self.inner;
        let mut st = lock(&inner.state);
        if st.stopped {
            return Err(Error::Stopped);
        }
        if config.listeners.is_empty() {
            return Err(Error::NoListeners);
        }
        for l in &config.listeners {
            if config.upstream(&l.upstream).is_none() {
                return Err(Error::UnknownUpstream {
                    address: l.address,
                    upstream: l.upstream.clone(),
                });
            }
        }
        // Everything that can fail, before anything changes.
        let mut connectors = HashMap::new();
        for u in &config.upstreams {
            if let Some(crate::config::HealthCheckKind::Https { tls, .. }) =
                u.health_check.as_ref().map(|h| &h.kind)
            {
                connectors.insert(u.name.clone(), health::connector(&u.name, tls)?);
            }
        }
        let mut fresh: HashMap<SocketAddr, TcpListener> = HashMap::new();
        for l in &config.listeners {
            if st.listeners.iter().any(|r| r.configured == l.address) {
                continue;
            }
            let listener = bind(l.address).map_err(|source| Error::Listen {
                address: l.address,
                source,
            })?;
            fresh.insert(l.address, listener);
        }
        let metrics_listener = match config.metrics_address {
            Some(addr) if st.metrics_server.as_ref().map(|m| m.configured) != Some(addr) => {
                Some(bind(addr).map_err(|source| Error::MetricsListen {
                    address: addr,
                    source,
                })?)
            }
            _ => None,
        };

        // Commit.
        let mut peers = HashMap::new();
        let mut pools: HashMap<String, Arc<Pool>> = HashMap::new();
        for u in &config.upstreams {
            let pool = Pool::new(u, |s| {
                let key = (u.name.clone(), s.address);
                let state = st.peers.get(&key).cloned().unwrap_or_else(|| {
                    Arc::new(PeerState::new(
                        inner.metrics.peer(&u.name, &s.address.to_string()),
                    ))
                });
                if u.health_check.is_none() {
                    state.active_up.store(true, Ordering::Relaxed);
                }
                peers.insert(key, state.clone());
                state
            });
            pools.insert(u.name.clone(), Arc::new(pool));
        }
        for (key, old) in &st.peers {
            if !peers.contains_key(key) {
                old.metrics.up.set(0.0);
            }
        }
        st.peers = peers;
        for h in st.health.drain(..) {
            let _ = h.send(true);
        }
        for u in &config.upstreams {
            if let (Some(hc), Some(pool)) = (&u.health_check, pools.get(&u.name)) {
                let stop = health::spawn(pool.clone(), hc.clone(), connectors.remove(&u.name));
                st.health.push(stop);
            }
        }
        let mut listeners = Vec::new();
        let mut old: Vec<RunningListener> = std::mem::take(&mut st.listeners);
        for l in &config.listeners {
            let Some(pool) = pools.get(&l.upstream).cloned() else {
                continue; // checked above
            };
            let label = l.address.to_string();
            let settings = Arc::new(ListenerSettings {
                metrics: inner.metrics.listener(&label),
                no_live: inner.metrics.no_live(&pool.name),
                label,
                cfg: l.clone(),
                pool,
                copy: inner.copy,
            });
            if let Some(at) = old.iter().position(|r| r.configured == l.address) {
                let running = old.swap_remove(at);
                *running
                    .settings
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = settings;
                listeners.push(running);
            } else if let Some(socket) = fresh.remove(&l.address) {
                let local = socket.local_addr().unwrap_or(l.address);
                let (stop, stop_rx) = watch::channel(false);
                let cell = Arc::new(RwLock::new(settings));
                tokio::spawn(accept_loop(
                    socket,
                    cell.clone(),
                    inner.tracker.clone(),
                    stop_rx,
                    inner.close_all.subscribe(),
                ));
                tracing::info!(listen = %local, upstream = %l.upstream, "listening");
                listeners.push(RunningListener {
                    configured: l.address,
                    local,
                    settings: cell,
                    stop,
                });
            }
        }
        for gone in old {
            tracing::info!(listen = %gone.local, "listener removed; its open connections go on");
            let _ = gone.stop.send(true);
        }
        st.listeners = listeners;
        match (config.metrics_address, metrics_listener) {
            (Some(configured), Some(socket)) => {
                let local = socket.local_addr().unwrap_or(configured);
                let (stop, stop_rx) = watch::channel(false);
                let refresh_pools = inner.pools.clone();
                let refresh: metrics::Refresh = Arc::new(move || {
                    let now = Instant::now();
                    let pools = refresh_pools
                        .read()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    for p in pools.iter() {
                        for (i, peer) in p.peers.iter().enumerate() {
                            peer.state
                                .metrics
                                .up
                                .set(if p.is_up(i, now) { 1.0 } else { 0.0 });
                        }
                    }
                });
                tokio::spawn(metrics::serve(
                    socket,
                    inner.metrics.clone(),
                    refresh,
                    stop_rx,
                ));
                tracing::info!(address = %local, "serving /metrics and /healthz");
                st.metrics_server = Some(MetricsServer {
                    configured,
                    local,
                    _stop: stop,
                });
            }
            (None, _) => st.metrics_server = None,
            (Some(_), None) => {}
        }
        let limit = config.max_connections.unwrap_or(usize::MAX).max(1);
        inner.tracker.limit.store(limit, Ordering::Relaxed);
        *inner
            .pools
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = pools.into_values().collect();
        st.config = config;
        Ok(())
    }
}

async fn accept_loop(
    listener: TcpListener,
    settings: Arc<RwLock<Arc<ListenerSettings>>>,
    tracker: Arc<Tracker>,
    mut stop: watch::Receiver<bool>,
    close_all: watch::Receiver<bool>,
) {
    loop {
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning (nginx disables
                    // accept for a moment too).
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let s = settings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        s.metrics.accepted.inc();
        let Some(slot) = tracker.enter() else {
            s.metrics.rejected.inc();
            if tracker.should_warn() {
                tracing::warn!(
                    listener = %s.label,
                    limit = tracker.limit.load(Ordering::Relaxed),
                    "maxConnections (worker_connections) reached: closing new connections"
                );
            }
            continue;
        };
        s.metrics.active.inc();
        let close = close_all.clone();
        tokio::spawn(async move {
            proxy::serve(stream, addr, s.clone(), close).await;
            s.metrics.active.dec();
            drop(slot);
        });
    }
}
