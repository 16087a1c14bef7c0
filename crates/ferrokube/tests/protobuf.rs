#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Protobuf responses (`application/vnd.kubernetes.protobuf`), as client-go and kubectl's
//! typed commands negotiate them: objects, lists, errors, watch streams and
//! PartialObjectMetadata in protobuf for built-in kinds, JSON for custom resources; and
//! kubectl's typed commands (whose Go decoder reads our protobuf) end to end.

mod common;

use std::process::Command;

use ferrokube_api::protobuf::{decode_message, decode_object, message_for};
use serde_json::{json, Value};

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

struct Reply {
    code: u16,
    content_type: String,
    body: Vec<u8>,
}

fn curl(s: &common::Server, accept: &str, path: &str, extra: &[&str]) -> Reply {
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body");
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "10", "-D", "-", "-o"])
        .arg(&body_file)
        .args(["-H", &format!("Authorization: Bearer {}", s.token())])
        .args(["-H", &format!("Accept: {accept}")])
        .args(extra)
        .arg(format!("{}{path}", s.server_url()))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = head
        .lines()
        .rfind(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Reply {
        code,
        content_type,
        body: std::fs::read(&body_file).unwrap_or_default(),
    }
}

fn json_get(s: &common::Server, path: &str) -> Value {
    let r = curl(s, "application/json", path, &[]);
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
    serde_json::from_slice(&r.body).unwrap()
}

fn protobuf_get(s: &common::Server, path: &str) -> Value {
    let r = curl(s, &format!("{PROTOBUF}, application/json"), path, &[]);
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.content_type, PROTOBUF);
    decode_object(&r.body).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Length-delimited fields of a protobuf message: (tag, bytes); varints are skipped.
fn fields(mut b: &[u8]) -> Vec<(u64, Vec<u8>)> {
    fn varint(b: &mut &[u8]) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = b[0];
            *b = &b[1..];
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        v
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b);
        match key & 7 {
            0 => {
                varint(&mut b);
            }
            2 => {
                let n = varint(&mut b) as usize;
                out.push((key >> 3, b[..n].to_vec()));
                b = &b[n..];
            }
            w => panic!("unexpected wire type {w}"),
        }
    }
    out
}

/// The raw message inside a `k8s\0` + runtime.Unknown body.
fn unwrap_envelope(body: &[u8]) -> (String, Vec<u8>) {
    let rest = body.strip_prefix(b"k8s\0".as_slice()).expect("k8s magic");
    let fs = fields(rest);
    let type_meta = &fs.iter().find(|(t, _)| *t == 1).unwrap().1;
    let kind = fields(type_meta)
        .into_iter()
        .find(|(t, _)| *t == 2)
        .map(|(_, k)| String::from_utf8(k).unwrap())
        .unwrap();
    let raw = fs.into_iter().find(|(t, _)| *t == 2).unwrap().1;
    (kind, raw)
}

/// Everything the JSON answer says, the protobuf answer says too.
fn assert_same(json: &Value, pb: &Value, at: &str) {
    match (json, pb) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                // List items carry no type meta in protobuf (nor in upstream's JSON).
                if at.ends_with(']') && matches!(k.as_str(), "apiVersion" | "kind") {
                    continue;
                }
                match b.get(k) {
                    Some(w) => assert_same(v, w, &format!("{at}.{k}")),
                    // The zero values protobuf leaves out (Go's omitempty would too).
                    None => assert!(
                        matches!(v, Value::Null)
                            || v == &json!(false)
                            || v == &json!(0)
                            || v == &json!("")
                            || v == &json!({})
                            || v == &json!([]),
                        "{at}.{k} = {v} missing from the protobuf answer"
                    ),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{at}");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_same(x, y, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(json, pb, "{at}"),
    }
}

#[test]
fn protobuf_responses() {
    let s = common::start();
    s.ok(&["create", "configmap", "cm", "--from-literal=color=blue"]);
    s.ok(&["create", "secret", "generic", "sec", "--from-literal=k=v"]);
    s.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=0",
        "--port=80",
    ]);
    s.ok(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
    ]);

    // Objects: the same content in both encodings.
    for path in [
        "/api/v1/namespaces/default/configmaps/cm",
        "/api/v1/namespaces/default/secrets/sec",
        "/apis/apps/v1/namespaces/default/deployments/web",
        "/api/v1/namespaces/default/services/web",
        "/api/v1/namespaces/default",
    ] {
        assert_same(&json_get(&s, path), &protobuf_get(&s, path), path);
    }
    let deployment = protobuf_get(&s, "/apis/apps/v1/namespaces/default/deployments/web");
    assert_eq!(
        deployment["spec"]["replicas"], 0,
        "a pointer's zero is kept"
    );
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
        "25%"
    );

    // Lists.
    let list = protobuf_get(&s, "/api/v1/namespaces/default/configmaps");
    assert_eq!(list["kind"], "ConfigMapList");
    assert_same(
        &json_get(&s, "/api/v1/namespaces/default/configmaps"),
        &list,
        "configmaps",
    );
    let list = protobuf_get(&s, "/api/v1/namespaces?limit=2");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(list["metadata"]["continue"].as_str().is_some());

    // Errors are a Status in protobuf.
    let r = curl(
        &s,
        PROTOBUF,
        "/api/v1/namespaces/default/configmaps/missing",
        &[],
    );
    assert_eq!(r.code, 404);
    assert_eq!(r.content_type, PROTOBUF);
    let status = decode_object(&r.body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(status["code"], 404);
    assert_eq!(status["details"]["name"], "missing");

    // A protobuf create body answered in protobuf (round trip through our own encoder).
    let body = ferrokube_api::protobuf::encode_object(&json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "from-pb", "labels": {"made": "protobuf"}},
        "data": {"a": "1"},
    }))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cm.pb");
    std::fs::write(&file, &body).unwrap();
    let r = curl(
        &s,
        PROTOBUF,
        "/api/v1/namespaces/default/configmaps",
        &[
            "-X",
            "POST",
            "-H",
            &format!("Content-Type: {PROTOBUF}"),
            "--data-binary",
            &format!("@{}", file.display()),
        ],
    );
    assert_eq!(r.code, 201, "{}", String::from_utf8_lossy(&r.body));
    let created = decode_object(&r.body).unwrap();
    assert_eq!(created["metadata"]["labels"]["made"], "protobuf");
    assert!(created["metadata"]["uid"].as_str().is_some());

    // PartialObjectMetadataList, as the metadata informers of client-go ask for it.
    let r = curl(
        &s,
        &format!("{PROTOBUF};as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"),
        "/api/v1/namespaces/default/configmaps",
        &[],
    );
    assert_eq!(r.code, 200);
    assert_eq!(r.content_type, PROTOBUF);
    let (kind, raw) = unwrap_envelope(&r.body);
    assert_eq!(kind, "PartialObjectMetadataList");
    // Same layout as a list of objects that have nothing but metadata.
    let meta = decode_message(message_for("", "v1", "ConfigMapList").unwrap(), &raw, 0).unwrap();
    let names: Vec<&str> = meta["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"cm") && names.contains(&"from-pb"),
        "{names:?}"
    );
    assert!(meta["items"][0].get("data").is_none());

    // Watch: length-prefixed WatchEvents whose object is an enveloped body.
    let r = curl(
        &s,
        &format!("{PROTOBUF}, application/json"),
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0&timeoutSeconds=1",
        &[],
    );
    assert_eq!(
        r.content_type,
        "application/vnd.kubernetes.protobuf;stream=watch"
    );
    let mut rest = r.body.as_slice();
    let mut seen = Vec::new();
    while !rest.is_empty() {
        let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let event = fields(&rest[4..4 + n]);
        rest = &rest[4 + n..];
        let typ = String::from_utf8(event[0].1.clone()).unwrap();
        let raw_ext = fields(&event[1].1);
        let obj = decode_object(&raw_ext[0].1).unwrap();
        seen.push((typ, obj["metadata"]["name"].as_str().unwrap().to_string()));
    }
    assert!(seen.contains(&("ADDED".into(), "cm".into())), "{seen:?}");

    // Custom resources have no protobuf form: JSON when the client takes it, else 406.
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(
            r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "widgets.example.com"},
  "spec": {"group": "example.com", "scope": "Namespaced",
    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
    "versions": [{"name": "v1", "served": true, "storage": true,
      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}"#,
        ),
    );
    common::wait_until("the widgets resource", 20, || {
        curl(&s, "application/json", "/apis/example.com/v1/widgets", &[]).code == 200
    });
    let r = curl(
        &s,
        &format!("{PROTOBUF}, application/json"),
        "/apis/example.com/v1/namespaces/default/widgets",
        &[],
    );
    assert_eq!(r.code, 200);
    assert_eq!(r.content_type, "application/json");
    let r = curl(
        &s,
        PROTOBUF,
        "/apis/example.com/v1/namespaces/default/widgets",
        &[],
    );
    assert_eq!(r.code, 406);
}

/// kubectl's typed commands ask for protobuf; Go's decoder reads what we send.
#[test]
fn kubectl_typed_commands_read_protobuf() {
    let s = common::start();
    let out: Value = serde_json::from_str(&s.ok(&[
        "create",
        "configmap",
        "typed",
        "--from-literal=a=b",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(out["data"]["a"], "b");
    assert!(out["metadata"]["uid"].as_str().is_some());
    assert!(out["metadata"]["creationTimestamp"].as_str().is_some());

    let out: Value = serde_json::from_str(&s.ok(&[
        "create",
        "deployment",
        "d",
        "--image=busybox",
        "--replicas=0",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(out["spec"]["replicas"], 0);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox"
    );

    let out: Value = serde_json::from_str(&s.ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "--from-literal=k=v",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(out["data"]["k"], "dg==");

    assert!(s
        .ok(&["create", "serviceaccount", "bot"])
        .contains("serviceaccount/bot created"));
    let token = s.ok(&["create", "token", "bot"]);
    assert_eq!(token.trim().split('.').count(), 3, "{token}");
    assert_eq!(s.ok(&["auth", "can-i", "create", "pods"]).trim(), "yes");
    assert!(s.ok(&["auth", "whoami"]).contains("system:masters"));

    // cordon and drain: a node, a pod bound to it, the pod evicted (a protobuf Eviction).
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(r#"{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}"#),
    );
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(
            r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
  "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}"#,
        ),
    );
    assert!(s.ok(&["cordon", "n1"]).contains("node/n1 cordoned"));
    let node: Value = serde_json::from_str(&s.ok(&["get", "node", "n1", "-o", "json"])).unwrap();
    assert_eq!(node["spec"]["unschedulable"], true);
    let o = s.kubectl(&[
        "drain",
        "n1",
        "--force",
        "--grace-period=0",
        "--timeout=30s",
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    assert!(text.contains("evicting pod default/p1"), "{text}");
    assert!(text.contains("node/n1 drained"), "{text}");
    assert!(s.ok(&["uncordon", "n1"]).contains("node/n1 uncordoned"));
}
