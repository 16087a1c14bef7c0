//! Importing image archives into containerd, with containerd's own command-line tool:
//! `ctr --address SOCK -n k8s.io images import FILE`. The `k8s.io` namespace is where
//! containerd's CRI plugin keeps its images, so an image imported there is what the
//! kubelet (through CRI) sees — the offline equivalent of a pull. `ctr` unpacks the
//! image into the default snapshotter (overlayfs, CRI's too) as it imports.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::Error;

/// containerd's default gRPC socket.
pub const DEFAULT_ADDRESS: &str = "/run/containerd/containerd.sock";
/// The containerd namespace of the CRI plugin.
pub const K8S_NAMESPACE: &str = "k8s.io";
/// containerd's command-line client (shipped with containerd).
pub const CTR: &str = "ctr";
/// What to do when `ctr` or `containerd` is missing.
pub(crate) const CONTAINERD_HINT: &str =
    "install containerd: `apt-get install containerd runc`, as hack/test.sh does";
/// How long `ctr` may take to connect before it gives up (a hung daemon is an error,
/// not a hang).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `ctr --address SOCK --connect-timeout … -n k8s.io ARGS…` (with `stdin` fed to
/// it when given) and returns its stdout; a non-zero exit is an error carrying stderr.
pub fn ctr(socket: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<String, Error> {
    if !socket.exists() {
        return Err(Error::SocketMissing {
            path: socket.to_path_buf(),
        });
    }
    let spawn_err = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::ProgramMissing {
                program: CTR.to_string(),
                hint: CONTAINERD_HINT,
            }
        } else {
            Error::Spawn {
                program: CTR.to_string(),
                source,
            }
        }
    };
    let mut command = Command::new(CTR);
    command
        .arg("--address")
        .arg(socket)
        .arg("--connect-timeout")
        .arg(format!("{}s", CONNECT_TIMEOUT.as_secs()))
        .args(["--namespace", K8S_NAMESPACE])
        .args(args)
        // The flags above say where; the environment must not say otherwise.
        .env_remove("CONTAINERD_ADDRESS")
        .env_remove("CONTAINERD_NAMESPACE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tracing::debug!(socket = %socket.display(), ?args, "running ctr");
    let mut child = command.spawn().map_err(spawn_err)?;
    let input = stdin.zip(child.stdin.take());
    // Feed stdin from another thread while this one drains stdout and stderr, so
    // neither side can block on a full pipe.
    let output = std::thread::scope(|scope| {
        if let Some((bytes, mut pipe)) = input {
            scope.spawn(move || {
                // A write error means ctr exited early; its stderr says why.
                if let Err(err) = pipe.write_all(bytes) {
                    tracing::debug!(error = %err, "ctr closed its stdin early");
                }
            });
        }
        child.wait_with_output()
    })
    .map_err(spawn_err)?;
    if !output.status.success() {
        return Err(Error::Ctr {
            args: args.join(" "),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The names `ctr images import` printed ("unpacking NAME (sha256:…)...done").
fn imported_names(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("unpacking "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Imports an archive file (OCI layout or `docker save` form) into the `k8s.io`
/// namespace; returns the image names it created or updated.
pub fn import_file(socket: &Path, file: &Path) -> Result<Vec<String>, Error> {
    // ctr's own message for a missing file is vaguer than this.
    std::fs::metadata(file).map_err(|source| Error::ReadArchive {
        path: file.to_path_buf(),
        source,
    })?;
    let file = file.to_string_lossy();
    let names = imported_names(&ctr(socket, &["images", "import", &file], None)?);
    tracing::info!(archive = %file, images = ?names, "imported into containerd");
    Ok(names)
}

/// Imports an archive held in memory (fed to `ctr images import -`).
pub fn import_bytes(socket: &Path, archive: &[u8]) -> Result<Vec<String>, Error> {
    let names = imported_names(&ctr(socket, &["images", "import", "-"], Some(archive))?);
    tracing::info!(images = ?names, "imported into containerd");
    Ok(names)
}

/// The image names in the `k8s.io` namespace (`ctr images ls -q`).
pub fn list_images(socket: &Path) -> Result<Vec<String>, Error> {
    Ok(ctr(socket, &["images", "ls", "-q"], None)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// Whether the `k8s.io` namespace has an image by exactly this (normalised) name.
pub fn image_present(socket: &Path, reference: &str) -> Result<bool, Error> {
    Ok(list_images(socket)?.iter().any(|name| name == reference))
}

/// Makes sure containerd has the pause image ([`crate::PAUSE_IMAGE`]), importing our
/// own unless it is already listed. Returns whether it imported.
pub fn ensure_pause_image(socket: &Path) -> Result<bool, Error> {
    if image_present(socket, crate::PAUSE_IMAGE)? {
        tracing::debug!(image = crate::PAUSE_IMAGE, "pause image already present");
        return Ok(false);
    }
    let archive = crate::pause::pause_image_archive()?;
    import_bytes(socket, &archive.bytes)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_come_from_the_unpacking_lines() {
        let out = "unpacking ferrokube.local/pause:3.10 (sha256:abc)...done\n\
                   unpacking docker.io/library/x:1 (sha256:def)...done\n";
        assert_eq!(
            imported_names(out),
            ["ferrokube.local/pause:3.10", "docker.io/library/x:1"]
        );
    }

    #[test]
    fn a_missing_socket_is_named() {
        let err = list_images(Path::new("/nonexistent/containerd.sock")).unwrap_err();
        assert!(matches!(err, Error::SocketMissing { .. }));
        assert!(err.to_string().contains("/nonexistent/containerd.sock"));
    }
}
