//! Discovery: `/api`, `/apis`, the per-group and per-version documents, and aggregated
//! discovery (apidiscovery.k8s.io/v2), which kubectl asks for first.

use ferrokube_api::resources::{self, ResourceInfo};
use serde_json::{json, Value};

use crate::aggregator::RemoteGroup;

pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the Accept header asks for aggregated discovery v2 before anything else.
pub fn wants_aggregated(accept: Option<&str>) -> bool {
    let Some(first) = accept.and_then(|a| a.split(',').next()) else {
        return false;
    };
    let params: Vec<&str> = first.split(';').map(str::trim).collect();
    params.contains(&"g=apidiscovery.k8s.io")
        && params.contains(&"v=v2")
        && params.contains(&"as=APIGroupDiscoveryList")
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// Everything served: the built-in resources, then the custom ones, then the groups
/// of remote APIServices (served by other API servers through the aggregator).
pub struct Served(Vec<&'static ResourceInfo>, Vec<RemoteGroup>);

impl Served {
    pub fn new(custom: &[std::sync::Arc<crate::crd::CustomResource>]) -> Served {
        let mut all: Vec<&'static ResourceInfo> = resources::served().collect();
        all.extend(custom.iter().map(|c| c.info));
        Served(all, Vec::new())
    }

    /// Adds the remote groups this server does not serve itself.
    pub fn with_remote(mut self, remote: Vec<RemoteGroup>) -> Served {
        let local: Vec<&str> = self.0.iter().map(|r| r.group).collect();
        self.1 = remote
            .into_iter()
            .filter(|g| !local.contains(&g.name.as_str()))
            .collect();
        self
    }

    fn remote(&self, group: &str) -> Option<&RemoteGroup> {
        self.1.iter().find(|g| g.name == group)
    }

    #[cfg(test)]
    fn builtin() -> Served {
        Served::new(&[])
    }

    fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
        self.0
            .iter()
            .copied()
            .filter(move |r| r.group == group && r.version == version)
    }

    fn groups(&self) -> Vec<(&'static str, Vec<&'static str>)> {
        let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
        for r in &self.0 {
            if r.group.is_empty() {
                continue;
            }
            match out.iter_mut().find(|(name, _)| *name == r.group) {
                Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
                Some(_) => {}
                None => out.push((r.group, vec![r.version])),
            }
        }
        for (_, versions) in &mut out {
            versions.sort_by_key(|v| std::cmp::Reverse(crate::crd::version_priority(v)));
        }
        out
    }
}

fn api_group(name: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

fn remote_versions(g: &RemoteGroup) -> Vec<&str> {
    g.versions.iter().map(|(v, _)| v.as_str()).collect()
}

pub fn api_group_list(served: &Served) -> Value {
    let mut groups: Vec<Value> = served
        .groups()
        .iter()
        .map(|(g, vs)| api_group(g, vs))
        .collect();
    groups.extend(
        served
            .1
            .iter()
            .map(|g| api_group(&g.name, &remote_versions(g))),
    );
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group_doc(served: &Served, group: &str) -> Option<Value> {
    let local = served.groups().into_iter().find(|(g, _)| *g == group);
    let doc = match (local, served.remote(group)) {
        (Some((g, vs)), _) => Some(api_group(g, &vs)),
        (None, Some(r)) => Some(api_group(&r.name, &remote_versions(r))),
        (None, None) => None,
    };
    doc.map(|mut doc| {
        if let Some(m) = doc.as_object_mut() {
            m.insert("kind".into(), json!("APIGroup"));
            m.insert("apiVersion".into(), json!("v1"));
        }
        doc
    })
}

/// `APIResourceList` of one group-version, or None if it is not served.
pub fn api_resource_list(served: &Served, group: &str, version: &str) -> Option<Value> {
    let mut list = Vec::new();
    for r in served.in_group_version(group, version) {
        let mut entry = json!({
            "name": r.resource,
            "singularName": r.singular(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        list.push(entry);
        for s in r.subresources {
            let mut sub = json!({
                "name": format!("{}/{}", r.resource, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": s.kind,
                "verbs": s.verbs,
            });
            if s.group != r.group || s.version != r.version {
                sub["group"] = json!(s.group);
                sub["version"] = json!(s.version);
            }
            list.push(sub);
        }
    }
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}

fn discovery_resource(r: &ResourceInfo) -> Value {
    let subs: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| {
            json!({
                "subresource": s.name,
                "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                "verbs": s.verbs,
            })
        })
        .collect();
    let mut v = json!({
        "resource": r.resource,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular(),
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    if !subs.is_empty() {
        v["subresources"] = json!(subs);
    }
    v
}

fn discovery_group(served: &Served, name: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = served
                .in_group_version(name, v)
                .map(discovery_resource)
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": name, "creationTimestamp": null}, "versions": versions})
}

/// A remote APIService's `APIResourceList` in aggregated form: subresources folded
/// into their resources, kinds qualified with the group-version.
fn remote_resources(list: &Value, group: &str, version: &str) -> Vec<Value> {
    let entries = list
        .get("resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let kind_of = |e: &Value| {
        let g = e.get("group").and_then(Value::as_str).unwrap_or(group);
        let v = e.get("version").and_then(Value::as_str).unwrap_or(version);
        json!({"group": g, "version": v, "kind": e.get("kind").cloned().unwrap_or(json!(""))})
    };
    let mut out = Vec::new();
    for e in entries.iter() {
        let name = e.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() || name.contains('/') {
            continue;
        }
        let namespaced = e.get("namespaced") == Some(&json!(true));
        let mut r = json!({
            "resource": name,
            "responseKind": kind_of(e),
            "scope": if namespaced { "Namespaced" } else { "Cluster" },
            "singularResource": e.get("singularName").cloned().unwrap_or(json!("")),
            "verbs": e.get("verbs").cloned().unwrap_or(json!([])),
        });
        for key in ["shortNames", "categories"] {
            if let Some(v) = e
                .get(key)
                .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            {
                r[key] = v.clone();
            }
        }
        let subs: Vec<Value> = entries
            .iter()
            .filter_map(|s| {
                let sub = s
                    .get("name")
                    .and_then(Value::as_str)?
                    .strip_prefix(name)?
                    .strip_prefix('/')?;
                Some(json!({"subresource": sub, "responseKind": kind_of(s),
                    "verbs": s.get("verbs").cloned().unwrap_or(json!([]))}))
            })
            .collect();
        if !subs.is_empty() {
            r["subresources"] = json!(subs);
        }
        out.push(r);
    }
    out
}

/// A remote group in aggregated form: versions whose last check failed (or never
/// succeeded) are `Stale`, as upstream marks an unavailable APIService.
fn remote_discovery_group(g: &RemoteGroup) -> Value {
    let versions: Vec<Value> = g
        .versions
        .iter()
        .map(|(v, doc)| {
            let resources = doc
                .as_ref()
                .map(|d| remote_resources(&d.resources, &g.name, v))
                .unwrap_or_default();
            let fresh = doc.as_ref().is_some_and(|d| d.fresh);
            json!({"version": v, "resources": resources,
                "freshness": if fresh { "Current" } else { "Stale" }})
        })
        .collect();
    json!({"metadata": {"name": g.name, "creationTimestamp": null}, "versions": versions})
}

/// Aggregated discovery for `/api` (legacy = core group) or `/apis`.
pub fn aggregated(served: &Served, legacy: bool) -> Value {
    let items: Vec<Value> = if legacy {
        vec![discovery_group(served, "", &["v1"])]
    } else {
        served
            .groups()
            .iter()
            .map(|(g, vs)| discovery_group(served, g, vs))
            .chain(served.1.iter().map(remote_discovery_group))
            .collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": concat!("v1.33.0-ferrokube.", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents() {
        let served = Served::builtin();
        let core = api_resource_list(&served, "", "v1").unwrap();
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"pods")
                && names.contains(&"pods/status")
                && names.contains(&"namespaces/finalize")
        );
        assert!(api_resource_list(&served, "apps", "v9").is_none());
        let groups = api_group_list(&served);
        assert!(groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "apps"));
        let agg = aggregated(&served, false);
        let apps = agg["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .unwrap();
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deploy["scope"], "Namespaced");
        assert_eq!(deploy["subresources"].as_array().unwrap().len(), 2);
        assert!(wants_aggregated(Some(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        )));
        assert!(!wants_aggregated(Some("application/json")));
    }

    #[test]
    fn remote_groups_join_discovery() {
        use crate::aggregator::Discovered;
        let list = json!({"kind": "APIResourceList", "groupVersion": "metrics.k8s.io/v1beta1",
            "resources": [
                {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
                {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
                {"name": "pods/status", "namespaced": true, "kind": "PodMetrics", "verbs": ["get"]}]});
        let remote = vec![
            RemoteGroup {
                name: "metrics.k8s.io".into(),
                versions: vec![(
                    "v1beta1".into(),
                    Some(Discovered {
                        resources: list,
                        fresh: true,
                    }),
                )],
            },
            RemoteGroup {
                name: "down.example.io".into(),
                versions: vec![("v1".into(), None)],
            },
            // A remote version of a group served here is not listed twice.
            RemoteGroup {
                name: "apps".into(),
                versions: vec![("v2".into(), None)],
            },
        ];
        let served = Served::builtin().with_remote(remote);
        let groups = api_group_list(&served);
        let names: Vec<&str> = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.iter().filter(|n| **n == "apps").count(), 1);
        assert!(names.ends_with(&["metrics.k8s.io", "down.example.io"]));
        let doc = api_group_doc(&served, "metrics.k8s.io").unwrap();
        assert_eq!(
            doc["preferredVersion"]["groupVersion"],
            "metrics.k8s.io/v1beta1"
        );
        let agg = aggregated(&served, false);
        let items = agg["items"].as_array().unwrap();
        let metrics = items
            .iter()
            .find(|g| g["metadata"]["name"] == "metrics.k8s.io")
            .unwrap();
        let v = &metrics["versions"][0];
        assert_eq!(v["freshness"], "Current");
        assert_eq!(v["resources"][1]["resource"], "pods");
        assert_eq!(v["resources"][1]["scope"], "Namespaced");
        assert_eq!(v["resources"][1]["responseKind"]["group"], "metrics.k8s.io");
        assert_eq!(
            v["resources"][1]["subresources"][0]["subresource"],
            "status"
        );
        let down = items
            .iter()
            .find(|g| g["metadata"]["name"] == "down.example.io")
            .unwrap();
        assert_eq!(down["versions"][0]["freshness"], "Stale");
    }
}
