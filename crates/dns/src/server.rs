//! The running server: UDP and TCP on every listen address, the health/metrics port,
//! and (with an API client) the watches that fill the zone.
//!
//! UDP: several tasks receive on one shared socket per address, answer from the zone
//! inline (no allocation once their buffers have grown) and hand forwarded queries
//! to their own tasks, so a slow upstream never stalls cluster names. TCP: one task
//! per connection, 2-byte length framing (RFC 1035 §4.2.2; RFC 7766 pipelining is
//! answered in order), idle connections closed after 10 s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrokube_component_base::{Endpoint, HealthChecks, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::answer::{
    error_response, parse_query, truncate, Outcome, Proto, Query, Reject, Responder,
};
use crate::forward::Forwarder;
use crate::metrics::DnsMetrics;
use crate::wire::{rcode, Header, Message, Name};
use crate::zone::Zone;
use crate::{Config, Error};

/// How long an idle TCP connection stays open.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Concurrent TCP connections per listen address.
const TCP_CONNECTIONS: usize = 512;
/// Concurrent forwarded UDP queries (beyond this, SERVFAIL at once).
const FORWARDS_IN_FLIGHT: usize = 1024;

#[derive(Debug)]
struct Inner {
    responder: Responder,
    forwarder: Forwarder,
    metrics: DnsMetrics,
    forwards: Arc<Semaphore>,
}

/// Starts the cluster DNS server.
#[derive(Debug)]
pub struct Server;

/// A running server; dropping it stops every task.
#[derive(Debug)]
pub struct Handle {
    local_addrs: Vec<SocketAddr>,
    health_addr: Option<SocketAddr>,
    zone: Zone,
    ready: watch::Receiver<bool>,
    registry: Registry,
    tasks: Vec<JoinHandle<()>>,
}

impl Handle {
    /// The DNS addresses (UDP and TCP on each), ports resolved.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The health/metrics address, when serving.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_addr
    }

    /// The zone (fill it directly when started without an API client).
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// The metrics registry `/metrics` renders.
    pub fn metrics(&self) -> &Registry {
        &self.registry
    }

    /// Whether the first lists of Services and EndpointSlices are in the zone.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// A receiver that turns true once ready.
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready.clone()
    }

    /// Waits until ready.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.clone();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Stops the server.
    pub fn stop(self) {}
}

impl Drop for Handle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Server {
    /// Binds every address, starts serving, and (with `client`) starts the watches
    /// of Services and EndpointSlices. Without a client the zone is the caller's to
    /// fill and the server is ready at once.
    pub async fn start(config: Config, client: Option<kube::Client>) -> Result<Handle, Error> {
        let config = config.validated()?;
        let domain =
            Name::from_ascii(&config.cluster_domain).map_err(|source| Error::ClusterDomain {
                domain: config.cluster_domain.clone(),
                source,
            })?;
        let zone = Zone::new(&domain, config.ttl, config.pods);
        let registry = Registry::new();
        let inner = Arc::new(Inner {
            responder: Responder::new(zone.clone(), config.ttl),
            forwarder: Forwarder::new(&config.upstreams, config.forward_timeout, &registry),
            metrics: DnsMetrics::new(&registry),
            forwards: Arc::new(Semaphore::new(FORWARDS_IN_FLIGHT)),
        });
        let mut tasks = Vec::new();
        let mut local_addrs = Vec::new();
        for addr in &config.listen {
            let (udp, tcp) = bind_pair(*addr).await?;
            let local = udp.local_addr().map_err(|source| Error::Bind {
                proto: "udp",
                addr: *addr,
                source,
            })?;
            local_addrs.push(local);
            let udp = Arc::new(udp);
            for _ in 0..config.udp_workers.max(1) {
                tasks.push(tokio::spawn(udp_worker(udp.clone(), inner.clone())));
            }
            tasks.push(tokio::spawn(tcp_accept(tcp, inner.clone())));
        }
        let (ready_tx, ready) = watch::channel(false);
        match client {
            Some(client) => tasks.extend(crate::source::spawn(client, zone.clone(), ready_tx)),
            None => {
                zone.set_synced(true);
                ready_tx.send_replace(true);
            }
        }
        {
            let (zone, metrics) = (zone.clone(), inner.metrics.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    metrics.zone_size(zone.service_count(), zone.name_count());
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }));
        }
        let mut health_addr = None;
        if let Some(addr) = config.health_listen {
            let listener = crate::http::bind(addr)
                .await
                .map_err(|source| Error::BindHealth { addr, source })?;
            health_addr = listener.local_addr().ok();
            let checks = HealthChecks::new();
            let r = ready.clone();
            checks.add(
                Endpoint::Readyz,
                "zone-synced",
                Arc::new(move || {
                    if *r.borrow() {
                        Ok(())
                    } else {
                        Err("services and endpointslices not listed yet".into())
                    }
                }),
            );
            tasks.push(tokio::spawn(crate::http::serve(
                listener,
                checks,
                registry.clone(),
            )));
        }
        tracing::info!(
            listen = ?local_addrs,
            health = ?health_addr,
            domain = %domain,
            upstreams = ?config.upstreams,
            "cluster DNS serving"
        );
        Ok(Handle {
            local_addrs,
            health_addr,
            zone,
            ready,
            registry,
            tasks,
        })
    }
}

/// UDP and TCP on the same port (port 0: the UDP socket's port, retried if TCP
/// finds it taken).
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), Error> {
    let bind_err = |proto, source| Error::Bind {
        proto,
        addr,
        source,
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|e| bind_err("udp", e))?;
        let port = udp.local_addr().map_err(|e| bind_err("udp", e))?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 && attempts < 16 => {
                tracing::debug!(%e, port, "TCP port taken, trying another");
            }
            Err(e) => return Err(bind_err("tcp", e)),
        }
    }
}

/// What answering from the zone left to do.
enum Local {
    /// `out` holds the answer.
    Done {
        qtype: u16,
    },
    Drop,
    Remote(Box<Query>, Remote),
}

enum Remote {
    Forward,
    Chase { target: Name, qtype: u16 },
}

fn answer_local(inner: &Inner, pkt: &[u8], proto: Proto, out: &mut Vec<u8>) -> Local {
    match parse_query(pkt) {
        Err(Reject::Drop) => Local::Drop,
        Err(Reject::Error { id, flags, rcode }) => {
            error_response(id, flags, rcode, out);
            Local::Done { qtype: 0 }
        }
        Ok(q) => match inner.responder.respond(&q, proto, out) {
            Outcome::Reply => Local::Done { qtype: q.qtype },
            Outcome::Forward => Local::Remote(Box::new(q), Remote::Forward),
            Outcome::Chase { target, qtype } => {
                Local::Remote(Box::new(q), Remote::Chase { target, qtype })
            }
        },
    }
}

/// Forwards (or chases a CNAME) and writes the answer into `out`.
async fn answer_remote(
    inner: &Inner,
    pkt: &[u8],
    q: &Query,
    remote: Remote,
    proto: Proto,
    out: &mut Vec<u8>,
) {
    match remote {
        Remote::Forward => match inner.forwarder.forward(pkt).await {
            Ok(resp) => {
                if proto == Proto::Udp && resp.len() > q.limit(proto) && truncate(&resp, out) {
                    return;
                }
                *out = resp;
            }
            Err(err) => {
                tracing::debug!(name = %q.name(), %err, "forwarding failed");
                inner.responder.finish_simple(q, rcode::SERVFAIL, out);
            }
        },
        Remote::Chase { target, qtype } => {
            let mut m = Message::query(0, target, qtype);
            m.header.flags = crate::wire::flags::RD;
            let resolved = match m.to_bytes() {
                Ok(bytes) => inner.forwarder.forward(&bytes).await.ok(),
                Err(_) => None,
            };
            let parsed = resolved.as_deref().and_then(|b| Message::parse(b).ok());
            let upstream = parsed.as_ref().map(|m| {
                let answers: &[crate::wire::Record] = &m.answers;
                (m.rcode(), answers)
            });
            inner.responder.cname_answer(q, proto, upstream, out);
        }
    }
}

fn rcode_of(resp: &[u8]) -> u16 {
    Header::parse(resp)
        .map(|h| h.rcode())
        .unwrap_or(rcode::SERVFAIL)
}

async fn udp_worker(sock: Arc<UdpSocket>, inner: Arc<Inner>) {
    let mut buf = vec![0u8; 65_535];
    let mut out = Vec::with_capacity(4096);
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(err) => {
                tracing::debug!(%err, "udp receive failed");
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        let start = Instant::now();
        let pkt = &buf[..n];
        match answer_local(&inner, pkt, Proto::Udp, &mut out) {
            Local::Done { qtype } => {
                if let Err(err) = sock.send_to(&out, peer).await {
                    tracing::debug!(%peer, %err, "udp send failed");
                }
                inner
                    .metrics
                    .observe(Proto::Udp, qtype, rcode_of(&out), start.elapsed());
            }
            Local::Drop => inner.metrics.dropped(),
            Local::Remote(q, remote) => {
                let Ok(permit) = inner.forwards.clone().try_acquire_owned() else {
                    inner.responder.finish_simple(&q, rcode::SERVFAIL, &mut out);
                    let _ = sock.send_to(&out, peer).await;
                    inner
                        .metrics
                        .observe(Proto::Udp, q.qtype, rcode::SERVFAIL, start.elapsed());
                    continue;
                };
                let (sock, inner, pkt) = (sock.clone(), inner.clone(), pkt.to_vec());
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    answer_remote(&inner, &pkt, &q, remote, Proto::Udp, &mut out).await;
                    drop(permit);
                    if let Err(err) = sock.send_to(&out, peer).await {
                        tracing::debug!(%peer, %err, "udp send failed");
                    }
                    inner
                        .metrics
                        .observe(Proto::Udp, q.qtype, rcode_of(&out), start.elapsed());
                });
            }
        }
    }
}

async fn tcp_accept(listener: TcpListener, inner: Arc<Inner>) {
    let limit = Arc::new(Semaphore::new(TCP_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(err) => {
                tracing::debug!(%err, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Over the limit: close at once (the client retries elsewhere or later).
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            if let Err(err) = tcp_connection(stream, &inner).await {
                tracing::debug!(%peer, %err, "tcp connection ended");
            }
            drop(permit);
        });
    }
}

async fn tcp_connection(mut stream: TcpStream, inner: &Inner) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(512);
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        }
        let n = usize::from(u16::from_be_bytes(len));
        buf.resize(n, 0);
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out"))??;
        let start = Instant::now();
        let qtype = match answer_local(inner, &buf, Proto::Tcp, &mut out) {
            Local::Done { qtype } => qtype,
            Local::Drop => {
                inner.metrics.dropped();
                continue;
            }
            Local::Remote(q, remote) => {
                answer_remote(inner, &buf, &q, remote, Proto::Tcp, &mut out).await;
                q.qtype
            }
        };
        let Ok(len) = u16::try_from(out.len()) else {
            return Ok(());
        };
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&out);
        stream.write_all(&framed).await?;
        inner
            .metrics
            .observe(Proto::Tcp, qtype, rcode_of(&out), start.elapsed());
    }
}

/// A query message for `name`/`qtype` (class IN, RD), for clients and tests.
pub fn query_bytes(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, crate::wire::WireError> {
    Message::query(id, Name::from_ascii(name)?, qtype).to_bytes()
}
