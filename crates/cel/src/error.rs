//! Compile-time and evaluation-time errors.

/// An error found while parsing or checking an expression.
///
/// The message is formatted like cel-go's issue report:
/// `ERROR: <input>:LINE:COL: <detail>` followed by the offending source line and a caret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CompileError {
    /// Human-readable description of every issue, joined by newlines.
    pub message: String,
}

/// An error raised while evaluating a compiled program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    /// Human-readable description of the failure.
    pub message: String,
}

impl EvalError {
    /// Creates an evaluation error with the given message.
    pub fn new(message: impl Into<String>) -> EvalError {
        EvalError {
            message: message.into(),
        }
    }
}

/// Shorthand for building an `Err(EvalError)`.
pub(crate) fn err<T>(message: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError::new(message))
}

/// A single issue located at a byte offset of the source.
#[derive(Debug, Clone)]
pub(crate) struct Issue {
    pub pos: usize,
    pub detail: String,
}

impl Issue {
    pub fn new(pos: usize, detail: impl Into<String>) -> Issue {
        Issue {
            pos,
            detail: detail.into(),
        }
    }

    pub fn syntax(pos: usize, detail: impl AsRef<str>) -> Issue {
        Issue::new(pos, format!("Syntax error: {}", detail.as_ref()))
    }
}

/// Renders issues in cel-go's format.
pub(crate) fn render(source: &str, issues: &[Issue]) -> CompileError {
    let mut out = Vec::with_capacity(issues.len());
    for issue in issues {
        let pos = issue.pos.min(source.len());
        let mut line_no = 1usize;
        let mut line_start = 0usize;
        for (i, c) in source.char_indices() {
            if i >= pos {
                break;
            }
            if c == '\n' {
                line_no += 1;
                line_start = i + 1;
            }
        }
        let line_end = source
            .get(line_start..)
            .and_then(|rest| rest.find('\n'))
            .map_or(source.len(), |e| line_start + e);
        let line = source.get(line_start..line_end).unwrap_or("");
        let before = source.get(line_start..pos).unwrap_or("");
        let col = before.chars().count() + 1;
        let indicator: String = before
            .chars()
            .map(|c| if c.len_utf8() > 1 { '\u{ff0e}' } else { '.' })
            .collect();
        let line = line.replace('\t', " ");
        out.push(format!(
            "ERROR: <input>:{line_no}:{col}: {}\n | {line}\n | {indicator}^",
            issue.detail
        ));
    }
    CompileError {
        message: out.join("\n"),
    }
}
