//! Element order of merged lists and the `$setElementOrder/<field>` directive: upstream's
//! `mergePatchIntoOriginal`, `normalizeElementOrder`, `normalizeSliceOrder`,
//! `mergeSortedSlice`, the partition helpers and `validatePatchWithSetOrderList`
//! (design: "preserve order in strategic merge patch").
//!
//! The resulting order, as upstream: patch items follow the patch's (or `$setElementOrder`'s)
//! order, items only on the server keep their relative order, and the two sequences are
//! interleaved by their positions in the live list — an item the live list does not hold yet
//! goes before the remaining server-only items. So without `$setElementOrder` a new element
//! lands in front of the elements it was merged with (kubectl apply always sends the
//! directive, which pins the order).

use std::collections::HashMap;

use serde_json::Value;

use super::slice::{find_by_key, merge_slice_handler, missing_merge_key};
use super::{
    extract_key, remove_directives, JsonMap, DELETE_DIRECTIVE, DIRECTIVE_MARKER,
    SET_ELEMENT_ORDER_PREFIX,
};
use crate::error::PatchError;
use crate::gofmt;
use crate::schema::Schema;

/// The Go type of a list's elements, as `sliceElementType` tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ElemKind {
    Null,
    Bool,
    Int,
    Float,
    String,
    Object,
}

/// Upstream's `sliceElementType`: all elements of all lists share one type, not a list.
pub(super) fn element_kind(lists: &[&[Value]]) -> Result<ElemKind, PatchError> {
    let mut kind = None;
    for item in lists.iter().flat_map(|l| l.iter()) {
        let this = match item {
            Value::Null => ElemKind::Null,
            Value::Bool(_) => ElemKind::Bool,
            Value::Number(n) if n.is_f64() => ElemKind::Float,
            Value::Number(_) => ElemKind::Int,
            Value::String(_) => ElemKind::String,
            Value::Object(_) => ElemKind::Object,
            Value::Array(_) if kind.is_none() => return Err(PatchError::ListOfLists),
            Value::Array(_) => return Err(differ(lists)),
        };
        match kind {
            None => kind = Some(this),
            Some(k) if k != this => return Err(differ(lists)),
            Some(_) => {}
        }
    }
    kind.ok_or(PatchError::NoListElements)
}

fn differ(lists: &[&[Value]]) -> PatchError {
    PatchError::ListElementTypesDiffer {
        lists: gofmt::lists(lists),
    }
}

/// Positions of items in a reference list, as upstream's `index` finds them: by merge key
/// value for objects, by value otherwise; the first occurrence wins.
struct Positions<'a> {
    merge_key: &'a str,
    objects: bool,
    first: HashMap<String, usize>,
}

impl<'a> Positions<'a> {
    fn new(list: &[Value], merge_key: &'a str, kind: ElemKind) -> Positions<'a> {
        let objects = kind == ElemKind::Object;
        let mut first = HashMap::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            first
                .entry(lookup_key(item, merge_key, objects))
                .or_insert(i);
        }
        Positions {
            merge_key,
            objects,
            first,
        }
    }

    fn of(&self, item: &Value) -> Option<usize> {
        self.first
            .get(&lookup_key(item, self.merge_key, self.objects))
            .copied()
    }
}

/// The compared value, canonically rendered; an absent key (or a non-object) compares as
/// `null`, like Go's nil interface.
fn lookup_key(item: &Value, merge_key: &str, objects: bool) -> String {
    let value = if objects {
        item.as_object()
            .and_then(|m| m.get(merge_key))
            .unwrap_or(&Value::Null)
    } else {
        item
    };
    value.to_string()
}

/// Upstream's `normalizeElementOrder`: sorts patch items by `patch_order` and server-only
/// items by `server_order`, then interleaves them by `server_order`.
pub(super) fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: ElemKind,
) -> Result<Vec<Value>, PatchError> {
    let patch = normalize_slice_order(patch, patch_order, merge_key, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, kind)?;
    Ok(merge_sorted_slice(
        server_only,
        patch,
        server_order,
        merge_key,
        kind,
    ))
}

/// Upstream's `normalizeSliceOrder`: a stable sort by position in `order`; elements marked
/// `$patch: delete` go last.
fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    kind: ElemKind,
) -> Result<Vec<Value>, PatchError> {
    let (to_sort, to_delete) = if kind == ElemKind::Object {
        validate_merge_key_in_lists(merge_key, &[&to_sort, order])?;
        extract_to_delete_items(to_sort)?
    } else {
        (to_sort, Vec::new())
    };
    let positions = Positions::new(order, merge_key, kind);
    // Items missing from `order` cannot occur on upstream's paths; they sort first, where
    // upstream's (inconsistent) comparator would also move them.
    let mut keyed: Vec<(Option<usize>, Value)> =
        to_sort.into_iter().map(|v| (positions.of(&v), v)).collect();
    keyed.sort_by_key(|(pos, _)| *pos);
    let mut sorted: Vec<Value> = keyed.into_iter().map(|(_, v)| v).collect();
    sorted.extend(to_delete);
    Ok(sorted)
}

/// Upstream's `mergeSortedSlice`: merges the two sorted lists; a `left` item goes first only
/// when both items are in `server_order` and it comes earlier there.
fn merge_sorted_slice(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: &str,
    kind: ElemKind,
) -> Vec<Value> {
    let positions = Positions::new(server_order, merge_key, kind);
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().map(|v| (positions.of(&v), v)).peekable();
    let mut right = right.into_iter().map(|v| (positions.of(&v), v)).peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((l, _)), Some((r, _))) => matches!((l, r), (Some(l), Some(r)) if l < r),
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some((_, v)) = next {
            out.push(v);
        }
    }
    out
}

/// Upstream's `validateMergeKeyInLists`.
fn validate_merge_key_in_lists(merge_key: &str, lists: &[&[Value]]) -> Result<(), PatchError> {
    for item in lists.iter().flat_map(|l| l.iter()) {
        let Value::Object(map) = item else {
            return Err(not_a_map(item));
        };
        if !map.contains_key(merge_key) {
            return Err(missing_merge_key(item, merge_key));
        }
    }
    Ok(())
}

fn not_a_map(item: &Value) -> PatchError {
    PatchError::BadArgType {
        expected: "map[string]interface {}",
        actual: gofmt::type_name(item),
    }
}

fn is_delete_element(item: &Value) -> bool {
    item.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some(DELETE_DIRECTIVE)
}

/// Upstream's `extractToDeleteItems`: (kept, `$patch: delete` elements).
fn extract_to_delete_items(list: Vec<Value>) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    if let Some(bad) = list.iter().find(|v| !v.is_object()) {
        return Err(not_a_map(bad));
    }
    Ok(list.into_iter().partition(|v| !is_delete_element(v)))
}

/// Upstream's `partitionPrimitivesByPresentInList`: (in `by`, not in `by`), order kept.
pub(super) fn partition_primitives(list: Vec<Value>, by: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let present: std::collections::HashSet<String> = by.iter().map(Value::to_string).collect();
    list.into_iter()
        .partition(|v| present.contains(&v.to_string()))
}

/// Upstream's `partitionMapsByPresentInList`: (key present in `by`, not), order kept.
pub(super) fn partition_maps(
    list: Vec<Value>,
    by: &[Value],
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut present = Vec::with_capacity(list.len());
    let mut absent = Vec::with_capacity(list.len());
    for item in list {
        let Value::Object(map) = &item else {
            return Err(not_a_map(&item));
        };
        let Some(key_value) = map.get(merge_key) else {
            return Err(missing_merge_key(&item, merge_key));
        };
        if find_by_key(by, merge_key, key_value)?.is_some() {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

/// Upstream's `mergeKeyValueEqual`.
fn merge_key_value_equal(left: &Value, right: &Value, merge_key: &str) -> Result<bool, PatchError> {
    if merge_key.is_empty() {
        return Ok(left == right);
    }
    let (Value::Object(l), Value::Object(r)) = (left, right) else {
        let bad = if left.is_object() { right } else { left };
        return Err(not_a_map(bad));
    };
    let lv = l
        .get(merge_key)
        .ok_or_else(|| missing_merge_key(left, merge_key))?;
    let rv = r
        .get(merge_key)
        .ok_or_else(|| missing_merge_key(right, merge_key))?;
    Ok(lv == rv)
}

/// Upstream's `validatePatchWithSetOrderList`: the patch's elements (deletions aside) must
/// appear in the `$setElementOrder` list, in the same relative order.
fn validate_patch_with_set_order_list(
    patch_list: &[Value],
    set_order: &[Value],
    merge_key: &str,
) -> Result<(), PatchError> {
    if set_order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let kept: Vec<Value> = if merge_key.is_empty() {
        patch_list.to_vec()
    } else {
        extract_to_delete_items(patch_list.to_vec())?.0
    };
    let (mut p, mut s) = (0, 0);
    while let (Some(item), Some(wanted)) = (kept.get(p), set_order.get(s)) {
        if item.get(DIRECTIVE_MARKER).is_some() {
            p += 1;
            continue;
        }
        if merge_key_value_equal(item, wanted, merge_key)? {
            p += 1;
        }
        s += 1;
    }
    if p < kept.len() && s >= set_order.len() {
        return Err(PatchError::SetElementOrderMismatch {
            patch_list: gofmt::v(&Value::Array(patch_list.to_vec())),
            order_list: gofmt::v(&Value::Array(set_order.to_vec())),
        });
    }
    Ok(())
}

fn as_list(value: Option<&Value>) -> Result<Option<Vec<Value>>, PatchError> {
    match value {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items.clone())),
        Some(other) => Err(PatchError::BadArgType {
            expected: "[]interface {}",
            actual: gofmt::type_name(other),
        }),
    }
}

/// Upstream's `mergePatchIntoOriginal` (server side): for each `$setElementOrder/<field>`,
/// merges `<field>` of the patch into the original and orders the result by the directive;
/// both the directive and the patch's list leave `patch`.
pub(super) fn merge_patch_into_original(
    original: &mut JsonMap,
    patch: &mut JsonMap,
    schema: Schema,
) -> Result<(), PatchError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER_PREFIX))
        .cloned()
        .collect();
    for key in keys {
        let Some(set_order) = crate::remove_key(patch, key.as_str()) else {
            continue;
        };
        let Value::Array(set_order) = set_order else {
            return Err(PatchError::BadArgType {
                expected: "[]interface {}",
                actual: gofmt::type_name(&set_order),
            });
        };
        let field = extract_key(&key, SET_ELEMENT_ORDER_PREFIX)?;
        let original_list = as_list(original.get(field.as_str()))?;
        let patch_list = as_list(patch.get(field.as_str()))?;
        let meta = schema.lookup(&field);
        let merge_key = meta.merge_key;
        validate_patch_with_set_order_list(
            patch_list.as_deref().unwrap_or(&[]),
            &set_order,
            merge_key,
        )?;

        let (merged, server_order) = match (&original_list, &patch_list) {
            (Some(current), None) => (current.clone(), current.clone()),
            (None, Some(added)) => {
                let added = added
                    .iter()
                    .cloned()
                    .filter_map(remove_directives)
                    .collect();
                (added, Vec::new())
            }
            (Some(current), Some(changes)) => {
                let merged = merge_slice_handler(
                    current.clone(),
                    changes.clone(),
                    schema.at(meta.node),
                    &meta,
                    false,
                )?;
                (
                    merged.merged,
                    merged.server_view.unwrap_or_else(|| current.clone()),
                )
            }
            (None, None) => continue,
        };

        let (patch_items, server_only) = if merge_key.is_empty() {
            partition_primitives(merged, &set_order)
        } else {
            partition_maps(merged, &set_order, merge_key)?
        };
        let kind = element_kind(&[
            original_list.as_deref().unwrap_or(&[]),
            patch_list.as_deref().unwrap_or(&[]),
        ])?;
        let ordered = normalize_element_order(
            patch_items,
            server_only,
            &set_order,
            &server_order,
            merge_key,
            kind,
        )?;
        original.insert(field.clone(), Value::Array(ordered));
        crate::remove_key(patch, field.as_str());
    }
    Ok(())
}
