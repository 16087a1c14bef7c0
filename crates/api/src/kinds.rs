//! Upstream's per-kind validation (`Validate` / `ValidateUpdate` of the registry
//! strategies, `pkg/apis/*/validation`) for the built-in kinds: field errors with
//! upstream's paths and messages, run on the defaulted object; on update (`old`) also the
//! immutability rules. Metadata (names, labels, annotations…) is checked elsewhere
//! (`meta::validate`); so are CRDs and custom resources.

// A guard on an enum arm would fall through to the "unsupported value" arm below it.
#![allow(clippy::collapsible_match)]

mod admission_policy;
mod apiregistration;
mod apps;
mod batch;
mod core_config;
mod core_container;
mod core_pod;
mod core_service;
mod core_storage;
pub mod cron;
mod flowcontrol;
mod misc;
mod networking;
mod policy;
mod rbac;
mod storage;
mod util;

use serde_json::Value;

use crate::status::StatusCause;

pub use admission_policy::{cel_env, match_condition_env};
pub use core_pod::{ephemeral_containers_update, pod_resize_update};
pub use cron::parse_standard as parse_cron_schedule;
pub use util::Quantity;

/// The field errors of `obj` (stored under `group`/`resource`); `old` is the stored
/// object on update. Kinds without rules here return nothing.
pub fn validate(group: &str, resource: &str, obj: &Value, old: Option<&Value>) -> Vec<StatusCause> {
    match (group, resource) {
        ("", "pods") => core_pod::validate_pod(obj, old),
        ("", "podtemplates") => core_pod::validate_pod_template(obj),
        ("", "replicationcontrollers") => apps::replication_controller(obj),
        ("", "services") => core_service::service(obj),
        ("", "endpoints") => core_service::endpoints(obj),
        ("", "configmaps") => core_config::config_map(obj, old),
        ("", "secrets") => core_config::secret(obj, old),
        ("", "namespaces") => core_config::namespace(obj),
        ("", "nodes") => core_config::node(obj, old),
        ("", "events") => core_config::event(obj),
        ("", "limitranges") => core_config::limit_range(obj),
        ("", "resourcequotas") => core_config::resource_quota(obj, old),
        ("", "persistentvolumes") => core_storage::persistent_volume(obj, old),
        ("", "persistentvolumeclaims") => core_storage::persistent_volume_claim(obj, old),
        ("apps", "deployments") => apps::deployment(obj, old),
        ("apps", "replicasets") => apps::replica_set(obj, old),
        ("apps", "statefulsets") => apps::stateful_set(obj, old),
        ("apps", "daemonsets") => apps::daemon_set(obj, old),
        ("batch", "jobs") => batch::job(obj, old),
        ("batch", "cronjobs") => batch::cron_job(obj, old),
        ("rbac.authorization.k8s.io", "roles") => rbac::role(obj, true),
        ("rbac.authorization.k8s.io", "clusterroles") => rbac::role(obj, false),
        ("rbac.authorization.k8s.io", "rolebindings") => rbac::binding(obj, old, true),
        ("rbac.authorization.k8s.io", "clusterrolebindings") => rbac::binding(obj, old, false),
        ("networking.k8s.io", "ingresses") => networking::ingress(obj),
        ("networking.k8s.io", "ingressclasses") => networking::ingress_class(obj, old),
        ("networking.k8s.io", "networkpolicies") => networking::network_policy(obj),
        ("policy", "poddisruptionbudgets") => policy::pod_disruption_budget(obj),
        ("autoscaling", "horizontalpodautoscalers") => policy::horizontal_pod_autoscaler(obj),
        ("storage.k8s.io", "storageclasses") => storage::storage_class(obj, old),
        ("node.k8s.io", "runtimeclasses") => storage::runtime_class(obj, old),
        ("scheduling.k8s.io", "priorityclasses") => storage::priority_class(obj, old),
        ("coordination.k8s.io", "leases") => storage::lease(obj),
        ("discovery.k8s.io", "endpointslices") => misc::endpoint_slice(obj, old),
        ("certificates.k8s.io", "certificatesigningrequests") => {
            misc::certificate_signing_request(obj)
        }
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations") => {
            misc::webhook_configuration(obj, false)
        }
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations") => {
            misc::webhook_configuration(obj, true)
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => {
            admission_policy::validating_admission_policy(obj)
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => {
            admission_policy::validating_admission_policy_binding(obj)
        }
        ("apiregistration.k8s.io", "apiservices") => apiregistration::api_service(obj),
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => flowcontrol::flow_schema(obj),
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => {
            flowcontrol::priority_level(obj)
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
