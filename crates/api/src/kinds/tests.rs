//! Objects as kubectl sends them (then defaulted) must pass; invalid ones fail with
//! upstream's exact field paths and messages.

use serde_json::{json, Value};

use super::validate;

/// Defaults `obj` as the API server does, validates it, and renders the causes as
/// upstream's `field: message` strings.
fn check(group: &str, resource: &str, mut obj: Value, old: Option<&Value>) -> Vec<String> {
    crate::defaults::apply(group, resource, &mut obj);
    validate(group, resource, &obj, old)
        .into_iter()
        .map(|c| {
            if c.field.is_empty() {
                c.message
            } else {
                format!("{}: {}", c.field, c.message)
            }
        })
        .collect()
}

fn defaulted(group: &str, resource: &str, mut obj: Value) -> Value {
    crate::defaults::apply(group, resource, &mut obj);
    obj
}

fn kubectl_deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "strategy": {},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}}},
        "status": {}})
}

fn kubectl_pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx", "labels": {"run": "nginx"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}], "dnsPolicy": "ClusterFirst", "restartPolicy": "Always"},
        "status": {}})
}

#[test]
fn kubectl_created_objects_pass() {
    let none: Vec<String> = Vec::new();
    assert_eq!(
        check("apps", "deployments", kubectl_deployment(), None),
        none
    );
    assert_eq!(check("", "pods", kubectl_pod(), None), none);
    let svc = json!({"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "selector": {"app": "web"}}});
    assert_eq!(check("", "services", svc, None), none);
    let headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "selector": {"app": "h"}, "type": "ClusterIP"}});
    assert_eq!(check("", "services", headless, None), none);
    let np = json!({"spec": {"type": "NodePort", "ports": [{"name": "5678-8080", "port": 5678, "protocol": "TCP", "targetPort": 8080}], "selector": {"app": "np"}}});
    assert_eq!(check("", "services", np, None), none);
    let ext = json!({"spec": {"type": "ExternalName", "externalName": "example.com"}});
    assert_eq!(check("", "services", ext, None), none);
    let job = json!({"metadata": {"name": "j"}, "spec": {"template": {"metadata": {}, "spec": {"containers": [{"name": "j", "image": "busybox", "resources": {}}], "restartPolicy": "Never"}}}});
    assert_eq!(check("batch", "jobs", job, None), none);
    let cron = json!({"metadata": {"name": "c"}, "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"metadata": {"name": "c"}, "spec": {"template": {"metadata": {}, "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {}}], "restartPolicy": "OnFailure"}}}}}});
    assert_eq!(check("batch", "cronjobs", cron, None), none);
    let tls =
        json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}});
    assert_eq!(check("", "secrets", tls, None), none);
    let cm = json!({"data": {"a.conf": "x", "B_KEY": "y"}, "binaryData": {"bin": "AAE="}});
    assert_eq!(check("", "configmaps", cm, None), none);
    let rb = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}, {"kind": "ServiceAccount", "name": "default", "namespace": "ns"}]});
    assert_eq!(
        check(
            "rbac.authorization.k8s.io",
            "rolebindings",
            rb.clone(),
            None
        ),
        none
    );
    assert_eq!(
        check("rbac.authorization.k8s.io", "clusterrolebindings", rb, None),
        none
    );
    let cr = json!({"rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]});
    assert_eq!(
        check("rbac.authorization.k8s.io", "clusterroles", cr, None),
        none
    );
    let ing = json!({"spec": {"rules": [{"host": "foo.com", "http": {"paths": [{"backend": {"service": {"name": "svc1", "port": {"number": 8080}}}, "path": "/bar", "pathType": "Exact"}]}}]}});
    assert_eq!(check("networking.k8s.io", "ingresses", ing, None), none);
    let pdb = json!({"spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "rails"}}}});
    assert_eq!(check("policy", "poddisruptionbudgets", pdb, None), none);
    let quota = json!({"spec": {"hard": {"cpu": "1", "memory": "1G", "pods": "2", "count/deployments.apps": "3"}}});
    assert_eq!(check("", "resourcequotas", quota, None), none);
    let pc = json!({"metadata": {"name": "high"}, "value": 1000, "globalDefault": false, "preemptionPolicy": "PreemptLowerPriority"});
    assert_eq!(
        check("scheduling.k8s.io", "priorityclasses", pc, None),
        none
    );
    let sys = json!({"metadata": {"name": "system-node-critical"}, "value": 2000001000});
    assert_eq!(
        check("scheduling.k8s.io", "priorityclasses", sys, None),
        none
    );
    let hpa = json!({"spec": {"maxReplicas": 10, "minReplicas": 1, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}});
    assert_eq!(
        check("autoscaling", "horizontalpodautoscalers", hpa, None),
        none
    );
    let pvc = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    assert_eq!(check("", "persistentvolumeclaims", pvc, None), none);
    let pv = json!({"spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "5Gi"}, "hostPath": {"path": "/data"}}});
    assert_eq!(check("", "persistentvolumes", pv, None), none);
    let ep = json!({"subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]});
    assert_eq!(check("", "endpoints", ep, None), none);
    let slice = json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": true}}], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]});
    assert_eq!(
        check("discovery.k8s.io", "endpointslices", slice, None),
        none
    );
    let lease = json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 40}});
    assert_eq!(check("coordination.k8s.io", "leases", lease, None), none);
    let sc = json!({"provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"});
    assert_eq!(check("storage.k8s.io", "storageclasses", sc, None), none);
    let ev = json!({"metadata": {"name": "e", "namespace": "default"}, "involvedObject": {"kind": "Node", "name": "n1"}, "reason": "Starting"});
    assert_eq!(check("", "events", ev, None), none);
}

#[test]
fn workloads_with_volumes_probes_and_resources_pass() {
    let sts = json!({"metadata": {"name": "db"}, "spec": {"serviceName": "db", "replicas": 2, "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
            "initContainers": [{"name": "init", "image": "busybox", "command": ["sh", "-c", "true"]}],
            "containers": [{"name": "db", "image": "postgres:16", "ports": [{"containerPort": 5432, "name": "pg"}],
                "env": [{"name": "PGDATA", "value": "/data"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
                "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
                "readinessProbe": {"exec": {"command": ["pg_isready"]}}, "livenessProbe": {"tcpSocket": {"port": "pg"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true}]}],
            "volumes": [{"name": "cfg", "configMap": {"name": "db-cfg"}}, {"name": "data", "emptyDir": {}}]}}}});
    assert_eq!(
        check("apps", "statefulsets", sts, None),
        Vec::<String>::new()
    );
    let ds = json!({"spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"metadata": {"labels": {"app": "agent"}},
        "spec": {"hostNetwork": true, "tolerations": [{"operator": "Exists"}, {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
            "containers": [{"name": "agent", "image": "agent:1", "ports": [{"containerPort": 9100, "hostPort": 9100}]}]}}}});
    assert_eq!(check("apps", "daemonsets", ds, None), Vec::<String>::new());
}

#[test]
fn pod_errors_match_upstream() {
    let pod = json!({"spec": {"containers": []}});
    assert_eq!(
        check("", "pods", pod, None),
        vec!["spec.containers: Required value"]
    );
    let pod = json!({"spec": {"containers": [{"name": "Web_1", "ports": [{"containerPort": 70000, "protocol": "HTTP"}], "env": [{"name": "1X", "value": "y"}]}]}});
    assert_eq!(
        check("", "pods", pod, None),
        vec![
            "spec.containers[0].name: Invalid value: \"Web_1\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            "spec.containers[0].image: Required value",
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.containers[0].env[0].name: Invalid value: \"1X\": a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
        ]
    );
    let pod = json!({"spec": {"restartPolicy": "Sometimes", "containers": [
        {"name": "a", "image": "x", "volumeMounts": [{"name": "missing", "mountPath": "/m"}], "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
        {"name": "a", "image": "y"}]}});
    assert_eq!(
        check("", "pods", pod, None),
        vec![
            "spec.containers[0].volumeMounts[0].name: Not found: \"missing\"",
            "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            "spec.containers[1].name: Duplicate value: \"a\"",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        ]
    );
    let pod = json!({"spec": {"containers": [{"name": "a", "image": "x"}], "volumes": [{"name": "v"}, {"name": "w", "emptyDir": {}, "hostPath": {"path": "/x"}}],
        "tolerations": [{"key": "k", "operator": "Maybe"}]}});
    assert_eq!(
        check("", "pods", pod, None),
        vec![
            "spec.volumes[0]: Required value: must specify a volume type",
            "spec.volumes[1].hostPath: Forbidden: may not specify more than 1 volume type",
            "spec.tolerations[0].operator: Unsupported value: \"Maybe\": supported values: \"Equal\", \"Exists\"",
        ]
    );
}

#[test]
fn pod_updates_only_change_mutable_fields() {
    let old = defaulted("", "pods", kubectl_pod());
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    new["spec"]["activeDeadlineSeconds"] = json!(30);
    new["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists"}]);
    assert_eq!(
        check("", "pods", new.clone(), Some(&old)),
        Vec::<String>::new()
    );
    // Binding sets nodeName once.
    let mut bound = old.clone();
    bound["spec"]["nodeName"] = json!("node-1");
    assert_eq!(
        check("", "pods", bound.clone(), Some(&old)),
        Vec::<String>::new()
    );
    let mut moved = bound.clone();
    moved["spec"]["nodeName"] = json!("node-2");
    moved["spec"]["containers"][0]["name"] = json!("renamed");
    let errs = check("", "pods", moved, Some(&bound));
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"), "{errs:?}");
    let mut fewer = old.clone();
    fewer["spec"]["containers"] = json!([]);
    assert!(check("", "pods", fewer, Some(&old)).contains(
        &"spec.containers: Forbidden: pod updates may not add or remove containers".to_string()
    ));
}

#[test]
fn workload_errors_match_upstream() {
    let mut d = kubectl_deployment();
    d["spec"]["template"]["metadata"]["labels"] = json!({"app": "y"});
    assert_eq!(
        check("apps", "deployments", d, None),
        vec!["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"y\"}: `selector` does not match template `labels`"]
    );
    let mut d = kubectl_deployment();
    d["spec"].as_object_mut().unwrap().remove("selector");
    d["spec"]["replicas"] = json!(-1);
    assert_eq!(
        check("apps", "deployments", d, None),
        vec![
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.selector: Required value",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
        ]
    );
    let mut d = kubectl_deployment();
    d["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}});
    d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    assert_eq!(
        check("apps", "deployments", d, None),
        vec![
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0",
        ]
    );
    let old = defaulted("apps", "deployments", kubectl_deployment());
    let mut new = old.clone();
    new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "x"}});
    new["spec"]["template"]["metadata"]["labels"] = json!({"app": "web", "tier": "x"});
    assert_eq!(
        check("apps", "deployments", new, Some(&old)),
        vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]
    );
    let job = json!({"spec": {"completions": -1, "template": {"spec": {"containers": [{"name": "j", "image": "busybox"}]}}}});
    assert_eq!(
        check("batch", "jobs", job, None),
        vec![
            "spec.completions: Invalid value: -1: must be greater than or equal to 0",
            "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
        ]
    );
}

#[test]
fn job_success_policies_are_checked() {
    let job = |mode: &str, policy: Value| {
        json!({"spec": {"completions": 3, "completionMode": mode, "successPolicy": policy,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "j", "image": "busybox"}]}}}})
    };
    let none: Vec<String> = Vec::new();
    assert_eq!(
        check(
            "batch",
            "jobs",
            job(
                "Indexed",
                json!({"rules": [{"succeededIndexes": "0-1"}, {"succeededCount": 2}]})
            ),
            None
        ),
        none
    );
    assert_eq!(
        check("batch", "jobs", job("Indexed", json!({"rules": [{}, {"succeededCount": 4}]})), None),
        vec![
            "spec.successPolicy.rules[0]: Required value: at least one of succeededCount or succeededIndexes must be specified",
            "spec.successPolicy.rules[1].succeededCount: Invalid value: 4: must be less than or equal to 3 (the number of specified completions)",
        ]
    );
    let errs = check(
        "batch",
        "jobs",
        job("NonIndexed", json!({"rules": []})),
        None,
    );
    assert!(
        errs[0].ends_with("requires indexed completion mode"),
        "{errs:?}"
    );
    assert_eq!(
        errs[1],
        "spec.successPolicy.rules: Required value: at least one rules must be specified when the successPolicy is specified"
    );
}

#[test]
fn cron_schedules_parse_as_robfig() {
    for ok in [
        "*/5 * * * *",
        "0 0 * * SUN",
        "@hourly",
        "0-30/10 1,2 1-31 JAN-DEC mon-fri",
        "CRON_TZ=UTC 0 * * * *",
        "@every 1h30m",
    ] {
        assert_eq!(super::parse_cron_schedule(ok), Ok(()), "{ok}");
    }
    assert_eq!(
        super::parse_cron_schedule("foo"),
        Err("expected exactly 5 fields, found 1: [foo]".to_string())
    );
    assert_eq!(
        super::parse_cron_schedule("61 * * * *"),
        Err("end of range (61) above maximum (59): 61".to_string())
    );
    assert_eq!(
        super::parse_cron_schedule("@often"),
        Err("unrecognized descriptor: @often".to_string())
    );
    let cron = json!({"spec": {"schedule": "bad schedule", "concurrencyPolicy": "Sometimes", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "OnFailure"}}}}}});
    assert_eq!(
        check("batch", "cronjobs", cron, None),
        vec![
            "spec.schedule: Invalid value: \"bad schedule\": expected exactly 5 fields, found 2: [bad schedule]",
            "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"",
        ]
    );
}

#[test]
fn service_errors_match_upstream() {
    let svc = json!({"spec": {"ports": [{"port": 70000}, {"port": 80, "targetPort": "not_a_name", "protocol": "ICMP"}], "type": "Magic", "sessionAffinity": "Sticky"}});
    assert_eq!(
        check("", "services", svc, None),
        vec![
            "spec.ports[0].name: Required value",
            "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.ports[1].name: Required value",
            "spec.ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.ports[1].targetPort: Invalid value: \"not_a_name\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
            "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
        ]
    );
    assert_eq!(
        check("", "services", json!({"spec": {}}), None),
        vec!["spec.ports: Required value"]
    );
    assert_eq!(
        check(
            "",
            "services",
            json!({"spec": {"type": "ExternalName"}}),
            None
        ),
        vec!["spec.externalName: Required value"]
    );
    let cip = json!({"spec": {"ports": [{"port": 80, "nodePort": 30080}]}});
    assert_eq!(
        check("", "services", cip, None),
        vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
    );
}

#[test]
fn config_and_secret_errors_match_upstream() {
    let cm = json!({"data": {"bad/key": "x", "dup": "y"}, "binaryData": {"dup": "AA=="}});
    assert_eq!(
        check("", "configmaps", cm, None),
        vec![
            "data[bad/key]: Invalid value: \"bad/key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            "data[dup]: Invalid value: \"dup\": duplicate of key present in binaryData",
        ]
    );
    let tls = json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}});
    assert_eq!(
        check("", "secrets", tls, None),
        vec!["data[tls.key]: Required value"]
    );
    let old = json!({"type": "Opaque", "immutable": true, "data": {"a": "eA=="}});
    let new = json!({"type": "kubernetes.io/tls", "immutable": true, "data": {"a": "eQ==", "tls.crt": "eA==", "tls.key": "eA=="}});
    assert_eq!(
        check("", "secrets", new, Some(&old)),
        vec![
            "type: Invalid value: \"kubernetes.io/tls\": field is immutable",
            "data: Forbidden: field is immutable when `immutable` is set",
        ]
    );
    let big = json!({"data": {"k": "x".repeat(1024 * 1024 + 1)}});
    assert_eq!(
        check("", "configmaps", big, None),
        vec!["Too long: may not be more than 1048576 bytes"]
    );
}

#[test]
fn rbac_errors_match_upstream() {
    let role = json!({"rules": [{"apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"]}]});
    assert_eq!(
        check("rbac.authorization.k8s.io", "roles", role, None),
        vec![
            "rules[0].verbs: Required value: verbs must contain at least one value",
            "rules[1].apiGroups: Required value: resource rules must supply at least one api group",
            "rules[1].resources: Required value: resource rules must supply at least one resource",
        ]
    );
    let crb = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}, "subjects": [{"kind": "Robot", "name": "r2"}, {"kind": "ServiceAccount", "name": "sa"}]});
    assert_eq!(
        check("rbac.authorization.k8s.io", "clusterrolebindings", crb, None),
        vec![
            "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
            "subjects[0].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
            "subjects[1].namespace: Required value",
        ]
    );
    let old = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}});
    let new = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}});
    assert_eq!(
        check("rbac.authorization.k8s.io", "rolebindings", new, Some(&old)),
        vec!["roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef"]
    );
}

#[test]
fn other_kinds_match_upstream() {
    let ing = json!({"spec": {"rules": [{"host": "1.2.3.4", "http": {"paths": [{"path": "foo", "pathType": "Prefix", "backend": {"service": {"name": "s"}}}]}}]}});
    assert_eq!(
        check("networking.k8s.io", "ingresses", ing, None),
        vec![
            "spec.rules[0].host: Invalid value: \"1.2.3.4\": must be a DNS name, not an IP address",
            "spec.rules[0].http.paths[0].path: Invalid value: \"foo\": must be an absolute path",
            "spec.rules[0].http.paths[0].backend: Required value: port name or number is required",
        ]
    );
    let pdb = json!({"spec": {"minAvailable": "150%"}});
    assert_eq!(
        check("policy", "poddisruptionbudgets", pdb, None),
        vec!["spec.minAvailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%"]
    );
    let hpa = json!({"spec": {"minReplicas": 5, "maxReplicas": 2, "scaleTargetRef": {"kind": "Deployment"}}});
    assert_eq!(
        check("autoscaling", "horizontalpodautoscalers", hpa, None),
        vec![
            "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`",
            "spec.scaleTargetRef.name: Required value",
        ]
    );
    let pvc = json!({"spec": {"resources": {}}});
    assert_eq!(
        check("", "persistentvolumeclaims", pvc, None),
        vec![
            "spec.accessModes: Required value: at least 1 access mode is required",
            "spec.resources[storage]: Required value",
        ]
    );
    let pc = json!({"metadata": {"name": "huge"}, "value": 2000000000});
    assert_eq!(
        check("scheduling.k8s.io", "priorityclasses", pc, None),
        vec!["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]
    );
    let node = json!({"spec": {"podCIDRs": ["10.0.0.0/33"], "taints": [{"key": "k", "effect": "Sometimes"}]}});
    assert_eq!(
        check("", "nodes", node, None),
        vec![
            "metadata.taints[0].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
            "spec.podCIDRs[0]: Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ]
    );
    let rc = json!({"handler": "Bad_Handler"});
    assert_eq!(check("node.k8s.io", "runtimeclasses", rc, None).len(), 1);
    let csr = json!({"spec": {"request": "bm90IGEgY3Ny", "signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth", "flying"]}});
    assert_eq!(
        check("certificates.k8s.io", "certificatesigningrequests", csr, None),
        vec![
            "spec.request: Invalid value: []uint8{...}: PEM block type must be CERTIFICATE REQUEST",
            "spec.usages[1]: Unsupported value: \"flying\": supported values: \"any\", \"cert sign\", \"client auth\", \"code signing\", \"content commitment\", \"crl sign\", \"data encipherment\", \"decipher only\", \"digital signature\", \"email protection\", \"encipher only\", \"ipsec end system\", \"ipsec tunnel\", \"ipsec user\", \"key agreement\", \"key encipherment\", \"microsoft sgc\", \"netscape sgc\", \"ocsp signing\", \"s/mime\", \"server auth\", \"signing\", \"timestamping\"",
        ]
    );
    let ev = json!({"metadata": {"namespace": "a"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "b"}});
    assert_eq!(
        check("", "events", ev, None),
        vec!["involvedObject.namespace: Invalid value: \"b\": does not match event.namespace"]
    );
}

#[test]
fn admission_policies_match_upstream() {
    const G: &str = "admissionregistration.k8s.io";
    let policy = json!({"metadata": {"name": "p"}, "spec": {
        "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
        "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["deployments"]}]},
        "variables": [{"name": "max", "expression": "int(params.data.max)"}],
        "validations": [{"expression": "object.spec.replicas <= variables.max", "messageExpression": "'too many: ' + string(object.spec.replicas)"}],
        "auditAnnotations": [{"key": "replicas", "valueExpression": "string(object.spec.replicas)"}]
    }});
    assert_eq!(
        check(G, "validatingadmissionpolicies", policy.clone(), None),
        Vec::<String>::new()
    );
    let d = defaulted(G, "validatingadmissionpolicies", policy);
    assert_eq!(d["spec"]["failurePolicy"], "Fail");
    assert_eq!(d["spec"]["matchConstraints"]["matchPolicy"], "Equivalent");
    assert_eq!(
        d["spec"]["matchConstraints"]["resourceRules"][0]["scope"],
        "*"
    );

    // params is declared only with a paramKind; messageExpressions see no authorizer.
    let bad = json!({"metadata": {"name": "p"}, "spec": {
        "failurePolicy": "Sometimes",
        "matchConstraints": {"resourceRules": [{"apiGroups": ["*", "apps"], "apiVersions": ["v1"], "operations": ["MAKE"], "resources": ["*/*", "pods"]}]},
        "variables": [{"name": "in", "expression": "1"}],
        "validations": [{"expression": "params.x", "reason": "Teapot", "message": "a\nb"}]
    }});
    let errs = check(G, "validatingadmissionpolicies", bad, None);
    let has = |needle: &str| errs.iter().any(|e| e.contains(needle));
    assert!(has("spec.failurePolicy: Unsupported value: \"Sometimes\": supported values: \"Fail\", \"Ignore\""), "{errs:#?}");
    assert!(
        has("spec.matchConstraints.resourceRules[0].operations[0]: Unsupported value: \"MAKE\""),
        "{errs:#?}"
    );
    assert!(has("spec.matchConstraints.resourceRules[0].apiGroups: Invalid value: []string{\"*\", \"apps\"}: if '*' is present, must not specify other API groups"), "{errs:#?}");
    assert!(has("spec.matchConstraints.resourceRules[0].resources: Invalid value: []string{\"*/*\", \"pods\"}: if '*/*' is present, must not specify other resources"), "{errs:#?}");
    assert!(
        has("spec.variables[0].name: Invalid value: \"in\": name is not a valid CEL identifier"),
        "{errs:#?}"
    );
    assert!(has("spec.validations[0].expression: Invalid value: \"params.x\": compilation failed: ERROR: <input>:1:1: undeclared reference to 'params'"), "{errs:#?}");
    assert!(has("spec.validations[0].message: Invalid value: \"a\\nb\": message must not contain line breaks"), "{errs:#?}");
    assert!(
        has("spec.validations[0].reason: Unsupported value: \"Teapot\""),
        "{errs:#?}"
    );
    let empty = json!({"metadata": {"name": "p"}, "spec": {}});
    assert_eq!(
        check(G, "validatingadmissionpolicies", empty, None),
        vec![
            "spec.matchConstraints: Required value",
            "spec.validations: Required value: validations or auditAnnotations must contain at least one item",
            "spec.auditAnnotations: Required value: validations or auditAnnotations must contain at least one item",
        ]
    );

    let binding = json!({"spec": {"policyName": "p", "validationActions": ["Deny", "Warn", "Deny"],
        "paramRef": {"name": "x", "selector": {}}}});
    assert_eq!(
        check(G, "validatingadmissionpolicybindings", binding, None),
        vec![
            "spec.paramRef.name: Forbidden: name and selector are mutually exclusive",
            "spec.paramRef.selector: Forbidden: name and selector are mutually exclusive",
            "spec.paramRef.parameterNotFoundAction: Required value",
            "spec.validationActions[2]: Duplicate value: \"Deny\"",
            "spec.validationActions: Invalid value: []string{\"Deny\", \"Warn\", \"Deny\"}: must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
        ]
    );
    let ok = json!({"spec": {"policyName": "p", "validationActions": ["Audit"]}});
    assert_eq!(
        check(G, "validatingadmissionpolicybindings", ok, None),
        Vec::<String>::new()
    );
}
