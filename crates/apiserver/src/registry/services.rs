//! Service IPs and node ports. ClusterIPs are tracked as upstream 1.33 tracks them: one
//! `networking.k8s.io/v1` IPAddress object per allocated IP, named by the IP, whose
//! `spec.parentRef` is the Service. Node ports are one key per port under
//! `/ranges/servicenodeports/`. Both are claimed with create-if-absent in storage, so two
//! Services can never hold the same IP or port, across restarts and concurrent creates.

use std::net::Ipv4Addr;

use bytes::Bytes;
use ferrokube_api::meta;
use ferrokube_api::status::{field, Status, Subject};
use ferrokube_storage::StorageError;
use serde_json::{json, Value};

use crate::errors::ApiResult;
use crate::registry::store::{encode, prepare_create, Registry, Target};

#[derive(Debug, Clone)]
pub struct ServiceAllocator {
    base: u32,
    size: u32,
    node_ports: (u16, u16),
}

const NODE_PORT_PREFIX: &str = "/ranges/servicenodeports/";

fn invalid(svc: &str, field_path: &str, value: Value, why: &str) -> Status {
    Status::invalid(
        Subject {
            group: "",
            resource: "Service",
            name: svc,
        },
        vec![field::invalid(field_path, &value, why)],
    )
}

impl ServiceAllocator {
    /// Parses `--service-cluster-ip-range` (IPv4 CIDR) and `--service-node-port-range`.
    pub fn parse(cidr: &str, node_ports: &str) -> Result<ServiceAllocator, String> {
        let (ip, bits) = cidr
            .split_once('/')
            .ok_or_else(|| format!("--service-cluster-ip-range {cidr:?}: not a CIDR"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("--service-cluster-ip-range {cidr:?}: not an IPv4 address"))?;
        let bits: u32 = bits
            .parse()
            .ok()
            .filter(|b| (8..=30).contains(b))
            .ok_or_else(|| {
                format!("--service-cluster-ip-range {cidr:?}: prefix must be /8 to /30")
            })?;
        let mask = u32::MAX << (32 - bits);
        let (lo, hi) = node_ports
            .split_once('-')
            .ok_or_else(|| format!("--service-node-port-range {node_ports:?}: expected FROM-TO"))?;
        let lo: u16 = lo
            .trim()
            .parse()
            .map_err(|_| format!("--service-node-port-range {node_ports:?}: bad port"))?;
        let hi: u16 = hi
            .trim()
            .parse()
            .map_err(|_| format!("--service-node-port-range {node_ports:?}: bad port"))?;
        if lo == 0 || lo > hi {
            return Err(format!(
                "--service-node-port-range {node_ports:?}: empty range"
            ));
        }
        Ok(ServiceAllocator {
            base: u32::from(ip) & mask,
            size: 1 << (32 - bits),
            node_ports: (lo, hi),
        })
    }

    /// The first usable IP: the `kubernetes` Service's.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        v > self.base && v < self.base + self.size - 1
    }

    async fn claim_ip(
        &self,
        reg: &Registry,
        ip: Ipv4Addr,
        ns: &str,
        name: &str,
    ) -> ApiResult<bool> {
        let Some(info) = ferrokube_api::resources::lookup("networking.k8s.io", "v1", "ipaddresses")
        else {
            return Err(Status::internal("ipaddresses are not registered").into());
        };
        let obj = json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
            "metadata": {"name": ip.to_string(), "labels": {"ipaddress.kubernetes.io/ip-family": "IPv4", "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io"}},
            "spec": {"parentRef": {"group": "", "resource": "services", "namespace": ns, "name": name}},
        });
        // Straight to storage: the IPAddress is created on behalf of a Service create.
        let target = Target::builtin(info, None);
        let mut obj = obj;
        prepare_create(&target, &mut obj)?;
        match reg
            .storage
            .create(&target.key(&ip.to_string()), encode(&obj)?, None)
            .await
        {
            Ok(_) => Ok(true),
            Err(StorageError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Allocates the requested IP or a free one for Service `ns/name`.
    pub async fn allocate_ip(
        &self,
        reg: &Registry,
        ns: &str,
        name: &str,
        requested: Option<&str>,
    ) -> ApiResult<Ipv4Addr> {
        if let Some(want) = requested {
            let ip: Ipv4Addr = want.parse().map_err(|_| {
                invalid(
                    name,
                    "spec.clusterIPs[0]",
                    json!(want),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )
            })?;
            if !self.contains(ip) {
                return Err(invalid(name, "spec.clusterIPs[0]", json!(want), &format!("failed to allocate IP {want}: the provided IP ({want}) is not in the valid range")).into());
            }
            if !self.claim_ip(reg, ip, ns, name).await? {
                return Err(invalid(
                    name,
                    "spec.clusterIPs[0]",
                    json!(want),
                    &format!("failed to allocate IP {want}: provided IP is already allocated"),
                )
                .into());
            }
            return Ok(ip);
        }
        let usable = self.size.saturating_sub(2).max(1);
        let start = (crate::random_hex()
            .get(..8)
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .unwrap_or(0))
            % usable;
        for i in 0..usable {
            // Skip the first address: it belongs to the `kubernetes` Service.
            let offset = 2 + (start + i) % usable.saturating_sub(1).max(1);
            let ip = Ipv4Addr::from(self.base + offset);
            if self.contains(ip) && self.claim_ip(reg, ip, ns, name).await? {
                return Ok(ip);
            }
        }
        Err(invalid(
            name,
            "spec.clusterIPs",
            json!([]),
            "failed to allocate IP: range is full",
        )
        .into())
    }

    pub async fn release_ip(&self, reg: &Registry, ip: &str) {
        let Some(info) = ferrokube_api::resources::lookup("networking.k8s.io", "v1", "ipaddresses")
        else {
            return;
        };
        let _ = reg.storage.delete(&info.storage_key(None, ip), None).await;
    }

    async fn claim_port(&self, reg: &Registry, port: u16, owner: &str) -> ApiResult<bool> {
        match reg
            .storage
            .create(
                &format!("{NODE_PORT_PREFIX}{port}"),
                Bytes::from(owner.to_string()),
                None,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(StorageError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn allocate_node_port(
        &self,
        reg: &Registry,
        svc: &str,
        owner: &str,
        requested: Option<i64>,
    ) -> ApiResult<u16> {
        let (lo, hi) = self.node_ports;
        if let Some(want) = requested {
            let port = u16::try_from(want).ok().filter(|p| (lo..=hi).contains(p)).ok_or_else(|| {
                invalid(svc, "spec.ports[0].nodePort", json!(want), &format!("provided port is not in the valid range. The range of valid ports is {lo}-{hi}"))
            })?;
            if !self.claim_port(reg, port, owner).await? {
                return Err(invalid(
                    svc,
                    "spec.ports[0].nodePort",
                    json!(want),
                    "provided port is already allocated",
                )
                .into());
            }
            return Ok(port);
        }
        let span = u32::from(hi - lo) + 1;
        let start = crate::random_hex()
            .get(..8)
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .unwrap_or(0)
            % span;
        for i in 0..span {
            let port = lo + ((start + i) % span) as u16;
            if self.claim_port(reg, port, owner).await? {
                return Ok(port);
            }
        }
        Err(invalid(
            svc,
            "spec.ports",
            json!([]),
            "failed to allocate a nodePort: range is full",
        )
        .into())
    }

    pub async fn release_node_port(&self, reg: &Registry, port: i64) {
        let _ = reg
            .storage
            .delete(&format!("{NODE_PORT_PREFIX}{port}"), None)
            .await;
    }

    /// Fills in `spec.clusterIP(s)` and node ports of a Service being created; returns
    /// what was allocated, to release if the create fails.
    pub async fn allocate_for(&self, reg: &Registry, svc: &mut Value) -> ApiResult<Allocated> {
        let ns = meta::namespace(svc).unwrap_or("default").to_string();
        let name = meta::name(svc).unwrap_or_default().to_string();
        let typ = svc
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        let mut done = Allocated::default();
        if typ == "ExternalName" {
            return Ok(done);
        }
        let requested = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if requested.as_deref() != Some("None") {
            let ip = self
                .allocate_ip(reg, &ns, &name, requested.as_deref())
                .await?;
            done.ip = Some(ip.to_string());
            if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("clusterIP".into(), json!(ip.to_string()));
                spec.insert("clusterIPs".into(), json!([ip.to_string()]));
            }
        } else if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("clusterIPs".into(), json!(["None"]));
        }
        if typ == "NodePort" || typ == "LoadBalancer" {
            let owner = format!("{ns}/{name}");
            let count = svc
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for i in 0..count {
                let want = svc
                    .pointer(&format!("/spec/ports/{i}/nodePort"))
                    .and_then(Value::as_i64)
                    .filter(|p| *p != 0);
                match self.allocate_node_port(reg, &name, &owner, want).await {
                    Ok(port) => {
                        done.node_ports.push(i64::from(port));
                        if let Some(p) = svc
                            .pointer_mut(&format!("/spec/ports/{i}"))
                            .and_then(Value::as_object_mut)
                        {
                            p.insert("nodePort".into(), json!(port));
                        }
                    }
                    Err(e) => {
                        self.release(reg, &done).await;
                        return Err(e);
                    }
                }
            }
        }
        Ok(done)
    }

    pub async fn release(&self, reg: &Registry, done: &Allocated) {
        if let Some(ip) = &done.ip {
            self.release_ip(reg, ip).await;
        }
        for p in &done.node_ports {
            self.release_node_port(reg, *p).await;
        }
    }

    /// What a stored Service holds (to release when it is deleted).
    pub fn held_by(svc: &Value) -> Allocated {
        let ip = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && *s != "None")
            .map(str::to_string);
        let node_ports = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map_or(Vec::new(), |ps| {
                ps.iter().filter_map(|p| p["nodePort"].as_i64()).collect()
            });
        Allocated { ip, node_ports }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Allocated {
    pub ip: Option<String>,
    pub node_ports: Vec<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges() {
        let a = ServiceAllocator::parse("10.254.0.0/16", "30000-32767").unwrap();
        assert_eq!(a.first_ip(), Ipv4Addr::new(10, 254, 0, 1));
        assert!(a.contains(Ipv4Addr::new(10, 254, 255, 254)));
        assert!(!a.contains(Ipv4Addr::new(10, 254, 255, 255)));
        assert!(!a.contains(Ipv4Addr::new(10, 254, 0, 0)));
        assert!(ServiceAllocator::parse("10.0.0.0", "1-2").is_err());
        assert!(ServiceAllocator::parse("10.0.0.0/24", "5-1").is_err());
        assert!(ServiceAllocator::parse("10.0.0.0/31", "1-2").is_err());
    }
}
