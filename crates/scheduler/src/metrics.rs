//! The scheduler's metrics (upstream `pkg/scheduler/metrics`), on the secure port's
//! `/metrics`: `scheduler_schedule_attempts_total{result,profile}`,
//! `scheduler_scheduling_attempt_duration_seconds{result,profile}` and
//! `scheduler_pending_pods{queue}`.

use std::time::Duration;

use ferrokube_component_base::metrics::{CounterVec, GaugeVec, HistogramVec, Registry};

/// What one scheduling attempt came to (upstream's `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Scheduled,
    Unschedulable,
    Error,
}

impl Attempt {
    fn label(self) -> &'static str {
        match self {
            Attempt::Scheduled => "scheduled",
            Attempt::Unschedulable => "unschedulable",
            Attempt::Error => "error",
        }
    }
}

/// The scheduler's metric families.
#[derive(Clone)]
pub struct Metrics {
    attempts: CounterVec,
    duration: HistogramVec,
    pending: GaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers the families in `registry`.
    pub fn register(registry: &Registry) -> Metrics {
        // Upstream: ExponentialBuckets(0.001, 2, 15).
        let buckets: Vec<f64> = (0..15).map(|i| 0.001 * f64::from(1u32 << i)).collect();
        Metrics {
            attempts: registry.counter_vec(
                "scheduler_schedule_attempts_total",
                "[STABLE] Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem.",
                &["profile", "result"],
            ),
            duration: registry.histogram_vec(
                "scheduler_scheduling_attempt_duration_seconds",
                "[STABLE] Scheduling attempt latency in seconds (scheduling algorithm + binding)",
                &["profile", "result"],
                &buckets,
            ),
            pending: registry.gauge_vec(
                "scheduler_pending_pods",
                "[STABLE] Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods that the scheduler attempted to schedule and failed; 'gated' is the number of unschedulable pods that the scheduler never attempted to schedule because they are gated.",
                &["queue"],
            ),
        }
    }

    /// Counts one attempt of `profile` that took `took`.
    pub fn attempt(&self, profile: &str, result: Attempt, took: Duration) {
        self.attempts.with(&[profile, result.label()]).inc();
        self.duration
            .with(&[profile, result.label()])
            .observe(took.as_secs_f64());
    }

    /// The queue sizes: activeQ, backoffQ, unschedulablePods.
    pub fn pending(&self, active: usize, backoff: usize, unschedulable: usize) {
        for (queue, n) in [
            ("active", active),
            ("backoff", backoff),
            ("unschedulable", unschedulable),
            ("gated", 0),
        ] {
            self.pending.with(&[queue]).set(n as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render() {
        let registry = Registry::new();
        let m = Metrics::register(&registry);
        m.attempt(
            "default-scheduler",
            Attempt::Scheduled,
            Duration::from_millis(3),
        );
        m.attempt(
            "default-scheduler",
            Attempt::Unschedulable,
            Duration::from_millis(1),
        );
        m.pending(2, 1, 5);
        let text = registry.encode();
        assert!(text.contains(
            "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"scheduled\"} 1"
        ), "{text}");
        assert!(
            text.contains("scheduler_pending_pods{queue=\"unschedulable\"} 5"),
            "{text}"
        );
        assert!(text.contains("scheduler_scheduling_attempt_duration_seconds_bucket{profile=\"default-scheduler\",result=\"scheduled\",le=\"0.004\"} 1"), "{text}");
    }
}
