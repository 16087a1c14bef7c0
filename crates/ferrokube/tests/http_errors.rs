#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Bad requests over real HTTPS get upstream's `metav1.Status` with the right code and
//! reason (checked with curl, as a client that does not correct anything for us).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child, u16, tempfile::TempDir);

impl Server {
    /// `Authorization` header with the admin token `ferrokube server` generated.
    /// (`ferrokube apiserver` without token flags has none: anonymous is enough there.)
    fn auth(&self) -> String {
        match std::fs::read_to_string(self.2.path().join("tls/admin.token")) {
            Ok(token) => format!("Authorization: Bearer {}", token.trim()),
            Err(_) => "X-No-Credentials: 1".into(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args([
            "server",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--secure-port",
            &port.to_string(),
            "--disable-scheduler",
            "--disable-controller-manager",
            "--disable-agent",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("server did not start");
        if line.contains("then try") {
            break;
        }
    }
    Server(child, port, dir)
}

/// (status code, body) of a curl request.
fn curl(
    s: &Server,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<&[u8]>,
) -> (u16, serde_json::Value) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sk",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        "-H",
        &format!("Content-Type: {content_type}"),
        "-H",
        &s.auth(),
    ]);
    let file = tempfile::NamedTempFile::new().unwrap();
    if let Some(b) = body {
        std::fs::write(file.path(), b).unwrap();
        cmd.args(["--data-binary", &format!("@{}", file.path().display())]);
    }
    cmd.arg(format!("https://127.0.0.1:{}{path}", s.1));
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

fn expect(
    s: &Server,
    method: &str,
    path: &str,
    ct: &str,
    body: Option<&[u8]>,
    code: u16,
    reason: &str,
) -> serde_json::Value {
    let (got, v) = curl(s, method, path, ct, body);
    assert_eq!(got, code, "{method} {path}: {v}");
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["reason"], reason, "{v}");
    v
}

#[test]
fn bad_requests_get_upstream_statuses() {
    let s = start();
    let cms = "/api/v1/namespaces/default/configmaps";
    expect(
        &s,
        "POST",
        cms,
        "application/json",
        Some(b"{\"apiVersion\":\"v1\",\"kind\":"),
        400,
        "BadRequest",
    );
    expect(
        &s,
        "POST",
        cms,
        "text/plain",
        Some(b"{}"),
        415,
        "UnsupportedMediaType",
    );
    // YAML bodies are read; broken YAML is a 400; a YAML scalar is not an object.
    let (code, v) = curl(
        &s,
        "POST",
        cms,
        "application/yaml",
        Some(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n"),
    );
    assert_eq!((code, v["data"]["k"].as_str()), (201, Some("v")), "{v}");
    let v = expect(
        &s,
        "POST",
        cms,
        "application/yaml",
        Some(b"metadata: [unclosed\n"),
        400,
        "BadRequest",
    );
    assert!(
        v["message"].as_str().unwrap().contains("yaml parse error"),
        "{v}"
    );
    expect(
        &s,
        "POST",
        cms,
        "application/yaml",
        Some(b"just a string\n"),
        400,
        "BadRequest",
    );
    // Asked for as YAML, answered as YAML.
    let out = Command::new("curl")
        .args([
            "-sk",
            "-H",
            "Accept: application/yaml",
            "-H",
            &s.auth(),
            &format!("https://127.0.0.1:{}{cms}/from-yaml", s.1),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("kind: ConfigMap") && text.contains("name: from-yaml"),
        "{text}"
    );
    expect(
        &s,
        "POST",
        cms,
        "application/json",
        Some(br#"{"metadata":{"name":5}}"#),
        400,
        "BadRequest",
    );
    let v = expect(
        &s,
        "POST",
        cms,
        "application/json",
        Some(br#"{"metadata":{"name":"Not_Valid"}}"#),
        422,
        "Invalid",
    );
    assert_eq!(v["details"]["causes"][0]["field"], "metadata.name");
    let big = format!(
        r#"{{"metadata":{{"name":"big"}},"data":{{"k":"{}"}}}}"#,
        "x".repeat(4 << 20)
    );
    expect(
        &s,
        "POST",
        cms,
        "application/json",
        Some(big.as_bytes()),
        413,
        "RequestEntityTooLarge",
    );
    expect(
        &s,
        "GET",
        "/api/v1/nosuchthings",
        "application/json",
        None,
        404,
        "NotFound",
    );
    expect(
        &s,
        "GET",
        "/apis/nosuch.group/v1/things",
        "application/json",
        None,
        404,
        "NotFound",
    );
    expect(
        &s,
        "GET",
        &format!("{cms}/missing"),
        "application/json",
        None,
        404,
        "NotFound",
    );
    expect(
        &s,
        "PUT",
        cms,
        "application/json",
        Some(b"{}"),
        405,
        "MethodNotAllowed",
    );
    expect(
        &s,
        "DELETE",
        "/api/v1/namespaces/default/bindings/x",
        "application/json",
        None,
        405,
        "MethodNotAllowed",
    );
    expect(
        &s,
        "POST",
        "/version",
        "application/json",
        Some(b"{}"),
        405,
        "MethodNotAllowed",
    );
    expect(
        &s,
        "GET",
        &format!("{cms}?labelSelector=a%20in%20"),
        "application/json",
        None,
        400,
        "BadRequest",
    );
    expect(
        &s,
        "GET",
        &format!("{cms}?fieldSelector=spec.nope%3Dx"),
        "application/json",
        None,
        400,
        "BadRequest",
    );
    expect(
        &s,
        "PATCH",
        &format!("{cms}/x"),
        "text/plain",
        Some(b"{}"),
        415,
        "UnsupportedMediaType",
    );
    // Unknown fields (fieldValidation) and wrong types.
    let typo = br#"{"metadata":{"name":"typo"},"datta":{"a":"b"}}"#;
    let v = expect(
        &s,
        "POST",
        &format!("{cms}?fieldValidation=Strict"),
        "application/json",
        Some(typo),
        400,
        "BadRequest",
    );
    assert_eq!(
        v["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"datta\""
    );
    let deploys = "/apis/apps/v1/namespaces/default/deployments";
    let v = expect(
        &s,
        "POST",
        deploys,
        "application/json",
        Some(br#"{"metadata":{"name":"d"},"spec":{"replicas":"x"}}"#),
        400,
        "BadRequest",
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("cannot unmarshal string into Go struct field spec.replicas"),
        "{v}"
    );
    expect(
        &s,
        "POST",
        &format!("{cms}?fieldValidation=Loudly"),
        "application/json",
        Some(b"{}"),
        400,
        "BadRequest",
    );

    // The store is untouched by all of it (but for the one good YAML body).
    let (code, list) = curl(&s, "GET", cms, "application/json", None);
    assert_eq!(code, 200);
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["from-yaml"]);
}

#[test]
fn events_expire_after_event_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let d = dir.path().to_str().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args([
            "apiserver",
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &port.to_string(),
            "--data-dir",
            &format!("{d}/db"),
            "--cert-dir",
            &format!("{d}/tls"),
            "--event-ttl",
            "2s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let s = Server(child, port, dir);
    let deadline = Instant::now() + Duration::from_secs(20);
    while curl(&s, "GET", "/readyz", "application/json", None).0 != 200 {
        assert!(Instant::now() < deadline, "apiserver did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let event = br#"{"apiVersion":"v1","kind":"Event","metadata":{"name":"e1"},"involvedObject":{"kind":"Pod","name":"p","namespace":"default"},"reason":"Test","message":"expires"}"#;
    let (code, _) = curl(
        &s,
        "POST",
        "/api/v1/namespaces/default/events",
        "application/json",
        Some(event),
    );
    assert_eq!(code, 201);
    let cm = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"stays"}}"#;
    assert_eq!(
        curl(
            &s,
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            Some(cm)
        )
        .0,
        201
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while curl(
        &s,
        "GET",
        "/api/v1/namespaces/default/events/e1",
        "application/json",
        None,
    )
    .0 != 404
    {
        assert!(Instant::now() < deadline, "event did not expire");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        curl(
            &s,
            "GET",
            "/api/v1/namespaces/default/configmaps/stays",
            "application/json",
            None
        )
        .0,
        200
    );
}

/// Duplicate fields, as upstream's field validation conformance tests send them: a
/// typed object's JSON (`duplicate field "spec.replicas"` beside the unknown field), a
/// custom resource applied as YAML with a key twice (`line 11: key "foo" already set in
/// map`) even though its schema preserves unknown fields; Ignore keeps the later value.
#[test]
fn duplicate_fields_are_strict_decoding_errors() {
    let s = start();
    let deploys = "/apis/apps/v1/namespaces/default/deployments";
    let body = br#"{"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "my-dep", "labels": {"app": "nginx"}},
        "spec": {"unknownField": "foo", "replicas": 2, "replicas": 3,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {"metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}}}}"#;
    let v = expect(
        &s,
        "POST",
        &format!("{deploys}?fieldManager=field_validation_mgr&fieldValidation=Strict"),
        "application/json",
        Some(body),
        400,
        "BadRequest",
    );
    assert!(
        v["message"].as_str().unwrap().contains(
            r#"strict decoding error: unknown field "spec.unknownField", duplicate field "spec.replicas""#
        ),
        "{v}"
    );
    let (code, created) = curl(
        &s,
        "POST",
        &format!("{deploys}?fieldValidation=Ignore"),
        "application/json",
        Some(body),
    );
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["spec"]["replicas"], 3, "the later value wins");

    // A YAML body with a key twice.
    let cms = "/api/v1/namespaces/default/configmaps";
    let v = expect(
        &s,
        "POST",
        &format!("{cms}?fieldValidation=Strict"),
        "application/yaml",
        Some(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: twice\ndata:\n  a: one\n  a: two\n"),
        400,
        "BadRequest",
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains(r#"line 7: key "a" already set in map"#),
        "{v}"
    );

    // A custom resource whose spec preserves unknown fields, applied as YAML.
    let crd = br#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "noxus.mygroup.example.com"},
        "spec": {"group": "mygroup.example.com", "scope": "Cluster",
            "names": {"plural": "noxus", "singular": "noxu", "kind": "WishIHadChosenNoxu"},
            "versions": [{"name": "v1beta1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"foo": {"type": "string"}, "cronSpec": {"type": "string"}}}}}}}]}}"#;
    let (code, v) = curl(
        &s,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "application/json",
        Some(crd),
    );
    assert_eq!(code, 201, "{v}");
    let noxus = "/apis/mygroup.example.com/v1beta1/noxus";
    let deadline = Instant::now() + Duration::from_secs(20);
    while curl(&s, "GET", noxus, "application/json", None).0 != 200 {
        assert!(Instant::now() < deadline, "the CRD was not served");
        std::thread::sleep(Duration::from_millis(100));
    }
    let apply = b"
apiVersion: mygroup.example.com/v1beta1
kind: WishIHadChosenNoxu
metadata:
  name: mytest
  finalizers:
  - test-finalizer
spec:
  unknown: uk1
  foo: foo1
  foo: foo2
  cronSpec: \"* * * * */5\"
";
    let (code, v) = curl(
        &s,
        "PATCH",
        &format!("{noxus}/mytest?fieldManager=field_validation_mgr&fieldValidation=Strict"),
        "application/apply-patch+yaml",
        Some(apply),
    );
    assert_eq!(code, 400, "{v}");
    let raw = serde_json::to_string(&v).unwrap();
    assert!(
        raw.contains(r#"line 11: key \"foo\" already set in map"#),
        "{raw}"
    );
    let (code, v) = curl(
        &s,
        "PATCH",
        &format!("{noxus}/mytest?fieldManager=field_validation_mgr&fieldValidation=Ignore"),
        "application/apply-patch+yaml",
        Some(apply),
    );
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["spec"]["foo"], "foo2");
    assert_eq!(v["spec"]["unknown"], "uk1");

    // A field the schema does not declare (outside the preserving spec) fails the apply
    // as upstream's typed conversion does, whatever the validation mode.
    let extra = b"
apiVersion: mygroup.example.com/v1beta1
kind: WishIHadChosenNoxu
metadata:
  name: mytest
unknownField: unknown
spec:
  foo: foo1
";
    for mode in ["Strict", "Ignore"] {
        let (code, v) = curl(
            &s,
            "PATCH",
            &format!("{noxus}/mytest?fieldManager=field_validation_mgr&fieldValidation={mode}"),
            "application/apply-patch+yaml",
            Some(extra),
        );
        assert_eq!(code, 500, "{v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .ends_with("WishIHadChosenNoxu): .unknownField: field not declared in schema"),
            "{v}"
        );
    }
}
