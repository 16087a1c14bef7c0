//! The ValidatingAdmissionPolicy plugin (upstream's `admission/plugin/policy/validating`):
//! stored policies and bindings, kept current by a watch ([`crate::auth::feeds`]), are
//! evaluated in-process on every write they match. For each binding of a matching
//! policy: the binding's own match resources, its params (`paramRef`: by name or label
//! selector, in the request's namespace for namespaced params unless one is given), the
//! policy's matchConditions, then each validation with `object`, `oldObject`,
//! `request`, `params`, `namespaceObject` and the lazily evaluated `variables`. A false
//! validation is a denial the binding's validationActions enforce (Deny: the request
//! fails with the validation's reason and code; Warn: a warning header; Audit: the
//! `validation.policy.admission.k8s.io/validation_failure` audit annotation); the
//! policy's auditAnnotations become `<policy>/<key>` audit annotations; an evaluation or configuration error counts as a denial unless the
//! policy's failurePolicy is Ignore.
//!
//! The `authorizer` variable asks the server's authorizers (as the requesting user, or a
//! service account).
//!
//! Partial: the objects are seen in their stored version, there is no type checking
//! (status.typeChecking stays empty).

mod authorizer;
pub mod compiled;
mod evaluate;
mod params;

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrokube_api::status::{Status, StatusCause, StatusDetails};
use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use self::compiled::{Binding, Policy};
pub use self::evaluate::{conditions_hold, match_activation};
use super::webhook::{rules, Call};
use crate::errors::ApiResult;

/// A policy with the bindings that name it.
#[derive(Debug)]
struct Hook {
    policy: Arc<Policy>,
    bindings: Vec<Arc<Binding>>,
}

#[derive(Debug, Default)]
struct Stored {
    policies: BTreeMap<String, Arc<Policy>>,
    bindings: BTreeMap<String, Arc<Binding>>,
}

/// The stored policies and bindings.
#[derive(Debug, Default)]
pub struct Policies {
    stored: Mutex<Stored>,
    hooks: RwLock<Arc<Vec<Hook>>>,
}

/// What one binding decided about a request.
#[derive(Debug)]
struct Denial {
    policy: String,
    binding: String,
    message: String,
    /// The Status reason (Invalid, Forbidden, Unauthorized, RequestEntityTooLarge).
    reason: String,
}

impl Denial {
    fn text(&self) -> String {
        if self.binding.is_empty() {
            format!(
                "ValidatingAdmissionPolicy '{}' denied request: {}",
                self.policy, self.message
            )
        } else {
            format!(
                "ValidatingAdmissionPolicy '{}' with binding '{}' denied request: {}",
                self.policy, self.binding, self.message
            )
        }
    }
}

/// The HTTP code of a denial's reason (upstream's `reasonToCode`).
fn reason_code(reason: &str) -> u16 {
    match reason {
        "Forbidden" => 403,
        "Unauthorized" => 401,
        "RequestEntityTooLarge" => 413,
        _ => 422,
    }
}

impl Policies {
    pub fn upsert_policy(&self, obj: &Value) {
        let p = Policy::parse(obj);
        let mut s = self.stored.lock();
        s.policies.insert(p.name.clone(), Arc::new(p));
        self.publish(&s);
    }

    pub fn remove_policy(&self, name: &str) {
        let mut s = self.stored.lock();
        s.policies.remove(name);
        self.publish(&s);
    }

    pub fn upsert_binding(&self, obj: &Value) {
        let b = Binding::parse(obj);
        let mut s = self.stored.lock();
        s.bindings.insert(b.name.clone(), Arc::new(b));
        self.publish(&s);
    }

    pub fn remove_binding(&self, name: &str) {
        let mut s = self.stored.lock();
        s.bindings.remove(name);
        self.publish(&s);
    }

    fn publish(&self, s: &Stored) {
        let hooks = s
            .policies
            .values()
            .filter_map(|policy| {
                let bindings: Vec<Arc<Binding>> = s
                    .bindings
                    .values()
                    .filter(|b| b.policy == policy.name)
                    .cloned()
                    .collect();
                (!bindings.is_empty()).then(|| Hook {
                    policy: policy.clone(),
                    bindings,
                })
            })
            .collect();
        *self.hooks.write() = Arc::new(hooks);
    }

    /// Whether any policy is bound (writes skip the plugin otherwise).
    pub fn is_empty(&self) -> bool {
        self.hooks.read().is_empty()
    }

    /// Evaluates every bound policy that matches the write; returns the warnings of
    /// Warn bindings, or the first denial of a Deny binding.
    pub async fn validate(
        &self,
        call: &Call<'_>,
        obj: Option<&Value>,
        old: Option<&Value>,
    ) -> ApiResult<Vec<String>> {
        let hooks = self.hooks.read().clone();
        if hooks.is_empty() || call.exempt() {
            return Ok(Vec::new());
        }
        let req = call.rules_request();
        let mut namespace: Option<Option<Value>> = None;
        let mut input: Option<evaluate::Input> = None;
        let mut denials: Vec<Denial> = Vec::new();
        let mut warnings = Vec::new();
        for hook in hooks.iter() {
            let policy = &hook.policy;
            // auditAnnotations of every binding, published as `<policy>/<key>` with
            // distinct values joined.
            let mut audit_values: BTreeMap<String, Vec<String>> = BTreeMap::new();
            if !policy.constraints.selects(&req, call.name)
                || !policy.constraints.object_matches(obj, old)
            {
                continue;
            }
            let ns = match &namespace {
                Some(ns) => ns.clone(),
                None => {
                    let ns = super::webhook::namespace_of(call, obj, old).await;
                    namespace = Some(ns.clone());
                    ns
                }
            };
            if !policy.constraints.namespace_matches(ns.as_ref()) {
                continue;
            }
            for binding in &hook.bindings {
                if let Some(m) = &binding.resources {
                    if !m.selects(&req, call.name)
                        || !m.object_matches(obj, old)
                        || !m.namespace_matches(ns.as_ref())
                    {
                        continue;
                    }
                }
                let config_error = |e: params::ParamError| match e {
                    params::ParamError::Policy(why) => Denial {
                        policy: policy.name.clone(),
                        binding: String::new(),
                        message: format!("failed to configure policy: {why}"),
                        reason: "Invalid".into(),
                    },
                    params::ParamError::Binding(why) => Denial {
                        policy: policy.name.clone(),
                        binding: binding.name.clone(),
                        message: format!("failed to configure binding: {why}"),
                        reason: "Invalid".into(),
                    },
                };
                let params = match params::collect(call, policy, binding).await {
                    Ok(p) => p,
                    Err(e) => {
                        if !policy.ignore_failures {
                            denials.push(config_error(e));
                        }
                        continue;
                    }
                };
                let input = input.get_or_insert_with(|| {
                    evaluate::Input::new(call, obj, old, ns.as_ref(), call.info.namespaced)
                });
                for param in &params {
                    let (failures, annotations) = evaluate::run(policy, input, param.as_ref());
                    for (key, value) in annotations {
                        let values = audit_values.entry(key).or_default();
                        if !values.contains(&value) {
                            values.push(value);
                        }
                    }
                    for failure in failures {
                        if binding.deny {
                            denials.push(Denial {
                                policy: policy.name.clone(),
                                binding: binding.name.clone(),
                                message: failure.message.clone(),
                                reason: failure.reason.clone(),
                            });
                        }
                        if binding.warn {
                            warnings.push(format!(
                                "Validation failed for ValidatingAdmissionPolicy '{}' with binding '{}': {}",
                                policy.name, binding.name, failure.message
                            ));
                        }
                        if binding.audit {
                            let value = serde_json::json!([{
                                "message": failure.message,
                                "policy": policy.name,
                                "binding": binding.name,
                                "expressionIndex": failure.index,
                                "validationActions": binding.actions,
                            }]);
                            crate::audit::annotations::add(
                                "validation.policy.admission.k8s.io/validation_failure",
                                value.to_string(),
                            );
                        }
                    }
                }
            }
            for (key, values) in audit_values {
                crate::audit::annotations::add(format!("{}/{key}", policy.name), values.join(", "));
            }
        }
        match denials.into_iter().next() {
            Some(d) => Err(denial_status(call, &d).into()),
            None => Ok(warnings),
        }
    }
}

/// The Status of a denial: upstream's `admission.NewForbidden` with the validation's
/// reason and its code, the message repeated as a cause.
fn denial_status(call: &Call<'_>, d: &Denial) -> Status {
    let message = d.text();
    let subject = ferrokube_api::status::Subject {
        group: call.info.group,
        resource: call.info.resource,
        name: call.name,
    };
    let mut st = Status::forbidden(subject, &message);
    st.reason = d.reason.clone();
    st.code = reason_code(&d.reason);
    let details = st.details.get_or_insert_with(StatusDetails::default);
    details.causes.push(StatusCause {
        message,
        ..Default::default()
    });
    st
}

/// The request as the rules see it (shared with the webhooks).
impl Call<'_> {
    pub(crate) fn rules_request(&self) -> rules::Request<'_> {
        rules::Request {
            operation: self.operation(),
            group: self.info.group,
            version: self.info.version,
            resource: self.info.resource,
            subresource: self.subresource,
            namespaced: self.info.namespaced,
        }
    }
}
