//! The Job controller (upstream `pkg/controller/job`): runs pods until `completions`
//! succeed (NonIndexed, Indexed, or work-queue Jobs without completions), at most
//! `parallelism` at a time; counts finished pods exactly once through the
//! `batch.kubernetes.io/job-tracking` finalizer and `status.uncountedTerminatedPods`;
//! fails the Job on `backoffLimit`, `activeDeadlineSeconds` or a `podFailurePolicy`
//! FailJob rule (FailureTarget, then Failed once no pod runs); completes it with
//! SuccessCriteriaMet then Complete; suspends and resumes; backs off pod re-creation
//! after failures (10 s doubling to 6 min). Indexed Jobs with `backoffLimitPerIndex`
//! count failures per index (the `batch.kubernetes.io/job-index-failure-count`
//! annotation of each replacement pod): an index failing more often than that, or
//! failed by a FailIndex rule, is listed in `status.failedIndexes` and not retried; the
//! Job fails once more than `maxFailedIndexes` indexes failed
//! (MaxFailedIndexesExceeded) or when every index finished and some failed
//! (FailedIndexes).
//!
//! An Indexed Job's `successPolicy` completes it early (reason SuccessPolicy) once a
//! rule's `succeededIndexes`/`succeededCount` are met; its other pods are removed.
//!
//! Not covered: `podReplacementPolicy: Failed`, adopting orphan pods, `managedBy`; the
//! re-creation back-off is per Job, not per index.

mod failurepolicy;
mod indexes;
mod successpolicy;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;

use crate::context::ControllerContext;
use crate::error::{is_not_found, Error, ResultExt};
use crate::events::EventType;
use crate::expectations::Expectations;
use crate::informer::{key_of, Notification, Store};
use crate::podutil::{self, controller_ref};
use crate::workqueue::{run_workers, WorkQueue};
use failurepolicy::Verdict;

/// The pods a sync found and the Job's counts, for [`Controller::manage`].
#[derive(Debug, Clone, Copy)]
struct Counts<'a> {
    active: &'a [&'a Arc<Pod>],
    succeeded: i32,
    failed: i32,
}

/// The finalizer that keeps a finished pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// An Indexed Job's pod index (annotation and label).
pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
/// How many counted failures an index had before this pod (backoffLimitPerIndex).
pub const FAILURE_COUNT_KEY: &str = "batch.kubernetes.io/job-index-failure-count";
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(360);

struct Controller {
    ctx: ControllerContext,
    jobs: Store<Job>,
    pods: Store<Pod>,
    expectations: Expectations,
    queue: Arc<WorkQueue>,
    /// Per Job: the failure count last seen and when pods may be created again.
    backoff: Mutex<HashMap<String, (i32, Instant)>>,
}

/// Starts the Job controller.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let jobs_inf = ctx.informers.get::<Job>();
    let pods_inf = ctx.informers.get::<Pod>();
    let c = Arc::new(Controller {
        jobs: jobs_inf.store(),
        pods: pods_inf.store(),
        expectations: Expectations::default(),
        queue: WorkQueue::new(ctx.name),
        backoff: Mutex::default(),
        ctx,
    });
    {
        let c = c.clone();
        jobs_inf.add_handler(move |n| match n {
            Notification::Add(j) | Notification::Update { new: j, .. } => c.queue.add(key_of(&**j)),
            Notification::Delete(j) => {
                let key = key_of(&**j);
                c.expectations.delete(&key);
                c.backoff.lock().remove(&key);
                c.queue.add(key);
            }
        });
    }
    {
        let c = c.clone();
        pods_inf.add_handler(move |n| {
            let (pod, created, deleted) = match n {
                Notification::Add(p) => (p, true, false),
                Notification::Update { new, .. } => (new, false, false),
                Notification::Delete(p) => (p, false, true),
            };
            let Some(r) = controller_ref(&pod.metadata).filter(|r| r.kind == "Job") else {
                return;
            };
            let key = format!("{}/{}", pod.namespace().unwrap_or_default(), r.name);
            if created {
                c.expectations.creation_observed(&key);
            }
            if deleted || (created && pod.metadata.deletion_timestamp.is_some()) {
                c.expectations.deletion_observed(&key);
            }
            c.queue.add(key);
        });
    }
    let workers = c.ctx.config.concurrent_job_syncs;
    let stop = c.ctx.stop.clone();
    tokio::spawn(async move {
        jobs_inf.wait_synced().await;
        pods_inf.wait_synced().await;
        let queue = c.queue.clone();
        run_workers(queue, workers, stop, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    });
    Ok(())
}

fn condition_true(job: &Job, kind: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
}

/// The (reason, message) of the Job's condition of this kind.
fn condition_reason(job: &Job, kind: &str) -> Option<(String, String)> {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

/// Complete or Failed.
pub fn is_finished(job: &Job) -> bool {
    condition_true(job, "Complete") || condition_true(job, "Failed")
}

fn has_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

/// Whether a pod has finished: `Some(true)` succeeded, `Some(false)` failed (a pod
/// being deleted before it succeeded counts as failed, as upstream's default
/// `podReplacementPolicy: TerminatingOrFailed`).
fn finished(pod: &Pod) -> Option<bool> {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") => Some(true),
        Some("Failed") => Some(false),
        _ if pod.metadata.deletion_timestamp.is_some() => Some(false),
        _ => None,
    }
}

fn pod_index(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INDEX_KEY))
        .and_then(|v| v.parse().ok())
}

fn set_condition(
    status: &mut JobStatus,
    kind: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == kind) {
        if c.status != value {
            c.last_transition_time = Some(Time(now));
        }
        c.status = value.into();
        c.reason = Some(reason.into());
        c.message = Some(message.into());
        c.last_probe_time = Some(Time(now));
        return;
    }
    conds.push(JobCondition {
        type_: kind.into(),
        status: value.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
}

impl Controller {
    fn pod_api(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.ctx.client.clone(), ns)
    }

    async fn sync(&self, key: &str) -> Result<(), Error> {
        let Some(job) = self.jobs.get_key(key) else {
            self.expectations.delete(key);
            return Ok(());
        };
        let ns = job.namespace().unwrap_or_default();
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(&ns)
            .into_iter()
            .filter(|p| controller_ref(&p.metadata).is_some_and(|r| r.uid == uid))
            .collect();
        let done = is_finished(&job);
        if done
            && !pods.iter().any(|p| has_finalizer(p))
            && job
                .status
                .as_ref()
                .and_then(|s| s.uncounted_terminated_pods.as_ref())
                .is_none_or(|u| {
                    u.succeeded.as_ref().is_none_or(Vec::is_empty)
                        && u.failed.as_ref().is_none_or(Vec::is_empty)
                })
        {
            return Ok(());
        }
        let spec = job.spec.clone().unwrap_or_default();
        let now = Timestamp::now();
        let old_status = job.status.clone().unwrap_or_default();
        let mut status = old_status.clone();
        let uncounted = status
            .uncounted_terminated_pods
            .get_or_insert_with(UncountedTerminatedPods::default);
        let mut unc_ok: Vec<String> = uncounted.succeeded.clone().unwrap_or_default();
        let mut unc_failed: Vec<String> = uncounted.failed.clone().unwrap_or_default();
        let known: HashSet<String> = unc_ok.iter().chain(unc_failed.iter()).cloned().collect();

        // Newly finished pods, judged by the failure policy.
        let mut fail_job: Option<(String, String)> = None;
        let mut to_release: Vec<Arc<Pod>> = Vec::new();
        for p in &pods {
            if !has_finalizer(p) {
                continue;
            }
            let Some(ok) = finished(p) else { continue };
            let puid = p.metadata.uid.clone().unwrap_or_default();
            to_release.push(p.clone());
            if known.contains(&puid) {
                continue;
            }
            if ok {
                unc_ok.push(puid);
                continue;
            }
            match spec
                .pod_failure_policy
                .as_ref()
                .map(|pfp| failurepolicy::evaluate(pfp, p))
            {
                Some(Verdict::Ignore) => {}
                Some(Verdict::FailJob(m)) => {
                    fail_job.get_or_insert(("PodFailurePolicy".into(), m));
                    unc_failed.push(puid);
                }
                _ => unc_failed.push(puid),
            }
        }
        let active: Vec<&Arc<Pod>> = pods.iter().filter(|p| podutil::is_active(p)).collect();
        let terminating = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some() && !podutil::is_terminal(p))
            .count();
        let succeeded = old_status.succeeded.unwrap_or(0) + unc_ok.len() as i32;
        let failed = old_status.failed.unwrap_or(0) + unc_failed.len() as i32;
        let indexed = spec.completion_mode.as_deref() == Some("Indexed");
        let completions = spec.completions;
        let mut completed = indexes::parse(
            old_status.completed_indexes.as_deref().unwrap_or(""),
            completions.unwrap_or(0),
        );
        if indexed {
            for p in &pods {
                if finished(p) == Some(true) {
                    if let Some(i) = pod_index(p).filter(|i| *i < completions.unwrap_or(0)) {
                        completed.insert(i);
                    }
                }
            }
        }
        // backoffLimitPerIndex: failures counted per index, indexes that failed for good.
        let per_index = spec.backoff_limit_per_index.filter(|_| indexed);
        let mut failed_indexes = indexes::parse(
            old_status.failed_indexes.as_deref().unwrap_or(""),
            completions.unwrap_or(0),
        );
        let mut failure_counts: HashMap<i32, i32> = HashMap::new();
        // Once the Job is finishing, the pods it removes do not fail their indexes.
        let finishing = done || condition_true(&job, "FailureTarget");
        if let Some(limit) = per_index.filter(|_| !finishing) {
            for p in &pods {
                if finished(p) != Some(false) {
                    continue;
                }
                let Some(i) = pod_index(p).filter(|i| *i < completions.unwrap_or(0)) else {
                    continue;
                };
                let verdict = spec
                    .pod_failure_policy
                    .as_ref()
                    .map_or(Verdict::Count, |pfp| failurepolicy::evaluate(pfp, p));
                let before = p
                    .annotations()
                    .get(FAILURE_COUNT_KEY)
                    .and_then(|v| v.parse::<i32>().ok())
                    .unwrap_or(0);
                let count = match verdict {
                    Verdict::Ignore => before,
                    _ => before + 1,
                };
                let entry = failure_counts.entry(i).or_insert(0);
                *entry = (*entry).max(count);
                if verdict == Verdict::FailIndex || count > limit {
                    failed_indexes.insert(i);
                }
            }
            failed_indexes.retain(|i| !completed.contains(i));
        }
        let suspended = spec.suspend == Some(true);
        if status.start_time.is_none() && !suspended {
            status.start_time = Some(Time(now));
        }
        // Why the Job fails, if it does.
        if fail_job.is_none() && !done {
            let limit = spec.backoff_limit.unwrap_or(6);
            if failed > limit {
                fail_job = Some((
                    "BackoffLimitExceeded".into(),
                    "Job has reached the specified backoff limit".into(),
                ));
            } else if let (Some(ads), Some(start)) =
                (spec.active_deadline_seconds, status.start_time.as_ref())
            {
                if !suspended && now.as_second() - start.0.as_second() >= ads {
                    fail_job = Some((
                        "DeadlineExceeded".into(),
                        "Job was active longer than specified deadline".into(),
                    ));
                }
            }
        }
        if let (Some(_), None, false) = (per_index, &fail_job, done) {
            let all = completions.unwrap_or(0);
            if spec
                .max_failed_indexes
                .is_some_and(|max| failed_indexes.len() as i32 > max)
            {
                fail_job = Some((
                    "MaxFailedIndexesExceeded".into(),
                    "Job has exceeded the specified maximal number of failed indexes".into(),
                ));
            } else if !failed_indexes.is_empty()
                && (completed.len() + failed_indexes.len()) as i32 >= all
            {
                fail_job = Some(("FailedIndexes".into(), "Job has failed indexes".into()));
            }
        }
        if condition_true(&job, "FailureTarget") && fail_job.is_none() {
            fail_job = condition_reason(&job, "FailureTarget");
        }
        // Why the Job succeeds, if it does: all completions, or a successPolicy rule.
        let mut success: Option<(String, String)> = None;
        if !done && fail_job.is_none() {
            let all = match completions {
                Some(c) if indexed => completed.len() as i32 >= c,
                Some(c) => succeeded >= c,
                None => succeeded > 0 && active.is_empty(),
            };
            if all {
                success = Some((
                    "CompletionsReached".into(),
                    "Reached expected number of succeeded pods".into(),
                ));
            } else if let Some(policy) = spec.success_policy.as_ref().filter(|_| indexed) {
                success =
                    successpolicy::matched(policy, &completed, completions.unwrap_or(0)).map(|i| {
                        (
                            "SuccessPolicy".into(),
                            format!("Matched rules at index {i}"),
                        )
                    });
            }
        }
        let complete = success.is_some();

        // Act on pods.
        let mut manage_err = None;
        if done || fail_job.is_some() || complete || suspended {
            let victims: Vec<&Arc<Pod>> = active.clone();
            if !victims.is_empty() {
                if let Err(e) = self.delete_pods(&job, key, &ns, &victims).await {
                    manage_err = Some(e);
                }
            }
        } else if self.expectations.satisfied(key) {
            let settled: BTreeSet<i32> = completed.union(&failed_indexes).copied().collect();
            if let Err(e) = self
                .manage(
                    &job,
                    key,
                    &ns,
                    Counts {
                        active: &active,
                        succeeded,
                        failed,
                    },
                    &settled,
                    per_index.map(|_| &failure_counts),
                )
                .await
            {
                manage_err = Some(e);
            }
        }

        // Status.
        let active_after = active.len() as i32;
        status.active = Some(active_after);
        status.ready = Some(active.iter().filter(|p| podutil::is_ready(p)).count() as i32);
        status.terminating = Some(terminating as i32);
        if indexed {
            status.completed_indexes = Some(indexes::format(&completed));
        }
        if per_index.is_some() {
            status.failed_indexes = Some(indexes::format(&failed_indexes));
        }
        if suspended && !condition_true(&job, "Suspended") {
            set_condition(
                &mut status,
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
                now,
            );
            status.start_time = None;
            self.ctx
                .recorder
                .event(&*job, EventType::Normal, "Suspended", "Job suspended");
        } else if !suspended && condition_true(&job, "Suspended") {
            set_condition(
                &mut status,
                "Suspended",
                "False",
                "JobResumed",
                "Job resumed",
                now,
            );
            self.ctx
                .recorder
                .event(&*job, EventType::Normal, "Resumed", "Job resumed");
        }
        let no_pods_left = active.is_empty() && terminating == 0;
        if let Some((reason, message)) = &fail_job {
            if !condition_true(&job, "FailureTarget") {
                set_condition(&mut status, "FailureTarget", "True", reason, message, now);
            }
            if no_pods_left && !condition_true(&job, "Failed") {
                set_condition(&mut status, "Failed", "True", reason, message, now);
                self.ctx
                    .recorder
                    .event(&*job, EventType::Warning, reason, message.clone());
            }
        }
        if complete || condition_true(&job, "SuccessCriteriaMet") && !done {
            // The reason given when success was first met.
            let (reason, message) = condition_reason(&job, "SuccessCriteriaMet")
                .or(success)
                .unwrap_or_default();
            if !condition_true(&job, "SuccessCriteriaMet") {
                set_condition(
                    &mut status,
                    "SuccessCriteriaMet",
                    "True",
                    &reason,
                    &message,
                    now,
                );
            }
            if no_pods_left && !condition_true(&job, "Complete") {
                set_condition(&mut status, "Complete", "True", &reason, &message, now);
                status.completion_time = Some(Time(now));
                self.ctx
                    .recorder
                    .event(&*job, EventType::Normal, "Completed", "Job completed");
            }
        }

        // Finished pods are first recorded as uncounted, then released from the
        // finalizer, then counted: a crash between the steps never counts twice.
        status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            succeeded: Some(unc_ok.clone()),
            failed: Some(unc_failed.clone()),
        });
        let job = self.put_status(&job, status.clone()).await?;
        if !to_release.is_empty() {
            self.release_pods(&ns, &to_release).await?;
            status.succeeded = Some(succeeded);
            status.failed = Some(failed);
            status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
            self.put_status(&job, status).await?;
        } else if !unc_ok.is_empty() || !unc_failed.is_empty() {
            // Pods already released (or gone): count them.
            status.succeeded = Some(succeeded);
            status.failed = Some(failed);
            status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
            self.put_status(&job, status).await?;
        }
        if let Some(ads) = spec.active_deadline_seconds {
            if fail_job.is_none() && !complete && !suspended {
                if let Some(start) = job.status.as_ref().and_then(|s| s.start_time.as_ref()) {
                    let left = ads - (now.as_second() - start.0.as_second());
                    if left > 0 {
                        self.queue
                            .add_after(key.to_string(), Duration::from_secs(left as u64));
                    }
                }
            }
        }
        match manage_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// PUT /status when something changed; returns the Job as stored.
    async fn put_status(&self, job: &Job, status: JobStatus) -> Result<Job, Error> {
        let clean = |s: &JobStatus| {
            let mut s = s.clone();
            if s.uncounted_terminated_pods.as_ref().is_some_and(|u| {
                u.succeeded.as_ref().is_none_or(Vec::is_empty)
                    && u.failed.as_ref().is_none_or(Vec::is_empty)
            }) {
                s.uncounted_terminated_pods = None;
            }
            for v in [
                &mut s.active,
                &mut s.ready,
                &mut s.terminating,
                &mut s.succeeded,
                &mut s.failed,
            ] {
                if *v == Some(0) {
                    *v = None;
                }
            }
            s
        };
        let status = clean(&status);
        if job.status.as_ref().map(clean) == Some(status.clone()) {
            return Ok(job.clone());
        }
        let mut updated = job.clone();
        updated.status = Some(status);
        let api: Api<Job> = Api::namespaced(
            self.ctx.client.clone(),
            &job.namespace().unwrap_or_default(),
        );
        api.replace_status(&job.name_any(), &PostParams::default(), &updated)
            .await
            .action(format!("updating status of job {}", job.name_any()))
    }

    async fn release_pods(&self, ns: &str, pods: &[Arc<Pod>]) -> Result<(), Error> {
        let api = self.pod_api(ns);
        let results = join_all(pods.iter().map(|p| {
            let api = api.clone();
            async move {
                let rest: Vec<&String> = p
                    .metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .filter(|f| *f != TRACKING_FINALIZER)
                    .collect();
                // The resourceVersion makes the merge patch conditional: a pod changed
                // meanwhile is a 409 and a retry with fresh finalizers.
                let patch = json!({"metadata": {
                    "finalizers": rest,
                    "resourceVersion": p.metadata.resource_version,
                }});
                match api
                    .patch(
                        &p.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if is_not_found(&e) => Ok(()),
                    Err(e) => Err(e).action(format!(
                        "removing the tracking finalizer of pod {}",
                        p.name_any()
                    )),
                }
            }
        }))
        .await;
        results.into_iter().collect()
    }

    async fn delete_pods(
        &self,
        job: &Job,
        key: &str,
        ns: &str,
        victims: &[&Arc<Pod>],
    ) -> Result<(), Error> {
        self.expectations.expect(key, 0, victims.len() as i64);
        let api = self.pod_api(ns);
        let results = join_all(victims.iter().map(|p| {
            let api = api.clone();
            let name = p.name_any();
            async move {
                (
                    name.clone(),
                    api.delete(&name, &DeleteParams::default()).await,
                )
            }
        }))
        .await;
        let mut failure = None;
        for (name, r) in results {
            match r {
                Ok(_) => self.ctx.recorder.event(
                    job,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                ),
                Err(e) if is_not_found(&e) => self.expectations.deletion_observed(key),
                Err(e) => {
                    self.expectations.deletion_observed(key);
                    failure = Some(e);
                }
            }
        }
        match failure {
            Some(e) => Err(e).action(format!("deleting pods of job {key}")),
            None => Ok(()),
        }
    }

    /// Creates and deletes pods towards the spec. `settled` are the indexes that need no
    /// pod (completed or failed); `failure_counts` (with backoffLimitPerIndex) are each
    /// index's counted failures, recorded on its next pod.
    async fn manage(
        &self,
        job: &Job,
        key: &str,
        ns: &str,
        counts: Counts<'_>,
        settled: &BTreeSet<i32>,
        failure_counts: Option<&HashMap<i32, i32>>,
    ) -> Result<(), Error> {
        let Counts {
            active,
            succeeded,
            failed,
        } = counts;
        let spec = job.spec.clone().unwrap_or_default();
        let parallelism = spec.parallelism.unwrap_or(1).max(0);
        let indexed = spec.completion_mode.as_deref() == Some("Indexed");
        let have = active.len() as i32;
        // Which pods to create (their index for Indexed Jobs) and which to delete.
        let mut create: Vec<Option<i32>> = Vec::new();
        let mut delete: Vec<&Arc<Pod>> = Vec::new();
        if indexed {
            let completions = spec.completions.unwrap_or(0);
            let mut held = BTreeSet::new();
            for p in active {
                match pod_index(p) {
                    Some(i) if i < completions && !settled.contains(&i) && held.insert(i) => {}
                    _ => delete.push(p),
                }
            }
            let room = (parallelism - held.len() as i32).max(0) as usize;
            create = (0..completions)
                .filter(|i| !settled.contains(i) && !held.contains(i))
                .take(room)
                .map(Some)
                .collect();
        } else {
            let want = match spec.completions {
                Some(c) => parallelism.min((c - succeeded).max(0)),
                None if succeeded > 0 => have,
                None => parallelism,
            };
            if have > want {
                let mut sorted: Vec<&Arc<Pod>> = active.to_vec();
                sorted.sort_by(|a, b| podutil::deletion_order(a, b));
                delete = sorted.into_iter().take((have - want) as usize).collect();
            } else {
                create = vec![None; (want - have) as usize];
            }
        }
        if !delete.is_empty() {
            self.delete_pods(job, key, ns, &delete).await?;
        }
        if create.is_empty() {
            return Ok(());
        }
        // Back off after failures: 10 s doubling per failure, at most 6 min.
        {
            let mut backoff = self.backoff.lock();
            let entry = backoff
                .entry(key.to_string())
                .or_insert((0, Instant::now()));
            if failed > entry.0 {
                let exp = (failed - 1).clamp(0, 10) as u32;
                let delay = BACKOFF_BASE.saturating_mul(1 << exp).min(BACKOFF_MAX);
                *entry = (failed, Instant::now() + delay);
            }
            let wait = entry.1.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                self.queue.add_after(key.to_string(), wait);
                return Ok(());
            }
        }
        let template = spec.template.clone();
        self.expectations.expect(key, create.len() as i64, 0);
        let api = self.pod_api(ns);
        let pp = PostParams::default();
        let pods: Vec<Pod> = create
            .iter()
            .map(|index| {
                let prefix = match index {
                    Some(i) => format!("{}-{i}", job.name_any()),
                    None => job.name_any(),
                };
                let mut pod = podutil::pod_from_template(&template, job, &prefix);
                pod.metadata
                    .finalizers
                    .get_or_insert_with(Vec::new)
                    .push(TRACKING_FINALIZER.into());
                if let Some(i) = index {
                    pod.metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(INDEX_KEY.into(), i.to_string());
                    pod.metadata
                        .labels
                        .get_or_insert_with(Default::default)
                        .insert(INDEX_KEY.into(), i.to_string());
                    if let Some(counts) = failure_counts {
                        let n = counts.get(i).copied().unwrap_or(0);
                        pod.metadata
                            .annotations
                            .get_or_insert_with(Default::default)
                            .insert(FAILURE_COUNT_KEY.into(), n.to_string());
                    }
                    if let Some(ps) = pod.spec.as_mut() {
                        if ps.hostname.is_none() {
                            ps.hostname = Some(format!("{}-{i}", job.name_any()));
                        }
                        let env = EnvVar {
                            name: "JOB_COMPLETION_INDEX".into(),
                            value: None,
                            value_from: Some(EnvVarSource {
                                field_ref: Some(ObjectFieldSelector {
                                    api_version: None,
                                    field_path: format!("metadata.labels['{INDEX_KEY}']"),
                                }),
                                ..EnvVarSource::default()
                            }),
                        };
                        for c in ps
                            .containers
                            .iter_mut()
                            .chain(ps.init_containers.iter_mut().flatten())
                        {
                            let envs = c.env.get_or_insert_with(Vec::new);
                            if !envs.iter().any(|e| e.name == env.name) {
                                envs.push(env.clone());
                            }
                        }
                    }
                }
                pod
            })
            .collect();
        let results = join_all(pods.iter().map(|p| api.create(&pp, p))).await;
        let mut failure = None;
        for r in results {
            match r {
                Ok(p) => self.ctx.recorder.event(
                    job,
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created pod: {}", p.name_any()),
                ),
                Err(e) => {
                    self.expectations.creation_observed(key);
                    self.ctx.recorder.event(
                        job,
                        EventType::Warning,
                        "FailedCreate",
                        format!("Error creating: {e}"),
                    );
                    failure = Some(e);
                }
            }
        }
        match failure {
            Some(e) => Err(e).action(format!("creating pods for job {key}")),
            None => Ok(()),
        }
    }
}
