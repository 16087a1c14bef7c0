#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The proxiers against the real kernel: two network namespaces joined by a veth pair
//! (198.18.0.0/15 addresses), the proxier's rules in one, Service backends in the other;
//! connections to the ClusterIP and the NodePort must reach the endpoints, follow
//! endpoint changes, and be refused when there are none.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

use ferrokube_proxy::model::{Endpoint, Protocol, ServiceKey, ServicePort};
use ferrokube_proxy::{Backend, ProxyConfig};

/// Two namespaces: `proxy` (198.18.<n>.1) and `backends` (198.18.<n>.2), removed on drop.
struct Lab {
    proxy: String,
    backends: String,
    subnet: u8,
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lab {
    fn new(tag: &str, subnet: u8) -> Lab {
        let id = std::process::id();
        let proxy = format!("fkp{id}{tag}p");
        let backends = format!("fkp{id}{tag}b");
        let lab = Lab {
            proxy: proxy.clone(),
            backends: backends.clone(),
            subnet,
        };
        sh(&["ip", "netns", "add", &proxy]);
        sh(&["ip", "netns", "add", &backends]);
        let (va, vb) = (format!("fkp{subnet}a"), format!("fkp{subnet}b"));
        sh(&[
            "ip", "-n", &proxy, "link", "add", &va, "type", "veth", "peer", "name", &vb, "netns",
            &backends,
        ]);
        let a = format!("198.18.{subnet}.1/24");
        let b = format!("198.18.{subnet}.2/24");
        sh(&["ip", "-n", &proxy, "addr", "add", &a, "dev", &va]);
        sh(&["ip", "-n", &backends, "addr", "add", &b, "dev", &vb]);
        for (ns, dev) in [(&proxy, &va), (&backends, &vb)] {
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        // The proxy host routes Service addresses towards the backends' side (any route
        // will do: DNAT picks the real destination), and forwards NodePort traffic.
        sh(&[
            "ip",
            "-n",
            &proxy,
            "route",
            "add",
            "10.96.0.0/12",
            "via",
            &format!("198.18.{subnet}.2"),
        ]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &proxy,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        lab
    }

    fn backend_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.subnet, 2)
    }

    fn proxy_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.subnet, 1)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.proxy, &self.backends] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a thread that has entered network namespace `ns`.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap_or_else(|e| panic!("setns {path}: {e}"));
        f()
    })
    .join()
    .expect("netns thread")
}

/// Servers in `ns` on `addrs`, each answering its own address then closing; they live
/// as long as the namespace.
fn serve(ns: &str, addrs: Vec<SocketAddr>) {
    let listeners: Vec<TcpListener> = in_netns(ns, move || {
        addrs
            .iter()
            .map(|a| TcpListener::bind(a).expect("bind"))
            .collect()
    });
    for l in listeners {
        std::thread::spawn(move || {
            let me = l.local_addr().unwrap().to_string();
            for mut c in l.incoming().flatten() {
                let _ = c.write_all(me.as_bytes());
            }
        });
    }
}

/// A UDP server in `ns` on `addr` answering each datagram with its own address.
fn serve_udp(ns: &str, addr: SocketAddr) {
    let sock = in_netns(ns, move || {
        std::net::UdpSocket::bind(addr).expect("bind udp")
    });
    std::thread::spawn(move || {
        let me = sock.local_addr().unwrap().to_string();
        let mut buf = [0u8; 512];
        while let Ok((_, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(me.as_bytes(), from);
        }
    });
}

/// One datagram from `ns` to `to`: the answer, or the error.
fn probe_udp(ns: &str, to: SocketAddr) -> String {
    in_netns(ns, move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        if let Err(e) = s.send_to(b"hello", to) {
            return format!("error: {:?}", e.kind());
        }
        let mut buf = [0u8; 512];
        match s.recv_from(&mut buf) {
            Ok((n, _)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) => format!("error: {:?}", e.kind()),
        }
    })
}

/// `n` connections from `ns` to `to`: who answered how often, and failures by kind.
fn probe(ns: &str, to: SocketAddr, n: usize) -> HashMap<String, usize> {
    in_netns(ns, move || {
        let mut seen = HashMap::new();
        for _ in 0..n {
            let answer = match TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
                Ok(mut s) => {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = String::new();
                    let _ = s.read_to_string(&mut buf);
                    buf
                }
                Err(e) => format!("error: {:?}", e.kind()),
            };
            *seen.entry(answer).or_insert(0) += 1;
        }
        seen
    })
}

fn service(eps: &[SocketAddr]) -> BTreeMap<ServiceKey, Vec<ServicePort>> {
    let mut m = tcp_service(eps);
    // The same endpoints' addresses on UDP port 5353 behind port 53.
    let mut udp = m[&key()][0].clone();
    udp.port_name = "dns".into();
    udp.protocol = Protocol::Udp;
    udp.port = 53;
    udp.node_port = None;
    for e in udp
        .cluster_endpoints
        .iter_mut()
        .chain(udp.external_endpoints.iter_mut())
    {
        e.port = 5353;
    }
    if let Some(v) = m.get_mut(&key()) {
        v.push(udp);
    }
    m
}

fn tcp_service(eps: &[SocketAddr]) -> BTreeMap<ServiceKey, Vec<ServicePort>> {
    let eps: Vec<Endpoint> = eps
        .iter()
        .map(|a| match a {
            SocketAddr::V4(a) => Endpoint {
                ip: *a.ip(),
                port: a.port(),
                local: false,
            },
            SocketAddr::V6(_) => unreachable!("IPv4 lab"),
        })
        .collect();
    let mut port = ServicePort::new(key(), Protocol::Tcp, Ipv4Addr::new(10, 96, 0, 10), 80, eps);
    port.node_port = Some(30080);
    [(key(), vec![port])].into()
}

fn key() -> ServiceKey {
    ServiceKey {
        namespace: "default".into(),
        name: "web".into(),
    }
}

/// Syncs `backend` to `desired` inside `ns` (the tools it runs inherit the namespace).
fn sync_in(ns: &str, backend: Backend, desired: BTreeMap<ServiceKey, Vec<ServicePort>>) -> Backend {
    in_netns(ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut backend = backend;
        let dirty: BTreeSet<ServiceKey> = [key()].into();
        rt.block_on(backend.sync(&desired, &dirty)).expect("sync");
        backend
    })
}

/// The proxier's configuration in `mode`, pods in 10.244.0.0/16.
fn config(mode: &str) -> ProxyConfig {
    ProxyConfig {
        mode: ferrokube_proxy::Mode::parse(mode).unwrap(),
        cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
        ..ProxyConfig::default()
    }
}

fn exercise(mode: &str, tag: &str, subnet: u8) {
    let lab = Lab::new(tag, subnet);
    let b = lab.backend_ip();
    let (e1, e2) = (SocketAddr::from((b, 8080)), SocketAddr::from((b, 8081)));
    serve(&lab.backends, vec![e1, e2]);
    serve_udp(&lab.backends, SocketAddr::from((b, 5353)));
    let config = config(mode);
    let backend = ferrokube_proxy::runner::backend(&config);
    let cluster_ip = SocketAddr::from(([10, 96, 0, 10], 80));

    // Two endpoints: both get connections through the ClusterIP.
    let backend = sync_in(&lab.proxy, backend, service(&[e1, e2]));
    let seen = probe(&lab.proxy, cluster_ip, 40);
    assert_eq!(
        seen.get(&e1.to_string()).copied().unwrap_or(0)
            + seen.get(&e2.to_string()).copied().unwrap_or(0),
        40,
        "{mode}: {seen:?}"
    );
    assert!(
        seen.len() == 2,
        "{mode}: both endpoints should answer: {seen:?}"
    );
    // UDP through the ClusterIP too.
    let udp = probe_udp(&lab.proxy, SocketAddr::from(([10, 96, 0, 10], 53)));
    assert_eq!(udp, SocketAddr::from((b, 5353)).to_string(), "{mode}: UDP");

    // NodePort from the other host: DNAT back to it, masqueraded so replies return.
    let node_port = SocketAddr::from((lab.proxy_ip(), 30080));
    let seen = probe(&lab.backends, node_port, 10);
    assert!(
        seen.keys()
            .all(|k| k == &e1.to_string() || k == &e2.to_string()),
        "{mode}: {seen:?}"
    );

    // ClientIP affinity: one client keeps its endpoint.
    let mut sticky = service(&[e1, e2]);
    sticky
        .values_mut()
        .flatten()
        .for_each(|p| p.affinity_timeout = Some(60));
    let backend = sync_in(&lab.proxy, backend, sticky);
    let seen = probe(&lab.proxy, cluster_ip, 12);
    assert_eq!(
        seen.len(),
        1,
        "{mode}: one endpoint for one client: {seen:?}"
    );
    assert!(
        seen.keys()
            .all(|k| k == &e1.to_string() || k == &e2.to_string()),
        "{mode}: {seen:?}"
    );

    // One endpoint left: all traffic goes there.
    let backend = sync_in(&lab.proxy, backend, service(&[e2]));
    let seen = probe(&lab.proxy, cluster_ip, 10);
    assert_eq!(seen.get(&e2.to_string()), Some(&10), "{mode}: {seen:?}");

    // None: refused at once, not a timeout.
    let backend = sync_in(&lab.proxy, backend, service(&[]));
    let seen = probe(&lab.proxy, cluster_ip, 3);
    assert_eq!(
        seen.get("error: ConnectionRefused"),
        Some(&3),
        "{mode}: {seen:?}"
    );

    // Back to two after a full rewrite (what a restart does).
    let mut backend = backend;
    backend.force_full();
    let backend = sync_in(&lab.proxy, backend, service(&[e1]));
    let seen = probe(&lab.proxy, cluster_ip, 5);
    assert_eq!(seen.get(&e1.to_string()), Some(&5), "{mode}: {seen:?}");
    drop(backend);

    // --cleanup leaves nothing of ours.
    let errors = in_netns(&lab.proxy, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(ferrokube_proxy::backend::cleanup_all())
    });
    assert!(errors.is_empty(), "{errors:?}");
    let nft = Command::new("ip")
        .args(["netns", "exec", &lab.proxy, "nft", "list", "tables"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&nft.stdout).contains("kube-proxy"));
    let ipt = Command::new("ip")
        .args(["netns", "exec", &lab.proxy, "iptables-save", "-t", "nat"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&ipt.stdout).contains("KUBE-"),
        "{}",
        String::from_utf8_lossy(&ipt.stdout)
    );
}

#[test]
fn nftables_mode_serves_cluster_ips_and_node_ports() {
    exercise("nftables", "n", 61);
}

#[test]
fn iptables_mode_serves_cluster_ips_and_node_ports() {
    exercise("iptables", "i", 62);
}

/// A UDP "flow" (one client socket) keeps its conntrack entry, and so its endpoint,
/// unless the proxier deletes the entry when the endpoint leaves the Service.
fn udp_flows_follow_endpoint_changes(mode: &str, tag: &str, subnet: u8) {
    let lab = Lab::new(tag, subnet);
    let b = lab.backend_ip();
    serve_udp(&lab.backends, SocketAddr::from((b, 5353)));
    serve_udp(&lab.backends, SocketAddr::from((b, 5354)));
    let config = config(mode);
    let with_udp_port = |port: u16| {
        let mut m = service(&[SocketAddr::from((b, 8080))]);
        for p in m.get_mut(&key()).unwrap().iter_mut() {
            if p.protocol == Protocol::Udp {
                for e in p
                    .cluster_endpoints
                    .iter_mut()
                    .chain(p.external_endpoints.iter_mut())
                {
                    e.port = port;
                }
            }
        }
        m
    };
    let before = with_udp_port(5353);
    let after = with_udp_port(5354);
    let backend = sync_in(
        &lab.proxy,
        ferrokube_proxy::runner::backend(&config),
        before.clone(),
    );
    let client = in_netns(&lab.proxy, || {
        std::net::UdpSocket::bind("0.0.0.0:0").unwrap()
    });
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let dns = SocketAddr::from(([10, 96, 0, 10], 53));
    let ask = |c: &std::net::UdpSocket| {
        c.send_to(b"hello", dns).unwrap();
        let mut buf = [0u8; 64];
        match c.recv_from(&mut buf) {
            Ok((n, _)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) => format!("error: {:?}", e.kind()),
        }
    };
    assert_eq!(ask(&client), format!("{b}:5353"), "{mode}");

    // The endpoint moves to 5354: without cleanup the flow would stay on 5353 (whose
    // server still answers) until its entry timed out.
    let _backend = sync_in(&lab.proxy, backend, after.clone());
    let stale = ferrokube_proxy::conntrack::stale(&before[&key()], &after[&key()]);
    assert!(!stale.is_empty());
    in_netns(&lab.proxy, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut warned = false;
        rt.block_on(ferrokube_proxy::conntrack::clear(stale, &mut warned));
        assert!(!warned, "the conntrack tool is missing (install conntrack)");
    });
    assert_eq!(
        ask(&client),
        format!("{b}:5354"),
        "{mode}: the flow follows the endpoint"
    );
}

#[test]
fn nftables_mode_moves_udp_flows_off_removed_endpoints() {
    udp_flows_follow_endpoint_changes("nftables", "nu", 63);
}

#[test]
fn iptables_mode_moves_udp_flows_off_removed_endpoints() {
    udp_flows_follow_endpoint_changes("iptables", "iu", 64);
}

/// `loadBalancerSourceRanges`: clients in the ranges reach the Service through its load
/// balancer IP, others do not; the ClusterIP is not affected.
fn source_ranges(mode: &str, tag: &str, subnet: u8) {
    let lab = Lab::new(tag, subnet);
    let b = lab.backend_ip();
    let e = SocketAddr::from((b, 8080));
    serve(&lab.backends, vec![e]);
    let lb_ip = Ipv4Addr::new(10, 96, 0, 50);
    // The "outside" (the backends host) reaches the load balancer IP through the proxy.
    sh(&[
        "ip",
        "-n",
        &lab.backends,
        "route",
        "add",
        &format!("{lb_ip}/32"),
        "via",
        &lab.proxy_ip().to_string(),
    ]);
    let config = config(mode);
    let with_ranges = |ranges: &[&str]| {
        let mut m = tcp_service(&[e]);
        for p in m.get_mut(&key()).unwrap().iter_mut() {
            p.external_ips = vec![lb_ip];
            p.load_balancer_ips = vec![lb_ip];
            p.source_ranges = ranges.iter().map(|r| r.parse().unwrap()).collect();
        }
        m
    };
    let to_lb = SocketAddr::from((lb_ip, 80));
    let allowed = format!("198.18.{subnet}.0/24");
    let backend = sync_in(
        &lab.proxy,
        ferrokube_proxy::runner::backend(&config),
        with_ranges(&["198.18.250.0/24", &allowed]),
    );
    let seen = probe(&lab.backends, to_lb, 3);
    assert_eq!(
        seen.get(&e.to_string()),
        Some(&3),
        "{mode}: in range: {seen:?}"
    );

    let _backend = sync_in(&lab.proxy, backend, with_ranges(&["198.18.250.0/24"]));
    let seen = probe(&lab.backends, to_lb, 2);
    assert!(
        !seen.contains_key(&e.to_string()),
        "{mode}: out of range: {seen:?}"
    );
    let seen = probe(&lab.proxy, SocketAddr::from(([10, 96, 0, 10], 80)), 2);
    assert_eq!(
        seen.get(&e.to_string()),
        Some(&2),
        "{mode}: the ClusterIP: {seen:?}"
    );
}

#[test]
fn nftables_mode_honours_load_balancer_source_ranges() {
    source_ranges("nftables", "ns", 65);
}

#[test]
fn iptables_mode_honours_load_balancer_source_ranges() {
    source_ranges("iptables", "is", 66);
}
