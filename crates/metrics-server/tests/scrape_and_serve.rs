//! End to end on loopback: a fake kubelet (HTTPS, bearer token checked, counters that
//! advance with time) scraped by the metrics-server every second, and the
//! metrics.k8s.io API read over HTTPS as kubectl and the HPA read it. Plus the
//! secure port's authentication and authorization (front-proxy request headers as the
//! aggregator sends them, SubjectAccessReview-less denial).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrokube_component_base::{DelegatedAuth, DelegatedAuthFlags};
use ferrokube_metrics_server::cluster::{NodeInfo, PodInfo, StaticCluster};
use ferrokube_metrics_server::kubelet::{KubeletClient, KubeletTls};
use ferrokube_metrics_server::server::SecurePort;
use ferrokube_metrics_server::{MetricsServer, Options};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;

const TOKEN: &str = "metrics-server-token";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn server_tls(cert_pem: &str, key_pem: &str) -> tokio_rustls::TlsAcceptor {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// The kubelet's `/metrics/resource` at `t_ms`: the node burns 2 cores, web/app 0.25,
/// web/side 0.01; a pod of another node and an unknown pod are reported too.
fn resource_metrics(start_ms: i64, t_ms: i64) -> String {
    let secs = (t_ms - start_ms) as f64 / 1000.0;
    let started = (start_ms / 1000 - 3600) as f64;
    format!(
        r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{{container="app",namespace="default",pod="web"}} {app} {t_ms}
container_cpu_usage_seconds_total{{pod="web",namespace="default",container="side"}} {side} {t_ms}
container_cpu_usage_seconds_total{{container="c",namespace="default",pod="elsewhere"}} {app} {t_ms}
container_cpu_usage_seconds_total{{container="c",namespace="default",pod="unknown"}} {app} {t_ms}
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{{container="app",namespace="default",pod="web"}} 4096000 {t_ms}
container_memory_working_set_bytes{{container="side",namespace="default",pod="web"}} 1048576 {t_ms}
container_memory_working_set_bytes{{container="c",namespace="default",pod="elsewhere"}} 1 {t_ms}
container_memory_working_set_bytes{{container="c",namespace="default",pod="unknown"}} 1 {t_ms}
container_start_time_seconds{{container="app",namespace="default",pod="web"}} {started} {t_ms}
garbage line that is skipped
node_cpu_usage_seconds_total {node} {t_ms}
node_memory_working_set_bytes 2147483648 {t_ms}
"#,
        app = 10.0 + 0.25 * secs,
        side = 1.0 + 0.01 * secs,
        node = 1000.0 + 2.0 * secs,
    )
}

/// A fake kubelet on 127.0.0.1: returns its address.
async fn fake_kubelet(cert_pem: &str, key_pem: &str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = server_tls(cert_pem, key_pem);
    let start_ms = now_ms();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    // Serve until the test ends (the sender lives in the task).
    tokio::spawn(async move {
        let _keep = stop;
        ferrokube_component_base::serving::serve_tls(
            listener,
            tls,
            shutdown,
            move |req, _| async move {
                let authorized = req
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    == Some(&format!("Bearer {TOKEN}"));
                let (status, body) = if !authorized {
                    (401, "Unauthorized".to_string())
                } else if req.uri().path() != "/metrics/resource" {
                    (404, "404 page not found".to_string())
                } else {
                    (200, resource_metrics(start_ms, now_ms()))
                };
                http::Response::builder()
                    .status(status)
                    .header("content-type", "text/plain; version=0.0.4")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap()
            },
        )
        .await;
    });
    addr
}

struct Response {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn https_get(addr: SocketAddr, ca_pem: &str, path: &str, accept: Option<&str>) -> Response {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::get(path).header("host", "localhost");
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Response {
        status,
        content_type,
        body,
    }
}

/// `"123n"` → 123.
fn nanocores(q: &Value) -> f64 {
    let s = q.as_str().unwrap();
    match s.strip_suffix('n') {
        Some(n) => n.parse().unwrap(),
        None => match s.strip_suffix('u') {
            Some(u) => u.parse::<f64>().unwrap() * 1e3,
            None => match s.strip_suffix('m') {
                Some(m) => m.parse::<f64>().unwrap() * 1e6,
                None => s.parse::<f64>().unwrap() * 1e9,
            },
        },
    }
}

fn assert_near(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= expected * 0.01,
        "{what}: {actual} is not within 1% of {expected}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_kubelets_and_serves_metrics_api() {
    let hosts = ["127.0.0.1".to_string(), "localhost".to_string()];
    let (kubelet_cert, kubelet_key) =
        ferrokube_component_base::tls::generate_self_signed(&hosts).unwrap();
    let kubelet = fake_kubelet(&kubelet_cert, &kubelet_key).await;
    // A node whose kubelet is down.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };

    let node = |name: &str, port: u16, labels: &[(&str, &str)]| NodeInfo {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        addresses: vec![
            ("InternalIP".into(), "127.0.0.1".into()),
            ("ExternalIP".into(), "192.0.2.1".into()),
        ],
        kubelet_port: Some(port),
        ready: true,
    };
    let pod = |name: &str, node: &str, labels: &[(&str, &str)]| PodInfo {
        namespace: "default".into(),
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        node_name: node.into(),
    };
    let cluster = Arc::new(StaticCluster::new(
        vec![
            node("n1", kubelet.port(), &[("zone", "a")]),
            node("n2", dead.port(), &[("zone", "b")]),
        ],
        vec![
            pod("web", "n1", &[("app", "web")]),
            // Reported by n1's kubelet but scheduled elsewhere: dropped.
            pod("elsewhere", "n2", &[("app", "web")]),
        ],
    ));
    let tls = KubeletTls {
        ca_pem: Some(kubelet_cert.clone().into_bytes()),
        ..KubeletTls::default()
    };
    let client = KubeletClient::new(tls.client_config().unwrap(), Some(TOKEN.into()), 10250)
        .use_node_status_port(true)
        .preferred_address_types(vec!["InternalIP".into()])
        .timeout(Duration::from_secs(2));
    let auth = DelegatedAuth::direct(None, true, None, None, Duration::ZERO).unwrap();
    let options = Options {
        resolution: Duration::from_secs(1),
        ..Options::default()
    };
    let ms = MetricsServer::new(cluster.clone(), client, auth, options);
    let (serving_cert, serving_key) =
        ferrokube_component_base::tls::generate_self_signed(&hosts).unwrap();
    let cert = ferrokube_component_base::tls::CertKey {
        chain: CertificateDer::pem_slice_iter(serving_cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap(),
        key: PrivateKeyDer::from_pem_slice(serving_key.as_bytes()).unwrap(),
    };
    let port = SecurePort::bind("127.0.0.1:0".parse().unwrap(), cert, ms.server().auth())
        .await
        .unwrap();
    let addr = port.local_addr().unwrap();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(ms.run(Some(port), shutdown));
    let get = |path: &'static str| https_get(addr, &serving_cert, path, None);

    // Healthy at once; ready after two cycles.
    assert_eq!(get("/healthz").await.status, 200);
    assert_eq!(get("/livez").await.status, 200);
    let begin = Instant::now();
    loop {
        let r = get("/readyz").await;
        if r.status == 200 {
            break;
        }
        assert!(
            begin.elapsed() < Duration::from_secs(10),
            "not ready after 10s: {}",
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let r = get("/apis/metrics.k8s.io/v1beta1/nodes/n1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type, "application/json");
    let v = r.json();
    assert_eq!(v["kind"], "NodeMetrics");
    assert_eq!(v["metadata"]["labels"]["zone"], "a");
    assert_near(nanocores(&v["usage"]["cpu"]), 2e9, "node cpu");
    assert_eq!(v["usage"]["memory"], "2Gi");
    let window = v["window"].as_str().unwrap();
    assert!(window.ends_with('s'), "{window}");

    // The dead node: a NodeMetrics NotFound, the others still served.
    let r = get("/apis/metrics.k8s.io/v1beta1/nodes/n2").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["message"],
        "nodemetrics.metrics.k8s.io \"n2\" not found"
    );
    let list = get("/apis/metrics.k8s.io/v1beta1/nodes").await.json();
    assert_eq!(list["kind"], "NodeMetricsList");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    let pods = get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods")
        .await
        .json();
    let items = pods["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{pods}");
    let web = &items[0];
    assert_eq!(web["metadata"]["name"], "web");
    assert_eq!(web["metadata"]["labels"]["app"], "web");
    let containers = web["containers"].as_array().unwrap();
    assert_eq!(containers[0]["name"], "app");
    assert_near(nanocores(&containers[0]["usage"]["cpu"]), 0.25e9, "app cpu");
    assert_eq!(containers[0]["usage"]["memory"], "4000Ki");
    assert_eq!(containers[1]["name"], "side");
    assert_near(
        nanocores(&containers[1]["usage"]["cpu"]),
        0.01e9,
        "side cpu",
    );
    assert_eq!(containers[1]["usage"]["memory"], "1Mi");
    let r = get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/elsewhere").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["message"],
        "podmetrics.metrics.k8s.io \"default/elsewhere\" not found"
    );

    // The selector the HPA sends, and kubectl's table.
    let v = get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=app%3Dweb")
        .await
        .json();
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let v = https_get(
        addr,
        &serving_cert,
        "/apis/metrics.k8s.io/v1beta1/nodes",
        Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"),
    )
    .await
    .json();
    assert_eq!(v["kind"], "Table");
    let cells = &v["rows"][0]["cells"];
    assert_eq!(cells[0], "n1");
    assert_eq!(cells[2], "2Gi");

    // Discovery and the component's own metrics.
    let v = get("/apis/metrics.k8s.io/v1beta1").await.json();
    assert_eq!(v["resources"][0]["kind"], "NodeMetrics");
    let metrics = get("/metrics").await.text();
    assert!(
        metrics.contains("metrics_server_kubelet_request_total{success=\"true\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("metrics_server_kubelet_request_total{success=\"false\"}"));
    assert!(metrics.contains("metrics_server_storage_points{type=\"node\"} 1"));
    assert!(metrics.contains("metrics_server_storage_points{type=\"container\"} 2"));
    assert!(metrics.contains("metrics_server_manager_tick_duration_seconds_count"));
    assert!(metrics.contains("metrics_server_kubelet_request_duration_seconds_bucket{node=\"n1\""));

    // A node that goes away is forgotten after the next cycle.
    cluster.set_nodes(vec![node("n2", dead.port(), &[])]);
    let begin = Instant::now();
    loop {
        let r = get("/apis/metrics.k8s.io/v1beta1/nodes/n1").await;
        if r.status == 404 {
            assert_eq!(r.json()["message"], "node \"n1\" not found");
            break;
        }
        assert!(begin.elapsed() < Duration::from_secs(5), "n1 still served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("stops on shutdown")
        .unwrap();
}

struct Ca {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pem: String,
}

fn new_ca(name: &str) -> Ca {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

/// A client certificate (DER) signed by `ca`.
fn client_cert(ca: &Ca, cn: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let issuer = rcgen::Issuer::from_params(&ca.params, &ca.key);
    params.signed_by(&key, &issuer).unwrap().der().to_vec()
}

#[tokio::test]
async fn requests_are_authenticated_and_authorized() {
    let dir = tempfile::tempdir().unwrap();
    let proxy_ca = new_ca("front-proxy-ca");
    let ca_path = dir.path().join("front-proxy-ca.crt");
    std::fs::write(&ca_path, &proxy_ca.pem).unwrap();
    let flags = DelegatedAuthFlags {
        requestheader_client_ca_file: Some(ca_path),
        requestheader_allowed_names: vec!["front-proxy-client".into()],
        ..DelegatedAuthFlags::default()
    };
    let auth = flags.build("metrics-server", "test").await.unwrap();
    let tls = KubeletTls {
        insecure: true,
        ..KubeletTls::default()
    };
    let client = KubeletClient::new(tls.client_config().unwrap(), None, 10250);
    let cluster = Arc::new(StaticCluster::default());
    let ms = MetricsServer::new(cluster, client, auth, Options::default());
    let server = ms.server();
    ms.scraper().tick().await;

    let request = |path: &str, headers: &[(&str, &str)]| {
        let mut r = http::Request::get(path);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(()).unwrap()
    };
    let body = |r: http::Response<Full<Bytes>>| async move {
        let status = r.status().as_u16();
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
        )
    };
    let proxy = vec![client_cert(&proxy_ca, "front-proxy-client")];
    let stranger = vec![client_cert(&proxy_ca, "someone-else")];
    let as_admin = [
        ("x-remote-user", "alice"),
        ("x-remote-group", "system:masters"),
    ];

    // Through the aggregator: the proxy's certificate vouches for the headers.
    let (status, v) = body(
        server
            .handle(
                request("/apis/metrics.k8s.io/v1beta1/nodes", &as_admin),
                Some(&proxy),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["kind"], "NodeMetricsList");

    // The same headers without the proxy certificate are not believed.
    let (status, v) = body(
        server
            .handle(
                request("/apis/metrics.k8s.io/v1beta1/nodes", &as_admin),
                None,
            )
            .await,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        v["message"],
        "nodes.metrics.k8s.io is forbidden: User \"system:anonymous\" cannot list resource \"nodes\" in API group \"metrics.k8s.io\" at the cluster scope"
    );
    assert_eq!(v["reason"], "Forbidden");

    // A certificate from the proxy CA with a name not allowed: 401.
    let (status, _) = body(
        server
            .handle(
                request("/apis/metrics.k8s.io/v1beta1/nodes", &as_admin),
                Some(&stranger),
            )
            .await,
    )
    .await;
    assert_eq!(status, 401);

    // A user without system:masters and no SubjectAccessReview client: denied, with
    // the namespaced wording.
    let (status, v) = body(
        server
            .handle(
                request(
                    "/apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods/dns",
                    &[("x-remote-user", "bob")],
                ),
                Some(&proxy),
            )
            .await,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        v["message"],
        "pods.metrics.k8s.io \"dns\" is forbidden: User \"bob\" cannot get resource \"pods\" in API group \"metrics.k8s.io\" in the namespace \"kube-system\""
    );

    // Health is open; /metrics and discovery are non-resource paths.
    let r = server.handle(request("/healthz", &[]), None).await;
    assert_eq!(r.status(), 200);
    let r = server.handle(request("/livez", &[]), None).await;
    assert_eq!(r.status(), 200);
    // No nodes: the cycle was healthy, but nothing is stored yet.
    let r = server.handle(request("/readyz", &[]), None).await;
    assert_eq!(r.status(), 500);
    let (status, v) = body(server.handle(request("/metrics", &[]), None).await).await;
    assert_eq!(status, 403);
    assert_eq!(
        v["message"],
        "forbidden: User \"system:anonymous\" cannot get path \"/metrics\""
    );
    let (status, _) = body(
        server
            .handle(
                request("/apis/metrics.k8s.io/v1beta1", &as_admin),
                Some(&proxy),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = body(
        server
            .handle(request("/nope", &as_admin), Some(&proxy))
            .await,
    )
    .await;
    assert_eq!(status, 404);
    let mut post = request("/apis/metrics.k8s.io/v1beta1/nodes", &as_admin);
    *post.method_mut() = http::Method::POST;
    let (status, v) = body(server.handle(post, Some(&proxy)).await).await;
    assert_eq!(status, 405);
    assert_eq!(v["reason"], "MethodNotAllowed");
}
