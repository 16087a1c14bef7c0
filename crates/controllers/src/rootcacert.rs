//! The root CA certificate publisher (upstream
//! `pkg/controller/certificates/rootcacertpublisher/publisher.go`): every namespace has
//! the ConfigMap `kube-root-ca.crt` with `ca.crt` = the `--root-ca-file` bundle and the
//! `kubernetes.io/description` annotation, so pods can verify the API server on its
//! in-cluster endpoints. Edits are put back, deletions re-created.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::PostParams;
use kube::Api;

use crate::context::ControllerContext;
use crate::error::{is_not_found, Error, ResultExt};
use crate::informer::{Notification, Store};
use crate::serviceaccount::{is_active, namespace_is_terminating};
use crate::workqueue::{run_workers, WorkQueue};

/// `kube-root-ca.crt`.
pub const CONFIG_MAP_NAME: &str = "kube-root-ca.crt";
/// The data key.
pub const DATA_KEY: &str = "ca.crt";
/// `kubernetes.io/description`.
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
/// Upstream's description text.
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// The ConfigMap to write, or `None` when `current` is already right (same data and a
/// non-empty description annotation, as upstream checks).
pub fn desired(current: Option<&ConfigMap>, root_ca: &str, namespace: &str) -> Option<ConfigMap> {
    let data = BTreeMap::from([(DATA_KEY.to_string(), root_ca.to_string())]);
    match current {
        None => {
            let mut cm = ConfigMap {
                data: Some(data),
                ..Default::default()
            };
            cm.metadata.name = Some(CONFIG_MAP_NAME.into());
            cm.metadata.namespace = Some(namespace.into());
            cm.metadata.annotations = Some(BTreeMap::from([(
                DESCRIPTION_ANNOTATION.to_string(),
                DESCRIPTION.to_string(),
            )]));
            Some(cm)
        }
        Some(cm) => {
            let described = cm
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
                .is_some_and(|d| !d.is_empty());
            if cm.data.as_ref() == Some(&data) && described {
                return None;
            }
            let mut cm = cm.clone();
            cm.data = Some(data);
            cm.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
            Some(cm)
        }
    }
}

/// Starts the publisher, or logs and stays off without `--root-ca-file`.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let Some(path) = ctx.config.root_ca_file.clone() else {
        tracing::info!(
            controller = ctx.name,
            "no --root-ca-file given: kube-root-ca.crt ConfigMaps will not be published"
        );
        return Ok(());
    };
    let bytes = std::fs::read(&path).map_err(|source| Error::ReadFile {
        flag: "--root-ca-file",
        path: path.clone(),
        source,
    })?;
    if ferrokube_pki::cert::CertInfo::from_pem(&bytes, &path.display().to_string()).is_err() {
        return Err(Error::Invalid {
            what: format!("--root-ca-file {}", path.display()),
            reason: "no PEM certificate found".into(),
        });
    }
    let root_ca = String::from_utf8_lossy(&bytes).into_owned();

    let ns_inf = ctx.informers.get::<Namespace>();
    let cm_inf = ctx.informers.get::<ConfigMap>();
    let queue = WorkQueue::new(ctx.name);
    {
        let queue = queue.clone();
        ns_inf.add_handler(move |n| match n {
            Notification::Add(ns) => queue.add(ns.metadata.name.clone().unwrap_or_default()),
            Notification::Update { new, .. } if is_active(new) => {
                queue.add(new.metadata.name.clone().unwrap_or_default())
            }
            _ => {}
        });
    }
    {
        let queue = queue.clone();
        cm_inf.add_handler(move |n| {
            let cm = match n {
                Notification::Update { new, .. } => new,
                Notification::Delete(cm) => cm,
                Notification::Add(_) => return,
            };
            if cm.metadata.name.as_deref() == Some(CONFIG_MAP_NAME) {
                if let Some(ns) = &cm.metadata.namespace {
                    queue.add(ns.clone());
                }
            }
        });
    }
    let namespaces = ns_inf.store();
    let cms = cm_inf.store();
    let mut stop = ctx.stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = async { ns_inf.wait_synced().await; cm_inf.wait_synced().await } => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        tracing::info!(
            controller = ctx.name,
            "starting root CA cert publisher controller"
        );
        let client = ctx.client.clone();
        run_workers(queue, 1, stop, move |ns| {
            let client = client.clone();
            let namespaces = namespaces.clone();
            let cms = cms.clone();
            let root_ca = root_ca.clone();
            async move { sync_namespace(&client, &namespaces, &cms, &root_ca, &ns).await }
        })
        .await;
    });
    Ok(())
}

async fn sync_namespace(
    client: &kube::Client,
    namespaces: &Store<Namespace>,
    cms: &Store<ConfigMap>,
    root_ca: &str,
    ns: &str,
) -> Result<(), Error> {
    // Creating into a namespace that is gone or going fails; skip it up front.
    if !namespaces.get("", ns).is_some_and(|n| is_active(&n)) {
        return Ok(());
    }
    let current = cms.get(ns, CONFIG_MAP_NAME);
    let Some(cm) = desired(current.as_deref(), root_ca, ns) else {
        return Ok(());
    };
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    if current.is_none() {
        return match api.create(&PostParams::default(), &cm).await {
            Ok(_) => {
                tracing::info!(namespace = ns, "published kube-root-ca.crt");
                Ok(())
            }
            // Don't retry a create if the namespace doesn't exist or is terminating.
            Err(e) if is_not_found(&e) || namespace_is_terminating(&e) => Ok(()),
            Err(e) => Err(e).action(format!("creating {ns}/{CONFIG_MAP_NAME}")),
        };
    }
    api.replace(CONFIG_MAP_NAME, &PostParams::default(), &cm)
        .await
        .action(format!("updating {ns}/{CONFIG_MAP_NAME}"))?;
    tracing::info!(namespace = ns, "restored kube-root-ca.crt");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn creates_restores_and_leaves_alone() {
        let created = desired(None, "CA", "ns1").unwrap();
        assert_eq!(created.metadata.name.as_deref(), Some(CONFIG_MAP_NAME));
        assert_eq!(created.data.as_ref().unwrap()[DATA_KEY], "CA");
        assert_eq!(
            created.metadata.annotations.as_ref().unwrap()[DESCRIPTION_ANNOTATION],
            DESCRIPTION
        );
        assert!(desired(Some(&created), "CA", "ns1").is_none());
        let mut edited = created.clone();
        edited
            .data
            .as_mut()
            .unwrap()
            .insert("extra".into(), "x".into());
        let fixed = desired(Some(&edited), "CA", "ns1").unwrap();
        assert_eq!(fixed.data, created.data);
        let mut undescribed = created.clone();
        undescribed.metadata.annotations = Some(BTreeMap::from([("other".into(), "y".into())]));
        let fixed = desired(Some(&undescribed), "CA", "ns1").unwrap();
        let ann = fixed.metadata.annotations.unwrap();
        assert_eq!(ann[DESCRIPTION_ANNOTATION], DESCRIPTION);
        assert_eq!(ann["other"], "y");
    }
}
