//! What ferrokube does with containerd besides CRI (the CRI client and the kubelet live
//! in their own crates):
//!
//! - [`oci`]: OCI image archives built from our own files (one layer, config, manifest
//!   in the image-layout form `ctr images import` reads), deterministic.
//! - [`pause`]: the pause image, from our own `pause/pause.rs` (upstream's pause.c).
//! - [`import`]: importing archives into containerd's `k8s.io` namespace (where CRI sees
//!   images) with containerd's own `ctr` tool.
//! - [`daemon`]: containerd as ferrokube runs it when the user has none: its config.toml
//!   (CRI plugin with our pause image and CNI dirs) and the process.
//! - [`testimage`]: the small busybox test image's root filesystem.
//!
//! Everything here blocks (it runs processes and waits for them): from async code call
//! it inside `spawn_blocking`.

pub mod daemon;
mod error;
pub mod import;
pub mod oci;
pub mod pause;
pub mod testimage;

pub use error::Error;
pub use pause::PAUSE_IMAGE;
