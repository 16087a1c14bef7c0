//! Request handlers: discovery, version and health, the REST verbs, watch.

pub mod admit;
pub mod backend_proxy;
pub mod componentstatus;
pub mod discovery;
pub mod fieldmanager;
pub mod kubelet_proxy;
pub mod openapi;
pub mod openapi_v2;
pub mod pods;
pub mod response;
pub mod rest;
pub mod scale;
pub mod table;
mod table_more;
pub mod watch;
