//! A real containerd for tests, as ferrokube runs one (`ferrokube_containerd::daemon`):
//! its own directory, socket and CNI config dir, the pause image imported (CRI needs it
//! for every sandbox and there is no registry), killed on drop with every task it ran.
//! No containerd on the machine is a test failure, not a skip: hack/test.sh installs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferrokube_containerd::daemon::{self, Containerd, DaemonConfig};
use ferrokube_containerd::{import, oci, testimage};

/// What to do when containerd, runc, the CNI plugins or busybox are missing.
pub const INSTALL_HINT: &str = "run hack/test.sh, which installs containerd, runc, \
     containernetworking-plugins and busybox-static (or apt-get install them)";

pub struct TestContainerd {
    /// containerd's gRPC socket (CRI is served on it too).
    pub socket: PathBuf,
    /// CRI's CNI config dir (empty: write a network config there to get pod networking).
    pub cni_conf_dir: PathBuf,
    /// Everything lives under here: config.toml, containerd.log, root/, state/.
    pub dir: tempfile::TempDir,
    daemon: Option<Containerd>,
}

impl TestContainerd {
    /// containerd with the pause image imported: ready for CRI.
    pub fn start() -> Self {
        let ctd = Self::start_bare();
        import::ensure_pause_image(&ctd.socket)
            .unwrap_or_else(|e| panic!("importing the pause image: {e}\n{}", ctd.log()));
        ctd
    }

    /// containerd with no images.
    pub fn start_bare() -> Self {
        for program in ["containerd", "ctr", "runc", "containerd-shim-runc-v2"] {
            assert!(
                in_path(program),
                "{program} is not installed: {INSTALL_HINT}"
            );
        }
        assert!(
            daemon::find_cni_bin_dir().is_some(),
            "no CNI plugins in {:?}: {INSTALL_HINT}",
            daemon::CNI_BIN_DIRS
        );
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("containerd.sock");
        let cni_conf_dir = dir.path().join("net.d");
        let config = DaemonConfig::new(dir.path(), &socket, &cni_conf_dir);
        let daemon =
            Containerd::start(config).unwrap_or_else(|e| panic!("starting containerd: {e}"));
        TestContainerd {
            socket,
            cni_conf_dir,
            dir,
            daemon: Some(daemon),
        }
    }

    /// containerd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// The image names in the k8s.io namespace.
    pub fn images(&self) -> Vec<String> {
        import::list_images(&self.socket).unwrap()
    }

    /// Builds the busybox test image (`ferrokube.local/busybox:test`) from this machine's
    /// busybox-static and imports it.
    pub fn import_busybox(&self) {
        let archive = busybox_archive(&self.dir.path().join("busybox-rootfs"));
        import::import_bytes(&self.socket, &archive).unwrap();
    }

    /// `ctr --address SOCK -n k8s.io ARGS…`, killed after `timeout`.
    pub fn ctr(&self, args: &[&str], timeout: Duration) -> Output {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(&self.socket)
            .args(["--namespace", import::K8S_NAMESPACE])
            .args(args);
        run_bounded(cmd, timeout)
    }
}

impl Drop for TestContainerd {
    fn drop(&mut self) {
        // Tasks first: their shims outlive containerd, and their mounts the test dir.
        if let Err(e) = daemon::remove_all_tasks(&self.socket) {
            eprintln!("removing containerd's tasks: {e}");
        }
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.stop();
        }
        unmount_under(self.dir.path());
    }
}

/// The busybox test image (`ferrokube.local/busybox:test`) as an archive, its root
/// filesystem made in `rootfs` from this machine's busybox-static.
pub fn busybox_archive(rootfs: &Path) -> Vec<u8> {
    testimage::busybox_rootfs(rootfs).unwrap_or_else(|e| panic!("{e}: {INSTALL_HINT}"));
    let entries = oci::entries_from_dir(rootfs).unwrap();
    oci::build_archive(
        testimage::BUSYBOX_IMAGE,
        &entries,
        &testimage::busybox_image_config(),
    )
    .unwrap()
    .bytes
}

pub fn in_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

pub use ferrokube_containerd::daemon::unmount_under;

/// Runs a command with its output captured; kills it after `timeout`.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} did not finish within {timeout:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}
