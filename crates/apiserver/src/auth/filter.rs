//! The per-request filters: authentication (401 `Unauthorized`), impersonation
//! (`Impersonate-User`/`-Group`/`-Uid`/`-Extra-*`, each authorized with the `impersonate`
//! verb) and authorization (403 with upstream's message).

use async_trait::async_trait;
use ferrokube_api::resources;
use ferrokube_api::status::{Status, StatusDetails};
use ferrokube_authz::{Attributes, Decision, UserInfo};
use http::HeaderMap;
use serde_json::Value;

use super::Security;
use crate::registry::{Registry, Target};
use crate::request_info::{Query, RequestInfo};

/// Live objects for the token authenticators, read from storage.
pub struct RegistryLookup<'a>(pub &'a Registry);

#[async_trait]
impl ferrokube_authn::ObjectLookup for RegistryLookup<'_> {
    async fn get(&self, group: &str, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let info = resources::lookup(group, "v1", resource)?;
        let ns = (!namespace.is_empty()).then_some(namespace);
        self.0.get(&Target::builtin(info, ns), name).await.ok()
    }
}

pub fn to_authz(u: ferrokube_authn::UserInfo) -> UserInfo {
    UserInfo {
        name: u.name,
        uid: u.uid,
        groups: u.groups,
        extra: u.extra,
    }
}

pub fn unauthorized() -> Status {
    Status::failure(401, "Unauthorized", "Unauthorized")
}

/// Authenticates a request: the user, or the 401 to answer.
pub async fn authenticate(
    security: &Security,
    registry: &Registry,
    headers: &mut HeaderMap,
    peer_chain: Option<&[Vec<u8>]>,
) -> Result<UserInfo, Box<Status>> {
    let result = security
        .authn
        .authenticate(headers, peer_chain, &RegistryLookup(registry))
        .await;
    match result {
        Ok(Some(a)) => {
            security.authn.clear_authentication_headers(headers);
            Ok(to_authz(a.user))
        }
        Ok(None) => Err(Box::new(unauthorized())),
        Err(e) => {
            tracing::info!(error = %e, "Unable to authenticate the request");
            Err(Box::new(unauthorized()))
        }
    }
}

/// `responsewriters.forbiddenMessage` + `errors.NewForbidden`.
pub fn forbidden(a: &Attributes, reason: &str) -> Status {
    let user = &a.user.name;
    let mut msg = if !a.resource_request {
        format!("User {user:?} cannot {} path {:?}", a.verb, a.path)
    } else {
        let mut resource = a.resource.clone();
        if !a.subresource.is_empty() {
            resource = format!("{resource}/{}", a.subresource);
        }
        if a.namespace.is_empty() {
            format!(
                "User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
                a.verb, a.api_group
            )
        } else {
            format!(
                "User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
                a.verb, a.api_group, a.namespace
            )
        }
    };
    if !reason.is_empty() {
        msg = format!("{msg}: {reason}");
    }
    let qualified = match (a.resource.as_str(), a.api_group.as_str()) {
        ("", _) => String::new(),
        (r, "") => r.to_string(),
        (r, g) => format!("{r}.{g}"),
    };
    let message = match (qualified.is_empty(), a.name.is_empty()) {
        (true, _) => format!("forbidden: {msg}"),
        (false, true) => format!("{qualified} is forbidden: {msg}"),
        (false, false) => format!("{qualified} {:?} is forbidden: {msg}", a.name),
    };
    Status::failure(403, "Forbidden", message).with_details(StatusDetails {
        name: a.name.clone(),
        group: a.api_group.clone(),
        kind: a.resource.clone(),
        ..Default::default()
    })
}

/// What a request asks to do.
pub fn attributes(user: &UserInfo, info: &RequestInfo, query: &Query) -> Attributes {
    // `/api/v1` and `/apis/apps/v1` are discovery, not resources (upstream needs at
    // least /api/v1/{resource}).
    if !info.is_resource_request || info.resource.is_empty() {
        return Attributes::non_resource(user.clone(), &info.verb, &info.path);
    }
    let mut a = Attributes::resource(
        user.clone(),
        &info.verb,
        &info.group,
        &info.resource,
        &info.namespace,
        &info.name,
    )
    .with_subresource(&info.subresource)
    .with_field_selector(query.get("fieldSelector").unwrap_or(""));
    a.api_version = info.version.clone();
    // The namespace object itself is cluster-scoped (`/api/v1/namespaces/x`).
    if info.resource == "namespaces" && info.group.is_empty() && info.subresource.is_empty() {
        a.namespace = String::new();
    }
    a
}

/// A WebSocket upgrade (`GET` with `Upgrade: websocket`) of `pods/exec`, `pods/attach`
/// or `pods/portforward`, which upstream also authorizes as `create`.
pub fn is_pod_websocket_upgrade(a: &Attributes, headers: &HeaderMap) -> bool {
    a.verb == "get"
        && a.api_group.is_empty()
        && a.resource == "pods"
        && matches!(a.subresource.as_str(), "exec" | "attach" | "portforward")
        && header_values(headers, "upgrade").iter().any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        })
}

/// Allows or refuses with upstream's 403.
pub fn authorize(security: &Security, a: &Attributes) -> Result<(), Box<Status>> {
    match security.authz.authorize(a) {
        Decision::Allow { .. } => Ok(()),
        Decision::Deny { reason } | Decision::NoOpinion { reason } => {
            Err(Box::new(forbidden(a, &reason)))
        }
    }
}

fn header_values<'h>(headers: &'h HeaderMap, name: &str) -> Vec<&'h str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// `WithImpersonation`: when the request carries `Impersonate-*` headers, checks the
/// requester may impersonate each and returns the impersonated user.
pub fn impersonate(
    security: &Security,
    requester: UserInfo,
    headers: &mut HeaderMap,
) -> Result<UserInfo, Box<Status>> {
    let user = header_values(headers, "impersonate-user")
        .first()
        .map(|s| s.to_string());
    let groups: Vec<String> = header_values(headers, "impersonate-group")
        .into_iter()
        .map(str::to_string)
        .collect();
    let uid = header_values(headers, "impersonate-uid")
        .first()
        .map(|s| s.to_string());
    let mut extra: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, value) in headers.iter() {
        if let Some(key) = name.as_str().strip_prefix("impersonate-extra-") {
            let key = percent_decode(key);
            if let Ok(v) = value.to_str() {
                extra.entry(key).or_default().push(v.to_string());
            }
        }
    }
    if user.is_none() && groups.is_empty() && uid.is_none() && extra.is_empty() {
        return Ok(requester);
    }
    let Some(user) = user else {
        return Err(Box::new(Status::bad_request(
            "requested impersonation without specifying a user to impersonate",
        )));
    };
    let check = |resource: &str, group: &str, namespace: &str, name: &str, sub: &str| {
        let a = Attributes::resource(
            requester.clone(),
            "impersonate",
            group,
            resource,
            namespace,
            name,
        )
        .with_subresource(sub);
        authorize(security, &a)
    };
    let mut impersonated = UserInfo {
        name: user.clone(),
        uid: uid.clone().unwrap_or_default(),
        groups: groups.clone(),
        extra: extra.clone(),
    };
    match user
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
    {
        Some((ns, name)) => {
            check("serviceaccounts", "", ns, name, "")?;
            if groups.is_empty() {
                impersonated.groups = vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{ns}"),
                ];
            }
        }
        None => check("users", "", "", &user, "")?,
    }
    for g in &groups {
        check("groups", "", "", g, "")?;
    }
    if let Some(u) = &uid {
        check("uids", "authentication.k8s.io", "", u, "")?;
    }
    for (key, values) in &extra {
        for v in values {
            check("userextras", "authentication.k8s.io", "", v, key)?;
        }
    }
    if user == "system:anonymous" {
        if !impersonated
            .groups
            .iter()
            .any(|g| g == "system:unauthenticated")
        {
            impersonated.groups.push("system:unauthenticated".into());
        }
    } else if !impersonated
        .groups
        .iter()
        .any(|g| g == "system:authenticated")
    {
        impersonated.groups.push("system:authenticated".into());
    }
    let names: Vec<http::HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("impersonate-"))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
    Ok(impersonated)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
            if let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_match_upstream() {
        let bob = UserInfo::new("bob", &["system:authenticated"]);
        let a = Attributes::resource(bob.clone(), "list", "", "pods", "default", "");
        assert_eq!(
            forbidden(&a, "").message,
            r#"pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        let a = Attributes::resource(bob.clone(), "get", "apps", "deployments", "", "web")
            .with_subresource("scale");
        assert_eq!(
            forbidden(&a, "").message,
            r#"deployments.apps "web" is forbidden: User "bob" cannot get resource "deployments/scale" in API group "apps" at the cluster scope"#
        );
        let a = Attributes::non_resource(bob, "get", "/metrics");
        assert_eq!(
            forbidden(&a, "").message,
            r#"forbidden: User "bob" cannot get path "/metrics""#
        );
        assert_eq!(percent_decode("example.com%2Fkey"), "example.com/key");
    }
}
