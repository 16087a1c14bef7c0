use std::time::Duration;

use serde_json::json;

use super::*;
use crate::cluster::{NodeInfo, PodInfo};
use crate::scraper::Snapshot;
use crate::storage::{Batch, MetricsPoint};

const S: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * S;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn point(offset_ms: i64, cpu_ns: u64, mem: u64) -> MetricsPoint {
    MetricsPoint {
        start_time_ns: 0,
        timestamp_ns: T0 + offset_ms * 1_000_000,
        cpu_ns,
        memory_bytes: mem,
    }
}

/// Nodes n1 (metrics), n2 (metrics), n3 (no metrics); pods default/web (2 containers),
/// default/db, kube-system/dns (metrics), default/new (no metrics).
fn api() -> Api {
    let storage = Arc::new(Storage::new(Duration::from_secs(15)));
    let batch = |t: i64, k: u64| {
        let mut b = Batch::default();
        b.nodes
            .insert("n1".into(), point(t, k * 2_000_000_000, 4_096_000));
        b.nodes
            .insert("n2".into(), point(t, k * 1_000_000_000, 1 << 30));
        b.pods.insert(
            PodRef::new("default", "web"),
            [
                ("app".to_string(), point(t, k * 150_000_000, 1 << 20)),
                ("side".to_string(), point(t, k * 15_000_000, 1 << 20)),
            ]
            .into(),
        );
        b.pods.insert(
            PodRef::new("default", "db"),
            [("db".to_string(), point(t, k * 1_500_000, 512))].into(),
        );
        b.pods.insert(
            PodRef::new("kube-system", "dns"),
            [("dns".to_string(), point(t, k * 3_000_000, 10_240))].into(),
        );
        b
    };
    storage.store(batch(0, 1));
    storage.store(batch(15_012, 2));
    let state = Arc::new(ClusterState::default());
    let node = |name: &str, l: &[(&str, &str)]| {
        (
            name.to_string(),
            NodeInfo {
                name: name.into(),
                labels: labels(l),
                ..NodeInfo::default()
            },
        )
    };
    let pod = |ns: &str, name: &str, l: &[(&str, &str)]| {
        (
            PodRef::new(ns, name),
            PodInfo {
                namespace: ns.into(),
                name: name.into(),
                labels: labels(l),
                node_name: "n1".into(),
            },
        )
    };
    state.set(Snapshot {
        nodes: [
            node("n1", &[("zone", "a"), ("role", "worker")]),
            node("n2", &[("zone", "b")]),
            node("n3", &[("zone", "a")]),
        ]
        .into(),
        pods: [
            pod("default", "web", &[("app", "web"), ("tier", "front")]),
            pod("default", "db", &[("app", "db")]),
            pod("kube-system", "dns", &[("app", "dns")]),
            pod("default", "new", &[("app", "web")]),
        ]
        .into(),
    });
    Api::new(storage, state, LabelSelector::default())
}

fn get(api: &Api, path_and_query: &str) -> Reply {
    get_as(api, path_and_query, None)
}

fn get_as(api: &Api, path_and_query: &str, accept: Option<&str>) -> Reply {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    api.handle(&Method::GET, path, query, accept)
        .unwrap_or_else(|| panic!("{path} is not an API path"))
}

fn names(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let m = &i["metadata"];
            match m["namespace"].as_str() {
                Some(ns) => format!("{ns}/{}", m["name"].as_str().unwrap()),
                None => m["name"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}

#[test]
fn node_metrics_json() {
    let api = api();
    let r = get(&api, "/apis/metrics.k8s.io/v1beta1/nodes/n1");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "application/json");
    let mut v = r.body_json();
    assert!(v["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    v["metadata"]["creationTimestamp"] = json!("now");
    assert_eq!(
        v,
        json!({
            "kind": "NodeMetrics",
            "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": "n1", "creationTimestamp": "now", "labels": {"zone": "a", "role": "worker"}},
            "timestamp": "2023-11-14T22:13:35Z",
            "window": "15.012s",
            // 2 s of CPU over 15.012 s.
            "usage": {"cpu": "133226751n", "memory": "4000Ki"},
        })
    );
    let v = get(&api, "/apis/metrics.k8s.io/v1beta1/nodes").body_json();
    assert_eq!(v["kind"], "NodeMetricsList");
    assert_eq!(v["apiVersion"], "metrics.k8s.io/v1beta1");
    assert_eq!(v["metadata"], json!({}));
    // n3 has no metrics: not listed.
    assert_eq!(names(&v), ["n1", "n2"]);
    assert_eq!(v["items"][1]["usage"]["memory"], "1Gi");
}

#[test]
fn pod_metrics_json() {
    let api = api();
    let mut v = get(
        &api,
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web",
    )
    .body_json();
    v["metadata"]["creationTimestamp"] = json!("now");
    assert_eq!(
        v,
        json!({
            "kind": "PodMetrics",
            "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "now", "labels": {"app": "web", "tier": "front"}},
            "timestamp": "2023-11-14T22:13:35Z",
            "window": "15.012s",
            "containers": [
                {"name": "app", "usage": {"cpu": "9992006n", "memory": "1Mi"}},
                {"name": "side", "usage": {"cpu": "999200n", "memory": "1Mi"}},
            ],
        })
    );
    let v = get(&api, "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods").body_json();
    assert_eq!(v["kind"], "PodMetricsList");
    assert_eq!(names(&v), ["default/db", "default/web"]);
    assert_eq!(v["items"][0]["containers"][0]["usage"]["memory"], "512");
    let v = get(&api, "/apis/metrics.k8s.io/v1beta1/pods").body_json();
    assert_eq!(names(&v), ["default/db", "default/web", "kube-system/dns"]);
    assert_eq!(v["items"][2]["containers"][0]["usage"]["memory"], "10Ki");
    let v = get(&api, "/apis/metrics.k8s.io/v1beta1/namespaces/nope/pods").body_json();
    assert_eq!(v["items"], json!([]));
}

#[test]
fn selectors() {
    let api = api();
    let list = |q: &str| names(&get(&api, q).body_json());
    assert_eq!(
        list("/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=zone%3Da"),
        ["n1"]
    );
    assert_eq!(
        list("/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=zone!%3Da"),
        ["n2"]
    );
    assert_eq!(
        list("/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=zone+in+(a,b)"),
        ["n1", "n2"]
    );
    assert_eq!(
        list("/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=zone+notin+(a)"),
        ["n2"]
    );
    assert_eq!(
        list("/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=role"),
        ["n1"]
    );
    assert_eq!(
        list("/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=!role"),
        ["n2"]
    );
    assert_eq!(
        list("/apis/metrics.k8s.io/v1beta1/nodes?fieldSelector=metadata.name%3Dn2"),
        ["n2"]
    );
    assert_eq!(
        list("/apis/metrics.k8s.io/v1beta1/nodes?fieldSelector=metadata.name!%3Dn2"),
        ["n1"]
    );
    assert_eq!(
        list("/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%3Dweb"),
        ["default/web"]
    );
    assert_eq!(
        list("/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app+in+(web,dns),tier"),
        ["default/web"]
    );
    assert_eq!(
        list("/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.namespace%3Dkube-system"),
        ["kube-system/dns"]
    );
    assert_eq!(
        list(
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?fieldSelector=metadata.name%3Ddb"
        ),
        ["default/db"]
    );
    let r = get(
        &api,
        "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=a+in+b",
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body_json()["reason"], "BadRequest");
    let r = get(
        &api,
        "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=spec.nodeName%3Dn1",
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body_json()["message"],
        "\"spec.nodeName\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
    );

    // --node-selector limits the node list.
    let limited = Api::new(
        api.storage.clone(),
        api.state.clone(),
        LabelSelector::parse("zone=b").unwrap(),
    );
    assert_eq!(
        names(&get(&limited, "/apis/metrics.k8s.io/v1beta1/nodes").body_json()),
        ["n2"]
    );
}

#[test]
fn not_found_as_upstream() {
    let api = api();
    let status = |path: &str| {
        let r = get(&api, path);
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        r.body_json()
    };
    assert_eq!(
        status("/apis/metrics.k8s.io/v1beta1/nodes/nope"),
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "node \"nope\" not found", "reason": "NotFound",
            "details": {"name": "nope", "kind": "node"}, "code": 404,
        })
    );
    let v = status("/apis/metrics.k8s.io/v1beta1/nodes/n3");
    assert_eq!(v["message"], "nodemetrics.metrics.k8s.io \"n3\" not found");
    assert_eq!(
        v["details"],
        json!({"name": "n3", "group": "metrics.k8s.io", "kind": "nodemetrics"})
    );
    let v = status("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope");
    assert_eq!(v["message"], "pods \"nope\" not found");
    let v = status("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/new");
    assert_eq!(
        v["message"],
        "podmetrics.metrics.k8s.io \"default/new\" not found"
    );
    let v = status("/apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods/web");
    assert_eq!(v["message"], "pods \"web\" not found");
    let v = status("/apis/metrics.k8s.io/v1beta1/services");
    assert_eq!(
        v["message"],
        "the server could not find the requested resource"
    );
    status("/apis/metrics.k8s.io/v1beta1/nodes/n1/status");
    status("/apis/metrics.k8s.io/v1beta1/pods/web");
    assert_eq!(
        api.handle(&Method::GET, "/apis/other.k8s.io", None, None),
        None
    );
    assert_eq!(api.handle(&Method::GET, "/healthz", None, None), None);
}

#[test]
fn only_get_and_list() {
    let api = api();
    for (method, path) in [
        (Method::POST, "/apis/metrics.k8s.io/v1beta1/nodes"),
        (Method::DELETE, "/apis/metrics.k8s.io/v1beta1/nodes/n1"),
        (
            Method::PUT,
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web",
        ),
        (
            Method::PATCH,
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web",
        ),
        (Method::POST, "/apis/metrics.k8s.io/v1beta1"),
    ] {
        let r = api.handle(&method, path, None, None).unwrap();
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(r.body_json()["reason"], "MethodNotAllowed");
    }
    let r = get(&api, "/apis/metrics.k8s.io/v1beta1/nodes?watch=true");
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        r.body_json()["message"],
        "watch is not supported on resources of kind \"nodes.metrics.k8s.io\""
    );
    assert_eq!(
        get(&api, "/apis/metrics.k8s.io/v1beta1/nodes?watch=false").status,
        StatusCode::OK
    );
}

#[test]
fn discovery() {
    let api = api();
    let v = get(&api, "/apis/metrics.k8s.io/v1beta1").body_json();
    assert_eq!(
        v,
        json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "metrics.k8s.io/v1beta1",
            "resources": [
                {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
                {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
            ],
        })
    );
    let group = json!({
        "name": "metrics.k8s.io",
        "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
        "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"},
    });
    let mut g = group.clone();
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    assert_eq!(get(&api, "/apis/metrics.k8s.io").body_json(), g);
    assert_eq!(
        get(&api, "/apis").body_json(),
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]})
    );
    let r = get_as(
        &api,
        "/apis",
        Some(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        ),
    );
    assert!(r.content_type.contains("as=APIGroupDiscoveryList"));
    let v = r.body_json();
    assert_eq!(v["kind"], "APIGroupDiscoveryList");
    assert_eq!(
        v["items"][0]["versions"][0]["resources"][1]["scope"],
        "Namespaced"
    );
}

#[test]
fn tables() {
    let api = api();
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let v = get_as(&api, "/apis/metrics.k8s.io/v1beta1/nodes", Some(accept)).body_json();
    assert_eq!(v["kind"], "Table");
    assert_eq!(v["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(v["metadata"], json!({}));
    assert_eq!(
        v["columnDefinitions"],
        json!([
            {"name": "Name", "type": "string", "format": "name", "description": "Name of the resource", "priority": 0},
            {"name": "cpu", "type": "string", "format": "quantity", "description": "", "priority": 0},
            {"name": "memory", "type": "string", "format": "quantity", "description": "", "priority": 0},
            {"name": "Window", "type": "string", "format": "duration", "description": "", "priority": 0},
        ])
    );
    assert_eq!(
        v["rows"][0]["cells"],
        json!(["n1", "133226751n", "4000Ki", "15.012s"])
    );
    assert_eq!(v["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(v["rows"][0]["object"]["metadata"]["name"], "n1");
    assert_eq!(v["rows"].as_array().unwrap().len(), 2);

    // Pods: usage summed over containers.
    let v = get_as(
        &api,
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web?includeObject=Object",
        Some("application/json;as=Table;v=v1beta1;g=meta.k8s.io"),
    )
    .body_json();
    assert_eq!(v["apiVersion"], "meta.k8s.io/v1beta1");
    assert_eq!(
        v["rows"][0]["cells"],
        json!(["web", "10991206n", "2Mi", "15.012s"])
    );
    assert_eq!(v["rows"][0]["object"]["kind"], "PodMetrics");
    let v = get_as(
        &api,
        "/apis/metrics.k8s.io/v1beta1/nodes?includeObject=None&labelSelector=zone%3Dzz",
        Some(accept),
    )
    .body_json();
    assert_eq!(v["rows"], json!([]));
    assert_eq!(v["columnDefinitions"], json!([]));
    let v = get_as(
        &api,
        "/apis/metrics.k8s.io/v1beta1/nodes?includeObject=None",
        Some(accept),
    )
    .body_json();
    assert_eq!(v["rows"][0]["object"], Value::Null);

    // PartialObjectMetadataList.
    let v = get_as(
        &api,
        "/apis/metrics.k8s.io/v1beta1/pods",
        Some("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"),
    )
    .body_json();
    assert_eq!(v["kind"], "PartialObjectMetadataList");
    assert_eq!(v["items"][2]["metadata"]["namespace"], "kube-system");
    // Unknown "as" falls through to the next entry; then JSON.
    let v = get_as(
        &api,
        "/apis/metrics.k8s.io/v1beta1/nodes",
        Some("application/json;as=Whatever;v=v1;g=meta.k8s.io, application/json"),
    )
    .body_json();
    assert_eq!(v["kind"], "NodeMetricsList");
}

#[test]
fn request_infos() {
    let info = |m: Method, p: &str, q: Option<&str>| request_info(&m, p, q);
    assert_eq!(info(Method::GET, "/apis", None), None);
    assert_eq!(info(Method::GET, "/apis/metrics.k8s.io", None), None);
    assert_eq!(
        info(Method::GET, "/apis/metrics.k8s.io/v1beta1", None),
        None
    );
    assert_eq!(info(Method::GET, "/healthz", None), None);
    assert_eq!(
        info(Method::GET, "/apis/metrics.k8s.io/v1beta1/nodes", None).unwrap(),
        RequestInfo {
            verb: "list".into(),
            group: "metrics.k8s.io".into(),
            version: "v1beta1".into(),
            resource: "nodes".into(),
            ..RequestInfo::default()
        }
    );
    let i = info(
        Method::GET,
        "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods/p",
        None,
    )
    .unwrap();
    assert_eq!(
        (
            i.verb.as_str(),
            i.namespace.as_str(),
            i.resource.as_str(),
            i.name.as_str()
        ),
        ("get", "ns", "pods", "p")
    );
    let i = info(
        Method::GET,
        "/apis/metrics.k8s.io/v1beta1/pods",
        Some("watch=1"),
    )
    .unwrap();
    assert_eq!(i.verb, "watch");
    let i = info(
        Method::GET,
        "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods",
        Some("fieldSelector=metadata.name%3Dp"),
    )
    .unwrap();
    assert_eq!((i.verb.as_str(), i.name.as_str()), ("list", "p"));
    let i = info(Method::DELETE, "/apis/metrics.k8s.io/v1beta1/nodes", None).unwrap();
    assert_eq!(i.verb, "deletecollection");
    let i = info(
        Method::POST,
        "/apis/metrics.k8s.io/v1beta1/nodes/n/status",
        None,
    )
    .unwrap();
    assert_eq!(
        (i.verb.as_str(), i.subresource.as_str()),
        ("create", "status")
    );
    let i = info(
        Method::GET,
        "/apis/metrics.k8s.io/v1beta1/watch/nodes",
        None,
    )
    .unwrap();
    assert_eq!((i.verb.as_str(), i.resource.as_str()), ("watch", "nodes"));
}
