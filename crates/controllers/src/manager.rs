//! The controller-manager proper (upstream `cmd/kube-controller-manager/app`): which
//! controllers exist, which `--controllers` enables, and starting the enabled ones on
//! one set of shared informers once this instance leads.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::watch;

use crate::clientbuilder::ClientBuilder;
use crate::context::{ControllerConfig, ControllerContext};
use crate::error::Error;
use crate::events::Recorder;
use crate::informer::Informers;

/// Starts a controller: registers its informer handlers and spawns its workers (which
/// stop when `ctx.stop` flips).
pub type StartFn = fn(ControllerContext) -> Result<(), Error>;

/// One controller upstream knows of.
#[derive(Debug, Clone, Copy)]
pub struct Descriptor {
    /// Canonical name (`names/controller_names.go`).
    pub name: &'static str,
    /// Older names `--controllers` still accepts (e.g. `deployment`).
    pub aliases: &'static [&'static str],
    /// The kube-system service account it runs as with
    /// `--use-service-account-credentials`.
    pub service_account: &'static str,
    /// Whether `*` enables it.
    pub default_on: bool,
    /// `None`: a controller ferrokube does not provide (cloud, volume, DRA …); enabling
    /// it is accepted and logged, as it has nothing to act on in a ferrokube cluster.
    pub start: Option<StartFn>,
}

const fn d(
    name: &'static str,
    aliases: &'static [&'static str],
    service_account: &'static str,
    default_on: bool,
    start: Option<StartFn>,
) -> Descriptor {
    Descriptor {
        name,
        aliases,
        service_account,
        default_on,
        start,
    }
}

/// Every controller of kube-controller-manager v1.33.
pub fn descriptors() -> Vec<Descriptor> {
    vec![
        d(
            "serviceaccount-token-controller",
            &["serviceaccount-token"],
            "tokens-controller",
            true,
            None,
        ),
        d(
            "endpoints-controller",
            &["endpoint"],
            "endpoint-controller",
            true,
            Some(crate::endpoints::start),
        ),
        d(
            "endpointslice-controller",
            &["endpointslice"],
            "endpointslice-controller",
            true,
            Some(crate::endpointslice::start),
        ),
        d(
            "endpointslice-mirroring-controller",
            &["endpointslicemirroring"],
            "endpointslicemirroring-controller",
            true,
            None,
        ),
        d(
            "replicationcontroller-controller",
            &["replicationcontroller"],
            "replication-controller",
            true,
            Some(crate::replicaset::start_replication_controller),
        ),
        d(
            "pod-garbage-collector-controller",
            &["podgc"],
            "pod-garbage-collector",
            true,
            Some(crate::podgc::start),
        ),
        d(
            "resourcequota-controller",
            &["resourcequota"],
            "resourcequota-controller",
            true,
            Some(crate::resourcequota::start),
        ),
        d(
            "namespace-controller",
            &["namespace"],
            "namespace-controller",
            true,
            Some(crate::namespace::start),
        ),
        d(
            "serviceaccount-controller",
            &["serviceaccount"],
            "service-account-controller",
            true,
            Some(crate::serviceaccount::start),
        ),
        d(
            "garbage-collector-controller",
            &["garbagecollector"],
            "generic-garbage-collector",
            true,
            Some(crate::garbagecollector::start),
        ),
        d(
            "daemonset-controller",
            &["daemonset"],
            "daemon-set-controller",
            true,
            Some(crate::daemonset::start),
        ),
        d(
            "job-controller",
            &["job"],
            "job-controller",
            true,
            Some(crate::job::start),
        ),
        d(
            "deployment-controller",
            &["deployment"],
            "deployment-controller",
            true,
            Some(crate::deployment::start),
        ),
        d(
            "replicaset-controller",
            &["replicaset"],
            "replicaset-controller",
            true,
            Some(crate::replicaset::start),
        ),
        d(
            "horizontal-pod-autoscaler-controller",
            &["horizontalpodautoscaling"],
            "horizontal-pod-autoscaler",
            true,
            Some(crate::podautoscaler::start),
        ),
        d(
            "disruption-controller",
            &["disruption"],
            "disruption-controller",
            true,
            Some(crate::disruption::start),
        ),
        d(
            "statefulset-controller",
            &["statefulset"],
            "statefulset-controller",
            true,
            Some(crate::statefulset::start),
        ),
        d(
            "cronjob-controller",
            &["cronjob"],
            "cronjob-controller",
            true,
            Some(crate::cronjob::start),
        ),
        d(
            "certificatesigningrequest-signing-controller",
            &["csrsigning"],
            "certificate-controller",
            true,
            Some(crate::certificates::signer::start),
        ),
        d(
            "certificatesigningrequest-approving-controller",
            &["csrapproving"],
            "certificate-controller",
            true,
            Some(crate::certificates::approver::start),
        ),
        d(
            "certificatesigningrequest-cleaner-controller",
            &["csrcleaner"],
            "certificate-controller",
            true,
            Some(crate::certificates::cleaner::start),
        ),
        d("ttl-controller", &["ttl"], "ttl-controller", true, None),
        d(
            "bootstrap-signer-controller",
            &["bootstrapsigner"],
            "bootstrap-signer",
            false,
            Some(crate::bootstrap::bootstrapsigner::start),
        ),
        d(
            "token-cleaner-controller",
            &["tokencleaner"],
            "token-cleaner",
            false,
            Some(crate::bootstrap::tokencleaner::start),
        ),
        d(
            "node-ipam-controller",
            &["nodeipam"],
            "node-controller",
            true,
            Some(crate::nodeipam::start),
        ),
        d(
            "node-lifecycle-controller",
            &["nodelifecycle"],
            "node-controller",
            true,
            Some(crate::nodelifecycle::start),
        ),
        d(
            "taint-eviction-controller",
            &[],
            "node-controller",
            true,
            Some(crate::tainteviction::start),
        ),
        d(
            "persistentvolume-binder-controller",
            &["persistentvolume-binder"],
            "persistent-volume-binder",
            true,
            None,
        ),
        d(
            "persistentvolume-attach-detach-controller",
            &["attachdetach"],
            "attachdetach-controller",
            true,
            None,
        ),
        d(
            "persistentvolume-expander-controller",
            &["persistentvolume-expander"],
            "expand-controller",
            true,
            None,
        ),
        d(
            "clusterrole-aggregation-controller",
            &["clusterrole-aggregation"],
            "clusterrole-aggregation-controller",
            true,
            None,
        ),
        d(
            "persistentvolumeclaim-protection-controller",
            &["pvc-protection"],
            "pvc-protection-controller",
            true,
            None,
        ),
        d(
            "persistentvolume-protection-controller",
            &["pv-protection"],
            "pv-protection-controller",
            true,
            None,
        ),
        d(
            "ttl-after-finished-controller",
            &["ttl-after-finished"],
            "ttl-after-finished-controller",
            true,
            Some(crate::ttlafterfinished::start),
        ),
        d(
            "root-ca-certificate-publisher-controller",
            &["root-ca-cert-publisher"],
            "root-ca-cert-publisher",
            true,
            Some(crate::rootcacert::start),
        ),
        d(
            "ephemeral-volume-controller",
            &["ephemeral-volume"],
            "ephemeral-volume-controller",
            true,
            None,
        ),
        d(
            "legacy-serviceaccount-token-cleaner-controller",
            &["legacy-service-account-token-cleaner"],
            "legacy-service-account-token-cleaner",
            true,
            None,
        ),
        d(
            "validatingadmissionpolicy-status-controller",
            &[],
            "validatingadmissionpolicy-status-controller",
            true,
            None,
        ),
        d(
            "service-cidr-controller",
            &[],
            "service-cidrs-controller",
            true,
            None,
        ),
        d(
            "selinux-warning-controller",
            &[],
            "selinux-warning-controller",
            false,
            None,
        ),
        d(
            "service-lb-controller",
            &["service"],
            "service-controller",
            false,
            None,
        ),
        d(
            "node-route-controller",
            &["route"],
            "route-controller",
            false,
            None,
        ),
        d(
            "cloud-node-lifecycle-controller",
            &["cloud-node-lifecycle"],
            "cloud-provider",
            false,
            None,
        ),
        d(
            "resourceclaim-controller",
            &[],
            "resource-claim-controller",
            false,
            None,
        ),
        d(
            "storageversion-garbage-collector-controller",
            &[],
            "storage-version-garbage-collector",
            false,
            None,
        ),
        d(
            "storage-version-migrator-controller",
            &[],
            "storage-version-migrator-controller",
            false,
            None,
        ),
    ]
}

/// `--controllers`: `*` = every on-by-default controller, `foo` enables, `-foo`
/// disables (canonical names or aliases). Returns the canonical names enabled, or a
/// message naming the unknown entry.
pub fn enabled_controllers(spec: &[String]) -> Result<BTreeSet<&'static str>, String> {
    let all = descriptors();
    let resolve = |n: &str| {
        all.iter()
            .find(|d| d.name == n || d.aliases.contains(&n))
            .map(|d| d.name)
    };
    let mut star = false;
    let mut on = BTreeSet::new();
    let mut off = BTreeSet::new();
    for entry in spec.iter().flat_map(|s| s.split(',')).map(str::trim) {
        match entry {
            "" => continue,
            "*" => star = true,
            _ => {
                let (neg, name) = match entry.strip_prefix('-') {
                    Some(n) => (true, n),
                    None => (false, entry),
                };
                let canonical = resolve(name).ok_or_else(|| {
                    format!("--controllers: {name:?} is not in the list of known controllers")
                })?;
                if neg {
                    off.insert(canonical);
                } else {
                    on.insert(canonical);
                }
            }
        }
    }
    if star {
        on.extend(all.iter().filter(|d| d.default_on).map(|d| d.name));
    }
    Ok(on.difference(&off).copied().collect())
}

/// Starts every enabled controller and the shared informers; returns once all are
/// started (they run until `stop`).
pub async fn start_controllers(
    builder: &ClientBuilder,
    config: Arc<ControllerConfig>,
    enabled: &BTreeSet<&'static str>,
    stop: watch::Receiver<bool>,
) -> Result<Arc<Informers>, Error> {
    let informers = Arc::new(Informers::new(builder.root_client()));
    let mut starting = Vec::new();
    for desc in descriptors() {
        if !enabled.contains(desc.name) {
            continue;
        }
        match desc.start {
            Some(start) => starting.push((desc, start)),
            None => tracing::info!(
                controller = desc.name,
                "controller not provided by ferrokube; skipped"
            ),
        }
    }
    // Each controller's credentials (a ServiceAccount and a token each) are requested
    // at once: one after the other they add up to seconds at start.
    let clients = futures_util::future::try_join_all(
        starting
            .iter()
            .map(|(desc, _)| builder.client_for(desc.service_account, stop.clone())),
    )
    .await?;
    for ((desc, start), client) in starting.into_iter().zip(clients) {
        let ctx = ControllerContext {
            name: desc.name,
            recorder: Recorder::new(client.clone(), desc.service_account),
            client,
            informers: informers.clone(),
            config: config.clone(),
            stop: stop.clone(),
        };
        start(ctx)?;
        tracing::info!(controller = desc.name, "started controller");
    }
    informers.start(stop);
    Ok(informers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_flag_as_the_seed_writes_it() {
        let on = enabled_controllers(&["*,bootstrapsigner,tokencleaner".into()]).unwrap();
        assert!(on.contains("bootstrap-signer-controller"));
        assert!(on.contains("token-cleaner-controller"));
        assert!(on.contains("deployment-controller"));
        assert!(!on.contains("service-lb-controller"));
        let on = enabled_controllers(&["*".into(), "-deployment".into()]).unwrap();
        assert!(!on.contains("deployment-controller"));
        assert!(!on.contains("bootstrap-signer-controller"));
        let err = enabled_controllers(&["*,nosuch".into()]).unwrap_err();
        assert!(err.contains("\"nosuch\""), "{err}");
    }

    #[test]
    fn names_are_unique() {
        let mut seen = BTreeSet::new();
        for d in descriptors() {
            assert!(seen.insert(d.name), "{}", d.name);
            for a in d.aliases {
                assert!(seen.insert(a), "{a}");
            }
        }
    }
}
