//! Controller expectations (upstream `pkg/controller/controller_utils.go`
//! `ControllerExpectations`): after a controller creates or deletes N pods it waits
//! until its informer has seen them before syncing that owner again — otherwise a
//! stale cache makes it create or delete twice. Expectations older than five minutes
//! are treated as met, so a lost watch event cannot wedge an owner.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

const TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, Copy)]
struct Expected {
    adds: i64,
    dels: i64,
    at: Instant,
}

/// Outstanding creations/deletions per owner key.
#[derive(Debug, Default)]
pub struct Expectations {
    map: Mutex<HashMap<String, Expected>>,
}

impl Expectations {
    /// Whether `key` may sync: nothing outstanding, expired, or never recorded.
    pub fn satisfied(&self, key: &str) -> bool {
        match self.map.lock().get(key) {
            None => true,
            Some(e) => (e.adds <= 0 && e.dels <= 0) || e.at.elapsed() > TTL,
        }
    }

    /// Records that `adds` creations and `dels` deletions are in flight for `key`.
    pub fn expect(&self, key: &str, adds: i64, dels: i64) {
        self.map.lock().insert(
            key.to_string(),
            Expected {
                adds,
                dels,
                at: Instant::now(),
            },
        );
    }

    /// The informer saw one of `key`'s creations (or a creation failed).
    pub fn creation_observed(&self, key: &str) {
        if let Some(e) = self.map.lock().get_mut(key) {
            e.adds -= 1;
        }
    }

    /// The informer saw one of `key`'s deletions (or a deletion failed).
    pub fn deletion_observed(&self, key: &str) {
        if let Some(e) = self.map.lock().get_mut(key) {
            e.dels -= 1;
        }
    }

    /// Forgets `key` (its owner was deleted).
    pub fn delete(&self, key: &str) {
        self.map.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satisfied_once_every_expected_change_is_observed() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"));
        e.expect("ns/rs", 2, 1);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.deletion_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
        e.delete("ns/rs");
        assert!(e.satisfied("ns/rs"));
    }
}
