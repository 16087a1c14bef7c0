#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ev, fails, json, no, yes};
use ferrokube_cel::Value;
use serde_json::json;

#[test]
fn literals() {
    assert_eq!(ev("42"), Value::Int(42));
    assert_eq!(ev("-42"), Value::Int(-42));
    assert_eq!(ev("0x1F"), Value::Int(31));
    assert_eq!(ev("7u"), Value::Uint(7));
    assert_eq!(ev("0xFFu"), Value::Uint(255));
    assert_eq!(ev("1.5"), Value::Double(1.5));
    assert_eq!(ev("1e3"), Value::Double(1000.0));
    assert_eq!(ev("2.5E-1"), Value::Double(0.25));
    assert_eq!(ev(".5"), Value::Double(0.5));
    assert_eq!(ev("-9223372036854775808"), Value::Int(i64::MIN));
    assert_eq!(ev("18446744073709551615u"), Value::Uint(u64::MAX));
    assert_eq!(ev("true"), Value::Bool(true));
    assert_eq!(ev("null"), Value::Null);
    assert_eq!(ev("'abc'"), Value::from("abc"));
    assert_eq!(ev("\"abc\""), Value::from("abc"));
    assert_eq!(ev("'''a'b\nc'''"), Value::from("a'b\nc"));
    assert_eq!(ev(r#""""x"y""""#), Value::from("x\"y"));
    assert_eq!(ev(r"r'a\nb'"), Value::from("a\\nb"));
    assert_eq!(
        ev(r"'\n\t\\\'\x41\u00e9\U0001F600\101'"),
        Value::from("\n\t\\'Aé😀A")
    );
    assert_eq!(ev(r"b'\x00\xff'"), Value::Bytes(vec![0u8, 255].into()));
    assert_eq!(ev("b'abc'"), Value::Bytes(b"abc".to_vec().into()));
    assert_eq!(json("[1, 2, 3,]"), json!([1, 2, 3]));
    assert_eq!(json("{'a': 1, 'b': [true],}"), json!({"a": 1, "b": [true]}));
    assert_eq!(json("{1: 'x', true: 'y'}"), json!({"1": "x", "true": "y"}));
    assert_eq!(json("[]"), json!([]));
    assert_eq!(json("{}"), json!({}));
}

#[test]
fn arithmetic() {
    assert_eq!(ev("1 + 2 * 3"), Value::Int(7));
    assert_eq!(ev("(1 + 2) * 3"), Value::Int(9));
    assert_eq!(ev("10 - 4 - 3"), Value::Int(3));
    assert_eq!(ev("7 / 2"), Value::Int(3));
    assert_eq!(ev("-7 / 2"), Value::Int(-3));
    assert_eq!(ev("7 % 3"), Value::Int(1));
    assert_eq!(ev("-7 % 3"), Value::Int(-1));
    assert_eq!(ev("7u / 2u"), Value::Uint(3));
    assert_eq!(ev("7u % 2u"), Value::Uint(1));
    assert_eq!(ev("1.5 + 2.0"), Value::Double(3.5));
    assert_eq!(ev("1.0 / 0.0"), Value::Double(f64::INFINITY));
    assert_eq!(ev("-(3)"), Value::Int(-3));
    assert_eq!(ev("--3"), Value::Int(3));
    assert_eq!(ev("-(-3.5)"), Value::Double(3.5));
    assert_eq!(ev("'ab' + 'cd'"), Value::from("abcd"));
    assert_eq!(ev("b'ab' + b'cd'"), Value::Bytes(b"abcd".to_vec().into()));
    assert_eq!(json("[1] + [2, 3]"), json!([1, 2, 3]));
    assert_eq!(json("[] + []"), json!([]));
}

#[test]
fn arithmetic_errors() {
    fails("1 / 0", "division by zero");
    fails("1 % 0", "modulus by zero");
    fails("1u / 0u", "division by zero");
    fails("9223372036854775807 + 1", "overflow");
    fails("-9223372036854775808 - 1", "overflow");
    fails("9223372036854775807 * 2", "overflow");
    fails("-9223372036854775808 / -1", "overflow");
    fails("-9223372036854775808 % -1", "overflow");
    fails("-(-9223372036854775808)", "overflow");
    fails("0u - 1u", "overflow");
    fails("18446744073709551615u + 1u", "overflow");
    fails(
        "1 + 1u",
        "no matching overload for '_+_' applied to '(int, uint)'",
    );
    fails(
        "1 + 'a'",
        "no matching overload for '_+_' applied to '(int, string)'",
    );
    fails("1.5 % 1.0", "no matching overload");
    fails("-'a'", "no matching overload");
    fails("!1", "no matching overload");
    fails("-1u", "no matching overload");
}

#[test]
fn comparisons_and_equality() {
    yes("1 < 2");
    yes("2 <= 2");
    yes("3 > 2");
    yes("3 >= 3");
    no("3 < 3");
    yes("1 == 1.0");
    yes("1 == 1u");
    yes("1u == 1.0");
    yes("1 < 2u");
    yes("2.5 > 2");
    yes("-1 < 0u");
    yes("1 != 2");
    yes("'a' < 'b'");
    yes("'abc' > 'abb'");
    yes("b'a' < b'b'");
    yes("false < true");
    yes("[1, 2] == [1, 2]");
    yes("[1, [2, 3]] == [1.0, [2u, 3]]");
    no("[1, 2] == [2, 1]");
    yes("{'a': 1, 'b': 2} == {'b': 2, 'a': 1}");
    no("{'a': 1} == {'a': 2}");
    yes("{1: 'a'} == {1u: 'a'}");
    no("1 == 'a'");
    yes("1 != 'a'");
    no("null == 0");
    yes("null == null");
    no("double('NaN') == double('NaN')");
    no("double('NaN') < 1.0");
    yes("type(1) == int");
    yes("type('a') == string");
    no("type(1) == uint");
    fails(
        "1 < 'a'",
        "no matching overload for '_<_' applied to '(int, string)'",
    );
    fails("[1] < [2]", "no matching overload");
}

#[test]
fn membership() {
    yes("2 in [1, 2, 3]");
    no("4 in [1, 2, 3]");
    yes("2.0 in [1, 2, 3]");
    yes("'a' in {'a': 1}");
    no("'b' in {'a': 1}");
    yes("1u in {1: 'x'}");
    no("1 in {'a': 1}");
    fails("1 in 1", "no matching overload for '@in'");
}

#[test]
fn logical_operators_and_error_semantics() {
    yes("true && true");
    no("true && false");
    yes("false || true");
    no("false || false");
    yes("!false");
    yes("true || 1/0 == 1");
    yes("1/0 == 1 || true");
    no("false && 1/0 == 1");
    no("1/0 == 1 && false");
    fails("true && 1/0 == 1", "division by zero");
    fails("1/0 == 1 || false", "division by zero");
    yes("'x' || true");
    fails("'x' || false", "no matching overload");
    yes("false || false || false || true");
    no("true && true && 1/0 == 0 && false");
    fails("true && true && 1/0 == 0 && true", "division by zero");
}

#[test]
fn ternary_and_precedence() {
    assert_eq!(ev("true ? 1 : 2"), Value::Int(1));
    assert_eq!(ev("false ? 1 : 2"), Value::Int(2));
    assert_eq!(ev("false ? 1 : true ? 3 : 4"), Value::Int(3));
    assert_eq!(ev("1 < 2 ? 'a' : 'b'"), Value::from("a"));
    assert_eq!(ev("true ? 1 : 1/0"), Value::Int(1));
    fails("1 ? 2 : 3", "no matching overload");
    yes("1 + 2 == 3 && 2 * 3 == 6 || false");
    yes("!(1 > 2) && 3 in [1, 2, 3]");
    yes("true || false && false");
    no("(true || false) && false");
    assert_eq!(ev("2 + 3 * 4 - 6 / 2 % 2"), Value::Int(13));
    yes("1 < 2 == true");
    assert_eq!(ev("-2 * -3"), Value::Int(6));
    yes("!!true");
}

#[test]
fn selection_and_indexing() {
    assert_eq!(ev("{'a': {'b': 5}}.a.b"), Value::Int(5));
    assert_eq!(ev("{'a': 1}['a']"), Value::Int(1));
    assert_eq!(ev("[10, 20, 30][1]"), Value::Int(20));
    assert_eq!(ev("[10, 20, 30][2u]"), Value::Int(30));
    assert_eq!(ev("[10, 20, 30][1.0]"), Value::Int(20));
    assert_eq!(ev("{1: 'one'}[1u]"), Value::from("one"));
    assert_eq!(ev("{1: 'one'}[1.0]"), Value::from("one"));
    fails("{'a': 1}.b", "no such key: b");
    fails("{'a': 1}['b']", "no such key: b");
    fails("[1, 2][2]", "index out of bounds: 2");
    fails("[1, 2][-1]", "index out of bounds: -1");
    fails("'abc'[0]", "no matching overload");
    fails("1.a", "does not support field selection");
    fails("null.a", "no such key");
    fails("{[1]: 2}", "unsupported map key type");
    fails("{'a': 1, 'a': 2}", "repeated key");
}

#[test]
fn has_macro() {
    yes("has({'a': 1}.a)");
    no("has({'a': 1}.b)");
    yes("has({'a': {'b': null}}.a.b)");
    fails("has(1.a)", "invalid type for field selection");
    fails("has({'a': 1}.b.c)", "no such key: b");
}
