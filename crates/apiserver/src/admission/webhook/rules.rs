//! Which webhooks a request goes to (upstream's `webhook/predicates`): the rules'
//! operations, groups, versions, resources (`*`, `*/*`, `pods/*`, `*/status`) and scope,
//! with matchPolicy Equivalent letting a rule for another version of the same resource
//! match; then the namespace selector (on the namespace's labels; a Namespace's own
//! labels when it is what is written) and the object selector (new or old object).

use serde_json::Value;

use super::config::{Hook, Rule};

/// The request as the predicates see it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: &'a str,
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespaced: bool,
}

fn listed(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

impl Rule {
    fn matches_resource(&self, r: &Request<'_>) -> bool {
        self.resources.iter().any(|spec| {
            let (res, sub) = spec.split_once('/').unwrap_or((spec, ""));
            (res == "*" || res == r.resource) && (sub == "*" || sub == r.subresource)
        })
    }

    fn matches_scope(&self, r: &Request<'_>) -> bool {
        match self.scope.as_str() {
            "Cluster" => !r.namespaced,
            "Namespaced" => r.namespaced,
            _ => true,
        }
    }

    /// Whether the rule selects the request; `exact` demands the version too.
    pub fn matches(&self, r: &Request<'_>, exact: bool) -> bool {
        listed(&self.operations, r.operation)
            && listed(&self.groups, r.group)
            && (!exact || listed(&self.versions, r.version))
            && self.matches_resource(r)
            && self.matches_scope(r)
    }
}

/// A namespace selector (None: everything) against the namespace (None: a
/// cluster-scoped request other than a Namespace, which always matches).
pub fn namespace_selected(selector: Option<&Value>, namespace: Option<&Value>) -> bool {
    match (selector, namespace) {
        (Some(sel), Some(ns)) => ferrokube_authz::label_selector_matches(sel, ns).unwrap_or(false),
        _ => true,
    }
}

/// An object selector (None: everything) against the new or the old object.
pub fn object_selected(selector: Option<&Value>, obj: Option<&Value>, old: Option<&Value>) -> bool {
    let Some(sel) = selector else {
        return true;
    };
    [obj, old]
        .into_iter()
        .flatten()
        .any(|o| !o.is_null() && ferrokube_authz::label_selector_matches(sel, o).unwrap_or(false))
}

impl Hook {
    /// Whether some rule selects the request (before selectors).
    pub fn selects(&self, r: &Request<'_>) -> bool {
        // Exact rules first; under Equivalent a rule naming another version of the same
        // group and resource matches as well (the object is sent as stored).
        self.rules.iter().any(|rule| rule.matches(r, true))
            || (!self.exact && self.rules.iter().any(|rule| rule.matches(r, false)))
    }

    /// The namespace selector against `labels` (the namespace's, or the Namespace
    /// object's). Cluster-scoped requests other than Namespaces always match.
    pub fn namespace_matches(&self, labels: Option<&Value>) -> bool {
        namespace_selected(self.namespace_selector.as_ref(), labels)
    }

    /// The object selector against the new or the old object.
    pub fn object_matches(&self, obj: Option<&Value>, old: Option<&Value>) -> bool {
        object_selected(self.object_selector.as_ref(), obj, old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(ops: &[&str], groups: &[&str], versions: &[&str], res: &[&str], scope: &str) -> Rule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        Rule {
            operations: v(ops),
            groups: v(groups),
            versions: v(versions),
            resources: v(res),
            scope: scope.into(),
        }
    }

    fn req<'a>(op: &'a str, res: &'a str, sub: &'a str, namespaced: bool) -> Request<'a> {
        Request {
            operation: op,
            group: "",
            version: "v1",
            resource: res,
            subresource: sub,
            namespaced,
        }
    }

    #[test]
    fn resources_and_subresources() {
        let pods = rule(&["CREATE"], &[""], &["v1"], &["pods"], "*");
        assert!(pods.matches(&req("CREATE", "pods", "", true), true));
        assert!(!pods.matches(&req("CREATE", "pods", "status", true), true));
        assert!(!pods.matches(&req("UPDATE", "pods", "", true), true));
        assert!(!pods.matches(&req("CREATE", "services", "", true), true));
        let all = rule(&["*"], &["*"], &["*"], &["*"], "*");
        assert!(all.matches(&req("DELETE", "configmaps", "", true), true));
        assert!(!all.matches(&req("UPDATE", "pods", "status", true), true));
        let everything = rule(&["*"], &["*"], &["*"], &["*/*"], "*");
        assert!(everything.matches(&req("UPDATE", "pods", "status", true), true));
        let pod_subs = rule(&["*"], &[""], &["v1"], &["pods/*"], "*");
        assert!(pod_subs.matches(&req("UPDATE", "pods", "status", true), true));
        assert!(pod_subs.matches(&req("UPDATE", "pods", "", true), true));
        let statuses = rule(&["*"], &["*"], &["*"], &["*/status"], "*");
        assert!(statuses.matches(&req("UPDATE", "nodes", "status", false), true));
        assert!(!statuses.matches(&req("UPDATE", "nodes", "", false), true));
    }

    #[test]
    fn scopes_and_versions() {
        let cluster = rule(&["*"], &["*"], &["*"], &["*"], "Cluster");
        assert!(cluster.matches(&req("CREATE", "nodes", "", false), true));
        assert!(!cluster.matches(&req("CREATE", "pods", "", true), true));
        let namespaced = rule(&["*"], &["*"], &["*"], &["*"], "Namespaced");
        assert!(namespaced.matches(&req("CREATE", "pods", "", true), true));
        let v2 = rule(&["*"], &[""], &["v2"], &["pods"], "*");
        assert!(!v2.matches(&req("CREATE", "pods", "", true), true));
        assert!(v2.matches(&req("CREATE", "pods", "", true), false));
    }
}
