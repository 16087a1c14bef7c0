//! A bounded fuzz run over request decoding: mutated JSON and protobuf bodies, patches,
//! selectors and paths through the real handlers on a real (embedded) store. Every
//! answer must be a well-formed response; nothing may panic. Deterministic (fixed seed).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::handlers::rest::{self, Request};
use crate::registry::Registry;
use crate::request_info::{self, Query};

/// xorshift64*: small, deterministic, good enough to mutate bytes.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEEDS: &[&str] = &[
    r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","labels":{"x":"y"}},"data":{"k":"v"}}"#,
    r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":2,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":80}]}]}}}}"#,
    r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":30080}]}}"#,
    r#"[{"op":"add","path":"/metadata/labels/z","value":"1"},{"op":"remove","path":"/data/k"}]"#,
];

const STRUCTURAL: &[u8] = b"{}[]\":,0123456789-tfn\\/ \n\x00\xff";

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = STRUCTURAL[rng.below(STRUCTURAL.len())];
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b.truncate(i);
            }
            2 => {
                let i = rng.below(b.len() + 1);
                b.insert(i, STRUCTURAL[rng.below(STRUCTURAL.len())]);
            }
            3 if b.len() > 2 => {
                let (i, j) = (rng.below(b.len()), rng.below(b.len()));
                b.swap(i, j);
            }
            _ => {
                let i = rng.below(b.len() + 1);
                b.splice(i..i, b"{\"a\":[1,{\"b\":null}]}".iter().copied());
            }
        }
    }
    b
}

async fn call(
    reg: &Registry,
    method: &str,
    path: &str,
    query: &str,
    ct: &str,
    accept: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let q = Query::parse(Some(query));
    let info = request_info::parse(&method.parse().unwrap_or(http::Method::GET), path, &q);
    static SECURITY: std::sync::OnceLock<crate::auth::Security> = std::sync::OnceLock::new();
    let security = SECURITY.get_or_init(|| {
        crate::auth::Security::new(&crate::auth::SecurityConfig::default(), "127.0.0.1:6443")
            .unwrap()
    });
    let user = ferrokube_authz::UserInfo::new("fuzz", &["system:masters"]);
    let resp = if info.is_resource_request && !info.resource.is_empty() {
        rest::handle(
            reg,
            Request {
                info: &info,
                query: &q,
                accept: Some(accept),
                content_type: Some(ct),
                user_agent: Some("fuzz/1.0"),
                body: Bytes::from(body),
                user: &user,
                security,
            },
        )
        .await
    } else {
        return (404, Value::Null);
    };
    let code = resp.status().as_u16();
    if info.verb == "watch" {
        return (code, Value::Null);
    }
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if bytes.starts_with(ferrokube_api::protobuf::MAGIC) {
        let v = ferrokube_api::protobuf::decode_object(&bytes)
            .unwrap_or_else(|e| panic!("{method} {path}: protobuf answer does not decode: {e}"));
        return (code, v);
    }
    let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{method} {path}: response is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (code, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_requests_never_panic_and_always_answer_with_json_or_protobuf() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::test_support::embedded_store(dir.path()).await;
    let alloc =
        crate::registry::services::ServiceAllocator::parse("10.0.0.0/24", "30000-32767").unwrap();
    let reg = Registry::new(
        store.clone() as Arc<dyn ferrokube_storage::Storage>,
        Some(alloc),
    );
    crate::server::bootstrap_for_tests(&reg).await;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let paths = [
        ("POST", "/api/v1/namespaces/default/configmaps"),
        ("POST", "/apis/apps/v1/namespaces/default/deployments"),
        ("POST", "/api/v1/namespaces/default/services"),
        ("PUT", "/api/v1/namespaces/default/configmaps/a"),
        ("PATCH", "/api/v1/namespaces/default/configmaps/a"),
        ("DELETE", "/api/v1/namespaces/default/configmaps/a"),
        ("GET", "/api/v1/namespaces/default/configmaps"),
    ];
    let content_types = [
        "application/json",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/vnd.kubernetes.protobuf",
        "application/yaml",
        "application/apply-patch+yaml",
    ];
    let queries = [
        "",
        "fieldManager=fuzz",
        "fieldManager=fuzz&force=true",
        "labelSelector=a%3Db",
        "fieldSelector=metadata.name%3Da",
        "limit=1",
        "dryRun=All",
        "labelSelector=%28%28",
        "fieldSelector=nope",
        "limit=-5",
        "continue=garbage",
        "resourceVersion=x",
    ];
    let mut codes = std::collections::BTreeMap::new();
    for i in 0..5000 {
        let (method, path) = paths[rng.below(paths.len())];
        let seed = SEEDS[rng.below(SEEDS.len())].as_bytes();
        // Three in ten bodies are sent intact so that requests also reach validation and
        // storage; content types mostly fit the method.
        let mut body = if rng.below(10) < 3 {
            seed.to_vec()
        } else {
            mutate(&mut rng, seed)
        };
        let ct = match (method, rng.below(5)) {
            (_, 0) => content_types[rng.below(content_types.len())],
            ("PATCH", _) => content_types[1 + rng.below(3)],
            _ => "application/json",
        };
        if ct == "application/vnd.kubernetes.protobuf" {
            let mut pb = b"k8s\0".to_vec();
            pb.extend_from_slice(&body);
            body = pb;
        }
        let query = queries[rng.below(queries.len())];
        // One answer in four is asked for in protobuf, as client-go asks.
        let accept = if rng.below(4) == 0 {
            "application/vnd.kubernetes.protobuf, application/json"
        } else {
            "application/json"
        };
        let (code, v) = call(&reg, method, path, query, ct, accept, body).await;
        assert!((200..600).contains(&code), "#{i}: code {code}");
        if code >= 400 {
            assert_eq!(v["kind"], "Status", "#{i} {method} {path}?{query}: {v}");
            assert_eq!(v["code"], code, "#{i}: {v}");
            assert!(
                v["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "#{i}: {v}"
            );
        }
        *codes.entry(code).or_insert(0) += 1;
    }
    // The run exercised both success and the error paths.
    assert!(
        codes.keys().any(|c| *c < 300) && codes.keys().any(|c| *c >= 400),
        "{codes:?}"
    );
    store.shutdown().await;
}
