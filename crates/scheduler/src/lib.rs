//! ferrokube-scheduler: the scheduling core of kube-scheduler v1.33 as a pure
//! library — no I/O. The binary (informers, binding, events, leader election)
//! drives it; see `docs/scheduler.md`.

pub mod cache;
pub mod framework;
pub mod labels;
pub mod metrics;
pub mod node;
pub mod plugins;
pub mod plugins_config;
pub mod pod;
pub mod preemption;
pub mod quantity;
pub mod queue;
pub mod resource;
pub mod runner;
pub mod schedule;
