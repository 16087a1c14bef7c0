#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ev, fails, json, no, yes};
use ferrokube_cel::Value;
use serde_json::json;

#[test]
fn strings_extension() {
    assert_eq!(ev("'héllo'.charAt(1)"), Value::from("é"));
    assert_eq!(ev("'abc'.charAt(3)"), Value::from(""));
    fails("'abc'.charAt(4)", "index out of range: 4");
    fails("'abc'.charAt(-1)", "index out of range");
    assert_eq!(ev("'hello mellow'.indexOf('ello')"), Value::Int(1));
    assert_eq!(ev("'hello mellow'.indexOf('ello', 2)"), Value::Int(7));
    assert_eq!(ev("'hello'.indexOf('')"), Value::Int(0));
    assert_eq!(ev("'hello'.indexOf('z')"), Value::Int(-1));
    assert_eq!(ev("'héllo'.indexOf('l')"), Value::Int(2));
    fails("'abc'.indexOf('a', 9)", "index out of range");
    assert_eq!(ev("'hello mellow'.lastIndexOf('ello')"), Value::Int(7));
    assert_eq!(ev("'hello mellow'.lastIndexOf('ello', 6)"), Value::Int(1));
    assert_eq!(ev("'hello'.lastIndexOf('')"), Value::Int(5));
    assert_eq!(ev("'HeLLo Ü'.lowerAscii()"), Value::from("hello Ü"));
    assert_eq!(ev("'hello ü'.upperAscii()"), Value::from("HELLO ü"));
    assert_eq!(ev("'a.b.c'.replace('.', '-')"), Value::from("a-b-c"));
    assert_eq!(ev("'a.b.c'.replace('.', '-', 1)"), Value::from("a-b.c"));
    assert_eq!(ev("'a.b.c'.replace('.', '-', -1)"), Value::from("a-b-c"));
    assert_eq!(json("'a,b,c'.split(',')"), json!(["a", "b", "c"]));
    assert_eq!(json("'a,b,c'.split(',', 2)"), json!(["a", "b,c"]));
    assert_eq!(json("'a,b,c'.split(',', 0)"), json!([]));
    assert_eq!(json("'abc'.split('')"), json!(["a", "b", "c"]));
    assert_eq!(json("'abc'.split('', 2)"), json!(["a", "bc"]));
    assert_eq!(ev("'hello'.substring(1)"), Value::from("ello"));
    assert_eq!(ev("'hello'.substring(1, 3)"), Value::from("el"));
    assert_eq!(ev("'héllo'.substring(1, 2)"), Value::from("é"));
    fails("'hello'.substring(3, 1)", "invalid substring range");
    fails("'hello'.substring(1, 10)", "index out of range");
    assert_eq!(ev("'  \\t hi \\n '.trim()"), Value::from("hi"));
    assert_eq!(ev("['a', 'b', 'c'].join()"), Value::from("abc"));
    assert_eq!(ev("['a', 'b', 'c'].join('-')"), Value::from("a-b-c"));
    assert_eq!(ev("[].join(',')"), Value::from(""));
    fails("['a', 1].join(',')", "non-string");
    assert_eq!(ev("strings.quote('a\"b\\n')"), Value::from("\"a\\\"b\\n\""));
    assert_eq!(ev("'héllo'.reverse()"), Value::from("olléh"));
}

#[test]
fn lists_extension() {
    yes("[1, 2, 2, 3].isSorted()");
    no("[1, 3, 2].isSorted()");
    yes("[].isSorted()");
    yes("['a', 'b'].isSorted()");
    assert_eq!(ev("[1, 2, 3].sum()"), Value::Int(6));
    assert_eq!(ev("[1.5, 2.5].sum()"), Value::Double(4.0));
    assert_eq!(ev("[1u, 2u].sum()"), Value::Uint(3));
    assert_eq!(ev("[].sum()"), Value::Int(0));
    fails("[9223372036854775807, 1].sum()", "overflow");
    assert_eq!(ev("[3, 1, 2].min()"), Value::Int(1));
    assert_eq!(ev("[3, 1, 2].max()"), Value::Int(3));
    assert_eq!(ev("['b', 'a'].min()"), Value::from("a"));
    fails("[].min()", "empty list");
    fails("[1, 'a'].max()", "no matching overload");
    assert_eq!(ev("[1, 2, 3, 2].indexOf(2)"), Value::Int(1));
    assert_eq!(ev("[1, 2, 3, 2].lastIndexOf(2)"), Value::Int(3));
    assert_eq!(ev("[1, 2].indexOf(5)"), Value::Int(-1));
    assert_eq!(json("[1, 2, 3, 4].slice(1, 3)"), json!([2, 3]));
    fails("[1, 2].slice(1, 3)", "cannot slice");
    fails("[1, 2].slice(2, 1)", "cannot slice");
    assert_eq!(json("[1, [2, [3]], []].flatten()"), json!([1, 2, [3]]));
    assert_eq!(json("[1, [2, [3]], []].flatten(2)"), json!([1, 2, 3]));
    assert_eq!(json("[1, 2, 1, 2.0, 3].distinct()"), json!([1, 2, 3]));
    assert_eq!(json("[1, 2, 3].reverse()"), json!([3, 2, 1]));
    assert_eq!(json("[3, 1, 2].sort()"), json!([1, 2, 3]));
    assert_eq!(json("['b', 'c', 'a'].sort()"), json!(["a", "b", "c"]));
    fails("[1, 'a'].sort()", "no matching overload");
    assert_eq!(json("lists.range(3)"), json!([0, 1, 2]));
}

#[test]
fn regex_extension() {
    assert_eq!(ev("'abc 123 def 456'.find('[0-9]+')"), Value::from("123"));
    assert_eq!(ev("'abc'.find('[0-9]+')"), Value::from(""));
    assert_eq!(
        json("'abc 123 def 456'.findAll('[0-9]+')"),
        json!(["123", "456"])
    );
    assert_eq!(
        json("'a1 b2 c3'.findAll('[a-z][0-9]', 2)"),
        json!(["a1", "b2"])
    );
    fails("'a'.find('[')", "invalid regular expression");
}

#[test]
fn sets_extension() {
    yes("sets.contains([1, 2, 3], [2, 3])");
    no("sets.contains([1, 2], [3])");
    yes("sets.contains([1], [])");
    yes("sets.contains([1, 2], [1.0])");
    yes("sets.equivalent([1, 2, 2], [2, 1])");
    no("sets.equivalent([1, 2], [1])");
    yes("sets.intersects([1, 2], [2, 3])");
    no("sets.intersects([1, 2], [3])");
    no("sets.intersects([], [])");
}

#[test]
fn optionals() {
    yes("optional.of(1).hasValue()");
    no("optional.none().hasValue()");
    assert_eq!(ev("optional.of(1).value()"), Value::Int(1));
    fails("optional.none().value()", "optional.none() dereference");
    assert_eq!(ev("optional.none().orValue(5)"), Value::Int(5));
    assert_eq!(ev("optional.of(3).orValue(5)"), Value::Int(3));
    assert_eq!(
        ev("optional.none().or(optional.of(2)).value()"),
        Value::Int(2)
    );
    assert_eq!(
        ev("optional.of(1).or(optional.of(2)).value()"),
        Value::Int(1)
    );
    no("optional.ofNonZeroValue('').hasValue()");
    no("optional.ofNonZeroValue(0).hasValue()");
    no("optional.ofNonZeroValue([]).hasValue()");
    yes("optional.ofNonZeroValue('x').hasValue()");
    assert_eq!(ev("{'a': 1}.?a.value()"), Value::Int(1));
    no("{'a': 1}.?b.hasValue()");
    assert_eq!(ev("{'a': {'b': 2}}.?a.?b.orValue(0)"), Value::Int(2));
    assert_eq!(ev("{'a': {'b': 2}}.?x.?b.orValue(0)"), Value::Int(0));
    assert_eq!(ev("{'a': {'b': 2}}.?a.b.orValue(0)"), Value::Int(2));
    assert_eq!(ev("{'a': {'b': 2}}.?a.c.orValue(7)"), Value::Int(7));
    assert_eq!(ev("{'a': 1}[?'a'].value()"), Value::Int(1));
    no("{'a': 1}[?'z'].hasValue()");
    assert_eq!(ev("[1, 2][?1].value()"), Value::Int(2));
    no("[1, 2][?5].hasValue()");
    assert_eq!(
        json("[1, ?optional.of(2), ?optional.none()]"),
        json!([1, 2])
    );
    assert_eq!(
        json("{'a': 1, ?'b': optional.none(), ?'c': optional.of(3)}"),
        json!({"a": 1, "c": 3})
    );
    yes("optional.of(1) == optional.of(1)");
    yes("optional.none() == optional.none()");
    yes("type(optional.none()) == optional_type");
}

#[test]
fn string_format() {
    assert_eq!(
        ev("'%s is %d years'.format(['Bob', 42])"),
        Value::from("Bob is 42 years")
    );
    assert_eq!(
        ev("'%.2f|%f'.format([3.14159, 2])"),
        Value::from("3.14|2.000000")
    );
    assert_eq!(ev("'%e'.format([1234.5])"), Value::from("1.234500e+03"));
    assert_eq!(
        ev("'%x %X %o %b'.format([255, 255, 8, 5])"),
        Value::from("ff FF 10 101")
    );
    assert_eq!(ev("'%x'.format(['hi'])"), Value::from("6869"));
    assert_eq!(ev("'100%%'.format([])"), Value::from("100%"));
    assert_eq!(
        ev("'%s'.format([['a', 1, null, {'k': true}]])"),
        Value::from("[\"a\", 1, null, {\"k\": true}]")
    );
    assert_eq!(ev("'%s'.format([duration('1s')])"), Value::from("1s"));
    fails("'%d'.format(['x'])", "decimal clause");
    fails("'%s %s'.format([1])", "out of range");
    fails("'%q'.format([1])", "unrecognized formatting clause");
}

/// Allows `get` of deployments in `ns` and the `/healthz` path, for the user or the
/// `ns/robot` service account; records what it was asked.
#[derive(Debug, Default)]
struct Fake(std::sync::Mutex<Vec<ferrokube_cel::AuthzCheck>>);

impl ferrokube_cel::Authorize for Fake {
    fn authorize(&self, c: &ferrokube_cel::AuthzCheck) -> ferrokube_cel::AuthzDecision {
        self.0.lock().unwrap().push(c.clone());
        let allowed = match &c.path {
            Some(p) => p == "/healthz" && c.verb == "get",
            None => {
                c.group == "apps"
                    && c.resource == "deployments"
                    && c.namespace == "ns"
                    && c.verb == "get"
                    && c.service_account
                        .as_ref()
                        .is_none_or(|(n, s)| n == "ns" && s == "robot")
            }
        };
        ferrokube_cel::AuthzDecision {
            allowed,
            reason: if allowed { "ok".into() } else { "no".into() },
            error: None,
        }
    }
}

#[test]
fn authorizer_library_asks_the_authorizer() {
    use ferrokube_cel::{authorizer, compile, Activation, AuthzCheck, Env, Value};
    let fake = std::sync::Arc::new(Fake::default());
    let request = AuthzCheck {
        group: "apps".into(),
        resource: "deployments".into(),
        namespace: "ns".into(),
        name: "web".into(),
        ..Default::default()
    };
    let mut a = Activation::new();
    a.bind("authorizer", authorizer(fake.clone(), request));
    let env = Env::with_variables(["authorizer"]);
    let eval = |src: &str| compile(src, &env).unwrap().eval(&a).unwrap();
    assert_eq!(
        eval("authorizer.group('apps').resource('deployments').namespace('ns').name('x').check('get').allowed()"),
        Value::Bool(true)
    );
    assert_eq!(
        eval("authorizer.group('apps').resource('deployments').namespace('ns').check('delete').reason()"),
        Value::from("no")
    );
    assert_eq!(
        eval("authorizer.path('/healthz').check('get').allowed()"),
        Value::Bool(true)
    );
    assert_eq!(
        eval("authorizer.requestResource.check('get').allowed()"),
        Value::Bool(true)
    );
    assert_eq!(
        eval("authorizer.serviceAccount('other', 'x').group('apps').resource('deployments').namespace('ns').check('get').allowed()"),
        Value::Bool(false)
    );
    assert_eq!(
        eval("authorizer.path('/x').check('get').errored()"),
        Value::Bool(false)
    );
    let asked = fake.0.lock().unwrap().clone();
    assert_eq!(asked.len(), 6);
    assert_eq!(asked[0].name, "x");
    assert_eq!(asked[3].name, "web");
    assert_eq!(asked[4].service_account, Some(("other".into(), "x".into())));
    // Checks are costly: a loop of them runs out of budget.
    let many = compile(
        "lists.range(2000).all(i, authorizer.path('/healthz').check('get').allowed())",
        &env,
    )
    .unwrap();
    let e = many.eval(&a).unwrap_err();
    assert_eq!(e.message, ferrokube_cel::COST_LIMIT_MESSAGE);
    assert!(fake.0.lock().unwrap().len() < 1_100);
    // Wrong shapes are overload errors, not panics.
    assert!(compile("authorizer.check('get')", &env)
        .unwrap()
        .eval(&a)
        .is_err());
    assert!(compile("authorizer.group(1)", &env)
        .unwrap()
        .eval(&a)
        .is_err());
}
