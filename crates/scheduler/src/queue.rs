//! The scheduling queue (`pkg/scheduler/backend/queue/scheduling_queue.go`):
//! activeQ ordered by the PrioritySort plugin (priority, then the time the pod
//! entered the queue), backoffQ ordered by backoff expiry (1s doubling up to
//! 10s per attempt), and unschedulablePods parked until a cluster event that
//! one of their rejecting plugins cares about (`EventsToRegister`) or five
//! minutes pass. Pods with scheduling gates wait in unschedulablePods too
//! (the SchedulingGates PreEnqueue plugin). Time comes from an injected
//! [`Clock`], so tests are deterministic.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::framework::PluginName;
use crate::pod::PodInfo;

/// `DefaultPodInitialBackoffDuration`.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// `DefaultPodMaxBackoffDuration`.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);
/// `DefaultPodMaxInUnschedulablePodsDuration`.
pub const DEFAULT_MAX_IN_UNSCHEDULABLE: Duration = Duration::from_secs(5 * 60);

/// A monotonic clock.
pub trait Clock: fmt::Debug {
    /// Time since an arbitrary fixed origin.
    fn now(&self) -> Duration;
}

/// The real clock.
#[derive(Debug, Clone)]
pub struct RealClock(Instant);

impl Default for RealClock {
    fn default() -> Self {
        Self(Instant::now())
    }
}

impl Clock for RealClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A clock tests move by hand (shared by clones).
#[derive(Debug, Clone, Default)]
pub struct FakeClock(Arc<AtomicU64>);

impl FakeClock {
    /// Moves the clock forward.
    pub fn step(&self, d: Duration) {
        self.0.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::SeqCst))
    }
}

/// A cluster change that may make unschedulable pods schedulable
/// (`framework.ClusterEvent`, reduced to what the default plugins register for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A node was added.
    NodeAdd,
    /// A node was deleted.
    NodeDelete,
    /// A node's labels changed.
    NodeLabelChange,
    /// A node's taints or `spec.unschedulable` changed.
    NodeTaintChange,
    /// A node's allocatable changed.
    NodeAllocatableChange,
    /// A pod was bound (or an assigned pod appeared).
    AssignedPodAdd,
    /// An assigned pod changed (labels, resources scaled down …).
    AssignedPodUpdate,
    /// An assigned pod was deleted.
    AssignedPodDelete,
    /// Unconditional: every unschedulable pod moves (`ForceActivate`,
    /// `UnschedulableTimeout`).
    Any,
}

impl ClusterEvent {
    /// Whether a pod rejected by `plugin` could become schedulable after this
    /// event (each plugin's `EventsToRegister`).
    pub fn interests(self, plugin: PluginName) -> bool {
        use ClusterEvent::*;
        use PluginName as P;
        if self == Any || self == NodeAdd {
            return true;
        }
        match plugin {
            P::NodeUnschedulable | P::TaintToleration => self == NodeTaintChange,
            P::NodeName => false,
            P::NodeAffinity => self == NodeLabelChange,
            P::NodePorts => self == AssignedPodDelete,
            P::NodeResourcesFit => matches!(
                self,
                AssignedPodDelete | AssignedPodUpdate | NodeAllocatableChange
            ),
            P::PodTopologySpread => matches!(
                self,
                AssignedPodAdd
                    | AssignedPodUpdate
                    | AssignedPodDelete
                    | NodeDelete
                    | NodeLabelChange
                    | NodeTaintChange
            ),
            P::InterPodAffinity => {
                matches!(
                    self,
                    AssignedPodAdd | AssignedPodUpdate | AssignedPodDelete | NodeLabelChange
                )
            }
            _ => true,
        }
    }
}

/// A pod in the queue (`framework.QueuedPodInfo`).
#[derive(Debug, Clone)]
pub struct QueuedPodInfo {
    /// The pod.
    pub pod: PodInfo,
    /// When it last entered the queue (orders activeQ, starts backoff).
    pub timestamp: Duration,
    /// When it first entered the queue.
    pub initial_attempt_timestamp: Duration,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// Plugins that rejected it in the last attempt.
    pub unschedulable_plugins: BTreeSet<PluginName>,
    /// Waiting for `spec.schedulingGates` to be removed.
    pub gated: bool,
}

/// Where a pod is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodLocation {
    /// In activeQ, ready to pop.
    Active,
    /// In backoffQ, waiting for its backoff to expire.
    Backoff,
    /// In unschedulablePods, waiting for an event.
    Unschedulable,
    /// Popped, being scheduled.
    InFlight,
}

type ActiveKey = (std::cmp::Reverse<i32>, Duration, u64, String);
type BackoffKey = (Duration, u64, String);

/// The queue.
#[derive(Debug)]
pub struct SchedulingQueue<C: Clock> {
    clock: C,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_in_unschedulable: Duration,
    pods: HashMap<String, (QueuedPodInfo, PodLocation)>,
    active: BTreeSet<ActiveKey>,
    backoff: BTreeSet<BackoffKey>,
    /// uid → its key in activeQ or backoffQ, for O(log n) removal.
    keys: HashMap<String, (Option<ActiveKey>, Option<BackoffKey>)>,
    seq: u64,
    scheduling_cycle: u64,
    move_request_cycle: u64,
}

impl<C: Clock> SchedulingQueue<C> {
    /// A queue with upstream's default backoff (1s initial, 10s max).
    pub fn new(clock: C) -> Self {
        Self::with_backoff(clock, DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_BACKOFF)
    }

    /// A queue with `podInitialBackoffSeconds`/`podMaxBackoffSeconds`.
    pub fn with_backoff(clock: C, initial: Duration, max: Duration) -> Self {
        Self {
            clock,
            initial_backoff: initial,
            max_backoff: max,
            max_in_unschedulable: DEFAULT_MAX_IN_UNSCHEDULABLE,
            pods: HashMap::new(),
            active: BTreeSet::new(),
            backoff: BTreeSet::new(),
            keys: HashMap::new(),
            seq: 0,
            scheduling_cycle: 0,
            move_request_cycle: 0,
        }
    }

    /// The current scheduling cycle (increases with every pop).
    pub fn scheduling_cycle(&self) -> u64 {
        self.scheduling_cycle
    }

    fn place(&mut self, mut q: QueuedPodInfo, loc: PodLocation) {
        self.remove_from_sets(&q.pod.uid);
        let uid = q.pod.uid.clone();
        self.seq += 1;
        match loc {
            PodLocation::Active => {
                let key = (
                    std::cmp::Reverse(q.pod.priority),
                    q.timestamp,
                    self.seq,
                    uid.clone(),
                );
                self.active.insert(key.clone());
                self.keys.insert(uid.clone(), (Some(key), None));
            }
            PodLocation::Backoff => {
                let expiry = q.timestamp + self.backoff_duration(q.attempts);
                let key = (expiry, self.seq, uid.clone());
                self.backoff.insert(key.clone());
                self.keys.insert(uid.clone(), (None, Some(key)));
            }
            PodLocation::Unschedulable | PodLocation::InFlight => {}
        }
        q.gated = q.pod.scheduling_gated;
        self.pods.insert(uid, (q, loc));
    }

    fn remove_from_sets(&mut self, uid: &str) {
        if let Some((a, b)) = self.keys.remove(uid) {
            if let Some(a) = a {
                self.active.remove(&a);
            }
            if let Some(b) = b {
                self.backoff.remove(&b);
            }
        }
    }

    /// `calculateBackoffDuration`: initial × 2^(attempts-1), capped.
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        let mut d = self.initial_backoff;
        for _ in 1..attempts {
            if d > self.max_backoff.saturating_sub(d) {
                return self.max_backoff;
            }
            d += d;
        }
        d.min(self.max_backoff)
    }

    fn backoff_expired(&self, q: &QueuedPodInfo) -> bool {
        q.timestamp + self.backoff_duration(q.attempts) <= self.clock.now()
    }

    /// `Add`: a new pending pod (gated pods wait in unschedulablePods).
    pub fn add(&mut self, pod: PodInfo) {
        let now = self.clock.now();
        let q = QueuedPodInfo {
            gated: pod.scheduling_gated,
            pod,
            timestamp: now,
            initial_attempt_timestamp: now,
            attempts: 0,
            unschedulable_plugins: BTreeSet::new(),
        };
        let loc = if q.gated {
            PodLocation::Unschedulable
        } else {
            PodLocation::Active
        };
        self.place(q, loc);
    }

    /// `Update`: a pending pod changed. In activeQ/backoffQ it is replaced in
    /// place; an unschedulable pod is retried (backoffQ or activeQ), a gated
    /// one once its gates are gone.
    pub fn update(&mut self, pod: PodInfo) {
        let Some((mut q, loc)) = self.pods.get(&pod.uid).cloned() else {
            self.add(pod);
            return;
        };
        q.pod = pod;
        match loc {
            PodLocation::Active | PodLocation::Backoff | PodLocation::InFlight => {
                self.place(q, loc)
            }
            PodLocation::Unschedulable => {
                if q.pod.scheduling_gated {
                    self.place(q, PodLocation::Unschedulable);
                } else {
                    let loc = if q.attempts > 0 && !self.backoff_expired(&q) {
                        PodLocation::Backoff
                    } else {
                        PodLocation::Active
                    };
                    self.place(q, loc);
                }
            }
        }
    }

    /// `Delete`.
    pub fn delete(&mut self, uid: &str) {
        self.remove_from_sets(uid);
        self.pods.remove(uid);
    }

    /// `Pop`: the most important active pod; it stays in-flight until
    /// [`Self::done`], [`Self::add_unschedulable_if_not_present`] or
    /// [`Self::requeue_after_error`].
    pub fn pop(&mut self) -> Option<QueuedPodInfo> {
        let key = self.active.pop_first()?;
        self.keys.remove(&key.3);
        let (q, loc) = self.pods.get_mut(&key.3)?;
        *loc = PodLocation::InFlight;
        q.attempts += 1;
        self.scheduling_cycle += 1;
        Some(q.clone())
    }

    /// `Done`: the popped pod was scheduled (or given up on).
    pub fn done(&mut self, uid: &str) {
        if matches!(self.pods.get(uid), Some((_, PodLocation::InFlight))) {
            self.pods.remove(uid);
        }
    }

    /// `AddUnschedulableIfNotPresent`: the pod fit nowhere in the cycle that
    /// started at `pod_scheduling_cycle`. If a move request happened since,
    /// it goes to backoffQ right away; else it waits in unschedulablePods.
    pub fn add_unschedulable_if_not_present(
        &mut self,
        mut q: QueuedPodInfo,
        unschedulable_plugins: BTreeSet<PluginName>,
        pod_scheduling_cycle: u64,
    ) {
        if let Some((_, loc)) = self.pods.get(&q.pod.uid) {
            if *loc != PodLocation::InFlight {
                return;
            }
        }
        q.timestamp = self.clock.now();
        q.unschedulable_plugins = unschedulable_plugins;
        let loc = if self.move_request_cycle >= pod_scheduling_cycle {
            PodLocation::Backoff
        } else {
            PodLocation::Unschedulable
        };
        self.place(q, loc);
    }

    /// A cycle failed with an error (not a fit failure): retry after backoff.
    pub fn requeue_after_error(&mut self, mut q: QueuedPodInfo) {
        q.timestamp = self.clock.now();
        q.unschedulable_plugins.clear();
        self.place(q, PodLocation::Backoff);
    }

    /// `MoveAllToActiveOrBackoffQueue`: unschedulable pods whose rejecting
    /// plugins care about the event go to backoffQ (still backing off) or activeQ.
    pub fn move_all_to_active_or_backoff(&mut self, event: ClusterEvent) {
        let movable: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, (q, loc))| {
                *loc == PodLocation::Unschedulable
                    && !q.gated
                    && (q.unschedulable_plugins.is_empty()
                        || q.unschedulable_plugins.iter().any(|p| event.interests(*p)))
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in movable {
            if let Some((q, _)) = self.pods.get(&uid).cloned() {
                let loc = if self.backoff_expired(&q) {
                    PodLocation::Active
                } else {
                    PodLocation::Backoff
                };
                self.place(q, loc);
            }
        }
        self.move_request_cycle = self.scheduling_cycle;
    }

    /// `flushBackoffQCompleted` and `flushUnschedulablePodsLeftover`: the
    /// binary calls this every second.
    pub fn flush(&mut self) {
        let now = self.clock.now();
        while let Some(first) = self.backoff.first().cloned() {
            if first.0 > now {
                break;
            }
            self.backoff.pop_first();
            self.keys.remove(&first.2);
            if let Some((q, _)) = self.pods.get(&first.2).cloned() {
                self.place(q, PodLocation::Active);
            }
        }
        let stale: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, (q, loc))| {
                *loc == PodLocation::Unschedulable
                    && !q.gated
                    && now.saturating_sub(q.timestamp) > self.max_in_unschedulable
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in stale {
            if let Some((q, _)) = self.pods.get(&uid).cloned() {
                let loc = if self.backoff_expired(&q) {
                    PodLocation::Active
                } else {
                    PodLocation::Backoff
                };
                self.place(q, loc);
            }
        }
    }

    /// Where a pod is.
    pub fn location(&self, uid: &str) -> Option<PodLocation> {
        self.pods.get(uid).map(|(_, l)| *l)
    }

    /// Counts of (active, backoff, unschedulable) pods — the `pending_pods` metric.
    pub fn pending(&self) -> (usize, usize, usize) {
        let unsched = self
            .pods
            .values()
            .filter(|(_, l)| *l == PodLocation::Unschedulable)
            .count();
        (self.active.len(), self.backoff.len(), unsched)
    }
}
