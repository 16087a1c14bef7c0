//! Strategic merge patch (`application/strategic-merge-patch+json`): the apply half of
//! upstream's `k8s.io/apimachinery/pkg/util/strategicpatch` (`StrategicMergeMapPatch`, i.e.
//! `mergeMap` with `MergeParallelList` and `IgnoreUnmatchedNulls`), as the API server's
//! `strategicPatchObject` runs it.
//!
//! This module holds the map half (`mergeMap`, the `$patch` / `$retainKeys` /
//! `$deleteFromPrimitiveList` directives); `slice` merges lists and `order` implements
//! upstream's element ordering and `$setElementOrder`.

mod order;
mod slice;
#[cfg(test)]
mod upstream_tests;

use serde_json::{Map, Value};

use crate::error::PatchError;
use crate::gofmt;
use crate::schema::Schema;

pub(crate) const DIRECTIVE_MARKER: &str = "$patch";
pub(crate) const DELETE_DIRECTIVE: &str = "delete";
pub(crate) const REPLACE_DIRECTIVE: &str = "replace";
pub(crate) const MERGE_DIRECTIVE: &str = "merge";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";
pub(crate) const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";

pub(crate) type JsonMap = Map<String, Value>;

/// Strategic merge patch (application/strategic-merge-patch+json) for the built-in kinds.
///
/// Maps merge recursively and `null` deletes a key; lists follow the field's patch strategy
/// (merge by key, set union of scalars, or replacement); the `$patch`, `$retainKeys`,
/// `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` directives apply as
/// upstream applies them, and never appear in the result. Fields the schema does not know
/// behave like JSON merge patch. The inputs are left untouched.
pub fn apply_strategic_merge_patch(
    doc: &Value,
    patch: &Value,
    schema: Schema,
) -> Result<Value, PatchError> {
    // Upstream unmarshals both into map[string]interface{}: `null` is an empty map, anything
    // else that is not an object is a bad document.
    let original = match doc {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::InvalidJsonDocument),
    };
    let patch = match patch {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::InvalidJsonDocument),
    };
    merge_map(original, patch, schema).map(Value::Object)
}

/// Upstream's `mergeMap`: merges `patch` into `original` following `schema`.
pub(crate) fn merge_map(
    mut original: JsonMap,
    mut patch: JsonMap,
    schema: Schema,
) -> Result<JsonMap, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE_MARKER) {
        let directive = directive.clone();
        return directive_in_merge_map(&directive, patch);
    }
    apply_retain_keys_directive(&mut original, &mut patch)?;
    // Lists named by `$setElementOrder/...` are merged and ordered first, and leave `patch`.
    order::merge_patch_into_original(&mut original, &mut patch, schema)?;

    for (key, patch_value) in patch {
        let (key, is_delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
            (extract_key(&key, DELETE_FROM_PRIMITIVE_LIST_PREFIX)?, true)
        } else {
            (key, false)
        };

        if patch_value.is_null() {
            crate::remove_key(&mut original, key.as_str());
            continue;
        }

        let same_type = original.get(key.as_str()).is_some_and(|current| {
            std::mem::discriminant(current) == std::mem::discriminant(&patch_value)
        });
        if !same_type {
            // Absent, or of another type: the patch value is taken as is, minus its nulls and
            // directives. A deletion list never creates anything.
            if !is_delete_list {
                insert_new_value(&mut original, key, patch_value);
            }
            continue;
        }

        let meta = schema.lookup(&key);
        let Some(slot) = original.get_mut(key.as_str()) else {
            continue;
        };
        match (slot, patch_value) {
            (Value::Object(current), Value::Object(patch_map)) => {
                let merged = if meta.replaces() {
                    sanitize_replacement(patch_map)
                } else {
                    merge_map(std::mem::take(current), patch_map, schema.at(meta.node))?
                };
                *current = merged;
            }
            (Value::Array(current), Value::Array(patch_list)) => {
                let merged = slice::merge_slice_handler(
                    std::mem::take(current),
                    patch_list,
                    schema.at(meta.node),
                    &meta,
                    is_delete_list,
                )?;
                *current = merged.merged;
            }
            (slot, scalar) => *slot = scalar,
        }
    }
    Ok(original)
}

/// Upstream's `handleDirectiveInMergeMap`: `$patch` on a map.
fn directive_in_merge_map(directive: &Value, patch: JsonMap) -> Result<JsonMap, PatchError> {
    match directive.as_str() {
        // The patch, minus the marker, is the new value.
        Some(REPLACE_DIRECTIVE) => Ok(sanitize_replacement(patch)),
        // The map becomes empty (the key itself stays, as upstream).
        Some(DELETE_DIRECTIVE) => Ok(Map::new()),
        _ => Err(PatchError::BadPatchType {
            directive: gofmt::s(directive),
            map: gofmt::v(&Value::Object(patch)),
        }),
    }
}

/// Upstream's `applyRetainKeysDirective` (server side, `MergeParallelList`): every key the
/// patch sets must be listed, and keys of `original` not listed are cleared.
fn apply_retain_keys_directive(
    original: &mut JsonMap,
    patch: &mut JsonMap,
) -> Result<(), PatchError> {
    let Some(retain) = crate::remove_key(patch, RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::BadPatchFormatForRetainKeys);
    };
    let retained = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            || k.starts_with(SET_ELEMENT_ORDER_PREFIX)
        {
            continue;
        }
        if !retained(k) {
            return Err(PatchError::BadPatchFormatForRetainKeys);
        }
    }
    original.retain(|k, _| retained(k));
    Ok(())
}

/// Upstream's `extractKey`: `$prefix/field` → `field`.
pub(crate) fn extract_key(key: &str, prefix: &str) -> Result<String, PatchError> {
    match key.split_once('/') {
        Some((head, rest)) if head == prefix => Ok(rest.to_string()),
        _ if prefix == SET_ELEMENT_ORDER_PREFIX => {
            Err(PatchError::BadPatchFormatForSetElementOrderList)
        }
        _ => Err(PatchError::BadPatchFormatForPrimitiveList),
    }
}

/// Stores a patch value where the original had nothing (or something of another type):
/// upstream's `discardNullValuesFromPatch` followed by `removeDirectives`.
fn insert_new_value(original: &mut JsonMap, key: String, mut value: Value) {
    discard_null_values(&mut value);
    match remove_directives(value) {
        Some(value) => {
            original.insert(key, value);
        }
        None => {
            crate::remove_key(original, key.as_str());
        }
    }
}

/// Upstream's `discardNullValuesFromPatch`: drops null members of maps, recursively (null
/// list elements stay).
pub(crate) fn discard_null_values(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(discard_null_values);
        }
        Value::Array(items) => items.iter_mut().for_each(discard_null_values),
        _ => {}
    }
}

fn is_parallel_directive(key: &str) -> bool {
    key == RETAIN_KEYS_DIRECTIVE
        || key.starts_with(SET_ELEMENT_ORDER_PREFIX)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
}

/// Upstream's `removeDirectives`: a map carrying `$patch` is dropped (`None`), recursively.
/// Unlike upstream, the parallel-list directives are stripped here too: upstream leaves them
/// for the typed decoding to discard, and this engine's result is the final object.
pub(crate) fn remove_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(DIRECTIVE_MARKER) {
                return None;
            }
            let cleaned = map
                .into_iter()
                .filter(|(k, _)| !is_parallel_directive(k))
                .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
                .collect();
            Some(Value::Object(cleaned))
        }
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// A map taken whole (`$patch: replace`, or a field whose strategy is `replace`): upstream
/// stores the patch as is; the marker and other directives go, nested ones included.
fn sanitize_replacement(patch: JsonMap) -> JsonMap {
    patch
        .into_iter()
        .filter(|(k, _)| k != DIRECTIVE_MARKER && !is_parallel_directive(k))
        .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
        .collect()
}

/// A list taken whole (no `merge` strategy): its elements lose their directives.
pub(crate) fn sanitize_list(items: Vec<Value>) -> Vec<Value> {
    items.into_iter().filter_map(remove_directives).collect()
}
