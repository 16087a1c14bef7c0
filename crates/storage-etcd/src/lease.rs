//! Leases for keys with a TTL, shared between keys whose TTLs are close, as upstream's
//! `storage/etcd3/lease_manager.go`: granting one lease per write would flood etcd (an
//! event's TTL is one hour and there are many events), so a lease is reused while it
//! expires within `[ttl, ttl + reuse)` from now, where `reuse` is 5% of the TTL capped
//! at 60 s, and for at most 1000 objects. A key therefore lives between `ttl` and
//! `ttl + reuse` (plus etcd's rounding of short TTLs up to its minimum lease TTL).

use std::time::Duration;

use etcd_client::LeaseClient;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Upstream's `defaultLeaseReuseDurationSeconds`.
const REUSE_CAP_SECONDS: i64 = 60;
/// Upstream's `leaseReuseDurationPercent`.
const REUSE_PERCENT: f64 = 0.05;
/// Upstream's `defaultLeaseMaxObjectCount`.
const MAX_OBJECTS_PER_LEASE: u64 = 1000;

/// The lease most recently granted.
#[derive(Debug)]
struct Current {
    id: i64,
    expires: Instant,
    attached: u64,
}

#[derive(Debug, Default)]
pub struct LeaseManager {
    /// Held across the grant, as upstream does, so that concurrent writers share one lease.
    current: Mutex<Option<Current>>,
}

/// A TTL in whole seconds, rounded up (etcd leases have second granularity).
pub fn ttl_seconds(ttl: Duration) -> i64 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
}

fn reuse_seconds(ttl: i64) -> i64 {
    // Truncation as upstream's int64(percent * float64(ttl)).
    ((REUSE_PERCENT * ttl as f64) as i64).min(REUSE_CAP_SECONDS)
}

impl LeaseManager {
    /// A lease that keeps a key at least `ttl` seconds and at most `ttl + reuse`.
    pub async fn get_lease(
        &self,
        client: &mut LeaseClient,
        ttl: i64,
    ) -> Result<i64, etcd_client::Error> {
        let now = Instant::now();
        let reuse = reuse_seconds(ttl);
        let mut current = self.current.lock().await;
        if let Some(lease) = current.as_mut() {
            let valid = now + secs(ttl) < lease.expires;
            let sufficient = now + secs(ttl + reuse) > lease.expires;
            lease.attached += 1;
            if valid && sufficient && lease.attached <= MAX_OBJECTS_PER_LEASE {
                return Ok(lease.id);
            }
        }
        let granted = ttl.saturating_add(reuse);
        let resp = client.grant(granted, None).await?;
        *current = Some(Current {
            id: resp.id(),
            expires: now + secs(granted),
            attached: 1,
        });
        Ok(resp.id())
    }

    /// Forgets `id` (etcd said it no longer exists), so the next write gets a new lease.
    pub async fn forget(&self, id: i64) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|c| c.id == id) {
            *current = None;
        }
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(ttl_seconds(Duration::from_millis(1)), 1);
        assert_eq!(ttl_seconds(Duration::from_secs(2)), 2);
        assert_eq!(ttl_seconds(Duration::from_millis(2001)), 3);
        assert_eq!(ttl_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn reuse_window_is_five_percent_capped_at_a_minute() {
        assert_eq!(reuse_seconds(2), 0);
        assert_eq!(reuse_seconds(3600), 60);
        assert_eq!(reuse_seconds(600), 30);
        assert_eq!(reuse_seconds(100_000), 60);
    }
}
