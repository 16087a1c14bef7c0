//! The node IPAM controller with the range allocator (upstream
//! `pkg/controller/nodeipam`, `ipam/range_allocator.go`): with
//! `--allocate-node-cidrs`, every Node without `spec.podCIDRs` gets the next free
//! `/--node-cidr-mask-size` CIDR of each `--cluster-cidr` (one per IP family when
//! dual-stack), CIDRs that nodes already hold — and the Service range where it
//! overlaps — are marked used at start, and a deleted node's CIDRs are freed. An
//! exhausted range is reported as a `CIDRNotAvailable` event on the node and retried
//! with backoff.

pub mod cidrset;

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;

use crate::context::{Cidr, ControllerContext};
use crate::error::{Error, ResultExt};
use crate::events::Recorder;
use crate::informer::{Notification, Store};
use crate::nodelifecycle::nodeutil::record_node_status_change;
use crate::workqueue::{run_workers, WorkQueue};
use cidrset::CidrSet;

/// Upstream `cidrUpdateWorkers`.
const CIDR_UPDATE_WORKERS: usize = 30;
/// Upstream `cidrUpdateRetries`.
const CIDR_UPDATE_RETRIES: usize = 3;

struct Controller {
    ctx: ControllerContext,
    recorder: Recorder,
    nodes: Store<Node>,
    sets: Mutex<Vec<CidrSet>>,
    /// CIDRs patched onto nodes whose informer copy does not show them yet: a sync
    /// from that stale copy must not allocate a second set.
    assigned: Mutex<HashMap<String, Vec<String>>>,
    queue: Arc<WorkQueue>,
}

/// Builds one CIDR set per `--cluster-cidr` (upstream's checks of
/// `startNodeIpamController`: at most one CIDR per IP family; the mask size flag only
/// for single-stack).
fn cidr_sets(
    clusters: &[Cidr],
    mask: Option<u8>,
    service_ranges: &[Cidr],
) -> Result<Vec<CidrSet>, Error> {
    let invalid = |reason: String| Error::Invalid {
        what: "--cluster-cidr".into(),
        reason,
    };
    if clusters.is_empty() {
        return Err(invalid(
            "--allocate-node-cidrs requires at least one --cluster-cidr".into(),
        ));
    }
    if clusters.len() > 2 {
        return Err(invalid("may be a maximum of two CIDRs (dual-stack)".into()));
    }
    if clusters.len() == 2 {
        if clusters[0].addr.is_ipv4() == clusters[1].addr.is_ipv4() {
            return Err(invalid(
                "dual-stack CIDRs must be of different IP families".into(),
            ));
        }
        if mask.is_some() {
            return Err(Error::Invalid {
                what: "--node-cidr-mask-size".into(),
                reason: "usage of --node-cidr-mask-size is not allowed with dual-stack clusters"
                    .into(),
            });
        }
    }
    let mut sets = Vec::new();
    for c in clusters {
        let prefix = mask.unwrap_or(if c.addr.is_ipv4() { 24 } else { 64 });
        let mut set = CidrSet::new(*c, prefix).map_err(invalid)?;
        for svc in service_ranges {
            if set.overlaps(svc) {
                if let Err(e) = set.occupy(svc) {
                    tracing::warn!(service_cidr = %svc, error = %e, "could not filter out the service range");
                }
            }
        }
        sets.push(set);
    }
    Ok(sets)
}

fn pod_cidrs(node: &Node) -> Vec<String> {
    let spec = node.spec.as_ref();
    match spec
        .and_then(|s| s.pod_cidrs.clone())
        .filter(|v| !v.is_empty())
    {
        Some(v) => v,
        None => spec
            .and_then(|s| s.pod_cidr.clone())
            .filter(|s| !s.is_empty())
            .into_iter()
            .collect(),
    }
}

/// Starts the node IPAM controller (a no-op without `--allocate-node-cidrs`, as
/// upstream).
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    if !ctx.config.allocate_node_cidrs {
        tracing::info!(
            controller = ctx.name,
            "--allocate-node-cidrs is false: no node CIDRs to allocate"
        );
        return Ok(());
    }
    let sets = cidr_sets(
        &ctx.config.cluster_cidr,
        ctx.config.node_cidr_mask_size,
        &ctx.config.service_cluster_ip_range,
    )?;
    let nodes_inf = ctx.informers.get::<Node>();
    let c = Arc::new(Controller {
        recorder: Recorder::new(ctx.client.clone(), "cidrAllocator"),
        nodes: nodes_inf.store(),
        sets: Mutex::new(sets),
        assigned: Mutex::default(),
        queue: WorkQueue::new(ctx.name),
        ctx,
    });
    {
        let c = c.clone();
        nodes_inf.add_handler(move |n| match n {
            Notification::Add(node) | Notification::Update { new: node, .. } => {
                c.queue.add(node.name_any())
            }
            Notification::Delete(node) => {
                let pending = c.assigned.lock().remove(&node.name_any());
                if pod_cidrs(node).is_empty() {
                    if let Some(cidrs) = pending {
                        c.release_strings(node, &cidrs);
                    }
                } else {
                    c.release(node);
                }
            }
        });
    }
    tokio::spawn(async move {
        nodes_inf.wait_synced().await;
        for node in c.nodes.list() {
            if pod_cidrs(&node).is_empty() {
                continue;
            }
            // Upstream refuses to start on a CIDR it cannot place; a node with a
            // foreign CIDR is logged and left alone here instead.
            if let Err(e) = c.occupy(&node) {
                tracing::warn!(node = %node.name_any(), error = %e, "node CIDR could not be marked as used");
            }
        }
        let stop = c.ctx.stop.clone();
        let queue = c.queue.clone();
        run_workers(queue, CIDR_UPDATE_WORKERS, stop, move |name| {
            let c = c.clone();
            async move { c.sync(&name).await }
        })
        .await;
    });
    Ok(())
}

impl Controller {
    fn parse(node: &Node, cidr: &str) -> Result<Cidr, Error> {
        cidr.parse().map_err(|_| Error::Invalid {
            what: format!("node {}", node.name_any()),
            reason: format!("failed to parse CIDR {cidr}"),
        })
    }

    /// Marks the node's CIDRs as used (upstream `occupyCIDRs`).
    fn occupy(&self, node: &Node) -> Result<(), Error> {
        let cidrs = pod_cidrs(node);
        let mut sets = self.sets.lock();
        for (idx, s) in cidrs.iter().enumerate() {
            let cidr = Self::parse(node, s)?;
            let Some(set) = sets.get_mut(idx) else {
                return Err(Error::Invalid {
                    what: format!("node {}", node.name_any()),
                    reason: format!("CIDR {s} at index {idx} has no matching --cluster-cidr"),
                });
            };
            set.occupy(&cidr).map_err(|e| Error::Invalid {
                what: format!("node {}", node.name_any()),
                reason: format!("failed to mark cidr[{cidr}] at idx [{idx}] as occupied: {e}"),
            })?;
        }
        Ok(())
    }

    /// Frees a deleted node's CIDRs (upstream `ReleaseCIDR`).
    fn release(&self, node: &Node) {
        self.release_strings(node, &pod_cidrs(node));
    }

    fn release_strings(&self, node: &Node, cidrs: &[String]) {
        let mut sets = self.sets.lock();
        for (idx, s) in cidrs.iter().enumerate() {
            let Ok(cidr) = s.parse::<Cidr>() else {
                tracing::warn!(node = %node.name_any(), cidr = %s, "failed to parse node CIDR");
                continue;
            };
            if let Some(set) = sets.get_mut(idx) {
                match set.release(&cidr) {
                    Ok(()) => tracing::info!(node = %node.name_any(), %cidr, "released node CIDR"),
                    Err(e) => {
                        tracing::warn!(node = %node.name_any(), %cidr, error = %e, "error when releasing CIDR")
                    }
                }
            }
        }
    }

    /// Upstream `syncNode` + `AllocateOrOccupyCIDR`.
    async fn sync(&self, name: &str) -> Result<(), Error> {
        let Some(node) = self.nodes.get("", name) else {
            return Ok(());
        };
        if node.metadata.deletion_timestamp.is_some() {
            self.release(&node);
            return Ok(());
        }
        if !pod_cidrs(&node).is_empty() {
            self.assigned.lock().remove(name);
            return self.occupy(&node);
        }
        if self.assigned.lock().contains_key(name) {
            // Already patched; the node's watch event brings the CIDRs.
            return Ok(());
        }
        let allocated = {
            let mut sets = self.sets.lock();
            let mut out = Vec::new();
            let mut failure = None;
            for (idx, set) in sets.iter_mut().enumerate() {
                match set.allocate_next() {
                    Ok(c) => out.push(c),
                    Err(e) => {
                        failure = Some(format!(
                            "failed to allocate cidr from cluster cidr at idx:{idx}: {e}"
                        ));
                        break;
                    }
                }
            }
            if let Some(reason) = failure {
                // Give back what this attempt took from the other families.
                for (set, c) in sets.iter_mut().zip(&out) {
                    let _ = set.release(c);
                }
                drop(sets);
                record_node_status_change(&self.recorder, &node, "CIDRNotAvailable");
                return Err(Error::Invalid {
                    what: format!("node {name}"),
                    reason,
                });
            }
            out
        };
        self.update_cidrs_allocation(name, &allocated).await
    }

    fn release_all(&self, allocated: &[Cidr]) {
        let mut sets = self.sets.lock();
        for (set, c) in sets.iter_mut().zip(allocated) {
            if let Err(e) = set.release(c) {
                tracing::warn!(cidr = %c, error = %e, "error releasing allocated CIDR");
            }
        }
    }

    /// Upstream `updateCIDRsAllocation`: patches `spec.podCIDR` and `spec.podCIDRs`.
    async fn update_cidrs_allocation(&self, name: &str, allocated: &[Cidr]) -> Result<(), Error> {
        let cidrs: Vec<String> = allocated.iter().map(ToString::to_string).collect();
        let Some(node) = self.nodes.get("", name) else {
            self.release_all(allocated);
            return Ok(());
        };
        let current = pod_cidrs(&node);
        if current == cidrs {
            return Ok(());
        }
        if !current.is_empty() {
            tracing::warn!(node = name, pod_cidrs = ?current, "node already has a CIDR allocated; releasing the new one");
            self.release_all(allocated);
            return Ok(());
        }
        let api: Api<Node> = Api::all(self.ctx.client.clone());
        let patch = json!({"spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs}});
        let mut last = None;
        for _ in 0..CIDR_UPDATE_RETRIES {
            match api
                .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(node = name, pod_cidrs = ?cidrs, "set node PodCIDR");
                    self.assigned.lock().insert(name.to_string(), cidrs);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        tracing::warn!(node = name, pod_cidrs = ?cidrs, "failed to update node PodCIDR after multiple attempts");
        record_node_status_change(&self.recorder, &node, "CIDRAssignmentFailed");
        let timeout = matches!(&last, Some(kube::Error::Api(s)) if s.code == 504);
        if !timeout {
            self.release_all(allocated);
        }
        match last {
            Some(e) => Err(e).action(format!("patching podCIDRs of node {name}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cluster_cidr_checks_and_service_range_filtered() {
        assert!(cidr_sets(&[], None, &[]).is_err());
        assert!(cidr_sets(&[c("10.0.0.0/16"), c("10.1.0.0/16")], None, &[]).is_err());
        assert!(cidr_sets(&[c("10.0.0.0/16"), c("fd00::/48")], Some(24), &[]).is_err());
        let sets = cidr_sets(&[c("10.0.0.0/16"), c("fd00::/48")], None, &[]).unwrap();
        assert_eq!(sets[0].node_prefix(), 24);
        assert_eq!(sets[1].node_prefix(), 64);
        let mut sets = cidr_sets(&[c("10.0.0.0/16")], None, &[c("10.0.0.0/23")]).unwrap();
        assert_eq!(sets[0].allocated(), 2);
        assert_eq!(sets[0].allocate_next().unwrap(), c("10.0.2.0/24"));
        let sets = cidr_sets(&[c("10.0.0.0/16")], None, &[c("10.96.0.0/12")]).unwrap();
        assert_eq!(sets[0].allocated(), 0);
    }

    #[test]
    fn pod_cidrs_fall_back_to_the_singular_field() {
        let mut n = Node::default();
        assert!(pod_cidrs(&n).is_empty());
        n.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            pod_cidr: Some("10.0.1.0/24".into()),
            ..Default::default()
        });
        assert_eq!(pod_cidrs(&n), vec!["10.0.1.0/24".to_string()]);
    }
}
