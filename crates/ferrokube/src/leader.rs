//! Running a component's work under leader election, as upstream's
//! kube-controller-manager and kube-scheduler do: with `--leader-elect` the work starts
//! when this instance acquires the Lease and the process ends when leadership is lost
//! (upstream exits with "leaderelection lost"); without it the work runs at once.
//! SIGTERM/SIGINT stop the work and release the Lease.

use std::future::Future;

use ferrokube_client::{Ended, LeaderElectionFlags, LeaderElector};
use tokio::sync::watch;

/// Runs `work` (given a stop signal) under `flags`' leader election until a signal,
/// lost leadership, or the work returning.
pub async fn run_elected<F, Fut>(
    client: kube::Client,
    flags: &LeaderElectionFlags,
    work: F,
) -> anyhow::Result<()>
where
    F: FnOnce(watch::Receiver<bool>) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let (stop, shutdown) = watch::channel(false);
    let signal = tokio::spawn(async move {
        let _ = crate::server::wait_for_signal().await;
        let _ = stop.send(true);
    });
    let result = if flags.leader_elect {
        let mut config = flags.config();
        config.release_on_cancel = true;
        let elector = LeaderElector::new(
            client,
            &flags.leader_elect_resource_namespace,
            &flags.leader_elect_resource_name,
            ferrokube_client::new_identity(),
            config,
        )?;
        let work = std::sync::Arc::new(tokio::sync::Mutex::new(Some(work)));
        let failed = std::sync::Arc::new(parking_lot::Mutex::new(None::<anyhow::Error>));
        let failure = failed.clone();
        let ended = elector
            .run(shutdown.clone(), move |leadership| {
                let work = work.clone();
                async move {
                    if let Some(w) = work.lock().await.take() {
                        if let Err(e) = w(leadership.stop_signal()).await {
                            *failure.lock() = Some(e);
                        }
                    }
                }
            })
            .await?;
        let failure = failed.lock().take();
        if let Some(e) = failure {
            Err(e)
        } else {
            match ended {
                Ended::LostLeadership => Err(anyhow::anyhow!("leaderelection lost")),
                Ended::Shutdown => Ok(()),
            }
        }
    } else {
        work(shutdown).await
    };
    signal.abort();
    result
}
