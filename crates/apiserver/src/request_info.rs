//! What a request is about, as upstream's `RequestInfoFactory`: verb, API group/version,
//! namespace, resource, subresource and name, parsed from the method, path and query.

use std::collections::HashMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    pub path: String,
    /// get, list, watch, create, update, patch, delete, deletecollection (or the HTTP
    /// method in lower case for non-resource requests).
    pub verb: String,
    pub api_prefix: String,
    pub group: String,
    pub version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    pub parts: Vec<String>,
}

/// Parsed query parameters (last value wins, as Go's `url.Values.Get`).
#[derive(Debug, Clone, Default)]
pub struct Query(pub HashMap<String, String>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    /// Go's `strconv.ParseBool` semantics for flags like `watch=1`.
    pub fn flag(&self, k: &str) -> bool {
        matches!(
            self.get(k),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True")
        )
    }
}

pub fn parse(method: &http::Method, path: &str, query: &Query) -> RequestInfo {
    let mut info = RequestInfo {
        path: path.to_string(),
        verb: method.as_str().to_ascii_lowercase(),
        ..Default::default()
    };
    let mut parts: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    // Upstream's RequestInfoFactory: fewer than three segments (`/api/v1`), or fewer
    // than four under a grouped prefix (`/apis/apps/v1`), is a non-resource request —
    // discovery, which RBAC's system:discovery allows every authenticated user.
    let grouped = parts.first().map(String::as_str) == Some("apis");
    if parts.len() < 3 || !(parts[0] == "api" || grouped) || (grouped && parts.len() < 4) {
        return info;
    }
    info.api_prefix = parts.remove(0);
    if grouped {
        info.group = parts.remove(0);
    }
    info.version = parts.remove(0);
    info.is_resource_request = true;
    // Deprecated /watch/ paths.
    if parts.first().map(String::as_str) == Some("watch") {
        parts.remove(0);
        info.verb = "watch".into();
    }
    if parts.first().map(String::as_str) == Some("namespaces") && parts.len() > 1 {
        info.namespace = parts[1].clone();
        // /namespaces/{name}/{status|finalize} stay on the namespace itself.
        if parts.len() > 2 && !matches!(parts[2].as_str(), "status" | "finalize") {
            parts.drain(..2);
        }
    }
    info.parts = parts.clone();
    if let Some(r) = parts.first() {
        info.resource = r.clone();
    }
    if parts.len() >= 2 {
        info.name = parts[1].clone();
    }
    if parts.len() >= 3 {
        info.subresource = parts[2].clone();
    }
    if info.verb == "watch" {
        return info;
    }
    info.verb = match (method.as_str(), info.name.is_empty()) {
        ("GET" | "HEAD", true) if query.flag("watch") => "watch",
        ("GET" | "HEAD", true) => "list",
        ("GET" | "HEAD", false) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "deletecollection",
        ("DELETE", false) => "delete",
        _ => "unknown",
    }
    .to_string();
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(method: &str, path: &str, query: &str) -> RequestInfo {
        parse(&method.parse().unwrap(), path, &Query::parse(Some(query)))
    }

    #[test]
    fn parses_resource_paths() {
        let r = p("GET", "/api/v1/namespaces/default/pods/web/log", "");
        assert_eq!(
            (
                r.verb.as_str(),
                r.namespace.as_str(),
                r.resource.as_str(),
                r.name.as_str(),
                r.subresource.as_str()
            ),
            ("get", "default", "pods", "web", "log")
        );
        let r = p("GET", "/apis/apps/v1/deployments", "watch=true");
        assert_eq!(
            (r.verb.as_str(), r.group.as_str(), r.resource.as_str()),
            ("watch", "apps", "deployments")
        );
        let r = p("GET", "/api/v1/namespaces/kube-system", "");
        assert_eq!(
            (
                r.verb.as_str(),
                r.resource.as_str(),
                r.name.as_str(),
                r.namespace.as_str()
            ),
            ("get", "namespaces", "kube-system", "kube-system")
        );
        let r = p("PUT", "/api/v1/namespaces/x/finalize", "");
        assert_eq!(
            (r.resource.as_str(), r.name.as_str(), r.subresource.as_str()),
            ("namespaces", "x", "finalize")
        );
        let r = p("DELETE", "/api/v1/namespaces/d/configmaps", "");
        assert_eq!(r.verb, "deletecollection");
        let r = p("GET", "/api/v1/watch/namespaces/d/pods", "");
        assert_eq!((r.verb.as_str(), r.resource.as_str()), ("watch", "pods"));
        let r = p("GET", "/apis/apps", "");
        assert!(!r.is_resource_request);
        for discovery in ["/api/v1", "/apis/apps/v1", "/api"] {
            let r = p("GET", discovery, "");
            assert!(!r.is_resource_request, "{discovery}");
            assert_eq!(r.verb, "get");
        }
        assert!(!p("GET", "/healthz", "").is_resource_request);
    }
}
