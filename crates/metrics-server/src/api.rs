//! The resource metrics API, `metrics.k8s.io/v1beta1`, as upstream metrics-server serves
//! it (`pkg/api/{node,pod,table,filter}.go` on the generic API server):
//!
//! - discovery: `/apis` (APIGroupList, or the aggregated APIGroupDiscoveryList when
//!   asked for), `/apis/metrics.k8s.io` (APIGroup), `/apis/metrics.k8s.io/v1beta1`
//!   (APIResourceList: `nodes` NodeMetrics cluster-scoped, `pods` PodMetrics
//!   namespaced, verbs get and list);
//! - `GET .../nodes[/NAME]`, `.../pods` (all namespaces),
//!   `.../namespaces/NS/pods[/NAME]`: NodeMetrics / PodMetrics (and their lists,
//!   sorted by name), with `labelSelector` (against the Node's/Pod's labels) and
//!   `fieldSelector` (`metadata.name`, `metadata.namespace`); only objects with usage
//!   are listed;
//! - `Accept: application/json;as=Table;g=meta.k8s.io;v=v1` (kubectl get): the
//!   upstream table (Name, one column per resource — `cpu`, `memory` — and Window);
//! - errors as `metav1.Status`: NotFound as upstream words it (`node "x" not found`
//!   when there is no such Node, `nodemetrics.metrics.k8s.io "x" not found` when it
//!   has no metrics yet; `pods "x" not found`, `podmetrics.metrics.k8s.io "ns/x" not
//!   found`), 405 for anything but GET (and for watch), 400 for bad selectors.
//!
//! Authentication and authorization happen before (see [`crate::server`]);
//! [`request_info`] gives the attributes to authorize.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrokube_api::selectors::{FieldSelector, LabelSelector};
use ferrokube_api::status::{Status, Subject};
use ferrokube_component_base::Histogram;
use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::format;
use crate::kubelet::now_ns;
use crate::scraper::ClusterState;
use crate::storage::{PodRef, PodUsage, Storage, Usage};

/// The API group.
pub const GROUP: &str = "metrics.k8s.io";
/// The served version.
pub const VERSION: &str = "v1beta1";
/// `group/version`.
pub const GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";

/// A response: status, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// `Content-Type`.
    pub content_type: String,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A JSON body (compact, newline-terminated as Go's encoder writes it).
    pub fn json(status: StatusCode, value: &Value) -> Reply {
        Reply::json_as(status, value, "application/json")
    }

    fn json_as(status: StatusCode, value: &Value, content_type: &str) -> Reply {
        let mut body = serde_json::to_vec(value).unwrap_or_default();
        body.push(b'\n');
        Reply {
            status,
            content_type: content_type.into(),
            body,
        }
    }

    /// A `metav1.Status`.
    pub fn status(status: &Status) -> Reply {
        let mut body = status.to_json();
        body.push(b'\n');
        Reply {
            status: StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            content_type: "application/json".into(),
            body,
        }
    }

    /// Go's `http.NotFound`.
    pub fn not_found_text() -> Reply {
        Reply {
            status: StatusCode::NOT_FOUND,
            content_type: "text/plain; charset=utf-8".into(),
            body: b"404 page not found\n".to_vec(),
        }
    }

    /// The body as JSON (tests).
    pub fn body_json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// The attributes of a resource request (upstream's `RequestInfo`), for authorization.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`.
    pub verb: String,
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource.
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Namespace.
    pub namespace: String,
    /// Name (from the path, or a list's `fieldSelector=metadata.name=`).
    pub name: String,
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn is_watch(pairs: &[(String, String)]) -> bool {
    query_value(pairs, "watch")
        .is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "false" | "0"))
}

/// A path segment a name may be (upstream's `IsValidPathSegmentName`).
fn valid_path_segment(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

/// Upstream's `RequestInfoFactory.NewRequestInfo` for `/apis/...`: `None` for
/// non-resource requests (discovery, health, metrics).
pub fn request_info(method: &Method, path: &str, query: Option<&str>) -> Option<RequestInfo> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if parts.len() < 3 || (parts[0] != "apis" && parts[0] != "api") {
        return None;
    }
    let mut info = RequestInfo::default();
    let mut rest: &[&str] = if parts[0] == "apis" {
        if parts.len() < 4 {
            return None;
        }
        info.group = parts[1].to_string();
        info.version = parts[2].to_string();
        &parts[3..]
    } else {
        info.version = parts[1].to_string();
        &parts[2..]
    };
    if matches!(rest[0], "watch" | "proxy") {
        if rest.len() < 2 {
            return None;
        }
        info.verb = rest[0].to_string();
        rest = &rest[1..];
    } else {
        info.verb = match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        }
        .to_string();
    }
    if rest[0] == "namespaces" && rest.len() > 1 {
        info.namespace = rest[1].to_string();
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    if rest.len() >= 3 && info.verb != "proxy" {
        info.subresource = rest[2].to_string();
    }
    if rest.len() >= 2 {
        info.name = rest[1].to_string();
    }
    info.resource = rest[0].to_string();
    if info.name.is_empty() && info.verb == "get" {
        let pairs = query_pairs(query);
        info.verb = if is_watch(&pairs) { "watch" } else { "list" }.into();
        if let Some(Ok(fs)) = query_value(&pairs, "fieldSelector").map(FieldSelector::parse) {
            if let [r] = fs.requirements.as_slice() {
                if r.field == "metadata.name" && !r.negate && valid_path_segment(&r.value) {
                    info.name = r.value.clone();
                }
            }
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".into();
    }
    Some(info)
}

/// What representation the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Json,
    /// `meta.k8s.io/<version>` Table.
    Table(&'static str),
    /// `meta.k8s.io/<version>` PartialObjectMetadata(List).
    Metadata(&'static str),
}

/// Reads `Accept` (first acceptable entry wins).
fn negotiate(accept: Option<&str>) -> Output {
    let Some(accept) = accept else {
        return Output::Json;
    };
    for entry in accept.split(',') {
        let mut fields = entry.split(';').map(str::trim);
        let media = fields.next().unwrap_or_default().to_ascii_lowercase();
        let params: BTreeMap<String, String> = fields
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        if media != "application/json" && media != "*/*" && media != "application/*" {
            continue;
        }
        let version = match params.get("v").map(String::as_str) {
            Some("v1") => "v1",
            Some("v1beta1") => "v1beta1",
            _ => "",
        };
        match params.get("as").map(String::as_str) {
            None => return Output::Json,
            Some("Table")
                if params.get("g").map(String::as_str) == Some("meta.k8s.io")
                    && !version.is_empty() =>
            {
                return Output::Table(version)
            }
            Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                if params.get("g").map(String::as_str) == Some("meta.k8s.io")
                    && !version.is_empty() =>
            {
                return Output::Metadata(version)
            }
            Some(_) => continue,
        }
    }
    Output::Json
}

/// Whether `Accept` asks for aggregated discovery (`apidiscovery.k8s.io/v2`).
fn wants_aggregated_discovery(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|e| {
            let e = e.replace(' ', "");
            e.contains("as=APIGroupDiscoveryList")
                && e.contains("g=apidiscovery.k8s.io")
                && e.contains("v=v2")
                && !e.contains("v=v2beta1")
        })
    })
}

/// One of the two resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    Nodes,
    Pods,
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Resource::Nodes => "nodes",
            Resource::Pods => "pods",
        }
    }
}

/// An object ready to serialize: metadata + usage.
#[derive(Debug, Clone)]
struct Item {
    namespace: Option<String>,
    name: String,
    labels: BTreeMap<String, String>,
    timestamp_ns: i64,
    window_ns: i64,
    /// Nodes: one entry named "". Pods: one per container.
    containers: Vec<(String, Usage)>,
}

/// Serves the API from the storage and the cluster snapshot.
#[derive(Debug, Clone)]
pub struct Api {
    storage: Arc<Storage>,
    state: Arc<ClusterState>,
    node_selector: LabelSelector,
    freshness: Option<Histogram>,
}

fn usage_json(cpu_nanocores: u64, memory_bytes: u64) -> Value {
    json!({"cpu": format::cpu(cpu_nanocores), "memory": format::memory(memory_bytes)})
}

impl Item {
    fn metadata(&self, creation: &str) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        if let Some(ns) = &self.namespace {
            m.insert("namespace".into(), json!(ns));
        }
        m.insert("creationTimestamp".into(), json!(creation));
        if !self.labels.is_empty() {
            m.insert("labels".into(), json!(self.labels));
        }
        Value::Object(m)
    }

    fn total(&self) -> (u64, u64) {
        self.containers.iter().fold((0u64, 0u64), |(c, m), (_, u)| {
            (
                c.saturating_add(u.cpu_nanocores),
                m.saturating_add(u.memory_bytes),
            )
        })
    }

    fn to_json(&self, creation: &str) -> Value {
        let mut o = Map::new();
        let kind = if self.namespace.is_some() {
            "PodMetrics"
        } else {
            "NodeMetrics"
        };
        o.insert("kind".into(), json!(kind));
        o.insert("apiVersion".into(), json!(GROUP_VERSION));
        o.insert("metadata".into(), self.metadata(creation));
        o.insert(
            "timestamp".into(),
            json!(format::timestamp(self.timestamp_ns)),
        );
        o.insert("window".into(), json!(format::go_duration(self.window_ns)));
        if self.namespace.is_some() {
            let containers: Vec<Value> = self
                .containers
                .iter()
                .map(|(name, u)| {
                    json!({"name": name, "usage": usage_json(u.cpu_nanocores, u.memory_bytes)})
                })
                .collect();
            o.insert("containers".into(), Value::Array(containers));
        } else {
            let (cpu, memory) = self.total();
            o.insert("usage".into(), usage_json(cpu, memory));
        }
        Value::Object(o)
    }
}

/// `includeObject` of a Table request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Include {
    None,
    Metadata,
    Object,
}

impl Api {
    /// Serves `storage`, with labels and existence from `state`; `node_selector`
    /// limits the nodes listed (`--node-selector`).
    pub fn new(
        storage: Arc<Storage>,
        state: Arc<ClusterState>,
        node_selector: LabelSelector,
    ) -> Api {
        Api {
            storage,
            state,
            node_selector,
            freshness: None,
        }
    }

    /// Observes each served metric's age in `histogram`
    /// (`metrics_server_api_metric_freshness_seconds`).
    pub fn with_freshness(mut self, histogram: Histogram) -> Api {
        self.freshness = Some(histogram);
        self
    }

    /// Answers a request (already authenticated and authorized): `None` when the path
    /// is not the API's (the caller serves health, metrics, or 404).
    pub fn handle(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        accept: Option<&str>,
    ) -> Option<Reply> {
        let trimmed = path.trim_end_matches('/');
        let parts: Vec<&str> = trimmed.trim_start_matches('/').split('/').collect();
        let reading = matches!(*method, Method::GET | Method::HEAD);
        match parts.as_slice() {
            ["apis"] => Some(self.or_405(reading, || self.group_list(accept))),
            ["apis", GROUP] => {
                Some(self.or_405(reading, || Reply::json(StatusCode::OK, &api_group())))
            }
            ["apis", GROUP, VERSION] => {
                Some(self.or_405(reading, || Reply::json(StatusCode::OK, &resource_list())))
            }
            ["apis", GROUP, VERSION, rest @ ..] => Some(self.resource(method, rest, query, accept)),
            _ => None,
        }
    }

    fn or_405(&self, reading: bool, f: impl FnOnce() -> Reply) -> Reply {
        if reading {
            f()
        } else {
            method_not_allowed()
        }
    }

    fn group_list(&self, accept: Option<&str>) -> Reply {
        if wants_aggregated_discovery(accept) {
            return Reply::json_as(
                StatusCode::OK,
                &aggregated_discovery(),
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            );
        }
        Reply::json(
            StatusCode::OK,
            &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [api_group_body()]}),
        )
    }

    fn resource(
        &self,
        method: &Method,
        rest: &[&str],
        query: Option<&str>,
        accept: Option<&str>,
    ) -> Reply {
        let (resource, namespace, name) = match rest {
            ["nodes"] => (Resource::Nodes, None, None),
            ["nodes", name] => (Resource::Nodes, None, Some(*name)),
            ["pods"] => (Resource::Pods, None, None),
            ["namespaces", ns, "pods"] => (Resource::Pods, Some(*ns), None),
            ["namespaces", ns, "pods", name] => (Resource::Pods, Some(*ns), Some(*name)),
            _ => return not_found_status(),
        };
        if !matches!(*method, Method::GET | Method::HEAD) {
            return method_not_allowed();
        }
        let pairs = query_pairs(query);
        if name.is_none() && is_watch(&pairs) {
            return Reply::status(&Status::method_not_allowed(
                Subject {
                    group: GROUP,
                    resource: resource.name(),
                    name: "",
                },
                "watch",
            ));
        }
        let output = negotiate(accept);
        let include = match query_value(&pairs, "includeObject") {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        };
        match name {
            Some(name) => match self.get(resource, namespace, name) {
                Ok(item) => self.render(output, include, resource, &[item], false),
                Err(status) => Reply::status(&status),
            },
            None => {
                let labels = match LabelSelector::parse(
                    query_value(&pairs, "labelSelector").unwrap_or(""),
                ) {
                    Ok(s) => s,
                    Err(e) => return Reply::status(&Status::bad_request(e)),
                };
                let fields = match FieldSelector::parse(
                    query_value(&pairs, "fieldSelector").unwrap_or(""),
                ) {
                    Ok(s) => s,
                    Err(e) => return Reply::status(&Status::bad_request(e)),
                };
                if let Some(r) = fields
                    .requirements
                    .iter()
                    .find(|r| r.field != "metadata.name" && r.field != "metadata.namespace")
                {
                    return Reply::status(&Status::bad_request(format!(
                        "{:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                        r.field
                    )));
                }
                let items = self.list(resource, namespace, &labels, &fields);
                self.render(output, include, resource, &items, true)
            }
        }
    }

    fn observe(&self, timestamp_ns: i64) {
        if let Some(h) = &self.freshness {
            h.observe((now_ns() - timestamp_ns).max(0) as f64 / 1e9);
        }
    }

    fn node_item(&self, name: &str, labels: &BTreeMap<String, String>) -> Option<Item> {
        let u = self.storage.node(name)?;
        self.observe(u.timestamp_ns);
        Some(Item {
            namespace: None,
            name: name.to_string(),
            labels: labels.clone(),
            timestamp_ns: u.timestamp_ns,
            window_ns: u.window_ns,
            containers: vec![(String::new(), u)],
        })
    }

    fn pod_item(&self, pod: &PodRef, labels: &BTreeMap<String, String>) -> Option<Item> {
        let PodUsage {
            timestamp_ns,
            window_ns,
            containers,
        } = self.storage.pod(pod)?;
        self.observe(timestamp_ns);
        Some(Item {
            namespace: Some(pod.namespace.clone()),
            name: pod.name.clone(),
            labels: labels.clone(),
            timestamp_ns,
            window_ns,
            containers,
        })
    }

    fn get(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Item, Box<Status>> {
        let not_found = |group: &str, resource: &str, name: &str| {
            Box::new(Status::not_found(Subject {
                group,
                resource,
                name,
            }))
        };
        let snapshot = self.state.get();
        match resource {
            Resource::Nodes => {
                // The node lister's NotFound first (client-go listers say "node").
                let node = snapshot
                    .nodes
                    .get(name)
                    .ok_or_else(|| not_found("", "node", name))?;
                self.node_item(name, &node.labels)
                    .ok_or_else(|| not_found(GROUP, "nodemetrics", name))
            }
            Resource::Pods => {
                let namespace = namespace.unwrap_or_default();
                let pod = PodRef::new(namespace, name);
                let info = snapshot
                    .pods
                    .get(&pod)
                    .ok_or_else(|| not_found("", "pods", name))?;
                self.pod_item(&pod, &info.labels)
                    .ok_or_else(|| not_found(GROUP, "podmetrics", &format!("{namespace}/{name}")))
            }
        }
    }

    fn list(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Item> {
        let snapshot = self.state.get();
        let fields_match = |ns: &str, name: &str| {
            fields.requirements.iter().all(|r| {
                let actual = if r.field == "metadata.name" { name } else { ns };
                (actual == r.value) != r.negate
            })
        };
        match resource {
            Resource::Nodes => snapshot
                .nodes
                .values()
                .filter(|n| labels.matches(&n.labels) && self.node_selector.matches(&n.labels))
                .filter(|n| fields_match("", &n.name))
                .filter_map(|n| self.node_item(&n.name, &n.labels))
                .collect(),
            Resource::Pods => snapshot
                .pods
                .iter()
                .filter(|(p, _)| namespace.is_none_or(|ns| p.namespace == ns))
                .filter(|(p, info)| {
                    labels.matches(&info.labels) && fields_match(&p.namespace, &p.name)
                })
                .filter_map(|(p, info)| self.pod_item(p, &info.labels))
                .collect(),
        }
    }

    fn render(
        &self,
        output: Output,
        include: Include,
        resource: Resource,
        items: &[Item],
        list: bool,
    ) -> Reply {
        let creation = format::timestamp(now_ns());
        let kind = match resource {
            Resource::Nodes => "NodeMetrics",
            Resource::Pods => "PodMetrics",
        };
        match output {
            Output::Json => {
                if !list {
                    if let Some(item) = items.first() {
                        return Reply::json(StatusCode::OK, &item.to_json(&creation));
                    }
                }
                let items: Vec<Value> = items.iter().map(|i| i.to_json(&creation)).collect();
                let list = json!({
                    "kind": format!("{kind}List"),
                    "apiVersion": GROUP_VERSION,
                    "metadata": {},
                    "items": items,
                });
                Reply::json(StatusCode::OK, &list)
            }
            Output::Metadata(version) => {
                let api_version = format!("meta.k8s.io/{version}");
                let partial = |i: &Item| {
                    json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": api_version,
                        "metadata": i.metadata(&creation),
                    })
                };
                if !list {
                    if let Some(item) = items.first() {
                        return Reply::json(StatusCode::OK, &partial(item));
                    }
                }
                let items: Vec<Value> = items.iter().map(partial).collect();
                let list = json!({
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": api_version,
                    "metadata": {},
                    "items": items,
                });
                Reply::json(StatusCode::OK, &list)
            }
            Output::Table(version) => {
                Reply::json(StatusCode::OK, &table(version, include, items, &creation))
            }
        }
    }
}

/// Upstream's `addNodeMetricsToTable` / `addPodMetricsToTable`: Name, the usage
/// resources in name order (a pod's summed over its containers), Window.
fn table(version: &str, include: Include, items: &[Item], creation: &str) -> Value {
    let mut columns: Vec<Value> = Vec::new();
    let mut rows: Vec<Value> = Vec::new();
    if !items.is_empty() {
        columns.push(json!({"name": "Name", "type": "string", "format": "name", "description": "Name of the resource", "priority": 0}));
        for r in ["cpu", "memory"] {
            columns.push(json!({"name": r, "type": "string", "format": "quantity", "description": "", "priority": 0}));
        }
        columns.push(json!({"name": "Window", "type": "string", "format": "duration", "description": "", "priority": 0}));
    }
    for item in items {
        let (cpu, memory) = item.total();
        let cells = json!([
            item.name,
            format::cpu(cpu),
            format::memory(memory),
            format::go_duration(item.window_ns)
        ]);
        let object = match include {
            Include::None => Value::Null,
            Include::Metadata => json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": format!("meta.k8s.io/{version}"),
                "metadata": item.metadata(creation),
            }),
            Include::Object => item.to_json(creation),
        };
        rows.push(json!({"cells": cells, "object": object}));
    }
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn api_group_body() -> Value {
    json!({
        "name": GROUP,
        "versions": [{"groupVersion": GROUP_VERSION, "version": VERSION}],
        "preferredVersion": {"groupVersion": GROUP_VERSION, "version": VERSION},
    })
}

/// `/apis/metrics.k8s.io`.
fn api_group() -> Value {
    let mut v = api_group_body();
    if let Value::Object(m) = &mut v {
        m.insert("kind".into(), json!("APIGroup"));
        m.insert("apiVersion".into(), json!("v1"));
    }
    v
}

/// `/apis/metrics.k8s.io/v1beta1`.
fn resource_list() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
        ],
    })
}

/// `/apis` as `apidiscovery.k8s.io/v2` APIGroupDiscoveryList.
fn aggregated_discovery() -> Value {
    let resource = |name: &str, kind: &str, scope: &str| {
        json!({
            "resource": name,
            "responseKind": {"group": "", "version": "", "kind": kind},
            "scope": scope,
            "singularResource": "",
            "verbs": ["get", "list"],
        })
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": [{
            "metadata": {"name": GROUP, "creationTimestamp": null},
            "versions": [{
                "version": VERSION,
                "resources": [
                    resource("nodes", "NodeMetrics", "Cluster"),
                    resource("pods", "PodMetrics", "Namespaced"),
                ],
                "freshness": "Current",
            }],
        }],
    })
}

fn method_not_allowed() -> Reply {
    Reply::status(&Status::failure(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    ))
}

fn not_found_status() -> Reply {
    Reply::status(&Status::failure(
        404,
        "NotFound",
        "the server could not find the requested resource",
    ))
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
