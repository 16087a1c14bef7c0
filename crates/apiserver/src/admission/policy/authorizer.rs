//! The `authorizer` CEL variable of admission policies and webhook matchConditions:
//! checks asked by an expression go to the server's authorizers (Node, RBAC, …) as the
//! requesting user, or as a service account after `serviceAccount(ns, name)`.

use std::sync::Arc;

use ferrokube_authz::{Attributes, Authorizer, Decision, UserInfo};
use ferrokube_cel::{AuthzCheck, AuthzDecision};

use crate::admission::webhook::Call;

/// The server's authorizer as one request's expressions see it.
pub struct RequestAuthorizer {
    authz: Arc<dyn Authorizer>,
    user: UserInfo,
}

impl std::fmt::Debug for RequestAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestAuthorizer")
            .field("user", &self.user.name)
            .finish_non_exhaustive()
    }
}

impl ferrokube_cel::Authorize for RequestAuthorizer {
    fn authorize(&self, c: &AuthzCheck) -> AuthzDecision {
        let user = match &c.service_account {
            Some((ns, name)) => UserInfo {
                name: ferrokube_authn::user::service_account_username(ns, name),
                groups: vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{ns}"),
                    "system:authenticated".into(),
                ],
                ..Default::default()
            },
            None => self.user.clone(),
        };
        let attributes = match &c.path {
            Some(path) => Attributes::non_resource(user, &c.verb, path),
            None => {
                Attributes::resource(user, &c.verb, &c.group, &c.resource, &c.namespace, &c.name)
                    .with_subresource(&c.subresource)
            }
        };
        match self.authz.authorize(&attributes) {
            Decision::Allow { reason } => AuthzDecision {
                allowed: true,
                reason,
                error: None,
            },
            Decision::Deny { reason } | Decision::NoOpinion { reason } => AuthzDecision {
                allowed: false,
                reason,
                error: None,
            },
        }
    }
}

/// The `authorizer` variable of a write (null when the call carries no authorizer).
pub fn variable(call: &Call<'_>) -> ferrokube_cel::Value {
    let Some(authz) = call.authorizer.clone() else {
        return ferrokube_cel::Value::Null;
    };
    let request = AuthzCheck {
        group: call.info.group.to_string(),
        resource: call.info.resource.to_string(),
        subresource: call.subresource.to_string(),
        namespace: call.namespace.to_string(),
        name: call.name.to_string(),
        ..Default::default()
    };
    ferrokube_cel::authorizer(
        Arc::new(RequestAuthorizer {
            authz,
            user: call.user.clone(),
        }),
        request,
    )
}
