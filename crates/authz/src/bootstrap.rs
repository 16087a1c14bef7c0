//! Upstream v1.33's bootstrap RBAC policy (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy`:
//! `policy.go`, `controller_policy.go`, `namespace_policy.go`) with v1.33's default
//! feature gates, as JSON objects for the API server to reconcile at start. Every
//! object carries the `kubernetes.io/bootstrapping: rbac-defaults` label and the
//! `rbac.authorization.kubernetes.io/autoupdate: "true"` annotation; rules are
//! normalised (sorted, de-duplicated) as upstream's `RuleOrDie` does.
//!
//! Gates that change the policy, at their v1.33 defaults: on — KubeletFineGrainedAuthz
//! (kubelet-api-admin's nodes/pods,healthz,configz), MultiCIDRServiceAllocator
//! (service-cidrs-controller, node-proxier's servicecidrs), SELinuxChangePolicy
//! (selinux-warning-controller); off — DynamicResourceAllocation, DRADeviceTaints,
//! ClusterTrustBundle, VolumeAttributesClass, StorageVersionAPI,
//! StorageVersionMigrator, KubeletServiceAccountTokenForCredentialProviders.

mod controllers;
mod roles;

use serde_json::{json, Value};

use crate::rule::PolicyRule;

pub use roles::node_rules;

/// `kubernetes.io/bootstrapping` label value.
pub const BOOTSTRAPPING_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");
/// Annotation that lets reconciliation update a bootstrap object (`"false"` protects it).
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";

pub(crate) const READ: &[&str] = &["get", "list", "watch"];
pub(crate) const WRITE: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];
pub(crate) const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];
pub(crate) const READ_UPDATE: &[&str] = &["get", "list", "watch", "update", "patch"];

/// `rbacv1helpers.NewRule(verbs...)`.
pub(crate) fn rule(verbs: &[&str]) -> PolicyRule {
    PolicyRule::new(verbs)
}

/// Create/update/patch of events in both event groups.
pub(crate) fn events_rule() -> PolicyRule {
    rule(&["create", "update", "patch"])
        .groups(&["", "events.k8s.io"])
        .resources(&["events"])
}

fn metadata(name: &str, namespace: Option<&str>, extra_labels: &[(&str, &str)]) -> Value {
    let mut labels = serde_json::Map::new();
    for (k, v) in extra_labels {
        labels.insert((*k).to_owned(), json!(v));
    }
    labels.insert(
        BOOTSTRAPPING_LABEL.0.to_owned(),
        json!(BOOTSTRAPPING_LABEL.1),
    );
    let mut meta = json!({
        "name": name,
        "labels": labels,
        "annotations": {AUTOUPDATE_ANNOTATION: "true"},
    });
    if let (Some(ns), Some(m)) = (namespace, meta.as_object_mut()) {
        m.insert("namespace".to_owned(), json!(ns));
    }
    meta
}

fn rules_json(rules: Vec<PolicyRule>) -> Value {
    Value::Array(
        rules
            .into_iter()
            .map(|r| r.normalized().to_json())
            .collect(),
    )
}

/// A bootstrap ClusterRole.
pub(crate) fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata(name, None, &[]),
        "rules": rules_json(rules),
    })
}

/// A bootstrap ClusterRole with extra labels and/or an aggregationRule selecting
/// `aggregate_from` (`matchLabels: {<label>: "true"}`).
pub(crate) fn cluster_role_ext(
    name: &str,
    labels: &[(&str, &str)],
    aggregate_from: Option<&str>,
    rules: Vec<PolicyRule>,
) -> Value {
    let mut role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata(name, None, labels),
        "rules": rules_json(rules),
    });
    if let (Some(label), Some(m)) = (aggregate_from, role.as_object_mut()) {
        m.insert(
            "aggregationRule".to_owned(),
            json!({"clusterRoleSelectors": [{"matchLabels": {label: "true"}}]}),
        );
    }
    role
}

/// A binding subject: `User`/`Group` (with the RBAC apiGroup) or `ServiceAccount`
/// (`"ns/name"`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Subj<'a> {
    User(&'a str),
    Group(&'a str),
    Sa(&'a str, &'a str),
}

fn subjects_json(subjects: &[Subj<'_>]) -> Value {
    Value::Array(
        subjects
            .iter()
            .map(|s| match s {
                Subj::User(n) => {
                    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": n})
                }
                Subj::Group(n) => {
                    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": n})
                }
                Subj::Sa(ns, n) => json!({"kind": "ServiceAccount", "name": n, "namespace": ns}),
            })
            .collect(),
    )
}

/// A bootstrap ClusterRoleBinding named after its ClusterRole.
pub(crate) fn cluster_binding(role: &str, subjects: &[Subj<'_>]) -> Value {
    let mut b = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": metadata(role, None, &[]),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
    });
    if let (false, Some(m)) = (subjects.is_empty(), b.as_object_mut()) {
        m.insert("subjects".to_owned(), subjects_json(subjects));
    }
    b
}

fn namespaced_role(ns: &str, name: &str, rules: Vec<PolicyRule>) -> (String, Value) {
    (
        ns.to_owned(),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata(name, Some(ns), &[]),
            "rules": rules_json(rules),
        }),
    )
}

fn namespaced_binding(ns: &str, name: &str, role: &str, subjects: &[Subj<'_>]) -> (String, Value) {
    (
        ns.to_owned(),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata(name, Some(ns), &[]),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": subjects_json(subjects),
        }),
    )
}

/// Every bootstrap ClusterRole: `policy.go`'s, then the `system:controller:*` roles.
pub fn cluster_roles() -> Vec<Value> {
    let mut out = roles::cluster_roles();
    out.extend(controllers::controller_roles().into_iter().map(|(_, r)| r));
    out
}

/// Every bootstrap ClusterRoleBinding: `policy.go`'s, then one per controller role to
/// the controller's service account in kube-system.
pub fn cluster_role_bindings() -> Vec<Value> {
    let mut out = roles::cluster_role_bindings();
    for (sa, _) in controllers::controller_roles() {
        out.push(cluster_binding(
            &format!("system:controller:{sa}"),
            &[Subj::Sa("kube-system", sa)],
        ));
    }
    out
}

const KUBE_SYSTEM: &str = "kube-system";
const KUBE_PUBLIC: &str = "kube-public";
const KCM: &str = "system:kube-controller-manager";
const SCHEDULER: &str = "system:kube-scheduler";

fn leader_locking_rules() -> Vec<PolicyRule> {
    let verbs = &["create", "get", "list", "update", "watch"];
    vec![
        rule(verbs)
            .groups(&["coordination.k8s.io"])
            .resources(&["leases"]),
        rule(verbs)
            .groups(&["coordination.k8s.io"])
            .resources(&["leasecandidates"]),
    ]
}

/// The bootstrap Roles of `namespace_policy.go`, as (namespace, Role).
pub fn namespaced_roles() -> Vec<(String, Value)> {
    vec![
        namespaced_role(
            KUBE_SYSTEM,
            "extension-apiserver-authentication-reader",
            vec![rule(READ)
                .groups(&[""])
                .resources(&["configmaps"])
                .names(&["extension-apiserver-authentication"])],
        ),
        namespaced_role(
            KUBE_SYSTEM,
            "system:controller:bootstrap-signer",
            vec![rule(READ).groups(&[""]).resources(&["secrets"])],
        ),
        namespaced_role(
            KUBE_SYSTEM,
            "system:controller:cloud-provider",
            vec![rule(&["create", "get", "list", "watch"])
                .groups(&[""])
                .resources(&["configmaps"])],
        ),
        namespaced_role(
            KUBE_SYSTEM,
            "system:controller:token-cleaner",
            vec![
                rule(&["get", "list", "watch", "delete"])
                    .groups(&[""])
                    .resources(&["secrets"]),
                events_rule(),
            ],
        ),
        namespaced_role(
            KUBE_SYSTEM,
            "system::leader-locking-kube-controller-manager",
            leader_locking_rules(),
        ),
        namespaced_role(
            KUBE_SYSTEM,
            "system::leader-locking-kube-scheduler",
            leader_locking_rules(),
        ),
        namespaced_role(
            KUBE_PUBLIC,
            "system:controller:bootstrap-signer",
            vec![
                rule(READ).groups(&[""]).resources(&["configmaps"]),
                rule(&["update"])
                    .groups(&[""])
                    .resources(&["configmaps"])
                    .names(&["cluster-info"]),
                events_rule(),
            ],
        ),
    ]
}

/// The bootstrap RoleBindings of `namespace_policy.go`, as (namespace, RoleBinding).
pub fn namespaced_role_bindings() -> Vec<(String, Value)> {
    vec![
        namespaced_binding(
            KUBE_SYSTEM,
            "system::extension-apiserver-authentication-reader",
            "extension-apiserver-authentication-reader",
            &[Subj::User(KCM), Subj::User(SCHEDULER)],
        ),
        namespaced_binding(
            KUBE_SYSTEM,
            "system::leader-locking-kube-controller-manager",
            "system::leader-locking-kube-controller-manager",
            &[
                Subj::User(KCM),
                Subj::Sa(KUBE_SYSTEM, "kube-controller-manager"),
                Subj::Sa(KUBE_SYSTEM, "leader-election-controller"),
            ],
        ),
        namespaced_binding(
            KUBE_SYSTEM,
            "system::leader-locking-kube-scheduler",
            "system::leader-locking-kube-scheduler",
            &[
                Subj::User(SCHEDULER),
                Subj::Sa(KUBE_SYSTEM, "kube-scheduler"),
            ],
        ),
        namespaced_binding(
            KUBE_SYSTEM,
            "system:controller:bootstrap-signer",
            "system:controller:bootstrap-signer",
            &[Subj::Sa(KUBE_SYSTEM, "bootstrap-signer")],
        ),
        namespaced_binding(
            KUBE_SYSTEM,
            "system:controller:cloud-provider",
            "system:controller:cloud-provider",
            &[Subj::Sa(KUBE_SYSTEM, "cloud-provider")],
        ),
        namespaced_binding(
            KUBE_SYSTEM,
            "system:controller:token-cleaner",
            "system:controller:token-cleaner",
            &[Subj::Sa(KUBE_SYSTEM, "token-cleaner")],
        ),
        namespaced_binding(
            KUBE_PUBLIC,
            "system:controller:bootstrap-signer",
            "system:controller:bootstrap-signer",
            &[Subj::Sa(KUBE_SYSTEM, "bootstrap-signer")],
        ),
    ]
}

/// [`cluster_roles`] with the aggregated roles (admin, edit, view) filled in as the
/// clusterrole-aggregation controller leaves them (iterated to a fixed point, since
/// admin aggregates edit which aggregates view).
pub fn aggregated_cluster_roles() -> Vec<Value> {
    let mut roles = cluster_roles();
    for _ in 0..8 {
        let snapshot = roles.clone();
        let mut changed = false;
        for role in roles.iter_mut() {
            if let Some(rules) = crate::aggregate(role, &snapshot) {
                let rules = Value::Array(rules);
                if role.get("rules") != Some(&rules) {
                    role["rules"] = rules;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    roles
}

/// Loads the whole bootstrap policy into an [`crate::Rbac`] (aggregated roles filled
/// in): what a fresh cluster's RBAC state is after the API server's reconciliation.
pub fn load(rbac: &crate::Rbac) {
    let ns_roles: Vec<Value> = namespaced_roles().into_iter().map(|(_, r)| r).collect();
    let ns_bindings: Vec<Value> = namespaced_role_bindings()
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    rbac.replace_all(
        &ns_roles,
        &aggregated_cluster_roles(),
        &ns_bindings,
        &cluster_role_bindings(),
    );
}

#[cfg(test)]
#[path = "bootstrap_tests.rs"]
mod tests;
