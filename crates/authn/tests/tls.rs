//! The serving side: a real TLS handshake through `client_cert_verifier` (upstream's
//! `RequestClientCert`), then `authenticate` on the peer chain the connection kept.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use ferrokube_authn::{AuthMethod, Authenticator, AuthnConfig, NoObjects};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Handshakes a client presenting `client` (cert, key) and returns the peer chain the
/// server saw.
async fn handshake(
    authn: &Authenticator,
    server_ca: &Ca,
    client: Option<(Vec<u8>, Vec<u8>)>,
) -> Option<Vec<Vec<u8>>> {
    let (cert, key) = server_ca.server_cert();
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(authn.client_cert_verifier())
        .with_single_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(server_ca.der())).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let client_config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(cert)],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let (a, b) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let server_side = tokio::spawn(async move {
        let mut tls = acceptor.accept(b).await.unwrap();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.unwrap();
        tls.get_ref()
            .1
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.to_vec()).collect::<Vec<_>>())
    });
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), a)
        .await
        .unwrap();
    tls.write_all(b"ping").await.unwrap();
    tls.flush().await.unwrap();
    let chain = server_side.await.unwrap();
    drop(tls);
    chain
}

#[tokio::test]
async fn client_certificates_are_requested_and_checked_per_request() {
    let dir = Dir::new();
    let client_ca = Ca::new("kubernetes-ca");
    let stranger_ca = Ca::new("stranger");
    let authn = Authenticator::new(&AuthnConfig {
        client_ca_file: Some(dir.write("ca.pem", client_ca.pem())),
        token_auth_file: Some(dir.write("t.csv", "tok,admin,1\n")),
        anonymous_auth: false,
        ..AuthnConfig::new()
    })
    .unwrap();

    // A certificate of the client CA authenticates its CN.
    let chain = handshake(
        &authn,
        &client_ca,
        Some(client_ca.client_cert_and_key("kubelet")),
    )
    .await
    .unwrap();
    let a = authn
        .authenticate(&headers(&[]), Some(&chain), &NoObjects)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.method, a.user.name.as_str()),
        (AuthMethod::X509, "kubelet")
    );

    // A certificate of an unknown CA completes the handshake (as upstream's
    // RequestClientCert) but does not authenticate; a token on the same request does.
    let chain = handshake(
        &authn,
        &client_ca,
        Some(stranger_ca.client_cert_and_key("admin")),
    )
    .await
    .unwrap();
    assert!(authn
        .authenticate(&headers(&[]), Some(&chain), &NoObjects)
        .await
        .is_err());
    let a = authn
        .authenticate(&bearer("tok"), Some(&chain), &NoObjects)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.method, AuthMethod::TokenFile);

    // No client certificate at all is fine for the handshake.
    assert!(handshake(&authn, &client_ca, None).await.is_none());
}
