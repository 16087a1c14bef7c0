//! ferrokube-dns: the cluster DNS server (the seeds' kube-dns/CoreDNS role).
//!
//! It answers the names of the Kubernetes DNS specification (kubernetes/dns
//! `docs/specification.md`, schema 1.1.0) for the cluster domain from a [`Zone`]
//! filled by watches of Services and EndpointSlices, and forwards every other name
//! to the host's resolvers (`/etc/resolv.conf`, or `--upstream`):
//!
//! - [`wire`]: the DNS message format (compression, EDNS0, pointer-loop-safe parsing);
//! - [`zone`]: the precomputed zone and what each Service contributes to it;
//! - [`answer`]: one query → one response (rcodes, truncation, FORMERR/NOTIMP);
//! - [`forward`]: relaying to upstream resolvers (UDP, TCP on truncation);
//! - [`source`]: the API watches that fill the zone;
//! - [`Server`]: UDP + TCP listeners, the health/metrics port, readiness.
//!
//! Embedding (the zone can also be filled by hand: start with no client):
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), ferrokube_dns::Error> {
//! use ferrokube_dns::{Config, Server};
//! let config = Config {
//!     listen: vec![std::net::SocketAddr::from(([10, 32, 0, 10], 53))],
//!     ..Config::default()
//! };
//! let handle = Server::start(config, Some(client)).await?;
//! handle.wait_ready().await; // the first lists of Services and EndpointSlices are in
//! println!("DNS on {:?}", handle.local_addrs());
//! # Ok(()) }
//! ```

pub mod answer;
pub mod forward;
mod http;
pub mod metrics;
pub mod server;
pub mod source;
pub mod wire;
pub mod zone;

use std::net::SocketAddr;
use std::time::Duration;

pub use server::{query_bytes, Handle, Server};
pub use zone::{EndpointInfo, PortInfo, ServiceInfo, ServiceKind, SliceInfo, Zone};

/// The default cluster domain.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// The default TTL of answers (CoreDNS's `ttl` default for the kubernetes plugin is
/// 5 s; kube-dns used 30 s, the figure the task and most clusters' Corefiles use).
pub const DEFAULT_TTL: u32 = 30;
/// The largest TTL accepted (CoreDNS's limit).
pub const MAX_TTL: u32 = 3600;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `--listen` address.
    #[error("--listen: at least one address is required")]
    NoListenAddress,
    /// The cluster domain is not a DNS name.
    #[error("--cluster-domain {domain:?}: {source}")]
    ClusterDomain {
        domain: String,
        #[source]
        source: wire::WireError,
    },
    /// The cluster domain is the root or a reverse zone.
    #[error("--cluster-domain {domain:?}: must be a domain below the root, outside in-addr.arpa and ip6.arpa")]
    ClusterDomainScope { domain: String },
    /// `--ttl` over the limit.
    #[error("--ttl {ttl}: must be at most {MAX_TTL}")]
    Ttl { ttl: u32 },
    /// Binding a DNS port.
    #[error("--listen {addr} ({proto}): {source}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Binding the health port.
    #[error("--health-bind-address {addr}: {source}")]
    BindHealth {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What the server needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to answer (UDP and TCP on each).
    pub listen: Vec<SocketAddr>,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// Where other names go; empty: SERVFAIL for them.
    pub upstreams: Vec<SocketAddr>,
    /// The TTL of answers and the negative TTL (SOA minimum).
    pub ttl: u32,
    /// The plain-HTTP `/healthz`, `/readyz`, `/metrics` address; `None`: not served.
    pub health_listen: Option<SocketAddr>,
    /// How long to wait for one upstream before trying the next.
    pub forward_timeout: Duration,
    /// Tasks receiving on each UDP socket.
    pub udp_workers: usize,
    /// Answer `<a-b-c-d>.<ns>.pod.<zone>` (CoreDNS's `pods insecure`).
    pub pods: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 53))],
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.into(),
            upstreams: Vec::new(),
            ttl: DEFAULT_TTL,
            health_listen: None,
            forward_timeout: Duration::from_secs(2),
            udp_workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(2),
            pods: true,
        }
    }
}

impl Config {
    /// Checks the options; drops upstreams that are one of our own addresses (a
    /// forwarding loop).
    pub fn validated(mut self) -> Result<Config, Error> {
        if self.listen.is_empty() {
            return Err(Error::NoListenAddress);
        }
        if self.ttl > MAX_TTL {
            return Err(Error::Ttl { ttl: self.ttl });
        }
        let domain = wire::Name::from_ascii(&self.cluster_domain).map_err(|source| {
            Error::ClusterDomain {
                domain: self.cluster_domain.clone(),
                source,
            }
        })?;
        let reverse = ["in-addr.arpa", "ip6.arpa"]
            .iter()
            .filter_map(|z| wire::Name::from_ascii(z).ok())
            .any(|z| domain.is_within(&z));
        if domain.label_count() == 0 || reverse {
            return Err(Error::ClusterDomainScope {
                domain: self.cluster_domain,
            });
        }
        let listen = self.listen.clone();
        self.upstreams.retain(|u| {
            let ours = listen.iter().any(|l| {
                l == u || (l.ip().is_unspecified() && l.port() == u.port() && u.ip().is_loopback())
            });
            if ours {
                tracing::warn!(upstream = %u, "ignoring an upstream that is this server (a forwarding loop)");
            }
            !ours
        });
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn config_validation() {
        let ok = Config::default().validated().unwrap();
        assert_eq!(ok.cluster_domain, "cluster.local");
        let err = Config {
            listen: vec![],
            ..Config::default()
        }
        .validated()
        .unwrap_err();
        assert!(err.to_string().contains("--listen"), "{err}");
        for bad in ["a..b", ".", "10.in-addr.arpa"] {
            let err = Config {
                cluster_domain: bad.into(),
                ..Config::default()
            }
            .validated()
            .unwrap_err();
            assert!(err.to_string().contains("--cluster-domain"), "{err}");
        }
        let err = Config {
            ttl: 3601,
            ..Config::default()
        }
        .validated()
        .unwrap_err();
        assert!(err.to_string().contains("--ttl"), "{err}");
        let looped = Config {
            listen: vec!["0.0.0.0:53".parse().unwrap()],
            upstreams: vec![
                "127.0.0.1:53".parse().unwrap(),
                "127.0.0.1:5353".parse().unwrap(),
            ],
            ..Config::default()
        }
        .validated()
        .unwrap();
        assert_eq!(looped.upstreams, vec!["127.0.0.1:5353".parse().unwrap()]);
    }
}
