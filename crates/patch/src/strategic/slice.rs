//! List merging of strategic merge patch: upstream's `mergeSliceHandler`, `mergeSlice`,
//! `mergeSliceWithSpecialElements` (`$patch` on list elements), `mergeSliceWithoutSpecialElements`
//! (merge by key) and `deleteFromSlice` (`$deleteFromPrimitiveList`).

use serde_json::Value;

use super::order::{self, ElemKind};
use super::{
    merge_map, remove_directives, sanitize_list, DELETE_DIRECTIVE, DIRECTIVE_MARKER,
    MERGE_DIRECTIVE, REPLACE_DIRECTIVE,
};
use crate::error::PatchError;
use crate::gofmt;
use crate::schema::{PatchMeta, Schema};

/// A merged list, plus what upstream's ordering code sees as the live list afterwards.
pub(super) struct Merged {
    pub(super) merged: Vec<Value>,
    /// Upstream merges lists of objects in place: deleting an element shifts the live slice's
    /// backing array and new elements land in the freed slots, so `$setElementOrder`'s later
    /// look-ups in "the live list" see them. `Some` is that view (same length as the live
    /// list); `None` means the live list is unchanged.
    pub(super) server_view: Option<Vec<Value>>,
}

/// Upstream's `mergeSliceHandler`: lists with the `merge` strategy (and every deletion list)
/// are merged, others are replaced by the patch.
pub(super) fn merge_slice_handler(
    original: Vec<Value>,
    patch: Vec<Value>,
    elem: Schema,
    meta: &PatchMeta,
    is_delete_list: bool,
) -> Result<Merged, PatchError> {
    if meta.merges() || is_delete_list {
        merge_slice(original, patch, elem, meta.merge_key, is_delete_list)
    } else {
        Ok(Merged {
            merged: sanitize_list(patch),
            server_view: None,
        })
    }
}

/// Upstream's `mergeSlice`.
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    elem: Schema,
    merge_key: &str,
    is_delete_list: bool,
) -> Result<Merged, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(Merged {
            merged: original,
            server_view: None,
        });
    }
    let kind = order::element_kind(&[&original, &patch])?;

    if kind != ElemKind::Object {
        if is_delete_list {
            return Ok(Merged {
                merged: delete_from_slice(original, &patch),
                server_view: None,
            });
        }
        let mut both = original.clone();
        both.extend(patch.iter().cloned());
        let merged = deduplicate_scalars(both);
        let (patch_items, server_only) = if merge_key.is_empty() {
            order::partition_primitives(merged, &patch)
        } else {
            order::partition_maps(merged, &patch, merge_key)?
        };
        let merged = order::normalize_element_order(
            patch_items,
            server_only,
            &patch,
            &original,
            merge_key,
            kind,
        )?;
        return Ok(Merged {
            merged,
            server_view: None,
        });
    }

    if merge_key.is_empty() {
        // Upstream names the Go kind of the element type here.
        return Err(PatchError::MergeKeyRequired {
            type_name: "struct",
        });
    }

    let mut live = LiveList::new(original);
    let rest = with_special_elements(&mut live, patch, merge_key)?;
    // The live list after deletions (or the replacement) is what the new order is measured
    // against.
    let server_order = live.items.clone();
    without_special_elements(&mut live, &rest, merge_key, elem)?;

    let LiveList {
        items: merged,
        view,
        ..
    } = live;
    let (patch_items, server_only) = order::partition_maps(merged, &rest, merge_key)?;
    let merged = order::normalize_element_order(
        patch_items,
        server_only,
        &rest,
        &server_order,
        merge_key,
        ElemKind::Object,
    )?;
    Ok(Merged {
        merged,
        server_view: Some(view),
    })
}

/// The list being merged, and the caller's view of the live list it started as (see
/// [`Merged::server_view`]).
struct LiveList {
    items: Vec<Value>,
    view: Vec<Value>,
    /// Whether `items` still shares upstream's backing array with `view`.
    attached: bool,
}

impl LiveList {
    fn new(original: Vec<Value>) -> LiveList {
        LiveList {
            view: original.clone(),
            items: original,
            attached: true,
        }
    }

    /// `append(s[:i], s[i+1:]...)`: later elements shift left inside the shared array.
    fn delete_at(&mut self, index: usize) {
        if self.attached {
            for j in index..self.items.len().saturating_sub(1) {
                if let (Some(slot), Some(next)) = (self.view.get_mut(j), self.items.get(j + 1)) {
                    *slot = next.clone();
                }
            }
        }
        self.items.remove(index);
    }

    /// `append(s, v)`: while the shared array has room the new element is visible in it.
    fn push(&mut self, value: Value) {
        if self.attached {
            if let Some(slot) = self.view.get_mut(self.items.len()) {
                *slot = value.clone();
            }
        }
        self.items.push(value);
    }

    fn replace_all(&mut self, items: Vec<Value>) {
        self.items = items;
        self.attached = false;
    }
}

/// Upstream's `mergeSliceWithSpecialElements`: applies `$patch: delete` elements to the live
/// list and notes `$patch: replace`; returns the patch elements without directives.
fn with_special_elements(
    live: &mut LiveList,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<Vec<Value>, PatchError> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Value::Object(element) = &item else {
            return Err(PatchError::BadArgType {
                expected: "map[string]interface {}",
                actual: gofmt::type_name(&item),
            });
        };
        let Some(directive) = element.get(DIRECTIVE_MARKER) else {
            rest.push(item);
            continue;
        };
        match directive.as_str() {
            Some(DELETE_DIRECTIVE) => {
                let Some(key_value) = element.get(merge_key) else {
                    return Err(missing_merge_key(&item, merge_key));
                };
                // Every element with that key goes, duplicates included.
                while let Some(i) = find_by_key(&live.items, merge_key, key_value)? {
                    live.delete_at(i);
                }
            }
            // Keep scanning: later elements may still carry deletions to drop.
            Some(REPLACE_DIRECTIVE) => replace = true,
            Some(MERGE_DIRECTIVE) => return Err(PatchError::MergeDirectiveInList),
            _ => {
                return Err(PatchError::BadPatchType {
                    directive: gofmt::s(directive),
                    map: gofmt::v(&item),
                })
            }
        }
    }
    if replace {
        live.replace_all(sanitize_list(rest));
        return Ok(Vec::new());
    }
    Ok(rest)
}

/// Upstream's `mergeSliceWithoutSpecialElements`: elements whose key exists are merged into
/// it, the others appended.
fn without_special_elements(
    live: &mut LiveList,
    patch: &[Value],
    merge_key: &str,
    elem: Schema,
) -> Result<(), PatchError> {
    for item in patch {
        let Value::Object(element) = item else {
            return Err(PatchError::BadArgType {
                expected: "map[string]interface {}",
                actual: gofmt::type_name(item),
            });
        };
        let Some(key_value) = element.get(merge_key) else {
            return Err(missing_merge_key(item, merge_key));
        };
        match find_by_key(&live.items, merge_key, key_value)? {
            Some(i) => {
                if let Some(Value::Object(current)) = live.items.get_mut(i) {
                    let merged = merge_map(std::mem::take(current), element.clone(), elem)?;
                    *current = merged;
                }
            }
            // Upstream appends the patch element as is and lets typed decoding drop nested
            // directives (e.g. `$retainKeys` of a new volume); this result is final, so drop them.
            None => {
                if let Some(clean) = remove_directives(item.clone()) {
                    live.push(clean);
                }
            }
        }
    }
    Ok(())
}

/// Upstream's `findMapInSliceBasedOnKeyValue`: the first element whose `key` equals `value`.
pub(super) fn find_by_key(
    list: &[Value],
    key: &str,
    value: &Value,
) -> Result<Option<usize>, PatchError> {
    for (i, item) in list.iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(PatchError::ListElementNotMap { index: i });
        };
        if map.get(key) == Some(value) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

pub(super) fn missing_merge_key(map: &Value, key: &str) -> PatchError {
    PatchError::MissingMergeKey {
        map: gofmt::v(map),
        key: key.to_string(),
    }
}

/// Upstream's `deleteFromSlice`: removes every occurrence of the listed scalars.
fn delete_from_slice(current: Vec<Value>, to_delete: &[Value]) -> Vec<Value> {
    current
        .into_iter()
        .filter(|v| !to_delete.contains(v))
        .collect()
}

/// Upstream's `deduplicateScalars`, including the order it leaves: a duplicate's slot takes
/// the last element. The final order is re-established by the ordering step, but ties among
/// equal positions keep this order, so it is reproduced exactly.
fn deduplicate_scalars(mut s: Vec<Value>) -> Vec<Value> {
    let mut i = 0;
    while i + 1 < s.len() {
        let mut j = i + 1;
        while j < s.len() {
            if s.get(i) == s.get(j) {
                s.swap_remove(j);
            } else {
                j += 1;
            }
        }
        i += 1;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deduplicate_matches_go() {
        let out = deduplicate_scalars(vec![json!(1), json!(1), json!(2), json!(3)]);
        assert_eq!(out, vec![json!(1), json!(3), json!(2)]);
    }

    #[test]
    fn live_view_tracks_shared_backing_array() {
        let mut live = LiveList::new(vec![json!({"n": 1}), json!({"n": 2}), json!({"n": 4})]);
        live.delete_at(0);
        live.push(json!({"n": 3}));
        live.push(json!({"n": 5}));
        assert_eq!(
            live.view,
            vec![json!({"n": 2}), json!({"n": 4}), json!({"n": 3})]
        );
        assert_eq!(live.items.len(), 4);
    }
}
