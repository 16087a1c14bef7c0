//! Whole messages: parsing every section (compressed names expanded, RDATA of the
//! types we serve decoded, others kept as bytes) and writing them back with
//! compression. The server's hot path does not use this (it reads the question in
//! place and writes with [`super::MessageBuilder`]); the forwarder, the tests and the
//! benchmark's client do.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::builder::{MessageBuilder, Section};
use super::{be16, be32, rtype, Header, Name, WireError, HEADER_LEN};

/// Record data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(Name),
    Ptr(Name),
    Ns(Name),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: Name,
    },
    /// Character strings, each at most 255 bytes.
    Txt(Vec<Box<[u8]>>),
    Soa {
        mname: Name,
        rname: Name,
        serial: u32,
        refresh: u32,
        retry: u32,
        expire: u32,
        minimum: u32,
    },
    /// Any other type (OPT included), as bytes.
    Other {
        rtype: u16,
        data: Box<[u8]>,
    },
}

impl RData {
    /// The record type.
    pub fn rtype(&self) -> u16 {
        match self {
            RData::A(_) => rtype::A,
            RData::Aaaa(_) => rtype::AAAA,
            RData::Cname(_) => rtype::CNAME,
            RData::Ptr(_) => rtype::PTR,
            RData::Ns(_) => rtype::NS,
            RData::Srv { .. } => rtype::SRV,
            RData::Txt(_) => rtype::TXT,
            RData::Soa { .. } => rtype::SOA,
            RData::Other { rtype, .. } => *rtype,
        }
    }

    /// Decodes `rdlen` bytes at `pos` of `msg` as type `t` (names may point anywhere
    /// earlier in `msg`, but must end inside the RDATA).
    fn parse(msg: &[u8], pos: usize, rdlen: usize, t: u16) -> Result<RData, WireError> {
        let end = pos + rdlen;
        let rd = msg.get(pos..end).ok_or(WireError::Truncated)?;
        let name_at = |at: usize| -> Result<(Name, usize), WireError> {
            let (n, next) = Name::parse(msg, at)?;
            if next > end {
                return Err(WireError::BadRdata);
            }
            Ok((n, next))
        };
        let exact = |next: usize, data: RData| -> Result<RData, WireError> {
            if next == end {
                Ok(data)
            } else {
                Err(WireError::BadRdata)
            }
        };
        match t {
            rtype::A => {
                let o: [u8; 4] = rd.try_into().map_err(|_| WireError::BadRdata)?;
                Ok(RData::A(o.into()))
            }
            rtype::AAAA => {
                let o: [u8; 16] = rd.try_into().map_err(|_| WireError::BadRdata)?;
                Ok(RData::Aaaa(o.into()))
            }
            rtype::CNAME | rtype::PTR | rtype::NS => {
                let (n, next) = name_at(pos)?;
                let data = match t {
                    rtype::CNAME => RData::Cname(n),
                    rtype::PTR => RData::Ptr(n),
                    _ => RData::Ns(n),
                };
                exact(next, data)
            }
            rtype::SRV => {
                if rdlen < 7 {
                    return Err(WireError::BadRdata);
                }
                let (target, next) = name_at(pos + 6)?;
                exact(
                    next,
                    RData::Srv {
                        priority: be16(msg, pos)?,
                        weight: be16(msg, pos + 2)?,
                        port: be16(msg, pos + 4)?,
                        target,
                    },
                )
            }
            rtype::TXT => {
                let mut strings = Vec::new();
                let mut i = 0usize;
                while i < rd.len() {
                    let l = usize::from(rd[i]);
                    let s = rd.get(i + 1..i + 1 + l).ok_or(WireError::BadRdata)?;
                    strings.push(s.into());
                    i += 1 + l;
                }
                Ok(RData::Txt(strings))
            }
            rtype::SOA => {
                let (mname, next) = name_at(pos)?;
                let (rname, next) = name_at(next)?;
                if next + 20 != end {
                    return Err(WireError::BadRdata);
                }
                Ok(RData::Soa {
                    mname,
                    rname,
                    serial: be32(msg, next)?,
                    refresh: be32(msg, next + 4)?,
                    retry: be32(msg, next + 8)?,
                    expire: be32(msg, next + 12)?,
                    minimum: be32(msg, next + 16)?,
                })
            }
            other => Ok(RData::Other {
                rtype: other,
                data: rd.into(),
            }),
        }
    }
}

/// A question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub name: Name,
    pub qtype: u16,
    pub qclass: u16,
}

/// A resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: Name,
    pub class: u16,
    pub ttl: u32,
    pub data: RData,
}

impl Record {
    /// The record type.
    pub fn rtype(&self) -> u16 {
        self.data.rtype()
    }
}

/// EDNS0 parameters from an OPT record (RFC 6891 §6.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// The requestor's UDP payload size.
    pub udp_size: u16,
    /// The upper 8 bits of the extended rcode.
    pub ext_rcode: u8,
    pub version: u8,
    pub dnssec_ok: bool,
}

impl Edns {
    /// From an OPT record's class and TTL fields.
    pub fn from_fields(class: u16, ttl: u32) -> Edns {
        Edns {
            udp_size: class,
            ext_rcode: (ttl >> 24) as u8,
            version: (ttl >> 16) as u8,
            dnssec_ok: ttl & 0x8000 != 0,
        }
    }
}

/// A parsed message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub header: Header,
    pub questions: Vec<Question>,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
}

fn parse_record(msg: &[u8], pos: usize) -> Result<(Record, usize), WireError> {
    let (name, p) = Name::parse(msg, pos)?;
    let t = be16(msg, p)?;
    let class = be16(msg, p + 2)?;
    let ttl = be32(msg, p + 4)?;
    let rdlen = usize::from(be16(msg, p + 8)?);
    let data = RData::parse(msg, p + 10, rdlen, t)?;
    Ok((
        Record {
            name,
            class,
            ttl,
            data,
        },
        p + 10 + rdlen,
    ))
}

impl Message {
    /// A query for `name`/`qtype` (class IN, recursion desired).
    pub fn query(id: u16, name: Name, qtype: u16) -> Message {
        Message {
            header: Header {
                id,
                flags: super::flags::RD,
                ..Header::default()
            },
            questions: vec![Question {
                name,
                qtype,
                qclass: super::class::IN,
            }],
            ..Message::default()
        }
    }

    /// Parses every section. Trailing bytes after the last record are ignored.
    pub fn parse(msg: &[u8]) -> Result<Message, WireError> {
        let header = Header::parse(msg)?;
        // Each question takes at least 5 bytes and each record 11: cap the
        // preallocation by what the bytes could hold.
        let room = msg.len().saturating_sub(HEADER_LEN);
        let mut pos = HEADER_LEN;
        let mut questions = Vec::with_capacity(usize::from(header.qdcount).min(room / 5));
        for _ in 0..header.qdcount {
            let (name, p) = Name::parse(msg, pos)?;
            questions.push(Question {
                name,
                qtype: be16(msg, p)?,
                qclass: be16(msg, p + 2)?,
            });
            pos = p + 4;
        }
        let mut sections: [Vec<Record>; 3] = Default::default();
        for (i, count) in [header.ancount, header.nscount, header.arcount]
            .into_iter()
            .enumerate()
        {
            let mut records = Vec::with_capacity(usize::from(count).min(room / 11));
            for _ in 0..count {
                let (r, p) = parse_record(msg, pos)?;
                records.push(r);
                pos = p;
            }
            sections[i] = records;
        }
        let [answers, authority, additional] = sections;
        Ok(Message {
            header,
            questions,
            answers,
            authority,
            additional,
        })
    }

    /// The EDNS0 parameters, when an OPT record is present.
    pub fn edns(&self) -> Option<Edns> {
        self.additional
            .iter()
            .find(|r| r.rtype() == rtype::OPT)
            .map(|r| Edns::from_fields(r.class, r.ttl))
    }

    /// The full rcode (the header's 4 bits and the OPT record's upper 8).
    pub fn rcode(&self) -> u16 {
        let ext = self.edns().map_or(0, |e| u16::from(e.ext_rcode));
        (ext << 4) | self.header.rcode()
    }

    /// The wire bytes, names compressed. Counts come from the sections.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut buf = Vec::with_capacity(512);
        let mut b = MessageBuilder::new(&mut buf, self.header.id, self.header.flags);
        for q in &self.questions {
            b.question(q.name.wire(), q.qtype, q.qclass)?;
        }
        for (section, records) in [
            (Section::Answer, &self.answers),
            (Section::Authority, &self.authority),
            (Section::Additional, &self.additional),
        ] {
            for r in records {
                b.record(section, r.name.wire(), r.class, r.ttl, &r.data)?;
            }
        }
        b.finish();
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::wire::{class, flags, rcode};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn rec(owner: &str, data: RData) -> Record {
        Record {
            name: name(owner),
            class: class::IN,
            ttl: 30,
            data,
        }
    }

    #[test]
    fn every_record_kind_round_trips() {
        let mut m = Message::query(0x1234, name("web.ns.svc.cluster.local"), rtype::ANY);
        m.header.flags |= flags::QR | flags::AA | rcode::NXDOMAIN;
        m.answers = vec![
            rec("web.ns.svc.cluster.local", RData::A([10, 96, 0, 1].into())),
            rec(
                "web.ns.svc.cluster.local",
                RData::Aaaa("fd00::1".parse().unwrap()),
            ),
            rec(
                "ext.ns.svc.cluster.local",
                RData::Cname(name("www.example.com")),
            ),
            rec(
                "1.0.96.10.in-addr.arpa",
                RData::Ptr(name("web.ns.svc.cluster.local")),
            ),
            rec(
                "_http._tcp.web.ns.svc.cluster.local",
                RData::Srv {
                    priority: 0,
                    weight: 100,
                    port: 80,
                    target: name("web.ns.svc.cluster.local"),
                },
            ),
            rec(
                "dns-version.cluster.local",
                RData::Txt(vec![b"1.1.0".as_slice().into(), b"".as_slice().into()]),
            ),
            rec("cluster.local", RData::Ns(name("ns.dns.cluster.local"))),
            rec(
                "x.cluster.local",
                RData::Other {
                    rtype: 99,
                    data: b"\x01\x02".as_slice().into(),
                },
            ),
        ];
        m.authority = vec![rec(
            "cluster.local",
            RData::Soa {
                mname: name("ns.dns.cluster.local"),
                rname: name("hostmaster.cluster.local"),
                serial: 7,
                refresh: 7200,
                retry: 1800,
                expire: 86400,
                minimum: 30,
            },
        )];
        m.additional = vec![Record {
            name: Name::root(),
            class: 1232,
            ttl: 0x8000,
            data: RData::Other {
                rtype: rtype::OPT,
                data: Box::new([]),
            },
        }];
        let bytes = m.to_bytes().unwrap();
        let mut back = Message::parse(&bytes).unwrap();
        assert_eq!(back.header.ancount, 8);
        assert_eq!(back.header.nscount, 1);
        assert_eq!(back.header.arcount, 1);
        back.header = m.header;
        assert_eq!(back, m);
        assert_eq!(m.rcode(), rcode::NXDOMAIN);
        let e = m.edns().unwrap();
        assert_eq!((e.udp_size, e.version, e.dnssec_ok), (1232, 0, true));
        // Together the answers take less room than one by one (names compressed).
        let alone = |records: Vec<Record>| {
            let m = Message {
                answers: records,
                ..Message::default()
            };
            m.to_bytes().unwrap().len() - HEADER_LEN
        };
        let separate: usize = m.answers.iter().map(|r| alone(vec![r.clone()])).sum();
        let together = alone(m.answers.clone());
        assert!(together + 40 < separate, "{together} vs {separate}");
    }

    #[test]
    fn bad_rdata_is_refused() {
        let mut m = Message::query(1, name("a"), rtype::A);
        m.answers.push(rec("a", RData::A([1, 2, 3, 4].into())));
        let mut bytes = m.to_bytes().unwrap();
        // Make the A record's RDLENGTH 3.
        let at = bytes.len() - 6;
        bytes[at..at + 2].copy_from_slice(&3u16.to_be_bytes());
        assert_eq!(Message::parse(&bytes), Err(WireError::BadRdata));
        // A CNAME whose name runs past its RDATA.
        let mut m = Message::query(1, name("a"), rtype::CNAME);
        m.answers.push(rec("a", RData::Cname(name("bbbb.c"))));
        let mut bytes = m.to_bytes().unwrap();
        let at = bytes.len() - 10;
        bytes[at..at + 2].copy_from_slice(&2u16.to_be_bytes());
        assert!(Message::parse(&bytes).is_err());
    }

    #[test]
    fn counts_larger_than_the_message_do_not_allocate_or_panic() {
        let mut bytes = Header {
            id: 1,
            flags: 0,
            qdcount: 65535,
            ancount: 65535,
            nscount: 65535,
            arcount: 65535,
        }
        .to_bytes()
        .to_vec();
        bytes.extend_from_slice(b"\x00\x00\x01\x00\x01");
        assert_eq!(Message::parse(&bytes), Err(WireError::Truncated));
    }
}
