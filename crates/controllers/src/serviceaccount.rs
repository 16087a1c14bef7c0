//! The ServiceAccount controller (upstream
//! `pkg/controller/serviceaccount/serviceaccounts_controller.go`): every active
//! namespace has the ServiceAccount `default`; it is created when a namespace appears
//! and re-created when it is deleted.
//!
//! Also [`namespace_is_terminating`], the `NamespaceTerminating` cause check both this
//! controller and the root CA publisher use to drop creates into dying namespaces.

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::PostParams;
use kube::Api;

use crate::context::ControllerContext;
use crate::error::{Error, ResultExt};
use crate::informer::{Notification, Store};
use crate::workqueue::{run_workers, WorkQueue};

/// The service accounts every namespace gets (upstream's `ServiceAccountsToEnsure`).
pub const SERVICE_ACCOUNTS_TO_ENSURE: &[&str] = &["default"];

/// Whether a namespace is `Active` (no phase yet counts as active, as the API server
/// defaults it).
pub fn is_active(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_none_or(|p| p == "Active")
}

/// Whether an API error says the namespace is terminating (upstream's
/// `HasStatusCause(err, NamespaceTerminatingCause)`).
pub fn namespace_is_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s
        .details
        .as_ref()
        .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")))
}

/// Starts the controller (one worker, as upstream).
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let ns_inf = ctx.informers.get::<Namespace>();
    let sa_inf = ctx.informers.get::<ServiceAccount>();
    let queue = WorkQueue::new(ctx.name);
    {
        let queue = queue.clone();
        ns_inf.add_handler(move |n| match n {
            Notification::Add(ns) | Notification::Update { new: ns, .. } => {
                queue.add(ns.metadata.name.clone().unwrap_or_default())
            }
            Notification::Delete(_) => {}
        });
    }
    {
        let queue = queue.clone();
        sa_inf.add_handler(move |n| {
            if let Notification::Delete(sa) = n {
                if let Some(ns) = &sa.metadata.namespace {
                    queue.add(ns.clone());
                }
            }
        });
    }
    let namespaces = ns_inf.store();
    let accounts = sa_inf.store();
    let mut stop = ctx.stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = async { ns_inf.wait_synced().await; sa_inf.wait_synced().await } => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        tracing::info!(controller = ctx.name, "starting service account controller");
        let client = ctx.client.clone();
        run_workers(queue, 1, stop, move |ns| {
            let client = client.clone();
            let namespaces = namespaces.clone();
            let accounts = accounts.clone();
            async move { sync_namespace(&client, &namespaces, &accounts, &ns).await }
        })
        .await;
    });
    Ok(())
}

async fn sync_namespace(
    client: &kube::Client,
    namespaces: &Store<Namespace>,
    accounts: &Store<ServiceAccount>,
    name: &str,
) -> Result<(), Error> {
    let Some(ns) = namespaces.get("", name) else {
        return Ok(());
    };
    if !is_active(&ns) {
        return Ok(());
    }
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    let mut failures = Vec::new();
    for sa in SERVICE_ACCOUNTS_TO_ENSURE {
        if accounts.get(name, sa).is_some() {
            continue;
        }
        let mut obj = ServiceAccount::default();
        obj.metadata.name = Some((*sa).to_string());
        obj.metadata.namespace = Some(name.to_string());
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => tracing::info!(
                namespace = name,
                serviceaccount = sa,
                "created service account"
            ),
            Err(e) if crate::error::is_conflict(&e) || namespace_is_terminating(&e) => {}
            Err(e) => failures.push(e),
        }
    }
    match failures.into_iter().next() {
        None => Ok(()),
        Some(e) => Err(e).action(format!("creating service accounts in namespace {name}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;

    #[test]
    fn active_namespaces() {
        let mut ns = Namespace::default();
        assert!(is_active(&ns));
        ns.status = Some(NamespaceStatus {
            phase: Some("Terminating".into()),
            ..Default::default()
        });
        assert!(!is_active(&ns));
        ns.status = Some(NamespaceStatus {
            phase: Some("Active".into()),
            ..Default::default()
        });
        assert!(is_active(&ns));
    }

    #[test]
    fn terminating_cause() {
        let status = kube::core::Status::failure("forbidden", "Forbidden")
            .with_code(403)
            .with_details(kube::core::response::StatusDetails {
                causes: vec![kube::core::response::StatusCause {
                    reason: "NamespaceTerminating".into(),
                    message: "namespace x is being terminated".into(),
                    field: "metadata.namespace".into(),
                }],
                name: "x".into(),
                group: String::new(),
                kind: "namespaces".into(),
                uid: String::new(),
                retry_after_seconds: 0,
            });
        assert!(namespace_is_terminating(&kube::Error::Api(status.boxed())));
        let plain = kube::core::Status::failure("nope", "Forbidden").with_code(403);
        assert!(!namespace_is_terminating(&kube::Error::Api(plain.boxed())));
    }
}
