//! The quota monitors of object-count resources (upstream `QuotaMonitor` in
//! `pkg/controller/resourcequota/resource_quota_monitor.go`): for every
//! `count/<resource>.<group>` a quota names (and the legacy `configmaps`, `secrets`,
//! `replicationcontrollers`, `resourcequotas`), a metadata-only list+watch of that
//! resource keeps the names per namespace, and every object created or deleted
//! replenishes the quotas of its namespace. Monitors start when a quota first needs
//! one, with the resource's preferred version from discovery; a resource the server
//! does not serve is looked up again after [`NOT_SERVED_RETRY`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::discovery::Discovery;

/// How long a resource found not served is taken as such (upstream re-runs discovery
/// every 30 s).
pub const NOT_SERVED_RETRY: Duration = Duration::from_secs(30);

/// Called with (namespace, group, resource) when a namespace's count changed.
pub type OnChange = Arc<dyn Fn(&str, &str, &str) + Send + Sync>;

/// What a monitor knows of a resource's count in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// The monitor has listed the resource: this many objects.
    Synced(usize),
    /// The monitor is starting (or discovery is under way): ask again shortly.
    Pending,
    /// The server does not serve the resource with list and watch: nothing to count.
    NotServed,
}

#[derive(Default)]
struct Monitor {
    names: RwLock<HashMap<String, BTreeSet<String>>>,
    synced: std::sync::atomic::AtomicBool,
}

enum Slot {
    Running(Arc<Monitor>),
    Resolving,
    NotServed(Instant),
}

/// The running monitors.
pub struct Monitors {
    client: kube::Client,
    stop: watch::Receiver<bool>,
    on_change: OnChange,
    slots: Mutex<HashMap<(String, String), Slot>>,
}

impl std::fmt::Debug for Monitors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitors")
            .field("resources", &self.slots.lock().len())
            .finish_non_exhaustive()
    }
}

impl Monitors {
    pub fn new(client: kube::Client, stop: watch::Receiver<bool>, on_change: OnChange) -> Self {
        Monitors {
            client,
            stop,
            on_change,
            slots: Mutex::default(),
        }
    }

    /// The number of `group`/`resource` objects in `namespace`, starting the monitor
    /// (in the background) if none runs yet.
    pub fn count(self: &Arc<Self>, group: &str, resource: &str, namespace: &str) -> Count {
        let key = (group.to_string(), resource.to_string());
        let mut slots = self.slots.lock();
        match slots.get(&key) {
            Some(Slot::Running(m)) => {
                if !m.synced.load(std::sync::atomic::Ordering::Acquire) {
                    return Count::Pending;
                }
                return Count::Synced(m.names.read().get(namespace).map_or(0, BTreeSet::len));
            }
            Some(Slot::Resolving) => return Count::Pending,
            Some(Slot::NotServed(at)) if at.elapsed() < NOT_SERVED_RETRY => {
                return Count::NotServed
            }
            _ => {}
        }
        slots.insert(key.clone(), Slot::Resolving);
        drop(slots);
        let this = self.clone();
        tokio::spawn(async move { this.resolve(key).await });
        Count::Pending
    }

    async fn resolve(self: Arc<Self>, key: (String, String)) {
        let (group, resource) = &key;
        let found = match Discovery::run(&self.client).await {
            Ok(d) => d
                .preferred()
                .find(|r| {
                    &r.resource.group == group
                        && &r.resource.plural == resource
                        && r.supports_all(&["list", "watch"])
                })
                .cloned(),
            Err(e) => {
                tracing::warn!(error = %e, "resourcequota: discovery failed");
                None
            }
        };
        let Some(found) = found else {
            self.slots
                .lock()
                .insert(key.clone(), Slot::NotServed(Instant::now()));
            return;
        };
        let monitor = Arc::new(Monitor::default());
        self.slots
            .lock()
            .insert(key.clone(), Slot::Running(monitor.clone()));
        tracing::debug!(group, resource, "resourcequota: starting quota monitor");
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(self.client.clone(), &found.resource);
        let on_change = self.on_change.clone();
        let stop = self.stop.clone();
        tokio::spawn(run(api, monitor, key, on_change, stop));
    }
}

fn split(obj: &PartialObjectMeta<DynamicObject>) -> (String, String) {
    (
        obj.metadata.namespace.clone().unwrap_or_default(),
        obj.metadata.name.clone().unwrap_or_default(),
    )
}

async fn run(
    api: Api<PartialObjectMeta<DynamicObject>>,
    monitor: Arc<Monitor>,
    (group, resource): (String, String),
    on_change: OnChange,
    mut stop: watch::Receiver<bool>,
) {
    let config = watcher::Config::default().any_semantic();
    let mut stream = Box::pin(watcher::watcher(api, config).default_backoff());
    let mut relist: Option<HashMap<String, BTreeSet<String>>> = None;
    let mut last_error: Option<String> = None;
    loop {
        let event = tokio::select! {
            e = stream.next() => e,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Some(event) = event else { return };
        let mut changed: Vec<String> = Vec::new();
        match event {
            Ok(Event::Init) => relist = Some(HashMap::new()),
            Ok(Event::InitApply(obj)) => {
                let (ns, name) = split(&obj);
                if let Some(buf) = relist.as_mut() {
                    buf.entry(ns).or_default().insert(name);
                }
            }
            Ok(Event::InitDone) => {
                let listed = relist.take().unwrap_or_default();
                let mut names = monitor.names.write();
                for ns in names.keys().chain(listed.keys()) {
                    if names.get(ns) != listed.get(ns) {
                        changed.push(ns.clone());
                    }
                }
                *names = listed;
                drop(names);
                monitor
                    .synced
                    .store(true, std::sync::atomic::Ordering::Release);
                last_error = None;
            }
            Ok(Event::Apply(obj)) => {
                let (ns, name) = split(&obj);
                if monitor
                    .names
                    .write()
                    .entry(ns.clone())
                    .or_default()
                    .insert(name)
                {
                    changed.push(ns);
                }
            }
            Ok(Event::Delete(obj)) => {
                let (ns, name) = split(&obj);
                if monitor
                    .names
                    .write()
                    .get_mut(&ns)
                    .is_some_and(|s| s.remove(&name))
                {
                    changed.push(ns);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_deref() != Some(msg.as_str()) {
                    tracing::warn!(%group, %resource, error = %msg, "resourcequota: quota monitor's watch failed");
                    last_error = Some(msg);
                }
            }
        }
        changed.sort();
        changed.dedup();
        for ns in changed {
            on_change(&ns, &group, &resource);
        }
    }
}
