//! Serving certificates: the files given by `--tls-cert-file`/`--tls-private-key-file`,
//! or, as upstream does without them, a self-signed pair kept in `--cert-dir`
//! (`apiserver.crt`/`apiserver.key`) and reused on later starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{flag} {}: {source}", path.display())]
    Read {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{flag} {}: no PEM {what} found", path.display())]
    NoPem {
        flag: &'static str,
        path: PathBuf,
        what: &'static str,
    },
    #[error("{flag} {}: {detail}", path.display())]
    BadPem {
        flag: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("the certificate and key do not make a usable TLS identity: {0}")]
    Config(#[from] rustls::Error),
    #[error("generating a self-signed serving certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub fn load_certs(
    flag: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        flag,
        path: path.into(),
        source,
    })?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&data).collect();
    let certs = certs.map_err(|e| TlsError::BadPem {
        flag,
        path: path.into(),
        detail: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(TlsError::NoPem {
            flag,
            path: path.into(),
            what: "certificate",
        });
    }
    Ok(certs)
}

pub fn load_key(flag: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        flag,
        path: path.into(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPem {
            flag,
            path: path.into(),
            what: "private key",
        },
        other => TlsError::BadPem {
            flag,
            path: path.into(),
            detail: other.to_string(),
        },
    })
}

/// Writes a self-signed serving pair into `dir` unless one is there; returns the paths.
pub fn ensure_self_signed(dir: &Path, hosts: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert, key) = (dir.join("apiserver.crt"), dir.join("apiserver.key"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.into(),
        source,
    })?;
    let key_pair = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost@ferrokube");
    let generated = params.self_signed(&key_pair)?;
    let write = |path: &Path, data: String, mode: u32| -> Result<(), TlsError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(mode)
            .open(path)
            .map_err(|source| TlsError::Write {
                path: path.into(),
                source,
            })?;
        f.write_all(data.as_bytes())
            .map_err(|source| TlsError::Write {
                path: path.into(),
                source,
            })
    };
    write(&key, key_pair.serialize_pem(), 0o600)?;
    write(&cert, generated.pem(), 0o644)?;
    Ok((cert, key))
}

/// A rustls server config offering HTTP/2 and HTTP/1.1.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_config_with_clients(cert_file, key_file, None)
}

/// [`server_config`] asking clients for a certificate (optional; `verifier` decides which
/// are acceptable), as upstream's `RequestClientCert`.
pub fn server_config_with_clients(
    cert_file: &Path,
    key_file: &Path,
    verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = load_certs("--tls-cert-file", cert_file)?;
    let key = load_key("--tls-private-key-file", key_file)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS client that accepts any server certificate, for probing components on loopback
/// the way upstream probes them (componentstatuses) and for benchmarks against our own
/// self-signed server. Never for anything that crosses a network.
pub fn insecure_client_config(alpn: &[&[u8]]) -> Result<rustls::ClientConfig, rustls::Error> {
    ferrokube_component_base::tls::insecure_client_config(alpn)
}
