//! Writing a message into a caller's buffer (reused across queries: no allocation once
//! it has grown), with name compression (RFC 1035 §4.1.4): every name written is
//! remembered by the offsets of its suffixes, and a later name ending in one of them
//! is written as its leading labels plus a pointer. Matching is case-insensitive, so
//! an answer's owner name points at the question and echoes the client's spelling.
//!
//! SRV targets are never compressed (RFC 2782); CNAME, PTR, NS and SOA names are.
//! [`MessageBuilder::checkpoint`] and [`MessageBuilder::rollback`] let the caller drop
//! what did not fit (additional records, or everything after the question on
//! truncation).

use super::{rtype, RData, WireError, HEADER_LEN};

/// How many name offsets are remembered for compression (further names are written
/// in full).
const TABLE: usize = 64;
/// Offsets above this cannot be pointed at (14-bit pointers).
const MAX_POINTER: usize = 0x3FFF;
/// A message's size limit (TCP framing, and IP's).
const MAX_MESSAGE: usize = 65_535;

/// A message section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Question = 0,
    Answer = 1,
    Authority = 2,
    Additional = 3,
}

/// A point to go back to.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint {
    len: usize,
    names: usize,
    counts: [u16; 4],
}

/// Writes one message into a buffer.
#[derive(Debug)]
pub struct MessageBuilder<'a> {
    buf: &'a mut Vec<u8>,
    table: [u16; TABLE],
    names: usize,
    counts: [u16; 4],
}

impl<'a> MessageBuilder<'a> {
    /// Clears `buf` and starts a message with this ID and flags.
    pub fn new(buf: &'a mut Vec<u8>, id: u16, flags: u16) -> MessageBuilder<'a> {
        buf.clear();
        buf.extend_from_slice(&id.to_be_bytes());
        buf.extend_from_slice(&flags.to_be_bytes());
        buf.extend_from_slice(&[0u8; 8]);
        MessageBuilder {
            buf,
            table: [0; TABLE],
            names: 0,
            counts: [0; 4],
        }
    }

    /// The header flags.
    pub fn flags(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }

    /// Replaces the header flags.
    pub fn set_flags(&mut self, flags: u16) {
        self.buf[2..4].copy_from_slice(&flags.to_be_bytes());
    }

    /// The length so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether only the header is written.
    pub fn is_empty(&self) -> bool {
        self.buf.len() == HEADER_LEN
    }

    /// The number of records in `section` so far.
    pub fn count(&self, section: Section) -> u16 {
        self.counts[section as usize]
    }

    /// Where the message is now.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            len: self.buf.len(),
            names: self.names,
            counts: self.counts,
        }
    }

    /// Forgets everything written after `cp`.
    pub fn rollback(&mut self, cp: Checkpoint) {
        self.buf.truncate(cp.len);
        self.names = cp.names;
        self.counts = cp.counts;
    }

    /// Writes the section counts into the header; returns the message length.
    pub fn finish(self) -> usize {
        for (i, c) in self.counts.iter().enumerate() {
            let at = 4 + i * 2;
            self.buf[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        self.buf.len()
    }

    fn bump(&mut self, section: Section) -> Result<(), WireError> {
        let c = &mut self.counts[section as usize];
        *c = c.checked_add(1).ok_or(WireError::TooLarge)?;
        Ok(())
    }

    /// Whether the name at `off` in the buffer (following pointers) equals `suffix`
    /// (uncompressed wire form), ignoring ASCII case.
    fn matches_at(&self, mut off: usize, suffix: &[u8]) -> bool {
        let mut i = 0usize;
        let mut hops = 0u8;
        loop {
            let Some(&b) = self.buf.get(off) else {
                return false;
            };
            if b & 0xC0 == 0xC0 {
                let Some(&lo) = self.buf.get(off + 1) else {
                    return false;
                };
                off = (usize::from(b & 0x3F) << 8) | usize::from(lo);
                hops += 1;
                if hops > 64 {
                    return false;
                }
                continue;
            }
            if suffix.get(i) != Some(&b) {
                return false;
            }
            if b == 0 {
                return true;
            }
            let l = usize::from(b);
            match (
                self.buf.get(off + 1..off + 1 + l),
                suffix.get(i + 1..i + 1 + l),
            ) {
                (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => {}
                _ => return false,
            }
            off += 1 + l;
            i += 1 + l;
        }
    }

    fn find(&self, suffix: &[u8]) -> Option<usize> {
        self.table[..self.names]
            .iter()
            .map(|&o| usize::from(o))
            .find(|&o| self.matches_at(o, suffix))
    }

    /// Writes `name` (uncompressed wire form), compressed against earlier names when
    /// `compress`.
    pub fn name(&mut self, name: &[u8], compress: bool) -> Result<(), WireError> {
        let mut i = 0usize;
        loop {
            let l = usize::from(*name.get(i).ok_or(WireError::Truncated)?);
            if l == 0 {
                self.buf.push(0);
                return Ok(());
            }
            if l > super::MAX_LABEL {
                return Err(WireError::BadLabelType);
            }
            if compress {
                if let Some(off) = self.find(&name[i..]) {
                    self.buf
                        .extend_from_slice(&(0xC000u16 | off as u16).to_be_bytes());
                    return Ok(());
                }
            }
            let here = self.buf.len();
            if here <= MAX_POINTER && self.names < TABLE {
                self.table[self.names] = here as u16;
                self.names += 1;
            }
            let label = name.get(i..i + 1 + l).ok_or(WireError::Truncated)?;
            self.buf.extend_from_slice(label);
            i += 1 + l;
        }
    }

    /// Writes a question.
    pub fn question(&mut self, name: &[u8], qtype: u16, qclass: u16) -> Result<(), WireError> {
        self.name(name, true)?;
        self.buf.extend_from_slice(&qtype.to_be_bytes());
        self.buf.extend_from_slice(&qclass.to_be_bytes());
        self.bump(Section::Question)?;
        self.check_size()
    }

    /// Writes a resource record into `section`.
    pub fn record(
        &mut self,
        section: Section,
        owner: &[u8],
        class: u16,
        ttl: u32,
        data: &RData,
    ) -> Result<(), WireError> {
        self.name(owner, true)?;
        self.buf.extend_from_slice(&data.rtype().to_be_bytes());
        self.buf.extend_from_slice(&class.to_be_bytes());
        self.buf.extend_from_slice(&ttl.to_be_bytes());
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.rdata(data)?;
        let rdlen = self.buf.len() - len_at - 2;
        let rdlen = u16::try_from(rdlen).map_err(|_| WireError::TooLarge)?;
        self.buf[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        self.bump(section)?;
        self.check_size()
    }

    /// Writes the EDNS0 OPT pseudo-record (RFC 6891 §6.1.2) into the additional
    /// section: our UDP payload size, the upper 8 bits of an extended rcode, version
    /// 0, and the DO bit as asked.
    pub fn opt(&mut self, udp_size: u16, ext_rcode: u8, dnssec_ok: bool) -> Result<(), WireError> {
        self.buf.push(0);
        self.buf.extend_from_slice(&rtype::OPT.to_be_bytes());
        self.buf.extend_from_slice(&udp_size.to_be_bytes());
        let ttl = (u32::from(ext_rcode) << 24) | if dnssec_ok { 0x8000 } else { 0 };
        self.buf.extend_from_slice(&ttl.to_be_bytes());
        self.buf.extend_from_slice(&[0, 0]);
        self.bump(Section::Additional)?;
        self.check_size()
    }

    fn check_size(&self) -> Result<(), WireError> {
        if self.buf.len() > MAX_MESSAGE {
            return Err(WireError::TooLarge);
        }
        Ok(())
    }

    fn rdata(&mut self, data: &RData) -> Result<(), WireError> {
        match data {
            RData::A(ip) => self.buf.extend_from_slice(&ip.octets()),
            RData::Aaaa(ip) => self.buf.extend_from_slice(&ip.octets()),
            RData::Cname(n) | RData::Ptr(n) | RData::Ns(n) => self.name(n.wire(), true)?,
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                self.buf.extend_from_slice(&priority.to_be_bytes());
                self.buf.extend_from_slice(&weight.to_be_bytes());
                self.buf.extend_from_slice(&port.to_be_bytes());
                self.name(target.wire(), false)?;
            }
            RData::Txt(strings) => {
                for s in strings {
                    let len = u8::try_from(s.len()).map_err(|_| WireError::BadRdata)?;
                    self.buf.push(len);
                    self.buf.extend_from_slice(s);
                }
            }
            RData::Soa {
                mname,
                rname,
                serial,
                refresh,
                retry,
                expire,
                minimum,
            } => {
                self.name(mname.wire(), true)?;
                self.name(rname.wire(), true)?;
                for v in [serial, refresh, retry, expire, minimum] {
                    self.buf.extend_from_slice(&v.to_be_bytes());
                }
            }
            RData::Other { data, .. } => self.buf.extend_from_slice(data),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::wire::{class, Message, Name};

    #[test]
    fn owner_names_point_at_the_question_case_insensitively() {
        let mut buf = Vec::new();
        let mut b = MessageBuilder::new(&mut buf, 7, 0x8400);
        let q = Name::from_ascii("Web.Default.svc.cluster.local").unwrap();
        b.question(q.wire(), rtype::A, class::IN).unwrap();
        let owner = Name::from_ascii("web.default.svc.cluster.local").unwrap();
        let a = RData::A([10, 0, 0, 1].into());
        b.record(Section::Answer, owner.wire(), class::IN, 30, &a)
            .unwrap();
        let len = b.finish();
        // Header 12 + question (31 + 4) + answer (pointer 2 + 10 + 4).
        assert_eq!(len, 12 + 31 + 4 + 2 + 10 + 4);
        assert_eq!(&buf[47..49], &[0xC0, 0x0C]);
        let m = Message::parse(&buf).unwrap();
        assert_eq!(
            m.answers[0].name.to_string(),
            "Web.Default.svc.cluster.local."
        );
    }

    #[test]
    fn suffixes_compress_and_srv_targets_do_not() {
        let mut buf = Vec::new();
        let mut b = MessageBuilder::new(&mut buf, 1, 0);
        let q = Name::from_ascii("_http._tcp.web.ns.svc.cluster.local").unwrap();
        b.question(q.wire(), rtype::SRV, class::IN).unwrap();
        let target = Name::from_ascii("web.ns.svc.cluster.local").unwrap();
        let srv = RData::Srv {
            priority: 0,
            weight: 100,
            port: 80,
            target: target.clone(),
        };
        b.record(Section::Answer, q.wire(), class::IN, 30, &srv)
            .unwrap();
        let before = b.len();
        let cname = RData::Cname(target.clone());
        b.record(Section::Answer, q.wire(), class::IN, 30, &cname)
            .unwrap();
        // Owner pointer (2) + fixed (10) + CNAME target as a pointer (2).
        assert_eq!(b.len() - before, 14);
        b.finish();
        let m = Message::parse(&buf).unwrap();
        assert_eq!(m.answers[0].data, srv);
        assert_eq!(m.answers[1].data, cname);
        // The SRV target appears in full in the message.
        let full = target.wire();
        assert!(buf.windows(full.len()).any(|w| w == full));
    }

    #[test]
    fn rollback_forgets_records_and_names() {
        let mut buf = Vec::new();
        let mut b = MessageBuilder::new(&mut buf, 1, 0);
        let q = Name::from_ascii("a.example").unwrap();
        b.question(q.wire(), rtype::A, class::IN).unwrap();
        let cp = b.checkpoint();
        let other = Name::from_ascii("b.other").unwrap();
        b.record(
            Section::Answer,
            other.wire(),
            class::IN,
            1,
            &RData::A([1, 2, 3, 4].into()),
        )
        .unwrap();
        b.rollback(cp);
        assert_eq!(b.count(Section::Answer), 0);
        // "b.other" is forgotten: writing "c.other" must not point into dropped bytes.
        let c = Name::from_ascii("c.other").unwrap();
        b.record(
            Section::Answer,
            c.wire(),
            class::IN,
            1,
            &RData::A([1, 2, 3, 4].into()),
        )
        .unwrap();
        b.finish();
        let m = Message::parse(&buf).unwrap();
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].name.to_string(), "c.other.");
    }
}
