//! TLS bootstrap, as upstream's `pkg/kubelet/certificate/bootstrap` `LoadClientCert`:
//! with no usable `--kubeconfig`, the kubelet authenticates with the bootstrap
//! kubeconfig's token, creates a CertificateSigningRequest for
//! `system:node:<name>` in group `system:nodes` (signer
//! `kubernetes.io/kube-apiserver-client-kubelet`), waits for the controller-manager to
//! approve and sign it, writes key and certificate to
//! `<cert-dir>/kubelet-client-<timestamp>.pem` with the `kubelet-client-current.pem`
//! symlink, and writes `--kubeconfig` pointing at that file.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};

/// What went wrong bootstrapping.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("--bootstrap-kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("generating the private key or request: {0}")]
    Key(String),
    #[error("creating the certificate signing request: {0}")]
    Create(#[source] kube::Error),
    #[error("certificate signing request {name} was {condition}: {message}")]
    Refused {
        name: String,
        condition: String,
        message: String,
    },
    #[error(transparent)]
    Write(ferrokube_pki::Error),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BootstrapError {
    let path = path.display().to_string();
    move |source| BootstrapError::Io { what, path, source }
}

/// Requests this node's client certificate and writes `kubeconfig`.
pub async fn load_client_cert(
    kubeconfig: &Path,
    bootstrap: &Path,
    cert_dir: &Path,
    node_name: &str,
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

    // The request: ECDSA P-256, as upstream's kubelet.
    let key = rcgen::KeyPair::generate().map_err(|e| BootstrapError::Key(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| BootstrapError::Key(e.to_string()))?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "system:nodes");
    dn.push(
        rcgen::DnType::CommonName,
        format!("system:node:{node_name}"),
    );
    params.distinguished_name = dn;
    let csr_pem = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| BootstrapError::Key(e.to_string()))?;
    let api: Api<CertificateSigningRequest> = Api::all(client);
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some("node-csr-".into()),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(csr_pem.into_bytes()),
            signer_name: "kubernetes.io/kube-apiserver-client-kubelet".into(),
            usages: Some(vec!["digital signature".into(), "client auth".into()]),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    };
    let created = api
        .create(&PostParams::default(), &csr)
        .await
        .map_err(BootstrapError::Create)?;
    let name = created.metadata.name.clone().unwrap_or_default();
    tracing::info!(csr = %name, "waiting for the client certificate to be approved and issued");
    let cert = loop {
        match api.get_opt(&name).await {
            Ok(Some(c)) => {
                let status = c.status.unwrap_or_default();
                for cond in status.conditions.iter().flatten() {
                    if (cond.type_ == "Denied" || cond.type_ == "Failed") && cond.status == "True" {
                        return Err(BootstrapError::Refused {
                            name,
                            condition: cond.type_.clone(),
                            message: cond.message.clone().unwrap_or_default(),
                        });
                    }
                }
                if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
                    break cert.0;
                }
            }
            Ok(None) => {
                return Err(BootstrapError::Refused {
                    name,
                    condition: "deleted".into(),
                    message: "the request no longer exists".into(),
                })
            }
            Err(e) => tracing::warn!(error = %e, "reading the certificate signing request"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    std::fs::create_dir_all(cert_dir).map_err(io("creating", cert_dir))?;
    let stamp = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%d-%H-%M-%S")
        .to_string();
    let file = cert_dir.join(format!("kubelet-client-{stamp}.pem"));
    let mut pem = cert;
    if !pem.ends_with(b"\n") {
        pem.push(b'\n');
    }
    pem.extend_from_slice(key.serialize_pem().as_bytes());
    write_private(&file, &pem)?;
    let current = cert_dir.join("kubelet-client-current.pem");
    let tmp = cert_dir.join("kubelet-client-current.pem.tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&file, &tmp).map_err(io("linking", &tmp))?;
    std::fs::rename(&tmp, &current).map_err(io("linking", &current))?;
    let ca_line = ca_pem.map_or_else(
        || "    insecure-skip-tls-verify: true\n".to_string(),
        |ca| format!("    certificate-authority-data: {ca}\n"),
    );
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n{ca_line}    server: {server}\n  name: default-cluster\ncontexts:\n- context:\n    cluster: default-cluster\n    namespace: default\n    user: default-auth\n  name: default-context\ncurrent-context: default-context\nusers:\n- name: default-auth\n  user:\n    client-certificate: {c}\n    client-key: {c}\n",
        c = current.display()
    );
    if let Some(parent) = kubeconfig.parent() {
        std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
    }
    write_private(kubeconfig, text.as_bytes())?;
    tracing::info!(cert = %file.display(), "client certificate issued; kubeconfig written");
    Ok(())
}

/// Key material and credentials: written atomically, mode 0600.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), BootstrapError> {
    ferrokube_pki::files::write_atomic(path, bytes, ferrokube_pki::files::Mode::Private, true)
        .map_err(BootstrapError::Write)
}
