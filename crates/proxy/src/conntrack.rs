//! Stale connection-tracking entries of UDP (and SCTP) Services. TCP flows end; a UDP
//! "flow" (a DNS client reusing its source port) keeps its conntrack entry, and with it
//! the endpoint it was NATed to, for as long as packets keep coming — after that
//! endpoint left the Service, or past the moment a Service without endpoints (whose
//! packets were rejected, leaving an un-NATed entry) got one. Upstream's kube-proxy
//! deletes such entries after each sync; so does this module, with the `conntrack`
//! tool (conntrack-tools), as upstream did before it moved to netlink:
//!
//! - an endpoint gone from a Service port: the entries to each of the port's Service
//!   IPs (and its NodePort) NATed to that endpoint;
//! - a Service port that had no endpoint and now has one, or is gone: every entry to
//!   its Service IPs (and NodePort).

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::model::{Endpoint, Protocol, ServicePort};

/// One `conntrack -D` filter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Deletion {
    /// Entries to `ip:port` (NATed or not).
    ToService {
        protocol: Protocol,
        ip: Ipv4Addr,
        port: u16,
    },
    /// Entries to `ip:port` NATed to `endpoint`.
    ToServiceVia {
        protocol: Protocol,
        ip: Ipv4Addr,
        port: u16,
        endpoint: Ipv4Addr,
    },
    /// Entries to node port `port` on any address.
    ToNodePort { protocol: Protocol, port: u16 },
    /// Entries to node port `port` NATed to `endpoint`.
    ToNodePortVia {
        protocol: Protocol,
        port: u16,
        endpoint: Ipv4Addr,
    },
}

impl Deletion {
    /// The `conntrack` arguments.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec!["-D".to_string(), "-p".to_string()];
        let (protocol, rest): (Protocol, Vec<String>) = match self {
            Deletion::ToService { protocol, ip, port } => (
                *protocol,
                vec![
                    "--orig-dst".into(),
                    ip.to_string(),
                    "--orig-port-dst".into(),
                    port.to_string(),
                ],
            ),
            Deletion::ToServiceVia {
                protocol,
                ip,
                port,
                endpoint,
            } => (
                *protocol,
                vec![
                    "--orig-dst".into(),
                    ip.to_string(),
                    "--orig-port-dst".into(),
                    port.to_string(),
                    "--dst-nat".into(),
                    endpoint.to_string(),
                ],
            ),
            Deletion::ToNodePort { protocol, port } => {
                (*protocol, vec!["--orig-port-dst".into(), port.to_string()])
            }
            Deletion::ToNodePortVia {
                protocol,
                port,
                endpoint,
            } => (
                *protocol,
                vec![
                    "--orig-port-dst".into(),
                    port.to_string(),
                    "--dst-nat".into(),
                    endpoint.to_string(),
                ],
            ),
        };
        a.push(protocol.as_str().to_string());
        a.extend(rest);
        a
    }
}

/// Whether entries of this protocol outlive their endpoints (not TCP).
fn tracked(p: Protocol) -> bool {
    matches!(p, Protocol::Udp | Protocol::Sctp)
}

fn service_ips(p: &ServicePort) -> impl Iterator<Item = Ipv4Addr> + '_ {
    p.cluster_ip
        .into_iter()
        .chain(p.external_ips.iter().copied())
}

/// The port's endpoints as address and port (an endpoint that moved to another port is
/// gone from the old one, as upstream compares them).
fn endpoints(p: &ServicePort) -> std::collections::BTreeSet<(Ipv4Addr, u16)> {
    p.cluster_endpoints
        .iter()
        .chain(&p.external_endpoints)
        .map(|e: &Endpoint| (e.ip, e.port))
        .collect()
}

/// Every entry of port `p`.
fn all_of(p: &ServicePort, out: &mut Vec<Deletion>) {
    for ip in service_ips(p) {
        out.push(Deletion::ToService {
            protocol: p.protocol,
            ip,
            port: p.port,
        });
    }
    if let Some(port) = p.node_port {
        out.push(Deletion::ToNodePort {
            protocol: p.protocol,
            port,
        });
    }
}

/// What to delete after one Service went from `old` to `new` ports (either empty when
/// the Service is new or gone).
pub fn stale(old: &[ServicePort], new: &[ServicePort]) -> Vec<Deletion> {
    let same =
        |a: &ServicePort, b: &ServicePort| a.port_name == b.port_name && a.protocol == b.protocol;
    let mut out = Vec::new();
    for o in old.iter().filter(|p| tracked(p.protocol)) {
        let Some(n) = new.iter().find(|n| same(o, n)) else {
            all_of(o, &mut out);
            continue;
        };
        let kept = endpoints(n);
        let gone: std::collections::BTreeSet<Ipv4Addr> =
            endpoints(o).difference(&kept).map(|(ip, _)| *ip).collect();
        for gone in &gone {
            for ip in service_ips(o) {
                out.push(Deletion::ToServiceVia {
                    protocol: o.protocol,
                    ip,
                    port: o.port,
                    endpoint: *gone,
                });
            }
            if let Some(port) = o.node_port {
                out.push(Deletion::ToNodePortVia {
                    protocol: o.protocol,
                    port,
                    endpoint: *gone,
                });
            }
        }
        // Addresses or ports that changed: whatever was tracked to the old ones.
        let moved = o.port != n.port
            || o.node_port != n.node_port
            || service_ips(o).collect::<Vec<_>>() != service_ips(n).collect::<Vec<_>>();
        if moved {
            all_of(o, &mut out);
        }
    }
    for n in new.iter().filter(|p| tracked(p.protocol)) {
        let had = old
            .iter()
            .find(|o| same(o, n))
            .is_some_and(|o| !endpoints(o).is_empty());
        if !had && !endpoints(n).is_empty() {
            all_of(n, &mut out);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Runs the deletions. Without the `conntrack` tool this warns once (stale UDP flows
/// then last until their entries time out, 30–120 s) and does nothing.
pub async fn clear(deletions: Vec<Deletion>, warned: &mut bool) {
    for d in &deletions {
        let args = d.args();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        match ferrokube_cni::exec::run_timeout("conntrack", &argv, None, Duration::from_secs(10))
            .await
        {
            Ok(_) => {}
            // conntrack exits 1 when nothing matched.
            Err(ferrokube_cni::Error::CommandFailed { stderr, .. })
                if stderr.contains("0 flow entries") => {}
            Err(ferrokube_cni::Error::Spawn { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                if !*warned {
                    tracing::warn!("the conntrack tool is missing (install conntrack): UDP flows to removed endpoints last until their entries time out");
                    *warned = true;
                }
                return;
            }
            Err(e) => tracing::warn!(error = %e, "deleting stale conntrack entries"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServiceKey;

    fn udp(eps: &[[u8; 4]], node_port: Option<u16>) -> ServicePort {
        let eps = crate::model::endpoints(eps, 5353, false);
        let service = ServiceKey {
            namespace: "kube-system".into(),
            name: "kube-dns".into(),
        };
        let mut p = ServicePort::new(
            service,
            Protocol::Udp,
            Ipv4Addr::new(10, 96, 0, 10),
            53,
            eps,
        );
        p.port_name = "dns".into();
        p.node_port = node_port;
        p
    }

    #[test]
    fn removed_endpoints_lose_their_flows() {
        let d = stale(
            &[udp(&[[10, 1, 0, 1], [10, 1, 0, 2]], Some(30053))],
            &[udp(&[[10, 1, 0, 2]], Some(30053))],
        );
        assert_eq!(
            d,
            [
                Deletion::ToServiceVia {
                    protocol: Protocol::Udp,
                    ip: Ipv4Addr::new(10, 96, 0, 10),
                    port: 53,
                    endpoint: Ipv4Addr::new(10, 1, 0, 1)
                },
                Deletion::ToNodePortVia {
                    protocol: Protocol::Udp,
                    port: 30053,
                    endpoint: Ipv4Addr::new(10, 1, 0, 1)
                },
            ]
        );
        assert_eq!(
            d[0].args().join(" "),
            "-D -p udp --orig-dst 10.96.0.10 --orig-port-dst 53 --dst-nat 10.1.0.1"
        );
        assert_eq!(
            d[1].args().join(" "),
            "-D -p udp --orig-port-dst 30053 --dst-nat 10.1.0.1"
        );
    }

    #[test]
    fn a_first_endpoint_or_a_gone_service_clears_everything() {
        let everything = vec![Deletion::ToService {
            protocol: Protocol::Udp,
            ip: Ipv4Addr::new(10, 96, 0, 10),
            port: 53,
        }];
        assert_eq!(
            stale(&[udp(&[], None)], &[udp(&[[10, 1, 0, 1]], None)]),
            everything
        );
        assert_eq!(stale(&[], &[udp(&[[10, 1, 0, 1]], None)]), everything);
        assert_eq!(stale(&[udp(&[[10, 1, 0, 1]], None)], &[]), everything);
        // Nothing changed, or only an endpoint added: nothing to delete.
        assert!(stale(
            &[udp(&[[10, 1, 0, 1]], None)],
            &[udp(&[[10, 1, 0, 1]], None)]
        )
        .is_empty());
        assert!(stale(
            &[udp(&[[10, 1, 0, 1]], None)],
            &[udp(&[[10, 1, 0, 1], [10, 1, 0, 2]], None)]
        )
        .is_empty());
        // TCP is never touched.
        let mut tcp = udp(&[[10, 1, 0, 1]], None);
        tcp.protocol = Protocol::Tcp;
        assert!(stale(&[tcp], &[]).is_empty());
    }
}
