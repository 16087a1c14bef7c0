//! ferrokube-lb: the L4 TCP load balancer in front of the API servers — the seeds'
//! `kube-nginx` (nginx's `stream` proxy on every node, `127.0.0.1:8443` → every
//! kube-apiserver on 6443).
//!
//! - [`config`]: nginx's configuration language as kube-nginx.conf uses it, and our
//!   YAML, both into one [`Config`];
//! - [`upstream`](crate::upstream)-level behaviour as nginx's: `hash $remote_addr
//!   consistent` (the ketama ring, bit for bit), round robin with weights,
//!   `least_conn`, `max_fails`/`fail_timeout`, `backup`, `down`, next upstream on a
//!   failed connect;
//! - active health checks (TCP, or HTTPS `GET /readyz` expecting 200);
//! - graceful reload: listeners added and removed, upstream lists swapped, open
//!   connections untouched;
//! - Prometheus metrics and `/healthz` on an optional plain-HTTP address.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ferrokube_lb::{Config, Lb};
//! let config = Config::for_api_servers(
//!     "127.0.0.1:8443".parse()?,
//!     &["https://10.0.0.1:6443", "https://10.0.0.2:6443"],
//! )?;
//! let lb = Lb::start(config).await?;
//! println!("listening on {:?}", lb.local_addrs());
//! // later: lb.reload(new_config).await?; lb.shutdown(std::time::Duration::ZERO).await;
//! # Ok(()) }
//! ```

mod balance;
pub mod config;
mod health;
mod metrics;
mod proxy;
mod runtime;
mod upstream;

pub use config::{
    load_file, Balance, Config, ConfigError, HealthCheckConfig, HealthCheckKind, HealthTls,
    ListenerConfig, ServerConfig, UpstreamConfig,
};
pub use proxy::CopyMode;
pub use runtime::{Handle, Lb};

/// Why the load balancer could not start or apply a configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listener's address could not be bound.
    #[error("listening on {address}: {source}")]
    Listen {
        /// The address.
        address: std::net::SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The metrics address could not be bound.
    #[error("serving metrics on {address}: {source}")]
    MetricsListen {
        /// The address.
        address: std::net::SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A listener names an upstream the configuration does not have.
    #[error("listener {address}: no upstream named {upstream:?}")]
    UnknownUpstream {
        /// The listener.
        address: std::net::SocketAddr,
        /// The name.
        upstream: String,
    },
    /// The TLS settings of an upstream's HTTPS health checks.
    #[error("health checks of upstream {upstream:?}: {message}")]
    HealthCheckTls {
        /// The upstream.
        upstream: String,
        /// What is wrong (the file named).
        message: String,
    },
    /// The configuration file could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configuration has no listener.
    #[error("the configuration has no listener")]
    NoListeners,
    /// The load balancer was shut down.
    #[error("the load balancer has been shut down")]
    Stopped,
}

/// Raises this process's open-files soft limit to its hard limit (each proxied
/// connection holds two sockets, four more descriptors with splice), as nginx's
/// `worker_rlimit_nofile` and Go programs do. Returns the new soft limit.
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let current = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: current.maximum,
        maximum: current.maximum,
    };
    if current.current != current.maximum && setrlimit(Resource::Nofile, raised).is_ok() {
        return raised.current;
    }
    current.current
}
