//! The DNS wire format (RFC 1035 §4, RFC 6891 for EDNS0): the header, domain names
//! (with pointer-loop-safe decompression), record types and codes. [`builder`] writes
//! messages with name compression; [`message`] parses and writes whole messages (the
//! forwarder, the tests and the benchmark's client use it).
//!
//! Names are kept in uncompressed wire form (`\x03foo\x03bar\x00`), case preserved;
//! the zone's keys are the same bytes lowercased, so a lookup is one hash of bytes.

pub mod builder;
pub mod message;

use std::fmt;

pub use builder::MessageBuilder;
pub use message::{Message, Question, RData, Record};

/// The longest name in wire form (RFC 1035 §3.1), root label included.
pub const MAX_NAME: usize = 255;
/// The longest label.
pub const MAX_LABEL: usize = 63;
/// The header's length.
pub const HEADER_LEN: usize = 12;
/// A UDP answer's size limit for a client without EDNS0 (RFC 1035 §4.2.1).
pub const UDP_MIN: usize = 512;

/// Record types (RFC 1035 §3.2.2 and later RFCs).
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const OPT: u16 = 41;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const ANY: u16 = 255;
}

/// Classes.
pub mod class {
    pub const IN: u16 = 1;
    pub const ANY: u16 = 255;
}

/// Response codes (RFC 1035 §4.1.1, RFC 6891 §9 for the extended BADVERS).
pub mod rcode {
    pub const NOERROR: u16 = 0;
    pub const FORMERR: u16 = 1;
    pub const SERVFAIL: u16 = 2;
    pub const NXDOMAIN: u16 = 3;
    pub const NOTIMP: u16 = 4;
    pub const REFUSED: u16 = 5;
    pub const BADVERS: u16 = 16;
}

/// Header flag bits.
pub mod flags {
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
    pub const AD: u16 = 0x0020;
    pub const CD: u16 = 0x0010;
    pub const OPCODE_MASK: u16 = 0x7800;
    pub const RCODE_MASK: u16 = 0x000F;
}

/// Why bytes are not a DNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The message ends inside a field.
    #[error("message truncated")]
    Truncated,
    /// A compression pointer that does not point strictly backwards (a loop, or a
    /// forward reference).
    #[error("bad compression pointer")]
    BadPointer,
    /// Label type 0x40 or 0x80 (extended/binary labels, obsolete).
    #[error("unsupported label type")]
    BadLabelType,
    /// A name over 255 bytes, or a label over 63.
    #[error("name too long")]
    NameTooLong,
    /// An empty label inside a presentation-format name (`a..b`).
    #[error("empty label")]
    EmptyLabel,
    /// An RDATA whose length does not fit its type.
    #[error("bad rdata")]
    BadRdata,
    /// More data than a message can hold (65,535 bytes, or 65,535 records).
    #[error("message too large")]
    TooLarge,
}

/// The 12-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

pub(crate) fn be16(b: &[u8], at: usize) -> Result<u16, WireError> {
    match b.get(at..at + 2) {
        Some(s) => Ok(u16::from_be_bytes([s[0], s[1]])),
        None => Err(WireError::Truncated),
    }
}

pub(crate) fn be32(b: &[u8], at: usize) -> Result<u32, WireError> {
    match b.get(at..at + 4) {
        Some(s) => Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]])),
        None => Err(WireError::Truncated),
    }
}

impl Header {
    /// The header at the start of `msg`.
    pub fn parse(msg: &[u8]) -> Result<Header, WireError> {
        Ok(Header {
            id: be16(msg, 0)?,
            flags: be16(msg, 2)?,
            qdcount: be16(msg, 4)?,
            ancount: be16(msg, 6)?,
            nscount: be16(msg, 8)?,
            arcount: be16(msg, 10)?,
        })
    }

    /// The wire bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        for (i, v) in [
            self.id,
            self.flags,
            self.qdcount,
            self.ancount,
            self.nscount,
            self.arcount,
        ]
        .into_iter()
        .enumerate()
        {
            out[i * 2..i * 2 + 2].copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    /// A response (QR set).
    pub fn is_response(&self) -> bool {
        self.flags & flags::QR != 0
    }

    /// The opcode (0 = QUERY).
    pub fn opcode(&self) -> u16 {
        (self.flags & flags::OPCODE_MASK) >> 11
    }

    /// The 4-bit header rcode.
    pub fn rcode(&self) -> u16 {
        self.flags & flags::RCODE_MASK
    }

    /// The truncation bit.
    pub fn truncated(&self) -> bool {
        self.flags & flags::TC != 0
    }
}

/// Reads the (possibly compressed) name at `pos` of `msg` into `out` in uncompressed
/// wire form, lowercased when `lowercase`. Returns the name's length in `out` and the
/// position just after the name in `msg`.
///
/// Every compression pointer must point strictly before the previous pointer's
/// target (and the first before itself), so a message can never make this loop; names
/// longer than 255 bytes are refused.
pub fn read_name(
    msg: &[u8],
    mut pos: usize,
    out: &mut [u8; MAX_NAME],
    lowercase: bool,
) -> Result<(usize, usize), WireError> {
    let mut len = 0usize;
    let mut end: Option<usize> = None;
    let mut limit = pos;
    loop {
        let b = *msg.get(pos).ok_or(WireError::Truncated)?;
        match b & 0xC0 {
            0x00 => {
                let l = usize::from(b);
                if l == 0 {
                    if len + 1 > MAX_NAME {
                        return Err(WireError::NameTooLong);
                    }
                    out[len] = 0;
                    len += 1;
                    return Ok((len, end.unwrap_or(pos + 1)));
                }
                let label = msg.get(pos + 1..pos + 1 + l).ok_or(WireError::Truncated)?;
                // Room for this label and at least the root label after it.
                if len + 1 + l + 1 > MAX_NAME {
                    return Err(WireError::NameTooLong);
                }
                out[len] = b;
                let dst = &mut out[len + 1..len + 1 + l];
                dst.copy_from_slice(label);
                if lowercase {
                    dst.make_ascii_lowercase();
                }
                len += 1 + l;
                pos += 1 + l;
            }
            0xC0 => {
                let lo = *msg.get(pos + 1).ok_or(WireError::Truncated)?;
                let target = (usize::from(b & 0x3F) << 8) | usize::from(lo);
                if end.is_none() {
                    end = Some(pos + 2);
                }
                if target >= limit {
                    return Err(WireError::BadPointer);
                }
                limit = target;
                pos = target;
            }
            _ => return Err(WireError::BadLabelType),
        }
    }
}

/// Skips the name at `pos`; returns the position after it (validating it as
/// [`read_name`] does).
pub fn skip_name(msg: &[u8], pos: usize) -> Result<usize, WireError> {
    let mut scratch = [0u8; MAX_NAME];
    read_name(msg, pos, &mut scratch, false).map(|(_, end)| end)
}

/// The labels of an uncompressed wire-form name, root excluded.
pub fn labels(wire: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let l = usize::from(*wire.get(pos)?);
        if l == 0 {
            return None;
        }
        let label = wire.get(pos + 1..pos + 1 + l)?;
        pos += 1 + l;
        Some(label)
    })
}

/// The offset in `name` (uncompressed wire form) at which `suffix` starts as whole
/// labels, if `name` ends with it.
pub fn suffix_offset(name: &[u8], suffix: &[u8]) -> Option<usize> {
    if suffix.len() > name.len() {
        return None;
    }
    let want = name.len() - suffix.len();
    let mut pos = 0usize;
    while pos < want {
        let l = usize::from(*name.get(pos)?);
        if l == 0 {
            return None;
        }
        pos += 1 + l;
    }
    (pos == want && name.get(pos..)? == suffix).then_some(pos)
}

/// A domain name in uncompressed wire form, case preserved.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Box<[u8]>);

impl Name {
    /// The root name.
    pub fn root() -> Name {
        Name(Box::new([0]))
    }

    /// Parses a presentation-format name (`foo.bar.`, trailing dot optional, `.` is
    /// the root). No escapes: a label is the bytes between dots.
    pub fn from_ascii(s: &str) -> Result<Name, WireError> {
        let s = s.strip_suffix('.').unwrap_or(s);
        let mut out = Vec::with_capacity(s.len() + 2);
        if !s.is_empty() {
            for label in s.split('.') {
                if label.is_empty() {
                    return Err(WireError::EmptyLabel);
                }
                if label.len() > MAX_LABEL {
                    return Err(WireError::NameTooLong);
                }
                out.push(label.len() as u8);
                out.extend_from_slice(label.as_bytes());
            }
        }
        out.push(0);
        if out.len() > MAX_NAME {
            return Err(WireError::NameTooLong);
        }
        Ok(Name(out.into_boxed_slice()))
    }

    /// From uncompressed wire bytes (validated).
    pub fn from_wire(wire: &[u8]) -> Result<Name, WireError> {
        let mut buf = [0u8; MAX_NAME];
        let (len, end) = read_name(wire, 0, &mut buf, false)?;
        // A pointer at offset 0 can only point forwards, so read_name refuses any.
        if end != wire.len() {
            return Err(WireError::BadRdata);
        }
        Ok(Name(buf[..len].into()))
    }

    /// Reads a (possibly compressed) name at `pos` of `msg`; returns it and the
    /// position after it.
    pub fn parse(msg: &[u8], pos: usize) -> Result<(Name, usize), WireError> {
        let mut buf = [0u8; MAX_NAME];
        let (len, end) = read_name(msg, pos, &mut buf, false)?;
        Ok((Name(buf[..len].into()), end))
    }

    /// `label` prepended to this name.
    pub fn child(&self, label: &str) -> Result<Name, WireError> {
        if label.is_empty() {
            return Err(WireError::EmptyLabel);
        }
        if label.len() > MAX_LABEL {
            return Err(WireError::NameTooLong);
        }
        if self.0.len() + 1 + label.len() > MAX_NAME {
            return Err(WireError::NameTooLong);
        }
        let mut out = Vec::with_capacity(self.0.len() + 1 + label.len());
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
        out.extend_from_slice(&self.0);
        Ok(Name(out.into_boxed_slice()))
    }

    /// The uncompressed wire bytes.
    pub fn wire(&self) -> &[u8] {
        &self.0
    }

    /// This name lowercased (ASCII).
    pub fn to_lowercase(&self) -> Name {
        let mut b = self.0.clone();
        b.make_ascii_lowercase();
        Name(b)
    }

    /// Case-insensitive equality.
    pub fn eq_ignore_case(&self, other: &Name) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }

    /// Whether this name is `zone` or below it (case-insensitive).
    pub fn is_within(&self, zone: &Name) -> bool {
        suffix_offset(self.to_lowercase().wire(), zone.to_lowercase().wire()).is_some()
    }

    /// The labels, root excluded.
    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        labels(&self.0)
    }

    /// How many labels (root excluded).
    pub fn label_count(&self) -> usize {
        self.labels().count()
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for label in self.labels() {
            any = true;
            for &c in label {
                if c == b'.' || c == b'\\' {
                    write!(f, "\\{}", c as char)?;
                } else if c.is_ascii_graphic() {
                    write!(f, "{}", c as char)?;
                } else {
                    write!(f, "\\{c:03}")?;
                }
            }
            f.write_str(".")?;
        }
        if !any {
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// A record type's name for logs and metrics (`A`, `AAAA`, …, or `TYPE<n>`).
pub fn type_name(t: u16) -> std::borrow::Cow<'static, str> {
    let s = match t {
        rtype::A => "A",
        rtype::NS => "NS",
        rtype::CNAME => "CNAME",
        rtype::SOA => "SOA",
        rtype::PTR => "PTR",
        rtype::TXT => "TXT",
        rtype::AAAA => "AAAA",
        rtype::SRV => "SRV",
        rtype::OPT => "OPT",
        rtype::ANY => "ANY",
        other => return format!("TYPE{other}").into(),
    };
    s.into()
}

/// An rcode's name (`NOERROR`, `NXDOMAIN`, …, or `RCODE<n>`).
pub fn rcode_name(r: u16) -> std::borrow::Cow<'static, str> {
    let s = match r {
        rcode::NOERROR => "NOERROR",
        rcode::FORMERR => "FORMERR",
        rcode::SERVFAIL => "SERVFAIL",
        rcode::NXDOMAIN => "NXDOMAIN",
        rcode::NOTIMP => "NOTIMP",
        rcode::REFUSED => "REFUSED",
        rcode::BADVERS => "BADVERS",
        other => return format!("RCODE{other}").into(),
    };
    s.into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_from_ascii_and_display() {
        let n = Name::from_ascii("Foo.Bar.").unwrap();
        assert_eq!(n.wire(), b"\x03Foo\x03Bar\x00");
        assert_eq!(n.to_string(), "Foo.Bar.");
        assert_eq!(Name::from_ascii(".").unwrap(), Name::root());
        assert_eq!(Name::root().to_string(), ".");
        assert_eq!(Name::from_ascii("a..b"), Err(WireError::EmptyLabel));
        assert_eq!(
            Name::from_ascii(&"x".repeat(64)),
            Err(WireError::NameTooLong)
        );
        let long = vec!["abcdefghi"; 26].join(".");
        assert_eq!(Name::from_ascii(&long), Err(WireError::NameTooLong));
        assert!(n.eq_ignore_case(&Name::from_ascii("foo.bar").unwrap()));
        assert!(n.is_within(&Name::from_ascii("BAR").unwrap()));
        assert!(!n.is_within(&Name::from_ascii("ar").unwrap()));
        assert!(n.is_within(&Name::root()));
        assert_eq!(n.child("x").unwrap().to_string(), "x.Foo.Bar.");
    }

    #[test]
    fn compressed_names_are_read_and_loops_refused() {
        // "foo.bar" at 12, then "x" + pointer to 12 at 21.
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(b"\x03foo\x03bar\x00");
        msg.extend_from_slice(b"\x01X\xC0\x0C");
        let (n, end) = Name::parse(&msg, 21).unwrap();
        assert_eq!(n.to_string(), "X.foo.bar.");
        assert_eq!(end, msg.len());
        let mut buf = [0u8; MAX_NAME];
        let (len, _) = read_name(&msg, 21, &mut buf, true).unwrap();
        assert_eq!(&buf[..len], b"\x01x\x03foo\x03bar\x00");
        // A pointer to itself.
        let mut looped = vec![0u8; 12];
        looped.extend_from_slice(b"\xC0\x0C");
        assert_eq!(Name::parse(&looped, 12), Err(WireError::BadPointer));
        // Two pointers pointing at each other.
        let mut pair = vec![0u8; 12];
        pair.extend_from_slice(b"\x01a\xC0\x10\x01b\xC0\x0C");
        assert_eq!(Name::parse(&pair, 16), Err(WireError::BadPointer));
        // A forward pointer.
        let mut fwd = vec![0u8; 12];
        fwd.extend_from_slice(b"\xC0\x20");
        assert_eq!(Name::parse(&fwd, 12), Err(WireError::BadPointer));
        // Truncated inside a label and inside a pointer.
        assert_eq!(Name::parse(b"\x05ab", 0), Err(WireError::Truncated));
        assert_eq!(Name::parse(b"\x01a\xC0", 0), Err(WireError::Truncated));
        assert_eq!(Name::parse(b"\x41", 0), Err(WireError::BadLabelType));
    }

    #[test]
    fn long_names_through_pointers_are_refused() {
        // 4 x 63-byte labels = 256 bytes with the root: over the limit.
        let mut msg = vec![0u8; 12];
        let label = [b'a'; 63];
        for _ in 0..4 {
            msg.push(63);
            msg.extend_from_slice(&label);
        }
        msg.push(0);
        assert_eq!(Name::parse(&msg, 12), Err(WireError::NameTooLong));
    }

    #[test]
    fn suffixes_are_whole_labels() {
        let n = Name::from_ascii("a.svc.cluster.local").unwrap();
        let z = Name::from_ascii("cluster.local").unwrap();
        assert_eq!(suffix_offset(n.wire(), z.wire()), Some(6));
        let z2 = Name::from_ascii("luster.local").unwrap();
        assert_eq!(suffix_offset(n.wire(), z2.wire()), None);
        assert_eq!(suffix_offset(z.wire(), z.wire()), Some(0));
        assert_eq!(suffix_offset(z.wire(), n.wire()), None);
    }

    #[test]
    fn header_round_trip() {
        let h = Header {
            id: 0xBEEF,
            flags: flags::QR | flags::RD | rcode::NXDOMAIN,
            qdcount: 1,
            ancount: 2,
            nscount: 3,
            arcount: 4,
        };
        assert_eq!(Header::parse(&h.to_bytes()).unwrap(), h);
        assert_eq!(h.rcode(), rcode::NXDOMAIN);
        assert!(h.is_response());
        assert_eq!(Header::parse(&[0; 11]), Err(WireError::Truncated));
    }
}
