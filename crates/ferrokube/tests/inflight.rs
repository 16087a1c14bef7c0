#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `--max-mutating-requests-inflight` / `--max-requests-inflight`: a request over the
//! budget is answered 429 TooManyRequests with `Retry-After`, as upstream's max-in-flight
//! filter; watches do not count.

mod common;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child, u16, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn url(port: u16, path: &str) -> String {
    format!("https://127.0.0.1:{port}{path}")
}

fn start(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut args = vec![
        "apiserver".to_string(),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        format!("--data-dir={}", dir.path().join("db").display()),
        format!("--cert-dir={}", dir.path().join("tls").display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let child = Command::new(env!("CARGO_BIN_EXE_ferrokube"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child, port, dir);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new("curl")
            .args(["-sk", &url(port, "/readyz")])
            .output()
            .unwrap();
        if out.stdout == b"ok" {
            return server;
        }
        assert!(Instant::now() < deadline, "apiserver did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn post(port: u16, name: &str) -> (String, String) {
    let body =
        format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}}}}"#);
    let out = Command::new("curl")
        .args([
            "-sk",
            "-D",
            "-",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body,
            &url(port, "/api/v1/namespaces/default/configmaps"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

#[test]
fn requests_over_the_inflight_budget_get_429() {
    let s = start(&["--max-mutating-requests-inflight=1"]);
    // A create whose body is still coming holds the only mutating slot.
    let mut slow = Command::new("curl")
        .args([
            "-sk",
            "--http1.1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-H",
            "Transfer-Encoding: chunked",
            "-T",
            "-",
            &url(s.1, "/api/v1/namespaces/default/configmaps"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = slow.stdin.take().unwrap();
    stdin.write_all(b"{\"apiVersion\":\"v1\",").unwrap();
    stdin.flush().unwrap();
    // Wait until the server counts it in flight.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = Command::new("curl")
            .args(["-sk", &url(s.1, "/metrics")])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&metrics.stdout).to_string();
        if text.contains("apiserver_current_inflight_requests{request_kind=\"mutating\"} 1") {
            break;
        }
        assert!(Instant::now() < deadline, "the slow request never arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let (head, body) = loop {
        let (head, body) = post(s.1, "second");
        if head.starts_with("HTTP/1.1 429") || head.starts_with("HTTP/2 429") {
            break (head, body);
        }
        assert!(Instant::now() < deadline, "never refused: {head}{body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["code"], 429);
    assert_eq!(status["details"]["retryAfterSeconds"], 1);
    // Reads have their own budget.
    let get = Command::new("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url(s.1, "/api/v1/namespaces"),
        ])
        .output()
        .unwrap();
    assert_eq!(get.stdout, b"200");
    // The slow request finishes; the slot is free again.
    stdin
        .write_all(b"\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"first\"}}")
        .unwrap();
    drop(stdin);
    let out = slow.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"201");
    let (head, _) = post(s.1, "third");
    assert!(head.contains(" 201"), "{head}");
    let metrics = Command::new("curl")
        .args(["-sk", &url(s.1, "/metrics")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        text.lines().any(|l| l
            .starts_with("apiserver_dropped_requests_total{request_kind=\"mutating\"}")
            && !l.ends_with(" 0")),
        "{text}"
    );
}
