//! Storage for ferrokube: the [`Storage`] trait with the etcd v3 semantics the API server
//! relies on (upstream's `storage.Interface` sits on top of exactly these operations in
//! `k8s.io/apiserver/pkg/storage/etcd3`).
//!
//! Keys are strings such as `/pods/default/nginx`; values are opaque bytes (the API server
//! decides the encoding and any encryption). Every write gets a new, strictly increasing
//! global revision; reads and watches can be made at a revision until it is compacted.
//!
//! Backends: `ferrokube-storage-embedded` (default, single node) and
//! `ferrokube-storage-etcd` (a real etcd v3 cluster). Both pass [`conformance`].

mod compactor;
mod error;
mod traits;
mod types;
mod update;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use compactor::{spawn_compactor, Compactor};
pub use error::{Result, StorageError};
pub use traits::Storage;
pub use types::{
    check_value_size, prefix_end, validate_key, Event, EventKind, KeyValue, RangeRequest,
    RangeResponse, WatchMessage, WatchRequest, WatchStream, MAX_VALUE_SIZE,
};
pub use update::{guaranteed_delete, guaranteed_update, Preconditions, UpdateDecision};
