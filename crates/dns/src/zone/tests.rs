//! Zone bookkeeping: contributions replaced on change, shared names counted, slices
//! moving between services, lists replacing everything.
#![allow(clippy::unwrap_used)]

use super::*;

fn zone() -> Zone {
    let z = Zone::new(&Name::from_ascii("cluster.local").unwrap(), 30, true);
    z.set_synced(true);
    z
}

fn key(s: &str) -> Box<[u8]> {
    Name::from_ascii(s).unwrap().wire().into()
}

fn exists(z: &Zone, name: &str) -> bool {
    !matches!(z.read().find(&key(name)).0, Find::NxDomain | Find::Outside)
}

fn svc(ns: &str, name: &str, ip: &str) -> ServiceInfo {
    ServiceInfo {
        namespace: ns.into(),
        name: name.into(),
        kind: ServiceKind::ClusterIp(vec![ip.parse().unwrap()]),
        ports: vec![],
        publish_not_ready: false,
    }
}

fn headless(ns: &str, name: &str) -> ServiceInfo {
    ServiceInfo {
        kind: ServiceKind::Headless,
        ..svc(ns, name, "10.0.0.1")
    }
}

fn slice(name: &str, service: &str, ips: &[&str]) -> SliceInfo {
    SliceInfo {
        namespace: "ns".into(),
        name: name.into(),
        service: service.into(),
        ports: vec![],
        endpoints: ips
            .iter()
            .map(|ip| EndpointInfo {
                addresses: vec![ip.parse().unwrap()],
                hostname: None,
                ready: true,
            })
            .collect(),
    }
}

fn a_records(z: &Zone, name: &str) -> Vec<String> {
    let view = z.read();
    let mut v: Vec<String> = match view.find(&key(name)).0 {
        Find::Records(rrs) => rrs
            .iter()
            .filter_map(|r| match r.data {
                RData::A(ip) => Some(ip.to_string()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    };
    v.sort();
    v
}

#[test]
fn namespace_names_live_while_a_service_does() {
    let z = zone();
    let base = z.name_count();
    z.upsert_service(svc("a", "one", "10.96.0.1"));
    z.upsert_service(svc("a", "two", "10.96.0.2"));
    assert!(exists(&z, "a.svc.cluster.local"));
    z.delete_service("a", "one");
    assert!(exists(&z, "a.svc.cluster.local"));
    assert!(!exists(&z, "one.a.svc.cluster.local"));
    assert!(matches!(
        z.read().find(&key("1.0.96.10.in-addr.arpa")).0,
        Find::Outside
    ));
    z.delete_service("a", "two");
    assert!(!exists(&z, "a.svc.cluster.local"));
    assert_eq!(z.name_count(), base, "every name is gone with its services");
    assert_eq!(z.service_count(), 0);
}

#[test]
fn changes_replace_a_service_records() {
    let z = zone();
    z.upsert_service(svc("ns", "web", "10.96.0.1"));
    z.upsert_service(svc("ns", "web", "10.96.0.2"));
    assert_eq!(a_records(&z, "web.ns.svc.cluster.local"), ["10.96.0.2"]);
    assert!(matches!(
        z.read().find(&key("1.0.96.10.in-addr.arpa")).0,
        Find::Outside
    ));
    // The same IP on two headless services' endpoints: one PTR each, each removed
    // with its own service.
    z.upsert_service(headless("ns", "h1"));
    z.upsert_service(headless("ns", "h2"));
    z.upsert_slice(slice("h1-a", "h1", &["10.1.0.1"]));
    z.upsert_slice(slice("h2-a", "h2", &["10.1.0.1"]));
    let ptrs = |z: &Zone| match z.read().find(&key("1.0.1.10.in-addr.arpa")).0 {
        Find::Records(r) => r.len(),
        _ => 0,
    };
    assert_eq!(ptrs(&z), 2);
    z.delete_service("ns", "h1");
    assert_eq!(ptrs(&z), 1);
}

#[test]
fn slices_before_services_and_relabelled_slices() {
    let z = zone();
    // The slice arrives first: no records until the service does.
    z.upsert_slice(slice("h-a", "h", &["10.1.0.1", "10.1.0.2"]));
    assert!(!exists(&z, "h.ns.svc.cluster.local"));
    z.upsert_service(headless("ns", "h"));
    assert_eq!(
        a_records(&z, "h.ns.svc.cluster.local"),
        ["10.1.0.1", "10.1.0.2"]
    );
    z.upsert_slice(slice("h-b", "h", &["10.1.0.3"]));
    assert_eq!(a_records(&z, "h.ns.svc.cluster.local").len(), 3);
    // The slice moves to another service.
    z.upsert_service(headless("ns", "g"));
    z.upsert_slice(slice("h-a", "g", &["10.1.0.1"]));
    assert_eq!(a_records(&z, "h.ns.svc.cluster.local"), ["10.1.0.3"]);
    assert_eq!(a_records(&z, "g.ns.svc.cluster.local"), ["10.1.0.1"]);
    z.delete_slice("ns", "h-b");
    assert!(!exists(&z, "h.ns.svc.cluster.local"), "no endpoints left");
}

#[test]
fn lists_replace_everything() {
    let z = zone();
    z.upsert_service(svc("ns", "old", "10.96.0.1"));
    z.upsert_service(headless("ns", "h"));
    z.upsert_slice(slice("h-old", "h", &["10.1.0.9"]));
    z.replace_services(vec![svc("ns", "new", "10.96.0.2"), headless("ns", "h")]);
    z.replace_slices(vec![slice("h-new", "h", &["10.1.0.1"])]);
    assert!(!exists(&z, "old.ns.svc.cluster.local"));
    assert_eq!(a_records(&z, "new.ns.svc.cluster.local"), ["10.96.0.2"]);
    assert_eq!(a_records(&z, "h.ns.svc.cluster.local"), ["10.1.0.1"]);
}

#[test]
fn serial_moves_on_change() {
    let z = zone();
    let serial = |z: &Zone| match z.read().find(&key("cluster.local")).0 {
        Find::Records(rrs) => rrs
            .iter()
            .find_map(|r| match r.data {
                RData::Soa { serial, .. } => Some(serial),
                _ => None,
            })
            .unwrap(),
        _ => 0,
    };
    let before = serial(&z);
    z.upsert_service(svc("ns", "web", "10.96.0.1"));
    assert!(serial(&z) > before);
}
