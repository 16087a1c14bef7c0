//! A set of equally sized subnets carved out of one cluster CIDR (upstream
//! `pkg/controller/nodeipam/ipam/cidrset`): a bitmap of which node CIDRs are taken,
//! allocation of the next free one round-robin from the last allocation, marking
//! CIDRs already in use as occupied, and releasing them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::context::Cidr;

/// Upstream's `clusterSubnetMaxDiff`: at most 2^16 node CIDRs per cluster CIDR.
const CLUSTER_SUBNET_MAX_DIFF: u8 = 16;

/// Upstream's `ErrCIDRRangeNoCIDRsRemaining`.
pub const NO_CIDRS_REMAINING: &str =
    "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range";

/// The node CIDRs of one cluster CIDR.
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: Cidr,
    /// The cluster CIDR's network address as an integer (IPv4 in the low 32 bits).
    base: u128,
    bits: u8,
    node_prefix: u8,
    max: usize,
    used: Vec<u64>,
    allocated: usize,
    next_candidate: usize,
}

fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn mask(bits: u8, prefix: u8) -> u128 {
    let all: u128 = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    if prefix == 0 {
        0
    } else {
        all & !((1u128 << (bits - prefix)) - 1)
    }
}

impl CidrSet {
    /// The node CIDRs of size `/node_prefix` in `cluster` (upstream `NewCIDRSet`).
    pub fn new(cluster: Cidr, node_prefix: u8) -> Result<CidrSet, String> {
        let bits = if cluster.addr.is_ipv4() { 32 } else { 128 };
        if node_prefix < cluster.prefix || node_prefix > bits {
            return Err(format!(
                "node CIDR mask size /{node_prefix} does not fit cluster CIDR {cluster}"
            ));
        }
        if node_prefix - cluster.prefix > CLUSTER_SUBNET_MAX_DIFF {
            return Err("New CIDR set failed; the node CIDR size is too big".into());
        }
        let base = to_int(cluster.addr) & mask(bits, cluster.prefix);
        let max = 1usize << (node_prefix - cluster.prefix);
        Ok(CidrSet {
            cluster,
            base,
            bits,
            node_prefix,
            max,
            used: vec![0; max.div_ceil(64)],
            allocated: 0,
            next_candidate: 0,
        })
    }

    /// The cluster CIDR.
    pub fn cluster(&self) -> Cidr {
        self.cluster
    }

    /// The node mask size.
    pub fn node_prefix(&self) -> u8 {
        self.node_prefix
    }

    /// How many node CIDRs are taken.
    pub fn allocated(&self) -> usize {
        self.allocated
    }

    fn bit(&self, i: usize) -> bool {
        self.used[i / 64] & (1 << (i % 64)) != 0
    }

    fn set_bit(&mut self, i: usize, on: bool) {
        if on {
            self.used[i / 64] |= 1 << (i % 64);
        } else {
            self.used[i / 64] &= !(1 << (i % 64));
        }
    }

    fn cidr_at(&self, index: usize) -> Cidr {
        let shift = self.bits - self.node_prefix;
        let v = self.base | ((index as u128) << shift);
        let addr = if self.bits == 32 {
            IpAddr::V4(Ipv4Addr::from(v as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(v))
        };
        Cidr {
            addr,
            prefix: self.node_prefix,
        }
    }

    /// Takes the next free node CIDR, searching round-robin from after the last one
    /// handed out (upstream `AllocateNext`).
    pub fn allocate_next(&mut self) -> Result<Cidr, String> {
        if self.allocated == self.max {
            return Err(NO_CIDRS_REMAINING.into());
        }
        let start = self.next_candidate;
        for i in 0..self.max {
            let candidate = (start + i) % self.max;
            if !self.bit(candidate) {
                self.set_bit(candidate, true);
                self.allocated += 1;
                self.next_candidate = (candidate + 1) % self.max;
                return Ok(self.cidr_at(candidate));
            }
        }
        Err(NO_CIDRS_REMAINING.into())
    }

    /// The node-CIDR indices `cidr` covers (upstream `getBeginningAndEndIndices`).
    fn indices(&self, cidr: &Cidr) -> Result<(usize, usize), String> {
        let out_of_range = || {
            format!(
                "cidr {cidr} is out the range of cluster cidr {}",
                self.cluster
            )
        };
        if cidr.addr.is_ipv4() != self.cluster.addr.is_ipv4() {
            return Err(out_of_range());
        }
        let ip = to_int(cidr.addr);
        let in_cluster = ip & mask(self.bits, self.cluster.prefix) == self.base;
        let contains_cluster = cidr.prefix <= self.cluster.prefix
            && self.base & mask(self.bits, cidr.prefix) == ip & mask(self.bits, cidr.prefix);
        if !in_cluster && !contains_cluster {
            return Err(out_of_range());
        }
        if cidr.prefix <= self.cluster.prefix {
            return Ok((0, self.max - 1));
        }
        let shift = self.bits - self.node_prefix;
        let first = ip & mask(self.bits, cidr.prefix);
        let host = if self.bits == 128 {
            !mask(self.bits, cidr.prefix)
        } else {
            !mask(self.bits, cidr.prefix) & ((1u128 << self.bits) - 1)
        };
        let last = first | host;
        let index = |v: u128| ((v - self.base) >> shift) as usize;
        Ok((index(first), index(last).min(self.max - 1)))
    }

    /// Marks every node CIDR `cidr` covers as taken (upstream `Occupy`).
    pub fn occupy(&mut self, cidr: &Cidr) -> Result<(), String> {
        let (begin, end) = self.indices(cidr)?;
        for i in begin..=end {
            if !self.bit(i) {
                self.set_bit(i, true);
                self.allocated += 1;
            }
        }
        Ok(())
    }

    /// Frees every node CIDR `cidr` covers (upstream `Release`).
    pub fn release(&mut self, cidr: &Cidr) -> Result<(), String> {
        let (begin, end) = self.indices(cidr)?;
        for i in begin..=end {
            if self.bit(i) {
                self.set_bit(i, false);
                self.allocated -= 1;
            }
        }
        Ok(())
    }

    /// Whether `cidr` overlaps this cluster CIDR (upstream's test before filtering out
    /// the service range).
    pub fn overlaps(&self, cidr: &Cidr) -> bool {
        self.indices(cidr).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn allocates_in_order_and_wraps_after_release() {
        let mut set = CidrSet::new(c("10.244.0.0/22"), 24).unwrap();
        assert_eq!(set.allocate_next().unwrap(), c("10.244.0.0/24"));
        assert_eq!(set.allocate_next().unwrap(), c("10.244.1.0/24"));
        set.occupy(&c("10.244.2.0/24")).unwrap();
        assert_eq!(set.allocate_next().unwrap(), c("10.244.3.0/24"));
        assert_eq!(set.allocate_next().unwrap_err(), NO_CIDRS_REMAINING);
        set.release(&c("10.244.1.0/24")).unwrap();
        assert_eq!(set.allocated(), 3);
        assert_eq!(set.allocate_next().unwrap(), c("10.244.1.0/24"));
    }

    #[test]
    fn occupy_checks_the_range_and_spans_larger_cidrs() {
        let mut set = CidrSet::new(c("10.244.0.0/16"), 24).unwrap();
        assert!(set.occupy(&c("10.245.0.0/24")).is_err());
        assert!(set.occupy(&c("fd00::/64")).is_err());
        set.occupy(&c("10.244.0.0/23")).unwrap();
        assert_eq!(set.allocated(), 2);
        assert_eq!(set.allocate_next().unwrap(), c("10.244.2.0/24"));
        // A range containing the whole cluster CIDR occupies everything.
        let mut small = CidrSet::new(c("10.0.0.0/30"), 31).unwrap();
        small.occupy(&c("10.0.0.0/8")).unwrap();
        assert_eq!(small.allocated(), 2);
        assert!(small.overlaps(&c("10.0.0.0/8")));
        assert!(!small.overlaps(&c("192.168.0.0/16")));
    }

    #[test]
    fn ipv6_and_limits() {
        let mut set = CidrSet::new(c("fd00:10:244::/56"), 64).unwrap();
        assert_eq!(set.allocate_next().unwrap(), c("fd00:10:244::/64"));
        assert_eq!(set.allocate_next().unwrap(), c("fd00:10:244:1::/64"));
        assert!(CidrSet::new(c("10.0.0.0/8"), 25).is_err());
        assert!(CidrSet::new(c("10.0.0.0/16"), 8).is_err());
        let full = CidrSet::new(c("::/0"), 16).unwrap();
        assert_eq!(full.node_prefix(), 16);
    }
}
