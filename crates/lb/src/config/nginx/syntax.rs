//! nginx's configuration syntax (`ngx_conf_read_token` and the block structure):
//! tokens with their lines, then the tree of directives.

use super::{ConfigError, Pos};

/// One token of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    Word(String),
    Semicolon,
    Open,
    Close,
}

/// Splits `text` into tokens with their lines (nginx's `ngx_conf_read_token`): words,
/// `"…"`/`'…'` strings with `\` escapes, `;`, `{`, `}`, and `#` comments to the end
/// of the line where a token could start.
pub(super) fn tokenize(file: &str, text: &str) -> Result<Vec<(Token, usize)>, ConfigError> {
    let err = |line: usize, message: String| ConfigError::Nginx {
        at: Pos::new(file, line),
        message,
    };
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            ';' => out.push((Token::Semicolon, line)),
            '{' => out.push((Token::Open, line)),
            '}' => out.push((Token::Close, line)),
            '"' | '\'' => {
                let start = line;
                let mut word = String::new();
                let mut closed = false;
                while let Some(ch) = chars.next() {
                    match ch {
                        '\\' => match chars.next() {
                            Some('n') => word.push('\n'),
                            Some('t') => word.push('\t'),
                            Some('r') => word.push('\r'),
                            Some(e) if e == c || e == '\\' => word.push(e),
                            Some(e) => {
                                if e == '\n' {
                                    line += 1;
                                }
                                word.push('\\');
                                word.push(e);
                            }
                            None => break,
                        },
                        ch if ch == c => {
                            closed = true;
                            break;
                        }
                        ch => {
                            if ch == '\n' {
                                line += 1;
                            }
                            word.push(ch);
                        }
                    }
                }
                if !closed {
                    return Err(err(
                        start,
                        "unexpected end of file, expecting \";\" or \"}\"".into(),
                    ));
                }
                match chars.peek() {
                    None => {}
                    Some(&n) if n.is_whitespace() || matches!(n, ';' | '{' | '}') => {}
                    Some(&n) => return Err(err(line, format!("unexpected \"{n}\""))),
                }
                out.push((Token::Word(word), start));
            }
            c => {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, ';' | '{' | '}') {
                        break;
                    }
                    chars.next();
                    if n == '\\' {
                        if let Some(e) = chars.next() {
                            word.push(e);
                        }
                    } else {
                        word.push(n);
                    }
                }
                out.push((Token::Word(word), line));
            }
        }
    }
    Ok(out)
}

/// A directive with its arguments and, for block directives, its children.
#[derive(Debug, Clone)]
pub(super) struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub line: usize,
    pub block: Option<Vec<Directive>>,
}

/// Builds the directive tree (`unexpected "}"`, `unexpected end of file` as nginx).
pub(super) fn parse_tree(
    file: &str,
    tokens: &[(Token, usize)],
) -> Result<Vec<Directive>, ConfigError> {
    let err = |line: usize, message: String| ConfigError::Nginx {
        at: Pos::new(file, line),
        message,
    };
    let last_line = tokens.last().map_or(1, |(_, l)| *l);
    // Stack of open blocks: (directive waiting for its block, children so far).
    let mut stack: Vec<(Option<Directive>, Vec<Directive>)> = vec![(None, Vec::new())];
    let mut current: Option<Directive> = None;
    for (tok, line) in tokens {
        match tok {
            Token::Word(w) => match current.as_mut() {
                Some(d) => d.args.push(w.clone()),
                None => {
                    current = Some(Directive {
                        name: w.clone(),
                        args: Vec::new(),
                        line: *line,
                        block: None,
                    })
                }
            },
            Token::Semicolon => {
                let d = current
                    .take()
                    .ok_or_else(|| err(*line, "unexpected \";\"".into()))?;
                if let Some((_, children)) = stack.last_mut() {
                    children.push(d);
                }
            }
            Token::Open => {
                let d = current
                    .take()
                    .ok_or_else(|| err(*line, "unexpected \"{\"".into()))?;
                stack.push((Some(d), Vec::new()));
            }
            Token::Close => {
                if let Some(d) = current.take() {
                    return Err(err(
                        d.line,
                        format!("unexpected \"}}\" after \"{}\", expecting \";\"", d.name),
                    ));
                }
                if stack.len() < 2 {
                    return Err(err(*line, "unexpected \"}\"".into()));
                }
                if let Some((Some(mut d), children)) = stack.pop() {
                    d.block = Some(children);
                    if let Some((_, parent)) = stack.last_mut() {
                        parent.push(d);
                    }
                }
            }
        }
    }
    if current.is_some() {
        return Err(err(
            last_line,
            "unexpected end of file, expecting \";\" or \"}\"".into(),
        ));
    }
    if stack.len() > 1 {
        return Err(err(
            last_line,
            "unexpected end of file, expecting \"}\"".into(),
        ));
    }
    Ok(stack.pop().map(|(_, c)| c).unwrap_or_default())
}
