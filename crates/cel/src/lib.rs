//! A self-contained implementation of the Common Expression Language (CEL) as Kubernetes
//! uses it: ValidatingAdmissionPolicy validations, webhook `matchConditions` and CRD
//! `x-kubernetes-validations`.
//!
//! ```
//! use ferrokube_cel::{compile, Activation, Env, Value};
//!
//! let env = Env::with_variables(["object"]);
//! let program = compile("object.spec.replicas <= 5", &env).unwrap();
//! let mut activation = Activation::new();
//! activation.bind("object", Value::from(&serde_json::json!({"spec": {"replicas": 3}})));
//! assert_eq!(program.eval(&activation).unwrap(), Value::Bool(true));
//! ```

mod activation;
mod ast;
mod check;
mod error;
mod eval;
mod functions;
mod lexer;
mod ops;
mod parser;
mod stack;
mod value;

use std::collections::HashSet;

pub use activation::Activation;
pub use error::{CompileError, EvalError};
pub use eval::COST_LIMIT_MESSAGE;
pub use functions::authz::{authorizer, Authorize, AuthzCheck, AuthzDecision};
pub use functions::ip::Cidr;
pub use functions::quantity::Quantity;
pub use functions::time::{Duration, Timestamp};
pub use functions::url::Url;
pub use value::{Key, MapValue, Value};

/// Expressions nested deeper than this are parsed / evaluated on a big-stack thread.
const INLINE_DEPTH: usize = 24;

/// The cost budget used by [`Program::eval`] (Kubernetes' per-expression runtime limit).
pub const DEFAULT_COST_BUDGET: u64 = 1_000_000;

/// The compilation environment: the declared top-level variable names.
#[derive(Debug, Clone, Default)]
pub struct Env {
    variables: HashSet<String>,
}

impl Env {
    /// An environment with no variables declared.
    pub fn new() -> Env {
        Env::default()
    }

    /// An environment declaring the given variable names.
    pub fn with_variables<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Env {
        Env {
            variables: names.into_iter().map(Into::into).collect(),
        }
    }

    /// Declares a top-level variable.
    pub fn declare(&mut self, name: &str) {
        self.variables.insert(name.to_string());
    }
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub struct Program {
    source: String,
    expr: ast::Expr,
    depth: usize,
}

/// Whether `name` is a CEL identifier (`[_a-zA-Z][_a-zA-Z0-9]*`, not a reserved word or
/// literal): what an admission policy's variable may be called.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        && !lexer::is_reserved(name)
        && !matches!(name, "true" | "false" | "null" | "in")
}

/// Parses and checks `source` against `env`.
pub fn compile(source: &str, env: &Env) -> Result<Program, CompileError> {
    if stack::rough_depth(source) <= INLINE_DEPTH {
        return compile_inline(source, env);
    }
    stack::with_big_stack(
        || compile_inline(source, env),
        || {
            Err(CompileError {
                message: "internal error: could not start the compiler thread".to_string(),
            })
        },
    )
}

fn compile_inline(source: &str, env: &Env) -> Result<Program, CompileError> {
    let parsed = parser::parse(source).map_err(|issue| error::render(source, &[issue]))?;
    let (expr, depth) =
        check::check(parsed, &env.variables).map_err(|issues| error::render(source, &issues))?;
    Ok(Program {
        source: source.to_string(),
        expr,
        depth,
    })
}

impl Program {
    /// The source text of the expression.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the program with the default cost budget ([`DEFAULT_COST_BUDGET`]).
    pub fn eval(&self, activation: &Activation) -> Result<Value, EvalError> {
        self.eval_with_budget(activation, DEFAULT_COST_BUDGET)
    }

    /// Evaluates the program; fails with [`COST_LIMIT_MESSAGE`] once `budget` is spent.
    pub fn eval_with_budget(
        &self,
        activation: &Activation,
        budget: u64,
    ) -> Result<Value, EvalError> {
        if self.depth <= INLINE_DEPTH {
            return eval::Evaluator::new(activation, budget).eval(&self.expr);
        }
        stack::with_big_stack(
            || eval::Evaluator::new(activation, budget).eval(&self.expr),
            || {
                Err(EvalError::new(
                    "internal error: could not start the evaluator thread",
                ))
            },
        )
    }
}
