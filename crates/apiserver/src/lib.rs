//! The ferrokube API server: the Kubernetes REST API over any ferrokube storage backend,
//! wire-compatible with kubectl and the client libraries.
//!
//! Layers (upstream's `DefaultBuildHandlerChain`, those that exist so far): TLS accept →
//! body limit → request info → routing (health, version, discovery, resources) →
//! decode → strategy (prepare, validate) → storage → encode. Authentication,
//! authorization and admission land with the security work.

mod admission;
mod aggregator;
mod audit;
mod auth;
mod body;
mod bootstrap;
mod cache;
mod cel_message;
mod conversion;
mod crd;
pub mod encryption;
mod endpoint_reconciler;
mod errors;
mod flowcontrol;
mod handlers;
mod json_body;
mod metrics;
mod negotiation;
mod protobuf;
#[rustfmt::skip]
mod openapi_files;
#[cfg(test)]
mod fuzz_tests;
mod registry;
mod request_info;
mod schema;
mod server;
mod service_resolver;
#[cfg(test)]
mod test_support;
pub mod tls;
mod yaml;

pub use aggregator::AggregatorConfig;
pub use audit::AuditConfig;
pub use auth::SecurityConfig;
pub use handlers::kubelet_proxy::KubeletClientConfig;
pub use server::{ApiServer, ApiServerConfig, ServeError};

/// 32 random hex characters (a v4 UUID without dashes) for tokens and names.
pub fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
