//! `--authorization-mode=Node,RBAC` with upstream v1.33's bootstrap policy loaded plus
//! the ClusterRoleBindings the seeds create by hand, checked against what upstream
//! decides for the identities of a binary-deployed cluster.

use std::sync::Arc;

use ferrokube_authz::{
    bootstrap, build_authorizer, parse_modes, Attributes, Authorizer, Decision, NodeAuthorizer,
    PolicyRule, Rbac, RbacKind, Union, UserInfo, WriteCheckError,
};
use serde_json::{json, Value};

fn crb(name: &str, role: &str, kind: &str, subject: &str) -> Value {
    json!({"metadata": {"name": name},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
           "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}]})
}

/// The seeds' hand-made bindings (001: TLS bootstrap, CSR auto-approval, kubelet API).
fn seed_bindings(rbac: &Rbac) {
    for b in [
        crb(
            "kubelet-bootstrap",
            "system:node-bootstrapper",
            "Group",
            "system:bootstrappers",
        ),
        crb(
            "auto-approve-csrs-for-group",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            "Group",
            "system:bootstrappers",
        ),
        crb(
            "node-client-cert-renewal",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            "Group",
            "system:nodes",
        ),
        crb(
            "node-server-cert-renewal",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeserver",
            "Group",
            "system:nodes",
        ),
        crb(
            "kube-apiserver:kubelet-apis",
            "system:kubelet-api-admin",
            "User",
            "kubernetes-master",
        ),
    ] {
        rbac.upsert(RbacKind::ClusterRoleBinding, &b);
    }
}

fn pod(ns: &str, name: &str, node: &str, secret: &str) -> Value {
    json!({"metadata": {"namespace": ns, "name": name},
           "spec": {"nodeName": node, "serviceAccountName": "default",
                    "containers": [{"name": "c"}],
                    "volumes": [{"name": "s", "secret": {"secretName": secret}}]}})
}

struct Cluster {
    rbac: Arc<Rbac>,
    authz: Union,
}

fn cluster(with_seed_bindings: bool) -> Cluster {
    let rbac = Arc::new(Rbac::new());
    bootstrap::load(&rbac);
    if with_seed_bindings {
        seed_bindings(&rbac);
    }
    let node = Arc::new(NodeAuthorizer::new());
    node.upsert_pod(&pod("default", "web", "k8s-01", "web-tls"));
    node.upsert_pod(&pod("default", "db", "k8s-02", "db-password"));
    let modes = parse_modes("Node,RBAC").unwrap_or_default();
    let authz = build_authorizer(&modes, rbac.clone(), node).unwrap_or(Union(vec![]));
    Cluster { rbac, authz }
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    let mut g: Vec<&str> = groups.to_vec();
    g.push("system:authenticated");
    UserInfo::new(name, &g)
}

fn kcm() -> UserInfo {
    user("system:kube-controller-manager", &[])
}
fn scheduler() -> UserInfo {
    user("system:kube-scheduler", &[])
}
fn proxy() -> UserInfo {
    user("system:kube-proxy", &[])
}
fn node1() -> UserInfo {
    user("system:node:k8s-01", &["system:nodes"])
}
fn bootstrapper() -> UserInfo {
    user(
        "system:bootstrap:abcdef",
        &["system:bootstrappers", "system:bootstrappers:k8s-01"],
    )
}
fn plain() -> UserInfo {
    user("jane", &[])
}

fn r(u: UserInfo, verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> Attributes {
    Attributes::resource(u, verb, group, resource, ns, name)
}

fn url(u: UserInfo, path: &str) -> Attributes {
    Attributes::non_resource(u, "get", path)
}

#[test]
fn bootstrap_policy_matrix() {
    let c = cluster(true);
    let sa = |ns: &str, n: &str| UserInfo::service_account(ns, n);
    let anonymous = UserInfo::new("system:anonymous", &["system:unauthenticated"]);
    let coord = "coordination.k8s.io";
    let certs = "certificates.k8s.io";
    let checks: Vec<(Attributes, bool)> = vec![
        // kube-controller-manager (its own credentials)
        (
            r(kcm(), "create", "", "serviceaccounts", "kube-system", "x").with_subresource("token"),
            true,
        ),
        (r(kcm(), "list", "", "secrets", "", ""), true),
        (r(kcm(), "get", "", "secrets", "kube-system", "s"), true),
        (r(kcm(), "delete", "", "pods", "default", "p"), false),
        (
            r(
                kcm(),
                "update",
                coord,
                "leases",
                "kube-system",
                "kube-controller-manager",
            ),
            true,
        ),
        (
            r(
                kcm(),
                "get",
                "",
                "configmaps",
                "kube-system",
                "extension-apiserver-authentication",
            ),
            true,
        ),
        (
            r(kcm(), "get", "", "configmaps", "kube-system", "other"),
            true,
        ),
        // kube-scheduler
        (
            r(scheduler(), "create", "", "pods", "default", "p").with_subresource("binding"),
            true,
        ),
        (
            r(
                scheduler(),
                "update",
                coord,
                "leases",
                "kube-system",
                "kube-scheduler",
            ),
            true,
        ),
        (
            r(scheduler(), "create", coord, "leases", "kube-system", ""),
            true,
        ),
        (
            r(scheduler(), "update", coord, "leases", "default", "other"),
            false,
        ),
        (
            r(scheduler(), "patch", "", "persistentvolumes", "", "pv"),
            true,
        ),
        (r(scheduler(), "delete", "", "nodes", "", "n"), false),
        (
            r(
                scheduler(),
                "list",
                "storage.k8s.io",
                "csistoragecapacities",
                "",
                "",
            ),
            true,
        ),
        // kube-proxy
        (
            r(
                proxy(),
                "list",
                "discovery.k8s.io",
                "endpointslices",
                "",
                "",
            ),
            true,
        ),
        (r(proxy(), "watch", "", "services", "", ""), true),
        (
            r(proxy(), "list", "networking.k8s.io", "servicecidrs", "", ""),
            true,
        ),
        (r(proxy(), "get", "", "secrets", "default", "s"), false),
        // kubelet through the Node authorizer
        (r(node1(), "get", "", "secrets", "default", "web-tls"), true),
        (
            r(node1(), "get", "", "secrets", "default", "db-password"),
            false,
        ),
        (
            r(node1(), "list", "", "pods", "", "").with_field_selector("spec.nodeName=k8s-01"),
            true,
        ),
        (r(node1(), "list", "", "pods", "", ""), false),
        (
            r(
                node1(),
                "update",
                coord,
                "leases",
                "kube-node-lease",
                "k8s-01",
            ),
            true,
        ),
        (
            r(
                node1(),
                "create",
                certs,
                "certificatesigningrequests",
                "",
                "",
            ),
            true,
        ),
        (
            r(
                node1(),
                "create",
                certs,
                "certificatesigningrequests",
                "",
                "",
            )
            .with_subresource("selfnodeclient"),
            true,
        ),
        (
            r(
                node1(),
                "create",
                "",
                "serviceaccounts",
                "default",
                "default",
            )
            .with_subresource("token"),
            true,
        ),
        (
            r(
                node1(),
                "create",
                "",
                "serviceaccounts",
                "kube-system",
                "default",
            )
            .with_subresource("token"),
            false,
        ),
        // bootstrap token (seeds bind system:node-bootstrapper and nodeclient)
        (
            r(
                bootstrapper(),
                "create",
                certs,
                "certificatesigningrequests",
                "",
                "",
            ),
            true,
        ),
        (
            r(
                bootstrapper(),
                "create",
                certs,
                "certificatesigningrequests",
                "",
                "",
            )
            .with_subresource("nodeclient"),
            true,
        ),
        (
            r(bootstrapper(), "get", "", "secrets", "kube-system", "s"),
            false,
        ),
        // an ordinary authenticated user
        (
            r(
                plain(),
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                "",
            ),
            true,
        ),
        (
            r(
                plain(),
                "create",
                "authentication.k8s.io",
                "selfsubjectreviews",
                "",
                "",
            ),
            true,
        ),
        (url(plain(), "/version"), true),
        (url(plain(), "/healthz"), true),
        (url(plain(), "/apis/apps/v1"), true),
        (url(plain(), "/metrics"), false),
        (url(plain(), "/.well-known/openid-configuration"), false),
        (r(plain(), "list", "", "pods", "default", ""), false),
        (url(user("prom", &["system:monitoring"]), "/metrics"), true),
        (
            url(user("prom", &["system:monitoring"]), "/readyz/etcd"),
            true,
        ),
        // anonymous: public info only
        (url(anonymous.clone(), "/healthz"), true),
        (url(anonymous.clone(), "/version/"), true),
        (url(anonymous, "/api"), false),
        // system:masters
        (
            r(
                user("admin", &["system:masters"]),
                "delete",
                "apps",
                "deployments",
                "x",
                "y",
            ),
            true,
        ),
        (
            url(user("admin", &["system:masters"]), "/debug/pprof/"),
            true,
        ),
        // service accounts
        (url(sa("default", "app"), "/openid/v1/jwks"), true),
        (
            r(sa("default", "app"), "list", "", "pods", "default", ""),
            false,
        ),
        (
            r(
                sa("kube-system", "job-controller"),
                "create",
                "",
                "pods",
                "ns",
                "",
            ),
            true,
        ),
        (
            r(
                sa("kube-system", "namespace-controller"),
                "deletecollection",
                "x.io",
                "foos",
                "ns",
                "",
            ),
            true,
        ),
        (
            r(
                sa("kube-system", "bootstrap-signer"),
                "update",
                "",
                "configmaps",
                "kube-public",
                "cluster-info",
            ),
            true,
        ),
        (
            r(
                sa("kube-system", "bootstrap-signer"),
                "update",
                "",
                "configmaps",
                "kube-public",
                "other",
            ),
            false,
        ),
        (
            r(
                sa("kube-system", "kube-dns"),
                "watch",
                "",
                "endpoints",
                "",
                "",
            ),
            true,
        ),
        (
            r(
                sa("kube-system", "generic-garbage-collector"),
                "patch",
                "apps",
                "replicasets",
                "ns",
                "rs",
            ),
            true,
        ),
        (
            r(
                sa("kube-system", "generic-garbage-collector"),
                "create",
                "apps",
                "replicasets",
                "ns",
                "",
            ),
            false,
        ),
        // the API server's kubelet client identity (seeds' binding)
        (
            r(
                user("kubernetes-master", &[]),
                "get",
                "",
                "nodes",
                "",
                "k8s-01",
            )
            .with_subresource("proxy"),
            true,
        ),
        (
            r(
                user("kubernetes-master", &[]),
                "get",
                "",
                "nodes",
                "",
                "k8s-01",
            )
            .with_subresource("pods"),
            true,
        ),
    ];
    assert!(checks.len() >= 30);
    let mut failures = Vec::new();
    for (a, want) in &checks {
        let d = c.authz.authorize(a);
        if d.is_allowed() != *want {
            failures.push(format!("{a:?} => {d:?}, want allowed={want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn reasons_as_upstream() {
    let c = cluster(true);
    assert_eq!(
        c.authz.authorize(
            &r(scheduler(), "create", "", "pods", "default", "p").with_subresource("binding")
        ),
        Decision::allow(
            r#"RBAC: allowed by ClusterRoleBinding "system:kube-scheduler" of ClusterRole "system:kube-scheduler" to User "system:kube-scheduler""#
        )
    );
    // the union joins the Node authorizer's and RBAC's reasons; RBAC reports the
    // seeds' binding to selfnodeserver, a ClusterRole upstream v1.33 does not define
    assert_eq!(
        c.authz
            .authorize(&r(node1(), "get", "", "secrets", "default", "db-password")),
        Decision::no_opinion(
            "no relationship found between node 'k8s-01' and this object\nRBAC: clusterrole.rbac.authorization.k8s.io \"system:certificates.k8s.io:certificatesigningrequests:selfnodeserver\" not found"
        )
    );
    assert_eq!(
        c.authz
            .authorize(&r(node1(), "delete", "apps", "deployments", "x", "y")),
        Decision::no_opinion(
            r#"RBAC: clusterrole.rbac.authorization.k8s.io "system:certificates.k8s.io:certificatesigningrequests:selfnodeserver" not found"#
        )
    );
    assert_eq!(
        c.authz
            .authorize(&r(plain(), "list", "", "pods", "default", "")),
        Decision::no_opinion("")
    );
}

#[test]
fn bootstrappers_need_the_seed_binding() {
    let c = cluster(false);
    let csr = r(
        bootstrapper(),
        "create",
        "certificates.k8s.io",
        "certificatesigningrequests",
        "",
        "",
    );
    assert!(!c.authz.authorize(&csr).is_allowed());
    seed_bindings(&c.rbac);
    assert!(c.authz.authorize(&csr).is_allowed());
}

#[test]
fn escalation_prevention() {
    let c = cluster(true);
    let rbac = &c.rbac;
    rbac.upsert(
        RbacKind::Role,
        &json!({"metadata": {"namespace": "dev", "name": "role-creator"},
                "rules": [{"verbs": ["create"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"]}]}),
    );
    rbac.upsert(
        RbacKind::RoleBinding,
        &json!({"metadata": {"namespace": "dev", "name": "sam"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "role-creator"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "sam"}]}),
    );
    let sam = user("sam", &[]);
    assert!(c
        .authz
        .authorize(&r(
            sam.clone(),
            "create",
            "rbac.authorization.k8s.io",
            "roles",
            "dev",
            ""
        ))
        .is_allowed());
    let secret_reader = json!({"metadata": {"namespace": "dev", "name": "secret-reader"},
        "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]});
    let res = rbac.check_write(&c.authz, &sam, RbacKind::Role, "dev", &secret_reader, None);
    assert_eq!(
        res,
        Err(WriteCheckError::Forbidden {
            resource: "roles",
            name: "secret-reader".into(),
            reason: "user \"sam\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}".into(),
        })
    );
    // holding get secrets (edit in dev) makes it fine
    rbac.upsert(
        RbacKind::RoleBinding,
        &json!({"metadata": {"namespace": "dev", "name": "sam-edit"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "sam"}]}),
    );
    assert_eq!(
        rbac.check_write(&c.authz, &sam, RbacKind::Role, "dev", &secret_reader, None),
        Ok(())
    );
    rbac.remove(RbacKind::RoleBinding, "dev", "sam-edit");
    // or the escalate verb
    rbac.upsert(
        RbacKind::Role,
        &json!({"metadata": {"namespace": "dev", "name": "role-creator"},
                "rules": [{"verbs": ["create", "escalate"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"]}]}),
    );
    assert_eq!(
        rbac.check_write(&c.authz, &sam, RbacKind::Role, "dev", &secret_reader, None),
        Ok(())
    );
    // admin in a namespace may bind edit there (holds all of edit's rules)
    let admin_user = user("ann", &[]);
    rbac.upsert(
        RbacKind::RoleBinding,
        &json!({"metadata": {"namespace": "dev", "name": "ann-admin"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ann"}]}),
    );
    let bind_edit = json!({"metadata": {"namespace": "dev", "name": "x"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "User", "name": "x"}]});
    assert_eq!(
        rbac.check_write(
            &c.authz,
            &admin_user,
            RbacKind::RoleBinding,
            "dev",
            &bind_edit,
            None
        ),
        Ok(())
    );
    let bind_admin_cluster = json!({"metadata": {"name": "x"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "name": "x"}]});
    assert!(rbac
        .check_write(
            &c.authz,
            &admin_user,
            RbacKind::ClusterRoleBinding,
            "",
            &bind_admin_cluster,
            None
        )
        .is_err());
    // rules_for lists what can-i --list shows
    let (rules, errors) = rbac.rules_for(&admin_user, "dev");
    assert!(errors.is_empty());
    assert!(rules.contains(
        &PolicyRule::new(&["create"])
            .groups(&["authorization.k8s.io"])
            .resources(&["selfsubjectaccessreviews", "selfsubjectrulesreviews"])
    ));
}
