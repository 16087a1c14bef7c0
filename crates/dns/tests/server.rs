//! The server on 127.0.0.1 without an API client (the zone filled by hand): UDP and
//! TCP answers, forwarding to a fake upstream run by the test (a silent one first, to
//! exercise the timeout and the next upstream; truncated UDP answers retried over
//! TCP), an ExternalName chased upstream, SERVFAIL without upstreams, garbage
//! packets, and the health port. Loopback only; every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use ferrokube_dns::wire::{flags, rcode, rtype, Message, Name, RData, Record};
use ferrokube_dns::{Config, Handle, PortInfo, Server, ServiceInfo, ServiceKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(5);

/// A fake resolver: `*.example` A 192.0.2.1; `big.example` 60 A records (truncated
/// over UDP, whole over TCP); `missing.example` NXDOMAIN.
async fn fake_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    // A free UDP port whose TCP twin may be taken by another test: try a few.
    let mut attempt = 0;
    let (udp, addr, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        match TcpListener::bind(addr).await {
            Ok(tcp) => break (udp, addr, tcp),
            Err(e) if attempt < 50 => {
                attempt += 1;
                eprintln!("{addr} taken over TCP ({e}); another port");
            }
            Err(e) => panic!("no port free over both UDP and TCP: {e}"),
        }
    };
    let task = tokio::spawn(async move {
        let udp_loop = async {
            let mut buf = vec![0u8; 4096];
            loop {
                let (n, peer) = udp.recv_from(&mut buf).await.unwrap();
                let answer = fake_answer(&buf[..n], true);
                udp.send_to(&answer, peer).await.unwrap();
            }
        };
        let tcp_loop = async {
            loop {
                let (mut s, _) = tcp.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut len = [0u8; 2];
                    while s.read_exact(&mut len).await.is_ok() {
                        let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        s.read_exact(&mut q).await.unwrap();
                        let a = fake_answer(&q, false);
                        let mut framed = (a.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&a);
                        s.write_all(&framed).await.unwrap();
                    }
                });
            }
        };
        tokio::join!(udp_loop, tcp_loop);
    });
    (addr, task)
}

fn fake_answer(query: &[u8], udp: bool) -> Vec<u8> {
    let q = Message::parse(query).unwrap();
    let mut m = Message {
        header: q.header,
        questions: q.questions.clone(),
        ..Message::default()
    };
    m.header.flags |= flags::QR | flags::RA;
    m.header.arcount = 0;
    let name = q.questions[0].name.clone();
    let text = name.to_string().to_ascii_lowercase();
    let a = |i: u8| Record {
        name: name.clone(),
        class: 1,
        ttl: 300,
        data: RData::A([192, 0, 2, i].into()),
    };
    if text == "missing.example." {
        m.header.flags |= rcode::NXDOMAIN;
    } else if text == "big.example." {
        if udp {
            m.header.flags |= flags::TC;
        } else {
            m.answers = (1..=60).map(a).collect();
        }
    } else if q.questions[0].qtype == rtype::A {
        m.answers.push(a(1));
    }
    m.to_bytes().unwrap()
}

async fn udp(addr: SocketAddr, pkt: &[u8]) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(pkt, addr).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .expect("no UDP answer")
        .unwrap();
    Message::parse(&buf[..n]).unwrap()
}

async fn tcp(addr: SocketAddr, pkts: &[Vec<u8>]) -> Vec<Message> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    // Pipelined: every query first, then the answers in order.
    for pkt in pkts {
        let mut framed = (pkt.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(pkt);
        s.write_all(&framed).await.unwrap();
    }
    for _ in pkts {
        let mut len = [0u8; 2];
        tokio::time::timeout(WAIT, s.read_exact(&mut len))
            .await
            .expect("no TCP answer")
            .unwrap();
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut body).await.unwrap();
        out.push(Message::parse(&body).unwrap());
    }
    out
}

fn q(id: u16, name: &str, t: u16) -> Vec<u8> {
    ferrokube_dns::query_bytes(id, name, t).unwrap()
}

fn a_of(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match r.data {
            RData::A(ip) => Some(ip.to_string()),
            _ => None,
        })
        .collect()
}

async fn start(upstreams: Vec<SocketAddr>) -> Handle {
    let h = Server::start(
        Config {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            upstreams,
            health_listen: Some("127.0.0.1:0".parse().unwrap()),
            forward_timeout: Duration::from_millis(300),
            ..Config::default()
        },
        None,
    )
    .await
    .unwrap();
    h.zone().upsert_service(ServiceInfo {
        namespace: "default".into(),
        name: "web".into(),
        kind: ServiceKind::ClusterIp(vec!["10.96.0.10".parse().unwrap()]),
        ports: vec![PortInfo {
            name: Some("http".into()),
            protocol: "tcp".into(),
            port: 80,
        }],
        publish_not_ready: false,
    });
    h.zone().upsert_service(ServiceInfo {
        namespace: "default".into(),
        name: "ext".into(),
        kind: ServiceKind::ExternalName("www.example".into()),
        ports: vec![],
        publish_not_ready: false,
    });
    h
}

async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut text = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut text))
        .await
        .unwrap()
        .unwrap();
    let code = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_forwards_and_survives_garbage() {
    let (up, _up_task) = fake_upstream().await;
    // A socket that never answers: the first upstream times out.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let h = start(vec![silent.local_addr().unwrap(), up]).await;
    let addr = h.local_addrs()[0];
    assert!(h.is_ready());

    // Cluster names over UDP and TCP (pipelined).
    let m = udp(addr, &q(1, "web.default.svc.cluster.local", rtype::A)).await;
    assert_eq!(a_of(&m), ["10.96.0.10"]);
    assert!(m.header.flags & flags::AA != 0);
    let ms = tcp(
        addr,
        &[
            q(2, "web.default.svc.cluster.local", rtype::A),
            q(3, "_http._tcp.web.default.svc.cluster.local", rtype::SRV),
            q(4, "nope.default.svc.cluster.local", rtype::A),
        ],
    )
    .await;
    assert_eq!(
        (ms[0].header.id, a_of(&ms[0])),
        (2, vec!["10.96.0.10".to_string()])
    );
    assert_eq!(ms[1].answers[0].rtype(), rtype::SRV);
    assert_eq!((ms[2].header.id, ms[2].rcode()), (4, rcode::NXDOMAIN));

    // Forwarded, past the silent upstream, under the client's ID.
    let m = udp(addr, &q(0xABCD, "www.example", rtype::A)).await;
    assert_eq!(m.header.id, 0xABCD);
    assert_eq!(a_of(&m), ["192.0.2.1"]);
    let m = udp(addr, &q(5, "missing.example", rtype::A)).await;
    assert_eq!(m.rcode(), rcode::NXDOMAIN);
    // Truncated upstream UDP answer: we retry over TCP; 60 records do not fit a
    // 512-byte UDP answer, so the client is told to come back over TCP...
    let m = udp(addr, &q(6, "big.example", rtype::A)).await;
    assert!(m.header.truncated());
    assert!(m.answers.is_empty());
    // ...where it gets them all.
    let ms = tcp(addr, &[q(7, "big.example", rtype::A)]).await;
    assert_eq!(ms[0].answers.len(), 60);

    // ExternalName: the CNAME and the target's address from upstream.
    let m = udp(addr, &q(8, "ext.default.svc.cluster.local", rtype::A)).await;
    assert_eq!(m.answers.len(), 2, "{m:?}");
    assert_eq!(
        m.answers[0].data,
        RData::Cname(Name::from_ascii("www.example").unwrap())
    );
    assert_eq!(a_of(&m), ["192.0.2.1"]);

    // Garbage: short, random, a response, a pointer loop, an empty TCP frame.
    let junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![1, 2, 3],
        (0..300u16).map(|i| (i * 7) as u8).collect(),
        {
            let mut r = q(9, "x", rtype::A);
            r[2] |= 0x80;
            r
        },
        {
            let mut l = q(10, "x", rtype::A)[..12].to_vec();
            l.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
            l
        },
    ];
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for j in &junk {
        sock.send_to(j, addr).await.unwrap();
    }
    // The pointer loop gets FORMERR with its ID; the noise (whose header happens to
    // say opcode 1) NOTIMP; the rest nothing.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 512];
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await
    {
        let m = Message::parse(&buf[..n]).unwrap();
        got.push((m.header.id, m.rcode()));
    }
    got.sort();
    assert_eq!(got, [(7, rcode::NOTIMP), (10, rcode::FORMERR)]);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0, 0, 0, 3, 1, 2, 3]).await.unwrap();
    drop(s);
    // Still answering.
    let m = udp(addr, &q(11, "web.default.svc.cluster.local", rtype::A)).await;
    assert_eq!(a_of(&m), ["10.96.0.10"]);

    // Health, readiness and metrics.
    let health = h.health_addr().unwrap();
    assert_eq!(http_get(health, "/healthz").await, (200, "ok".into()));
    assert_eq!(http_get(health, "/readyz").await, (200, "ok".into()));
    let (code, metrics) = http_get(health, "/metrics").await;
    assert_eq!(code, 200);
    for want in [
        "coredns_dns_requests_total{proto=\"udp\",type=\"A\"}",
        "coredns_dns_requests_total{proto=\"tcp\",type=\"SRV\"} 1",
        "coredns_dns_responses_total{rcode=\"NXDOMAIN\"}",
        "coredns_dns_responses_total{rcode=\"FORMERR\"} 1",
        "coredns_dns_request_duration_seconds_bucket",
        &format!(
            "ferrokube_dns_forward_failures_total{{to=\"{}\"}}",
            silent.local_addr().unwrap()
        ),
        &format!("coredns_forward_requests_total{{to=\"{up}\"}}"),
        "ferrokube_dns_dropped_total",
    ] {
        assert!(metrics.contains(want), "{want} missing from\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_upstreams_other_names_are_servfail() {
    let h = start(vec![]).await;
    let addr = h.local_addrs()[0];
    let m = udp(addr, &q(1, "www.example", rtype::A)).await;
    assert_eq!((m.header.id, m.rcode()), (1, rcode::SERVFAIL));
    // ExternalName without upstream: the CNAME alone (the client chases it).
    let m = udp(addr, &q(2, "ext.default.svc.cluster.local", rtype::A)).await;
    assert_eq!(m.rcode(), rcode::NOERROR);
    assert_eq!(m.answers.len(), 1);
    // A dead upstream: SERVFAIL after the timeout, not a hang.
    let dead = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let h2 = start(vec![dead.local_addr().unwrap()]).await;
    let started = std::time::Instant::now();
    let m = udp(h2.local_addrs()[0], &q(3, "www.example", rtype::A)).await;
    assert_eq!(m.rcode(), rcode::SERVFAIL);
    assert!(started.elapsed() < Duration::from_secs(3));
}
