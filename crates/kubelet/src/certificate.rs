//! Certificates the kubelet gets from the cluster (upstream `pkg/kubelet/certificate`
//! and client-go's `util/certificate`): a CertificateSigningRequest is created, the
//! kubelet waits until it is approved and issued, and key plus certificate are written
//! to `<cert-dir>/<pair>-<timestamp>.pem` with a `<pair>-current.pem` symlink swapped
//! atomically. Pairs are `kubelet-client` (signer
//! `kubernetes.io/kube-apiserver-client-kubelet`) and `kubelet-server`
//! (`kubernetes.io/kubelet-serving`, with `serverTLSBootstrap`).
//!
//! A certificate is renewed at a jittered 70–90 % of its lifetime, as upstream's
//! `nextRotationDeadline`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// The client pair's signer.
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The serving pair's signer.
pub const SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";

/// What went wrong getting or storing a certificate.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
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
    #[error("stopped while waiting for certificate signing request {0}")]
    Stopped(String),
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

/// Maps an I/O error on `path` to [`CertificateError::Io`].
pub(crate) fn io(
    what: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> CertificateError {
    let path = path.display().to_string();
    move |source| CertificateError::Io { what, path, source }
}

/// A certificate to ask for: subject `system:node:<node>` in `system:nodes`.
#[derive(Debug, Clone)]
pub struct Request {
    pub signer: &'static str,
    /// The CSR's generateName (`node-csr-` for bootstrap, as kubeadm's docs show).
    pub name_prefix: &'static str,
    pub node_name: String,
    /// Subject alternative names (serving certificates only).
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl Request {
    /// The node's client certificate request.
    pub fn client(node_name: &str) -> Request {
        Request {
            signer: CLIENT_SIGNER,
            name_prefix: "csr-",
            node_name: node_name.to_string(),
            dns_names: Vec::new(),
            ips: Vec::new(),
        }
    }

    /// The node's serving certificate request for its host names and addresses.
    pub fn serving(node_name: &str, dns_names: Vec<String>, ips: Vec<IpAddr>) -> Request {
        Request {
            signer: SERVING_SIGNER,
            name_prefix: "csr-",
            node_name: node_name.to_string(),
            dns_names,
            ips,
        }
    }

    /// The file name prefix in the cert dir.
    pub fn pair(&self) -> &'static str {
        if self.signer == SERVING_SIGNER {
            "kubelet-server"
        } else {
            "kubelet-client"
        }
    }

    /// Key usages, as upstream's kubelet asks for an ECDSA key.
    fn usages(&self) -> Vec<String> {
        let last = if self.signer == SERVING_SIGNER {
            "server auth"
        } else {
            "client auth"
        };
        vec!["digital signature".into(), last.into()]
    }

    /// A new ECDSA P-256 key and its PEM request.
    fn csr(&self) -> Result<(rcgen::KeyPair, String), CertificateError> {
        let key_err = |e: rcgen::Error| CertificateError::Key(e.to_string());
        let key = rcgen::KeyPair::generate().map_err(key_err)?;
        let mut params = rcgen::CertificateParams::new(self.dns_names.clone()).map_err(key_err)?;
        params
            .subject_alt_names
            .extend(self.ips.iter().map(|ip| rcgen::SanType::IpAddress(*ip)));
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, "system:nodes");
        dn.push(
            rcgen::DnType::CommonName,
            format!("system:node:{}", self.node_name),
        );
        params.distinguished_name = dn;
        let pem = params
            .serialize_request(&key)
            .and_then(|r| r.pem())
            .map_err(key_err)?;
        Ok((key, pem))
    }
}

/// Creates the request's CSR with `client` and waits (polling every second) until it
/// is issued, refused, deleted, or `stop` turns true. Returns the certificate PEM and
/// the key PEM.
pub async fn request(
    client: kube::Client,
    req: &Request,
    stop: &mut watch::Receiver<bool>,
) -> Result<(Vec<u8>, String), CertificateError> {
    let (key, csr_pem) = req.csr()?;
    let api: Api<CertificateSigningRequest> = Api::all(client);
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some(req.name_prefix.into()),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(csr_pem.into_bytes()),
            signer_name: req.signer.into(),
            usages: Some(req.usages()),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    };
    let created = api
        .create(&PostParams::default(), &csr)
        .await
        .map_err(CertificateError::Create)?;
    let name = created.metadata.name.clone().unwrap_or_default();
    tracing::info!(csr = %name, signer = req.signer, "waiting for the certificate to be approved and issued");
    loop {
        match api.get_opt(&name).await {
            Ok(Some(c)) => {
                let status = c.status.unwrap_or_default();
                for cond in status.conditions.iter().flatten() {
                    if (cond.type_ == "Denied" || cond.type_ == "Failed") && cond.status == "True" {
                        return Err(CertificateError::Refused {
                            name,
                            condition: cond.type_.clone(),
                            message: cond.message.clone().unwrap_or_default(),
                        });
                    }
                }
                if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
                    tracing::info!(csr = %name, "certificate issued");
                    return Ok((cert.0, key.serialize_pem()));
                }
            }
            Ok(None) => {
                return Err(CertificateError::Refused {
                    name,
                    condition: "deleted".into(),
                    message: "the request no longer exists".into(),
                })
            }
            Err(e) => {
                tracing::warn!(csr = %name, error = %e, "reading the certificate signing request")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => return Err(CertificateError::Stopped(name)),
        }
    }
}

/// Writes certificate and key to `<dir>/<pair>-<timestamp>.pem` (mode 0600) and
/// points `<dir>/<pair>-current.pem` at it; returns the current link's path.
pub fn store(dir: &Path, pair: &str, cert: &[u8], key: &str) -> Result<PathBuf, CertificateError> {
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let stamp = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%d-%H-%M-%S")
        .to_string();
    let file = dir.join(format!("{pair}-{stamp}.pem"));
    let mut pem = cert.to_vec();
    if !pem.ends_with(b"\n") {
        pem.push(b'\n');
    }
    pem.extend_from_slice(key.as_bytes());
    ferrokube_pki::files::write_atomic(&file, &pem, ferrokube_pki::files::Mode::Private, true)
        .map_err(CertificateError::Write)?;
    let current = current_path(dir, pair);
    let tmp = dir.join(format!("{pair}-current.pem.tmp"));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&file, &tmp).map_err(io("linking", &tmp))?;
    std::fs::rename(&tmp, &current).map_err(io("linking", &current))?;
    tracing::info!(cert = %file.display(), "certificate written");
    Ok(current)
}

/// `<dir>/<pair>-current.pem`.
pub fn current_path(dir: &Path, pair: &str) -> PathBuf {
    dir.join(format!("{pair}-current.pem"))
}

/// A certificate and key read from one PEM file, with its validity.
#[derive(Debug, Clone)]
pub struct Current {
    pub pem: Vec<u8>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Current {
    /// Reads `path`; `None` when missing, unparsable or without a key.
    pub fn load(path: &Path) -> Option<Current> {
        let pem = std::fs::read(path).ok()?;
        if !String::from_utf8_lossy(&pem).contains("PRIVATE KEY-----") {
            return None;
        }
        let info = ferrokube_pki::cert::CertInfo::from_pem(&pem, "certificate").ok()?;
        let at = |secs: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
        Some(Current {
            pem,
            not_before: at(info.not_before),
            not_after: at(info.not_after),
        })
    }

    /// Still valid now.
    pub fn valid(&self) -> bool {
        SystemTime::now() < self.not_after
    }

    /// When to renew: at a random point between 70 % and 90 % of the lifetime.
    pub fn rotation_deadline(&self) -> SystemTime {
        rotation_deadline(self.not_before, self.not_after, jitter_fraction())
    }
}

/// `not_before + lifetime * (0.7 + 0.2 * fraction)`, `fraction` in [0, 1].
pub fn rotation_deadline(
    not_before: SystemTime,
    not_after: SystemTime,
    fraction: f64,
) -> SystemTime {
    let total = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    not_before + total.mul_f64(0.7 + 0.2 * fraction.clamp(0.0, 1.0))
}

/// A value in [0, 1) from the clock's nanoseconds: enough jitter to spread renewals.
fn jitter_fraction() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos) / 1e9
}

/// How long from now until `at` (zero when past).
pub fn until(at: SystemTime) -> Duration {
    at.duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

/// Keeps a current certificate for `req` in `dir`: uses `<pair>-current.pem` while it
/// is valid, requests a new one (with `client`) when there is none or at its rotation
/// deadline, and calls `on_new` with the PEM of every certificate it starts using
/// (the one found first included). Failed requests are retried after a back-off
/// growing to 5 minutes. Returns when `stop` turns true.
pub async fn keep_current<F>(
    client: kube::Client,
    req: Request,
    dir: PathBuf,
    on_new: F,
    mut stop: watch::Receiver<bool>,
) where
    F: Fn(&[u8]) + Send,
{
    let path = current_path(&dir, req.pair());
    // The rotation deadline of the certificate in use (computed once per certificate).
    let mut deadline = None;
    if let Some(c) = Current::load(&path).filter(Current::valid) {
        on_new(&c.pem);
        deadline = Some(c.rotation_deadline());
    }
    let mut backoff = Duration::from_secs(5);
    loop {
        if let Some(at) = deadline {
            let wait = until(at);
            tracing::info!(pair = req.pair(), rotate_in = ?wait, "certificate in use");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        let result = request(client.clone(), &req, &mut stop).await;
        match result.and_then(|(cert, key)| store(&dir, req.pair(), &cert, &key)) {
            Ok(p) => match Current::load(&p) {
                Some(c) => {
                    on_new(&c.pem);
                    deadline = Some(c.rotation_deadline());
                    backoff = Duration::from_secs(5);
                    continue;
                }
                None => {
                    tracing::error!(path = %p.display(), "the issued certificate does not load")
                }
            },
            Err(CertificateError::Stopped(_)) => return,
            Err(e) => tracing::error!(pair = req.pair(), error = %e, "certificate request failed"),
        }
        // Retry after the back-off; the deadline has passed, so no further wait.
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(300));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_falls_between_70_and_90_percent() {
        let start = UNIX_EPOCH + Duration::from_secs(1000);
        let end = start + Duration::from_secs(100);
        assert_eq!(
            rotation_deadline(start, end, 0.0),
            start + Duration::from_secs(70)
        );
        assert_eq!(
            rotation_deadline(start, end, 1.0),
            start + Duration::from_secs(90)
        );
        assert_eq!(
            rotation_deadline(start, end, 7.0),
            start + Duration::from_secs(90)
        );
        assert_eq!(rotation_deadline(end, start, 0.5), end);
    }

    #[test]
    fn requests_name_the_node_and_its_addresses() {
        let r = Request::serving(
            "n1",
            vec!["n1".into(), "host.example".into()],
            vec!["198.18.0.2".parse().unwrap()],
        );
        assert_eq!(r.pair(), "kubelet-server");
        assert_eq!(r.usages(), ["digital signature", "server auth"]);
        let (_, pem) = r.csr().unwrap();
        let parsed = rcgen::CertificateSigningRequestParams::from_pem(&pem).unwrap();
        let dn = &parsed.params.distinguished_name;
        assert_eq!(
            dn.get(&rcgen::DnType::CommonName),
            Some(&rcgen::DnValue::Utf8String("system:node:n1".into()))
        );
        assert_eq!(
            dn.get(&rcgen::DnType::OrganizationName),
            Some(&rcgen::DnValue::Utf8String("system:nodes".into()))
        );
        assert_eq!(parsed.params.subject_alt_names.len(), 3);
        assert_eq!(Request::client("n1").pair(), "kubelet-client");
    }

    #[test]
    fn store_links_current_and_load_reads_it_back() {
        let dir = std::env::temp_dir().join(format!("fk-cert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["n1".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let current = store(
            &dir,
            "kubelet-server",
            cert.pem().as_bytes(),
            &key.serialize_pem(),
        )
        .unwrap();
        let loaded = Current::load(&current).unwrap();
        assert!(loaded.valid());
        assert!(loaded.rotation_deadline() > loaded.not_before);
        assert!(std::fs::read_link(&current)
            .unwrap()
            .to_string_lossy()
            .contains("kubelet-server-"));
        assert!(Current::load(&dir.join("missing.pem")).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
