//! `controller_policy.go`: one `system:controller:<name>` ClusterRole per
//! controller-manager service account (`--use-service-account-credentials`), each
//! bound to `kube-system/<name>`. Feature-gated roles follow v1.33's defaults
//! (resource-claim-controller, device-taint-eviction-controller,
//! volumeattributesclass-protection-controller, the ClusterTrustBundle publisher and
//! the storage-version controllers are off).

use serde_json::Value;

use super::{cluster_role, events_rule, rule};
use crate::rule::PolicyRule;

const LEGACY: &str = "";
const APPS: &str = "apps";
const AUTHZ: &str = "authorization.k8s.io";
const AUTOSCALING: &str = "autoscaling";
const BATCH: &str = "batch";
const CERTS: &str = "certificates.k8s.io";
const DISCOVERY: &str = "discovery.k8s.io";
const EXTENSIONS: &str = "extensions";
const POLICY: &str = "policy";
const RBAC: &str = "rbac.authorization.k8s.io";
const STORAGE: &str = "storage.k8s.io";
const NETWORKING: &str = "networking.k8s.io";
const ADMISSION: &str = "admissionregistration.k8s.io";

fn r(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    rule(verbs).groups(groups).resources(resources)
}

/// (service account name, ClusterRole) in upstream's registration order.
pub(super) fn controller_roles() -> Vec<(&'static str, Value)> {
    let defs: Vec<(&'static str, Vec<PolicyRule>)> = vec![
        (
            "attachdetach-controller",
            vec![
                r(
                    &["list", "watch"],
                    &[LEGACY],
                    &["persistentvolumes", "persistentvolumeclaims"],
                ),
                r(&["get", "list", "watch"], &[LEGACY], &["nodes"]),
                r(&["patch", "update"], &[LEGACY], &["nodes/status"]),
                r(&["list", "watch"], &[LEGACY], &["pods"]),
                events_rule(),
                r(
                    &["get", "create", "delete", "list", "watch"],
                    &[STORAGE],
                    &["volumeattachments"],
                ),
                r(&["get", "watch", "list"], &[STORAGE], &["csidrivers"]),
                r(&["get", "watch", "list"], &[STORAGE], &["csinodes"]),
            ],
        ),
        (
            "clusterrole-aggregation-controller",
            vec![r(
                &["escalate", "get", "list", "watch", "update", "patch"],
                &[RBAC],
                &["clusterroles"],
            )],
        ),
        (
            "cronjob-controller",
            vec![
                r(&["get", "list", "watch", "update"], &[BATCH], &["cronjobs"]),
                r(
                    &[
                        "get", "list", "watch", "create", "update", "delete", "patch",
                    ],
                    &[BATCH],
                    &["jobs"],
                ),
                r(&["update"], &[BATCH], &["cronjobs/status"]),
                r(&["update"], &[BATCH], &["cronjobs/finalizers"]),
                r(&["list", "watch", "delete"], &[LEGACY], &["pods"]),
                events_rule(),
            ],
        ),
        (
            "daemon-set-controller",
            vec![
                r(
                    &["get", "list", "watch"],
                    &[EXTENSIONS, APPS],
                    &["daemonsets"],
                ),
                r(&["update"], &[EXTENSIONS, APPS], &["daemonsets/status"]),
                r(&["update"], &[EXTENSIONS, APPS], &["daemonsets/finalizers"]),
                r(&["list", "watch"], &[LEGACY], &["nodes"]),
                r(
                    &["list", "watch", "create", "delete", "patch"],
                    &[LEGACY],
                    &["pods"],
                ),
                r(&["create"], &[LEGACY], &["pods/binding"]),
                r(
                    &[
                        "get", "list", "watch", "create", "delete", "update", "patch",
                    ],
                    &[APPS],
                    &["controllerrevisions"],
                ),
                events_rule(),
            ],
        ),
        (
            "deployment-controller",
            vec![
                r(
                    &["get", "list", "watch", "update"],
                    &[EXTENSIONS, APPS],
                    &["deployments"],
                ),
                r(&["update"], &[EXTENSIONS, APPS], &["deployments/status"]),
                r(
                    &["update"],
                    &[EXTENSIONS, APPS],
                    &["deployments/finalizers"],
                ),
                r(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    &[APPS, EXTENSIONS],
                    &["replicasets"],
                ),
                r(&["get", "list", "watch", "update"], &[LEGACY], &["pods"]),
                events_rule(),
            ],
        ),
        (
            "disruption-controller",
            vec![
                r(
                    &["get", "list", "watch"],
                    &[EXTENSIONS, APPS],
                    &["deployments"],
                ),
                r(
                    &["get", "list", "watch"],
                    &[APPS, EXTENSIONS],
                    &["replicasets"],
                ),
                r(
                    &["get", "list", "watch"],
                    &[LEGACY],
                    &["replicationcontrollers"],
                ),
                r(
                    &["get", "list", "watch"],
                    &[POLICY],
                    &["poddisruptionbudgets"],
                ),
                r(&["get", "list", "watch"], &[APPS], &["statefulsets"]),
                r(&["update"], &[POLICY], &["poddisruptionbudgets/status"]),
                r(&["patch", "update"], &[LEGACY], &["pods/status"]),
                r(&["get"], &["*"], &["*/scale"]),
                events_rule(),
            ],
        ),
        (
            "endpoint-controller",
            vec![
                r(&["get", "list", "watch"], &[LEGACY], &["services", "pods"]),
                r(
                    &["get", "list", "watch", "create", "update", "delete"],
                    &[LEGACY],
                    &["endpoints"],
                ),
                r(&["create"], &[LEGACY], &["endpoints/restricted"]),
                events_rule(),
            ],
        ),
        (
            "endpointslice-controller",
            vec![
                r(
                    &["get", "list", "watch"],
                    &[LEGACY],
                    &["services", "pods", "nodes"],
                ),
                r(&["update"], &[LEGACY], &["services/finalizers"]),
                r(
                    &["get", "list", "watch", "create", "update", "delete"],
                    &[DISCOVERY],
                    &["endpointslices"],
                ),
                events_rule(),
            ],
        ),
        (
            "endpointslicemirroring-controller",
            vec![
                r(
                    &["get", "list", "watch"],
                    &[LEGACY],
                    &["services", "endpoints"],
                ),
                r(&["update"], &[LEGACY], &["services/finalizers"]),
                r(&["update"], &[LEGACY], &["endpoints/finalizers"]),
                r(
                    &["get", "list", "watch", "create", "update", "delete"],
                    &[DISCOVERY],
                    &["endpointslices"],
                ),
                events_rule(),
            ],
        ),
        (
            "expand-controller",
            vec![
                r(
                    &["get", "list", "watch", "update", "patch"],
                    &[LEGACY],
                    &["persistentvolumes"],
                ),
                r(
                    &["update", "patch"],
                    &[LEGACY],
                    &["persistentvolumeclaims/status"],
                ),
                r(
                    &["get", "list", "watch"],
                    &[LEGACY],
                    &["persistentvolumeclaims"],
                ),
                events_rule(),
                // volume plugin - portworx
                r(&["get"], &[LEGACY], &["services"]),
            ],
        ),
        (
            "ephemeral-volume-controller",
            vec![
                r(&["get", "list", "watch"], &[LEGACY], &["pods"]),
                r(&["update"], &[LEGACY], &["pods/finalizers"]),
                r(
                    &["get", "list", "watch", "create"],
                    &[LEGACY],
                    &["persistentvolumeclaims"],
                ),
                events_rule(),
            ],
        ),
        (
            "generic-garbage-collector",
            vec![
                r(
                    &["get", "list", "watch", "patch", "update", "delete"],
                    &["*"],
                    &["*"],
                ),
                events_rule(),
            ],
        ),
        (
            "horizontal-pod-autoscaler",
            vec![
                r(
                    &["get", "list", "watch"],
                    &[AUTOSCALING],
                    &["horizontalpodautoscalers"],
                ),
                r(
                    &["update"],
                    &[AUTOSCALING],
                    &["horizontalpodautoscalers/status"],
                ),
                r(&["get", "update"], &["*"], &["*/scale"]),
                r(&["list", "watch"], &[LEGACY], &["pods"]),
                r(&["list", "watch"], &["metrics.k8s.io"], &["pods"]),
                r(
                    &["get", "list", "watch"],
                    &["custom.metrics.k8s.io"],
                    &["*"],
                ),
                r(
                    &["get", "list", "watch"],
                    &["external.metrics.k8s.io"],
                    &["*"],
                ),
                events_rule(),
            ],
        ),
        (
            "job-controller",
            vec![
                r(
                    &["get", "list", "watch", "update", "patch"],
                    &[BATCH],
                    &["jobs"],
                ),
                r(&["update"], &[BATCH], &["jobs/status"]),
                r(&["update"], &[BATCH], &["jobs/finalizers"]),
                r(
                    &["list", "watch", "create", "delete", "patch"],
                    &[LEGACY],
                    &["pods"],
                ),
                events_rule(),
            ],
        ),
        (
            "namespace-controller",
            vec![
                r(
                    &["get", "list", "watch", "delete"],
                    &[LEGACY],
                    &["namespaces"],
                ),
                r(
                    &["update"],
                    &[LEGACY],
                    &["namespaces/finalize", "namespaces/status"],
                ),
                r(
                    &["get", "list", "watch", "delete", "deletecollection"],
                    &["*"],
                    &["*"],
                ),
            ],
        ),
        (
            "node-controller",
            vec![
                r(
                    &["get", "list", "watch", "update", "delete", "patch"],
                    &[LEGACY],
                    &["nodes"],
                ),
                r(&["patch", "update"], &[LEGACY], &["nodes/status"]),
                r(&["patch", "update"], &[LEGACY], &["pods/status"]),
                r(&["list", "watch", "get", "delete"], &[LEGACY], &["pods"]),
                events_rule(),
            ],
        ),
        (
            "persistent-volume-binder",
            vec![
                r(
                    &["get", "list", "watch", "update", "create", "delete"],
                    &[LEGACY],
                    &["persistentvolumes"],
                ),
                r(&["update"], &[LEGACY], &["persistentvolumes/status"]),
                r(
                    &["get", "list", "watch", "update"],
                    &[LEGACY],
                    &["persistentvolumeclaims"],
                ),
                r(&["update"], &[LEGACY], &["persistentvolumeclaims/status"]),
                r(
                    &["list", "watch", "get", "create", "delete"],
                    &[LEGACY],
                    &["pods"],
                ),
                r(&["get", "list", "watch"], &[STORAGE], &["storageclasses"]),
                r(&["list", "watch"], &[LEGACY], &["nodes"]),
                events_rule(),
                // recyclerClient.WatchPod
                r(&["watch"], &[LEGACY], &["events"]),
                // volume plugin - portworx
                r(&["get"], &[LEGACY], &["services"]),
            ],
        ),
        (
            "pod-garbage-collector",
            vec![
                r(&["list", "watch", "delete"], &[LEGACY], &["pods"]),
                r(&["get", "list", "watch"], &[LEGACY], &["nodes"]),
                r(&["patch"], &[LEGACY], &["pods/status"]),
            ],
        ),
        (
            "replicaset-controller",
            vec![
                r(
                    &["get", "list", "watch", "update"],
                    &[APPS, EXTENSIONS],
                    &["replicasets"],
                ),
                r(&["update"], &[APPS, EXTENSIONS], &["replicasets/status"]),
                r(
                    &["update"],
                    &[APPS, EXTENSIONS],
                    &["replicasets/finalizers"],
                ),
                r(
                    &["list", "watch", "patch", "create", "delete"],
                    &[LEGACY],
                    &["pods"],
                ),
                events_rule(),
            ],
        ),
        (
            "replication-controller",
            vec![
                r(
                    &["get", "list", "watch", "update"],
                    &[LEGACY],
                    &["replicationcontrollers"],
                ),
                r(&["update"], &[LEGACY], &["replicationcontrollers/status"]),
                r(
                    &["update"],
                    &[LEGACY],
                    &["replicationcontrollers/finalizers"],
                ),
                r(
                    &["list", "watch", "patch", "create", "delete"],
                    &[LEGACY],
                    &["pods"],
                ),
                events_rule(),
            ],
        ),
        (
            "resourcequota-controller",
            vec![
                r(&["list", "watch"], &["*"], &["*"]),
                r(&["update"], &[LEGACY], &["resourcequotas/status"]),
                events_rule(),
            ],
        ),
        (
            "route-controller",
            vec![
                r(&["list", "watch"], &[LEGACY], &["nodes"]),
                r(&["patch"], &[LEGACY], &["nodes/status"]),
                events_rule(),
            ],
        ),
        (
            "service-account-controller",
            vec![
                r(&["create"], &[LEGACY], &["serviceaccounts"]),
                events_rule(),
            ],
        ),
        (
            "service-controller",
            vec![
                r(&["get", "list", "watch"], &[LEGACY], &["services"]),
                r(&["patch", "update"], &[LEGACY], &["services/status"]),
                r(&["list", "watch"], &[LEGACY], &["nodes"]),
                events_rule(),
            ],
        ),
        (
            // MultiCIDRServiceAllocator (GA in v1.33)
            "service-cidrs-controller",
            vec![
                r(
                    &["get", "list", "watch", "patch", "update"],
                    &[NETWORKING],
                    &["servicecidrs"],
                ),
                r(
                    &["patch", "update"],
                    &[NETWORKING],
                    &["servicecidrs/finalizers"],
                ),
                r(
                    &["patch", "update"],
                    &[NETWORKING],
                    &["servicecidrs/status"],
                ),
                r(&["get", "list", "watch"], &[NETWORKING], &["ipaddresses"]),
                events_rule(),
            ],
        ),
        (
            "statefulset-controller",
            vec![
                r(&["list", "watch"], &[LEGACY], &["pods"]),
                r(&["get", "list", "watch"], &[APPS], &["statefulsets"]),
                r(&["update"], &[APPS], &["statefulsets/status"]),
                r(&["update"], &[APPS], &["statefulsets/finalizers"]),
                r(
                    &["get", "create", "delete", "update", "patch"],
                    &[LEGACY],
                    &["pods"],
                ),
                r(
                    &[
                        "get", "create", "delete", "update", "patch", "list", "watch",
                    ],
                    &[APPS],
                    &["controllerrevisions"],
                ),
                r(
                    &["get", "create", "list", "watch"],
                    &[LEGACY],
                    &["persistentvolumeclaims"],
                ),
                r(
                    &["update", "delete"],
                    &[LEGACY],
                    &["persistentvolumeclaims"],
                ),
                r(&["update"], &[LEGACY], &["pods/finalizers"]),
                events_rule(),
            ],
        ),
        (
            "ttl-controller",
            vec![
                r(&["update", "patch", "list", "watch"], &[LEGACY], &["nodes"]),
                events_rule(),
            ],
        ),
        (
            "certificate-controller",
            vec![
                r(
                    &["get", "list", "watch", "delete"],
                    &[CERTS],
                    &["certificatesigningrequests"],
                ),
                r(
                    &["update"],
                    &[CERTS],
                    &[
                        "certificatesigningrequests/status",
                        "certificatesigningrequests/approval",
                    ],
                ),
                r(&["approve"], &[CERTS], &["signers"])
                    .names(&["kubernetes.io/kube-apiserver-client-kubelet"]),
                r(&["sign"], &[CERTS], &["signers"]).names(&[
                    "kubernetes.io/legacy-unknown",
                    "kubernetes.io/kube-apiserver-client",
                    "kubernetes.io/kube-apiserver-client-kubelet",
                    "kubernetes.io/kubelet-serving",
                ]),
                r(&["create"], &[AUTHZ], &["subjectaccessreviews"]),
                events_rule(),
            ],
        ),
        (
            "pvc-protection-controller",
            vec![
                r(
                    &["get", "list", "watch", "update"],
                    &[LEGACY],
                    &["persistentvolumeclaims"],
                ),
                r(&["list", "watch", "get"], &[LEGACY], &["pods"]),
                events_rule(),
            ],
        ),
        (
            "pv-protection-controller",
            vec![
                r(
                    &["get", "list", "watch", "update"],
                    &[LEGACY],
                    &["persistentvolumes"],
                ),
                events_rule(),
            ],
        ),
        (
            "ttl-after-finished-controller",
            vec![
                r(&["get", "list", "watch", "delete"], &[BATCH], &["jobs"]),
                events_rule(),
            ],
        ),
        (
            "root-ca-cert-publisher",
            vec![
                r(&["create", "update"], &[LEGACY], &["configmaps"]),
                events_rule(),
            ],
        ),
        (
            "validatingadmissionpolicy-status-controller",
            vec![
                r(
                    &["get", "list", "watch"],
                    &[ADMISSION],
                    &["validatingadmissionpolicies"],
                ),
                r(
                    &["get", "patch", "update"],
                    &[ADMISSION],
                    &["validatingadmissionpolicies/status"],
                ),
                events_rule(),
            ],
        ),
        (
            "legacy-service-account-token-cleaner",
            vec![
                r(&["get"], &[LEGACY], &["configmaps"])
                    .names(&["kube-apiserver-legacy-service-account-token-tracking"]),
                r(&["patch", "delete"], &[LEGACY], &["secrets"]),
            ],
        ),
        (
            // SELinuxChangePolicy (beta, on in v1.33)
            "selinux-warning-controller",
            vec![
                events_rule(),
                r(&["get", "list", "watch"], &[LEGACY], &["persistentvolumes"]),
                r(
                    &["get", "list", "watch"],
                    &[LEGACY],
                    &["persistentvolumeclaims"],
                ),
                r(&["get", "list", "watch"], &[LEGACY], &["pods"]),
                r(&["get", "list", "watch"], &[STORAGE], &["csidrivers"]),
            ],
        ),
    ];
    defs.into_iter()
        .map(|(sa, rules)| (sa, cluster_role(&format!("system:controller:{sa}"), rules)))
        .collect()
}
