#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `ferrokube dns` as a process against a real `ferrokube server`: it turns ready once
//! Services and EndpointSlices are listed; answers a ClusterIP Service, a headless
//! Service with a hand-written EndpointSlice (hostname records, SRV, PTR) and an
//! ExternalName Service over UDP and TCP; follows changes (a deleted Service is
//! NXDOMAIN within seconds, a new endpoint appears); forwards other names to a fake
//! upstream the test runs on 127.0.0.1 (so nothing leaves the machine); and keeps
//! answering after garbage. Loopback only; every wait is bounded.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, start_with, wait_until, Server};
use ferrokube_dns::wire::{rcode, rtype, Message, Name, RData, Record};

/// ClusterIPs in the test range (198.18.0.0/15): they are only ever answered, never
/// dialled, but nothing could leave the machine even if they were.
const SERVICE_RANGE: &str = "198.18.240.0/20";

struct Dns {
    child: Child,
    log: std::path::PathBuf,
    addr: SocketAddr,
    health: SocketAddr,
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dns {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn start_dns(s: &Server, upstream: SocketAddr) -> Dns {
    let port = free_port();
    let health = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = s.data_dir().join("dns.log");
    let child = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args(["dns", "--kubeconfig"])
        .arg(&s.kubeconfig)
        .arg(format!("--listen={addr}"))
        .arg(format!("--upstream={upstream}"))
        .arg(format!("--health-bind-address={health}"))
        .arg("--forward-timeout=500ms")
        .env("FERROKUBE_LOG", "info,ferrokube_dns=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Dns {
        child,
        log,
        addr,
        health,
    }
}

/// A resolver on 127.0.0.1 answering every A question with 192.0.2.7.
fn fake_upstream(stop: Arc<AtomicBool>) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Ok(q) = Message::parse(&buf[..n]) else {
                continue;
            };
            let mut a = Message {
                header: q.header,
                questions: q.questions.clone(),
                ..Message::default()
            };
            a.header.flags |= 0x8080; // QR, RA
            if q.questions[0].qtype == rtype::A {
                a.answers.push(Record {
                    name: q.questions[0].name.clone(),
                    class: 1,
                    ttl: 60,
                    data: RData::A([192, 0, 2, 7].into()),
                });
            }
            let _ = sock.send_to(&a.to_bytes().unwrap(), peer);
        }
    });
    addr
}

fn query(id: u16, name: &str, t: u16) -> Vec<u8> {
    ferrokube_dns::query_bytes(id, name, t).unwrap()
}

fn udp(addr: SocketAddr, name: &str, t: u16) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 4096];
    // UDP may be lost: three tries.
    for id in 1..=3u16 {
        sock.send_to(&query(id, name, t), addr).unwrap();
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let m = Message::parse(&buf[..n]).unwrap();
            assert_eq!(m.header.id, id);
            return m;
        }
    }
    panic!("no UDP answer for {name}");
}

fn tcp(addr: SocketAddr, name: &str, t: u16) -> Message {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let q = query(77, name, t);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    s.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut body).unwrap();
    Message::parse(&body).unwrap()
}

fn addrs(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match r.data {
            RData::A(ip) => Some(ip.to_string()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.get(9..12)?.parse().ok()
}

fn create(s: &Server, yaml: &str) {
    let o = s.kubectl_stdin(&["create", "-f", "-"], Some(yaml));
    assert!(
        o.status.success(),
        "create failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn cluster_names_from_the_api_and_forwarding() {
    let s = start_with(&[
        "--disable-scheduler",
        "--disable-controller-manager",
        "--disable-agent",
        &format!("--service-cluster-ip-range={SERVICE_RANGE}"),
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let upstream = fake_upstream(stop.clone());
    s.ok(&["create", "namespace", "dnstest"]);
    // Created before the DNS server starts: comes from the first list.
    s.ok(&[
        "create",
        "service",
        "clusterip",
        "web",
        "-n",
        "dnstest",
        "--tcp=80:8080",
    ]);
    let mut dns = start_dns(&s, upstream);
    let started = Instant::now();
    wait_until("ferrokube dns /readyz", 30, || {
        if let Some(status) = dns.child.try_wait().unwrap() {
            panic!("ferrokube dns exited ({status}):\n{}", dns.log());
        }
        http_status(dns.health, "/readyz") == Some(200)
    });
    println!("ready after {:?}", started.elapsed());
    assert_eq!(http_status(dns.health, "/healthz"), Some(200));

    // ClusterIP, over UDP and TCP, case-insensitive.
    let ip = s.ok(&[
        "get",
        "service",
        "web",
        "-n",
        "dnstest",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let m = udp(dns.addr, "web.dnstest.svc.cluster.local", rtype::A);
    assert_eq!(addrs(&m), [ip.as_str()], "{m:?}\n{}", dns.log());
    let m = tcp(dns.addr, "WEB.DnsTest.svc.cluster.local", rtype::A);
    assert_eq!(addrs(&m), [ip.as_str()]);
    let m = udp(
        dns.addr,
        "_80-8080._tcp.web.dnstest.svc.cluster.local",
        rtype::SRV,
    );
    assert!(
        matches!(&m.answers[0].data, RData::Srv { port: 80, .. }),
        "{m:?}"
    );
    let octets: Vec<&str> = ip.split('.').rev().collect();
    let m = udp(
        dns.addr,
        &format!("{}.in-addr.arpa", octets.join(".")),
        rtype::PTR,
    );
    assert_eq!(
        m.answers[0].data,
        RData::Ptr(Name::from_ascii("web.dnstest.svc.cluster.local").unwrap())
    );
    // NODATA and NXDOMAIN as the specification says.
    let m = udp(dns.addr, "web.dnstest.svc.cluster.local", rtype::AAAA);
    assert_eq!((m.rcode(), m.answers.len(), m.authority.len()), (0, 0, 1));
    let m = udp(dns.addr, "nope.dnstest.svc.cluster.local", rtype::A);
    assert_eq!(m.rcode(), rcode::NXDOMAIN);
    let m = udp(dns.addr, "dns-version.cluster.local", rtype::TXT);
    assert_eq!(m.answers.len(), 1);

    // A headless Service with a hand-written EndpointSlice (one endpoint with a
    // hostname, one without, one not ready), and an ExternalName.
    create(
        &s,
        "apiVersion: v1
kind: Service
metadata: {name: db, namespace: dnstest}
spec:
  clusterIP: None
  ports: [{name: pg, port: 5432, targetPort: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-1
  namespace: dnstest
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
ports: [{name: pg, port: 5432, protocol: TCP}]
endpoints:
- addresses: [198.19.0.10]
  hostname: db-0
- addresses: [198.19.0.11]
- addresses: [198.19.0.12]
  hostname: db-2
  conditions: {ready: false}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: dnstest}
spec: {type: ExternalName, externalName: www.example.test}
",
    );
    wait_until("the headless service's records", 10, || {
        addrs(&udp(dns.addr, "db.dnstest.svc.cluster.local", rtype::A))
            == ["198.19.0.10", "198.19.0.11"]
    });
    let m = udp(dns.addr, "db-0.db.dnstest.svc.cluster.local", rtype::A);
    assert_eq!(addrs(&m), ["198.19.0.10"]);
    let m = tcp(
        dns.addr,
        "_pg._tcp.db.dnstest.svc.cluster.local",
        rtype::SRV,
    );
    let mut targets: Vec<String> = m
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::Srv { target, port, .. } => format!("{target}:{port}"),
            other => panic!("{other:?}"),
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            "198-19-0-11.db.dnstest.svc.cluster.local.:5432",
            "db-0.db.dnstest.svc.cluster.local.:5432"
        ]
    );
    let m = udp(dns.addr, "10.0.19.198.in-addr.arpa", rtype::PTR);
    assert_eq!(
        m.answers[0].data,
        RData::Ptr(Name::from_ascii("db-0.db.dnstest.svc.cluster.local").unwrap())
    );
    let m = udp(dns.addr, "db-2.db.dnstest.svc.cluster.local", rtype::A);
    assert_eq!(m.rcode(), rcode::NXDOMAIN, "not ready");
    // The ExternalName: its CNAME, and the target resolved by the fake upstream.
    let m = udp(dns.addr, "ext.dnstest.svc.cluster.local", rtype::A);
    assert_eq!(
        m.answers[0].data,
        RData::Cname(Name::from_ascii("www.example.test").unwrap())
    );
    assert_eq!(addrs(&m), ["192.0.2.7"]);

    // Changes: a new ready endpoint appears, a deleted Service is gone in seconds.
    s.ok(&[
        "patch",
        "endpointslice",
        "db-1",
        "-n",
        "dnstest",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/endpoints/2/conditions/ready","value":true}]"#,
    ]);
    wait_until("the endpoint turned ready", 10, || {
        addrs(&udp(
            dns.addr,
            "db-2.db.dnstest.svc.cluster.local",
            rtype::A,
        )) == ["198.19.0.12"]
    });
    s.ok(&["delete", "service", "web", "-n", "dnstest"]);
    let deleted = Instant::now();
    wait_until("NXDOMAIN for the deleted service", 5, || {
        udp(dns.addr, "web.dnstest.svc.cluster.local", rtype::A).rcode() == rcode::NXDOMAIN
    });
    println!("deleted service NXDOMAIN after {:?}", deleted.elapsed());

    // Other names go to the upstream given with --upstream.
    let m = udp(dns.addr, "www.example.test", rtype::A);
    assert_eq!(addrs(&m), ["192.0.2.7"]);
    let m = tcp(dns.addr, "other.example.test", rtype::A);
    assert_eq!(addrs(&m), ["192.0.2.7"]);

    // Garbage does not stop it.
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    for pkt in [
        &[][..],
        &[0xff; 3][..],
        &[0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 0x0C, 0, 1, 0, 1][..],
        &[0x5a; 700][..],
    ] {
        junk.send_to(pkt, dns.addr).unwrap();
    }
    let mut t = TcpStream::connect(dns.addr).unwrap();
    t.write_all(&[0xff, 0xff, 1, 2, 3]).unwrap();
    drop(t);
    let m = udp(dns.addr, "db-0.db.dnstest.svc.cluster.local", rtype::A);
    assert_eq!(addrs(&m), ["198.19.0.10"]);
    assert!(dns.child.try_wait().unwrap().is_none(), "{}", dns.log());
    stop.store(true, Ordering::Relaxed);
}

#[test]
fn without_an_api_server_it_is_not_ready() {
    // A kubeconfig pointing at a port nobody listens on: DNS serves (SERVFAIL for
    // cluster names before the first list) but /readyz says not ready.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{}', insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: x}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u}}}}]
current-context: c
",
            free_port()
        ),
    )
    .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let health = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args(["dns", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg(format!("--listen={addr}"))
        .arg(format!("--health-bind-address={health}"))
        .arg("--resolv-conf=/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("ferrokube dns /healthz", 10, || {
        http_status(health, "/healthz") == Some(200)
    });
    assert_eq!(http_status(health, "/readyz"), Some(500));
    let m = udp(addr, "web.default.svc.cluster.local", rtype::A);
    assert_eq!(m.rcode(), rcode::SERVFAIL);
    // No upstream at all (no resolv.conf): other names are SERVFAIL, never sent
    // anywhere.
    let m = udp(addr, "www.example.test", rtype::A);
    assert_eq!(m.rcode(), rcode::SERVFAIL);
    // Bad flags exit non-zero naming the flag.
    let o = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args(["dns", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--cluster-domain=a..b", "--listen=127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--cluster-domain"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let _ = child.kill();
    let _ = child.wait();
}
