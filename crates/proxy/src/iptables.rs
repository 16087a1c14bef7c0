//! The iptables proxier, in upstream's chain layout so `iptables-save` reads as it does
//! under kube-proxy:
//!
//! - nat: `KUBE-SERVICES` (from PREROUTING and OUTPUT) sends each ClusterIP/external
//!   destination to `KUBE-SVC-…` (or `KUBE-EXT-…` for external traffic), which marks for
//!   masquerade where needed and picks a `KUBE-SEP-…` endpoint chain with `statistic
//!   --mode random` (and `recent` for ClientIP affinity); `KUBE-NODEPORTS` for local
//!   destinations; `KUBE-POSTROUTING` masquerades marked packets.
//! - filter: `KUBE-SERVICES` (OUTPUT, FORWARD) and `KUBE-EXTERNAL-SERVICES` (INPUT,
//!   FORWARD) reject new connections to Services without endpoints.
//!
//! Each sync is one `iptables-restore --noflush`: the top-level chains are rewritten
//! whole, the per-Service chains only for Services that changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::backend::{SyncError, SyncStats};
use crate::config::ProxyConfig;
use crate::model::{Endpoint, ServiceKey, ServicePort};
use crate::nftables::Masquerade;

/// The jumps from the built-in chains into ours: (table, chain, rule spec).
const JUMPS: &[(&str, &str, &[&str])] = &[
    (
        "nat",
        "PREROUTING",
        &[
            "-m",
            "comment",
            "--comment",
            "kubernetes service portals",
            "-j",
            "KUBE-SERVICES",
        ],
    ),
    (
        "nat",
        "OUTPUT",
        &[
            "-m",
            "comment",
            "--comment",
            "kubernetes service portals",
            "-j",
            "KUBE-SERVICES",
        ],
    ),
    (
        "nat",
        "POSTROUTING",
        &[
            "-m",
            "comment",
            "--comment",
            "kubernetes postrouting rules",
            "-j",
            "KUBE-POSTROUTING",
        ],
    ),
    (
        "filter",
        "INPUT",
        &[
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-m",
            "comment",
            "--comment",
            "kubernetes externally-visible service portals",
            "-j",
            "KUBE-EXTERNAL-SERVICES",
        ],
    ),
    (
        "filter",
        "FORWARD",
        &[
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-m",
            "comment",
            "--comment",
            "kubernetes service portals",
            "-j",
            "KUBE-SERVICES",
        ],
    ),
    (
        "filter",
        "FORWARD",
        &[
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-m",
            "comment",
            "--comment",
            "kubernetes externally-visible service portals",
            "-j",
            "KUBE-EXTERNAL-SERVICES",
        ],
    ),
    (
        "filter",
        "OUTPUT",
        &[
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-m",
            "comment",
            "--comment",
            "kubernetes service portals",
            "-j",
            "KUBE-SERVICES",
        ],
    ),
];

/// How long one `iptables-restore` may take.
const RESTORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// The chains that always exist.
const NAT_CHAINS: &[&str] = &[
    "KUBE-SERVICES",
    "KUBE-NODEPORTS",
    "KUBE-POSTROUTING",
    "KUBE-MARK-MASQ",
];
const FILTER_CHAINS: &[&str] = &["KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES"];

/// One Service's rules.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Fragment {
    /// Rules for nat KUBE-SERVICES.
    services: Vec<String>,
    /// Rules for nat KUBE-NODEPORTS.
    nodeports: Vec<String>,
    /// Rules for filter KUBE-SERVICES.
    filter_services: Vec<String>,
    /// Rules for filter KUBE-EXTERNAL-SERVICES.
    filter_external: Vec<String>,
    /// Its own nat chains.
    chains: BTreeMap<String, Vec<String>>,
}

fn hash(s: &str) -> String {
    format!("{:016X}", crate::nftables::fnv64(s))
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', ""))
}

fn render(ports: &[ServicePort], masq: &Masquerade) -> Fragment {
    let mut f = Fragment::default();
    for p in ports {
        let name = p.display_name();
        let proto = p.protocol.as_str();
        let id = hash(&format!("{name}/{proto}"));
        let svc_chain = format!("KUBE-SVC-{id}");
        let ext_chain = format!("KUBE-EXT-{id}");
        let sep = |e: &Endpoint| {
            format!(
                "KUBE-SEP-{}",
                hash(&format!("{name}/{proto}/{}:{}", e.ip, e.port))
            )
        };
        let mark = "-j KUBE-MARK-MASQ";
        let reject = |f: &mut Vec<String>, dest: &str, port: u16, what: &str| {
            let verdict = if p.has_endpoints {
                "DROP"
            } else {
                "REJECT --reject-with icmp-port-unreachable"
            };
            f.push(format!(
                "{dest}-p {proto} -m comment --comment {} -m {proto} --dport {port} -j {verdict}",
                quote(&format!("{name} has no {what}endpoints"))
            ));
        };
        // Endpoint chains, for every endpoint either kind of traffic uses.
        let mut all: Vec<&Endpoint> = p
            .cluster_endpoints
            .iter()
            .chain(&p.external_endpoints)
            .collect();
        all.sort();
        all.dedup();
        for e in &all {
            let mut rules = vec![format!(
                "-s {}/32 -m comment --comment {} {mark}",
                e.ip,
                quote(&name)
            )];
            if p.affinity_timeout.is_some() {
                rules.push(format!(
                    "-p {proto} -m comment --comment {} -m recent --set --name {} --mask 255.255.255.255 --rsource -m {proto} -j DNAT --to-destination {}:{}",
                    quote(&name), sep(e), e.ip, e.port
                ));
            } else {
                rules.push(format!(
                    "-p {proto} -m comment --comment {} -m {proto} -j DNAT --to-destination {}:{}",
                    quote(&name),
                    e.ip,
                    e.port
                ));
            }
            f.chains.insert(sep(e), rules);
        }
        let pick = |eps: &[Endpoint]| -> Vec<String> {
            let mut rules = Vec::new();
            if let Some(t) = p.affinity_timeout {
                for e in eps {
                    rules.push(format!(
                        "-m comment --comment {} -m recent --name {} --mask 255.255.255.255 --rsource --rcheck --seconds {t} --reap -j {}",
                        quote(&name), sep(e), sep(e)
                    ));
                }
            }
            let n = eps.len();
            for (i, e) in eps.iter().enumerate() {
                if i + 1 < n {
                    let prob = 1.0 / (n - i) as f64;
                    rules.push(format!(
                        "-m comment --comment {} -m statistic --mode random --probability {prob:.10} -j {}",
                        quote(&format!("{name} -> {}:{}", e.ip, e.port)), sep(e)
                    ));
                } else {
                    rules.push(format!(
                        "-m comment --comment {} -j {}",
                        quote(&format!("{name} -> {}:{}", e.ip, e.port)),
                        sep(e)
                    ));
                }
            }
            rules
        };
        if let Some(ip) = p.cluster_ip {
            let dest = format!("-d {ip}/32 ");
            if p.cluster_endpoints.is_empty() {
                reject(&mut f.filter_services, &dest, p.port, "");
            } else {
                let mut rules = Vec::new();
                if masq.all {
                    rules.push(format!(
                        "{dest}-p {proto} -m comment --comment {} -m {proto} --dport {} {mark}",
                        quote(&format!("{name} cluster IP")),
                        p.port
                    ));
                } else if let Some(c) = masq.cluster_cidr {
                    rules.push(format!("! -s {c} {dest}-p {proto} -m comment --comment {} -m {proto} --dport {} {mark}", quote(&format!("{name} cluster IP")), p.port));
                }
                rules.extend(pick(&p.cluster_endpoints));
                f.chains.insert(svc_chain.clone(), rules);
                f.services.push(format!(
                    "{dest}-p {proto} -m comment --comment {} -m {proto} --dport {} -j {svc_chain}",
                    quote(&format!("{name} cluster IP")),
                    p.port
                ));
            }
        }
        if p.has_external() {
            if p.external_endpoints.is_empty() {
                for ip in &p.external_ips {
                    reject(&mut f.filter_external, &format!("-d {ip}/32 "), p.port, "");
                }
                if let Some(np) = p.node_port {
                    reject(
                        &mut f.filter_external,
                        "-m addrtype --dst-type LOCAL ",
                        np,
                        "",
                    );
                }
            } else {
                let mut rules = Vec::new();
                if !p.external_local {
                    rules.push(format!(
                        "-m comment --comment {} {mark}",
                        quote(&format!(
                            "masquerade traffic for {name} external destinations"
                        ))
                    ));
                }
                rules.extend(pick(&p.external_endpoints));
                f.chains.insert(ext_chain.clone(), rules);
                let fw_chain = format!("KUBE-FW-{id}");
                for ip in &p.external_ips {
                    let firewalled =
                        p.load_balancer_ips.contains(ip) && !p.source_ranges.is_empty();
                    if !firewalled {
                        f.services.push(format!(
                            "-d {ip}/32 -p {proto} -m comment --comment {} -m {proto} --dport {} -j {ext_chain}",
                            quote(&format!("{name} external IP")),
                            p.port
                        ));
                        continue;
                    }
                    // loadBalancerSourceRanges: only clients in the ranges are sent on
                    // (DNATed); the filter table drops what was left un-DNATed.
                    f.services.push(format!(
                        "-d {ip}/32 -p {proto} -m comment --comment {} -m {proto} --dport {} -j {fw_chain}",
                        quote(&format!("{name} loadbalancer IP")),
                        p.port
                    ));
                    f.filter_external.push(format!(
                        "-d {ip}/32 -p {proto} -m comment --comment {} -m {proto} --dport {} -m conntrack ! --ctstate DNAT -j DROP",
                        quote(&format!("{name} traffic not accepted by {fw_chain}")),
                        p.port
                    ));
                }
                if !p.load_balancer_ips.is_empty() && !p.source_ranges.is_empty() {
                    let rules = p
                        .source_ranges
                        .iter()
                        .map(|r| {
                            format!(
                                "-s {r} -m comment --comment {} -j {ext_chain}",
                                quote(&format!("{name} loadbalancer IP"))
                            )
                        })
                        .collect();
                    f.chains.insert(fw_chain, rules);
                }
                if let Some(np) = p.node_port {
                    f.nodeports.push(format!(
                        "-p {proto} -m comment --comment {} -m {proto} --dport {np} -j {ext_chain}",
                        quote(&name)
                    ));
                }
            }
        }
    }
    f
}

/// The iptables proxier's memory of its chains.
#[derive(Debug)]
pub struct Iptables {
    masq: Masquerade,
    fragments: HashMap<ServiceKey, Fragment>,
    needs_full: bool,
}

impl Iptables {
    pub fn new(config: &ProxyConfig) -> Iptables {
        Iptables {
            masq: Masquerade::from_config(config),
            fragments: HashMap::new(),
            needs_full: true,
        }
    }

    pub fn force_full(&mut self) {
        self.needs_full = true;
    }

    /// The `iptables-restore --noflush` input for this sync; `existing` are the KUBE-
    /// chains the nat table has now (read on full syncs, to remove stale ones).
    fn restore_input(
        &mut self,
        desired: &BTreeMap<ServiceKey, Vec<ServicePort>>,
        dirty: &BTreeSet<ServiceKey>,
        full: bool,
        existing: &BTreeSet<String>,
    ) -> (String, SyncStats) {
        let keys: Vec<ServiceKey> = if full {
            self.fragments.clear();
            desired.keys().cloned().collect()
        } else {
            dirty.iter().cloned().collect()
        };
        let mut write: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut stale: BTreeSet<String> = if full {
            existing
                .iter()
                .filter(|c| {
                    c.starts_with("KUBE-SVC-")
                        || c.starts_with("KUBE-SEP-")
                        || c.starts_with("KUBE-EXT-")
                        || c.starts_with("KUBE-FW-")
                })
                .cloned()
                .collect()
        } else {
            BTreeSet::new()
        };
        let mut changes = 0;
        for key in &keys {
            let new = desired
                .get(key)
                .map(|p| render(p, &self.masq))
                .unwrap_or_default();
            let old = self.fragments.remove(key).unwrap_or_default();
            for name in old.chains.keys() {
                if !new.chains.contains_key(name) {
                    stale.insert(name.clone());
                }
            }
            for (name, rules) in &new.chains {
                stale.remove(name);
                if full || old.chains.get(name) != Some(rules) {
                    write.insert(name.clone(), rules.clone());
                    changes += 1;
                }
            }
            if new != Fragment::default() {
                self.fragments.insert(key.clone(), new);
            }
        }
        // A chain another Service still writes is not stale (renamed endpoints).
        for f in self.fragments.values() {
            for name in f.chains.keys() {
                stale.remove(name);
            }
        }
        changes += stale.len();
        let mut sorted: Vec<(&ServiceKey, &Fragment)> = self.fragments.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut out = String::new();
        out.push_str("*filter\n");
        for c in FILTER_CHAINS {
            let _ = writeln!(out, ":{c} - [0:0]");
        }
        for (_, f) in &sorted {
            for r in &f.filter_services {
                let _ = writeln!(out, "-A KUBE-SERVICES {r}");
            }
            for r in &f.filter_external {
                let _ = writeln!(out, "-A KUBE-EXTERNAL-SERVICES {r}");
            }
        }
        out.push_str("COMMIT\n*nat\n");
        for c in NAT_CHAINS {
            let _ = writeln!(out, ":{c} - [0:0]");
        }
        for c in write.keys().chain(stale.iter()) {
            let _ = writeln!(out, ":{c} - [0:0]");
        }
        let m = format!("{:#x}", self.masq.mark);
        let _ = writeln!(out, "-A KUBE-MARK-MASQ -j MARK --or-mark {m}");
        let _ = writeln!(
            out,
            "-A KUBE-POSTROUTING -m mark ! --mark {m}/{m} -j RETURN"
        );
        let _ = writeln!(out, "-A KUBE-POSTROUTING -j MARK --xor-mark {m}");
        let _ = writeln!(out, "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully");
        for (_, f) in &sorted {
            for r in &f.services {
                let _ = writeln!(out, "-A KUBE-SERVICES {r}");
            }
            for r in &f.nodeports {
                let _ = writeln!(out, "-A KUBE-NODEPORTS {r}");
            }
        }
        let _ = writeln!(out, "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS");
        for (name, rules) in &write {
            for r in rules {
                let _ = writeln!(out, "-A {name} {r}");
            }
        }
        for c in &stale {
            let _ = writeln!(out, "-X {c}");
        }
        out.push_str("COMMIT\n");
        let objects = self
            .fragments
            .values()
            .map(|f| {
                f.services.len()
                    + f.nodeports.len()
                    + f.filter_services.len()
                    + f.filter_external.len()
                    + f.chains.values().map(Vec::len).sum::<usize>()
            })
            .sum();
        (
            out,
            SyncStats {
                full,
                services: keys.len(),
                changes,
                objects,
            },
        )
    }

    /// Applies what changed for `dirty` (everything on a full sync).
    pub async fn sync(
        &mut self,
        desired: &BTreeMap<ServiceKey, Vec<ServicePort>>,
        dirty: &BTreeSet<ServiceKey>,
    ) -> Result<SyncStats, SyncError> {
        let full = std::mem::take(&mut self.needs_full);
        let result = async {
            let mut existing = BTreeSet::new();
            if full {
                ensure_jumps().await?;
                existing = nat_chains().await?;
            }
            let (input, stats) = self.restore_input(desired, dirty, full, &existing);
            // Tens of thousands of chains take iptables-nft minutes to load.
            ferrokube_cni::exec::run_timeout(
                "iptables-restore",
                &["-w", "5", "--noflush"],
                Some(&input),
                RESTORE_TIMEOUT,
            )
            .await?;
            Ok(stats)
        }
        .await;
        if result.is_err() {
            self.needs_full = true;
        }
        result
    }
}

/// The KUBE- chains of the nat table now.
async fn nat_chains() -> Result<BTreeSet<String>, SyncError> {
    let out = ferrokube_cni::exec::run("iptables-save", &["-t", "nat"], None).await?;
    Ok(out
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| c.starts_with("KUBE-"))
        .map(str::to_string)
        .collect())
}

/// Creates our top-level chains and the jumps into them, once each.
async fn ensure_jumps() -> Result<(), SyncError> {
    for (table, chains) in [("nat", NAT_CHAINS), ("filter", FILTER_CHAINS)] {
        for c in chains {
            // -N fails when it exists; that is the state we want.
            let _ = ferrokube_cni::exec::run("iptables", &["-w", "5", "-t", table, "-N", c], None)
                .await;
        }
    }
    for (table, chain, spec) in JUMPS {
        let mut check = vec!["-w", "5", "-t", table, "-C", chain];
        check.extend_from_slice(spec);
        if ferrokube_cni::exec::run("iptables", &check, None)
            .await
            .is_err()
        {
            let mut insert = vec!["-w", "5", "-t", table, "-I", chain, "1"];
            insert.extend_from_slice(spec);
            ferrokube_cni::exec::run("iptables", &insert, None).await?;
        }
    }
    Ok(())
}

/// Removes our jumps and chains (`--cleanup`).
pub async fn cleanup() -> Result<(), SyncError> {
    if ferrokube_cni::exec::run("iptables", &["-w", "5", "-t", "nat", "-S"], None)
        .await
        .is_err()
    {
        return Ok(()); // no iptables here: nothing of ours either
    }
    for (table, chain, spec) in JUMPS {
        let mut del = vec!["-w", "5", "-t", table, "-D", chain];
        del.extend_from_slice(spec);
        while ferrokube_cni::exec::run("iptables", &del, None)
            .await
            .is_ok()
        {}
    }
    let mut chains: Vec<String> = nat_chains().await?.into_iter().collect();
    chains.retain(|c| {
        NAT_CHAINS.contains(&c.as_str())
            || c.starts_with("KUBE-SVC-")
            || c.starts_with("KUBE-SEP-")
            || c.starts_with("KUBE-EXT-")
            || c.starts_with("KUBE-FW-")
    });
    let mut input = String::from("*nat\n");
    for c in &chains {
        let _ = writeln!(input, ":{c} - [0:0]");
    }
    for c in &chains {
        let _ = writeln!(input, "-X {c}");
    }
    input.push_str("COMMIT\n*filter\n");
    let filter = ferrokube_cni::exec::run("iptables-save", &["-t", "filter"], None).await?;
    let ours: Vec<&str> = FILTER_CHAINS
        .iter()
        .copied()
        .filter(|c| filter.lines().any(|l| l.starts_with(&format!(":{c} "))))
        .collect();
    for c in &ours {
        let _ = writeln!(input, ":{c} - [0:0]");
    }
    for c in &ours {
        let _ = writeln!(input, "-X {c}");
    }
    input.push_str("COMMIT\n");
    ferrokube_cni::exec::run("iptables-restore", &["-w", "5", "--noflush"], Some(&input)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;
    use std::net::Ipv4Addr;

    fn port(eps: &[[u8; 4]]) -> ServicePort {
        let eps = crate::model::endpoints(eps, 8080, false);
        let mut p = ServicePort::new(key(), Protocol::Tcp, Ipv4Addr::new(10, 96, 0, 10), 80, eps);
        p.port_name = "http".into();
        p.node_port = Some(30080);
        p
    }

    fn key() -> ServiceKey {
        ServiceKey {
            namespace: "default".into(),
            name: "web".into(),
        }
    }

    #[test]
    fn chains_read_like_upstreams_and_only_changed_services_are_rewritten() {
        let c = ProxyConfig {
            cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
            ..ProxyConfig::default()
        };
        let mut ipt = Iptables::new(&c);
        let mut desired = BTreeMap::new();
        desired.insert(key(), vec![port(&[[10, 244, 1, 5], [10, 244, 2, 5]])]);
        let (input, stats) = ipt.restore_input(
            &desired,
            &BTreeSet::new(),
            true,
            &["KUBE-SVC-OLD".to_string()].into(),
        );
        assert!(stats.full);
        assert!(
            input.contains("-m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-"),
            "{input}"
        );
        assert!(
            input.contains("-j DNAT --to-destination 10.244.2.5:8080"),
            "{input}"
        );
        assert!(
            input.contains("! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp"),
            "{input}"
        );
        assert!(input.contains("-A KUBE-NODEPORTS -p tcp -m comment --comment \"default/web:http\" -m tcp --dport 30080 -j KUBE-EXT-"), "{input}");
        assert!(
            input.contains("-X KUBE-SVC-OLD"),
            "stale chains go: {input}"
        );
        // Unchanged: the top-level chains are rewritten, no Service chain.
        let (input, _) = ipt.restore_input(&desired, &[key()].into(), false, &BTreeSet::new());
        assert!(!input.contains(":KUBE-SVC-"), "{input}");
        assert!(
            input.contains("-A KUBE-SERVICES -d 10.96.0.10/32"),
            "{input}"
        );
        // One endpoint left: its SEP chain is removed.
        desired.insert(key(), vec![port(&[[10, 244, 1, 5]])]);
        let (input, _) = ipt.restore_input(&desired, &[key()].into(), false, &BTreeSet::new());
        assert_eq!(input.matches("\n-X KUBE-SEP-").count(), 1, "{input}");
        // None: rejected in filter.
        desired.insert(key(), vec![port(&[])]);
        let (input, _) = ipt.restore_input(&desired, &[key()].into(), false, &BTreeSet::new());
        assert!(input.contains("-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment \"default/web:http has no endpoints\" -m tcp --dport 80 -j REJECT"), "{input}");
    }
}
