//! The proxier's loop: watch Services and EndpointSlices, work out what changed, and
//! sync the kernel at most once per `minSyncPeriod` (at once after a quiet spell, as
//! upstream's bounded-frequency runner), with a table check every `syncPeriod` and a
//! full rewrite every hour.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::backend::{Backend, SyncStats};
use crate::config::{Mode, ProxyConfig};
use crate::metrics::ProxyMetrics;
use crate::model::{self, ServiceKey, ServicePort, SERVICE_NAME_LABEL};

/// How often the whole ruleset is rewritten even if nothing seems to have changed.
const FULL_SYNC_PERIOD: Duration = Duration::from_secs(3600);

/// The annotation the EndpointSlice controller sets to when the change that caused this
/// slice happened (for `network_programming_duration_seconds`).
const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// What the health endpoints report.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// When the last sync finished.
    pub last_updated: Option<SystemTime>,
    /// The oldest change not yet synced.
    pub oldest_pending: Option<Instant>,
    /// How long a change may wait before the proxier is unhealthy (2 × syncPeriod).
    pub timeout: Duration,
    pub synced_once: bool,
}

impl Health {
    /// Healthy: synced at least once and no change has waited longer than the timeout.
    pub fn healthy(&self, now: Instant) -> bool {
        match self.oldest_pending {
            Some(since) => now.duration_since(since) < self.timeout,
            None => self.synced_once,
        }
    }
}

/// Shared between the loop and the HTTP endpoints.
pub type SharedHealth = Arc<Mutex<Health>>;

/// Picks the backend for `config.mode`. IPVS needs the kernel's IPVS; where it is
/// missing (or until our IPVS proxier lands) nftables serves the same Services, as
/// upstream's kube-proxy once fell back from ipvs to iptables.
pub fn backend(config: &ProxyConfig) -> Backend {
    match config.mode {
        Mode::Nftables => Backend::Nftables(crate::nftables::Nftables::new(config)),
        Mode::Iptables => Backend::Iptables(crate::iptables::Iptables::new(config)),
        Mode::Ipvs => {
            let why = if std::path::Path::new("/proc/net/ip_vs").exists() {
                "ferrokube's IPVS proxier is not available yet"
            } else {
                "this kernel has no IPVS (/proc/net/ip_vs is missing: CONFIG_IP_VS)"
            };
            tracing::warn!(
                "mode ipvs: {why}; falling back to nftables mode, which serves the same Services"
            );
            Backend::Nftables(crate::nftables::Nftables::new(config))
        }
    }
}

fn slice_service(s: &EndpointSlice) -> Option<ServiceKey> {
    Some(ServiceKey {
        namespace: s.metadata.namespace.clone()?,
        name: s.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone(),
    })
}

fn service_key(s: &Service) -> Option<ServiceKey> {
    Some(ServiceKey {
        namespace: s.metadata.namespace.clone()?,
        name: s.metadata.name.clone()?,
    })
}

/// What the watches have seen.
#[derive(Default)]
struct Cache {
    services: HashMap<ServiceKey, Service>,
    slices: HashMap<ServiceKey, BTreeMap<String, EndpointSlice>>,
    /// A relist in progress.
    services_init: Option<HashMap<ServiceKey, Service>>,
    slices_init: Option<HashMap<ServiceKey, BTreeMap<String, EndpointSlice>>>,
    services_synced: bool,
    slices_synced: bool,
    dirty: BTreeSet<ServiceKey>,
    /// Earliest trigger time of the pending endpoint changes.
    pending_trigger: Option<SystemTime>,
    service_changes: u64,
    endpoint_changes: u64,
}

impl Cache {
    fn service_event(&mut self, ev: Event<Service>) {
        match ev {
            Event::Init => self.services_init = Some(HashMap::new()),
            Event::InitApply(s) => {
                if let (Some(k), Some(m)) = (service_key(&s), self.services_init.as_mut()) {
                    m.insert(k, s);
                }
            }
            Event::InitDone => {
                let fresh = self.services_init.take().unwrap_or_default();
                for k in self.services.keys().chain(fresh.keys()) {
                    if self.services.get(k) != fresh.get(k) {
                        self.dirty.insert(k.clone());
                        self.service_changes += 1;
                    }
                }
                self.services = fresh;
                self.services_synced = true;
            }
            Event::Apply(s) => {
                if let Some(k) = service_key(&s) {
                    if self.services.get(&k) != Some(&s) {
                        self.dirty.insert(k.clone());
                        self.service_changes += 1;
                        self.services.insert(k, s);
                    }
                }
            }
            Event::Delete(s) => {
                if let Some(k) = service_key(&s) {
                    self.services.remove(&k);
                    self.dirty.insert(k);
                    self.service_changes += 1;
                }
            }
        }
    }

    fn note_trigger(&mut self, s: &EndpointSlice) {
        let t = s
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(TRIGGER_TIME))
            .and_then(|v| crate::metrics::parse_rfc3339(v));
        if let Some(t) = t {
            self.pending_trigger = Some(self.pending_trigger.map_or(t, |p| p.min(t)));
        }
    }

    fn slice_event(&mut self, ev: Event<EndpointSlice>) {
        let name = |s: &EndpointSlice| s.metadata.name.clone().unwrap_or_default();
        match ev {
            Event::Init => self.slices_init = Some(HashMap::new()),
            Event::InitApply(s) => {
                if let (Some(k), Some(m)) = (slice_service(&s), self.slices_init.as_mut()) {
                    m.entry(k).or_default().insert(name(&s), s);
                }
            }
            Event::InitDone => {
                let fresh = self.slices_init.take().unwrap_or_default();
                for k in self.slices.keys().chain(fresh.keys()) {
                    if self.slices.get(k) != fresh.get(k) {
                        self.dirty.insert(k.clone());
                        self.endpoint_changes += 1;
                    }
                }
                self.slices = fresh;
                self.slices_synced = true;
            }
            Event::Apply(s) => {
                let Some(k) = slice_service(&s) else { return };
                let same = self.slices.get(&k).and_then(|m| m.get(&name(&s))) == Some(&s);
                if !same {
                    self.note_trigger(&s);
                    self.slices
                        .entry(k.clone())
                        .or_default()
                        .insert(name(&s), s);
                    self.dirty.insert(k);
                    self.endpoint_changes += 1;
                }
            }
            Event::Delete(s) => {
                let Some(k) = slice_service(&s) else { return };
                if let Some(entry) = self.slices.get_mut(&k) {
                    entry.remove(&name(&s));
                    if entry.is_empty() {
                        self.slices.remove(&k);
                    }
                }
                self.dirty.insert(k);
                self.endpoint_changes += 1;
            }
        }
    }

    fn ports(&self, k: &ServiceKey, node: &str) -> Vec<ServicePort> {
        let Some(svc) = self.services.get(k) else {
            return Vec::new();
        };
        match self.slices.get(k) {
            Some(slices) => model::service_ports(svc, slices.values(), node),
            None => model::service_ports(svc, std::iter::empty(), node),
        }
    }
}

/// Runs the proxier until `stop` turns true.
pub async fn run(
    config: ProxyConfig,
    client: Client,
    node: String,
    mut backend: Backend,
    metrics: ProxyMetrics,
    health: SharedHealth,
    mut stop: watch::Receiver<bool>,
) {
    let services: Api<Service> = Api::all(client.clone());
    let slices: Api<EndpointSlice> = Api::all(client);
    let mut svc_events = watcher::watcher(
        services,
        watcher::Config::default().labels(&format!("!{}", model::SERVICE_PROXY_NAME_LABEL)),
    )
    .boxed();
    let mut slice_events = watcher::watcher(
        slices,
        watcher::Config::default().labels(&format!(
            "!service.kubernetes.io/headless,!{}",
            model::SERVICE_PROXY_NAME_LABEL
        )),
    )
    .boxed();
    tracing::info!(mode = backend.mode().as_str(), %node, "proxier starting");
    let mut cache = Cache::default();
    let mut desired: BTreeMap<ServiceKey, Vec<ServicePort>> = BTreeMap::new();
    // The earliest the next sync may start (minSyncPeriod after the last one; a second
    // after a failure), and whether one has run.
    let mut next_allowed = Instant::now();
    let mut synced = false;
    let mut last_full = Instant::now();
    let mut check = tokio::time::interval(config.sync_period);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let far = Duration::from_secs(86400);
    // A full rewrite is due though no Service changed.
    let mut full_due = false;
    let mut conntrack_warned = false;
    // Conntrack entries to delete once a sync succeeds.
    let mut stale = Vec::new();
    let mut service_health =
        crate::service_health::ServiceHealth::new(std::net::Ipv4Addr::UNSPECIFIED, health.clone());
    loop {
        let ready = cache.services_synced && cache.slices_synced;
        // When the next sync may run: now if nothing ran for minSyncPeriod.
        let wait = if ready && (full_due || !cache.dirty.is_empty()) {
            next_allowed.saturating_duration_since(Instant::now())
        } else {
            far
        };
        tokio::select! {
            ev = svc_events.next() => match ev {
                Some(Ok(ev)) => cache.service_event(ev),
                Some(Err(e)) => tracing::warn!(error = %e, "watching Services"),
                None => return,
            },
            ev = slice_events.next() => match ev {
                Some(Ok(ev)) => cache.slice_event(ev),
                Some(Err(e)) => tracing::warn!(error = %e, "watching EndpointSlices"),
                None => return,
            },
            _ = check.tick() => {
                if last_full.elapsed() >= FULL_SYNC_PERIOD {
                    backend.force_full();
                    last_full = Instant::now();
                    full_due = true;
                } else if ready && synced && !backend.intact().await {
                    tracing::warn!(mode = backend.mode().as_str(), "our rules are gone from the kernel; rewriting them");
                    backend.force_full();
                    full_due = true;
                }
            }
            () = tokio::time::sleep(wait) => {
                let started = Instant::now();
                next_allowed = started + config.min_sync_period;
                synced = true;
                full_due = false;
                let dirty = std::mem::take(&mut cache.dirty);
                for k in &dirty {
                    let ports = cache.ports(k, &node);
                    let old = if ports.is_empty() {
                        desired.remove(k)
                    } else {
                        desired.insert(k.clone(), ports)
                    };
                    let new = desired.get(k).map_or(&[][..], Vec::as_slice);
                    stale.extend(crate::conntrack::stale(old.as_deref().unwrap_or_default(), new));
                }
                metrics.service_changes.inc_by(std::mem::take(&mut cache.service_changes) as f64);
                metrics.endpoint_changes.inc_by(std::mem::take(&mut cache.endpoint_changes) as f64);
                match backend.sync(&desired, &dirty).await {
                    Ok(stats) => {
                        observe(&metrics, &stats, started);
                        // Only once the rules send new flows elsewhere.
                        crate::conntrack::clear(std::mem::take(&mut stale), &mut conntrack_warned).await;
                        service_health.sync(&desired).await;
                        if let Some(t) = cache.pending_trigger.take() {
                            if let Ok(d) = SystemTime::now().duration_since(t) {
                                metrics.network_programming.observe(d.as_secs_f64());
                            }
                        }
                        let mut h = health.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        h.last_updated = Some(SystemTime::now());
                        h.synced_once = true;
                        if cache.dirty.is_empty() {
                            h.oldest_pending = None;
                        }
                        if stats.full {
                            tracing::info!(services = desired.len(), objects = stats.objects, seconds = started.elapsed().as_secs_f64(), "full sync");
                        } else {
                            tracing::debug!(?stats, seconds = started.elapsed().as_secs_f64(), "sync");
                        }
                    }
                    Err(e) => {
                        metrics.sync_failures.inc();
                        tracing::error!(error = %e, mode = backend.mode().as_str(), "syncing proxy rules failed; retrying with a full sync");
                        // The backend rewrites everything next time (desired already
                        // holds these changes), after minSyncPeriod and at least a second.
                        full_due = true;
                        next_allowed = next_allowed.max(Instant::now() + Duration::from_secs(1));
                        health
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .oldest_pending
                            .get_or_insert(started);
                    }
                }
                continue;
            }
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
        if !cache.dirty.is_empty() {
            let mut h = health
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            h.oldest_pending.get_or_insert_with(Instant::now);
        }
    }
}

fn observe(metrics: &ProxyMetrics, stats: &SyncStats, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    metrics.sync_duration.observe(secs);
    if stats.full {
        metrics.full_sync_duration.observe(secs);
    } else {
        metrics.partial_sync_duration.observe(secs);
    }
    metrics.objects.set(stats.objects as f64);
    metrics.last_sync.set(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(name: &str, ip: &str) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": ip, "ports": [{"port": 80}]}
        }))
        .unwrap()
    }

    fn slice(name: &str, svc: &str, ip: &str) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": svc},
                         "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2026-01-01T00:00:00Z"}},
            "addressType": "IPv4",
            "ports": [{"port": 8080}],
            "endpoints": [{"addresses": [ip]}]
        }))
        .unwrap()
    }

    #[test]
    fn events_mark_their_service_dirty_and_a_relist_finds_what_changed() {
        let mut c = Cache::default();
        c.service_event(Event::Init);
        c.service_event(Event::InitApply(svc("a", "10.96.0.1")));
        c.service_event(Event::InitApply(svc("b", "10.96.0.2")));
        c.service_event(Event::InitDone);
        assert_eq!(c.dirty.len(), 2);
        c.dirty.clear();
        c.slice_event(Event::Apply(slice("a-1", "a", "10.244.0.5")));
        assert!(c.pending_trigger.is_some());
        let k = ServiceKey {
            namespace: "default".into(),
            name: "a".into(),
        };
        assert_eq!(c.dirty.iter().collect::<Vec<_>>(), [&k]);
        assert_eq!(c.ports(&k, "n")[0].cluster_endpoints.len(), 1);
        // The same object again changes nothing.
        c.dirty.clear();
        c.slice_event(Event::Apply(slice("a-1", "a", "10.244.0.5")));
        assert!(c.dirty.is_empty());
        // A relist without b: b is dirty (and gone).
        c.service_event(Event::Init);
        c.service_event(Event::InitApply(svc("a", "10.96.0.1")));
        c.service_event(Event::InitDone);
        assert_eq!(c.dirty.len(), 1);
        assert!(c
            .ports(
                &ServiceKey {
                    namespace: "default".into(),
                    name: "b".into()
                },
                "n"
            )
            .is_empty());
        c.slice_event(Event::Delete(slice("a-1", "a", "10.244.0.5")));
        assert!(c.ports(&k, "n")[0].cluster_endpoints.is_empty());
    }

    #[test]
    fn health_needs_a_first_sync_and_fails_when_changes_wait_too_long() {
        let now = Instant::now();
        let mut h = Health {
            timeout: Duration::from_secs(60),
            ..Health::default()
        };
        assert!(!h.healthy(now));
        h.synced_once = true;
        assert!(h.healthy(now));
        h.oldest_pending = now.checked_sub(Duration::from_secs(120));
        if h.oldest_pending.is_some() {
            assert!(!h.healthy(now));
        }
    }
}
