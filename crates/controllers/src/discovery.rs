//! What the API serves, for controllers that work on every resource (client-go
//! `discovery.ServerPreferredResources` / `ServerPreferredNamespacedResources`, and the
//! kind → resource lookups of a RESTMapper): each resource's group/version/kind, plural,
//! scope and verbs, the preferred version of each group-resource, and which group
//! versions could not be read (upstream's `ErrGroupDiscoveryFailed`). [`SharedDiscovery`]
//! re-reads it periodically for controllers that keep watching (the garbage collector).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIResource, APIResourceList};
use kube::api::ApiResource;
use kube::core::discovery::v2::APIGroupDiscovery;
use tokio::sync::watch;

use crate::error::{Error, ResultExt};

/// One resource (not a subresource) of one group version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredResource {
    /// Group, version, kind and plural, for kube-rs dynamic APIs.
    pub resource: ApiResource,
    pub namespaced: bool,
    pub verbs: BTreeSet<String>,
    /// Whether this version is the one `ServerPreferredResources` returns for the
    /// group-resource.
    pub preferred: bool,
}

impl DiscoveredResource {
    /// Whether discovery lists every verb in `verbs` for the resource.
    pub fn supports_all(&self, verbs: &[&str]) -> bool {
        verbs.iter().all(|v| self.verbs.contains(*v))
    }

    /// Whether discovery lists `verb` for the resource.
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.contains(verb)
    }

    pub fn gvr(&self) -> GroupVersionResource {
        GroupVersionResource {
            group: self.resource.group.clone(),
            version: self.resource.version.clone(),
            resource: self.resource.plural.clone(),
        }
    }
}

/// `schema.GroupVersionResource`, printed as upstream prints it
/// (`apps/v1, Resource=deployments`, `/v1, Resource=pods`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupVersionResource {
    pub group: String,
    pub version: String,
    pub resource: String,
}

impl std::fmt::Display for GroupVersionResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}, Resource={}",
            self.group, self.version, self.resource
        )
    }
}

/// Group versions whose resource lists could not be read (client-go's
/// `ErrGroupDiscoveryFailed`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupDiscoveryFailed {
    /// group version → error.
    pub groups: BTreeMap<String, String>,
}

impl std::fmt::Display for GroupDiscoveryFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups: Vec<String> = self
            .groups
            .iter()
            .map(|(gv, e)| format!("{gv}: {e}"))
            .collect();
        write!(
            f,
            "unable to retrieve the complete list of server APIs: {}",
            groups.join(", ")
        )
    }
}

/// One reading of the API's discovery documents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// Every resource of every served group version.
    pub resources: Vec<DiscoveredResource>,
    /// Group versions that failed to load.
    pub failed: GroupDiscoveryFailed,
    /// Group version strings the server listed that do not parse
    /// (`schema.ParseGroupVersion` failures).
    pub invalid_group_versions: Vec<String>,
}

/// Splits `group/version` (or `version` for the core group); `None` when malformed
/// (upstream's `schema.ParseGroupVersion`).
pub fn parse_group_version(gv: &str) -> Option<(&str, &str)> {
    if gv.is_empty() || gv == "/" {
        return Some(("", ""));
    }
    match gv.split_once('/') {
        None => Some(("", gv)),
        Some((_, v)) if v.contains('/') => None,
        Some((g, v)) => Some((g, v)),
    }
}

impl Discovery {
    /// Reads the API's discovery: aggregated discovery (`apidiscovery.k8s.io/v2`, one
    /// request each for `/api` and `/apis`, what client-go prefers) and, when the
    /// server does not serve it, `/api`, `/apis` and every group version's resource
    /// list. Fails only when the group lists themselves cannot be read; a failing (or
    /// stale) group version is recorded in `failed` and the rest is still returned.
    pub async fn run(client: &kube::Client) -> Result<Discovery, Error> {
        let aggregated = futures_util::future::join(
            client.list_core_api_versions_aggregated(),
            client.list_api_groups_aggregated(),
        )
        .await;
        let (lists, failed) = match aggregated {
            (Ok(core), Ok(groups)) if !core.items.is_empty() => {
                Self::from_aggregated(core.items.into_iter().chain(groups.items))
            }
            _ => Self::fetch_legacy(client).await?,
        };
        let mut out = Discovery {
            failed: GroupDiscoveryFailed { groups: failed },
            ..Discovery::default()
        };
        out.resources = Self::flatten(lists, &mut out.invalid_group_versions);
        Ok(out)
    }

    /// Aggregated discovery's groups as (group version, preferred, resource list);
    /// versions come in preference order. Stale versions count as failed, as
    /// client-go reports them.
    #[allow(clippy::type_complexity)]
    fn from_aggregated(
        groups: impl Iterator<Item = APIGroupDiscovery>,
    ) -> (
        Vec<(String, Option<String>, APIResourceList)>,
        BTreeMap<String, String>,
    ) {
        let mut lists = Vec::new();
        let mut failed = BTreeMap::new();
        for g in groups {
            let group = g.metadata.and_then(|m| m.name).unwrap_or_default();
            let gv_of = |v: &str| {
                if group.is_empty() {
                    v.to_string()
                } else {
                    format!("{group}/{v}")
                }
            };
            let preferred = g
                .versions
                .first()
                .and_then(|v| v.version.as_deref())
                .map(gv_of);
            for v in g.versions {
                let gv = gv_of(v.version.as_deref().unwrap_or_default());
                if v.freshness.as_deref() == Some("Stale") {
                    failed.insert(gv.clone(), format!("stale GroupVersion discovery: {gv}"));
                    continue;
                }
                let resources = v
                    .resources
                    .into_iter()
                    .map(|r| APIResource {
                        name: r.resource.unwrap_or_default(),
                        kind: r.response_kind.and_then(|k| k.kind).unwrap_or_default(),
                        namespaced: r.scope.as_deref() == Some("Namespaced"),
                        verbs: r.verbs,
                        singular_name: r.singular_resource.unwrap_or_default(),
                        ..APIResource::default()
                    })
                    .collect();
                lists.push((
                    gv.clone(),
                    preferred.clone(),
                    APIResourceList {
                        group_version: gv,
                        resources,
                    },
                ));
            }
        }
        (lists, failed)
    }

    /// Legacy discovery: the group lists, then each group version's resources.
    #[allow(clippy::type_complexity)]
    async fn fetch_legacy(
        client: &kube::Client,
    ) -> Result<
        (
            Vec<(String, Option<String>, APIResourceList)>,
            BTreeMap<String, String>,
        ),
        Error,
    > {
        let core = client
            .list_core_api_versions()
            .await
            .action("discovering /api")?;
        let groups = client.list_api_groups().await.action("discovering /apis")?;
        // (group, versions in server order, preferred version)
        let mut wanted: Vec<(String, Vec<String>, Option<String>)> = Vec::new();
        wanted.push((
            String::new(),
            core.versions.clone(),
            core.versions.first().cloned(),
        ));
        for g in groups.groups {
            let versions = g.versions.iter().map(|v| v.group_version.clone()).collect();
            let preferred = g.preferred_version.map(|p| p.group_version);
            wanted.push((g.name, versions, preferred));
        }
        let fetches = wanted.iter().flat_map(|(group, versions, preferred)| {
            versions.iter().map(move |gv| async move {
                let res = if group.is_empty() {
                    client.list_core_api_resources(gv).await
                } else {
                    client.list_api_group_resources(gv).await
                };
                (gv.clone(), preferred.clone(), res)
            })
        });
        let mut lists = Vec::new();
        let mut failed = BTreeMap::new();
        for (gv, preferred, res) in futures_util::future::join_all(fetches).await {
            match res {
                Ok(list) => lists.push((gv, preferred, list)),
                Err(e) => {
                    failed.insert(gv, e.to_string());
                }
            }
        }
        Ok((lists, failed))
    }

    /// Turns resource lists into resources, marking each group-resource's preferred
    /// version: the group's preferred version if it serves the resource, else the
    /// first version (in server order) that does.
    fn flatten(
        lists: Vec<(String, Option<String>, APIResourceList)>,
        invalid: &mut Vec<String>,
    ) -> Vec<DiscoveredResource> {
        let mut resources = Vec::new();
        let mut chosen: BTreeMap<(String, String), (usize, bool)> = BTreeMap::new();
        for (gv, preferred, list) in lists {
            let Some((group, version)) = parse_group_version(&gv) else {
                invalid.push(gv);
                continue;
            };
            let is_preferred_version = preferred.as_deref().is_none_or(|p| p == gv);
            for r in list.resources {
                if r.name.contains('/') {
                    continue;
                }
                let g = r.group.clone().unwrap_or_else(|| group.to_string());
                let v = r.version.clone().unwrap_or_else(|| version.to_string());
                let api_version = if g.is_empty() {
                    v.clone()
                } else {
                    format!("{g}/{v}")
                };
                let idx = resources.len();
                let key = (g.clone(), r.name.clone());
                match chosen.get(&key) {
                    None => {
                        chosen.insert(key, (idx, is_preferred_version));
                    }
                    Some((_, false)) if is_preferred_version => {
                        chosen.insert(key, (idx, true));
                    }
                    Some(_) => {}
                }
                resources.push(DiscoveredResource {
                    resource: ApiResource {
                        group: g,
                        version: v,
                        api_version,
                        kind: r.kind,
                        plural: r.name,
                    },
                    namespaced: r.namespaced,
                    verbs: r.verbs.into_iter().collect(),
                    preferred: false,
                });
            }
        }
        for (idx, _) in chosen.into_values() {
            if let Some(r) = resources.get_mut(idx) {
                r.preferred = true;
            }
        }
        resources
    }

    /// The preferred version of every group-resource.
    pub fn preferred(&self) -> impl Iterator<Item = &DiscoveredResource> {
        self.resources.iter().filter(|r| r.preferred)
    }

    /// `ServerPreferredNamespacedResources`.
    pub fn preferred_namespaced(&self) -> impl Iterator<Item = &DiscoveredResource> {
        self.preferred().filter(|r| r.namespaced)
    }

    /// The resource serving `kind` in `api_version` (a RESTMapper's `RESTMapping`).
    pub fn resource_for(&self, api_version: &str, kind: &str) -> Option<&DiscoveredResource> {
        let (group, version) = parse_group_version(api_version)?;
        self.resources.iter().find(|r| {
            r.resource.group == group && r.resource.version == version && r.resource.kind == kind
        })
    }

    /// Discovery's partial failure, if any group version failed.
    pub fn failure(&self) -> Option<&GroupDiscoveryFailed> {
        (!self.failed.groups.is_empty()).then_some(&self.failed)
    }
}

/// Discovery re-read every `period` until stopped; readers see the latest complete
/// reading (a reading whose group lists failed keeps the previous one).
pub struct SharedDiscovery {
    client: kube::Client,
    current: watch::Sender<Arc<Discovery>>,
}

impl std::fmt::Debug for SharedDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedDiscovery")
            .field("resources", &self.current.borrow().resources.len())
            .finish_non_exhaustive()
    }
}

impl SharedDiscovery {
    /// Starts empty; call [`SharedDiscovery::refresh`] or
    /// [`SharedDiscovery::run`].
    pub fn new(client: kube::Client) -> Arc<SharedDiscovery> {
        Arc::new(SharedDiscovery {
            client,
            current: watch::channel(Arc::new(Discovery::default())).0,
        })
    }

    /// The latest reading.
    pub fn current(&self) -> Arc<Discovery> {
        self.current.borrow().clone()
    }

    /// Told of every new reading that differs from the previous one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Discovery>> {
        self.current.subscribe()
    }

    /// Reads discovery now.
    pub async fn refresh(&self) -> Result<Arc<Discovery>, Error> {
        let d = Arc::new(Discovery::run(&self.client).await?);
        self.current.send_if_modified(|cur| {
            if **cur == *d {
                false
            } else {
                *cur = d.clone();
                true
            }
        });
        Ok(self.current())
    }

    /// Re-reads every `period` until `stop`.
    pub async fn run(self: Arc<Self>, period: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "discovery failed; keeping the previous reading");
            }
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(name: &str, kind: &str, namespaced: bool, verbs: &[&str]) -> APIResource {
        APIResource {
            name: name.into(),
            kind: kind.into(),
            namespaced,
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            ..APIResource::default()
        }
    }

    fn list(gv: &str, resources: Vec<APIResource>) -> APIResourceList {
        APIResourceList {
            group_version: gv.into(),
            resources,
        }
    }

    #[test]
    fn parses_group_versions_as_upstream() {
        assert_eq!(parse_group_version("v1"), Some(("", "v1")));
        assert_eq!(parse_group_version("apps/v1"), Some(("apps", "v1")));
        assert_eq!(parse_group_version("a/b/c"), None);
    }

    #[test]
    fn preferred_version_per_group_resource() {
        let lists = vec![
            (
                "example.com/v1".to_string(),
                Some("example.com/v1".to_string()),
                list(
                    "example.com/v1",
                    vec![res("widgets", "Widget", true, &["list", "delete"])],
                ),
            ),
            (
                "example.com/v1beta1".to_string(),
                Some("example.com/v1".to_string()),
                list(
                    "example.com/v1beta1",
                    vec![
                        res("widgets", "Widget", true, &["list"]),
                        res("gadgets", "Gadget", false, &["get"]),
                        res("gadgets/status", "Gadget", false, &["get"]),
                    ],
                ),
            ),
            (
                "x/y/z".to_string(),
                None,
                list("x/y/z", vec![res("bad", "Bad", true, &[])]),
            ),
        ];
        let mut invalid = Vec::new();
        let d = Discovery {
            resources: Discovery::flatten(lists, &mut invalid),
            ..Discovery::default()
        };
        assert_eq!(invalid, vec!["x/y/z".to_string()]);
        let preferred: Vec<String> = d.preferred().map(|r| format!("{}", r.gvr())).collect();
        assert_eq!(
            preferred,
            vec![
                "example.com/v1, Resource=widgets",
                "example.com/v1beta1, Resource=gadgets"
            ]
        );
        let w = d.resource_for("example.com/v1beta1", "Widget").unwrap();
        assert!(!w.preferred && w.namespaced && w.supports("list"));
        assert!(d.resource_for("example.com/v2", "Widget").is_none());
        assert_eq!(d.preferred_namespaced().count(), 1);
    }

    #[test]
    fn aggregated_discovery_prefers_the_first_version_and_fails_stale_ones() {
        let doc = serde_json::json!({"items": [
            {"metadata": {"name": ""}, "versions": [{"version": "v1", "resources": [
                {"resource": "pods", "responseKind": {"group": "", "version": "v1", "kind": "Pod"},
                 "scope": "Namespaced", "verbs": ["list", "delete", "deletecollection"]},
                {"resource": "namespaces", "responseKind": {"kind": "Namespace"},
                 "scope": "Cluster", "verbs": ["get"]}]}]},
            {"metadata": {"name": "example.com"}, "versions": [
                {"version": "v2", "resources": [
                    {"resource": "widgets", "responseKind": {"kind": "Widget"}, "scope": "Namespaced", "verbs": ["list"]}]},
                {"version": "v1", "resources": [
                    {"resource": "widgets", "responseKind": {"kind": "Widget"}, "scope": "Namespaced", "verbs": ["list"]}]},
                {"version": "v0", "freshness": "Stale", "resources": []}]}
        ]});
        let list: kube::core::discovery::v2::APIGroupDiscoveryList =
            serde_json::from_value(doc).unwrap();
        let (lists, failed) = Discovery::from_aggregated(list.items.into_iter());
        assert_eq!(
            failed.get("example.com/v0").map(String::as_str),
            Some("stale GroupVersion discovery: example.com/v0")
        );
        let mut invalid = Vec::new();
        let d = Discovery {
            resources: Discovery::flatten(lists, &mut invalid),
            ..Discovery::default()
        };
        let preferred: Vec<String> = d.preferred().map(|r| r.gvr().to_string()).collect();
        assert_eq!(
            preferred,
            vec![
                "/v1, Resource=pods",
                "/v1, Resource=namespaces",
                "example.com/v2, Resource=widgets"
            ]
        );
        let pods = d.resource_for("v1", "Pod").unwrap();
        assert!(pods.namespaced && pods.supports_all(&["list", "delete"]));
        assert!(!d.resource_for("v1", "Namespace").unwrap().namespaced);
    }

    #[test]
    fn group_discovery_failure_message() {
        let mut f = GroupDiscoveryFailed::default();
        f.groups
            .insert("metrics.k8s.io/v1beta1".into(), "503".into());
        f.groups.insert("a.io/v1".into(), "boom".into());
        assert_eq!(
            f.to_string(),
            "unable to retrieve the complete list of server APIs: a.io/v1: boom, metrics.k8s.io/v1beta1: 503"
        );
    }
}
