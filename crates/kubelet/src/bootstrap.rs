//! TLS bootstrap, as upstream's `pkg/kubelet/certificate/bootstrap` `LoadClientCert`:
//! with no usable `--kubeconfig`, the kubelet authenticates with the bootstrap
//! kubeconfig's token, creates a CertificateSigningRequest for
//! `system:node:<name>` in group `system:nodes` (signer
//! `kubernetes.io/kube-apiserver-client-kubelet`), waits for the controller-manager to
//! approve and sign it, writes key and certificate to
//! `<cert-dir>/kubelet-client-<timestamp>.pem` with the `kubelet-client-current.pem`
//! symlink, and writes `--kubeconfig` pointing at that file.

use std::path::Path;

use base64::Engine;

use crate::certificate::{self, CertificateError, Request};

/// What went wrong bootstrapping.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("--bootstrap-kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error(transparent)]
    Certificate(#[from] CertificateError),
}

/// Requests this node's client certificate and writes `kubeconfig`. Waits for
/// approval until `stop` turns true.
pub async fn load_client_cert(
    kubeconfig: &Path,
    bootstrap: &Path,
    cert_dir: &Path,
    node_name: &str,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), BootstrapError> {
    let kc_err = |message: String| BootstrapError::Kubeconfig {
        path: bootstrap.display().to_string(),
        message,
    };
    let raw = kube::config::Kubeconfig::read_from(bootstrap).map_err(|e| kc_err(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(
        raw.clone(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|e| kc_err(e.to_string()))?;
    let server = config.cluster_url.to_string();
    let ca_pem: Option<String> = raw
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| {
            c.certificate_authority_data.clone().or_else(|| {
                c.certificate_authority.as_ref().and_then(|p| {
                    std::fs::read(p)
                        .ok()
                        .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
                })
            })
        });
    let client = kube::Client::try_from(config).map_err(|e| kc_err(e.to_string()))?;
    let req = Request {
        name_prefix: "node-csr-",
        ..Request::client(node_name)
    };
    let (cert, key) = certificate::request(client, &req, stop).await?;
    let current = certificate::store(cert_dir, req.pair(), &cert, &key)?;
    let ca_line = ca_pem.map_or_else(
        || "    insecure-skip-tls-verify: true\n".to_string(),
        |ca| format!("    certificate-authority-data: {ca}\n"),
    );
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n{ca_line}    server: {server}\n  name: default-cluster\ncontexts:\n- context:\n    cluster: default-cluster\n    namespace: default\n    user: default-auth\n  name: default-context\ncurrent-context: default-context\nusers:\n- name: default-auth\n  user:\n    client-certificate: {c}\n    client-key: {c}\n",
        c = current.display()
    );
    if let Some(parent) = kubeconfig.parent() {
        std::fs::create_dir_all(parent).map_err(certificate::io("creating", parent))?;
    }
    ferrokube_pki::files::write_atomic(
        kubeconfig,
        text.as_bytes(),
        ferrokube_pki::files::Mode::Private,
        true,
    )
    .map_err(|e| BootstrapError::Certificate(CertificateError::Write(e)))?;
    tracing::info!(kubeconfig = %kubeconfig.display(), "client certificate issued; kubeconfig written");
    Ok(())
}
