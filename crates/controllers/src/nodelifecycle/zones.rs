//! Zone-aware rate limiting of NoExecute tainting (upstream
//! `pkg/controller/nodelifecycle/scheduler/rate_limited_queue.go` and the zone-state
//! part of `node_lifecycle_controller.go`): one de-duplicating timed queue per zone,
//! drained through a token bucket (client-go `flowcontrol` `TokenBucketRateLimiter`,
//! burst 1) whose rate follows the zone's health.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition};
use tokio::time::Instant;

/// Upstream `EvictionRateLimiterBurst`.
const EVICTION_RATE_LIMITER_BURST: f64 = 1.0;

/// Node labels naming region and zone (GA and deprecated beta keys).
const LABEL_ZONE_BETA: &str = "failure-domain.beta.kubernetes.io/zone";
const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
const LABEL_REGION_BETA: &str = "failure-domain.beta.kubernetes.io/region";
const LABEL_REGION: &str = "topology.kubernetes.io/region";

/// The node's zone key: `region:\0:zone`, or "" when neither is labelled (upstream
/// `nodetopology.GetZoneKey`).
pub fn zone_key(node: &Node) -> String {
    let Some(labels) = node.metadata.labels.as_ref() else {
        return String::new();
    };
    let get = |beta: &str, ga: &str| {
        labels
            .get(beta)
            .or_else(|| labels.get(ga))
            .cloned()
            .unwrap_or_default()
    };
    let zone = get(LABEL_ZONE_BETA, LABEL_ZONE);
    let region = get(LABEL_REGION_BETA, LABEL_REGION);
    if region.is_empty() && zone.is_empty() {
        return String::new();
    }
    format!("{region}:\0:{zone}")
}

/// A zone's health (upstream `ZoneState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    Initial,
    Normal,
    FullDisruption,
    PartialDisruption,
}

/// How many nodes are not Ready, and the zone's state (upstream `ComputeZoneState`):
/// no Ready node → full disruption; more than two not Ready and at least
/// `unhealthy_threshold` of them → partial disruption; else normal.
pub fn compute_zone_state(
    ready_conditions: &[Option<NodeCondition>],
    unhealthy_threshold: f32,
) -> (usize, ZoneState) {
    let ready = ready_conditions
        .iter()
        .filter(|c| c.as_ref().is_some_and(|c| c.status == "True"))
        .count();
    let not_ready = ready_conditions.len() - ready;
    let state = if ready == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2 && not_ready as f32 / (not_ready + ready) as f32 >= unhealthy_threshold
    {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    };
    (not_ready, state)
}

/// A token bucket; `qps` 0 never admits (upstream's `NewFakeNeverRateLimiter`).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    qps: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilled at `qps`, holding at most one token.
    pub fn new(qps: f64) -> TokenBucket {
        TokenBucket {
            qps,
            tokens: EVICTION_RATE_LIMITER_BURST,
            last: Instant::now(),
        }
    }

    /// The refill rate.
    pub fn qps(&self) -> f64 {
        self.qps
    }

    /// Takes a token if one is available.
    pub fn try_accept(&mut self, now: Instant) -> bool {
        if self.qps <= 0.0 {
            return false;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(EVICTION_RATE_LIMITER_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One queued node.
#[derive(Debug, Clone)]
pub struct TimedValue {
    pub value: String,
    pub uid: String,
    pub process_at: Instant,
    seq: u64,
}

/// Upstream `RateLimitedTimedQueue`: values are queued once (a value stays in the set
/// after it was processed until `remove`), handed out in `process_at` order, each
/// hand-out costing a token.
#[derive(Debug)]
pub struct RateLimitedTimedQueue {
    queue: BTreeMap<(Instant, u64), TimedValue>,
    set: HashSet<String>,
    limiter: TokenBucket,
    seq: u64,
}

impl RateLimitedTimedQueue {
    /// An empty queue limited to `qps`.
    pub fn new(qps: f64) -> RateLimitedTimedQueue {
        RateLimitedTimedQueue {
            queue: BTreeMap::new(),
            set: HashSet::new(),
            limiter: TokenBucket::new(qps),
            seq: 0,
        }
    }

    /// Queues `value` unless it is in the set already; true if added.
    pub fn add(&mut self, value: &str, uid: &str, now: Instant) -> bool {
        if !self.set.insert(value.to_string()) {
            return false;
        }
        self.seq += 1;
        let v = TimedValue {
            value: value.to_string(),
            uid: uid.to_string(),
            process_at: now,
            seq: self.seq,
        };
        self.queue.insert((now, v.seq), v);
        true
    }

    /// Drops `value` from the queue and the set; true if it was in the set.
    pub fn remove(&mut self, value: &str) -> bool {
        self.queue.retain(|_, v| v.value != value);
        self.set.remove(value)
    }

    /// The next value due at `now`, if the limiter grants a token (upstream `Try`'s
    /// loop head); it leaves the queue but stays in the set.
    pub fn take(&mut self, now: Instant) -> Option<TimedValue> {
        let key = *self.queue.keys().next()?;
        if !self.limiter.try_accept(now) {
            return None;
        }
        if now < key.0 {
            return None;
        }
        self.queue.remove(&key)
    }

    /// Puts back a value whose processing failed, due after `wait` (only if it was not
    /// removed meanwhile).
    pub fn retry(&mut self, mut v: TimedValue, now: Instant, wait: Duration) {
        if !self.set.contains(&v.value) {
            return;
        }
        v.process_at = now + wait + Duration::from_nanos(1);
        self.queue.insert((v.process_at, v.seq), v);
    }

    /// Changes the rate (upstream `SwapLimiter`): a limiter that is out of tokens
    /// hands its debt to the new one.
    pub fn swap_limiter(&mut self, qps: f64, now: Instant) {
        if self.limiter.qps() == qps {
            return;
        }
        let mut new = TokenBucket::new(qps);
        if qps > 0.0 && !self.limiter.try_accept(now) {
            new.try_accept(now);
        }
        self.limiter = new;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap as Map;

    fn cond(s: &str) -> Option<NodeCondition> {
        Some(NodeCondition {
            type_: "Ready".into(),
            status: s.into(),
            ..NodeCondition::default()
        })
    }

    #[test]
    fn zone_states() {
        let t = 0.55;
        assert_eq!(
            compute_zone_state(&[cond("True"), cond("Unknown")], t),
            (1, ZoneState::Normal)
        );
        assert_eq!(
            compute_zone_state(&[cond("False"), None], t),
            (2, ZoneState::FullDisruption)
        );
        let partial = [cond("False"), cond("Unknown"), None, cond("True")];
        assert_eq!(
            compute_zone_state(&partial, t),
            (3, ZoneState::PartialDisruption)
        );
        let mostly_fine = [
            cond("False"),
            cond("Unknown"),
            None,
            cond("True"),
            cond("True"),
            cond("True"),
        ];
        assert_eq!(compute_zone_state(&mostly_fine, t), (3, ZoneState::Normal));
    }

    #[test]
    fn zone_keys() {
        let mut node = Node::default();
        assert_eq!(zone_key(&node), "");
        node.metadata.labels = Some(Map::from([
            (LABEL_ZONE.to_string(), "a".to_string()),
            (LABEL_REGION.to_string(), "r".to_string()),
        ]));
        assert_eq!(zone_key(&node), "r:\0:a");
    }

    #[tokio::test(start_paused = true)]
    async fn queue_is_rate_limited_and_deduplicated() {
        let now = Instant::now();
        let mut q = RateLimitedTimedQueue::new(0.1);
        assert!(q.add("a", "1", now));
        assert!(q.add("b", "2", now));
        assert!(!q.add("a", "1", now));
        assert_eq!(q.take(now).unwrap().value, "a");
        // Processed values stay in the set.
        assert!(!q.add("a", "1", now));
        assert!(q.take(now).is_none(), "no token left");
        let later = now + Duration::from_secs(10);
        let b = q.take(later).unwrap();
        assert_eq!(b.value, "b");
        q.retry(b, later, Duration::from_millis(50));
        assert!(q.remove("a"));
        assert!(q.add("a", "1", later));
        assert!(q.remove("b"));
        // A zero rate never admits.
        q.swap_limiter(0.0, later);
        assert!(q.take(later + Duration::from_secs(100)).is_none());
        q.swap_limiter(1.0, later);
        assert_eq!(q.take(later + Duration::from_secs(100)).unwrap().value, "a");
    }
}
