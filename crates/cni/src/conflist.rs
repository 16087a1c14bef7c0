//! The node's CNI network configuration list (CNI spec v1.0.0, "Network Configuration
//! Lists"): what containerd's CRI plugin (go-cni/libcni) loads from its conf dir and runs
//! for every pod sandbox.
//!
//! It is the chain flannel's CNI plugin delegates to, written out directly: `bridge` on
//! `cni0` as the pods' gateway (no masquerade: [`crate::masq`] does that for the whole
//! cluster CIDR, as flannel's `ipMasq`), `host-local` IPAM over the node's podCIDRs, then
//! `portmap` for `hostPort`s. Debian's containernetworking-plugins v1.1.1 and containerd
//! 1.6 both speak CNI 1.0.0.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cidr::Cidr;
use crate::Error;

/// The file name in the CNI conf dir. containerd's CRI plugin (`max_conf_num = 1`) loads
/// the lexically first configuration there, so no other file may sort before it (e.g.
/// containerd's example `10-containerd-net.conflist` must be removed).
pub const CONFLIST_FILE: &str = "10-ferrokube.conflist";
/// The network name (`name` in the conflist; host-local keeps its leases under it).
pub const NETWORK_NAME: &str = "ferrokube";
/// The bridge every pod's veth is attached to.
pub const BRIDGE_NAME: &str = "cni0";
/// The CNI spec version written.
pub const CNI_VERSION: &str = "1.0.0";

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfList<'a> {
    cni_version: &'static str,
    name: &'static str,
    plugins: (BridgePlugin<'a>, PortmapPlugin),
}

/// The `bridge` plugin's configuration (plugins/main/bridge in containernetworking).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BridgePlugin<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    bridge: &'a str,
    is_gateway: bool,
    ip_masq: bool,
    hairpin_mode: bool,
    ipam: HostLocalIpam,
}

/// `host-local` IPAM: one range set per IP family, leases under `dataDir/<network>`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HostLocalIpam {
    #[serde(rename = "type")]
    kind: &'static str,
    ranges: Vec<Vec<Range>>,
    routes: Vec<RouteEntry>,
    data_dir: String,
}

#[derive(Debug, Serialize)]
struct Range {
    subnet: String,
}

#[derive(Debug, Serialize)]
struct RouteEntry {
    dst: &'static str,
}

#[derive(Debug, Serialize)]
struct PortmapPlugin {
    #[serde(rename = "type")]
    kind: &'static str,
    capabilities: PortmapCapabilities,
    snat: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PortmapCapabilities {
    port_mappings: bool,
}

/// Where host-local keeps its leases: `<data_dir>/networks` (host-local adds the network
/// name), instead of the shared `/var/lib/cni/networks`.
pub fn ipam_data_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("networks")
}

/// Renders the conflist for a node's podCIDRs (`spec.podCIDRs`, IPv4 required; a second,
/// IPv6 one makes the pods dual-stack) on the Linux bridge `bridge` ([`BRIDGE_NAME`]
/// unless several pod networks share a host). `node` only names the node in errors.
pub fn render(
    node: &str,
    pod_cidrs: &[Cidr],
    data_dir: &Path,
    bridge: &str,
) -> Result<String, Error> {
    let v4 = pod_cidrs.iter().find(|c| c.is_ipv4());
    let v6 = pod_cidrs.iter().find(|c| !c.is_ipv4());
    let Some(v4) = v4 else {
        if pod_cidrs.is_empty() {
            return Err(Error::NoPodCidr {
                node: node.to_string(),
            });
        }
        return Err(Error::NoIpv4PodCidr {
            node: node.to_string(),
            pod_cidrs: pod_cidrs.iter().map(ToString::to_string).collect(),
        });
    };
    let mut ranges = vec![vec![Range {
        subnet: v4.to_string(),
    }]];
    let mut routes = vec![RouteEntry { dst: "0.0.0.0/0" }];
    if let Some(v6) = v6 {
        ranges.push(vec![Range {
            subnet: v6.to_string(),
        }]);
        routes.push(RouteEntry { dst: "::/0" });
    }
    let conf = ConfList {
        cni_version: CNI_VERSION,
        name: NETWORK_NAME,
        plugins: (
            BridgePlugin {
                kind: "bridge",
                bridge,
                is_gateway: true,
                ip_masq: false,
                hairpin_mode: true,
                ipam: HostLocalIpam {
                    kind: "host-local",
                    ranges,
                    routes,
                    data_dir: ipam_data_dir(data_dir).to_string_lossy().into_owned(),
                },
            },
            PortmapPlugin {
                kind: "portmap",
                capabilities: PortmapCapabilities {
                    port_mappings: true,
                },
                snat: true,
            },
        ),
    };
    let mut text = serde_json::to_string_pretty(&conf).map_err(Error::EncodeConflist)?;
    text.push('\n');
    Ok(text)
}

/// Writes `content` as `<conf_dir>/10-ferrokube.conflist` atomically (temp file, fsync,
/// rename, so containerd never reads half a file) and creates the IPAM data dir. Returns
/// whether the file changed; identical content is left alone.
pub async fn write(conf_dir: &Path, data_dir: &Path, content: &str) -> Result<bool, Error> {
    let path = conf_dir.join(CONFLIST_FILE);
    let ipam_dir = ipam_data_dir(data_dir);
    tokio::fs::create_dir_all(&ipam_dir)
        .await
        .map_err(|source| Error::WriteFile {
            path: ipam_dir.clone(),
            source,
        })?;
    match tokio::fs::read(&path).await {
        Ok(existing) if existing == content.as_bytes() => return Ok(false),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(Error::ReadFile { path, source }),
    }
    tokio::fs::create_dir_all(conf_dir)
        .await
        .map_err(|source| Error::WriteFile {
            path: conf_dir.to_path_buf(),
            source,
        })?;
    // libcni only loads *.conf, *.conflist and *.json: a dot-file temp name is ignored.
    let tmp = conf_dir.join(format!(".{CONFLIST_FILE}.tmp"));
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::WriteFile { path, source }
    };
    {
        use tokio::io::AsyncWriteExt;
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(write_err(&tmp))?;
        file.write_all(content.as_bytes())
            .await
            .map_err(write_err(&tmp))?;
        file.sync_all().await.map_err(write_err(&tmp))?;
    }
    tokio::fs::rename(&tmp, &path)
        .await
        .map_err(write_err(&path))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn single_stack_matches_a_bridge_host_local_conflist() {
        let text = render(
            "n1",
            &cidrs(&["10.244.1.0/24"]),
            Path::new("/var/lib/ferrokube/cni"),
            BRIDGE_NAME,
        )
        .unwrap();
        let got: serde_json::Value = serde_json::from_str(&text).unwrap();
        // containerd's 10-containerd-net.conflist and flannel's delegated bridge config,
        // with masquerade off (ours) and our own lease directory.
        let want = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "ferrokube",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": "10.244.1.0/24"}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": "/var/lib/ferrokube/cni/networks"
                    }
                },
                {
                    "type": "portmap",
                    "capabilities": {"portMappings": true},
                    "snat": true
                }
            ]
        });
        assert_eq!(got, want);
        assert!(text.ends_with("}\n"));
        // cniVersion comes first, as every example in the CNI spec writes it.
        assert!(text.starts_with("{\n  \"cniVersion\": \"1.0.0\""));
    }

    #[test]
    fn dual_stack_adds_a_second_range_and_default_route() {
        let text = render(
            "n1",
            &cidrs(&["fd00:10:244:1::/64", "10.244.1.0/24"]),
            Path::new("/d"),
            BRIDGE_NAME,
        )
        .unwrap();
        let got: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ipam = &got["plugins"][0]["ipam"];
        assert_eq!(
            ipam["ranges"],
            serde_json::json!([[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:10:244:1::/64"}]])
        );
        assert_eq!(
            ipam["routes"],
            serde_json::json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}])
        );
    }

    #[test]
    fn ipv4_is_required() {
        let err = render("n1", &cidrs(&["fd00::/64"]), Path::new("/d"), BRIDGE_NAME).unwrap_err();
        assert!(matches!(err, Error::NoIpv4PodCidr { .. }), "{err}");
        let err = render("n1", &[], Path::new("/d"), BRIDGE_NAME).unwrap_err();
        assert!(matches!(err, Error::NoPodCidr { .. }), "{err}");
    }

    #[tokio::test]
    async fn writes_atomically_and_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let conf_dir = dir.path().join("net.d");
        let data_dir = dir.path().join("data");
        let a = render("n1", &cidrs(&["10.244.1.0/24"]), &data_dir, BRIDGE_NAME).unwrap();
        assert!(write(&conf_dir, &data_dir, &a).await.unwrap());
        let path = conf_dir.join(CONFLIST_FILE);
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert!(!write(&conf_dir, &data_dir, &a).await.unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
        let b = render("n1", &cidrs(&["10.244.2.0/24"]), &data_dir, BRIDGE_NAME).unwrap();
        assert!(write(&conf_dir, &data_dir, &b).await.unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), b);
        assert!(data_dir.join("networks").is_dir());
        let names: Vec<_> = std::fs::read_dir(&conf_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(CONFLIST_FILE)]);
    }
}
