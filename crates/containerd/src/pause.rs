//! The pause image (upstream `registry.k8s.io/pause`), built from our own source: the
//! static binary build.rs compiles from `pause/pause.rs`, as `/pause` in a one-layer
//! image named [`PAUSE_IMAGE`]. CRI starts it as the first container of every pod
//! sandbox (containerd's `sandbox_image`), so a node needs no registry to run pods.

use crate::oci::{build_archive, Entry, ImageArchive, ImageConfig};
use crate::Error;

/// The pause image's reference: what ferrokube's containerd config names as
/// `sandbox_image` and what the kubelet's `--pod-infra-container-image` defaults to.
pub const PAUSE_IMAGE: &str = "ferrokube.local/pause:3.10";

/// The upstream pause version this mirrors (what `/pause -v` prints).
pub const PAUSE_VERSION: &str = env!("FERROKUBE_PAUSE_VERSION");

/// The statically linked pause program.
pub const PAUSE_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

/// The pause image as an OCI archive ready for `ctr images import`: `/pause` (0755) and
/// Entrypoint `["/pause"]`, run as root like upstream's; same bytes on every call.
pub fn pause_image_archive() -> Result<ImageArchive, Error> {
    build_archive(
        PAUSE_IMAGE,
        &[Entry::file("pause", 0o755, PAUSE_BINARY)],
        &ImageConfig {
            entrypoint: vec!["/pause".to_string()],
            // As upstream's image: pause needs no privilege (a pod's securityContext
            // can still say otherwise; CRI applies it to the sandbox).
            user: Some("65535:65535".to_string()),
            ..ImageConfig::default()
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_pause_binary_is_a_static_elf() {
        assert!(crate::testimage::is_static_elf(PAUSE_BINARY));
    }

    #[test]
    fn the_pause_archive_is_deterministic_and_named() {
        let a = pause_image_archive().unwrap();
        let b = pause_image_archive().unwrap();
        assert_eq!(a.bytes, b.bytes);
        assert_eq!(a.reference, PAUSE_IMAGE);
    }
}
