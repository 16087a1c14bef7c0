#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The default-on admission plugins built so far, as kubectl users meet them: Priority
//! (with the system PriorityClasses bootstrapped), DefaultTolerationSeconds, LimitRanger,
//! DefaultStorageClass, RuntimeClass and ResourceQuota.

mod common;

use common::start;

#[test]
fn default_admission_plugins_with_kubectl() {
    let s = start();
    let pcs = s.ok(&["get", "priorityclasses", "-o", "name"]);
    assert!(
        pcs.contains("system-node-critical") && pcs.contains("system-cluster-critical"),
        "{pcs}"
    );

    // Priority and DefaultTolerationSeconds on every new pod.
    s.ok(&["run", "plain", "--image=busybox"]);
    assert_eq!(
        s.ok(&[
            "get",
            "pod",
            "plain",
            "-o",
            "jsonpath={.spec.priority} {.spec.preemptionPolicy} {.spec.tolerations[*].key}"
        ]),
        "0 PreemptLowerPriority node.kubernetes.io/not-ready node.kubernetes.io/unreachable"
    );
    s.ok(&[
        "run",
        "critical",
        "--image=busybox",
        "--overrides",
        r#"{"spec":{"priorityClassName":"system-node-critical"}}"#,
    ]);
    assert_eq!(
        s.ok(&["get", "pod", "critical", "-o", "jsonpath={.spec.priority}"]),
        "2000001000"
    );
    let err = s.fails(&[
        "run",
        "nope",
        "--image=busybox",
        "--overrides",
        r#"{"spec":{"priorityClassName":"nope"}}"#,
    ]);
    assert!(
        err.contains(r#"pods "nope" is forbidden: no PriorityClass with name nope was found"#),
        "{err}"
    );

    // LimitRanger: defaults filled in, maximums enforced.
    let lr = "apiVersion: v1\nkind: LimitRange\nmetadata: {name: limits}\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 500m, memory: 128Mi}\n    defaultRequest: {cpu: 100m}\n    max: {cpu: \"1\"}\n";
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(lr))
        .status
        .success());
    s.ok(&["run", "limited", "--image=busybox"]);
    assert_eq!(
        s.ok(&["get", "pod", "limited", "-o", "jsonpath={.spec.containers[0].resources.limits.cpu} {.spec.containers[0].resources.requests.cpu} {.spec.containers[0].resources.requests.memory}"]),
        "500m 100m 128Mi"
    );
    let err = s.fails(&["run", "greedy", "--image=busybox", "--overrides", r#"{"spec":{"containers":[{"name":"greedy","image":"busybox","resources":{"limits":{"cpu":"2"}}}]}}"#]);
    assert!(
        err.contains("maximum cpu usage per Container is 1, but limit is 2"),
        "{err}"
    );

    // DefaultStorageClass.
    let sc = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: fast\n  annotations: {storageclass.kubernetes.io/is-default-class: \"true\"}\nprovisioner: example.com/fast\n";
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(sc))
        .status
        .success());
    let pvc = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n";
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(pvc))
        .status
        .success());
    assert_eq!(
        s.ok(&[
            "get",
            "pvc",
            "data",
            "-o",
            "jsonpath={.spec.storageClassName}"
        ]),
        "fast"
    );
}

/// RuntimeClass: the class must exist; its overhead and scheduling land in the pod.
#[test]
fn runtime_class_with_kubectl() {
    let s = start();
    let rc = "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: sandboxed}\nhandler: runsc\noverhead:\n  podFixed: {cpu: 250m, memory: 64Mi}\nscheduling:\n  nodeSelector: {sandbox: \"yes\"}\n  tolerations: [{key: sandbox, operator: Exists, effect: NoSchedule}]\n";
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(rc))
        .status
        .success());
    let with = |name: &str, extra: &str| {
        format!(
            r#"{{"spec":{{"runtimeClassName":"sandboxed"{extra},"containers":[{{"name":"{name}","image":"busybox"}}]}}}}"#
        )
    };
    s.ok(&[
        "run",
        "boxed",
        "--image=busybox",
        "--overrides",
        &with("boxed", ""),
    ]);
    assert_eq!(
        s.ok(&["get", "pod", "boxed", "-o", "jsonpath={.spec.overhead.cpu} {.spec.overhead.memory} {.spec.nodeSelector.sandbox} {.spec.tolerations[0].key}"]),
        "250m 64Mi yes sandbox"
    );
    let err = s.fails(&[
        "run",
        "other",
        "--image=busybox",
        "--overrides",
        r#"{"spec":{"runtimeClassName":"missing"}}"#,
    ]);
    assert!(
        err.contains(
            r#"pods "other" is forbidden: pod rejected: RuntimeClass "missing" not found"#
        ),
        "{err}"
    );
    let err = s.fails(&[
        "run",
        "clash",
        "--image=busybox",
        "--overrides",
        &with("clash", r#","nodeSelector":{"sandbox":"no"}"#),
    ]);
    assert!(
        err.contains("conflict: runtimeClass.scheduling.nodeSelector[sandbox] = yes; pod.spec.nodeSelector[sandbox] = no"),
        "{err}"
    );
    let err = s.fails(&[
        "run",
        "heavy",
        "--image=busybox",
        "--overrides",
        &with("heavy", r#","overhead":{"cpu":"1"}"#),
    ]);
    assert!(
        err.contains("pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead"),
        "{err}"
    );
}

/// ResourceQuota: usage counted from the namespace, enforced, and kept in status
/// (`kubectl create quota` and `kubectl set resources` send protobuf: map fields such as
/// `hard` and `requests` must survive decoding).
#[test]
fn resource_quota_with_kubectl() {
    let s = start();
    s.ok(&["create", "namespace", "team"]);
    s.ok(&[
        "-n",
        "team",
        "create",
        "quota",
        "q",
        "--hard=pods=2,count/configmaps=1,requests.cpu=1",
    ]);
    assert_eq!(
        s.ok(&[
            "-n",
            "team",
            "get",
            "quota",
            "q",
            "-o",
            "jsonpath={.spec.hard.pods}"
        ]),
        "2"
    );
    let err = s.fails(&["-n", "team", "run", "bare", "--image=busybox"]);
    assert!(
        err.contains("failed quota: q: must specify requests.cpu"),
        "{err}"
    );
    s.ok(&[
        "-n",
        "team",
        "create",
        "deployment",
        "web",
        "--image=busybox",
    ]);
    s.ok(&[
        "-n",
        "team",
        "set",
        "resources",
        "deployment",
        "web",
        "--requests=cpu=300m",
    ]);
    assert_eq!(
        s.ok(&[
            "-n",
            "team",
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].resources.requests.cpu}"
        ]),
        "300m"
    );
    let pod = |name: &str, cpu: &str| {
        format!(
            r#"{{"spec":{{"containers":[{{"name":"{name}","image":"busybox","resources":{{"requests":{{"cpu":"{cpu}"}}}}}}]}}}}"#
        )
    };
    s.ok(&[
        "-n",
        "team",
        "run",
        "a",
        "--image=busybox",
        "--overrides",
        &pod("a", "600m"),
    ]);
    let err = s.fails(&[
        "-n",
        "team",
        "run",
        "b",
        "--image=busybox",
        "--overrides",
        &pod("b", "600m"),
    ]);
    assert!(
        err.contains("exceeded quota: q, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1"),
        "{err}"
    );
    s.ok(&[
        "-n",
        "team",
        "run",
        "c",
        "--image=busybox",
        "--overrides",
        &pod("c", "100m"),
    ]);
    let err = s.fails(&[
        "-n",
        "team",
        "run",
        "d",
        "--image=busybox",
        "--overrides",
        &pod("d", "100m"),
    ]);
    assert!(
        err.contains("requested: pods=1, used: pods=2, limited: pods=2"),
        "{err}"
    );
    s.ok(&["-n", "team", "create", "configmap", "one"]);
    assert!(s
        .fails(&["-n", "team", "create", "configmap", "two"])
        .contains("exceeded quota"));
    assert_eq!(
        s.ok(&["-n", "team", "get", "quota", "q", "-o", "jsonpath={.status.used.pods} {.status.used.requests\\.cpu} {.status.used.count/configmaps}"]),
        "2 700m 1"
    );
    // Deleting frees the usage.
    s.ok(&[
        "-n",
        "team",
        "delete",
        "pod",
        "c",
        "--grace-period=0",
        "--force",
    ]);
    s.ok(&[
        "-n",
        "team",
        "run",
        "e",
        "--image=busybox",
        "--overrides",
        &pod("e", "100m"),
    ]);
}

/// Scoped quotas charge only the pods in their scopes: a BestEffort quota ignores pods
/// with requests, and its status counts only best-effort pods.
#[test]
fn scoped_resource_quota_with_kubectl() {
    let s = start();
    s.ok(&["create", "namespace", "scoped"]);
    s.ok(&[
        "-n",
        "scoped",
        "create",
        "quota",
        "best-effort",
        "--hard=pods=1",
        "--scopes=BestEffort",
    ]);
    let burstable = r#"{"spec":{"containers":[{"name":"b","image":"busybox","resources":{"requests":{"cpu":"100m"}}}]}}"#;
    for name in ["burst-1", "burst-2"] {
        s.ok(&[
            "-n",
            "scoped",
            "run",
            name,
            "--image=busybox",
            "--overrides",
            burstable,
        ]);
    }
    s.ok(&["-n", "scoped", "run", "free-1", "--image=busybox"]);
    let err = s.fails(&["-n", "scoped", "run", "free-2", "--image=busybox"]);
    assert!(
        err.contains(
            "exceeded quota: best-effort, requested: pods=1, used: pods=1, limited: pods=1"
        ),
        "{err}"
    );
    assert_eq!(
        s.ok(&[
            "-n",
            "scoped",
            "get",
            "quota",
            "best-effort",
            "-o",
            "jsonpath={.status.used.pods}"
        ]),
        "1"
    );
}

/// PodSecurity: the namespace's enforce label refuses violating pods with upstream's
/// message; workloads get warnings.
#[test]
fn pod_security_with_kubectl() {
    let s = start();
    s.ok(&["create", "namespace", "secure"]);
    s.ok(&[
        "label",
        "namespace",
        "secure",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    let err = s.fails(&["-n", "secure", "run", "web", "--image=nginx"]);
    assert!(
        err.contains(r#"pods "web" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "web" must set securityContext.allowPrivilegeEscalation=false)"#),
        "{err}"
    );
    let o = s.kubectl(&[
        "-n",
        "secure",
        "create",
        "deployment",
        "web",
        "--image=nginx",
    ]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains(r#"Warning: would violate PodSecurity "restricted:latest""#));
    let ok = r#"{"spec":{"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},"containers":[{"name":"ok","image":"nginx","securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}"#;
    s.ok(&[
        "-n",
        "secure",
        "run",
        "ok",
        "--image=nginx",
        "--overrides",
        ok,
    ]);
    s.ok(&["create", "namespace", "base"]);
    s.ok(&[
        "label",
        "namespace",
        "base",
        "pod-security.kubernetes.io/enforce=baseline",
    ]);
    s.ok(&["-n", "base", "run", "plain", "--image=nginx"]);
    let err = s.fails(&["-n", "base", "run", "priv", "--image=nginx", "--privileged"]);
    assert!(err.contains(r#"violates PodSecurity "baseline:latest": privileged (container "priv" must not set securityContext.privileged=true)"#), "{err}");
}

/// ServiceAccount (default-on; the server runs the controller-manager that creates the
/// `default` accounts and `kube-root-ca.crt`): the default account, the projected token
/// volume and its mounts, automount opt-outs, imagePullSecrets, a missing account.
#[test]
fn service_account_admission_with_kubectl() {
    let s = common::start_with(&["--disable-scheduler", "--disable-agent"]);
    s.ok(&["create", "namespace", "sa-test"]);
    common::wait_until("the default service account", 30, || {
        s.kubectl(&["get", "serviceaccount", "default", "-n", "sa-test"])
            .status
            .success()
    });
    s.ok(&["run", "p", "--image=busybox", "-n", "sa-test"]);
    let get = |pod: &str, path: &str| {
        s.ok(&[
            "get",
            "pod",
            pod,
            "-n",
            "sa-test",
            "-o",
            &format!("jsonpath={path}"),
        ])
    };
    assert_eq!(
        get("p", "{.spec.serviceAccountName} {.spec.serviceAccount}"),
        "default default"
    );
    let volume = get("p", "{.spec.volumes[0].name}");
    assert!(
        volume.len() == "kube-api-access-".len() + 5 && volume.starts_with("kube-api-access-"),
        "{volume}"
    );
    assert_eq!(
        get(
            "p",
            "{.spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds} {.spec.volumes[0].projected.sources[1].configMap.name} {.spec.volumes[0].projected.sources[2].downwardAPI.items[0].fieldRef.fieldPath} {.spec.volumes[0].projected.defaultMode}"
        ),
        "3607 kube-root-ca.crt metadata.namespace 420"
    );
    assert_eq!(
        get("p", "{.spec.containers[0].volumeMounts[0].name} {.spec.containers[0].volumeMounts[0].mountPath} {.spec.containers[0].volumeMounts[0].readOnly}"),
        format!("{volume} /var/run/secrets/kubernetes.io/serviceaccount true")
    );

    // Opting out on the pod, on the account, and back in on the pod.
    s.ok(&[
        "run",
        "quiet-pod",
        "--image=busybox",
        "-n",
        "sa-test",
        "--overrides",
        r#"{"spec":{"automountServiceAccountToken":false}}"#,
    ]);
    assert_eq!(get("quiet-pod", "{.spec.volumes}"), "");
    s.ok(&["create", "serviceaccount", "quiet", "-n", "sa-test"]);
    s.ok(&[
        "patch",
        "serviceaccount",
        "quiet",
        "-n",
        "sa-test",
        "-p",
        r#"{"automountServiceAccountToken":false,"imagePullSecrets":[{"name":"regcred"}]}"#,
    ]);
    s.ok(&[
        "run",
        "quiet-sa",
        "--image=busybox",
        "-n",
        "sa-test",
        "--overrides",
        r#"{"spec":{"serviceAccountName":"quiet"}}"#,
    ]);
    assert_eq!(get("quiet-sa", "{.spec.volumes}"), "");
    assert_eq!(
        get("quiet-sa", "{.spec.imagePullSecrets[0].name}"),
        "regcred"
    );
    s.ok(&[
        "run",
        "loud",
        "--image=busybox",
        "-n",
        "sa-test",
        "--overrides",
        r#"{"spec":{"serviceAccountName":"quiet","automountServiceAccountToken":true}}"#,
    ]);
    assert!(get("loud", "{.spec.volumes[0].name}").starts_with("kube-api-access-"));

    // A missing account: 403 with upstream's message.
    let err = s.fails(&[
        "run",
        "orphan",
        "--image=busybox",
        "-n",
        "sa-test",
        "--overrides",
        r#"{"spec":{"serviceAccountName":"nope"}}"#,
    ]);
    assert!(
        err.contains(r#"pods "orphan" is forbidden: error looking up service account sa-test/nope: serviceaccount "nope" not found"#),
        "{err}"
    );
    // An account that enforces mountable secrets admits only the secrets it lists.
    let sa = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: strict\n  namespace: sa-test\n  annotations: {kubernetes.io/enforce-mountable-secrets: \"true\"}\nsecrets: [{name: allowed}]\n";
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(sa))
        .status
        .success());
    let with_secret = |name: &str, secret: &str| {
        format!(
            r#"{{"spec":{{"serviceAccountName":"strict","volumes":[{{"name":"s","secret":{{"secretName":"{secret}"}}}}],"containers":[{{"name":"{name}","image":"busybox"}}]}}}}"#
        )
    };
    s.ok(&[
        "run",
        "listed",
        "--image=busybox",
        "-n",
        "sa-test",
        "--overrides",
        &with_secret("listed", "allowed"),
    ]);
    let err = s.fails(&[
        "run",
        "unlisted",
        "--image=busybox",
        "-n",
        "sa-test",
        "--overrides",
        &with_secret("unlisted", "other"),
    ]);
    assert!(
        err.contains(r#"pods "unlisted" is forbidden: volume with secret.secretName="other" is not allowed because service account strict does not reference that secret"#),
        "{err}"
    );
}
