//! The proxiers behind one interface: what a sync reports and how it fails.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Mode;
use crate::model::{ServiceKey, ServicePort};

/// What one sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// The whole ruleset was rewritten.
    pub full: bool,
    /// Services looked at.
    pub services: usize,
    /// Kernel objects added, changed or removed.
    pub changes: usize,
    /// Kernel objects we own after the sync (rules, elements, virtual servers).
    pub objects: usize,
}

/// Why a sync failed (the next one starts over from scratch).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Command(#[from] ferrokube_cni::Error),
    #[error("{0}")]
    Kernel(String),
}

/// The proxier of the configured mode.
#[derive(Debug)]
pub enum Backend {
    Nftables(crate::nftables::Nftables),
    Iptables(crate::iptables::Iptables),
}

impl Backend {
    pub fn mode(&self) -> Mode {
        match self {
            Backend::Nftables(_) => Mode::Nftables,
            Backend::Iptables(_) => Mode::Iptables,
        }
    }

    /// Brings the kernel to `desired` for the Services in `dirty`.
    pub async fn sync(
        &mut self,
        desired: &BTreeMap<ServiceKey, Vec<ServicePort>>,
        dirty: &BTreeSet<ServiceKey>,
    ) -> Result<SyncStats, SyncError> {
        match self {
            Backend::Nftables(b) => b.sync(desired, dirty).await,
            Backend::Iptables(b) => b.sync(desired, dirty).await,
        }
    }

    /// Whether our rules are still in the kernel (someone may have flushed them).
    pub async fn intact(&self) -> bool {
        let (prog, args): (&str, &[&str]) = match self {
            Backend::Nftables(_) => ("nft", &["list", "tables"]),
            Backend::Iptables(_) => (
                "iptables",
                &["-w", "5", "-t", "nat", "-S", "KUBE-MARK-MASQ"],
            ),
        };
        match ferrokube_cni::exec::run(prog, args, None).await {
            Ok(out) => match self {
                Backend::Nftables(_) => out
                    .lines()
                    .any(|l| l.trim() == format!("table ip {}", crate::nftables::TABLE)),
                Backend::Iptables(_) => true,
            },
            Err(_) => false,
        }
    }

    /// The next sync rewrites everything.
    pub fn force_full(&mut self) {
        match self {
            Backend::Nftables(b) => b.force_full(),
            Backend::Iptables(b) => b.force_full(),
        }
    }
}

/// Removes what every mode may have left (`kube-proxy --cleanup`): each mode's own
/// objects; a mode whose tools or kernel support are missing has nothing to remove.
/// (IPVS mode never starts on a kernel without IPVS, so it has nothing to remove here.)
pub async fn cleanup_all() -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(e) = crate::nftables::cleanup().await {
        errors.push(format!("nftables: {e}"));
    }
    if let Err(e) = crate::iptables::cleanup().await {
        errors.push(format!("iptables: {e}"));
    }
    errors
}
