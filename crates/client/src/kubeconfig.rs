//! Kubeconfig loading for components: upstream's `--kubeconfig` +
//! `clientcmd.BuildConfigFromFlags`, then `rest.Config.QPS`/`Burst` (client-go's
//! `flowcontrol.NewTokenBucketRateLimiter`) and `rest.Config.UserAgent`.
//!
//! In-cluster configuration is not supported: every ferrokube component is given a
//! kubeconfig, as in the seeds.

use std::path::{Path, PathBuf};

use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

use crate::ratelimit::TokenBucketLayer;

/// What went wrong turning flags into a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No `--kubeconfig` (and no in-cluster fallback, by design).
    #[error("--kubeconfig is required (in-cluster configuration is not supported)")]
    NoKubeconfig,
    /// The file could not be read or parsed.
    #[error("--kubeconfig {path}: {source}")]
    ReadKubeconfig {
        path: PathBuf,
        #[source]
        source: KubeconfigError,
    },
    /// The kubeconfig's current context could not be resolved into a client config.
    #[error("--kubeconfig {path}: {source}")]
    ResolveKubeconfig {
        path: PathBuf,
        #[source]
        source: KubeconfigError,
    },
    /// The user agent is not a valid header value.
    #[error("invalid user agent {agent:?}")]
    UserAgent { agent: String },
    /// `--kube-api-qps` / `--kube-api-burst` out of range.
    #[error("--kube-api-burst must be positive when --kube-api-qps is positive (got {burst})")]
    Burst { burst: i32 },
    /// kube-rs could not build the HTTP stack (TLS material, proxy).
    #[error("building the API client: {0}")]
    Build(#[source] kube::Error),
}

/// Client flags every component has, with upstream's names. Defaults are
/// kube-controller-manager's (20 QPS, burst 30); kube-scheduler's are 50/100 — change
/// them on the command with
/// `cmd.mut_arg("kube_api_qps", |a| a.default_value("50"))`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientFlags {
    /// Path to a kubeconfig file with the API server's address and this component's
    /// credentials.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// QPS to use while talking with kubernetes apiserver (0 or less: no client-side
    /// rate limit).
    #[arg(long, default_value_t = 20.0, allow_negative_numbers = true)]
    pub kube_api_qps: f32,
    /// Burst to use while talking with kubernetes apiserver.
    #[arg(long, default_value_t = 30, allow_negative_numbers = true)]
    pub kube_api_burst: i32,
    /// Content type of requests sent to apiserver (accepted for compatibility; kube-rs
    /// speaks JSON).
    #[arg(long, default_value = "application/vnd.kubernetes.protobuf")]
    pub kube_api_content_type: String,
}

impl Default for ClientFlags {
    fn default() -> Self {
        ClientFlags {
            kubeconfig: None,
            kube_api_qps: 20.0,
            kube_api_burst: 30,
            kube_api_content_type: "application/vnd.kubernetes.protobuf".into(),
        }
    }
}

impl ClientFlags {
    /// The validated [`ClientConfig`] for `component` at `version`.
    pub fn config(&self, component: &str, version: &str) -> Result<ClientConfig, ClientError> {
        let kubeconfig = self.kubeconfig.clone().ok_or(ClientError::NoKubeconfig)?;
        ClientConfig::new(kubeconfig, component, version)
            .rate_limit(self.kube_api_qps, self.kube_api_burst)
    }

    /// Loads the kubeconfig and builds the client.
    pub async fn client(
        &self,
        component: &str,
        version: &str,
    ) -> Result<kube::Client, ClientError> {
        self.config(component, version)?.build().await
    }
}

/// A component's API client settings, validated.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The kubeconfig file.
    pub kubeconfig: PathBuf,
    /// `User-Agent` sent with every request.
    pub user_agent: String,
    /// Sustained requests per second; `None` = unlimited.
    pub qps: Option<f64>,
    /// Bucket size.
    pub burst: u32,
}

impl ClientConfig {
    /// A client for `component` (e.g. `kube-controller-manager`) at `version`, no rate
    /// limit yet.
    pub fn new(kubeconfig: impl Into<PathBuf>, component: &str, version: &str) -> ClientConfig {
        ClientConfig {
            kubeconfig: kubeconfig.into(),
            user_agent: user_agent(component, version),
            qps: None,
            burst: 0,
        }
    }

    /// client-go's `QPS`/`Burst`: `qps <= 0` disables the limiter (client-go's
    /// "negative QPS: no rate limiter"; the flags default to positive values).
    pub fn rate_limit(mut self, qps: f32, burst: i32) -> Result<ClientConfig, ClientError> {
        if qps > 0.0 {
            if burst <= 0 {
                return Err(ClientError::Burst { burst });
            }
            self.qps = Some(f64::from(qps));
            self.burst = burst.unsigned_abs();
        } else {
            self.qps = None;
        }
        Ok(self)
    }

    /// The kube-rs [`kube::Config`] (user agent set) from the kubeconfig file.
    pub async fn kube_config(&self) -> Result<kube::Config, ClientError> {
        let mut config = load_kubeconfig(&self.kubeconfig).await?;
        let agent =
            http::HeaderValue::from_str(&self.user_agent).map_err(|_| ClientError::UserAgent {
                agent: self.user_agent.clone(),
            })?;
        config.headers.push((http::header::USER_AGENT, agent));
        Ok(config)
    }

    /// Builds the client: kube-rs's default stack with the token bucket in front.
    pub async fn build(&self) -> Result<kube::Client, ClientError> {
        let config = self.kube_config().await?;
        let builder = ClientBuilder::try_from(config).map_err(ClientError::Build)?;
        Ok(match self.qps {
            Some(qps) => builder
                .with_layer(&TokenBucketLayer::new(qps, self.burst))
                .build(),
            None => builder.build(),
        })
    }
}

/// Reads a kubeconfig file and resolves its current context.
pub async fn load_kubeconfig(path: &Path) -> Result<kube::Config, ClientError> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|source| ClientError::ReadKubeconfig {
        path: path.to_path_buf(),
        source,
    })?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| ClientError::ResolveKubeconfig {
            path: path.to_path_buf(),
            source,
        })
}

/// client-go's `rest.DefaultKubernetesUserAgent` shape:
/// `<component>/<version> (<os>/<arch>) ferrokube`, with Go's os/arch names.
pub fn user_agent(component: &str, version: &str) -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!(
        "{component}/{version} ({}/{arch}) ferrokube",
        std::env::consts::OS
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_names_component_and_version() {
        let ua = user_agent("kube-scheduler", "v1.33.0");
        assert!(ua.starts_with("kube-scheduler/v1.33.0 (linux/"), "{ua}");
        assert!(http::HeaderValue::from_str(&ua).is_ok());
    }

    #[test]
    fn rate_limit_flags() {
        let c = ClientConfig::new("/k", "c", "v")
            .rate_limit(1000.0, 2000)
            .unwrap();
        assert_eq!((c.qps, c.burst), (Some(1000.0), 2000));
        let c = ClientConfig::new("/k", "c", "v")
            .rate_limit(-1.0, 0)
            .unwrap();
        assert_eq!(c.qps, None);
        assert!(matches!(
            ClientConfig::new("/k", "c", "v").rate_limit(5.0, 0),
            Err(ClientError::Burst { burst: 0 })
        ));
    }

    #[test]
    fn missing_kubeconfig_is_named() {
        let e = ClientFlags::default().config("c", "v").unwrap_err();
        assert!(e.to_string().contains("--kubeconfig"), "{e}");
    }
}
