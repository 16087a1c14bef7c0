//! What a CEL `messageExpression` may produce, for admission policies and CRD validation
//! rules alike (upstream checks both the same way): a string that, trimmed, is not
//! empty, fits in 5 KiB and holds one line. Anything else falls back to the static
//! message.

use ferrokube_cel::Value;

/// Upstream's `MaxEvaluatedMessageExpressionSizeBytes`.
const MAX_MESSAGE_BYTES: usize = 5 * 1024;

/// The message a messageExpression's result gives, if it is usable.
pub fn usable(result: &Value) -> Option<String> {
    let Value::String(s) = result else {
        return None;
    };
    let s = s.trim();
    (!s.is_empty() && s.len() <= MAX_MESSAGE_BYTES && !s.contains('\n')).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_single_line_strings() {
        assert_eq!(usable(&Value::from("  too big  ")), Some("too big".into()));
        assert_eq!(usable(&Value::from("   ")), None);
        assert_eq!(usable(&Value::from("a\nb")), None);
        assert_eq!(usable(&Value::from("x".repeat(5 * 1024 + 1))), None);
        assert_eq!(usable(&Value::Int(1)), None);
    }
}
