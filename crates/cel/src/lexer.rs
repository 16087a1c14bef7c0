//! Tokenizer for CEL source text.

use crate::error::Issue;

/// Maximum accepted expression size in code points (cel-go's default).
pub(crate) const MAX_SOURCE_CODE_POINTS: usize = 100_000;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Int(u64),
    Uint(u64),
    Double(f64),
    Str(String),
    Bytes(Vec<u8>),
    Ident(String),
    True,
    False,
    Null,
    In,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Dot,
    Comma,
    Colon,
    Question,
    Not,
    Minus,
    Plus,
    Star,
    Slash,
    Percent,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Eof,
}

impl Tok {
    /// Text used in syntax error messages.
    pub fn describe(&self) -> String {
        let s = match self {
            Tok::Int(v) | Tok::Uint(v) => return format!("'{v}'"),
            Tok::Double(v) => return format!("'{v}'"),
            Tok::Str(_) => "string literal",
            Tok::Bytes(_) => "bytes literal",
            Tok::Ident(name) => return format!("'{name}'"),
            Tok::True => "'true'",
            Tok::False => "'false'",
            Tok::Null => "'null'",
            Tok::In => "'in'",
            Tok::LParen => "'('",
            Tok::RParen => "')'",
            Tok::LBracket => "'['",
            Tok::RBracket => "']'",
            Tok::LBrace => "'{'",
            Tok::RBrace => "'}'",
            Tok::Dot => "'.'",
            Tok::Comma => "','",
            Tok::Colon => "':'",
            Tok::Question => "'?'",
            Tok::Not => "'!'",
            Tok::Minus => "'-'",
            Tok::Plus => "'+'",
            Tok::Star => "'*'",
            Tok::Slash => "'/'",
            Tok::Percent => "'%'",
            Tok::Eq => "'=='",
            Tok::Ne => "'!='",
            Tok::Lt => "'<'",
            Tok::Le => "'<='",
            Tok::Gt => "'>'",
            Tok::Ge => "'>='",
            Tok::And => "'&&'",
            Tok::Or => "'||'",
            Tok::Eof => "<EOF>",
        };
        s.to_string()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

const RESERVED: &[&str] = &[
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// Returns true when `name` is a reserved word that may not be used as an identifier.
pub(crate) fn is_reserved(name: &str) -> bool {
    RESERVED.contains(&name)
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

/// Splits `src` into tokens, ending with `Tok::Eof`.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, Issue> {
    if src.chars().count() > MAX_SOURCE_CODE_POINTS {
        return Err(Issue::new(
            0,
            format!("expression code point size exceeds limit: size: {}, limit {MAX_SOURCE_CODE_POINTS}", src.chars().count()),
        ));
    }
    let mut lx = Lexer {
        src,
        bytes: src.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        lx.skip_space();
        let start = lx.pos;
        let Some(&c) = lx.bytes.get(lx.pos) else {
            out.push(Token {
                tok: Tok::Eof,
                pos: start,
            });
            return Ok(out);
        };
        let prev_is_operand = matches!(
            out.last().map(|t: &Token| &t.tok),
            Some(Tok::Ident(_) | Tok::RParen | Tok::RBracket | Tok::RBrace)
                | Some(Tok::Int(_) | Tok::Uint(_) | Tok::Double(_) | Tok::Str(_) | Tok::Bytes(_))
        );
        let tok = match c {
            b'0'..=b'9' => lx.number()?,
            b'.' if !prev_is_operand && lx.peek_at(1).is_some_and(|d| d.is_ascii_digit()) => {
                lx.number()?
            }
            b'"' | b'\'' => lx.string(false, false)?,
            b'r' | b'R' | b'b' | b'B' if lx.is_string_prefix() => lx.prefixed_string()?,
            c if c == b'_' || c.is_ascii_alphabetic() => lx.ident(),
            _ => lx.punct()?,
        };
        out.push(Token { tok, pos: start });
    }
}

impl Lexer<'_> {
    fn peek_at(&self, off: usize) -> Option<u8> {
        self.bytes.get(self.pos + off).copied()
    }

    fn skip_space(&mut self) {
        while let Some(&c) = self.bytes.get(self.pos) {
            if c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' || c == 0x0c {
                self.pos += 1;
            } else if c == b'/' && self.peek_at(1) == Some(b'/') {
                while let Some(&c) = self.bytes.get(self.pos) {
                    if c == b'\n' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    fn error(&self, pos: usize, what: &str) -> Issue {
        Issue::syntax(pos, what)
    }

    fn is_string_prefix(&self) -> bool {
        let a = self.peek_at(0).map(|c| c.to_ascii_lowercase());
        let b = self.peek_at(1).map(|c| c.to_ascii_lowercase());
        match (a, b) {
            (Some(_), Some(b'"' | b'\'')) => true,
            (Some(b'r'), Some(b'b')) | (Some(b'b'), Some(b'r')) => {
                matches!(self.peek_at(2), Some(b'"' | b'\''))
            }
            _ => false,
        }
    }

    fn prefixed_string(&mut self) -> Result<Tok, Issue> {
        let mut raw = false;
        let mut bytes = false;
        while let Some(c) = self.peek_at(0) {
            match c.to_ascii_lowercase() {
                b'r' => raw = true,
                b'b' => bytes = true,
                _ => break,
            }
            self.pos += 1;
        }
        self.string(raw, bytes)
    }

    fn ident(&mut self) -> Tok {
        let start = self.pos;
        while let Some(&c) = self.bytes.get(self.pos) {
            if c == b'_' || c.is_ascii_alphanumeric() {
                self.pos += 1;
            } else {
                break;
            }
        }
        let text = self.src.get(start..self.pos).unwrap_or("");
        match text {
            "true" => Tok::True,
            "false" => Tok::False,
            "null" => Tok::Null,
            "in" => Tok::In,
            _ => Tok::Ident(text.to_string()),
        }
    }

    fn number(&mut self) -> Result<Tok, Issue> {
        let start = self.pos;
        if self.peek_at(0) == Some(b'0') && matches!(self.peek_at(1), Some(b'x' | b'X')) {
            self.pos += 2;
            let digits_start = self.pos;
            while self.peek_at(0).is_some_and(|c| c.is_ascii_hexdigit()) {
                self.pos += 1;
            }
            let digits = self.src.get(digits_start..self.pos).unwrap_or("");
            let value = u64::from_str_radix(digits, 16)
                .map_err(|_| self.error(start, "invalid hex literal"))?;
            return Ok(self.int_suffix(value));
        }
        let mut is_double = false;
        while self.peek_at(0).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.peek_at(0) == Some(b'.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            is_double = true;
            self.pos += 1;
            while self.peek_at(0).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        if matches!(self.peek_at(0), Some(b'e' | b'E')) {
            let mut off = 1;
            if matches!(self.peek_at(1), Some(b'+' | b'-')) {
                off = 2;
            }
            if self.peek_at(off).is_some_and(|c| c.is_ascii_digit()) {
                is_double = true;
                self.pos += off;
                while self.peek_at(0).is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
            }
        }
        let text = self.src.get(start..self.pos).unwrap_or("");
        if is_double {
            let v: f64 = text
                .parse()
                .map_err(|_| self.error(start, "invalid double literal"))?;
            return Ok(Tok::Double(v));
        }
        let value: u64 = text
            .parse()
            .map_err(|_| self.error(start, format!("invalid int literal: {text}").as_str()))?;
        Ok(self.int_suffix(value))
    }

    fn int_suffix(&mut self, value: u64) -> Tok {
        if matches!(self.peek_at(0), Some(b'u' | b'U')) {
            self.pos += 1;
            Tok::Uint(value)
        } else {
            Tok::Int(value)
        }
    }

    fn string(&mut self, raw: bool, bytes: bool) -> Result<Tok, Issue> {
        let start = self.pos;
        let Some(quote) = self.peek_at(0) else {
            return Err(self.error(start, "unterminated string"));
        };
        let triple = self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote);
        self.pos += if triple { 3 } else { 1 };
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.peek_at(0) else {
                return Err(self.error(start, "unterminated string literal"));
            };
            if c == quote {
                if !triple {
                    self.pos += 1;
                    break;
                }
                if self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote) {
                    self.pos += 3;
                    break;
                }
            }
            if !triple && (c == b'\n' || c == b'\r') {
                return Err(self.error(start, "unterminated string literal"));
            }
            if c == b'\\' && !raw {
                self.escape(&mut out, bytes)?;
                continue;
            }
            if c == b'\\' && raw {
                // In raw strings a backslash is literal, but it still protects a quote.
                out.push(c);
                self.pos += 1;
                if self.peek_at(0) == Some(quote) && !triple {
                    out.push(quote);
                    self.pos += 1;
                }
                continue;
            }
            out.push(c);
            self.pos += 1;
        }
        if bytes {
            Ok(Tok::Bytes(out))
        } else {
            String::from_utf8(out)
                .map(Tok::Str)
                .map_err(|_| self.error(start, "invalid UTF-8 in string literal"))
        }
    }

    fn hex_digits(&mut self, n: usize, at: usize) -> Result<u32, Issue> {
        let text = self
            .src
            .get(self.pos..self.pos + n)
            .ok_or_else(|| self.error(at, "invalid escape sequence"))?;
        let v =
            u32::from_str_radix(text, 16).map_err(|_| self.error(at, "invalid escape sequence"))?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error(at, "invalid escape sequence"));
        }
        self.pos += n;
        Ok(v)
    }

    fn escape(&mut self, out: &mut Vec<u8>, bytes: bool) -> Result<(), Issue> {
        let at = self.pos;
        self.pos += 1;
        let Some(c) = self.peek_at(0) else {
            return Err(self.error(at, "invalid escape sequence"));
        };
        self.pos += 1;
        let simple = match c {
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' => Some(b'\\'),
            b'\'' => Some(b'\''),
            b'"' => Some(b'"'),
            b'`' => Some(b'`'),
            b'?' => Some(b'?'),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            return Ok(());
        }
        let code = match c {
            b'x' | b'X' => {
                let v = self.hex_digits(2, at)?;
                if bytes {
                    out.push(u8::try_from(v).map_err(|_| self.error(at, "invalid escape"))?);
                    return Ok(());
                }
                v
            }
            b'u' => self.hex_digits(4, at)?,
            b'U' => self.hex_digits(8, at)?,
            b'0'..=b'3' => {
                let text = self
                    .src
                    .get(self.pos - 1..self.pos + 2)
                    .ok_or_else(|| self.error(at, "invalid escape sequence"))?;
                if !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                    return Err(self.error(at, "invalid escape sequence"));
                }
                let v =
                    u32::from_str_radix(text, 8).map_err(|_| self.error(at, "invalid escape"))?;
                self.pos += 2;
                if bytes {
                    out.push(u8::try_from(v).map_err(|_| self.error(at, "invalid escape"))?);
                    return Ok(());
                }
                v
            }
            _ => return Err(self.error(at, "invalid escape sequence")),
        };
        if bytes && matches!(c, b'u' | b'U') {
            return Err(self.error(at, "unicode escapes are not allowed in bytes literals"));
        }
        let ch =
            char::from_u32(code).ok_or_else(|| self.error(at, "invalid unicode code point"))?;
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }

    fn punct(&mut self) -> Result<Tok, Issue> {
        let start = self.pos;
        let c = self.peek_at(0).unwrap_or(0);
        let next = self.peek_at(1);
        let (tok, len) = match (c, next) {
            (b'=', Some(b'=')) => (Tok::Eq, 2),
            (b'!', Some(b'=')) => (Tok::Ne, 2),
            (b'<', Some(b'=')) => (Tok::Le, 2),
            (b'>', Some(b'=')) => (Tok::Ge, 2),
            (b'&', Some(b'&')) => (Tok::And, 2),
            (b'|', Some(b'|')) => (Tok::Or, 2),
            (b'(', _) => (Tok::LParen, 1),
            (b')', _) => (Tok::RParen, 1),
            (b'[', _) => (Tok::LBracket, 1),
            (b']', _) => (Tok::RBracket, 1),
            (b'{', _) => (Tok::LBrace, 1),
            (b'}', _) => (Tok::RBrace, 1),
            (b'.', _) => (Tok::Dot, 1),
            (b',', _) => (Tok::Comma, 1),
            (b':', _) => (Tok::Colon, 1),
            (b'?', _) => (Tok::Question, 1),
            (b'!', _) => (Tok::Not, 1),
            (b'-', _) => (Tok::Minus, 1),
            (b'+', _) => (Tok::Plus, 1),
            (b'*', _) => (Tok::Star, 1),
            (b'/', _) => (Tok::Slash, 1),
            (b'%', _) => (Tok::Percent, 1),
            (b'<', _) => (Tok::Lt, 1),
            (b'>', _) => (Tok::Gt, 1),
            _ => {
                let ch = self
                    .src
                    .get(start..)
                    .and_then(|s| s.chars().next())
                    .unwrap_or('?');
                return Err(self.error(start, &format!("token recognition error at: '{ch}'")));
            }
        };
        self.pos += len;
        Ok(tok)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        tokenize(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokens() {
        assert_eq!(
            toks("a.b[0] != 1u && !c || 2.5e1 in x"),
            vec![
                Tok::Ident("a".into()),
                Tok::Dot,
                Tok::Ident("b".into()),
                Tok::LBracket,
                Tok::Int(0),
                Tok::RBracket,
                Tok::Ne,
                Tok::Uint(1),
                Tok::And,
                Tok::Not,
                Tok::Ident("c".into()),
                Tok::Or,
                Tok::Double(25.0),
                Tok::In,
                Tok::Ident("x".into()),
                Tok::Eof,
            ]
        );
        assert_eq!(
            toks("x.0"),
            vec![Tok::Ident("x".into()), Tok::Dot, Tok::Int(0), Tok::Eof]
        );
        assert_eq!(toks("R'\\d'"), vec![Tok::Str("\\d".into()), Tok::Eof]);
        assert_eq!(toks("rb'\\x'"), vec![Tok::Bytes(b"\\x".to_vec()), Tok::Eof]);
        assert_eq!(toks("// only a comment"), vec![Tok::Eof]);
    }

    #[test]
    fn errors() {
        for bad in [
            "'abc",
            "\"a\nb\"",
            "'\\x4'",
            "'\\u12'",
            "'\\400'",
            "@",
            "0x",
            "'\\U00110000'",
        ] {
            assert!(tokenize(bad).is_err(), "{bad}");
        }
    }
}
