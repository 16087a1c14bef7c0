//! bench-proxy: issue #7's kube-proxy targets.
//!
//! - Cold sync of 10,000 Services × 5 endpoints (≤ 2 s): from Service and EndpointSlice
//!   objects to rules in the kernel, the first sync of a fresh proxier.
//! - One endpoint change applied (≤ 50 ms): one slice changes, one incremental sync.
//!
//! Both for nftables mode and, as the peer in the same run, iptables mode (upstream's
//! chain-per-Service layout, applied with iptables-restore as upstream does). IPVS mode
//! cannot be measured where the kernel has no IPVS (it runs as nftables there).
//!
//! Runs in a private network namespace (unshare), so the host's rules are untouched and
//! everything is gone when it exits. Root, nft and iptables-restore needed.
//! `cargo run --release -p ferrokube-bench-proxy` (`--quick`: 1,000 Services).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use clap::Parser;
use ferrokube_proxy::model::{service_ports, ServiceKey, ServicePort};
use ferrokube_proxy::{Mode, ProxyConfig};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

#[derive(Parser, Debug)]
struct Args {
    /// 1,000 Services instead of 10,000 (a smoke run).
    #[arg(long)]
    quick: bool,
    /// Services in the iptables (peer) run; default: as many as nftables. iptables-nft
    /// takes minutes per restore at 10,000 Services on a 2-core machine.
    #[arg(long)]
    peer_services: Option<usize>,
    /// Endpoint changes to time (the median and max are printed).
    #[arg(long, default_value_t = 20)]
    changes: usize,
}

fn service(i: usize) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": format!("svc-{i}"), "namespace": "bench"},
        "spec": {"clusterIP": format!("10.{}.{}.{}", 96 + i / 65536, (i / 256) % 256, i % 256),
                 "type": "NodePort",
                 "ports": [{"name": "http", "port": 80, "nodePort": 30000 + (i % 2700)}]}
    }))
    .unwrap_or_default()
}

fn slice(i: usize, generation: usize) -> EndpointSlice {
    let endpoints: Vec<_> = (0..5)
        .map(|e| {
            json!({"addresses": [format!("10.{}.{}.{}", 200 + e, (i / 256) % 256, i % 256)],
                   "conditions": {"ready": true}, "nodeName": format!("node-{}", (e + generation) % 7)})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("svc-{i}-abcde"), "namespace": "bench",
                     "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080 + generation, "protocol": "TCP"}],
        "endpoints": endpoints
    }))
    .unwrap_or_else(|_| EndpointSlice {
        address_type: "IPv4".into(),
        ..Default::default()
    })
}

fn key(i: usize) -> ServiceKey {
    ServiceKey {
        namespace: "bench".into(),
        name: format!("svc-{i}"),
    }
}

struct Figures {
    cold: Duration,
    change_p50: Duration,
    change_max: Duration,
    objects: usize,
}

async fn measure(mode: Mode, n: usize, changes: usize) -> anyhow::Result<Figures> {
    let config = ProxyConfig {
        mode,
        cluster_cidrs: vec!["10.244.0.0/16".parse()?],
        ..ProxyConfig::default()
    };
    let services: Vec<Service> = (0..n).map(service).collect();
    let slices: Vec<EndpointSlice> = (0..n).map(|i| slice(i, 0)).collect();
    let mut backend = ferrokube_proxy::runner::backend(&config);
    let started = Instant::now();
    let mut desired: BTreeMap<ServiceKey, Vec<ServicePort>> = BTreeMap::new();
    for i in 0..n {
        desired.insert(key(i), service_ports(&services[i], [&slices[i]], "node-0"));
    }
    let stats = backend.sync(&desired, &BTreeSet::new()).await?;
    let cold = started.elapsed();
    let mut times = Vec::new();
    for c in 0..changes {
        let i = (c * 7919) % n;
        let changed = slice(i, c + 1);
        let started = Instant::now();
        desired.insert(key(i), service_ports(&services[i], [&changed], "node-0"));
        backend.sync(&desired, &[key(i)].into()).await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(Figures {
        cold,
        change_p50: times.get(times.len() / 2).copied().unwrap_or_default(),
        change_max: times.last().copied().unwrap_or_default(),
        objects: stats.objects,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let n = if args.quick { 1000 } else { 10_000 };
    // A network namespace of our own, before any thread or child exists. (rustix
    // deprecates the safe name because unsharing some namespaces in a multi-threaded
    // process is unsound; a network namespace, on the only thread, is fine.)
    #[allow(deprecated)]
    rustix::thread::unshare(rustix::thread::UnshareFlags::NEWNET)
        .map_err(|e| anyhow::anyhow!("unshare(CLONE_NEWNET) (root needed): {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    println!("# ferrokube kube-proxy benchmark ({n} Services x 5 endpoints, NodePort each)");
    let nft = rt.block_on(measure(Mode::Nftables, n, args.changes))?;
    // iptables-nft loads upstream's layout slowly at this size: fewer changes there.
    let peer_n = args.peer_services.unwrap_or(n);
    let ipt = rt.block_on(measure(Mode::Iptables, peer_n, args.changes.min(3)))?;
    if peer_n != n {
        println!("(iptables peer run with {peer_n} Services: ratios compare unequal loads)");
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{:<58} {:>10} {:>10} {:>8}  target",
        "figure", "nftables", "iptables", "nft/ipt"
    );
    let row = |name: &str, a: f64, b: f64, target: &str| {
        println!("{name:<58} {a:>10.1} {b:>10.1} {:>8.2}  {target}", a / b);
    };
    let cold_target = if ms(nft.cold) <= 2000.0 {
        "met"
    } else {
        "NOT met"
    };
    row(
        "cold sync from Services and slices (ms)",
        ms(nft.cold),
        ms(ipt.cold),
        &format!(
            "{cold_target} (target <= 2000 ms; target/actual {:.2})",
            2000.0 / ms(nft.cold)
        ),
    );
    let change_target = if ms(nft.change_max) <= 50.0 {
        "met"
    } else {
        "NOT met"
    };
    row(
        "one endpoint change applied, median (ms)",
        ms(nft.change_p50),
        ms(ipt.change_p50),
        "",
    );
    row(
        "one endpoint change applied, max (ms)",
        ms(nft.change_max),
        ms(ipt.change_max),
        &format!(
            "{change_target} (target <= 50 ms; target/actual {:.2})",
            50.0 / ms(nft.change_max)
        ),
    );
    println!(
        "kernel objects: nftables {} (map elements and chains), iptables {} (rules)",
        nft.objects, ipt.objects
    );
    println!("ipvs mode: not measured (this kernel has no IPVS; ipvs mode runs as nftables)");
    Ok(())
}
