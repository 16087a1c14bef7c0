//! One policy on one request with one param (upstream's `validating.validator`):
//! variables, matchConditions, validations with their messages, audit annotations.

use ferrokube_cel::{Activation, EvalError, Program, Value as Cel};
use serde_json::Value;

use super::compiled::{Compiled, Named, Policy};
use crate::admission::webhook::{review, Call};

/// The request's variables, converted once for every policy.
#[derive(Debug)]
pub struct Input {
    object: Cel,
    old_object: Cel,
    request: Cel,
    namespace_object: Cel,
    authorizer: Cel,
}

/// The `request` variable: the AdmissionRequest a webhook would get, without objects.
pub fn admission_request(call: &Call<'_>) -> Value {
    let uid = uuid::Uuid::new_v4().to_string();
    let mut review = review::request("admission.k8s.io/v1", &uid, &call.subject(), None, None);
    let mut request = review
        .get_mut("request")
        .map(Value::take)
        .unwrap_or(Value::Null);
    if let Some(m) = request.as_object_mut() {
        m.remove("object");
        m.remove("oldObject");
    }
    request
}

impl Input {
    pub fn new(
        call: &Call<'_>,
        obj: Option<&Value>,
        old: Option<&Value>,
        namespace: Option<&Value>,
        namespaced: bool,
    ) -> Input {
        let to_cel = |v: Option<&Value>| v.map_or(Cel::Null, Cel::from);
        Input {
            object: to_cel(obj),
            old_object: to_cel(old),
            request: Cel::from(&admission_request(call)),
            // Upstream gives a Namespace's own writes no namespaceObject.
            namespace_object: if namespaced {
                to_cel(namespace)
            } else {
                Cel::Null
            },
            authorizer: super::authorizer::variable(call),
        }
    }
}

/// The activation of a webhook's matchConditions: `object`, `oldObject`, `request`.
pub fn match_activation(call: &Call<'_>, obj: Option<&Value>, old: Option<&Value>) -> Activation {
    let to_cel = |v: Option<&Value>| v.map_or(Cel::Null, Cel::from);
    let mut a = Activation::new();
    a.bind("object", to_cel(obj));
    a.bind("oldObject", to_cel(old));
    a.bind("request", Cel::from(&admission_request(call)));
    a.bind("authorizer", super::authorizer::variable(call));
    a
}

/// A validation that did not pass (or could not be evaluated).
#[derive(Debug)]
pub struct Failure {
    pub index: usize,
    pub message: String,
    pub reason: String,
}

fn error_failure(index: usize, message: String) -> Failure {
    Failure {
        index,
        message,
        reason: "Invalid".into(),
    }
}

/// Evaluates a compiled expression; errors as upstream words them.
fn eval(compiled: &Compiled, expression: &str, activation: &Activation) -> Result<Cel, String> {
    let program: &Program = compiled.as_ref().map_err(Clone::clone)?;
    program
        .eval(activation)
        .map_err(|e| format!("expression '{expression}' resulted in error: {e}"))
}

/// The activation with the policy's variables evaluated in order (each sees those
/// before it; a failed one raises its error only where it is used).
fn activation(policy: &Policy, input: &Input, param: Option<&Value>) -> Activation {
    let mut a = Activation::new();
    a.bind("object", input.object.clone());
    a.bind("oldObject", input.old_object.clone());
    a.bind("request", input.request.clone());
    a.bind("namespaceObject", input.namespace_object.clone());
    a.bind("authorizer", input.authorizer.clone());
    a.bind("params", param.map_or(Cel::Null, Cel::from));
    let mut variables: Vec<(String, Result<Cel, EvalError>)> = Vec::new();
    a.bind_namespace("variables", Vec::new());
    for Named {
        name,
        expression,
        program,
    } in &policy.variables
    {
        let value = eval(program, expression, &a).map_err(|message| EvalError { message });
        variables.push((name.clone(), value));
        a.bind_namespace("variables", variables.clone());
    }
    a
}

/// Whether the policy's matchConditions let it run: Ok(false) when one is false,
/// Err with the errors when none is false but some failed.
pub fn conditions_hold(conditions: &[Named], activation: &Activation) -> Result<bool, String> {
    let mut errors = Vec::new();
    for c in conditions {
        match eval(&c.program, &c.expression, activation) {
            Ok(Cel::Bool(false)) => return Ok(false),
            Ok(Cel::Bool(true)) => {}
            Ok(other) => errors.push(format!(
                "expression '{}' resulted in error: no such overload: value of type {} is not a bool",
                c.expression,
                other.type_name()
            )),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(true),
        1 => Err(errors.remove(0)),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

/// Upstream's longest audit annotation value.
const MAX_ANNOTATION_BYTES: usize = 10 * 1024;

/// The policy's failures on this request (empty: it admits) and its audit annotations
/// (key, value).
pub fn run(
    policy: &Policy,
    input: &Input,
    param: Option<&Value>,
) -> (Vec<Failure>, Vec<(String, String)>) {
    let activation = activation(policy, input, param);
    let fail = !policy.ignore_failures;
    match conditions_hold(&policy.conditions, &activation) {
        Ok(true) => {}
        Ok(false) => return (Vec::new(), Vec::new()),
        Err(e) if fail => return (vec![error_failure(0, e)], Vec::new()),
        Err(_) => return (Vec::new(), Vec::new()),
    }
    let mut annotations = Vec::new();
    let mut failures = Vec::new();
    for (index, v) in policy.validations.iter().enumerate() {
        match eval(&v.program, &v.expression, &activation) {
            Ok(Cel::Bool(true)) => {}
            Ok(Cel::Bool(false)) => {
                let from_expression = v
                    .message_expression
                    .as_ref()
                    .and_then(|m| eval(m, "", &activation).ok())
                    .and_then(|r| crate::cel_message::usable(&r));
                let message = from_expression
                    .or_else(|| (!v.message.is_empty()).then(|| v.message.clone()))
                    .unwrap_or_else(|| format!("failed expression: {}", v.expression));
                failures.push(Failure {
                    index,
                    message,
                    reason: v.reason.clone(),
                });
            }
            Ok(other) => {
                if fail {
                    failures.push(error_failure(
                        index,
                        format!(
                            "expression '{}' resulted in error: no such overload: value of type {} is not a bool",
                            v.expression,
                            other.type_name()
                        ),
                    ));
                }
            }
            Err(e) => {
                if fail {
                    failures.push(error_failure(index, e));
                }
            }
        }
    }
    for a in &policy.audit_annotations {
        match eval(&a.program, &a.expression, &activation) {
            Ok(Cel::String(s)) if !s.trim().is_empty() => {
                let mut value = s.trim().to_string();
                if value.len() > MAX_ANNOTATION_BYTES {
                    let mut end = MAX_ANNOTATION_BYTES;
                    while !value.is_char_boundary(end) {
                        end -= 1;
                    }
                    value.truncate(end);
                }
                annotations.push((a.name.clone(), value));
            }
            Ok(Cel::String(_)) | Ok(Cel::Null) => {}
            Ok(other) if fail => failures.push(error_failure(
                0,
                format!(
                    "valueExpression '{}' resulted in unsupported return type: {}. Return type must be either string or null.",
                    a.expression,
                    other.type_name()
                ),
            )),
            Err(e) if fail => failures.push(error_failure(0, e)),
            _ => {}
        }
    }
    (failures, annotations)
}
