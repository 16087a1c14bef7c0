//! What the kubelet reads off its host for the Node object: capacity (cpu, memory,
//! ephemeral storage, hugepages), the node's addresses and `nodeInfo` — upstream's
//! cadvisor `MachineInfo` and `nodestatus.MachineInfo`/`NodeAddress` setters, read
//! from /proc and /sys directly.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::Path;

/// The host facts the node status is built from.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    pub cpus: i64,
    pub memory_bytes: i64,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Now, in nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// `MemTotal` of /proc/meminfo, in bytes.
pub fn mem_total() -> i64 {
    meminfo_field("MemTotal:")
}

/// `MemAvailable` of /proc/meminfo, in bytes (the `memory.available` signal's base).
pub fn mem_available() -> i64 {
    meminfo_field("MemAvailable:")
}

/// A field of /proc/meminfo (`"MemTotal:"`), in bytes; 0 when absent.
pub(crate) fn meminfo_field(name: &str) -> i64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<i64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Filesystem size and free space (bytes) and free inodes ratio of the file system
/// holding `path`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsStats {
    pub capacity: i64,
    pub available: i64,
    pub inodes: i64,
    pub inodes_free: i64,
}

pub fn fs_stats(path: &Path) -> FsStats {
    match rustix::fs::statvfs(path) {
        Ok(s) => {
            let frsize = i64::try_from(s.f_frsize).unwrap_or(4096);
            let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            FsStats {
                capacity: n(s.f_blocks).saturating_mul(frsize),
                available: n(s.f_bavail).saturating_mul(frsize),
                inodes: n(s.f_files),
                inodes_free: n(s.f_ffree),
            }
        }
        Err(_) => FsStats::default(),
    }
}

/// The `PRETTY_NAME` of /etc/os-release.
fn os_image() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

impl HostInfo {
    pub fn read() -> HostInfo {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as i64);
        let uname = rustix::system::uname();
        HostInfo {
            cpus,
            memory_bytes: mem_total(),
            machine_id: read_trim("/etc/machine-id"),
            system_uuid: read_trim("/sys/class/dmi/id/product_uuid"),
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            kernel_version: uname.release().to_string_lossy().into_owned(),
            os_image: os_image(),
        }
    }
}

/// The node's IP when `--node-ip` is not given, as upstream: the hostname's address if
/// it resolves to a non-loopback one, else the source address of the default route
/// (found by `connect` on a UDP socket, which sends nothing), else 127.0.0.1.
pub fn default_node_ip(hostname: &str) -> IpAddr {
    if let Ok(addrs) = (hostname, 0).to_socket_addrs() {
        for a in addrs {
            if a.is_ipv4() && !a.ip().is_loopback() {
                return a.ip();
            }
        }
    }
    let routed = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| {
        // TEST-NET-3: only used to pick the default route's source address.
        s.connect("203.0.113.1:9")?;
        s.local_addr()
    });
    match routed {
        Ok(a) if !a.ip().is_unspecified() => a.ip(),
        _ => IpAddr::from([127, 0, 0, 1]),
    }
}

/// The host's name as the kubelet registers it (lower-cased, as upstream).
pub fn hostname() -> String {
    let h = read_trim("/proc/sys/kernel/hostname").to_ascii_lowercase();
    if h.is_empty() {
        "localhost".into()
    } else {
        h
    }
}

/// Whether swap is on (`failSwapOn`): any line after the header of /proc/swaps.
pub fn swap_on() -> bool {
    std::fs::read_to_string("/proc/swaps")
        .map(|s| s.lines().skip(1).any(|l| !l.trim().is_empty()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_host() {
        let h = HostInfo::read();
        assert!(h.cpus >= 1);
        assert!(h.memory_bytes > 0);
        assert!(!h.kernel_version.is_empty());
        assert!(mem_available() > 0);
        assert!(fs_stats(Path::new("/")).capacity > 0);
        let ip = default_node_ip("localhost");
        assert!(ip.is_ipv4());
    }
}
