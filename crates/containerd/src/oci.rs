//! OCI image archives from our own files: one uncompressed layer, the image config and
//! the manifest, in the OCI image-layout form (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) inside a tar — what `ctr images import` (containerd's
//! `images/archive` importer) and `docker save`-style tools read.
//!
//! The index entry carries both names containerd looks at: `io.containerd.image.name`
//! (the full, normalised reference: what `ctr` names the image when no `--base-name` is
//! given, and what CRI looks images up by) and `org.opencontainers.image.ref.name` (the
//! tag, as containerd's own exporter writes it). Everything is deterministic: entries
//! sorted by path, owner 0:0, mtime 0, JSON with a fixed field order, so the same input
//! always gives the same digests.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Error;

/// The OCI image-layout version `oci-layout` declares.
pub const IMAGE_LAYOUT_VERSION: &str = "1.0.0";
/// Media types of the OCI image spec v1.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// containerd's annotation naming the image an index entry stands for.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI annotation naming the reference (the tag) of an index entry.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The `created` time written everywhere: fixed, so digests do not depend on the clock.
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// One thing in an image's root filesystem. Paths are relative to the image root
/// (`bin/sh`; a leading `/` or `./` is accepted and dropped); everything is owned by 0:0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file with its permission bits (`0o755`, `0o4755`, …).
    File {
        path: String,
        mode: u32,
        content: Vec<u8>,
    },
    /// A directory with its permission bits (`0o1777` for `/tmp`).
    Dir { path: String, mode: u32 },
    /// A symbolic link, stored as a link (its target is not resolved).
    Symlink { path: String, target: String },
}

impl Entry {
    /// A regular file.
    pub fn file(path: impl Into<String>, mode: u32, content: impl Into<Vec<u8>>) -> Self {
        Entry::File {
            path: path.into(),
            mode,
            content: content.into(),
        }
    }

    /// A directory.
    pub fn dir(path: impl Into<String>, mode: u32) -> Self {
        Entry::Dir {
            path: path.into(),
            mode,
        }
    }

    /// A symbolic link `path -> target`.
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Self {
        Entry::Symlink {
            path: path.into(),
            target: target.into(),
        }
    }

    fn path(&self) -> &str {
        match self {
            Entry::File { path, .. } | Entry::Dir { path, .. } | Entry::Symlink { path, .. } => {
                path
            }
        }
    }
}

/// The runtime part of an image config (the OCI `config` object, Docker's field names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` strings.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// `80/tcp`, `53/udp`, …
    pub exposed_ports: Vec<String>,
    /// `SIGTERM`, …
    pub stop_signal: Option<String>,
}

/// A built image archive and the digests inside it.
#[derive(Debug, Clone)]
pub struct ImageArchive {
    /// The normalised reference the archive names (`docker.io/library/x:latest` style).
    pub reference: String,
    /// The tar file's bytes.
    pub bytes: Vec<u8>,
    /// `sha256:…` of the manifest: the image's digest as containerd reports it.
    pub manifest_digest: String,
    /// `sha256:…` of the config: the image ID CRI reports.
    pub config_digest: String,
    /// `sha256:…` of the (uncompressed) layer, also its diff ID.
    pub layer_digest: String,
}

/// Normalises an image reference as containerd and the CRI plugin do (Docker's rules):
/// a first component without `.`, `:` or `localhost` means Docker Hub (`docker.io/`),
/// a single Docker Hub component gets `library/`, and no tag means `:latest`.
/// Returns the full reference and its tag. Digest references are refused: an archive
/// we build names its image by tag.
pub fn normalize_reference(reference: &str) -> Result<(String, String), Error> {
    let invalid = |reason| Error::InvalidReference {
        reference: reference.to_string(),
        reason,
    };
    if reference.contains('@') {
        return Err(invalid(
            "digest references cannot name a built image; use name:tag",
        ));
    }
    // The tag is after the last ':' that comes after the last '/' (a ':' before it is
    // a registry port).
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match reference[last_slash..].rfind(':') {
        Some(i) => (
            &reference[..last_slash + i],
            &reference[last_slash + i + 1..],
        ),
        None => (reference, "latest"),
    };
    if tag.is_empty()
        || tag.len() > 128
        || tag.starts_with(['.', '-'])
        || !tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(invalid(
            "the tag must be 1-128 of [A-Za-z0-9_.-], not starting with . or -",
        ));
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let has_domain = components.len() > 1
        && (components[0].contains(['.', ':']) || components[0] == "localhost");
    let domain = if has_domain {
        let domain = components.remove(0);
        if !domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        {
            return Err(invalid(
                "the registry must be a host name with an optional :port",
            ));
        }
        domain
    } else {
        "docker.io"
    };
    for component in &components {
        let ok = !component.is_empty()
            && component
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            && component.starts_with(|c: char| c.is_ascii_alphanumeric())
            && component.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return Err(invalid(
                "name components must be lowercase letters, digits and . _ - (starting and ending alphanumeric)",
            ));
        }
    }
    if domain == "docker.io" && components.len() == 1 {
        components.insert(0, "library");
    }
    Ok((
        format!("{domain}/{}:{tag}", components.join("/")),
        tag.to_string(),
    ))
}

/// The OCI architecture name of the machine we run on (Go's GOARCH spelling).
pub fn oci_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in hash {
        out.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// Builds an image archive naming `reference` whose single layer holds `entries`
/// (missing parent directories are added with mode 0755).
pub fn build_archive(
    reference: &str,
    entries: &[Entry],
    config: &ImageConfig,
) -> Result<ImageArchive, Error> {
    let (reference, tag) = normalize_reference(reference)?;
    let layer = build_layer(entries)?;
    let layer_digest = sha256_digest(&layer);

    let config_json = encode(
        "config",
        &ConfigFile {
            created: EPOCH,
            architecture: oci_architecture(),
            os: "linux",
            config: ContainerConfig::from(config),
            rootfs: RootFs {
                kind: "layers",
                diff_ids: [&layer_digest],
            },
            history: [History {
                created: EPOCH,
                created_by: "ferrokube images build",
            }],
        },
    )?;
    let config_digest = sha256_digest(&config_json);

    let manifest_json = encode(
        "manifest",
        &Manifest {
            schema_version: 2,
            media_type: MEDIA_TYPE_MANIFEST,
            config: Descriptor::new(MEDIA_TYPE_CONFIG, &config_digest, config_json.len()),
            layers: [Descriptor::new(
                MEDIA_TYPE_LAYER,
                &layer_digest,
                layer.len(),
            )],
        },
    )?;
    let manifest_digest = sha256_digest(&manifest_json);

    let mut manifest_descriptor =
        Descriptor::new(MEDIA_TYPE_MANIFEST, &manifest_digest, manifest_json.len());
    manifest_descriptor.annotations = Some(BTreeMap::from([
        (ANNOTATION_IMAGE_NAME, reference.as_str()),
        (ANNOTATION_REF_NAME, tag.as_str()),
    ]));
    manifest_descriptor.platform = Some(Platform {
        architecture: oci_architecture(),
        os: "linux",
    });
    let index_json = encode(
        "index",
        &Index {
            schema_version: 2,
            media_type: MEDIA_TYPE_INDEX,
            manifests: [manifest_descriptor],
        },
    )?;
    let layout_json = encode(
        "oci-layout",
        &Layout {
            image_layout_version: IMAGE_LAYOUT_VERSION,
        },
    )?;

    // Blobs first and index.json last, as containerd's exporter writes them.
    let mut archive = tar::Builder::new(Vec::new());
    append_dir(&mut archive, "blobs/")?;
    append_dir(&mut archive, "blobs/sha256/")?;
    for (digest, bytes) in [
        (&layer_digest, &layer),
        (&config_digest, &config_json),
        (&manifest_digest, &manifest_json),
    ] {
        let hex = digest.trim_start_matches("sha256:");
        append_file(&mut archive, &format!("blobs/sha256/{hex}"), 0o644, bytes)?;
    }
    append_file(&mut archive, "oci-layout", 0o644, &layout_json)?;
    append_file(&mut archive, "index.json", 0o644, &index_json)?;
    let bytes = archive.into_inner().map_err(|source| Error::WriteArchive {
        what: "the archive's end".to_string(),
        source,
    })?;
    tracing::debug!(%reference, %manifest_digest, size = bytes.len(), "built image archive");
    Ok(ImageArchive {
        reference,
        bytes,
        manifest_digest,
        config_digest,
        layer_digest,
    })
}

/// Reads a root filesystem directory into entries: regular files with their content
/// and permission bits, directories, symlinks as symlinks. Ownership is not kept (the
/// image's files belong to 0:0), hard links become separate files, and devices,
/// sockets and fifos are refused. Everything is read into memory: this is for small
/// images (test images, pause), not for general image building.
pub fn entries_from_dir(root: &Path) -> Result<Vec<Entry>, Error> {
    let mut entries = Vec::new();
    walk(root, "", &mut entries)?;
    Ok(entries)
}

fn walk(dir: &Path, prefix: &str, entries: &mut Vec<Entry>) -> Result<(), Error> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::ReadRootfs { path, source }
    };
    let mut children = std::fs::read_dir(dir)
        .map_err(read_err(dir))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err(dir))?;
    children.sort();
    for path in children {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::NonUtf8Path { path: path.clone() })?;
        let relative = format!("{prefix}{name}");
        let meta = std::fs::symlink_metadata(&path).map_err(read_err(&path))?;
        let mode = meta.permissions().mode() & 0o7777;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = std::fs::read_link(&path).map_err(read_err(&path))?;
            let target = target
                .to_str()
                .ok_or_else(|| Error::NonUtf8Path { path: path.clone() })?
                .to_string();
            entries.push(Entry::symlink(relative, target));
        } else if kind.is_dir() {
            entries.push(Entry::dir(relative.clone(), mode));
            walk(&path, &format!("{relative}/"), entries)?;
        } else if kind.is_file() {
            let content = std::fs::read(&path).map_err(read_err(&path))?;
            entries.push(Entry::file(relative, mode, content));
        } else {
            return Err(Error::UnsupportedFileType { path });
        }
    }
    Ok(())
}

/// `bin//sh`, `/bin/sh`, `./bin/sh` → `bin/sh`; `..` and the root itself are refused.
fn clean_path(path: &str) -> Result<String, Error> {
    let invalid = |reason| Error::InvalidEntryPath {
        path: path.to_string(),
        reason,
    };
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(invalid("`..` is not allowed")),
            part if part.contains('\0') => return Err(invalid("NUL in path")),
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err(invalid("empty (the image root itself cannot be an entry)"));
    }
    Ok(parts.join("/"))
}

/// The layer tar: entries sorted by path (parents before children), missing parent
/// directories added.
fn build_layer(entries: &[Entry]) -> Result<Vec<u8>, Error> {
    let mut by_path: BTreeMap<String, &Entry> = BTreeMap::new();
    for entry in entries {
        let path = clean_path(entry.path())?;
        if by_path.insert(path.clone(), entry).is_some() {
            return Err(Error::DuplicateEntry { path });
        }
    }
    let default_dir = Entry::dir("", 0o755);
    let mut parents = Vec::new();
    for path in by_path.keys() {
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            end += slash;
            parents.push(path[..end].to_string());
            end += 1;
        }
    }
    for parent in parents {
        by_path.entry(parent).or_insert(&default_dir);
    }

    let mut layer = tar::Builder::new(Vec::new());
    for (path, entry) in &by_path {
        match entry {
            Entry::File { mode, content, .. } => append_file(&mut layer, path, *mode, content)?,
            Entry::Dir { mode, .. } => {
                let mut header = header(tar::EntryType::Directory, *mode, 0);
                layer
                    .append_data(&mut header, format!("{path}/"), std::io::empty())
                    .map_err(write_err(path))?;
            }
            Entry::Symlink { target, .. } => {
                let mut header = header(tar::EntryType::Symlink, 0o777, 0);
                layer
                    .append_link(&mut header, path, target)
                    .map_err(write_err(path))?;
            }
        }
    }
    layer.into_inner().map_err(write_err("the layer's end"))
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode & 0o7777);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header
}

fn write_err(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::WriteArchive {
        what: what.to_string(),
        source,
    }
}

fn append_file(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    mode: u32,
    content: &[u8],
) -> Result<(), Error> {
    let mut header = header(tar::EntryType::Regular, mode, content.len() as u64);
    builder
        .append_data(&mut header, path, content)
        .map_err(write_err(path))
}

fn append_dir(builder: &mut tar::Builder<Vec<u8>>, path: &str) -> Result<(), Error> {
    let mut header = header(tar::EntryType::Directory, 0o755, 0);
    builder
        .append_data(&mut header, path, std::io::empty())
        .map_err(write_err(path))
}

fn encode(what: &'static str, value: &impl Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|source| Error::EncodeJson { what, source })
}

// The documents, with fields in a fixed order (digests depend on the bytes).

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Layout {
    image_layout_version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'static str,
    manifests: [Descriptor<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor<'a>,
    layers: [Descriptor<'a>; 1],
}

#[derive(Serialize)]
struct Descriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    digest: &'a str,
    size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'static str, &'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
}

impl<'a> Descriptor<'a> {
    fn new(media_type: &'static str, digest: &'a str, size: usize) -> Self {
        Descriptor {
            media_type,
            digest,
            size,
            annotations: None,
            platform: None,
        }
    }
}

#[derive(Serialize)]
struct Platform {
    architecture: &'static str,
    os: &'static str,
}

#[derive(Serialize)]
struct ConfigFile<'a> {
    created: &'static str,
    architecture: &'static str,
    os: &'static str,
    config: ContainerConfig<'a>,
    rootfs: RootFs<'a>,
    history: [History; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    exposed_ports: BTreeMap<&'a str, Empty>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    env: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    entrypoint: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    cmd: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    working_dir: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_signal: Option<&'a str>,
}

impl<'a> From<&'a ImageConfig> for ContainerConfig<'a> {
    fn from(c: &'a ImageConfig) -> Self {
        ContainerConfig {
            user: c.user.as_deref(),
            exposed_ports: c
                .exposed_ports
                .iter()
                .map(|p| (p.as_str(), Empty {}))
                .collect(),
            env: &c.env,
            entrypoint: &c.entrypoint,
            cmd: &c.cmd,
            working_dir: c.working_dir.as_deref(),
            stop_signal: c.stop_signal.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: [&'a str; 1],
}

#[derive(Serialize)]
struct History {
    created: &'static str,
    created_by: &'static str,
}

#[cfg(test)]
mod tests;
