//! Shared helpers for the integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use ferrokube_cel::{compile, Activation, Env, Value};

/// Evaluates `src` with the given JSON-valued variables.
pub fn eval_with(src: &str, vars: &[(&str, serde_json::Value)]) -> Result<Value, String> {
    let env = Env::with_variables(vars.iter().map(|(n, _)| *n));
    let program = compile(src, &env).map_err(|e| format!("compile: {e}"))?;
    let mut act = Activation::new();
    for (name, v) in vars {
        act.bind(name, Value::from(v));
    }
    program.eval(&act).map_err(|e| e.message)
}

/// Evaluates `src` without variables, panicking on error.
pub fn ev(src: &str) -> Value {
    match eval_with(src, &[]) {
        Ok(v) => v,
        Err(e) => panic!("{src}: {e}"),
    }
}

/// Evaluates `src`, expecting a boolean `true`.
pub fn yes(src: &str) {
    assert_eq!(ev(src), Value::Bool(true), "{src}");
}

/// Evaluates `src`, expecting a boolean `false`.
pub fn no(src: &str) {
    assert_eq!(ev(src), Value::Bool(false), "{src}");
}

/// Evaluates `src`, expecting an evaluation error containing `needle`.
pub fn fails(src: &str, needle: &str) {
    match eval_with(src, &[]) {
        Ok(v) => panic!("{src}: expected error containing {needle:?}, got {v:?}"),
        Err(e) => assert!(
            e.contains(needle),
            "{src}: error {e:?} does not contain {needle:?}"
        ),
    }
}

/// Returns the JSON rendering of the result, for compact assertions.
pub fn json(src: &str) -> serde_json::Value {
    ev(src).to_json().unwrap()
}

/// Compiles `src` with the given variables, returning the compile error message.
pub fn compile_err(src: &str, vars: &[&str]) -> String {
    match compile(src, &Env::with_variables(vars.iter().copied())) {
        Ok(_) => panic!("{src}: expected a compile error"),
        Err(e) => e.message,
    }
}
