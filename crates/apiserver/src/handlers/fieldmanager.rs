//! Managed fields on every write and server-side apply, as upstream's handlers use
//! `fieldmanager.FieldManager`: the manager is `?fieldManager=` (or the client's user
//! agent up to its first `/`), every create/update/patch records what it changed in an
//! `Update` entry, and `application/apply-patch+yaml` merges an applied configuration
//! with conflict detection (409 with one `FieldManagerConflict` cause per field).

use ferrokube_api::status::{field, Status, StatusCause, Subject};
use ferrokube_patch::apply::{self, ApplyError, Manager, TypeSchema};
use serde_json::Value;

use crate::errors::ApiResult;
use crate::registry::Target;
use crate::request_info::Query;

/// Who is writing, as upstream names managers.
#[derive(Debug)]
pub struct FieldManager {
    name: String,
    api_version: String,
    schema: TypeSchema,
}

const MAX_MANAGER_LENGTH: usize = 128;

fn patch_options_invalid(causes: Vec<StatusCause>) -> Status {
    Status::invalid(
        Subject {
            group: "meta.k8s.io",
            resource: "PatchOptions",
            name: "",
        },
        causes,
    )
}

/// `ValidateFieldManager`.
fn check_manager(name: &str, subject: &str) -> ApiResult<()> {
    let mut causes = Vec::new();
    if name.len() > MAX_MANAGER_LENGTH {
        causes.push(field::too_long("fieldManager", MAX_MANAGER_LENGTH as u64));
    }
    if name.chars().any(|c| c.is_control()) {
        causes.push(field::invalid(
            "fieldManager",
            &Value::String(name.into()),
            "must only contain printable characters",
        ));
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(Status::invalid(
        Subject {
            group: "meta.k8s.io",
            resource: subject,
            name: "",
        },
        causes,
    )
    .into())
}

impl FieldManager {
    /// The manager of a write: `fieldManager`, else the user agent's product name.
    pub fn for_request(
        target: &Target<'_>,
        query: &Query,
        user_agent: Option<&str>,
        options_kind: &str,
    ) -> ApiResult<FieldManager> {
        let name = match query.get("fieldManager").filter(|m| !m.is_empty()) {
            Some(m) => {
                check_manager(m, options_kind)?;
                m.to_string()
            }
            None => {
                let agent = user_agent.unwrap_or("").split('/').next().unwrap_or("");
                agent.chars().take(MAX_MANAGER_LENGTH).collect()
            }
        };
        let schema = match target.custom {
            Some(cr) => cr.apply_schema.clone(),
            None => crate::schema::apply_schema(target.info),
        };
        Ok(FieldManager {
            name,
            api_version: target.info.api_version(),
            schema,
        })
    }

    fn manager<'a>(&'a self, subresource: &'a str, reset: &'a [&'a [&'a str]]) -> Manager<'a> {
        Manager {
            name: &self.name,
            api_version: &self.api_version,
            time: "",
            subresource,
            reset_fields: reset,
        }
    }

    /// Records the fields a create (`old` None) or update changed. Never fails: on a
    /// problem the object keeps the managed fields it had, as `UpdateNoErrors`.
    pub fn track(
        &self,
        target: &Target<'_>,
        subresource: Option<&str>,
        old: Option<&Value>,
        mut new: Value,
    ) -> Value {
        // Upstream tracks the decoded (defaulted) object.
        target.strategy().normalize(&mut new);
        let now = ferrokube_api::time::now_rfc3339();
        let sub = subresource.unwrap_or("");
        let reset = reset_fields(target, sub);
        let mgr = Manager {
            time: &now,
            ..self.manager(sub, reset)
        };
        apply::update_no_errors(&self.schema, old, &new, &mgr)
    }

    /// Server-side apply of `config` onto `live` (None: the apply creates the object).
    pub fn apply(
        &self,
        target: &Target<'_>,
        subresource: Option<&str>,
        live: Option<&Value>,
        config: &Value,
        force: bool,
        name: &str,
    ) -> ApiResult<Value> {
        let now = ferrokube_api::time::now_rfc3339();
        let sub = subresource.unwrap_or("");
        let reset = reset_fields(target, sub);
        let mgr = Manager {
            time: &now,
            ..self.manager(sub, reset)
        };
        apply::apply(&self.schema, live, config, &mgr, force).map_err(|e| match e {
            ApplyError::Conflicts(conflicts) => {
                let causes = conflicts
                    .0
                    .iter()
                    .map(|c| StatusCause {
                        cause_type: "FieldManagerConflict".into(),
                        message: c.cause_message(),
                        field: c.field_path.clone(),
                    })
                    .collect();
                let mut st = Status::failure(409, "Conflict", conflicts.to_string());
                st.details = Some(ferrokube_api::status::StatusDetails {
                    name: name.into(),
                    group: target.info.group.into(),
                    kind: target.info.resource.into(),
                    causes,
                    ..Default::default()
                });
                st.into()
            }
            ApplyError::ManagedFieldsInConfig => {
                Status::bad_request("metadata.managedFields must be nil").into()
            }
            other => Status::failure(500, "InternalError", other.to_string()).into(),
        })
    }
}

/// Checks the options of a PATCH: `force` only with apply, `fieldManager` required by it.
pub fn check_patch_options(query: &Query, is_apply: bool) -> ApiResult<Option<bool>> {
    let force = match query.get("force") {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(Status::bad_request(format!("invalid force value {other:?}")).into())
        }
    };
    if is_apply && query.get("fieldManager").is_none_or(str::is_empty) {
        return Err(patch_options_invalid(vec![field::required(
            "fieldManager",
            "is required for apply patch",
        )])
        .into());
    }
    if !is_apply && force.is_some() {
        return Err(patch_options_invalid(vec![field::forbidden(
            "force",
            "may not be specified for non-apply patch",
        )])
        .into());
    }
    Ok(force)
}

/// The fields an endpoint does not track (upstream's `GetResetFields`): a kind's status
/// through the main resource, everything but status through `/status`.
fn reset_fields(target: &Target<'_>, subresource: &str) -> &'static [&'static [&'static str]] {
    let has_status = target.info.subresource("status").is_some();
    match subresource {
        "status" => &[&["spec"], &["metadata"]],
        "" if has_status => &[&["status"]],
        _ => &[],
    }
}

/// The applied configuration must be for this endpoint (upstream's version check).
/// An applied configuration with fields its schema does not declare fails as upstream's
/// typed conversion of the patch does, whatever `fieldValidation` says:
/// `failed to create typed patch object (/name; group/version, Kind=K): .spec.foo: field
/// not declared in schema`.
pub fn check_config_fields(target: &Target<'_>, config: &Value, name: &str) -> ApiResult<()> {
    let mut probe = config.clone();
    let found = crate::schema::validate_for(target, &mut probe, crate::schema::Mode::Warn, &[])?;
    let undeclared: Vec<String> = found
        .iter()
        .filter_map(|w| w.strip_prefix("unknown field \"")?.strip_suffix('"'))
        .map(|path| format!(".{path}: field not declared in schema"))
        .collect();
    if undeclared.is_empty() {
        return Ok(());
    }
    let info = target.served.unwrap_or(target.info);
    let namespace = target.namespace.unwrap_or("");
    let errors = if undeclared.len() == 1 {
        undeclared[0].clone()
    } else {
        format!("errors:\n  {}", undeclared.join("\n  "))
    };
    Err(Status::failure(
        500,
        "InternalError",
        format!(
            // Go's GroupVersionKind.String(): "/v1, Kind=ConfigMap" for the core group.
            "failed to create typed patch object ({namespace}/{name}; {}/{}, Kind={}): {errors}",
            info.group, info.version, info.kind
        ),
    )
    .into())
}

pub fn check_config_type(target: &Target<'_>, config: &Value, name: &str) -> ApiResult<()> {
    let info = target.served.unwrap_or(target.info);
    let want = info.api_version();
    let api_version = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version != want || kind != info.kind {
        return Err(Status::bad_request(format!(
            "the apiVersion and kind of the applied configuration ({api_version}, Kind={kind}) do not match the request ({want}, Kind={})",
            info.kind
        ))
        .into());
    }
    let config_name = config
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if config_name != name {
        return Err(Status::bad_request(format!(
            "the name of the object ({config_name}) does not match the name on the URL ({name})"
        ))
        .into());
    }
    Ok(())
}
