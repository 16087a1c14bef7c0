//! Running deeply nested work on a thread with a large stack.
//!
//! Parsing, checking and evaluating recurse once per nesting level of the expression. The
//! nesting is bounded (see [`crate::parser::MAX_DEPTH`]), but in unoptimised builds a few
//! hundred levels can still exceed the 2 MiB stack of a typical worker thread, so deep
//! expressions are processed on a dedicated thread with a generous stack instead.

/// Stack size of the helper thread.
const BIG_STACK: usize = 64 << 20;

/// Runs `f` on a helper thread with a large stack; `on_failure` builds the result when the
/// thread cannot be started.
pub(crate) fn with_big_stack<T, F, E>(f: F, on_failure: E) -> T
where
    T: Send,
    F: FnOnce() -> T + Send,
    E: FnOnce() -> T,
{
    std::thread::scope(|s| {
        match std::thread::Builder::new()
            .name("cel-deep".to_string())
            .stack_size(BIG_STACK)
            .spawn_scoped(s, f)
        {
            Ok(handle) => handle.join().unwrap_or_else(|_| on_failure()),
            Err(_) => on_failure(),
        }
    })
}

/// A cheap upper bound on the nesting the parser may reach for `src`: every bracket,
/// operator or member access can add at most one level.
pub(crate) fn rough_depth(src: &str) -> usize {
    src.bytes()
        .filter(|b| b"([{.!-+*/%<>=&|?,:".contains(b))
        .count()
}
