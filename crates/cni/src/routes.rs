//! flannel's host-gw backend: every other node's podCIDR is reached through that node's
//! InternalIP as the next hop, `ip route replace <podCIDR> via <InternalIP>`. Like flannel
//! it only works when the next hop is on a subnet this host is directly connected to;
//! otherwise the node is reported (there is no overlay fallback).
//!
//! Our routes carry a route protocol of their own ([`ROUTE_PROTOCOL`]), so
//! `ip route show proto 153` lists exactly what we installed — after a restart too — and
//! routes of deleted nodes are removed without touching anyone else's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::Node;
use serde::Deserialize;

use crate::cidr::Cidr;
use crate::exec;
use crate::Error;

/// The route protocol id tagging our routes (`proto 153`; unassigned in iproute2's
/// `rt_protos`, next to zebra/bird's range but far from the numbers routing daemons use).
pub const ROUTE_PROTOCOL: u8 = 153;

/// What the pod network needs to know of a Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNetwork {
    /// metadata.name.
    pub name: String,
    /// spec.podCIDRs (or spec.podCIDR), in the Node's order.
    pub pod_cidrs: Vec<Cidr>,
    /// status.addresses of type InternalIP, in the Node's order.
    pub internal_ips: Vec<IpAddr>,
}

impl NodeNetwork {
    /// Extracts the network view of a Node; unparsable podCIDRs or addresses are logged
    /// and left out (a bad Node must not stop the routes to every other node).
    pub fn from_node(node: &Node) -> NodeNetwork {
        let name = node.metadata.name.clone().unwrap_or_default();
        let spec = node.spec.as_ref();
        let mut raw: Vec<&str> = spec
            .and_then(|s| s.pod_cidrs.as_ref())
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default();
        if raw.is_empty() {
            if let Some(c) = spec.and_then(|s| s.pod_cidr.as_deref()) {
                raw.push(c);
            }
        }
        let mut pod_cidrs = Vec::new();
        for c in raw.into_iter().filter(|c| !c.is_empty()) {
            match c.parse::<Cidr>() {
                Ok(cidr) => pod_cidrs.push(cidr),
                Err(err) => tracing::warn!(node = %name, %err, "ignoring podCIDR"),
            }
        }
        let mut internal_ips = Vec::new();
        let addresses = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .map(Vec::as_slice)
            .unwrap_or_default();
        for a in addresses.iter().filter(|a| a.type_ == "InternalIP") {
            match a.address.parse::<IpAddr>() {
                Ok(ip) => internal_ips.push(ip),
                Err(_) => {
                    tracing::warn!(node = %name, address = %a.address, "ignoring InternalIP")
                }
            }
        }
        NodeNetwork {
            name,
            pod_cidrs,
            internal_ips,
        }
    }

    /// Decodes `kubectl get nodes -o json` output (a NodeList, a `v1/List` or one Node).
    pub fn list_from_json(text: &str) -> Result<Vec<NodeNetwork>, Error> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(Error::DecodeNodes)?;
        let nodes: Vec<Node> = match value.get("items") {
            Some(items) => serde_json::from_value(items.clone()).map_err(Error::DecodeNodes)?,
            None => vec![serde_json::from_value(value).map_err(Error::DecodeNodes)?],
        };
        Ok(nodes.iter().map(NodeNetwork::from_node).collect())
    }
}

/// One host-gw route: `dst via gateway`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// The other node's podCIDR.
    pub dst: Cidr,
    /// The other node's InternalIP of the same family.
    pub gateway: IpAddr,
}

/// A node whose pods cannot be reached host-gw style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    /// The node.
    pub node: String,
    /// Why.
    pub reason: String,
}

/// The routes this host needs: for every other node, each podCIDR via the InternalIP of
/// the same family, when that IP is on one of `connected` (this host's on-link subnets).
/// Two nodes claiming one podCIDR: the first by name wins, the other is reported.
pub fn desired_routes(
    self_name: &str,
    nodes: &[NodeNetwork],
    connected: &[Cidr],
) -> (Vec<Route>, Vec<Unreachable>) {
    let mut by_dst: BTreeMap<Cidr, (IpAddr, &str)> = BTreeMap::new();
    let mut unreachable = Vec::new();
    let mut sorted: Vec<&NodeNetwork> = nodes.iter().filter(|n| n.name != self_name).collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for node in sorted {
        for cidr in &node.pod_cidrs {
            let Some(gateway) = node
                .internal_ips
                .iter()
                .copied()
                .find(|ip| ip.is_ipv4() == cidr.is_ipv4())
            else {
                unreachable.push(Unreachable {
                    node: node.name.clone(),
                    reason: format!("no InternalIP of the family of podCIDR {cidr}"),
                });
                continue;
            };
            if !connected.iter().any(|net| net.contains(gateway)) {
                unreachable.push(Unreachable {
                    node: node.name.clone(),
                    reason: format!(
                        "InternalIP {gateway} is not on a directly connected subnet (host-gw needs layer-2 adjacency)"
                    ),
                });
                continue;
            }
            if let Some((_, owner)) = by_dst.get(cidr) {
                unreachable.push(Unreachable {
                    node: node.name.clone(),
                    reason: format!("podCIDR {cidr} is already routed to node {owner}"),
                });
                continue;
            }
            by_dst.insert(*cidr, (gateway, &node.name));
        }
    }
    let routes = by_dst
        .into_iter()
        .map(|(dst, (gateway, _))| Route { dst, gateway })
        .collect();
    (routes, unreachable)
}

/// What to change to go from the installed routes to the desired ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteDiff {
    /// Missing or pointing elsewhere: `ip route replace`.
    pub replace: Vec<Route>,
    /// Ours but no longer wanted: `ip route del`.
    pub delete: Vec<Route>,
}

impl RouteDiff {
    /// Whether nothing needs to change.
    pub fn is_empty(&self) -> bool {
        self.replace.is_empty() && self.delete.is_empty()
    }
}

/// Compares installed (ours, by protocol) with desired routes.
pub fn diff_routes(installed: &[Route], desired: &[Route]) -> RouteDiff {
    let have: BTreeSet<Route> = installed.iter().copied().collect();
    let want: BTreeSet<Route> = desired.iter().copied().collect();
    let wanted_dsts: BTreeSet<Cidr> = want.iter().map(|r| r.dst).collect();
    RouteDiff {
        replace: want.difference(&have).copied().collect(),
        // A route whose destination is still wanted with another gateway is rewritten by
        // `replace`; deleting it too would race the replacement.
        delete: have
            .difference(&want)
            .filter(|r| !wanted_dsts.contains(&r.dst))
            .copied()
            .collect(),
    }
}

/// One entry of `ip -j addr show`.
#[derive(Debug, Deserialize)]
struct IpLink {
    #[serde(default)]
    addr_info: Vec<IpAddrInfo>,
}

#[derive(Debug, Deserialize)]
struct IpAddrInfo {
    #[serde(default)]
    local: Option<IpAddr>,
    #[serde(default)]
    prefixlen: Option<u8>,
    #[serde(default)]
    scope: Option<String>,
    /// Point-to-point peers have no on-link subnet.
    #[serde(default)]
    address: Option<IpAddr>,
}

/// This host's directly connected subnets, from `ip -j addr show` text: every global or
/// link-scoped address with its prefix (host-scoped ones, loopback, are not a way out).
pub fn connected_from_ip_json(text: &str) -> Result<Vec<Cidr>, serde_json::Error> {
    let links: Vec<IpLink> = serde_json::from_str(text)?;
    let mut out = BTreeSet::new();
    for info in links.iter().flat_map(|l| l.addr_info.iter()) {
        let (Some(local), Some(prefix)) = (info.local, info.prefixlen) else {
            continue;
        };
        if info.scope.as_deref() == Some("host") || info.address.is_some_and(|a| a != local) {
            continue;
        }
        if let Some(net) = Cidr::new(local, prefix) {
            out.insert(net);
        }
    }
    Ok(out.into_iter().collect())
}

/// Reads this host's connected subnets (`ip -j addr show`).
pub async fn connected_networks() -> Result<Vec<Cidr>, Error> {
    let links: serde_json::Value = exec::run_json("ip", &["-j", "addr", "show"]).await?;
    connected_from_ip_json(&links.to_string()).map_err(|source| Error::DecodeOutput {
        command: "ip -j addr show".into(),
        source,
    })
}

/// One entry of `ip -j route show`.
#[derive(Debug, Deserialize)]
struct IpRoute {
    dst: String,
    #[serde(default)]
    gateway: Option<IpAddr>,
}

/// Our installed routes from `ip -j [-6] route show proto N` text (`ipv6` decides what
/// `default` and a bare host address mean).
pub fn routes_from_ip_json(text: &str, ipv6: bool) -> Result<Vec<Route>, serde_json::Error> {
    let entries: Vec<IpRoute> = serde_json::from_str(text)?;
    let mut out = Vec::new();
    for e in entries {
        let Some(gateway) = e.gateway else {
            continue;
        };
        let dst = match e.dst.as_str() {
            "default" if ipv6 => "::/0".parse().ok(),
            "default" => "0.0.0.0/0".parse().ok(),
            d if d.contains('/') => d.parse().ok(),
            d => d.parse::<IpAddr>().ok().and_then(|ip| {
                let host = if ip.is_ipv4() { 32 } else { 128 };
                Cidr::new(ip, host)
            }),
        };
        if let Some(dst) = dst {
            out.push(Route { dst, gateway });
        }
    }
    Ok(out)
}

/// The routes we installed (`ip -j route show proto 153`, both families when the host
/// has IPv6).
pub async fn installed_routes() -> Result<Vec<Route>, Error> {
    let proto = ROUTE_PROTOCOL.to_string();
    let mut families = vec![("-4", false)];
    if Path::new("/proc/sys/net/ipv6").exists() {
        families.push(("-6", true));
    }
    let mut out = Vec::new();
    for (flag, ipv6) in families {
        let args = ["-j", flag, "route", "show", "proto", proto.as_str()];
        let value: serde_json::Value = exec::run_json("ip", &args).await?;
        let routes = routes_from_ip_json(&value.to_string(), ipv6).map_err(|source| {
            Error::DecodeOutput {
                command: format!("ip {}", args.join(" ")),
                source,
            }
        })?;
        out.extend(routes);
    }
    Ok(out)
}

async fn ip_route(verb: &str, route: &Route) -> Result<(), Error> {
    let dst = route.dst.to_string();
    let gateway = route.gateway.to_string();
    let proto = ROUTE_PROTOCOL.to_string();
    let family = if route.dst.is_ipv4() { "-4" } else { "-6" };
    let args = [
        family, "route", verb, &dst, "via", &gateway, "proto", &proto,
    ];
    exec::run("ip", &args, None).await.map(|_| ())
}

/// What a route sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteSync {
    /// Routes added or rewritten.
    pub replaced: Vec<Route>,
    /// Stale routes removed.
    pub deleted: Vec<Route>,
    /// Nodes whose pods are not routed (each also logged as a warning).
    pub unreachable: Vec<Unreachable>,
}

/// Brings the kernel's routes in line with `nodes`: adds/rewrites routes to every other
/// node's podCIDRs and removes ours that no node wants any more.
pub async fn sync_routes(self_name: &str, nodes: &[NodeNetwork]) -> Result<RouteSync, Error> {
    let connected = connected_networks().await?;
    let (desired, unreachable) = desired_routes(self_name, nodes, &connected);
    for u in &unreachable {
        tracing::warn!(node = %u.node, reason = %u.reason, "not routing this node's pods");
    }
    let installed = installed_routes().await?;
    let diff = diff_routes(&installed, &desired);
    for route in &diff.replace {
        tracing::info!(dst = %route.dst, via = %route.gateway, "ip route replace");
        ip_route("replace", route).await?;
    }
    for route in &diff.delete {
        tracing::info!(dst = %route.dst, via = %route.gateway, "ip route del");
        ip_route("del", route).await?;
    }
    Ok(RouteSync {
        replaced: diff.replace,
        deleted: diff.delete,
        unreachable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cidrs: &[&str], ips: &[&str]) -> NodeNetwork {
        NodeNetwork {
            name: name.into(),
            pod_cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
            internal_ips: ips.iter().map(|c| c.parse().unwrap()).collect(),
        }
    }

    fn route(dst: &str, gw: &str) -> Route {
        Route {
            dst: dst.parse().unwrap(),
            gateway: gw.parse().unwrap(),
        }
    }

    #[test]
    fn desired_routes_skip_self_unreachable_and_conflicts() {
        let connected: Vec<Cidr> = vec!["198.18.0.0/24".parse().unwrap()];
        let nodes = vec![
            node("a", &["198.19.1.0/24"], &["198.18.0.1"]),
            node("b", &["198.19.2.0/24", "fd00:2::/64"], &["198.18.0.2"]),
            node("c", &["198.19.3.0/24"], &["198.18.5.3"]),
            node("d", &[], &["198.18.0.4"]),
            node("e", &["198.19.2.0/24"], &["198.18.0.5"]),
        ];
        let (routes, unreachable) = desired_routes("a", &nodes, &connected);
        assert_eq!(routes, vec![route("198.19.2.0/24", "198.18.0.2")]);
        let who: Vec<&str> = unreachable.iter().map(|u| u.node.as_str()).collect();
        assert_eq!(who, vec!["b", "c", "e"]);
        assert!(unreachable[0].reason.contains("fd00:2::/64"));
        assert!(unreachable[1].reason.contains("198.18.5.3"));
        assert!(unreachable[2].reason.contains("node b"));
    }

    #[test]
    fn diff_adds_rewrites_and_removes() {
        let installed = vec![
            route("198.19.2.0/24", "198.18.0.2"),
            route("198.19.3.0/24", "198.18.0.3"),
            route("198.19.9.0/24", "198.18.0.9"),
        ];
        let desired = vec![
            route("198.19.2.0/24", "198.18.0.2"),
            route("198.19.3.0/24", "198.18.0.33"),
            route("198.19.4.0/24", "198.18.0.4"),
        ];
        let diff = diff_routes(&installed, &desired);
        assert_eq!(
            diff.replace,
            vec![
                route("198.19.3.0/24", "198.18.0.33"),
                route("198.19.4.0/24", "198.18.0.4")
            ]
        );
        assert_eq!(diff.delete, vec![route("198.19.9.0/24", "198.18.0.9")]);
        assert!(diff_routes(&desired, &desired).is_empty());
    }

    #[test]
    fn parses_ip_json() {
        let addrs = r#"[
          {"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"},{"family":"inet6","local":"::1","prefixlen":128,"scope":"host"}]},
          {"ifindex":2,"ifname":"eth0","addr_info":[{"family":"inet","local":"198.18.0.1","prefixlen":24,"scope":"global"},{"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"}]},
          {"ifindex":3,"ifname":"tun0","addr_info":[{"family":"inet","local":"198.18.9.1","address":"198.18.9.2","prefixlen":32,"scope":"global"}]},
          {"ifindex":4,"ifname":"down0"}
        ]"#;
        let nets = connected_from_ip_json(addrs).unwrap();
        let nets: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(nets, vec!["198.18.0.0/24", "fe80::/64"]);

        let routes = r#"[{"dst":"198.19.2.0/24","gateway":"198.18.0.2","dev":"eth0","protocol":"153","flags":[]},
                         {"dst":"198.19.7.7","gateway":"198.18.0.7","dev":"eth0","protocol":"153","flags":[]},
                         {"dst":"198.19.8.0/24","dev":"cni0","protocol":"153","flags":[]}]"#;
        assert_eq!(
            routes_from_ip_json(routes, false).unwrap(),
            vec![
                route("198.19.2.0/24", "198.18.0.2"),
                route("198.19.7.7/32", "198.18.0.7")
            ]
        );
    }

    #[test]
    fn node_from_object_and_list() {
        let list = r#"{"apiVersion":"v1","kind":"List","items":[
          {"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"},
           "spec":{"podCIDR":"198.19.1.0/24","podCIDRs":["198.19.1.0/24","fd00:1::/64"]},
           "status":{"addresses":[{"type":"Hostname","address":"n1"},{"type":"InternalIP","address":"198.18.0.1"},{"type":"InternalIP","address":"bogus"}]}},
          {"apiVersion":"v1","kind":"Node","metadata":{"name":"n2"},"spec":{"podCIDR":"198.19.2.0/24"}},
          {"apiVersion":"v1","kind":"Node","metadata":{"name":"n3"},"spec":{"podCIDR":"198.19.3.1/24"}}
        ]}"#;
        let nodes = NodeNetwork::list_from_json(list).unwrap();
        assert_eq!(
            nodes,
            vec![
                node("n1", &["198.19.1.0/24", "fd00:1::/64"], &["198.18.0.1"]),
                node("n2", &["198.19.2.0/24"], &[]),
                node("n3", &[], &[]),
            ]
        );
        let one = r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"solo"}}"#;
        assert_eq!(NodeNetwork::list_from_json(one).unwrap()[0].name, "solo");
        assert!(NodeNetwork::list_from_json("[").is_err());
    }
}
