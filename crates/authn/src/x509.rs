//! x509 client-certificate authentication (upstream
//! `staging/src/k8s.io/apiserver/pkg/authentication/request/x509/x509.go`): the chain is
//! verified against a CA file for client authentication, then `CommonNameUserConversion`
//! makes the subject CN the user and the O values the groups.
//!
//! Also the TLS side: upstream serves with `tls.RequestClientCert` — a client certificate
//! is asked for (with the CAs' names as hints) but not checked during the handshake, so a
//! certificate from an unknown CA does not stop a request that carries a token; the chain
//! is verified here, per request.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::{PemObject as _, SectionKind};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::config::{read_file, ConfigError};
use crate::user::UserInfo;

/// Why a client certificate did not authenticate.
#[derive(Debug, thiserror::Error)]
pub enum X509Error {
    /// The certificate does not parse.
    #[error("parsing client certificate: {0}")]
    Parse(String),
    /// The chain does not verify against the CAs (unknown issuer, expired, not for
    /// client auth, …).
    #[error("verifying certificate {cert} failed: {source}")]
    Verify {
        /// `CN=…, SN=…` of the leaf.
        cert: String,
        /// What rustls/webpki found.
        #[source]
        source: rustls::Error,
    },
    /// Request-header proxy certificate with a CN outside `--requestheader-allowed-names`.
    #[error("x509: subject with cn={0} is not in the allowed list")]
    NotAllowed(String),
}

/// A CA bundle that verifies client certificate chains.
#[derive(Debug)]
pub(crate) struct CaVerifier {
    pub(crate) roots: Vec<CertificateDer<'static>>,
    pub(crate) subjects: Vec<DistinguishedName>,
    /// The CA file's text (for the `extension-apiserver-authentication` ConfigMap).
    pub(crate) pem: String,
    verifier: Arc<dyn ClientCertVerifier>,
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl CaVerifier {
    /// Loads a CA file (PEM `CERTIFICATE` blocks; other blocks are skipped as upstream's
    /// `ParseCertsPEM` does).
    pub(crate) fn load(flag: &'static str, path: &Path) -> Result<Self, ConfigError> {
        let data = read_file(flag, path)?;
        let bad = |index: usize, reason: String| ConfigError::BadCertificate {
            flag,
            path: path.to_path_buf(),
            index,
            reason,
        };
        let mut roots = Vec::new();
        let mut subjects = Vec::new();
        let mut store = RootCertStore::empty();
        for (i, item) in <(SectionKind, Vec<u8>)>::pem_slice_iter(&data).enumerate() {
            let (kind, der) = item.map_err(|e| bad(i + 1, format!("{e:?}")))?;
            if kind != SectionKind::Certificate {
                continue;
            }
            let (_, cert) =
                x509_parser::parse_x509_certificate(&der).map_err(|e| bad(i + 1, e.to_string()))?;
            subjects.push(DistinguishedName::from(cert.subject().as_raw().to_vec()));
            let der = CertificateDer::from(der);
            store
                .add(der.clone())
                .map_err(|e| bad(i + 1, e.to_string()))?;
            roots.push(der);
        }
        if roots.is_empty() {
            return Err(ConfigError::NoCertificates {
                flag,
                path: path.to_path_buf(),
            });
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider())
            .build()
            .map_err(|e| bad(1, e.to_string()))?;
        Ok(CaVerifier {
            roots,
            subjects,
            pem: String::from_utf8_lossy(&data).into_owned(),
            verifier,
        })
    }

    /// Verifies `chain` (leaf first) for client authentication; returns the parsed leaf's
    /// subject CN (last CN, as Go's `pkix.Name`) and O values.
    pub(crate) fn verify(&self, chain: &[Vec<u8>]) -> Result<(String, Vec<String>), X509Error> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(X509Error::Parse("empty certificate chain".into()));
        };
        let (_, cert) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|e| X509Error::Parse(e.to_string()))?;
        let subject = cert.subject();
        let cn = subject
            .iter_common_name()
            .filter_map(|a| a.as_str().ok())
            .last()
            .unwrap_or("")
            .to_string();
        let orgs = subject
            .iter_organization()
            .filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect();
        let intermediates: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        self.verifier
            .verify_client_cert(
                &CertificateDer::from(leaf.as_slice()),
                &intermediates,
                UnixTime::now(),
            )
            .map_err(|source| X509Error::Verify {
                cert: format!("CN={cn}, SN={}", cert.tbs_certificate.serial),
                source,
            })?;
        Ok((cn, orgs))
    }
}

/// `--client-ca-file` authentication: `Ok(None)` when the certificate has no CN (upstream's
/// `CommonNameUserConversion` then declines).
pub(crate) fn authenticate(
    ca: &CaVerifier,
    chain: &[Vec<u8>],
) -> Result<Option<UserInfo>, X509Error> {
    let (cn, orgs) = ca.verify(chain)?;
    if cn.is_empty() {
        return Ok(None);
    }
    Ok(Some(UserInfo {
        name: cn,
        groups: orgs,
        ..Default::default()
    }))
}

/// The TLS client-certificate policy of upstream's secure serving (`RequestClientCert`):
/// offer client authentication with the CAs' subjects as hints, accept any certificate
/// whose handshake signature is valid, and leave chain verification to
/// [`crate::Authenticator::authenticate`].
#[derive(Debug)]
pub struct RequestClientCert {
    hints: Vec<DistinguishedName>,
    provider: Arc<CryptoProvider>,
}

impl RequestClientCert {
    pub(crate) fn new(hints: Vec<DistinguishedName>) -> Self {
        RequestClientCert {
            hints,
            provider: provider(),
        }
    }
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Checked per request against the right CA file (client CA or request-header CA).
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
