//! Archives parse back: index → manifest → config and layer, digests and sizes match,
//! the layer holds what was put in, and the same input gives the same bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;

use super::*;

/// Every regular file of a tar, by path.
fn regular_files(tar_bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type() == tar::EntryType::Regular {
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            out.insert(path, content);
        }
    }
    out
}

/// Every entry of a tar: path → (type, mode, link target).
fn listing(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, u32, Option<String>)> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!(h.mtime().unwrap(), 0);
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.entry_type(),
                h.mode().unwrap(),
                e.link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned()),
            )
        })
        .collect()
}

fn blob<'a>(files: &'a BTreeMap<String, Vec<u8>>, descriptor: &Value) -> &'a [u8] {
    let digest = descriptor["digest"].as_str().unwrap();
    let bytes = &files[&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))];
    assert_eq!(
        sha256_digest(bytes),
        digest,
        "blob content matches its digest"
    );
    assert_eq!(descriptor["size"].as_u64().unwrap(), bytes.len() as u64);
    bytes
}

fn sample() -> (Vec<Entry>, ImageConfig) {
    let long = format!("{}/file", "d".repeat(150));
    (
        vec![
            Entry::file("/bin/tool", 0o755, b"#!/bin/sh\necho hi\n".to_vec()),
            Entry::symlink("bin/sh", "tool"),
            Entry::dir("tmp", 0o1777),
            Entry::file("etc/passwd", 0o644, b"root:x:0:0::/:/bin/sh\n".to_vec()),
            Entry::file(long, 0o600, b"long path".to_vec()),
        ],
        ImageConfig {
            entrypoint: vec!["/bin/tool".into()],
            cmd: vec!["a".into(), "b".into()],
            env: vec!["PATH=/bin".into()],
            working_dir: Some("/tmp".into()),
            user: Some("0:0".into()),
            exposed_ports: vec!["80/tcp".into()],
            stop_signal: Some("SIGINT".into()),
        },
    )
}

#[test]
fn archive_parses_back_index_manifest_config_layer() {
    let (entries, config) = sample();
    let image = build_archive("example.com:5000/team/tool:v1", &entries, &config).unwrap();
    assert_eq!(image.reference, "example.com:5000/team/tool:v1");
    let files = regular_files(&image.bytes);

    let layout: Value = serde_json::from_slice(&files["oci-layout"]).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");

    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    let entry = &index["manifests"][0];
    assert_eq!(entry["mediaType"], MEDIA_TYPE_MANIFEST);
    assert_eq!(entry["digest"], image.manifest_digest.as_str());
    assert_eq!(
        entry["annotations"][ANNOTATION_IMAGE_NAME],
        "example.com:5000/team/tool:v1"
    );
    assert_eq!(entry["annotations"][ANNOTATION_REF_NAME], "v1");
    assert_eq!(entry["platform"]["os"], "linux");
    assert_eq!(entry["platform"]["architecture"], oci_architecture());

    let manifest: Value = serde_json::from_slice(blob(&files, entry)).unwrap();
    assert_eq!(manifest["config"]["mediaType"], MEDIA_TYPE_CONFIG);
    assert_eq!(manifest["config"]["digest"], image.config_digest.as_str());
    assert_eq!(manifest["layers"][0]["mediaType"], MEDIA_TYPE_LAYER);
    assert_eq!(manifest["layers"][0]["digest"], image.layer_digest.as_str());

    let config_json: Value = serde_json::from_slice(blob(&files, &manifest["config"])).unwrap();
    assert_eq!(config_json["os"], "linux");
    assert_eq!(
        config_json["rootfs"]["diff_ids"][0],
        image.layer_digest.as_str()
    );
    let c = &config_json["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/tool"]));
    assert_eq!(c["Cmd"], serde_json::json!(["a", "b"]));
    assert_eq!(c["Env"], serde_json::json!(["PATH=/bin"]));
    assert_eq!(c["WorkingDir"], "/tmp");
    assert_eq!(c["User"], "0:0");
    assert_eq!(c["ExposedPorts"], serde_json::json!({"80/tcp": {}}));
    assert_eq!(c["StopSignal"], "SIGINT");

    let layer = blob(&files, &manifest["layers"][0]);
    let list = listing(layer);
    let paths: Vec<&str> = list.iter().map(|(p, ..)| p.as_str()).collect();
    let long_dir = format!("{}/", "d".repeat(150));
    let long_file = format!("{}/file", "d".repeat(150));
    assert_eq!(
        paths,
        [
            "bin/",
            "bin/sh",
            "bin/tool",
            long_dir.as_str(),
            long_file.as_str(),
            "etc/",
            "etc/passwd",
            "tmp/"
        ]
    );
    let find = |p: &str| list.iter().find(|(path, ..)| path == p).unwrap();
    assert_eq!(
        find("bin/sh"),
        &(
            "bin/sh".to_string(),
            tar::EntryType::Symlink,
            0o777,
            Some("tool".to_string())
        )
    );
    assert_eq!(find("bin/tool").2, 0o755);
    assert_eq!(find("bin/").2, 0o755, "implicit parents are 0755");
    assert_eq!(find("tmp/").2, 0o1777);
    assert_eq!(find("tmp/").1, tar::EntryType::Directory);
    assert_eq!(regular_files(layer)["bin/tool"], b"#!/bin/sh\necho hi\n");
    assert_eq!(regular_files(layer)[&long_file], b"long path");
}

#[test]
fn same_input_same_bytes() {
    let (entries, config) = sample();
    let a = build_archive("tool:v1", &entries, &config).unwrap();
    let mut reversed = entries.clone();
    reversed.reverse();
    let b = build_archive("tool:v1", &reversed, &config).unwrap();
    assert_eq!(a.bytes, b.bytes, "entry order does not matter");
    assert_eq!(a.manifest_digest, b.manifest_digest);
    let other = build_archive("tool:v2", &entries, &config).unwrap();
    assert_eq!(
        a.manifest_digest, other.manifest_digest,
        "the name is not in the manifest"
    );
    assert_ne!(a.bytes, other.bytes, "but it is in the index");
}

#[test]
fn references_normalise_as_containerd_does() {
    let n = |r: &str| normalize_reference(r).map(|(full, _)| full);
    assert_eq!(n("busybox").unwrap(), "docker.io/library/busybox:latest");
    assert_eq!(n("me/app:1.0").unwrap(), "docker.io/me/app:1.0");
    assert_eq!(n("localhost/app:x").unwrap(), "localhost/app:x");
    assert_eq!(
        n("ferrokube.local/pause:3.10").unwrap(),
        "ferrokube.local/pause:3.10"
    );
    assert_eq!(n("reg:5000/a/b").unwrap(), "reg:5000/a/b:latest");
    for bad in [
        "",
        "Upper/case",
        "app:",
        "app@sha256:00",
        "a//b",
        "app:-x",
        "-a",
    ] {
        assert!(n(bad).is_err(), "{bad:?} is refused");
    }
}

#[test]
fn bad_entries_are_refused() {
    let config = ImageConfig::default();
    let err = build_archive("a", &[Entry::file("../x", 0o644, vec![])], &config).unwrap_err();
    assert!(err.to_string().contains("../x"), "{err}");
    assert!(build_archive("a", &[Entry::dir("/", 0o755)], &config).is_err());
    let dup = [Entry::dir("x", 0o755), Entry::file("/x", 0o644, vec![])];
    assert!(matches!(
        build_archive("a", &dup, &config),
        Err(Error::DuplicateEntry { .. })
    ));
}

#[test]
fn a_directory_tree_packs_with_modes_and_symlinks() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::write(root.join("bin/prog"), b"x").unwrap();
    std::fs::set_permissions(
        root.join("bin/prog"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    std::os::unix::fs::symlink("prog", root.join("bin/alias")).unwrap();
    std::fs::create_dir(root.join("tmp")).unwrap();
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let entries = entries_from_dir(root).unwrap();
    assert_eq!(
        entries,
        [
            Entry::dir("bin", 0o755),
            Entry::symlink("bin/alias", "prog"),
            Entry::file("bin/prog", 0o750, b"x".to_vec()),
            Entry::dir("tmp", 0o1777),
        ]
    );
    let missing = entries_from_dir(&root.join("nope")).unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
}

#[test]
fn digest_is_sha256_hex() {
    assert_eq!(
        sha256_digest(b""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
