//! The built-in resources served (generated from upstream's OpenAPI document by
//! `hack/gen-resources.py`), with lookups by group/version/resource and kind, and the
//! storage key layout of upstream's registries (`/registry/<resource>/<ns>/<name>`, with
//! upstream's historical exceptions such as `minions` for nodes).

pub use crate::generated::resources::BUILTIN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubresourceInfo {
    pub name: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [SubresourceInfo],
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Upstream's singular name: the kind in lower case.
    pub fn singular(&self) -> String {
        self.kind.to_ascii_lowercase()
    }

    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    pub fn subresource(&self, name: &str) -> Option<&'static SubresourceInfo> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// `configmaps` for the core group, `deployments.apps` otherwise (error messages).
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// Whether objects are persisted (review APIs such as TokenReview only answer).
    pub fn is_stored(&self) -> bool {
        self.supports("get") || self.supports("list")
    }

    /// Whether this is one of the built-in resources (not a custom resource).
    pub fn is_builtin(&self) -> bool {
        BUILTIN
            .iter()
            .any(|r| r.group == self.group && r.resource == self.resource)
    }

    /// The storage key prefix of this resource (without the `--etcd-prefix`), as upstream's
    /// registries lay it out, ending in `/`.
    pub fn storage_prefix(&self) -> String {
        let path = match (self.group, self.resource) {
            ("", "nodes") => "minions",
            ("", "services") => "services/specs",
            ("", "endpoints") => "services/endpoints",
            ("", "replicationcontrollers") => "controllers",
            ("networking.k8s.io", "ingresses") => "ingress",
            ("apiregistration.k8s.io", "apiservices") => "apiregistration.k8s.io/apiservices",
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                "apiextensions.k8s.io/customresourcedefinitions"
            }
            (group, resource) if !self.is_builtin() => {
                // Custom resources live under `/<group>/<resource>/`, as upstream's CRD
                // storage lays them out.
                return format!("/{group}/{resource}/");
            }
            (_, resource) => resource,
        };
        format!("/{path}/")
    }

    /// The key of one object.
    pub fn storage_key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/{name}", self.storage_prefix()),
            _ => format!("{}{name}", self.storage_prefix()),
        }
    }

    /// The key prefix of a list: a namespace's objects, or all of them.
    pub fn storage_list_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/", self.storage_prefix()),
            _ => self.storage_prefix(),
        }
    }
}

/// Every served built-in resource (events.k8s.io/v1 and autoscaling/v1 are stored as
/// core v1 Events and autoscaling/v2 HorizontalPodAutoscalers; the API server converts).
pub fn served() -> impl Iterator<Item = &'static ResourceInfo> {
    BUILTIN.iter()
}

/// Looks up a resource by group, version and plural resource name.
pub fn lookup(group: &str, version: &str, resource: &str) -> Option<&'static ResourceInfo> {
    served().find(|r| r.group == group && r.version == version && r.resource == resource)
}

/// Looks up a resource by group, version and kind.
pub fn lookup_kind(group: &str, version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    served().find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// The group-versions served, in discovery order (core first, then by priority).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in served() {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_has_the_core_kinds() {
        let pods = lookup("", "v1", "pods").unwrap();
        assert!(pods.namespaced);
        assert_eq!(pods.kind, "Pod");
        assert!(pods.supports("watch"));
        assert!(pods.subresource("status").is_some());
        assert_eq!(pods.short_names, ["po"]);
        let ns = lookup("", "v1", "namespaces").unwrap();
        assert!(!ns.namespaced);
        let deploy = lookup_kind("apps", "v1", "Deployment").unwrap();
        assert_eq!(deploy.resource, "deployments");
        assert_eq!(deploy.subresource("scale").unwrap().kind, "Scale");
        assert!(lookup("events.k8s.io", "v1", "events").is_some());
        assert!(lookup("", "v1", "tokenreviews").is_none());
    }

    #[test]
    fn storage_keys_follow_upstream() {
        let nodes = lookup("", "v1", "nodes").unwrap();
        assert_eq!(nodes.storage_key(None, "n1"), "/minions/n1");
        let svc = lookup("", "v1", "services").unwrap();
        assert_eq!(
            svc.storage_key(Some("default"), "kubernetes"),
            "/services/specs/default/kubernetes"
        );
        let cm = lookup("", "v1", "configmaps").unwrap();
        assert_eq!(cm.storage_list_prefix(Some("a")), "/configmaps/a/");
        assert_eq!(cm.storage_list_prefix(None), "/configmaps/");
    }
}
