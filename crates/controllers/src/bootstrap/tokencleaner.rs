//! The token cleaner (upstream `pkg/controller/bootstrap/tokencleaner.go`): deletes
//! bootstrap token Secrets in kube-system once their `expiration` has passed, and
//! looks at each unexpired one again at the moment it expires.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Preconditions};
use kube::{Api, ResourceExt};

use super::{expiration, is_token_secret, Expiration, TOKEN_NAMESPACE};
use crate::context::ControllerContext;
use crate::error::{is_conflict, is_not_found, Error, ResultExt};
use crate::informer::{key_of, Notification};
use crate::workqueue::{run_workers, WorkQueue};

/// Starts the token cleaner (one worker, as upstream).
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let informer = ctx.informers.get::<Secret>();
    let store = informer.store();
    let queue = WorkQueue::new(ctx.name);
    {
        let queue = queue.clone();
        informer.add_handler(move |n| match n {
            Notification::Add(s) | Notification::Update { new: s, .. } if is_token_secret(s) => {
                queue.add(key_of(&**s))
            }
            _ => {}
        });
    }
    let mut stop = ctx.stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = informer.wait_synced() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        tracing::info!(controller = ctx.name, "starting token cleaner controller");
        let client = ctx.client.clone();
        let q = queue.clone();
        run_workers(queue, 1, stop, move |key| {
            let store = store.clone();
            let client = client.clone();
            let q = q.clone();
            async move {
                let Some(secret) = store.get_key(&key) else {
                    return Ok(());
                };
                eval_secret(&client, &q, &key, &secret).await
            }
        })
        .await;
    });
    Ok(())
}

/// Upstream's `evalSecret`: delete if expired (with a UID precondition, so a
/// re-created Secret of the same name is not hit), else look again at expiry.
async fn eval_secret(
    client: &kube::Client,
    queue: &std::sync::Arc<WorkQueue>,
    key: &str,
    secret: &Secret,
) -> Result<(), Error> {
    match expiration(secret, Timestamp::now()) {
        Expiration::Never => Ok(()),
        Expiration::In(left) => {
            queue.add_after(key.to_string(), left);
            Ok(())
        }
        Expiration::Expired => {
            let name = secret.name_any();
            tracing::info!(secret = %key, "Deleting expired secret");
            let api: Api<Secret> = Api::namespaced(client.clone(), TOKEN_NAMESPACE);
            let dp = DeleteParams {
                preconditions: secret.metadata.uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&name, &dp).await {
                Ok(_) => Ok(()),
                // Already gone, or the UID precondition failed: not errors.
                Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
                Err(e) => Err(e).action("deleting an expired bootstrap token secret"),
            }
        }
    }
}
