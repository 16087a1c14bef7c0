//! `imagelocality/image_locality.go`: favour nodes that already have the
//! pod's images, each image's size scaled by the share of nodes having it
//! (to avoid piling pods onto the one node with a rare image), clamped
//! between 23 MiB and 1000 MiB per container.

use std::sync::Arc;

use crate::cache::Snapshot;
use crate::framework::MAX_NODE_SCORE;
use crate::node::NodeInfo;
use crate::pod::PodInfo;

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

fn calculate_priority(sum: i64, num_containers: usize) -> i64 {
    let max = MAX_CONTAINER_THRESHOLD * num_containers.max(1) as i64;
    let sum = sum.clamp(MIN_THRESHOLD, max);
    MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
}

/// The ImageLocality score of one node.
pub fn node_score(pod: &PodInfo, snapshot: &Snapshot, node: &NodeInfo) -> i64 {
    let Some(n) = node.node.as_deref() else {
        return 0;
    };
    let total = snapshot.len().max(1) as f64;
    let mut sum = 0i64;
    for img in &pod.images {
        if n.images.contains_key(img) {
            if let Some(state) = snapshot.image(img) {
                sum += (state.size as f64 * (state.num_nodes as f64 / total)) as i64;
            }
        }
    }
    calculate_priority(sum, pod.num_containers)
}

/// ImageLocality Score (no normalization upstream).
pub fn score(
    pod: &PodInfo,
    snapshot: &Snapshot,
    nodes: &[Arc<NodeInfo>],
    scores: &mut [i64],
) -> bool {
    for (s, n) in scores.iter_mut().zip(nodes) {
        *s = node_score(pod, snapshot, n);
    }
    true
}
