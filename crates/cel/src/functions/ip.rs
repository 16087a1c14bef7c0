//! Kubernetes IP and CIDR libraries.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{err, EvalError};
use crate::value::Value;

/// An IP prefix such as `10.0.0.0/8` (the address is kept as written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The address part as written.
    pub addr: IpAddr,
    /// The prefix length in bits.
    pub prefix: u8,
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn is_4in6(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            s.get(..5) == Some(&[0, 0, 0, 0, 0]) && s.get(5) == Some(&0xffff)
        }
        IpAddr::V4(_) => false,
    }
}

/// Parses an IP address as Kubernetes' `ip()` does (no zones, no IPv4-mapped IPv6).
pub fn parse_ip(s: &str) -> Result<IpAddr, EvalError> {
    if s.contains('%') {
        return err(format!("IP address with zone value is not allowed: {s}"));
    }
    let ip: IpAddr = s.parse().map_err(|_| {
        EvalError::new(format!(
            "IP Address \"{s}\" parse error during conversion from string"
        ))
    })?;
    if is_4in6(&ip) {
        return err(format!("IPv4-mapped IPv6 address \"{s}\" is not allowed"));
    }
    Ok(ip)
}

/// Parses a CIDR as Kubernetes' `cidr()` does.
pub fn parse_cidr(s: &str) -> Result<Cidr, EvalError> {
    let bad = || {
        EvalError::new(format!(
            "network address parse error during conversion from string: invalid CIDR \"{s}\""
        ))
    };
    let (addr, bits) = s.split_once('/').ok_or_else(bad)?;
    let addr = parse_ip(addr).map_err(|_| bad())?;
    if bits.is_empty()
        || !bits.bytes().all(|b| b.is_ascii_digit())
        || (bits.len() > 1 && bits.starts_with('0'))
    {
        return Err(bad());
    }
    let prefix: u8 = bits.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(bad());
    }
    Ok(Cidr { addr, prefix })
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let m = u32::MAX
                .checked_shl(32u32.saturating_sub(u32::from(prefix)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & m))
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX
                .checked_shl(128u32.saturating_sub(u32::from(prefix)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & m))
        }
    }
}

impl Cidr {
    /// Whether the prefix contains `ip` (same family only).
    pub fn contains_ip(&self, ip: &IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4()
            && mask(*ip, self.prefix) == mask(self.addr, self.prefix)
    }

    /// The prefix with host bits cleared.
    pub fn masked(&self) -> Cidr {
        Cidr {
            addr: mask(self.addr, self.prefix),
            prefix: self.prefix,
        }
    }
}

fn is_multicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_multicast(),
        IpAddr::V6(v6) => v6.segments().first().is_some_and(|s| s >> 8 == 0xff),
    }
}

fn is_link_local_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments().first().is_some_and(|s| s & 0xffc0 == 0xfe80),
    }
}

fn is_link_local_multicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            o.first() == Some(&224) && o.get(1) == Some(&0) && o.get(2) == Some(&0)
        }
        IpAddr::V6(v6) => v6.segments().first().is_some_and(|s| s & 0xff0f == 0xff02),
    }
}

fn is_global_unicast(ip: &IpAddr) -> bool {
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    !(ip.is_unspecified()
        || ip.is_loopback()
        || is_multicast(ip)
        || is_link_local_unicast(ip)
        || broadcast)
}

/// Global IP/CIDR functions (and `string()` of them, handled by the standard library).
pub(crate) fn global(name: &str, args: &[Value]) -> Option<Result<Value, EvalError>> {
    let r = match (name, args) {
        ("ip", [Value::String(s)]) => parse_ip(s).map(Value::Ip),
        ("ip", [Value::Cidr(c)]) => Ok(Value::Ip(c.addr)),
        ("isIP", [Value::String(s)]) => Ok(Value::Bool(parse_ip(s).is_ok())),
        ("ip.isCanonical", [Value::String(s)]) => {
            parse_ip(s).map(|ip| Value::Bool(ip.to_string() == s.as_ref()))
        }
        ("cidr", [Value::String(s)]) => parse_cidr(s).map(Value::Cidr),
        ("isCIDR", [Value::String(s)]) => Ok(Value::Bool(parse_cidr(s).is_ok())),
        _ => return None,
    };
    Some(r)
}

/// IP and CIDR methods.
pub(crate) fn member(
    name: &str,
    target: &Value,
    args: &[Value],
) -> Option<Result<Value, EvalError>> {
    match target {
        Value::Ip(ip) if args.is_empty() => {
            let v = match name {
                "family" => Value::Int(if ip.is_ipv4() { 4 } else { 6 }),
                "isUnspecified" => Value::Bool(ip.is_unspecified()),
                "isLoopback" => Value::Bool(ip.is_loopback()),
                "isLinkLocalMulticast" => Value::Bool(is_link_local_multicast(ip)),
                "isLinkLocalUnicast" => Value::Bool(is_link_local_unicast(ip)),
                "isGlobalUnicast" => Value::Bool(is_global_unicast(ip)),
                _ => return None,
            };
            Some(Ok(v))
        }
        Value::Cidr(c) => {
            let r = match (name, args) {
                ("ip", []) => Ok(Value::Ip(c.addr)),
                ("masked", []) => Ok(Value::Cidr(c.masked())),
                ("prefixLength", []) => Ok(Value::Int(i64::from(c.prefix))),
                ("containsIP", [Value::Ip(ip)]) => Ok(Value::Bool(c.contains_ip(ip))),
                ("containsIP", [Value::String(s)]) => {
                    parse_ip(s).map(|ip| Value::Bool(c.contains_ip(&ip)))
                }
                ("containsCIDR", [other]) => {
                    let other = match other {
                        Value::Cidr(o) => *o,
                        Value::String(s) => match parse_cidr(s) {
                            Ok(o) => o,
                            Err(e) => return Some(Err(e)),
                        },
                        _ => return None,
                    };
                    Ok(Value::Bool(
                        other.prefix >= c.prefix && c.contains_ip(&other.addr),
                    ))
                }
                _ => return None,
            };
            Some(r)
        }
        _ => None,
    }
}
