//! The nftables proxier: one table, `table ip kube-proxy`, where every Service is a
//! handful of map elements rather than chains of its own.
//!
//! ```text
//! nat-prerouting / nat-output ─▶ services:
//!     ip daddr . l4proto . dport vmap @service-ips        ─▶ goto cluster-pick-N | external-pick-N | local-pick-N | affinity-…
//!     (local address) l4proto . dport vmap @service-nodeports ─▶ goto nodeport-pick-N | nodeport-local-pick-N
//! cluster-pick-N: [mark for masquerade if the source is outside clusterCIDR]
//!     dnat to ip daddr . l4proto . dport . numgen random mod N map @backends
//! nat-postrouting: hairpin (endpoint-self) → mark; marked → masquerade
//! filter-input/forward/output: new connections to Services without endpoints → reject
//! ```
//!
//! Random selection is a lookup of `(service IP, protocol, port, random index)` in one
//! big map, so adding a Service or an endpoint is adding map elements: a few milliseconds
//! whatever the table's size, where chains per Service (upstream's layout) cost the
//! kernel seconds to validate at 10,000 Services. Only `sessionAffinity: ClientIP`
//! Services get chains of their own (per-endpoint sets of recent clients, as upstream).
//!
//! Syncs are incremental: each Service's objects are remembered, and a sync sends only
//! the difference for the Services that changed, as one `nft -f -` transaction. The
//! first sync (and any after a failure) recreates the whole table atomically.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::backend::{SyncError, SyncStats};
use crate::config::ProxyConfig;
use crate::model::{Endpoint, Protocol, ServiceKey, ServicePort};
use ferrokube_cni::Cidr;

/// Our table (family `ip`).
pub const TABLE: &str = "kube-proxy";

/// The maps and sets Services put elements into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Map {
    ServiceIps,
    ServiceNodeports,
    /// `(service IP, port, index)` → endpoint, one map per protocol.
    Backends(Protocol),
    /// `(node port, index)` → endpoint, one map per protocol.
    NodeportBackends(Protocol),
    NoEndpointServices,
    NoEndpointNodeports,
    EndpointSelf,
}

impl Map {
    pub fn name(self) -> &'static str {
        match self {
            Map::ServiceIps => "service-ips",
            Map::ServiceNodeports => "service-nodeports",
            Map::Backends(Protocol::Tcp) => "backends-tcp",
            Map::Backends(Protocol::Udp) => "backends-udp",
            Map::Backends(Protocol::Sctp) => "backends-sctp",
            Map::NodeportBackends(Protocol::Tcp) => "nodeport-backends-tcp",
            Map::NodeportBackends(Protocol::Udp) => "nodeport-backends-udp",
            Map::NodeportBackends(Protocol::Sctp) => "nodeport-backends-sctp",
            Map::NoEndpointServices => "no-endpoint-services",
            Map::NoEndpointNodeports => "no-endpoint-nodeports",
            Map::EndpointSelf => "endpoint-self",
        }
    }

    /// Whether elements map to something (a set's elements have no value).
    fn is_map(self) -> bool {
        self != Map::EndpointSelf
    }

    const ALL: [Map; 11] = [
        Map::ServiceIps,
        Map::ServiceNodeports,
        Map::Backends(Protocol::Tcp),
        Map::Backends(Protocol::Udp),
        Map::Backends(Protocol::Sctp),
        Map::NodeportBackends(Protocol::Tcp),
        Map::NodeportBackends(Protocol::Udp),
        Map::NodeportBackends(Protocol::Sctp),
        Map::NoEndpointServices,
        Map::NoEndpointNodeports,
        Map::EndpointSelf,
    ];

    fn declaration(self) -> &'static str {
        match self {
            Map::ServiceIps | Map::NoEndpointServices => {
                "type ipv4_addr . inet_proto . inet_service : verdict ;"
            }
            Map::ServiceNodeports | Map::NoEndpointNodeports => {
                "type inet_proto . inet_service : verdict ;"
            }
            // One map per protocol, typed with that protocol's port (`tcp dport`):
            // with `th dport` nft 1.0.6 cannot read the map's type back once an `ip`
            // expression precedes it (later rules using the map are refused), and a
            // `tcp dport` anywhere in a rule makes nft add a `meta l4proto tcp` match.
            Map::Backends(Protocol::Tcp) => {
                "typeof ip daddr . tcp dport . numgen random mod 2 : ip daddr . tcp dport ;"
            }
            Map::Backends(Protocol::Udp) => {
                "typeof ip daddr . udp dport . numgen random mod 2 : ip daddr . udp dport ;"
            }
            Map::Backends(Protocol::Sctp) => {
                "typeof ip daddr . sctp dport . numgen random mod 2 : ip daddr . sctp dport ;"
            }
            Map::NodeportBackends(Protocol::Tcp) => {
                "typeof tcp dport . numgen random mod 2 : ip daddr . tcp dport ;"
            }
            Map::NodeportBackends(Protocol::Udp) => {
                "typeof udp dport . numgen random mod 2 : ip daddr . udp dport ;"
            }
            Map::NodeportBackends(Protocol::Sctp) => {
                "typeof sctp dport . numgen random mod 2 : ip daddr . sctp dport ;"
            }
            Map::EndpointSelf => "type ipv4_addr . ipv4_addr ;",
        }
    }
}

/// The objects one Service contributes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// (map, key) → value (`""` for set elements).
    pub elements: BTreeMap<(Map, String), String>,
    /// Chains of its own (affinity): name → rules.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Sets of its own (affinity): name → declaration.
    pub sets: BTreeMap<String, String>,
    /// Shared pick chains it jumps to.
    pub picks: BTreeSet<Pick>,
}

/// The shared chains that pick a backend at random, by traffic kind and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pick {
    /// ClusterIP traffic: masquerade what comes from outside the cluster CIDR.
    Cluster(usize),
    /// externalIPs/LoadBalancer with `externalTrafficPolicy: Cluster`: masquerade.
    External(usize),
    /// externalIPs/LoadBalancer with `externalTrafficPolicy: Local`: keep the source.
    Local(usize),
    NodePort(usize),
    NodePortLocal(usize),
}

impl Pick {
    pub fn chain(self) -> String {
        match self {
            Pick::Cluster(n) => format!("cluster-pick-{n}"),
            Pick::External(n) => format!("external-pick-{n}"),
            Pick::Local(n) => format!("local-pick-{n}"),
            Pick::NodePort(n) => format!("nodeport-pick-{n}"),
            Pick::NodePortLocal(n) => format!("nodeport-local-pick-{n}"),
        }
    }

    fn rules(self, masq: &Masquerade) -> Vec<String> {
        let (mark, dnat, n) = match self {
            Pick::Cluster(n) => (masq.cluster_rule(), ADDR_DNAT, n),
            Pick::External(n) => (Some(masq.mark_rule()), ADDR_DNAT, n),
            Pick::Local(n) => (None, ADDR_DNAT, n),
            Pick::NodePort(n) => (Some(masq.mark_rule()), PORT_DNAT, n),
            Pick::NodePortLocal(n) => (None, PORT_DNAT, n),
        };
        let mut rules: Vec<String> = mark.into_iter().collect();
        // One rule per protocol (each only matches its own packets).
        for proto in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
            rules.push(
                dnat.replace("{n}", &n.to_string())
                    .replace("{p}", proto.as_str()),
            );
        }
        rules
    }
}

const ADDR_DNAT: &str = "dnat ip to ip daddr . {p} dport . numgen random mod {n} map @backends-{p}";
const PORT_DNAT: &str = "dnat ip to {p} dport . numgen random mod {n} map @nodeport-backends-{p}";

/// How traffic is marked for masquerade.
#[derive(Debug, Clone)]
pub struct Masquerade {
    pub mark: u32,
    pub all: bool,
    pub cluster_cidr: Option<Cidr>,
}

impl Masquerade {
    pub fn from_config(c: &ProxyConfig) -> Masquerade {
        Masquerade {
            mark: c.masquerade_mark(),
            all: c.masquerade_all,
            cluster_cidr: c.cluster_cidr_v4(),
        }
    }

    fn mark_rule(&self) -> String {
        format!("meta mark set meta mark | {:#010x}", self.mark)
    }

    /// ClusterIP traffic: everything with `masqueradeAll`, else what comes from
    /// outside the cluster CIDR (nothing, without one: upstream's no-op local detector).
    fn cluster_rule(&self) -> Option<String> {
        if self.all {
            return Some(self.mark_rule());
        }
        self.cluster_cidr
            .map(|c| format!("ip saddr != {c} {}", self.mark_rule()))
    }
}

/// FNV-1a, 64 bits: stable across runs and builds, unlike std's hasher (names of our
/// chains must not change when the proxier restarts).
pub(crate) fn fnv64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn short_hash(s: &str) -> String {
    format!("{:016x}", fnv64(s))[..12].to_string()
}

/// Renders one Service's ports.
pub fn render(ports: &[ServicePort], masq: &Masquerade) -> Fragment {
    let mut f = Fragment::default();
    for p in ports {
        let proto = p.protocol.as_str();
        // ClusterIP.
        if let Some(ip) = p.cluster_ip {
            destination(&mut f, p, ip, &p.cluster_endpoints, Kind::Cluster, masq);
        }
        // externalIPs and LoadBalancer ingress IPs.
        let kind = if p.external_local {
            Kind::Local
        } else {
            Kind::External
        };
        for ip in &p.external_ips {
            destination(&mut f, p, *ip, &p.external_endpoints, kind, masq);
            if p.load_balancer_ips.contains(ip) && !p.source_ranges.is_empty() {
                firewall(&mut f, p, *ip);
            }
        }
        // NodePort.
        if let Some(np) = p.node_port {
            let key = format!("{proto} . {np}");
            let eps = &p.external_endpoints;
            if eps.is_empty() {
                f.elements.insert(
                    (Map::NoEndpointNodeports, key),
                    no_endpoint_verdict(p).into(),
                );
            } else {
                let pick = if p.external_local {
                    Pick::NodePortLocal(eps.len())
                } else {
                    Pick::NodePort(eps.len())
                };
                f.picks.insert(pick);
                f.elements.insert(
                    (Map::ServiceNodeports, key),
                    format!("goto {}", pick.chain()),
                );
                for (i, e) in eps.iter().enumerate() {
                    f.elements.insert(
                        (Map::NodeportBackends(p.protocol), format!("{np} . {i}")),
                        format!("{} . {}", e.ip, e.port),
                    );
                }
            }
        }
        for e in p.cluster_endpoints.iter().chain(&p.external_endpoints) {
            f.elements.insert(
                (Map::EndpointSelf, format!("{} . {}", e.ip, e.ip)),
                String::new(),
            );
        }
    }
    f
}

/// `loadBalancerSourceRanges`: traffic to load balancer IP `ip` goes through a chain
/// that drops clients outside the ranges before the usual verdict.
fn firewall(f: &mut Fragment, p: &ServicePort, ip: Ipv4Addr) {
    let key = format!("{ip} . {} . {}", p.protocol.as_str(), p.port);
    let Some(verdict) = f.elements.get(&(Map::ServiceIps, key.clone())).cloned() else {
        return; // no endpoints: rejected or dropped anyway
    };
    let chain = format!(
        "firewall-{}",
        short_hash(&format!("{}/{}/{key}", p.service, p.port_name))
    );
    let ranges: Vec<String> = p.source_ranges.iter().map(ToString::to_string).collect();
    f.chains.insert(
        chain.clone(),
        vec![
            format!("ip saddr != {{ {} }} drop", ranges.join(", ")),
            verdict,
        ],
    );
    f.elements
        .insert((Map::ServiceIps, key), format!("goto {chain}"));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cluster,
    External,
    Local,
}

/// With no endpoint at all, reject (the client learns at once); with endpoints that are
/// not usable here (traffic policy Local), drop, as upstream.
fn no_endpoint_verdict(p: &ServicePort) -> &'static str {
    if p.has_endpoints {
        "drop"
    } else {
        "goto reject-chain"
    }
}

fn destination(
    f: &mut Fragment,
    p: &ServicePort,
    ip: Ipv4Addr,
    eps: &[Endpoint],
    kind: Kind,
    masq: &Masquerade,
) {
    let proto = p.protocol.as_str();
    let key = format!("{ip} . {proto} . {}", p.port);
    if eps.is_empty() {
        f.elements.insert(
            (Map::NoEndpointServices, key),
            no_endpoint_verdict(p).into(),
        );
        return;
    }
    if let Some(timeout) = p.affinity_timeout {
        let chain = format!(
            "affinity-{}",
            short_hash(&format!("{}/{}/{key}", p.service, p.port_name))
        );
        let mut rules = Vec::new();
        match kind {
            Kind::Cluster => rules.extend(masq.cluster_rule()),
            Kind::External => rules.push(masq.mark_rule()),
            Kind::Local => {}
        }
        let mut vmap = Vec::new();
        for (i, e) in eps.iter().enumerate() {
            let ep_chain = format!("{chain}-{i}");
            let set = format!("{ep_chain}-clients");
            let dnat = format!("meta l4proto {proto} dnat ip to {}:{}", e.ip, e.port);
            rules.push(format!(
                "ip saddr @{set} update @{set} {{ ip saddr }} {dnat}"
            ));
            f.sets.insert(
                set.clone(),
                format!("type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ;"),
            );
            f.chains.insert(
                ep_chain.clone(),
                vec![format!("update @{set} {{ ip saddr }} {dnat}")],
            );
            vmap.push(format!("{i} : goto {ep_chain}"));
        }
        rules.push(format!(
            "numgen random mod {} vmap {{ {} }}",
            eps.len(),
            vmap.join(", ")
        ));
        f.chains.insert(chain.clone(), rules);
        f.elements
            .insert((Map::ServiceIps, key), format!("goto {chain}"));
        return;
    }
    let pick = match kind {
        Kind::Cluster => Pick::Cluster(eps.len()),
        Kind::External => Pick::External(eps.len()),
        Kind::Local => Pick::Local(eps.len()),
    };
    f.picks.insert(pick);
    for (i, e) in eps.iter().enumerate() {
        f.elements.insert(
            (
                Map::Backends(p.protocol),
                format!("{ip} . {} . {i}", p.port),
            ),
            format!("{} . {}", e.ip, e.port),
        );
    }
    f.elements
        .insert((Map::ServiceIps, key), format!("goto {}", pick.chain()));
}

/// The table with no Service in it.
fn skeleton(masq: &Masquerade, node_port_addresses: &[Cidr]) -> String {
    let mut s = String::new();
    let t = format!("ip {TABLE}");
    let _ = writeln!(s, "add table {t} {{ comment \"rules for kube-proxy\" ; }}");
    let _ = writeln!(s, "delete table {t}");
    let _ = writeln!(s, "add table {t} {{ comment \"rules for kube-proxy\" ; }}");
    for m in Map::ALL {
        let kw = if m.is_map() { "map" } else { "set" };
        let _ = writeln!(s, "add {kw} {t} {} {{ {} }}", m.name(), m.declaration());
    }
    let chain = |s: &mut String, name: &str, hook: Option<&str>, rules: &[String]| {
        match hook {
            Some(h) => {
                let _ = writeln!(s, "add chain {t} {name} {{ {h} ; policy accept ; }}");
            }
            None => {
                let _ = writeln!(s, "add chain {t} {name}");
            }
        }
        for r in rules {
            let _ = writeln!(s, "add rule {t} {name} {r}");
        }
    };
    let local_dest = if node_port_addresses.is_empty() {
        "fib daddr type local ip daddr != 127.0.0.0/8".to_string()
    } else {
        let v4: Vec<String> = node_port_addresses
            .iter()
            .filter(|c| c.is_ipv4())
            .map(ToString::to_string)
            .collect();
        format!(
            "fib daddr type local ip daddr {{ {} }}",
            if v4.is_empty() {
                "255.255.255.255/32".to_string()
            } else {
                v4.join(", ")
            }
        )
    };
    chain(&mut s, "reject-chain", None, &["reject".into()]);
    chain(
        &mut s,
        "services",
        None,
        &[
            "ip daddr . meta l4proto . th dport vmap @service-ips".into(),
            format!("{local_dest} meta l4proto . th dport vmap @service-nodeports"),
        ],
    );
    chain(
        &mut s,
        "service-endpoints-check",
        None,
        &[
            "ip daddr . meta l4proto . th dport vmap @no-endpoint-services".into(),
            format!("{local_dest} meta l4proto . th dport vmap @no-endpoint-nodeports"),
        ],
    );
    chain(
        &mut s,
        "nat-prerouting",
        Some("type nat hook prerouting priority dstnat"),
        &["jump services".into()],
    );
    chain(
        &mut s,
        "nat-output",
        Some("type nat hook output priority -100"),
        &["jump services".into()],
    );
    let m = format!("{:#010x}", masq.mark);
    chain(
        &mut s,
        "nat-postrouting",
        Some("type nat hook postrouting priority srcnat"),
        &[
            format!(
                "ct status dnat ip saddr . ip daddr @endpoint-self meta mark set meta mark | {m}"
            ),
            format!("meta mark & {m} != {m} return"),
            format!("meta mark set meta mark ^ {m}"),
            "masquerade fully-random".into(),
        ],
    );
    for (name, hook) in [
        ("filter-input", "type filter hook input priority -110"),
        ("filter-forward", "type filter hook forward priority -110"),
        ("filter-output", "type filter hook output priority -110"),
    ] {
        chain(
            &mut s,
            name,
            Some(hook),
            &["ct state new jump service-endpoints-check".into()],
        );
    }
    s
}

/// Who put an element in (several Services may want the same key: the first keeps it).
type Owners = Vec<(ServiceKey, String)>;

/// The nftables proxier's memory of what the kernel has.
#[derive(Debug)]
pub struct Nftables {
    masq: Masquerade,
    node_port_addresses: Vec<Cidr>,
    fragments: HashMap<ServiceKey, Fragment>,
    elements: HashMap<(Map, String), Owners>,
    picks: BTreeSet<Pick>,
    /// The kernel's table may not match our memory (start, failed sync).
    needs_full: bool,
}

impl Nftables {
    pub fn new(config: &ProxyConfig) -> Nftables {
        Nftables {
            masq: Masquerade::from_config(config),
            node_port_addresses: config.node_port_addresses.clone(),
            fragments: HashMap::new(),
            elements: HashMap::new(),
            picks: BTreeSet::new(),
            needs_full: true,
        }
    }

    /// The transaction that moves the kernel from what we remember to `desired` for the
    /// Services in `dirty` (every Service when a full sync is due); updates our memory.
    pub fn transaction(
        &mut self,
        desired: &BTreeMap<ServiceKey, Vec<ServicePort>>,
        dirty: &BTreeSet<ServiceKey>,
    ) -> (String, SyncStats) {
        let full = std::mem::take(&mut self.needs_full);
        let mut out = String::new();
        if full {
            out.push_str(&skeleton(&self.masq, &self.node_port_addresses));
            self.fragments.clear();
            self.elements.clear();
            self.picks.clear();
        }
        let keys: Vec<ServiceKey> = if full {
            desired.keys().cloned().collect()
        } else {
            dirty.iter().cloned().collect()
        };
        let t = format!("ip {TABLE}");
        let mut touched: BTreeSet<(Map, String)> = BTreeSet::new();
        let mut before: HashMap<(Map, String), Option<String>> = HashMap::new();
        let (mut add_sets, mut del_sets) = (Vec::new(), Vec::new());
        let (mut write_chains, mut del_chains) = (Vec::new(), Vec::new());
        let mut new_picks = BTreeSet::new();
        for key in &keys {
            let new = desired
                .get(key)
                .map(|ports| render(ports, &self.masq))
                .unwrap_or_default();
            let old = self.fragments.remove(key).unwrap_or_default();
            for (k, _) in old.elements.iter() {
                before
                    .entry(k.clone())
                    .or_insert_with(|| effective(&self.elements, k));
                touched.insert(k.clone());
                if let Some(owners) = self.elements.get_mut(k) {
                    owners.retain(|(o, _)| o != key);
                    if owners.is_empty() {
                        self.elements.remove(k);
                    }
                }
            }
            for (k, v) in &new.elements {
                before
                    .entry(k.clone())
                    .or_insert_with(|| effective(&self.elements, k));
                touched.insert(k.clone());
                let owners = self.elements.entry(k.clone()).or_default();
                if let Some((first, value)) = owners.first() {
                    if value != v && k.0 != Map::EndpointSelf {
                        tracing::warn!(
                            service = %key, other = %first, map = k.0.name(), key = %k.1,
                            "two Services claim the same address and port; the first one keeps it"
                        );
                    }
                }
                owners.push((key.clone(), v.clone()));
            }
            for (name, decl) in &new.sets {
                if !old.sets.contains_key(name) {
                    add_sets.push(format!("add set {t} {name} {{ {decl} }}"));
                }
            }
            for name in old.sets.keys() {
                if !new.sets.contains_key(name) {
                    del_sets.push(format!("delete set {t} {name}"));
                }
            }
            for (name, rules) in &new.chains {
                if old.chains.get(name) != Some(rules) {
                    write_chains.push((
                        name.clone(),
                        rules.clone(),
                        !old.chains.contains_key(name),
                    ));
                }
            }
            for name in old.chains.keys() {
                if !new.chains.contains_key(name) {
                    del_chains.push(name.clone());
                }
            }
            for p in &new.picks {
                if !self.picks.contains(p) {
                    new_picks.insert(*p);
                }
            }
            if !new.elements.is_empty() || !new.chains.is_empty() {
                self.fragments.insert(key.clone(), new);
            }
        }
        // 1. new sets and chains exist before anything points at them.
        for line in &add_sets {
            out.push_str(line);
            out.push('\n');
        }
        for p in &new_picks {
            let name = p.chain();
            let _ = writeln!(out, "add chain {t} {name}");
            for r in p.rules(&self.masq) {
                let _ = writeln!(out, "add rule {t} {name} {r}");
            }
            self.picks.insert(*p);
        }
        for (name, _, created) in &write_chains {
            if *created {
                let _ = writeln!(out, "add chain {t} {name}");
            }
        }
        // Chains' rules after all new chains exist (an affinity chain jumps to its
        // endpoints' chains).
        for (name, rules, created) in &write_chains {
            if !created {
                let _ = writeln!(out, "flush chain {t} {name}");
            }
            for r in rules {
                let _ = writeln!(out, "add rule {t} {name} {r}");
            }
        }
        // 2. elements: removals, then additions.
        let mut dels: BTreeMap<Map, Vec<String>> = BTreeMap::new();
        let mut adds: BTreeMap<Map, Vec<String>> = BTreeMap::new();
        let mut changed = 0usize;
        for k in &touched {
            let was = before.get(k).cloned().flatten();
            let now = effective(&self.elements, k);
            if was == now {
                continue;
            }
            changed += 1;
            if was.is_some() {
                dels.entry(k.0).or_default().push(k.1.clone());
            }
            if let Some(v) = now {
                let el = if k.0.is_map() {
                    format!("{} : {v}", k.1)
                } else {
                    k.1.clone()
                };
                adds.entry(k.0).or_default().push(el);
            }
        }
        for (m, els) in &dels {
            for chunk in els.chunks(1000) {
                let _ = writeln!(
                    out,
                    "delete element {t} {} {{ {} }}",
                    m.name(),
                    chunk.join(", ")
                );
            }
        }
        for (m, els) in &adds {
            for chunk in els.chunks(1000) {
                let _ = writeln!(
                    out,
                    "add element {t} {} {{ {} }}",
                    m.name(),
                    chunk.join(", ")
                );
            }
        }
        // 3. what nothing points at any more.
        for name in &del_chains {
            let _ = writeln!(out, "flush chain {t} {name}");
        }
        for name in &del_chains {
            let _ = writeln!(out, "delete chain {t} {name}");
        }
        for line in &del_sets {
            out.push_str(line);
            out.push('\n');
        }
        let stats = SyncStats {
            full,
            services: keys.len(),
            changes: changed + write_chains.len() + del_chains.len(),
            objects: self.elements.len()
                + self
                    .fragments
                    .values()
                    .map(|f| f.chains.len())
                    .sum::<usize>(),
        };
        (out, stats)
    }

    /// The next sync recreates the table (after a failure, or on a periodic full sync).
    pub fn force_full(&mut self) {
        self.needs_full = true;
    }
}

fn effective(elements: &HashMap<(Map, String), Owners>, k: &(Map, String)) -> Option<String> {
    elements
        .get(k)
        .and_then(|o| o.first())
        .map(|(_, v)| v.clone())
}

/// Removes our table (`--cleanup`); no table is fine.
pub async fn cleanup() -> Result<(), SyncError> {
    let script = format!("add table ip {TABLE}\ndelete table ip {TABLE}\n");
    ferrokube_cni::exec::run("nft", &["-f", "-"], Some(&script)).await?;
    Ok(())
}

impl Nftables {
    /// Applies what changed for `dirty` (everything on a full sync).
    pub async fn sync(
        &mut self,
        desired: &BTreeMap<ServiceKey, Vec<ServicePort>>,
        dirty: &BTreeSet<ServiceKey>,
    ) -> Result<SyncStats, SyncError> {
        let (script, stats) = self.transaction(desired, dirty);
        if script.is_empty() {
            return Ok(stats);
        }
        if let Err(e) = ferrokube_cni::exec::run("nft", &["-f", "-"], Some(&script)).await {
            self.force_full();
            return Err(e.into());
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn port(name: &str, ip: [u8; 4], eps: &[[u8; 4]]) -> ServicePort {
        let eps = crate::model::endpoints(eps, 8080, false);
        let service = ServiceKey {
            namespace: "default".into(),
            name: name.into(),
        };
        ServicePort::new(service, Protocol::Tcp, Ipv4Addr::from(ip), 80, eps)
    }

    fn config() -> ProxyConfig {
        ProxyConfig {
            cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
            ..ProxyConfig::default()
        }
    }

    fn key(name: &str) -> ServiceKey {
        ServiceKey {
            namespace: "default".into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_service_is_map_elements_and_a_shared_pick_chain() {
        let mut n = Nftables::new(&config());
        let mut desired = BTreeMap::new();
        desired.insert(
            key("web"),
            vec![port(
                "web",
                [10, 96, 0, 10],
                &[[10, 244, 1, 5], [10, 244, 2, 5]],
            )],
        );
        let (script, stats) = n.transaction(&desired, &BTreeSet::new());
        assert!(stats.full);
        assert!(
            script.contains("add chain ip kube-proxy cluster-pick-2\n"),
            "{script}"
        );
        assert!(script.contains("add rule ip kube-proxy cluster-pick-2 ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x00004000"), "{script}");
        assert!(script.contains("add element ip kube-proxy service-ips { 10.96.0.10 . tcp . 80 : goto cluster-pick-2 }"), "{script}");
        assert!(script.contains("add element ip kube-proxy backends-tcp { 10.96.0.10 . 80 . 0 : 10.244.1.5 . 8080, 10.96.0.10 . 80 . 1 : 10.244.2.5 . 8080 }"), "{script}");

        // Nothing changed: nothing to send.
        let (script, _) = n.transaction(&desired, &[key("web")].into());
        assert!(script.is_empty(), "{script}");

        // One endpoint goes away: only its elements move.
        desired.insert(
            key("web"),
            vec![port("web", [10, 96, 0, 10], &[[10, 244, 1, 5]])],
        );
        let (script, stats) = n.transaction(&desired, &[key("web")].into());
        assert!(!stats.full);
        assert!(!script.contains("delete table"), "{script}");
        assert!(
            script.contains("delete element ip kube-proxy service-ips { 10.96.0.10 . tcp . 80 }"),
            "{script}"
        );
        assert!(script.contains("add element ip kube-proxy service-ips { 10.96.0.10 . tcp . 80 : goto cluster-pick-1 }"), "{script}");
        assert!(
            script.contains("delete element ip kube-proxy backends-tcp { 10.96.0.10 . 80 . 1 }"),
            "{script}"
        );
        assert!(
            !script.contains("add element ip kube-proxy backends-tcp"),
            "index 0 is unchanged: {script}"
        );

        // No endpoints: rejected.
        desired.insert(key("web"), vec![port("web", [10, 96, 0, 10], &[])]);
        let (script, _) = n.transaction(&desired, &[key("web")].into());
        assert!(script.contains("add element ip kube-proxy no-endpoint-services { 10.96.0.10 . tcp . 80 : goto reject-chain }"), "{script}");

        // Deleted: everything of it goes.
        desired.remove(&key("web"));
        let (script, _) = n.transaction(&desired, &[key("web")].into());
        assert!(
            script.contains(
                "delete element ip kube-proxy no-endpoint-services { 10.96.0.10 . tcp . 80 }"
            ),
            "{script}"
        );
        assert!(n.fragments.is_empty() && n.elements.is_empty());
    }

    #[test]
    fn a_clashing_service_does_not_take_over_and_inherits_when_the_first_goes() {
        let mut n = Nftables::new(&config());
        let mut desired = BTreeMap::new();
        desired.insert(
            key("a"),
            vec![port("a", [10, 96, 0, 10], &[[10, 244, 1, 5]])],
        );
        n.transaction(&desired, &BTreeSet::new());
        desired.insert(
            key("b"),
            vec![port("b", [10, 96, 0, 10], &[[10, 244, 9, 9]])],
        );
        let (script, _) = n.transaction(&desired, &[key("b")].into());
        assert!(!script.contains("10.244.9.9 . 8080"), "{script}");
        desired.remove(&key("a"));
        let (script, _) = n.transaction(&desired, &[key("a")].into());
        assert!(
            script.contains("10.96.0.10 . 80 . 0 : 10.244.9.9 . 8080"),
            "{script}"
        );
    }

    #[test]
    fn node_ports_external_ips_and_affinity() {
        let mut p = port("web", [10, 96, 0, 10], &[[10, 244, 1, 5]]);
        p.node_port = Some(30080);
        p.external_ips = vec![Ipv4Addr::new(198, 18, 9, 9)];
        p.external_local = true;
        let f = render(
            std::slice::from_ref(&p),
            &Masquerade::from_config(&config()),
        );
        assert_eq!(
            f.elements[&(Map::ServiceNodeports, "tcp . 30080".into())],
            "goto nodeport-local-pick-1"
        );
        assert_eq!(
            f.elements[&(Map::NodeportBackends(Protocol::Tcp), "30080 . 0".into())],
            "10.244.1.5 . 8080"
        );
        assert_eq!(
            f.elements[&(Map::ServiceIps, "198.18.9.9 . tcp . 80".into())],
            "goto local-pick-1"
        );

        p.affinity_timeout = Some(60);
        let f = render(&[p], &Masquerade::from_config(&config()));
        let (chain, rules) = f.chains.iter().find(|(n, _)| !n.ends_with("-0")).unwrap();
        assert!(
            rules
                .iter()
                .any(|r| r.contains("update @") && r.contains("dnat ip to 10.244.1.5:8080")),
            "{rules:?}"
        );
        assert!(f.sets.values().all(|d| d.contains("timeout 60s")));
        assert_eq!(
            f.elements[&(Map::ServiceIps, "10.96.0.10 . tcp . 80".into())],
            format!("goto {chain}")
        );
    }

    #[test]
    fn masquerade_all_and_no_cluster_cidr() {
        let mut c = config();
        c.masquerade_all = true;
        assert_eq!(
            Pick::Cluster(1).rules(&Masquerade::from_config(&c))[0],
            "meta mark set meta mark | 0x00004000"
        );
        c.masquerade_all = false;
        c.cluster_cidrs.clear();
        // No mark rule: the three per-protocol dnat rules only.
        assert_eq!(
            Pick::Cluster(1).rules(&Masquerade::from_config(&c)).len(),
            3
        );
    }
}
