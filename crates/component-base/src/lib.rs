//! ferrokube-component-base: what ferrokube's components share to be operated like
//! upstream's (`k8s.io/component-base` + the secure-serving half of
//! `k8s.io/apiserver`, as kube-controller-manager and kube-scheduler use them):
//!
//! - [`serving`]: the secure port (`--bind-address`, `--secure-port`, `--cert-dir`,
//!   `--tls-cert-file`, `--tls-private-key-file`; self-signed pair when no files),
//!   HTTP/1.1 and HTTP/2, serving `/healthz`, `/livez`, `/readyz` ([`healthz`]) and
//!   `/metrics` ([`metrics`]);
//! - [`delegated`]: delegated authentication (client CA, request-header proxy,
//!   TokenReview) and authorization (SubjectAccessReview) with upstream's flags and
//!   10s caches.
//!
//! Leader election and the API client (`--kubeconfig`, `--kube-api-qps`,
//! `--leader-elect*`) live in `ferrokube-client`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ferrokube_component_base::{DelegatedAuthFlags, Handler, SecureServer, SecureServingFlags};
//! let (serving, auth) = (SecureServingFlags::default(), DelegatedAuthFlags::default());
//! let handler = Handler::new(auth.build("kube-scheduler", "v1.33.0").await?);
//! let requests = handler.metrics().counter("scheduler_schedule_attempts_total", "Attempts.");
//! if let Some(addr) = serving.bind_addr(10259) {
//!     let server = SecureServer::bind(addr, serving.serving_cert("kube-scheduler")?, handler).await?;
//!     let (_stop, shutdown) = tokio::sync::watch::channel(false);
//!     tokio::spawn(server.run(shutdown));
//! }
//! requests.inc();
//! # Ok(()) }
//! ```

pub mod config_file;
pub mod delegated;
pub mod healthz;
pub mod metrics;
pub mod net;
pub mod proxy;
pub mod serving;
pub mod tls;

pub use delegated::{
    AuthnOutcome, AuthzOutcome, DelegatedAuth, DelegatedAuthError, DelegatedAuthFlags,
};
pub use healthz::{Endpoint, HealthChecks};
pub use metrics::{Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramVec, Registry};
pub use serving::{Handler, SecureServer, SecureServingFlags, ServeError};
pub use tls::TlsError;
