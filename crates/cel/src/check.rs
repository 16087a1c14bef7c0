//! Static checks: undeclared references, unknown functions, wrong arity; resolves
//! namespaced functions (`optional.of`) and type identifiers (`int`, `string`, ...).

use std::collections::HashSet;

use crate::ast::{Expr, ExprKind};
use crate::error::Issue;
use crate::functions;
use crate::value::Value;

/// Identifiers that denote types.
fn type_ident(name: &str) -> Option<&'static str> {
    Some(match name {
        "int" => "int",
        "uint" => "uint",
        "double" => "double",
        "bool" => "bool",
        "string" => "string",
        "bytes" => "bytes",
        "list" => "list",
        "map" => "map",
        "null_type" => "null_type",
        "type" => "type",
        "dyn" => "dyn",
        "optional_type" => "optional_type",
        "google.protobuf.Duration" => "google.protobuf.Duration",
        "google.protobuf.Timestamp" => "google.protobuf.Timestamp",
        _ => return None,
    })
}

pub(crate) struct Checker<'a> {
    declared: &'a HashSet<String>,
    locals: Vec<String>,
    issues: Vec<Issue>,
    depth: usize,
    max_depth: usize,
}

/// Checks and rewrites `expr`, returning the issues found, or the rewritten expression
/// and its nesting depth.
pub(crate) fn check(expr: Expr, declared: &HashSet<String>) -> Result<(Expr, usize), Vec<Issue>> {
    let mut c = Checker {
        declared,
        locals: Vec::new(),
        issues: Vec::new(),
        depth: 0,
        max_depth: 0,
    };
    let out = c.expr(expr);
    if c.issues.is_empty() {
        Ok((out, c.max_depth))
    } else {
        Err(c.issues)
    }
}

fn undeclared(pos: usize, name: &str) -> Issue {
    Issue::new(
        pos,
        format!("undeclared reference to '{name}' (in container '')"),
    )
}

fn qualified_name(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Ident(n) => Some(n.clone()),
        ExprKind::Select {
            operand,
            field,
            test: false,
            optional: false,
        } => qualified_name(operand).map(|q| format!("{q}.{field}")),
        _ => None,
    }
}

impl Checker<'_> {
    fn is_variable(&self, name: &str) -> bool {
        self.locals.iter().any(|l| l == name) || self.declared.contains(name)
    }

    #[allow(clippy::boxed_local)]
    fn boxed(&mut self, e: Box<Expr>) -> Box<Expr> {
        Box::new(self.expr(*e))
    }

    fn expr(&mut self, e: Expr) -> Expr {
        self.depth += 1;
        self.max_depth = self.max_depth.max(self.depth);
        let out = self.expr_inner(e);
        self.depth -= 1;
        out
    }

    fn expr_inner(&mut self, e: Expr) -> Expr {
        let pos = e.pos;
        let kind = match e.kind {
            ExprKind::Lit(v) => ExprKind::Lit(v),
            ExprKind::Ident(name) => {
                if self.is_variable(&name) {
                    ExprKind::Ident(name)
                } else if let Some(t) = type_ident(&name) {
                    ExprKind::Lit(Value::Type(t))
                } else {
                    self.issues.push(undeclared(pos, &name));
                    ExprKind::Ident(name)
                }
            }
            ExprKind::Select {
                operand,
                field,
                test,
                optional,
            } => {
                let whole = Expr::new(
                    pos,
                    ExprKind::Select {
                        operand,
                        field,
                        test,
                        optional,
                    },
                );
                if let Some(q) = qualified_name(&whole) {
                    let root = q.split('.').next().unwrap_or("");
                    if !self.is_variable(root) {
                        if let Some(t) = type_ident(&q) {
                            return Expr::new(pos, ExprKind::Lit(Value::Type(t)));
                        }
                    }
                }
                let ExprKind::Select {
                    operand,
                    field,
                    test,
                    optional,
                } = whole.kind
                else {
                    return whole;
                };
                ExprKind::Select {
                    operand: self.boxed(operand),
                    field,
                    test,
                    optional,
                }
            }
            ExprKind::Index {
                operand,
                index,
                optional,
            } => ExprKind::Index {
                operand: self.boxed(operand),
                index: self.boxed(index),
                optional,
            },
            ExprKind::Call { target, name, args } => self.call(pos, target, name, args),
            ExprKind::List(elems) => {
                ExprKind::List(elems.into_iter().map(|(e, o)| (self.expr(e), o)).collect())
            }
            ExprKind::Map(entries) => ExprKind::Map(
                entries
                    .into_iter()
                    .map(|(k, v, o)| (self.expr(k), self.expr(v), o))
                    .collect(),
            ),
            ExprKind::Not(inner) => ExprKind::Not(self.boxed(inner)),
            ExprKind::Neg(inner) => ExprKind::Neg(self.boxed(inner)),
            ExprKind::Binary(op, l, r) => ExprKind::Binary(op, self.boxed(l), self.boxed(r)),
            ExprKind::And(terms) => {
                ExprKind::And(terms.into_iter().map(|t| self.expr(t)).collect())
            }
            ExprKind::Or(terms) => ExprKind::Or(terms.into_iter().map(|t| self.expr(t)).collect()),
            ExprKind::Cond(c, t, f) => ExprKind::Cond(self.boxed(c), self.boxed(t), self.boxed(f)),
            ExprKind::Comprehension(mut c) => {
                c.range = self.expr(c.range);
                self.locals.push(c.var.clone());
                c.pred = c.pred.map(|p| self.expr(p));
                c.transform = c.transform.map(|t| self.expr(t));
                self.locals.pop();
                ExprKind::Comprehension(c)
            }
        };
        Expr::new(pos, kind)
    }

    fn call(
        &mut self,
        pos: usize,
        target: Option<Box<Expr>>,
        name: String,
        args: Vec<Expr>,
    ) -> ExprKind {
        let args: Vec<Expr> = args.into_iter().map(|a| self.expr(a)).collect();
        // `ns.fn(args)` where `ns` is not a variable is a namespaced global function.
        if let Some(t) = &target {
            if let Some(q) = qualified_name(t) {
                let root = q.split('.').next().unwrap_or("");
                let full = format!("{q}.{name}");
                if !self.is_variable(root) && functions::lookup(&full).is_some() {
                    return self.global_call(pos, full, args);
                }
            }
        }
        match target {
            None => self.global_call(pos, name, args),
            Some(t) => {
                let target = self.boxed(t);
                match functions::lookup(&name) {
                    Some(d) if d.member.contains(&args.len()) => {}
                    Some(d) if !d.member.is_empty() => {
                        let dyns = vec!["dyn"; args.len()].join(", ");
                        self.issues.push(Issue::new(
                            pos,
                            format!(
                                "found no matching overload for '{name}' applied to 'dyn.({dyns})'"
                            ),
                        ));
                    }
                    _ => self.issues.push(undeclared(pos, &name)),
                }
                ExprKind::Call {
                    target: Some(target),
                    name,
                    args,
                }
            }
        }
    }

    fn global_call(&mut self, pos: usize, name: String, args: Vec<Expr>) -> ExprKind {
        match functions::lookup(&name) {
            Some(d) if d.global.contains(&args.len()) => {}
            Some(d) if !d.global.is_empty() => {
                let dyns = vec!["dyn"; args.len()].join(", ");
                self.issues.push(Issue::new(
                    pos,
                    format!("found no matching overload for '{name}' applied to '({dyns})'"),
                ));
            }
            _ => self.issues.push(undeclared(pos, &name)),
        }
        ExprKind::Call {
            target: None,
            name,
            args,
        }
    }
}
