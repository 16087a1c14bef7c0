//! The RBAC authorizer (`plugin/pkg/auth/authorizer/rbac/rbac.go`) over the rule
//! resolver of `pkg/registry/rbac/validation/rule.go` (`VisitRulesFor`, `RulesFor`,
//! `ConfirmNoEscalation`) and the escalate/bind checks of the RBAC `policybased`
//! storages (`pkg/registry/rbac/{role,clusterrole,rolebinding,clusterrolebinding}`).
//!
//! Upstream lists every (Cluster)RoleBinding per request and tests each one's subjects.
//! Here bindings are indexed by subject — user name (service account subjects are
//! indexed under their `system:serviceaccount:<ns>:<name>` user name) and group — so a
//! check touches only the bindings that name the user or one of its groups, whatever
//! the number of bindings in the cluster. Which bindings apply, and the decision, are
//! the same as upstream; the allow reason names the first allowing binding in name
//! order (upstream's order is its cache's).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use crate::rule::{compact_rules, covers, go_quote, go_quote_list, rule_allows, PolicyRule};
use crate::{Attributes, Authorizer, Decision, UserInfo, SYSTEM_PRIVILEGED_GROUP};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The four RBAC kinds the authorizer is fed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RbacKind {
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
}

impl RbacKind {
    /// The kind named by an object's `kind` field.
    pub fn from_kind(kind: &str) -> Option<Self> {
        match kind {
            "Role" => Some(RbacKind::Role),
            "ClusterRole" => Some(RbacKind::ClusterRole),
            "RoleBinding" => Some(RbacKind::RoleBinding),
            "ClusterRoleBinding" => Some(RbacKind::ClusterRoleBinding),
            _ => None,
        }
    }

    /// The REST resource (`roles`, `clusterroles`, ...).
    pub fn resource(self) -> &'static str {
        match self {
            RbacKind::Role => "roles",
            RbacKind::ClusterRole => "clusterroles",
            RbacKind::RoleBinding => "rolebindings",
            RbacKind::ClusterRoleBinding => "clusterrolebindings",
        }
    }
}

#[derive(Clone, Debug, Default)]
struct RoleRef {
    kind: String,
    name: String,
    api_group: String,
}

#[derive(Clone, Debug, Default)]
struct Subject {
    kind: String,
    name: String,
    namespace: String,
}

#[derive(Debug)]
struct Binding {
    name: Arc<str>,
    namespace: String,
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

/// The `rules` of a Role or ClusterRole; malformed rules are skipped (and logged).
pub(crate) fn parse_rules(obj: &Value) -> Vec<PolicyRule> {
    let Some(items) = obj.get("rules").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|r| match serde_json::from_value::<PolicyRule>(r.clone()) {
            Ok(rule) => Some(rule),
            Err(error) => {
                tracing::warn!(name = str_at(obj, &["metadata", "name"]), %error, "ignoring malformed RBAC rule");
                None
            }
        })
        .collect()
}

fn parse_role_ref(obj: &Value) -> RoleRef {
    RoleRef {
        kind: str_at(obj, &["roleRef", "kind"]).to_owned(),
        name: str_at(obj, &["roleRef", "name"]).to_owned(),
        api_group: str_at(obj, &["roleRef", "apiGroup"]).to_owned(),
    }
}

fn parse_binding(obj: &Value) -> Option<Binding> {
    let name = str_at(obj, &["metadata", "name"]);
    if name.is_empty() {
        return None;
    }
    let subjects = obj
        .get("subjects")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|s| Subject {
                    kind: str_at(s, &["kind"]).to_owned(),
                    name: str_at(s, &["name"]).to_owned(),
                    namespace: str_at(s, &["namespace"]).to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Binding {
        name: Arc::from(name),
        namespace: str_at(obj, &["metadata", "namespace"]).to_owned(),
        role_ref: parse_role_ref(obj),
        subjects,
    })
}

/// Index key of a subject: `(is_group, name)`. Service accounts become their user
/// name; their namespace defaults to the binding's (upstream's `appliesToUser`).
fn subject_key(s: &Subject, binding_namespace: &str) -> Option<(bool, String)> {
    match s.kind.as_str() {
        "User" => Some((false, s.name.clone())),
        "Group" => Some((true, s.name.clone())),
        "ServiceAccount" => {
            let ns = if s.namespace.is_empty() {
                binding_namespace
            } else {
                &s.namespace
            };
            if ns.is_empty() {
                None
            } else {
                Some((false, format!("system:serviceaccount:{ns}:{}", s.name)))
            }
        }
        _ => None,
    }
}

fn applies_to_user(user: &UserInfo, s: &Subject, namespace: &str) -> bool {
    match s.kind.as_str() {
        "User" => user.name == s.name,
        "Group" => user.in_group(&s.name),
        "ServiceAccount" => {
            let ns = if s.namespace.is_empty() {
                namespace
            } else {
                &s.namespace
            };
            !ns.is_empty()
                && user
                    .name
                    .strip_prefix("system:serviceaccount:")
                    .and_then(|rest| rest.split_once(':'))
                    == Some((ns, s.name.as_str()))
        }
        _ => false,
    }
}

type BindingSet = BTreeMap<Arc<str>, Arc<Binding>>;

#[derive(Debug, Default)]
struct SubjectIndex {
    by_user: HashMap<String, BindingSet>,
    by_group: HashMap<String, BindingSet>,
}

impl SubjectIndex {
    fn insert(&mut self, b: &Arc<Binding>) {
        for s in &b.subjects {
            if let Some((is_group, key)) = subject_key(s, &b.namespace) {
                let map = if is_group {
                    &mut self.by_group
                } else {
                    &mut self.by_user
                };
                map.entry(key)
                    .or_default()
                    .insert(b.name.clone(), b.clone());
            }
        }
    }

    fn remove(&mut self, b: &Binding) {
        for s in &b.subjects {
            if let Some((is_group, key)) = subject_key(s, &b.namespace) {
                let map = if is_group {
                    &mut self.by_group
                } else {
                    &mut self.by_user
                };
                if let Some(set) = map.get_mut(&key) {
                    set.remove(&b.name);
                    if set.is_empty() {
                        map.remove(&key);
                    }
                }
            }
        }
    }

    /// The bindings naming this user or one of its groups, by name, each once.
    fn candidates<'a>(&'a self, user: &UserInfo) -> Vec<&'a Arc<Binding>> {
        let mut out: Vec<&Arc<Binding>> = Vec::new();
        if let Some(set) = self.by_user.get(&user.name) {
            out.extend(set.values());
        }
        for g in &user.groups {
            if let Some(set) = self.by_group.get(g) {
                out.extend(set.values());
            }
        }
        if out.len() > 1 {
            out.sort_by(|a, b| a.name.cmp(&b.name));
            out.dedup_by(|a, b| Arc::ptr_eq(a, b));
        }
        out
    }
}

#[derive(Debug, Default)]
struct State {
    cluster_roles: HashMap<String, Arc<Vec<PolicyRule>>>,
    roles: HashMap<String, HashMap<String, Arc<Vec<PolicyRule>>>>,
    cluster_role_bindings: HashMap<Arc<str>, Arc<Binding>>,
    role_bindings: HashMap<String, HashMap<Arc<str>, Arc<Binding>>>,
    crb_index: SubjectIndex,
    rb_index: HashMap<String, SubjectIndex>,
}

/// Where an allowing rule came from, printed as upstream's describers.
enum Source<'a> {
    ClusterRoleBinding(&'a Binding, &'a Subject),
    RoleBinding(&'a Binding, &'a Subject),
}

fn describe_subject(s: &Subject, binding_namespace: &str) -> String {
    if s.kind == "ServiceAccount" {
        let ns = if s.namespace.is_empty() {
            binding_namespace
        } else {
            &s.namespace
        };
        format!("{} {}", s.kind, go_quote(&format!("{}/{ns}", s.name)))
    } else {
        format!("{} {}", s.kind, go_quote(&s.name))
    }
}

impl fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::ClusterRoleBinding(b, s) => write!(
                f,
                "ClusterRoleBinding {} of {} {} to {}",
                go_quote(&b.name),
                b.role_ref.kind,
                go_quote(&b.role_ref.name),
                describe_subject(s, "")
            ),
            Source::RoleBinding(b, s) => write!(
                f,
                "RoleBinding {} of {} {} to {}",
                go_quote(&format!("{}/{}", b.name, b.namespace)),
                b.role_ref.kind,
                go_quote(&b.role_ref.name),
                describe_subject(s, &b.namespace)
            ),
        }
    }
}

enum Visit<'a> {
    Rule(Source<'a>, &'a PolicyRule),
    Error(String),
}

impl State {
    fn role_ref_rules(&self, r: &RoleRef, namespace: &str) -> Result<&[PolicyRule], String> {
        match r.kind.as_str() {
            "Role" => self
                .roles
                .get(namespace)
                .and_then(|m| m.get(&r.name))
                .map(|rules| rules.as_slice())
                .ok_or_else(|| format!("role.{RBAC_GROUP} {} not found", go_quote(&r.name))),
            "ClusterRole" => self
                .cluster_roles
                .get(&r.name)
                .map(|rules| rules.as_slice())
                .ok_or_else(|| format!("clusterrole.{RBAC_GROUP} {} not found", go_quote(&r.name))),
            other => Err(format!(
                "unsupported role reference kind: {}",
                go_quote(other)
            )),
        }
    }

    /// `VisitRulesFor`: ClusterRoleBindings, then RoleBindings of `namespace`; stops
    /// when the visitor returns false.
    fn visit_rules_for<'a>(
        &'a self,
        user: &UserInfo,
        namespace: &str,
        mut visitor: impl FnMut(Visit<'a>) -> bool,
    ) {
        for b in self.crb_index.candidates(user) {
            let Some(subject) = b.subjects.iter().find(|s| applies_to_user(user, s, "")) else {
                continue;
            };
            match self.role_ref_rules(&b.role_ref, "") {
                Err(e) => {
                    if !visitor(Visit::Error(e)) {
                        return;
                    }
                }
                Ok(rules) => {
                    for rule in rules {
                        if !visitor(Visit::Rule(Source::ClusterRoleBinding(b, subject), rule)) {
                            return;
                        }
                    }
                }
            }
        }
        if namespace.is_empty() {
            return;
        }
        let Some(index) = self.rb_index.get(namespace) else {
            return;
        };
        for b in index.candidates(user) {
            let Some(subject) = b
                .subjects
                .iter()
                .find(|s| applies_to_user(user, s, namespace))
            else {
                continue;
            };
            match self.role_ref_rules(&b.role_ref, namespace) {
                Err(e) => {
                    if !visitor(Visit::Error(e)) {
                        return;
                    }
                }
                Ok(rules) => {
                    for rule in rules {
                        if !visitor(Visit::Rule(Source::RoleBinding(b, subject), rule)) {
                            return;
                        }
                    }
                }
            }
        }
    }

    fn insert_role(&mut self, kind: RbacKind, obj: &Value) {
        let name = str_at(obj, &["metadata", "name"]).to_owned();
        if name.is_empty() {
            return;
        }
        let rules = Arc::new(parse_rules(obj));
        if kind == RbacKind::ClusterRole {
            self.cluster_roles.insert(name, rules);
        } else {
            let ns = str_at(obj, &["metadata", "namespace"]).to_owned();
            self.roles.entry(ns).or_default().insert(name, rules);
        }
    }

    fn insert_binding(&mut self, kind: RbacKind, obj: &Value) {
        let Some(b) = parse_binding(obj) else {
            return;
        };
        let b = Arc::new(b);
        if kind == RbacKind::ClusterRoleBinding {
            if let Some(old) = self.cluster_role_bindings.insert(b.name.clone(), b.clone()) {
                self.crb_index.remove(&old);
            }
            self.crb_index.insert(&b);
        } else {
            let ns = b.namespace.clone();
            if let Some(old) = self
                .role_bindings
                .entry(ns.clone())
                .or_default()
                .insert(b.name.clone(), b.clone())
            {
                if let Some(index) = self.rb_index.get_mut(&ns) {
                    index.remove(&old);
                }
            }
            self.rb_index.entry(ns).or_default().insert(&b);
        }
    }

    fn upsert(&mut self, kind: RbacKind, obj: &Value) {
        match kind {
            RbacKind::Role | RbacKind::ClusterRole => self.insert_role(kind, obj),
            RbacKind::RoleBinding | RbacKind::ClusterRoleBinding => self.insert_binding(kind, obj),
        }
    }

    fn remove(&mut self, kind: RbacKind, namespace: &str, name: &str) {
        match kind {
            RbacKind::ClusterRole => {
                self.cluster_roles.remove(name);
            }
            RbacKind::Role => {
                if let Some(m) = self.roles.get_mut(namespace) {
                    m.remove(name);
                    if m.is_empty() {
                        self.roles.remove(namespace);
                    }
                }
            }
            RbacKind::ClusterRoleBinding => {
                if let Some(old) = self.cluster_role_bindings.remove(name) {
                    self.crb_index.remove(&old);
                }
            }
            RbacKind::RoleBinding => {
                let Some(m) = self.role_bindings.get_mut(namespace) else {
                    return;
                };
                if let Some(old) = m.remove(name) {
                    if let Some(index) = self.rb_index.get_mut(namespace) {
                        index.remove(&old);
                    }
                }
                if m.is_empty() {
                    self.role_bindings.remove(namespace);
                    self.rb_index.remove(namespace);
                }
            }
        }
    }
}

/// Upstream's `utilerrors.Aggregate` formatting: one message as is, several
/// (de-duplicated) as `[a, b]`.
fn aggregate_errors(errors: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for e in errors {
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    if seen.len() == 1 {
        seen[0].to_owned()
    } else {
        format!("[{}]", seen.join(", "))
    }
}

/// Why an RBAC write (create/update of a role or binding) is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteCheckError {
    /// 403 (`errors.NewForbidden(<resource>.rbac.authorization.k8s.io, name, reason)`).
    #[error("{resource}.rbac.authorization.k8s.io {} is forbidden: {reason}", go_quote(.name))]
    Forbidden {
        resource: &'static str,
        name: String,
        reason: String,
    },
    /// 400: the binding's roleRef cannot be resolved.
    #[error("{0}")]
    BadRequest(String),
}

/// The RBAC authorizer and rule resolver. Cheap to share (`Arc<Rbac>`); all methods
/// take `&self`.
#[derive(Debug, Default)]
pub struct Rbac {
    state: RwLock<State>,
}

impl Rbac {
    pub fn new() -> Self {
        Rbac::default()
    }

    /// Adds or replaces one object (as stored/served, `rbac.authorization.k8s.io/v1`).
    pub fn upsert(&self, kind: RbacKind, obj: &Value) {
        self.state.write().upsert(kind, obj);
    }

    /// Forgets one object; `namespace` is ignored for cluster-scoped kinds.
    pub fn remove(&self, kind: RbacKind, namespace: &str, name: &str) {
        self.state.write().remove(kind, namespace, name);
    }

    /// Replaces everything (after an initial list or a re-list).
    pub fn replace_all(
        &self,
        roles: &[Value],
        cluster_roles: &[Value],
        role_bindings: &[Value],
        cluster_role_bindings: &[Value],
    ) {
        let mut st = State::default();
        for (kind, objs) in [
            (RbacKind::Role, roles),
            (RbacKind::ClusterRole, cluster_roles),
            (RbacKind::RoleBinding, role_bindings),
            (RbacKind::ClusterRoleBinding, cluster_role_bindings),
        ] {
            for o in objs {
                st.upsert(kind, o);
            }
        }
        *self.state.write() = st;
    }

    /// Numbers of (roles, cluster roles, role bindings, cluster role bindings) held.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let st = self.state.read();
        (
            st.roles.values().map(HashMap::len).sum(),
            st.cluster_roles.len(),
            st.role_bindings.values().map(HashMap::len).sum(),
            st.cluster_role_bindings.len(),
        )
    }

    /// Rules that apply to `user` in `namespace` (cluster-wide ones only for `""`), and
    /// the errors met resolving them (missing roles): upstream's `RulesFor`, used by
    /// SelfSubjectRulesReview (`kubectl auth can-i --list`).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        let st = self.state.read();
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        st.visit_rules_for(user, namespace, |v| {
            match v {
                Visit::Rule(_, r) => rules.push(r.clone()),
                Visit::Error(e) => errors.push(e),
            }
            true
        });
        (rules, errors)
    }

    /// Upstream's `ConfirmNoEscalation`: `user` may only grant, in `namespace` (`""`
    /// for cluster scope), rules it already holds there. The error is upstream's
    /// message listing the missing rules.
    pub fn confirm_no_escalation(
        &self,
        user: &UserInfo,
        namespace: &str,
        rules: &[PolicyRule],
    ) -> Result<(), String> {
        let (owner, errors) = self.rules_for(user, namespace);
        let (ok, missing) = covers(&owner, rules);
        if ok {
            return Ok(());
        }
        let mut descriptions: Vec<String> = compact_rules(&missing)
            .iter()
            .map(PolicyRule::compact_string)
            .collect();
        descriptions.sort();
        descriptions.dedup();
        let mut msg = format!(
            "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
            go_quote(&user.name),
            go_quote_list(&user.groups),
            descriptions.join("\n")
        );
        if !errors.is_empty() {
            msg.push_str(&format!(
                "; resolution errors: [{}]",
                aggregate_errors(&errors)
            ));
        }
        Err(msg)
    }

    /// The checks upstream's `policybased` storages make before a create (`old` None) or
    /// update of a Role, ClusterRole, RoleBinding or ClusterRoleBinding in `namespace`
    /// (`""` for cluster-scoped kinds). `authz` is the API server's full authorizer,
    /// asked about the `escalate` and `bind` verbs:
    /// - `system:masters` may write anything; so may an update that only touches
    ///   ownerReferences/finalizers (what the garbage collector does);
    /// - roles: allowed with `escalate` on the resource, else every rule must be held
    ///   by the user (and using an aggregationRule needs full authority);
    /// - bindings: allowed with `bind` on the referenced role, else the referenced
    ///   role must exist (400 otherwise) and all its rules be held by the user.
    pub fn check_write(
        &self,
        authz: &dyn Authorizer,
        user: &UserInfo,
        kind: RbacKind,
        namespace: &str,
        obj: &Value,
        old: Option<&Value>,
    ) -> Result<(), WriteCheckError> {
        if user.in_group(SYSTEM_PRIVILEGED_GROUP) {
            return Ok(());
        }
        if let Some(old) = old {
            if is_only_mutating_gc_fields(obj, old) {
                return Ok(());
            }
        }
        let name = str_at(obj, &["metadata", "name"]).to_owned();
        let resource = kind.resource();
        let forbidden = |reason: String| WriteCheckError::Forbidden {
            resource,
            name: name.clone(),
            reason,
        };
        match kind {
            RbacKind::Role | RbacKind::ClusterRole => {
                let mut escalate = Attributes::resource(
                    user.clone(),
                    "escalate",
                    RBAC_GROUP,
                    resource,
                    namespace,
                    &name,
                );
                if kind == RbacKind::ClusterRole {
                    escalate.namespace.clear();
                }
                if authz.authorize(&escalate).is_allowed() {
                    return Ok(());
                }
                let ns = if kind == RbacKind::Role {
                    namespace
                } else {
                    ""
                };
                self.confirm_no_escalation(user, ns, &parse_rules(obj))
                    .map_err(forbidden)?;
                let aggregated = |v: &Value| v.get("aggregationRule").is_some_and(|a| !a.is_null());
                if kind == RbacKind::ClusterRole
                    && (aggregated(obj) || old.is_some_and(aggregated))
                    && self
                        .confirm_no_escalation(user, "", &full_authority())
                        .is_err()
                {
                    return Err(forbidden(
                        "must have cluster-admin privileges to use the aggregationRule".to_owned(),
                    ));
                }
                Ok(())
            }
            RbacKind::RoleBinding | RbacKind::ClusterRoleBinding => {
                let ns = if kind == RbacKind::RoleBinding {
                    namespace
                } else {
                    ""
                };
                let role_ref = parse_role_ref(obj);
                let bind_resource = match role_ref.kind.as_str() {
                    "ClusterRole" => Some("clusterroles"),
                    "Role" => Some("roles"),
                    _ => None,
                };
                if let Some(bind_resource) = bind_resource {
                    let mut bind = Attributes::resource(
                        user.clone(),
                        "bind",
                        &role_ref.api_group,
                        bind_resource,
                        ns,
                        &role_ref.name,
                    );
                    bind.api_version.clear();
                    if authz.authorize(&bind).is_allowed() {
                        return Ok(());
                    }
                }
                let rules = {
                    let st = self.state.read();
                    st.role_ref_rules(&role_ref, ns)
                        .map(<[PolicyRule]>::to_vec)
                        .map_err(WriteCheckError::BadRequest)?
                };
                self.confirm_no_escalation(user, ns, &rules)
                    .map_err(forbidden)
            }
        }
    }
}

/// `* on *.*` and `* on *` URLs: what an aggregationRule demands.
fn full_authority() -> Vec<PolicyRule> {
    vec![
        PolicyRule::new(&["*"]).groups(&["*"]).resources(&["*"]),
        PolicyRule::new(&["*"]).urls(&["*"]),
    ]
}

/// Drops nulls and empty arrays/objects (Go's semantic equality treats nil and empty
/// alike).
fn normalize(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Array(a) if a.is_empty() => None,
        Value::Object(o) if o.is_empty() => None,
        Value::Array(a) => Some(Value::Array(a.iter().filter_map(normalize).collect())),
        Value::Object(o) => {
            let m: serde_json::Map<String, Value> = o
                .iter()
                .filter_map(|(k, v)| normalize(v).map(|v| (k.clone(), v)))
                .collect();
            if m.is_empty() {
                None
            } else {
                Some(Value::Object(m))
            }
        }
        other => Some(other.clone()),
    }
}

/// Upstream's `IsOnlyMutatingGCFields`: equal once ownerReferences, finalizers,
/// selfLink and managedFields are taken from the old object.
fn is_only_mutating_gc_fields(new: &Value, old: &Value) -> bool {
    let mut copied = new.clone();
    let old_meta = old.get("metadata");
    if let Some(meta) = copied.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["ownerReferences", "finalizers", "selfLink", "managedFields"] {
            match old_meta.and_then(|m| m.get(field)) {
                Some(v) => {
                    meta.insert(field.to_owned(), v.clone());
                }
                None => {
                    meta.remove(field);
                }
            }
        }
    }
    normalize(&copied) == normalize(old)
}

impl Authorizer for Rbac {
    fn authorize(&self, a: &Attributes) -> Decision {
        let st = self.state.read();
        let mut allowed: Option<String> = None;
        let mut errors: Vec<String> = Vec::new();
        st.visit_rules_for(&a.user, &a.namespace, |v| match v {
            Visit::Rule(source, rule) => {
                if rule_allows(a, rule) {
                    allowed = Some(format!("RBAC: allowed by {source}"));
                    false
                } else {
                    true
                }
            }
            Visit::Error(e) => {
                errors.push(e);
                true
            }
        });
        match allowed {
            Some(reason) => Decision::allow(reason),
            None if errors.is_empty() => Decision::no_opinion(""),
            None => Decision::no_opinion(format!("RBAC: {}", aggregate_errors(&errors))),
        }
    }
}

#[cfg(test)]
#[path = "rbac_tests.rs"]
mod tests;
