#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Managed fields and server-side apply, judged by the real kubectl: `apply --server-side`
//! with a conflict, `--force-conflicts`, shared ownership, removal of fields no longer
//! applied, apply creating objects (built-in and custom), and the PatchOptions rules.

mod common;

use common::start;
use serde_json::Value;

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
";

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap().to_string(),
                        e["operation"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn server_side_apply_with_kubectl() {
    let s = start();
    let apply = |args: &[&str], doc: &str| {
        let mut full = vec!["apply", "--server-side", "-f", "-"];
        full.extend_from_slice(args);
        let o = s.kubectl_stdin(&full, Some(doc));
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let get_json = |args: &[&str]| -> Value {
        let mut full = vec!["get", "-o", "json", "--show-managed-fields"];
        full.extend_from_slice(args);
        serde_json::from_str(&s.ok(&full)).unwrap()
    };

    // Every write records its manager.
    s.ok(&["create", "deployment", "web", "--image=nginx"]);
    let d = get_json(&["deployment", "web"]);
    assert_eq!(managers(&d), [("kubectl-create".into(), "Update".into())]);
    let fields = &d["metadata"]["managedFields"][0]["fieldsV1"];
    assert!(
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"]
            ["f:image"]
            .is_object(),
        "{fields}"
    );

    // Applying different values of fields kubectl-create owns is a conflict…
    let (ok, _, err) = apply(&[], DEPLOY);
    assert!(!ok);
    assert!(
        err.contains(
            r#"Apply failed with 2 conflicts: conflicts with "kubectl-create" using apps/v1:"#
        ) && err.contains("- .spec.replicas")
            && err.contains(r#"- .spec.template.spec.containers[name="nginx"].image"#),
        "{err}"
    );
    assert_eq!(
        s.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "1"
    );
    // …that --force-conflicts resolves by taking the fields over.
    let (ok, out, err) = apply(&["--force-conflicts"], DEPLOY);
    assert!(ok, "{err}");
    assert_eq!(out, "deployment.apps/web serverside-applied\n");
    let d = get_json(&["deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 3);
    let ms = managers(&d);
    assert!(ms.contains(&("kubectl".into(), "Apply".into())), "{ms:?}");
    let create = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == "kubectl-create")
        .unwrap();
    assert!(create["fieldsV1"]["f:spec"].get("f:replicas").is_none());

    // The same value from another manager is shared ownership, not a conflict.
    let (ok, _, err) = apply(&["--field-manager=other"], DEPLOY);
    assert!(ok, "{err}");
    // A scale by someone else, then the applier's next apply conflicts on replicas.
    s.ok(&["scale", "deploy", "web", "--replicas=5"]);
    let (ok, _, err) = apply(&[], DEPLOY);
    assert!(!ok && err.contains(".spec.replicas"), "{err}");

    // Apply creates, and fields no longer applied are removed.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: \"1\", b: \"2\"}\n";
    let (ok, out, err) = apply(&[], cm);
    assert!(ok, "{err}");
    assert_eq!(out, "configmap/ssa serverside-applied\n");
    let (ok, _, err) = apply(
        &[],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: \"1\"}\n",
    );
    assert!(ok, "{err}");
    assert_eq!(
        s.ok(&["get", "cm", "ssa", "-o", "jsonpath={.data}"]),
        r#"{"a":"1"}"#
    );
    // Dry run changes nothing.
    let (ok, _, err) = apply(
        &["--dry-run=server"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: \"9\"}\n",
    );
    assert!(ok, "{err}");
    assert_eq!(s.ok(&["get", "cm", "ssa", "-o", "jsonpath={.data.a}"]), "1");

    // Fields the schema does not declare fail the apply, as upstream's typed conversion.
    let (ok, _, err) = apply(
        &[],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndatta: {a: \"1\"}\n",
    );
    assert!(
        !ok && err.contains(
            "failed to create typed patch object (default/bad; /v1, Kind=ConfigMap): .datta: field not declared in schema"
        ),
        "{err}"
    );
}

#[test]
fn patch_options_and_raw_apply() {
    let s = start();
    let raw = |method: &str, path: &str, ct: &str, body: &str| -> (u16, Value) {
        let out = std::process::Command::new("curl")
            .args([
                "-sk",
                "-w",
                "\n%{http_code}",
                "-X",
                method,
                "-H",
                &format!("Content-Type: {ct}"),
                "-H",
                &format!("Authorization: Bearer {}", s.token()),
                "--data-binary",
                body,
                &format!("{}{path}", s.server_url()),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (
            code.parse().unwrap(),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    };
    let cm = "/api/v1/namespaces/default/configmaps/x";
    let doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  k: v\n";
    let (code, v) = raw("PATCH", cm, "application/apply-patch+yaml", doc);
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("fieldManager: Required value"),
        "{v}"
    );
    let (code, v) = raw(
        "PATCH",
        &format!("{cm}?fieldManager=me"),
        "application/apply-patch+yaml",
        doc,
    );
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["metadata"]["managedFields"][0]["manager"], "me");
    assert_eq!(v["metadata"]["managedFields"][0]["operation"], "Apply");
    let (code, v) = raw(
        "PATCH",
        &format!("{cm}?force=true"),
        "application/merge-patch+json",
        r#"{"data":{"k":"w"}}"#,
    );
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("force: Forbidden"),
        "{v}"
    );
    // Another manager changing the value conflicts: 409 with a cause per field.
    let (code, v) = raw(
        "PATCH",
        &format!("{cm}?fieldManager=you"),
        "application/apply-patch+yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  k: other\n",
    );
    assert_eq!(code, 409, "{v}");
    assert_eq!(v["reason"], "Conflict");
    assert_eq!(v["details"]["causes"][0]["reason"], "FieldManagerConflict");
    assert_eq!(v["details"]["causes"][0]["field"], ".data.k");
    assert_eq!(
        v["details"]["causes"][0]["message"],
        r#"conflict with "me""#
    );
    // A configuration for another kind or name is refused.
    let (code, _) = raw(
        "PATCH",
        &format!("{cm}?fieldManager=me"),
        "application/apply-patch+yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n",
    );
    assert_eq!(code, 400);
    let (code, _) = raw(
        "PATCH",
        &format!("{cm}?fieldManager=me"),
        "application/apply-patch+yaml",
        "data: [unclosed",
    );
    assert_eq!(code, 400);
}
