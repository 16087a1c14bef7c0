//! ferrokube's pod network: the role flannel (host-gw backend) or cilium plays in the
//! seeds, done the host-gw way.
//!
//! Every node's pods live in the node's `spec.podCIDRs` (allocated by the
//! controller-manager's nodeipam controller). This crate makes that work:
//!
//! - [`conflist`]: the CNI network configuration containerd runs for every pod sandbox
//!   (the `bridge` plugin on `cni0` with `host-local` IPAM over the podCIDRs, then
//!   `portmap`), as flannel's CNI plugin would delegate to bridge.
//! - [`routes`]: flannel's host-gw backend: a kernel route `podCIDR via InternalIP` for
//!   every other node on a directly connected subnet, tagged with our own route protocol
//!   so stale routes are found and removed after a restart.
//! - [`masq`]: flannel's `ipMasq` and `FLANNEL-FWD` rules as one nftables table per
//!   family, and `net.ipv4.ip_forward`.
//! - [`agent`]: the per-node daemon that watches Nodes and keeps all of it in sync.
//!
//! The kernel is driven through iproute2 (`ip`), `nft` and `iptables`, never through
//! netlink sockets of our own: every change is a command an operator can read and rerun.

pub mod agent;
pub mod cidr;
pub mod conflist;
pub mod exec;
pub mod masq;
pub mod routes;

use std::path::PathBuf;

pub use agent::{run, sync, NetworkOptions, SyncOutcome, SyncReport};
pub use cidr::{parse_cidr_list, Cidr, CidrError};
pub use routes::{NodeNetwork, Route};

/// What went wrong setting up or keeping up the pod network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or option is out of range (names the option).
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: String,
    },
    /// This node has podCIDRs but none of them is IPv4.
    #[error("node {node}: no IPv4 podCIDR among {pod_cidrs:?} (an IPv4 pod network is required)")]
    NoIpv4PodCidr {
        node: String,
        pod_cidrs: Vec<String>,
    },
    /// This node has no podCIDR yet (the nodeipam controller has not allocated one).
    #[error(
        "node {node}: no spec.podCIDRs yet (is the controller-manager allocating node CIDRs?)"
    )]
    NoPodCidr { node: String },
    /// A Node list given as a file could not be decoded.
    #[error("decoding the Node list: {0}")]
    DecodeNodes(#[source] serde_json::Error),
    /// Encoding the CNI network configuration failed.
    #[error("encoding the CNI network configuration: {0}")]
    EncodeConflist(#[source] serde_json::Error),
    /// Writing a file we own (conflist, data directory, sysctl) failed.
    #[error("writing {path}: {source}")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading a file (sysctl, existing conflist) failed.
    #[error("reading {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A command (`ip`, `nft`, `iptables`) could not be started.
    #[error("running {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// A command did not finish in time (it is killed).
    #[error("{command}: no answer within {seconds}s")]
    CommandTimeout { command: String, seconds: u64 },
    /// A command exited non-zero.
    #[error("{command}: {status}: {stderr}")]
    CommandFailed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    /// A command's JSON output (`ip -j`) could not be decoded.
    #[error("decoding the output of {command}: {source}")]
    DecodeOutput {
        command: String,
        #[source]
        source: serde_json::Error,
    },
}
