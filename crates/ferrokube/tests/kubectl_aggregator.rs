#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The API aggregation layer as a kubectl user meets it: an extension API server (a
//! small HTTPS server here, like upstream's sample-apiserver) registered with an
//! APIService behind a selectorless Service becomes Available, joins discovery
//! (`kubectl api-resources`, `kubectl get`), and receives requests with the caller's
//! identity in X-Remote-* headers over the API server's proxy-client certificate; when
//! it fails, the APIService turns False and requests get 503.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{start, wait_until};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::{json, Value};

const GV: &str = "/apis/wardle.example.com/v1alpha1";

struct Backend {
    /// Answer 500 to everything.
    down: AtomicBool,
    /// The DER of the client certificate the API server must present.
    proxy_cert: Vec<u8>,
}

/// What the extension server answers.
fn respond(
    req: &common::https::Request,
    conn: &rustls::ServerConnection,
    backend: &Backend,
) -> (u16, Value) {
    let path = req.target.as_str();
    let presented = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .is_some_and(|c| c.as_ref() == backend.proxy_cert.as_slice());
    if backend.down.load(Ordering::SeqCst) {
        (
            500,
            json!({"kind": "Status", "status": "Failure", "code": 500}),
        )
    } else if path == GV {
        (
            200,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "wardle.example.com/v1alpha1",
                "resources": [{"name": "flunders", "singularName": "flunder", "namespaced": true,
                    "kind": "Flunder", "verbs": ["get", "list"], "shortNames": ["fl"]}]}),
        )
    } else if path.starts_with(&format!("{GV}/namespaces/default/flunders")) {
        let seen = json!({
            "user": req.header("x-remote-user"),
            "groups": req.header("x-remote-group"),
            "authorization": req.header("authorization"),
            "proxyCertificate": presented,
            "path": path,
        });
        (
            200,
            json!({"kind": "FlunderList", "apiVersion": "wardle.example.com/v1alpha1",
                "metadata": {"resourceVersion": "1"},
                "items": [{"kind": "Flunder", "apiVersion": "wardle.example.com/v1alpha1",
                    "metadata": {"name": "one", "namespace": "default",
                        "annotations": {"seen": seen.to_string()}}}]}),
        )
    } else {
        (
            404,
            json!({"kind": "Status", "status": "Failure", "code": 404}),
        )
    }
}

/// The extension API server on 127.0.0.1 (self-signed; client certificates from the
/// cluster CA are asked for, not required); returns its port and state.
fn backend(pki: &std::path::Path) -> (u16, Arc<Backend>) {
    let (_, chain, key) = common::https::loopback_cert();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca = std::fs::read(pki.join("ca.pem")).unwrap();
    let roots = Arc::new(ferrokube_component_base::tls::root_store(&ca).unwrap());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .allow_unauthenticated()
            .build()
            .unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let proxy_pem = std::fs::read(pki.join("proxy-client.pem")).unwrap();
    let backend = Arc::new(Backend {
        down: AtomicBool::new(false),
        proxy_cert: CertificateDer::from_pem_slice(&proxy_pem).unwrap().to_vec(),
    });
    let b = backend.clone();
    let port = common::https::serve(config, move |req, conn| respond(req, conn, &b));
    (port, backend)
}

fn condition(s: &common::Server, name: &str) -> String {
    s.ok(&[
        "get",
        "apiservice",
        name,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Available\")].status}/{.status.conditions[?(@.type==\"Available\")].reason}",
    ])
}

#[test]
fn aggregated_api_servers_with_kubectl() {
    let s = start();
    let pki = s.data_dir().join("pki");
    let (port, backend) = backend(&pki);
    let manifests = format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: wardle-api, namespace: default}}
spec:
  ports: [{{name: https, port: 443, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: wardle-api-1
  namespace: default
  labels: {{kubernetes.io/service-name: wardle-api}}
addressType: IPv4
endpoints: [{{addresses: [127.0.0.1]}}]
ports: [{{name: https, port: {port}, protocol: TCP}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1alpha1.wardle.example.com}}
spec:
  group: wardle.example.com
  version: v1alpha1
  groupPriorityMinimum: 1000
  versionPriority: 15
  insecureSkipTLSVerify: true
  service: {{namespace: default, name: wardle-api}}
"#
    );
    s.kubectl_stdin(&["apply", "-f", "-"], Some(&manifests));
    wait_until("the APIService to become available", 30, || {
        condition(&s, "v1alpha1.wardle.example.com") == "True/Passed"
    });
    // The port was defaulted; built-in group-versions are listed as Local.
    assert_eq!(
        s.ok(&[
            "get",
            "apiservice",
            "v1alpha1.wardle.example.com",
            "-o",
            "jsonpath={.spec.service.port}"
        ]),
        "443"
    );
    let table = s.ok(&["get", "apiservices"]);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(row("v1.apps"), "v1.apps Local True", "{table}");
    assert_eq!(row("v1."), "v1. Local True", "{table}");
    assert_eq!(
        row("v1alpha1.wardle.example.com"),
        "v1alpha1.wardle.example.com default/wardle-api True",
        "{table}"
    );

    // Discovery includes the remote group; kubectl finds the resource through it.
    let resources = s.ok(&[
        "api-resources",
        "--api-group=wardle.example.com",
        "--no-headers",
    ]);
    assert!(
        resources.contains("flunders") && resources.contains("Flunder"),
        "{resources}"
    );
    assert!(s
        .ok(&["api-versions"])
        .lines()
        .any(|l| l == "wardle.example.com/v1alpha1"));
    assert_eq!(
        s.ok(&["get", "flunders", "-o", "name"]).trim(),
        "flunder.wardle.example.com/one"
    );

    // The request reached the backend with the caller's identity, not its credentials,
    // over the proxy-client certificate.
    let list: Value = serde_json::from_str(&s.ok(&[
        "get",
        "--raw",
        &format!("{GV}/namespaces/default/flunders?limit=5"),
    ]))
    .unwrap();
    let seen: Value = serde_json::from_str(
        list["items"][0]["metadata"]["annotations"]["seen"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(seen["user"], json!(["admin"]), "{seen}");
    let groups = seen["groups"].as_array().unwrap();
    assert!(
        groups.contains(&json!("system:masters"))
            && groups.contains(&json!("system:authenticated")),
        "{seen}"
    );
    assert_eq!(seen["authorization"], json!([]), "{seen}");
    assert_eq!(seen["proxyCertificate"], json!(true), "{seen}");
    assert_eq!(
        seen["path"],
        json!(format!("{GV}/namespaces/default/flunders?limit=5"))
    );

    // Authorization happens here first: an unprivileged user never reaches the backend.
    let denied = s.fails(&["get", "flunders", "--as=nobody"]);
    assert!(
        denied.contains("forbidden") && denied.contains("flunders.wardle.example.com"),
        "{denied}"
    );

    // Validation: the name must be <version>.<group>.
    let bad = r#"{"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1.wrong.example.com"},
        "spec": {"group": "wardle.example.com", "version": "v1", "groupPriorityMinimum": 1, "versionPriority": 1,
                 "service": {"namespace": "default", "name": "wardle-api"}}}"#;
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(bad));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("must be `spec.version+\".\"+spec.group`"),
        "{err}"
    );

    // A Service that does not exist.
    let missing = r#"{"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1.missing.example.com"},
        "spec": {"group": "missing.example.com", "version": "v1", "groupPriorityMinimum": 1, "versionPriority": 1,
                 "insecureSkipTLSVerify": true, "service": {"namespace": "default", "name": "nowhere"}}}"#;
    s.kubectl_stdin(&["create", "-f", "-"], Some(missing));
    wait_until("ServiceNotFound", 30, || {
        condition(&s, "v1.missing.example.com") == "False/ServiceNotFound"
    });
    let table = s.ok(&[
        "get",
        "apiservice",
        "v1.missing.example.com",
        "--no-headers",
    ]);
    assert!(
        table.contains("default/nowhere") && table.contains("False (ServiceNotFound)"),
        "{table}"
    );
    let unavailable = s.fails(&["get", "--raw", "/apis/missing.example.com/v1"]);
    assert!(
        unavailable.contains("ServiceUnavailable") || unavailable.contains("503"),
        "{unavailable}"
    );
    s.ok(&["delete", "apiservice", "v1.missing.example.com"]);

    // The backend fails: the APIService turns False and requests are refused with 503.
    backend.down.store(true, Ordering::SeqCst);
    wait_until("FailedDiscoveryCheck", 30, || {
        condition(&s, "v1alpha1.wardle.example.com") == "False/FailedDiscoveryCheck"
    });
    let message = s.ok(&[
        "get",
        "apiservice",
        "v1alpha1.wardle.example.com",
        "-o",
        "jsonpath={.status.conditions[0].message}",
    ]);
    assert!(
        message.contains("bad status from https://127.0.0.1") && message.contains(": 500"),
        "{message}"
    );
    let refused = s.fails(&["get", "--raw", &format!("{GV}/namespaces/default/flunders")]);
    assert!(
        refused.contains("ServiceUnavailable") || refused.contains("503"),
        "{refused}"
    );

    // Back up: available again.
    backend.down.store(false, Ordering::SeqCst);
    wait_until("the APIService to recover", 30, || {
        condition(&s, "v1alpha1.wardle.example.com") == "True/Passed"
    });
    assert_eq!(
        s.ok(&["get", "flunders", "-o", "name"]).trim(),
        "flunder.wardle.example.com/one"
    );
}
