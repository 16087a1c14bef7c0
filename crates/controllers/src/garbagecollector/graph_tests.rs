//! Unit tests of the dependency graph's event processing (upstream
//! `graph_builder_test.go`'s cases that need no API server).

use super::*;

fn owner_ref(kind: &str, name: &str, uid: &str, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        block_owner_deletion: block.then_some(true),
        controller: None,
    }
}

fn meta(uid: &str, owners: Vec<OwnerReference>) -> Meta {
    Meta {
        uid: uid.into(),
        name: format!("n-{uid}"),
        namespace: "default".into(),
        owners,
        ..Meta::default()
    }
}

fn ev(t: EventType, kind: &str, obj: Meta, old: Option<Meta>) -> Event {
    Event {
        event_type: t,
        virtual_: false,
        api_version: "v1".into(),
        kind: kind.into(),
        obj,
        old,
    }
}

#[test]
fn virtual_owner_is_created_and_verified() {
    let mut g = Graph::default();
    let fx = g.process(&ev(
        EventType::Add,
        "Pod",
        meta(
            "p1",
            vec![owner_ref("ReplicationController", "rc", "o1", true)],
        ),
        None,
    ));
    assert_eq!(fx.attempt_to_delete, vec!["o1".to_string()]);
    let o = g.get("o1").unwrap();
    assert!(o.virtual_ && !o.observed);
    assert_eq!(o.identity.namespace, "default");
    assert!(o.dependents.contains("p1"));
    // the owner is then observed: no work, node becomes observed
    let mut m = meta("o1", vec![]);
    m.name = "rc".into();
    let fx = g.process(&ev(EventType::Add, "ReplicationController", m, None));
    assert_eq!(fx, Effects::default());
    assert!(g.get("o1").unwrap().observed);
}

#[test]
fn owner_deletion_queues_dependents_and_records_absence() {
    let mut g = Graph::default();
    let mut owner = meta("o1", vec![]);
    owner.name = "rc".into();
    g.process(&ev(
        EventType::Add,
        "ReplicationController",
        owner.clone(),
        None,
    ));
    g.process(&ev(
        EventType::Add,
        "Pod",
        meta(
            "p1",
            vec![owner_ref("ReplicationController", "rc", "o1", true)],
        ),
        None,
    ));
    let fx = g.process(&ev(EventType::Delete, "ReplicationController", owner, None));
    assert_eq!(fx.attempt_to_delete, vec!["p1".to_string()]);
    assert_eq!(fx.absent.len(), 1);
    assert!(g.get("o1").is_none());
}

#[test]
fn foreground_and_orphan_transitions() {
    let mut g = Graph::default();
    let mut owner = meta("o1", vec![]);
    owner.name = "rc".into();
    g.process(&ev(
        EventType::Add,
        "ReplicationController",
        owner.clone(),
        None,
    ));
    g.process(&ev(
        EventType::Add,
        "Pod",
        meta(
            "p1",
            vec![owner_ref("ReplicationController", "rc", "o1", true)],
        ),
        None,
    ));
    let mut deleting = owner.clone();
    deleting.deleting = true;
    deleting.finalizers = vec![FINALIZER_DELETE_DEPENDENTS.into()];
    let fx = g.process(&ev(
        EventType::Update,
        "ReplicationController",
        deleting.clone(),
        Some(owner.clone()),
    ));
    assert_eq!(
        fx.attempt_to_delete,
        vec!["p1".to_string(), "o1".to_string()]
    );
    let v = g.view("o1").unwrap();
    assert!(v.deleting_dependents);
    assert_eq!(v.blocking_dependents().count(), 1);
    // the same state again is no new transition
    let fx = g.process(&ev(
        EventType::Update,
        "ReplicationController",
        deleting.clone(),
        Some(deleting),
    ));
    assert!(fx.attempt_to_delete.is_empty());
    // the dependent goes: the owner is queued to drop its finalizer
    let fx = g.process(&ev(
        EventType::Delete,
        "Pod",
        meta(
            "p1",
            vec![owner_ref("ReplicationController", "rc", "o1", true)],
        ),
        None,
    ));
    assert_eq!(fx.attempt_to_delete, vec!["o1".to_string()]);

    let mut orphaning = owner.clone();
    orphaning.deleting = true;
    orphaning.finalizers = vec![FINALIZER_ORPHAN.into()];
    let fx = g.process(&ev(
        EventType::Update,
        "ReplicationController",
        orphaning,
        Some(owner),
    ));
    assert_eq!(fx.attempt_to_orphan, vec!["o1".to_string()]);
}

#[test]
fn removing_a_blocking_reference_unblocks_the_owner() {
    let mut g = Graph::default();
    let mut owner = meta("o1", vec![]);
    owner.name = "rc".into();
    g.process(&ev(EventType::Add, "ReplicationController", owner, None));
    let with = meta(
        "p1",
        vec![owner_ref("ReplicationController", "rc", "o1", true)],
    );
    g.process(&ev(EventType::Add, "Pod", with.clone(), None));
    let fx = g.process(&ev(
        EventType::Update,
        "Pod",
        meta("p1", vec![]),
        Some(with),
    ));
    assert_eq!(fx.attempt_to_delete, vec!["o1".to_string()]);
    assert!(g.get("o1").unwrap().dependents.is_empty());
}

#[test]
fn reference_diffs() {
    let a = owner_ref("A", "a", "1", false);
    let b = owner_ref("B", "b", "2", true);
    let b2 = owner_ref("B", "b", "2", false);
    let c = owner_ref("C", "c", "3", false);
    let (added, removed, changed) =
        references_diffs(&[a.clone(), b.clone()], &[b2.clone(), c.clone()]);
    assert_eq!(added, vec![c]);
    assert_eq!(removed, vec![a]);
    assert_eq!(changed, vec![(b, b2)]);
}

#[test]
fn virtual_delete_of_a_virtual_owner_removes_it() {
    let mut g = Graph::default();
    g.process(&ev(
        EventType::Add,
        "ConfigMap",
        meta("c1", vec![owner_ref("ConfigMap", "gone", "o9", false)]),
        None,
    ));
    let mut gone = meta("o9", vec![]);
    gone.name = "gone".into();
    let mut e = ev(EventType::Delete, "ConfigMap", gone, None);
    e.virtual_ = true;
    let fx = g.process(&e);
    assert_eq!(fx.attempt_to_delete, vec!["c1".to_string()]);
    assert!(g.get("o9").is_none());
}

#[test]
fn namespace_mismatch_with_an_observed_owner_is_reported() {
    let mut g = Graph::default();
    let mut owner = meta("o1", vec![]);
    owner.name = "rc".into();
    owner.namespace = "other".into();
    g.process(&ev(EventType::Add, "ReplicationController", owner, None));
    let fx = g.process(&ev(
        EventType::Add,
        "Pod",
        meta(
            "p1",
            vec![owner_ref("ReplicationController", "rc", "o1", false)],
        ),
        None,
    ));
    assert_eq!(fx.invalid_namespace.len(), 1);
    assert_eq!(fx.attempt_to_delete, vec!["p1".to_string()]);
}

#[test]
fn absent_cache_is_bounded() {
    let mut c = AbsentOwnerCache::new(2);
    let r = |u: &str| ObjectRef {
        uid: u.into(),
        ..ObjectRef::default()
    };
    c.add(r("a"));
    c.add(r("b"));
    c.add(r("c"));
    assert!(!c.has(&r("a")) && c.has(&r("b")) && c.has(&r("c")));
}
