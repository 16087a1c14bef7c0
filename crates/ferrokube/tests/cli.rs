#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `ferrokube` binary as a user runs it: help, flags, errors, and the store CLI.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn ferrokube(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        vec!["--help"],
        vec!["server", "--help"],
        vec!["store", "--help"],
        vec!["store", "status", "--help"],
        vec!["store", "get", "--help"],
        vec!["store", "list", "--help"],
        vec!["store", "put", "--help"],
        vec!["store", "delete", "--help"],
        vec!["store", "watch", "--help"],
        vec!["store", "compact", "--help"],
    ] {
        let o = ferrokube(&args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("Usage:"), "{args:?}");
    }
    assert!(text(&ferrokube(&["server", "--help"])).contains("--etcd-servers"));
}

#[test]
fn bad_flags_are_named() {
    let o = ferrokube(&["server", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--no-such-flag"), "{}", text(&o));
    let o = ferrokube(&["server", "--etcd-compaction-interval", "5 parsecs"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("--etcd-compaction-interval"),
        "{}",
        text(&o)
    );
    let o = ferrokube(&["store", "status", "--etcd-cafile", "/x.pem"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("--etcd-cafile is set but --etcd-servers is not"),
        "{}",
        text(&o)
    );
    let o = ferrokube(&["store", "status", "--etcd-servers", ","]);
    assert!(text(&o).contains("--etcd-servers"), "{}", text(&o));
}

#[test]
fn store_round_trip_and_persistence() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let o = ferrokube(&["store", "put", "--data-dir", db, "/demo/a", "hello"]);
    assert!(o.status.success(), "{}", text(&o));
    let value_file = dir.path().join("v.txt");
    std::fs::write(&value_file, "from a file\n").unwrap();
    let o = ferrokube(&[
        "store",
        "put",
        "--data-dir",
        db,
        "/demo/b",
        "--from-file",
        value_file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = ferrokube(&["store", "get", "--data-dir", db, "/demo/a"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello\n");
    let o = ferrokube(&["store", "list", "--data-dir", db, "/demo/"]);
    let listing = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        listing.starts_with("/demo/a\t2\t5\n/demo/b\t3\t12\n"),
        "{listing}"
    );
    let o = ferrokube(&["store", "status", "--data-dir", db]);
    let status = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        status.contains("backend: embedded")
            && status.contains("revision: 3")
            && status.contains("keys: 2"),
        "{status}"
    );
    let o = ferrokube(&[
        "store",
        "watch",
        "--data-dir",
        db,
        "/demo/",
        "--from-revision",
        "1",
        "--count",
        "2",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "CREATED\t/demo/a\t2\nCREATED\t/demo/b\t3\n"
    );
    let o = ferrokube(&["store", "delete", "--data-dir", db, "/demo/a"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = ferrokube(&["store", "get", "--data-dir", db, "/demo/a"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("not found"), "{}", text(&o));
    let o = ferrokube(&[
        "store",
        "get",
        "--data-dir",
        db,
        "/demo/a",
        "--revision",
        "2",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "hello\n",
        "history is readable"
    );
}

#[test]
fn corrupt_data_dir_stops_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let o = ferrokube(&[
        "store",
        "put",
        "--data-dir",
        db.to_str().unwrap(),
        "/a",
        "1",
    ]);
    assert!(o.status.success());
    ferrokube(&[
        "store",
        "put",
        "--data-dir",
        db.to_str().unwrap(),
        "/b",
        "2",
    ]);
    let wal = std::fs::read_dir(&db)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("wal-"))
        .unwrap();
    let mut data = std::fs::read(&wal).unwrap();
    data[20] ^= 0xff;
    std::fs::write(&wal, &data).unwrap();
    let o = ferrokube(&["store", "status", "--data-dir", db.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let msg = text(&o);
    assert!(
        msg.contains("--data-dir") && msg.contains(wal.file_name().unwrap().to_str().unwrap()),
        "{msg}"
    );
    assert!(msg.contains("corrupt"), "{msg}");
    assert!(!msg.contains("panicked"), "{msg}");
}

/// Reads lines on a thread so that waiting for one is bounded even if none comes.
fn wait_for_line(
    lines: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    timeout: Duration,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => continue,
            Err(_) => panic!("no {needle:?} within {timeout:?}"),
        }
    }
}

fn line_reader(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn free_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string()
}

#[test]
fn server_runs_until_sigterm_and_locks_its_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut server = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args([
            "server",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--secure-port",
            &free_port(),
            "--disable-agent",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = line_reader(server.stdout.take().unwrap());
    let line = wait_for_line(
        &lines,
        "API server on https://127.0.0.1:",
        Duration::from_secs(20),
    );
    assert!(line.contains("embedded"), "{line}");
    // While it runs, the directory is locked against a second process.
    let o = ferrokube(&["store", "status", "--data-dir", db.to_str().unwrap()]);
    assert!(
        text(&o).contains("in use by another ferrokube process"),
        "{}",
        text(&o)
    );
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = server.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(Path::new(&db).join("LOCK").exists());
    let o = ferrokube(&["store", "status", "--data-dir", db.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}
