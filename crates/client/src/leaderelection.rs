//! Leader election on a `coordination.k8s.io/v1` Lease: client-go's
//! `tools/leaderelection` (`LeaderElector.Run`, `acquire`, `renew`,
//! `tryAcquireOrRenew`, `release`) over `resourcelock.LeaseLock`, with upstream's
//! semantics:
//!
//! - identity `<hostname>_<uuid>` ([`new_identity`], as kube-controller-manager and
//!   kube-scheduler build it);
//! - lease duration 15s, renew deadline 10s, retry period 2s by default
//!   ([`LeaderElectionConfig`], flags in [`LeaderElectionFlags`]);
//! - a candidate tries every retry period (jittered by up to 1.2×, `wait.JitterUntil`)
//!   and takes the Lease when it does not exist, is released (empty holder), or has
//!   expired. Expiry is judged as upstream judges it: by the *local* time at which
//!   this candidate last saw the record change plus `leaseDurationSeconds` (client-go's
//!   `observedTime`), never by comparing the holder's `renewTime` with the local clock,
//!   so clock skew between nodes does not matter;
//! - taking over sets `acquireTime` and increments `leaseTransitions`;
//! - the leader renews `renewTime` every retry period with an optimistic update (PUT
//!   with the Lease's `resourceVersion`; a conflict falls back to get-then-update);
//! - a leader that cannot renew within the renew deadline has lost the Lease: the work
//!   is told to stop ([`Leadership::stopped`]) and [`LeaderElector::run`] returns
//!   [`Ended::LostLeadership`] (upstream components exit the process then);
//! - on shutdown with `release_on_cancel` (`ReleaseOnCancel`) a leader writes an empty
//!   holder and `leaseDurationSeconds: 1` (keeping `leaseTransitions`) so another
//!   candidate takes over at once, after its own work has stopped.
//!
//! ```text
//!   Candidate ──try every retry period──▶ Leading ──renew fails for renew deadline──▶ Lost
//!       │                                    │
//!       └─────────── shutdown ───────────────┴──▶ Shutdown (release if configured)
//! ```

mod leaselock;

use std::hash::{BuildHasher as _, Hasher as _};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tokio::time::Instant;

use leaselock::LeaseLock;
pub use leaselock::{LeaderElectionRecord, LockError};

/// client-go's `JitterFactor` for the acquire loop.
const JITTER_FACTOR: f64 = 1.2;

/// Upstream's `--leader-elect-lease-duration` default.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// Upstream's `--leader-elect-renew-deadline` default.
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// Upstream's `--leader-elect-retry-period` default.
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Why leader election could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaderElectionError {
    /// `NewLeaderElector`'s checks.
    #[error("leaseDuration must be greater than renewDeadline")]
    LeaseDurationNotAboveRenewDeadline,
    /// `NewLeaderElector`'s checks.
    #[error("renewDeadline must be greater than retryPeriod*JitterFactor")]
    RenewDeadlineTooShort,
    /// A duration was zero.
    #[error("{what} must be greater than zero")]
    NotPositive { what: &'static str },
    /// No identity.
    #[error("Lock identity is empty")]
    EmptyIdentity,
    /// No lease name.
    #[error("--leader-elect-resource-name must not be empty")]
    EmptyName,
}

/// client-go's `LeaderElectionConfig` timing (and `ReleaseOnCancel`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    /// How long non-leaders wait after observing a renewal before taking over.
    pub lease_duration: Duration,
    /// How long the leader keeps retrying to renew before giving up leadership.
    pub renew_deadline: Duration,
    /// How long candidates wait between tries.
    pub retry_period: Duration,
    /// Release the Lease (empty holder) when shut down while leading.
    pub release_on_cancel: bool,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        LeaderElectionConfig {
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
            release_on_cancel: false,
        }
    }
}

impl LeaderElectionConfig {
    /// `NewLeaderElector`'s validation, with upstream's messages.
    pub fn validate(&self) -> Result<(), LeaderElectionError> {
        if self.lease_duration <= self.renew_deadline {
            return Err(LeaderElectionError::LeaseDurationNotAboveRenewDeadline);
        }
        if self.renew_deadline.as_secs_f64() <= JITTER_FACTOR * self.retry_period.as_secs_f64() {
            return Err(LeaderElectionError::RenewDeadlineTooShort);
        }
        for (what, d) in [
            ("leaseDuration", self.lease_duration),
            ("renewDeadline", self.renew_deadline),
            ("retryPeriod", self.retry_period),
        ] {
            if d.is_zero() {
                return Err(LeaderElectionError::NotPositive { what });
            }
        }
        Ok(())
    }
}

/// Upstream's leader-election flags (`componentbaseconfig.LeaderElectionConfiguration`
/// as bound by kube-controller-manager and kube-scheduler). The resource name default
/// is per component: set it on the command with
/// `cmd.mut_arg("leader_elect_resource_name", |a| a.default_value("kube-scheduler"))`.
#[derive(Debug, Clone, clap::Args)]
pub struct LeaderElectionFlags {
    /// Start a leader election client and gain leadership before executing the main
    /// loop. Enable this when running replicated components for high availability.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub leader_elect: bool,
    /// The duration that non-leader candidates will wait after observing a leadership
    /// renewal until attempting to acquire leadership of a led but unrenewed leader
    /// slot.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// The interval between attempts by the acting master to renew a leadership slot
    /// before it stops leading. Must be less than the lease duration.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// The duration the clients should wait between attempting acquisition and renewal
    /// of a leadership.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
    /// The type of resource object that is used for locking during leader election.
    /// Only `leases` is supported.
    #[arg(long, default_value = "leases", value_parser = ["leases"])]
    pub leader_elect_resource_lock: String,
    /// The name of resource object that is used for locking during leader election.
    #[arg(long, default_value = "kube-controller-manager")]
    pub leader_elect_resource_name: String,
    /// The namespace of resource object that is used for locking during leader
    /// election.
    #[arg(long, default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,
}

impl Default for LeaderElectionFlags {
    fn default() -> Self {
        LeaderElectionFlags {
            leader_elect: true,
            leader_elect_lease_duration: DEFAULT_LEASE_DURATION,
            leader_elect_renew_deadline: DEFAULT_RENEW_DEADLINE,
            leader_elect_retry_period: DEFAULT_RETRY_PERIOD,
            leader_elect_resource_lock: "leases".into(),
            leader_elect_resource_name: "kube-controller-manager".into(),
            leader_elect_resource_namespace: "kube-system".into(),
        }
    }
}

impl LeaderElectionFlags {
    /// The timing as a [`LeaderElectionConfig`] (`release_on_cancel` off, as in
    /// kube-controller-manager; kube-scheduler turns it on).
    pub fn config(&self) -> LeaderElectionConfig {
        LeaderElectionConfig {
            lease_duration: self.leader_elect_lease_duration,
            renew_deadline: self.leader_elect_renew_deadline,
            retry_period: self.leader_elect_retry_period,
            release_on_cancel: false,
        }
    }
}

/// Go `time.ParseDuration` for the forms flags use: `15s`, `500ms`, `1m30s`, `2h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("invalid duration {s:?} (want e.g. 15s, 500ms, 1m30s)");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(err());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let value: f64 = rest[..num_end].parse().map_err(|_| err())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| err())
}

/// `<hostname>_<uuid>`, the identity kube-controller-manager and kube-scheduler use.
pub fn new_identity() -> String {
    format!("{}_{}", hostname(), uuid::Uuid::new_v4())
}

/// The kernel's host name (Go's `os.Hostname`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// How [`LeaderElector::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Was leading and could not renew within the renew deadline (upstream:
    /// `OnStoppedLeading` → "leaderelection lost", process exit).
    LostLeadership,
    /// The shutdown signal fired (before or while leading).
    Shutdown,
}

/// Handed to the work when leadership is acquired: the identity and the signal that
/// leadership is over. The signal is a `watch::Receiver<bool>` that turns `true` (or
/// whose sender is dropped) when the work must stop — the same shape as the shutdown
/// signal the rest of ferrokube uses, so it can be passed on to every task the work
/// spawns.
#[derive(Debug, Clone)]
pub struct Leadership {
    identity: String,
    stop: watch::Receiver<bool>,
}

impl Leadership {
    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Still leading (not stopped, elector alive)?
    pub fn is_leading(&self) -> bool {
        !*self.stop.borrow() && self.stop.has_changed().is_ok()
    }

    /// Resolves when leadership is lost or the elector shuts down (or is dropped).
    pub async fn stopped(&mut self) {
        let _ = self.stop.wait_for(|stop| *stop).await;
    }

    /// The stop signal, to hand to spawned tasks.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }
}

/// client-go's `HealthzAdaptor` (`NewLeaderHealthzAdaptor(timeout)`): a health check
/// that fails when this candidate is the leader but has not renewed for longer than
/// the lease duration + `timeout` (kube-controller-manager and kube-scheduler use 20s)
/// — a wedged leader is reported unhealthy so it gets restarted. Wire it with
/// `health.add(Endpoint::Healthz, "leaderElection", Arc::new(move || adaptor.check()))`.
#[derive(Debug, Clone)]
pub struct HealthzAdaptor {
    state: std::sync::Arc<std::sync::Mutex<Option<(bool, Instant, String)>>>,
    lease_duration: Duration,
    timeout: Duration,
}

impl HealthzAdaptor {
    /// `Ok` unless leading and overdue.
    pub fn check(&self) -> Result<(), String> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*state {
            Some((true, observed, lease)) => {
                let late = observed.elapsed();
                if late > self.lease_duration + self.timeout {
                    Err(format!(
                        "failed election to renew leadership on lease {lease}"
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }
}

/// client-go's `LeaderElector` on a Lease.
pub struct LeaderElector {
    lock: LeaseLock,
    identity: String,
    config: LeaderElectionConfig,
    observed: Option<LeaderElectionRecord>,
    observed_time: Instant,
    leader: watch::Sender<String>,
    healthz: std::sync::Arc<std::sync::Mutex<Option<(bool, Instant, String)>>>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("lock", &self.lock.describe())
            .field("identity", &self.identity)
            .field("config", &self.config)
            .field("observed", &self.observed)
            .finish_non_exhaustive()
    }
}

async fn signalled(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// A uniform random number in [0, 1) without a PRNG dependency (std's hasher keys are
/// randomly seeded per `RandomState`).
fn random_unit() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// `wait.Jitter(d, factor)`.
fn jitter(d: Duration, factor: f64) -> Duration {
    d + d.mul_f64(factor * random_unit())
}

/// `metav1.NowMicro()`: the Lease's times have microsecond precision on the wire.
fn now_micro() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now)
}

impl LeaderElector {
    /// An elector for Lease `<namespace>/<name>` (`NewLeaderElector` +
    /// `resourcelock.New("leases", …)`), checking the config as upstream does.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: impl Into<String>,
        config: LeaderElectionConfig,
    ) -> Result<LeaderElector, LeaderElectionError> {
        config.validate()?;
        let identity = identity.into();
        if identity.is_empty() {
            return Err(LeaderElectionError::EmptyIdentity);
        }
        if name.is_empty() {
            return Err(LeaderElectionError::EmptyName);
        }
        Ok(LeaderElector {
            lock: LeaseLock::new(client, namespace, name),
            identity,
            config,
            observed: None,
            observed_time: Instant::now(),
            leader: watch::channel(String::new()).0,
            healthz: std::sync::Arc::default(),
        })
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The holder identity last observed (`GetLeader`; client-go's `OnNewLeader`
    /// callback is a change on this channel). Empty until known or when released.
    pub fn leader(&self) -> watch::Receiver<String> {
        self.leader.subscribe()
    }

    /// `Run`: campaigns until leading (or `shutdown`), then runs
    /// `on_started_leading(leadership)` concurrently with renewing. The work is
    /// polled on this task (no spawn), so dropping or aborting the `run` future stops
    /// it too. When leadership ends the work's [`Leadership::stopped`] resolves; `run`
    /// waits up to the renew deadline for the work to return (then drops it), releases
    /// the Lease if configured and the shutdown was graceful, and returns how it
    /// ended. Work that returns early does not end leadership: renewing continues
    /// until shutdown, as upstream.
    pub async fn run<F, Fut>(
        mut self,
        mut shutdown: watch::Receiver<bool>,
        on_started_leading: F,
    ) -> Result<Ended, LeaderElectionError>
    where
        F: FnOnce(Leadership) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        if !self.acquire(&mut shutdown).await {
            return Ok(Ended::Shutdown);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let work = on_started_leading(Leadership {
            identity: self.identity.clone(),
            stop: stop_rx,
        });
        tokio::pin!(work);
        let mut work_done = false;
        let ended = {
            let renew = self.renew(&mut shutdown);
            tokio::pin!(renew);
            loop {
                tokio::select! {
                    ended = &mut renew => break ended,
                    () = &mut work, if !work_done => work_done = true,
                }
            }
        };
        let _ = stop_tx.send(true);
        match ended {
            Ended::LostLeadership => {
                tracing::error!(lease = %self.lock.describe(), identity = %self.identity, "leaderelection lost");
            }
            Ended::Shutdown => {
                tracing::info!(lease = %self.lock.describe(), "leader election: shutting down");
            }
        }
        if !work_done {
            work_done = tokio::time::timeout(self.config.renew_deadline, &mut work)
                .await
                .is_ok();
            if !work_done {
                tracing::warn!(lease = %self.lock.describe(), "leader election: work did not stop within the renew deadline; dropping it");
            }
        }
        if ended == Ended::Shutdown {
            if self.config.release_on_cancel && work_done {
                self.release().await;
            }
            // Not leading any more: the healthz watchdog has nothing to watch.
            *self
                .healthz
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
        Ok(ended)
    }

    /// `acquire`: tries every jittered retry period until leading (`true`) or shutdown
    /// (`false`).
    async fn acquire(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let desc = self.lock.describe();
        tracing::info!(lease = %desc, identity = %self.identity, "attempting to acquire leader lease");
        loop {
            let attempt =
                tokio::time::timeout(self.config.renew_deadline, self.try_acquire_or_renew());
            let acquired = tokio::select! {
                r = attempt => matches!(r, Ok(true)),
                () = signalled(shutdown) => return false,
            };
            if acquired {
                tracing::info!(lease = %desc, identity = %self.identity, "successfully acquired lease");
                return true;
            }
            tokio::select! {
                () = tokio::time::sleep(self.next_attempt_in()) => {}
                () = signalled(shutdown) => return false,
            }
        }
    }

    /// How long a candidate waits before its next try: upstream's jittered retry period,
    /// or less when the observed lease runs out sooner, so the first try after expiry
    /// is not up to a whole jittered period late (the lease's validity is judged exactly
    /// as upstream judges it).
    fn next_attempt_in(&self) -> Duration {
        let jittered = jitter(self.config.retry_period, JITTER_FACTOR);
        let now = Instant::now();
        if !self.is_lease_valid(now) {
            return jittered;
        }
        jittered.min(self.lease_expiry().saturating_duration_since(now) + Duration::from_millis(20))
    }

    /// `renew`: every retry period, renew; if no try succeeds within the renew
    /// deadline, leadership is lost.
    async fn renew(&mut self, shutdown: &mut watch::Receiver<bool>) -> Ended {
        loop {
            let deadline = Instant::now() + self.config.renew_deadline;
            let retry = self.config.retry_period;
            let renewed = {
                let attempts = async {
                    loop {
                        if self.try_acquire_or_renew().await {
                            return;
                        }
                        tokio::time::sleep(retry).await;
                    }
                };
                tokio::select! {
                    r = tokio::time::timeout_at(deadline, attempts) => r.is_ok(),
                    () = signalled(shutdown) => return Ended::Shutdown,
                }
            };
            if !renewed {
                tracing::info!(lease = %self.lock.describe(), "failed to renew lease: timed out waiting for the condition");
                return Ended::LostLeadership;
            }
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                () = signalled(shutdown) => return Ended::Shutdown,
            }
        }
    }

    fn is_leader(&self) -> bool {
        self.observed
            .as_ref()
            .is_some_and(|r| r.holder_identity == self.identity)
    }

    /// The `leaderElection` health check with upstream's `timeout` (20s in
    /// kube-controller-manager and kube-scheduler).
    pub fn healthz_adaptor(&self, timeout: Duration) -> HealthzAdaptor {
        HealthzAdaptor {
            state: self.healthz.clone(),
            lease_duration: self.config.lease_duration,
            timeout,
        }
    }

    /// `isLeaseValid`: observed time + the record's lease duration still ahead.
    fn is_lease_valid(&self, now: Instant) -> bool {
        self.lease_expiry() > now
    }

    /// When the observed lease runs out: observed time + the record's lease duration.
    fn lease_expiry(&self) -> Instant {
        let secs = self
            .observed
            .as_ref()
            .map_or(0, |r| r.lease_duration_seconds.max(0).unsigned_abs());
        self.observed_time + Duration::from_secs(u64::from(secs))
    }

    /// `setObservedRecord`: remembers the record and when it was seen.
    fn set_observed(&mut self, record: LeaderElectionRecord) {
        self.observed_time = Instant::now();
        if self.observed.as_ref().map(|r| &r.holder_identity) != Some(&record.holder_identity) {
            if !record.holder_identity.is_empty() {
                tracing::info!(lease = %self.lock.describe(), leader = %record.holder_identity, "new leader elected");
            }
            let holder = record.holder_identity.clone();
            self.leader.send_if_modified(|l| {
                let changed = *l != holder;
                *l = holder;
                changed
            });
        }
        let leading = record.holder_identity == self.identity;
        *self
            .healthz
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((leading, self.observed_time, self.lock.describe()));
        self.observed = Some(record);
    }

    /// `tryAcquireOrRenew`: one attempt; `true` when this candidate holds the Lease.
    async fn try_acquire_or_renew(&mut self) -> bool {
        let now = now_micro();
        let mut desired = LeaderElectionRecord {
            holder_identity: self.identity.clone(),
            lease_duration_seconds: i32::try_from(self.config.lease_duration.as_secs())
                .unwrap_or(i32::MAX),
            acquire_time: Some(now),
            renew_time: Some(now),
            leader_transitions: 0,
        };

        // 1. Fast path: the leader updates optimistically from its last observation.
        if self.is_leader() && self.is_lease_valid(Instant::now()) {
            if let Some(old) = &self.observed {
                desired.acquire_time = old.acquire_time;
                desired.leader_transitions = old.leader_transitions;
            }
            match self.lock.update(&desired).await {
                Ok(()) => {
                    self.set_observed(desired);
                    return true;
                }
                Err(e) => {
                    tracing::warn!(lease = %self.lock.describe(), error = %e, "failed to update lock optimistically, falling back to slow path");
                }
            }
        }

        // 2. Get (or create) the record.
        let old = match self.lock.get().await {
            Ok(Some(old)) => old,
            Ok(None) => {
                return match self.lock.create(&desired).await {
                    Ok(()) => {
                        self.set_observed(desired);
                        true
                    }
                    Err(e) => {
                        tracing::warn!(lease = %self.lock.describe(), error = %e, "error initially creating lease lock");
                        false
                    }
                };
            }
            Err(e) => {
                tracing::warn!(lease = %self.lock.describe(), error = %e, "error retrieving resource lock");
                return false;
            }
        };

        // 3. Record obtained: check the holder and the time.
        if self.observed.as_ref() != Some(&old) {
            self.set_observed(old.clone());
        }
        if !old.holder_identity.is_empty()
            && self.is_lease_valid(Instant::now())
            && !self.is_leader()
        {
            tracing::debug!(lease = %self.lock.describe(), holder = %old.holder_identity, "lock is held and has not yet expired");
            return false;
        }

        // 4. Take or keep it.
        if self.is_leader() {
            desired.acquire_time = old.acquire_time;
            desired.leader_transitions = old.leader_transitions;
        } else {
            desired.leader_transitions = old.leader_transitions.saturating_add(1);
        }
        match self.lock.update(&desired).await {
            Ok(()) => {
                self.set_observed(desired);
                true
            }
            Err(e) => {
                tracing::warn!(lease = %self.lock.describe(), error = %e, "failed to update lock");
                false
            }
        }
    }

    /// `release`: an empty holder with a 1s lease so the next candidate takes over
    /// immediately; `leaseTransitions` is kept.
    async fn release(&mut self) -> bool {
        let deadline = self.config.renew_deadline;
        let attempt = async {
            // Refresh the resourceVersion first, as upstream does.
            if let Ok(Some(current)) = self.lock.get().await {
                if self.observed.as_ref() != Some(&current) {
                    self.set_observed(current);
                }
            }
            if !self.is_leader() {
                return true;
            }
            let now = now_micro();
            let record = LeaderElectionRecord {
                holder_identity: String::new(),
                lease_duration_seconds: 1,
                acquire_time: Some(now),
                renew_time: Some(now),
                leader_transitions: self.observed.as_ref().map_or(0, |r| r.leader_transitions),
            };
            match self.lock.update(&record).await {
                Ok(()) => {
                    self.set_observed(record);
                    tracing::info!(lease = %self.lock.describe(), "released lease");
                    true
                }
                Err(e) => {
                    tracing::warn!(lease = %self.lock.describe(), error = %e, "failed to release lock");
                    false
                }
            }
        };
        tokio::time::timeout(deadline, attempt)
            .await
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn config_validation_matches_upstream() {
        assert!(LeaderElectionConfig::default().validate().is_ok());
        let mut c = LeaderElectionConfig {
            lease_duration: Duration::from_secs(10),
            ..LeaderElectionConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(LeaderElectionError::LeaseDurationNotAboveRenewDeadline)
        ));
        c.lease_duration = Duration::from_secs(15);
        c.retry_period = Duration::from_secs(9);
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "renewDeadline must be greater than retryPeriod*JitterFactor"
        );
    }

    #[test]
    fn identity_is_hostname_underscore_uuid() {
        let id = new_identity();
        let (host, uuid) = id.rsplit_once('_').unwrap();
        assert_eq!(host, hostname());
        assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{id}");
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn jitter_stays_within_factor() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(2), JITTER_FACTOR);
            assert!(
                d >= Duration::from_secs(2) && d <= Duration::from_millis(4400),
                "{d:?}"
            );
        }
    }

    #[test]
    fn healthz_adaptor_fails_only_for_an_overdue_leader() {
        let state = std::sync::Arc::new(std::sync::Mutex::new(None));
        let adaptor = HealthzAdaptor {
            state: state.clone(),
            lease_duration: Duration::from_secs(15),
            timeout: Duration::from_secs(20),
        };
        assert!(adaptor.check().is_ok());
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(40))
            .unwrap_or_else(Instant::now);
        *state.lock().unwrap() = Some((false, long_ago, "kube-system/x".to_string()));
        assert!(adaptor.check().is_ok(), "a follower is never unhealthy");
        *state.lock().unwrap() = Some((true, Instant::now(), "kube-system/x".to_string()));
        assert!(adaptor.check().is_ok());
        if long_ago.elapsed() >= Duration::from_secs(40) {
            *state.lock().unwrap() = Some((true, long_ago, "kube-system/x".to_string()));
            assert_eq!(
                adaptor.check().unwrap_err(),
                "failed election to renew leadership on lease kube-system/x"
            );
        }
    }

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        le: LeaderElectionFlags,
    }

    #[test]
    fn flags_have_upstream_names_and_defaults() {
        let c = Cmd::parse_from(["x"]);
        assert!(c.le.leader_elect);
        assert_eq!(c.le.config(), LeaderElectionConfig::default());
        assert_eq!(c.le.leader_elect_resource_namespace, "kube-system");
        let c = Cmd::parse_from([
            "x",
            "--leader-elect=false",
            "--leader-elect-lease-duration=30s",
            "--leader-elect-renew-deadline=20s",
            "--leader-elect-retry-period=4s",
            "--leader-elect-resource-name=kube-scheduler",
        ]);
        assert!(!c.le.leader_elect);
        assert_eq!(c.le.config().lease_duration, Duration::from_secs(30));
        assert_eq!(c.le.leader_elect_resource_name, "kube-scheduler");
        // The seeds' bare `--leader-elect`.
        assert!(Cmd::parse_from(["x", "--leader-elect"]).le.leader_elect);
    }
}
