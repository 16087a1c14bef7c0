//! ValidatingAdmissionPolicies, their bindings, and what they share with the webhook
//! configurations (`pkg/apis/admissionregistration/validation`): the rules with
//! operations, match resources, and the CEL expressions of validations, variables,
//! audit annotations and matchConditions, each compiled here so that a policy whose
//! expression does not compile is refused with the compiler's message.

use std::collections::BTreeSet;

use serde_json::Value;

use super::util::*;

/// The variables every admission expression may use.
const BASE_VARIABLES: &[&str] = &[
    "object",
    "oldObject",
    "request",
    "namespaceObject",
    "authorizer",
    "variables",
];

/// The CEL environment of a policy's expressions (`params` only with a paramKind).
pub fn cel_env(with_params: bool, with_authorizer: bool) -> ferrokube_cel::Env {
    let mut env = ferrokube_cel::Env::with_variables(
        BASE_VARIABLES
            .iter()
            .copied()
            .filter(|v| with_authorizer || *v != "authorizer"),
    );
    if with_params {
        env.declare("params");
    }
    env
}

/// The CEL environment of a webhook's matchConditions.
pub fn match_condition_env() -> ferrokube_cel::Env {
    ferrokube_cel::Env::with_variables(["object", "oldObject", "request", "authorizer"])
}

/// Compiles `expr` in `env`; a failure becomes upstream's field error.
fn compiles(path: &str, expr: &str, env: &ferrokube_cel::Env, errs: &mut Errs) {
    if let Err(e) = ferrokube_cel::compile(expr, env) {
        errs.push(invalid_str(path, expr, &format!("compilation failed: {e}")));
    }
}

fn has_wildcard(list: &[Value]) -> bool {
    list.iter().any(|v| v.as_str() == Some("*"))
}

/// `validateResources`: resources with optional subresources and the wildcard rules.
fn resources(path: &str, list: &[Value], errs: &mut Errs) {
    if list.is_empty() {
        errs.push(required(path, ""));
    }
    let mut wild_sub: BTreeSet<&str> = BTreeSet::new();
    let mut wild_res: BTreeSet<&str> = BTreeSet::new();
    let (mut double, mut single, mut plain) = (false, false, false);
    for (i, v) in list.iter().enumerate() {
        let rs = v.as_str().unwrap_or_default();
        if rs.is_empty() {
            errs.push(required(&idx(path, i), ""));
            continue;
        }
        double |= rs == "*/*";
        single |= rs == "*";
        let Some((res, sub)) = rs.split_once('/') else {
            plain = rs != "*";
            continue;
        };
        if wild_sub.contains(res) {
            errs.push(invalid_str(
                &idx(path, i),
                rs,
                &format!("if '{res}/*' is present, must not specify {rs}"),
            ));
        }
        if wild_res.contains(sub) {
            errs.push(invalid_str(
                &idx(path, i),
                rs,
                &format!("if '*/{sub}' is present, must not specify {rs}"),
            ));
        }
        if sub == "*" {
            wild_sub.insert(res);
        }
        if res == "*" {
            wild_res.insert(sub);
        }
    }
    if list.len() > 1 && double {
        errs.push(invalid_raw(
            path,
            &go_string_slice(list),
            "if '*/*' is present, must not specify other resources",
        ));
    }
    if single && plain {
        errs.push(invalid_raw(
            path,
            &go_string_slice(list),
            "if '*' is present, must not specify other resources without subresources",
        ));
    }
}

/// `validateRuleWithOperations`: one rule of a webhook or of match resources.
pub fn rule_with_operations(path: &str, rule: &Value, errs: &mut Errs) {
    let ops = arr(rule, "operations");
    let op_path = join(path, "operations");
    if ops.is_empty() {
        errs.push(required(&op_path, ""));
    }
    if ops.len() > 1 && has_wildcard(ops) {
        errs.push(invalid_raw(
            &op_path,
            &go_string_slice(ops),
            "if '*' is present, must not specify other operations",
        ));
    }
    for (i, op) in ops.iter().enumerate() {
        let op = op.as_str().unwrap_or_default();
        if !matches!(op, "*" | "CREATE" | "UPDATE" | "DELETE" | "CONNECT") {
            errs.push(not_supported(
                &idx(&op_path, i),
                op,
                &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"],
            ));
        }
    }
    let groups = arr(rule, "apiGroups");
    if groups.is_empty() {
        errs.push(required(&join(path, "apiGroups"), ""));
    }
    if groups.len() > 1 && has_wildcard(groups) {
        errs.push(invalid_raw(
            &join(path, "apiGroups"),
            &go_string_slice(groups),
            "if '*' is present, must not specify other API groups",
        ));
    }
    let versions = arr(rule, "apiVersions");
    let vp = join(path, "apiVersions");
    if versions.is_empty() {
        errs.push(required(&vp, ""));
    }
    if versions.len() > 1 && has_wildcard(versions) {
        errs.push(invalid_raw(
            &vp,
            &go_string_slice(versions),
            "if '*' is present, must not specify other API versions",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v.as_str().unwrap_or_default().is_empty() {
            errs.push(required(&idx(&vp, i), ""));
        }
    }
    resources(&join(path, "resources"), arr(rule, "resources"), errs);
    if let Some(scope) = str_of(rule, "scope") {
        if !matches!(scope, "*" | "Cluster" | "Namespaced") {
            errs.push(not_supported(
                &join(path, "scope"),
                scope,
                &["*", "Cluster", "Namespaced"],
            ));
        }
    }
}

/// `validateMatchConditions` (names unique qualified names, expressions compiled in
/// `env`, at most 64).
pub fn match_conditions(path: &str, list: &[Value], env: &ferrokube_cel::Env, errs: &mut Errs) {
    if list.len() > 64 {
        errs.push(field_too_many(path, list.len(), 64));
    }
    let mut names = BTreeSet::new();
    for (i, mc) in list.iter().enumerate() {
        let p = idx(path, i);
        let expr = s(mc, "expression").trim();
        if expr.is_empty() {
            errs.push(required(&join(&p, "expression"), ""));
        } else {
            compiles(&join(&p, "expression"), expr, env, errs);
        }
        let name = s(mc, "name");
        if name.is_empty() {
            errs.push(required(&join(&p, "name"), ""));
        } else {
            qualified_name(&join(&p, "name"), name, errs);
            if !names.insert(name) {
                errs.push(duplicate_str(&join(&p, "name"), name));
            }
        }
    }
}

/// `field.TooMany`.
fn field_too_many(path: &str, actual: usize, max: usize) -> crate::status::StatusCause {
    crate::status::StatusCause {
        cause_type: "FieldValueTooMany".into(),
        message: format!("Too many: {actual}: must have at most {max} items"),
        field: path.into(),
    }
}

/// `validateMatchResources` (of a policy's matchConstraints or a binding's
/// matchResources, after defaulting).
fn match_resources(path: &str, mr: &Value, errs: &mut Errs) {
    match str_of(mr, "matchPolicy") {
        None => errs.push(required(&join(path, "matchPolicy"), "")),
        Some("Exact" | "Equivalent") => {}
        Some(other) => errs.push(not_supported(
            &join(path, "matchPolicy"),
            other,
            &["Equivalent", "Exact"],
        )),
    }
    for key in ["namespaceSelector", "objectSelector"] {
        match get(mr, key) {
            None => errs.push(required(&join(path, key), "")),
            Some(sel) => label_selector(&join(path, key), Some(sel), errs),
        }
    }
    for key in ["resourceRules", "excludeResourceRules"] {
        for (i, rule) in arr(mr, key).iter().enumerate() {
            let p = idx(&join(path, key), i);
            let mut names = BTreeSet::new();
            for (j, n) in arr(rule, "resourceNames").iter().enumerate() {
                let n = n.as_str().unwrap_or_default();
                let np = idx(&join(&p, "resourceNames"), j);
                for msg in crate::validation::path_segment_name(n) {
                    errs.push(invalid_str(&np, n, &msg));
                }
                if !names.insert(n) {
                    errs.push(duplicate_str(&np, n));
                }
            }
            rule_with_operations(&p, rule, errs);
        }
    }
}

/// `validateParamKind`.
fn param_kind(path: &str, pk: &Value, errs: &mut Errs) {
    let api_version = s(pk, "apiVersion");
    let ap = join(path, "apiVersion");
    if api_version.is_empty() {
        errs.push(required(&ap, ""));
    } else {
        let (group, version) = match api_version.matches('/').count() {
            0 => ("", api_version),
            1 => api_version.split_once('/').unwrap_or(("", api_version)),
            _ => {
                errs.push(invalid_str(
                    &ap,
                    api_version,
                    &format!("unexpected GroupVersion string: {api_version}"),
                ));
                ("", "x")
            }
        };
        if !group.is_empty() {
            let msgs = crate::validation::dns1123_subdomain(group);
            if !msgs.is_empty() {
                errs.push(invalid_str(&ap, group, &msgs.join(",")));
            }
        }
        if version.is_empty() {
            errs.push(invalid_str(&ap, api_version, "version must be specified"));
        } else {
            let msgs = crate::validation::dns1035_label(version);
            if !msgs.is_empty() {
                errs.push(invalid_str(&ap, version, &msgs.join(",")));
            }
        }
    }
    let kind = s(pk, "kind");
    if kind.is_empty() {
        errs.push(required(&join(path, "kind"), ""));
    } else {
        let msgs = crate::validation::dns1035_label(&kind.to_lowercase());
        if !msgs.is_empty() {
            errs.push(invalid_str(
                &join(path, "kind"),
                kind,
                &format!(
                    "may have mixed case, but should otherwise match: {}",
                    msgs.join(",")
                ),
            ));
        }
    }
}

/// A ValidatingAdmissionPolicy (after defaulting).
pub fn validating_admission_policy(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    match str_of(spec, "failurePolicy") {
        None => errs.push(required("spec.failurePolicy", "")),
        Some("Fail" | "Ignore") => {}
        Some(other) => errs.push(not_supported(
            "spec.failurePolicy",
            other,
            &["Fail", "Ignore"],
        )),
    }
    let with_params = get(spec, "paramKind").is_some_and(|p| !p.is_null());
    if let Some(pk) = get(spec, "paramKind").filter(|p| !p.is_null()) {
        param_kind("spec.paramKind", pk, &mut errs);
    }
    match get(spec, "matchConstraints").filter(|m| !m.is_null()) {
        None => errs.push(required("spec.matchConstraints", "")),
        Some(mc) => {
            match_resources("spec.matchConstraints", mc, &mut errs);
            if arr(mc, "resourceRules").is_empty() {
                errs.push(required("spec.matchConstraints.resourceRules", ""));
            }
        }
    }
    let env = cel_env(with_params, true);
    match_conditions(
        "spec.matchConditions",
        arr(spec, "matchConditions"),
        &env,
        &mut errs,
    );
    for (i, var) in arr(spec, "variables").iter().enumerate() {
        let p = idx("spec.variables", i);
        let name = s(var, "name");
        if name.trim().is_empty() {
            errs.push(required(&join(&p, "name"), "name is not specified"));
        } else if !ferrokube_cel::is_identifier(name) {
            errs.push(invalid_str(
                &join(&p, "name"),
                name,
                "name is not a valid CEL identifier",
            ));
        }
        let expr = s(var, "expression");
        if expr.trim().is_empty() {
            errs.push(required(
                &join(&p, "expression"),
                "expression is not specified",
            ));
        } else {
            compiles(&join(&p, "expression"), expr, &env, &mut errs);
        }
    }
    let validations = arr(spec, "validations");
    let annotations = arr(spec, "auditAnnotations");
    if validations.is_empty() && annotations.is_empty() {
        let why = "validations or auditAnnotations must contain at least one item";
        errs.push(required("spec.validations", why));
        errs.push(required("spec.auditAnnotations", why));
        return errs;
    }
    let message_env = cel_env(with_params, false);
    for (i, v) in validations.iter().enumerate() {
        validation(
            &idx("spec.validations", i),
            v,
            &env,
            &message_env,
            &mut errs,
        );
    }
    let policy_name = get(obj, "metadata")
        .map(|m| s(m, "name"))
        .unwrap_or_default();
    if annotations.len() > 20 {
        errs.push(invalid_raw(
            "spec.auditAnnotations",
            "[...]",
            "must not have more than 20 auditAnnotations",
        ));
    }
    let mut keys = BTreeSet::new();
    for (i, a) in annotations.iter().enumerate() {
        let p = idx("spec.auditAnnotations", i);
        let key = s(a, "key");
        if policy_name.is_empty() {
            errs.push(invalid_str(
                &join(&p, "key"),
                key,
                "requires metadata.name be non-empty",
            ));
        } else {
            qualified_name(&join(&p, "key"), &format!("{policy_name}/{key}"), &mut errs);
        }
        let expr = s(a, "valueExpression").trim();
        let vp = join(&p, "valueExpression");
        if expr.is_empty() {
            errs.push(required(&vp, "valueExpression is not specified"));
        } else if expr.len() > 5 * 1024 {
            errs.push(required(&vp, "must not exceed 5120 bytes in length"));
        } else {
            compiles(&vp, expr, &env, &mut errs);
        }
        if !keys.insert(key) {
            errs.push(duplicate_str(&join(&p, "key"), key));
        }
    }
    errs
}

/// `validateValidation`: one of a policy's validations.
fn validation(
    path: &str,
    v: &Value,
    env: &ferrokube_cel::Env,
    message_env: &ferrokube_cel::Env,
    errs: &mut Errs,
) {
    let expr = s(v, "expression");
    if expr.trim().is_empty() {
        errs.push(required(
            &join(path, "expression"),
            "expression is not specified",
        ));
    } else {
        compiles(&join(path, "expression"), expr, env, errs);
    }
    if let Some(me) = str_of(v, "messageExpression") {
        let mp = join(path, "messageExpression");
        if me.trim().is_empty() {
            if !me.is_empty() {
                errs.push(invalid_str(&mp, me, "must be non-empty if specified"));
            }
        } else {
            compiles(&mp, me, message_env, errs);
        }
    }
    if let Some(msg) = str_of(v, "message") {
        let trimmed = msg.trim();
        let p = join(path, "message");
        if !msg.is_empty() && trimmed.is_empty() {
            errs.push(invalid_str(
                &p,
                msg,
                "message must be non-empty if specified",
            ));
        } else if trimmed.contains(['\n', '\r']) {
            errs.push(invalid_str(&p, msg, "message must not contain line breaks"));
        }
    }
    if let Some(reason) = str_of(v, "reason") {
        const REASONS: &[&str] = &[
            "Forbidden",
            "Invalid",
            "RequestEntityTooLarge",
            "Unauthorized",
        ];
        if !REASONS.contains(&reason) {
            errs.push(not_supported(&join(path, "reason"), reason, REASONS));
        }
    }
}

/// A ValidatingAdmissionPolicyBinding (after defaulting).
pub fn validating_admission_policy_binding(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    let policy = s(spec, "policyName");
    if policy.is_empty() {
        errs.push(required("spec.policyName", ""));
    } else {
        for msg in crate::validation::dns1123_subdomain(policy) {
            errs.push(invalid_str("spec.policyName", policy, &msg));
        }
    }
    if let Some(pr) = get(spec, "paramRef").filter(|p| !p.is_null()) {
        param_ref(pr, &mut errs);
    }
    if let Some(mr) = get(spec, "matchResources").filter(|m| !m.is_null()) {
        // Upstream's path has this spelling.
        match_resources("spec.matchResouces", mr, &mut errs);
    }
    let actions = arr(spec, "validationActions");
    let mut seen = BTreeSet::new();
    for (i, a) in actions.iter().enumerate() {
        let a = a.as_str().unwrap_or_default();
        let p = idx("spec.validationActions", i);
        if !matches!(a, "Deny" | "Warn" | "Audit") {
            errs.push(not_supported(&p, a, &["Audit", "Deny", "Warn"]));
        }
        if !seen.insert(a) {
            errs.push(duplicate_str(&p, a));
        }
    }
    if seen.contains("Deny") && seen.contains("Warn") {
        errs.push(invalid_raw(
            "spec.validationActions",
            &go_string_slice(actions),
            "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
        ));
    }
    if seen.is_empty() {
        errs.push(required(
            "spec.validationActions",
            "at least one validation action is required",
        ));
    }
    errs
}

/// `validateParamRef`.
fn param_ref(pr: &Value, errs: &mut Errs) {
    let name = s(pr, "name");
    let selector = get(pr, "selector").filter(|s| !s.is_null());
    if !name.is_empty() {
        for msg in crate::validation::path_segment_name(name) {
            errs.push(invalid_str("spec.paramRef.name", name, &msg));
        }
        if selector.is_some() {
            errs.push(forbidden(
                "spec.paramRef.name",
                "name and selector are mutually exclusive",
            ));
        }
    }
    if let Some(sel) = selector {
        label_selector("spec.paramRef.selector", Some(sel), errs);
        if !name.is_empty() {
            errs.push(forbidden(
                "spec.paramRef.selector",
                "name and selector are mutually exclusive",
            ));
        }
    }
    if name.is_empty() && selector.is_none() {
        errs.push(required(
            "spec.paramRef",
            "one of name or selector must be specified",
        ));
    }
    match str_of(pr, "parameterNotFoundAction").filter(|a| !a.is_empty()) {
        None => errs.push(required("spec.paramRef.parameterNotFoundAction", "")),
        Some("Allow" | "Deny") => {}
        Some(other) => errs.push(not_supported(
            "spec.paramRef.parameterNotFoundAction",
            other,
            &["Deny", "Allow"],
        )),
    }
}
