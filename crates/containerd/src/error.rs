//! The crate's one error type: each variant names the step that failed and the file,
//! socket or command it was about.

use std::path::PathBuf;

/// What can go wrong building, importing or running things for containerd.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image reference that is not `name[:tag]` with a registry-style name.
    #[error("image reference {reference:?}: {reason}")]
    InvalidReference {
        reference: String,
        reason: &'static str,
    },
    /// An entry path that is empty, absolute after normalising, or climbs out (`..`).
    #[error("image entry path {path:?}: {reason}")]
    InvalidEntryPath { path: String, reason: &'static str },
    /// Two entries for the same path.
    #[error("image entry path {path:?} given twice")]
    DuplicateEntry { path: String },
    /// Writing the tar stream (the layer or the archive around it).
    #[error("writing the image archive ({what})")]
    WriteArchive {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Serialising a JSON document (config, manifest, index).
    #[error("encoding the image {what}")]
    EncodeJson {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// Reading a root filesystem directory to pack it.
    #[error("reading {path}")]
    ReadRootfs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file in a root filesystem that an image layer cannot carry here
    /// (device, socket, fifo).
    #[error("{path}: unsupported file type (only regular files, directories and symlinks)")]
    UnsupportedFileType { path: PathBuf },
    /// A path that is not valid UTF-8 (image paths are UTF-8 in JSON and tar).
    #[error("{path}: not valid UTF-8")]
    NonUtf8Path { path: PathBuf },
    /// The containerd socket does not exist (containerd not running at that address).
    #[error("containerd socket {path} does not exist (is containerd running? pass --address)")]
    SocketMissing { path: PathBuf },
    /// A program (`ctr`, `containerd`, busybox) could not be found.
    #[error("{program} not found ({hint})")]
    ProgramMissing { program: String, hint: &'static str },
    /// A program that goes into an image is dynamically linked (the image has no libc).
    #[error("{path} is dynamically linked ({hint})")]
    NotStatic { path: PathBuf, hint: &'static str },
    /// Writing a root filesystem directory (the busybox test image's).
    #[error("writing {path}")]
    PrepareRootfs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A program could not be started or waited for.
    #[error("running {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// `ctr` ran and failed; its stderr says why.
    #[error("`ctr {args}` failed ({status}): {stderr}")]
    Ctr {
        args: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    /// Reading an archive file to import it.
    #[error("reading image archive {path}")]
    ReadArchive {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Creating containerd's directories or writing its config or log file.
    #[error("preparing containerd's {path}")]
    PrepareDaemon {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something already answers on the socket a new containerd was to listen on.
    #[error("a containerd already answers on {path}")]
    SocketInUse { path: PathBuf },
    /// containerd exited before its socket answered.
    #[error("containerd exited ({status}) before answering on {socket}; its log {log}:\n{tail}")]
    DaemonExited {
        status: std::process::ExitStatus,
        socket: PathBuf,
        log: PathBuf,
        tail: String,
    },
    /// containerd did not answer on its socket in time.
    #[error("containerd did not answer on {socket} within {seconds}s; its log {log}:\n{tail}")]
    DaemonTimeout {
        socket: PathBuf,
        seconds: u64,
        log: PathBuf,
        tail: String,
    },
    /// Signalling the containerd process.
    #[error("signalling containerd (pid {pid})")]
    Signal {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
}
