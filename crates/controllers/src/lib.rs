//! ferrokube-controllers: kube-controller-manager's controllers (upstream
//! `pkg/controller/*`), each an API client on shared informers with a work queue, as
//! upstream builds them.
//!
//! Framework: [`informer`] (shared informers and stores), [`workqueue`] (de-duplicating
//! rate-limited queue and workers), [`expectations`], [`events`] (Event recorder),
//! [`clientbuilder`] (`--use-service-account-credentials`), [`context`] (what a
//! controller is started with), [`manager`] (`--controllers` and start-up).
//!
//! Controllers: [`replicaset`] (ReplicaSet and ReplicationController).

pub mod bootstrap;
pub mod certificates;
pub mod clientbuilder;
pub mod context;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod discovery;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod error;
pub mod events;
pub mod expectations;
pub mod garbagecollector;
pub mod history;
pub mod informer;
pub mod job;
pub mod manager;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podautoscaler;
pub mod podgc;
pub mod podutil;
pub mod replicaset;
pub mod resourcequota;
pub mod rootcacert;
pub mod selector;
pub mod serviceaccount;
pub mod statefulset;
pub mod tainteviction;
pub mod ttlafterfinished;
pub mod workqueue;

pub use clientbuilder::ClientBuilder;
pub use context::{Cidr, ControllerConfig, ControllerContext};
pub use error::Error;
pub use manager::{descriptors, enabled_controllers, start_controllers};
