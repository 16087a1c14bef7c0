//! A binding's params (upstream's `generic.CollectParams`): none without a paramKind or
//! paramRef (the policy runs once, `params` null); else the object named by
//! `paramRef.name` or every object `paramRef.selector` selects, in `paramRef.namespace`
//! or, for a namespaced kind, the request's namespace. Finding none is a denial under
//! parameterNotFoundAction Deny and skips the binding under Allow.

use ferrokube_api::resources;
use serde_json::Value;

use super::compiled::{Binding, Policy};
use crate::admission::webhook::Call;
use crate::registry::list::ListOptions;
use crate::registry::Target;

/// Why a binding's params could not be collected.
#[derive(Debug)]
pub enum ParamError {
    /// The policy itself is misconfigured (its paramKind is not served).
    Policy(String),
    /// The binding is.
    Binding(String),
}

/// The params to run the policy with (`None`: run once without params).
pub async fn collect(
    call: &Call<'_>,
    policy: &Policy,
    binding: &Binding,
) -> Result<Vec<Option<Value>>, ParamError> {
    let (Some((api_version, kind)), Some(pr)) = (&policy.param_kind, &binding.param_ref) else {
        return Ok(vec![None]);
    };
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let not_known = || {
        let gvk = if group.is_empty() {
            format!("/{version}, Kind={kind}")
        } else {
            format!("{group}/{version}, Kind={kind}")
        };
        ParamError::Policy(format!(
            "failed to find resource referenced by paramKind: '{gvk}'"
        ))
    };
    let custom = call
        .registry
        .crds
        .snapshot()
        .iter()
        .find(|c| c.info.group == group && c.info.version == version && c.info.kind == kind)
        .cloned();
    let info = match &custom {
        Some(c) => c.info,
        None => resources::lookup_kind(group, version, kind).ok_or_else(not_known)?,
    };
    let namespace = if info.namespaced {
        if !pr.namespace.is_empty() {
            Some(pr.namespace.as_str())
        } else if !call.namespace.is_empty() {
            Some(call.namespace)
        } else {
            return Err(ParamError::Binding(
                "cannot use namespaced paramRef in policy binding that matches cluster-scoped resources".into(),
            ));
        }
    } else if !pr.namespace.is_empty() {
        return Err(ParamError::Binding(
            "paramRef.namespace must not be provided for a cluster-scoped `paramKind`".into(),
        ));
    } else {
        None
    };
    let target = Target {
        info,
        namespace,
        custom: custom.as_deref(),
        served: None,
    };
    let params: Vec<Option<Value>> = if !pr.name.is_empty() {
        match call.registry.get(&target, &pr.name).await {
            Ok(v) => vec![Some(v)],
            Err(e) => {
                let st = e.into_status(info.group, info.resource, &pr.name);
                if st.code != 404 {
                    return Err(ParamError::Binding(st.message));
                }
                Vec::new()
            }
        }
    } else {
        let selector = pr.selector.clone().unwrap_or(Value::Null);
        let (items, ..) = call
            .registry
            .list(&target, &ListOptions::default())
            .await
            .map_err(|e| {
                ParamError::Binding(e.into_status(info.group, info.resource, "").message)
            })?;
        items
            .into_iter()
            .filter(|o| ferrokube_authz::label_selector_matches(&selector, o).unwrap_or(false))
            .map(Some)
            .collect()
    };
    if params.is_empty() && pr.deny_when_missing {
        return Err(ParamError::Binding(
            "no params found for policy binding with `Deny` parameterNotFoundAction".into(),
        ));
    }
    Ok(params)
}
