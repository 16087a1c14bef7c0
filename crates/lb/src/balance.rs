//! The hash functions of nginx's `ngx_stream_upstream_hash_module`, bit for bit, so a
//! client address maps to the same server under ferrokube lb as under kube-nginx:
//!
//! - `hash KEY consistent`: the ketama ring — 160 points per unit of weight for each
//!   server, point *j* = CRC32(host ‖ NUL ‖ port ‖ point *j−1*), sorted; a key goes to
//!   the first point at or after CRC32(key), wrapping, and walks on from there while
//!   the server there cannot be used;
//! - `hash KEY`: Cache::Memcached's `((crc32([REHASH] KEY) >> 16) & 0x7fff)`
//!   accumulated, modulo the total weight, rehashed up to 20 times.

/// Points per unit of weight (nginx's and libketama's 160).
const POINTS_PER_WEIGHT: u32 = 160;

/// CRC32 (IEEE), nginx's `ngx_crc32_long`.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// One point of the ring: its hash and the index of the server name it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Point {
    pub hash: u32,
    pub server: usize,
}

/// A server's points, as `ngx_stream_upstream_update_chash` computes them from the
/// server as written (`host:port`).
pub(crate) fn server_points(name: &str, weight: u32) -> impl Iterator<Item = u32> {
    let (host, port) = match name.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None => (name, ""),
    };
    let mut base = crc32fast::Hasher::new();
    base.update(host.as_bytes());
    base.update(&[0]);
    base.update(port.as_bytes());
    let mut prev: u32 = 0;
    (0..weight.saturating_mul(POINTS_PER_WEIGHT)).map(move |_| {
        let mut h = base.clone();
        h.update(&prev.to_le_bytes());
        prev = h.finalize();
        prev
    })
}

/// The ring of `(name, weight)` servers: points sorted by hash, one point per hash
/// (the first server to claim it keeps it).
pub(crate) fn build_ring(servers: &[(&str, u32)]) -> Vec<Point> {
    let mut points: Vec<Point> = servers
        .iter()
        .enumerate()
        .flat_map(|(i, (name, weight))| {
            server_points(name, *weight).map(move |hash| Point { hash, server: i })
        })
        .collect();
    points.sort_by_key(|p| p.hash);
    points.dedup_by_key(|p| p.hash);
    points
}

/// Index of the first point whose hash is ≥ `hash` (`points.len()` past the end:
/// callers take it modulo the length, which wraps to the first point).
pub(crate) fn find_point(points: &[Point], hash: u32) -> usize {
    points.partition_point(|p| p.hash < hash)
}

/// The modulo hash's state for one connection.
#[derive(Debug, Default)]
pub(crate) struct ModuloHash {
    hash: u64,
    rehash: u32,
}

impl ModuloHash {
    /// The next weight offset in `0..total_weight` for `key`.
    pub(crate) fn next(&mut self, key: &[u8], total_weight: u64) -> u64 {
        let mut h = crc32fast::Hasher::new();
        if self.rehash > 0 {
            h.update(self.rehash.to_string().as_bytes());
        }
        h.update(key);
        let v = (h.finalize() >> 16) & 0x7fff;
        self.hash = self.hash.wrapping_add(u64::from(v));
        self.rehash += 1;
        self.hash % total_weight.max(1)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn crc32_is_the_ieee_one() {
        // The check value of CRC-32/ISO-HDLC (what ngx_crc32 computes).
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn points_chain_from_the_base_hash() {
        let pts: Vec<u32> = server_points("10.0.0.1:6443", 1).collect();
        assert_eq!(pts.len(), 160);
        let mut base = Vec::new();
        base.extend_from_slice(b"10.0.0.1");
        base.push(0);
        base.extend_from_slice(b"6443");
        let mut first = base.clone();
        first.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(pts[0], crc32(&first));
        let mut second = base;
        second.extend_from_slice(&pts[0].to_le_bytes());
        assert_eq!(pts[1], crc32(&second));
        assert_eq!(server_points("a:1", 3).count(), 480);
    }

    #[test]
    fn ring_is_sorted_and_lookup_wraps() {
        let ring = build_ring(&[("10.0.0.1:6443", 1), ("10.0.0.2:6443", 1)]);
        assert!(ring.len() > 300 && ring.len() <= 320);
        assert!(ring.windows(2).all(|w| w[0].hash < w[1].hash));
        assert_eq!(find_point(&ring, 0), 0);
        assert!(find_point(&ring, u32::MAX) <= ring.len());
        let last = ring[ring.len() - 1].hash;
        assert_eq!(find_point(&ring, last), ring.len() - 1);
        if last < u32::MAX {
            assert_eq!(find_point(&ring, last + 1), ring.len());
        }
        let mid = ring[10].hash;
        assert_eq!(find_point(&ring, mid), 10);
        assert_eq!(find_point(&ring, mid - 1), 10);
    }

    /// Which server of `names` the ring gives `key`.
    fn owner(names: &[&str], key: &str) -> usize {
        let servers: Vec<(&str, u32)> = names.iter().map(|n| (*n, 1)).collect();
        let ring = build_ring(&servers);
        ring[find_point(&ring, crc32(key.as_bytes())) % ring.len()].server
    }

    #[test]
    fn consistent_hash_is_stable_and_balanced() {
        let three = ["10.0.0.1:6443", "10.0.0.2:6443", "10.0.0.3:6443"];
        let clients: Vec<String> = (0..3000)
            .map(|i| format!("192.168.{}.{}", i / 250, i % 250))
            .collect();
        let mut counts = [0usize; 3];
        for c in &clients {
            let o = owner(&three, c);
            assert_eq!(o, owner(&three, c), "same key, same server");
            counts[o] += 1;
        }
        // 160 points each: every server gets a fair share (within ±40 % of 1/3).
        for n in counts {
            assert!((600..1400).contains(&n), "{counts:?}");
        }
        // Removing a server moves only its own clients.
        let two = ["10.0.0.1:6443", "10.0.0.2:6443"];
        let mut moved = 0;
        for c in &clients {
            let before = three[owner(&three, c)];
            let after = two[owner(&two, c)];
            if before != "10.0.0.3:6443" {
                assert_eq!(before, after, "{c} moved though its server stayed");
            } else {
                moved += 1;
            }
        }
        assert_eq!(moved, counts[2]);
    }

    #[test]
    fn modulo_hash_is_deterministic_and_rehashes() {
        let mut a = ModuloHash::default();
        let mut b = ModuloHash::default();
        let first = a.next(b"127.0.0.1", 3);
        assert_eq!(first, b.next(b"127.0.0.1", 3));
        assert!(first < 3);
        let expected0 = u64::from((crc32(b"127.0.0.1") >> 16) & 0x7fff);
        assert_eq!(first, expected0 % 3);
        let second = a.next(b"127.0.0.1", 3);
        let expected1 = expected0 + u64::from((crc32(b"1127.0.0.1") >> 16) & 0x7fff);
        assert_eq!(second, expected1 % 3);
    }
}
