//! Upstream's printer columns (`pkg/printers/internalversion`) for the less common kinds:
//! RBAC roles and bindings, PodDisruptionBudgets, PersistentVolumes, StorageClasses,
//! NetworkPolicies, ResourceQuotas, LimitRanges, RuntimeClasses, IngressClasses,
//! PodTemplates, FlowSchemas and PriorityLevelConfigurations. `table` asks here before falling back to Name and Age.

use ferrokube_api::resources::ResourceInfo;
use serde_json::{json, Value};

use super::table::{c, or_none, s, w, Col};

pub(super) fn columns(info: &ResourceInfo) -> Option<Vec<Col>> {
    Some(match (info.group, info.resource) {
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") | ("", "limitranges") => {
            vec![c("Name", "string"), c("Created At", "date")]
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => vec![
            c("Name", "string"),
            c("Role", "string"),
            c("Age", "string"),
            w("Users", "string"),
            w("Groups", "string"),
            w("ServiceAccounts", "string"),
        ],
        ("policy", "poddisruptionbudgets") => vec![
            c("Name", "string"),
            c("Min Available", "string"),
            c("Max Unavailable", "string"),
            c("Allowed Disruptions", "integer"),
            c("Age", "string"),
        ],
        ("", "persistentvolumes") => vec![
            c("Name", "string"),
            c("Capacity", "string"),
            c("Access Modes", "string"),
            c("Reclaim Policy", "string"),
            c("Status", "string"),
            c("Claim", "string"),
            c("StorageClass", "string"),
            c("VolumeAttributesClass", "string"),
            c("Reason", "string"),
            c("Age", "string"),
            w("VolumeMode", "string"),
        ],
        ("storage.k8s.io", "storageclasses") => vec![
            c("Name", "string"),
            c("Provisioner", "string"),
            c("ReclaimPolicy", "string"),
            c("VolumeBindingMode", "string"),
            c("AllowVolumeExpansion", "string"),
            c("Age", "string"),
        ],
        ("networking.k8s.io", "networkpolicies") => vec![
            c("Name", "string"),
            c("Pod-Selector", "string"),
            c("Age", "string"),
        ],
        ("networking.k8s.io", "ingressclasses") => vec![
            c("Name", "string"),
            c("Controller", "string"),
            c("Parameters", "string"),
            c("Age", "string"),
        ],
        ("", "resourcequotas") => vec![
            c("Name", "string"),
            c("Age", "string"),
            c("Request", "string"),
            c("Limit", "string"),
        ],
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => vec![
            c("Name", "string"),
            c("PriorityLevel", "string"),
            c("MatchingPrecedence", "string"),
            c("DistinguisherMethod", "string"),
            c("Age", "string"),
            c("MissingPL", "string"),
        ],
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => vec![
            c("Name", "string"),
            c("Type", "string"),
            c("NominalConcurrencyShares", "string"),
            c("Queues", "string"),
            c("HandSize", "string"),
            c("QueueLengthLimit", "string"),
            c("Age", "string"),
        ],
        ("node.k8s.io", "runtimeclasses") => vec![
            c("Name", "string"),
            c("Handler", "string"),
            c("Age", "string"),
        ],
        ("", "podtemplates") => vec![
            c("Name", "string"),
            c("Containers", "string"),
            c("Images", "string"),
            c("Pod Labels", "string"),
        ],
        _ => return None,
    })
}

/// Subjects of one kind, comma-separated (service accounts as `namespace/name`).
fn subjects(o: &Value, kind: &str) -> String {
    o.get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|sub| s(sub, "/kind") == kind)
        .map(|sub| match kind {
            "ServiceAccount" => format!("{}/{}", s(sub, "/namespace"), s(sub, "/name")),
            _ => s(sub, "/name").to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An IntOrString field as printed, `N/A` when unset.
fn int_or_string(o: &Value, path: &str) -> String {
    match o.pointer(path) {
        Some(Value::String(v)) => v.clone(),
        Some(Value::Number(v)) => v.to_string(),
        _ => "N/A".into(),
    }
}

/// Upstream's access mode abbreviations (`RWO,ROX,RWX,RWOP`).
fn access_modes(o: &Value) -> String {
    let modes: Vec<&str> = o
        .pointer("/spec/accessModes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    [
        "ReadWriteOnce",
        "ReadOnlyMany",
        "ReadWriteMany",
        "ReadWriteOncePod",
    ]
    .iter()
    .zip(["RWO", "ROX", "RWX", "RWOP"])
    .filter(|(m, _)| modes.contains(m))
    .map(|(_, short)| short)
    .collect::<Vec<_>>()
    .join(",")
}

/// `name: used/hard` of a quota's resources, requests and limits apart (sorted).
fn quota_lists(o: &Value) -> (String, String) {
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    let hard = o
        .pointer("/status/hard")
        .or_else(|| o.pointer("/spec/hard"));
    if let Some(Value::Object(hard)) = hard {
        let mut names: Vec<&String> = hard.keys().collect();
        names.sort();
        for name in names {
            let used = o
                .pointer(&format!(
                    "/status/used/{}",
                    name.replace('~', "~0").replace('/', "~1")
                ))
                .and_then(Value::as_str)
                .unwrap_or("0");
            let entry = format!("{name}: {used}/{}", hard[name].as_str().unwrap_or(""));
            if name.starts_with("limits.") {
                limits.push(entry);
            } else {
                requests.push(entry);
            }
        }
    }
    (requests.join(", "), limits.join(", "))
}

/// `a=b,c=d` in key order, `<none>` when empty (upstream's labels.FormatLabels).
fn labels(o: &Value, path: &str) -> Value {
    let text = o
        .pointer(path)
        .and_then(Value::as_object)
        .map(|m| {
            let mut pairs: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            pairs.sort();
            pairs.join(",")
        })
        .unwrap_or_default();
    or_none(text)
}

pub(super) fn cells(
    info: &ResourceInfo,
    o: &Value,
    name: &Value,
    age: &Value,
) -> Option<Vec<Value>> {
    let (name, a) = (name.clone(), age.clone());
    Some(match (info.group, info.resource) {
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") | ("", "limitranges") => {
            vec![name, json!(s(o, "/metadata/creationTimestamp"))]
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => vec![
            name,
            json!(format!(
                "{}/{}",
                s(o, "/roleRef/kind"),
                s(o, "/roleRef/name")
            )),
            a,
            json!(subjects(o, "User")),
            json!(subjects(o, "Group")),
            json!(subjects(o, "ServiceAccount")),
        ],
        ("policy", "poddisruptionbudgets") => vec![
            name,
            json!(int_or_string(o, "/spec/minAvailable")),
            json!(int_or_string(o, "/spec/maxUnavailable")),
            json!(o
                .pointer("/status/disruptionsAllowed")
                .and_then(Value::as_i64)
                .unwrap_or(0)),
            a,
        ],
        ("", "persistentvolumes") => {
            let claim = match o.pointer("/spec/claimRef") {
                Some(r) if r.is_object() => format!("{}/{}", s(r, "/namespace"), s(r, "/name")),
                _ => String::new(),
            };
            let attributes = s(o, "/spec/volumeAttributesClassName");
            let mode = s(o, "/spec/volumeMode");
            vec![
                name,
                json!(s(o, "/spec/capacity/storage")),
                json!(access_modes(o)),
                json!(s(o, "/spec/persistentVolumeReclaimPolicy")),
                json!(s(o, "/status/phase")),
                json!(claim),
                json!(s(o, "/spec/storageClassName")),
                json!(if attributes.is_empty() {
                    "<unset>"
                } else {
                    attributes
                }),
                json!(s(o, "/status/reason")),
                a,
                json!(if mode.is_empty() { "Filesystem" } else { mode }),
            ]
        }
        ("storage.k8s.io", "storageclasses") => {
            let default = s(
                o,
                "/metadata/annotations/storageclass.kubernetes.io~1is-default-class",
            ) == "true";
            let or = |path: &str, fallback: &'static str| -> Value {
                let v = s(o, path);
                json!(if v.is_empty() { fallback } else { v })
            };
            vec![
                json!(if default {
                    format!("{} (default)", name.as_str().unwrap_or(""))
                } else {
                    name.as_str().unwrap_or("").to_string()
                }),
                json!(s(o, "/provisioner")),
                or("/reclaimPolicy", "Delete"),
                or("/volumeBindingMode", "Immediate"),
                json!(o
                    .get("allowVolumeExpansion")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    .to_string()),
                a,
            ]
        }
        ("networking.k8s.io", "networkpolicies") => vec![
            name,
            or_none(super::scale::selector_string(
                o.pointer("/spec/podSelector"),
            )),
            a,
        ],
        ("networking.k8s.io", "ingressclasses") => {
            let parameters = match o.pointer("/spec/parameters") {
                Some(p) if p.is_object() => {
                    let group = s(p, "/apiGroup");
                    let kind = if group.is_empty() {
                        s(p, "/kind").to_string()
                    } else {
                        format!("{}.{group}", s(p, "/kind"))
                    };
                    format!("{kind}/{}", s(p, "/name"))
                }
                _ => "<none>".into(),
            };
            vec![name, json!(s(o, "/spec/controller")), json!(parameters), a]
        }
        ("", "resourcequotas") => {
            let (requests, limits) = quota_lists(o);
            vec![name, a, json!(requests), json!(limits)]
        }
        ("node.k8s.io", "runtimeclasses") => vec![name, json!(s(o, "/handler")), a],
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => {
            let distinguisher = s(o, "/spec/distinguisherMethod/type");
            let missing = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| s(c, "/type") == "Dangling"))
                .map_or("?", |c| s(c, "/status"));
            vec![
                name,
                json!(s(o, "/spec/priorityLevelConfiguration/name")),
                json!(o
                    .pointer("/spec/matchingPrecedence")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)),
                or_none(distinguisher.to_string()),
                a,
                json!(missing),
            ]
        }
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => {
            let int = |path: &str| -> Value {
                o.pointer(path)
                    .and_then(Value::as_i64)
                    .map_or(json!("<none>"), |n| json!(n))
            };
            let q = "/spec/limited/limitResponse/queuing";
            vec![
                name,
                json!(s(o, "/spec/type")),
                int("/spec/limited/nominalConcurrencyShares"),
                int(&format!("{q}/queues")),
                int(&format!("{q}/handSize")),
                int(&format!("{q}/queueLengthLimit")),
                a,
            ]
        }
        ("", "podtemplates") => {
            let containers = o
                .pointer("/template/spec/containers")
                .and_then(Value::as_array);
            let field = |f: &str| -> String {
                containers
                    .into_iter()
                    .flatten()
                    .map(|ct| s(ct, &format!("/{f}")).to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            vec![
                name,
                json!(field("name")),
                json!(field("image")),
                labels(o, "/template/metadata/labels"),
            ]
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(group: &str, version: &str, resource: &str, o: Value) -> Vec<Value> {
        let info = ferrokube_api::resources::lookup(group, version, resource).unwrap();
        let cols = columns(info).unwrap();
        let cells = cells(info, &o, &json!(s(&o, "/metadata/name")), &json!("1m")).unwrap();
        assert_eq!(cols.len(), cells.len(), "{resource}");
        cells
    }

    #[test]
    fn rows_read_as_upstream_prints_them() {
        let rb = row(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            json!({"metadata": {"name": "rb"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
                   "subjects": [{"kind": "User", "name": "jane"}, {"kind": "Group", "name": "devs"},
                                {"kind": "ServiceAccount", "namespace": "ns", "name": "bot"},
                                {"kind": "User", "name": "joe"}]}),
        );
        assert_eq!(
            rb,
            vec![
                json!("rb"),
                json!("ClusterRole/view"),
                json!("1m"),
                json!("jane, joe"),
                json!("devs"),
                json!("ns/bot")
            ]
        );
        let pdb = row(
            "policy",
            "v1",
            "poddisruptionbudgets",
            json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}}),
        );
        assert_eq!(pdb[1..4], [json!("50%"), json!("N/A"), json!(1)]);
        let pv = row(
            "",
            "v1",
            "persistentvolumes",
            json!({"metadata": {"name": "pv"}, "spec": {"capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany", "ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
                "claimRef": {"namespace": "ns", "name": "c"}, "storageClassName": "fast"},
                "status": {"phase": "Bound"}}),
        );
        assert_eq!(pv[2], json!("RWO,RWX"));
        assert_eq!(pv[5], json!("ns/c"));
        assert_eq!(pv[7], json!("<unset>"));
        assert_eq!(pv[10], json!("Filesystem"));
        let sc = row(
            "storage.k8s.io",
            "v1",
            "storageclasses",
            json!({"metadata": {"name": "std", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                   "provisioner": "x.io/p"}),
        );
        assert_eq!(
            sc,
            vec![
                json!("std (default)"),
                json!("x.io/p"),
                json!("Delete"),
                json!("Immediate"),
                json!("false"),
                json!("1m")
            ]
        );
        let quota = row(
            "",
            "v1",
            "resourcequotas",
            json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "10", "limits.cpu": "2", "requests.cpu": "1"}},
                   "status": {"hard": {"pods": "10", "limits.cpu": "2", "requests.cpu": "1"}, "used": {"pods": "3"}}}),
        );
        assert_eq!(quota[2], json!("pods: 3/10, requests.cpu: 0/1"));
        assert_eq!(quota[3], json!("limits.cpu: 0/2"));
        let np = row(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            json!({"metadata": {"name": "np"}, "spec": {"podSelector": {}}}),
        );
        assert_eq!(np[1], json!("<none>"));
        let pt = row(
            "",
            "v1",
            "podtemplates",
            json!({"metadata": {"name": "t"}, "template": {"metadata": {"labels": {"b": "2", "a": "1"}},
                   "spec": {"containers": [{"name": "c", "image": "i"}, {"name": "d", "image": "j"}]}}}),
        );
        assert_eq!(
            pt,
            vec![json!("t"), json!("c,d"), json!("i,j"), json!("a=1,b=2")]
        );
    }
}
