use super::*;
use crate::UserInfo;
use serde_json::json;

fn node_user(n: &str) -> UserInfo {
    UserInfo::new(
        &format!("system:node:{n}"),
        &["system:nodes", "system:authenticated"],
    )
}

fn res(node: &str, verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> Attributes {
    Attributes::resource(node_user(node), verb, group, resource, ns, name)
}

fn pod(ns: &str, name: &str, node: &str) -> Value {
    json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": {
            "nodeName": node,
            "serviceAccountName": "app",
            "imagePullSecrets": [{"name": "pull"}],
            "containers": [{
                "name": "c",
                "env": [
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                    {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}}
                ],
                "envFrom": [{"configMapRef": {"name": "from-cm"}}]
            }],
            "volumes": [
                {"name": "s", "secret": {"secretName": "vol-secret"}},
                {"name": "p", "projected": {"sources": [{"configMap": {"name": "proj-cm"}}, {"secret": {"name": "proj-secret"}}]}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}}
            ],
            "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "t"}, {"name": "fixed", "resourceClaimName": "shared"}]
        },
        "status": {"resourceClaimStatuses": [{"name": "gpu", "resourceClaimName": "web-gpu-x"}]}
    })
}

fn allowed(n: &NodeAuthorizer, a: &Attributes) -> bool {
    n.authorize(a).is_allowed()
}

#[test]
fn non_nodes_get_no_opinion() {
    let n = NodeAuthorizer::new();
    let mut a = res("k8s-01", "get", "", "secrets", "ns", "x");
    a.user = UserInfo::new("system:node:k8s-01", &["system:authenticated"]);
    assert_eq!(n.authorize(&a), Decision::no_opinion(""));
    a.user = UserInfo::new("alice", &["system:nodes"]);
    assert_eq!(n.authorize(&a), Decision::no_opinion(""));
    a.user = UserInfo::new("system:node:", &["system:nodes"]);
    assert_eq!(
        n.authorize(&a),
        Decision::no_opinion(r#"unknown node for user "system:node:""#)
    );
}

#[test]
fn graph_related_objects() {
    let n = NodeAuthorizer::new();
    n.upsert_pod(&pod("default", "web", "k8s-01"));
    n.upsert_pod(&pod("other", "db", "k8s-02"));
    for (resource, name) in [
        ("secrets", "pull"),
        ("secrets", "env-secret"),
        ("secrets", "vol-secret"),
        ("secrets", "proj-secret"),
        ("configmaps", "env-cm"),
        ("configmaps", "from-cm"),
        ("configmaps", "proj-cm"),
        ("persistentvolumeclaims", "data"),
        ("persistentvolumeclaims", "web-scratch"),
        ("pods", "web"),
    ] {
        assert!(
            allowed(&n, &res("k8s-01", "get", "", resource, "default", name)),
            "{resource}/{name}"
        );
        assert_eq!(
            n.authorize(&res("k8s-02", "get", "", resource, "default", name)),
            Decision::no_opinion("no relationship found between node 'k8s-02' and this object"),
            "{resource}/{name}"
        );
    }
    // a node's own pod's secret, not another node's
    assert!(allowed(
        &n,
        &res("k8s-02", "get", "", "secrets", "other", "vol-secret")
    ));
    assert!(!allowed(
        &n,
        &res("k8s-01", "get", "", "secrets", "other", "vol-secret")
    ));
    // list/watch of one named secret is fine, of all secrets not
    assert!(allowed(
        &n,
        &res("k8s-01", "watch", "", "secrets", "default", "pull")
    ));
    assert_eq!(
        n.authorize(&res("k8s-01", "list", "", "secrets", "default", "")),
        Decision::no_opinion("No Object name found")
    );
    assert_eq!(
        n.authorize(&res("k8s-01", "update", "", "secrets", "default", "pull")),
        Decision::no_opinion("can only read resources of this type")
    );
    // resource claims
    for claim in ["web-gpu-x", "shared"] {
        assert!(allowed(
            &n,
            &res(
                "k8s-01",
                "get",
                "resource.k8s.io",
                "resourceclaims",
                "default",
                claim
            )
        ));
    }
    // service account tokens
    let token =
        res("k8s-01", "create", "", "serviceaccounts", "default", "app").with_subresource("token");
    assert!(allowed(&n, &token));
    let mut other = token.clone();
    other.namespace = "other".into();
    assert!(!allowed(&n, &other));
    assert_eq!(
        n.authorize(&res(
            "k8s-01",
            "get",
            "",
            "serviceaccounts",
            "default",
            "app"
        )),
        Decision::no_opinion("can only create tokens for individual service accounts")
    );
    // pvc status
    let status = res(
        "k8s-01",
        "patch",
        "",
        "persistentvolumeclaims",
        "default",
        "data",
    )
    .with_subresource("status");
    assert!(allowed(&n, &status));

    // deleting the pod revokes everything and cleans the graph
    n.remove_pod("default", "web");
    assert!(!allowed(
        &n,
        &res("k8s-01", "get", "", "secrets", "default", "pull")
    ));
    n.remove_pod("other", "db");
    assert_eq!(n.graph_size(), 0);
}

#[test]
fn mirror_pods_grant_nothing_and_unbound_pods_are_ignored() {
    let n = NodeAuthorizer::new();
    let mut p = pod("default", "static", "k8s-01");
    p["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "x"});
    n.upsert_pod(&p);
    assert!(allowed(
        &n,
        &res("k8s-01", "get", "", "pods", "default", "static")
    ));
    assert!(!allowed(
        &n,
        &res("k8s-01", "get", "", "secrets", "default", "pull")
    ));
    let mut unbound = pod("default", "pending", "");
    unbound["spec"]
        .as_object_mut()
        .map(|s| s.remove("nodeName"));
    n.upsert_pod(&unbound);
    assert!(!allowed(
        &n,
        &res("k8s-01", "get", "", "pods", "default", "pending")
    ));
}

#[test]
fn persistent_volumes_and_their_secrets() {
    let n = NodeAuthorizer::new();
    n.upsert_pod(&pod("default", "web", "k8s-01"));
    n.upsert_pv(&json!({
        "metadata": {"name": "pv-1"},
        "spec": {
            "claimRef": {"namespace": "default", "name": "data"},
            "csi": {"driver": "d", "volumeHandle": "h", "nodePublishSecretRef": {"name": "csi-secret", "namespace": "storage"},
                    "controllerPublishSecretRef": {"name": "ctrl-secret", "namespace": "storage"}}
        }
    }));
    assert!(allowed(
        &n,
        &res("k8s-01", "get", "", "persistentvolumes", "", "pv-1")
    ));
    assert!(!allowed(
        &n,
        &res("k8s-02", "get", "", "persistentvolumes", "", "pv-1")
    ));
    assert!(allowed(
        &n,
        &res("k8s-01", "get", "", "secrets", "storage", "csi-secret")
    ));
    assert!(!allowed(
        &n,
        &res("k8s-01", "get", "", "secrets", "storage", "ctrl-secret")
    ));
    assert_eq!(
        n.authorize(&res("k8s-01", "list", "", "persistentvolumes", "", "")),
        Decision::no_opinion("can only get individual resources of this type")
    );
    n.remove_pv("pv-1");
    assert!(!allowed(
        &n,
        &res("k8s-01", "get", "", "persistentvolumes", "", "pv-1")
    ));
}

#[test]
fn node_scoped_resources() {
    let n = NodeAuthorizer::new();
    // nodes: own object only for reads, any create/update/patch (NodeRestriction narrows)
    assert!(allowed(
        &n,
        &res("k8s-01", "get", "", "nodes", "", "k8s-01")
    ));
    assert_eq!(
        n.authorize(&res("k8s-01", "get", "", "nodes", "", "k8s-02")),
        Decision::no_opinion("node 'k8s-01' cannot read 'k8s-02', only its own Node object")
    );
    assert_eq!(
        n.authorize(&res("k8s-01", "list", "", "nodes", "", "")),
        Decision::no_opinion("node 'k8s-01' cannot read all nodes, only its own Node object")
    );
    assert!(allowed(&n, &res("k8s-01", "create", "", "nodes", "", "")));
    assert!(allowed(
        &n,
        &res("k8s-01", "patch", "", "nodes", "", "k8s-01").with_subresource("status")
    ));
    assert!(!allowed(
        &n,
        &res("k8s-01", "delete", "", "nodes", "", "k8s-01")
    ));
    // pods: list/watch only with its own spec.nodeName
    let list = res("k8s-01", "list", "", "pods", "", "");
    assert_eq!(
        n.authorize(&list),
        Decision::no_opinion("can only list/watch pods with spec.nodeName field selector")
    );
    assert!(allowed(
        &n,
        &list.clone().with_field_selector("spec.nodeName=k8s-01")
    ));
    assert!(!allowed(
        &n,
        &list.with_field_selector("spec.nodeName=k8s-02")
    ));
    assert!(allowed(&n, &res("k8s-01", "create", "", "pods", "ns", "")));
    assert!(allowed(
        &n,
        &res("k8s-01", "update", "", "pods", "ns", "x").with_subresource("status")
    ));
    assert!(allowed(
        &n,
        &res("k8s-01", "create", "", "pods", "ns", "x").with_subresource("eviction")
    ));
    assert!(!allowed(
        &n,
        &res("k8s-01", "create", "", "pods", "ns", "x").with_subresource("exec")
    ));
    // leases
    assert!(allowed(
        &n,
        &res(
            "k8s-01",
            "update",
            "coordination.k8s.io",
            "leases",
            "kube-node-lease",
            "k8s-01"
        )
    ));
    assert!(allowed(
        &n,
        &res(
            "k8s-01",
            "create",
            "coordination.k8s.io",
            "leases",
            "kube-node-lease",
            ""
        )
    ));
    assert_eq!(
        n.authorize(&res(
            "k8s-01",
            "update",
            "coordination.k8s.io",
            "leases",
            "kube-node-lease",
            "k8s-02"
        )),
        Decision::no_opinion(
            "can only access node lease with the same name as the requesting node"
        )
    );
    assert_eq!(
        n.authorize(&res(
            "k8s-01",
            "get",
            "coordination.k8s.io",
            "leases",
            "kube-system",
            "k8s-01"
        )),
        Decision::no_opinion(r#"can only access leases in the "kube-node-lease" system namespace"#)
    );
    // csinodes
    assert!(allowed(
        &n,
        &res("k8s-01", "get", "storage.k8s.io", "csinodes", "", "k8s-01")
    ));
    assert!(!allowed(
        &n,
        &res("k8s-01", "get", "storage.k8s.io", "csinodes", "", "k8s-02")
    ));
    // volume attachments
    n.upsert_volume_attachment(
        &json!({"metadata": {"name": "va-1"}, "spec": {"nodeName": "k8s-01"}}),
    );
    assert!(allowed(
        &n,
        &res(
            "k8s-01",
            "get",
            "storage.k8s.io",
            "volumeattachments",
            "",
            "va-1"
        )
    ));
    assert!(!allowed(
        &n,
        &res(
            "k8s-02",
            "get",
            "storage.k8s.io",
            "volumeattachments",
            "",
            "va-1"
        )
    ));
    n.remove_volume_attachment("va-1");
    assert!(!allowed(
        &n,
        &res(
            "k8s-01",
            "get",
            "storage.k8s.io",
            "volumeattachments",
            "",
            "va-1"
        )
    ));
    // resource slices
    n.upsert_resource_slice(&json!({"metadata": {"name": "s-1"}, "spec": {"nodeName": "k8s-01"}}));
    assert!(allowed(
        &n,
        &res(
            "k8s-01",
            "update",
            "resource.k8s.io",
            "resourceslices",
            "",
            "s-1"
        )
    ));
    assert!(!allowed(
        &n,
        &res(
            "k8s-02",
            "update",
            "resource.k8s.io",
            "resourceslices",
            "",
            "s-1"
        )
    ));
    let watch = res(
        "k8s-01",
        "watch",
        "resource.k8s.io",
        "resourceslices",
        "",
        "",
    );
    assert!(!allowed(&n, &watch));
    assert!(allowed(&n, &watch.with_field_selector("nodeName=k8s-01")));
}

#[test]
fn other_requests_use_static_node_rules() {
    let n = NodeAuthorizer::new();
    for (verb, group, resource, sub) in [
        ("list", "", "services", ""),
        ("create", "", "events", ""),
        ("create", "authentication.k8s.io", "tokenreviews", ""),
        ("create", "authorization.k8s.io", "subjectaccessreviews", ""),
        ("get", "", "endpoints", ""),
        (
            "create",
            "certificates.k8s.io",
            "certificatesigningrequests",
            "",
        ),
        ("watch", "storage.k8s.io", "csidrivers", ""),
        ("list", "node.k8s.io", "runtimeclasses", ""),
    ] {
        assert!(
            allowed(
                &n,
                &res("k8s-01", verb, group, resource, "", "").with_subresource(sub)
            ),
            "{verb} {resource}"
        );
    }
    for (verb, group, resource) in [
        ("delete", "", "services"),
        ("list", "apps", "deployments"),
        ("get", "", "namespaces"),
    ] {
        assert_eq!(
            n.authorize(&res("k8s-01", verb, group, resource, "", "")),
            Decision::no_opinion(""),
            "{verb} {resource}"
        );
    }
    let health = Attributes::non_resource(node_user("k8s-01"), "get", "/healthz");
    assert_eq!(n.authorize(&health), Decision::no_opinion(""));
}
