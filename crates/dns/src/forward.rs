//! Forwarding what the cluster zone does not answer to the host's resolvers (CoreDNS's
//! `forward . /etc/resolv.conf`): the client's query is relayed under a fresh random
//! ID from a fresh socket (so off-path spoofing must guess both), over UDP with a
//! timeout, then to the next upstream; a truncated UDP answer is asked again over TCP
//! from the same upstream. The answer goes back under the client's ID. A reply whose
//! ID or question does not match is ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferrokube_component_base::{Counter, CounterVec, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::wire::{read_name, Header, HEADER_LEN, MAX_NAME};

/// Why a query could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No upstream is configured.
    #[error("no upstream resolver")]
    NoUpstream,
    /// Every upstream failed (timed out or refused).
    #[error("every upstream failed; last: {last}")]
    AllFailed { last: String },
    /// The query cannot be relayed (no readable question).
    #[error("unreadable query")]
    BadQuery,
}

/// Reads `nameserver` lines of a resolv.conf (port 53; scoped IPv6 addresses are
/// skipped: a zone index cannot be carried in a `SocketAddr` here).
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(addr)) => addr.parse::<IpAddr>().ok(),
                _ => None,
            }
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The upstreams of the resolv.conf at `path`.
pub fn resolv_conf_upstreams(path: &Path) -> std::io::Result<Vec<SocketAddr>> {
    Ok(parse_resolv_conf(&std::fs::read_to_string(path)?))
}

/// A random 16-bit query ID (std's randomly keyed SipHash over a counter and the
/// clock: unpredictable enough without a random-number crate).
fn random_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish() as u16
}

/// The question of a message, lowercased, with its type and class.
fn question_of(msg: &[u8]) -> Option<([u8; MAX_NAME], usize, [u8; 4])> {
    let h = Header::parse(msg).ok()?;
    if h.qdcount != 1 {
        return None;
    }
    let mut name = [0u8; MAX_NAME];
    let (len, end) = read_name(msg, HEADER_LEN, &mut name, true).ok()?;
    let tc: [u8; 4] = msg.get(end..end + 4)?.try_into().ok()?;
    Some((name, len, tc))
}

/// Relays queries to upstream resolvers.
#[derive(Debug)]
pub struct Forwarder {
    upstreams: Vec<Upstream>,
    timeout: Duration,
}

#[derive(Debug)]
struct Upstream {
    addr: SocketAddr,
    requests: Counter,
    failures: Counter,
    responses: CounterVec,
}

impl Forwarder {
    /// Forwards to `upstreams` in order, waiting `timeout` for each; counts into
    /// `registry`.
    pub fn new(upstreams: &[SocketAddr], timeout: Duration, registry: &Registry) -> Forwarder {
        let requests = registry.counter_vec(
            "coredns_forward_requests_total",
            "Counter of requests made per upstream.",
            &["to"],
        );
        let failures = registry.counter_vec(
            "ferrokube_dns_forward_failures_total",
            "Counter of upstream exchanges that failed (timeout, refused, mismatched reply).",
            &["to"],
        );
        let responses = registry.counter_vec(
            "coredns_forward_responses_total",
            "Counter of responses received per upstream.",
            &["to", "rcode"],
        );
        Forwarder {
            upstreams: upstreams
                .iter()
                .map(|addr| {
                    let to = addr.to_string();
                    Upstream {
                        addr: *addr,
                        requests: requests.with(&[&to]),
                        failures: failures.with(&[&to]),
                        responses: responses.clone(),
                    }
                })
                .collect(),
            timeout,
        }
    }

    /// Whether any upstream is configured.
    pub fn has_upstreams(&self) -> bool {
        !self.upstreams.is_empty()
    }

    /// Relays `query` (a client's message) and returns the upstream's answer under
    /// the client's ID.
    pub async fn forward(&self, query: &[u8]) -> Result<Vec<u8>, ForwardError> {
        if self.upstreams.is_empty() {
            return Err(ForwardError::NoUpstream);
        }
        let client = Header::parse(query).map_err(|_| ForwardError::BadQuery)?;
        let question = question_of(query).ok_or(ForwardError::BadQuery)?;
        let mut relayed = query.to_vec();
        let mut last = String::new();
        for up in &self.upstreams {
            let id = random_id();
            relayed[..2].copy_from_slice(&id.to_be_bytes());
            up.requests.inc();
            match self.exchange(up.addr, &relayed, id, &question).await {
                Ok(mut resp) => {
                    resp[..2].copy_from_slice(&client.id.to_be_bytes());
                    let rc = Header::parse(&resp).map(|h| h.rcode()).unwrap_or(0);
                    up.responses
                        .with(&[&up.addr.to_string(), &crate::wire::rcode_name(rc)])
                        .inc();
                    return Ok(resp);
                }
                Err(err) => {
                    up.failures.inc();
                    tracing::debug!(upstream = %up.addr, %err, "forwarding failed, trying the next upstream");
                    last = format!("{}: {err}", up.addr);
                }
            }
        }
        Err(ForwardError::AllFailed { last })
    }

    /// One upstream: UDP, then TCP if the UDP answer is truncated.
    async fn exchange(
        &self,
        addr: SocketAddr,
        query: &[u8],
        id: u16,
        question: &([u8; MAX_NAME], usize, [u8; 4]),
    ) -> std::io::Result<Vec<u8>> {
        let udp = tokio::time::timeout(self.timeout, udp_exchange(addr, query, id, question))
            .await
            .map_err(|_| timed_out("UDP"))??;
        let truncated = Header::parse(&udp).map(|h| h.truncated()).unwrap_or(false);
        if !truncated {
            return Ok(udp);
        }
        match tokio::time::timeout(self.timeout, tcp_exchange(addr, query, id, question)).await {
            Ok(Ok(full)) => Ok(full),
            // The truncated answer still tells the client to retry over TCP itself.
            Ok(Err(err)) => {
                tracing::debug!(upstream = %addr, %err, "TCP retry of a truncated answer failed");
                Ok(udp)
            }
            Err(_) => Ok(udp),
        }
    }
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out"))
}

fn matches(resp: &[u8], id: u16, question: &([u8; MAX_NAME], usize, [u8; 4])) -> bool {
    let Ok(h) = Header::parse(resp) else {
        return false;
    };
    if h.id != id || !h.is_response() {
        return false;
    }
    // A FORMERR/NOTIMP answer may carry no question; accept it as the answer.
    if h.qdcount == 0 {
        return true;
    }
    match question_of(resp) {
        Some((name, len, tc)) => name[..len] == question.0[..question.1] && tc == question.2,
        None => false,
    }
}

async fn udp_exchange(
    addr: SocketAddr,
    query: &[u8],
    id: u16,
    question: &([u8; MAX_NAME], usize, [u8; 4]),
) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(addr).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = sock.recv(&mut buf).await?;
        if matches(&buf[..n], id, question) {
            buf.truncate(n);
            return Ok(buf);
        }
        tracing::debug!(upstream = %addr, "ignoring a reply that does not match the query");
    }
}

async fn tcp_exchange(
    addr: SocketAddr,
    query: &[u8],
    id: u16,
    question: &([u8; MAX_NAME], usize, [u8; 4]),
) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).await?;
    let len = u16::try_from(query.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "query too long"))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    loop {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut resp = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut resp).await?;
        if matches(&resp, id, question) {
            return Ok(resp);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# comment\nsearch example.com\nnameserver 192.0.2.53\nnameserver 2001:db8::53 # v6\nnameserver fe80::1%eth0\noptions ndots:5\nnameserver\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn ids_vary() {
        let ids: std::collections::HashSet<u16> = (0..64).map(|_| random_id()).collect();
        assert!(ids.len() > 50, "{}", ids.len());
    }
}
