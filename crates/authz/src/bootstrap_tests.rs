use super::*;

fn name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}

fn find<'a>(all: &'a [Value], n: &str) -> &'a Value {
    all.iter().find(|v| name(v) == n).unwrap_or(&Value::Null)
}

fn rules(v: &Value) -> Vec<PolicyRule> {
    serde_json::from_value(v["rules"].clone()).unwrap_or_default()
}

#[test]
fn counts_match_upstream_v1_33_defaults() {
    let roles = cluster_roles();
    let bindings = cluster_role_bindings();
    // 31 from policy.go, 35 controller roles
    assert_eq!(roles.len(), 66);
    assert_eq!(
        roles
            .iter()
            .filter(|r| name(r).starts_with("system:controller:"))
            .count(),
        35
    );
    // 12 from policy.go (system:node with no subjects), one per controller
    assert_eq!(bindings.len(), 47);
    assert_eq!(namespaced_roles().len(), 7);
    assert_eq!(namespaced_role_bindings().len(), 7);

    let mut names: Vec<&str> = roles.iter().map(name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), roles.len(), "duplicate role names");
    for required in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
        "system:monitoring",
        "system:kube-controller-manager",
        "system:kube-scheduler",
        "system:kube-dns",
        "system:node",
        "system:node-proxier",
        "system:node-bootstrapper",
        "system:node-problem-detector",
        "system:kubelet-api-admin",
        "system:auth-delegator",
        "system:heapster",
        "system:kube-aggregator",
        "system:persistent-volume-provisioner",
        "system:volume-scheduler",
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        "system:certificates.k8s.io:kube-apiserver-client-approver",
        "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
        "system:certificates.k8s.io:kubelet-serving-approver",
        "system:certificates.k8s.io:legacy-unknown-approver",
        "system:service-account-issuer-discovery",
        "system:controller:generic-garbage-collector",
        "system:controller:service-cidrs-controller",
        "system:controller:selinux-warning-controller",
    ] {
        assert!(names.contains(&required), "{required} missing");
    }
    // gated off in v1.33
    for absent in [
        "system:controller:resource-claim-controller",
        "system:controller:volumeattributesclass-protection-controller",
        "system:cluster-trust-bundle-discovery",
        // not a bootstrap role upstream (the seeds bind it anyway)
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeserver",
    ] {
        assert!(!names.contains(&absent), "{absent} present");
    }
}

#[test]
fn objects_carry_bootstrap_metadata_and_normalised_rules() {
    for obj in cluster_roles()
        .iter()
        .chain(cluster_role_bindings().iter())
        .chain(namespaced_roles().iter().map(|(_, r)| r))
        .chain(namespaced_role_bindings().iter().map(|(_, r)| r))
    {
        assert_eq!(obj["apiVersion"], "rbac.authorization.k8s.io/v1");
        assert_eq!(
            obj["metadata"]["labels"]["kubernetes.io/bootstrapping"],
            "rbac-defaults"
        );
        assert_eq!(
            obj["metadata"]["annotations"][AUTOUPDATE_ANNOTATION],
            "true"
        );
        for r in rules(obj) {
            assert_eq!(r.clone().normalized(), r, "{}", name(obj));
        }
    }
    for (ns, obj) in namespaced_roles()
        .iter()
        .chain(namespaced_role_bindings().iter())
    {
        assert_eq!(obj["metadata"]["namespace"], ns.as_str());
    }
}

#[test]
fn spot_checks_against_upstream() {
    let roles = cluster_roles();
    let edit = find(&roles, "edit");
    assert_eq!(
        edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"],
        "true"
    );
    assert_eq!(
        edit["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"]
            ["rbac.authorization.k8s.io/aggregate-to-edit"],
        "true"
    );
    // the events rule as upstream serialises it
    let kcm = rules(find(&roles, "system:kube-controller-manager"));
    assert_eq!(
        kcm[0].to_json(),
        serde_json::json!({"verbs": ["create", "patch", "update"], "apiGroups": ["", "events.k8s.io"], "resources": ["events"]})
    );
    assert_eq!(kcm.len(), 11);
    let node = rules(find(&roles, "system:node"));
    assert_eq!(node.len(), 22);
    let sched = rules(find(&roles, "system:kube-scheduler"));
    assert!(sched
        .iter()
        .any(|r| r.resource_names == vec!["kube-scheduler"]
            && r.verbs == vec!["get", "list", "update", "watch"]));
    let disc = rules(find(&roles, "system:discovery"));
    assert_eq!(disc[0].non_resource_urls.len(), 11);
    let cert = rules(find(&roles, "system:controller:certificate-controller"));
    assert_eq!(cert[3].resource_names.len(), 4);
    assert_eq!(cert[3].verbs, vec!["sign"]);

    let bindings = cluster_role_bindings();
    assert!(find(&bindings, "system:node").get("subjects").is_none());
    assert!(find(&bindings, "system:node-bootstrapper").is_null());
    assert_eq!(
        find(&bindings, "system:controller:job-controller")["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "job-controller", "namespace": "kube-system"}])
    );
    assert_eq!(
        find(&bindings, "system:public-info-viewer")["subjects"][1]["name"],
        "system:unauthenticated"
    );
}

#[test]
fn load_fills_aggregated_roles() {
    let rbac = crate::Rbac::new();
    load(&rbac);
    assert_eq!(rbac.counts(), (7, 66, 7, 47));
    let roles = aggregated_cluster_roles();
    // admin = aggregate-to-admin + edit (= aggregate-to-edit + view (= aggregate-to-view))
    assert_eq!(rules(find(&roles, "view")).len(), 10);
    assert_eq!(rules(find(&roles, "edit")).len(), 13 + 10);
    assert_eq!(rules(find(&roles, "admin")).len(), 2 + 13 + 10);
}
