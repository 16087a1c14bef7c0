//! `ferrokube images` against a real containerd (started by the test, as ferrokube
//! runs one): the pause image and the busybox test image imported with the CLI, listed
//! by containerd in CRI's namespace, and a container run from the busybox image. Plus
//! the CLI's answers to bad input, which need no containerd.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::containerd::{run_bounded, TestContainerd};
use ferrokube_containerd::daemon::{Containerd, DaemonConfig};
use ferrokube_containerd::{import, testimage, Error, PAUSE_IMAGE};

const STEP: Duration = Duration::from_secs(120);

fn ferrokube(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrokube"));
    cmd.args(args).env("FERROKUBE_LOG", "warn");
    run_bounded(cmd, STEP)
}

fn ok(args: &[&str]) -> String {
    let out = ferrokube(args);
    assert!(
        out.status.success(),
        "ferrokube {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(args: &[&str]) -> String {
    let out = ferrokube(args);
    assert!(
        !out.status.success(),
        "ferrokube {args:?} unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn images_built_and_imported_by_the_cli_run_in_containerd() {
    let ctd = TestContainerd::start_bare();
    let socket = ctd.socket.to_str().unwrap();

    let out = ok(&["images", "pause", "--import", "--address", socket]);
    assert!(out.contains(&format!("imported {PAUSE_IMAGE}")), "{out}");
    let again = ok(&["images", "pause", "--import", "--address", socket]);
    assert!(again.contains("already"), "{again}");
    assert!(!import::ensure_pause_image(&ctd.socket).unwrap());

    // What hack/images/busybox.sh does.
    let rootfs = ctd.dir.path().join("rootfs");
    let archive = ctd.dir.path().join("busybox.tar");
    ok(&["images", "busybox-rootfs", rootfs.to_str().unwrap()]);
    let out = ok(&[
        "images",
        "build",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "--tag",
        testimage::BUSYBOX_IMAGE,
        "--cmd",
        "sh",
        "-o",
        archive.to_str().unwrap(),
        "--import",
        "--address",
        socket,
    ]);
    assert!(
        out.contains(&format!("imported {}", testimage::BUSYBOX_IMAGE)),
        "{out}"
    );
    // The archive file imports too (same image, same digest).
    let out = ok(&[
        "images",
        "import",
        archive.to_str().unwrap(),
        "--address",
        socket,
    ]);
    assert!(out.contains(testimage::BUSYBOX_IMAGE), "{out}");

    let listed = ctd.ctr(&["images", "ls", "-q"], STEP);
    let listed = String::from_utf8_lossy(&listed.stdout);
    for image in [PAUSE_IMAGE, testimage::BUSYBOX_IMAGE] {
        assert!(listed.lines().any(|l| l == image), "{image} in\n{listed}");
    }

    // The image runs: busybox's sh, its applets, the files we put in.
    let id = format!("ferrokube-test-{}", std::process::id());
    let run = ctd.ctr(
        &[
            "run",
            "--rm",
            testimage::BUSYBOX_IMAGE,
            &id,
            "sh",
            "-c",
            "echo hello from $(cat /www/index.html); id -un; stat -c %a /tmp",
        ],
        STEP,
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "ctr run failed: {stdout}{}\ncontainerd log:\n{}",
        String::from_utf8_lossy(&run.stderr),
        ctd.log()
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["hello from ferrokube busybox test image", "root", "1777"]
    );

    // A second containerd on the same socket is refused, the first one untouched.
    let other = ctd.dir.path().join("other");
    let err =
        Containerd::start(DaemonConfig::new(&other, &ctd.socket, other.join("net.d"))).unwrap_err();
    assert!(matches!(err, Error::SocketInUse { .. }), "{err}");
    assert!(ferrokube_containerd::daemon::running(&ctd.socket));
}

#[test]
fn test_containerd_comes_with_the_pause_image() {
    let ctd = TestContainerd::start();
    assert!(ctd.images().iter().any(|i| i == PAUSE_IMAGE));
    ctd.import_busybox();
    assert!(ctd.images().iter().any(|i| i == testimage::BUSYBOX_IMAGE));
    let config = std::fs::read_to_string(ctd.dir.path().join("config.toml")).unwrap();
    assert!(config.contains(&format!("sandbox_image = \"{PAUSE_IMAGE}\"")));
}

#[test]
fn bad_input_names_the_flag_or_file() {
    let missing_socket = "/nonexistent/containerd.sock";
    let err = fails(&["images", "pause", "--import", "--address", missing_socket]);
    assert!(err.contains(missing_socket), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nope.tar");
    let socket = dir.path().join("fake.sock");
    // A socket path that exists, so the archive is what is checked.
    std::fs::write(&socket, b"").unwrap();
    let err = fails(&[
        "images",
        "import",
        file.to_str().unwrap(),
        "--address",
        socket.to_str().unwrap(),
    ]);
    assert!(err.contains("nope.tar"), "{err}");

    let err = fails(&[
        "images",
        "build",
        "--rootfs",
        "/nonexistent",
        "--tag",
        "a:b",
        "-o",
        "x",
    ]);
    assert!(err.contains("--rootfs /nonexistent"), "{err}");
    let rootfs = dir.path().to_str().unwrap();
    let out = dir.path().join("out.tar");
    let out = out.to_str().unwrap();
    let err = fails(&[
        "images", "build", "--rootfs", rootfs, "--tag", "Bad/Name", "-o", out,
    ]);
    assert!(err.contains("--tag") && err.contains("Bad/Name"), "{err}");
    let err = fails(&[
        "images", "build", "--rootfs", rootfs, "--tag", "a", "--env", "NOEQ", "-o", out,
    ]);
    assert!(err.contains("--env"), "{err}");
    let err = fails(&[
        "images", "build", "--rootfs", rootfs, "--tag", "a", "--cmd", "[1]", "-o", out,
    ]);
    assert!(err.contains("--cmd"), "{err}");
    // Neither -o nor --import: clap says which flags are missing.
    let err = fails(&["images", "build", "--rootfs", rootfs, "--tag", "a"]);
    assert!(
        err.contains("--output") || err.contains("--import"),
        "{err}"
    );
    assert!(!Path::new(out).exists());

    // A good build writes a deterministic archive.
    let a = dir.path().join("a.tar");
    let b = dir.path().join("b.tar");
    ok(&["images", "pause", "-o", a.to_str().unwrap()]);
    ok(&["images", "pause", "-o", b.to_str().unwrap()]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}
