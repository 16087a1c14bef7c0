//! Upstream's strategic merge patch fixtures (`strategicpatch/patch_test.go`: the custom and
//! raw test cases), run against upstream's `MergeItem` test type. Each upstream case yields
//! two checks: the two-way patch applied to `original` gives `modified` (or `twoWayResult`),
//! and the three-way patch applied to `current` gives `result`. Orders are compared exactly,
//! as upstream's raw cases do.

use serde_json::{json, Value};

use super::apply_strategic_merge_patch;
use crate::schema::{l, lp, o, Def, Schema, K, M, MK, N, R};

/// Upstream's `MergeItem` (0), `RetainKeysMergeItem` (1) and `runtime.RawExtension` (2).
static MERGE_ITEM: [Def; 3] = [
    Def {
        name: "mergeItem",
        fields: &[
            l("mergeItemPtr", 0, M, "name"),
            lp("mergingIntList", M, ""),
            l("mergingList", 0, M, "name"),
            lp("nonMergingIntList", N, ""),
            l("nonMergingList", 0, N, ""),
            o("replacingItem", 2, R),
            o("retainKeysMap", 1, K),
            l("retainKeysMergingList", 0, MK, "name"),
        ],
    },
    Def {
        name: "retainKeysMergeItem",
        fields: &[
            lp("mergingIntList", M, ""),
            l("mergingList", 0, M, "name"),
            l("nonMergingList", 0, N, ""),
        ],
    },
    Def {
        name: "rawExtension",
        fields: &[],
    },
];

fn schema() -> Schema {
    Schema::from_table(&MERGE_ITEM, 0)
}

fn check(cases: &[(&str, Value, Value, Value)]) {
    for (desc, original, patch, expected) in cases {
        let got = apply_strategic_merge_patch(original, patch, schema())
            .unwrap_or_else(|e| panic!("{desc}: unexpected error {e}"));
        assert_eq!(&got, expected, "{desc}");
    }
}

fn check_error(desc: &str, original: Value, patch: Value, contains: &str) {
    match apply_strategic_merge_patch(&original, &patch, schema()) {
        Ok(v) => panic!("{desc}: expected an error containing {contains:?}, got {v}"),
        Err(e) => assert!(e.to_string().contains(contains), "{desc}: {e}"),
    }
}

#[test]
fn custom_cases() {
    check(&[
        (
            "unique scalars when merging lists",
            json!({"mergingIntList": [1, 2]}),
            json!({"mergingIntList": [2, 3]}),
            json!({"mergingIntList": [1, 2, 3]}),
        ),
        (
            "delete map from nested map",
            json!({"simpleMap": {"key1": 1, "key2": 1}}),
            json!({"simpleMap": {"$patch": "delete"}}),
            json!({"simpleMap": {}}),
        ),
        (
            "delete all items from merging list",
            json!({"mergingList": [{"name": 1}, {"name": 2}]}),
            json!({"mergingList": [{"$patch": "replace"}]}),
            json!({"mergingList": []}),
        ),
        (
            "merge empty merging lists",
            json!({"mergingList": []}),
            json!({"mergingList": []}),
            json!({"mergingList": []}),
        ),
        (
            "delete all keys from map",
            json!({"name": 1, "value": 1}),
            json!({"$patch": "replace"}),
            json!({}),
        ),
        (
            "add key and delete all keys from map",
            json!({"name": 1, "value": 1}),
            json!({"other": "a", "$patch": "replace"}),
            json!({"other": "a"}),
        ),
        (
            "delete all duplicate entries in a merging list",
            json!({"mergingList": [{"name": 1}, {"name": 1}, {"name": 2, "value": "a"}, {"name": 3}, {"name": 3}]}),
            json!({"mergingList": [{"name": 1, "$patch": "delete"}, {"name": 3, "$patch": "delete"}]}),
            json!({"mergingList": [{"name": 2, "value": "a"}]}),
        ),
        (
            "retainKeys map can add a field when no retainKeys directive present",
            json!({"retainKeysMap": {"name": "foo"}}),
            json!({"retainKeysMap": {"value": "bar"}}),
            json!({"retainKeysMap": {"name": "foo", "value": "bar"}}),
        ),
        (
            "retainKeys map can delete a field when no retainKeys directive present",
            json!({"retainKeysMap": {"name": "foo", "value": "a"}}),
            json!({"retainKeysMap": {"value": null}}),
            json!({"retainKeysMap": {"name": "foo"}}),
        ),
        (
            "retainKeys map merge an empty map",
            json!({"retainKeysMap": {"name": "foo", "value": "a"}}),
            json!({"retainKeysMap": {}}),
            json!({"retainKeysMap": {"name": "foo", "value": "a"}}),
        ),
        (
            "retainKeys list can add a field when no retainKeys directive present",
            json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}]}),
            json!({"retainKeysMergingList": [{"name": "foo", "value": "a"}]}),
            json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]}),
        ),
        (
            "preserve the order from the patch in a merging list",
            json!({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]}),
            json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}, {"name": 2, "other": "x"}]}),
            json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}, {"name": 2, "value": "b", "other": "x"}]}),
        ),
        (
            "preserve the order from the patch in a merging list 2",
            json!({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]}),
            json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}]}),
            json!({"mergingList": [{"name": 2, "value": "b"}, {"name": 3, "value": "c"}, {"name": 1, "value": "a"}]}),
        ),
        (
            "preserve the order from the patch in a merging int list",
            json!({"mergingIntList": [1, 2, 3]}),
            json!({"mergingIntList": [3, 1, 2]}),
            json!({"mergingIntList": [3, 1, 2]}),
        ),
        (
            "preserve the order from the patch in a merging int list 2",
            json!({"mergingIntList": [1, 2, 3]}),
            json!({"mergingIntList": [3, 1]}),
            json!({"mergingIntList": [2, 3, 1]}),
        ),
        (
            "$setElementOrder contains item that is not present in the list to be merged",
            json!({"mergingList": [{"name": 1}, {"name": 3}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 3}, {"name": 2}, {"name": 1}],
                "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]
            }),
            json!({"mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
        ),
        (
            "$setElementOrder contains item that is not present in the int list to be merged",
            json!({"mergingIntList": [1, 3]}),
            json!({"$setElementOrder/mergingIntList": [3, 2, 1]}),
            json!({"mergingIntList": [3, 1]}),
        ),
    ]);
}

#[test]
fn custom_error_cases() {
    check_error(
        "should check if order in $setElementOrder and patch list match",
        json!({"mergingList": [{"name": 1}, {"name": 3}, {"name": 2}]}),
        json!({
            "$setElementOrder/mergingList": [{"name": 1}, {"name": 2}, {"name": 3}],
            "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]
        }),
        "doesn't match",
    );
    check_error(
        "should check if order in $setElementOrder and patch int list match",
        json!({"mergingIntList": [1, 3, 2]}),
        json!({"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3, 1]}),
        "doesn't match",
    );
    check_error(
        "missing merge key should error out",
        json!({"mergingList": [{"name": 1, "value": "a"}]}),
        json!({"mergingList": [{"value": "b"}]}),
        "does not contain declared merge key",
    );
}

#[test]
fn map_cases() {
    check(&[
        (
            "nil original",
            json!({}),
            json!({"name": 1, "value": 1}),
            json!({"name": 1, "value": 1}),
        ),
        (
            "nil patch",
            json!({"name": 1}),
            json!({}),
            json!({"name": 1}),
        ),
        (
            "add field and delete field from map (three-way)",
            json!({"name": 1, "other": "a"}),
            json!({"name": null, "value": 1}),
            json!({"value": 1, "other": "a"}),
        ),
        (
            "delete field from nested map (three-way)",
            json!({"simpleMap": {"key1": 1, "key2": 1, "other": "a"}}),
            json!({"simpleMap": {"key2": null}}),
            json!({"simpleMap": {"key1": 1, "other": "a"}}),
        ),
        (
            "replace list of scalars",
            json!({"nonMergingIntList": [1, 2]}),
            json!({"nonMergingIntList": [2, 3]}),
            json!({"nonMergingIntList": [2, 3]}),
        ),
        (
            "delete all maps from merging list (three-way)",
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "other": "b"}]}),
            json!({"mergingList": [{"name": 1, "$patch": "delete"}, {"name": 2, "$patch": "delete"}]}),
            json!({"mergingList": []}),
        ),
        (
            "delete all maps from empty merging list (three-way)",
            json!({"mergingList": []}),
            json!({"mergingList": [{"name": 1, "$patch": "delete"}, {"name": 2, "$patch": "delete"}]}),
            json!({"mergingList": []}),
        ),
        (
            "defined null values should propagate overwrite current fields (two-way result)",
            json!({"name": 2}),
            json!({"name": 1, "value": 1, "other": null}),
            json!({"name": 1, "value": 1}),
        ),
        (
            "defined null values should propagate removing original fields (three-way)",
            json!({"name": "original-name", "value": "original-value", "other": "current-other"}),
            json!({"name": "modified-name", "value": null}),
            json!({"name": "modified-name", "other": "current-other"}),
        ),
        (
            "delete duplicate field in merging list (type change replaces)",
            json!({"mergingList": [{"name": 1}, {"name": 1}]}),
            json!({"mergingList": {}}),
            json!({"mergingList": {}}),
        ),
    ]);
}

#[test]
fn scalar_list_cases() {
    check(&[
        (
            "delete items in lists of scalars",
            json!({"mergingIntList": [1, 2, 3]}),
            json!({"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]}),
            json!({"mergingIntList": [1, 2]}),
        ),
        (
            "delete items in lists of scalars (three-way)",
            json!({"mergingIntList": [1, 2, 3, 4]}),
            json!({"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]}),
            json!({"mergingIntList": [1, 2, 4]}),
        ),
        (
            "delete all duplicate items in lists of scalars (three-way)",
            json!({"mergingIntList": [1, 2, 3, 3, 4]}),
            json!({"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]}),
            json!({"mergingIntList": [1, 2, 4]}),
        ),
        (
            "add and delete items in lists of scalars",
            json!({"mergingIntList": [1, 2, 3]}),
            json!({
                "$setElementOrder/mergingIntList": [1, 2, 4],
                "$deleteFromPrimitiveList/mergingIntList": [3],
                "mergingIntList": [4]
            }),
            json!({"mergingIntList": [1, 2, 4]}),
        ),
        (
            "merge lists of scalars (three-way)",
            json!({"mergingIntList": [1, 2, 4]}),
            json!({"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3]}),
            json!({"mergingIntList": [1, 2, 3, 4]}),
        ),
        (
            "add an item in a list of primitives and preserve order (three-way)",
            json!({"mergingIntList": [1, 4, 2]}),
            json!({"$setElementOrder/mergingIntList": [3, 1, 2], "mergingIntList": [3]}),
            json!({"mergingIntList": [3, 1, 4, 2]}),
        ),
        (
            "delete an item in a list of primitives and preserve order",
            json!({"mergingIntList": [1, 2, 3]}),
            json!({"$setElementOrder/mergingIntList": [2, 1], "$deleteFromPrimitiveList/mergingIntList": [3]}),
            json!({"mergingIntList": [2, 1]}),
        ),
        (
            "add multiple items in a int list and preserve order",
            json!({"mergingIntList": [1, 2]}),
            json!({"$setElementOrder/mergingIntList": [1, 4, 2, 3], "mergingIntList": [4, 3]}),
            json!({"mergingIntList": [1, 4, 2, 3]}),
        ),
        (
            "add and delete an item in a int list and preserve order",
            json!({"mergingIntList": [1, 3, 2]}),
            json!({
                "$setElementOrder/mergingIntList": [4, 2, 1],
                "mergingIntList": [4],
                "$deleteFromPrimitiveList/mergingIntList": [3]
            }),
            json!({"mergingIntList": [4, 2, 1]}),
        ),
        (
            "set elements order in a int list with server-only items 2 (three-way)",
            json!({"mergingIntList": [1, 2, 9, 3, 4]}),
            json!({"$setElementOrder/mergingIntList": [2, 1, 4, 3]}),
            json!({"mergingIntList": [2, 1, 9, 4, 3]}),
        ),
        (
            "set elements order in a int list with server-only items 3 (three-way)",
            json!({"mergingIntList": [1, 2, 7, 9, 8, 3, 4]}),
            json!({"$setElementOrder/mergingIntList": [2, 1, 4, 3]}),
            json!({"mergingIntList": [2, 1, 7, 9, 8, 4, 3]}),
        ),
        (
            "behavior of set element order for a merging int list with duplicate",
            json!({"mergingIntList": [1, 2, 3, 2, 4]}),
            json!({"$setElementOrder/mergingIntList": [2, 1, 4, 3, 2]}),
            json!({"mergingIntList": [2, 2, 1, 4, 3]}),
        ),
    ]);
}

#[test]
fn merging_list_cases() {
    check(&[
        (
            "merge lists of maps",
            json!({"mergingList": [{"name": 1}, {"name": 2, "value": 2}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 4}, {"name": 1}, {"name": 2}, {"name": 3}],
                "mergingList": [{"name": 4, "value": 4}, {"name": 3, "value": 3}]
            }),
            json!({"mergingList": [{"name": 4, "value": 4}, {"name": 1}, {"name": 2, "value": 2}, {"name": 3, "value": 3}]}),
        ),
        (
            "merge lists of maps (three-way)",
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 4}, {"name": 1}, {"name": 2}, {"name": 3}],
                "mergingList": [{"name": 4, "value": 4}, {"name": 3, "value": 3}]
            }),
            json!({"mergingList": [
                {"name": 4, "value": 4}, {"name": 1, "other": "a"},
                {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}
            ]}),
        ),
        (
            "merge lists of maps with conflict (three-way)",
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 3, "other": "b"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 1}, {"name": 2}, {"name": 3}],
                "mergingList": [{"name": 2, "value": 2}, {"name": 3, "value": 3}]
            }),
            json!({"mergingList": [
                {"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}
            ]}),
        ),
        (
            "add field to map in merging list with conflict (three-way)",
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 3, "value": 2, "other": "b"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 1}, {"name": 2}],
                "mergingList": [{"name": 1, "value": 1}, {"name": 2, "value": 2}]
            }),
            json!({"mergingList": [
                {"name": 1, "value": 1, "other": "a"}, {"name": 2, "value": 2},
                {"name": 3, "value": 2, "other": "b"}
            ]}),
        ),
        (
            "delete map from merging list (three-way)",
            json!({"mergingList": [{"name": 1}, {"name": 2, "other": "b"}]}),
            json!({"$setElementOrder/mergingList": [{"name": 2}], "mergingList": [{"name": 1, "$patch": "delete"}]}),
            json!({"mergingList": [{"name": 2, "other": "b"}]}),
        ),
        (
            "delete missing map from merging list with conflict (three-way)",
            json!({"mergingList": [{"name": 3, "other": "a"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 2}],
                "mergingList": [{"name": 2}, {"name": 1, "$patch": "delete"}]
            }),
            json!({"mergingList": [{"name": 2}, {"name": 3, "other": "a"}]}),
        ),
        (
            "add map and delete map from merging list",
            json!({"mergingList": [{"name": 1}, {"name": 2}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 2}, {"name": 3}],
                "mergingList": [{"name": 3}, {"name": 1, "$patch": "delete"}]
            }),
            json!({"mergingList": [{"name": 2}, {"name": 3}]}),
        ),
        (
            "add map and delete map from merging list (three-way)",
            json!({"mergingList": [{"name": 1}, {"name": 2, "other": "b"}, {"name": 4, "other": "c"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 2}, {"name": 3}],
                "mergingList": [{"name": 3}, {"name": 1, "$patch": "delete"}]
            }),
            json!({"mergingList": [{"name": 2, "other": "b"}, {"name": 4, "other": "c"}, {"name": 3}]}),
        ),
        (
            "add map and delete map from merging list with conflict (three-way)",
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 4, "other": "c"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 2}, {"name": 3}],
                "mergingList": [{"name": 2}, {"name": 3}, {"name": 1, "$patch": "delete"}]
            }),
            json!({"mergingList": [{"name": 4, "other": "c"}, {"name": 2}, {"name": 3}]}),
        ),
        (
            "delete field from map in merging list (three-way)",
            json!({"mergingList": [{"name": 1, "value": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 1}, {"name": 2}],
                "mergingList": [{"name": 1, "value": null}]
            }),
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}),
        ),
        (
            "replace non merging list nested in merging list (three-way)",
            json!({"mergingList": [
                {"name": 1, "other": "a", "nonMergingList": [{"name": 1}, {"name": 2, "value": 2}]},
                {"name": 2, "other": "b"}
            ]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 1}, {"name": 2}],
                "mergingList": [{"name": 1, "nonMergingList": [{"name": 1, "value": 1}]}]
            }),
            json!({"mergingList": [
                {"name": 1, "other": "a", "nonMergingList": [{"name": 1, "value": 1}]},
                {"name": 2, "other": "b"}
            ]}),
        ),
        (
            "add field to map in merging list nested in merging list with deletion conflict",
            json!({"mergingList": [
                {"name": 1, "other": "a", "mergingList": [{"name": 2, "value": 2, "other": "d"}]},
                {"name": 2, "other": "b"}
            ]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 1}, {"name": 2}],
                "mergingList": [{
                    "$setElementOrder/mergingList": [{"name": 2}, {"name": 1}],
                    "name": 1,
                    "mergingList": [{"name": 1, "value": 1}]
                }]
            }),
            json!({"mergingList": [
                {"name": 1, "other": "a", "mergingList": [
                    {"name": 2, "value": 2, "other": "d"}, {"name": 1, "value": 1}
                ]},
                {"name": 2, "other": "b"}
            ]}),
        ),
        (
            "add map to merging list by pointer (three-way)",
            json!({"mergeItemPtr": [{"name": 1, "other": "a"}, {"name": 3}]}),
            json!({"$setElementOrder/mergeItemPtr": [{"name": 1}, {"name": 2}], "mergeItemPtr": [{"name": 2}]}),
            json!({"mergeItemPtr": [{"name": 1, "other": "a"}, {"name": 2}, {"name": 3}]}),
        ),
        (
            "add map to merging list by pointer with conflict (three-way)",
            json!({"mergeItemPtr": [{"name": 3}]}),
            json!({
                "$setElementOrder/mergeItemPtr": [{"name": 1}, {"name": 2}],
                "mergeItemPtr": [{"name": 1}, {"name": 2}]
            }),
            json!({"mergeItemPtr": [{"name": 1}, {"name": 2}, {"name": 3}]}),
        ),
    ]);
}

#[test]
fn element_order_cases() {
    check(&[
        (
            "add an item in a list and preserve order (three-way)",
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 3}, {"name": 1}, {"name": 2}],
                "mergingList": [{"name": 3, "value": 3}]
            }),
            json!({"mergingList": [
                {"name": 3, "value": 3}, {"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}
            ]}),
        ),
        (
            "add multiple items in a list and preserve order (three-way)",
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 1}, {"name": 4}, {"name": 2}, {"name": 3}],
                "mergingList": [{"name": 4, "value": 4}, {"name": 3, "value": 3}]
            }),
            json!({"mergingList": [
                {"name": 1, "other": "a"}, {"name": 4, "value": 4},
                {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}
            ]}),
        ),
        (
            "delete an item in a list and preserve order (three-way)",
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 2}, {"name": 1}],
                "mergingList": [{"name": 3, "$patch": "delete"}]
            }),
            json!({"mergingList": [{"name": 2, "value": 2, "other": "b"}, {"name": 1, "other": "a"}]}),
        ),
        (
            "change an item in a list and preserve order (three-way)",
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 2}, {"name": 3}, {"name": 1}],
                "mergingList": [{"name": 3, "value": "x"}]
            }),
            json!({"mergingList": [
                {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": "x"}, {"name": 1, "other": "a"}
            ]}),
        ),
        (
            "add and delete an item in a list and preserve order (three-way)",
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": 4}, {"name": 2}, {"name": 1}],
                "mergingList": [{"name": 4, "value": 4}, {"name": 3, "$patch": "delete"}]
            }),
            json!({"mergingList": [
                {"name": 4, "value": 4}, {"name": 2, "value": 2, "other": "b"}, {"name": 1, "other": "a"}
            ]}),
        ),
        (
            "set elements order in a list with server-only items (three-way)",
            json!({"mergingList": [
                {"name": 1, "other": "a"}, {"name": 3, "value": 3}, {"name": 4, "value": 4},
                {"name": 2, "value": 2}, {"name": 9}
            ]}),
            json!({"$setElementOrder/mergingList": [{"name": 4}, {"name": 2}, {"name": 3}, {"name": 1}]}),
            json!({"mergingList": [
                {"name": 4, "value": 4}, {"name": 2, "value": 2}, {"name": 3, "value": 3},
                {"name": 1, "other": "a"}, {"name": 9}
            ]}),
        ),
        (
            "set elements order in a list with server-only items 3 (three-way)",
            json!({"mergingList": [
                {"name": 1, "other": "a"}, {"name": 2, "value": 2}, {"name": 7}, {"name": 9},
                {"name": 8}, {"name": 3, "value": 3}, {"name": 4, "value": 4}
            ]}),
            json!({"$setElementOrder/mergingList": [{"name": 2}, {"name": 1}, {"name": 4}, {"name": 3}]}),
            json!({"mergingList": [
                {"name": 2, "value": 2}, {"name": 1, "other": "a"}, {"name": 7}, {"name": 9},
                {"name": 8}, {"name": 4, "value": 4}, {"name": 3, "value": 3}
            ]}),
        ),
        (
            "behavior of set element order for a merging list with duplicate",
            json!({"mergingList": [
                {"name": 1}, {"name": 2, "value": "dup1"}, {"name": 3},
                {"name": 2, "value": "dup2"}, {"name": 4}
            ]}),
            json!({"$setElementOrder/mergingList": [{"name": 2}, {"name": 1}, {"name": 4}, {"name": 3}, {"name": 2}]}),
            json!({"mergingList": [
                {"name": 2, "value": "dup1"}, {"name": 2, "value": "dup2"}, {"name": 1},
                {"name": 4}, {"name": 3}
            ]}),
        ),
        (
            "delete and reorder in one list, reorder in another",
            json!({
                "mergingList": [{"name": "a", "value": "a"}, {"name": "b", "value": "b"}],
                "mergeItemPtr": [{"name": "c", "value": "c"}, {"name": "d", "value": "d"}]
            }),
            json!({
                "$setElementOrder/mergingList": [{"name": "b"}],
                "$setElementOrder/mergeItemPtr": [{"name": "d"}, {"name": "c"}],
                "mergingList": [{"$patch": "delete", "name": "a"}]
            }),
            json!({
                "mergingList": [{"name": "b", "value": "b"}],
                "mergeItemPtr": [{"name": "d", "value": "d"}, {"name": "c", "value": "c"}]
            }),
        ),
    ]);
}

#[test]
fn retain_keys_cases() {
    check(&[
        (
            "retainKeys map should clear defaulted field (three-way)",
            json!({"retainKeysMap": {"value": "foo"}}),
            json!({"retainKeysMap": {"$retainKeys": ["other"], "other": "bar"}}),
            json!({"retainKeysMap": {"other": "bar"}}),
        ),
        (
            "retainKeys map should clear defaulted field with conflict (discriminated union)",
            json!({"retainKeysMap": {"name": "type1", "value": "foo"}}),
            json!({"retainKeysMap": {"$retainKeys": ["name", "other"], "name": "type2", "other": "bar"}}),
            json!({"retainKeysMap": {"name": "type2", "other": "bar"}}),
        ),
        (
            "retainKeys map adds a field and clear a field (three-way)",
            json!({"retainKeysMap": {"name": "foo", "other": "a"}}),
            json!({"retainKeysMap": {"$retainKeys": ["name", "value"], "value": "bar"}}),
            json!({"retainKeysMap": {"name": "foo", "value": "bar"}}),
        ),
        (
            "retainKeys map deletes a field and clears a field (three-way)",
            json!({"retainKeysMap": {"name": "foo", "value": "bar", "other": "a"}}),
            json!({"retainKeysMap": {"$retainKeys": ["name"], "value": null}}),
            json!({"retainKeysMap": {"name": "foo"}}),
        ),
        (
            "retainKeys map adds a field in a nested map (three-way)",
            json!({"retainKeysMap": {"name": "foo", "value": "bar", "simpleMap": {"key1": "a", "key3": "c"}}}),
            json!({"retainKeysMap": {"$retainKeys": ["name", "simpleMap", "value"], "simpleMap": {"key2": "b"}}}),
            json!({"retainKeysMap": {"name": "foo", "value": "bar", "simpleMap": {"key1": "a", "key2": "b", "key3": "c"}}}),
        ),
        (
            "retainKeys list of maps deletes a field and clear a field (three-way)",
            json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a", "other": "x"}]}),
            json!({
                "$setElementOrder/retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}],
                "retainKeysMergingList": [{"$retainKeys": ["name"], "name": "foo", "value": null}]
            }),
            json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}]}),
        ),
        (
            "retainKeys list of maps adds a field and clear a field (three-way)",
            json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "other": "x"}]}),
            json!({
                "$setElementOrder/retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}],
                "retainKeysMergingList": [{"$retainKeys": ["name", "value"], "name": "foo", "value": "a"}]
            }),
            json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]}),
        ),
    ]);
    check_error(
        "a key the patch sets must be retained",
        json!({"retainKeysMap": {"name": "foo"}}),
        json!({"retainKeysMap": {"$retainKeys": ["name"], "value": "x"}}),
        "invalid patch format of retainKeys",
    );
}

#[test]
fn directive_errors() {
    let err = apply_strategic_merge_patch(
        &json!({"simpleMap": {"a": 1}}),
        &json!({"simpleMap": {"$patch": "merge"}}),
        schema(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown patch type: merge in map: map[$patch:merge]"
    );
    assert_eq!(err.http_status(), 500);
    check_error(
        "merge directive in a list element",
        json!({"mergingList": [{"name": 1}]}),
        json!({"mergingList": [{"name": 1, "$patch": "merge"}]}),
        "merging lists cannot yet be specified in the patch",
    );
    let err = apply_strategic_merge_patch(
        &json!({"mergingList": [{"name": 1}]}),
        &json!({"mergingList": [{"value": "b"}]}),
        schema(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "map: map[value:b] does not contain declared merge key: name"
    );
    check_error(
        "bad $setElementOrder key",
        json!({}),
        json!({"$setElementOrder": []}),
        "invalid patch format of setElementOrder list",
    );
    check_error(
        "bad $deleteFromPrimitiveList key",
        json!({"mergingIntList": [1]}),
        json!({"$deleteFromPrimitiveListmergingIntList": [1]}),
        "invalid patch format of primitive list",
    );
    check_error(
        "list of lists",
        json!({"mergingIntList": [[1]]}),
        json!({"mergingIntList": [[2]]}),
        "lists of lists",
    );
}
