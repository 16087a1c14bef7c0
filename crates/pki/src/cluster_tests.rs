#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use super::*;
use crate::cert::CertInfo;

fn info(dir: &Path, name: &str) -> CertInfo {
    let pem = std::fs::read(dir.join(format!("{name}.pem"))).unwrap();
    let key = std::fs::read(dir.join(format!("{name}-key.pem"))).unwrap();
    cert::check_pair(&pem, name, &key, name).unwrap();
    CertInfo::from_pem(&pem, name).unwrap()
}

fn spec(dir: &Path) -> ClusterSpec {
    let mut spec = ClusterSpec::new(
        dir,
        vec![
            "k8s-01=198.18.0.11".parse().unwrap(),
            "k8s-02=198.18.0.12".parse().unwrap(),
        ],
    );
    spec.algorithm = KeyAlgorithm::EcdsaP256;
    spec.extra_sans = vec!["api.example.com".into()];
    spec
}

#[test]
fn the_whole_set() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = generate(&spec(dir)).unwrap();
    assert!(out.kept.is_empty());
    assert_eq!(out.apiserver_url, "https://198.18.0.11:6443");
    assert_eq!(out.service_ip, Some("10.96.0.1".parse().unwrap()));

    let api = info(dir, "kubernetes");
    assert_eq!(api.common_name.as_deref(), Some("kubernetes"));
    assert!(api.server_auth && api.client_auth);
    for ip in ["127.0.0.1", "198.18.0.11", "198.18.0.12", "10.96.0.1"] {
        assert!(api.ip_addresses.contains(&ip.parse().unwrap()), "{ip}");
    }
    for dns in [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster",
        "kubernetes.default.svc.cluster.local",
        "k8s-01",
        "k8s-02",
        "localhost",
        "api.example.com",
    ] {
        assert!(api.dns_names.iter().any(|d| d == dns), "{dns}");
    }

    let expect = [
        ("admin", "admin", vec!["system:masters"], false),
        (
            "kube-controller-manager",
            "system:kube-controller-manager",
            vec!["system:kube-controller-manager"],
            true,
        ),
        (
            "kube-scheduler",
            "system:kube-scheduler",
            vec!["system:kube-scheduler"],
            true,
        ),
        (
            "kube-proxy",
            "system:kube-proxy",
            vec!["system:node-proxier"],
            false,
        ),
        ("proxy-client", "aggregator", vec![], false),
        ("metrics-server", "system:metrics-server", vec![], true),
        ("etcd", "etcd", vec![], true),
        (
            "kubelet-k8s-02",
            "system:node:k8s-02",
            vec!["system:nodes"],
            true,
        ),
    ];
    for (name, cn, orgs, server) in expect {
        let i = info(dir, name);
        assert_eq!(i.common_name.as_deref(), Some(cn), "{name}");
        assert_eq!(i.organizations, orgs, "{name}");
        assert!(i.client_auth, "{name}");
        assert_eq!(i.server_auth, server, "{name}");
    }
    assert!(info(dir, "etcd")
        .ip_addresses
        .contains(&"198.18.0.12".parse().unwrap()));

    let sa = std::fs::read(dir.join("sa.key")).unwrap();
    let sa = PrivateKey::from_pem(&sa, "sa.key").unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("sa.pub")).unwrap(),
        sa.public_key_pem()
    );

    for name in [
        "admin",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
        "metrics-server",
    ] {
        let path = dir.join(format!("{name}.kubeconfig"));
        let r = Kubeconfig::load(&path).unwrap().resolve(&path).unwrap();
        assert!(r.client_cert_pem.is_some() && r.ca_pem.is_some(), "{name}");
    }
    let kcm = Kubeconfig::load(&dir.join("kube-controller-manager.kubeconfig")).unwrap();
    assert_eq!(kcm.clusters[0].cluster.server, "https://127.0.0.1:6443");
    assert_eq!(kcm.current_context, "system:kube-controller-manager");

    assert_eq!(out.bootstrap_tokens.len(), 2);
    let csv = std::fs::read_to_string(dir.join("token.csv")).unwrap();
    for (node, token) in &out.bootstrap_tokens {
        let path = dir.join(format!("kubelet-bootstrap-{node}.kubeconfig"));
        let kc = Kubeconfig::load(&path).unwrap();
        assert_eq!(kc.users[0].name, "kubelet-bootstrap");
        assert_eq!(
            kc.users[0].user.token.as_deref(),
            Some(token.token().as_str())
        );
        assert!(csv.contains(&format!(
            "{},system:bootstrap:{},system:bootstrap:{},\"system:bootstrappers,system:bootstrappers:{node}\"",
            token.token(),
            token.id,
            token.id
        )));
    }
    let secrets = std::fs::read_to_string(dir.join("bootstrap-token-secrets.yaml")).unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&secrets).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["type"], "bootstrap.kubernetes.io/token");

    use std::os::unix::fs::PermissionsExt;
    let mode = |n: &str| std::fs::metadata(dir.join(n)).unwrap().permissions().mode() & 0o777;
    for private in [
        "ca-key.pem",
        "sa.key",
        "encryption-config.yaml",
        "token.csv",
        "admin.kubeconfig",
    ] {
        assert_eq!(mode(private), 0o600, "{private}");
    }
    assert_eq!(mode("ca.pem"), 0o644);

    // A second run keeps everything, tokens included.
    let again = generate(&spec(dir)).unwrap();
    assert!(again.written.is_empty(), "{:?}", again.written);
    assert_eq!(again.bootstrap_tokens, out.bootstrap_tokens);

    // Losing one certificate regenerates it and its kubeconfig only.
    std::fs::remove_file(dir.join("admin.pem")).unwrap();
    let third = generate(&spec(dir)).unwrap();
    let names: BTreeSet<String> = third
        .written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = ["admin.pem", "admin-key.pem", "admin.kubeconfig"]
        .map(String::from)
        .into();
    assert_eq!(names, expected);
}

#[test]
fn bad_specs() {
    for (bad, want) in [
        ("k8s-01", "expected NAME=IP"),
        ("k8s-01=1.2.3", "not an IP address"),
        ("K8S=1.2.3.4", "lowercase"),
        ("=1.2.3.4", "lowercase"),
    ] {
        let err = bad.parse::<Node>().unwrap_err().to_string();
        assert!(err.starts_with(&format!("--node {bad:?}")), "{err}");
        assert!(err.contains(want), "{err}");
    }
    assert_eq!(
        first_service_ip("10.96.0.0/12").unwrap(),
        "10.96.0.1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        first_service_ip("10.32.0.5/24").unwrap(),
        "10.32.0.1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        first_service_ip("fd00::/108").unwrap(),
        "fd00::1".parse::<IpAddr>().unwrap()
    );
    for bad in ["10.96.0.0", "10.96.0.0/33", "x/12"] {
        assert!(first_service_ip(bad).is_err(), "{bad}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(tmp.path());
    s.nodes.push(s.nodes[0].clone());
    assert!(generate(&s).unwrap_err().to_string().contains("unique"));
    let mut s = spec(tmp.path());
    s.extra_sans = vec!["bad san".into()];
    assert!(generate(&s).unwrap_err().to_string().starts_with("--hosts"));
    let mut s = spec(tmp.path());
    s.apiserver_url = Some("lb:6443".into());
    assert!(generate(&s)
        .unwrap_err()
        .to_string()
        .starts_with("--apiserver-url"));
    let s = ClusterSpec::new(tmp.path(), vec![]);
    assert!(generate(&s).is_err());
    // Nothing was written by the failed calls.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
