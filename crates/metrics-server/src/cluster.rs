//! Where the nodes to scrape and the pods to serve come from: the API server
//! ([`KubeCluster`], one list of each per scrape cycle, served from the API server's
//! watch cache) or a list filled in by hand ([`StaticCluster`], for tests and
//! embedding). Upstream keeps informers; a list per cycle gives the same view at the
//! resolution that matters here.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use parking_lot::RwLock;

/// What metrics-server needs of a Node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// Name.
    pub name: String,
    /// Labels (served on NodeMetrics, matched by `labelSelector`).
    pub labels: BTreeMap<String, String>,
    /// `status.addresses` as (type, address), in order.
    pub addresses: Vec<(String, String)>,
    /// `status.daemonEndpoints.kubeletEndpoint.Port`, when set.
    pub kubelet_port: Option<u16>,
    /// The Ready condition is True.
    pub ready: bool,
}

impl NodeInfo {
    /// From a Node object.
    pub fn from_node(node: &Node) -> NodeInfo {
        let status = node.status.as_ref();
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            addresses: status
                .and_then(|s| s.addresses.as_ref())
                .map(|a| {
                    a.iter()
                        .map(|a| (a.type_.clone(), a.address.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            kubelet_port: status
                .and_then(|s| s.daemon_endpoints.as_ref())
                .and_then(|d| d.kubelet_endpoint.as_ref())
                .and_then(|e| u16::try_from(e.port).ok())
                .filter(|p| *p > 0),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == "True"),
        }
    }

    /// The address of the first preferred type the node has (upstream's
    /// `NodeAddress`, `--kubelet-preferred-address-types` order).
    pub fn address(&self, preferred: &[String]) -> Result<&str, String> {
        preferred
            .iter()
            .find_map(|t| {
                self.addresses
                    .iter()
                    .find(|(kind, address)| kind == t && !address.is_empty())
                    .map(|(_, a)| a.as_str())
            })
            .ok_or_else(|| {
                format!(
                    "node {} had no addresses that matched types [{}]",
                    self.name,
                    preferred.join(" ")
                )
            })
    }
}

/// What metrics-server needs of a Pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels (served on PodMetrics, matched by `labelSelector`).
    pub labels: BTreeMap<String, String>,
    /// `spec.nodeName`: only that node's kubelet may report the pod.
    pub node_name: String,
}

impl PodInfo {
    /// From a Pod object.
    pub fn from_pod(pod: &Pod) -> PodInfo {
        PodInfo {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            node_name: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
        }
    }
}

/// The source of nodes and pods.
#[async_trait]
pub trait Cluster: Send + Sync + std::fmt::Debug {
    /// Every node.
    async fn nodes(&self) -> Result<Vec<NodeInfo>, String>;
    /// Every pod.
    async fn pods(&self) -> Result<Vec<PodInfo>, String>;
}

/// Nodes and pods listed from the API server.
#[derive(Clone)]
pub struct KubeCluster {
    client: kube::Client,
}

impl std::fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeCluster").finish_non_exhaustive()
    }
}

impl KubeCluster {
    /// Lists through `client`.
    pub fn new(client: kube::Client) -> KubeCluster {
        KubeCluster { client }
    }
}

/// `resourceVersion=0`: any recent state, from the API server's cache.
fn cached() -> ListParams {
    ListParams::default().match_any()
}

#[async_trait]
impl Cluster for KubeCluster {
    async fn nodes(&self) -> Result<Vec<NodeInfo>, String> {
        let api: Api<Node> = Api::all(self.client.clone());
        let list = api
            .list(&cached())
            .await
            .map_err(|e| format!("listing nodes: {e}"))?;
        Ok(list.items.iter().map(NodeInfo::from_node).collect())
    }

    async fn pods(&self) -> Result<Vec<PodInfo>, String> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let list = api
            .list(&cached())
            .await
            .map_err(|e| format!("listing pods: {e}"))?;
        Ok(list.items.iter().map(PodInfo::from_pod).collect())
    }
}

/// Nodes and pods set by hand.
#[derive(Debug, Default)]
pub struct StaticCluster {
    nodes: RwLock<Vec<NodeInfo>>,
    pods: RwLock<Vec<PodInfo>>,
}

impl StaticCluster {
    /// Starting with these.
    pub fn new(nodes: Vec<NodeInfo>, pods: Vec<PodInfo>) -> StaticCluster {
        StaticCluster {
            nodes: RwLock::new(nodes),
            pods: RwLock::new(pods),
        }
    }

    /// Replaces the nodes.
    pub fn set_nodes(&self, nodes: Vec<NodeInfo>) {
        *self.nodes.write() = nodes;
    }

    /// Replaces the pods.
    pub fn set_pods(&self, pods: Vec<PodInfo>) {
        *self.pods.write() = pods;
    }
}

#[async_trait]
impl Cluster for StaticCluster {
    async fn nodes(&self) -> Result<Vec<NodeInfo>, String> {
        Ok(self.nodes.read().clone())
    }

    async fn pods(&self) -> Result<Vec<PodInfo>, String> {
        Ok(self.pods.read().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_fields_and_addresses() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1", "labels": {"zone": "a"}},
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": "10.0.0.1"},
                    {"type": "Hostname", "address": "n1.local"},
                    {"type": "ExternalIP", "address": "1.2.3.4"}
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10255}},
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        }))
        .unwrap();
        let info = NodeInfo::from_node(&node);
        assert_eq!(info.name, "n1");
        assert_eq!(info.labels["zone"], "a");
        assert_eq!(info.kubelet_port, Some(10255));
        assert!(info.ready);
        let types = |s: &str| s.split(',').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            info.address(&types("Hostname,InternalDNS,InternalIP")),
            Ok("n1.local")
        );
        assert_eq!(
            info.address(&types("InternalDNS,InternalIP,Hostname")),
            Ok("10.0.0.1")
        );
        assert_eq!(
            info.address(&types("InternalDNS,ExternalDNS")),
            Err("node n1 had no addresses that matched types [InternalDNS ExternalDNS]".into())
        );
        let bare = NodeInfo::from_node(&Node::default());
        assert_eq!(bare.kubelet_port, None);
        assert!(!bare.ready);
    }

    #[test]
    fn pod_fields() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "x"}},
            "spec": {"nodeName": "n1", "containers": []}
        }))
        .unwrap();
        let info = PodInfo::from_pod(&pod);
        assert_eq!(
            (
                info.namespace.as_str(),
                info.name.as_str(),
                info.node_name.as_str()
            ),
            ("ns", "p", "n1")
        );
        assert_eq!(info.labels["app"], "x");
    }
}
