#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use super::*;

fn signed_by(cert_pem: &str, ca_pem: &str) -> bool {
    let (_, leaf) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).unwrap();
    let (_, ca) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes()).unwrap();
    let leaf = leaf.parse_x509().unwrap();
    let ca = ca.parse_x509().unwrap();
    leaf.verify_signature(Some(ca.public_key())).is_ok() && leaf.issuer() == ca.subject()
}

#[test]
fn ca_then_leaf() {
    let ca = CertificateAuthority::generate(
        "kubernetes-ca",
        &["k8s".to_string()],
        KeyAlgorithm::EcdsaP256,
        10,
    )
    .unwrap();
    let info = CertInfo::from_pem(ca.cert_pem().as_bytes(), "ca").unwrap();
    assert!(info.is_ca);
    assert_eq!(info.common_name.as_deref(), Some("kubernetes-ca"));
    assert!(signed_by(ca.cert_pem(), ca.cert_pem()));

    let mut spec = CertSpec::new("kubernetes", &["k8s"], Profile::Peer);
    spec.algorithm = KeyAlgorithm::EcdsaP256;
    spec.validity_days = 10;
    spec.hosts = vec![
        "127.0.0.1".into(),
        "10.96.0.1".into(),
        "kubernetes.default.svc.cluster.local.".into(),
        "*.example.com".into(),
        "::1".into(),
    ];
    let pair = ca.issue(&spec).unwrap();
    let info = CertInfo::from_pem(pair.cert_pem.as_bytes(), "leaf").unwrap();
    assert!(!info.is_ca);
    assert_eq!(info.organizations, vec!["k8s".to_string()]);
    assert_eq!(
        info.dns_names,
        vec!["kubernetes.default.svc.cluster.local", "*.example.com"]
    );
    assert_eq!(
        info.ip_addresses,
        vec![
            "127.0.0.1".parse::<IpAddr>().unwrap(),
            "10.96.0.1".parse().unwrap(),
            "::1".parse().unwrap()
        ]
    );
    assert!(info.server_auth && info.client_auth);
    assert_eq!(info.public_key, pair.key.public_key_raw());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(info.not_before < now - 200 && info.not_before > now - 400);
    assert!((info.not_after - now - 10 * 86400).abs() < 60);
    assert!(signed_by(&pair.cert_pem, ca.cert_pem()));
}

#[test]
fn rsa_client_with_two_groups_from_loaded_ca() {
    let ca = CertificateAuthority::generate("ca", &[], KeyAlgorithm::Rsa2048, 1).unwrap();
    let loaded = CertificateAuthority::from_pem(
        ca.cert_pem().as_bytes(),
        "ca.pem",
        ca.pair().key.pem().as_bytes(),
        "ca-key.pem",
    )
    .unwrap();
    let spec = CertSpec::new(
        "system:node:k8s-01",
        &["system:nodes", "extra"],
        Profile::Client,
    );
    let pair = loaded.issue(&spec).unwrap();
    assert!(pair
        .key
        .pem()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let info = CertInfo::from_pem(pair.cert_pem.as_bytes(), "leaf").unwrap();
    assert_eq!(info.common_name.as_deref(), Some("system:node:k8s-01"));
    assert_eq!(info.organizations, vec!["system:nodes", "extra"]);
    assert!(info.client_auth && !info.server_auth);
    assert!(signed_by(&pair.cert_pem, ca.cert_pem()));
    check_pair(
        pair.cert_pem.as_bytes(),
        "x.pem",
        pair.key.pem().as_bytes(),
        "x-key.pem",
    )
    .unwrap();
}

#[test]
fn mismatches_and_bad_input_are_named() {
    let ca = CertificateAuthority::generate("ca", &[], KeyAlgorithm::EcdsaP256, 1).unwrap();
    let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let err = CertificateAuthority::from_pem(
        ca.cert_pem().as_bytes(),
        "ca.pem",
        other.pem().as_bytes(),
        "other-key.pem",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "other-key.pem is not the private key of ca.pem"
    );

    let mut spec = CertSpec::new("x", &[], Profile::Server);
    spec.algorithm = KeyAlgorithm::EcdsaP256;
    let leaf = ca.issue(&spec).unwrap();
    let err = CertificateAuthority::from_pem(
        leaf.cert_pem.as_bytes(),
        "leaf.pem",
        leaf.key.pem().as_bytes(),
        "leaf-key.pem",
    )
    .unwrap_err();
    assert!(matches!(err, Error::NotCa { .. }), "{err}");

    let err = CertInfo::from_pem(b"not pem", "ca.pem").unwrap_err();
    assert_eq!(err.to_string(), "ca.pem: no PEM certificate found");
    let err = CertInfo::from_pem(other.pem().as_bytes(), "ca.pem").unwrap_err();
    assert_eq!(err.to_string(), "ca.pem: no PEM certificate found");

    for bad in [
        "",
        "10.0.0.0/8",
        "a..b",
        "-a.b",
        "bad host",
        "10.96.0",
        "ü.de",
    ] {
        let err = parse_host(bad).unwrap_err();
        assert!(err.to_string().starts_with("--hosts"), "{bad}: {err}");
    }
    spec.hosts = vec!["ok".into(), "not ok".into()];
    assert!(ca
        .issue(&spec)
        .unwrap_err()
        .to_string()
        .contains("\"not ok\""));
    assert!("nope".parse::<Profile>().is_err());
    let same = CertSpec::new("ca", &[], Profile::Client);
    let err = ca.issue(&same).unwrap_err().to_string();
    assert!(err.contains("same subject as the CA"), "{err}");
    let three = CertSpec::new("x", &["a", "b", "c"], Profile::Client);
    assert!(ca.issue(&three).is_err());
}
