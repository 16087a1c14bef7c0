//! The per-node pod network daemon: flanneld with the host-gw backend and
//! `--kube-subnet-mgr`, i.e. the node's subnet is the podCIDR the controller-manager's
//! nodeipam controller put in `spec.podCIDRs`, and every other node's subnet is learned
//! by watching Nodes. It needs only `get/list/watch` on nodes (RBAC `system:node`).
//!
//! [`sync`] is one pass (conflist, forwarding, nftables, routes) from a set of Nodes; [`run`]
//! watches Nodes and calls it whenever what matters (podCIDRs, InternalIPs, the set of
//! nodes) changes, and every resync period, so routes someone removed come back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;

use crate::cidr::Cidr;
use crate::routes::{NodeNetwork, RouteSync};
use crate::{conflist, masq, routes, Error};

/// What the pod network of one node is configured with.
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    /// This node's name (metadata.name of its Node).
    pub node_name: String,
    /// The cluster CIDRs (controller-manager's `--cluster-cidr`), at most one per family.
    pub cluster_cidr: Vec<Cidr>,
    /// containerd's CNI conf dir (`/etc/cni/net.d`).
    pub conf_dir: PathBuf,
    /// Our state directory (host-local leases under `networks/`).
    pub data_dir: PathBuf,
    /// How often everything is reapplied even without Node changes.
    pub resync_period: Duration,
    /// The pods' Linux bridge ([`crate::conflist::BRIDGE_NAME`], `cni0`, by default).
    pub bridge: String,
}

impl NetworkOptions {
    /// Options with upstream-style defaults: `/etc/cni/net.d`, `/var/lib/ferrokube/cni`,
    /// a 30s resync (flannel checks its host-gw routes every 10s).
    pub fn new(node_name: impl Into<String>, cluster_cidr: Vec<Cidr>) -> NetworkOptions {
        NetworkOptions {
            node_name: node_name.into(),
            cluster_cidr,
            conf_dir: PathBuf::from("/etc/cni/net.d"),
            data_dir: PathBuf::from("/var/lib/ferrokube/cni"),
            resync_period: Duration::from_secs(30),
            bridge: crate::conflist::BRIDGE_NAME.to_string(),
        }
    }

    /// Checks the options: a node name and an IPv4 cluster CIDR.
    pub fn validate(&self) -> Result<(), Error> {
        if self.node_name.is_empty() {
            return Err(Error::InvalidOption {
                option: "node-name",
                reason: "must not be empty".into(),
            });
        }
        if !self.cluster_cidr.iter().any(Cidr::is_ipv4) {
            return Err(Error::InvalidOption {
                option: "cluster-cidr",
                reason: "an IPv4 cluster CIDR is required".into(),
            });
        }
        if self.resync_period.is_zero() {
            return Err(Error::InvalidOption {
                option: "resync-period",
                reason: "must be positive".into(),
            });
        }
        Ok(())
    }
}

/// What one [`sync`] pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// This node's podCIDRs the network was set up for.
    pub pod_cidrs: Vec<Cidr>,
    /// Whether the conflist file was (re)written.
    pub conflist_written: bool,
    /// Route changes and unreachable nodes.
    pub routes: RouteSync,
}

/// The result of one [`sync`] pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// This node has no podCIDR yet (or no Node at all): nothing was touched.
    WaitingForPodCidr,
    /// Everything was applied.
    Synced(SyncReport),
}

/// One pass: from the Nodes, write this node's conflist, switch on forwarding, replace
/// the nftables tables, and sync the routes to every other node.
pub async fn sync(opts: &NetworkOptions, nodes: &[NodeNetwork]) -> Result<SyncOutcome, Error> {
    opts.validate()?;
    let Some(me) = nodes.iter().find(|n| n.name == opts.node_name) else {
        return Ok(SyncOutcome::WaitingForPodCidr);
    };
    if me.pod_cidrs.is_empty() {
        return Ok(SyncOutcome::WaitingForPodCidr);
    }
    for pod_cidr in &me.pod_cidrs {
        if !opts.cluster_cidr.iter().any(|c| c.contains_cidr(pod_cidr)) {
            tracing::warn!(%pod_cidr, cluster_cidr = ?opts.cluster_cidr.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "this node's podCIDR is outside --cluster-cidr: its pods' traffic will be masqueraded");
        }
    }
    let text = conflist::render(&me.name, &me.pod_cidrs, &opts.data_dir, &opts.bridge)?;
    let conflist_written = conflist::write(&opts.conf_dir, &opts.data_dir, &text).await?;
    if conflist_written {
        tracing::info!(dir = %opts.conf_dir.display(), file = conflist::CONFLIST_FILE, "wrote the CNI network configuration");
    }
    let ipv6 = opts.cluster_cidr.iter().any(|c| !c.is_ipv4());
    masq::enable_forwarding(ipv6).await?;
    masq::apply(&opts.cluster_cidr, &me.pod_cidrs).await?;
    masq::ensure_iptables_forward(&opts.cluster_cidr).await?;
    let routes = routes::sync_routes(&opts.node_name, nodes).await?;
    Ok(SyncOutcome::Synced(SyncReport {
        pod_cidrs: me.pod_cidrs.clone(),
        conflist_written,
        routes,
    }))
}

/// How soon a failed pass is retried.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The watch state machine of [`run`].
#[derive(Debug, Default)]
struct NodeCache {
    /// Nodes as last seen, by name.
    nodes: BTreeMap<String, NodeNetwork>,
    /// Nodes being relisted (between `Init` and `InitDone`); `None` outside a relist.
    relist: Option<BTreeMap<String, NodeNetwork>>,
    /// Whether a complete list has been seen since start.
    listed: bool,
}

impl NodeCache {
    fn apply(&mut self, event: Event<Node>) {
        match event {
            Event::Init => self.relist = Some(BTreeMap::new()),
            Event::InitApply(node) => {
                let n = NodeNetwork::from_node(&node);
                self.relist
                    .get_or_insert_with(BTreeMap::new)
                    .insert(n.name.clone(), n);
            }
            Event::InitDone => {
                self.nodes = self.relist.take().unwrap_or_default();
                self.listed = true;
            }
            Event::Apply(node) => {
                let n = NodeNetwork::from_node(&node);
                self.nodes.insert(n.name.clone(), n);
            }
            Event::Delete(node) => {
                let n = NodeNetwork::from_node(&node);
                self.nodes.remove(&n.name);
            }
        }
    }

    fn snapshot(&self) -> Vec<NodeNetwork> {
        self.nodes.values().cloned().collect()
    }
}

/// Runs the pod network for `opts.node_name` until `stop` turns true (or its sender is
/// dropped): watches Nodes, waits for this node's podCIDR, then keeps the conflist,
/// nftables tables and routes in sync. Failed passes are logged and retried; only bad
/// options end it with an error. Routes and tables stay in place when it stops (pods
/// keep their network across a restart, as with flanneld).
pub async fn run(
    client: kube::Client,
    opts: NetworkOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), Error> {
    opts.validate()?;
    let api: Api<Node> = Api::all(client);
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut cache = NodeCache::default();
    let mut last_synced: Option<Vec<NodeNetwork>> = None;
    let mut waiting_logged = false;
    let mut next_resync = tokio::time::Instant::now() + opts.resync_period;
    tracing::info!(node = %opts.node_name, "pod network: watching nodes");
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let retry_at = next_resync;
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                continue;
            }
            event = events.next() => match event {
                Some(Ok(ev)) => {
                    cache.apply(ev);
                    // Apply everything already buffered before syncing once.
                    while let Some(Some(ready)) = futures_util::FutureExt::now_or_never(events.next()) {
                        match ready {
                            Ok(ev) => cache.apply(ev),
                            Err(err) => tracing::warn!(%err, "watching nodes"),
                        }
                    }
                }
                Some(Err(err)) => {
                    tracing::warn!(%err, "watching nodes (retrying)");
                    continue;
                }
                None => return Ok(()),
            },
            _ = tokio::time::sleep_until(retry_at) => {
                last_synced = None;
                next_resync = tokio::time::Instant::now() + opts.resync_period;
            }
        }
        if !cache.listed {
            continue;
        }
        let snapshot = cache.snapshot();
        if last_synced.as_ref() == Some(&snapshot) {
            continue;
        }
        match sync(&opts, &snapshot).await {
            Ok(SyncOutcome::WaitingForPodCidr) => {
                if !waiting_logged {
                    tracing::info!(node = %opts.node_name, "waiting for this node's spec.podCIDRs");
                    waiting_logged = true;
                }
                last_synced = Some(snapshot);
            }
            Ok(SyncOutcome::Synced(report)) => {
                waiting_logged = false;
                tracing::debug!(?report, "pod network in sync");
                last_synced = Some(snapshot);
            }
            Err(err @ Error::InvalidOption { .. }) => return Err(err),
            Err(err) => {
                tracing::error!(%err, "syncing the pod network (retrying)");
                next_resync = tokio::time::Instant::now() + RETRY_AFTER;
                last_synced = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cidr: Option<&str>) -> Node {
        let mut v = serde_json::json!({"metadata": {"name": name}});
        if let Some(c) = cidr {
            v["spec"] = serde_json::json!({"podCIDR": c, "podCIDRs": [c]});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn cache_follows_relists_and_events() {
        let mut cache = NodeCache::default();
        cache.apply(Event::Init);
        cache.apply(Event::InitApply(node("a", Some("198.19.1.0/24"))));
        assert!(!cache.listed);
        cache.apply(Event::InitDone);
        assert!(cache.listed);
        cache.apply(Event::Apply(node("b", None)));
        assert_eq!(cache.snapshot().len(), 2);
        cache.apply(Event::Delete(node("a", None)));
        let names: Vec<String> = cache.snapshot().into_iter().map(|n| n.name).collect();
        assert_eq!(names, vec!["b"]);
        // A relist replaces everything: nodes deleted while disconnected disappear.
        cache.apply(Event::Init);
        cache.apply(Event::InitApply(node("c", Some("198.19.3.0/24"))));
        assert_eq!(cache.snapshot()[0].name, "b");
        cache.apply(Event::InitDone);
        let names: Vec<String> = cache.snapshot().into_iter().map(|n| n.name).collect();
        assert_eq!(names, vec!["c"]);
    }

    #[test]
    fn options_are_validated() {
        let ok = NetworkOptions::new("n1", vec!["10.244.0.0/16".parse().unwrap()]);
        assert!(ok.validate().is_ok());
        let mut bad = ok.clone();
        bad.cluster_cidr = vec!["fd00::/56".parse().unwrap()];
        assert!(matches!(
            bad.validate(),
            Err(Error::InvalidOption {
                option: "cluster-cidr",
                ..
            })
        ));
        let mut bad = ok;
        bad.node_name.clear();
        assert!(bad.validate().is_err());
    }

    #[tokio::test]
    async fn sync_waits_for_a_pod_cidr_without_touching_anything() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = NetworkOptions::new("n1", vec!["10.244.0.0/16".parse().unwrap()]);
        opts.conf_dir = dir.path().join("net.d");
        let nodes = vec![NodeNetwork::from_node(&node("n1", None))];
        assert_eq!(
            sync(&opts, &nodes).await.unwrap(),
            SyncOutcome::WaitingForPodCidr
        );
        assert_eq!(
            sync(&opts, &[]).await.unwrap(),
            SyncOutcome::WaitingForPodCidr
        );
        assert!(!opts.conf_dir.exists());
    }
}
