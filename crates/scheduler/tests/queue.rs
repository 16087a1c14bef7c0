//! The scheduling queue with a fake clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use ferrokube_scheduler::framework::PluginName;
use ferrokube_scheduler::queue::{ClusterEvent, FakeClock, PodLocation, SchedulingQueue};
use serde_json::json;

fn prio(name: &str, p: i64) -> ferrokube_scheduler::pod::PodInfo {
    pod(merge(
        pod_json(name, "1", "1Gi"),
        json!({"spec": {"priority": p}}),
    ))
}

#[test]
fn active_queue_orders_by_priority_then_time() {
    let clock = FakeClock::default();
    let mut q = SchedulingQueue::new(clock.clone());
    q.add(prio("low", 1));
    clock.step(Duration::from_millis(1));
    q.add(prio("high-late", 10));
    q.add(prio("high-later", 10));
    let order: Vec<_> = std::iter::from_fn(|| q.pop()).map(|p| p.pod.name).collect();
    assert_eq!(order, ["high-late", "high-later", "low"]);
}

#[test]
fn backoff_doubles_up_to_max() {
    let q = SchedulingQueue::new(FakeClock::default());
    let secs: Vec<_> = (1..=6).map(|a| q.backoff_duration(a).as_secs()).collect();
    assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
}

#[test]
fn unschedulable_pods_move_on_interesting_events_through_backoff() {
    let clock = FakeClock::default();
    let mut q = SchedulingQueue::new(clock.clone());
    q.add(prio("p", 0));
    let popped = q.pop().unwrap();
    let cycle = q.scheduling_cycle();
    q.add_unschedulable_if_not_present(
        popped,
        BTreeSet::from([PluginName::NodeResourcesFit]),
        cycle,
    );
    assert_eq!(q.location("p"), Some(PodLocation::Unschedulable));
    // A label change does not help a pod lacking resources.
    q.move_all_to_active_or_backoff(ClusterEvent::NodeLabelChange);
    assert_eq!(q.location("p"), Some(PodLocation::Unschedulable));
    // A deleted pod frees resources: the pod backs off first (1s after 1 attempt).
    q.move_all_to_active_or_backoff(ClusterEvent::AssignedPodDelete);
    assert_eq!(q.location("p"), Some(PodLocation::Backoff));
    clock.step(Duration::from_millis(999));
    q.flush();
    assert_eq!(q.location("p"), Some(PodLocation::Backoff));
    clock.step(Duration::from_millis(1));
    q.flush();
    assert_eq!(q.location("p"), Some(PodLocation::Active));
    assert_eq!(q.pending(), (1, 0, 0));
}

#[test]
fn move_request_during_the_cycle_sends_the_pod_to_backoff() {
    let mut q = SchedulingQueue::new(FakeClock::default());
    q.add(prio("p", 0));
    let popped = q.pop().unwrap();
    let cycle = q.scheduling_cycle();
    q.move_all_to_active_or_backoff(ClusterEvent::NodeAdd);
    q.add_unschedulable_if_not_present(popped, BTreeSet::from([PluginName::NodeAffinity]), cycle);
    assert_eq!(q.location("p"), Some(PodLocation::Backoff));
}

#[test]
fn leftover_unschedulable_pods_are_flushed_after_five_minutes() {
    let clock = FakeClock::default();
    let mut q = SchedulingQueue::new(clock.clone());
    q.add(prio("p", 0));
    let popped = q.pop().unwrap();
    q.add_unschedulable_if_not_present(popped, BTreeSet::from([PluginName::NodeName]), 1);
    clock.step(Duration::from_secs(300));
    q.flush();
    assert_eq!(q.location("p"), Some(PodLocation::Unschedulable));
    clock.step(Duration::from_secs(1));
    q.flush();
    assert_eq!(q.location("p"), Some(PodLocation::Active));
}

#[test]
fn gated_pods_wait_until_ungated() {
    let mut q = SchedulingQueue::new(FakeClock::default());
    let gated = merge(
        pod_json("g", "1", "1Gi"),
        json!({"spec": {"schedulingGates": [{"name": "x"}]}}),
    );
    q.add(pod(gated.clone()));
    assert_eq!(q.location("g"), Some(PodLocation::Unschedulable));
    q.move_all_to_active_or_backoff(ClusterEvent::Any);
    assert_eq!(q.location("g"), Some(PodLocation::Unschedulable));
    q.update(pod(merge(gated, json!({"spec": {"schedulingGates": []}}))));
    assert_eq!(q.location("g"), Some(PodLocation::Active));
    q.delete("g");
    assert_eq!(q.location("g"), None);
    assert!(q.pop().is_none());
}
