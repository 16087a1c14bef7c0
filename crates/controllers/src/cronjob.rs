//! The CronJob controller (upstream `pkg/controller/cronjob`, the v2 controller):
//! creates a Job `<cronjob>-<scheduled minute>` at each scheduled time (the most
//! recent one missed, within `startingDeadlineSeconds`), honours
//! `concurrencyPolicy` (Allow, Forbid, Replace) and `suspend`, tracks `status.active`,
//! `lastScheduleTime` and `lastSuccessfulTime`, and deletes finished Jobs beyond
//! `successfulJobsHistoryLimit`/`failedJobsHistoryLimit`.
//!
//! Schedules run on the wall clock of `spec.timeZone` (or the schedule's `CRON_TZ=`),
//! UTC otherwise, from the IANA database (the host's, else the one compiled in); an
//! unknown zone gets an `UnknownTimeZone` warning and no Jobs.

mod schedule;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::{Api, ResourceExt};

use crate::context::ControllerContext;
use crate::error::{is_conflict, is_not_found, Error, ResultExt};
use crate::events::{object_reference, EventType};
use crate::informer::{key_of, Notification, Store};
use crate::podutil::{controller_ref, new_controller_ref};
use crate::workqueue::{run_workers, WorkQueue};

/// The annotation recording which scheduled time a Job was created for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

struct Controller {
    ctx: ControllerContext,
    cronjobs: Store<CronJob>,
    jobs: Store<Job>,
    queue: Arc<WorkQueue>,
}

/// Starts the CronJob controller.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let cj_inf = ctx.informers.get::<CronJob>();
    let job_inf = ctx.informers.get::<Job>();
    let c = Arc::new(Controller {
        cronjobs: cj_inf.store(),
        jobs: job_inf.store(),
        queue: WorkQueue::new(ctx.name),
        ctx,
    });
    {
        let c = c.clone();
        cj_inf.add_handler(move |n| match n {
            Notification::Add(o)
            | Notification::Update { new: o, .. }
            | Notification::Delete(o) => c.queue.add(key_of(&**o)),
        });
    }
    {
        let c = c.clone();
        job_inf.add_handler(move |n| {
            let job = match n {
                Notification::Add(j)
                | Notification::Update { new: j, .. }
                | Notification::Delete(j) => j,
            };
            if let Some(r) = controller_ref(&job.metadata).filter(|r| r.kind == "CronJob") {
                c.queue.add(format!(
                    "{}/{}",
                    job.namespace().unwrap_or_default(),
                    r.name
                ));
            }
        });
    }
    let workers = c.ctx.config.concurrent_cron_job_syncs;
    let stop = c.ctx.stop.clone();
    tokio::spawn(async move {
        cj_inf.wait_synced().await;
        job_inf.wait_synced().await;
        let queue = c.queue.clone();
        run_workers(queue, workers, stop, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    });
    Ok(())
}

fn finished_as(job: &Job) -> Option<&'static str> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    if conds
        .iter()
        .any(|c| c.type_ == "Complete" && c.status == "True")
    {
        Some("Complete")
    } else if conds
        .iter()
        .any(|c| c.type_ == "Failed" && c.status == "True")
    {
        Some("Failed")
    } else {
        None
    }
}

fn rfc3339(secs: i64) -> String {
    Timestamp::from_second(secs).map_or_else(|_| secs.to_string(), |t| t.to_string())
}

impl Controller {
    fn job_api(&self, ns: &str) -> Api<Job> {
        Api::namespaced(self.ctx.client.clone(), ns)
    }

    async fn sync(&self, key: &str) -> Result<(), Error> {
        let Some(cj) = self.cronjobs.get_key(key) else {
            return Ok(());
        };
        let ns = cj.namespace().unwrap_or_default();
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let spec = cj.spec.clone().unwrap_or_default();
        let mut status = cj.status.clone().unwrap_or_default();
        let mut jobs: Vec<Arc<Job>> = self
            .jobs
            .list_namespace(&ns)
            .into_iter()
            .filter(|j| controller_ref(&j.metadata).is_some_and(|r| r.uid == uid))
            .collect();
        jobs.sort_by_key(|j| j.metadata.creation_timestamp.as_ref().map(|t| t.0));

        // status.active: exactly the owned Jobs still running.
        let mut active: Vec<ObjectReference> = Vec::new();
        for j in &jobs {
            let listed = status
                .active
                .iter()
                .flatten()
                .any(|r| r.uid.as_deref() == j.metadata.uid.as_deref());
            match finished_as(j) {
                None => active.push(object_reference(&**j)),
                Some(cond) if listed => {
                    self.ctx.recorder.event(
                        &*cj,
                        EventType::Normal,
                        "SawCompletedJob",
                        format!("Saw completed job: {}, condition: {cond}", j.name_any()),
                    );
                    if cond == "Complete" {
                        if let Some(t) = j.status.as_ref().and_then(|s| s.completion_time.clone()) {
                            if status
                                .last_successful_time
                                .as_ref()
                                .is_none_or(|l| l.0 < t.0)
                            {
                                status.last_successful_time = Some(t);
                            }
                        }
                    }
                }
                Some(_) => {}
            }
        }
        status.active = (!active.is_empty()).then_some(active);

        // History limits, oldest first.
        for (cond, limit) in [
            ("Complete", spec.successful_jobs_history_limit.unwrap_or(3)),
            ("Failed", spec.failed_jobs_history_limit.unwrap_or(1)),
        ] {
            let done: Vec<&Arc<Job>> = jobs
                .iter()
                .filter(|j| finished_as(j) == Some(cond))
                .collect();
            let surplus = done.len().saturating_sub(limit.max(0) as usize);
            for j in done.into_iter().take(surplus) {
                self.delete_job(&cj, &ns, j).await?;
            }
        }

        let now = Timestamp::now().as_second();
        let mut requeue = None;
        if cj.metadata.deletion_timestamp.is_none() && spec.suspend != Some(true) {
            requeue = self.schedule(&cj, &ns, &spec, &mut status, now).await?;
        }
        self.put_status(&cj, &ns, status).await?;
        if let Some(at) = requeue {
            // A little after the minute, so the next sync sees it as due.
            let wait = (at - now).max(0) as u64;
            self.queue.add_after(
                key.to_string(),
                Duration::from_secs(wait) + Duration::from_millis(100),
            );
        }
        Ok(())
    }

    /// Creates the Job for the most recent due time, if any; returns when to look
    /// again.
    async fn schedule(
        &self,
        cj: &CronJob,
        ns: &str,
        spec: &k8s_openapi::api::batch::v1::CronJobSpec,
        status: &mut k8s_openapi::api::batch::v1::CronJobStatus,
        now: i64,
    ) -> Result<Option<i64>, Error> {
        let sched = match ferrokube_api::kinds::cron::parse(&spec.schedule) {
            Ok(s) => s,
            Err(e) => {
                self.ctx.recorder.event(
                    cj,
                    EventType::Warning,
                    "UnparseableSchedule",
                    format!("unparseable schedule: {:?} : {e}", spec.schedule),
                );
                return Ok(None);
            }
        };
        let zone = match spec.time_zone.clone().or_else(|| sched.tz.clone()) {
            None => None,
            Some(z) => match jiff::tz::TimeZone::get(&z) {
                Ok(tz) => Some(tz),
                Err(_) => {
                    self.ctx.recorder.event(
                        cj,
                        EventType::Warning,
                        "UnknownTimeZone",
                        format!("invalid timeZone: {z:?}: unknown time zone {z}"),
                    );
                    return Ok(None);
                }
            },
        };
        let zone = zone.as_ref();
        let created = cj
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(now, |t| t.0.as_second());
        let mut earliest = status
            .last_schedule_time
            .as_ref()
            .map_or(created, |t| t.0.as_second());
        if let Some(sds) = spec.starting_deadline_seconds {
            earliest = earliest.max(now - sds);
        }
        // The most recent due time in (earliest, now], counting the misses.
        let mut due = None;
        let mut missed = 0u32;
        let mut t = earliest;
        while let Some(n) = schedule::next(&sched, t, zone) {
            if n > now {
                break;
            }
            due = Some(n);
            missed += 1;
            t = n;
            if missed > 100_000 {
                break;
            }
        }
        let next_after_now = schedule::next(&sched, now, zone);
        let Some(due) = due else {
            return Ok(next_after_now);
        };
        if missed > 100 {
            self.ctx.recorder.event(
                cj,
                EventType::Warning,
                "TooManyMissedTimes",
                format!("too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"),
            );
        }
        if let Some(sds) = spec.starting_deadline_seconds {
            if due + sds < now {
                self.ctx.recorder.event(
                    cj,
                    EventType::Warning,
                    "MissSchedule",
                    format!("Missed scheduled time to start a job: {}", rfc3339(due)),
                );
                return Ok(next_after_now);
            }
        }
        let name = format!("{}-{}", cj.name_any(), due / 60);
        if self.jobs.get(ns, &name).is_some() {
            return Ok(next_after_now);
        }
        let running: Vec<ObjectReference> = status.active.clone().unwrap_or_default();
        match spec.concurrency_policy.as_deref() {
            Some("Forbid") if !running.is_empty() => {
                self.ctx.recorder.event(
                    cj,
                    EventType::Normal,
                    "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid",
                );
                return Ok(next_after_now);
            }
            Some("Replace") => {
                for r in &running {
                    if let Some(j) = self.jobs.get(ns, r.name.as_deref().unwrap_or_default()) {
                        self.delete_job(cj, ns, &j).await?;
                    }
                }
                status.active = None;
            }
            _ => {}
        }
        let template = spec.job_template.clone();
        let tm = template.metadata.unwrap_or_default();
        let mut annotations = tm.annotations.unwrap_or_default();
        annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339(due));
        let job = Job {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.to_string()),
                labels: tm.labels,
                annotations: Some(annotations),
                owner_references: Some(vec![new_controller_ref(cj)]),
                ..ObjectMeta::default()
            },
            spec: template.spec,
            status: None,
        };
        let created = match self.job_api(ns).create(&PostParams::default(), &job).await {
            Ok(j) => j,
            Err(e) if is_conflict(&e) => return Ok(next_after_now),
            Err(e) => {
                self.ctx.recorder.event(
                    cj,
                    EventType::Warning,
                    "FailedCreate",
                    format!("Error creating job: {e}"),
                );
                return Err(e).action(format!("creating job {name}"));
            }
        };
        self.ctx.recorder.event(
            cj,
            EventType::Normal,
            "SuccessfulCreate",
            format!("Created job {name}"),
        );
        status
            .active
            .get_or_insert_with(Vec::new)
            .push(object_reference(&created));
        status.last_schedule_time = Timestamp::from_second(due).ok().map(Time);
        Ok(next_after_now)
    }

    async fn delete_job(&self, cj: &CronJob, ns: &str, job: &Job) -> Result<(), Error> {
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match self.job_api(ns).delete(&job.name_any(), &dp).await {
            Ok(_) => {
                self.ctx.recorder.event(
                    cj,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted job {}", job.name_any()),
                );
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).action(format!("deleting job {}", job.name_any())),
        }
    }

    async fn put_status(
        &self,
        cj: &CronJob,
        ns: &str,
        status: k8s_openapi::api::batch::v1::CronJobStatus,
    ) -> Result<(), Error> {
        if cj.status.clone().unwrap_or_default() == status {
            return Ok(());
        }
        let mut updated = cj.clone();
        updated.status = Some(status);
        let api: Api<CronJob> = Api::namespaced(self.ctx.client.clone(), ns);
        match api
            .replace_status(&cj.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).action(format!("updating status of cronjob {}", cj.name_any())),
        }
    }
}
