//! Authorization for the ferrokube API server, as a pure library: no I/O, no tasks. The
//! API server feeds it RBAC objects and the objects the Node authorizer's graph needs
//! (from its watch cache), and calls [`Authorizer::authorize`] once per request — the
//! `authorization` filter of upstream's `DefaultBuildHandlerChain`, SubjectAccessReviews
//! (`can_i` is just `authorize`) and the kubelet's delegated authorization alike.
//!
//! Mirrors upstream Kubernetes v1.33:
//! - [`Attributes`], [`Decision`], [`Authorizer`] — `k8s.io/apiserver/pkg/authorization/authorizer`.
//! - [`Union`] (first Allow or Deny wins), [`AlwaysAllow`], [`AlwaysDeny`],
//!   [`PrivilegedGroups`] (kube-apiserver always puts `system:masters` first) and
//!   [`parse_modes`] / [`build_authorizer`] for `--authorization-mode=Node,RBAC`.
//! - [`Rbac`] — `plugin/pkg/auth/authorizer/rbac` plus `pkg/registry/rbac/validation`:
//!   evaluation indexed by subject (user name, group) rather than a scan of every
//!   binding, [`Rbac::rules_for`] (SelfSubjectRulesReview), and the escalation checks of
//!   the `policybased` storages: [`Rbac::confirm_no_escalation`], [`Rbac::check_write`].
//! - [`aggregate`] — the clusterrole-aggregation controller's rule computation.
//! - [`bootstrap`] — the bootstrap ClusterRoles, ClusterRoleBindings, Roles and
//!   RoleBindings of `bootstrappolicy` with v1.33's default feature gates.
//! - [`NodeAuthorizer`] — `plugin/pkg/auth/authorizer/node` with its graph.
//!
//! ```text
//! let rbac = Arc::new(Rbac::new());
//! rbac.replace_all(&roles, &cluster_roles, &role_bindings, &cluster_role_bindings); // then
//! rbac.upsert(RbacKind::ClusterRoleBinding, &obj); rbac.remove(kind, ns, name);     // per event
//! let node = Arc::new(NodeAuthorizer::new());
//! node.upsert_pod(&pod); node.remove_pod(ns, name); node.upsert_pv(&pv); ...
//! let authz = build_authorizer(&parse_modes("Node,RBAC")?, rbac.clone(), node.clone())?;
//! match authz.authorize(&attrs) { Decision::Allow { .. } => .., _ => 403 }
//! ```
//!
//! Everything is thread-safe: readers take a read lock on indexed state; updates are
//! cheap incremental index edits.

mod aggregate;
pub mod bootstrap;
mod node;
mod rbac;
mod rule;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

pub use aggregate::{aggregate, label_selector_matches};
pub use node::NodeAuthorizer;
pub use rbac::{Rbac, RbacKind, WriteCheckError};
pub use rule::{
    breakdown_rule, compact_rules, covers, go_quote, go_quote_list, rule_allows, rule_covers,
    rules_allow, PolicyRule,
};

/// `system:masters`: always allowed (upstream's privileged-groups authorizer).
pub const SYSTEM_PRIVILEGED_GROUP: &str = "system:masters";
/// Group of every kubelet identity.
pub const NODES_GROUP: &str = "system:nodes";
/// Prefix of kubelet user names: `system:node:<nodeName>`.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// Prefix of service account user names: `system:serviceaccount:<ns>:<name>`.
pub const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";
/// Group of all service accounts.
pub const ALL_SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// Group of every authenticated user.
pub const ALL_AUTHENTICATED_GROUP: &str = "system:authenticated";
/// Group of anonymous requests.
pub const ALL_UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";

/// The authenticated user of a request (`user.Info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user with these groups (no uid, no extra).
    pub fn new(name: &str, groups: &[&str]) -> Self {
        UserInfo {
            name: name.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..UserInfo::default()
        }
    }

    /// The user a service account token authenticates as: name
    /// `system:serviceaccount:<ns>:<name>`, groups `system:serviceaccounts`,
    /// `system:serviceaccounts:<ns>` and `system:authenticated`.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        UserInfo {
            name: format!("{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}"),
            groups: vec![
                ALL_SERVICE_ACCOUNTS_GROUP.to_owned(),
                format!("{ALL_SERVICE_ACCOUNTS_GROUP}:{namespace}"),
                ALL_AUTHENTICATED_GROUP.to_owned(),
            ],
            ..UserInfo::default()
        }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// What a request asks to do (`authorizer.Attributes`). Resource requests set
/// `resource_request` and the group/resource/namespace/name fields; non-resource
/// requests set `path`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    pub resource_request: bool,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// The request path, for non-resource requests.
    pub path: String,
    /// The raw `fieldSelector` of a list/watch (`spec.nodeName=node-1`): the Node
    /// authorizer lets kubelets list/watch pods only with their own node selected.
    pub field_selector: String,
}

impl Attributes {
    /// A resource request (`api_version` `*`).
    pub fn resource(
        user: UserInfo,
        verb: &str,
        api_group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Self {
        Attributes {
            user,
            verb: verb.to_owned(),
            resource_request: true,
            api_group: api_group.to_owned(),
            api_version: "*".to_owned(),
            resource: resource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            ..Attributes::default()
        }
    }

    /// A non-resource request (`/healthz`, `/version`, `/apis`, ...).
    pub fn non_resource(user: UserInfo, verb: &str, path: &str) -> Self {
        Attributes {
            user,
            verb: verb.to_owned(),
            path: path.to_owned(),
            ..Attributes::default()
        }
    }

    pub fn with_subresource(mut self, subresource: &str) -> Self {
        self.subresource = subresource.to_owned();
        self
    }

    pub fn with_field_selector(mut self, selector: &str) -> Self {
        self.field_selector = selector.to_owned();
        self
    }

    /// `field=value` / `field==value` terms of the field selector (`!=` terms are not
    /// equality requirements and are skipped).
    pub fn field_equals(&self) -> impl Iterator<Item = (&str, &str)> {
        self.field_selector.split(',').filter_map(|term| {
            if term.contains("!=") {
                return None;
            }
            let (k, v) = term.split_once("==").or_else(|| term.split_once('='))?;
            Some((k.trim(), v.trim()))
        })
    }
}

/// An authorizer's answer. A `NoOpinion` from every authorizer means forbidden.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow { reason: String },
    Deny { reason: String },
    NoOpinion { reason: String },
}

impl Decision {
    pub fn allow(reason: impl Into<String>) -> Self {
        Decision::Allow {
            reason: reason.into(),
        }
    }
    pub fn deny(reason: impl Into<String>) -> Self {
        Decision::Deny {
            reason: reason.into(),
        }
    }
    pub fn no_opinion(reason: impl Into<String>) -> Self {
        Decision::NoOpinion {
            reason: reason.into(),
        }
    }
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow { reason }
            | Decision::Deny { reason }
            | Decision::NoOpinion { reason } => reason,
        }
    }
}

/// Decides one request.
pub trait Authorizer: Send + Sync {
    fn authorize(&self, a: &Attributes) -> Decision;

    /// SubjectAccessReview-style check; the same as [`Authorizer::authorize`].
    fn can_i(&self, a: &Attributes) -> Decision {
        self.authorize(a)
    }
}

impl fmt::Debug for dyn Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn Authorizer")
    }
}

/// `--authorization-mode=AlwaysAllow`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysAllow;

impl Authorizer for AlwaysAllow {
    fn authorize(&self, _: &Attributes) -> Decision {
        Decision::allow("")
    }
}

/// `--authorization-mode=AlwaysDeny`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysDeny;

impl Authorizer for AlwaysDeny {
    fn authorize(&self, _: &Attributes) -> Decision {
        Decision::deny("Everything is forbidden.")
    }
}

/// Allows members of any of these groups everything (upstream's
/// `authorizerfactory.NewPrivilegedGroups`, installed first with `system:masters`).
#[derive(Clone, Debug)]
pub struct PrivilegedGroups(pub Vec<String>);

impl Authorizer for PrivilegedGroups {
    fn authorize(&self, a: &Attributes) -> Decision {
        if self.0.iter().any(|g| a.user.in_group(g)) {
            Decision::allow("")
        } else {
            Decision::no_opinion("")
        }
    }
}

/// Asks each authorizer in turn; the first Allow or Deny wins. When all have no
/// opinion, their non-empty reasons are joined with newlines (upstream's union).
#[derive(Clone, Debug)]
pub struct Union(pub Vec<Arc<dyn Authorizer>>);

impl Authorizer for Union {
    fn authorize(&self, a: &Attributes) -> Decision {
        let mut reasons: Vec<String> = Vec::new();
        for authz in &self.0 {
            match authz.authorize(a) {
                d @ (Decision::Allow { .. } | Decision::Deny { .. }) => return d,
                Decision::NoOpinion { reason } => {
                    if !reason.is_empty() {
                        reasons.push(reason);
                    }
                }
            }
        }
        Decision::no_opinion(reasons.join("\n"))
    }
}

/// One `--authorization-mode` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    AlwaysAllow,
    AlwaysDeny,
    Abac,
    Webhook,
    Rbac,
    Node,
}

impl Mode {
    /// The flag spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::AlwaysAllow => "AlwaysAllow",
            Mode::AlwaysDeny => "AlwaysDeny",
            Mode::Abac => "ABAC",
            Mode::Webhook => "Webhook",
            Mode::Rbac => "RBAC",
            Mode::Node => "Node",
        }
    }
}

/// Errors of this crate's configuration entry points.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("at least one authorization-mode must be passed")]
    NoModes,
    #[error("authorization-mode {} is not a valid mode", go_quote(.0))]
    InvalidMode(String),
    #[error("authorization-mode {} has mode specified more than once", go_quote(.0))]
    DuplicateMode(String),
    #[error("authorization-mode {} is not supported by ferrokube", go_quote(.0))]
    UnsupportedMode(String),
}

/// Parses `--authorization-mode` (comma separated, case-sensitive as upstream).
pub fn parse_modes(s: &str) -> Result<Vec<Mode>, Error> {
    if s.is_empty() {
        return Err(Error::NoModes);
    }
    let mut modes = Vec::new();
    for part in s.split(',') {
        let mode = match part {
            "AlwaysAllow" => Mode::AlwaysAllow,
            "AlwaysDeny" => Mode::AlwaysDeny,
            "ABAC" => Mode::Abac,
            "Webhook" => Mode::Webhook,
            "RBAC" => Mode::Rbac,
            "Node" => Mode::Node,
            other => return Err(Error::InvalidMode(other.to_owned())),
        };
        if modes.contains(&mode) {
            return Err(Error::DuplicateMode(part.to_owned()));
        }
        modes.push(mode);
    }
    Ok(modes)
}

/// The API server's authorizer for these modes: `system:masters` first, then each
/// mode in flag order (kube-apiserver's `authorizer.Config.New`). ABAC and Webhook are
/// parsed but not implemented here.
pub fn build_authorizer(
    modes: &[Mode],
    rbac: Arc<Rbac>,
    node: Arc<NodeAuthorizer>,
) -> Result<Union, Error> {
    let mut chain: Vec<Arc<dyn Authorizer>> = vec![Arc::new(PrivilegedGroups(vec![
        SYSTEM_PRIVILEGED_GROUP.to_owned(),
    ]))];
    for mode in modes {
        match mode {
            Mode::AlwaysAllow => chain.push(Arc::new(AlwaysAllow)),
            Mode::AlwaysDeny => chain.push(Arc::new(AlwaysDeny)),
            Mode::Rbac => chain.push(rbac.clone()),
            Mode::Node => chain.push(node.clone()),
            Mode::Abac | Mode::Webhook => {
                return Err(Error::UnsupportedMode(mode.as_str().to_owned()))
            }
        }
    }
    Ok(Union(chain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_modes_as_upstream() {
        assert_eq!(
            parse_modes("Node,RBAC").ok(),
            Some(vec![Mode::Node, Mode::Rbac])
        );
        assert_eq!(
            parse_modes("AlwaysAllow").ok(),
            Some(vec![Mode::AlwaysAllow])
        );
        assert_eq!(parse_modes("AlwaysDeny").ok(), Some(vec![Mode::AlwaysDeny]));
        assert_eq!(parse_modes(""), Err(Error::NoModes));
        let err = parse_modes("Node,rbac").err();
        assert_eq!(err, Some(Error::InvalidMode("rbac".into())));
        assert_eq!(
            err.map(|e| e.to_string()).unwrap_or_default(),
            r#"authorization-mode "rbac" is not a valid mode"#
        );
        assert_eq!(
            parse_modes("RBAC,RBAC"),
            Err(Error::DuplicateMode("RBAC".into()))
        );
        let rbac = Arc::new(Rbac::new());
        let node = Arc::new(NodeAuthorizer::new());
        assert_eq!(
            build_authorizer(&[Mode::Webhook], rbac, node).err(),
            Some(Error::UnsupportedMode("Webhook".into()))
        );
    }

    #[derive(Debug)]
    struct Fixed(Decision);
    impl Authorizer for Fixed {
        fn authorize(&self, _: &Attributes) -> Decision {
            self.0.clone()
        }
    }

    #[test]
    fn union_first_allow_or_deny_wins() {
        let a = Attributes::non_resource(UserInfo::new("u", &[]), "get", "/x");
        let u = Union(vec![
            Arc::new(Fixed(Decision::no_opinion("first"))),
            Arc::new(Fixed(Decision::no_opinion(""))),
            Arc::new(Fixed(Decision::no_opinion("third"))),
        ]);
        assert_eq!(u.authorize(&a), Decision::no_opinion("first\nthird"));
        let u = Union(vec![
            Arc::new(Fixed(Decision::no_opinion("first"))),
            Arc::new(AlwaysDeny),
            Arc::new(AlwaysAllow),
        ]);
        assert_eq!(u.authorize(&a), Decision::deny("Everything is forbidden."));
        let masters = UserInfo::new("admin", &[SYSTEM_PRIVILEGED_GROUP]);
        let built = build_authorizer(
            &[Mode::AlwaysDeny],
            Arc::new(Rbac::new()),
            Arc::new(NodeAuthorizer::new()),
        );
        let built = built.unwrap_or(Union(vec![]));
        assert!(built
            .authorize(&Attributes::non_resource(masters, "get", "/x"))
            .is_allowed());
        assert!(!built.authorize(&a).is_allowed());
    }

    #[test]
    fn field_selector_terms() {
        let a = Attributes::default().with_field_selector("spec.nodeName=n1,a!=b,c==d");
        let terms: Vec<_> = a.field_equals().collect();
        assert_eq!(terms, vec![("spec.nodeName", "n1"), ("c", "d")]);
    }
}
