//! Admission plugins (`--enable-admission-plugins`), run on writes after decoding:
//! NamespaceLifecycle is built into the registry; this module holds the others built so
//! far. NodeRestriction (upstream `plugin/pkg/admission/noderestriction`) limits what a
//! kubelet (`system:node:<name>` in `system:nodes`) may write: its own Node and Lease,
//! mirror pods bound to itself, and the status, deletion and eviction of pods bound to it.

pub mod defaults;
pub mod pod_security;
pub mod policy;
pub mod quota;
pub mod service_account;
pub mod webhook;

use ferrokube_api::status::{Status, Subject};
use ferrokube_authz::UserInfo;
use serde_json::Value;

use crate::errors::ApiResult;

/// The enabled plugins.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    pub node_restriction: bool,
    pub priority: bool,
    pub default_toleration_seconds: bool,
    pub limit_ranger: bool,
    pub default_storage_class: bool,
    pub resource_quota: bool,
    pub pod_security: bool,
    pub service_account: bool,
    pub runtime_class: bool,
    pub mutating_webhook: bool,
    pub validating_webhook: bool,
    pub validating_admission_policy: bool,
    /// The stored webhook configurations (fed by a watch).
    pub webhooks: std::sync::Arc<webhook::Webhooks>,
    /// The stored ValidatingAdmissionPolicies and bindings (fed by a watch).
    pub policies: std::sync::Arc<policy::Policies>,
}

/// What a write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    /// A write's operation: an update of the stored object, or a create when there is
    /// none.
    pub fn of_write(old: Option<&Value>) -> Operation {
        if old.is_some() {
            Operation::Update
        } else {
            Operation::Create
        }
    }
}

/// A write as admission sees it.
#[derive(Debug)]
pub struct Attributes<'a> {
    pub user: &'a UserInfo,
    pub operation: Operation,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    /// The new object (create/update).
    pub object: Option<&'a Value>,
    /// The stored object (update/delete).
    pub old: Option<&'a Value>,
}

const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

impl Admission {
    /// Whether no plugin here is enabled (writes skip the checks).
    pub fn is_empty(&self) -> bool {
        !self.node_restriction
    }

    /// Upstream's default-on plugins (those built here) plus `enable`, minus `disable`
    /// (each a list of comma-separated entries, as the flags).
    pub fn from_plugins(enable: &[String], disable: &[String]) -> Admission {
        let listed = |list: &[String], p: &str| {
            list.iter()
                .flat_map(|s| s.split(','))
                .any(|x| x.trim() == p)
        };
        let on =
            |p: &str, default_on: bool| (default_on || listed(enable, p)) && !listed(disable, p);
        Admission {
            node_restriction: on("NodeRestriction", false),
            priority: on("Priority", true),
            default_toleration_seconds: on("DefaultTolerationSeconds", true),
            limit_ranger: on("LimitRanger", true),
            default_storage_class: on("DefaultStorageClass", true),
            resource_quota: on("ResourceQuota", true),
            pod_security: on("PodSecurity", true),
            service_account: on("ServiceAccount", true),
            runtime_class: on("RuntimeClass", true),
            mutating_webhook: on("MutatingAdmissionWebhook", true),
            validating_webhook: on("ValidatingAdmissionWebhook", true),
            validating_admission_policy: on("ValidatingAdmissionPolicy", true),
            webhooks: Default::default(),
            policies: Default::default(),
        }
    }

    /// The webhooks to consult on a write, when any is configured and its plugin is on.
    pub fn webhooks(&self) -> Option<&webhook::Webhooks> {
        let on = self.mutating_webhook || self.validating_webhook;
        (on && !self.webhooks.is_empty()).then_some(&*self.webhooks)
    }

    /// The admission policies to evaluate on a write, when any is bound and the plugin
    /// is on.
    pub fn policies(&self) -> Option<&policy::Policies> {
        (self.validating_admission_policy && !self.policies.is_empty()).then_some(&*self.policies)
    }

    /// The built-in mutating plugins on a new object (`obj` changes in place).
    pub async fn mutate(
        &self,
        registry: &crate::registry::Registry,
        a: &Attributes<'_>,
        obj: &mut Value,
    ) -> ApiResult<()> {
        if a.operation != Operation::Create || !a.subresource.is_empty() {
            return Ok(());
        }
        self.mutate_core(registry, a, obj).await
    }

    /// PodSecurity on a new object (after every mutation). Returns the warnings to send.
    pub async fn check_pod_security(
        &self,
        registry: &crate::registry::Registry,
        a: &Attributes<'_>,
        obj: &Value,
    ) -> ApiResult<Vec<String>> {
        if a.operation != Operation::Create
            || !a.subresource.is_empty()
            || !self.pod_security
            || a.namespace.is_empty()
        {
            return Ok(Vec::new());
        }
        let Some(info) = ferrokube_api::resources::lookup("", "v1", "namespaces") else {
            return Ok(Vec::new());
        };
        let target = crate::registry::Target::builtin(info, None);
        match registry.get(&target, a.namespace).await {
            Ok(ns) => pod_security::admit(&ns, a.resource, a.name, obj),
            Err(_) => Ok(Vec::new()),
        }
    }

    /// ResourceQuota on a new object: the last plugin, charging the namespace's quotas.
    pub async fn charge_quota(
        &self,
        registry: &crate::registry::Registry,
        a: &Attributes<'_>,
        obj: &Value,
    ) -> ApiResult<()> {
        if a.operation != Operation::Create || !a.subresource.is_empty() || !self.resource_quota {
            return Ok(());
        }
        quota::admit(registry, a.group, a.resource, a.namespace, a.name, obj).await
    }

    async fn mutate_core(
        &self,
        registry: &crate::registry::Registry,
        a: &Attributes<'_>,
        obj: &mut Value,
    ) -> ApiResult<()> {
        if !a.group.is_empty() {
            return Ok(());
        }
        match a.resource {
            "pods" => {
                if self.limit_ranger {
                    defaults::limit_ranger(registry, a.namespace, obj, a.name).await?;
                }
                if self.service_account {
                    service_account::admit(registry, a.namespace, obj, a.name).await?;
                }
                if self.priority {
                    defaults::priority(registry, obj, a.name).await?;
                }
                if self.runtime_class {
                    defaults::runtime_class(registry, obj, a.name).await?;
                }
                if self.default_toleration_seconds {
                    defaults::default_tolerations(obj);
                }
            }
            "persistentvolumeclaims" if self.default_storage_class => {
                defaults::default_storage_class(registry, obj).await;
            }
            _ => {}
        }
        Ok(())
    }

    pub fn validate(&self, a: &Attributes<'_>) -> ApiResult<()> {
        if self.node_restriction {
            node_restriction(a)?;
        }
        Ok(())
    }
}

fn node_name(user: &UserInfo) -> Option<&str> {
    if !user.in_group(ferrokube_authz::NODES_GROUP) {
        return None;
    }
    user.name.strip_prefix(ferrokube_authz::NODE_USER_PREFIX)
}

fn forbidden(a: &Attributes<'_>, why: String) -> crate::errors::ApiError {
    Status::forbidden(
        Subject {
            group: a.group,
            resource: a.resource,
            name: a.name,
        },
        &why,
    )
    .into()
}

fn bound_node(obj: Option<&Value>) -> &str {
    obj.and_then(|o| o.pointer("/spec/nodeName"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn node_restriction(a: &Attributes<'_>) -> ApiResult<()> {
    let Some(node) = node_name(a.user) else {
        return Ok(());
    };
    match (a.group, a.resource, a.subresource) {
        ("", "nodes", _) => {
            if a.name != node && !(a.operation == Operation::Create && a.name.is_empty()) {
                return Err(forbidden(
                    a,
                    format!("node {node:?} is not allowed to modify node {:?}", a.name),
                ));
            }
            let created = a
                .object
                .and_then(|o| o.pointer("/metadata/name"))
                .and_then(Value::as_str);
            if let Some(n) = created.filter(|n| *n != node) {
                return Err(forbidden(
                    a,
                    format!("node {node:?} is not allowed to modify node {n:?}"),
                ));
            }
            Ok(())
        }
        ("", "pods", "") => {
            match a.operation {
                Operation::Create => {
                    let mirror = a
                        .object
                        .and_then(|o| o.pointer("/metadata/annotations"))
                        .and_then(|ann| ann.get(MIRROR_ANNOTATION))
                        .is_some();
                    if !mirror {
                        return Err(forbidden(
                        a,
                        format!("pod does not have {MIRROR_ANNOTATION:?} annotation, node {node:?} can only create mirror pods"),
                    ));
                    }
                    if bound_node(a.object) != node {
                        return Err(forbidden(
                        a,
                        format!("node {node:?} can only create pods with spec.nodeName set to itself"),
                    ));
                    }
                    Ok(())
                }
                Operation::Delete => {
                    if bound_node(a.old) != node {
                        return Err(forbidden(
                        a,
                        format!("node {node:?} can only delete pods with spec.nodeName set to itself"),
                    ));
                    }
                    Ok(())
                }
                Operation::Update => Err(forbidden(
                    a,
                    format!("node {node:?} can only update pod status"),
                )),
            }
        }
        ("", "pods", "status") => {
            if bound_node(a.old) != node {
                return Err(forbidden(
                    a,
                    format!("node {node:?} can only update pod status for pods with spec.nodeName set to itself"),
                ));
            }
            Ok(())
        }
        ("", "pods", "eviction") => {
            if bound_node(a.old) != node {
                return Err(forbidden(
                    a,
                    format!("node {node:?} can only evict pods with spec.nodeName set to itself"),
                ));
            }
            Ok(())
        }
        ("coordination.k8s.io", "leases", _) => {
            if a.namespace != "kube-node-lease" || (a.name != node && !a.name.is_empty()) {
                return Err(forbidden(
                    a,
                    "can only access node lease with the same name as the requesting node"
                        .to_string(),
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs<'a>(
        user: &'a UserInfo,
        op: Operation,
        resource: &'a str,
        sub: &'a str,
        name: &'a str,
        object: Option<&'a Value>,
        old: Option<&'a Value>,
    ) -> Attributes<'a> {
        Attributes {
            user,
            operation: op,
            group: "",
            resource,
            subresource: sub,
            namespace: "default",
            name,
            object,
            old,
        }
    }

    #[test]
    fn nodes_write_only_their_own_objects() {
        let adm = Admission::from_plugins(&["NamespaceLifecycle,NodeRestriction".into()], &[]);
        let n1 = UserInfo::new("system:node:n1", &["system:nodes"]);
        assert!(adm
            .validate(&attrs(
                &n1,
                Operation::Update,
                "nodes",
                "status",
                "n1",
                None,
                None
            ))
            .is_ok());
        let e = adm
            .validate(&attrs(
                &n1,
                Operation::Update,
                "nodes",
                "",
                "n2",
                None,
                None,
            ))
            .unwrap_err()
            .into_status("", "nodes", "n2");
        assert_eq!(e.code, 403);
        assert!(
            e.message
                .contains(r#"node "n1" is not allowed to modify node "n2""#),
            "{}",
            e.message
        );
        let mine = json!({"spec": {"nodeName": "n1"}});
        let theirs = json!({"spec": {"nodeName": "n2"}});
        assert!(adm
            .validate(&attrs(
                &n1,
                Operation::Update,
                "pods",
                "status",
                "p",
                Some(&mine),
                Some(&mine)
            ))
            .is_ok());
        assert!(adm
            .validate(&attrs(
                &n1,
                Operation::Update,
                "pods",
                "status",
                "p",
                Some(&theirs),
                Some(&theirs)
            ))
            .is_err());
        assert!(adm
            .validate(&attrs(
                &n1,
                Operation::Create,
                "pods",
                "",
                "p",
                Some(&mine),
                None
            ))
            .is_err());
        let mirror = json!({"metadata": {"annotations": {MIRROR_ANNOTATION: "x"}}, "spec": {"nodeName": "n1"}});
        assert!(adm
            .validate(&attrs(
                &n1,
                Operation::Create,
                "pods",
                "",
                "p",
                Some(&mirror),
                None
            ))
            .is_ok());
        assert!(adm
            .validate(&attrs(
                &n1,
                Operation::Delete,
                "pods",
                "",
                "p",
                None,
                Some(&theirs)
            ))
            .is_err());
        let admin = UserInfo::new("admin", &["system:masters"]);
        assert!(adm
            .validate(&attrs(
                &admin,
                Operation::Update,
                "nodes",
                "",
                "n2",
                None,
                None
            ))
            .is_ok());
    }
}
