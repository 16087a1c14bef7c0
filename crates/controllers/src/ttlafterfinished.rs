//! The TTL-after-finished controller (upstream `pkg/controller/ttlafterfinished`):
//! a finished Job with `spec.ttlSecondsAfterFinished` is deleted (foreground
//! propagation, so its pods go first) that many seconds after it finished.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::{Api, ResourceExt};

use crate::context::ControllerContext;
use crate::error::{is_not_found, Error, ResultExt};
use crate::informer::{key_of, Notification, Store};
use crate::workqueue::{run_workers, WorkQueue};

struct Controller {
    ctx: ControllerContext,
    jobs: Store<Job>,
    queue: Arc<WorkQueue>,
}

/// Starts the controller.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let inf = ctx.informers.get::<Job>();
    let c = Arc::new(Controller {
        jobs: inf.store(),
        queue: WorkQueue::new(ctx.name),
        ctx,
    });
    {
        let c = c.clone();
        inf.add_handler(move |n| {
            if let Notification::Add(j) | Notification::Update { new: j, .. } = n {
                if j.spec
                    .as_ref()
                    .and_then(|s| s.ttl_seconds_after_finished)
                    .is_some()
                {
                    c.queue.add(key_of(&**j));
                }
            }
        });
    }
    let workers = c.ctx.config.concurrent_ttl_after_finished_syncs;
    let stop = c.ctx.stop.clone();
    tokio::spawn(async move {
        inf.wait_synced().await;
        let queue = c.queue.clone();
        run_workers(queue, workers, stop, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    });
    Ok(())
}

/// When the Job finished: its Complete/Failed condition's transition time.
fn finish_time(job: &Job) -> Option<i64> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0.as_second()))
}

impl Controller {
    async fn sync(&self, key: &str) -> Result<(), Error> {
        let Some(job) = self.jobs.get_key(key) else {
            return Ok(());
        };
        if job.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
            return Ok(());
        };
        let Some(finished) = finish_time(&job) else {
            return Ok(());
        };
        let left = finished + i64::from(ttl) - Timestamp::now().as_second();
        if left > 0 {
            self.queue
                .add_after(key.to_string(), Duration::from_secs(left as u64));
            return Ok(());
        }
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            preconditions: Some(Preconditions {
                uid: job.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let api: Api<Job> = Api::namespaced(
            self.ctx.client.clone(),
            &job.namespace().unwrap_or_default(),
        );
        match api.delete(&job.name_any(), &dp).await {
            Ok(_) => {
                tracing::info!(job = %key, "deleted job after its TTL");
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).action(format!("deleting job {key}")),
        }
    }
}
