//! What a Service (with its EndpointSlices) puts in the zone, per the Kubernetes DNS
//! specification (kubernetes/dns `docs/specification.md`, schema 1.1.0):
//!
//! - ClusterIP: `<svc>.<ns>.svc.<zone>` A/AAAA of each cluster IP, the PTR of each
//!   cluster IP, and an SRV `_<port>._<proto>.<svc>.<ns>.svc.<zone>` per named port
//!   targeting the service name;
//! - headless: A/AAAA of each _ready_ endpoint address (all of them with
//!   `publishNotReadyAddresses`), `<hostname>.<svc>.<ns>.svc.<zone>` per endpoint, an
//!   SRV per named slice port and endpoint targeting that hostname, and the PTR of
//!   each endpoint address to its hostname name;
//! - ExternalName: a CNAME to the external name.
//!
//! An endpoint's _hostname_ is its `hostname` field or, without one, its address with
//! dashes (`10-0-0-1`), as CoreDNS names it. CoreDNS's extension of answering
//! `<hostname>.<svc>` for ClusterIP services' endpoints too is kept.

use std::collections::HashSet;
use std::net::IpAddr;

use crate::wire::{Name, RData};

/// A service port as DNS sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortInfo {
    /// The port's name (unnamed ports get no SRV record).
    pub name: Option<String>,
    /// `tcp`, `udp` or `sctp` (lowercase).
    pub protocol: String,
    pub port: u16,
}

/// What kind of service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// A virtual IP per family (ClusterIP, NodePort, LoadBalancer).
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the endpoints' addresses.
    Headless,
    /// A CNAME to this name.
    ExternalName(String),
}

/// A Service, reduced to what DNS needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    pub kind: ServiceKind,
    pub ports: Vec<PortInfo>,
    /// `spec.publishNotReadyAddresses` (or the old `tolerate-unready-endpoints`
    /// annotation): not-ready endpoints are published too.
    pub publish_not_ready: bool,
}

/// One endpoint of a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    pub addresses: Vec<IpAddr>,
    pub hostname: Option<String>,
    /// `conditions.ready` (unset means ready, as the API says).
    pub ready: bool,
}

/// An EndpointSlice, reduced to what DNS needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceInfo {
    pub namespace: String,
    pub name: String,
    /// The `kubernetes.io/service-name` label.
    pub service: String,
    pub ports: Vec<PortInfo>,
    pub endpoints: Vec<EndpointInfo>,
}

/// The records one service contributes, and every name it makes exist (its record
/// owners and their empty non-terminal ancestors up to `<ns>.svc.<zone>`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Contribution {
    pub records: Vec<(Box<[u8]>, RData)>,
    pub names: Vec<Box<[u8]>>,
}

/// `d.c.b.a.in-addr.arpa.` or the nibble form under `ip6.arpa.`.
pub fn reverse_name(ip: IpAddr) -> Name {
    let text = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                s.push(hex(b & 0x0F));
                s.push('.');
                s.push(hex(b >> 4));
                s.push('.');
            }
            s.push_str("ip6.arpa");
            s
        }
    };
    // Always valid: at most 34 short labels.
    Name::from_ascii(&text).unwrap_or_else(|_| Name::root())
}

fn hex(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

/// An endpoint's system-assigned hostname: its address with dashes.
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

fn addr_rdata(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(v4),
        IpAddr::V6(v6) => RData::Aaaa(v6),
    }
}

struct Builder {
    seen: HashSet<(Box<[u8]>, RData)>,
    records: Vec<(Box<[u8]>, RData)>,
}

impl Builder {
    fn add(&mut self, owner: &Name, data: RData) {
        let key: Box<[u8]> = owner.to_lowercase().wire().into();
        if self.seen.insert((key.clone(), data.clone())) {
            self.records.push((key, data));
        }
    }
}

/// The records of `svc` given the slices that name it.
pub(crate) fn derive<'a>(
    svc: &ServiceInfo,
    slices: impl Iterator<Item = &'a SliceInfo>,
    zone: &Name,
) -> Contribution {
    let ns_name = match zone
        .child("svc")
        .and_then(|n| n.child(&svc.namespace.to_ascii_lowercase()))
    {
        Ok(n) => n,
        Err(err) => {
            tracing::debug!(namespace = %svc.namespace, %err, "namespace name does not fit in DNS");
            return Contribution::default();
        }
    };
    let Ok(svc_name) = ns_name.child(&svc.name.to_ascii_lowercase()) else {
        tracing::debug!(namespace = %svc.namespace, service = %svc.name, "service name does not fit in DNS");
        return Contribution::default();
    };
    let mut b = Builder {
        seen: HashSet::new(),
        records: Vec::new(),
    };
    let slices: Vec<&SliceInfo> = slices.collect();
    let published = |e: &EndpointInfo| e.ready || svc.publish_not_ready;
    match &svc.kind {
        ServiceKind::ExternalName(target) => match Name::from_ascii(target) {
            Ok(t) => b.add(&svc_name, RData::Cname(t)),
            Err(err) => {
                tracing::debug!(service = %svc.name, %target, %err, "externalName is not a DNS name")
            }
        },
        ServiceKind::ClusterIp(ips) => {
            for ip in ips {
                b.add(&svc_name, addr_rdata(*ip));
                b.add(&reverse_name(*ip), RData::Ptr(svc_name.clone()));
            }
            for p in &svc.ports {
                if let Some(owner) = srv_owner(&svc_name, p) {
                    let srv = RData::Srv {
                        priority: 0,
                        weight: 0,
                        port: p.port,
                        target: svc_name.clone(),
                    };
                    b.add(&owner, srv);
                }
            }
            for e in slices.iter().flat_map(|s| &s.endpoints) {
                if !published(e) {
                    continue;
                }
                for ip in &e.addresses {
                    if let Some(host) = host_name(&svc_name, e, *ip) {
                        b.add(&host, addr_rdata(*ip));
                    }
                }
            }
        }
        ServiceKind::Headless => {
            for slice in &slices {
                for e in &slice.endpoints {
                    if !published(e) {
                        continue;
                    }
                    for ip in &e.addresses {
                        let Some(host) = host_name(&svc_name, e, *ip) else {
                            continue;
                        };
                        b.add(&svc_name, addr_rdata(*ip));
                        b.add(&host, addr_rdata(*ip));
                        b.add(&reverse_name(*ip), RData::Ptr(host.clone()));
                        for p in &slice.ports {
                            if let Some(owner) = srv_owner(&svc_name, p) {
                                let srv = RData::Srv {
                                    priority: 0,
                                    weight: 0,
                                    port: p.port,
                                    target: host.clone(),
                                };
                                b.add(&owner, srv);
                            }
                        }
                    }
                }
            }
        }
    }
    let mut records = b.records;
    spread_srv_weights(&mut records);
    let names = existing_names(&records, ns_name.to_lowercase().wire());
    Contribution { records, names }
}

/// `_<port>._<proto>.<svc>…` for a named port.
fn srv_owner(svc_name: &Name, p: &PortInfo) -> Option<Name> {
    let port = p.name.as_deref().filter(|n| !n.is_empty())?;
    let proto = format!("_{}", p.protocol.to_ascii_lowercase());
    svc_name
        .child(&proto)
        .and_then(|n| n.child(&format!("_{}", port.to_ascii_lowercase())))
        .ok()
}

fn host_name(svc_name: &Name, e: &EndpointInfo, ip: IpAddr) -> Option<Name> {
    let host = match e.hostname.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => h.to_ascii_lowercase(),
        None => dashed(ip),
    };
    svc_name.child(&host).ok()
}

/// RFC 2782 weights: the SRV records of one name share 100 (at least 1 each).
fn spread_srv_weights(records: &mut [(Box<[u8]>, RData)]) {
    let mut counts: std::collections::HashMap<Box<[u8]>, u16> = Default::default();
    for (owner, data) in records.iter() {
        if matches!(data, RData::Srv { .. }) {
            *counts.entry(owner.clone()).or_default() += 1;
        }
    }
    for (owner, data) in records.iter_mut() {
        if let RData::Srv { weight, .. } = data {
            let n = counts.get(owner).copied().unwrap_or(1).max(1);
            *weight = (100 / n).max(1);
        }
    }
}

/// The owners and, for owners under `ns_key`, every ancestor down to and including
/// `ns_key` (`<ns>.svc.<zone>` exists while the namespace has a service).
fn existing_names(records: &[(Box<[u8]>, RData)], ns_key: &[u8]) -> Vec<Box<[u8]>> {
    let mut names: HashSet<Box<[u8]>> = HashSet::new();
    names.insert(ns_key.into());
    for (owner, _) in records {
        if crate::wire::suffix_offset(owner, ns_key).is_none() {
            names.insert(owner.clone());
            continue;
        }
        let mut at = 0usize;
        while owner.len() - at > ns_key.len() {
            names.insert(owner[at..].into());
            at += 1 + usize::from(owner[at]);
        }
    }
    names.into_iter().collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("10.96.0.1".parse().unwrap()).to_string(),
            "1.0.96.10.in-addr.arpa."
        );
        let v6 = reverse_name("2001:db8::1".parse().unwrap()).to_string();
        assert_eq!(
            v6,
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
        assert_eq!(dashed("10.1.2.3".parse().unwrap()), "10-1-2-3");
        assert_eq!(dashed("fd00::1".parse().unwrap()), "fd00--1");
    }

    #[test]
    fn ancestors_stop_at_the_namespace() {
        let zone = Name::from_ascii("cluster.local").unwrap();
        let svc = ServiceInfo {
            namespace: "NS".into(),
            name: "web".into(),
            kind: ServiceKind::ClusterIp(vec!["10.96.0.5".parse().unwrap()]),
            ports: vec![PortInfo {
                name: Some("http".into()),
                protocol: "TCP".into(),
                port: 80,
            }],
            publish_not_ready: false,
        };
        let c = derive(&svc, std::iter::empty(), &zone);
        let mut names: Vec<String> = c
            .names
            .iter()
            .map(|n| Name::from_wire(n).unwrap().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "5.0.96.10.in-addr.arpa.",
                "_http._tcp.web.ns.svc.cluster.local.",
                "_tcp.web.ns.svc.cluster.local.",
                "ns.svc.cluster.local.",
                "web.ns.svc.cluster.local.",
            ]
        );
        assert_eq!(c.records.len(), 3);
    }
}
