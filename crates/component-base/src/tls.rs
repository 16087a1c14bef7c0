//! Serving certificates for a component's secure port: `--tls-cert-file` /
//! `--tls-private-key-file`, or — as upstream's `MaybeDefaultWithSelfSignedCerts` —
//! a self-signed pair `<cert-dir>/<component>.crt|.key` written once and reused, or
//! kept in memory when `--cert-dir` is empty.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the serving certificate could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{flag} {}: {source}", path.display())]
    Read {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file held no usable PEM.
    #[error("{flag} {}: {detail}", path.display())]
    BadPem {
        flag: &'static str,
        path: PathBuf,
        detail: String,
    },
    /// Only one of the pair given.
    #[error("--tls-cert-file and --tls-private-key-file must be given together")]
    HalfPair,
    /// rcgen failed.
    #[error("generating a self-signed serving certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// Writing the generated pair.
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// rustls rejected the pair.
    #[error("the certificate and key do not make a usable TLS identity: {0}")]
    Config(#[from] rustls::Error),
}

/// A certificate chain and its key.
#[derive(Debug)]
pub struct CertKey {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
}

/// Reads a PEM chain and key from files (`--tls-cert-file`, `--tls-private-key-file`).
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertKey, TlsError> {
    load_named_pair("--tls-cert-file", cert, "--tls-private-key-file", key)
}

/// Reads a PEM chain and key from files; errors name `cert_flag` / `key_flag`.
pub fn load_named_pair(
    cert_flag: &'static str,
    cert: &Path,
    key_flag: &'static str,
    key: &Path,
) -> Result<CertKey, TlsError> {
    let read = |flag: &'static str, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            flag,
            path: path.into(),
            source,
        })
    };
    let cert_pem = read(cert_flag, cert)?;
    let chain: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&cert_pem).collect();
    let chain = chain.map_err(|e| TlsError::BadPem {
        flag: cert_flag,
        path: cert.into(),
        detail: e.to_string(),
    })?;
    if chain.is_empty() {
        return Err(TlsError::BadPem {
            flag: cert_flag,
            path: cert.into(),
            detail: "no PEM certificate found".into(),
        });
    }
    let key_pem = read(key_flag, key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadPem {
        flag: key_flag,
        path: key.into(),
        detail: e.to_string(),
    })?;
    Ok(CertKey { chain, key })
}

/// A self-signed serving pair for `hosts` (DNS names and IPs), CN `<host>@<unix time>`
/// as upstream's `GenerateSelfSignedCertKey`.
pub fn generate_self_signed(hosts: &[String]) -> Result<(String, String), TlsError> {
    let key_pair = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let host = hosts.first().map_or("localhost", String::as_str);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{host}@{now}"));
    let cert = params.self_signed(&key_pair)?;
    Ok((cert.pem(), key_pair.serialize_pem()))
}

/// The hosts a self-signed certificate names: `localhost`, the host name, loopback
/// and the bind address (unless unspecified).
pub fn default_hosts(bind: IpAddr) -> Vec<String> {
    let mut hosts = vec![
        "localhost".to_string(),
        ferrokube_client::leaderelection::hostname(),
    ];
    for ip in [IpAddr::from([127, 0, 0, 1]), bind] {
        if !ip.is_unspecified() && !hosts.contains(&ip.to_string()) {
            hosts.push(ip.to_string());
        }
    }
    hosts.dedup();
    hosts
}

fn write_file(path: &Path, data: &str, mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Write {
        path: path.into(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    f.write_all(data.as_bytes()).map_err(err)
}

/// The serving pair: the given files, else `<cert-dir>/<pair_name>.crt|.key` (made if
/// missing), else an in-memory self-signed pair.
pub fn serving_cert(
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    cert_dir: Option<&Path>,
    pair_name: &str,
    hosts: &[String],
) -> Result<CertKey, TlsError> {
    match (cert_file, key_file) {
        (Some(c), Some(k)) => return load_pair(c, k),
        (None, None) => {}
        _ => return Err(TlsError::HalfPair),
    }
    if let Some(dir) = cert_dir.filter(|d| !d.as_os_str().is_empty()) {
        let (cert, key) = (
            dir.join(format!("{pair_name}.crt")),
            dir.join(format!("{pair_name}.key")),
        );
        if !(cert.exists() && key.exists()) {
            std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
                path: dir.into(),
                source,
            })?;
            let (cert_pem, key_pem) = generate_self_signed(hosts)?;
            write_file(&key, &key_pem, 0o600)?;
            write_file(&cert, &cert_pem, 0o644)?;
            tracing::info!(cert = %cert.display(), "generated self-signed serving certificate");
        }
        return load_pair(&cert, &key);
    }
    let (cert_pem, key_pem) = generate_self_signed(hosts)?;
    let chain: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect();
    let detail = |e: rustls_pki_types::pem::Error| TlsError::BadPem {
        flag: "--cert-dir",
        path: PathBuf::new(),
        detail: e.to_string(),
    };
    Ok(CertKey {
        chain: chain.map_err(detail)?,
        key: PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(detail)?,
    })
}

/// A rustls server config offering HTTP/2 and HTTP/1.1, asking for (not requiring) a
/// client certificate through `verifier` (upstream's `tls.RequestClientCert`).
pub fn server_config(
    cert: CertKey,
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let config = server_builder(verifier)?.with_single_cert(cert.chain, cert.key)?;
    Ok(with_alpn(config))
}

/// As [`server_config`], with the certificate chosen per handshake by `resolver`
/// (a [`SwappableCert`] for certificates that arrive or rotate while serving).
pub fn server_config_with_resolver(
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    Ok(with_alpn(
        server_builder(verifier)?.with_cert_resolver(resolver),
    ))
}

/// ring, the safe default protocol versions and `verifier` for client certificates.
fn server_builder(
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
) -> Result<rustls::ConfigBuilder<rustls::ServerConfig, rustls::server::WantsServerCert>, TlsError>
{
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier))
}

/// HTTP/2 first, then HTTP/1.1.
fn with_alpn(mut config: rustls::ServerConfig) -> Arc<rustls::ServerConfig> {
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A serving identity from one PEM holding the chain (leaf first) and the key.
pub fn certified_key(pem: &[u8]) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if chain.is_empty() {
        return Err("no PEM certificate found".into());
    }
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| e.to_string())?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| e.to_string())?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(chain, signer)))
}

/// A serving certificate that can be replaced while serving; handshakes fail while
/// there is none (as upstream's kubelet before its serving CSR is approved).
#[derive(Debug, Default)]
pub struct SwappableCert {
    current: std::sync::RwLock<Option<Arc<rustls::sign::CertifiedKey>>>,
}

impl SwappableCert {
    /// Serves `key` from the next handshake on.
    pub fn set(&self, key: Arc<rustls::sign::CertifiedKey>) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(key);
    }

    /// Whether a certificate is being served.
    pub fn is_set(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }
}

impl rustls::server::ResolvesServerCert for SwappableCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_in_cert_dir_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = default_hosts(IpAddr::from([10, 0, 0, 1]));
        assert!(
            hosts.contains(&"10.0.0.1".to_string()) && hosts.contains(&"127.0.0.1".to_string())
        );
        let a = serving_cert(None, None, Some(dir.path()), "kube-scheduler", &hosts).unwrap();
        assert!(dir.path().join("kube-scheduler.crt").exists());
        let b = serving_cert(None, None, Some(dir.path()), "kube-scheduler", &hosts).unwrap();
        assert_eq!(a.chain, b.chain);
        // In memory without a cert dir; a half pair is an error naming both flags.
        assert!(serving_cert(None, None, None, "x", &hosts).is_ok());
        let half = serving_cert(Some(Path::new("/c")), None, None, "x", &hosts).unwrap_err();
        assert!(half.to_string().contains("--tls-private-key-file"));
        let missing = serving_cert(
            Some(Path::new("/nope.crt")),
            Some(Path::new("/nope.key")),
            None,
            "x",
            &hosts,
        )
        .unwrap_err();
        assert!(
            missing.to_string().starts_with("--tls-cert-file /nope.crt"),
            "{missing}"
        );
    }
}

/// Accepts any server certificate while still checking the handshake's signatures:
/// what upstream does where it skips verification (HTTPS probes, the API server's
/// kubelet client without `--kubelet-certificate-authority`, an `insecure` health
/// check, componentstatuses on loopback).
#[derive(Debug)]
pub struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl AnyServerCert {
    pub fn new(provider: Arc<rustls::crypto::CryptoProvider>) -> Arc<AnyServerCert> {
        Arc::new(AnyServerCert(provider))
    }
}

impl rustls::client::danger::ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS client (ring, safe defaults, no client certificate) that accepts any server
/// certificate, offering `alpn`. Never for anything whose identity matters.
pub fn insecure_client_config(alpn: &[&[u8]]) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(AnyServerCert::new(provider))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The certificates of a PEM bundle as trust roots; an error says what is wrong with the
/// bundle (a bad block, a certificate rustls rejects, or no certificate at all).
pub fn root_store(pem: &[u8]) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| e.to_string())?;
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(roots)
}

#[cfg(test)]
mod root_store_tests {
    #[test]
    fn bundles_are_checked() {
        let (cert, _) = super::generate_self_signed(&["localhost".into()]).unwrap_or_default();
        assert_eq!(super::root_store(cert.as_bytes()).map(|r| r.len()), Ok(1));
        assert!(super::root_store(b"").is_err());
        assert!(super::root_store(
            b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
        )
        .is_err());
    }
}
