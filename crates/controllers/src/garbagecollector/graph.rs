//! The garbage collector's dependency graph (upstream `garbagecollector/graph.go` and
//! the event processing of `graph_builder.go`'s `processGraphChanges`): one node per
//! object uid with its owner references and the uids of its dependents; owners not yet
//! seen by a monitor are "virtual" nodes the collector verifies with a live GET.
//!
//! [`Graph::process`] applies one monitor (or virtual) event and returns what the
//! collector must do next — pure, so the upstream rules are unit-tested here.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// `metav1.FinalizerOrphanDependents`.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// `metav1.FinalizerDeleteDependents`.
pub const FINALIZER_DELETE_DEPENDENTS: &str = "foregroundDeletion";

/// An object's coordinates (upstream `objectReference`: owner-reference coordinates
/// plus namespace).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub namespace: String,
}

impl ObjectRef {
    /// The owner named by `r`, assumed in `namespace`.
    pub fn from_owner(r: &OwnerReference, namespace: &str) -> ObjectRef {
        ObjectRef {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
            namespace: namespace.to_string(),
        }
    }

    /// Whether `r` names these coordinates (apiVersion, kind, name, uid).
    pub fn matches_owner(&self, r: &OwnerReference) -> bool {
        self.api_version == r.api_version
            && self.kind == r.kind
            && self.name == r.name
            && self.uid == r.uid
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}/{}, namespace: {}, name: {}, uid: {}]",
            self.api_version, self.kind, self.namespace, self.name, self.uid
        )
    }
}

/// The metadata the graph needs of an object.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Meta {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub owners: Vec<OwnerReference>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
    pub resource_version: String,
}

impl Meta {
    pub fn from_object_meta(
        m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> Meta {
        Meta {
            uid: m.uid.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            namespace: m.namespace.clone().unwrap_or_default(),
            owners: m.owner_references.clone().unwrap_or_default(),
            deleting: m.deletion_timestamp.is_some(),
            finalizers: m.finalizers.clone().unwrap_or_default(),
            resource_version: m.resource_version.clone().unwrap_or_default(),
        }
    }

    fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Add,
    Update,
    Delete,
}

/// One change to apply to the graph.
#[derive(Debug, Clone)]
pub struct Event {
    pub event_type: EventType,
    /// Made by the collector after a live lookup found the object gone, not seen by
    /// a monitor.
    pub virtual_: bool,
    pub api_version: String,
    pub kind: String,
    pub obj: Meta,
    pub old: Option<Meta>,
}

impl Event {
    fn identity(&self) -> ObjectRef {
        ObjectRef {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.obj.name.clone(),
            uid: self.obj.uid.clone(),
            namespace: self.obj.namespace.clone(),
        }
    }
}

/// One object in the graph.
#[derive(Debug, Clone, Default)]
pub struct Node {
    pub identity: ObjectRef,
    pub owners: Vec<OwnerReference>,
    pub dependents: BTreeSet<String>,
    pub being_deleted: bool,
    pub deleting_dependents: bool,
    /// Created from a dependent's owner reference rather than observed.
    pub virtual_: bool,
    /// Seen by a monitor.
    pub observed: bool,
}

/// What the collector must do after an event.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    pub attempt_to_delete: Vec<String>,
    pub attempt_to_delete_rate_limited: Vec<String>,
    pub attempt_to_orphan: Vec<String>,
    pub absent: Vec<ObjectRef>,
    /// (dependent, owner uid): an ownerRef naming an owner in another namespace
    /// (upstream's `OwnerRefInvalidNamespace` warning).
    pub invalid_namespace: Vec<(ObjectRef, OwnerReference)>,
}

/// A dependent as the collector sees it when processing its owner.
#[derive(Debug, Clone)]
pub struct DependentView {
    pub identity: ObjectRef,
    pub deleting_dependents: bool,
    /// The dependent's reference to the owner blocks the owner's deletion.
    pub blocks_owner: bool,
}

/// A copy of a node and its dependents, taken under the graph lock.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub identity: ObjectRef,
    pub being_deleted: bool,
    pub deleting_dependents: bool,
    pub observed: bool,
    pub dependents: Vec<DependentView>,
}

impl NodeView {
    /// Dependents whose reference to this node has `blockOwnerDeletion: true`.
    pub fn blocking_dependents(&self) -> impl Iterator<Item = &DependentView> {
        self.dependents.iter().filter(|d| d.blocks_owner)
    }
}

/// uid → node.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

fn blocks(r: &OwnerReference) -> bool {
    r.block_owner_deletion == Some(true)
}

/// upstream `referencesDiffs`: (added, removed, changed (old, new)) by uid.
pub fn references_diffs(
    old: &[OwnerReference],
    new: &[OwnerReference],
) -> (
    Vec<OwnerReference>,
    Vec<OwnerReference>,
    Vec<(OwnerReference, OwnerReference)>,
) {
    let mut old_by_uid: BTreeMap<&str, &OwnerReference> =
        old.iter().map(|r| (r.uid.as_str(), r)).collect();
    let mut added = Vec::new();
    let mut changed = Vec::new();
    for r in new {
        match old_by_uid.remove(r.uid.as_str()) {
            Some(o) if o != r => changed.push((o.clone(), r.clone())),
            Some(_) => {}
            None => added.push(r.clone()),
        }
    }
    let removed = old_by_uid.into_values().cloned().collect();
    (added, removed, changed)
}

/// upstream `deletionStartsWithFinalizer`.
fn deletion_starts_with_finalizer(old: Option<&Meta>, new: &Meta, finalizer: &str) -> bool {
    if !new.deleting || !new.has_finalizer(finalizer) {
        return false;
    }
    match old {
        None => true,
        Some(o) => !o.deleting || !o.has_finalizer(finalizer),
    }
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A copy of `uid`'s node with its dependents.
    pub fn view(&self, uid: &str) -> Option<NodeView> {
        let n = self.nodes.get(uid)?;
        let dependents = n
            .dependents
            .iter()
            .filter_map(|d| self.nodes.get(d))
            .map(|d| DependentView {
                identity: d.identity.clone(),
                deleting_dependents: d.deleting_dependents,
                blocks_owner: d.owners.iter().any(|r| r.uid == uid && blocks(r)),
            })
            .collect();
        Some(NodeView {
            identity: n.identity.clone(),
            being_deleted: n.being_deleted,
            deleting_dependents: n.deleting_dependents,
            observed: n.observed,
            dependents,
        })
    }

    /// Applies one event (upstream `processGraphChanges`).
    pub fn process(&mut self, ev: &Event) -> Effects {
        let mut fx = Effects::default();
        let uid = ev.obj.uid.clone();
        let found = self.nodes.contains_key(&uid);
        if found && !ev.virtual_ && !self.nodes.get(&uid).is_some_and(|n| n.observed) {
            self.observe(&uid, ev.identity(), &mut fx);
        }
        match ev.event_type {
            EventType::Add | EventType::Update if !found => {
                let node = Node {
                    identity: ev.identity(),
                    owners: ev.obj.owners.clone(),
                    dependents: BTreeSet::new(),
                    being_deleted: ev.obj.deleting,
                    deleting_dependents: ev.obj.deleting
                        && ev.obj.has_finalizer(FINALIZER_DELETE_DEPENDENTS),
                    virtual_: false,
                    observed: true,
                };
                let owners = node.owners.clone();
                self.nodes.insert(uid.clone(), node);
                self.add_dependent_to_owners(&uid, &owners, &mut fx);
                self.process_transitions(ev.old.as_ref(), &ev.obj, &uid, &mut fx);
            }
            EventType::Add | EventType::Update => {
                if !ev.virtual_ {
                    if let Some(n) = self.nodes.get_mut(&uid) {
                        n.identity.api_version = ev.api_version.clone();
                        n.identity.kind = ev.kind.clone();
                    }
                }
                let old_owners = self
                    .nodes
                    .get(&uid)
                    .map(|n| n.owners.clone())
                    .unwrap_or_default();
                let (added, removed, changed) = references_diffs(&old_owners, &ev.obj.owners);
                if !added.is_empty() || !removed.is_empty() || !changed.is_empty() {
                    // owners waiting for their blocking dependents may now be unblocked
                    for r in &removed {
                        if blocks(r) && self.nodes.contains_key(&r.uid) {
                            fx.attempt_to_delete.push(r.uid.clone());
                        }
                    }
                    for (o, n) in &changed {
                        if blocks(o) && !blocks(n) && self.nodes.contains_key(&n.uid) {
                            fx.attempt_to_delete.push(n.uid.clone());
                        }
                    }
                    if let Some(n) = self.nodes.get_mut(&uid) {
                        n.owners = ev.obj.owners.clone();
                    }
                    self.add_dependent_to_owners(&uid, &added, &mut fx);
                    for r in &removed {
                        if let Some(owner) = self.nodes.get_mut(&r.uid) {
                            owner.dependents.remove(&uid);
                        }
                    }
                }
                if ev.obj.deleting {
                    if let Some(n) = self.nodes.get_mut(&uid) {
                        n.being_deleted = true;
                    }
                }
                self.process_transitions(ev.old.as_ref(), &ev.obj, &uid, &mut fx);
            }
            EventType::Delete => {
                if found {
                    self.process_delete(ev, &uid, &mut fx);
                }
            }
        }
        fx
    }

    /// A virtual node seen by a monitor for the first time: take the observed identity
    /// and re-check dependents that referenced it by other coordinates.
    fn observe(&mut self, uid: &str, observed: ObjectRef, fx: &mut Effects) {
        let Some(existing) = self.nodes.get(uid) else {
            return;
        };
        if existing.identity != observed {
            let deps: Vec<String> = existing.dependents.iter().cloned().collect();
            let (_, mismatched) = self.partition_dependents(&deps, &observed);
            for dep in mismatched {
                if !observed.namespace.is_empty() {
                    if let Some(d) = self.nodes.get(&dep) {
                        if d.identity.namespace != observed.namespace {
                            if let Some(r) = d.owners.iter().find(|r| r.uid == observed.uid) {
                                fx.invalid_namespace.push((d.identity.clone(), r.clone()));
                            }
                        }
                    }
                }
                fx.attempt_to_delete.push(dep);
            }
        }
        if let Some(n) = self.nodes.get_mut(uid) {
            n.identity = observed;
            n.observed = true;
        }
    }

    /// upstream `addDependentToOwners`: links `uid` under each owner, creating virtual
    /// owners (queued for verification) and flagging references whose coordinates
    /// contradict an observed owner.
    fn add_dependent_to_owners(&mut self, uid: &str, owners: &[OwnerReference], fx: &mut Effects) {
        let Some(dep_identity) = self.nodes.get(uid).map(|n| n.identity.clone()) else {
            return;
        };
        let mut potentially_invalid = false;
        for r in owners {
            match self.nodes.get_mut(&r.uid) {
                None => {
                    let mut owner = Node {
                        identity: ObjectRef::from_owner(r, &dep_identity.namespace),
                        virtual_: true,
                        ..Node::default()
                    };
                    owner.dependents.insert(uid.to_string());
                    self.nodes.insert(r.uid.clone(), owner);
                    fx.attempt_to_delete.push(r.uid.clone());
                }
                Some(owner) => {
                    owner.dependents.insert(uid.to_string());
                    if potentially_invalid {
                        continue;
                    }
                    let owner_namespaced = !owner.identity.namespace.is_empty();
                    if owner_namespaced && owner.identity.namespace != dep_identity.namespace {
                        if owner.observed {
                            fx.invalid_namespace.push((dep_identity.clone(), r.clone()));
                        }
                        potentially_invalid = true;
                    } else if !owner.identity.matches_owner(r)
                        || (!owner_namespaced
                            && owner.identity.namespace != dep_identity.namespace
                            && !owner.observed)
                    {
                        // coordinates that contradict the owner, or a virtual
                        // cluster-scoped owner that may really be a missing namespaced
                        // one: verify the dependent's references
                        potentially_invalid = true;
                    }
                }
            }
        }
        if potentially_invalid {
            fx.attempt_to_delete.push(uid.to_string());
        }
    }

    /// upstream `processTransitions`: deletion with the orphan finalizer queues the
    /// owner for orphaning; with foregroundDeletion it marks the node and queues its
    /// dependents and itself.
    fn process_transitions(&mut self, old: Option<&Meta>, new: &Meta, uid: &str, fx: &mut Effects) {
        if deletion_starts_with_finalizer(old, new, FINALIZER_ORPHAN) {
            fx.attempt_to_orphan.push(uid.to_string());
            return;
        }
        if deletion_starts_with_finalizer(old, new, FINALIZER_DELETE_DEPENDENTS) {
            if let Some(n) = self.nodes.get_mut(uid) {
                n.deleting_dependents = true;
                n.being_deleted = true;
                fx.attempt_to_delete.extend(n.dependents.iter().cloned());
            }
            fx.attempt_to_delete.push(uid.to_string());
        }
    }

    /// Dependents (by uid) whose reference to `owner.uid` matches `owner`'s
    /// coordinates, and those whose reference does not (or that live in another
    /// namespace than a namespaced owner). upstream `partitionDependents`.
    fn partition_dependents(
        &self,
        deps: &[String],
        owner: &ObjectRef,
    ) -> (Vec<String>, Vec<String>) {
        let mut matching = Vec::new();
        let mut nonmatching = Vec::new();
        for uid in deps {
            let Some(d) = self.nodes.get(uid) else {
                continue;
            };
            let (mut found_match, mut found_mismatch) = (false, false);
            if !owner.namespace.is_empty() && owner.namespace != d.identity.namespace {
                found_mismatch = true;
            } else {
                for r in d.owners.iter().filter(|r| r.uid == owner.uid) {
                    if owner.matches_owner(r) {
                        found_match = true;
                    } else {
                        found_mismatch = true;
                    }
                }
            }
            if found_match {
                matching.push(uid.clone());
            }
            if found_mismatch {
                nonmatching.push(uid.clone());
            }
        }
        (matching, nonmatching)
    }

    /// upstream `getAlternateOwnerIdentity`: another identity the non-matching
    /// dependents know the owner by — the first after `absent` in upstream's order,
    /// else the first.
    fn alternate_owner_identity(&self, deps: &[String], absent: &ObjectRef) -> Option<ObjectRef> {
        let absent_cluster_scoped = absent.namespace.is_empty();
        let mut seen: HashSet<ObjectRef> = HashSet::new();
        seen.insert(absent.clone());
        let key = |r: &ObjectRef| {
            (
                r.kind.clone(),
                r.api_version.clone(),
                r.namespace.clone(),
                r.name.clone(),
                r.uid.clone(),
            )
        };
        let mut first: Option<ObjectRef> = None;
        let mut first_after: Option<ObjectRef> = None;
        for uid in deps {
            let Some(d) = self.nodes.get(uid) else {
                continue;
            };
            for r in d.owners.iter().filter(|r| r.uid == absent.uid) {
                if absent.matches_owner(r)
                    && (absent.namespace == d.identity.namespace || absent_cluster_scoped)
                {
                    // the exact identity, or a namespaced reference to a cluster-scoped
                    // owner known not to exist
                    continue;
                }
                let candidate = ObjectRef::from_owner(r, &d.identity.namespace);
                if !seen.insert(candidate.clone()) {
                    continue;
                }
                if first.as_ref().is_none_or(|f| key(&candidate) < key(f)) {
                    first = Some(candidate.clone());
                }
                if key(&candidate) > key(absent)
                    && first_after
                        .as_ref()
                        .is_none_or(|f| key(&candidate) < key(f))
                {
                    first_after = Some(candidate);
                }
            }
        }
        first_after.or(first)
    }

    fn process_delete(&mut self, ev: &Event, uid: &str, fx: &mut Effects) {
        let Some(existing) = self.nodes.get(uid).cloned() else {
            return;
        };
        let mut remove = true;
        if ev.virtual_ {
            let deleted = ev.identity();
            let deps: Vec<String> = existing.dependents.iter().cloned().collect();
            if existing.virtual_ && !existing.observed {
                let (matching, nonmatching) = self.partition_dependents(&deps, &deleted);
                if !nonmatching.is_empty() {
                    remove = false;
                    if !matching.is_empty() {
                        fx.absent.push(deleted.clone());
                        fx.attempt_to_delete.extend(matching);
                    }
                    if existing.identity == deleted {
                        if let Some(alt) = self.alternate_owner_identity(&nonmatching, &deleted) {
                            if let Some(n) = self.nodes.get_mut(uid) {
                                n.identity = alt;
                            }
                            fx.attempt_to_delete_rate_limited.push(uid.to_string());
                        }
                    }
                }
            } else if existing.identity != deleted {
                remove = false;
                let (matching, _) = self.partition_dependents(&deps, &deleted);
                if !matching.is_empty() {
                    fx.absent.push(deleted);
                    fx.attempt_to_delete.extend(matching);
                }
            }
        }
        if !remove {
            return;
        }
        self.nodes.remove(uid);
        for r in &existing.owners {
            if let Some(owner) = self.nodes.get_mut(&r.uid) {
                owner.dependents.remove(uid);
            }
        }
        if !existing.dependents.is_empty() {
            fx.absent.push(ev.identity());
        }
        fx.attempt_to_delete
            .extend(existing.dependents.iter().cloned());
        for r in &existing.owners {
            if self
                .nodes
                .get(&r.uid)
                .is_some_and(|o| o.deleting_dependents)
            {
                fx.attempt_to_delete.push(r.uid.clone());
            }
        }
    }
}

/// Owners confirmed absent (upstream `ReferenceCache`, an LRU of 500): spares live
/// lookups for every dependent of a deleted owner.
#[derive(Debug)]
pub struct AbsentOwnerCache {
    set: HashSet<ObjectRef>,
    order: VecDeque<ObjectRef>,
    capacity: usize,
}

impl AbsentOwnerCache {
    pub fn new(capacity: usize) -> AbsentOwnerCache {
        AbsentOwnerCache {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    pub fn add(&mut self, r: ObjectRef) {
        if self.set.contains(&r) {
            return;
        }
        if self.order.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(r.clone());
        self.order.push_back(r);
    }

    pub fn has(&self, r: &ObjectRef) -> bool {
        self.set.contains(r)
    }
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
