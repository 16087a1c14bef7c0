//! Pod-level cgroups, the part upstream's pod container manager does that the runtime
//! does not: `podPidsLimit` written to the pod cgroup's `pids.max` before its sandbox
//! starts, and the pod cgroup removed with the pod (runc removes only the containers'
//! own cgroups, leaving `kubepods/<qos>/pod<uid>` behind). cgroupfs driver, v1 or v2
//! hierarchies; with the systemd driver systemd owns the slices.

use std::path::{Path, PathBuf};

use crate::Kubelet;

const ROOT: &str = "/sys/fs/cgroup";

/// Whether the host runs the unified (v2) hierarchy.
fn unified(root: &Path) -> bool {
    root.join("cgroup.controllers").exists()
}

/// The directories of `parent` (`/kubepods/besteffort/pod<uid>`) in every hierarchy.
fn dirs(root: &Path, parent: &str) -> Vec<PathBuf> {
    let rel = parent.trim_start_matches('/');
    if unified(root) {
        return vec![root.join(rel)];
    }
    std::fs::read_dir(root)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path().join(rel))
                .collect()
        })
        .unwrap_or_default()
}

/// The pids controller's directory of `parent`.
fn pids_dir(root: &Path, parent: &str) -> PathBuf {
    let rel = parent.trim_start_matches('/');
    if unified(root) {
        root.join(rel)
    } else {
        root.join("pids").join(rel)
    }
}

/// Applies `podPidsLimit` to the pod cgroup `parent` (made if missing); nothing when
/// the limit is unset (-1 or 0) or the parent is not a cgroupfs path.
pub fn set_pids_limit(k: &Kubelet, parent: &str) -> std::io::Result<()> {
    let limit = k.config.pod_pids_limit;
    if limit <= 0 || !parent.starts_with('/') {
        return Ok(());
    }
    write_pids_limit(Path::new(ROOT), parent, limit)
}

fn write_pids_limit(root: &Path, parent: &str, limit: i64) -> std::io::Result<()> {
    let dir = pids_dir(root, parent);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("pids.max"), limit.to_string())
}

/// Removes the pod cgroup of `uid` (under any QoS class) from every hierarchy; a
/// cgroup still holding processes stays (the next cleanup tries again).
pub fn remove_pod(k: &Kubelet, uid: &str) {
    if k.config.cgroup_driver != "cgroupfs" || !k.config.cgroups_per_qos {
        return;
    }
    remove_pod_in(Path::new(ROOT), uid);
}

fn remove_pod_in(root: &Path, uid: &str) {
    for qos in ["", "burstable/", "besteffort/"] {
        for dir in dirs(root, &format!("/kubepods/{qos}pod{uid}")) {
            if !dir.exists() {
                continue;
            }
            // Leftover child cgroups first (containers runc did not clean up).
            if let Ok(children) = std::fs::read_dir(&dir) {
                for c in children.filter_map(Result::ok) {
                    if c.file_type().is_ok_and(|t| t.is_dir()) {
                        let _ = std::fs::remove_dir(c.path());
                    }
                }
            }
            if let Err(e) = std::fs::remove_dir(&dir) {
                tracing::debug!(dir = %dir.display(), error = %e, "pod cgroup not removed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn v1_and_v2_layouts() {
        let base = std::env::temp_dir().join(format!("fk-cgroups-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        // v1: one directory per controller.
        let v1 = base.join("v1");
        for c in ["pids", "memory"] {
            std::fs::create_dir_all(v1.join(c)).unwrap();
        }
        write_pids_limit(&v1, "/kubepods/besteffort/podU", 42).unwrap();
        assert_eq!(
            std::fs::read_to_string(v1.join("pids/kubepods/besteffort/podU/pids.max")).unwrap(),
            "42"
        );
        std::fs::create_dir_all(v1.join("memory/kubepods/besteffort/podU/ctr")).unwrap();
        // On cgroupfs the control files go with rmdir; here they must go first.
        std::fs::remove_file(v1.join("pids/kubepods/besteffort/podU/pids.max")).unwrap();
        remove_pod_in(&v1, "U");
        assert!(!v1.join("pids/kubepods/besteffort/podU").exists());
        assert!(!v1.join("memory/kubepods/besteffort/podU").exists());
        assert!(v1.join("pids/kubepods/besteffort").exists());
        // v2: one hierarchy.
        let v2 = base.join("v2");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("cgroup.controllers"), "pids memory").unwrap();
        write_pids_limit(&v2, "/kubepods/podG", 7).unwrap();
        assert_eq!(
            std::fs::read_to_string(v2.join("kubepods/podG/pids.max")).unwrap(),
            "7"
        );
        std::fs::remove_file(v2.join("kubepods/podG/pids.max")).unwrap();
        remove_pod_in(&v2, "G");
        assert!(!v2.join("kubepods/podG").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
