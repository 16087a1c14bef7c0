//! kubeconfig files: client-go's `clientcmd/api/v1` `Config`, as the seeds'
//! `kubectl config set-cluster` / `set-credentials` / `set-context` / `use-context`
//! sequences leave it (one cluster, one user, one context, current), and reading one back
//! to reach the API server it names.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::files::{self, Mode};
use crate::{Error, Result};

/// A kubeconfig (`apiVersion: v1`, `kind: Config`). Fields this crate does not use
/// (exec plugins, auth providers, extensions) are ignored when reading.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Kubeconfig {
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
    #[serde(rename = "current-context", default)]
    pub current_context: String,
    #[serde(default)]
    pub users: Vec<NamedUser>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: Cluster,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_tls_verify: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedContext {
    pub name: String,
    pub context: Context,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub cluster: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedUser {
    pub name: String,
    #[serde(default)]
    pub user: AuthInfo,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuthInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(rename = "tokenFile", default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
}

/// A certificate or key for a kubeconfig: embedded (`--embed-certs=true`, the `*-data`
/// fields, base64) or referenced by path (made absolute, as kubectl would resolve it).
#[derive(Debug, Clone)]
pub enum Material {
    Embedded(Vec<u8>),
    File(PathBuf),
}

impl Material {
    /// `path`, embedded (read now) or referenced.
    pub fn from_path(path: &Path, embed: bool) -> Result<Self> {
        if embed {
            Ok(Material::Embedded(files::read(path)?))
        } else {
            let abs = std::path::absolute(path).map_err(|source| Error::ReadFile {
                path: path.to_path_buf(),
                source,
            })?;
            Ok(Material::File(abs))
        }
    }

    fn split(&self) -> (Option<String>, Option<String>) {
        match self {
            Material::Embedded(bytes) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            ),
            Material::File(p) => (Some(p.display().to_string()), None),
        }
    }
}

/// How the user authenticates.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// `--client-certificate` / `--client-key`.
    ClientCertificate { cert: Material, key: Material },
    /// `--token` (bootstrap tokens, static tokens).
    Token(String),
}

/// What `kubectl config set-cluster/-credentials/-context/use-context` are told.
#[derive(Debug, Clone)]
pub struct KubeconfigSpec {
    /// The cluster entry's name (`kubernetes` in the seeds).
    pub cluster: String,
    /// The API server URL, `https://host:port`.
    pub server: String,
    pub ca: Material,
    /// The user entry's name (`admin`, `system:kube-scheduler`, `kubelet-bootstrap`…).
    pub user: String,
    pub credentials: Credentials,
    /// The context's name; it becomes the current context.
    pub context: String,
}

/// Checks an API server URL: `https://` (or `http://`) with a host.
pub fn validate_server_url(server: &str, flag: &'static str) -> Result<()> {
    let bad = |reason: &str| Error::InvalidArgument {
        flag,
        value: server.to_string(),
        reason: reason.to_string(),
    };
    let uri: http::Uri = server
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    match uri.scheme_str() {
        Some("https") | Some("http") => {}
        _ => return Err(bad("must start with https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    Ok(())
}

impl Kubeconfig {
    /// The kubeconfig for `spec`.
    pub fn build(spec: &KubeconfigSpec) -> Result<Self> {
        validate_server_url(&spec.server, "--server")?;
        for (flag, value) in [
            ("--cluster", &spec.cluster),
            ("--user", &spec.user),
            ("--context", &spec.context),
        ] {
            if value.trim().is_empty() {
                return Err(Error::InvalidArgument {
                    flag,
                    value: value.clone(),
                    reason: "must not be empty".into(),
                });
            }
        }
        let (ca_file, ca_data) = spec.ca.split();
        let user = match &spec.credentials {
            Credentials::ClientCertificate { cert, key } => {
                let (cert_file, cert_data) = cert.split();
                let (key_file, key_data) = key.split();
                AuthInfo {
                    client_certificate: cert_file,
                    client_certificate_data: cert_data,
                    client_key: key_file,
                    client_key_data: key_data,
                    ..AuthInfo::default()
                }
            }
            Credentials::Token(token) => AuthInfo {
                token: Some(token.clone()),
                ..AuthInfo::default()
            },
        };
        Ok(Kubeconfig {
            api_version: "v1".into(),
            kind: "Config".into(),
            clusters: vec![NamedCluster {
                name: spec.cluster.clone(),
                cluster: Cluster {
                    server: spec.server.clone(),
                    certificate_authority: ca_file,
                    certificate_authority_data: ca_data,
                    ..Cluster::default()
                },
            }],
            contexts: vec![NamedContext {
                name: spec.context.clone(),
                context: Context {
                    cluster: spec.cluster.clone(),
                    user: spec.user.clone(),
                    namespace: None,
                },
            }],
            current_context: spec.context.clone(),
            users: vec![NamedUser {
                name: spec.user.clone(),
                user,
            }],
        })
    }

    /// The YAML text.
    pub fn to_yaml(&self) -> Result<String> {
        serde_saphyr::to_string(self).map_err(Error::SerializeYaml)
    }

    /// Writes the kubeconfig (mode 0600: it holds credentials) atomically.
    pub fn write(&self, path: &Path, overwrite: bool) -> Result<()> {
        files::write_atomic(path, self.to_yaml()?.as_bytes(), Mode::Private, overwrite)
    }

    /// Parses kubeconfig text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        serde_saphyr::from_str(text).map_err(|e| Error::ParseKubeconfig {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// Reads and parses a kubeconfig file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = files::read(path)?;
        Self::parse(&String::from_utf8_lossy(&bytes), path)
    }

    /// What the current context says about reaching the API server: URL, trusted CA,
    /// client certificate or token, with files (relative to the kubeconfig's directory,
    /// as client-go resolves them) read in.
    pub fn resolve(&self, path: &Path) -> Result<ResolvedConfig> {
        let fail = |reason: String| Error::Kubeconfig {
            path: path.to_path_buf(),
            reason,
        };
        let context = self
            .contexts
            .iter()
            .find(|c| c.name == self.current_context)
            .ok_or_else(|| {
                fail(format!(
                    "current-context {:?} is not among its contexts",
                    self.current_context
                ))
            })?;
        let cluster = self
            .clusters
            .iter()
            .find(|c| c.name == context.context.cluster)
            .ok_or_else(|| fail(format!("no cluster named {:?}", context.context.cluster)))?;
        let user = self
            .users
            .iter()
            .find(|u| u.name == context.context.user)
            .map(|u| u.user.clone())
            .unwrap_or_default();
        let base = path.parent().unwrap_or(Path::new("."));
        let material = |data: &Option<String>, file: &Option<String>, field: &str| {
            if let Some(d) = data {
                base64::engine::general_purpose::STANDARD
                    .decode(d.trim())
                    .map(Some)
                    .map_err(|e| fail(format!("{field}-data is not base64: {e}")))
            } else if let Some(f) = file {
                files::read(&base.join(f)).map(Some)
            } else {
                Ok(None)
            }
        };
        let token = match (&user.token, &user.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(f)) => Some(
                String::from_utf8_lossy(&files::read(&base.join(f))?)
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        validate_server_url(&cluster.cluster.server, "server")
            .map_err(|e| fail(format!("cluster {:?}: {e}", cluster.name)))?;
        Ok(ResolvedConfig {
            server: cluster.cluster.server.clone(),
            ca_pem: material(
                &cluster.cluster.certificate_authority_data,
                &cluster.cluster.certificate_authority,
                "certificate-authority",
            )?,
            insecure_skip_tls_verify: cluster.cluster.insecure_skip_tls_verify,
            tls_server_name: cluster.cluster.tls_server_name.clone(),
            client_cert_pem: material(
                &user.client_certificate_data,
                &user.client_certificate,
                "client-certificate",
            )?,
            client_key_pem: material(&user.client_key_data, &user.client_key, "client-key")?,
            token,
        })
    }
}

/// A kubeconfig's current context, ready to connect with.
#[derive(Clone)]
pub struct ResolvedConfig {
    pub server: String,
    pub ca_pem: Option<Vec<u8>>,
    pub insecure_skip_tls_verify: bool,
    pub tls_server_name: Option<String>,
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
    pub token: Option<String>,
}

impl std::fmt::Debug for ResolvedConfig {
    // Never print keys or tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedConfig")
            .field("server", &self.server)
            .field("has_ca", &self.ca_pem.is_some())
            .field("client_cert", &self.client_cert_pem.is_some())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn build_write_parse_resolve() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), b"CA").unwrap();
        std::fs::write(dir.path().join("x.pem"), b"CERT").unwrap();
        std::fs::write(dir.path().join("x-key.pem"), b"KEY").unwrap();
        let spec = KubeconfigSpec {
            cluster: "kubernetes".into(),
            server: "https://127.0.0.1:6443".into(),
            ca: Material::from_path(&dir.path().join("ca.pem"), true).unwrap(),
            user: "admin".into(),
            credentials: Credentials::ClientCertificate {
                cert: Material::from_path(&dir.path().join("x.pem"), false).unwrap(),
                key: Material::from_path(&dir.path().join("x-key.pem"), true).unwrap(),
            },
            context: "default".into(),
        };
        let kc = Kubeconfig::build(&spec).unwrap();
        let path = dir.path().join("admin.kubeconfig");
        kc.write(&path, false).unwrap();
        assert!(kc.write(&path, false).is_err());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("certificate-authority-data: Q0E="), "{text}");
        assert!(text.contains("current-context: default"), "{text}");
        let back = Kubeconfig::load(&path).unwrap();
        assert_eq!(back, kc);
        let r = back.resolve(&path).unwrap();
        assert_eq!(r.ca_pem.as_deref(), Some(&b"CA"[..]));
        assert_eq!(r.client_cert_pem.as_deref(), Some(&b"CERT"[..]));
        assert_eq!(r.client_key_pem.as_deref(), Some(&b"KEY"[..]));
        assert!(r.token.is_none());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn bad_input() {
        let spec = KubeconfigSpec {
            cluster: "kubernetes".into(),
            server: "127.0.0.1:6443".into(),
            ca: Material::Embedded(vec![]),
            user: "u".into(),
            credentials: Credentials::Token("abcdef.0123456789abcdef".into()),
            context: "default".into(),
        };
        let err = Kubeconfig::build(&spec).unwrap_err().to_string();
        assert!(err.starts_with("--server \"127.0.0.1:6443\""), "{err}");
        let p = Path::new("k.yaml");
        assert!(Kubeconfig::parse("clusters: [", p).is_err());
        let kc =
            Kubeconfig::parse("apiVersion: v1\nkind: Config\ncurrent-context: x\n", p).unwrap();
        let err = kc.resolve(p).unwrap_err().to_string();
        assert!(err.contains("current-context \"x\""), "{err}");
    }
}
