//! Builders for test nodes and pods.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferrokube_scheduler::cache::{Cache, Snapshot};
use ferrokube_scheduler::node::Node;
use ferrokube_scheduler::pod::PodInfo;
use serde_json::{json, Value};

pub fn node_json(name: &str, cpu: &str, mem: &str) -> Value {
    json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
           "status": {"allocatable": {"cpu": cpu, "memory": mem, "pods": "110"}}})
}

pub fn node(v: Value) -> Node {
    Node::from_value(&v).unwrap()
}

pub fn pod_json(name: &str, cpu: &str, mem: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "default", "uid": name},
           "spec": {"containers": [{"name": "c", "image": "busybox",
               "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}})
}

pub fn pod(v: Value) -> PodInfo {
    PodInfo::from_value(&v).unwrap()
}

/// Merges `patch` into `base` (objects recursively).
pub fn merge(mut base: Value, patch: Value) -> Value {
    fn go(a: &mut Value, b: Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    go(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }
    go(&mut base, patch);
    base
}

pub fn bound(v: Value, node: &str) -> PodInfo {
    pod(merge(v, json!({"spec": {"nodeName": node}})))
}

pub fn cluster(nodes: Vec<Value>, pods: Vec<PodInfo>) -> (Cache, Snapshot) {
    let mut c = Cache::new();
    for n in nodes {
        c.add_node(node(n));
    }
    for p in pods {
        c.add_pod(p);
    }
    let s = c.snapshot();
    (c, s)
}
