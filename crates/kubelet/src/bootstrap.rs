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
    // The CA the bootstrap kubeconfig trusts, carried into the node's kubeconfig.
    let ca_pem: Option<Vec<u8>> = raw
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| match &c.certificate_authority_data {
            Some(data) => base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .ok(),
            None => c
                .certificate_authority
                .as_ref()
                .and_then(|p| std::fs::read(p).ok()),
        });
    let client = kube::Client::try_from(config).map_err(|e| kc_err(e.to_string()))?;
    let req = Request {
        name_prefix: "node-csr-",
        ..Request::client(node_name)
    };
    let (cert, key) = certificate::request(client, &req, stop).await?;
    let current = certificate::store(cert_dir, req.pair(), &cert, &key)?;
    use ferrokube_pki::kubeconfig::{Credentials, Kubeconfig, KubeconfigSpec, Material};
    let write_err = |e| BootstrapError::Certificate(CertificateError::Write(e));
    let mut kc = Kubeconfig::build(&KubeconfigSpec {
        cluster: "default-cluster".into(),
        server,
        ca: Material::Embedded(ca_pem.clone().unwrap_or_default()),
        user: "default-auth".into(),
        credentials: Credentials::ClientCertificate {
            cert: Material::File(current.clone()),
            key: Material::File(current),
        },
        context: "default-context".into(),
    })
    .map_err(write_err)?;
    kc.contexts[0].context.namespace = Some("default".into());
    if ca_pem.is_none() {
        let cluster = &mut kc.clusters[0].cluster;
        cluster.certificate_authority_data = None;
        cluster.insecure_skip_tls_verify = true;
    }
    if let Some(parent) = kubeconfig.parent() {
        std::fs::create_dir_all(parent).map_err(certificate::io("creating", parent))?;
    }
    kc.write(kubeconfig, true).map_err(write_err)?;
    tracing::info!(kubeconfig = %kubeconfig.display(), "client certificate issued; kubeconfig written");
    Ok(())
}
