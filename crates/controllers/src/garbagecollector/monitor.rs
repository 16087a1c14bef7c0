//! The graph builder's monitors (upstream `graph_builder.go` `monitor`s and
//! `syncMonitors`): one metadata-only list+watch per deletable resource, feeding
//! add/update/delete events (with the previous metadata on updates) into the graph.
//! Monitors are started and stopped as discovery changes.

use std::collections::{BTreeMap, HashMap};

use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::runtime::WatchStreamExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use super::graph::{Event, EventType, Meta};
use crate::discovery::{DiscoveredResource, GroupVersionResource};

/// Resources the collector never watches (upstream `ignoredResources`).
pub fn ignored(r: &DiscoveredResource) -> bool {
    r.resource.plural == "events" && matches!(r.resource.group.as_str(), "" | "events.k8s.io")
}

struct Monitor {
    resource: ApiResource,
    stop: watch::Sender<bool>,
    synced: watch::Receiver<bool>,
}

/// The running monitors, by resource.
pub struct Monitors {
    client: kube::Client,
    events: mpsc::UnboundedSender<Event>,
    stop: watch::Receiver<bool>,
    running: Mutex<HashMap<GroupVersionResource, Monitor>>,
}

impl std::fmt::Debug for Monitors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitors")
            .field("running", &self.running.lock().len())
            .finish_non_exhaustive()
    }
}

impl Monitors {
    pub fn new(
        client: kube::Client,
        events: mpsc::UnboundedSender<Event>,
        stop: watch::Receiver<bool>,
    ) -> Monitors {
        Monitors {
            client,
            events,
            stop,
            running: Mutex::default(),
        }
    }

    /// Makes the running monitors exactly `wanted` (upstream `resyncMonitors`):
    /// starts new ones, stops those whose resource is gone or changed kind.
    pub fn sync(&self, wanted: &[&DiscoveredResource]) {
        let mut running = self.running.lock();
        let wanted: BTreeMap<GroupVersionResource, &DiscoveredResource> =
            wanted.iter().map(|r| (r.gvr(), *r)).collect();
        running.retain(|gvr, m| {
            let keep = wanted
                .get(gvr)
                .is_some_and(|r| r.resource.kind == m.resource.kind);
            if !keep {
                tracing::info!(resource = %gvr, "garbage collector: stopping monitor");
                m.stop.send_replace(true);
            }
            keep
        });
        for (gvr, r) in wanted {
            if running.contains_key(&gvr) {
                continue;
            }
            tracing::debug!(resource = %gvr, "garbage collector: starting monitor");
            let (stop_tx, stop_rx) = watch::channel(false);
            let (synced_tx, synced_rx) = watch::channel(false);
            let task = MonitorTask {
                api: Api::all_with(self.client.clone(), &r.resource),
                resource: r.resource.clone(),
                events: self.events.clone(),
                synced: synced_tx,
                store: HashMap::new(),
            };
            tokio::spawn(task.run(stop_rx, self.stop.clone()));
            running.insert(
                gvr,
                Monitor {
                    resource: r.resource.clone(),
                    stop: stop_tx,
                    synced: synced_rx,
                },
            );
        }
    }

    /// Resolves once every monitor running now has synced.
    pub async fn wait_synced(&self) {
        let receivers: Vec<watch::Receiver<bool>> = self
            .running
            .lock()
            .values()
            .map(|m| m.synced.clone())
            .collect();
        for mut rx in receivers {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Stops every monitor.
    pub fn stop_all(&self) {
        for (_, m) in self.running.lock().drain() {
            m.stop.send_replace(true);
        }
    }
}

type Key = (String, String);

struct MonitorTask {
    api: Api<PartialObjectMeta<DynamicObject>>,
    resource: ApiResource,
    events: mpsc::UnboundedSender<Event>,
    synced: watch::Sender<bool>,
    /// Last metadata seen per object: the old state for updates and the objects to
    /// report deleted when a re-list no longer has them.
    store: HashMap<Key, Meta>,
}

impl MonitorTask {
    fn send(&self, event_type: EventType, obj: Meta, old: Option<Meta>) {
        let _ = self.events.send(Event {
            event_type,
            virtual_: false,
            api_version: self.resource.api_version.clone(),
            kind: self.resource.kind.clone(),
            obj,
            old,
        });
    }

    fn upsert(&mut self, m: Meta) {
        let key = (m.namespace.clone(), m.name.clone());
        match self.store.insert(key, m.clone()) {
            Some(old) if old.uid == m.uid => {
                if old != m {
                    self.send(EventType::Update, m, Some(old));
                }
            }
            Some(old) => {
                // the name was reused by a new object while the watch was down
                self.send(EventType::Delete, old, None);
                self.send(EventType::Add, m, None);
            }
            None => self.send(EventType::Add, m, None),
        }
    }

    fn delete(&mut self, m: Meta) {
        self.store.remove(&(m.namespace.clone(), m.name.clone()));
        self.send(EventType::Delete, m, None);
    }

    async fn run(mut self, mut own_stop: watch::Receiver<bool>, mut stop: watch::Receiver<bool>) {
        let config = watcher::Config::default().any_semantic();
        let mut stream = Box::pin(watcher::watcher(self.api.clone(), config).default_backoff());
        let mut relist: Option<HashMap<Key, Meta>> = None;
        let mut last_error: Option<String> = None;
        loop {
            let event = tokio::select! {
                e = stream.next() => e,
                _ = own_stop.wait_for(|s| *s) => return,
                _ = stop.wait_for(|s| *s) => return,
            };
            let Some(event) = event else { return };
            match event {
                Ok(WatchEvent::Init) => relist = Some(HashMap::new()),
                Ok(WatchEvent::InitApply(obj)) => {
                    let m = Meta::from_object_meta(&obj.metadata);
                    if let Some(buf) = relist.as_mut() {
                        buf.insert((m.namespace.clone(), m.name.clone()), m);
                    }
                }
                Ok(WatchEvent::InitDone) => {
                    let listed = relist.take().unwrap_or_default();
                    let gone: Vec<Meta> = self
                        .store
                        .iter()
                        .filter(|(k, _)| !listed.contains_key(*k))
                        .map(|(_, v)| v.clone())
                        .collect();
                    for m in gone {
                        self.delete(m);
                    }
                    for (_, m) in listed {
                        self.upsert(m);
                    }
                    self.synced.send_replace(true);
                    last_error = None;
                }
                Ok(WatchEvent::Apply(obj)) => self.upsert(Meta::from_object_meta(&obj.metadata)),
                Ok(WatchEvent::Delete(obj)) => self.delete(Meta::from_object_meta(&obj.metadata)),
                Err(e) => {
                    let msg = e.to_string();
                    if last_error.as_deref() != Some(msg.as_str()) {
                        tracing::warn!(resource = %self.resource.plural, group = %self.resource.group, error = %msg, "garbage collector: monitor's watch failed");
                        last_error = Some(msg);
                    }
                }
            }
        }
    }
}
