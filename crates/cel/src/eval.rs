//! Tree-walking evaluator with a cost budget.

use std::sync::Arc;

use crate::activation::{Activation, Binding};
use crate::ast::{Comprehension, Expr, ExprKind, MacroKind};
use crate::error::{err, EvalError};
use crate::functions;
use crate::ops::{binary, negate, no_overload};
use crate::value::{key_display, map_get, Key, MapValue, Value};

/// Message of the error raised when the cost budget is exhausted.
pub const COST_LIMIT_MESSAGE: &str = "operation cancelled: actual cost limit exceeded";

pub(crate) struct Evaluator<'a> {
    activation: &'a Activation,
    locals: Vec<(&'a str, Value)>,
    remaining: u64,
    exhausted: bool,
}

impl<'a> Evaluator<'a> {
    pub fn new(activation: &'a Activation, budget: u64) -> Evaluator<'a> {
        Evaluator {
            activation,
            locals: Vec::new(),
            remaining: budget,
            exhausted: false,
        }
    }

    fn charge(&mut self, cost: u64) -> Result<(), EvalError> {
        if self.exhausted || cost > self.remaining {
            self.exhausted = true;
            self.remaining = 0;
            return err(COST_LIMIT_MESSAGE);
        }
        self.remaining -= cost;
        Ok(())
    }

    /// Converts an absorbed error into the cost error when the budget ran out.
    fn check_exhausted(&self) -> Result<(), EvalError> {
        if self.exhausted {
            err(COST_LIMIT_MESSAGE)
        } else {
            Ok(())
        }
    }

    fn local(&self, name: &str) -> Option<&Value> {
        self.locals
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    pub fn eval(&mut self, e: &'a Expr) -> Result<Value, EvalError> {
        self.charge(1)?;
        match &e.kind {
            ExprKind::Lit(v) => Ok(v.clone()),
            ExprKind::Ident(name) => self.ident(name),
            ExprKind::Select {
                operand,
                field,
                test,
                optional,
            } => {
                if let ExprKind::Ident(name) = &operand.kind {
                    if self.local(name).is_none() {
                        if let Some(Binding::Namespace(ns)) = self.activation.get(name) {
                            return namespace_select(
                                ns.get(field.as_str()),
                                field,
                                *test,
                                *optional,
                            );
                        }
                    }
                }
                let v = self.eval(operand)?;
                select(&v, field, *test, *optional)
            }
            ExprKind::Index {
                operand,
                index,
                optional,
            } => {
                let v = self.eval(operand)?;
                let i = self.eval(index)?;
                index_value(&v, &i, *optional)
            }
            ExprKind::Call { target, name, args } => {
                let target = match target {
                    Some(t) => Some(self.eval(t)?),
                    None => None,
                };
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(self.eval(a)?);
                }
                self.charge(functions::cost(name, target.as_ref(), &values))?;
                let result = functions::call(name, target.as_ref(), &values)?;
                self.charge(result.cost_size() / 10)?;
                Ok(result)
            }
            ExprKind::List(elems) => {
                let mut out = Vec::with_capacity(elems.len());
                for (elem, optional) in elems {
                    let v = self.eval(elem)?;
                    if *optional {
                        match v {
                            Value::Optional(Some(inner)) => out.push(*inner),
                            Value::Optional(None) => {}
                            other => return Err(no_overload("optional list element", &[&other])),
                        }
                    } else {
                        out.push(v);
                    }
                }
                Ok(Value::List(Arc::new(out)))
            }
            ExprKind::Map(entries) => {
                let mut out = MapValue::new();
                for (k, v, optional) in entries {
                    let key = Key::from_value(&self.eval(k)?)?;
                    let value = self.eval(v)?;
                    let value = if *optional {
                        match value {
                            Value::Optional(Some(inner)) => *inner,
                            Value::Optional(None) => continue,
                            other => return Err(no_overload("optional map entry", &[&other])),
                        }
                    } else {
                        value
                    };
                    if out.insert(key.clone(), value).is_some() {
                        return err(format!(
                            "Failed with repeated key: {}",
                            key_display(&key.to_value())
                        ));
                    }
                }
                Ok(Value::Map(Arc::new(out)))
            }
            ExprKind::Not(inner) => match self.eval(inner)? {
                Value::Bool(b) => Ok(Value::Bool(!b)),
                other => Err(no_overload("!_", &[&other])),
            },
            ExprKind::Neg(inner) => negate(&self.eval(inner)?),
            ExprKind::Binary(op, l, r) => {
                let a = self.eval(l)?;
                let b = self.eval(r)?;
                self.charge((a.cost_size() + b.cost_size()) / 10)?;
                binary(*op, &a, &b)
            }
            ExprKind::And(terms) => self.logical(terms, false),
            ExprKind::Or(terms) => self.logical(terms, true),
            ExprKind::Cond(c, t, f) => match self.eval(c)? {
                Value::Bool(true) => self.eval(t),
                Value::Bool(false) => self.eval(f),
                other => Err(no_overload("_?_:_", &[&other])),
            },
            ExprKind::Comprehension(c) => self.comprehension(c),
        }
    }

    fn ident(&self, name: &str) -> Result<Value, EvalError> {
        if let Some(v) = self.local(name) {
            return Ok(v.clone());
        }
        match self.activation.get(name) {
            Some(Binding::Value(v)) => Ok(v.clone()),
            Some(Binding::Namespace(ns)) => {
                let mut out = MapValue::new();
                for (k, v) in ns.iter() {
                    out.insert(Key::from(k.as_str()), v.clone()?);
                }
                Ok(Value::Map(Arc::new(out)))
            }
            None => err(format!("no such attribute(s): {name}")),
        }
    }

    /// N-ary `&&` (`short == false`) or `||` (`short == true`) with commutative errors.
    fn logical(&mut self, terms: &'a [Expr], short: bool) -> Result<Value, EvalError> {
        let mut first_err = None;
        for t in terms {
            match self.eval(t) {
                Ok(Value::Bool(b)) if b == short => return Ok(Value::Bool(short)),
                Ok(Value::Bool(_)) => {}
                Ok(other) => {
                    let name = if short { "_||_" } else { "_&&_" };
                    first_err.get_or_insert(no_overload(name, &[&other]));
                }
                Err(e) => {
                    self.check_exhausted()?;
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(Value::Bool(!short)),
        }
    }

    fn comprehension(&mut self, c: &'a Comprehension) -> Result<Value, EvalError> {
        let range = self.eval(&c.range)?;
        let items: Vec<Value> = match &range {
            Value::List(l) => l.as_ref().clone(),
            Value::Map(m) => m.keys().map(Key::to_value).collect(),
            other => {
                return err(format!(
                    "expression of type '{}' cannot be range of a comprehension (must be list, map, or dynamic)",
                    other.type_name()
                ))
            }
        };
        let mut first_err: Option<EvalError> = None;
        let mut count: i64 = 0;
        let mut out: Vec<Value> = Vec::new();
        for item in items {
            self.charge(1)?;
            self.locals.push((c.var.as_str(), item.clone()));
            let result = self.step(c, item, &mut out);
            self.locals.pop();
            match (c.kind, result) {
                (MacroKind::All, Ok(Some(false))) => return Ok(Value::Bool(false)),
                (MacroKind::Exists, Ok(Some(true))) => return Ok(Value::Bool(true)),
                (MacroKind::ExistsOne, Ok(Some(true))) => count += 1,
                (MacroKind::All | MacroKind::Exists, Err(e)) => {
                    self.check_exhausted()?;
                    first_err.get_or_insert(e);
                }
                (_, Err(e)) => return Err(e),
                _ => {}
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        Ok(match c.kind {
            MacroKind::All => Value::Bool(true),
            MacroKind::Exists => Value::Bool(false),
            MacroKind::ExistsOne => Value::Bool(count == 1),
            MacroKind::Map | MacroKind::Filter => Value::List(Arc::new(out)),
        })
    }

    /// Evaluates one iteration. Returns the predicate value for the boolean macros.
    fn step(
        &mut self,
        c: &'a Comprehension,
        item: Value,
        out: &mut Vec<Value>,
    ) -> Result<Option<bool>, EvalError> {
        let pred = match &c.pred {
            Some(p) => match self.eval(p)? {
                Value::Bool(b) => Some(b),
                other => {
                    let name = match c.kind {
                        MacroKind::All => "_&&_",
                        MacroKind::Exists => "_||_",
                        _ => "_?_:_",
                    };
                    return Err(no_overload(name, &[&other]));
                }
            },
            None => None,
        };
        match c.kind {
            MacroKind::Map if pred != Some(false) => {
                if let Some(t) = &c.transform {
                    let v = self.eval(t)?;
                    out.push(v);
                }
            }
            MacroKind::Filter if pred == Some(true) => out.push(item),
            _ => {}
        }
        Ok(pred)
    }
}

fn namespace_select(
    member: Option<&Result<Value, EvalError>>,
    field: &str,
    test: bool,
    optional: bool,
) -> Result<Value, EvalError> {
    match member {
        Some(Ok(v)) if test => {
            let _ = v;
            Ok(Value::Bool(true))
        }
        Some(Ok(v)) if optional => Ok(Value::Optional(Some(Box::new(v.clone())))),
        Some(Ok(v)) => Ok(v.clone()),
        Some(Err(e)) => Err(e.clone()),
        None if test => Ok(Value::Bool(false)),
        None if optional => Ok(Value::Optional(None)),
        None => err(format!("no such key: {field}")),
    }
}

/// Field selection (`v.f`), presence test (`has(v.f)`) and optional selection (`v.?f`).
pub(crate) fn select(
    v: &Value,
    field: &str,
    test: bool,
    optional: bool,
) -> Result<Value, EvalError> {
    match v {
        Value::Map(m) => {
            let found = m.get(&Key::from(field));
            if test {
                return Ok(Value::Bool(found.is_some()));
            }
            match found {
                Some(x) if optional => Ok(Value::Optional(Some(Box::new(x.clone())))),
                Some(x) => Ok(x.clone()),
                None if optional => Ok(Value::Optional(None)),
                None => err(format!("no such key: {field}")),
            }
        }
        Value::Optional(None) => Ok(if test {
            Value::Bool(false)
        } else {
            Value::Optional(None)
        }),
        Value::Optional(Some(inner)) => select(inner, field, test, !test),
        Value::Authorizer(root) if !test => root
            .select(field)
            .map_or_else(|| err(format!("no such key: {field}")), Ok),
        other if test => err(format!(
            "invalid type for field selection: {}",
            other.type_name()
        )),
        Value::Null => err(format!("no such key: {field}")),
        other => err(format!(
            "type '{}' does not support field selection",
            other.type_name()
        )),
    }
}

/// Indexing (`v[i]`) and optional indexing (`v[?i]`).
pub(crate) fn index_value(v: &Value, i: &Value, optional: bool) -> Result<Value, EvalError> {
    let wrap = |x: &Value| {
        if optional {
            Value::Optional(Some(Box::new(x.clone())))
        } else {
            x.clone()
        }
    };
    match v {
        Value::List(items) => {
            let idx: i128 = match i {
                Value::Int(n) => i128::from(*n),
                Value::Uint(n) => i128::from(*n),
                Value::Double(d) if d.fract() == 0.0 && d.abs() < 1e18 => {
                    #[allow(clippy::cast_possible_truncation)]
                    let n = *d as i128;
                    n
                }
                Value::Double(d) => return err(format!("unsupported index value {d} in list")),
                other => return Err(no_overload("_[_]", &[v, other])),
            };
            match usize::try_from(idx).ok().and_then(|u| items.get(u)) {
                Some(x) => Ok(wrap(x)),
                None if optional => Ok(Value::Optional(None)),
                None => err(format!("index out of bounds: {idx}")),
            }
        }
        Value::Map(m) => match map_get(m, i)? {
            Some(x) => Ok(wrap(x)),
            None if optional => Ok(Value::Optional(None)),
            None => err(format!("no such key: {}", key_display(i))),
        },
        Value::Optional(None) => Ok(Value::Optional(None)),
        Value::Optional(Some(inner)) => index_value(inner, i, true),
        other => Err(no_overload("_[_]", &[other, i])),
    }
}
