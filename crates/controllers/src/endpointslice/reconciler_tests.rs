use super::*;
use serde_json::json;

fn svc(extra: serde_json::Value) -> Service {
    let mut v = json!({
        "metadata": {"name": "web", "namespace": "d", "uid": "svc-uid", "labels": {"team": "a"}},
        "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"],
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}
    });
    if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
        for (k, val) in extra {
            spec.insert(k.clone(), val.clone());
        }
    }
    serde_json::from_value(v).unwrap()
}

fn pod(name: &str, ip: &str, ready: bool) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "d", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap(),
    )
}

fn node(name: &str) -> Option<Arc<Node>> {
    Some(Arc::new(
        serde_json::from_value(json!({"metadata": {"name": name,
            "labels": {"topology.kubernetes.io/zone": "zone-a"}}}))
        .unwrap(),
    ))
}

fn named(mut s: EndpointSlice, name: &str) -> Arc<EndpointSlice> {
    s.metadata.name = Some(name.into());
    s.metadata.generate_name = None;
    Arc::new(s)
}

#[test]
fn new_service_gets_one_slice_with_ready_and_not_ready_endpoints() {
    let s = svc(json!({}));
    let pods = [pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", false)];
    let out = reconcile(&s, &pods, &[], node, 100);
    assert!(out.skipped.is_empty());
    assert_eq!(out.plans.len(), 1);
    let plan = &out.plans[0];
    assert_eq!(plan.create.len(), 1);
    let slice = &plan.create[0];
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(
        slice.labels().get(LABEL_SERVICE_NAME).map(String::as_str),
        Some("web")
    );
    assert_eq!(
        slice.labels().get(LABEL_MANAGED_BY).map(String::as_str),
        Some(CONTROLLER_NAME)
    );
    assert_eq!(slice.labels().get("team").map(String::as_str), Some("a"));
    let ports = slice.ports.clone().unwrap();
    assert_eq!(ports[0].port, Some(8080));
    assert_eq!(ports[0].name.as_deref(), Some("http"));
    assert_eq!(slice.endpoints.len(), 2);
    let a = &slice.endpoints[0];
    assert_eq!(a.addresses, vec!["10.0.0.1"]);
    assert_eq!(a.zone.as_deref(), Some("zone-a"));
    assert_eq!(a.conditions.as_ref().unwrap().ready, Some(true));
    let b = &slice.endpoints[1];
    assert_eq!(b.conditions.as_ref().unwrap().ready, Some(false));
    assert_eq!(b.conditions.as_ref().unwrap().serving, Some(false));
}

#[test]
fn unchanged_slices_are_left_alone_and_changes_update_in_place() {
    let s = svc(json!({}));
    let pods = [pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", true)];
    let first = reconcile(&s, &pods, &[], node, 100);
    let existing = named(first.plans[0].create[0].clone(), "web-abc");
    let again = reconcile(&s, &pods, std::slice::from_ref(&existing), node, 100);
    let p = &again.plans[0];
    assert!(p.create.is_empty() && p.update.is_empty() && p.delete.is_empty());
    // b becomes not ready; a is gone.
    let pods2 = [pod("b", "10.0.0.2", false)];
    let changed = reconcile(&s, &pods2, std::slice::from_ref(&existing), node, 100);
    let p = &changed.plans[0];
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.update[0].name_any(), "web-abc");
    assert_eq!(p.update[0].endpoints.len(), 1);
    assert_eq!(
        p.update[0].endpoints[0].conditions.as_ref().unwrap().ready,
        Some(false)
    );
}

#[test]
fn no_pods_gives_a_placeholder_kept_across_syncs() {
    let s = svc(json!({}));
    let out = reconcile(&s, &[], &[], node, 100);
    let placeholder = out.plans[0].create[0].clone();
    assert!(placeholder.endpoints.is_empty());
    let existing = named(placeholder, "web-xyz");
    let again = reconcile(&s, &[], &[existing], node, 100);
    let p = &again.plans[0];
    assert!(p.create.is_empty() && p.update.is_empty() && p.delete.is_empty());
}

#[test]
fn splits_at_max_endpoints_and_reuses_deleted_slices() {
    let s = svc(json!({}));
    let pods: Vec<_> = (0..5)
        .map(|i| pod(&format!("p{i}"), &format!("10.0.0.{i}"), true))
        .collect();
    let out = reconcile(&s, &pods, &[], node, 2);
    assert_eq!(out.plans[0].create.len(), 3);
    // A slice that no longer has endpoints is reused for a creation.
    let stale = named(out.plans[0].create[0].clone(), "web-old");
    let mut ported = svc(json!({"ports": [{"name": "x", "port": 81, "targetPort": 9000}]}));
    ported.metadata.uid = Some("svc-uid".into());
    let mut plan = reconcile(&ported, &pods[..1], &[stale], node, 2)
        .plans
        .remove(0);
    assert_eq!((plan.create.len(), plan.delete.len()), (1, 1));
    reuse_deleted_slices(&mut plan, &ported);
    assert_eq!(
        (plan.create.len(), plan.update.len(), plan.delete.len()),
        (0, 1, 0)
    );
    assert_eq!(plan.update[0].name_any(), "web-old");
    assert_eq!(plan.update[0].ports.clone().unwrap()[0].port, Some(9000));
}

#[test]
fn missing_node_skips_pod_unless_publishing_not_ready() {
    let s = svc(json!({}));
    let pods = [pod("a", "10.0.0.1", true)];
    let out = reconcile(&s, &pods, &[], |_| None, 100);
    assert_eq!(out.skipped.len(), 1);
    assert!(out.plans[0].create[0].endpoints.is_empty());
    let s = svc(json!({"publishNotReadyAddresses": true}));
    let out = reconcile(&s, &pods, &[], |_| None, 100);
    assert!(out.skipped.is_empty());
    assert_eq!(out.plans[0].create[0].endpoints.len(), 1);
    assert_eq!(out.plans[0].create[0].endpoints[0].zone, None);
}

#[test]
fn foreign_slices_and_families_are_deleted() {
    let s = svc(json!({}));
    let mut v6 = new_slice(&s, &[], "IPv6");
    v6.metadata.name = Some("web-v6".into());
    let mut other = new_slice(&s, &[], "IPv4");
    other.metadata.name = Some("web-other".into());
    other.metadata.owner_references = None;
    other.endpoints = vec![Endpoint {
        addresses: vec!["10.9.9.9".into()],
        ..Endpoint::default()
    }];
    let out = reconcile(&s, &[], &[Arc::new(v6), Arc::new(other)], node, 100);
    let deleted: Vec<String> = out
        .plans
        .iter()
        .flat_map(|p| p.delete.iter().map(|d| d.name_any()))
        .collect();
    assert_eq!(deleted, vec!["web-other", "web-v6"]);
}

#[test]
fn prefer_close_sets_zone_hints() {
    let s = svc(json!({"trafficDistribution": "PreferClose"}));
    let out = reconcile(&s, &[pod("a", "10.0.0.1", true)], &[], node, 100);
    let hints = out.plans[0].create[0].endpoints[0].hints.clone().unwrap();
    assert_eq!(hints.for_zones.unwrap()[0].name, "zone-a");
}

#[test]
fn headless_and_address_types() {
    let s = svc(json!({"clusterIP": "None", "ipFamilies": null}));
    assert_eq!(address_types(&s).len(), 2);
    let out = reconcile(&s, &[], &[], node, 100);
    assert_eq!(
        out.plans[0].create[0]
            .labels()
            .get(HEADLESS_LABEL)
            .map(String::as_str),
        Some("")
    );
}
