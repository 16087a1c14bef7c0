//! Audit annotations added while a request is served (upstream's
//! `admission.Attributes.AddAnnotation`): admission policies and webhooks add
//! `key: value` pairs that the request's audit event carries in `annotations`. They are
//! kept per request in a task-local, so code deep in the admission chain can add them
//! without threading a handle through every layer.

use std::future::Future;

use parking_lot::Mutex;

tokio::task_local! {
    static ANNOTATIONS: Mutex<Vec<(String, String)>>;
}

/// Adds an annotation to the current request's audit event (nothing outside a request).
pub fn add(key: impl Into<String>, value: impl Into<String>) {
    let (key, value) = (key.into(), value.into());
    let _ = ANNOTATIONS.try_with(|a| {
        let mut a = a.lock();
        // The first value of a key wins, as upstream's AddAnnotation keeps it.
        if !a.iter().any(|(k, _)| *k == key) {
            a.push((key, value));
        }
    });
}

/// Runs a request's handling, returning what it answered and the annotations it added.
pub async fn collect<F: Future>(f: F) -> (F::Output, Vec<(String, String)>) {
    ANNOTATIONS
        .scope(Mutex::new(Vec::new()), async {
            let out = f.await;
            let added = ANNOTATIONS.with(|a| std::mem::take(&mut *a.lock()));
            (out, added)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn annotations_belong_to_their_request() {
        add("outside", "ignored");
        let ((), added) = collect(async {
            add("a", "1");
            add("a", "2");
            add("b", "3");
        })
        .await;
        assert_eq!(added, [("a".into(), "1".into()), ("b".into(), "3".into())]);
    }
}
