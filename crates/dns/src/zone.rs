//! The cluster zone: every name the server answers for, precomputed from Services and
//! EndpointSlices (what CoreDNS's `kubernetes` plugin computes per query from its
//! informers, computed here once per change).
//!
//! The zone is a map from lowercased wire-form names to their records. Each service
//! contributes a set of records and names ([`records`]); a change to a service or to
//! one of its slices replaces that service's contribution only. A name exists while
//! some contribution (or the zone itself) holds it, so names with no records of their
//! own — `<ns>.svc.<zone>`, `_tcp.<svc>.<ns>.svc.<zone>` — answer NOERROR with no
//! data rather than NXDOMAIN (RFC 8020). Lookups take a read lock and hash the query
//! name once; nothing is allocated.
//!
//! The zone does not need an API client: [`Zone::upsert_service`] and friends take
//! plain [`ServiceInfo`]/[`SliceInfo`] values (the watch in `crate::source` converts
//! API objects into them; tests and the benchmark fill the zone directly).

pub mod records;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use records::{derive, Contribution};
pub use records::{EndpointInfo, PortInfo, ServiceInfo, ServiceKind, SliceInfo};

use crate::wire::{labels, suffix_offset, Name, RData};

/// The schema version `dns-version.<zone>` announces.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// A record in the zone and which contribution it came from (0 = the zone itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rr {
    owner: u32,
    pub data: RData,
}

#[derive(Debug, Default)]
struct Node {
    rrs: Vec<Rr>,
    refs: u32,
}

/// A zone apex: its name and SOA record.
#[derive(Debug, Clone)]
pub struct Apex {
    pub name: Name,
    pub soa: RData,
}

/// What a name is.
#[derive(Debug)]
pub enum Find<'z> {
    /// The name owns these records (of any type).
    Records(&'z [Rr]),
    /// A pod name (`a-b-c-d.<ns>.pod.<zone>`): the address it spells.
    Pod(RData),
    /// The name exists but owns no records.
    Empty,
    /// The name does not exist in our zone.
    NxDomain,
    /// Not ours (outside the cluster zone, or a reverse name we hold nothing for):
    /// forward it.
    Outside,
}

type ServiceKey = (String, String);

#[derive(Debug)]
struct ServiceEntry {
    info: ServiceInfo,
    id: u32,
    contribution: Contribution,
}

#[derive(Debug)]
struct State {
    domain: Name,
    zone_key: Box<[u8]>,
    pod_key: Box<[u8]>,
    pods: bool,
    apex: Apex,
    reverse4: Apex,
    reverse6: Apex,
    names: HashMap<Box<[u8]>, Node>,
    services: HashMap<ServiceKey, ServiceEntry>,
    slices: HashMap<ServiceKey, SliceInfo>,
    slices_by_service: HashMap<ServiceKey, BTreeSet<String>>,
    next_id: u32,
}

fn soa(apex: &Name, domain: &Name, ttl: u32) -> Apex {
    let ns = domain
        .child("dns")
        .and_then(|n| n.child("ns"))
        .unwrap_or_else(|_| domain.clone());
    let hostmaster = domain
        .child("hostmaster")
        .unwrap_or_else(|_| domain.clone());
    Apex {
        name: apex.to_lowercase(),
        soa: RData::Soa {
            mname: ns,
            rname: hostmaster,
            serial: now_serial(),
            refresh: 7200,
            retry: 1800,
            expire: 86400,
            minimum: ttl,
        },
    }
}

fn now_serial() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1)
}

impl State {
    fn add_permanent(&mut self, name: &Name, data: Option<RData>) {
        let node = self
            .names
            .entry(name.to_lowercase().wire().into())
            .or_default();
        node.refs += 1;
        if let Some(data) = data {
            node.rrs.push(Rr { owner: 0, data });
        }
    }

    fn remove_contribution(&mut self, id: u32, c: &Contribution) {
        for name in &c.names {
            if let Some(node) = self.names.get_mut(name) {
                node.rrs.retain(|r| r.owner != id);
                node.refs = node.refs.saturating_sub(1);
                if node.refs == 0 {
                    self.names.remove(name);
                }
            }
        }
    }

    fn add_contribution(&mut self, id: u32, c: &Contribution) {
        for name in &c.names {
            self.names.entry(name.clone()).or_default().refs += 1;
        }
        for (name, data) in &c.records {
            if let Some(node) = self.names.get_mut(name) {
                node.rrs.push(Rr {
                    owner: id,
                    data: data.clone(),
                });
            }
        }
    }

    /// Recomputes one service's records from its object and slices.
    fn refresh(&mut self, key: &ServiceKey) {
        let Some(entry) = self.services.get(key) else {
            return;
        };
        let slice_names = self.slices_by_service.get(key);
        let slices = slice_names
            .into_iter()
            .flatten()
            .filter_map(|n| self.slices.get(&(key.0.clone(), n.clone())));
        let id = entry.id;
        let fresh = derive(&entry.info, slices, &self.domain);
        let old = self
            .services
            .get_mut(key)
            .map(|e| std::mem::take(&mut e.contribution))
            .unwrap_or_default();
        self.remove_contribution(id, &old);
        self.add_contribution(id, &fresh);
        if let Some(e) = self.services.get_mut(key) {
            e.contribution = fresh;
        }
        self.touch();
    }

    fn touch(&mut self) {
        if let RData::Soa { serial, .. } = &mut self.apex.soa {
            *serial = now_serial().max(serial.wrapping_add(1));
        }
    }

    fn upsert_service(&mut self, info: ServiceInfo) {
        let key = (info.namespace.clone(), info.name.clone());
        if let Some(e) = self.services.get_mut(&key) {
            if e.info == info {
                return;
            }
            e.info = info;
        } else {
            self.next_id = self.next_id.wrapping_add(1).max(1);
            let id = self.next_id;
            self.services.insert(
                key.clone(),
                ServiceEntry {
                    info,
                    id,
                    contribution: Contribution::default(),
                },
            );
        }
        self.refresh(&key);
    }

    fn delete_service(&mut self, key: &ServiceKey) {
        if let Some(e) = self.services.remove(key) {
            self.remove_contribution(e.id, &e.contribution);
            self.touch();
        }
    }

    /// Stores a slice; returns the services whose records it changes.
    fn put_slice(&mut self, info: SliceInfo) -> Vec<ServiceKey> {
        let key = (info.namespace.clone(), info.name.clone());
        let mut affected = Vec::with_capacity(2);
        if let Some(old) = self.slices.get(&key) {
            if *old == info {
                return affected;
            }
            if old.service != info.service {
                affected.extend(self.unlink_slice(&key));
            }
        }
        let svc = (info.namespace.clone(), info.service.clone());
        self.slices_by_service
            .entry(svc.clone())
            .or_default()
            .insert(info.name.clone());
        self.slices.insert(key, info);
        affected.push(svc);
        affected
    }

    /// Forgets a slice's link to its service; returns that service.
    fn unlink_slice(&mut self, key: &ServiceKey) -> Option<ServiceKey> {
        let old = self.slices.get(key)?;
        let svc = (old.namespace.clone(), old.service.clone());
        if let Some(set) = self.slices_by_service.get_mut(&svc) {
            set.remove(&key.1);
            if set.is_empty() {
                self.slices_by_service.remove(&svc);
            }
        }
        Some(svc)
    }

    fn delete_slice(&mut self, key: &ServiceKey) -> Option<ServiceKey> {
        let svc = self.unlink_slice(key);
        self.slices.remove(key);
        svc
    }

    fn find(&self, key: &[u8]) -> (Find<'_>, Option<&Apex>) {
        if suffix_offset(key, &self.zone_key).is_some() {
            let found = match self.names.get(key) {
                Some(node) if node.rrs.is_empty() => Find::Empty,
                Some(node) => Find::Records(&node.rrs),
                None => self.find_pod(key),
            };
            return (found, Some(&self.apex));
        }
        let apex = if suffix_offset(key, self.reverse4.name.wire()).is_some() {
            &self.reverse4
        } else if suffix_offset(key, self.reverse6.name.wire()).is_some() {
            &self.reverse6
        } else {
            return (Find::Outside, None);
        };
        match self.names.get(key) {
            Some(node) if !node.rrs.is_empty() => (Find::Records(&node.rrs), Some(apex)),
            _ => (Find::Outside, None),
        }
    }

    /// `<ip>.<ns>.pod.<zone>` (CoreDNS's `pods insecure`: any namespace, the address
    /// as spelled); `<ns>.pod.<zone>` exists with no records.
    fn find_pod(&self, key: &[u8]) -> Find<'_> {
        if !self.pods {
            return Find::NxDomain;
        }
        let Some(at) = suffix_offset(key, &self.pod_key) else {
            return Find::NxDomain;
        };
        let mut ls = labels(&key[..at]);
        match (ls.next(), ls.next(), ls.next()) {
            (Some(_ns), None, None) => Find::Empty,
            (Some(ip), Some(_ns), None) => match pod_address(ip) {
                Some(IpAddr::V4(v4)) => Find::Pod(RData::A(v4)),
                Some(IpAddr::V6(v6)) => Find::Pod(RData::Aaaa(v6)),
                None => Find::NxDomain,
            },
            _ => Find::NxDomain,
        }
    }
}

/// `10-0-0-1` → 10.0.0.1, `fd00--1` → fd00::1.
fn pod_address(label: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(label).ok()?;
    if text.bytes().filter(|&b| b == b'-').count() == 3 {
        if let Ok(v4) = text.replace('-', ".").parse::<Ipv4Addr>() {
            return Some(IpAddr::V4(v4));
        }
    }
    text.replace('-', ":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

#[derive(Debug)]
struct Inner {
    state: RwLock<State>,
    synced: AtomicBool,
    domain: Name,
}

/// The cluster zone, shared by the server's tasks and the watch that fills it.
#[derive(Debug, Clone)]
pub struct Zone(Arc<Inner>);

/// A read view of the zone (held while one answer is written).
#[derive(Debug)]
pub struct ZoneView<'a>(RwLockReadGuard<'a, State>);

impl ZoneView<'_> {
    /// What `key` (a lowercased wire-form name) is, and the apex of the zone that
    /// answers for it.
    pub fn find(&self, key: &[u8]) -> (Find<'_>, Option<&Apex>) {
        self.0.find(key)
    }
}

impl Zone {
    /// An empty zone for `domain` (e.g. `cluster.local`) whose SOA announces `ttl`
    /// as its negative TTL; `pods` enables `<ip>.<ns>.pod.<zone>` names.
    pub fn new(domain: &Name, ttl: u32, pods: bool) -> Zone {
        let domain = domain.to_lowercase();
        let reverse4 = Name::from_ascii("in-addr.arpa").unwrap_or_else(|_| Name::root());
        let reverse6 = Name::from_ascii("ip6.arpa").unwrap_or_else(|_| Name::root());
        let svc = domain.child("svc").unwrap_or_else(|_| domain.clone());
        let pod = domain.child("pod").unwrap_or_else(|_| domain.clone());
        let mut state = State {
            zone_key: domain.wire().into(),
            pod_key: pod.wire().into(),
            pods,
            apex: soa(&domain, &domain, ttl),
            reverse4: soa(&reverse4, &domain, ttl),
            reverse6: soa(&reverse6, &domain, ttl),
            domain: domain.clone(),
            names: HashMap::new(),
            services: HashMap::new(),
            slices: HashMap::new(),
            slices_by_service: HashMap::new(),
            next_id: 0,
        };
        let apex_soa = state.apex.soa.clone();
        state.add_permanent(&domain, Some(apex_soa));
        if let Ok(version) = domain.child("dns-version") {
            let txt = RData::Txt(vec![SCHEMA_VERSION.as_bytes().into()]);
            state.add_permanent(&version, Some(txt));
        }
        state.add_permanent(&svc, None);
        if pods {
            state.add_permanent(&pod, None);
        }
        Zone(Arc::new(Inner {
            state: RwLock::new(state),
            synced: AtomicBool::new(false),
            domain,
        }))
    }

    /// The cluster domain (lowercase).
    pub fn domain(&self) -> &Name {
        &self.0.domain
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.0
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A read view for lookups.
    pub fn read(&self) -> ZoneView<'_> {
        ZoneView(
            self.0
                .state
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Adds or replaces a service.
    pub fn upsert_service(&self, info: ServiceInfo) {
        let mut st = self.write();
        st.upsert_service(info);
        Self::sync_apex(&mut st);
    }

    /// Removes a service and its records.
    pub fn delete_service(&self, namespace: &str, name: &str) {
        let mut st = self.write();
        st.delete_service(&(namespace.to_string(), name.to_string()));
        Self::sync_apex(&mut st);
    }

    /// Makes `all` the complete set of services (after a list).
    pub fn replace_services(&self, all: Vec<ServiceInfo>) {
        let mut st = self.write();
        let keep: std::collections::HashSet<ServiceKey> = all
            .iter()
            .map(|s| (s.namespace.clone(), s.name.clone()))
            .collect();
        let gone: Vec<ServiceKey> = st
            .services
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            st.delete_service(&k);
        }
        for s in all {
            st.upsert_service(s);
        }
        Self::sync_apex(&mut st);
    }

    /// Adds or replaces an EndpointSlice.
    pub fn upsert_slice(&self, info: SliceInfo) {
        let mut st = self.write();
        for svc in st.put_slice(info) {
            st.refresh(&svc);
        }
        Self::sync_apex(&mut st);
    }

    /// Removes an EndpointSlice.
    pub fn delete_slice(&self, namespace: &str, name: &str) {
        let mut st = self.write();
        if let Some(svc) = st.delete_slice(&(namespace.to_string(), name.to_string())) {
            st.refresh(&svc);
        }
        Self::sync_apex(&mut st);
    }

    /// Makes `all` the complete set of slices (after a list).
    pub fn replace_slices(&self, all: Vec<SliceInfo>) {
        let mut st = self.write();
        let keep: std::collections::HashSet<ServiceKey> = all
            .iter()
            .map(|s| (s.namespace.clone(), s.name.clone()))
            .collect();
        let gone: Vec<ServiceKey> = st
            .slices
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        let mut affected: BTreeSet<ServiceKey> = BTreeSet::new();
        for k in gone {
            affected.extend(st.delete_slice(&k));
        }
        for s in all {
            affected.extend(st.put_slice(s));
        }
        for svc in &affected {
            st.refresh(svc);
        }
        Self::sync_apex(&mut st);
    }

    /// The apex node holds a copy of the SOA: keep its serial current.
    fn sync_apex(st: &mut State) {
        let soa = st.apex.soa.clone();
        if let Some(node) = st.names.get_mut(&st.zone_key) {
            for rr in node.rrs.iter_mut().filter(|r| r.owner == 0) {
                if matches!(rr.data, RData::Soa { .. }) {
                    rr.data = soa.clone();
                }
            }
        }
    }

    /// Marks the zone as filled from a complete list of Services and EndpointSlices.
    pub fn set_synced(&self, synced: bool) {
        self.0.synced.store(synced, Ordering::Release);
    }

    /// Whether the zone has been filled (until then, names missing from the zone
    /// answer SERVFAIL rather than NXDOMAIN, as CoreDNS does before its first sync).
    pub fn is_synced(&self) -> bool {
        self.0.synced.load(Ordering::Acquire)
    }

    /// How many services the zone holds.
    pub fn service_count(&self) -> usize {
        self.read().0.services.len()
    }

    /// How many names the zone holds.
    pub fn name_count(&self) -> usize {
        self.read().0.names.len()
    }
}

#[cfg(test)]
#[path = "zone/tests.rs"]
mod tests;
