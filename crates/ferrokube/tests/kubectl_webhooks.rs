#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Admission webhooks as a kubectl user meets them: a real HTTPS webhook server (its
//! certificate given as the configuration's caBundle) mutates and validates writes made
//! with kubectl; namespace selectors, matchConditions, DELETE reviews, dry runs,
//! warnings, failure policies and timeouts behave as upstream's.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use common::{start, wait_until};
use serde_json::{json, Value};

type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// What the test webhooks answer for a review at `path`.
fn answer(path: &str, review: &Value) -> Value {
    let req = &review["request"];
    let uid = req["uid"].clone();
    let labels = &req["object"]["metadata"]["labels"];
    let response = match path {
        "/mutate" => {
            let patch = if labels.is_object() {
                json!([{"op": "add", "path": "/metadata/labels/webhook", "value": "mutated"}])
            } else {
                json!([{"op": "add", "path": "/metadata/labels", "value": {"webhook": "mutated"}}])
            };
            let patch = base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(&patch).unwrap());
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": patch, "warnings": ["mutated by the test webhook"]})
        }
        "/validate" if labels["deny"] == "true" => {
            json!({"uid": uid, "allowed": false, "status": {"code": 403, "message": "objects labelled deny=true are refused"}})
        }
        "/slow" => {
            std::thread::sleep(Duration::from_secs(3));
            json!({"uid": uid, "allowed": true})
        }
        "/wrong-uid" => json!({"uid": "not-the-uid", "allowed": true}),
        "/deny-all" => {
            json!({"uid": uid, "allowed": false, "status": {"code": 403, "message": "refused by deny-all"}})
        }
        _ => json!({"uid": uid, "allowed": true}),
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

/// Starts the webhook server on 127.0.0.1; returns its port, caBundle (base64) and the
/// reviews it received.
fn webhook_server() -> (u16, String, Seen) {
    let (cert, chain, key) = common::https::loopback_cert();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    let port = common::https::serve(config, move |req, _| {
        let review: Value = serde_json::from_slice(&req.body).unwrap();
        let path = req.path().to_string();
        seen2.lock().unwrap().push((path.clone(), review.clone()));
        (200, answer(&path, &review))
    });
    let ca = base64::engine::general_purpose::STANDARD.encode(cert);
    (port, ca, seen)
}

fn reviews(seen: &Seen, path: &str) -> Vec<Value> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == path)
        .map(|(_, r)| r["request"].clone())
        .collect()
}

#[test]
fn admission_webhooks_with_kubectl() {
    let s = start();
    let (port, ca, seen) = webhook_server();
    let hooks = format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: label-configmaps}}
webhooks:
- name: label.ferrokube.test
  clientConfig: {{url: "https://127.0.0.1:{port}/mutate", caBundle: "{ca}"}}
  rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}}]
  objectSelector: {{matchExpressions: [{{key: skip, operator: DoesNotExist}}]}}
  sideEffects: None
  admissionReviewVersions: [v1]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: refuse-denied}}
webhooks:
- name: deny.ferrokube.test
  clientConfig: {{url: "https://127.0.0.1:{port}/validate", caBundle: "{ca}"}}
  rules: [{{operations: [CREATE, UPDATE, DELETE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}}]
  namespaceSelector: {{matchLabels: {{webhooks: "on"}}}}
  sideEffects: None
  admissionReviewVersions: [v1]
"#
    );
    s.kubectl_stdin(&["apply", "-f", "-"], Some(&hooks));
    // v1's defaults are filled in.
    assert_eq!(
        s.ok(&["get", "mutatingwebhookconfiguration", "label-configmaps", "-o",
            "jsonpath={.webhooks[0].failurePolicy} {.webhooks[0].matchPolicy} {.webhooks[0].timeoutSeconds} {.webhooks[0].reinvocationPolicy} {.webhooks[0].rules[0].scope}"]),
        "Fail Equivalent 10 Never *"
    );

    // Mutation: the label is added and the warning shown; the configuration takes effect
    // once the server has seen it.
    let mut n = 0;
    // Creates fresh ConfigMaps until one's labels (as `path` shows them) satisfy `ok`.
    let mut until_created = |what: &str, path: &str, ok: &dyn Fn(&str) -> bool| {
        wait_until(what, 20, || {
            n += 1;
            let name = format!("probe-{n}");
            s.ok(&["create", "configmap", &name]);
            ok(&s.ok(&["get", "configmap", &name, "-o", path]))
        });
    };
    until_created(
        "the mutating webhook to take effect",
        "jsonpath={.metadata.labels.webhook}",
        &|v| v == "mutated",
    );
    let out = s.kubectl(&["create", "configmap", "mutated", "--from-literal=k=v"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Warning: mutated by the test webhook"),
        "{stderr}"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "configmap",
            "mutated",
            "-o",
            "jsonpath={.metadata.labels.webhook} {.data.k}"
        ]),
        "mutated v"
    );
    let review = reviews(&seen, "/mutate").last().cloned().unwrap();
    assert_eq!(review["operation"], "CREATE");
    assert_eq!(
        review["kind"],
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    assert_eq!(review["resource"]["resource"], "configmaps");
    assert_eq!(review["namespace"], "default");
    assert_eq!(review["object"]["data"]["k"], "v");
    assert_eq!(review["oldObject"], Value::Null);
    assert_eq!(review["options"]["kind"], "CreateOptions");
    assert!(
        review["userInfo"]["username"]
            .as_str()
            .is_some_and(|u| !u.is_empty()),
        "{review}"
    );
    // The object selector exempts labelled objects.
    s.ok(&["create", "configmap", "exempt"]);
    s.ok(&["label", "configmap", "exempt", "skip=yes"]);
    let yaml =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: skipped, labels: {skip: \"yes\"}}\n";
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(yaml))
        .status
        .success());
    assert_eq!(
        s.ok(&[
            "get",
            "configmap",
            "skipped",
            "-o",
            "jsonpath={.metadata.labels}"
        ]),
        r#"{"skip":"yes"}"#
    );

    // Validation only in namespaces the selector picks.
    s.ok(&["create", "namespace", "guarded"]);
    s.ok(&["label", "namespace", "guarded", "webhooks=on"]);
    let denied =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad, labels: {deny: \"true\"}}\n";
    let out = s.kubectl_stdin(&["create", "-n", "guarded", "-f", "-"], Some(denied));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // The webhook's code with no reason: kubectl says "Error from server:", as upstream.
    assert!(
        err.contains(r#"Error from server: error when creating "STDIN": admission webhook "deny.ferrokube.test" denied the request: objects labelled deny=true are refused"#),
        "{err}"
    );
    assert!(s
        .kubectl_stdin(&["create", "-n", "default", "-f", "-"], Some(denied))
        .status
        .success());
    s.ok(&["create", "configmap", "ok", "-n", "guarded"]);
    let err = s.fails(&["label", "configmap", "ok", "-n", "guarded", "deny=true"]);
    assert!(err.contains("denied the request"), "{err}");
    let update = reviews(&seen, "/validate").last().cloned().unwrap();
    assert_eq!(update["operation"], "UPDATE");
    assert_eq!(update["oldObject"]["metadata"]["name"], "ok");
    assert_eq!(update["object"]["metadata"]["labels"]["deny"], "true");
    assert_eq!(update["options"]["kind"], "PatchOptions");
    // Deletes are reviewed with the stored object as oldObject.
    s.ok(&["delete", "configmap", "ok", "-n", "guarded"]);
    let delete = reviews(&seen, "/validate").last().cloned().unwrap();
    assert_eq!(delete["operation"], "DELETE");
    assert_eq!(delete["name"], "ok");
    assert_eq!(delete["object"], Value::Null);
    assert_eq!(delete["oldObject"]["metadata"]["name"], "ok");
    assert_eq!(delete["options"]["kind"], "DeleteOptions");
    // Dry runs reach webhooks without side effects, flagged.
    s.ok(&[
        "create",
        "configmap",
        "dry",
        "-n",
        "guarded",
        "--dry-run=server",
    ]);
    assert_eq!(reviews(&seen, "/validate").last().unwrap()["dryRun"], true);
    assert!(
        s.kubectl(&["get", "configmap", "dry", "-n", "guarded"])
            .status
            .code()
            != Some(0)
    );

    // A webhook that cannot answer in time fails closed, or open with Ignore.
    let slow = format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: slow-secrets}}
webhooks:
- name: slow.ferrokube.test
  clientConfig: {{url: "https://127.0.0.1:{port}/slow", caBundle: "{ca}"}}
  rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [secrets]}}]
  timeoutSeconds: 1
  sideEffects: None
  admissionReviewVersions: [v1]
"#
    );
    s.kubectl_stdin(&["apply", "-f", "-"], Some(&slow));
    let mut n = 0;
    let mut err = String::new();
    wait_until("the slow webhook to take effect", 20, || {
        n += 1;
        let o = s.kubectl(&["create", "secret", "generic", &format!("s{n}")]);
        err = String::from_utf8_lossy(&o.stderr).into_owned();
        !o.status.success()
    });
    assert!(
        err.contains(r#"Internal error occurred: failed calling webhook "slow.ferrokube.test": failed to call webhook: Post "https://127.0.0.1:"#)
            && err.contains("/slow?timeout=1s\": context deadline exceeded"),
        "{err}"
    );
    s.ok(&[
        "patch",
        "validatingwebhookconfiguration",
        "slow-secrets",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/webhooks/0/failurePolicy","value":"Ignore"}]"#,
    ]);
    wait_until("failurePolicy Ignore to take effect", 20, || {
        n += 1;
        s.kubectl(&["create", "secret", "generic", &format!("s{n}")])
            .status
            .success()
    });

    // A webhook whose answer is not for this request, or that is not listening.
    let closed = common::free_port();
    let broken = format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: broken}}
webhooks:
- name: wrong-uid.ferrokube.test
  clientConfig: {{url: "https://127.0.0.1:{port}/wrong-uid", caBundle: "{ca}"}}
  rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [serviceaccounts]}}]
  sideEffects: None
  admissionReviewVersions: [v1]
- name: closed.ferrokube.test
  clientConfig: {{url: "https://127.0.0.1:{closed}/", caBundle: "{ca}"}}
  rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [serviceaccounts]}}]
  namespaceSelector: {{matchLabels: {{webhooks: "on"}}}}
  sideEffects: None
  admissionReviewVersions: [v1]
"#
    );
    s.kubectl_stdin(&["apply", "-f", "-"], Some(&broken));
    let mut err = String::new();
    wait_until("the broken webhooks to take effect", 20, || {
        n += 1;
        let o = s.kubectl(&["create", "serviceaccount", &format!("sa{n}")]);
        err = String::from_utf8_lossy(&o.stderr).into_owned();
        !o.status.success()
    });
    assert!(err.contains(r#"failed calling webhook "wrong-uid.ferrokube.test": failed to call webhook: expected response.uid="#), "{err}");
    s.ok(&["delete", "validatingwebhookconfiguration", "broken"]);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&broken.replace("/wrong-uid", "/allow")),
    );
    wait_until("the refused connection to be reported", 20, || {
        n += 1;
        let o = s.kubectl(&[
            "create",
            "serviceaccount",
            &format!("sa{n}"),
            "-n",
            "guarded",
        ]);
        err = String::from_utf8_lossy(&o.stderr).into_owned();
        !o.status.success() && err.contains("closed.ferrokube.test")
    });
    assert!(err.contains("connect: connection refused"), "{err}");
    // Upstream's webhook metrics.
    let metrics = s.ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics.contains(r#"apiserver_admission_webhook_rejection_count{error_type="no_error",name="deny.ferrokube.test",operation="CREATE",rejection_code="403",type="validating"} 1"#)
            && metrics.contains(r#"apiserver_admission_webhook_rejection_count{error_type="calling_webhook_error",name="slow.ferrokube.test",operation="CREATE",rejection_code="0",type="validating"}"#)
            && metrics.contains(r#"apiserver_admission_webhook_admission_duration_seconds_count{name="label.ferrokube.test",operation="CREATE",rejected="false",type="admit"}"#),
        "{metrics}"
    );
    // Webhook configurations are never sent to webhooks: they can always be removed.
    s.ok(&[
        "delete",
        "validatingwebhookconfiguration",
        "broken",
        "slow-secrets",
        "refuse-denied",
    ]);
    s.ok(&["delete", "mutatingwebhookconfiguration", "label-configmaps"]);
    until_created(
        "the webhooks to be gone",
        "jsonpath={.metadata.labels}",
        &str::is_empty,
    );
}

#[test]
fn webhook_match_conditions_with_kubectl() {
    let s = common::start_with(&["--disable-metrics-server"]);
    let (port, ca, seen) = webhook_server();
    let config = |expr: &str, policy: &str| {
        format!(
            r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: conditional}}
webhooks:
- name: conditional.ferrokube.test
  clientConfig: {{url: "https://127.0.0.1:{port}/deny-all", caBundle: "{ca}"}}
  rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}}]
  failurePolicy: {policy}
  matchConditions:
  - name: checked
    expression: "{expr}"
  - name: not-kube-system
    expression: "request.namespace != 'kube-system'"
  sideEffects: None
  admissionReviewVersions: [v1]
"#
        )
    };
    // An expression that does not compile is refused with the compiler's message.
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&config("object.metadata.(", "Fail")),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("webhooks[0].matchConditions[0].expression: Invalid value: \"object.metadata.(\": compilation failed: ERROR: <input>:1:"),
        "{err}"
    );
    let checked = "has(object.metadata.labels) && object.metadata.labels['check'] == 'yes'";
    assert!(s
        .kubectl_stdin(&["apply", "-f", "-"], Some(&config(checked, "Fail")))
        .status
        .success());
    let labelled =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: NAME, labels: {check: \"yes\"}}\n";
    let mut n = 0;
    wait_until("the conditional webhook to take effect", 20, || {
        n += 1;
        let yaml = labelled.replace("NAME", &format!("probe-{n}"));
        !s.kubectl_stdin(&["create", "-f", "-"], Some(&yaml))
            .status
            .success()
    });
    let called = reviews(&seen, "/deny-all").len();
    // Conditions that are false skip the webhook: it is not even called.
    s.ok(&["create", "configmap", "unlabelled"]);
    s.ok(&["create", "configmap", "in-system", "-n", "kube-system"]);
    assert_eq!(reviews(&seen, "/deny-all").len(), called);
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        Some(&labelled.replace("NAME", "checked")),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused by deny-all"), "{err}");
    assert_eq!(reviews(&seen, "/deny-all").len(), called + 1);

    // A condition that fails to evaluate fails the request, or skips the webhook under
    // failurePolicy Ignore.
    let erring = "object.data.k == 'v'";
    assert!(s
        .kubectl_stdin(&["apply", "-f", "-"], Some(&config(erring, "Fail")))
        .status
        .success());
    let mut err = String::new();
    wait_until("the erring condition to take effect", 20, || {
        n += 1;
        let o = s.kubectl(&["create", "configmap", &format!("e{n}")]);
        err = String::from_utf8_lossy(&o.stderr).into_owned();
        err.contains("resulted in error")
    });
    assert!(
        err.contains("is forbidden: failed calling webhook \"conditional.ferrokube.test\": expression 'object.data.k == 'v'' resulted in error: no such key: data"),
        "{err}"
    );
    assert!(s
        .kubectl_stdin(&["apply", "-f", "-"], Some(&config(erring, "Ignore")))
        .status
        .success());
    wait_until("failurePolicy Ignore to skip the webhook", 20, || {
        n += 1;
        s.kubectl(&["create", "configmap", &format!("e{n}")])
            .status
            .success()
    });
    // With data the condition holds and the webhook is called.
    let err = s.fails(&["create", "configmap", "with-data", "--from-literal=k=v"]);
    assert!(err.contains("refused by deny-all"), "{err}");
}
