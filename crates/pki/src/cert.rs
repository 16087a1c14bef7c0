//! Certificates as `cfssl gencert` makes them. A CA as `-initca` makes it; leaf
//! certificates signed by it with the seeds' `ca-config.json` `kubernetes` profile
//! (`signing`, `key encipherment`, `server auth`, `client auth`), split here into
//! `client` / `server` / `peer` so a certificate carries only the usages its holder needs.
//! Like cfssl, `not_before` is backdated five minutes to absorb clock skew, and the
//! default lifetime is the seeds' 87600h (ten years).

use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rsa::rand_core::RngCore;

use crate::files::{self, Mode};
use crate::keys::{KeyAlgorithm, PrivateKey};
use crate::{Error, Result};

/// The CA's default common name (the leaf certificates' subjects must differ from it).
pub const DEFAULT_CA_NAME: &str = "kubernetes-ca";

/// The seeds' `"expiry": "87600h"`, in days.
pub const DEFAULT_VALIDITY_DAYS: u32 = 3650;

/// cfssl's `backdate`: certificates are valid from five minutes in the past.
const BACKDATE: time::Duration = time::Duration::minutes(5);

/// What a leaf certificate may be used for (its extended key usages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `client auth`: a component's identity towards the API server (admin, kube-proxy).
    Client,
    /// `server auth`: a serving certificate.
    Server,
    /// Both: the seeds' single `kubernetes` profile, for certificates used on both sides
    /// (etcd members, the API server's `kubernetes.pem` that is also its kubelet and etcd
    /// client certificate, the controller-manager's and scheduler's 10257/10259 serving).
    Peer,
}

impl FromStr for Profile {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "client" => Ok(Profile::Client),
            "server" => Ok(Profile::Server),
            "peer" | "kubernetes" => Ok(Profile::Peer),
            other => Err(Error::InvalidArgument {
                flag: "--profile",
                value: other.to_string(),
                reason: "must be client, server or peer".into(),
            }),
        }
    }
}

impl Profile {
    fn extended_key_usages(self) -> Vec<ExtendedKeyUsagePurpose> {
        match self {
            Profile::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Profile::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Profile::Peer => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        }
    }
}

/// A leaf certificate to issue: the CSR JSON's `CN`, `names[].O` and `hosts`, plus the
/// profile and key algorithm.
#[derive(Debug, Clone)]
pub struct CertSpec {
    pub common_name: String,
    /// Organizations (Kubernetes groups). At most two: rcgen keeps one value per
    /// attribute type, the second rides under the same OID as a custom attribute.
    pub organizations: Vec<String>,
    /// IP addresses and DNS names (the subject alternative names), as in cfssl's `hosts`.
    pub hosts: Vec<String>,
    pub profile: Profile,
    pub validity_days: u32,
    pub algorithm: KeyAlgorithm,
}

impl CertSpec {
    /// A spec with the defaults: no hosts, ten years, RSA 2048.
    pub fn new(common_name: &str, organizations: &[&str], profile: Profile) -> Self {
        CertSpec {
            common_name: common_name.to_string(),
            organizations: organizations.iter().map(|o| o.to_string()).collect(),
            hosts: Vec::new(),
            profile,
            validity_days: DEFAULT_VALIDITY_DAYS,
            algorithm: KeyAlgorithm::Rsa2048,
        }
    }
}

/// A certificate and its private key, as `cfssljson -bare NAME` writes them.
#[derive(Debug)]
pub struct CertPair {
    pub cert_pem: String,
    pub key: PrivateKey,
}

impl CertPair {
    /// Writes `NAME.pem` (0644) and `NAME-key.pem` (0600) into `dir`.
    pub fn write(&self, dir: &Path, name: &str, overwrite: bool) -> Result<()> {
        let (cert, key) = pair_paths(dir, name);
        if !overwrite {
            for p in [&cert, &key] {
                if p.exists() {
                    return Err(Error::AlreadyExists { path: p.clone() });
                }
            }
        }
        files::write_atomic(&key, self.key.pem().as_bytes(), Mode::Private, true)?;
        files::write_atomic(&cert, self.cert_pem.as_bytes(), Mode::Public, true)
    }
}

/// `NAME.pem` and `NAME-key.pem` in `dir`: cfssljson's names.
pub fn pair_paths(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    )
}

/// A certificate authority that signs leaf certificates.
#[derive(Debug)]
pub struct CertificateAuthority {
    pair: CertPair,
}

impl CertificateAuthority {
    /// A new self-signed CA (`cfssl gencert -initca ca-csr.json`).
    pub fn generate(
        common_name: &str,
        organizations: &[String],
        algorithm: KeyAlgorithm,
        validity_days: u32,
    ) -> Result<Self> {
        let key = PrivateKey::generate(algorithm)?;
        let mut params = base_params(common_name, organizations, validity_days)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        let cert = params
            .self_signed(key.key_pair())
            .map_err(|source| Error::Sign {
                cn: common_name.to_string(),
                source,
            })?;
        Ok(CertificateAuthority {
            pair: CertPair {
                cert_pem: cert.pem(),
                key,
            },
        })
    }

    /// An existing CA from PEM text; `cert_what`/`key_what` name the files in errors.
    /// Checks the certificate is a CA and the key is its key.
    pub fn from_pem(
        cert_pem: &[u8],
        cert_what: &str,
        key_pem: &[u8],
        key_what: &str,
    ) -> Result<Self> {
        let info = CertInfo::from_pem(cert_pem, cert_what)?;
        if !info.is_ca {
            return Err(Error::NotCa {
                what: cert_what.to_string(),
            });
        }
        let key = PrivateKey::from_pem(key_pem, key_what)?;
        if info.public_key != key.public_key_raw() {
            return Err(Error::KeyMismatch {
                cert: cert_what.to_string(),
                key: key_what.to_string(),
            });
        }
        Ok(CertificateAuthority {
            pair: CertPair {
                cert_pem: String::from_utf8_lossy(cert_pem).into_owned(),
                key,
            },
        })
    }

    /// Reads `ca.pem` and `ca-key.pem` (or whatever paths are given).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self> {
        let cert = files::read(cert_path)?;
        let key = files::read(key_path)?;
        Self::from_pem(
            &cert,
            &cert_path.display().to_string(),
            &key,
            &key_path.display().to_string(),
        )
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.pair.cert_pem
    }

    /// The CA certificate and key, e.g. to write them as `ca.pem` / `ca-key.pem`.
    pub fn pair(&self) -> &CertPair {
        &self.pair
    }

    /// Generates a key and a certificate for it signed by this CA.
    pub fn issue(&self, spec: &CertSpec) -> Result<CertPair> {
        let ca = CertInfo::from_pem(self.pair.cert_pem.as_bytes(), "the CA certificate")?;
        if ca.common_name.as_deref() == Some(spec.common_name.as_str())
            && ca.organizations == spec.organizations
        {
            // Issuer == subject: openssl and Go would take the leaf for self-signed.
            return Err(Error::InvalidArgument {
                flag: "--cn",
                value: spec.common_name.clone(),
                reason: "same subject as the CA's; give the CA another common name \
                         (e.g. kubernetes-ca)"
                    .into(),
            });
        }
        let mut params = base_params(&spec.common_name, &spec.organizations, spec.validity_days)?;
        params.subject_alt_names = spec
            .hosts
            .iter()
            .map(|h| parse_host(h))
            .collect::<Result<_>>()?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = spec.profile.extended_key_usages();
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_ca_cert_pem(&self.pair.cert_pem, self.pair.key.key_pair())
            .map_err(|e| Error::MalformedCertificate {
                what: "the CA certificate".into(),
                reason: e.to_string(),
            })?;
        let key = PrivateKey::generate(spec.algorithm)?;
        let cert = params
            .signed_by(key.key_pair(), &issuer)
            .map_err(|source| Error::Sign {
                cn: spec.common_name.clone(),
                source,
            })?;
        Ok(CertPair {
            cert_pem: cert.pem(),
            key,
        })
    }
}

fn base_params(
    common_name: &str,
    organizations: &[String],
    days: u32,
) -> Result<CertificateParams> {
    if common_name.trim().is_empty() {
        return Err(Error::InvalidArgument {
            flag: "--cn",
            value: common_name.to_string(),
            reason: "the common name must not be empty".into(),
        });
    }
    if days == 0 {
        return Err(Error::InvalidArgument {
            flag: "--days",
            value: "0".into(),
            reason: "must be at least 1".into(),
        });
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    // Upstream reads groups from O and the user from CN; order them as cfssl does.
    match organizations {
        [] => {}
        [one] => params
            .distinguished_name
            .push(DnType::OrganizationName, one.as_str()),
        [one, two] => {
            params
                .distinguished_name
                .push(DnType::OrganizationName, one.as_str());
            params
                .distinguished_name
                .push(DnType::CustomDnType(vec![2, 5, 4, 10]), two.as_str());
        }
        more => {
            return Err(Error::InvalidArgument {
                flag: "--org",
                value: more.join(","),
                reason: "at most two organizations are supported".into(),
            })
        }
    }
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + time::Duration::days(i64::from(days));
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

/// A positive, non-zero 128-bit serial number (RFC 5280 allows up to 20 octets).
fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    rsa::rand_core::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(Error::Random)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Parses one `hosts` entry: an IP address or a DNS name (a `*.` wildcard allowed; one
/// trailing dot, as in the seeds' `kubernetes.default.svc.cluster.local.`, is dropped).
pub fn parse_host(entry: &str) -> Result<SanType> {
    let bad = |reason: &str| Error::InvalidArgument {
        flag: "--hosts",
        value: entry.to_string(),
        reason: reason.to_string(),
    };
    let host = entry.trim();
    if host.is_empty() {
        return Err(bad("empty entry"));
    }
    if let Ok(ip) = IpAddr::from_str(host.trim_start_matches('[').trim_end_matches(']')) {
        return Ok(SanType::IpAddress(ip));
    }
    if host.contains('/') {
        return Err(bad("a CIDR range is not a host; give single IP addresses"));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.len() > 253 {
        return Err(bad("a DNS name is at most 253 characters"));
    }
    let labels = name.strip_prefix("*.").unwrap_or(name);
    for label in labels.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad(
                "not an IP address or DNS name (empty or over-long label)",
            ));
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad("not an IP address or DNS name (invalid character)"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad(
                "not an IP address or DNS name (label starts or ends with '-')",
            ));
        }
    }
    if labels
        .split('.')
        .all(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(bad("not a valid IP address"));
    }
    let ia5 = rcgen::string::Ia5String::try_from(name).map_err(|_| bad("not ASCII"))?;
    Ok(SanType::DnsName(ia5))
}

/// What the checks and tests need to know about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub common_name: Option<String>,
    pub organizations: Vec<String>,
    pub is_ca: bool,
    /// The raw public key (the SubjectPublicKeyInfo's bit string).
    pub public_key: Vec<u8>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub server_auth: bool,
    pub client_auth: bool,
    pub not_before: i64,
    pub not_after: i64,
}

impl CertInfo {
    /// Parses the first certificate of a PEM file; `what` names it in errors.
    pub fn from_pem(pem: &[u8], what: &str) -> Result<Self> {
        let malformed = |reason: String| Error::MalformedCertificate {
            what: what.to_string(),
            reason,
        };
        let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| match e {
            x509_parser::nom::Err::Error(x509_parser::error::PEMError::MissingHeader)
            | x509_parser::nom::Err::Failure(x509_parser::error::PEMError::MissingHeader) => {
                Error::NoPem {
                    what: what.to_string(),
                    kind: "certificate",
                }
            }
            other => Error::MalformedPem {
                what: what.to_string(),
                reason: other.to_string(),
            },
        })?;
        if block.label != "CERTIFICATE" {
            return Err(Error::NoPem {
                what: what.to_string(),
                kind: "certificate",
            });
        }
        let x509 = block.parse_x509().map_err(|e| malformed(e.to_string()))?;
        let subject = x509.subject();
        let common_name = subject
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .map(str::to_string);
        let organizations = subject
            .iter_organization()
            .filter_map(|a| a.as_str().ok())
            .map(str::to_string)
            .collect();
        let is_ca = x509
            .basic_constraints()
            .map_err(|e| malformed(e.to_string()))?
            .is_some_and(|bc| bc.value.ca);
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        if let Ok(Some(san)) = x509.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        dns_names.push(d.to_string())
                    }
                    x509_parser::extensions::GeneralName::IPAddress(b) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                            ip_addresses.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                            ip_addresses.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        let (server_auth, client_auth) = match x509.extended_key_usage() {
            Ok(Some(eku)) => (eku.value.server_auth, eku.value.client_auth),
            _ => (false, false),
        };
        Ok(CertInfo {
            common_name,
            organizations,
            is_ca,
            public_key: x509.public_key().subject_public_key.data.to_vec(),
            dns_names,
            ip_addresses,
            server_auth,
            client_auth,
            not_before: x509.validity().not_before.timestamp(),
            not_after: x509.validity().not_after.timestamp(),
        })
    }
}

/// Checks that `key_pem` is the private key of `cert_pem` (`--cert` / `--key` pairs).
pub fn check_pair(cert_pem: &[u8], cert_what: &str, key_pem: &[u8], key_what: &str) -> Result<()> {
    let info = CertInfo::from_pem(cert_pem, cert_what)?;
    let key = PrivateKey::from_pem(key_pem, key_what)?;
    if info.public_key != key.public_key_raw() {
        return Err(Error::KeyMismatch {
            cert: cert_what.to_string(),
            key: key_what.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "cert_tests.rs"]
mod tests;
