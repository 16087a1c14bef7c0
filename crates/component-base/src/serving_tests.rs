//! The secure port end to end on loopback: TLS, health paths open, /metrics behind
//! client-certificate / request-header authentication and authorization.

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::DelegatedAuthFlags;

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn new_ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

/// (cert PEM, key PEM) signed by `ca`.
fn leaf(ca: &Ca, cn: &str, orgs: &[&str], sans: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    for o in orgs {
        params.distinguished_name.push(DnType::OrganizationName, *o);
    }
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, data: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

struct Client {
    roots: Arc<rustls::RootCertStore>,
    addr: SocketAddr,
}

impl Client {
    async fn connect(
        &self,
        identity: Option<&(String, String)>,
        alpn: &[&[u8]],
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.roots.clone());
        let mut config = match identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(cert.as_bytes())
                        .collect::<Result<Vec<_>, _>>()
                        .unwrap(),
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    }

    /// (status, body) of `GET path` over HTTP/1.1.
    async fn get(
        &self,
        path: &str,
        identity: Option<&(String, String)>,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let mut tls = self.connect(identity, &[b"http/1.1"]).await;
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        tls.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out).into_owned();
        let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_open_metrics_authenticated_and_authorized() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("test-ca");
    let front_proxy_ca = new_ca("front-proxy-ca");
    let rogue = new_ca("rogue-ca");
    let (serving_cert, serving_key) = leaf(&ca, "kube-scheduler", &[], &["localhost", "127.0.0.1"]);
    let admin = leaf(&ca, "admin", &["system:masters"], &[]);
    let bob = leaf(&ca, "bob", &["developers"], &[]);
    let intruder = leaf(&rogue, "admin", &["system:masters"], &[]);
    let aggregator = leaf(&front_proxy_ca, "aggregator", &[], &[]);
    let other_proxy = leaf(&front_proxy_ca, "not-allowed", &[], &[]);

    let serving = SecureServingFlags {
        bind_address: IpAddr::from([127, 0, 0, 1]),
        secure_port: Some(0),
        cert_dir: None,
        tls_cert_file: Some(write(dir.path(), "s.pem", &serving_cert)),
        tls_private_key_file: Some(write(dir.path(), "s-key.pem", &serving_key)),
    };
    assert_eq!(
        serving.bind_addr(10259),
        None,
        "--secure-port=0 disables serving"
    );
    let auth = DelegatedAuthFlags {
        client_ca_file: Some(write(dir.path(), "ca.pem", &ca.pem)),
        requestheader_client_ca_file: Some(write(dir.path(), "fp.pem", &front_proxy_ca.pem)),
        requestheader_allowed_names: vec!["aggregator".into()],
        ..DelegatedAuthFlags::default()
    }
    .build("kube-scheduler", "v0.0.0")
    .await
    .unwrap();
    let handler = Handler::new(auth);
    handler
        .metrics()
        .counter("test_scrapes_total", "Scrapes.")
        .inc();
    let server = SecureServer::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        serving.serving_cert("kube-scheduler").unwrap(),
        handler,
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(server.run(shutdown));

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let c = Client {
        roots: Arc::new(roots),
        addr,
    };

    // Health paths are open to everyone.
    for path in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(c.get(path, None, &[]).await, (200, "ok".into()), "{path}");
    }
    let (code, body) = c.get("/readyz?verbose", None, &[]).await;
    assert_eq!(
        (code, body.as_str()),
        (200, "[+]ping ok\nreadyz check passed\n")
    );

    // Anonymous: authenticated as system:anonymous, then forbidden (upstream's 403).
    let (code, body) = c.get("/metrics", None, &[]).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(
            r#""message": "forbidden: User \"system:anonymous\" cannot get path \"/metrics\"""#
        ),
        "{body}"
    );
    assert!(body.contains(r#""reason": "Forbidden""#), "{body}");

    // A system:masters client certificate reads the metrics.
    let (code, body) = c.get("/metrics", Some(&admin), &[]).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("test_scrapes_total 1\n"), "{body}");

    // Another user without an authorizer allowing it: 403 naming the user.
    let (code, body) = c.get("/metrics", Some(&bob), &[]).await;
    assert_eq!(code, 403);
    assert!(body.contains(r#"User \"bob\" cannot get path"#), "{body}");

    // A certificate from an unknown CA does not authenticate: 401, even for /healthz.
    let (code, body) = c.get("/metrics", Some(&intruder), &[]).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains(r#""reason": "Unauthorized""#), "{body}");
    assert_eq!(c.get("/healthz", Some(&intruder), &[]).await.0, 401);

    // The front proxy asserts a user with headers; only allowed names may.
    let proxied = [
        ("X-Remote-User", "carol"),
        ("X-Remote-Group", "system:masters"),
    ];
    assert_eq!(c.get("/metrics", Some(&aggregator), &proxied).await.0, 200);
    assert_eq!(c.get("/metrics", Some(&other_proxy), &proxied).await.0, 401);

    // Unknown paths after authorization are 404; HTTP/2 is offered.
    assert_eq!(c.get("/nope", Some(&admin), &[]).await.0, 404);
    let h2 = c.connect(None, &[b"h2", b"http/1.1"]).await;
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(h2);

    stop.send(true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
