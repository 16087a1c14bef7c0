//! The specification's records and response codes, through the same path the server
//! takes: wire query → [`parse_query`] → [`Responder::respond`] → wire answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::wire::{Message, Name, Question, RData, Record};
use crate::zone::{EndpointInfo, PortInfo, ServiceInfo, ServiceKind, SliceInfo, Zone};

fn zone() -> Zone {
    let z = Zone::new(&Name::from_ascii("cluster.local").unwrap(), 30, true);
    z.set_synced(true);
    z.upsert_service(ServiceInfo {
        namespace: "ns".into(),
        name: "web".into(),
        kind: ServiceKind::ClusterIp(vec!["10.96.0.10".parse().unwrap()]),
        ports: vec![
            port(Some("http"), "tcp", 80),
            port(Some("dns"), "udp", 53),
            port(None, "tcp", 8080),
        ],
        publish_not_ready: false,
    });
    z.upsert_service(ServiceInfo {
        namespace: "ns".into(),
        name: "dual".into(),
        kind: ServiceKind::ClusterIp(vec![
            "10.96.0.11".parse().unwrap(),
            "fd00::11".parse().unwrap(),
        ]),
        ports: vec![],
        publish_not_ready: false,
    });
    z.upsert_service(headless("h", false));
    z.upsert_slice(SliceInfo {
        namespace: "ns".into(),
        name: "h-1".into(),
        service: "h".into(),
        ports: vec![port(Some("http"), "tcp", 8080)],
        endpoints: vec![
            ep("10.1.0.1", Some("pet-0"), true),
            ep("10.1.0.2", None, true),
            ep("10.1.0.3", Some("pet-2"), false),
        ],
    });
    z.upsert_service(ServiceInfo {
        namespace: "ns".into(),
        name: "ext".into(),
        kind: ServiceKind::ExternalName("www.example.com".into()),
        ports: vec![],
        publish_not_ready: false,
    });
    z.upsert_service(ServiceInfo {
        namespace: "ns".into(),
        name: "alias".into(),
        kind: ServiceKind::ExternalName("web.ns.svc.cluster.local".into()),
        ports: vec![],
        publish_not_ready: false,
    });
    z
}

fn port(name: Option<&str>, proto: &str, port: u16) -> PortInfo {
    PortInfo {
        name: name.map(Into::into),
        protocol: proto.into(),
        port,
    }
}

fn ep(ip: &str, host: Option<&str>, ready: bool) -> EndpointInfo {
    EndpointInfo {
        addresses: vec![ip.parse().unwrap()],
        hostname: host.map(Into::into),
        ready,
    }
}

fn headless(name: &str, publish_not_ready: bool) -> ServiceInfo {
    ServiceInfo {
        namespace: "ns".into(),
        name: name.into(),
        kind: ServiceKind::Headless,
        ports: vec![port(Some("http"), "tcp", 80)],
        publish_not_ready,
    }
}

struct Asked {
    outcome: Outcome,
    msg: Option<Message>,
    len: usize,
}

fn ask_with(z: &Zone, name: &str, qtype: u16, edns: Option<u16>, proto: Proto) -> Asked {
    let mut m = Message::query(0x4242, Name::from_ascii(name).unwrap(), qtype);
    if let Some(size) = edns {
        m.additional.push(Record {
            name: Name::root(),
            class: size,
            ttl: 0,
            data: RData::Other {
                rtype: rtype::OPT,
                data: Box::new([]),
            },
        });
    }
    let pkt = m.to_bytes().unwrap();
    let q = parse_query(&pkt).unwrap();
    let r = Responder::new(z.clone(), 30);
    let mut out = Vec::new();
    let outcome = r.respond(&q, proto, &mut out);
    let msg = (outcome == Outcome::Reply).then(|| Message::parse(&out).unwrap());
    if let Some(m) = &msg {
        assert_eq!(m.header.id, 0x4242);
        assert!(m.header.is_response());
        assert_eq!(
            m.questions,
            vec![Question {
                name: Name::from_ascii(name).unwrap(),
                qtype,
                qclass: class::IN
            }],
            "the question is echoed as asked"
        );
    }
    Asked {
        outcome,
        msg,
        len: out.len(),
    }
}

fn ask(z: &Zone, name: &str, qtype: u16) -> Message {
    let a = ask_with(z, name, qtype, None, Proto::Udp);
    a.msg.unwrap_or_else(|| panic!("{name}: {:?}", a.outcome))
}

fn addrs(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(ip) => Some(ip.to_string()),
            RData::Aaaa(ip) => Some(ip.to_string()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn is_nodata(m: &Message) {
    assert_eq!(m.rcode(), rcode::NOERROR);
    assert!(m.answers.is_empty(), "{:?}", m.answers);
    assert_soa(m);
}

fn assert_soa(m: &Message) {
    assert_eq!(m.authority.len(), 1, "{m:?}");
    let soa = &m.authority[0];
    assert_eq!(soa.name.to_string(), "cluster.local.");
    assert_eq!(soa.ttl, 30);
    assert!(
        matches!(soa.data, RData::Soa { minimum: 30, .. }),
        "{soa:?}"
    );
}

#[test]
fn cluster_ip_services() {
    let z = zone();
    let m = ask(&z, "web.ns.svc.cluster.local", rtype::A);
    assert_eq!(m.rcode(), rcode::NOERROR);
    assert!(m.header.flags & flags::AA != 0);
    assert_eq!(addrs(&m), ["10.96.0.10"]);
    assert_eq!(m.answers[0].ttl, 30);
    // An existing name without AAAA: NOERROR, no answer, SOA.
    is_nodata(&ask(&z, "web.ns.svc.cluster.local", rtype::AAAA));
    // Dual stack.
    assert_eq!(
        addrs(&ask(&z, "dual.ns.svc.cluster.local", rtype::A)),
        ["10.96.0.11"]
    );
    assert_eq!(
        addrs(&ask(&z, "dual.ns.svc.cluster.local", rtype::AAAA)),
        ["fd00::11"]
    );
    // A missing service, a missing namespace: NXDOMAIN with SOA.
    for missing in [
        "nope.ns.svc.cluster.local",
        "web.other.svc.cluster.local",
        "x.web.ns.svc.cluster.local",
        "nothing.cluster.local",
    ] {
        let m = ask(&z, missing, rtype::A);
        assert_eq!(m.rcode(), rcode::NXDOMAIN, "{missing}");
        assert_soa(&m);
    }
    // Names above the services exist.
    is_nodata(&ask(&z, "ns.svc.cluster.local", rtype::A));
    is_nodata(&ask(&z, "svc.cluster.local", rtype::A));
}

#[test]
fn names_are_case_insensitive_and_echo_the_question() {
    let z = zone();
    let m = ask(&z, "WEB.Ns.SVC.Cluster.LOCAL", rtype::A);
    assert_eq!(addrs(&m), ["10.96.0.10"]);
    assert_eq!(m.answers[0].name.to_string(), "WEB.Ns.SVC.Cluster.LOCAL.");
    z.upsert_service(ServiceInfo {
        namespace: "Caps".into(),
        name: "Svc".into(),
        kind: ServiceKind::ClusterIp(vec!["10.96.0.99".parse().unwrap()]),
        ports: vec![],
        publish_not_ready: false,
    });
    assert_eq!(
        addrs(&ask(&z, "svc.caps.svc.cluster.local", rtype::A)),
        ["10.96.0.99"]
    );
}

#[test]
fn srv_for_named_ports() {
    let z = zone();
    let m = ask(&z, "_http._tcp.web.ns.svc.cluster.local", rtype::SRV);
    assert_eq!(m.rcode(), rcode::NOERROR);
    assert_eq!(m.answers.len(), 1);
    match &m.answers[0].data {
        RData::Srv {
            port,
            target,
            weight,
            ..
        } => {
            assert_eq!(*port, 80);
            assert_eq!(*weight, 100);
            assert_eq!(target.to_string(), "web.ns.svc.cluster.local.");
        }
        other => panic!("{other:?}"),
    }
    // The target's address rides along.
    assert_eq!(m.additional.len(), 1);
    assert_eq!(
        m.additional[0].data,
        RData::A("10.96.0.10".parse().unwrap())
    );
    let udp = ask(&z, "_dns._udp.web.ns.svc.cluster.local", rtype::SRV);
    assert_eq!(udp.answers.len(), 1);
    // The protocol label exists; a missing port name and the wrong protocol do not.
    is_nodata(&ask(&z, "_tcp.web.ns.svc.cluster.local", rtype::SRV));
    for missing in [
        "_nope._tcp.web.ns.svc.cluster.local",
        "_http._udp.web.ns.svc.cluster.local",
    ] {
        assert_eq!(
            ask(&z, missing, rtype::SRV).rcode(),
            rcode::NXDOMAIN,
            "{missing}"
        );
    }
    // SRV names have no A record.
    is_nodata(&ask(&z, "_http._tcp.web.ns.svc.cluster.local", rtype::A));
}

#[test]
fn headless_services() {
    let z = zone();
    let m = ask(&z, "h.ns.svc.cluster.local", rtype::A);
    assert_eq!(addrs(&m), ["10.1.0.1", "10.1.0.2"], "ready endpoints only");
    assert_eq!(
        addrs(&ask(&z, "pet-0.h.ns.svc.cluster.local", rtype::A)),
        ["10.1.0.1"]
    );
    assert_eq!(
        addrs(&ask(&z, "10-1-0-2.h.ns.svc.cluster.local", rtype::A)),
        ["10.1.0.2"],
        "an endpoint without hostname is named by its address"
    );
    assert_eq!(
        ask(&z, "pet-2.h.ns.svc.cluster.local", rtype::A).rcode(),
        rcode::NXDOMAIN,
        "not ready"
    );
    let m = ask(&z, "_http._tcp.h.ns.svc.cluster.local", rtype::SRV);
    let mut targets: Vec<(String, u16)> = m
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::Srv { target, port, .. } => (target.to_string(), *port),
            other => panic!("{other:?}"),
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            ("10-1-0-2.h.ns.svc.cluster.local.".to_string(), 8080),
            ("pet-0.h.ns.svc.cluster.local.".to_string(), 8080)
        ],
        "one SRV per ready endpoint, the slice's port"
    );
    assert_eq!(m.additional.len(), 2, "{:?}", m.additional);
    // publishNotReadyAddresses publishes them all.
    z.upsert_service(headless("h", true));
    assert_eq!(
        addrs(&ask(&z, "h.ns.svc.cluster.local", rtype::A)),
        ["10.1.0.1", "10.1.0.2", "10.1.0.3"]
    );
    // No ready endpoint: NXDOMAIN (specification 2.4.1).
    z.upsert_service(headless("empty", false));
    z.upsert_slice(SliceInfo {
        namespace: "ns".into(),
        name: "empty-1".into(),
        service: "empty".into(),
        ports: vec![],
        endpoints: vec![ep("10.1.9.9", None, false)],
    });
    let m = ask(&z, "empty.ns.svc.cluster.local", rtype::A);
    assert_eq!(m.rcode(), rcode::NXDOMAIN);
    assert_soa(&m);
}

#[test]
fn external_names() {
    let z = zone();
    let a = ask_with(&z, "ext.ns.svc.cluster.local", rtype::A, None, Proto::Udp);
    assert_eq!(
        a.outcome,
        Outcome::Chase {
            target: Name::from_ascii("www.example.com").unwrap(),
            qtype: rtype::A
        }
    );
    let m = ask(&z, "ext.ns.svc.cluster.local", rtype::CNAME);
    assert_eq!(
        m.answers[0].data,
        RData::Cname(Name::from_ascii("www.example.com").unwrap())
    );
    // The chased answer: CNAME then the upstream's records.
    let pkt = Message::query(
        9,
        Name::from_ascii("ext.ns.svc.cluster.local").unwrap(),
        rtype::A,
    )
    .to_bytes()
    .unwrap();
    let q = parse_query(&pkt).unwrap();
    let upstream = [Record {
        name: Name::from_ascii("www.example.com").unwrap(),
        class: class::IN,
        ttl: 300,
        data: RData::A("192.0.2.1".parse().unwrap()),
    }];
    let mut out = Vec::new();
    Responder::new(z.clone(), 30).cname_answer(&q, Proto::Udp, Some((0, &upstream)), &mut out);
    let m = Message::parse(&out).unwrap();
    assert_eq!(m.answers.len(), 2);
    assert_eq!(m.answers[1], upstream[0]);
    // A CNAME to a service in the zone is followed at once.
    let m = ask(&z, "alias.ns.svc.cluster.local", rtype::A);
    assert_eq!(m.answers.len(), 2);
    assert!(matches!(m.answers[0].data, RData::Cname(_)));
    assert_eq!(m.answers[1].name.to_string(), "web.ns.svc.cluster.local.");
    assert_eq!(addrs(&m), ["10.96.0.10"]);
}

#[test]
fn reverse_names() {
    let z = zone();
    let m = ask(&z, "10.0.96.10.in-addr.arpa", rtype::PTR);
    assert_eq!(
        m.answers[0].data,
        RData::Ptr(Name::from_ascii("web.ns.svc.cluster.local").unwrap())
    );
    let m = ask(&z, "1.0.1.10.in-addr.arpa", rtype::PTR);
    assert_eq!(
        m.answers[0].data,
        RData::Ptr(Name::from_ascii("pet-0.h.ns.svc.cluster.local").unwrap())
    );
    let v6 = crate::zone::records::reverse_name("fd00::11".parse().unwrap());
    let m = ask(&z, &v6.to_string(), rtype::PTR);
    assert_eq!(
        m.answers[0].data,
        RData::Ptr(Name::from_ascii("dual.ns.svc.cluster.local").unwrap())
    );
    // A reverse name we hold nothing for is the upstream's.
    let a = ask_with(&z, "4.3.2.1.in-addr.arpa", rtype::PTR, None, Proto::Udp);
    assert_eq!(a.outcome, Outcome::Forward);
    // Ours, but not that type: NODATA with the reverse zone's SOA.
    let m = ask(&z, "10.0.96.10.in-addr.arpa", rtype::A);
    assert!(m.answers.is_empty());
    assert_eq!(m.authority[0].name.to_string(), "in-addr.arpa.");
}

#[test]
fn zone_apex_version_and_pods() {
    let z = zone();
    let m = ask(&z, "dns-version.cluster.local", rtype::TXT);
    assert_eq!(
        m.answers[0].data,
        RData::Txt(vec![b"1.1.0".as_slice().into()])
    );
    let m = ask(&z, "cluster.local", rtype::SOA);
    assert!(matches!(m.answers[0].data, RData::Soa { .. }));
    is_nodata(&ask(&z, "cluster.local", rtype::A));
    assert_eq!(
        addrs(&ask(&z, "10-244-1-7.default.pod.cluster.local", rtype::A)),
        ["10.244.1.7"]
    );
    assert_eq!(
        addrs(&ask(&z, "fd00--7.default.pod.cluster.local", rtype::AAAA)),
        ["fd00::7"]
    );
    is_nodata(&ask(
        &z,
        "10-244-1-7.default.pod.cluster.local",
        rtype::AAAA,
    ));
    is_nodata(&ask(&z, "default.pod.cluster.local", rtype::A));
    for bad in [
        "10-244-1.default.pod.cluster.local",
        "x.10-244-1-7.default.pod.cluster.local",
        "300-1-1-1.default.pod.cluster.local",
    ] {
        assert_eq!(ask(&z, bad, rtype::A).rcode(), rcode::NXDOMAIN, "{bad}");
    }
    let no_pods = Zone::new(&Name::from_ascii("cluster.local").unwrap(), 30, false);
    no_pods.set_synced(true);
    assert_eq!(
        ask(&no_pods, "10-244-1-7.default.pod.cluster.local", rtype::A).rcode(),
        rcode::NXDOMAIN
    );
}

#[test]
fn outside_names_are_forwarded_and_cluster_names_never() {
    let z = zone();
    for name in ["www.example.com", "local", "cluster.local.example.com"] {
        assert_eq!(
            ask_with(&z, name, rtype::A, None, Proto::Udp).outcome,
            Outcome::Forward,
            "{name}"
        );
    }
    let a = ask_with(
        &z,
        "www.example.com.ns.svc.cluster.local",
        rtype::A,
        None,
        Proto::Udp,
    );
    assert_eq!(a.msg.unwrap().rcode(), rcode::NXDOMAIN);
}

#[test]
fn before_the_first_sync_missing_names_are_servfail() {
    let z = Zone::new(&Name::from_ascii("cluster.local").unwrap(), 30, true);
    assert_eq!(
        ask(&z, "web.ns.svc.cluster.local", rtype::A).rcode(),
        rcode::SERVFAIL
    );
    z.set_synced(true);
    assert_eq!(
        ask(&z, "web.ns.svc.cluster.local", rtype::A).rcode(),
        rcode::NXDOMAIN
    );
}

fn big_headless(z: &Zone, n: u32) {
    z.upsert_service(headless("big", false));
    z.upsert_slice(SliceInfo {
        namespace: "ns".into(),
        name: "big-1".into(),
        service: "big".into(),
        ports: vec![],
        endpoints: (0..n)
            .map(|i| ep(&format!("10.2.{}.{}", i / 250, i % 250 + 1), None, true))
            .collect(),
    });
}

#[test]
fn truncation_by_transport_and_edns_size() {
    let z = zone();
    big_headless(&z, 100);
    let name = "big.ns.svc.cluster.local";
    // 100 A records take 1,600 bytes: over 512 without EDNS.
    let a = ask_with(&z, name, rtype::A, None, Proto::Udp);
    let m = a.msg.unwrap();
    assert!(m.header.truncated());
    assert!(m.answers.is_empty());
    assert!(a.len <= 512);
    // EDNS0 with 4096: everything, and our OPT.
    let a = ask_with(&z, name, rtype::A, Some(4096), Proto::Udp);
    let m = a.msg.unwrap();
    assert!(!m.header.truncated());
    assert_eq!(m.answers.len(), 100);
    assert_eq!(m.edns().unwrap().udp_size, ADVERTISED_UDP);
    // EDNS0 with 1232: truncated, OPT kept.
    let a = ask_with(&z, name, rtype::A, Some(1232), Proto::Udp);
    let m = a.msg.unwrap();
    assert!(m.header.truncated());
    assert!(m.edns().is_some());
    assert!(a.len <= 1232);
    // An advertised size under 512 counts as 512.
    let a = ask_with(
        &z,
        "web.ns.svc.cluster.local",
        rtype::A,
        Some(100),
        Proto::Udp,
    );
    assert!(!a.msg.unwrap().header.truncated());
    // TCP takes it all.
    let m = ask_with(&z, name, rtype::A, None, Proto::Tcp).msg.unwrap();
    assert!(!m.header.truncated());
    assert_eq!(m.answers.len(), 100);
}

#[test]
fn additional_records_are_dropped_before_truncating() {
    let z = zone();
    z.upsert_service(headless("srvs", false));
    z.upsert_slice(SliceInfo {
        namespace: "ns".into(),
        name: "srvs-1".into(),
        service: "srvs".into(),
        ports: vec![port(Some("http"), "tcp", 80)],
        endpoints: (1..=7)
            .map(|i| {
                ep(
                    &format!("10.3.0.{i}"),
                    Some(&format!("host-number-{i}")),
                    true,
                )
            })
            .collect(),
    });
    let a = ask_with(
        &z,
        "_http._tcp.srvs.ns.svc.cluster.local",
        rtype::SRV,
        None,
        Proto::Udp,
    );
    let m = a.msg.unwrap();
    assert!(!m.header.truncated());
    assert_eq!(m.answers.len(), 7);
    assert!(
        !m.additional.is_empty() && m.additional.len() < 7,
        "{}",
        m.additional.len()
    );
    assert!(a.len <= 512);
}

#[test]
fn edns_versions_and_opcodes() {
    let z = zone();
    let r = Responder::new(z, 30);
    let mut m = Message::query(
        5,
        Name::from_ascii("web.ns.svc.cluster.local").unwrap(),
        rtype::A,
    );
    m.additional.push(Record {
        name: Name::root(),
        class: 1232,
        ttl: 1 << 16,
        data: RData::Other {
            rtype: rtype::OPT,
            data: Box::new([]),
        },
    });
    let pkt = m.to_bytes().unwrap();
    let mut out = Vec::new();
    r.respond(&parse_query(&pkt).unwrap(), Proto::Udp, &mut out);
    assert_eq!(Message::parse(&out).unwrap().rcode(), rcode::BADVERS);
    // Two OPT records: FORMERR.
    m.additional.push(m.additional[0].clone());
    let pkt = m.to_bytes().unwrap();
    assert_eq!(
        parse_query(&pkt).unwrap_err(),
        Reject::Error {
            id: 5,
            flags: flags::RD,
            rcode: rcode::FORMERR
        }
    );
    // Two questions: FORMERR; opcode STATUS: NOTIMP; a response: dropped.
    let mut two = Message::query(6, Name::from_ascii("a").unwrap(), rtype::A);
    two.questions.push(two.questions[0].clone());
    assert!(matches!(
        parse_query(&two.to_bytes().unwrap()),
        Err(Reject::Error {
            rcode: rcode::FORMERR,
            ..
        })
    ));
    let mut status = Message::query(7, Name::from_ascii("a").unwrap(), rtype::A);
    status.header.flags |= 2 << 11;
    let err = parse_query(&status.to_bytes().unwrap()).unwrap_err();
    assert!(matches!(
        err,
        Reject::Error {
            rcode: rcode::NOTIMP,
            ..
        }
    ));
    if let Reject::Error { id, flags, rcode } = err {
        error_response(id, flags, rcode, &mut out);
        let m = Message::parse(&out).unwrap();
        assert_eq!(
            (m.header.id, m.header.opcode(), m.rcode()),
            (7, 2, rcode::NOTIMP)
        );
    }
    let mut resp = Message::query(8, Name::from_ascii("a").unwrap(), rtype::A);
    resp.header.flags |= flags::QR;
    assert!(matches!(
        parse_query(&resp.to_bytes().unwrap()),
        Err(Reject::Drop)
    ));
    assert!(matches!(parse_query(&[1, 2, 3]), Err(Reject::Drop)));
}

#[test]
fn answers_rotate() {
    let z = zone();
    big_headless(&z, 5);
    let r = Responder::new(z, 30);
    let pkt = Message::query(
        1,
        Name::from_ascii("big.ns.svc.cluster.local").unwrap(),
        rtype::A,
    )
    .to_bytes()
    .unwrap();
    let q = parse_query(&pkt).unwrap();
    let mut out = Vec::new();
    let firsts: std::collections::HashSet<String> = (0..10)
        .map(|_| {
            r.respond(&q, Proto::Udp, &mut out);
            let m = Message::parse(&out).unwrap();
            assert_eq!(m.answers.len(), 5);
            format!("{:?}", m.answers[0].data)
        })
        .collect();
    assert_eq!(firsts.len(), 5, "{firsts:?}");
}

#[test]
fn other_classes_and_zone_transfers_are_refused() {
    let z = zone();
    let mut m = Message::query(
        1,
        Name::from_ascii("web.ns.svc.cluster.local").unwrap(),
        rtype::A,
    );
    m.questions[0].qclass = 3; // CHAOS
    let pkt = m.to_bytes().unwrap();
    let mut out = Vec::new();
    let r = Responder::new(z, 30);
    r.respond(&parse_query(&pkt).unwrap(), Proto::Udp, &mut out);
    assert_eq!(Message::parse(&out).unwrap().rcode(), rcode::REFUSED);
    let axfr = Message::query(2, Name::from_ascii("cluster.local").unwrap(), rtype::AXFR);
    r.respond(
        &parse_query(&axfr.to_bytes().unwrap()).unwrap(),
        Proto::Tcp,
        &mut out,
    );
    assert_eq!(Message::parse(&out).unwrap().rcode(), rcode::REFUSED);
}

#[test]
fn truncate_keeps_the_question() {
    let mut m = Message::query(3, Name::from_ascii("www.example.com").unwrap(), rtype::A);
    m.header.flags |= flags::QR;
    for i in 0..50u8 {
        m.answers.push(Record {
            name: Name::from_ascii("www.example.com").unwrap(),
            class: class::IN,
            ttl: 1,
            data: RData::A([192, 0, 2, i].into()),
        });
    }
    let big = m.to_bytes().unwrap();
    let mut out = Vec::new();
    assert!(truncate(&big, &mut out));
    let t = Message::parse(&out).unwrap();
    assert!(t.header.truncated());
    assert_eq!(t.questions, m.questions);
    assert!(t.answers.is_empty());
    assert!(!truncate(&big[..14], &mut out));
}

/// xorshift64*: deterministic noise for the garbage test.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn garbage_never_panics() {
    let z = zone();
    big_headless(&z, 40);
    let r = Responder::new(z, 30);
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::new();
    let mut answered = 0;
    let mut seeds: Vec<Vec<u8>> = [
        ("web.ns.svc.cluster.local", rtype::A),
        ("_http._tcp.h.ns.svc.cluster.local", rtype::SRV),
        ("big.ns.svc.cluster.local", rtype::A),
        ("ext.ns.svc.cluster.local", rtype::A),
        ("10.0.96.10.in-addr.arpa", rtype::PTR),
    ]
    .iter()
    .map(|(n, t)| {
        Message::query(1, Name::from_ascii(n).unwrap(), *t)
            .to_bytes()
            .unwrap()
    })
    .collect();
    seeds.push(vec![0xC0; 40]);
    for round in 0..20_000 {
        let mut pkt = seeds[round % seeds.len()].clone();
        match noise.next() % 4 {
            // Truncated at a random point.
            0 => pkt.truncate((noise.next() as usize) % (pkt.len() + 1)),
            // Random bytes flipped.
            1 => {
                for _ in 0..1 + noise.next() % 6 {
                    let at = (noise.next() as usize) % pkt.len();
                    pkt[at] = noise.next() as u8;
                }
            }
            // Pure noise.
            2 => {
                pkt = (0..noise.next() % 600)
                    .map(|_| noise.next() as u8)
                    .collect();
            }
            // A valid header with random counts and a pointer-laden body.
            _ => {
                for b in pkt.iter_mut().skip(4).take(8) {
                    *b = noise.next() as u8;
                }
                pkt.extend((0..noise.next() % 64).map(|_| 0xC0 | (noise.next() as u8 & 0x0F)));
            }
        }
        let _ = Message::parse(&pkt);
        match parse_query(&pkt) {
            Ok(q) => {
                r.respond(&q, Proto::Udp, &mut out);
                answered += 1;
            }
            Err(Reject::Error { id, flags, rcode }) => error_response(id, flags, rcode, &mut out),
            Err(Reject::Drop) => {}
        }
        let _ = truncate(&pkt, &mut out);
    }
    assert!(answered > 100, "{answered}");
}
