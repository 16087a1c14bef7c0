//! The Kubernetes API without I/O: the catalogue of built-in resources, `metav1.Status`
//! errors, label and field selectors, object metadata rules, timestamps.
//!
//! Objects are handled as JSON values: the API server stores and serves exactly what
//! clients send after defaulting and validation, as upstream's unstructured handling does,
//! so every field of every kind round-trips.

pub mod defaults;
pub mod flowcontrol;
pub mod kinds;
pub mod meta;
pub mod protobuf;
pub mod qos;
pub mod quantity;
pub mod quota_scopes;
pub mod resources;
pub mod selectors;
pub mod status;
pub mod time;
pub mod validation;

#[allow(clippy::all)]
#[rustfmt::skip]
mod generated {
    pub mod protobuf;
    pub mod resources;
}
