//! ferrokube's PKI: everything the seeds build by hand with `cfssl gencert`,
//! `cfssljson -bare`, `openssl genrsa`/`openssl rsa -pubout`, `kubectl config set-*` and
//! `kubeadm token create`, as a library (for `ferrokube server`'s first start) and as
//! `ferrokube pki …`.
//!
//! - [`keys`]: RSA 2048 / ECDSA P-256 private keys, read in any PEM form cfssl, openssl or
//!   kubeadm write (PKCS#1, SEC1, PKCS#8).
//! - [`cert`]: a CA (`cfssl gencert -initca`) and leaf certificates signed by it with
//!   cfssl's `kubernetes` profile split into client / server / peer.
//! - [`kubeconfig`]: the v1 `Config` file `kubectl config set-cluster/-credentials/-context`
//!   writes, and reading one back to talk to an API server.
//! - [`configs`]: the apiserver's `EncryptionConfiguration` and audit `Policy` files.
//! - [`bootstrap`]: bootstrap tokens and their `bootstrap.kubernetes.io/token` Secrets.
//! - [`client`]: the one HTTPS request `bootstrap-token create` needs.
//! - [`cluster`]: the whole set of files for a cluster in one call.

pub mod bootstrap;
pub mod cert;
pub mod client;
pub mod cluster;
pub mod configs;
pub mod files;
pub mod keys;
pub mod kubeconfig;

use std::path::PathBuf;

/// Everything that can go wrong while making or reading PKI files. Each variant names the
/// step that failed and the file, flag or value involved; the underlying error is its
/// `source()` (print the chain, e.g. anyhow's `{:#}`, to see both).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}", path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} already exists (use --force to overwrite)", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("{what}: no PEM {kind} found")]
    NoPem { what: String, kind: &'static str },
    #[error("{what}: malformed PEM: {reason}")]
    MalformedPem { what: String, reason: String },
    #[error("{what}: unsupported private key: {reason}")]
    UnsupportedKey { what: String, reason: String },
    #[error("{what}: malformed certificate: {reason}")]
    MalformedCertificate { what: String, reason: String },
    #[error("{key} is not the private key of {cert}")]
    KeyMismatch { cert: String, key: String },
    #[error("{what} is not a CA certificate (no basicConstraints CA:TRUE)")]
    NotCa { what: String },
    #[error("{flag} {value:?}: {reason}")]
    InvalidArgument {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("generating an RSA key")]
    GenerateRsaKey(#[source] rsa::Error),
    #[error("generating a key")]
    GenerateKey(#[source] rcgen::Error),
    #[error("encoding a private key: {0}")]
    EncodeKey(String),
    #[error("reading the OS random number generator")]
    Random(#[source] rsa::rand_core::Error),
    #[error("signing the certificate for {cn:?}")]
    Sign {
        cn: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("parsing kubeconfig {}", path.display())]
    ParseKubeconfig {
        path: PathBuf,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    #[error("kubeconfig {}: {reason}", path.display())]
    Kubeconfig { path: PathBuf, reason: String },
    #[error("serialising YAML")]
    SerializeYaml(#[source] serde_saphyr::SerializeError),
    #[error("serialising JSON")]
    SerializeJson(#[source] serde_json::Error),
    #[error("TLS client configuration")]
    TlsConfig(#[source] rustls::Error),
    #[error("connecting to {server}")]
    Connect {
        server: String,
        #[source]
        source: std::io::Error,
    },
    #[error("request to {server}: {reason}")]
    Request { server: String, reason: String },
    #[error("{server} answered {code}: {message}")]
    ApiStatus {
        server: String,
        code: u16,
        message: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
