//! JSON merge patch (RFC 7386, `application/merge-patch+json`): the engine behind upstream's
//! `jsonPatcher` for `types.MergePatchType` (`jsonpatch.MergePatch` of evanphx/json-patch).

use serde_json::{Map, Value};

/// RFC 7386 JSON merge patch (application/merge-patch+json): null deletes, objects merge
/// recursively, everything else replaces.
///
/// Upstream's library refuses a patch that is neither an object nor an array (400 Bad
/// Request); this function implements the RFC for every patch, so callers that need that
/// check make it before calling.
pub fn apply_merge_patch(doc: &Value, patch: &Value) -> Value {
    match patch {
        Value::Object(patch) => {
            // RFC 7386 §2: a non-object target is replaced by an empty object first.
            let mut target = match doc {
                Value::Object(map) => map.clone(),
                _ => Map::new(),
            };
            merge_object(&mut target, patch);
            Value::Object(target)
        }
        other => other.clone(),
    }
}

fn merge_object(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                // Keeps the order of the remaining members when serde_json
                // preserves insertion order.
                crate::remove_key(target, key.as_str());
            }
            Value::Object(sub_patch) => match target.get_mut(key.as_str()) {
                Some(Value::Object(sub_target)) => merge_object(sub_target, sub_patch),
                _ => {
                    // Merging into a fresh object drops the patch's nulls, as the RFC's
                    // recursive definition does.
                    let mut fresh = Map::new();
                    merge_object(&mut fresh, sub_patch);
                    target.insert(key.clone(), Value::Object(fresh));
                }
            },
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}
