#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ev, fails, json, no, yes};
use ferrokube_cel::Value;
use serde_json::json;

#[test]
fn all_macro() {
    yes("[1, 2, 3].all(x, x > 0)");
    no("[1, 2, 3].all(x, x > 1)");
    yes("[].all(x, x > 0)");
    yes("{'a': 1, 'b': 2}.all(k, k in ['a', 'b'])");
    // error absorption like &&
    no("[0, 1].all(x, 1 / x > 0 && false)");
    no("[0, 2].all(x, 1 / x == 1)");
    no("[2, 0].all(x, 1 / x > 5)");
    fails("[0, 1].all(x, 1 / x > 0)", "division by zero");
    fails("[1, 2].all(x, x)", "no matching overload");
}

#[test]
fn exists_macros() {
    yes("[1, 2, 3].exists(x, x == 2)");
    no("[1, 2, 3].exists(x, x == 4)");
    no("[].exists(x, true)");
    yes("[0, 1].exists(x, 1 / x == 1)");
    yes("[1, 0].exists(x, 1 / x == 1)");
    fails("[0, 2].exists(x, 1 / x == 1)", "division by zero");
    yes("{'a': 1}.exists(k, k == 'a')");
    yes("[1, 2, 3].exists_one(x, x == 2)");
    no("[1, 2, 2].exists_one(x, x == 2)");
    no("[1, 2, 3].exists_one(x, x > 5)");
    fails("[0, 1].exists_one(x, 1 / x == 1)", "division by zero");
}

#[test]
fn map_and_filter() {
    assert_eq!(json("[1, 2, 3].map(x, x * 2)"), json!([2, 4, 6]));
    assert_eq!(
        json("[1, 2, 3, 4].map(x, x % 2 == 0, x * 10)"),
        json!([20, 40])
    );
    assert_eq!(json("[1, 2, 3, 4].filter(x, x % 2 == 1)"), json!([1, 3]));
    assert_eq!(json("{'a': 1, 'b': 2}.map(k, k + k)"), json!(["aa", "bb"]));
    assert_eq!(json("{'a': 1, 'b': 2}.filter(k, k == 'b')"), json!(["b"]));
    assert_eq!(
        json("[[1, 2], [3]].map(l, l.map(x, x + 1))"),
        json!([[2, 3], [4]])
    );
    assert_eq!(json("[].map(x, x)"), json!([]));
    fails("[1, 0].map(x, 1 / x)", "division by zero");
    fails("1.map(x, x)", "cannot be range of a comprehension");
    fails("[1].filter(x, 1)", "no matching overload");
}

#[test]
fn scoping() {
    // Nested comprehensions shadow and restore variables.
    yes("[1, 2].all(x, [3, 4].all(x, x > 2) && x < 3)");
    assert_eq!(
        json("[1, 2].map(x, [10, 20].map(y, x + y))"),
        json!([[11, 21], [12, 22]])
    );
    // A failed iteration inside && does not leak its variable.
    yes("([0].all(x, 1 / x == 1) || true) && [5].all(y, y == 5)");
    assert_eq!(ev("[1, 2, 3].filter(x, x > 1).size()"), Value::Int(2));
}
