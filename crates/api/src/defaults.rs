//! Upstream's defaulting (`pkg/apis/*/v1/defaults.go`), applied to every object written,
//! as upstream applies it when decoding a request: pod specs (containers, probes,
//! volumes), the workload kinds, services and the storage kinds.

use serde_json::{json, Map, Value};

fn ensure_obj<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let e = m.entry(key).or_insert_with(|| json!({}));
    if e.is_null() {
        *e = json!({});
    }
    e.as_object_mut()
}

fn default(m: &mut Map<String, Value>, key: &str, v: Value) {
    match m.get(key) {
        None | Some(Value::Null) => {
            m.insert(key.into(), v);
        }
        Some(_) => {}
    }
}

fn each_obj(m: &mut Map<String, Value>, key: &str, mut f: impl FnMut(&mut Map<String, Value>)) {
    if let Some(Value::Array(items)) = m.get_mut(key) {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            f(item);
        }
    }
}

/// `IfNotPresent` unless the image has no tag or the `latest` tag (upstream's rule).
fn pull_policy(image: &str) -> &'static str {
    let name = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match name.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn probe(p: &mut Map<String, Value>) {
    default(p, "timeoutSeconds", json!(1));
    default(p, "periodSeconds", json!(10));
    default(p, "successThreshold", json!(1));
    default(p, "failureThreshold", json!(3));
    if let Some(h) = obj_in(p, "httpGet") {
        default(h, "path", json!("/"));
        default(h, "scheme", json!("HTTP"));
    }
    if let Some(g) = obj_in(p, "grpc") {
        default(g, "service", json!(""));
    }
}

fn obj_in<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    m.get_mut(key).and_then(Value::as_object_mut)
}

fn container(c: &mut Map<String, Value>) {
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    if let Some(image) = c.get("image").and_then(Value::as_str).map(str::to_string) {
        default(c, "imagePullPolicy", json!(pull_policy(&image)));
    }
    default(c, "resources", json!({}));
    each_obj(c, "ports", |p| default(p, "protocol", json!("TCP")));
    each_obj(c, "env", |e| {
        if let Some(f) = e
            .get_mut("valueFrom")
            .and_then(Value::as_object_mut)
            .and_then(|v| obj_in(v, "fieldRef"))
        {
            default(f, "apiVersion", json!("v1"));
        }
    });
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = obj_in(c, key) {
            probe(p);
        }
    }
}

/// `SetDefaults_Pod`: each limit without a request becomes the request too.
fn requests_from_limits(c: &mut Map<String, Value>) {
    let Some(r) = obj_in(c, "resources") else {
        return;
    };
    let Some(limits) = r.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    if let Some(requests) = ensure_obj(r, "requests") {
        for (k, v) in limits {
            requests.entry(k).or_insert(v);
        }
    }
}

/// Upstream's `SetDefaults_PodSpec` and the per-container and per-volume defaults.
pub fn pod_spec(spec: &mut Map<String, Value>) {
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        each_obj(spec, key, container);
    }
    each_obj(spec, "volumes", |v| {
        for (key, mode) in [
            ("configMap", 420),
            ("secret", 420),
            ("downwardAPI", 420),
            ("projected", 420),
        ] {
            if let Some(src) = obj_in(v, key) {
                default(src, "defaultMode", json!(mode));
            }
        }
        if let Some(h) = obj_in(v, "hostPath") {
            default(h, "type", json!(""));
        }
    });
}

fn pod_template(spec: &mut Map<String, Value>) {
    if let Some(t) = ensure_obj(spec, "template") {
        if let Some(s) = ensure_obj(t, "spec") {
            pod_spec(s);
        }
    }
}

/// Applies upstream's defaults for the kind stored under (group, resource).
pub fn apply(group: &str, resource: &str, o: &mut Value) {
    let template_labels = o.pointer("/spec/template/metadata/labels").cloned();
    let Some(m) = o.as_object_mut() else { return };
    match (group, resource) {
        ("", "pods") => {
            if let Some(s) = ensure_obj(m, "spec") {
                pod_spec(s);
                // SetDefaults_Pod (not PodSpec): templates do not get it.
                default(s, "enableServiceLinks", json!(true));
                // A limit without a request asks for the limit.
                for key in ["containers", "initContainers"] {
                    each_obj(s, key, requests_from_limits);
                }
            }
        }
        ("", "podtemplates") => {
            if let Some(t) = ensure_obj(m, "template") {
                if let Some(s) = ensure_obj(t, "spec") {
                    pod_spec(s);
                }
            }
        }
        ("", "replicationcontrollers") => {
            if let Some(s) = ensure_obj(m, "spec") {
                default(s, "replicas", json!(1));
                if let Some(l) = &template_labels {
                    default(s, "selector", l.clone());
                }
                pod_template(s);
            }
            if let (Some(l), Some(meta)) = (template_labels, ensure_obj(m, "metadata")) {
                default(meta, "labels", l);
            }
        }
        ("", "services") => {
            let Some(s) = ensure_obj(m, "spec") else {
                return;
            };
            default(s, "type", json!("ClusterIP"));
            let typ = s
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP")
                .to_string();
            if typ != "ExternalName" {
                default(s, "sessionAffinity", json!("None"));
                default(s, "internalTrafficPolicy", json!("Cluster"));
                default(s, "ipFamilyPolicy", json!("SingleStack"));
                default(s, "ipFamilies", json!(["IPv4"]));
            }
            if typ == "NodePort" || typ == "LoadBalancer" {
                default(s, "externalTrafficPolicy", json!("Cluster"));
            }
            if typ == "LoadBalancer" {
                default(s, "allocateLoadBalancerNodePorts", json!(true));
            }
            each_obj(s, "ports", |p| {
                default(p, "protocol", json!("TCP"));
                if let Some(port) = p.get("port").cloned() {
                    default(p, "targetPort", port);
                }
            });
        }
        ("", "endpoints") => {
            each_obj(m, "subsets", |sub| {
                each_obj(sub, "ports", |p| default(p, "protocol", json!("TCP")))
            });
        }
        ("", "persistentvolumes") => {
            if let Some(s) = ensure_obj(m, "spec") {
                default(s, "persistentVolumeReclaimPolicy", json!("Retain"));
                default(s, "volumeMode", json!("Filesystem"));
            }
        }
        ("", "persistentvolumeclaims") => {
            if let Some(s) = ensure_obj(m, "spec") {
                default(s, "volumeMode", json!("Filesystem"));
            }
        }
        ("apps", "deployments") => {
            let Some(s) = ensure_obj(m, "spec") else {
                return;
            };
            default(s, "replicas", json!(1));
            default(s, "revisionHistoryLimit", json!(10));
            default(s, "progressDeadlineSeconds", json!(600));
            if let Some(st) = ensure_obj(s, "strategy") {
                default(st, "type", json!("RollingUpdate"));
                if st.get("type") == Some(&json!("RollingUpdate")) {
                    if let Some(ru) = ensure_obj(st, "rollingUpdate") {
                        default(ru, "maxUnavailable", json!("25%"));
                        default(ru, "maxSurge", json!("25%"));
                    }
                }
            }
            pod_template(s);
        }
        ("apps", "replicasets") => {
            if let Some(s) = ensure_obj(m, "spec") {
                default(s, "replicas", json!(1));
                pod_template(s);
            }
        }
        ("apps", "statefulsets") => {
            let Some(s) = ensure_obj(m, "spec") else {
                return;
            };
            default(s, "replicas", json!(1));
            default(s, "podManagementPolicy", json!("OrderedReady"));
            default(s, "revisionHistoryLimit", json!(10));
            default(
                s,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            if let Some(us) = ensure_obj(s, "updateStrategy") {
                default(us, "type", json!("RollingUpdate"));
                if us.get("type") == Some(&json!("RollingUpdate")) {
                    if let Some(ru) = ensure_obj(us, "rollingUpdate") {
                        default(ru, "partition", json!(0));
                    }
                }
            }
            pod_template(s);
        }
        ("apps", "daemonsets") => {
            let Some(s) = ensure_obj(m, "spec") else {
                return;
            };
            default(s, "revisionHistoryLimit", json!(10));
            if let Some(us) = ensure_obj(s, "updateStrategy") {
                default(us, "type", json!("RollingUpdate"));
                if us.get("type") == Some(&json!("RollingUpdate")) {
                    if let Some(ru) = ensure_obj(us, "rollingUpdate") {
                        default(ru, "maxUnavailable", json!(1));
                        default(ru, "maxSurge", json!(0));
                    }
                }
            }
            pod_template(s);
        }
        ("batch", "jobs") => {
            if let Some(s) = ensure_obj(m, "spec") {
                job_spec(s);
            }
        }
        ("batch", "cronjobs") => {
            let Some(s) = ensure_obj(m, "spec") else {
                return;
            };
            default(s, "concurrencyPolicy", json!("Allow"));
            default(s, "suspend", json!(false));
            default(s, "successfulJobsHistoryLimit", json!(3));
            default(s, "failedJobsHistoryLimit", json!(1));
            if let Some(jt) = ensure_obj(s, "jobTemplate") {
                if let Some(js) = ensure_obj(jt, "spec") {
                    job_spec(js);
                }
            }
        }
        (
            "admissionregistration.k8s.io",
            r @ ("mutatingwebhookconfigurations" | "validatingwebhookconfigurations"),
        ) => {
            let mutating = r.starts_with("mutating");
            each_obj(m, "webhooks", |h| webhook(h, mutating));
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => {
            if let Some(s) = ensure_obj(m, "spec") {
                default(s, "failurePolicy", json!("Fail"));
                if let Some(mc) = obj_in(s, "matchConstraints") {
                    match_resources(mc);
                }
            }
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => {
            if let Some(mr) = obj_in(m, "spec").and_then(|s| obj_in(s, "matchResources")) {
                match_resources(mr);
            }
        }
        // flowcontrol/v1 SetDefaults_FlowSchemaSpec: 0 (or absent) precedence is 1000.
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => {
            if let Some(s) = ensure_obj(m, "spec") {
                default_zero(s, "matchingPrecedence", 1000);
            }
        }
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => {
            if let Some(s) = obj_in(m, "spec") {
                priority_level_spec(s);
            }
        }
        // SetDefaults_ServiceReference of apiregistration/v1.
        ("apiregistration.k8s.io", "apiservices") => {
            if let Some(svc) = obj_in(m, "spec").and_then(|s| obj_in(s, "service")) {
                default(svc, "port", json!(443));
            }
        }
        _ => {}
    }
}

/// Sets `key` to `v` when it is absent, null or 0 (defaulting of plain integer fields).
fn default_zero(m: &mut Map<String, Value>, key: &str, v: i64) {
    if m.get(key)
        .is_none_or(|x| x.is_null() || x.as_i64() == Some(0))
    {
        m.insert(key.into(), json!(v));
    }
}

/// flowcontrol/v1 `SetDefaults_PriorityLevelConfiguration`: limited shares 30 when
/// absent (an explicit 0 stays), lendablePercent 0, queuing 64 queues / hand 8 / 50 long;
/// exempt shares and lendablePercent 0. borrowingLimitPercent stays unset.
fn priority_level_spec(s: &mut Map<String, Value>) {
    if let Some(l) = obj_in(s, "limited") {
        default(l, "nominalConcurrencyShares", json!(30));
        default(l, "lendablePercent", json!(0));
        if let Some(q) = obj_in(l, "limitResponse").and_then(|r| obj_in(r, "queuing")) {
            default_zero(q, "handSize", 8);
            default_zero(q, "queues", 64);
            default_zero(q, "queueLengthLimit", 50);
        }
    }
    if let Some(e) = obj_in(s, "exempt") {
        default(e, "nominalConcurrencyShares", json!(0));
        default(e, "lendablePercent", json!(0));
    }
}

/// `SetDefaults_ValidatingWebhook` / `SetDefaults_MutatingWebhook`, `SetDefaults_Rule`
/// and `SetDefaults_ServiceReference` of admissionregistration/v1.
fn webhook(h: &mut Map<String, Value>, mutating: bool) {
    default(h, "failurePolicy", json!("Fail"));
    default(h, "matchPolicy", json!("Equivalent"));
    default(h, "namespaceSelector", json!({}));
    default(h, "objectSelector", json!({}));
    default(h, "timeoutSeconds", json!(10));
    if mutating {
        default(h, "reinvocationPolicy", json!("Never"));
    }
    each_obj(h, "rules", |r| default(r, "scope", json!("*")));
    if let Some(svc) = obj_in(h, "clientConfig").and_then(|c| obj_in(c, "service")) {
        default(svc, "port", json!(443));
    }
}

/// `SetDefaults_MatchResources` of admissionregistration/v1 (and the rules' scope).
fn match_resources(mr: &mut Map<String, Value>) {
    default(mr, "matchPolicy", json!("Equivalent"));
    default(mr, "namespaceSelector", json!({}));
    default(mr, "objectSelector", json!({}));
    each_obj(mr, "resourceRules", |r| default(r, "scope", json!("*")));
    each_obj(mr, "excludeResourceRules", |r| {
        default(r, "scope", json!("*"))
    });
}

fn job_spec(s: &mut Map<String, Value>) {
    let (completions, parallelism) = (s.get("completions").cloned(), s.get("parallelism").cloned());
    if completions.is_none() && parallelism.is_none() {
        s.insert("completions".into(), json!(1));
        s.insert("parallelism".into(), json!(1));
    }
    default(s, "parallelism", json!(1));
    // Upstream: with backoffLimitPerIndex the global limit defaults to MaxInt32.
    let per_index = s.get("backoffLimitPerIndex").is_some_and(|v| !v.is_null());
    default(
        s,
        "backoffLimit",
        json!(if per_index { i64::from(i32::MAX) } else { 6 }),
    );
    default(s, "completionMode", json!("NonIndexed"));
    default(s, "suspend", json!(false));
    default(s, "podReplacementPolicy", json!("TerminatingOrFailed"));
    pod_template(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_defaults_match_upstream() {
        let mut d = json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": [
            {"name": "web", "image": "httpd", "ports": [{"containerPort": 80}]},
            {"name": "side", "image": "busybox:1.36", "readinessProbe": {"httpGet": {"port": 80}}}
        ]}}}});
        apply("apps", "deployments", &mut d);
        let s = &d["spec"];
        assert_eq!(s["replicas"], 1);
        assert_eq!(
            s["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(
            (
                s["revisionHistoryLimit"].clone(),
                s["progressDeadlineSeconds"].clone()
            ),
            (json!(10), json!(600))
        );
        let pod = &s["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(pod["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(
            pod["containers"][0]["terminationMessagePath"],
            "/dev/termination-log"
        );
        let p = &pod["containers"][1]["readinessProbe"];
        assert_eq!(
            (
                p["periodSeconds"].clone(),
                p["httpGet"]["scheme"].clone(),
                p["httpGet"]["path"].clone()
            ),
            (json!(10), json!("HTTP"), json!("/"))
        );
    }

    #[test]
    fn webhook_configurations_get_v1_defaults() {
        let mut o = json!({"webhooks": [{"name": "a", "clientConfig": {"service": {"namespace": "n", "name": "s"}}, "rules": [{"operations": ["CREATE"]}]}]});
        apply(
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
            &mut o,
        );
        let h = &o["webhooks"][0];
        assert_eq!(h["failurePolicy"], "Fail");
        assert_eq!(h["matchPolicy"], "Equivalent");
        assert_eq!(h["namespaceSelector"], json!({}));
        assert_eq!(h["timeoutSeconds"], 10);
        assert_eq!(h["reinvocationPolicy"], "Never");
        assert_eq!(h["rules"][0]["scope"], "*");
        assert_eq!(h["clientConfig"]["service"]["port"], 443);
        let mut v = json!({"webhooks": [{"name": "a", "failurePolicy": "Ignore"}]});
        apply(
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            &mut v,
        );
        assert_eq!(v["webhooks"][0]["failurePolicy"], "Ignore");
        assert!(v["webhooks"][0].get("reinvocationPolicy").is_none());
    }

    #[test]
    fn explicit_values_are_kept() {
        let mut d = json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"}, "template": {"spec": {"restartPolicy": "Never", "containers": []}}}});
        apply("apps", "deployments", &mut d);
        assert_eq!(d["spec"]["replicas"], 0);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Never");
    }

    #[test]
    fn service_job_and_images() {
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply("", "services", &mut s);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(
            s["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        let mut j = json!({"spec": {"template": {"spec": {"containers": []}}}});
        apply("batch", "jobs", &mut j);
        assert_eq!(
            (
                j["spec"]["completions"].clone(),
                j["spec"]["parallelism"].clone(),
                j["spec"]["backoffLimit"].clone()
            ),
            (json!(1), json!(1), json!(6))
        );
        assert!(j["spec"].get("manualSelector").is_none());
        assert_eq!(pull_policy("registry:5000/app"), "Always");
        assert_eq!(pull_policy("registry:5000/app:v1"), "IfNotPresent");
        assert_eq!(pull_policy("app@sha256:abc"), "IfNotPresent");
    }
}
