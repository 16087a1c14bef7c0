#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! ferrokube-component-base's secure port against `ferrokube server`, judged by curl as
//! the seeds check `https://IP:10257/metrics`: delegated authentication (client
//! certificate from the cluster CA, bearer tokens through TokenReview) and
//! authorization (SubjectAccessReview) with the controller-manager's kubeconfig, as
//! the seeds' `--authentication-kubeconfig`/`--authorization-kubeconfig`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferrokube_component_base::{DelegatedAuthFlags, Handler, SecureServer, SecureServingFlags};
use tokio::sync::watch;

/// `curl` → (HTTP status, body).
fn curl(url: &str, cacert: &Path, extra: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--cacert"])
        .arg(cacert)
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_behind_delegated_authn_and_authz() {
    let s = common::start();
    let data_dir = s.kubeconfig.parent().unwrap().to_path_buf();
    let pki = data_dir.join("pki");
    let kcm_kubeconfig = pki.join("kube-controller-manager.kubeconfig");
    assert!(
        kcm_kubeconfig.exists(),
        "ferrokube server writes the component kubeconfigs"
    );
    let cert_dir = data_dir.join("kcm-certs");

    let serving = SecureServingFlags {
        bind_address: "127.0.0.1".parse().unwrap(),
        secure_port: Some(0),
        cert_dir: Some(cert_dir.clone()),
        tls_cert_file: None,
        tls_private_key_file: None,
    };
    let auth = DelegatedAuthFlags {
        authentication_kubeconfig: Some(kcm_kubeconfig.clone()),
        authorization_kubeconfig: Some(kcm_kubeconfig),
        client_ca_file: Some(pki.join("ca.pem")),
        // Short enough for the test to see a new RoleBinding take effect.
        authorization_webhook_cache_unauthorized_ttl: Duration::from_secs(1),
        ..DelegatedAuthFlags::default()
    }
    .build("kube-controller-manager", "v1.33.0")
    .await
    .unwrap();
    let handler = Handler::new(auth);
    handler
        .metrics()
        .gauge_vec(
            "leader_election_master_status",
            "Is this the leader.",
            &["name"],
        )
        .with(&["kube-controller-manager"])
        .set(1.0);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = SecureServer::bind(
        addr,
        serving.serving_cert("kube-controller-manager").unwrap(),
        handler,
    )
    .await
    .unwrap();
    let port = server.local_addr().unwrap().port();
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(server.run(shutdown));
    // The self-signed pair upstream keeps in --cert-dir, trusted by curl as its own CA.
    let cacert = cert_dir.join("kube-controller-manager.crt");
    assert!(cacert.exists() && cert_dir.join("kube-controller-manager.key").exists());
    let base = format!("https://127.0.0.1:{port}");
    let metrics = format!("{base}/metrics");
    let blocking = |url: String, args: Vec<String>| {
        let cacert = cacert.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(&url, &cacert, &args)
        })
    };

    // /healthz needs no credentials.
    let (code, body) = blocking(format!("{base}/healthz"), vec![]).await.unwrap();
    assert_eq!((code, body.as_str()), (200, "ok"));

    // The seeds' check: the admin client certificate reads /metrics.
    let admin = vec![
        "--cert".to_string(),
        pki.join("admin.pem").display().to_string(),
        "--key".to_string(),
        pki.join("admin-key.pem").display().to_string(),
    ];
    let (code, body) = blocking(metrics.clone(), admin).await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("leader_election_master_status{name=\"kube-controller-manager\"} 1"),
        "{body}"
    );

    // Anonymous: system:anonymous is authenticated and then forbidden, upstream's
    // `forbidden: User "system:anonymous" cannot get path "/metrics"` (403).
    let (code, body) = blocking(metrics.clone(), vec![]).await.unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(r#"User \"system:anonymous\" cannot get path \"/metrics\""#),
        "{body}"
    );

    // A token nobody issued: TokenReview says no → 401.
    let bad = vec![
        "-H".to_string(),
        "Authorization: Bearer not-a-real-token".to_string(),
    ];
    let (code, body) = blocking(metrics.clone(), bad).await.unwrap();
    assert_eq!(code, 401, "{body}");
    assert!(body.contains(r#""reason": "Unauthorized""#), "{body}");

    // The admin's bearer token (system:masters through the token file) → 200.
    let admin_token = vec![
        "-H".to_string(),
        format!("Authorization: Bearer {}", s.token()),
    ];
    assert_eq!(blocking(metrics.clone(), admin_token).await.unwrap().0, 200);

    // A service account without RBAC rights: authenticated by TokenReview, denied by
    // the SubjectAccessReview → 403 naming it.
    s.ok(&["create", "serviceaccount", "scraper", "-n", "default"]);
    let token = s
        .ok(&["create", "token", "scraper", "-n", "default"])
        .trim()
        .to_string();
    let bearer = vec!["-H".to_string(), format!("Authorization: Bearer {token}")];
    let (code, body) = blocking(metrics.clone(), bearer.clone()).await.unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(
            r#"User \"system:serviceaccount:default:scraper\" cannot get path \"/metrics\""#
        ),
        "{body}"
    );

    // Granted get on /metrics, the same token is allowed (once the 1s deny cache ends).
    s.ok(&[
        "create",
        "clusterrole",
        "metrics-reader",
        "--verb=get",
        "--non-resource-url=/metrics",
    ]);
    s.ok(&[
        "create",
        "clusterrolebinding",
        "scraper-metrics",
        "--clusterrole=metrics-reader",
        "--serviceaccount=default:scraper",
    ]);
    let start = Instant::now();
    loop {
        let (code, body) = blocking(metrics.clone(), bearer.clone()).await.unwrap();
        if code == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still {code}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
