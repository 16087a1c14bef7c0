//! The review APIs, answered from the request's user and the authorizers' state:
//! TokenReview, SelfSubjectReview (`kubectl auth whoami`), SubjectAccessReview,
//! SelfSubjectAccessReview and LocalSubjectAccessReview (`kubectl auth can-i`), and
//! SelfSubjectRulesReview (`kubectl auth can-i --list`). Each is create-only and
//! returns the object with its status filled in (201).

use ferrokube_api::status::{Status, Subject};
use ferrokube_authz::{Attributes, Decision, UserInfo};
use serde_json::{json, Value};

use super::filter::RegistryLookup;
use super::Security;
use crate::errors::ApiResult;
use crate::registry::Registry;

/// Whether (group, resource) is a review this module answers.
pub fn is_review(group: &str, resource: &str) -> bool {
    matches!(
        (group, resource),
        (
            "authentication.k8s.io",
            "tokenreviews" | "selfsubjectreviews"
        ) | (
            "authorization.k8s.io",
            "subjectaccessreviews"
                | "selfsubjectaccessreviews"
                | "localsubjectaccessreviews"
                | "selfsubjectrulesreviews"
        )
    )
}

fn user_json(u: &UserInfo) -> Value {
    let mut v = json!({"username": u.name, "groups": u.groups});
    if !u.uid.is_empty() {
        v["uid"] = json!(u.uid);
    }
    if !u.extra.is_empty() {
        v["extra"] = json!(u.extra);
    }
    v
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn invalid(kind: &str, field: &str, why: &str) -> crate::errors::ApiError {
    Status::invalid(
        Subject {
            group: "authorization.k8s.io",
            resource: kind,
            name: "",
        },
        vec![ferrokube_api::status::field::invalid(
            field,
            &Value::Null,
            why,
        )],
    )
    .into()
}

/// The attributes of a SubjectAccessReview spec for `user`.
fn spec_attributes(kind: &str, spec: &Value, user: UserInfo) -> ApiResult<Attributes> {
    if let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
        if spec
            .get("nonResourceAttributes")
            .is_some_and(Value::is_object)
        {
            return Err(invalid(
                kind,
                "spec.nonResourceAttributes",
                "cannot be specified in combination with resourceAttributes",
            ));
        }
        let mut a = Attributes::resource(
            user,
            s(r, "/verb"),
            s(r, "/group"),
            s(r, "/resource"),
            s(r, "/namespace"),
            s(r, "/name"),
        )
        .with_subresource(s(r, "/subresource"));
        a.api_version = match s(r, "/version") {
            "" => "*".into(),
            v => v.into(),
        };
        if let Some(fs) = r
            .pointer("/fieldSelector/rawSelector")
            .and_then(Value::as_str)
        {
            a = a.with_field_selector(fs);
        }
        return Ok(a);
    }
    if let Some(n) = spec.get("nonResourceAttributes").filter(|r| r.is_object()) {
        return Ok(Attributes::non_resource(user, s(n, "/verb"), s(n, "/path")));
    }
    Err(invalid(
        kind,
        "spec.resourceAttributes",
        "exactly one of nonResourceAttributes or resourceAttributes must be specified",
    ))
}

fn access_status(d: Decision) -> Value {
    let mut st = json!({"allowed": d.is_allowed()});
    if matches!(d, Decision::Deny { .. }) {
        st["denied"] = json!(true);
    }
    if !d.reason().is_empty() {
        st["reason"] = json!(d.reason());
    }
    st
}

fn rules_status(security: &Security, user: &UserInfo, namespace: &str) -> Value {
    let privileged = user.in_group(ferrokube_authz::SYSTEM_PRIVILEGED_GROUP);
    let (rules, errors) = security.rbac.rules_for(user, namespace);
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    if privileged {
        resource_rules.push(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
        non_resource_rules.push(json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
    }
    for r in rules {
        let v = serde_json::to_value(&r).unwrap_or(Value::Null);
        if v.get("nonResourceURLs")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            non_resource_rules
                .push(json!({"verbs": v["verbs"], "nonResourceURLs": v["nonResourceURLs"]}));
        } else {
            let mut rr = json!({"verbs": v["verbs"], "apiGroups": v.get("apiGroups").cloned().unwrap_or(json!([])),
                "resources": v.get("resources").cloned().unwrap_or(json!([]))});
            if let Some(names) = v
                .get("resourceNames")
                .filter(|n| n.as_array().is_some_and(|a| !a.is_empty()))
            {
                rr["resourceNames"] = names.clone();
            }
            resource_rules.push(rr);
        }
    }
    let mut st = json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
        "incomplete": !errors.is_empty()});
    if !errors.is_empty() {
        st["evaluationError"] = json!(errors.join(", "));
    }
    st
}

/// Answers one review: the request body with `status` filled in.
pub async fn handle(
    security: &Security,
    registry: &Registry,
    requester: &UserInfo,
    resource: &str,
    namespace: &str,
    mut body: Value,
) -> ApiResult<Value> {
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = match resource {
        "tokenreviews" => {
            let token = s(&spec, "/token");
            if token.is_empty() {
                return Err(Status::invalid(
                    Subject {
                        group: "authentication.k8s.io",
                        resource: "TokenReview",
                        name: "",
                    },
                    vec![ferrokube_api::status::field::required("spec.token", "")],
                )
                .into());
            }
            let audiences = ferrokube_api::meta::string_list(spec.get("audiences"));
            let result = security
                .authn
                .authenticate_token(token, &audiences, &RegistryLookup(registry))
                .await;
            ferrokube_authn::token_review_status(&result)
        }
        "selfsubjectreviews" => json!({"userInfo": user_json(requester)}),
        "selfsubjectaccessreviews" => {
            let a = spec_attributes("SelfSubjectAccessReview", &spec, requester.clone())?;
            access_status(security.authz.authorize(&a))
        }
        "subjectaccessreviews" | "localsubjectaccessreviews" => {
            let kind = if resource == "subjectaccessreviews" {
                "SubjectAccessReview"
            } else {
                "LocalSubjectAccessReview"
            };
            let user = UserInfo {
                name: s(&spec, "/user").to_string(),
                uid: s(&spec, "/uid").to_string(),
                groups: ferrokube_api::meta::string_list(spec.get("groups")),
                extra: serde_json::from_value(spec.get("extra").cloned().unwrap_or(json!({})))
                    .unwrap_or_default(),
            };
            if user.name.is_empty() && user.groups.is_empty() {
                return Err(invalid(
                    kind,
                    "spec.user",
                    "at least one of user or group must be specified",
                ));
            }
            let a = spec_attributes(kind, &spec, user)?;
            if resource == "localsubjectaccessreviews" && a.namespace != namespace {
                return Err(invalid(
                    kind,
                    "spec.resourceAttributes.namespace",
                    "must match metadata.namespace",
                ));
            }
            access_status(security.authz.authorize(&a))
        }
        "selfsubjectrulesreviews" => rules_status(security, requester, s(&spec, "/namespace")),
        _ => return Err(Status::internal("not a review").into()),
    };
    if let Some(m) = body.as_object_mut() {
        m.insert("status".into(), status);
        let meta = m.entry("metadata").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("creationTimestamp".into(), Value::Null);
            if resource == "localsubjectaccessreviews" {
                meta.insert("namespace".into(), json!(namespace));
            }
        }
    }
    Ok(body)
}
