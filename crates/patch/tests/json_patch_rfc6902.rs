//! RFC 6902 Appendix A examples, run through `apply_json_patch`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferrokube_patch::{apply_json_patch, PatchError};
use serde_json::{json, Value};

fn ok(doc: Value, patch: Value, expected: Value) {
    let before = doc.clone();
    let got = apply_json_patch(&doc, &patch).unwrap_or_else(|e| panic!("{patch}: {e}"));
    assert_eq!(got, expected, "{patch}");
    assert_eq!(doc, before, "input must stay untouched");
}

fn err(doc: Value, patch: Value) -> PatchError {
    apply_json_patch(&doc, &patch).expect_err("patch should fail")
}

#[test]
fn a01_adding_an_object_member() {
    ok(
        json!({"foo": "bar"}),
        json!([{"op": "add", "path": "/baz", "value": "qux"}]),
        json!({"baz": "qux", "foo": "bar"}),
    );
}

#[test]
fn a02_adding_an_array_element() {
    ok(
        json!({"foo": ["bar", "baz"]}),
        json!([{"op": "add", "path": "/foo/1", "value": "qux"}]),
        json!({"foo": ["bar", "qux", "baz"]}),
    );
}

#[test]
fn a03_removing_an_object_member() {
    ok(
        json!({"baz": "qux", "foo": "bar"}),
        json!([{"op": "remove", "path": "/baz"}]),
        json!({"foo": "bar"}),
    );
}

#[test]
fn a04_removing_an_array_element() {
    ok(
        json!({"foo": ["bar", "qux", "baz"]}),
        json!([{"op": "remove", "path": "/foo/1"}]),
        json!({"foo": ["bar", "baz"]}),
    );
}

#[test]
fn a05_replacing_a_value() {
    ok(
        json!({"baz": "qux", "foo": "bar"}),
        json!([{"op": "replace", "path": "/baz", "value": "boo"}]),
        json!({"baz": "boo", "foo": "bar"}),
    );
}

#[test]
fn a06_moving_a_value() {
    ok(
        json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}),
        json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]),
        json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    );
}

#[test]
fn a07_moving_an_array_element() {
    ok(
        json!({"foo": ["all", "grass", "cows", "eat"]}),
        json!([{"op": "move", "from": "/foo/1", "path": "/foo/3"}]),
        json!({"foo": ["all", "cows", "eat", "grass"]}),
    );
}

#[test]
fn a08_testing_a_value_success() {
    let doc = json!({"baz": "qux", "foo": ["a", 2, "c"]});
    ok(
        doc.clone(),
        json!([
            {"op": "test", "path": "/baz", "value": "qux"},
            {"op": "test", "path": "/foo/1", "value": 2}
        ]),
        doc,
    );
}

#[test]
fn a09_testing_a_value_error() {
    let e = err(
        json!({"baz": "qux"}),
        json!([{"op": "test", "path": "/baz", "value": "bar"}]),
    );
    assert_eq!(e.to_string(), "testing value /baz failed: test failed");
    assert_eq!(e.http_status(), 422);
}

#[test]
fn a10_adding_a_nested_member_object() {
    ok(
        json!({"foo": "bar"}),
        json!([{"op": "add", "path": "/child", "value": {"grandchild": {}}}]),
        json!({"foo": "bar", "child": {"grandchild": {}}}),
    );
}

#[test]
fn a11_ignoring_unrecognized_elements() {
    ok(
        json!({"foo": "bar"}),
        json!([{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}]),
        json!({"foo": "bar", "baz": "qux"}),
    );
}

#[test]
fn a12_adding_to_a_nonexistent_target() {
    let e = err(
        json!({"foo": "bar"}),
        json!([{"op": "add", "path": "/baz/bat", "value": "qux"}]),
    );
    assert_eq!(
        e.to_string(),
        "add operation does not apply: doc is missing path: \"/baz/bat\": missing value"
    );
}

// A.13 (duplicate "op" members) cannot be expressed once the patch is a serde_json::Value:
// the JSON parser has already kept one of them.

#[test]
fn a14_escape_ordering() {
    let doc = json!({"/": 9, "~1": 10});
    ok(
        doc.clone(),
        json!([{"op": "test", "path": "/~01", "value": 10}]),
        doc,
    );
}

#[test]
fn a15_comparing_strings_and_numbers() {
    let e = err(
        json!({"/": 9, "~1": 10}),
        json!([{"op": "test", "path": "/~01", "value": "10"}]),
    );
    assert!(matches!(e, PatchError::JsonPatchTestFailed { .. }));
}

#[test]
fn a16_adding_an_array_value() {
    ok(
        json!({"foo": ["bar"]}),
        json!([{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
        json!({"foo": ["bar", ["abc", "def"]]}),
    );
}

#[test]
fn patches_apply_atomically() {
    let doc = json!({"metadata": {"labels": {"a": "1"}}});
    let e = err(
        doc.clone(),
        json!([
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/missing"}
        ]),
    );
    assert_eq!(
        e.to_string(),
        "error in remove for path: '/metadata/labels/missing': Unable to remove nonexistent key: missing: missing value"
    );
    assert_eq!(doc, json!({"metadata": {"labels": {"a": "1"}}}));
}

#[test]
fn replace_requires_an_existing_target() {
    let e = err(
        json!({"spec": {}}),
        json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
    );
    assert_eq!(
        e.to_string(),
        "replace operation does not apply: doc is missing key: /spec/replicas: missing value"
    );
}

#[test]
fn kubernetes_style_paths() {
    // Annotation keys with '/' and '~' need the escapes.
    ok(
        json!({"metadata": {"annotations": {}}}),
        json!([{"op": "add", "path": "/metadata/annotations/example.com~1a~0b", "value": "x"}]),
        json!({"metadata": {"annotations": {"example.com/a~b": "x"}}}),
    );
    ok(
        json!({"spec": {"containers": [{"name": "a", "image": "a:1"}]}}),
        json!([
            {"op": "test", "path": "/spec/containers/0/name", "value": "a"},
            {"op": "replace", "path": "/spec/containers/0/image", "value": "a:2"},
            {"op": "copy", "from": "/spec/containers/0", "path": "/spec/containers/-"},
            {"op": "replace", "path": "/spec/containers/1/name", "value": "b"}
        ]),
        json!({"spec": {"containers": [{"name": "a", "image": "a:2"}, {"name": "b", "image": "a:2"}]}}),
    );
}

#[test]
fn move_into_own_child_is_rejected() {
    let e = err(
        json!({"a": {"b": 1}}),
        json!([{"op": "move", "from": "/a", "path": "/a/b/c"}]),
    );
    assert!(matches!(e, PatchError::JsonPatchMoveIntoChild { .. }));
}

#[test]
fn malformed_patches() {
    assert_eq!(
        err(json!({}), json!([{"op": "add", "value": 1}])).to_string(),
        "add operation failed to decode path: missing value"
    );
    assert_eq!(err(json!({}), json!(["add"])).http_status(), 400);
    assert_eq!(
        err(json!({}), json!([{"path": "/a"}])).to_string(),
        "Unexpected kind: unknown"
    );
    assert_eq!(
        apply_json_patch(&json!({"a": 1}), &Value::Null).unwrap(),
        json!({"a": 1})
    );
}
