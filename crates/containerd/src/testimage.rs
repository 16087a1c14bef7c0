//! The small local test image: Debian's statically linked busybox (`busybox-static`) as
//! `/bin/busybox`, one `/bin/<applet>` symlink per applet it lists, `/etc/passwd` and
//! `/etc/group` with root and nobody, `/tmp`, `/root` and a `/www/index.html` for
//! `httpd` tests. The one implementation behind `ferrokube images busybox-rootfs` (which
//! `hack/images/busybox.sh` runs) and the tests.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::oci::ImageConfig;
use crate::Error;

/// Where Debian's busybox-static puts busybox.
pub const BUSYBOX: &str = "/bin/busybox";
/// The reference the test image is built under.
pub const BUSYBOX_IMAGE: &str = "ferrokube.local/busybox:test";
/// The page `/www/index.html` holds (`httpd -f -h /www` serves it).
pub const INDEX_HTML: &str = "ferrokube busybox test image\n";

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnobody:x:65534:\n";

/// The busybox image's config: `sh` as the command, nothing else (containerd's default
/// `PATH` finds the applets in `/bin`). hack/images/busybox.sh passes the same flags.
pub fn busybox_image_config() -> ImageConfig {
    ImageConfig {
        cmd: vec!["sh".to_string()],
        ..ImageConfig::default()
    }
}

/// Whether an ELF file has no program interpreter (statically linked): a dynamically
/// linked busybox would not run in an image without libc.
pub fn is_static_elf(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let read = |at: usize, len: usize| bytes.get(at..at + len);
    if read(0, 4) != Some(b"\x7fELF") || bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return false; // only 64-bit little-endian ELF is understood here
    }
    let u16_at = |at| read(at, 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u64_at = |at| read(at, 8).and_then(|b| <[u8; 8]>::try_from(b).ok().map(u64::from_le_bytes));
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..phnum).all(|i| {
        read(phoff + i * phentsize, 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .is_some_and(|kind| kind != PT_INTERP)
    })
}

/// Makes the busybox test image's root filesystem in `dir` (created if missing; existing
/// files of the same names are replaced).
pub fn busybox_rootfs(dir: &Path) -> Result<(), Error> {
    let busybox = std::fs::read(BUSYBOX).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::ProgramMissing {
                program: BUSYBOX.to_string(),
                hint: "apt-get install busybox-static",
            }
        } else {
            Error::ReadRootfs {
                path: BUSYBOX.into(),
                source,
            }
        }
    })?;
    if !is_static_elf(&busybox) {
        return Err(Error::NotStatic {
            path: BUSYBOX.into(),
            hint: "install busybox-static instead of busybox",
        });
    }
    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .map_err(|source| Error::Spawn {
            program: format!("{BUSYBOX} --list"),
            source,
        })?;
    let list = String::from_utf8_lossy(&list.stdout);

    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::PrepareRootfs { path, source }
    };
    let mkdir = |rel: &str, mode: u32| {
        let path = dir.join(rel);
        std::fs::create_dir_all(&path).map_err(write_err(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(write_err(&path))
    };
    let write = |rel: &str, mode: u32, content: &[u8]| {
        let path = dir.join(rel);
        std::fs::write(&path, content).map_err(write_err(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(write_err(&path))
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    mkdir("bin", 0o755)?;
    mkdir("etc", 0o755)?;
    mkdir("root", 0o700)?;
    mkdir("tmp", 0o1777)?;
    mkdir("www", 0o755)?;
    write("bin/busybox", 0o755, &busybox)?;
    write("etc/passwd", 0o644, PASSWD.as_bytes())?;
    write("etc/group", 0o644, GROUP.as_bytes())?;
    write("www/index.html", 0o644, INDEX_HTML.as_bytes())?;
    let mut applets = 0;
    for applet in list.lines().map(str::trim) {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let link = dir.join("bin").join(applet);
        match std::fs::remove_file(&link) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(write_err(&link)(err)),
        }
        std::os::unix::fs::symlink("busybox", &link).map_err(write_err(&link))?;
        applets += 1;
    }
    tracing::debug!(dir = %dir.display(), applets, "busybox rootfs ready");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_rootfs_has_busybox_its_applets_and_users() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        busybox_rootfs(&root).unwrap();
        // Twice is fine (the script may be re-run on the same directory).
        busybox_rootfs(&root).unwrap();
        assert_eq!(
            std::fs::read_link(root.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
        assert!(passwd.contains("nobody:x:65534"));
        let tmp = std::fs::metadata(root.join("tmp")).unwrap();
        assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
        let entries = crate::oci::entries_from_dir(&root).unwrap();
        assert!(entries.len() > 100, "busybox lists its applets");
    }

    #[test]
    fn static_and_dynamic_elves_are_told_apart() {
        assert!(is_static_elf(crate::pause::PAUSE_BINARY));
        let dynamic = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(
            !is_static_elf(&dynamic),
            "test binaries are dynamically linked"
        );
        assert!(!is_static_elf(b"#!/bin/sh\n"));
    }
}
