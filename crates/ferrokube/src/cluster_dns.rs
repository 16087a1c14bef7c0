//! The cluster DNS of `ferrokube server` (the seeds' kube-dns/CoreDNS add-on): the DNS
//! server runs in the server process on `<node IP>:53`, and the server publishes it as
//! the Service `kube-system/kube-dns` at the kubelets' `clusterDNS` address (`.10` of
//! the Service range), with a hand-made EndpointSlice pointing at that listener. Every
//! node's kube-proxy then carries pods' queries to it, as it would to CoreDNS pods.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// The field manager of what we publish.
const MANAGER: &str = "ferrokube-server";

/// `.10` of an IPv4 Service range (`10.43.0.0/16` → `10.43.0.10`), as kubeadm and k3s.
pub fn default_address(service_range: &str) -> anyhow::Result<IpAddr> {
    let cidr: ferrokube_cni::Cidr = service_range
        .parse()
        .map_err(|e| anyhow::anyhow!("--service-cluster-ip-range {service_range:?}: {e}"))?;
    match cidr.addr() {
        IpAddr::V4(a) => Ok(IpAddr::from(u32::from(a).wrapping_add(10).to_be_bytes())),
        IpAddr::V6(_) => anyhow::bail!("--service-cluster-ip-range {service_range:?}: IPv4 needed"),
    }
}

/// Starts the DNS server on `ip:53` answering for `domain`, forwarding the rest to the
/// host's resolvers.
pub async fn start(
    ip: IpAddr,
    domain: &str,
    client: kube::Client,
) -> anyhow::Result<ferrokube_dns::Handle> {
    let upstreams =
        ferrokube_dns::forward::resolv_conf_upstreams(std::path::Path::new("/etc/resolv.conf"))
            .unwrap_or_default();
    let config = ferrokube_dns::Config {
        listen: vec![SocketAddr::new(ip, 53)],
        cluster_domain: domain.to_string(),
        upstreams,
        ..ferrokube_dns::Config::default()
    }
    .validated()?;
    ferrokube_dns::Server::start(config, Some(client))
        .await
        .with_context(|| format!("starting the cluster DNS on {ip}:53"))
}

/// The `kube-dns` Service at `cluster_ip` and its EndpointSlice to `server`:53.
pub async fn publish(
    client: &kube::Client,
    cluster_ip: IpAddr,
    server: IpAddr,
) -> anyhow::Result<()> {
    let pp = PatchParams::apply(MANAGER).force();
    let services: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS",
                                "kubernetes.io/cluster-service": "true"}},
        "spec": {"clusterIP": cluster_ip.to_string(),
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}
    });
    services
        .patch("kube-dns", &pp, &Patch::Apply(svc))
        .await
        .with_context(|| format!("publishing Service kube-system/kube-dns at {cluster_ip}"))?;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "kube-system");
    let family = if server.is_ipv4() { "IPv4" } else { "IPv6" };
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kube-dns-ferrokube", "namespace": "kube-system",
                     "labels": {"kubernetes.io/service-name": "kube-dns",
                                "endpointslice.kubernetes.io/managed-by": "ferrokube-server"}},
        "addressType": family,
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                  {"name": "dns-tcp", "port": 53, "protocol": "TCP"}],
        "endpoints": [{"addresses": [server.to_string()], "conditions": {"ready": true}}]
    });
    slices
        .patch("kube-dns-ferrokube", &pp, &Patch::Apply(slice))
        .await
        .context("publishing EndpointSlice kube-system/kube-dns-ferrokube")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dns_address_is_the_tenth_of_the_range() {
        assert_eq!(
            default_address("10.43.0.0/16").unwrap().to_string(),
            "10.43.0.10"
        );
        assert_eq!(
            default_address("198.18.240.0/20").unwrap().to_string(),
            "198.18.240.10"
        );
        assert!(default_address("nonsense").is_err());
    }
}
