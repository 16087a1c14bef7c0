//! How to reach etcd: kube-apiserver's `--etcd-servers`, `--etcd-prefix`,
//! `--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile` (upstream's
//! `storagebackend.TransportConfig` and `storagebackend.Config.Prefix`), and the
//! TLS material they name, read and checked before any connection is made.

use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{Certificate, Identity, TlsOptions};
use ferrokube_storage::StorageError;

/// Upstream's default `--etcd-prefix`.
pub const DEFAULT_PREFIX: &str = "/registry";

/// Upstream's default dial timeout for etcd clients (`storagebackend.DefaultDialTimeout`).
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// The validated settings of the etcd backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Client URLs of the members (`--etcd-servers`), `http://` or `https://`.
    pub endpoints: Vec<String>,
    /// Every key lives under this prefix in etcd (`--etcd-prefix`).
    pub prefix: String,
    /// CA bundle that signed the members' serving certificates (`--etcd-cafile`).
    pub ca_file: Option<PathBuf>,
    /// Client certificate presented to etcd (`--etcd-certfile`).
    pub cert_file: Option<PathBuf>,
    /// Key of the client certificate (`--etcd-keyfile`).
    pub key_file: Option<PathBuf>,
    /// How long connecting to one member, and retrying a request across members, may take.
    pub dial_timeout: Duration,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            endpoints: Vec::new(),
            prefix: DEFAULT_PREFIX.to_string(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            dial_timeout: DEFAULT_DIAL_TIMEOUT,
        }
    }
}

impl EtcdConfig {
    /// A plain configuration for these endpoints, with upstream's defaults otherwise.
    pub fn new<I, S>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// Parses `--etcd-servers`: a comma-separated list of URLs (blanks ignored).
    pub fn from_servers_flag(servers: &str) -> Self {
        Self::new(servers.split(',').map(str::trim).filter(|s| !s.is_empty()))
    }

    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets `--etcd-cafile`, `--etcd-certfile` and `--etcd-keyfile` at once.
    pub fn with_tls(
        mut self,
        ca_file: impl Into<PathBuf>,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.ca_file = Some(ca_file.into());
        self.cert_file = Some(cert_file.into());
        self.key_file = Some(key_file.into());
        self
    }

    pub fn with_dial_timeout(mut self, timeout: Duration) -> Self {
        self.dial_timeout = timeout;
        self
    }

    /// The prefix as stored in etcd: rooted and ending in `/`, as upstream's
    /// `path.Join("/", prefix) + "/"`.
    pub(crate) fn key_prefix(&self) -> String {
        let trimmed = self.prefix.trim_matches('/');
        if trimmed.is_empty() {
            "/".to_string()
        } else {
            format!("/{trimmed}/")
        }
    }

    /// Checks the endpoint list and reads the TLS files. Returns the TLS options to use
    /// for `https://` endpoints, if any.
    pub(crate) fn load_tls(&self) -> Result<Option<TlsOptions>, StorageError> {
        if self.endpoints.is_empty() {
            return Err(invalid(
                "no etcd endpoints given (--etcd-servers is empty)".into(),
            ));
        }
        if self.dial_timeout.is_zero() {
            return Err(invalid("the etcd dial timeout must be positive".into()));
        }
        let any_https = self.endpoints.iter().any(|e| e.starts_with("https://"));
        for endpoint in &self.endpoints {
            if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                return Err(invalid(format!(
                    "etcd endpoint {endpoint:?} must be an http:// or https:// URL"
                )));
            }
            if any_https && endpoint.starts_with("http://") {
                return Err(invalid(format!(
                    "etcd endpoint {endpoint:?} is plain http while others use https; use one scheme"
                )));
            }
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(invalid(
                "--etcd-certfile and --etcd-keyfile must be given together".into(),
            ));
        }
        let has_tls_files =
            self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some();
        if !any_https {
            if has_tls_files {
                return Err(invalid(format!(
                    "TLS files are set but no etcd endpoint uses https:// ({})",
                    self.endpoints.join(",")
                )));
            }
            return Ok(None);
        }
        let Some(ca_file) = &self.ca_file else {
            return Err(invalid(format!(
                "https etcd endpoints ({}) need --etcd-cafile",
                self.endpoints.join(",")
            )));
        };
        let ca = read_pem("--etcd-cafile", ca_file, &["CERTIFICATE"])?;
        let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(ca));
        if let (Some(cert_file), Some(key_file)) = (&self.cert_file, &self.key_file) {
            let cert = read_pem("--etcd-certfile", cert_file, &["CERTIFICATE"])?;
            let key = read_pem(
                "--etcd-keyfile",
                key_file,
                &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"],
            )?;
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Ok(Some(tls))
    }
}

fn invalid(reason: String) -> StorageError {
    StorageError::InvalidRequest { reason }
}

/// Reads a PEM file and checks that it holds at least one block with one of `labels`,
/// so that a wrong or truncated file is reported by name rather than as a TLS failure.
fn read_pem(flag: &str, path: &Path, labels: &[&str]) -> Result<Vec<u8>, StorageError> {
    let bytes = std::fs::read(path).map_err(|e| StorageError::io("reading", path, e))?;
    let text = String::from_utf8_lossy(&bytes);
    let complete = labels.iter().any(|label| {
        text.contains(&format!("-----BEGIN {label}-----"))
            && text.contains(&format!("-----END {label}-----"))
    });
    if !complete {
        return Err(invalid(format!(
            "{flag} {}: not a PEM file with a {} block",
            path.display(),
            labels.join(" or ")
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_flag_is_split_on_commas() {
        let c = EtcdConfig::from_servers_flag("https://a:2379, https://b:2379,,");
        assert_eq!(c.endpoints, ["https://a:2379", "https://b:2379"]);
        assert_eq!(c.prefix, "/registry");
        assert_eq!(c.dial_timeout, Duration::from_secs(5));
    }

    #[test]
    fn prefix_is_normalised_like_upstream() {
        let c = EtcdConfig::default();
        assert_eq!(c.key_prefix(), "/registry/");
        assert_eq!(
            c.clone().with_prefix("registry/").key_prefix(),
            "/registry/"
        );
        assert_eq!(c.clone().with_prefix("/a/b").key_prefix(), "/a/b/");
        assert_eq!(c.clone().with_prefix("").key_prefix(), "/");
        assert_eq!(c.with_prefix("/").key_prefix(), "/");
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(EtcdConfig::default().load_tls().is_err());
        assert!(EtcdConfig::new(["127.0.0.1:2379"]).load_tls().is_err());
        assert!(EtcdConfig::new(["http://a:1", "https://b:1"])
            .load_tls()
            .is_err());
        assert!(
            EtcdConfig::new(["https://a:1"]).load_tls().is_err(),
            "https needs a CA"
        );
        let plain = EtcdConfig::new(["http://a:1"]);
        assert!(plain.load_tls().unwrap().is_none());
        let mut half = EtcdConfig::new(["https://a:1"]);
        half.cert_file = Some("/x".into());
        assert!(half.load_tls().is_err());
    }

    #[test]
    fn tls_files_are_named_in_errors() {
        let dir = std::env::temp_dir().join(format!("ferrokube-etcd-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let c = EtcdConfig::new(["https://a:1"]).with_tls(&missing, &missing, &missing);
        let err = c.load_tls().unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        let c = EtcdConfig::new(["https://a:1"]).with_tls(&junk, &junk, &junk);
        let err = c.load_tls().unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidRequest { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("--etcd-cafile") && err.to_string().contains("junk.pem"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
