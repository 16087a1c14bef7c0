//! The AdmissionReview a webhook receives and what its answer must look like
//! (upstream's `webhook/request`): the request carries the uid, kind, resource,
//! operation, user, objects, dryRun and options; the response must come back as the same
//! AdmissionReview version with the same uid, and only a mutating webhook may send a
//! JSONPatch.

use base64::Engine;
use ferrokube_api::status::{Status, StatusCause, StatusDetails};
use ferrokube_authz::UserInfo;
use serde_json::{json, Map, Value};

/// What the review describes.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: &'a str,
    pub user: &'a UserInfo,
    pub dry_run: bool,
    /// CreateOptions, UpdateOptions, PatchOptions or DeleteOptions.
    pub options: &'a Value,
}

fn user_info(u: &UserInfo) -> Value {
    let mut m = Map::new();
    m.insert("username".into(), json!(u.name));
    if !u.uid.is_empty() {
        m.insert("uid".into(), json!(u.uid));
    }
    if !u.groups.is_empty() {
        m.insert("groups".into(), json!(u.groups));
    }
    if !u.extra.is_empty() {
        m.insert("extra".into(), json!(u.extra));
    }
    Value::Object(m)
}

/// The AdmissionReview sent to a webhook.
pub fn request(
    api_version: &str,
    uid: &str,
    s: &Subject<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Value {
    let kind = json!({"group": s.group, "version": s.version, "kind": s.kind});
    let resource = json!({"group": s.group, "version": s.version, "resource": s.resource});
    let mut r = Map::new();
    r.insert("uid".into(), json!(uid));
    r.insert("kind".into(), kind.clone());
    r.insert("resource".into(), resource.clone());
    if !s.subresource.is_empty() {
        r.insert("subResource".into(), json!(s.subresource));
    }
    r.insert("requestKind".into(), kind);
    r.insert("requestResource".into(), resource);
    if !s.subresource.is_empty() {
        r.insert("requestSubResource".into(), json!(s.subresource));
    }
    if !s.name.is_empty() {
        r.insert("name".into(), json!(s.name));
    }
    if !s.namespace.is_empty() {
        r.insert("namespace".into(), json!(s.namespace));
    }
    r.insert("operation".into(), json!(s.operation));
    r.insert("userInfo".into(), user_info(s.user));
    r.insert("object".into(), object.cloned().unwrap_or(Value::Null));
    r.insert("oldObject".into(), old.cloned().unwrap_or(Value::Null));
    r.insert("dryRun".into(), json!(s.dry_run));
    r.insert("options".into(), s.options.clone());
    json!({"kind": "AdmissionReview", "apiVersion": api_version, "request": r})
}

/// A webhook's checked answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub allowed: bool,
    /// `response.status` (a rejection's reason).
    pub status: Option<Value>,
    /// A decoded JSONPatch (mutating webhooks only).
    pub patch: Option<Value>,
    pub warnings: Vec<String>,
    /// `response.auditAnnotations`, for the request's audit event (as `<webhook>/<key>`).
    pub audit_annotations: Vec<(String, String)>,
}

/// Checks a response body (upstream's `VerifyAdmissionResponse`); errors are the reason a
/// call failed.
pub fn verify(
    body: &[u8],
    api_version: &str,
    uid: &str,
    mutating: bool,
) -> Result<Verdict, String> {
    let review: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the webhook response is not valid JSON: {e}"))?;
    let got_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let got_kind = review.get("kind").and_then(Value::as_str).unwrap_or("");
    if got_version != api_version || got_kind != "AdmissionReview" {
        return Err(format!(
            "expected webhook response of {api_version}, Kind=AdmissionReview, got {got_version}, Kind={got_kind}"
        ));
    }
    let response = review
        .get("response")
        .filter(|r| r.is_object())
        .ok_or("webhook response was absent")?;
    let got_uid = response.get("uid").and_then(Value::as_str).unwrap_or("");
    if got_uid != uid {
        return Err(format!("expected response.uid={uid:?}, got {got_uid:?}"));
    }
    let allowed = match response.get("allowed") {
        Some(Value::Bool(b)) => *b,
        None | Some(Value::Null) => false,
        Some(other) => return Err(format!("response.allowed must be a boolean, got {other}")),
    };
    let patch_b64 = response
        .get("patch")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty());
    let patch_type = response
        .get("patchType")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty());
    let patch = match (patch_b64, patch_type) {
        (None, None) => None,
        (Some(_), None) => {
            return Err("webhook returned response.patch but not response.patchType".into())
        }
        (None, Some(_)) => {
            return Err("webhook returned response.patchType but not response.patch".into())
        }
        (Some(_), Some(_)) if !mutating => {
            return Err("validating webhook may not return response.patch".into())
        }
        (Some(_), Some(t)) if t != "JSONPatch" => {
            return Err(format!(
                "webhook returned invalid response.patchType of {t:?}"
            ))
        }
        (Some(p), Some(_)) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(p)
                .map_err(|e| format!("received undecodable patch in webhook response: {e}"))?;
            let patch: Value = serde_json::from_slice(&raw)
                .map_err(|e| format!("received undecodable patch in webhook response: {e}"))?;
            if !patch.is_array() {
                return Err("received undecodable patch in webhook response: a JSON patch is an array of operations".into());
            }
            Some(patch)
        }
    };
    let warnings = ferrokube_api::meta::string_list(response.get("warnings"));
    let audit_annotations = response
        .get("auditAnnotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Verdict {
        allowed,
        status: response.get("status").filter(|s| s.is_object()).cloned(),
        patch,
        warnings,
        audit_annotations,
    })
}

/// A rejection as the client sees it (upstream's `ToStatusErr`): at least 400, Failure,
/// the message prefixed with who denied it.
pub fn rejection(hook: &str, status: Option<&Value>) -> Status {
    let field = |k: &str| {
        status
            .and_then(|s| s.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let code = status
        .and_then(|s| s.get("code"))
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let denied = format!("admission webhook {hook:?} denied the request");
    let (message, reason) = (field("message"), field("reason"));
    let message = if !message.is_empty() {
        format!("{denied}: {message}")
    } else if !reason.is_empty() {
        format!("{denied}: {reason}")
    } else {
        format!("{denied} without explanation")
    };
    let mut st = Status::failure(code, &reason, message);
    if let Some(d) = status
        .and_then(|s| s.get("details"))
        .and_then(|d| serde_json::from_value::<StatusDetails>(d.clone()).ok())
    {
        st.details = Some(d);
    }
    st
}

/// A webhook that could not be called, failing closed (upstream's `NewInternalError` of
/// the `ErrCallingWebhook`).
pub fn call_failure(hook: &str, reason: &str) -> Status {
    let err = format!("failed calling webhook {hook:?}: failed to call webhook: {reason}");
    let mut st = Status::internal(&err);
    st.details = Some(StatusDetails {
        causes: vec![StatusCause {
            message: err,
            ..Default::default()
        }],
        ..Default::default()
    });
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "admission.k8s.io/v1";

    fn answer(response: Value) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"apiVersion": V1, "kind": "AdmissionReview", "response": response}),
        )
        .unwrap_or_default()
    }

    #[test]
    fn requests_carry_upstreams_fields() {
        let user = UserInfo::new("alice", &["devs"]);
        let opts = json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"});
        let s = Subject {
            group: "apps",
            version: "v1",
            kind: "Deployment",
            resource: "deployments",
            subresource: "",
            namespace: "ns",
            name: "web",
            operation: "CREATE",
            user: &user,
            dry_run: false,
            options: &opts,
        };
        let r = request(V1, "u1", &s, Some(&json!({"kind": "Deployment"})), None);
        assert_eq!(
            r["request"]["kind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        assert_eq!(r["request"]["resource"]["resource"], "deployments");
        assert_eq!(
            r["request"]["userInfo"],
            json!({"username": "alice", "groups": ["devs"]})
        );
        assert_eq!(r["request"]["oldObject"], Value::Null);
        assert!(r["request"].get("subResource").is_none());
        assert_eq!(r["request"]["options"]["kind"], "CreateOptions");
    }

    #[test]
    fn responses_are_checked() {
        let ok = verify(
            &answer(json!({"uid": "u", "allowed": true})),
            V1,
            "u",
            false,
        );
        assert_eq!(ok.map(|v| v.allowed), Ok(true));
        let wrong_uid = verify(
            &answer(json!({"uid": "x", "allowed": true})),
            V1,
            "u",
            false,
        );
        assert_eq!(
            wrong_uid,
            Err("expected response.uid=\"u\", got \"x\"".into())
        );
        let absent = verify(
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            V1,
            "u",
            false,
        );
        assert_eq!(absent, Err("webhook response was absent".into()));
        let wrong_version = verify(br#"{"apiVersion":"v1","kind":"Status"}"#, V1, "u", false);
        assert!(wrong_version
            .is_err_and(|e| e.contains("expected webhook response of admission.k8s.io/v1")));
        let patch = base64::engine::general_purpose::STANDARD
            .encode(br#"[{"op":"add","path":"/metadata/labels","value":{"a":"b"}}]"#);
        let no_type = verify(
            &answer(json!({"uid": "u", "allowed": true, "patch": patch})),
            V1,
            "u",
            true,
        );
        assert!(no_type.is_err_and(|e| e.contains("not response.patchType")));
        let with_type = answer(
            json!({"uid": "u", "allowed": true, "patch": patch, "patchType": "JSONPatch", "warnings": ["w"]}),
        );
        let v = verify(&with_type, V1, "u", true).unwrap_or_else(|e| panic!("{e}"));
        assert!(v.patch.is_some_and(|p| p[0]["op"] == "add"));
        assert_eq!(v.warnings, vec!["w".to_string()]);
        assert!(verify(&with_type, V1, "u", false).is_err_and(|e| e.contains("validating webhook")));
        assert!(verify(b"not json", V1, "u", false).is_err());
    }

    #[test]
    fn rejections_read_as_upstreams() {
        let st = rejection(
            "deny.example.com",
            Some(&json!({"code": 403, "message": "no pods today"})),
        );
        assert_eq!(st.code, 403);
        assert_eq!(
            st.message,
            "admission webhook \"deny.example.com\" denied the request: no pods today"
        );
        let st = rejection("d", Some(&json!({"code": 200})));
        assert_eq!(st.code, 400);
        assert_eq!(
            st.message,
            "admission webhook \"d\" denied the request without explanation"
        );
        let st = call_failure("d", "Post \"https://x\": context deadline exceeded");
        assert_eq!(st.code, 500);
        assert_eq!(st.reason, "InternalError");
        assert!(st.message.starts_with(
            "Internal error occurred: failed calling webhook \"d\": failed to call webhook: Post"
        ));
    }
}
