#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The garbage collector and the namespace controller against a real API server,
//! judged by kubectl: `kubectl delete --cascade=background|foreground|orphan` of a
//! ReplicaSet does what kubectl promises, an object whose owner is gone is collected
//! (and a reference to an absent owner is dropped while another owner remains), and
//! `kubectl delete ns` empties the namespace — custom resources included — reporting
//! what holds it in the namespace's conditions, and then removes it.

mod common;

use common::{controller_manager, start, wait_until, Server};

/// The harness runs each controller with its own service account's credentials (and
/// so its own RBAC role), as the seed does.
const FLAGS: &[&str] = &["--controllers=garbagecollector,namespace,replicaset"];

fn rs(name: &str, ns: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: c, image: busybox}}]
"
    )
}

fn create(s: &Server, yaml: &str) {
    let o = s.kubectl_stdin(&["create", "-f", "-"], Some(yaml));
    assert!(
        o.status.success(),
        "create failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn names(s: &Server, args: &[&str]) -> Vec<String> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "name"]);
    s.ok(&all).lines().map(str::to_string).collect()
}

fn exists(s: &Server, args: &[&str]) -> bool {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    let o = s.kubectl(&all);
    if o.status.success() {
        return true;
    }
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
    false
}

fn jsonpath(s: &Server, args: &[&str], path: &str) -> String {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    let p = format!("jsonpath={path}");
    all.extend_from_slice(&["-o", &p]);
    s.ok(&all)
}

#[test]
fn kubectl_delete_cascade_modes_on_a_replicaset() {
    let s = start();
    let cm = controller_manager(&s, FLAGS);

    // background: the ReplicaSet goes at once, its pods after it
    create(&s, &rs("bg", "default"));
    wait_until("2 bg pods", 30, || {
        names(&s, &["pods", "-l", "app=bg"]).len() == 2
    });
    s.ok(&["delete", "rs", "bg", "--cascade=background"]);
    assert!(!exists(&s, &["rs", "bg"]));
    wait_until("bg pods collected", 30, || {
        names(&s, &["pods", "-l", "app=bg"]).is_empty()
    });

    // foreground: the ReplicaSet stays (deletionTimestamp, foregroundDeletion) until
    // its pods are gone; a finalizer on one pod holds it there
    create(&s, &rs("fg", "default"));
    wait_until("2 fg pods", 30, || {
        names(&s, &["pods", "-l", "app=fg"]).len() == 2
    });
    let held = names(&s, &["pods", "-l", "app=fg"])[0].clone();
    s.ok(&[
        "patch",
        &held,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    s.ok(&["delete", "rs", "fg", "--cascade=foreground", "--wait=false"]);
    let fins = jsonpath(&s, &["rs", "fg"], "{.metadata.finalizers}");
    assert!(fins.contains("foregroundDeletion"), "{fins}");
    // the unheld pod is deleted; the held one is terminating
    wait_until("the unheld fg pod deleted", 30, || {
        names(&s, &["pods", "-l", "app=fg"]) == vec![held.clone()]
    });
    assert!(!jsonpath(&s, &[&held], "{.metadata.deletionTimestamp}").is_empty());
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        !jsonpath(&s, &["rs", "fg"], "{.metadata.deletionTimestamp}").is_empty(),
        "the ReplicaSet waits for its pods"
    );
    s.ok(&[
        "patch",
        &held,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    wait_until("fg ReplicaSet deleted after its pods", 30, || {
        !exists(&s, &["rs", "fg"])
    });
    assert!(names(&s, &["pods", "-l", "app=fg"]).is_empty());

    // orphan: the pods stay, without their owner reference
    create(&s, &rs("or", "default"));
    wait_until("2 or pods", 30, || {
        names(&s, &["pods", "-l", "app=or"]).len() == 2
    });
    s.ok(&["delete", "rs", "or", "--cascade=orphan", "--timeout=30s"]);
    assert!(!exists(&s, &["rs", "or"]));
    let pods = names(&s, &["pods", "-l", "app=or"]);
    assert_eq!(pods.len(), 2, "{pods:?}");
    for p in &pods {
        let refs = jsonpath(&s, &[p], "{.metadata.ownerReferences}");
        assert!(refs.is_empty(), "{p} still has {refs}");
        assert!(jsonpath(&s, &[p], "{.metadata.deletionTimestamp}").is_empty());
    }
    drop(cm);
}

#[test]
fn objects_whose_owners_are_gone_are_collected() {
    let s = start();
    let _cm = controller_manager(&s, FLAGS);
    create(
        &s,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owner}\ndata: {a: b}\n",
    );
    create(
        &s,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\ndata: {a: b}\n",
    );
    let owner_uid = jsonpath(&s, &["cm", "owner"], "{.metadata.uid}");
    let other_uid = jsonpath(&s, &["cm", "other"], "{.metadata.uid}");
    let owned = |name: &str, refs: &[(&str, &str)]| {
        let refs: Vec<String> = refs
            .iter()
            .map(|(n, u)| format!("{{apiVersion: v1, kind: ConfigMap, name: {n}, uid: {u}}}"))
            .collect();
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, ownerReferences: [{}]}}\n",
            refs.join(", ")
        )
    };
    create(&s, &owned("child", &[("owner", &owner_uid)]));
    // one owner never existed, the other does: only the dangling reference goes
    create(
        &s,
        &owned(
            "two-owners",
            &[
                ("other", &other_uid),
                ("ghost", "00000000-0000-0000-0000-000000000000"),
            ],
        ),
    );
    // its only owner never existed: collected
    create(
        &s,
        &owned(
            "orphaned",
            &[("ghost", "00000000-0000-0000-0000-000000000001")],
        ),
    );
    wait_until("the dangling-only ConfigMap collected", 60, || {
        !exists(&s, &["cm", "orphaned"])
    });
    wait_until("the dangling reference removed", 60, || {
        jsonpath(
            &s,
            &["cm", "two-owners"],
            "{.metadata.ownerReferences[*].name}",
        ) == "other"
    });
    // the owner lives: the child stays
    assert!(exists(&s, &["cm", "child"]));
    s.ok(&["delete", "cm", "owner"]);
    wait_until("the child collected", 60, || !exists(&s, &["cm", "child"]));
    assert!(exists(&s, &["cm", "two-owners"]));
}

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

#[test]
fn kubectl_delete_namespace_empties_and_removes_it() {
    let s = start();
    let _cm = controller_manager(&s, FLAGS);
    create(&s, CRD);
    s.ok(&[
        "wait",
        "--for",
        "condition=established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);
    s.ok(&["create", "namespace", "x"]);
    create(&s, &rs("web", "x"));
    wait_until("2 pods in x", 30, || {
        names(&s, &["-n", "x", "pods"]).len() == 2
    });
    create(
        &s,
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: x}\nsize: 3\n",
    );
    create(
        &s,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, namespace: x, finalizers: [example.com/hold]}\n",
    );
    create(
        &s,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: x}\nstringData: {k: v}\n",
    );

    s.ok(&["delete", "namespace", "x", "--wait=false"]);
    let phase = jsonpath(&s, &["namespace", "x"], "{.status.phase}");
    assert_eq!(phase, "Terminating");
    let table = s.ok(&["get", "namespace", "x"]);
    assert!(table.contains("Terminating"), "{table}");
    // creating in a terminating namespace is refused
    let o = s.kubectl_stdin(
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late, namespace: x}\n"),
    );
    assert!(!o.status.success());

    // everything without a finalizer goes; the held ConfigMap keeps the namespace
    wait_until("namespace x emptied but for the held ConfigMap", 60, || {
        names(&s, &["-n", "x", "pods"]).is_empty()
            && names(&s, &["-n", "x", "replicasets"]).is_empty()
            && names(&s, &["-n", "x", "widgets"]).is_empty()
            && names(&s, &["-n", "x", "secrets"]).is_empty()
    });
    let cond = |t: &str| {
        jsonpath(
            &s,
            &["namespace", "x"],
            &format!("{{.status.conditions[?(@.type==\"{t}\")].message}}"),
        )
    };
    wait_until("the namespace's conditions name what remains", 60, || {
        cond("NamespaceFinalizersRemaining")
            == "Some finalizers are remaining: example.com/hold in 1 resource instances"
    });
    assert_eq!(
        cond("NamespaceContentRemaining"),
        "Some resources are remaining: configmaps. has 1 resource instances"
    );
    assert_eq!(
        cond("NamespaceDeletionDiscoveryFailure"),
        "All resources successfully discovered"
    );
    assert_eq!(
        cond("NamespaceDeletionContentFailure"),
        "All content successfully deleted, may be waiting on finalization"
    );
    let spec_finalizers = jsonpath(&s, &["namespace", "x"], "{.spec.finalizers}");
    assert!(spec_finalizers.contains("kubernetes"), "{spec_finalizers}");
    // deleting again keeps the conditions (only the phase is the API server's)
    s.ok(&["delete", "namespace", "x", "--wait=false"]);
    assert_eq!(
        cond("NamespaceFinalizersRemaining"),
        "Some finalizers are remaining: example.com/hold in 1 resource instances"
    );

    s.ok(&[
        "-n",
        "x",
        "patch",
        "configmap",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    wait_until("namespace x removed", 60, || {
        !exists(&s, &["namespace", "x"])
    });
}
