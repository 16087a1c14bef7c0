#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use ferrokube_cel::{compile, Activation, Env, Value, COST_LIMIT_MESSAGE};

#[test]
fn nested_comprehension_blowup_hits_cost_limit_quickly() {
    let list = (0..1000)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let src = format!("[{list}].all(x, [{list}].all(y, [{list}].all(z, x + y + z >= 0)))");
    let program = compile(&src, &Env::new()).unwrap();
    let start = Instant::now();
    let err = program.eval(&Activation::new()).unwrap_err();
    assert_eq!(err.message, COST_LIMIT_MESSAGE);
    assert!(start.elapsed() < Duration::from_secs(10));

    let mut act = Activation::new();
    let big: Vec<Value> = (0..1000).map(Value::Int).collect();
    act.bind("l", Value::list(big));
    let program = compile(
        "l.map(x, l.map(y, l.map(z, z)))",
        &Env::with_variables(["l"]),
    )
    .unwrap();
    let err = program.eval(&act).unwrap_err();
    assert_eq!(
        err.message,
        "operation cancelled: actual cost limit exceeded"
    );
}

#[test]
fn cost_limit_is_not_absorbed_by_logical_operators() {
    let program = compile(
        "lists.range(100).all(x, lists.range(100).all(y, true)) || true",
        &Env::new(),
    )
    .unwrap();
    let err = program
        .eval_with_budget(&Activation::new(), 500)
        .unwrap_err();
    assert_eq!(err.message, COST_LIMIT_MESSAGE);
    assert_eq!(
        program
            .eval_with_budget(&Activation::new(), 1_000_000)
            .unwrap(),
        Value::Bool(true)
    );
}

#[test]
fn small_budget() {
    let program = compile("1 + 2 + 3", &Env::new()).unwrap();
    assert!(program.eval_with_budget(&Activation::new(), 2).is_err());
    assert_eq!(
        program.eval_with_budget(&Activation::new(), 100).unwrap(),
        Value::Int(6)
    );
}

#[test]
fn huge_outputs_are_charged() {
    let program = compile(
        "lists.range(20).map(i, 'x'.replace('', 'abcdefghij'.replace('', 'abcdefghijabcdefghij')))",
        &Env::new(),
    )
    .unwrap();
    assert!(program.eval_with_budget(&Activation::new(), 100).is_err());
    let program = compile("lists.range(1000000000000)", &Env::new()).unwrap();
    assert_eq!(
        program.eval(&Activation::new()).unwrap_err().message,
        COST_LIMIT_MESSAGE
    );
}

#[test]
fn deep_nesting_is_a_compile_error() {
    for depth in [300, 10_000] {
        let src = format!("{}1{}", "(".repeat(depth), ")".repeat(depth));
        let err = compile(&src, &Env::new()).unwrap_err();
        assert!(err.message.contains("recursion limit"), "{}", err.message);
        let src = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        assert!(compile(&src, &Env::new()).is_err());
        let src = "-".repeat(depth) + "1";
        assert!(compile(&src, &Env::new()).is_ok() || depth > 200);
        let src = "!".repeat(depth) + "true";
        assert!(compile(&src, &Env::new()).is_err());
        let src = format!("1{}", " + 1".repeat(depth));
        assert!(compile(&src, &Env::new()).is_err());
        let src = format!("x{}", ".a".repeat(depth));
        assert!(compile(&src, &Env::with_variables(["x"])).is_err());
    }
    // Long logical chains are flat and fine.
    let src = vec!["true"; 5000].join(" && ");
    let program = compile(&src, &Env::new()).unwrap();
    assert_eq!(program.eval(&Activation::new()).unwrap(), Value::Bool(true));
}

#[test]
fn moderate_nesting_evaluates() {
    let depth = 100;
    let src = format!("{}1{}", "(".repeat(depth), " + 1)".repeat(depth));
    let program = compile(&src, &Env::new()).unwrap();
    assert_eq!(program.eval(&Activation::new()).unwrap(), Value::Int(101));
    let src = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    assert!(compile(&src, &Env::new())
        .unwrap()
        .eval(&Activation::new())
        .is_ok());
}

#[test]
fn oversized_source_is_rejected() {
    let src = "1".repeat(100_001);
    assert!(compile(&src, &Env::new()).is_err());
}

/// Tiny deterministic PRNG (xorshift) so the fuzz loop needs no extra crates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let i = (self.next() % items.len() as u64) as usize;
        items[i]
    }
}

const FRAGMENTS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ".",
    ",",
    ":",
    "?",
    "!",
    "-",
    "+",
    "*",
    "/",
    "%",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    " in ",
    "1",
    "0",
    "-1",
    "9223372036854775807",
    "1u",
    "2.5",
    "'a'",
    "\"b\"",
    "b'c'",
    "'''x'''",
    "r'\\d'",
    "true",
    "false",
    "null",
    "x",
    "y",
    "obj",
    ".a",
    ".?b",
    "[?0]",
    "has(",
    "size(",
    ".all(",
    ".exists(",
    ".map(",
    ".filter(",
    "int(",
    "string(",
    "quantity(",
    "'1Gi'",
    "url(",
    "ip(",
    "cidr(",
    "'10.0.0.0/8'",
    "duration(",
    "'1h'",
    "timestamp(",
    "'2023-01-01T00:00:00Z'",
    ".split(",
    ".join(",
    ".sort()",
    ".sum()",
    "optional.of(",
    "optional.none()",
    ".orValue(",
    "sets.contains(",
    ".matches(",
    "'a+'",
    ".substring(",
    ".charAt(",
    ".indexOf(",
    "é",
    "\\",
    "'",
    "\"",
    "#",
    " ",
    "\n",
    "dyn(",
    "type(",
    "0x",
    "1e",
    ".5",
    "lists.range(",
    ".flatten(",
    ".replace(",
    ".findAll(",
    "'.*'",
    ".distinct()",
    ".min()",
    ".getHours(",
    ".isSorted()",
    "uint(",
];

#[test]
fn fuzz_random_inputs_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let env = Env::with_variables(["obj"]);
    let mut act = Activation::new();
    act.bind(
        "obj",
        Value::from(&serde_json::json!({"a": [1, 2, {"b": "c"}], "b": null, "n": 5})),
    );
    let mut compiled = 0;
    for _ in 0..20_000 {
        let n = 1 + rng.next() % 12;
        let mut src = String::new();
        for _ in 0..n {
            src.push_str(rng.pick(FRAGMENTS));
        }
        if let Ok(p) = compile(&src, &env) {
            compiled += 1;
            let _ = p.eval_with_budget(&act, 10_000);
        }
    }
    assert!(compiled > 100, "only {compiled} inputs compiled");
    // Raw byte garbage.
    for _ in 0..5_000 {
        let n = rng.next() % 40;
        let bytes: Vec<u8> = (0..n).map(|_| (rng.next() % 128) as u8).collect();
        let src = String::from_utf8_lossy(&bytes).into_owned();
        if let Ok(p) = compile(&src, &env) {
            let _ = p.eval_with_budget(&act, 10_000);
        }
    }
}

#[test]
fn fuzz_valid_templates_with_random_values() {
    let mut rng = Rng(42);
    let values = [
        "0",
        "-1",
        "1u",
        "2.5",
        "'abc'",
        "''",
        "[]",
        "[1, 'a']",
        "{}",
        "{'k': 1}",
        "null",
        "true",
        "b'x'",
        "duration('1s')",
        "timestamp(0)",
        "optional.none()",
        "quantity('1')",
        "9223372036854775807",
        "-9223372036854775808",
        "double('NaN')",
    ];
    let templates = [
        "{A} + {B}",
        "{A} - {B}",
        "{A} * {B}",
        "{A} / {B}",
        "{A} % {B}",
        "{A} < {B}",
        "{A} == {B}",
        "{A} in {B}",
        "{A}[{B}]",
        "size({A})",
        "{A}.size()",
        "int({A})",
        "uint({A})",
        "double({A})",
        "string({A})",
        "-{A}",
        "!{A}",
        "{A} ? {B} : {A}",
        "{A} && {B}",
        "{A} || {B}",
        "[{A}, {B}].sort()",
        "[{A}, {B}].sum()",
        "[{A}, {B}].max()",
        "{A}.contains({B})",
        "{A}.split({B})",
        "{A}.substring({B})",
        "{A}.charAt({B})",
        "{A}.indexOf({B})",
        "{A}.orValue({B})",
        "{A}.value()",
        "{A}.isInteger()",
        "{A}.join({B})",
        "{A}.all(x, x == {B})",
        "{A}.map(x, x + {B})",
        "{A}.?k",
        "{A}[?{B}]",
        "has({A}.k)",
        "{A}.getHours({B})",
        "{A}.add({B})",
        "sets.contains({A}, {B})",
        "bytes({A})",
        "timestamp({A})",
        "duration({A})",
        "{A}.reverse()",
    ];
    let env = Env::new();
    for _ in 0..20_000 {
        let t = rng.pick(&templates);
        let src = t
            .replace("{A}", rng.pick(&values))
            .replace("{B}", rng.pick(&values));
        let program = compile(&src, &env).unwrap_or_else(|e| panic!("{src}: {e}"));
        let _ = program.eval(&Activation::new());
    }
}
