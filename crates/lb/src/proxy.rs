//! One client connection (nginx's `ngx_stream_proxy_module`): choose a server,
//! connect within `proxy_connect_timeout`, on failure try the next server
//! (`proxy_next_upstream`, bounded by `proxy_next_upstream_tries` and the number of
//! servers), then copy both directions until both ends are done, passing a half
//! close on, or until nothing moved for `proxy_timeout`.
//!
//! Copy engines ([`CopyMode`]): a user-space buffer (`proxy_buffer_size`) taken only
//! while data flows, Linux `splice(2)` through a pipe (the bytes never enter user
//! space), and — the default — the buffer until a direction turns out to be a bulk
//! transfer, then splice. `bench/lb` measures all three against nginx.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrokube_component_base::Counter;
use rustix::pipe::{pipe_with, splice, PipeFlags, SpliceFlags};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::config::ListenerConfig;
use crate::metrics::ListenerMetrics;
use crate::upstream::Pool;

/// How bytes are moved between the two sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMode {
    /// `read` into a buffer taken when data arrives and given back once the socket
    /// has nothing more (an idle connection holds no buffer), `write` from it.
    Buffer,
    /// `splice` socket → pipe → socket: the bytes never enter user space.
    Splice,
    /// Buffer for small messages; a direction that fills a whole buffer in one read
    /// (a bulk transfer) switches to splice for the rest of the connection. The
    /// default: small request/response traffic (API calls, watch events) goes at
    /// the buffer's rate and latency, bulk at splice's rate without buffer memory.
    Auto,
}

impl CopyMode {
    /// `FERROKUBE_LB_COPY=buffer|splice|auto` (default auto).
    pub fn from_env() -> CopyMode {
        match std::env::var("FERROKUBE_LB_COPY").as_deref() {
            Ok("splice") => CopyMode::Splice,
            Ok("buffer") => CopyMode::Buffer,
            _ => CopyMode::Auto,
        }
    }
}

/// What a listener's connections share; replaced as a whole on reload.
#[derive(Debug)]
pub(crate) struct ListenerSettings {
    pub label: String,
    pub cfg: ListenerConfig,
    pub pool: Arc<Pool>,
    pub metrics: ListenerMetrics,
    pub no_live: Counter,
    pub copy: CopyMode,
}

/// Serves one accepted client connection to its end.
pub(crate) async fn serve(
    client: TcpStream,
    client_addr: SocketAddr,
    s: Arc<ListenerSettings>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = client.set_nodelay(true);
    let client_ip = client_addr.ip().to_canonical();
    let pool = &s.pool;
    let mut tried = vec![false; pool.peers.len()];
    let max_tries = match (s.cfg.next_upstream, s.cfg.next_upstream_tries) {
        (false, _) => 1,
        (true, 0) => pool.peers.len(),
        (true, n) => usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(pool.peers.len()),
    }
    .max(1);
    let started = Instant::now();
    let mut attempt = 0;
    let (upstream, chosen) = loop {
        let Some(chosen) = pool.select(client_ip, &mut tried, Instant::now()) else {
            s.no_live.inc();
            tracing::warn!(
                listener = %s.label, upstream = %pool.name, client = %client_addr,
                "no live upstreams: closing the client connection"
            );
            return;
        };
        attempt += 1;
        let Some(peer) = pool.peers.get(chosen.index) else {
            return;
        };
        let addr = peer.cfg.address;
        let failure =
            match tokio::time::timeout(s.cfg.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    pool.succeeded(chosen.index);
                    break (stream, chosen);
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("timed out after {:?}", s.cfg.connect_timeout),
            };
        pool.failed(chosen.index, Instant::now());
        drop(chosen);
        let out_of_time = !s.cfg.next_upstream_timeout.is_zero()
            && started.elapsed() >= s.cfg.next_upstream_timeout;
        let last = attempt >= max_tries || out_of_time;
        tracing::warn!(
            listener = %s.label, upstream = %pool.name, server = %addr, client = %client_addr,
            error = %failure, attempt,
            "connect to upstream server failed{}",
            if last { "; giving up on this client connection" } else { "; trying the next server" }
        );
        if last {
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let peer_metrics = &chosen.state.metrics;
    let result = relay(
        client,
        upstream,
        &s.cfg,
        s.copy,
        (&peer_metrics.sent, &peer_metrics.received),
        shutdown,
    )
    .await;
    tracing::debug!(
        listener = %s.label, client = %client_addr,
        server = %pool.peers.get(chosen.index).map(|p| p.cfg.address.to_string()).unwrap_or_default(),
        sent = result.sent, received = result.received, end = result.end,
        duration = ?started.elapsed(), "connection closed"
    );
}

/// How a relayed connection went.
#[derive(Debug)]
struct Relayed {
    sent: u64,
    received: u64,
    end: &'static str,
}

/// Milliseconds since `start`, for the idle clock.
fn millis(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Copies both directions until both are done (or one fails, or the idle timeout,
/// or shutdown).
async fn relay(
    mut client: TcpStream,
    mut upstream: TcpStream,
    cfg: &ListenerConfig,
    mode: CopyMode,
    (sent_total, received_total): (&Counter, &Counter),
    mut shutdown: watch::Receiver<bool>,
) -> Relayed {
    let start = Instant::now();
    let activity = AtomicU64::new(0);
    let (cr, cw) = client.split();
    let (ur, uw) = upstream.split();
    let dir = |counter| Direction {
        activity: &activity,
        start,
        counter,
        buffer_size: cfg.buffer_size.max(1),
        mode,
    };
    let c2u = dir(sent_total).run(cr, uw);
    let u2c = dir(received_total).run(ur, cw);
    tokio::pin!(c2u, u2c);
    let idle = idle_timer(&activity, start, cfg.idle_timeout);
    tokio::pin!(idle);
    let (mut sent, mut received) = (None, None);
    let end = loop {
        tokio::select! {
            r = &mut c2u, if sent.is_none() => {
                let failed = r.is_err();
                sent = Some(r.unwrap_or_else(|(n, _)| n));
                if failed { break "client→upstream error"; }
                if !cfg.half_close { break "client closed"; }
            }
            r = &mut u2c, if received.is_none() => {
                let failed = r.is_err();
                received = Some(r.unwrap_or_else(|(n, _)| n));
                if failed { break "upstream→client error"; }
                if !cfg.half_close { break "upstream closed"; }
            }
            _ = &mut idle => break "idle timeout",
            _ = shutdown.changed() => break "shutdown",
        }
        if sent.is_some() && received.is_some() {
            break "done";
        }
    };
    Relayed {
        sent: sent.unwrap_or(0),
        received: received.unwrap_or(0),
        end,
    }
}

/// Resolves once nothing moved for `idle`.
async fn idle_timer(activity: &AtomicU64, start: Instant, idle: Duration) {
    loop {
        let last = start + Duration::from_millis(activity.load(Ordering::Relaxed));
        let deadline = last + idle;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// One direction of a connection and what it reports to.
struct Direction<'a> {
    activity: &'a AtomicU64,
    start: Instant,
    counter: &'a Counter,
    buffer_size: usize,
    mode: CopyMode,
}

/// The most a splice moves at once (the default pipe capacity).
const SPLICE_CHUNK: usize = 1 << 16;

thread_local! {
    /// Buffers given back by finished bursts, reused by the next on this thread.
    static BUFFERS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn take_buffer(size: usize) -> Vec<u8> {
    BUFFERS
        .with(|b| {
            let mut b = b.borrow_mut();
            let at = b.iter().rposition(|v| v.len() == size)?;
            Some(b.swap_remove(at))
        })
        .unwrap_or_else(|| vec![0u8; size])
}

fn give_buffer(buf: Vec<u8>) {
    BUFFERS.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() < 16 {
            b.push(buf);
        }
    });
}

/// Reads what the socket has. A short read (less than the buffer) also clears the
/// socket's read readiness, as nginx does, which saves the read that would only say
/// EAGAIN (a third of the syscalls of a small request/response): `(n, true)`. A FIN
/// or error that already arrived is not lost: tokio keeps closed states set.
fn read_some(from: &TcpStream, buf: &mut [u8]) -> io::Result<(usize, bool)> {
    let len = buf.len();
    let mut short = None;
    let result = from.try_io(Interest::READABLE, || match from.try_read(buf) {
        Ok(n) if n > 0 && n < len => {
            short = Some(n);
            Err(io::ErrorKind::WouldBlock.into())
        }
        other => other,
    });
    match (result, short) {
        (_, Some(n)) => Ok((n, true)),
        (Ok(n), None) => Ok((n, false)),
        (Err(e), None) => Err(e),
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Direction<'_> {
    fn moved(&self, n: usize, total: &mut u64) {
        *total += n as u64;
        self.counter.inc_by(n as f64);
        self.activity.store(millis(self.start), Ordering::Relaxed);
    }

    /// `from` → `to`, then shut `to`'s write half down (the half close: the other
    /// side sees EOF while the opposite direction goes on). Ok: bytes moved; Err:
    /// bytes moved before the error.
    async fn run(self, from: ReadHalf<'_>, mut to: WriteHalf<'_>) -> Result<u64, (u64, io::Error)> {
        let mut total: u64 = 0;
        let moved = match self.mode {
            CopyMode::Splice => match new_pipe() {
                Ok(pipe) => {
                    self.splice(from.as_ref(), to.as_ref(), &pipe, &mut total)
                        .await
                }
                Err(_) => self
                    .buffered(from.as_ref(), &mut to, &mut total, false)
                    .await
                    .map(|_| ()),
            },
            CopyMode::Buffer => self
                .buffered(from.as_ref(), &mut to, &mut total, false)
                .await
                .map(|_| ()),
            CopyMode::Auto => match self
                .buffered(from.as_ref(), &mut to, &mut total, true)
                .await
            {
                Ok(Some(pipe)) => {
                    self.splice(from.as_ref(), to.as_ref(), &pipe, &mut total)
                        .await
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
        };
        match moved {
            Ok(()) => {
                let _ = to.shutdown().await;
                Ok(total)
            }
            Err(e) => Err((total, e)),
        }
    }

    /// Copies through a buffer held only while data flows. With `upgrade`, returns a
    /// pipe as soon as one read fills the whole buffer (the caller goes on with
    /// splice); `Ok(None)` at EOF.
    async fn buffered(
        &self,
        from: &TcpStream,
        to: &mut WriteHalf<'_>,
        total: &mut u64,
        upgrade: bool,
    ) -> io::Result<Option<Pipe>> {
        loop {
            from.readable().await?;
            let mut buf = take_buffer(self.buffer_size);
            let outcome = loop {
                let (n, drained) = match read_some(from, &mut buf) {
                    Ok((0, _)) => break Ok(Some(None)),
                    Ok(got) => got,
                    Err(e) if would_block(&e) => break Ok(None),
                    Err(e) => break Err(e),
                };
                if let Err(e) = to.write_all(buf.get(..n).unwrap_or_default()).await {
                    break Err(e);
                }
                self.moved(n, total);
                if upgrade && n == buf.len() {
                    if let Ok(pipe) = new_pipe() {
                        break Ok(Some(Some(pipe)));
                    }
                }
                if drained {
                    break Ok(None);
                }
            };
            give_buffer(buf);
            match outcome {
                Ok(None) => continue,
                Ok(Some(done)) => return Ok(done),
                Err(e) => return Err(e),
            }
        }
    }

    async fn splice(
        &self,
        from: &TcpStream,
        to: &TcpStream,
        pipe: &Pipe,
        total: &mut u64,
    ) -> io::Result<()> {
        let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
        loop {
            // The pipe is empty here, so EAGAIN can only mean the socket has nothing.
            from.readable().await?;
            let n = match from.try_io(Interest::READABLE, || {
                splice(from, None, &pipe.write, None, SPLICE_CHUNK, flags).map_err(io::Error::from)
            }) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if would_block(&e) => continue,
                Err(e) => return Err(e),
            };
            let mut left = n;
            while left > 0 {
                to.writable().await?;
                match to.try_io(Interest::WRITABLE, || {
                    splice(&pipe.read, None, to, None, left, flags).map_err(io::Error::from)
                }) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::WriteZero,
                            "splice wrote nothing",
                        ))
                    }
                    Ok(m) => left = left.saturating_sub(m),
                    Err(e) if would_block(&e) => continue,
                    Err(e) => return Err(e),
                }
            }
            self.moved(n, total);
        }
    }
}

/// A pipe for splice.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

fn new_pipe() -> io::Result<Pipe> {
    let (read, write) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
    Ok(Pipe { read, write })
}
