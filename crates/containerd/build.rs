//! Compiles `pause/pause.rs` (the pause image's only program) with `$RUSTC` into
//! `$OUT_DIR/pause`: optimised for size, panics abort, symbols stripped, statically
//! linked (glibc's static libraries from libc6-dev) so the image needs nothing else.
//! The crate embeds the result with `include_bytes!`.

use std::path::PathBuf;
use std::process::Command;

/// The upstream pause version this mirrors (registry.k8s.io/pause:3.10).
const PAUSE_VERSION: &str = "3.10";

fn main() -> Result<(), String> {
    println!("cargo:rerun-if-changed=pause/pause.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let target = std::env::var("TARGET").map_err(|e| format!("TARGET: {e}"))?;
    let output = out_dir.join("pause");
    let result = Command::new(&rustc)
        .args([
            "--edition",
            "2021",
            "--crate-name",
            "pause",
            "--crate-type",
            "bin",
            "--target",
            &target,
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
            "-C",
            "target-feature=+crt-static",
            "-o",
        ])
        .arg(&output)
        .arg("pause/pause.rs")
        .env("PAUSE_VERSION", PAUSE_VERSION)
        // Not the outer build's flags (coverage, incremental, …): pause is its own program.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .map_err(|e| format!("running {}: {e}", rustc.to_string_lossy()))?;
    if !result.status.success() {
        return Err(format!(
            "compiling pause/pause.rs (static; needs libc6-dev's libc.a) failed ({}):\n{}",
            result.status,
            String::from_utf8_lossy(&result.stderr)
        ));
    }
    println!("cargo:rustc-env=FERROKUBE_PAUSE_VERSION={PAUSE_VERSION}");
    Ok(())
}
