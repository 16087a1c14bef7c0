#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! kubectl against `ferrokube server`: upstream's per-kind validation. The objects
//! kubectl's generators create are accepted; invalid ones are refused with upstream's
//! `422 Invalid` and its field causes, as kubectl prints them.

mod common;

use common::{start, Server};

fn create_fails(s: &Server, yaml: &str) -> String {
    let o = s.kubectl_stdin(&["create", "-f", "-"], Some(yaml));
    assert!(
        !o.status.success(),
        "unexpectedly created: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn kubectl_generators_still_create_valid_objects() {
    let s = start();
    s.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    s.ok(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
    ]);
    s.ok(&[
        "run",
        "one",
        "--image=busybox",
        "--restart=Never",
        "--",
        "sleep",
        "1",
    ]);
    s.ok(&[
        "run",
        "two",
        "--image=nginx",
        "--port=80",
        "--env=A=b",
        "--labels=app=two",
    ]);
    s.ok(&["create", "job", "j", "--image=busybox", "--", "echo", "hi"]);
    s.ok(&[
        "create",
        "cronjob",
        "c",
        "--image=busybox",
        "--schedule=*/5 * * * *",
    ]);
    s.ok(&[
        "create",
        "service",
        "clusterip",
        "headless",
        "--clusterip=None",
    ]);
    s.ok(&["create", "service", "nodeport", "np", "--tcp=5678:8080"]);
    s.ok(&[
        "create",
        "service",
        "externalname",
        "ext",
        "--external-name=example.com",
    ]);
    s.ok(&[
        "create",
        "configmap",
        "cfg",
        "--from-literal=a.conf=x",
        "--from-literal=B_KEY=y",
    ]);
    s.ok(&[
        "create",
        "secret",
        "generic",
        "sec",
        "--from-literal=password=p",
    ]);
    s.ok(&[
        "create",
        "secret",
        "docker-registry",
        "reg",
        "--docker-server=r.example.com",
        "--docker-username=u",
        "--docker-password=p",
    ]);
    s.ok(&["create", "serviceaccount", "robot"]);
    s.ok(&[
        "create",
        "role",
        "reader",
        "--verb=get,list",
        "--resource=pods",
    ]);
    s.ok(&[
        "create",
        "clusterrole",
        "nodes",
        "--verb=get",
        "--resource=nodes",
        "--non-resource-url=/healthz",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "rb",
        "--role=reader",
        "--user=bob",
        "--serviceaccount=default:robot",
    ]);
    s.ok(&[
        "create",
        "clusterrolebinding",
        "crb",
        "--clusterrole=view",
        "--group=devs",
    ]);
    s.ok(&["create", "quota", "q", "--hard=cpu=1,memory=1G,pods=2"]);
    s.ok(&[
        "create",
        "pdb",
        "p",
        "--selector=app=web",
        "--min-available=1",
    ]);
    s.ok(&["create", "priorityclass", "high", "--value=1000"]);
    // (`kubectl create ingress` is refused earlier, by strict decoding of the
    // `ingressRuleValue` field kubectl sends; not a validation matter.)
    let o = s.kubectl_stdin(
        &["create", "-f", "-"],
        Some("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: ing}\nspec:\n  rules:\n  - host: foo.com\n    http:\n      paths:\n      - {path: /bar, pathType: Exact, backend: {service: {name: web, port: {number: 80}}}}\n"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    s.ok(&[
        "autoscale",
        "deployment",
        "web",
        "--min=1",
        "--max=3",
        "--cpu-percent=80",
    ]);
    // Updates that upstream allows.
    s.ok(&["set", "image", "deployment/web", "nginx=nginx:1.27"]);
    s.ok(&["scale", "deployment", "web", "--replicas=3"]);
    s.ok(&["set", "image", "pod/two", "two=nginx:1.27"]);
    s.ok(&["label", "pod", "two", "extra=yes"]);
    s.ok(&["patch", "job", "j", "-p", r#"{"spec":{"suspend":true}}"#]);
}

#[test]
fn invalid_objects_are_refused_as_upstream() {
    let s = start();
    let err = create_fails(
        &s,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: other}}
    spec: {containers: [{name: c, image: nginx}]}
"#,
    );
    assert!(
        err.contains("The Deployment \"bad\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"),
        "{err}"
    );
    let err = create_fails(
        &s,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n",
    );
    assert!(
        err.contains("The Pod \"p\" is invalid: spec.containers[0].image: Required value"),
        "{err}"
    );
    let err = create_fails(
        &s,
        "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec: {ports: [{port: 70000}]}\n",
    );
    assert!(
        err.contains("The Service \"svc\" is invalid: \n* spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive\n* spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive"),
        "{err}"
    );
    let err = create_fails(
        &s,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: t}\ntype: kubernetes.io/tls\ndata: {tls.crt: eA==}\n",
    );
    assert!(
        err.contains("The Secret \"t\" is invalid: data[tls.key]: Required value"),
        "{err}"
    );
    let err = s.fails(&[
        "create",
        "cronjob",
        "cj",
        "--image=busybox",
        "--schedule=often",
    ]);
    assert!(
        err.contains(
            "spec.schedule: Invalid value: \"often\": expected exactly 5 fields, found 1: [often]"
        ),
        "{err}"
    );
    let err = create_fails(
        &s,
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec:
  template:
    spec: {restartPolicy: Always, containers: [{name: c, image: busybox}]}
"#,
    );
    assert!(
        err.contains("spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""),
        "{err}"
    );
    // Nothing invalid was stored.
    let out = s.ok(&["get", "deploy,pods,svc,secrets,cronjobs,jobs", "-o", "name"]);
    for name in [
        "deployment.apps/bad",
        "pod/p",
        "service/svc",
        "secret/t",
        "cronjob.batch/cj",
        "job.batch/j",
    ] {
        assert!(!out.lines().any(|l| l == name), "{name} was stored: {out}");
    }
}

#[test]
fn immutable_fields_are_refused_on_update() {
    let s = start();
    s.ok(&["create", "deployment", "web", "--image=nginx"]);
    let err = s.fails(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"selector":{"matchLabels":{"app":"web","tier":"x"}},"template":{"metadata":{"labels":{"app":"web","tier":"x"}}}}}"#,
    ]);
    assert!(
        err.contains("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"),
        "{err}"
    );
    s.ok(&["run", "pod", "--image=nginx"]);
    let err = s.fails(&[
        "patch",
        "pod",
        "pod",
        "-p",
        r#"{"spec":{"containers":[{"name":"pod","ports":[{"containerPort":81}]}]}}"#,
    ]);
    assert!(
        err.contains("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"),
        "{err}"
    );
    s.ok(&[
        "create",
        "rolebinding",
        "rb",
        "--clusterrole=view",
        "--user=bob",
    ]);
    let err = s.fails(&[
        "patch",
        "rolebinding",
        "rb",
        "-p",
        r#"{"roleRef":{"name":"edit"}}"#,
    ]);
    assert!(
        err.contains("roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef"),
        "{err}"
    );
    s.ok(&[
        "create",
        "secret",
        "generic",
        "frozen",
        "--from-literal=a=1",
    ]);
    s.ok(&["patch", "secret", "frozen", "-p", r#"{"immutable":true}"#]);
    let err = s.fails(&[
        "patch",
        "secret",
        "frozen",
        "-p",
        r#"{"data":{"a":"Mg=="}}"#,
    ]);
    assert!(
        err.contains("data: Forbidden: field is immutable when `immutable` is set"),
        "{err}"
    );
}
