//! RFC 7386 Appendix A examples, run through `apply_merge_patch`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferrokube_patch::apply_merge_patch;
use serde_json::json;

#[test]
fn appendix_a() {
    let cases = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (
            json!({"a": "b", "b": "c"}),
            json!({"a": null}),
            json!({"b": "c"}),
        ),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        (json!({"a": "foo"}), json!(null), json!(null)),
        (json!({"a": "foo"}), json!("bar"), json!("bar")),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
    ];
    for (doc, patch, expected) in cases {
        let before = doc.clone();
        assert_eq!(apply_merge_patch(&doc, &patch), expected, "{doc} + {patch}");
        assert_eq!(doc, before, "input must stay untouched");
    }
}

#[test]
fn kubernetes_object() {
    let doc = json!({
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "image": "a:1"}]}}}
    });
    let patch = json!({
        "metadata": {"labels": {"tier": null, "env": "prod"}},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "b", "image": "b:1"}]}}}
    });
    assert_eq!(
        apply_merge_patch(&doc, &patch),
        json!({
            "metadata": {"name": "web", "labels": {"app": "web", "env": "prod"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "b", "image": "b:1"}]}}}
        })
    );
}
