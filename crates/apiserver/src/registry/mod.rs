//! The generic registry: one store serving every built-in resource over a `Storage`
//! backend (upstream's `registry/generic/registry.Store`), with per-kind strategies.

pub mod delete;
pub mod list;
pub mod services;
pub mod store;
pub mod strategy;

pub use store::{Registry, Target};
