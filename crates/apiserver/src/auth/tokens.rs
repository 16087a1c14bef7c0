//! TokenRequest (`serviceaccounts/<name>/token`, what `kubectl create token` and the
//! kubelet call) and service-account issuer discovery
//! (`/.well-known/openid-configuration`, `/openid/v1/jwks`).

use ferrokube_api::resources;
use ferrokube_api::status::{Status, Subject};
use ferrokube_authn::{resolve_bound_object, BindError, TokenSpec};
use serde_json::{json, Value};

use super::filter::RegistryLookup;
use super::Security;
use crate::errors::ApiResult;
use crate::registry::{Registry, Target};

/// POST `/api/v1/namespaces/<ns>/serviceaccounts/<name>/token`.
pub async fn token_request(
    security: &Security,
    registry: &Registry,
    namespace: &str,
    name: &str,
    body: &Value,
    dry_run: bool,
) -> ApiResult<(Value, Option<String>)> {
    let Some(issuer) = security.issuer.as_ref() else {
        return Err(Status::failure(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .into());
    };
    let info = resources::lookup("", "v1", "serviceaccounts")
        .ok_or_else(|| Status::internal("serviceaccounts are not registered"))?;
    let sa = registry
        .get(&Target::builtin(info, Some(namespace)), name)
        .await?;
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let bound = match spec.get("boundObjectRef").filter(|b| b.is_object()) {
        None => None,
        Some(b) => {
            let s = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("");
            let resolved = resolve_bound_object(
                &RegistryLookup(registry),
                namespace,
                name,
                s("apiVersion"),
                s("kind"),
                s("name"),
                s("uid"),
            )
            .await
            .map_err(|e| match e {
                BindError::UidMismatch(_) => Status::conflict(
                    Subject {
                        group: "",
                        resource: "serviceaccounts",
                        name,
                    },
                    &e.to_string(),
                ),
                BindError::NotFound { .. } => Status::failure(404, "NotFound", e.to_string()),
                other => Status::bad_request(other.to_string()),
            })?;
            Some(resolved)
        }
    };
    let audiences = ferrokube_api::meta::string_list(spec.get("audiences"));
    let token_spec = TokenSpec {
        namespace: namespace.to_string(),
        service_account_name: name.to_string(),
        service_account_uid: sa
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        audiences,
        expiration_seconds: spec.get("expirationSeconds").and_then(Value::as_i64),
        bound_object: bound,
    };
    let issued = issuer.issue(&token_spec).map_err(|e| {
        Status::invalid(
            Subject {
                group: "authentication.k8s.io",
                resource: "TokenRequest",
                name,
            },
            vec![ferrokube_api::status::field::invalid(
                "spec.expirationSeconds",
                spec.get("expirationSeconds").unwrap_or(&Value::Null),
                &e.to_string(),
            )],
        )
    })?;
    let mut out = body.clone();
    if !out.is_object() {
        out = json!({});
    }
    out["apiVersion"] = json!("authentication.k8s.io/v1");
    out["kind"] = json!("TokenRequest");
    out["metadata"] = json!({"name": name, "namespace": namespace, "creationTimestamp": null});
    out["spec"]["audiences"] = json!(issued.audiences);
    out["spec"]["expirationSeconds"] = json!(issued.expiration_seconds);
    if let Some(b) = spec.get("boundObjectRef") {
        out["spec"]["boundObjectRef"] = b.clone();
    }
    out["status"] = if dry_run {
        json!({"token": "", "expirationTimestamp": issued.expiration_timestamp})
    } else {
        json!({"token": issued.token, "expirationTimestamp": issued.expiration_timestamp})
    };
    Ok((out, issued.warning))
}
