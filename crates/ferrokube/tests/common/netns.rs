//! Labs of "hosts" made of network namespaces (`two_nodes`, `ha`): running the tools
//! that build them, and tearing everything down.

use std::path::Path;
use std::process::{Child, Command};

use super::containerd::unmount_under;

/// Runs a command that must succeed (`ip netns add …`).
pub fn sh(args: &[&str]) {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `program` run in network namespace `ns` only (its mounts and the rest stay the
/// host's).
pub fn command(ns: &str, program: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{ns}"))
        .arg("--")
        .arg(program);
    c
}

/// Sends `signal` (`TERM`, `KILL`, …) to `child`, gives it 20 s to exit, then kills
/// and reaps it.
pub fn stop(mut child: Child, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Tears a lab down: freezes the `agents` (their kubelets restart nothing), removes
/// every container of the containerds on `sockets` while they still answer, kills
/// `children`, then every process naming `dir` (containerds, shims), unmounts what is
/// mounted under `dir` and deletes the `namespaces`.
pub fn teardown(
    agents: &[u32],
    sockets: &[std::path::PathBuf],
    children: Vec<Child>,
    dir: &Path,
    namespaces: &[String],
) {
    for pid in agents {
        let _ = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status();
    }
    for socket in sockets.iter().filter(|s| s.exists()) {
        if let Err(e) = ferrokube_containerd::daemon::remove_all_tasks(socket) {
            eprintln!("removing the containers of {}: {e}", socket.display());
        }
    }
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = Command::new("pkill")
        .args(["-f", &dir.display().to_string()])
        .status();
    unmount_under(dir);
    for ns in namespaces {
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
    }
}

/// Polls `f` every 250 ms until it holds. After `secs` it panics with `report()` (the
/// cluster's state and logs); with `FK_HOLD=<secs>` set it first keeps the lab `name`
/// up that long for a look with `ip netns exec`.
pub fn wait(
    name: &str,
    what: &str,
    secs: u64,
    mut f: impl FnMut() -> bool,
    report: impl Fn() -> String,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        if std::time::Instant::now() > deadline {
            if let Ok(hold) = std::env::var("FK_HOLD") {
                eprintln!("holding for inspection: {name}");
                std::thread::sleep(std::time::Duration::from_secs(hold.parse().unwrap_or(300)));
            }
            panic!("timed out waiting for {what}\n{}", report());
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}
