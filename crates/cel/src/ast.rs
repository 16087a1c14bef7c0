//! Abstract syntax tree of a parsed CEL expression.

use crate::value::Value;

/// Binary operators other than the logical ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

impl BinOp {
    /// cel-go's overload name of the operator, used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            BinOp::Add => "_+_",
            BinOp::Sub => "_-_",
            BinOp::Mul => "_*_",
            BinOp::Div => "_/_",
            BinOp::Rem => "_%_",
            BinOp::Eq => "_==_",
            BinOp::Ne => "_!=_",
            BinOp::Lt => "_<_",
            BinOp::Le => "_<=_",
            BinOp::Gt => "_>_",
            BinOp::Ge => "_>=_",
            BinOp::In => "@in",
        }
    }
}

/// The comprehension macros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MacroKind {
    All,
    Exists,
    ExistsOne,
    /// `map(x, t)` or `map(x, p, t)`.
    Map,
    Filter,
}

#[derive(Debug, Clone)]
pub(crate) struct Comprehension {
    pub kind: MacroKind,
    pub range: Expr,
    pub var: String,
    /// Predicate (all/exists/exists_one/filter and the 3-arg map filter).
    pub pred: Option<Expr>,
    /// Transform for map.
    pub transform: Option<Expr>,
}

#[derive(Debug, Clone)]
pub(crate) enum ExprKind {
    Lit(Value),
    Ident(String),
    /// `operand.field`; `test` for `has()`, `optional` for `.?field`.
    Select {
        operand: Box<Expr>,
        field: String,
        test: bool,
        optional: bool,
    },
    Index {
        operand: Box<Expr>,
        index: Box<Expr>,
        optional: bool,
    },
    Call {
        target: Option<Box<Expr>>,
        name: String,
        args: Vec<Expr>,
    },
    /// Elements flagged `true` are optional entries (`[?x]`).
    List(Vec<(Expr, bool)>),
    /// Entries flagged `true` are optional entries (`{?k: v}`).
    Map(Vec<(Expr, Expr, bool)>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// N-ary `&&`, evaluated with commutative error semantics.
    And(Vec<Expr>),
    /// N-ary `||`, evaluated with commutative error semantics.
    Or(Vec<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    Comprehension(Box<Comprehension>),
}

#[derive(Debug, Clone)]
pub(crate) struct Expr {
    /// Byte offset into the source, used for error reporting.
    pub pos: usize,
    pub kind: ExprKind,
}

impl Expr {
    pub fn new(pos: usize, kind: ExprKind) -> Expr {
        Expr { pos, kind }
    }
}
