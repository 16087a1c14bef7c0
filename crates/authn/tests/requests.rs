//! The request chain: x509 client certificates, the front proxy's request headers, static
//! tokens, bootstrap tokens, anonymous, and configuration errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use common::*;
use ferrokube_authn::{
    AuthMethod, Authenticator, AuthnConfig, ConfigError, MapLookup, MethodError, NoObjects,
    X509Error,
};
use rcgen::ExtendedKeyUsagePurpose;
use serde_json::json;

struct Cas {
    client: Ca,
    proxy: Ca,
    other: Ca,
}

fn cas() -> Cas {
    Cas {
        client: Ca::new("kubernetes-ca"),
        proxy: Ca::new("front-proxy-ca"),
        other: Ca::new("someone-elses-ca"),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn authenticator(dir: &Dir, cas: &Cas, allowed: &[&str], anonymous: bool) -> Authenticator {
    let cfg = AuthnConfig {
        client_ca_file: Some(dir.write("ca.pem", cas.client.pem())),
        requestheader_client_ca_file: Some(dir.write("proxy-ca.pem", cas.proxy.pem())),
        requestheader_allowed_names: strings(allowed),
        requestheader_username_headers: strings(&["X-Remote-User"]),
        requestheader_uid_headers: strings(&["X-Remote-Uid"]),
        requestheader_group_headers: strings(&["X-Remote-Group"]),
        requestheader_extra_headers_prefix: strings(&["X-Remote-Extra-"]),
        token_auth_file: Some(dir.write(
            "tokens.csv",
            "s3cret,admin,42,\"system:masters,ops\"\nother,bob,43\n",
        )),
        enable_bootstrap_token_auth: true,
        anonymous_auth: anonymous,
        ..AuthnConfig::new()
    };
    Authenticator::new(&cfg).unwrap()
}

#[tokio::test]
async fn x509_common_name_and_organizations() {
    let dir = Dir::new();
    let cas = cas();
    let authn = authenticator(&dir, &cas, &["front-proxy-client"], false);
    let leaf = cas
        .client
        .client_cert("system:node:worker-1", &["system:nodes", "ops"]);
    let chain = vec![leaf];
    let a = authn
        .authenticate(&headers(&[]), Some(&chain), &NoObjects)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.method, AuthMethod::X509);
    assert_eq!(a.user.name, "system:node:worker-1");
    assert_eq!(
        a.user.groups,
        vec!["system:nodes", "ops", "system:authenticated"]
    );
    assert!(a.user.uid.is_empty());

    // Another CA: an error naming the certificate, so 401 (never anonymous).
    let anon = authenticator(&dir, &cas, &[], true);
    let stranger = vec![cas.other.client_cert("admin", &["system:masters"])];
    let err = anon
        .authenticate(&headers(&[]), Some(&stranger), &NoObjects)
        .await
        .unwrap_err();
    // The proxy verifier and the client verifier both refuse it.
    assert_eq!(err.errors.len(), 2, "{err}");
    assert!(err
        .errors
        .iter()
        .all(|e| matches!(e, MethodError::X509(X509Error::Verify { .. }))));
    assert!(err.to_string().contains("CN=admin"), "{err}");

    // A server-only certificate is not for client authentication.
    let server_only =
        vec![cas
            .client
            .cert("admin", &[], vec![ExtendedKeyUsagePurpose::ServerAuth])];
    assert!(authn
        .authenticate(&headers(&[]), Some(&server_only), &NoObjects)
        .await
        .is_err());
    // No extended key usage at all is accepted, as Go does.
    let no_eku = vec![cas.client.cert("carol", &[], vec![])];
    let a = authn
        .authenticate(&headers(&[]), Some(&no_eku), &NoObjects)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.user.name, "carol");
    // No CN: the x509 method declines; nothing else applies (with a front proxy CA too,
    // its verifier's refusal makes it a 401, as upstream).
    let no_cn = vec![cas.client.client_cert("", &["ops"])];
    let client_only = Authenticator::new(&AuthnConfig {
        client_ca_file: Some(dir.write("only-ca.pem", cas.client.pem())),
        anonymous_auth: false,
        ..AuthnConfig::new()
    })
    .unwrap();
    let r = client_only
        .authenticate(&headers(&[]), Some(&no_cn), &NoObjects)
        .await;
    assert!(r.unwrap().is_none());
    let err = authn
        .authenticate(&headers(&[]), Some(&no_cn), &NoObjects)
        .await
        .unwrap_err();
    assert_eq!(err.errors.len(), 1);
    // Garbage DER.
    let junk = vec![b"not a certificate".to_vec()];
    assert!(authn
        .authenticate(&headers(&[]), Some(&junk), &NoObjects)
        .await
        .is_err());

    // A bad certificate does not stop a good token (the union goes on).
    let a = authn
        .authenticate(&bearer("s3cret"), Some(&stranger), &NoObjects)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.method, AuthMethod::TokenFile);
}

#[tokio::test]
async fn x509_chain_through_an_intermediate() {
    // The client CA file holds the root; the client sends leaf + intermediate.
    let root = Ca::new("root");
    let intermediate = {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "intermediate");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &root.issuer).unwrap();
        (rcgen::Issuer::new(params, key), cert.der().to_vec())
    };
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dave");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = params
        .signed_by(&key, &intermediate.0)
        .unwrap()
        .der()
        .to_vec();

    let dir = Dir::new();
    let cfg = AuthnConfig {
        client_ca_file: Some(dir.write("ca.pem", root.pem())),
        anonymous_auth: false,
        ..AuthnConfig::new()
    };
    let authn = Authenticator::new(&cfg).unwrap();
    let chain = vec![leaf.clone(), intermediate.1];
    let a = authn
        .authenticate(&headers(&[]), Some(&chain), &NoObjects)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.user.name, "dave");
    // Without the intermediate the chain does not verify.
    assert!(authn
        .authenticate(&headers(&[]), Some(&[leaf]), &NoObjects)
        .await
        .is_err());
}

#[tokio::test]
async fn request_header_proxy() {
    let dir = Dir::new();
    let cas = cas();
    let authn = authenticator(&dir, &cas, &["front-proxy-client"], false);
    let proxy = vec![cas.proxy.client_cert("front-proxy-client", &[])];
    let mut h = headers(&[
        ("X-Remote-User", "alice"),
        ("X-Remote-Uid", "alice-uid"),
        ("X-Remote-Group", "devs"),
        ("X-Remote-Group", ""),
        ("X-Remote-Group", "ops"),
        ("X-Remote-Extra-Scopes", "read"),
        ("X-Remote-Extra-Scopes", "write"),
        ("X-Remote-Extra-Example.com%2fTeam", "blue"),
        ("X-Remote-Extra-bad%zz", "kept"),
        ("Authorization", "Bearer ignored-because-headers-win"),
        ("Accept", "application/json"),
    ]);
    let a = authn
        .authenticate(&h, Some(&proxy), &NoObjects)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.method, AuthMethod::RequestHeader);
    assert_eq!(a.user.name, "alice");
    assert_eq!(a.user.uid, "alice-uid");
    assert_eq!(a.user.groups, vec!["devs", "ops", "system:authenticated"]);
    assert_eq!(a.user.extra["scopes"], vec!["read", "write"]);
    assert_eq!(a.user.extra["example.com/team"], vec!["blue"]);
    assert_eq!(a.user.extra["bad%zz"], vec!["kept"]);
    assert_eq!(a.user.extra.len(), 3);

    authn.clear_authentication_headers(&mut h);
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h.contains_key("accept"));

    // A proxy certificate with a CN outside --requestheader-allowed-names.
    let wrong_cn = vec![cas.proxy.client_cert("someone", &[])];
    let h = headers(&[("X-Remote-User", "alice")]);
    let err = authn
        .authenticate(&h, Some(&wrong_cn), &NoObjects)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("x509: subject with cn=someone is not in the allowed list"),
        "{err}"
    );
    // With no allowed names, any CN from the proxy CA is accepted.
    let open = authenticator(&dir, &cas, &[], false);
    let a = open
        .authenticate(&h, Some(&wrong_cn), &NoObjects)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.user.name, "alice");

    // Headers without the proxy's certificate mean nothing.
    assert!(authn
        .authenticate(&h, None, &NoObjects)
        .await
        .unwrap()
        .is_none());
    // A client-CA certificate does not make headers count: the client's own CN is used.
    let client = vec![cas.client.client_cert("mallory", &[])];
    let a = authn
        .authenticate(&h, Some(&client), &NoObjects)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.method, a.user.name.as_str()),
        (AuthMethod::X509, "mallory")
    );
    // The proxy without a user header: declines; the proxy cert is not a client cert
    // of the client CA, so the request is refused.
    let err = authn
        .authenticate(&headers(&[]), Some(&proxy), &NoObjects)
        .await
        .unwrap_err();
    assert!(matches!(
        err.errors.as_slice(),
        [MethodError::X509(X509Error::Verify { .. })]
    ));

    let names = authn.requestheader_headers().unwrap();
    assert_eq!(names.username_headers, vec!["X-Remote-User"]);
    let data = authn.extension_apiserver_authentication_data();
    assert_eq!(
        data["requestheader-allowed-names"],
        r#"["front-proxy-client"]"#
    );
    assert_eq!(
        data["requestheader-extra-headers-prefix"],
        r#"["X-Remote-Extra-"]"#
    );
    assert!(data["client-ca-file"].contains("BEGIN CERTIFICATE"));
    assert_eq!(
        authn.client_cert_roots(),
        vec![cas.client.der().into(), cas.proxy.der().into()]
    );
    let verifier = authn.client_cert_verifier();
    assert!(verifier.offer_client_auth());
    assert!(!verifier.client_auth_mandatory());
    assert_eq!(verifier.root_hint_subjects().len(), 2);
}

#[tokio::test]
async fn tokens_and_anonymous() {
    let dir = Dir::new();
    let cas = cas();
    let anon = authenticator(&dir, &cas, &[], true);
    let closed = authenticator(&dir, &cas, &[], false);

    let a = closed
        .authenticate(&bearer("s3cret"), None, &NoObjects)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.method, AuthMethod::TokenFile);
    assert_eq!((a.user.name.as_str(), a.user.uid.as_str()), ("admin", "42"));
    assert_eq!(
        a.user.groups,
        vec!["system:masters", "ops", "system:authenticated"]
    );

    // Nothing presented: anonymous when enabled, else no user.
    let a = anon
        .authenticate(&headers(&[]), None, &NoObjects)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.method, AuthMethod::Anonymous);
    assert_eq!(a.user.name, "system:anonymous");
    assert_eq!(a.user.groups, vec!["system:unauthenticated"]);
    assert!(closed
        .authenticate(&headers(&[]), None, &NoObjects)
        .await
        .unwrap()
        .is_none());
    // A wrong token is an error even with anonymous on.
    let err = anon
        .authenticate(&bearer("wrong"), None, &NoObjects)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid bearer token");
    // Malformed Authorization headers are no credentials (→ anonymous).
    for value in ["Bearer", "Bearer  s3cret", "Basic YWRtaW46cw==", "s3cret"] {
        let a = anon
            .authenticate(&headers(&[("authorization", value)]), None, &NoObjects)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.method, AuthMethod::Anonymous, "{value}");
    }
    // Token over the WebSocket protocol.
    let proto = format!(
        "base64url.bearer.authorization.k8s.io.{}, v5.channel.k8s.io",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("s3cret")
    );
    let mut ws = headers(&[
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-protocol", &proto),
    ]);
    let a = closed
        .authenticate(&ws, None, &NoObjects)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.user.name, "admin");
    closed.clear_authentication_headers(&mut ws);
    assert_eq!(ws["sec-websocket-protocol"], "v5.channel.k8s.io");

    // Bootstrap token from a live Secret.
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut objects = MapLookup::new();
    objects.insert(
        "",
        "secrets",
        "kube-system",
        "bootstrap-token-07401b",
        json!({"metadata": {"name": "bootstrap-token-07401b", "namespace": "kube-system"},
               "type": "bootstrap.kubernetes.io/token",
               "data": {"token-id": b64("07401b"), "token-secret": b64("f395accd246ae52d"),
                        "usage-bootstrap-authentication": b64("true"),
                        "auth-extra-groups": b64("system:bootstrappers:kubeadm:default-node-token")}}),
    );
    let a = closed
        .authenticate(&bearer("07401b.f395accd246ae52d"), None, &objects)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.method, AuthMethod::BootstrapToken);
    assert_eq!(a.user.name, "system:bootstrap:07401b");
    assert_eq!(
        a.user.groups,
        vec![
            "system:bootstrappers",
            "system:bootstrappers:kubeadm:default-node-token",
            "system:authenticated"
        ]
    );
    assert!(closed
        .authenticate(&bearer("07401b.f395accd246ae52e"), None, &objects)
        .await
        .is_err());

    // TokenReview for a static token: the API server's audiences only.
    let r = closed
        .authenticate_token("s3cret", &[], &NoObjects)
        .await
        .unwrap();
    assert_eq!(r.user.name, "admin");
    let status = ferrokube_authn::token_review_status(&Ok(r));
    assert_eq!(status["user"]["uid"], "42");
    assert!(status.get("audiences").is_none());
}

#[test]
fn configuration_errors_name_flag_file_and_problem() {
    let dir = Dir::new();
    let err = |cfg: AuthnConfig| Authenticator::new(&cfg).unwrap_err();

    let missing = dir.dir.path().join("missing.pem");
    let e = err(AuthnConfig {
        client_ca_file: Some(missing),
        ..AuthnConfig::new()
    });
    assert!(matches!(
        e,
        ConfigError::ReadFile {
            flag: "--client-ca-file",
            ..
        }
    ));
    assert!(e.to_string().starts_with("--client-ca-file "), "{e}");

    let not_pem = dir.write("ca.pem", "hello\n");
    let e = err(AuthnConfig {
        requestheader_client_ca_file: Some(not_pem),
        ..AuthnConfig::new()
    });
    assert!(
        e.to_string().contains("--requestheader-client-ca-file"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("does not contain any valid RSA or ECDSA certificates"),
        "{e}"
    );

    let broken = dir.write(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let e = err(AuthnConfig {
        client_ca_file: Some(broken),
        ..AuthnConfig::new()
    });
    assert!(
        e.to_string()
            .contains("certificate #1 is not a valid PEM X.509 certificate"),
        "{e}"
    );

    let short = dir.write("t.csv", "tok,alice,1\n\ntok2,bob\n");
    let e = err(AuthnConfig {
        token_auth_file: Some(short),
        ..AuthnConfig::new()
    });
    assert!(
        e.to_string()
            .contains("line 3: token file must have at least 3 columns"),
        "{e}"
    );
    let quote = dir.write("q.csv", "tok,al\"ice,1\n");
    let e = err(AuthnConfig {
        token_auth_file: Some(quote),
        ..AuthnConfig::new()
    });
    assert!(e.to_string().contains("bare \" in non-quoted-field"), "{e}");

    let no_keys = dir.write(
        "k.pem",
        Ca::new("x").pem().replace("CERTIFICATE", "X509 CRL"),
    );
    let e = err(AuthnConfig {
        service_account_key_files: vec![no_keys],
        ..AuthnConfig::new()
    });
    assert!(e.to_string().contains("--service-account-key-file"), "{e}");
    assert!(
        e.to_string()
            .contains("does not contain any valid RSA or ECDSA public keys"),
        "{e}"
    );
    let bad_key = dir.write(
        "bad.pem",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    );
    let e = err(AuthnConfig {
        service_account_key_files: vec![bad_key.clone()],
        ..AuthnConfig::new()
    });
    assert!(
        e.to_string()
            .contains("PEM block #1 (PUBLIC KEY) does not parse"),
        "{e}"
    );

    let e = ferrokube_authn::TokenIssuer::load(&bad_key, ISSUER).unwrap_err();
    assert!(
        e.to_string().contains("--service-account-signing-key-file"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("does not contain a valid RSA or ECDSA private key"),
        "{e}"
    );
}
