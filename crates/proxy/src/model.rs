//! What a Service and its EndpointSlices mean to a node's proxy: one [`ServicePort`]
//! per port of the Service, with the endpoints its ClusterIP traffic and its external
//! (NodePort, externalIPs, LoadBalancer) traffic may go to, chosen as upstream's
//! `CategorizeEndpoints` does:
//!
//! - ready endpoints; when none is ready, the serving-and-terminating ones (so a rolling
//!   update never leaves a gap);
//! - `internalTrafficPolicy: Local` limits ClusterIP traffic to this node's endpoints,
//!   `externalTrafficPolicy: Local` does the same for external traffic (and keeps the
//!   client's address: no masquerade).
//!
//! Services proxied by someone else (label `service.kubernetes.io/service-proxy-name`),
//! headless Services and ExternalName Services are not ours, as upstream.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that hands a Service to another proxy.
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";
/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service's identity: namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// L4 protocols a Service port may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// Lower case, as nft and iptables spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One endpoint (address and target port) of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// On this node (its `nodeName` is ours).
    pub local: bool,
}

/// Endpoints at `ips`, all on `port` (tests).
#[cfg(test)]
pub(crate) fn endpoints(ips: &[[u8; 4]], port: u16, local: bool) -> Vec<Endpoint> {
    ips.iter()
        .map(|ip| Endpoint {
            ip: Ipv4Addr::from(*ip),
            port,
            local,
        })
        .collect()
}

/// One port of a Service, as this node proxies it (IPv4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub service: ServiceKey,
    /// The port's name (`""` for a single unnamed port).
    pub port_name: String,
    pub protocol: Protocol,
    pub cluster_ip: Option<Ipv4Addr>,
    pub port: u16,
    pub node_port: Option<u16>,
    /// `spec.externalIPs` and `status.loadBalancer.ingress[].ip`.
    pub external_ips: Vec<Ipv4Addr>,
    /// `sessionAffinity: ClientIP`: its timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// Where ClusterIP traffic goes (sorted).
    pub cluster_endpoints: Vec<Endpoint>,
    /// Where NodePort/external traffic goes (sorted).
    pub external_endpoints: Vec<Endpoint>,
    /// Whether the Service has any endpoint at all (ready or not): with none, traffic is
    /// rejected; with some but none usable here, dropped.
    pub has_endpoints: bool,
    /// `spec.healthCheckNodePort` of a LoadBalancer with `externalTrafficPolicy:
    /// Local`: where load balancers ask whether this node has endpoints.
    pub health_check_node_port: Option<u16>,
    /// The LoadBalancer ingress IPs among `external_ips`.
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// `spec.loadBalancerSourceRanges` (or the older annotation): when not empty, only
    /// clients in these ranges reach the Service through its load balancer IPs.
    pub source_ranges: Vec<ferrokube_cni::Cidr>,
}

impl ServicePort {
    /// An unnamed ClusterIP port of `service` on `port` with `endpoints` (not local),
    /// every other setting at its default; change fields for the rest.
    pub fn new(
        service: ServiceKey,
        protocol: Protocol,
        cluster_ip: Ipv4Addr,
        port: u16,
        endpoints: Vec<Endpoint>,
    ) -> ServicePort {
        ServicePort {
            service,
            port_name: String::new(),
            protocol,
            cluster_ip: Some(cluster_ip),
            port,
            node_port: None,
            external_ips: Vec::new(),
            affinity_timeout: None,
            external_local: false,
            has_endpoints: !endpoints.is_empty(),
            cluster_endpoints: endpoints.clone(),
            external_endpoints: endpoints,
            health_check_node_port: None,
            load_balancer_ips: Vec::new(),
            source_ranges: Vec::new(),
        }
    }

    /// `namespace/name:port` as upstream logs it.
    pub fn display_name(&self) -> String {
        if self.port_name.is_empty() {
            self.service.to_string()
        } else {
            format!("{}:{}", self.service, self.port_name)
        }
    }

    /// Whether anything but ClusterIP traffic reaches it.
    pub fn has_external(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty()
    }
}

/// Why a Service is not proxied (for the log line), or `None` when it is.
pub fn skip_reason(svc: &Service) -> Option<&'static str> {
    let labels = svc.metadata.labels.as_ref();
    if labels.is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME_LABEL)) {
        return Some("handled by another proxy (service.kubernetes.io/service-proxy-name)");
    }
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return Some("ExternalName");
    }
    match spec.cluster_ip.as_deref() {
        None | Some("") | Some("None") => Some("headless"),
        _ => None,
    }
}

/// An endpoint's conditions, with upstream's defaults (nil `ready` is ready).
#[derive(Debug, Clone, Copy)]
struct Conditions {
    ready: bool,
    serving: bool,
    terminating: bool,
}

/// The annotation older clients set instead of `spec.loadBalancerSourceRanges`.
pub const SOURCE_RANGES_ANNOTATION: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";

/// `spec.loadBalancerSourceRanges`, else the annotation (comma-separated); the IPv4
/// ranges, as networks. Unparsable entries (the API validates the field, not the
/// annotation) are left out with a warning.
fn load_balancer_source_ranges(svc: &Service) -> Vec<ferrokube_cni::Cidr> {
    let from_spec: Vec<String> = svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_source_ranges.clone())
        .unwrap_or_default();
    let texts: Vec<String> = if from_spec.is_empty() {
        svc.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SOURCE_RANGES_ANNOTATION))
            .map(|v| {
                v.split(',')
                    .map(|r| r.trim().to_string())
                    .filter(|r| !r.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        from_spec
    };
    let mut out = Vec::new();
    for t in texts {
        // Host bits are masked, as Go's net.ParseCIDR does.
        let parsed = t
            .trim()
            .split_once('/')
            .and_then(|(a, p)| ferrokube_cni::Cidr::new(a.parse().ok()?, p.parse().ok()?));
        match parsed {
            Some(c) if c.is_ipv4() => out.push(c),
            Some(_) => {}
            None => {
                tracing::warn!(range = %t, "ignoring a load balancer source range that is not a CIDR")
            }
        }
    }
    out
}

/// Every port of `svc`, with endpoints from `slices` (those of this Service, any order).
/// `node` is this node's name.
pub fn service_ports<'a>(
    svc: &Service,
    slices: impl IntoIterator<Item = &'a EndpointSlice> + Clone,
    node: &str,
) -> Vec<ServicePort> {
    if skip_reason(svc).is_some() {
        return Vec::new();
    }
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    let key = ServiceKey {
        namespace: svc.metadata.namespace.clone().unwrap_or_default(),
        name: svc.metadata.name.clone().unwrap_or_default(),
    };
    let cluster_ip = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .find_map(|ip| ip.parse::<Ipv4Addr>().ok());
    let mut external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    let mut load_balancer_ips: Vec<Ipv4Addr> = Vec::new();
    let mut source_ranges = Vec::new();
    if spec.type_.as_deref() == Some("LoadBalancer") {
        let ingress = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        load_balancer_ips.extend(
            ingress
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()),
        );
        load_balancer_ips.sort();
        load_balancer_ips.dedup();
        external_ips.extend(load_balancer_ips.iter().copied());
        source_ranges = load_balancer_source_ranges(svc);
    }
    external_ips.sort();
    external_ips.dedup();
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(10800)
    });
    let node_ports_allowed = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    let external_local = spec.external_traffic_policy.as_deref() == Some("Local")
        && (node_ports_allowed || !external_ips.is_empty());
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let health_check_node_port = spec
        .health_check_node_port
        .filter(|_| external_local && spec.type_.as_deref() == Some("LoadBalancer"))
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0);
    let mut out = Vec::new();
    for p in spec.ports.iter().flatten() {
        let Some(protocol) = Protocol::parse(p.protocol.as_deref()) else {
            continue;
        };
        let Ok(port) = u16::try_from(p.port) else {
            continue;
        };
        let port_name = p.name.clone().unwrap_or_default();
        let all = endpoints_for(slices.clone(), &port_name, protocol, node);
        let has_endpoints = !all.is_empty();
        let cluster_endpoints = categorize(&all, internal_local);
        let external_endpoints = categorize(&all, external_local);
        out.push(ServicePort {
            service: key.clone(),
            port_name,
            protocol,
            cluster_ip,
            port,
            node_port: p
                .node_port
                .filter(|_| node_ports_allowed)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0),
            external_ips: external_ips.clone(),
            affinity_timeout,
            external_local,
            cluster_endpoints,
            external_endpoints,
            has_endpoints,
            health_check_node_port,
            load_balancer_ips: load_balancer_ips.clone(),
            source_ranges: source_ranges.clone(),
        });
    }
    out
}

/// The IPv4 endpoints of one port, merged across slices (an address in two slices
/// counts once, ready if either says so).
fn endpoints_for<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    port_name: &str,
    protocol: Protocol,
    node: &str,
) -> Vec<(Endpoint, Conditions)> {
    let mut merged: BTreeMap<(Ipv4Addr, u16), (Endpoint, Conditions)> = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let port = slice.ports.iter().flatten().find(|sp| {
            sp.name.as_deref().unwrap_or("") == port_name
                && Protocol::parse(sp.protocol.as_deref()) == Some(protocol)
        });
        let Some(target) = port
            .and_then(|sp| sp.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for ep in &slice.endpoints {
            let c = ep.conditions.as_ref();
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            let cond = Conditions {
                ready,
                serving: c.and_then(|c| c.serving).unwrap_or(ready),
                terminating: c.and_then(|c| c.terminating).unwrap_or(false),
            };
            let local = ep.node_name.as_deref() == Some(node);
            for addr in &ep.addresses {
                let Ok(ip) = addr.parse::<Ipv4Addr>() else {
                    tracing::debug!(slice = ?slice.metadata.name, %addr, "skipping an endpoint address that is not IPv4");
                    continue;
                };
                let e = Endpoint {
                    ip,
                    port: target,
                    local,
                };
                merged
                    .entry((ip, target))
                    .and_modify(|(old, oc)| {
                        old.local |= local;
                        oc.ready |= cond.ready;
                        oc.serving |= cond.serving;
                        oc.terminating &= cond.terminating;
                    })
                    .or_insert((e, cond));
            }
        }
    }
    merged.into_values().collect()
}

/// Ready endpoints (local ones only when `local_only`), else serving-terminating ones.
fn categorize(all: &[(Endpoint, Conditions)], local_only: bool) -> Vec<Endpoint> {
    let usable = |e: &Endpoint| !local_only || e.local;
    let ready: Vec<Endpoint> = all
        .iter()
        .filter(|(e, c)| c.ready && usable(e))
        .map(|(e, _)| *e)
        .collect();
    if !ready.is_empty() {
        return ready;
    }
    all.iter()
        .filter(|(e, c)| c.serving && c.terminating && usable(e))
        .map(|(e, _)| *e)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }
    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).unwrap()
    }

    fn web() -> Service {
        svc(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.10", "type": "NodePort",
                     "ports": [{"name": "http", "port": 80, "nodePort": 30080},
                               {"name": "dns", "port": 53, "protocol": "UDP"}]}
        }))
    }

    fn endpoints() -> EndpointSlice {
        slice(json!({
            "metadata": {"name": "web-abc", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                      {"name": "dns", "port": 5353, "protocol": "UDP"}],
            "endpoints": [
                {"addresses": ["10.244.1.5"], "nodeName": "n1", "conditions": {"ready": true}},
                {"addresses": ["10.244.2.5"], "nodeName": "n2", "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.244.2.6"], "nodeName": "n2"}
            ]
        }))
    }

    #[test]
    fn ports_get_their_own_endpoints_and_not_ready_ones_are_left_out() {
        let ports = service_ports(&web(), [&endpoints()], "n1");
        assert_eq!(ports.len(), 2);
        let http = &ports[0];
        assert_eq!(http.display_name(), "default/web:http");
        assert_eq!(http.cluster_ip, Some(Ipv4Addr::new(10, 96, 0, 10)));
        assert_eq!(http.node_port, Some(30080));
        let ips: Vec<_> = http
            .cluster_endpoints
            .iter()
            .map(|e| (e.ip.to_string(), e.port))
            .collect();
        assert_eq!(
            ips,
            [
                ("10.244.1.5".into(), 8080),
                ("10.244.2.6".to_string(), 8080)
            ]
        );
        assert!(http.cluster_endpoints[0].local && !http.cluster_endpoints[1].local);
        assert_eq!(ports[1].protocol, Protocol::Udp);
        assert_eq!(ports[1].cluster_endpoints[0].port, 5353);
    }

    #[test]
    fn terminating_endpoints_are_used_only_when_nothing_is_ready() {
        let s = slice(json!({
            "metadata": {"name": "web-x", "namespace": "default"},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.244.2.5"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.244.2.7"], "conditions": {"ready": false, "serving": false, "terminating": true}}
            ]
        }));
        let ports = service_ports(&web(), [&s], "n1");
        let eps: Vec<_> = ports[0]
            .cluster_endpoints
            .iter()
            .map(|e| e.ip.to_string())
            .collect();
        assert_eq!(eps, ["10.244.2.5"]);
        assert!(ports[0].has_endpoints);
    }

    #[test]
    fn traffic_policies_local_keep_traffic_on_the_node() {
        let mut s = web();
        let spec = s.spec.as_mut().unwrap();
        spec.external_traffic_policy = Some("Local".into());
        let ports = service_ports(&s, [&endpoints()], "n2");
        assert!(ports[0].external_local);
        assert_eq!(ports[0].health_check_node_port, None, "not a LoadBalancer");
        assert_eq!(ports[0].cluster_endpoints.len(), 2);
        let ext: Vec<_> = ports[0]
            .external_endpoints
            .iter()
            .map(|e| e.ip.to_string())
            .collect();
        assert_eq!(ext, ["10.244.2.6"]);
        s.spec.as_mut().unwrap().internal_traffic_policy = Some("Local".into());
        let ports = service_ports(&s, [&endpoints()], "n3");
        assert!(ports[0].cluster_endpoints.is_empty());
        assert!(ports[0].has_endpoints);
        // A LoadBalancer with Local traffic policy gets its health check node port.
        let spec = s.spec.as_mut().unwrap();
        spec.type_ = Some("LoadBalancer".into());
        spec.health_check_node_port = Some(32000);
        let ports = service_ports(&s, [&endpoints()], "n2");
        assert_eq!(ports[0].health_check_node_port, Some(32000));
        s.spec.as_mut().unwrap().external_traffic_policy = Some("Cluster".into());
        let ports = service_ports(&s, [&endpoints()], "n2");
        assert_eq!(ports[0].health_check_node_port, None);
    }

    #[test]
    fn headless_external_name_and_foreign_services_are_skipped() {
        for v in [
            json!({"metadata": {"name": "h", "namespace": "d"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}),
            json!({"metadata": {"name": "e", "namespace": "d"}, "spec": {"type": "ExternalName", "externalName": "x.example"}}),
            json!({"metadata": {"name": "o", "namespace": "d", "labels": {"service.kubernetes.io/service-proxy-name": "other"}},
                   "spec": {"clusterIP": "10.96.0.9", "ports": [{"port": 1}]}}),
        ] {
            let s = svc(v);
            assert!(skip_reason(&s).is_some());
            assert!(service_ports(&s, [], "n").is_empty());
        }
    }

    #[test]
    fn load_balancer_source_ranges_from_the_field_or_the_annotation() {
        let lb = |extra_spec: serde_json::Value, annotations: serde_json::Value| {
            let mut spec = json!({"clusterIP": "10.96.0.12", "type": "LoadBalancer", "externalIPs": ["198.18.9.8"],
                                  "ports": [{"port": 80, "nodePort": 30080}]});
            for (k, v) in extra_spec.as_object().unwrap() {
                spec[k] = v.clone();
            }
            svc(json!({
                "metadata": {"name": "lb", "namespace": "d", "annotations": annotations},
                "spec": spec,
                "status": {"loadBalancer": {"ingress": [{"ip": "198.18.9.10"}]}}
            }))
        };
        let p = &service_ports(
            &lb(
                json!({"loadBalancerSourceRanges": ["198.18.0.0/16", "fd00::/8"]}),
                json!({}),
            ),
            [],
            "n",
        )[0];
        assert_eq!(p.load_balancer_ips, [Ipv4Addr::new(198, 18, 9, 10)]);
        assert_eq!(
            p.external_ips.len(),
            2,
            "externalIPs and ingress IPs both served"
        );
        let ranges: Vec<String> = p.source_ranges.iter().map(ToString::to_string).collect();
        assert_eq!(ranges, ["198.18.0.0/16"], "IPv6 ranges are left out");
        let p = &service_ports(
            &lb(
                json!({}),
                json!({"service.beta.kubernetes.io/load-balancer-source-ranges": "198.18.1.7/24, nonsense"}),
            ),
            [],
            "n",
        )[0];
        let ranges: Vec<String> = p.source_ranges.iter().map(ToString::to_string).collect();
        assert_eq!(ranges, ["198.18.1.0/24"]);
    }

    #[test]
    fn affinity_external_ips_and_load_balancer_ingress() {
        let s = svc(json!({
            "metadata": {"name": "lb", "namespace": "d"},
            "spec": {"clusterIP": "10.96.0.11", "type": "LoadBalancer", "externalIPs": ["198.18.9.9"],
                     "sessionAffinity": "ClientIP",
                     "ports": [{"port": 443, "nodePort": 31443}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.18.9.10"}]}}
        }));
        let p = &service_ports(&s, [], "n")[0];
        assert_eq!(p.affinity_timeout, Some(10800));
        assert_eq!(p.external_ips.len(), 2);
        assert!(!p.has_endpoints);
        assert!(p.has_external());
    }
}
