//! Shared informers (client-go `tools/cache` SharedIndexInformer and
//! `informers.SharedInformerFactory`): one list+watch per resource for the whole
//! controller-manager, a local store every controller reads, and event handlers that
//! see the old object on updates and the last state on deletes.
//!
//! The list/watch/re-list loop (bookmarks, 410 Gone, backoff) is kube-runtime's
//! `watcher`; this module adds what kube-runtime's reflector lacks for porting
//! upstream controllers: old objects on update, deletes synthesised for objects that
//! vanished across a re-list, a namespace-ordered store, and `managedFields` dropped
//! (kube-controller-manager's informer transform) to keep memory down.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::Arc;

use futures_util::StreamExt;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource, ResourceExt};
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// What a handler is told.
#[derive(Debug)]
pub enum Notification<K> {
    /// A new object (also every object already in the store when a handler is added).
    Add(Arc<K>),
    /// A changed object.
    Update { old: Arc<K>, new: Arc<K> },
    /// The object's last known state (from the watch, or from the store when it
    /// vanished across a re-list).
    Delete(Arc<K>),
}

type Handler<K> = Arc<dyn Fn(&Notification<K>) + Send + Sync>;
type Key = (String, String);
type Starter = Box<dyn FnOnce(watch::Receiver<bool>) + Send>;

/// Objects of one kind, by namespace then name (cluster-scoped: namespace "").
#[derive(Debug)]
pub struct Store<K> {
    items: Arc<RwLock<BTreeMap<Key, Arc<K>>>>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Store {
            items: self.items.clone(),
        }
    }
}

impl<K> Store<K> {
    /// The object `namespace/name` (`namespace` "" for cluster-scoped kinds).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.items
            .read()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// The object named by a work-queue key (`namespace/name` or `name`).
    pub fn get_key(&self, key: &str) -> Option<Arc<K>> {
        let (ns, name) = split_key(key);
        self.get(ns, name)
    }

    /// Every object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.items.read().values().cloned().collect()
    }

    /// Every object in `namespace`.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let start = (namespace.to_string(), String::new());
        self.items
            .read()
            .range(start..)
            .take_while(|((ns, _), _)| ns == namespace)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every object matching `keep`.
    pub fn filter(&self, mut keep: impl FnMut(&K) -> bool) -> Vec<Arc<K>> {
        self.items
            .read()
            .values()
            .filter(|o| keep(o))
            .cloned()
            .collect()
    }

    /// How many objects.
    pub fn len(&self) -> usize {
        self.items.read().len()
    }

    /// No objects.
    pub fn is_empty(&self) -> bool {
        self.items.read().is_empty()
    }
}

/// `namespace/name` (or `name` for cluster-scoped objects): client-go's
/// `MetaNamespaceKeyFunc`, the work-queue key every controller uses.
pub fn key_of<K: Resource>(obj: &K) -> String {
    match obj.meta().namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", obj.name_any()),
        _ => obj.name_any(),
    }
}

/// Splits a work-queue key into (namespace, name).
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

fn store_key<K: Resource>(obj: &K) -> Key {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

/// One resource's informer.
pub struct SharedInformer<K> {
    api: Api<K>,
    store: Store<K>,
    handlers: RwLock<Vec<Handler<K>>>,
    synced: watch::Sender<bool>,
}

impl<K> Debug for SharedInformer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedInformer")
            .field("objects", &self.store.len())
            .finish_non_exhaustive()
    }
}

impl<K> SharedInformer<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// An informer over `api` (usually `Api::all`).
    pub fn new(api: Api<K>) -> SharedInformer<K> {
        SharedInformer {
            api,
            store: Store {
                items: Arc::default(),
            },
            handlers: RwLock::default(),
            synced: watch::channel(false).0,
        }
    }

    /// The local store.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Registers a handler; it is first told of every object already in the store.
    pub fn add_handler(&self, handler: impl Fn(&Notification<K>) + Send + Sync + 'static) {
        let handler: Handler<K> = Arc::new(handler);
        // Holding the handler list's write lock while replaying keeps the replay and
        // the live stream from interleaving for this handler.
        let mut handlers = self.handlers.write();
        for obj in self.store.list() {
            handler(&Notification::Add(obj));
        }
        handlers.push(handler);
    }

    /// Resolves once the first list has been applied to the store.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Whether the first list has been applied.
    pub fn has_synced(&self) -> bool {
        *self.synced.borrow()
    }

    fn notify(&self, n: Notification<K>) {
        for h in self.handlers.read().iter() {
            h(&n);
        }
    }

    fn upsert(&self, mut obj: K) {
        obj.meta_mut().managed_fields = None;
        let obj = Arc::new(obj);
        let old = self
            .store
            .items
            .write()
            .insert(store_key(&*obj), obj.clone());
        match old {
            Some(old) => self.notify(Notification::Update { old, new: obj }),
            None => self.notify(Notification::Add(obj)),
        }
    }

    fn delete(&self, mut obj: K) {
        obj.meta_mut().managed_fields = None;
        self.store.items.write().remove(&store_key(&obj));
        self.notify(Notification::Delete(Arc::new(obj)));
    }

    /// Lists and watches until `stop`; re-lists (with backoff) whenever the watch
    /// cannot continue.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let config = watcher::Config::default().any_semantic();
        let mut stream = Box::pin(watcher::watcher(self.api.clone(), config).default_backoff());
        let mut relist: Option<BTreeMap<Key, K>> = None;
        loop {
            let event = tokio::select! {
                e = stream.next() => e,
                _ = stop.wait_for(|s| *s) => return,
            };
            let Some(event) = event else { return };
            match event {
                Ok(Event::Init) => relist = Some(BTreeMap::new()),
                Ok(Event::InitApply(obj)) => {
                    if let Some(buf) = relist.as_mut() {
                        buf.insert(store_key(&obj), obj);
                    }
                }
                Ok(Event::InitDone) => {
                    let listed = relist.take().unwrap_or_default();
                    let gone: Vec<Arc<K>> = self
                        .store
                        .items
                        .read()
                        .iter()
                        .filter(|(k, _)| !listed.contains_key(*k))
                        .map(|(_, v)| v.clone())
                        .collect();
                    for obj in gone {
                        self.delete((*obj).clone());
                    }
                    for (key, obj) in listed {
                        let same = self.store.items.read().get(&key).is_some_and(|old| {
                            old.meta().resource_version == obj.meta().resource_version
                        });
                        if !same {
                            self.upsert(obj);
                        }
                    }
                    self.synced.send_replace(true);
                }
                Ok(Event::Apply(obj)) => self.upsert(obj),
                Ok(Event::Delete(obj)) => self.delete(obj),
                Err(e) => {
                    tracing::warn!(error = %e, "informer: watch failed");
                }
            }
        }
    }
}

/// client-go's SharedInformerFactory: one informer per kind, started together.
pub struct Informers {
    client: kube::Client,
    map: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    starters: Mutex<Vec<Starter>>,
    started: Mutex<Option<watch::Receiver<bool>>>,
    synced: Mutex<Vec<watch::Receiver<bool>>>,
}

impl Debug for Informers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informers")
            .field("kinds", &self.map.lock().len())
            .finish_non_exhaustive()
    }
}

impl Informers {
    /// A factory whose informers list and watch with `client`.
    pub fn new(client: kube::Client) -> Informers {
        Informers {
            client,
            map: Mutex::default(),
            starters: Mutex::default(),
            started: Mutex::default(),
            synced: Mutex::default(),
        }
    }

    /// The informer for `K` (created on first use; started at once if the factory
    /// already runs).
    pub fn get<K>(&self) -> Arc<SharedInformer<K>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let mut map = self.map.lock();
        if let Some(existing) = map.get(&TypeId::of::<K>()) {
            if let Ok(inf) = existing.clone().downcast::<SharedInformer<K>>() {
                return inf;
            }
        }
        let inf = Arc::new(SharedInformer::new(Api::<K>::all(self.client.clone())));
        map.insert(TypeId::of::<K>(), inf.clone());
        self.synced.lock().push(inf.synced.subscribe());
        let run = {
            let inf = inf.clone();
            move |stop: watch::Receiver<bool>| {
                tokio::spawn(inf.run(stop));
            }
        };
        match self.started.lock().clone() {
            Some(stop) => run(stop),
            None => self.starters.lock().push(Box::new(run)),
        }
        inf
    }

    /// The store for `K` (creating its informer).
    pub fn store<K>(&self) -> Store<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        self.get::<K>().store()
    }

    /// Starts every informer created so far (and later ones as they are created).
    pub fn start(&self, stop: watch::Receiver<bool>) {
        *self.started.lock() = Some(stop.clone());
        for run in self.starters.lock().drain(..) {
            run(stop.clone());
        }
    }

    /// Resolves once every informer created so far has synced.
    pub async fn wait_for_cache_sync(&self) {
        let receivers: Vec<_> = self.synced.lock().clone();
        for mut rx in receivers {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}
