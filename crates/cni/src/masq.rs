//! flannel's `ipMasq` (the FLANNEL-POSTRTG chain) and FLANNEL-FWD rules, as nftables
//! tables of our own: `table ip ferrokube-cni` (and `table ip6 ferrokube-cni` when the
//! cluster is dual-stack), replaced in one `nft -f -` transaction so there is never a
//! moment without them and a rerun changes nothing.
//!
//! Pods talk to each other with their own addresses; traffic from a pod to anything
//! outside the cluster CIDR leaves with the node's address. Forwarding is switched on
//! (`net.ipv4.ip_forward`); `br_netfilter` is not needed, since pod traffic is routed at
//! layer 3 by the host, never filtered on the bridge.
//!
//! An nftables `accept` only ends its own base chain: a `policy drop` FORWARD chain of
//! another table (Docker's iptables rules) would still drop pod traffic. So, as flannel
//! does, when iptables' FORWARD policy is DROP we also insert ACCEPT rules for the cluster
//! CIDR into it.

use std::path::{Path, PathBuf};

use crate::cidr::Cidr;
use crate::exec;
use crate::Error;

/// Our table's name, in the `ip` and the `ip6` family.
pub const TABLE_NAME: &str = "ferrokube-cni";

/// kube-proxy's masquerade mark (`--iptables-masquerade-bit` 14): kube-proxy masquerades
/// those packets itself; doing it twice trips a kernel bug flannel works around too.
const KUBE_PROXY_MASQ_MARK: &str = "0x00004000";

/// The comment on the iptables FORWARD rules we insert.
const IPTABLES_COMMENT: &str = "ferrokube-cni forward";

/// The whole `nft -f -` script: for each family, create-if-missing, delete, recreate, so
/// the table ends up exactly as rendered. A family without a cluster CIDR gets its stale
/// table removed. `pod_cidrs` are this node's (traffic from outside to them is not
/// masqueraded, as flannel's rule for the node's own lease).
pub fn ruleset(cluster_cidrs: &[Cidr], pod_cidrs: &[Cidr]) -> String {
    let mut out = String::new();
    for family in ["ip", "ip6"] {
        out.push_str(&format!("table {family} {TABLE_NAME}\n"));
        out.push_str(&format!("delete table {family} {TABLE_NAME}\n"));
        let Some(cluster) = cluster_cidrs.iter().find(|c| c.nft_family() == family) else {
            continue;
        };
        let own = pod_cidrs.iter().find(|c| c.nft_family() == family);
        out.push_str(&table(family, cluster, own));
    }
    out
}

fn table(family: &str, cluster: &Cidr, own: Option<&Cidr>) -> String {
    let multicast = if family == "ip" {
        "224.0.0.0/4"
    } else {
        "ff00::/8"
    };
    let mut t = String::new();
    t.push_str(&format!("table {family} {TABLE_NAME} {{\n"));
    t.push_str("\tchain postrouting {\n");
    t.push_str("\t\ttype nat hook postrouting priority srcnat; policy accept;\n");
    t.push_str(&format!(
        "\t\tmeta mark & {KUBE_PROXY_MASQ_MARK} == {KUBE_PROXY_MASQ_MARK} return\n"
    ));
    t.push_str(&format!(
        "\t\t{family} saddr {cluster} {family} daddr {cluster} return\n"
    ));
    if let Some(own) = own {
        t.push_str(&format!(
            "\t\t{family} saddr != {cluster} {family} daddr {own} return\n"
        ));
    }
    t.push_str(&format!(
        "\t\t{family} saddr {cluster} {family} daddr != {multicast} counter masquerade fully-random\n"
    ));
    t.push_str(&format!(
        "\t\t{family} saddr != {cluster} {family} daddr {cluster} counter masquerade fully-random\n"
    ));
    t.push_str("\t}\n");
    t.push_str("\tchain forward {\n");
    t.push_str("\t\ttype filter hook forward priority filter; policy accept;\n");
    t.push_str(&format!("\t\t{family} saddr {cluster} accept\n"));
    t.push_str(&format!("\t\t{family} daddr {cluster} accept\n"));
    t.push_str("\t}\n");
    t.push_str("}\n");
    t
}

/// Replaces our tables with [`ruleset`] in one transaction.
pub async fn apply(cluster_cidrs: &[Cidr], pod_cidrs: &[Cidr]) -> Result<(), Error> {
    let script = ruleset(cluster_cidrs, pod_cidrs);
    exec::run("nft", &["-f", "-"], Some(&script)).await?;
    Ok(())
}

/// Removes our tables (both families), if present.
pub async fn delete() -> Result<(), Error> {
    exec::run("nft", &["-f", "-"], Some(&ruleset(&[], &[]))).await?;
    Ok(())
}

fn sysctl_path(ipv6: bool) -> PathBuf {
    if ipv6 {
        PathBuf::from("/proc/sys/net/ipv6/conf/all/forwarding")
    } else {
        PathBuf::from("/proc/sys/net/ipv4/ip_forward")
    }
}

async fn ensure_sysctl_one(path: &Path) -> Result<bool, Error> {
    let current = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| Error::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
    if current.trim() == "1" {
        return Ok(false);
    }
    tokio::fs::write(path, b"1")
        .await
        .map_err(|source| Error::WriteFile {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(true)
}

/// Switches on IPv4 forwarding (and IPv6 forwarding when `ipv6`), in the network
/// namespace this process runs in. Returns whether anything changed.
pub async fn enable_forwarding(ipv6: bool) -> Result<bool, Error> {
    let mut changed = ensure_sysctl_one(&sysctl_path(false)).await?;
    if ipv6 {
        changed |= ensure_sysctl_one(&sysctl_path(true)).await?;
    }
    if changed {
        tracing::info!(ipv6, "enabled IP forwarding");
    }
    Ok(changed)
}

/// Whether `iptables -S FORWARD` output shows a DROP (or REJECT-by-policy) default.
pub fn forward_policy_drops(iptables_s: &str) -> bool {
    iptables_s
        .lines()
        .any(|l| l.trim() == "-P FORWARD DROP" || l.trim() == "-P FORWARD REJECT")
}

/// The FORWARD rules flannel inserts (FLANNEL-FWD), as `iptables` arguments after the
/// operation (`-C FORWARD`, `-I FORWARD 1`).
pub fn iptables_forward_rules(cluster: &Cidr) -> Vec<Vec<String>> {
    ["-s", "-d"]
        .iter()
        .map(|dir| {
            vec![
                dir.to_string(),
                cluster.to_string(),
                "-m".into(),
                "comment".into(),
                "--comment".into(),
                IPTABLES_COMMENT.into(),
                "-j".into(),
                "ACCEPT".into(),
            ]
        })
        .collect()
}

/// When iptables' FORWARD policy (Docker sets it) would drop pod traffic, inserts ACCEPT
/// rules for the cluster CIDR at its top, once. Hosts without iptables, or with an
/// accepting policy, are left alone. Returns how many rules were inserted.
pub async fn ensure_iptables_forward(cluster_cidrs: &[Cidr]) -> Result<usize, Error> {
    let mut inserted = 0;
    for cluster in cluster_cidrs {
        let tool = if cluster.is_ipv4() {
            "iptables"
        } else {
            "ip6tables"
        };
        let listing = match exec::run(tool, &["-w", "5", "-S", "FORWARD"], None).await {
            Ok(out) => out,
            Err(Error::Spawn { .. }) => continue, // no iptables on this host
            Err(err) => return Err(err),
        };
        if !forward_policy_drops(&listing) {
            continue;
        }
        for rule in iptables_forward_rules(cluster) {
            let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
            let mut check = vec!["-w", "5", "-C", "FORWARD"];
            check.extend(&rule);
            if exec::run(tool, &check, None).await.is_ok() {
                continue;
            }
            let mut insert = vec!["-w", "5", "-I", "FORWARD", "1"];
            insert.extend(&rule);
            exec::run(tool, &insert, None).await?;
            inserted += 1;
        }
        if inserted > 0 {
            tracing::info!(%cluster, tool, "FORWARD policy drops: inserted ACCEPT rules for the cluster CIDR");
        }
    }
    Ok(inserted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn ipv4_ruleset() {
        let text = ruleset(&cidrs(&["10.244.0.0/16"]), &cidrs(&["10.244.1.0/24"]));
        let want = "\
table ip ferrokube-cni
delete table ip ferrokube-cni
table ip ferrokube-cni {
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tmeta mark & 0x00004000 == 0x00004000 return
\t\tip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 return
\t\tip saddr != 10.244.0.0/16 ip daddr 10.244.1.0/24 return
\t\tip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 counter masquerade fully-random
\t\tip saddr != 10.244.0.0/16 ip daddr 10.244.0.0/16 counter masquerade fully-random
\t}
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tip saddr 10.244.0.0/16 accept
\t\tip daddr 10.244.0.0/16 accept
\t}
}
table ip6 ferrokube-cni
delete table ip6 ferrokube-cni
";
        assert_eq!(text, want);
    }

    #[test]
    fn dual_stack_ruleset_has_an_ip6_table() {
        let text = ruleset(
            &cidrs(&["10.244.0.0/16", "fd00:10:244::/56"]),
            &cidrs(&["10.244.1.0/24", "fd00:10:244:1::/64"]),
        );
        assert!(text.contains("table ip6 ferrokube-cni {\n"));
        assert!(text.contains(
            "ip6 saddr fd00:10:244::/56 ip6 daddr != ff00::/8 counter masquerade fully-random"
        ));
        assert!(text.contains("ip6 saddr != fd00:10:244::/56 ip6 daddr fd00:10:244:1::/64 return"));
        assert_eq!(text.matches("delete table").count(), 2);
    }

    #[test]
    fn removal_script() {
        assert_eq!(
            ruleset(&[], &[]),
            "table ip ferrokube-cni\ndelete table ip ferrokube-cni\n\
             table ip6 ferrokube-cni\ndelete table ip6 ferrokube-cni\n"
        );
    }

    #[test]
    fn iptables_policy_and_rules() {
        assert!(forward_policy_drops("-P FORWARD DROP\n-N DOCKER\n"));
        assert!(!forward_policy_drops("-P FORWARD ACCEPT\n"));
        let rules = iptables_forward_rules(&"10.244.0.0/16".parse().unwrap());
        assert_eq!(
            rules[0].join(" "),
            "-s 10.244.0.0/16 -m comment --comment ferrokube-cni forward -j ACCEPT"
        );
        assert_eq!(rules[1][0], "-d");
    }
}
