//! Answering one query from the zone: reading the question in place, choosing the
//! response code as the Kubernetes DNS specification and RFC 2308 say (an existing
//! name without records of the asked type is NOERROR with no answers and the SOA in
//! the authority section; a missing name is NXDOMAIN with the SOA), writing records
//! with compression into a reused buffer, and truncating (TC) a UDP answer that does
//! not fit the client's size (512 bytes without EDNS0, its OPT size with it).
//!
//! Malformed queries get FORMERR when their ID can be read and are dropped otherwise
//! (as are responses, so two servers can never loop on each other); other opcodes
//! get NOTIMP; EDNS versions above 0 get BADVERS (RFC 6891 §6.1.3).

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::wire::builder::Section;
use crate::wire::message::Edns;
use crate::wire::{
    be16, class, flags, rcode, read_name, rtype, skip_name, Header, MessageBuilder, Name, RData,
    Record, HEADER_LEN, MAX_NAME, UDP_MIN,
};
use crate::zone::{Apex, Find, Rr, Zone, ZoneView};

/// The UDP payload size we advertise in OPT (the DNS flag day 2020 value).
pub const ADVERTISED_UDP: u16 = 1232;
/// The largest UDP answer we send, whatever the client advertises.
pub const MAX_UDP: usize = 4096;
/// How many CNAMEs inside the zone are followed in one answer.
const MAX_CHAIN: usize = 8;
/// Length of the OPT record we add.
const OPT_LEN: usize = 11;

/// The transport a query came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    /// `udp` / `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// A query's question, read in place.
#[derive(Debug, Clone)]
pub struct Query {
    pub id: u16,
    pub flags: u16,
    name: [u8; MAX_NAME],
    name_len: usize,
    key: [u8; MAX_NAME],
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
}

impl Query {
    /// The question name as the client spelled it (wire form).
    pub fn name_wire(&self) -> &[u8] {
        &self.name[..self.name_len]
    }

    /// The question name lowercased (the zone's key).
    pub fn key(&self) -> &[u8] {
        &self.key[..self.name_len]
    }

    /// The question name.
    pub fn name(&self) -> Name {
        Name::from_wire(self.name_wire()).unwrap_or_else(|_| Name::root())
    }

    /// The largest answer this client takes over `proto`.
    pub fn limit(&self, proto: Proto) -> usize {
        match proto {
            Proto::Tcp => 65_535,
            Proto::Udp => self
                .edns
                .map_or(UDP_MIN, |e| usize::from(e.udp_size).clamp(UDP_MIN, MAX_UDP)),
        }
    }
}

/// Why a packet is not a query we answer from its question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not worth an answer (too short, or a response).
    Drop,
    /// Answer with this rcode and no question.
    Error { id: u16, flags: u16, rcode: u16 },
}

/// Reads the header, the one question and any OPT record of `pkt`.
pub fn parse_query(pkt: &[u8]) -> Result<Query, Reject> {
    let h = Header::parse(pkt).map_err(|_| Reject::Drop)?;
    if h.is_response() {
        return Err(Reject::Drop);
    }
    let err = |rcode| Reject::Error {
        id: h.id,
        flags: h.flags,
        rcode,
    };
    if h.opcode() != 0 {
        return Err(err(rcode::NOTIMP));
    }
    if h.qdcount != 1 {
        return Err(err(rcode::FORMERR));
    }
    let mut q = Query {
        id: h.id,
        flags: h.flags,
        name: [0; MAX_NAME],
        name_len: 0,
        key: [0; MAX_NAME],
        qtype: 0,
        qclass: 0,
        edns: None,
    };
    let (len, mut pos) =
        read_name(pkt, HEADER_LEN, &mut q.name, false).map_err(|_| err(rcode::FORMERR))?;
    q.name_len = len;
    q.key[..len].copy_from_slice(&q.name[..len]);
    q.key[..len].make_ascii_lowercase();
    q.qtype = be16(pkt, pos).map_err(|_| err(rcode::FORMERR))?;
    q.qclass = be16(pkt, pos + 2).map_err(|_| err(rcode::FORMERR))?;
    pos += 4;
    let skip = |pos: usize| -> Result<(usize, u16, u16, u32), Reject> {
        let p = skip_name(pkt, pos).map_err(|_| err(rcode::FORMERR))?;
        let t = be16(pkt, p).map_err(|_| err(rcode::FORMERR))?;
        let c = be16(pkt, p + 2).map_err(|_| err(rcode::FORMERR))?;
        let ttl_hi = be16(pkt, p + 4).map_err(|_| err(rcode::FORMERR))?;
        let ttl_lo = be16(pkt, p + 6).map_err(|_| err(rcode::FORMERR))?;
        let rdlen = usize::from(be16(pkt, p + 8).map_err(|_| err(rcode::FORMERR))?);
        let end = p + 10 + rdlen;
        if end > pkt.len() {
            return Err(err(rcode::FORMERR));
        }
        Ok((end, t, c, (u32::from(ttl_hi) << 16) | u32::from(ttl_lo)))
    };
    for _ in 0..(u32::from(h.ancount) + u32::from(h.nscount)) {
        pos = skip(pos)?.0;
    }
    for _ in 0..h.arcount {
        let (end, t, c, ttl) = skip(pos)?;
        if t == rtype::OPT {
            if q.edns.is_some() {
                return Err(err(rcode::FORMERR));
            }
            q.edns = Some(Edns::from_fields(c, ttl));
        }
        pos = end;
    }
    Ok(q)
}

/// The header-only answer to a rejected packet.
pub fn error_response(id: u16, query_flags: u16, rc: u16, out: &mut Vec<u8>) {
    let f = flags::QR | (query_flags & (flags::OPCODE_MASK | flags::RD)) | rc;
    MessageBuilder::new(out, id, f).finish();
}

/// What to do with a query.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The response is in the buffer.
    Reply,
    /// Not ours: forward the query upstream.
    Forward,
    /// An ExternalName CNAME to a name outside the zone: resolve `target`/`qtype`
    /// upstream and answer with [`Responder::cname_answer`].
    Chase { target: Name, qtype: u16 },
}

/// Answers queries from a zone.
#[derive(Debug)]
pub struct Responder {
    zone: Zone,
    ttl: u32,
    /// Rotates A/AAAA/SRV sets between answers (CoreDNS's `loadbalance`).
    rotation: AtomicUsize,
}

fn response_flags(q: &Query, rc: u16, authoritative: bool) -> u16 {
    let mut f = flags::QR | flags::RA | (q.flags & (flags::RD | flags::CD)) | rc;
    if authoritative {
        f |= flags::AA;
    }
    f
}

impl Responder {
    pub fn new(zone: Zone, ttl: u32) -> Responder {
        Responder {
            zone,
            ttl,
            rotation: AtomicUsize::new(0),
        }
    }

    /// The zone answered from.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// Answers `q` into `out` when the zone is authoritative for it.
    pub fn respond(&self, q: &Query, proto: Proto, out: &mut Vec<u8>) -> Outcome {
        if let Some(e) = q.edns {
            if e.version > 0 {
                self.finish_simple(q, rcode::BADVERS, out);
                return Outcome::Reply;
            }
        }
        let view = self.zone.read();
        let (found, apex) = view.find(q.key());
        let Some(apex) = apex else {
            return Outcome::Forward;
        };
        // Other classes, and zone transfers (no secondaries to serve), are refused.
        let transfer = matches!(q.qtype, rtype::AXFR | rtype::IXFR);
        if (q.qclass != class::IN && q.qclass != class::ANY) || transfer {
            drop(view);
            self.finish_simple(q, rcode::REFUSED, out);
            return Outcome::Reply;
        }
        let limit = q.limit(proto);
        match found {
            Find::Outside => Outcome::Forward,
            Find::NxDomain if !self.zone.is_synced() => {
                drop(view);
                self.finish_simple(q, rcode::SERVFAIL, out);
                Outcome::Reply
            }
            Find::NxDomain => self.negative(q, apex, rcode::NXDOMAIN, limit, out),
            Find::Empty => self.negative(q, apex, rcode::NOERROR, limit, out),
            Find::Pod(data) => {
                if data.rtype() == q.qtype || q.qtype == rtype::ANY {
                    self.positive(q, &view, std::iter::once(&data), limit, out)
                } else {
                    self.negative(q, apex, rcode::NOERROR, limit, out)
                }
            }
            Find::Records(rrs) => {
                let cname = rrs.iter().find(|r| matches!(r.data, RData::Cname(_)));
                if let (Some(c), true) = (cname, q.qtype != rtype::CNAME) {
                    return self.cname(q, &view, c, limit, out);
                }
                let qt = q.qtype;
                let matching = rrs
                    .iter()
                    .map(|r| &r.data)
                    .filter(move |d| d.rtype() == qt || qt == rtype::ANY);
                let n = matching.clone().count();
                if n == 0 {
                    return self.negative(q, apex, rcode::NOERROR, limit, out);
                }
                // Rotate the set between answers (CoreDNS's `loadbalance`).
                let by = if n > 1 {
                    self.rotation.fetch_add(1, Ordering::Relaxed) % n
                } else {
                    0
                };
                self.positive(q, &view, matching.cycle().skip(by).take(n), limit, out)
            }
        }
    }

    /// Header, question, then `rc` with no records (plus OPT when asked).
    pub fn finish_simple(&self, q: &Query, rc: u16, out: &mut Vec<u8>) {
        let mut b = MessageBuilder::new(out, q.id, response_flags(q, rc & 0xF, false));
        // The question was read from a message, so it fits in one.
        let _ = b.question(q.name_wire(), q.qtype, q.qclass);
        if let Some(e) = q.edns {
            let _ = b.opt(ADVERTISED_UDP, (rc >> 4) as u8, e.dnssec_ok);
        }
        b.finish();
    }

    fn start<'b>(&self, q: &Query, rc: u16, out: &'b mut Vec<u8>) -> MessageBuilder<'b> {
        let mut b = MessageBuilder::new(out, q.id, response_flags(q, rc, true));
        // The question was read from a message, so it fits in one.
        let _ = b.question(q.name_wire(), q.qtype, q.qclass);
        b
    }

    fn end(&self, q: &Query, mut b: MessageBuilder<'_>) {
        if let Some(e) = q.edns {
            let _ = b.opt(ADVERTISED_UDP, 0, e.dnssec_ok);
        }
        b.finish();
    }

    fn room(q: &Query) -> usize {
        if q.edns.is_some() {
            OPT_LEN
        } else {
            0
        }
    }

    /// NXDOMAIN or NODATA: the zone's SOA in the authority section, with the
    /// negative TTL (RFC 2308 §3: the lesser of the SOA's TTL and minimum).
    fn negative(
        &self,
        q: &Query,
        apex: &Apex,
        rc: u16,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let mut b = self.start(q, rc, out);
        let cp = b.checkpoint();
        let neg_ttl = match apex.soa {
            RData::Soa { minimum, .. } => minimum.min(self.ttl),
            _ => self.ttl,
        };
        let wrote = b
            .record(
                Section::Authority,
                apex.name.wire(),
                class::IN,
                neg_ttl,
                &apex.soa,
            )
            .is_ok();
        if !wrote || b.len() + Self::room(q) > limit {
            b.rollback(cp);
        }
        self.end(q, b);
        Outcome::Reply
    }

    /// Answers with `set` (owned by the question name), and for SRV answers the
    /// targets' addresses in the additional section while they fit.
    fn positive<'d>(
        &self,
        q: &Query,
        view: &ZoneView<'_>,
        set: impl Iterator<Item = &'d RData> + Clone,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let mut b = self.start(q, rcode::NOERROR, out);
        let after_question = b.checkpoint();
        let owner = q.key();
        let mut fits = true;
        for data in set.clone() {
            if b.record(Section::Answer, owner, class::IN, self.ttl, data)
                .is_err()
                || b.len() + Self::room(q) > limit
            {
                fits = false;
                break;
            }
        }
        if !fits {
            b.rollback(after_question);
            b.set_flags(b.flags() | flags::TC);
            self.end(q, b);
            return Outcome::Reply;
        }
        for data in set {
            let RData::Srv { target, .. } = data else {
                continue;
            };
            let (Find::Records(rrs), _) = view.find(target.wire()) else {
                continue;
            };
            for rr in rrs
                .iter()
                .filter(|r| matches!(r.data, RData::A(_) | RData::Aaaa(_)))
            {
                let cp = b.checkpoint();
                let ok = b
                    .record(
                        Section::Additional,
                        target.wire(),
                        class::IN,
                        self.ttl,
                        &rr.data,
                    )
                    .is_ok();
                if !ok || b.len() + Self::room(q) > limit {
                    b.rollback(cp);
                    break;
                }
            }
        }
        self.end(q, b);
        Outcome::Reply
    }

    /// A name that is a CNAME: the CNAME, then the target's records when the target
    /// is in the zone (following up to 8 CNAMEs); a target outside the zone is
    /// chased upstream by the caller.
    fn cname(
        &self,
        q: &Query,
        view: &ZoneView<'_>,
        first: &Rr,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let mut chain: Vec<(Name, &RData)> = vec![(Name::root(), &first.data)];
        let mut tail: Vec<(Name, &RData)> = Vec::new();
        let mut outside = None;
        let mut last_rc = rcode::NOERROR;
        for _ in 0..MAX_CHAIN {
            let Some((_, RData::Cname(target))) = chain.last() else {
                break;
            };
            let target = target.to_lowercase();
            match view.find(target.wire()) {
                (Find::Records(rrs), Some(_)) => {
                    if let Some(next) = rrs.iter().find(|r| matches!(r.data, RData::Cname(_))) {
                        chain.push((target, &next.data));
                        continue;
                    }
                    for r in rrs
                        .iter()
                        .filter(|r| r.data.rtype() == q.qtype || q.qtype == rtype::ANY)
                    {
                        tail.push((target.clone(), &r.data));
                    }
                }
                (Find::NxDomain, Some(_)) => last_rc = rcode::NXDOMAIN,
                (Find::Outside, _) => outside = Some(target),
                _ => {}
            }
            break;
        }
        if let Some(target) = outside {
            return Outcome::Chase {
                target,
                qtype: q.qtype,
            };
        }
        let mut b = self.start(q, last_rc, out);
        let after_question = b.checkpoint();
        let mut ok = true;
        for (i, (owner, data)) in chain.iter().chain(tail.iter()).enumerate() {
            let owner = if i == 0 { q.key() } else { owner.wire() };
            if b.record(Section::Answer, owner, class::IN, self.ttl, data)
                .is_err()
                || b.len() + Self::room(q) > limit
            {
                ok = false;
                break;
            }
        }
        if !ok {
            b.rollback(after_question);
            b.set_flags(b.flags() | flags::TC);
        }
        self.end(q, b);
        Outcome::Reply
    }

    /// The answer to an ExternalName query after chasing its target upstream: the
    /// service's CNAME, then the upstream's answer records (none when the upstream
    /// failed: the client resolves the target itself).
    pub fn cname_answer(
        &self,
        q: &Query,
        proto: Proto,
        upstream: Option<(u16, &[Record])>,
        out: &mut Vec<u8>,
    ) {
        let view = self.zone.read();
        let cname = match view.find(q.key()) {
            (Find::Records(rrs), Some(_)) => rrs
                .iter()
                .find(|r| matches!(r.data, RData::Cname(_)))
                .map(|r| r.data.clone()),
            _ => None,
        };
        drop(view);
        let Some(cname) = cname else {
            self.finish_simple(q, rcode::SERVFAIL, out);
            return;
        };
        let limit = q.limit(proto);
        let rc = match upstream {
            Some((rc, _)) if rc == rcode::NXDOMAIN => rcode::NXDOMAIN,
            _ => rcode::NOERROR,
        };
        let mut b = self.start(q, rc, out);
        let after_question = b.checkpoint();
        let mut ok = b
            .record(Section::Answer, q.key(), class::IN, self.ttl, &cname)
            .is_ok();
        for r in upstream.map(|(_, r)| r).unwrap_or_default() {
            if !ok {
                break;
            }
            ok = b
                .record(Section::Answer, r.name.wire(), r.class, r.ttl, &r.data)
                .is_ok()
                && b.len() + Self::room(q) <= limit;
        }
        if !ok || b.len() + Self::room(q) > limit {
            b.rollback(after_question);
            b.set_flags(b.flags() | flags::TC);
        }
        self.end(q, b);
    }
}

/// Cuts a response that is over `limit` bytes down to its header and question with
/// TC set (what a UDP client gets when a forwarded answer does not fit; it retries
/// over TCP). Returns false when `resp` is not a readable response.
pub fn truncate(resp: &[u8], out: &mut Vec<u8>) -> bool {
    let Ok(h) = Header::parse(resp) else {
        return false;
    };
    let mut end = HEADER_LEN;
    for _ in 0..h.qdcount {
        match skip_name(resp, end) {
            Ok(p) if p + 4 <= resp.len() => end = p + 4,
            _ => return false,
        }
    }
    out.clear();
    out.extend_from_slice(&resp[..end]);
    let fixed = Header {
        flags: h.flags | flags::TC,
        ancount: 0,
        nscount: 0,
        arcount: 0,
        ..h
    };
    out[..HEADER_LEN].copy_from_slice(&fixed.to_bytes());
    true
}

#[cfg(test)]
#[path = "answer_tests.rs"]
mod tests;
