//! Node health bookkeeping (upstream `nodeHealthData` and `tryUpdateNodeHealth` of
//! `pkg/controller/nodelifecycle/node_lifecycle_controller.go`): when the controller
//! last saw the kubelet's Ready heartbeat or Lease renewal change — by its own clock,
//! to be immune to clock skew — and, past the grace period, the node's conditions set
//! to Unknown.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::nodeutil::node_condition;

/// The conditions the controller sets to Unknown (NetworkUnavailable is left to the
/// control plane, as upstream).
const CONDITION_TYPES: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// What the controller remembers of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// When (by the controller's clock) the node last showed a sign of life.
    pub probe: Timestamp,
    pub ready_transition: Timestamp,
    /// The Ready condition last seen.
    pub ready: Option<NodeCondition>,
    /// The Lease last seen (`Some(renewTime)`), if any.
    pub lease: Option<Option<Timestamp>>,
}

/// The outcome of looking at one node.
#[derive(Debug, Clone)]
pub struct Assessment {
    /// The node's Ready condition as it was read (a synthetic Unknown one when it has
    /// none).
    pub observed: NodeCondition,
    /// The health to remember (if the status write below fails).
    pub health: Health,
    /// The node's status was changed (conditions set to Unknown) and must be written;
    /// the health to remember once it was.
    pub written: Option<Health>,
}

fn creation(node: &Node, now: Timestamp) -> Timestamp {
    node.metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0)
}

fn renew_time(lease: &Lease) -> Option<Timestamp> {
    lease.spec.as_ref()?.renew_time.as_ref().map(|t| t.0)
}

fn fresh(node: &Node, now: Timestamp) -> Health {
    Health {
        probe: now,
        ready_transition: now,
        ready: node_condition(node, "Ready").cloned(),
        lease: None,
    }
}

/// Upstream `tryUpdateNodeHealth` up to (not including) the status write: updates the
/// remembered health from the node and its Lease and, when neither changed within the
/// grace period (`startup_grace` for a node that never posted Ready), sets the node's
/// conditions to Unknown in `node`.
pub fn assess(
    node: &mut Node,
    saved: Option<Health>,
    lease: Option<&Lease>,
    now: Timestamp,
    monitor_grace: Duration,
    startup_grace: Duration,
) -> Assessment {
    let current = node_condition(node, "Ready").cloned();
    let (observed, grace, mut health) = match &current {
        None => {
            let created = creation(node, now);
            let observed = NodeCondition {
                type_: "Ready".into(),
                status: "Unknown".into(),
                last_heartbeat_time: Some(Time(created)),
                last_transition_time: Some(Time(created)),
                ..NodeCondition::default()
            };
            let health = match saved.clone() {
                Some(h) => Some(Health { ready: None, ..h }),
                None => Some(Health {
                    probe: created,
                    ready_transition: created,
                    ready: None,
                    lease: None,
                }),
            };
            (observed, startup_grace, health)
        }
        Some(c) => (c.clone(), monitor_grace, saved.clone()),
    };
    // As upstream, the saved condition is read after a node without Ready had its
    // remembered status replaced.
    let saved_condition = health.as_ref().and_then(|h| h.ready.clone());
    let saved_lease = health.as_ref().and_then(|h| h.lease);
    match (&health, &saved_condition, &current) {
        (None, _, _) | (Some(_), None, Some(_)) | (Some(_), Some(_), None) => {
            health = Some(fresh(node, now));
        }
        (Some(h), Some(s), Some(c)) if s.last_heartbeat_time != c.last_heartbeat_time => {
            let transition = if s.last_transition_time != c.last_transition_time {
                now
            } else {
                h.ready_transition
            };
            health = Some(Health {
                ready_transition: transition,
                ..fresh(node, now)
            });
        }
        _ => {}
    }
    let mut health = health.unwrap_or_else(|| fresh(node, now));
    // A renewed Lease always counts as a sign of life.
    if let Some(lease) = lease {
        let observed_renew = renew_time(lease);
        let renewed = match saved_lease {
            None => true,
            Some(saved) => matches!((saved, observed_renew), (Some(a), Some(b)) if a < b),
        };
        if renewed {
            health.lease = Some(observed_renew);
            health.probe = now;
        }
    }
    let grace = SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX);
    let expired = health
        .probe
        .checked_add(grace)
        .is_ok_and(|deadline| now > deadline);
    if !expired {
        return Assessment {
            observed,
            health,
            written: None,
        };
    }
    let created = creation(node, now);
    let status = node.status.get_or_insert_with(Default::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    for type_ in CONDITION_TYPES {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            None => conditions.push(NodeCondition {
                type_: type_.into(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_heartbeat_time: Some(Time(created)),
                last_transition_time: Some(Time(now)),
            }),
            Some(c) if c.status != "Unknown" => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
            }
            Some(_) => {}
        }
    }
    let new_ready = node_condition(node, "Ready").cloned();
    let written = (new_ready.as_ref() != Some(&observed)).then(|| Health {
        probe: health.probe,
        ready_transition: now,
        ready: new_ready,
        lease: lease.map(renew_time),
    });
    Assessment {
        observed,
        health,
        written,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::api::core::v1::NodeStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    const GRACE: Duration = Duration::from_secs(40);
    const STARTUP: Duration = Duration::from_secs(60);

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn node(ready: Option<(&str, i64)>) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some("n".into());
        n.metadata.creation_timestamp = Some(Time(t(0)));
        n.status = Some(NodeStatus {
            conditions: ready.map(|(s, hb)| {
                vec![NodeCondition {
                    type_: "Ready".into(),
                    status: s.into(),
                    last_heartbeat_time: Some(Time(t(hb))),
                    last_transition_time: Some(Time(t(0))),
                    ..NodeCondition::default()
                }]
            }),
            ..NodeStatus::default()
        });
        n
    }

    fn lease(renew: i64) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(t(renew))),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        }
    }

    #[test]
    fn unknown_after_grace_without_heartbeat() {
        let mut n = node(Some(("True", 0)));
        let a = assess(&mut n, None, None, t(1), GRACE, STARTUP);
        assert!(a.written.is_none());
        assert_eq!(a.health.probe, t(1));
        // Same heartbeat 41 s later (by our clock): Unknown.
        let mut n2 = node(Some(("True", 0)));
        let b = assess(&mut n2, Some(a.health.clone()), None, t(42), GRACE, STARTUP);
        assert!(b.written.is_some());
        assert_eq!(b.observed.status, "True");
        let conds = n2.status.unwrap().conditions.unwrap();
        assert_eq!(conds.len(), 4);
        assert!(conds.iter().all(|c| c.status == "Unknown"));
        assert_eq!(conds[0].reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            conds[0].message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        assert_eq!(conds[1].reason.as_deref(), Some("NodeStatusNeverUpdated"));
    }

    #[test]
    fn heartbeat_or_lease_keeps_the_node_alive() {
        let mut n = node(Some(("True", 0)));
        let a = assess(&mut n, None, Some(&lease(0)), t(1), GRACE, STARTUP);
        let mut n = node(Some(("True", 30)));
        let b = assess(
            &mut n,
            Some(a.health),
            Some(&lease(0)),
            t(30),
            GRACE,
            STARTUP,
        );
        assert_eq!(b.health.probe, t(30));
        // Heartbeat frozen, but the lease was renewed.
        let mut n = node(Some(("True", 30)));
        let c = assess(
            &mut n,
            Some(b.health),
            Some(&lease(60)),
            t(60),
            GRACE,
            STARTUP,
        );
        assert_eq!(c.health.probe, t(60));
        let mut n = node(Some(("True", 30)));
        let d = assess(
            &mut n,
            Some(c.health),
            Some(&lease(60)),
            t(90),
            GRACE,
            STARTUP,
        );
        assert!(d.written.is_none());
        let mut n = node(Some(("True", 30)));
        let e = assess(
            &mut n,
            Some(d.health),
            Some(&lease(60)),
            t(101),
            GRACE,
            STARTUP,
        );
        assert!(e.written.is_some());
    }

    #[test]
    fn never_posted_uses_startup_grace_from_creation() {
        let mut n = node(None);
        let a = assess(&mut n, None, None, t(59), GRACE, STARTUP);
        assert!(a.written.is_none());
        assert_eq!(a.health.probe, t(0));
        let mut n = node(None);
        let b = assess(&mut n, Some(a.health), None, t(61), GRACE, STARTUP);
        assert!(b.written.is_some());
        let conds = n.status.unwrap().conditions.unwrap();
        assert_eq!(conds[0].reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(
            conds[0].message.as_deref(),
            Some("Kubelet never posted node status.")
        );
    }
}
