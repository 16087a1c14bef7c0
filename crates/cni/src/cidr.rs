//! CIDR blocks as Kubernetes writes them (`spec.podCIDR`, `--cluster-cidr`): Go's
//! `net.ParseCIDR` accepting only the canonical network address, as the nodeipam
//! controller allocates them, and the containment tests flannel's host-gw needs.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 network, `addr/prefix`, with the host bits of `addr` zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a string is not a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR {input:?}: {reason}")]
pub struct CidrError {
    /// The text that was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Cidr {
    /// A network from an address and a prefix length; the host bits are cleared (as
    /// `net.IPNet.Mask` applied to the address).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return None;
        }
        Some(Cidr {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether this is an IPv4 network.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether `ip` lies in this network (always false across families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }

    /// Whether `other` lies entirely in this network.
    pub fn contains_cidr(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// `nft`'s family keyword for a match on this network (`ip` or `ip6`).
    pub fn nft_family(&self) -> &'static str {
        if self.is_ipv4() {
            "ip"
        } else {
            "ip6"
        }
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let err = |reason| CidrError {
            input: s.to_string(),
            reason,
        };
        let (addr, prefix) = s.trim().split_once('/').ok_or(err("missing /prefix"))?;
        let addr: IpAddr = addr.parse().map_err(|_| err("invalid address"))?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("invalid prefix length"));
        }
        let prefix: u8 = prefix.parse().map_err(|_| err("invalid prefix length"))?;
        let cidr = Cidr::new(addr, prefix).ok_or(err("prefix length out of range"))?;
        if cidr.addr != addr {
            return Err(err("host bits set (not a network address)"));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parses a comma-separated list of CIDRs (`--cluster-cidr=10.244.0.0/16,fd00::/56`), at
/// most one per family, as kube-controller-manager accepts it.
pub fn parse_cidr_list(s: &str) -> Result<Vec<Cidr>, CidrError> {
    let mut out: Vec<Cidr> = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let cidr: Cidr = part.parse()?;
        if out.iter().any(|c| c.is_ipv4() == cidr.is_ipv4()) {
            return Err(CidrError {
                input: s.to_string(),
                reason: "more than one CIDR of the same IP family",
            });
        }
        out.push(cidr);
    }
    if out.is_empty() {
        return Err(CidrError {
            input: s.to_string(),
            reason: "empty",
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let c: Cidr = "10.244.1.0/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.244.1.0/24");
        assert!(c.is_ipv4());
        let c6: Cidr = "fd00:10:244:1::/64".parse().unwrap();
        assert_eq!(c6.to_string(), "fd00:10:244:1::/64");
        assert_eq!(c6.nft_family(), "ip6");
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "10.244.1.1/24",
            "10.244.1.0",
            "10.244.1.0/33",
            "10.244.1.0/+1",
            "x/24",
            "fd00::1/64",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn containment() {
        let cluster: Cidr = "198.18.0.0/15".parse().unwrap();
        let pod: Cidr = "198.19.2.0/24".parse().unwrap();
        assert!(cluster.contains_cidr(&pod));
        assert!(!pod.contains_cidr(&cluster));
        assert!(cluster.contains("198.19.255.255".parse().unwrap()));
        assert!(!cluster.contains("198.20.0.0".parse().unwrap()));
        assert!(!cluster.contains("::1".parse().unwrap()));
    }

    #[test]
    fn cidr_lists() {
        let l = parse_cidr_list("10.244.0.0/16,fd00:10:244::/56").unwrap();
        assert_eq!(l.len(), 2);
        assert!(parse_cidr_list("10.244.0.0/16,10.245.0.0/16").is_err());
        assert!(parse_cidr_list(" , ").is_err());
    }
}
