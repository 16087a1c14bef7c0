//! The dispatcher against a real TLS webhook server: mutating order, patches with
//! defaults re-applied, reinvocation, failure policies, parallel validation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use base64::Engine;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::*;

type Seen = Arc<Mutex<Vec<String>>>;

/// `/label-<k>` adds label k (once); `/count` only records; `/deny` refuses.
fn answer(path: &str, review: &Value) -> Value {
    let uid = review["request"]["uid"].clone();
    let labels = &review["request"]["object"]["metadata"]["labels"];
    let mut response = json!({"uid": uid, "allowed": true});
    if let Some(k) = path.strip_prefix("/label-") {
        if labels.get(k).is_none() {
            let patch = if labels.is_object() {
                json!([{"op": "add", "path": format!("/metadata/labels/{k}"), "value": "x"}])
            } else {
                json!([{"op": "add", "path": "/metadata/labels", "value": {k: "x"}}])
            };
            response["patchType"] = json!("JSONPatch");
            response["patch"] = json!(base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(&patch).unwrap()));
        }
    }
    if path == "/deny" {
        response = json!({"uid": uid, "allowed": false, "status": {"message": "no"}});
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

async fn server() -> (u16, String, Seen) {
    let (cert, key) =
        ferrokube_component_base::tls::generate_self_signed(&["127.0.0.1".into()]).unwrap();
    let pair = ferrokube_component_base::tls::CertKey {
        chain: vec![rustls::pki_types::pem::PemObject::from_pem_slice(cert.as_bytes()).unwrap()],
        key: rustls::pki_types::pem::PemObject::from_pem_slice(key.as_bytes()).unwrap(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pair.chain, pair.key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, seen) = (acceptor.clone(), seen2.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut r = BufReader::new(tls);
                let mut line = String::new();
                r.read_line(&mut line).await.unwrap();
                let path = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap()
                    .split('?')
                    .next()
                    .unwrap()
                    .to_string();
                let mut len = 0;
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).await.unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).await.unwrap();
                seen.lock().push(path.clone());
                let review: Value = serde_json::from_slice(&body).unwrap();
                let out = serde_json::to_vec(&answer(&path, &review)).unwrap();
                let mut tls = r.into_inner();
                let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", out.len());
                tls.write_all(head.as_bytes()).await.unwrap();
                tls.write_all(&out).await.unwrap();
                let _ = tls.shutdown().await;
            });
        }
    });
    let ca = base64::engine::general_purpose::STANDARD.encode(cert);
    (port, ca, seen)
}

fn hook(name: &str, port: u16, ca: &str, path: &str, extra: Value) -> Value {
    let mut h = json!({
        "name": name,
        "clientConfig": {"url": format!("https://127.0.0.1:{port}{path}"), "caBundle": ca},
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    });
    if let (Some(h), Some(extra)) = (h.as_object_mut(), extra.as_object()) {
        h.extend(extra.clone());
    }
    h
}

async fn registry() -> (Registry, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::test_support::embedded_store(dir.path()).await;
    (
        Registry::new(store as Arc<dyn ferrokube_storage::Storage>, None),
        dir,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_webhooks_chain_reinvoke_and_fail_as_configured() {
    let (port, ca, seen) = server().await;
    let (registry, _dir) = registry().await;
    let hooks = Webhooks::default();
    // Configurations run in name order: "a-count" (IfNeeded) before "b-label".
    hooks.upsert(
        &json!({"metadata": {"name": "a-count"}, "webhooks": [hook("count", port, &ca, "/count", json!({"reinvocationPolicy": "IfNeeded"}))]}),
        true,
    );
    hooks.upsert(
        &json!({"metadata": {"name": "b-label"}, "webhooks": [hook("label", port, &ca, "/label-b", json!({}))]}),
        true,
    );
    let user = ferrokube_authz::UserInfo::new("alice", &[]);
    let info = resources::lookup("", "v1", "configmaps").unwrap();
    let call = Call {
        registry: &registry,
        user: &user,
        operation: Operation::Create,
        info,
        subresource: "",
        namespace: "default",
        name: "cm",
        dry_run: false,
        authorizer: None,
        options: options("CreateOptions", false, None),
    };
    let normalize = |o: &mut Value| {
        o["normalized"] = json!(true);
    };
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}});
    hooks
        .mutate(&call, &mut obj, None, &normalize)
        .await
        .unwrap();
    assert_eq!(obj["metadata"]["labels"]["b"], "x");
    assert_eq!(obj["normalized"], true, "defaults re-applied after a patch");
    // "label" changed the object after "count" saw it: count was called again.
    assert_eq!(*seen.lock(), vec!["/count", "/label-b", "/count"]);

    // Nothing changes the second time: no reinvocation.
    seen.lock().clear();
    hooks
        .mutate(&call, &mut obj, None, &normalize)
        .await
        .unwrap();
    assert_eq!(*seen.lock(), vec!["/count", "/label-b"]);

    // A denial, and a dead webhook failing closed then open.
    hooks.upsert(
        &json!({"metadata": {"name": "c-deny"}, "webhooks": [hook("deny", port, &ca, "/deny", json!({"objectSelector": {"matchLabels": {"deny": "yes"}}}))]}),
        true,
    );
    let mut denied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "labels": {"deny": "yes"}}});
    let err = hooks
        .mutate(&call, &mut denied, None, &normalize)
        .await
        .unwrap_err();
    let st = err.into_status("", "configmaps", "cm");
    assert_eq!(
        (st.code, st.message.as_str()),
        (400, "admission webhook \"deny\" denied the request: no")
    );
    let dead = crate::test_support::closed_port();
    hooks.upsert(
        &json!({"metadata": {"name": "d-dead"}, "webhooks": [hook("dead", dead, &ca, "/", json!({}))]}),
        true,
    );
    let err = hooks
        .mutate(&call, &mut obj, None, &normalize)
        .await
        .unwrap_err();
    let st = err.into_status("", "configmaps", "cm");
    assert_eq!(st.code, 500);
    assert!(
        st.message.contains("failed calling webhook \"dead\"")
            && st.message.contains("connection refused"),
        "{}",
        st.message
    );
    hooks.upsert(
        &json!({"metadata": {"name": "d-dead"}, "webhooks": [hook("dead", dead, &ca, "/", json!({"failurePolicy": "Ignore"}))]}),
        true,
    );
    hooks
        .mutate(&call, &mut obj, None, &normalize)
        .await
        .unwrap();
    hooks.remove("d-dead", true);
    hooks.remove("c-deny", true);

    // Validating webhooks: a patch from one is a failed call; a dry run needs sideEffects None.
    hooks.upsert(
        &json!({"metadata": {"name": "v"}, "webhooks": [hook("v", port, &ca, "/label-v", json!({}))]}),
        false,
    );
    let err = hooks
        .validate(&call, Some(&json!({"metadata": {}})), None)
        .await
        .unwrap_err();
    assert!(err
        .into_status("", "configmaps", "cm")
        .message
        .contains("validating webhook may not return response.patch"));
    hooks.upsert(
        &json!({"metadata": {"name": "v"}, "webhooks": [hook("v", port, &ca, "/count", json!({"sideEffects": "Some"}))]}),
        false,
    );
    let dry = Call {
        dry_run: true,
        authorizer: None,
        options: options("CreateOptions", true, None),
        ..call
    };
    let err = hooks.validate(&dry, Some(&obj), None).await.unwrap_err();
    let st = err.into_status("", "configmaps", "cm");
    assert_eq!(
        (st.code, st.message.as_str()),
        (400, "admission webhook \"v\" does not support dry run")
    );
    hooks.remove("v", false);
    hooks.remove("a-count", true);
    hooks.remove("b-label", true);
    assert!(hooks.is_empty());
}
