//! `ferrokube images …`: container images without a registry — build an OCI archive from
//! a directory tree, the pause image from our own source, and import archives into
//! containerd's `k8s.io` namespace (where CRI, hence the kubelet, sees them) with
//! containerd's `ctr`. Over the `ferrokube-containerd` crate; see docs/images.md.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{ArgGroup, Args, Subcommand};
use ferrokube_containerd::import::{self, DEFAULT_ADDRESS};
use ferrokube_containerd::oci::{self, ImageConfig};
use ferrokube_containerd::{pause, testimage};

#[derive(Subcommand, Debug)]
pub enum ImagesCommand {
    /// Import image archives (OCI layout or `docker save` tars) into containerd's
    /// k8s.io namespace (`ctr -n k8s.io images import`).
    Import(ImportArgs),
    /// Pack a directory tree into a one-layer image archive (modes kept, symlinks kept).
    Build(Box<BuildArgs>),
    /// The pause image (ferrokube.local/pause:3.10), built from ferrokube's own source.
    Pause(PauseArgs),
    /// Make the busybox test image's root filesystem in DIR (needs busybox-static);
    /// hack/images/busybox.sh builds the image from it.
    BusyboxRootfs {
        /// The directory to fill (created if missing).
        dir: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The archives.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// containerd's gRPC socket.
    #[arg(long, default_value = DEFAULT_ADDRESS)]
    address: PathBuf,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("dest").args(["output", "import"]).required(true).multiple(true)))]
pub struct BuildArgs {
    /// The directory that becomes the image's root filesystem.
    #[arg(long)]
    rootfs: PathBuf,
    /// The image reference (name[:tag]; Docker Hub rules for short names).
    #[arg(long)]
    tag: String,
    /// The entrypoint: a JSON array (`["/bin/sh","-c"]`) or words (`/bin/sh -c`).
    #[arg(long)]
    entrypoint: Option<String>,
    /// The command (arguments to the entrypoint): a JSON array or words.
    #[arg(long)]
    cmd: Option<String>,
    /// An environment variable, KEY=VALUE (repeatable).
    #[arg(long = "env")]
    env: Vec<String>,
    /// The working directory.
    #[arg(long)]
    workdir: Option<String>,
    /// The user (name, uid or uid:gid).
    #[arg(long)]
    user: Option<String>,
    /// A port to declare, PORT[/tcp|/udp|/sctp] (repeatable).
    #[arg(long = "expose")]
    expose: Vec<String>,
    /// The signal that stops the container (SIGTERM, SIGINT, …).
    #[arg(long)]
    stop_signal: Option<String>,
    /// Write the archive here.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Import it into containerd.
    #[arg(long)]
    import: bool,
    /// containerd's gRPC socket (with --import).
    #[arg(long, default_value = DEFAULT_ADDRESS)]
    address: PathBuf,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("dest").args(["output", "import"]).required(true).multiple(true)))]
pub struct PauseArgs {
    /// Write the archive here.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Import it into containerd (unless it is there already).
    #[arg(long)]
    import: bool,
    /// containerd's gRPC socket (with --import).
    #[arg(long, default_value = DEFAULT_ADDRESS)]
    address: PathBuf,
}

pub async fn run(cmd: ImagesCommand) -> anyhow::Result<()> {
    // ctr, file reads and archive building block: off the runtime.
    tokio::task::spawn_blocking(move || run_blocking(cmd))
        .await
        .context("the images command panicked")?
}

fn run_blocking(cmd: ImagesCommand) -> anyhow::Result<()> {
    match cmd {
        ImagesCommand::Import(args) => {
            for file in &args.files {
                let names = import::import_file(&args.address, file)
                    .with_context(|| format!("importing {}", file.display()))?;
                for name in names {
                    println!("imported {name}");
                }
            }
            Ok(())
        }
        ImagesCommand::Build(args) => build(*args),
        ImagesCommand::Pause(args) => {
            let archive = pause::pause_image_archive()?;
            if let Some(path) = &args.output {
                write_archive(path, &archive)?;
            }
            if args.import {
                if import::ensure_pause_image(&args.address)? {
                    println!("imported {}", archive.reference);
                } else {
                    println!("{} is already in containerd", archive.reference);
                }
            }
            Ok(())
        }
        ImagesCommand::BusyboxRootfs { dir } => {
            testimage::busybox_rootfs(&dir)?;
            println!("{}", dir.display());
            Ok(())
        }
    }
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    if !args.rootfs.is_dir() {
        bail!("--rootfs {}: not a directory", args.rootfs.display());
    }
    let config = ImageConfig {
        entrypoint: parse_words("--entrypoint", args.entrypoint.as_deref())?,
        cmd: parse_words("--cmd", args.cmd.as_deref())?,
        env: args
            .env
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((key, _)) if !key.is_empty() => Ok(kv.clone()),
                _ => bail!("--env {kv:?}: expected KEY=VALUE"),
            })
            .collect::<anyhow::Result<_>>()?,
        working_dir: args.workdir,
        user: args.user,
        exposed_ports: args
            .expose
            .iter()
            .map(|p| parse_port(p))
            .collect::<anyhow::Result<_>>()?,
        stop_signal: args.stop_signal,
    };
    let entries = oci::entries_from_dir(&args.rootfs)
        .with_context(|| format!("--rootfs {}", args.rootfs.display()))?;
    let archive = oci::build_archive(&args.tag, &entries, &config).context("--tag or --rootfs")?;
    if let Some(path) = &args.output {
        write_archive(path, &archive)?;
    }
    if args.import {
        for name in import::import_bytes(&args.address, &archive.bytes)? {
            println!("imported {name}");
        }
    }
    Ok(())
}

fn write_archive(path: &Path, archive: &oci::ImageArchive) -> anyhow::Result<()> {
    std::fs::write(path, &archive.bytes)
        .with_context(|| format!("-o {}: writing the archive", path.display()))?;
    println!(
        "wrote {} ({} {}, {} bytes)",
        path.display(),
        archive.reference,
        archive.manifest_digest,
        archive.bytes.len()
    );
    Ok(())
}

/// A JSON array of strings, or whitespace-separated words.
fn parse_words(flag: &str, value: Option<&str>) -> anyhow::Result<Vec<String>> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    if value.trim_start().starts_with('[') {
        serde_json::from_str(value)
            .with_context(|| format!("{flag} {value:?}: not a JSON array of strings"))
    } else {
        Ok(value.split_whitespace().map(str::to_string).collect())
    }
}

/// `80`, `80/tcp`, `53/udp` → `PORT/PROTO`.
fn parse_port(value: &str) -> anyhow::Result<String> {
    let (port, proto) = value.split_once('/').unwrap_or((value, "tcp"));
    let proto = proto.to_ascii_lowercase();
    match (port.parse::<u16>(), proto.as_str()) {
        (Ok(p), "tcp" | "udp" | "sctp") if p > 0 => Ok(format!("{p}/{proto}")),
        _ => bail!("--expose {value:?}: expected PORT[/tcp|/udp|/sctp]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_json() {
        assert_eq!(
            parse_words("--cmd", Some(r#"["sh","-c","echo a b"]"#)).ok(),
            Some(vec!["sh".into(), "-c".into(), "echo a b".into()])
        );
        assert_eq!(
            parse_words("--cmd", Some("sh -c  true")).ok(),
            Some(vec!["sh".into(), "-c".into(), "true".into()])
        );
        let err = parse_words("--entrypoint", Some("[1]"))
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("--entrypoint")));
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port("80").ok().as_deref(), Some("80/tcp"));
        assert_eq!(parse_port("53/UDP").ok().as_deref(), Some("53/udp"));
        assert!(parse_port("0").is_err());
        assert!(parse_port("80/icmp").is_err());
    }
}
