//! The three PATCH engines of the Kubernetes API server, wire-compatible with upstream v1.33
//! (`k8s.io/apiserver/pkg/endpoints/handlers/patch.go`):
//!
//! - [`apply_json_patch`]: RFC 6902 JSON patch (`application/json-patch+json`);
//! - [`apply_merge_patch`]: RFC 7386 JSON merge patch (`application/merge-patch+json`);
//! - [`apply_strategic_merge_patch`]: strategic merge patch
//!   (`application/strategic-merge-patch+json`) for the built-in kinds, driven by the
//!   [`Schema`] that [`schema_for`] returns from a table generated out of upstream's OpenAPI
//!   document by `hack/gen-patch-schema.py`.
//!
//! All three take the current object and the patch as `serde_json::Value`s and return a new
//! value; the inputs are never modified, so a failed patch leaves nothing half-applied.

pub mod apply;
mod error;
mod generated;
mod gofmt;
mod json_patch;
mod merge_patch;
mod schema;
mod strategic;

pub use error::{PatchError, PointerRole};
pub use json_patch::{apply_json_patch, MAX_JSON_PATCH_OPERATIONS};
pub use merge_patch::apply_merge_patch;
pub use schema::{schema_for, Schema};
pub use strategic::apply_strategic_merge_patch;

/// Removes `key` keeping the order of the other members, whether or not serde_json's
/// `preserve_order` feature is on (its `remove` then swaps the last member into the hole, and
/// `shift_remove` only exists with the feature).
pub(crate) fn remove_key(
    map: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Option<serde_json::Value> {
    let value = map.get_mut(key).map(serde_json::Value::take)?;
    map.retain(|k, _| k != key);
    Some(value)
}
