//! `as=Table` responses (meta.k8s.io Table): upstream's printer columns for the common
//! kinds (`pkg/printers/internalversion`), Name and Age for the rest. `priority: 1`
//! columns show only with `kubectl get -o wide`.

use ferrokube_api::resources::ResourceInfo;
use ferrokube_api::time::age;
use serde_json::{json, Value};

pub(super) struct Col {
    name: &'static str,
    typ: &'static str,
    wide: bool,
}

pub(super) const fn c(name: &'static str, typ: &'static str) -> Col {
    Col {
        name,
        typ,
        wide: false,
    }
}
pub(super) const fn w(name: &'static str, typ: &'static str) -> Col {
    Col {
        name,
        typ,
        wide: true,
    }
}

fn columns(info: &ResourceInfo) -> Vec<Col> {
    match (info.group, info.resource) {
        ("", "configmaps") => vec![
            c("Name", "string"),
            c("Data", "integer"),
            c("Age", "string"),
        ],
        ("", "secrets") => vec![
            c("Name", "string"),
            c("Type", "string"),
            c("Data", "integer"),
            c("Age", "string"),
        ],
        ("", "namespaces") => vec![
            c("Name", "string"),
            c("Status", "string"),
            c("Age", "string"),
        ],
        ("", "serviceaccounts") => vec![
            c("Name", "string"),
            c("Secrets", "string"),
            c("Age", "string"),
        ],
        ("", "endpoints") => vec![
            c("Name", "string"),
            c("Endpoints", "string"),
            c("Age", "string"),
        ],
        ("discovery.k8s.io", "endpointslices") => vec![
            c("Name", "string"),
            c("AddressType", "string"),
            c("Ports", "string"),
            c("Endpoints", "string"),
            c("Age", "string"),
        ],
        ("", "pods") => vec![
            c("Name", "string"),
            c("Ready", "string"),
            c("Status", "string"),
            c("Restarts", "string"),
            c("Age", "string"),
            w("IP", "string"),
            w("Node", "string"),
            w("Nominated Node", "string"),
            w("Readiness Gates", "string"),
        ],
        ("apps", "deployments") => vec![
            c("Name", "string"),
            c("Ready", "string"),
            c("Up-to-date", "string"),
            c("Available", "string"),
            c("Age", "string"),
            w("Containers", "string"),
            w("Images", "string"),
            w("Selector", "string"),
        ],
        ("", "services") => vec![
            c("Name", "string"),
            c("Type", "string"),
            c("Cluster-IP", "string"),
            c("External-IP", "string"),
            c("Port(s)", "string"),
            c("Age", "string"),
            w("Selector", "string"),
        ],
        ("", "nodes") => vec![
            c("Name", "string"),
            c("Status", "string"),
            c("Roles", "string"),
            c("Age", "string"),
            c("Version", "string"),
            w("Internal-IP", "string"),
            w("External-IP", "string"),
            w("OS-Image", "string"),
            w("Kernel-Version", "string"),
            w("Container-Runtime", "string"),
        ],
        ("apps", "replicasets") | ("", "replicationcontrollers") => vec![
            c("Name", "string"),
            c("Desired", "integer"),
            c("Current", "integer"),
            c("Ready", "integer"),
            c("Age", "string"),
            w("Containers", "string"),
            w("Images", "string"),
            w("Selector", "string"),
        ],
        ("apps", "statefulsets") => vec![
            c("Name", "string"),
            c("Ready", "string"),
            c("Age", "string"),
            w("Containers", "string"),
            w("Images", "string"),
        ],
        ("apps", "daemonsets") => vec![
            c("Name", "string"),
            c("Desired", "integer"),
            c("Current", "integer"),
            c("Ready", "integer"),
            c("Up-to-date", "integer"),
            c("Available", "integer"),
            c("Node Selector", "string"),
            c("Age", "string"),
            w("Containers", "string"),
            w("Images", "string"),
            w("Selector", "string"),
        ],
        ("batch", "jobs") => vec![
            c("Name", "string"),
            c("Status", "string"),
            c("Completions", "string"),
            c("Duration", "string"),
            c("Age", "string"),
            w("Containers", "string"),
            w("Images", "string"),
            w("Selector", "string"),
        ],
        ("batch", "cronjobs") => vec![
            c("Name", "string"),
            c("Schedule", "string"),
            c("Timezone", "string"),
            c("Suspend", "boolean"),
            c("Active", "integer"),
            c("Last Schedule", "string"),
            c("Age", "string"),
            w("Containers", "string"),
            w("Images", "string"),
            w("Selector", "string"),
        ],
        ("", "events") => vec![
            c("Last Seen", "string"),
            c("Type", "string"),
            c("Reason", "string"),
            c("Object", "string"),
            w("Subobject", "string"),
            w("Source", "string"),
            c("Message", "string"),
            w("First Seen", "string"),
            w("Count", "string"),
            w("Name", "string"),
        ],
        ("", "persistentvolumeclaims") => vec![
            c("Name", "string"),
            c("Status", "string"),
            c("Volume", "string"),
            c("Capacity", "string"),
            c("Access Modes", "string"),
            c("StorageClass", "string"),
            c("VolumeAttributesClass", "string"),
            c("Age", "string"),
            w("VolumeMode", "string"),
        ],
        ("coordination.k8s.io", "leases") => vec![
            c("Name", "string"),
            c("Holder", "string"),
            c("Age", "string"),
        ],
        ("networking.k8s.io", "ingresses") => vec![
            c("Name", "string"),
            c("Class", "string"),
            c("Hosts", "string"),
            c("Address", "string"),
            c("Ports", "string"),
            c("Age", "string"),
        ],
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            vec![c("Name", "string"), c("Created At", "date")]
        }
        ("scheduling.k8s.io", "priorityclasses") => vec![
            c("Name", "string"),
            c("Value", "integer"),
            c("Global-Default", "boolean"),
            c("Age", "string"),
            c("PreemptionPolicy", "string"),
        ],
        ("certificates.k8s.io", "certificatesigningrequests") => vec![
            c("Name", "string"),
            c("Age", "string"),
            c("SignerName", "string"),
            c("Requestor", "string"),
            c("RequestedDuration", "string"),
            c("Condition", "string"),
        ],
        ("autoscaling", "horizontalpodautoscalers") => vec![
            c("Name", "string"),
            c("Reference", "string"),
            c("Targets", "string"),
            c("MinPods", "string"),
            c("MaxPods", "integer"),
            c("Replicas", "integer"),
            c("Age", "string"),
        ],
        ("apiregistration.k8s.io", "apiservices") => vec![
            c("Name", "string"),
            c("Service", "string"),
            c("Available", "string"),
            c("Age", "string"),
        ],
        (
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations" | "mutatingwebhookconfigurations",
        ) => vec![
            c("Name", "string"),
            c("Webhooks", "integer"),
            c("Age", "string"),
        ],
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => vec![
            c("Name", "string"),
            c("Validations", "integer"),
            c("ParamKind", "string"),
            c("Age", "string"),
        ],
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => vec![
            c("Name", "string"),
            c("PolicyName", "string"),
            c("ParamRef", "string"),
            c("Age", "string"),
        ],
        _ => super::table_more::columns(info)
            .unwrap_or_else(|| vec![c("Name", "string"), c("Age", "string")]),
    }
}

/// An APIService's `Available` column: `True`, `False (<reason>)`, or `Unknown`.
fn api_service_available(o: &Value) -> String {
    let conditions = o.pointer("/status/conditions").and_then(Value::as_array);
    let available = conditions.and_then(|cs| cs.iter().find(|c| c["type"] == "Available"));
    match available {
        None => "Unknown".into(),
        Some(c) if c["status"] == "True" => "True".into(),
        Some(c) => format!("{} ({})", s(c, "/status"), s(c, "/reason")),
    }
}

/// An HPA's metrics as upstream prints them (`cpu: 40%/60%`), from a v2 object or a v1
/// one (`targetCPUUtilizationPercentage`).
fn hpa_targets(o: &Value) -> String {
    let mut specs: Vec<Value> = o
        .pointer("/spec/metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(cpu) = o.pointer("/spec/targetCPUUtilizationPercentage") {
        specs.push(json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": cpu}}}));
    }
    if specs.is_empty() {
        return "<none>".into();
    }
    let current: Vec<Value> = o
        .pointer("/status/currentMetrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let v1_current = o.pointer("/status/currentCPUUtilizationPercentage");
    let mut parts = Vec::new();
    for m in specs.iter().take(2) {
        let typ = m["type"].as_str().unwrap_or("");
        let key = typ
            .chars()
            .next()
            .map(|c| c.to_ascii_lowercase().to_string() + &typ[1..])
            .unwrap_or_default();
        let src = &m[key.as_str()];
        let name = src["name"].as_str().unwrap_or("");
        let target = &src["target"];
        let cur = current
            .iter()
            .find(|c| c["type"] == typ && c[key.as_str()]["name"] == name)
            .map(|c| c[key.as_str()]["current"].clone());
        let (want, have) = match target["type"].as_str() {
            Some("Utilization") => (
                format!("{}%", target["averageUtilization"]),
                cur.as_ref()
                    .and_then(|c| c.get("averageUtilization"))
                    .or(if name == "cpu" { v1_current } else { None })
                    .map(|u| format!("{u}%")),
            ),
            Some("AverageValue") => (
                target["averageValue"].as_str().unwrap_or("").to_string(),
                cur.as_ref()
                    .and_then(|c| c["averageValue"].as_str())
                    .map(str::to_string),
            ),
            _ => (
                target["value"].as_str().unwrap_or("").to_string(),
                cur.as_ref()
                    .and_then(|c| c["value"].as_str())
                    .map(str::to_string),
            ),
        };
        let have = have.unwrap_or_else(|| "<unknown>".into());
        if name.is_empty() {
            parts.push(format!("{have}/{want}"));
        } else {
            parts.push(format!("{name}: {have}/{want}"));
        }
    }
    let mut out = parts.join(", ");
    if specs.len() > 2 {
        out.push_str(&format!(" + {} more...", specs.len() - 2));
    }
    out
}

pub(super) fn s<'a>(obj: &'a Value, path: &str) -> &'a str {
    obj.pointer(path).and_then(Value::as_str).unwrap_or("")
}
fn n(obj: &Value, path: &str) -> i64 {
    obj.pointer(path).and_then(Value::as_i64).unwrap_or(0)
}
fn count(obj: &Value, path: &str) -> usize {
    match obj.pointer(path) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}
pub(super) fn or_none(v: String) -> Value {
    Value::String(if v.is_empty() { "<none>".into() } else { v })
}
fn join_map(obj: &Value, path: &str) -> String {
    obj.pointer(path)
        .and_then(Value::as_object)
        .map_or(String::new(), |m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
}
fn containers_field(obj: &Value, path: &str, field: &str) -> String {
    obj.pointer(path)
        .and_then(Value::as_array)
        .map_or(String::new(), |a| {
            a.iter()
                .map(|c| s(c, &format!("/{field}")).to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
}

/// The wide Containers and Images cells of a workload's pod template.
fn template_cells(o: &Value, template: &str) -> Vec<Value> {
    let containers = format!("{template}/spec/containers");
    vec![
        json!(containers_field(o, &containers, "name")),
        json!(containers_field(o, &containers, "image")),
    ]
}

/// A workload's Selector cell: a label selector (matchLabels and matchExpressions) or an
/// RC's plain map, as upstream prints it.
fn selector_cell(o: &Value, selector: &str) -> Value {
    or_none(super::scale::selector_string(o.pointer(selector)))
}

/// Up to three entries, then " + N more..." (upstream's printers for endpoints).
fn first_three(list: &[String], empty: &str) -> String {
    match list.len() {
        0 => empty.to_string(),
        n if n > 3 => format!("{} + {} more...", list[..3].join(","), n - 3),
        _ => list.join(","),
    }
}

/// Upstream's `formatEndpoints`: `ip:port` of the ready addresses, per subset and port.
fn format_endpoints(o: &Value) -> String {
    let mut list = Vec::new();
    for ss in o
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let addrs: Vec<&str> = ss["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["ip"].as_str())
            .collect();
        match ss["ports"].as_array().filter(|p| !p.is_empty()) {
            None => list.extend(addrs.iter().map(|ip| ip.to_string())),
            Some(ports) => {
                for p in ports {
                    let port = p["port"].as_i64().unwrap_or(0);
                    for ip in &addrs {
                        list.push(ferrokube_component_base::net::join_host_port(ip, port));
                    }
                }
            }
        }
    }
    first_three(&list, "<none>")
}

fn cells(info: &ResourceInfo, o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    let created = s(o, "/metadata/creationTimestamp");
    let a = json!(age(Some(created).filter(|c| !c.is_empty())));
    match (info.group, info.resource) {
        ("", "configmaps") => vec![name, json!(count(o, "/data") + count(o, "/binaryData")), a],
        ("", "secrets") => vec![name, json!(s(o, "/type")), json!(count(o, "/data")), a],
        ("", "namespaces") => vec![name, json!(s(o, "/status/phase")), a],
        ("", "serviceaccounts") => vec![name, json!(count(o, "/secrets").to_string()), a],
        (
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations" | "mutatingwebhookconfigurations",
        ) => vec![name, json!(count(o, "/webhooks")), a],
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => {
            let param_kind = match o.pointer("/spec/paramKind").filter(|v| v.is_object()) {
                Some(pk) => format!("{}/{}", s(pk, "/apiVersion"), s(pk, "/kind")),
                None => "<unset>".into(),
            };
            vec![
                name,
                json!(count(o, "/spec/validations")),
                json!(param_kind),
                a,
            ]
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => {
            let param_ref = match o.pointer("/spec/paramRef").filter(|v| v.is_object()) {
                Some(pr) if !s(pr, "/name").is_empty() => {
                    let ns = match s(pr, "/namespace") {
                        "" => "*",
                        ns => ns,
                    };
                    format!("{ns}/{}", s(pr, "/name"))
                }
                Some(pr) => pr
                    .get("selector")
                    .map(|sel| sel.to_string())
                    .unwrap_or_default(),
                None => "<unset>".into(),
            };
            vec![name, json!(s(o, "/spec/policyName")), json!(param_ref), a]
        }
        ("apiregistration.k8s.io", "apiservices") => {
            let service = match o.pointer("/spec/service").filter(|v| !v.is_null()) {
                Some(svc) => format!("{}/{}", s(svc, "/namespace"), s(svc, "/name")),
                None => "Local".into(),
            };
            vec![name, json!(service), json!(api_service_available(o)), a]
        }
        ("scheduling.k8s.io", "priorityclasses") => vec![
            name,
            json!(n(o, "/value")),
            json!(o.get("globalDefault") == Some(&json!(true))),
            a,
            json!(o
                .get("preemptionPolicy")
                .and_then(Value::as_str)
                .unwrap_or("PreemptLowerPriority")),
        ],
        ("certificates.k8s.io", "certificatesigningrequests") => {
            let conditions: Vec<&str> = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .map(|cs| cs.iter().filter_map(|c| c["type"].as_str()).collect())
                .unwrap_or_default();
            let mut condition = conditions.join(",");
            if o.pointer("/status/certificate")
                .is_some_and(|c| c.as_str().is_some_and(|c| !c.is_empty()))
            {
                condition.push_str(",Issued");
            }
            if condition.is_empty() {
                condition = "Pending".into();
            }
            let duration = o
                .pointer("/spec/expirationSeconds")
                .and_then(Value::as_i64)
                .map_or("<none>".to_string(), |s| {
                    ferrokube_api::time::human_duration(std::time::Duration::from_secs(
                        s.max(0) as u64
                    ))
                });
            vec![
                name,
                a,
                json!(s(o, "/spec/signerName")),
                json!(s(o, "/spec/username")),
                json!(duration),
                json!(condition.trim_start_matches(',')),
            ]
        }
        ("autoscaling", "horizontalpodautoscalers") => vec![
            name,
            json!(format!(
                "{}/{}",
                s(o, "/spec/scaleTargetRef/kind"),
                s(o, "/spec/scaleTargetRef/name")
            )),
            json!(hpa_targets(o)),
            json!(o
                .pointer("/spec/minReplicas")
                .and_then(Value::as_i64)
                .map_or("<unset>".to_string(), |m| m.to_string())),
            json!(n(o, "/spec/maxReplicas")),
            json!(n(o, "/status/currentReplicas")),
            a,
        ],
        ("", "endpoints") => vec![name, json!(format_endpoints(o)), a],
        ("discovery.k8s.io", "endpointslices") => {
            let ports: Vec<String> = o
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p["port"].as_i64().map(|n| n.to_string()))
                .collect();
            let addresses: Vec<String> = o
                .get("endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect();
            vec![
                name,
                json!(s(o, "/addressType")),
                json!(first_three(&ports, "<unset>")),
                json!(first_three(&addresses, "<unset>")),
                a,
            ]
        }
        ("", "pods") => {
            let total = count(o, "/spec/containers");
            let statuses = o
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array);
            let ready = statuses.map_or(0, |st| {
                st.iter().filter(|c| c["ready"] == json!(true)).count()
            });
            let restarts: i64 = statuses.map_or(0, |st| {
                st.iter()
                    .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                    .sum()
            });
            let mut status = s(o, "/status/reason").to_string();
            if status.is_empty() {
                status = s(o, "/status/phase").to_string();
            }
            if !s(o, "/metadata/deletionTimestamp").is_empty() {
                status = "Terminating".into();
            }
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                a,
                or_none(s(o, "/status/podIP").into()),
                or_none(s(o, "/spec/nodeName").into()),
                or_none(s(o, "/status/nominatedNodeName").into()),
                json!("<none>"),
            ]
        }
        ("apps", "deployments") => [
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    n(o, "/status/readyReplicas"),
                    o.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                )),
                json!(n(o, "/status/updatedReplicas")),
                json!(n(o, "/status/availableReplicas")),
                a,
            ],
            template_cells(o, "/spec/template"),
            vec![selector_cell(o, "/spec/selector")],
        ]
        .concat(),
        ("", "services") => {
            let ports =
                o.pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .map_or(String::new(), |ps| {
                        ps.iter()
                            .map(|p| {
                                let proto = p["protocol"].as_str().unwrap_or("TCP");
                                match p["nodePort"].as_i64() {
                                    Some(np) => format!("{}:{np}/{proto}", p["port"]),
                                    None => format!("{}/{proto}", p["port"]),
                                }
                            })
                            .collect::<Vec<_>>()
                            .join(",")
                    });
            let typ = match s(o, "/spec/type") {
                "" => "ClusterIP",
                t => t,
            };
            vec![
                name,
                json!(typ),
                or_none(s(o, "/spec/clusterIP").into()),
                json!("<none>"),
                or_none(ports),
                a,
                or_none(join_map(o, "/spec/selector")),
            ]
        }
        ("", "nodes") => {
            let ready = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
            let mut status = match ready.and_then(|c| c["status"].as_str()) {
                Some("True") => "Ready",
                _ => "NotReady",
            }
            .to_string();
            if o.pointer("/spec/unschedulable") == Some(&json!(true)) {
                status.push_str(",SchedulingDisabled");
            }
            let roles: Vec<String> = o
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map_or(Vec::new(), |l| {
                    l.keys()
                        .filter_map(|k| {
                            k.strip_prefix("node-role.kubernetes.io/")
                                .map(str::to_string)
                        })
                        .collect()
                });
            let addr = |t: &str| {
                o.pointer("/status/addresses")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find(|x| x["type"] == t))
                    .and_then(|x| x["address"].as_str())
                    .unwrap_or("")
                    .to_string()
            };
            vec![
                name,
                json!(status),
                or_none(roles.join(",")),
                a,
                json!(s(o, "/status/nodeInfo/kubeletVersion")),
                or_none(addr("InternalIP")),
                or_none(addr("ExternalIP")),
                or_none(s(o, "/status/nodeInfo/osImage").into()),
                or_none(s(o, "/status/nodeInfo/kernelVersion").into()),
                or_none(s(o, "/status/nodeInfo/containerRuntimeVersion").into()),
            ]
        }
        ("apps", "replicasets") | ("", "replicationcontrollers") => [
            vec![
                name,
                json!(o
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)),
                json!(n(o, "/status/replicas")),
                json!(n(o, "/status/readyReplicas")),
                a,
            ],
            template_cells(o, "/spec/template"),
            vec![selector_cell(o, "/spec/selector")],
        ]
        .concat(),
        ("apps", "statefulsets") => [
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    n(o, "/status/readyReplicas"),
                    o.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                )),
                a,
            ],
            template_cells(o, "/spec/template"),
        ]
        .concat(),
        ("apps", "daemonsets") => [
            vec![
                name,
                json!(n(o, "/status/desiredNumberScheduled")),
                json!(n(o, "/status/currentNumberScheduled")),
                json!(n(o, "/status/numberReady")),
                json!(n(o, "/status/updatedNumberScheduled")),
                json!(n(o, "/status/numberAvailable")),
                or_none(join_map(o, "/spec/template/spec/nodeSelector")),
                a,
            ],
            template_cells(o, "/spec/template"),
            vec![selector_cell(o, "/spec/selector")],
        ]
        .concat(),
        ("batch", "jobs") => {
            let conds = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let has = |t: &str| {
                conds
                    .iter()
                    .any(|c| c["type"] == t && c["status"] == "True")
            };
            let status = if has("Complete") {
                "Complete"
            } else if has("Failed") {
                "Failed"
            } else if has("Suspended") {
                "Suspended"
            } else {
                "Running"
            };
            let completions = o
                .pointer("/spec/completions")
                .and_then(Value::as_i64)
                .map_or_else(
                    || {
                        format!(
                            "{}/1 of {}",
                            n(o, "/status/succeeded"),
                            n(o, "/spec/parallelism")
                        )
                    },
                    |c| format!("{}/{c}", n(o, "/status/succeeded")),
                );
            [
                vec![name, json!(status), json!(completions), json!(""), a],
                template_cells(o, "/spec/template"),
                vec![selector_cell(o, "/spec/selector")],
            ]
            .concat()
        }
        ("batch", "cronjobs") => [
            vec![
                name,
                json!(s(o, "/spec/schedule")),
                or_none(s(o, "/spec/timeZone").into()),
                json!(o.pointer("/spec/suspend") == Some(&json!(true))),
                json!(count(o, "/status/active")),
                json!(match s(o, "/status/lastScheduleTime") {
                    "" => "<none>".to_string(),
                    t => age(Some(t)),
                }),
                a,
            ],
            template_cells(o, "/spec/jobTemplate/spec/template"),
            vec![selector_cell(o, "/spec/jobTemplate/spec/selector")],
        ]
        .concat(),
        ("", "events") => {
            let last = [s(o, "/lastTimestamp"), s(o, "/eventTime"), created]
                .into_iter()
                .find(|t| !t.is_empty());
            let first = [s(o, "/firstTimestamp"), s(o, "/eventTime"), created]
                .into_iter()
                .find(|t| !t.is_empty());
            let kind = s(o, "/involvedObject/kind").to_ascii_lowercase();
            let source = match (s(o, "/source/component"), s(o, "/reportingComponent")) {
                ("", r) => r.to_string(),
                (c, _) => c.to_string(),
            };
            vec![
                json!(age(last)),
                json!(s(o, "/type")),
                json!(s(o, "/reason")),
                json!(format!("{kind}/{}", s(o, "/involvedObject/name"))),
                json!(s(o, "/involvedObject/fieldPath")),
                json!(source),
                json!(s(o, "/message")),
                json!(age(first)),
                json!(o
                    .pointer("/count")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
                    .to_string()),
                name,
            ]
        }
        ("", "persistentvolumeclaims") => vec![
            name,
            json!(s(o, "/status/phase")),
            json!(s(o, "/spec/volumeName")),
            json!(s(o, "/status/capacity/storage")),
            json!(o
                .pointer("/status/accessModes")
                .and_then(Value::as_array)
                .map_or(String::new(), |m| m
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|m| match m {
                        "ReadWriteOnce" => "RWO",
                        "ReadOnlyMany" => "ROX",
                        "ReadWriteMany" => "RWX",
                        "ReadWriteOncePod" => "RWOP",
                        other => other,
                    })
                    .collect::<Vec<_>>()
                    .join(","))),
            or_none(s(o, "/spec/storageClassName").into()),
            or_none(s(o, "/spec/volumeAttributesClassName").into()),
            a,
            json!(s(o, "/spec/volumeMode")),
        ],
        ("coordination.k8s.io", "leases") => vec![name, json!(s(o, "/spec/holderIdentity")), a],
        ("networking.k8s.io", "ingresses") => {
            let hosts: Vec<&str> = o
                .pointer("/spec/rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|r| r["host"].as_str())
                .collect();
            let tls = o
                .pointer("/spec/tls")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty());
            vec![
                name,
                or_none(s(o, "/spec/ingressClassName").into()),
                json!(if hosts.is_empty() {
                    "*".to_string()
                } else {
                    hosts.join(",")
                }),
                json!(""),
                json!(if tls { "80, 443" } else { "80" }),
                a,
            ]
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => vec![name, json!(created)],
        _ => match super::table_more::cells(info, o, &name, &a) {
            Some(cells) => cells,
            None => vec![name, a],
        },
    }
}

/// A Table of `objects`. `include_object`: embed each row's PartialObjectMetadata.
pub fn to_table(
    target: &crate::registry::Target<'_>,
    objects: &[Value],
    list_meta: Option<Value>,
    version: &str,
    include_object: bool,
) -> Value {
    if let Some(cr) = target.custom {
        return crate::crd::columns::to_table(
            &cr.columns,
            objects,
            list_meta,
            version,
            include_object,
        );
    }
    let info = target.info;
    let cols = columns(info);
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.typ,
                "format": if c.name == "Name" { "name" } else { "" },
                "description": "",
                "priority": if c.wide { 1 } else { 0 },
            })
        })
        .collect();
    // FlowSchemas print in matching order (upstream's FlowSchemaSequence).
    let mut sorted;
    let objects = if (info.group, info.resource) == ("flowcontrol.apiserver.k8s.io", "flowschemas")
    {
        sorted = objects.to_vec();
        let precedence = |o: &Value| {
            o.pointer("/spec/matchingPrecedence")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        sorted.sort_by(|a, b| {
            let name = |o: &Value| {
                o.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            precedence(a)
                .cmp(&precedence(b))
                .then_with(|| name(a).cmp(&name(b)))
        });
        &sorted[..]
    } else {
        objects
    };
    table(
        defs,
        objects,
        |o| cells(info, o),
        list_meta,
        version,
        include_object,
    )
}

/// A meta.k8s.io Table: column definitions, one row of `cells` per object (with its
/// PartialObjectMetadata when asked for).
pub fn table(
    defs: Vec<Value>,
    objects: &[Value],
    cells: impl Fn(&Value) -> Vec<Value>,
    list_meta: Option<Value>,
    version: &str,
    include_object: bool,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(o)});
            if include_object {
                row["object"] = super::response::partial_metadata(o, version);
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": list_meta.unwrap_or_else(|| json!({})),
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_wide_cells() {
        let rs = json!({"spec": {"selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]},
            "template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}}});
        assert_eq!(
            template_cells(&rs, "/spec/template"),
            [json!("a,b"), json!("x,y")]
        );
        assert_eq!(
            selector_cell(&rs, "/spec/selector"),
            json!("app=web,tier notin (db)")
        );
        let rc = json!({"spec": {"selector": {"app": "old"}}});
        assert_eq!(selector_cell(&rc, "/spec/selector"), json!("app=old"));
        assert_eq!(selector_cell(&json!({}), "/spec/selector"), json!("<none>"));
    }
}
