use super::*;
use serde_json::json;

fn cluster_role(name: &str, rules: Value) -> Value {
    json!({"kind": "ClusterRole", "metadata": {"name": name}, "rules": rules})
}

fn role(ns: &str, name: &str, rules: Value) -> Value {
    json!({"kind": "Role", "metadata": {"name": name, "namespace": ns}, "rules": rules})
}

fn crb(name: &str, role: &str, subjects: Value) -> Value {
    json!({"metadata": {"name": name},
           "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
           "subjects": subjects})
}

fn rb(ns: &str, name: &str, kind: &str, role: &str, subjects: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": ns},
           "roleRef": {"apiGroup": RBAC_GROUP, "kind": kind, "name": role},
           "subjects": subjects})
}

fn get(user: &UserInfo, resource: &str, ns: &str) -> Attributes {
    Attributes::resource(user.clone(), "get", "", resource, ns, "")
}

fn pod_reader() -> Value {
    cluster_role(
        "pod-reader",
        json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]),
    )
}

#[test]
fn cluster_role_binding_allows_everywhere_with_upstream_reason() {
    let rbac = Rbac::new();
    rbac.upsert(RbacKind::ClusterRole, &pod_reader());
    rbac.upsert(
        RbacKind::ClusterRoleBinding,
        &crb(
            "readers",
            "pod-reader",
            json!([{"kind": "User", "name": "alice"}]),
        ),
    );
    let alice = UserInfo::new("alice", &["system:authenticated"]);
    let d = rbac.authorize(&get(&alice, "pods", "any"));
    assert_eq!(
        d,
        Decision::allow(
            r#"RBAC: allowed by ClusterRoleBinding "readers" of ClusterRole "pod-reader" to User "alice""#
        )
    );
    assert!(rbac.authorize(&get(&alice, "pods", "")).is_allowed());
    assert_eq!(
        rbac.authorize(&get(&alice, "secrets", "any")),
        Decision::no_opinion("")
    );
    let bob = UserInfo::new("bob", &["system:authenticated"]);
    assert!(!rbac.authorize(&get(&bob, "pods", "any")).is_allowed());
}

#[test]
fn role_binding_to_cluster_role_applies_only_in_its_namespace() {
    let rbac = Rbac::new();
    rbac.upsert(RbacKind::ClusterRole, &pod_reader());
    rbac.upsert(
        RbacKind::RoleBinding,
        &rb(
            "team-a",
            "rb",
            "ClusterRole",
            "pod-reader",
            json!([{"kind": "Group", "name": "devs"}]),
        ),
    );
    let dev = UserInfo::new("carol", &["devs"]);
    assert_eq!(
        rbac.authorize(&get(&dev, "pods", "team-a")),
        Decision::allow(
            r#"RBAC: allowed by RoleBinding "rb/team-a" of ClusterRole "pod-reader" to Group "devs""#
        )
    );
    assert!(!rbac.authorize(&get(&dev, "pods", "team-b")).is_allowed());
    assert!(!rbac.authorize(&get(&dev, "pods", "")).is_allowed());
}

#[test]
fn service_account_subjects_default_to_binding_namespace() {
    let rbac = Rbac::new();
    rbac.upsert(
        RbacKind::Role,
        &role(
            "ns1",
            "cm",
            json!([{"verbs": ["*"], "apiGroups": [""], "resources": ["configmaps"]}]),
        ),
    );
    rbac.upsert(
        RbacKind::RoleBinding,
        &rb(
            "ns1",
            "sa",
            "Role",
            "cm",
            json!([{"kind": "ServiceAccount", "name": "builder"}]),
        ),
    );
    let sa = UserInfo::service_account("ns1", "builder");
    assert_eq!(
        rbac.authorize(&get(&sa, "configmaps", "ns1")),
        Decision::allow(
            r#"RBAC: allowed by RoleBinding "sa/ns1" of Role "cm" to ServiceAccount "builder/ns1""#
        )
    );
    let other = UserInfo::service_account("ns2", "builder");
    assert!(!rbac
        .authorize(&get(&other, "configmaps", "ns1"))
        .is_allowed());

    // a ClusterRoleBinding to a namespace-less ServiceAccount subject applies to no one
    rbac.upsert(RbacKind::ClusterRole, &pod_reader());
    rbac.upsert(
        RbacKind::ClusterRoleBinding,
        &crb(
            "bad",
            "pod-reader",
            json!([{"kind": "ServiceAccount", "name": "builder"}]),
        ),
    );
    assert!(!rbac.authorize(&get(&sa, "pods", "ns1")).is_allowed());
    // a User subject with the service account's user name matches it
    rbac.upsert(
        RbacKind::ClusterRoleBinding,
        &crb(
            "by-name",
            "pod-reader",
            json!([{"kind": "User", "name": "system:serviceaccount:ns1:builder"}]),
        ),
    );
    assert!(rbac.authorize(&get(&sa, "pods", "ns1")).is_allowed());
    // and so does the group of all service accounts of a namespace
    rbac.remove(RbacKind::ClusterRoleBinding, "", "by-name");
    assert!(!rbac.authorize(&get(&sa, "pods", "ns1")).is_allowed());
    rbac.upsert(
        RbacKind::ClusterRoleBinding,
        &crb(
            "ns-sas",
            "pod-reader",
            json!([{"kind": "Group", "name": "system:serviceaccounts:ns1"}]),
        ),
    );
    assert!(rbac.authorize(&get(&sa, "pods", "ns1")).is_allowed());
}

#[test]
fn missing_roles_are_ignored_and_reported() {
    let rbac = Rbac::new();
    rbac.upsert(
        RbacKind::ClusterRoleBinding,
        &crb(
            "dangling",
            "nope",
            json!([{"kind": "User", "name": "dave"}]),
        ),
    );
    rbac.upsert(
        RbacKind::RoleBinding,
        &rb(
            "ns",
            "dangling-role",
            "Role",
            "gone",
            json!([{"kind": "User", "name": "dave"}]),
        ),
    );
    let dave = UserInfo::new("dave", &[]);
    assert_eq!(
        rbac.authorize(&get(&dave, "pods", "")),
        Decision::no_opinion(r#"RBAC: clusterrole.rbac.authorization.k8s.io "nope" not found"#)
    );
    assert_eq!(
        rbac.authorize(&get(&dave, "pods", "ns")),
        Decision::no_opinion(
            r#"RBAC: [clusterrole.rbac.authorization.k8s.io "nope" not found, role.rbac.authorization.k8s.io "gone" not found]"#
        )
    );
    // the role appearing later makes the binding effective
    rbac.upsert(
        RbacKind::Role,
        &role(
            "ns",
            "gone",
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]),
        ),
    );
    assert!(rbac.authorize(&get(&dave, "pods", "ns")).is_allowed());
    let (rules, errors) = rbac.rules_for(&dave, "ns");
    assert_eq!(rules.len(), 1);
    assert_eq!(errors.len(), 1);
}

#[test]
fn updates_and_removals_reindex() {
    let rbac = Rbac::new();
    rbac.upsert(RbacKind::ClusterRole, &pod_reader());
    rbac.upsert(
        RbacKind::ClusterRoleBinding,
        &crb("b", "pod-reader", json!([{"kind": "User", "name": "u1"}])),
    );
    let u1 = UserInfo::new("u1", &[]);
    let u2 = UserInfo::new("u2", &[]);
    assert!(rbac.authorize(&get(&u1, "pods", "x")).is_allowed());
    rbac.upsert(
        RbacKind::ClusterRoleBinding,
        &crb("b", "pod-reader", json!([{"kind": "User", "name": "u2"}])),
    );
    assert!(!rbac.authorize(&get(&u1, "pods", "x")).is_allowed());
    assert!(rbac.authorize(&get(&u2, "pods", "x")).is_allowed());
    rbac.remove(RbacKind::ClusterRole, "", "pod-reader");
    assert!(!rbac.authorize(&get(&u2, "pods", "x")).is_allowed());
    rbac.upsert(RbacKind::ClusterRole, &pod_reader());
    rbac.remove(RbacKind::ClusterRoleBinding, "", "b");
    assert!(!rbac.authorize(&get(&u2, "pods", "x")).is_allowed());
    assert_eq!(rbac.counts(), (0, 1, 0, 0));
    rbac.replace_all(
        &[],
        &[pod_reader()],
        &[],
        &[crb(
            "c",
            "pod-reader",
            json!([{"kind": "Group", "name": "g"}]),
        )],
    );
    assert!(rbac
        .authorize(&get(&UserInfo::new("x", &["g"]), "pods", ""))
        .is_allowed());
}

#[test]
fn escalation_message_matches_upstream() {
    let rbac = Rbac::new();
    rbac.upsert(
        RbacKind::ClusterRole,
        &cluster_role(
            "role-writer",
            json!([{"verbs": ["create"], "apiGroups": [RBAC_GROUP], "resources": ["roles"]},
                   {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}]),
        ),
    );
    rbac.upsert(
        RbacKind::RoleBinding,
        &rb(
            "ns",
            "w",
            "ClusterRole",
            "role-writer",
            json!([{"kind": "User", "name": "erin"}]),
        ),
    );
    let erin = UserInfo::new("erin", &["system:authenticated"]);
    let ok = vec![PolicyRule::new(&["get"])
        .groups(&[""])
        .resources(&["configmaps"])];
    assert_eq!(rbac.confirm_no_escalation(&erin, "ns", &ok), Ok(()));
    // held in ns, not cluster-wide
    assert!(rbac.confirm_no_escalation(&erin, "", &ok).is_err());
    let secrets = vec![PolicyRule::new(&["get", "list"])
        .groups(&[""])
        .resources(&["secrets"])];
    assert_eq!(
        rbac.confirm_no_escalation(&erin, "ns", &secrets),
        Err("user \"erin\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"list\"]}".to_owned())
    );
}

fn role_obj(ns: &str, name: &str, rules: Value) -> Value {
    role(ns, name, rules)
}

#[test]
fn check_write_escalate_bind_and_gc_only() {
    let rbac = Rbac::new();
    rbac.upsert(
        RbacKind::ClusterRole,
        &cluster_role(
            "role-writer",
            json!([{"verbs": ["create", "update"], "apiGroups": [RBAC_GROUP], "resources": ["roles", "rolebindings"]}]),
        ),
    );
    rbac.upsert(RbacKind::ClusterRole, &pod_reader());
    rbac.upsert(
        RbacKind::RoleBinding,
        &rb(
            "ns",
            "w",
            "ClusterRole",
            "role-writer",
            json!([{"kind": "User", "name": "frank"}]),
        ),
    );
    let frank = UserInfo::new("frank", &["system:authenticated"]);
    let wants = role_obj(
        "ns",
        "secret-reader",
        json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]),
    );
    let err = rbac.check_write(&rbac, &frank, RbacKind::Role, "ns", &wants, None);
    let msg = err.clone().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.starts_with(
            r#"roles.rbac.authorization.k8s.io "secret-reader" is forbidden: user "frank""#
        ),
        "{msg}"
    );
    // system:masters may
    let admin = UserInfo::new("admin", &[SYSTEM_PRIVILEGED_GROUP]);
    assert_eq!(
        rbac.check_write(&rbac, &admin, RbacKind::Role, "ns", &wants, None),
        Ok(())
    );
    // the escalate verb lets frank
    rbac.upsert(
        RbacKind::ClusterRole,
        &cluster_role(
            "escalator",
            json!([{"verbs": ["escalate"], "apiGroups": [RBAC_GROUP], "resources": ["roles"]}]),
        ),
    );
    rbac.upsert(
        RbacKind::RoleBinding,
        &rb(
            "ns",
            "e",
            "ClusterRole",
            "escalator",
            json!([{"kind": "User", "name": "frank"}]),
        ),
    );
    assert_eq!(
        rbac.check_write(&rbac, &frank, RbacKind::Role, "ns", &wants, None),
        Ok(())
    );
    assert!(rbac
        .check_write(&rbac, &frank, RbacKind::Role, "other", &wants, None)
        .is_err());
    // a GC-only update (finalizers) passes without any grant
    let mut with_finalizer = wants.clone();
    with_finalizer["metadata"]["finalizers"] = json!(["x"]);
    let nobody = UserInfo::new("nobody", &[]);
    assert_eq!(
        rbac.check_write(
            &rbac,
            &nobody,
            RbacKind::Role,
            "ns",
            &with_finalizer,
            Some(&wants)
        ),
        Ok(())
    );

    // bindings: missing role → 400; unheld role → 403; bind verb → ok
    let binding = rb(
        "ns",
        "b",
        "ClusterRole",
        "pod-reader",
        json!([{"kind": "User", "name": "x"}]),
    );
    assert!(matches!(
        rbac.check_write(&rbac, &frank, RbacKind::RoleBinding, "ns", &binding, None),
        Err(WriteCheckError::Forbidden {
            resource: "rolebindings",
            ..
        })
    ));
    let dangling = rb("ns", "b", "ClusterRole", "missing", json!([]));
    assert_eq!(
        rbac.check_write(&rbac, &frank, RbacKind::RoleBinding, "ns", &dangling, None),
        Err(WriteCheckError::BadRequest(
            r#"clusterrole.rbac.authorization.k8s.io "missing" not found"#.to_owned()
        ))
    );
    rbac.upsert(
        RbacKind::ClusterRole,
        &cluster_role(
            "binder",
            json!([{"verbs": ["bind"], "apiGroups": [RBAC_GROUP], "resources": ["clusterroles"], "resourceNames": ["pod-reader"]}]),
        ),
    );
    rbac.upsert(
        RbacKind::RoleBinding,
        &rb(
            "ns",
            "bb",
            "ClusterRole",
            "binder",
            json!([{"kind": "User", "name": "frank"}]),
        ),
    );
    assert_eq!(
        rbac.check_write(&rbac, &frank, RbacKind::RoleBinding, "ns", &binding, None),
        Ok(())
    );
    // holding the rules is enough too
    rbac.upsert(
        RbacKind::RoleBinding,
        &rb(
            "ns2",
            "r",
            "ClusterRole",
            "pod-reader",
            json!([{"kind": "User", "name": "frank"}]),
        ),
    );
    let binding2 = rb("ns2", "b", "ClusterRole", "pod-reader", json!([]));
    assert_eq!(
        rbac.check_write(&rbac, &frank, RbacKind::RoleBinding, "ns2", &binding2, None),
        Ok(())
    );
    // aggregationRule needs full authority
    let agg = json!({"metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors": []}, "rules": []});
    assert_eq!(
        rbac.check_write(&rbac, &frank, RbacKind::ClusterRole, "", &agg, None),
        Err(WriteCheckError::Forbidden {
            resource: "clusterroles",
            name: "agg".into(),
            reason: "must have cluster-admin privileges to use the aggregationRule".into()
        })
    );
}
