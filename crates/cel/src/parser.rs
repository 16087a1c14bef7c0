//! Recursive-descent parser producing an [`Expr`] tree, with macro expansion.

use crate::ast::{BinOp, Comprehension, Expr, ExprKind, MacroKind};
use crate::error::Issue;
use crate::lexer::{is_reserved, tokenize, Tok, Token};
use crate::value::Value;

/// Maximum nesting depth of the parsed expression (cel-go's default recursion limit).
pub(crate) const MAX_DEPTH: usize = 250;

struct Parser {
    toks: Vec<Token>,
    i: usize,
    depth: usize,
}

/// Parses a complete expression.
pub(crate) fn parse(src: &str) -> Result<Expr, Issue> {
    let toks = tokenize(src)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
    };
    let e = p.expr()?;
    let t = p.peek_token();
    if t.tok != Tok::Eof {
        return Err(Issue::syntax(
            t.pos,
            format!("extraneous input {} expecting <EOF>", t.tok.describe()),
        ));
    }
    Ok(e)
}

fn bx(e: Expr) -> Box<Expr> {
    Box::new(e)
}

impl Parser {
    fn peek_token(&self) -> Token {
        self.toks
            .get(self.i)
            .or_else(|| self.toks.last())
            .cloned()
            .unwrap_or(Token {
                tok: Tok::Eof,
                pos: 0,
            })
    }

    fn peek(&self) -> &Tok {
        self.toks.get(self.i).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.toks
            .get(self.i)
            .or_else(|| self.toks.last())
            .map_or(0, |t| t.pos)
    }

    fn bump(&mut self) -> Token {
        let t = self.peek_token();
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == tok {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &Tok) -> Result<Token, Issue> {
        if self.peek() == tok {
            Ok(self.bump())
        } else {
            let t = self.peek_token();
            Err(Issue::syntax(
                t.pos,
                format!(
                    "mismatched input {} expecting {}",
                    t.tok.describe(),
                    tok.describe()
                ),
            ))
        }
    }

    fn enter(&mut self) -> Result<(), Issue> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Issue::syntax(
                self.pos(),
                format!("expression recursion limit exceeded: {MAX_DEPTH}"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self, n: usize) {
        self.depth = self.depth.saturating_sub(n);
    }

    fn expr(&mut self) -> Result<Expr, Issue> {
        self.enter()?;
        let r = self.conditional();
        self.leave(1);
        r
    }

    fn conditional(&mut self) -> Result<Expr, Issue> {
        let cond = self.or()?;
        if self.peek() != &Tok::Question {
            return Ok(cond);
        }
        let pos = self.bump().pos;
        let then = self.or()?;
        self.expect(&Tok::Colon)?;
        let otherwise = self.expr()?;
        Ok(Expr::new(
            pos,
            ExprKind::Cond(bx(cond), bx(then), bx(otherwise)),
        ))
    }

    fn or(&mut self) -> Result<Expr, Issue> {
        let first = self.and()?;
        if self.peek() != &Tok::Or {
            return Ok(first);
        }
        let pos = self.pos();
        let mut terms = vec![first];
        while self.eat(&Tok::Or) {
            terms.push(self.and()?);
        }
        Ok(Expr::new(pos, ExprKind::Or(terms)))
    }

    fn and(&mut self) -> Result<Expr, Issue> {
        let first = self.relation()?;
        if self.peek() != &Tok::And {
            return Ok(first);
        }
        let pos = self.pos();
        let mut terms = vec![first];
        while self.eat(&Tok::And) {
            terms.push(self.relation()?);
        }
        Ok(Expr::new(pos, ExprKind::And(terms)))
    }

    fn binary_chain(
        &mut self,
        ops: fn(&Tok) -> Option<BinOp>,
        next: fn(&mut Parser) -> Result<Expr, Issue>,
    ) -> Result<Expr, Issue> {
        let mut left = next(self)?;
        let mut entered = 0;
        let result = loop {
            let Some(op) = ops(self.peek()) else {
                break Ok(left);
            };
            let pos = self.bump().pos;
            if let Err(e) = self.enter() {
                break Err(e);
            }
            entered += 1;
            let right = match next(self) {
                Ok(r) => r,
                Err(e) => break Err(e),
            };
            left = Expr::new(pos, ExprKind::Binary(op, bx(left), bx(right)));
        };
        self.leave(entered);
        result
    }

    fn relation(&mut self) -> Result<Expr, Issue> {
        self.binary_chain(
            |t| match t {
                Tok::Eq => Some(BinOp::Eq),
                Tok::Ne => Some(BinOp::Ne),
                Tok::Lt => Some(BinOp::Lt),
                Tok::Le => Some(BinOp::Le),
                Tok::Gt => Some(BinOp::Gt),
                Tok::Ge => Some(BinOp::Ge),
                Tok::In => Some(BinOp::In),
                _ => None,
            },
            Parser::addition,
        )
    }

    fn addition(&mut self) -> Result<Expr, Issue> {
        self.binary_chain(
            |t| match t {
                Tok::Plus => Some(BinOp::Add),
                Tok::Minus => Some(BinOp::Sub),
                _ => None,
            },
            Parser::multiplication,
        )
    }

    fn multiplication(&mut self) -> Result<Expr, Issue> {
        self.binary_chain(
            |t| match t {
                Tok::Star => Some(BinOp::Mul),
                Tok::Slash => Some(BinOp::Div),
                Tok::Percent => Some(BinOp::Rem),
                _ => None,
            },
            Parser::unary,
        )
    }

    fn unary(&mut self) -> Result<Expr, Issue> {
        match self.peek().clone() {
            Tok::Not => {
                let pos = self.bump().pos;
                self.enter()?;
                let inner = self.unary();
                self.leave(1);
                Ok(Expr::new(pos, ExprKind::Not(bx(inner?))))
            }
            Tok::Minus => {
                let pos = self.bump().pos;
                match self.peek().clone() {
                    Tok::Int(v) => {
                        self.bump();
                        let n = if v == 1u64 << 63 {
                            i64::MIN
                        } else {
                            i64::try_from(v)
                                .map(|n| -n)
                                .map_err(|_| Issue::syntax(pos, "invalid int literal"))?
                        };
                        self.member_suffixes(Expr::new(pos, ExprKind::Lit(Value::Int(n))))
                    }
                    Tok::Double(v) => {
                        self.bump();
                        self.member_suffixes(Expr::new(pos, ExprKind::Lit(Value::Double(-v))))
                    }
                    _ => {
                        self.enter()?;
                        let inner = self.unary();
                        self.leave(1);
                        Ok(Expr::new(pos, ExprKind::Neg(bx(inner?))))
                    }
                }
            }
            _ => {
                let primary = self.primary()?;
                self.member_suffixes(primary)
            }
        }
    }

    /// An identifier after `.`; reserved words are only rejected in the leading-dot form
    /// (`.name`), since fields such as `metadata.namespace` are common.
    fn ident_after_dot(&mut self, allow_reserved: bool) -> Result<(String, usize), Issue> {
        let t = self.bump();
        match t.tok {
            Tok::Ident(name) => {
                if !allow_reserved && is_reserved(&name) {
                    return Err(Issue::syntax(t.pos, format!("reserved identifier: {name}")));
                }
                Ok((name, t.pos))
            }
            other => Err(Issue::syntax(
                t.pos,
                format!("mismatched input {} expecting IDENTIFIER", other.describe()),
            )),
        }
    }

    fn member_suffixes(&mut self, mut e: Expr) -> Result<Expr, Issue> {
        let mut entered = 0;
        let result = loop {
            let is_dot = match self.peek() {
                Tok::Dot => true,
                Tok::LBracket => false,
                _ => break Ok(e),
            };
            if let Err(err) = self.enter() {
                break Err(err);
            }
            entered += 1;
            let step = if is_dot {
                self.select_suffix(e)
            } else {
                self.index_suffix(e)
            };
            match step {
                Ok(next) => e = next,
                Err(err) => break Err(err),
            }
        };
        self.leave(entered);
        result
    }

    fn select_suffix(&mut self, operand: Expr) -> Result<Expr, Issue> {
        let dot = self.bump().pos;
        let optional = self.eat(&Tok::Question);
        let (name, name_pos) = self.ident_after_dot(true)?;
        if !optional && self.peek() == &Tok::LParen {
            let lparen = self.bump().pos;
            let args = self.args()?;
            return member_call(operand, name, args, lparen);
        }
        let _ = name_pos;
        Ok(Expr::new(
            dot,
            ExprKind::Select {
                operand: bx(operand),
                field: name,
                test: false,
                optional,
            },
        ))
    }

    fn index_suffix(&mut self, operand: Expr) -> Result<Expr, Issue> {
        let pos = self.bump().pos;
        let optional = self.eat(&Tok::Question);
        let index = self.expr()?;
        self.expect(&Tok::RBracket)?;
        Ok(Expr::new(
            pos,
            ExprKind::Index {
                operand: bx(operand),
                index: bx(index),
                optional,
            },
        ))
    }

    fn args(&mut self) -> Result<Vec<Expr>, Issue> {
        let mut args = Vec::new();
        if self.eat(&Tok::RParen) {
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            if self.eat(&Tok::Comma) {
                continue;
            }
            self.expect(&Tok::RParen)?;
            return Ok(args);
        }
    }

    fn primary(&mut self) -> Result<Expr, Issue> {
        let t = self.bump();
        let pos = t.pos;
        let lit = |v: Value| Ok(Expr::new(pos, ExprKind::Lit(v)));
        match t.tok {
            Tok::Int(v) => match i64::try_from(v) {
                Ok(n) => lit(Value::Int(n)),
                Err(_) => Err(Issue::syntax(pos, "invalid int literal")),
            },
            Tok::Uint(v) => lit(Value::Uint(v)),
            Tok::Double(v) => lit(Value::Double(v)),
            Tok::Str(s) => lit(Value::from(s)),
            Tok::Bytes(b) => lit(Value::Bytes(b.into())),
            Tok::True => lit(Value::Bool(true)),
            Tok::False => lit(Value::Bool(false)),
            Tok::Null => lit(Value::Null),
            Tok::Dot => {
                let (name, name_pos) = self.ident_after_dot(false)?;
                self.ident_or_call(name, name_pos)
            }
            Tok::Ident(name) => {
                if is_reserved(&name) {
                    return Err(Issue::syntax(pos, format!("reserved identifier: {name}")));
                }
                self.ident_or_call(name, pos)
            }
            Tok::LParen => {
                let e = self.expr()?;
                self.expect(&Tok::RParen)?;
                Ok(e)
            }
            Tok::LBracket => self.list(pos),
            Tok::LBrace => self.map(pos),
            other => Err(Issue::syntax(
                pos,
                format!("mismatched input {} expecting expression", other.describe()),
            )),
        }
    }

    fn ident_or_call(&mut self, name: String, pos: usize) -> Result<Expr, Issue> {
        match self.peek() {
            Tok::LParen => {
                let lparen = self.bump().pos;
                let args = self.args()?;
                global_call(name, args, lparen)
            }
            Tok::LBrace => Err(Issue::new(
                pos,
                format!("message construction is not supported: '{name}'"),
            )),
            _ => Ok(Expr::new(pos, ExprKind::Ident(name))),
        }
    }

    fn list(&mut self, pos: usize) -> Result<Expr, Issue> {
        let mut elems = Vec::new();
        loop {
            if self.eat(&Tok::RBracket) {
                break;
            }
            let optional = self.eat(&Tok::Question);
            elems.push((self.expr()?, optional));
            if !self.eat(&Tok::Comma) {
                self.expect(&Tok::RBracket)?;
                break;
            }
        }
        Ok(Expr::new(pos, ExprKind::List(elems)))
    }

    fn map(&mut self, pos: usize) -> Result<Expr, Issue> {
        let mut entries = Vec::new();
        loop {
            if self.eat(&Tok::RBrace) {
                break;
            }
            let optional = self.eat(&Tok::Question);
            let key = self.expr()?;
            self.expect(&Tok::Colon)?;
            let value = self.expr()?;
            entries.push((key, value, optional));
            if !self.eat(&Tok::Comma) {
                self.expect(&Tok::RBrace)?;
                break;
            }
        }
        Ok(Expr::new(pos, ExprKind::Map(entries)))
    }
}

fn global_call(name: String, mut args: Vec<Expr>, pos: usize) -> Result<Expr, Issue> {
    if name == "has" && args.len() == 1 {
        let arg = args.pop().map(|a| a.kind);
        return match arg {
            Some(ExprKind::Select {
                operand,
                field,
                test: false,
                optional: false,
            }) => Ok(Expr::new(
                pos,
                ExprKind::Select {
                    operand,
                    field,
                    test: true,
                    optional: false,
                },
            )),
            _ => Err(Issue::new(pos, "invalid argument to has() macro")),
        };
    }
    Ok(Expr::new(
        pos,
        ExprKind::Call {
            target: None,
            name,
            args,
        },
    ))
}

fn member_call(target: Expr, name: String, mut args: Vec<Expr>, pos: usize) -> Result<Expr, Issue> {
    let kind = match (name.as_str(), args.len()) {
        ("all", 2) => Some(MacroKind::All),
        ("exists", 2) => Some(MacroKind::Exists),
        ("exists_one" | "existsOne", 2) => Some(MacroKind::ExistsOne),
        ("map", 2 | 3) => Some(MacroKind::Map),
        ("filter", 2) => Some(MacroKind::Filter),
        _ => None,
    };
    let Some(kind) = kind else {
        return Ok(Expr::new(
            pos,
            ExprKind::Call {
                target: Some(bx(target)),
                name,
                args,
            },
        ));
    };
    let mut it = std::mem::take(&mut args).into_iter();
    let var = match it.next() {
        Some(Expr {
            kind: ExprKind::Ident(v),
            ..
        }) => v,
        Some(other) => return Err(Issue::new(other.pos, "argument must be a simple name")),
        None => return Err(Issue::new(pos, "argument must be a simple name")),
    };
    let first = it.next();
    let second = it.next();
    let (pred, transform) = match kind {
        MacroKind::Map => match second {
            Some(t) => (first, Some(t)),
            None => (None, first),
        },
        _ => (first, None),
    };
    Ok(Expr::new(
        pos,
        ExprKind::Comprehension(Box::new(Comprehension {
            kind,
            range: target,
            var,
            pred,
            transform,
        })),
    ))
}
