#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::compile_err;
use ferrokube_cel::{compile, Env};

#[test]
fn undeclared_reference() {
    let msg = compile_err("objct.spec.replicas > 1", &["object"]);
    assert_eq!(
        msg,
        "ERROR: <input>:1:1: undeclared reference to 'objct' (in container '')\n | objct.spec.replicas > 1\n | ^"
    );
    let msg = compile_err("1 + x", &[]);
    assert_eq!(
        msg,
        "ERROR: <input>:1:5: undeclared reference to 'x' (in container '')\n | 1 + x\n | ....^"
    );
}

#[test]
fn unknown_functions_and_macros() {
    let msg = compile_err("foo(1)", &[]);
    assert!(
        msg.contains("undeclared reference to 'foo' (in container '')"),
        "{msg}"
    );
    let msg = compile_err("'a'.frobnicate()", &[]);
    assert!(
        msg.contains("undeclared reference to 'frobnicate'"),
        "{msg}"
    );
    let msg = compile_err("[1].all(x)", &[]);
    assert!(
        msg.contains("found no matching overload for 'all'")
            || msg.contains("undeclared reference to 'all'"),
        "{msg}"
    );
    let msg = compile_err("sets.nope([1], [2])", &[]);
    assert!(msg.contains("undeclared reference to 'sets'"), "{msg}");
}

#[test]
fn wrong_arity() {
    let msg = compile_err("size(1, 2)", &[]);
    assert!(
        msg.contains("found no matching overload for 'size' applied to '(dyn, dyn)'"),
        "{msg}"
    );
    let msg = compile_err("'a'.startsWith()", &[]);
    assert!(
        msg.contains("found no matching overload for 'startsWith'"),
        "{msg}"
    );
    let msg = compile_err("int()", &[]);
    assert!(
        msg.contains("found no matching overload for 'int'"),
        "{msg}"
    );
}

#[test]
fn multiple_errors_are_joined() {
    let msg = compile_err("a + b", &[]);
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(lines.len(), 6, "{msg}");
    assert!(lines[0].starts_with("ERROR: <input>:1:1:"));
    assert!(lines[3].starts_with("ERROR: <input>:1:5:"));
}

#[test]
fn syntax_errors() {
    let msg = compile_err("1 +", &[]);
    assert!(
        msg.starts_with("ERROR: <input>:1:4: Syntax error: "),
        "{msg}"
    );
    assert!(msg.ends_with("\n | 1 +\n | ...^"), "{msg}");
    let msg = compile_err("a.b(", &["a"]);
    assert!(msg.contains("Syntax error"), "{msg}");
    let msg = compile_err("(1", &[]);
    assert!(msg.contains("Syntax error"), "{msg}");
    let msg = compile_err("1 2", &[]);
    assert!(msg.contains("Syntax error: extraneous input '2'"), "{msg}");
    let msg = compile_err("'unterminated", &[]);
    assert!(msg.contains("Syntax error"), "{msg}");
    let msg = compile_err("1 # 2", &[]);
    assert!(
        msg.contains("Syntax error: token recognition error at: '#'"),
        "{msg}"
    );
    let msg = compile_err("if.x", &[]);
    assert!(msg.contains("reserved identifier"), "{msg}");
    // Reserved words are fine as field names.
    assert!(compile("x.namespace == x.package", &Env::with_variables(["x"])).is_ok());
    let msg = compile_err("9223372036854775808", &[]);
    assert!(msg.contains("invalid int literal"), "{msg}");
    let msg = compile_err("Foo{a: 1}", &[]);
    assert!(msg.contains("message construction"), "{msg}");
    let msg = compile_err("has(a)", &["a"]);
    assert!(msg.contains("invalid argument to has() macro"), "{msg}");
    let msg = compile_err("[1].map(1, 2)", &[]);
    assert!(msg.contains("argument must be a simple name"), "{msg}");
    let msg = compile_err("'\\q'", &[]);
    assert!(msg.contains("invalid escape"), "{msg}");
}

#[test]
fn multiline_positions() {
    let msg = compile_err("true &&\n  bogus", &[]);
    assert_eq!(
        msg,
        "ERROR: <input>:2:3: undeclared reference to 'bogus' (in container '')\n |   bogus\n | ..^"
    );
}

#[test]
fn comprehension_variables_are_scoped() {
    let env = Env::new();
    assert!(compile("[1].all(x, x > 0)", &env).is_ok());
    let msg = compile_err("[1].all(x, x > 0) && x > 0", &[]);
    assert!(msg.contains("undeclared reference to 'x'"), "{msg}");
}

#[test]
fn declared_variables() {
    let mut env = Env::new();
    assert!(compile("self.a", &env).is_err());
    env.declare("self");
    assert!(compile("self.a", &env).is_ok());
    let env = Env::with_variables(["object", "oldObject"]);
    assert!(compile("object == oldObject", &env).is_ok());
    let program = compile("object.x  ", &env).unwrap();
    assert_eq!(program.source(), "object.x  ");
}

#[test]
fn comments_and_whitespace() {
    let env = Env::new();
    assert!(compile("1 + // comment\n 2", &env).is_ok());
}
