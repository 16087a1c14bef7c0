//! Kubernetes' authorizer library (`k8s.io/apiserver/pkg/cel/library/authz.go`): the
//! `authorizer` variable builds a check — `path(p)` for a non-resource URL, or
//! `group(g).resource(r)` with optional `subresource`, `namespace` and `name` — and
//! `check(verb)` asks the embedding server's authorizer, answering a decision with
//! `allowed()`, `reason()`, `errored()` and `error()`. `serviceAccount(ns, name)` checks
//! as that service account instead of the requesting user; `requestResource` is a
//! resource check preset to the request's own resource.

use std::sync::Arc;

use crate::error::EvalError;
use crate::value::Value;

/// What one `check(verb)` asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthzCheck {
    /// `Some((namespace, name))` after `serviceAccount(ns, name)`; else the request's
    /// user.
    pub service_account: Option<(String, String)>,
    /// Set for a non-resource check (`path(p)`).
    pub path: Option<String>,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub verb: String,
}

/// The answer to a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthzDecision {
    pub allowed: bool,
    pub reason: String,
    /// Set when the authorizer could not decide.
    pub error: Option<String>,
}

/// The server's authorizer as CEL expressions reach it.
pub trait Authorize: Send + Sync + std::fmt::Debug {
    fn authorize(&self, check: &AuthzCheck) -> AuthzDecision;
}

/// Where a check being built stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Authorizer,
    Path,
    Group,
    Resource,
}

/// An authorizer value: a check being built, or a decision.
#[derive(Debug, Clone)]
pub enum Authz {
    Check {
        authorizer: Arc<dyn Authorize>,
        stage: Stage,
        check: Box<AuthzCheck>,
    },
    Decision(Arc<AuthzDecision>),
}

/// The `authorizer` variable for a request, with its `requestResource` preset.
pub fn authorizer(authorizer: Arc<dyn Authorize>, request: AuthzCheck) -> Value {
    Value::Authorizer(Arc::new(AuthzRoot {
        authorizer,
        request,
    }))
}

impl Authz {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Authz::Check { stage, .. } => match stage {
                Stage::Authorizer => "kubernetes.authorization.Authorizer",
                Stage::Path => "kubernetes.authorization.PathCheck",
                Stage::Group => "kubernetes.authorization.GroupCheck",
                Stage::Resource => "kubernetes.authorization.ResourceCheck",
            },
            Authz::Decision(_) => "kubernetes.authorization.Decision",
        }
    }
}

/// The `authorizer` variable itself.
#[derive(Debug, Clone)]
pub struct AuthzRoot {
    authorizer: Arc<dyn Authorize>,
    /// The request's resource (for `requestResource`).
    request: AuthzCheck,
}

impl AuthzRoot {
    fn at(&self, stage: Stage, check: AuthzCheck) -> Authz {
        Authz::Check {
            authorizer: self.authorizer.clone(),
            stage,
            check: Box::new(check),
        }
    }

    /// `authorizer.requestResource`.
    pub(crate) fn select(&self, field: &str) -> Option<Value> {
        (field == "requestResource")
            .then(|| Value::Authz(Arc::new(self.at(Stage::Resource, self.request.clone()))))
    }

    fn as_check(&self) -> Authz {
        self.at(Stage::Authorizer, AuthzCheck::default())
    }
}

fn string_arg(args: &[Value], i: usize) -> Option<String> {
    match args.get(i) {
        Some(Value::String(s)) => Some(s.to_string()),
        _ => None,
    }
}

/// The library's methods.
pub(crate) fn member(
    name: &str,
    target: &Value,
    args: &[Value],
) -> Option<Result<Value, EvalError>> {
    let authz = match target {
        Value::Authorizer(root) => root.as_check(),
        Value::Authz(a) => (**a).clone(),
        _ => return None,
    };
    let wrap = |a: Authz| Some(Ok(Value::Authz(Arc::new(a))));
    match authz {
        Authz::Decision(d) => match (name, args.len()) {
            ("allowed", 0) => Some(Ok(Value::Bool(d.allowed))),
            ("reason", 0) => Some(Ok(Value::from(d.reason.as_str()))),
            ("errored", 0) => Some(Ok(Value::Bool(d.error.is_some()))),
            ("error", 0) => Some(Ok(Value::from(
                d.error.clone().unwrap_or_default().as_str(),
            ))),
            _ => None,
        },
        Authz::Check {
            authorizer,
            stage,
            mut check,
        } => {
            let next = |stage: Stage, check: Box<AuthzCheck>| Authz::Check {
                authorizer: authorizer.clone(),
                stage,
                check,
            };
            match (stage, name, args.len()) {
                (Stage::Authorizer, "path", 1) => {
                    check.path = Some(string_arg(args, 0)?);
                    wrap(next(Stage::Path, check))
                }
                (Stage::Authorizer, "group", 1) => {
                    check.group = string_arg(args, 0)?;
                    wrap(next(Stage::Group, check))
                }
                (Stage::Authorizer, "serviceAccount", 2) => {
                    check.service_account = Some((string_arg(args, 0)?, string_arg(args, 1)?));
                    wrap(next(Stage::Authorizer, check))
                }
                (Stage::Group, "resource", 1) => {
                    check.resource = string_arg(args, 0)?;
                    wrap(next(Stage::Resource, check))
                }
                (Stage::Resource, "subresource", 1) => {
                    check.subresource = string_arg(args, 0)?;
                    wrap(next(Stage::Resource, check))
                }
                (Stage::Resource, "namespace", 1) => {
                    check.namespace = string_arg(args, 0)?;
                    wrap(next(Stage::Resource, check))
                }
                (Stage::Resource, "name", 1) => {
                    check.name = string_arg(args, 0)?;
                    wrap(next(Stage::Resource, check))
                }
                // Selectors narrow a check upstream; authorizers here decide without them.
                (Stage::Resource, "fieldSelector" | "labelSelector", 1) => {
                    string_arg(args, 0)?;
                    wrap(next(Stage::Resource, check))
                }
                (Stage::Path | Stage::Resource, "check", 1) => {
                    check.verb = string_arg(args, 0)?;
                    let decision = authorizer.authorize(&check);
                    wrap(Authz::Decision(Arc::new(decision)))
                }
                _ => None,
            }
        }
    }
}
