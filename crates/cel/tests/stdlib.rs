#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ev, fails, json, no, yes};
use ferrokube_cel::Value;
use serde_json::json;

#[test]
fn size_function() {
    assert_eq!(ev("size('héllo')"), Value::Int(5));
    assert_eq!(ev("'héllo'.size()"), Value::Int(5));
    assert_eq!(ev("size(b'ab')"), Value::Int(2));
    assert_eq!(ev("size([1, 2, 3])"), Value::Int(3));
    assert_eq!(ev("[1].size()"), Value::Int(1));
    assert_eq!(ev("size({'a': 1})"), Value::Int(1));
    fails("size(1)", "no such overload");
}

#[test]
fn type_and_dyn() {
    assert_eq!(ev("type(1)"), Value::Type("int"));
    yes("type(1u) == uint");
    yes("type(1.0) == double");
    yes("type(true) == bool");
    yes("type(b'') == bytes");
    yes("type([]) == list");
    yes("type({}) == map");
    yes("type(null) == null_type");
    yes("type(int) == type");
    yes("type(duration('1s')) == google.protobuf.Duration");
    yes("type(timestamp('2023-01-01T00:00:00Z')) == google.protobuf.Timestamp");
    yes("dyn(1) == 1");
    yes("dyn([1, 2]).size() == 2");
}

#[test]
fn conversions() {
    assert_eq!(ev("int('42')"), Value::Int(42));
    assert_eq!(ev("int('-42')"), Value::Int(-42));
    assert_eq!(ev("int(3.9)"), Value::Int(3));
    assert_eq!(ev("int(-3.9)"), Value::Int(-3));
    assert_eq!(ev("int(5u)"), Value::Int(5));
    fails("int('x')", "cannot convert");
    fails("int(18446744073709551615u)", "range");
    fails("int(1e30)", "range");
    fails("int(double('NaN'))", "range");
    assert_eq!(ev("uint(42)"), Value::Uint(42));
    assert_eq!(ev("uint('42')"), Value::Uint(42));
    assert_eq!(ev("uint(4.5)"), Value::Uint(4));
    fails("uint(-1)", "range");
    fails("uint(-1.0)", "range");
    assert_eq!(ev("double(1)"), Value::Double(1.0));
    assert_eq!(ev("double('2.5')"), Value::Double(2.5));
    assert_eq!(ev("double(3u)"), Value::Double(3.0));
    fails("double('abc')", "cannot convert");
    assert_eq!(ev("string(1)"), Value::from("1"));
    assert_eq!(ev("string(1u)"), Value::from("1"));
    assert_eq!(ev("string(1.5)"), Value::from("1.5"));
    assert_eq!(ev("string(1e21)"), Value::from("1e+21"));
    assert_eq!(ev("string(1000000.0)"), Value::from("1e+06"));
    assert_eq!(ev("string(0.00001)"), Value::from("1e-05"));
    assert_eq!(ev("string(true)"), Value::from("true"));
    assert_eq!(ev("string(b'abc')"), Value::from("abc"));
    fails("string(b'\\xff')", "invalid UTF-8");
    assert_eq!(ev("string(duration('1h'))"), Value::from("3600s"));
    assert_eq!(ev("string(duration('1.5s'))"), Value::from("1.5s"));
    assert_eq!(
        ev("string(timestamp('2023-01-02T03:04:05.5Z'))"),
        Value::from("2023-01-02T03:04:05.5Z")
    );
    assert_eq!(ev("bytes('abc')"), Value::Bytes(b"abc".to_vec().into()));
    yes("bool('true')");
    no("bool('False')");
    fails("bool('yes')", "type conversion error");
}

#[test]
fn string_functions() {
    yes("'hello'.contains('ell')");
    no("'hello'.contains('xyz')");
    yes("'hello'.startsWith('he')");
    yes("'hello'.endsWith('lo')");
    yes("'hello'.matches('^h.*o$')");
    yes("matches('abc123', '[0-9]+')");
    no("'hello'.matches('^x')");
    fails("'a'.matches('(')", "invalid regular expression");
    fails("'a'.contains(1)", "no such overload");
}

#[test]
fn durations() {
    assert_eq!(ev("duration('1h30m').getMinutes()"), Value::Int(90));
    assert_eq!(ev("duration('1h30m').getHours()"), Value::Int(1));
    assert_eq!(ev("duration('90s').getSeconds()"), Value::Int(90));
    assert_eq!(ev("duration('1.5s').getMilliseconds()"), Value::Int(1500));
    assert_eq!(ev("duration('-1.5h').getMinutes()"), Value::Int(-90));
    assert_eq!(ev("duration('1us').getMilliseconds()"), Value::Int(0));
    assert_eq!(ev("duration('0')"), ev("duration('0s')"));
    yes("duration('1h') > duration('59m')");
    yes("duration('1h') == duration('60m')");
    yes("duration('1h') + duration('1m') == duration('61m')");
    yes("duration('1h') - duration('1m') == duration('59m')");
    yes("-duration('1h') == duration('-1h')");
    fails("duration('1x')", "invalid duration");
    fails("duration('')", "invalid duration");
    fails("duration('99999999999h')", "invalid duration");
    fails("duration('2562047h') + duration('2562047h')", "overflow");
    assert_eq!(ev("int(duration('1s'))"), Value::Int(1_000_000_000));
}

#[test]
fn timestamps() {
    let ts = "timestamp('2023-03-15T10:20:30.123Z')";
    assert_eq!(ev(&format!("{ts}.getFullYear()")), Value::Int(2023));
    assert_eq!(ev(&format!("{ts}.getMonth()")), Value::Int(2));
    assert_eq!(ev(&format!("{ts}.getDate()")), Value::Int(15));
    assert_eq!(ev(&format!("{ts}.getDayOfMonth()")), Value::Int(14));
    assert_eq!(ev(&format!("{ts}.getDayOfWeek()")), Value::Int(3));
    assert_eq!(ev(&format!("{ts}.getDayOfYear()")), Value::Int(73));
    assert_eq!(ev(&format!("{ts}.getHours()")), Value::Int(10));
    assert_eq!(ev(&format!("{ts}.getMinutes()")), Value::Int(20));
    assert_eq!(ev(&format!("{ts}.getSeconds()")), Value::Int(30));
    assert_eq!(ev(&format!("{ts}.getMilliseconds()")), Value::Int(123));
    assert_eq!(ev(&format!("{ts}.getHours('UTC')")), Value::Int(10));
    assert_eq!(ev(&format!("{ts}.getHours('+05:30')")), Value::Int(15));
    assert_eq!(ev(&format!("{ts}.getHours('-11:00')")), Value::Int(23));
    assert_eq!(ev(&format!("{ts}.getDate('-11:00')")), Value::Int(14));
    fails(
        &format!("{ts}.getHours('Mars/Base')"),
        "unsupported timezone",
    );
    assert_eq!(
        ev("timestamp('2023-01-01T00:00:00+01:00')"),
        ev("timestamp('2022-12-31T23:00:00Z')")
    );
    assert_eq!(ev("int(timestamp('1970-01-01T00:01:00Z'))"), Value::Int(60));
    assert_eq!(ev("timestamp(60)"), ev("timestamp('1970-01-01T00:01:00Z')"));
    yes("timestamp('2023-01-01T00:00:00Z') < timestamp('2023-01-02T00:00:00Z')");
    yes("timestamp('2023-01-02T00:00:00Z') - timestamp('2023-01-01T00:00:00Z') == duration('24h')");
    yes("timestamp('2023-01-01T00:00:00Z') + duration('1h') == timestamp('2023-01-01T01:00:00Z')");
    yes("duration('1h') + timestamp('2023-01-01T00:00:00Z') == timestamp('2023-01-01T01:00:00Z')");
    yes("timestamp('2023-01-01T01:00:00Z') - duration('1h') == timestamp('2023-01-01T00:00:00Z')");
    yes("timestamp('2024-02-29T00:00:00Z').getDayOfYear() == 59");
    assert_eq!(
        json("timestamp('1969-12-31T23:59:59Z')"),
        json!("1969-12-31T23:59:59Z")
    );
    fails(
        "timestamp('2023-02-30T00:00:00Z')",
        "timestamp conversion error",
    );
    fails("timestamp('not a time')", "timestamp conversion error");
    fails(
        "timestamp('9999-12-31T23:59:59Z') + duration('1s')",
        "out of range",
    );
}
