//! `policy.go`: the non-controller ClusterRoles and ClusterRoleBindings, and the
//! `system:node` rules (which the Node authorizer also evaluates itself).

use serde_json::Value;

use super::{
    cluster_binding, cluster_role, cluster_role_ext, events_rule, rule, Subj, READ, READ_UPDATE,
    READ_WRITE, WRITE,
};
use crate::rule::PolicyRule;

const LEGACY: &str = "";
const APPS: &str = "apps";
const AUTHN: &str = "authentication.k8s.io";
const AUTHZ: &str = "authorization.k8s.io";
const AUTOSCALING: &str = "autoscaling";
const BATCH: &str = "batch";
const CERTS: &str = "certificates.k8s.io";
const COORDINATION: &str = "coordination.k8s.io";
const DISCOVERY: &str = "discovery.k8s.io";
const EXTENSIONS: &str = "extensions";
const POLICY: &str = "policy";
const RBAC: &str = "rbac.authorization.k8s.io";
const STORAGE: &str = "storage.k8s.io";
const NETWORKING: &str = "networking.k8s.io";

const TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

/// `NodeRules()`: the `system:node` ClusterRole's rules (v1.33 default gates).
pub fn node_rules() -> Vec<PolicyRule> {
    vec![
        rule(&["create"])
            .groups(&[AUTHN])
            .resources(&["tokenreviews"]),
        rule(&["create"])
            .groups(&[AUTHZ])
            .resources(&["subjectaccessreviews", "localsubjectaccessreviews"]),
        rule(READ).groups(&[LEGACY]).resources(&["services"]),
        rule(&["create", "get", "list", "watch"])
            .groups(&[LEGACY])
            .resources(&["nodes"]),
        rule(&["update", "patch"])
            .groups(&[LEGACY])
            .resources(&["nodes/status"]),
        rule(&["update", "patch"])
            .groups(&[LEGACY])
            .resources(&["nodes"]),
        rule(&["create", "update", "patch"])
            .groups(&[LEGACY])
            .resources(&["events"]),
        rule(READ).groups(&[LEGACY]).resources(&["pods"]),
        rule(&["create", "delete"])
            .groups(&[LEGACY])
            .resources(&["pods"]),
        rule(&["update", "patch"])
            .groups(&[LEGACY])
            .resources(&["pods/status"]),
        rule(&["create"])
            .groups(&[LEGACY])
            .resources(&["pods/eviction"]),
        rule(&["get", "list", "watch"])
            .groups(&[LEGACY])
            .resources(&["secrets", "configmaps"]),
        rule(&["get"])
            .groups(&[LEGACY])
            .resources(&["persistentvolumeclaims", "persistentvolumes"]),
        rule(&["get"]).groups(&[LEGACY]).resources(&["endpoints"]),
        rule(&["create", "get", "list", "watch"])
            .groups(&[CERTS])
            .resources(&["certificatesigningrequests"]),
        rule(&["get", "create", "update", "patch", "delete"])
            .groups(&[COORDINATION])
            .resources(&["leases"]),
        rule(&["get"])
            .groups(&[STORAGE])
            .resources(&["volumeattachments"]),
        rule(&["create"])
            .groups(&[LEGACY])
            .resources(&["serviceaccounts/token"]),
        rule(&["get", "update", "patch"])
            .groups(&[LEGACY])
            .resources(&["persistentvolumeclaims/status"]),
        rule(&["get", "watch", "list"])
            .groups(&[STORAGE])
            .resources(&["csidrivers"]),
        rule(&["get", "create", "update", "patch", "delete"])
            .groups(&[STORAGE])
            .resources(&["csinodes"]),
        rule(&["get", "list", "watch"])
            .groups(&["node.k8s.io"])
            .resources(&["runtimeclasses"]),
    ]
    .into_iter()
    .map(PolicyRule::normalized)
    .collect()
}

fn approver(name: &str, signer: &str) -> Value {
    cluster_role(
        name,
        vec![rule(&["approve"])
            .groups(&[CERTS])
            .resources(&["signers"])
            .names(&[signer])],
    )
}

fn aggregate_to_edit() -> Vec<PolicyRule> {
    vec![
        rule(READ).groups(&[LEGACY]).resources(&[
            "pods/attach",
            "pods/proxy",
            "pods/exec",
            "pods/portforward",
            "secrets",
            "services/proxy",
        ]),
        rule(&["impersonate"])
            .groups(&[LEGACY])
            .resources(&["serviceaccounts"]),
        rule(WRITE).groups(&[LEGACY]).resources(&[
            "pods",
            "pods/attach",
            "pods/proxy",
            "pods/exec",
            "pods/portforward",
        ]),
        rule(&["create"])
            .groups(&[LEGACY])
            .resources(&["pods/eviction"]),
        rule(WRITE).groups(&[LEGACY]).resources(&[
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "serviceaccounts",
            "services",
            "services/proxy",
            "persistentvolumeclaims",
            "configmaps",
            "secrets",
            "events",
        ]),
        rule(&["create"])
            .groups(&[LEGACY])
            .resources(&["serviceaccounts/token"]),
        rule(WRITE).groups(&[APPS]).resources(&[
            "statefulsets",
            "statefulsets/scale",
            "daemonsets",
            "deployments",
            "deployments/scale",
            "deployments/rollback",
            "replicasets",
            "replicasets/scale",
        ]),
        rule(WRITE)
            .groups(&[AUTOSCALING])
            .resources(&["horizontalpodautoscalers"]),
        rule(WRITE)
            .groups(&[BATCH])
            .resources(&["jobs", "cronjobs"]),
        rule(WRITE).groups(&[EXTENSIONS]).resources(&[
            "daemonsets",
            "deployments",
            "deployments/scale",
            "deployments/rollback",
            "ingresses",
            "replicasets",
            "replicasets/scale",
            "replicationcontrollers/scale",
            "networkpolicies",
        ]),
        rule(WRITE)
            .groups(&[POLICY])
            .resources(&["poddisruptionbudgets"]),
        rule(WRITE)
            .groups(&[NETWORKING])
            .resources(&["networkpolicies", "ingresses"]),
        rule(READ_WRITE)
            .groups(&[COORDINATION])
            .resources(&["leases"]),
    ]
}

fn aggregate_to_view() -> Vec<PolicyRule> {
    vec![
        rule(READ).groups(&[LEGACY]).resources(&[
            "pods",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "serviceaccounts",
            "services",
            "services/status",
            "endpoints",
            "persistentvolumeclaims",
            "persistentvolumeclaims/status",
            "configmaps",
        ]),
        rule(READ).groups(&[LEGACY]).resources(&[
            "limitranges",
            "resourcequotas",
            "bindings",
            "events",
            "pods/status",
            "resourcequotas/status",
            "namespaces/status",
            "replicationcontrollers/status",
            "pods/log",
        ]),
        rule(READ).groups(&[LEGACY]).resources(&["namespaces"]),
        rule(READ)
            .groups(&[DISCOVERY])
            .resources(&["endpointslices"]),
        rule(READ).groups(&[APPS]).resources(&[
            "controllerrevisions",
            "statefulsets",
            "statefulsets/status",
            "statefulsets/scale",
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/status",
            "deployments/scale",
            "replicasets",
            "replicasets/status",
            "replicasets/scale",
        ]),
        rule(READ).groups(&[AUTOSCALING]).resources(&[
            "horizontalpodautoscalers",
            "horizontalpodautoscalers/status",
        ]),
        rule(READ).groups(&[BATCH]).resources(&[
            "jobs",
            "cronjobs",
            "cronjobs/status",
            "jobs/status",
        ]),
        rule(READ).groups(&[EXTENSIONS]).resources(&[
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/scale",
            "deployments/status",
            "ingresses",
            "ingresses/status",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
            "replicationcontrollers/scale",
            "networkpolicies",
        ]),
        rule(READ)
            .groups(&[POLICY])
            .resources(&["poddisruptionbudgets", "poddisruptionbudgets/status"]),
        rule(READ).groups(&[NETWORKING]).resources(&[
            "networkpolicies",
            "ingresses",
            "ingresses/status",
        ]),
    ]
}

fn kube_scheduler() -> Vec<PolicyRule> {
    vec![
        events_rule(),
        rule(&["create"])
            .groups(&[COORDINATION])
            .resources(&["leases"]),
        rule(&["get", "update", "list", "watch"])
            .groups(&[COORDINATION])
            .resources(&["leases"])
            .names(&["kube-scheduler"]),
        rule(READ_WRITE)
            .groups(&[COORDINATION])
            .resources(&["leasecandidates"]),
        rule(READ).groups(&[LEGACY]).resources(&["nodes"]),
        rule(&["get", "list", "watch", "delete"])
            .groups(&[LEGACY])
            .resources(&["pods"]),
        rule(&["create"])
            .groups(&[LEGACY])
            .resources(&["pods/binding", "bindings"]),
        rule(&["patch", "update"])
            .groups(&[LEGACY])
            .resources(&["pods/status"]),
        rule(READ)
            .groups(&[LEGACY])
            .resources(&["services", "replicationcontrollers"]),
        rule(READ)
            .groups(&[APPS, EXTENSIONS])
            .resources(&["replicasets"]),
        rule(READ).groups(&[APPS]).resources(&["statefulsets"]),
        rule(READ)
            .groups(&[POLICY])
            .resources(&["poddisruptionbudgets"]),
        rule(READ)
            .groups(&[LEGACY])
            .resources(&["persistentvolumeclaims", "persistentvolumes"]),
        rule(&["create"])
            .groups(&[AUTHN])
            .resources(&["tokenreviews"]),
        rule(&["create"])
            .groups(&[AUTHZ])
            .resources(&["subjectaccessreviews"]),
        rule(READ).groups(&[STORAGE]).resources(&["csinodes"]),
        rule(&["get", "list", "watch"])
            .groups(&[STORAGE])
            .resources(&["volumeattachments"]),
        rule(READ).groups(&[LEGACY]).resources(&["namespaces"]),
        rule(READ).groups(&[STORAGE]).resources(&["csidrivers"]),
        rule(READ)
            .groups(&[STORAGE])
            .resources(&["csistoragecapacities"]),
    ]
}

/// `ClusterRoles()` of policy.go.
pub(super) fn cluster_roles() -> Vec<Value> {
    vec![
        cluster_role(
            "cluster-admin",
            vec![
                rule(&["*"]).groups(&["*"]).resources(&["*"]),
                rule(&["*"]).urls(&["*"]),
            ],
        ),
        cluster_role(
            "system:discovery",
            vec![rule(&["get"]).urls(&[
                "/livez",
                "/readyz",
                "/healthz",
                "/version",
                "/version/",
                "/openapi",
                "/openapi/*",
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
            ])],
        ),
        cluster_role(
            "system:monitoring",
            vec![rule(&["get"]).urls(&[
                "/metrics",
                "/metrics/slis",
                "/livez",
                "/readyz",
                "/healthz",
                "/livez/*",
                "/readyz/*",
                "/healthz/*",
            ])],
        ),
        cluster_role(
            "system:basic-user",
            vec![
                rule(&["create"])
                    .groups(&[AUTHZ])
                    .resources(&["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
                rule(&["create"])
                    .groups(&[AUTHN])
                    .resources(&["selfsubjectreviews"]),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            vec![rule(&["get"]).urls(&["/livez", "/readyz", "/healthz", "/version", "/version/"])],
        ),
        cluster_role_ext("admin", &[], Some(TO_ADMIN), vec![]),
        cluster_role_ext("edit", &[(TO_ADMIN, "true")], Some(TO_EDIT), vec![]),
        cluster_role_ext("view", &[(TO_EDIT, "true")], Some(TO_VIEW), vec![]),
        cluster_role_ext(
            "system:aggregate-to-admin",
            &[(TO_ADMIN, "true")],
            None,
            vec![
                rule(&["create"])
                    .groups(&[AUTHZ])
                    .resources(&["localsubjectaccessreviews"]),
                rule(READ_WRITE)
                    .groups(&[RBAC])
                    .resources(&["roles", "rolebindings"]),
            ],
        ),
        cluster_role_ext(
            "system:aggregate-to-edit",
            &[(TO_EDIT, "true")],
            None,
            aggregate_to_edit(),
        ),
        cluster_role_ext(
            "system:aggregate-to-view",
            &[(TO_VIEW, "true")],
            None,
            aggregate_to_view(),
        ),
        cluster_role(
            "system:heapster",
            vec![
                rule(READ)
                    .groups(&[LEGACY])
                    .resources(&["events", "pods", "nodes", "namespaces"]),
                rule(READ).groups(&[EXTENSIONS]).resources(&["deployments"]),
            ],
        ),
        cluster_role("system:node", node_rules()),
        cluster_role(
            "system:node-problem-detector",
            vec![
                rule(&["get"]).groups(&[LEGACY]).resources(&["nodes"]),
                rule(&["patch"])
                    .groups(&[LEGACY])
                    .resources(&["nodes/status"]),
                events_rule(),
            ],
        ),
        cluster_role(
            "system:node-bootstrapper",
            vec![rule(&["create", "get", "list", "watch"])
                .groups(&[CERTS])
                .resources(&["certificatesigningrequests"])],
        ),
        cluster_role(
            "system:auth-delegator",
            vec![
                rule(&["create"])
                    .groups(&[AUTHN])
                    .resources(&["tokenreviews"]),
                rule(&["create"])
                    .groups(&[AUTHZ])
                    .resources(&["subjectaccessreviews"]),
            ],
        ),
        cluster_role(
            "system:kube-aggregator",
            vec![rule(READ)
                .groups(&[LEGACY])
                .resources(&["services", "endpoints"])],
        ),
        cluster_role(
            "system:kube-controller-manager",
            vec![
                events_rule(),
                rule(&["create"])
                    .groups(&[COORDINATION])
                    .resources(&["leases"]),
                rule(&["get", "update"])
                    .groups(&[COORDINATION])
                    .resources(&["leases"])
                    .names(&["kube-controller-manager"]),
                rule(&["create"])
                    .groups(&[LEGACY])
                    .resources(&["secrets", "serviceaccounts"]),
                rule(&["delete"]).groups(&[LEGACY]).resources(&["secrets"]),
                rule(&["get"]).groups(&[LEGACY]).resources(&[
                    "namespaces",
                    "secrets",
                    "serviceaccounts",
                    "configmaps",
                ]),
                rule(&["update"])
                    .groups(&[LEGACY])
                    .resources(&["secrets", "serviceaccounts"]),
                rule(&["create"])
                    .groups(&[AUTHN])
                    .resources(&["tokenreviews"]),
                rule(&["create"])
                    .groups(&[AUTHZ])
                    .resources(&["subjectaccessreviews"]),
                rule(&["list", "watch"]).groups(&["*"]).resources(&["*"]),
                rule(&["create"])
                    .groups(&[LEGACY])
                    .resources(&["serviceaccounts/token"]),
            ],
        ),
        cluster_role(
            "system:kube-dns",
            vec![rule(&["list", "watch"])
                .groups(&[LEGACY])
                .resources(&["endpoints", "services"])],
        ),
        cluster_role(
            "system:persistent-volume-provisioner",
            vec![
                rule(&["get", "list", "watch", "create", "delete"])
                    .groups(&[LEGACY])
                    .resources(&["persistentvolumes"]),
                rule(&["get", "list", "watch", "update"])
                    .groups(&[LEGACY])
                    .resources(&["persistentvolumeclaims"]),
                rule(READ).groups(&[STORAGE]).resources(&["storageclasses"]),
                rule(&["watch"]).groups(&[LEGACY]).resources(&["events"]),
                events_rule(),
            ],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![rule(&["create"])
                .groups(&[CERTS])
                .resources(&["certificatesigningrequests/nodeclient"])],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![rule(&["create"])
                .groups(&[CERTS])
                .resources(&["certificatesigningrequests/selfnodeclient"])],
        ),
        cluster_role(
            "system:volume-scheduler",
            vec![
                rule(READ_UPDATE)
                    .groups(&[LEGACY])
                    .resources(&["persistentvolumes"]),
                rule(READ).groups(&[STORAGE]).resources(&["storageclasses"]),
                rule(READ_UPDATE)
                    .groups(&[LEGACY])
                    .resources(&["persistentvolumeclaims"]),
            ],
        ),
        approver(
            "system:certificates.k8s.io:legacy-unknown-approver",
            "kubernetes.io/legacy-unknown",
        ),
        approver(
            "system:certificates.k8s.io:kubelet-serving-approver",
            "kubernetes.io/kubelet-serving",
        ),
        approver(
            "system:certificates.k8s.io:kube-apiserver-client-approver",
            "kubernetes.io/kube-apiserver-client",
        ),
        approver(
            "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
            "kubernetes.io/kube-apiserver-client-kubelet",
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            vec![rule(&["get"]).urls(&[
                "/.well-known/openid-configuration",
                "/.well-known/openid-configuration/",
                "/openid/v1/jwks",
                "/openid/v1/jwks/",
            ])],
        ),
        cluster_role(
            "system:kubelet-api-admin",
            vec![
                rule(&["get", "list", "watch"])
                    .groups(&[LEGACY])
                    .resources(&["nodes"]),
                rule(&["proxy"]).groups(&[LEGACY]).resources(&["nodes"]),
                rule(&["*"]).groups(&[LEGACY]).resources(&[
                    "nodes/proxy",
                    "nodes/metrics",
                    "nodes/stats",
                    "nodes/log",
                ]),
                // KubeletFineGrainedAuthz (beta, on in v1.33)
                rule(&["*"]).groups(&[LEGACY]).resources(&[
                    "nodes/pods",
                    "nodes/healthz",
                    "nodes/configz",
                ]),
            ],
        ),
        cluster_role(
            "system:node-proxier",
            vec![
                rule(&["list", "watch"])
                    .groups(&[LEGACY])
                    .resources(&["services", "endpoints"]),
                rule(&["get", "list", "watch"])
                    .groups(&[LEGACY])
                    .resources(&["nodes"]),
                events_rule(),
                // MultiCIDRServiceAllocator (GA in v1.33)
                rule(&["list", "watch"])
                    .groups(&[NETWORKING])
                    .resources(&["servicecidrs"]),
                rule(&["list", "watch"])
                    .groups(&[DISCOVERY])
                    .resources(&["endpointslices"]),
            ],
        ),
        cluster_role("system:kube-scheduler", kube_scheduler()),
    ]
}

/// `ClusterRoleBindings()` of policy.go. `system:node` is bound to no one (the Node
/// authorizer replaced the binding); `system:node-bootstrapper` is not bound at all.
pub(super) fn cluster_role_bindings() -> Vec<Value> {
    vec![
        cluster_binding("cluster-admin", &[Subj::Group("system:masters")]),
        cluster_binding("system:monitoring", &[Subj::Group("system:monitoring")]),
        cluster_binding("system:discovery", &[Subj::Group("system:authenticated")]),
        cluster_binding("system:basic-user", &[Subj::Group("system:authenticated")]),
        cluster_binding(
            "system:public-info-viewer",
            &[
                Subj::Group("system:authenticated"),
                Subj::Group("system:unauthenticated"),
            ],
        ),
        cluster_binding("system:node-proxier", &[Subj::User("system:kube-proxy")]),
        cluster_binding(
            "system:kube-controller-manager",
            &[Subj::User("system:kube-controller-manager")],
        ),
        cluster_binding("system:kube-dns", &[Subj::Sa("kube-system", "kube-dns")]),
        cluster_binding(
            "system:kube-scheduler",
            &[Subj::User("system:kube-scheduler")],
        ),
        cluster_binding(
            "system:volume-scheduler",
            &[Subj::User("system:kube-scheduler")],
        ),
        cluster_binding("system:node", &[]),
        cluster_binding(
            "system:service-account-issuer-discovery",
            &[Subj::Group("system:serviceaccounts")],
        ),
    ]
}
