//! The load balancer in-process against small TCP servers on 127.0.0.1: proxying
//! with half close, next upstream, reload, idle timeout, connection limit, active
//! health checks (TCP and HTTPS) and the metrics endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrokube_lb::{
    Balance, Config, CopyMode, HealthCheckConfig, HealthCheckKind, HealthTls, Lb, ListenerConfig,
    ServerConfig, UpstreamConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(10);

/// A server that greets with `tag\n` and then echoes.
async fn tagged(tag: &'static str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = s.write_all(format!("{tag}\n").as_bytes()).await;
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, task)
}

/// An address nothing listens on.
async fn dead() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

fn server(addr: SocketAddr) -> ServerConfig {
    ServerConfig {
        name: addr.to_string(),
        address: addr,
        weight: 1,
        max_fails: 3,
        fail_timeout: Duration::from_secs(30),
        backup: false,
        down: false,
    }
}

fn config(balance: Balance, servers: &[SocketAddr]) -> Config {
    let mut listener = ListenerConfig::new("127.0.0.1:0".parse().unwrap(), "u");
    listener.connect_timeout = Duration::from_secs(1);
    Config {
        listeners: vec![listener],
        upstreams: vec![UpstreamConfig {
            name: "u".into(),
            balance,
            servers: servers.iter().copied().map(server).collect(),
            health_check: None,
        }],
        ..Config::default()
    }
}

/// Connects through the lb and reads the greeting.
async fn greet(lb: SocketAddr) -> (TcpStream, String) {
    let mut s = TcpStream::connect(lb).await.unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while tokio::time::timeout(LIMIT, s.read(&mut b))
        .await
        .unwrap()
        .unwrap()
        == 1
    {
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    (s, String::from_utf8(line).unwrap())
}

async fn echo_ok(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut got = vec![0u8; msg.len()];
    tokio::time::timeout(LIMIT, s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, msg);
}

async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(LIMIT, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out)
}

#[tokio::test]
async fn half_close_passes_through_in_both_copy_modes() {
    // An upstream that reads to EOF, then answers with the byte count.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut all = Vec::new();
                s.read_to_end(&mut all).await.unwrap();
                s.write_all(format!("{} bytes", all.len()).as_bytes())
                    .await
                    .unwrap();
            });
        }
    });
    for mode in [CopyMode::Buffer, CopyMode::Splice, CopyMode::Auto] {
        let lb = Lb::start_with(config(Balance::RoundRobin, &[addr]), mode)
            .await
            .unwrap();
        let mut s = TcpStream::connect(lb.local_addrs()[0]).await.unwrap();
        let payload = vec![7u8; 300_000];
        s.write_all(&payload).await.unwrap();
        s.shutdown().await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(LIMIT, s.read_to_string(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer, "300000 bytes", "{mode:?}");
        lb.shutdown(Duration::ZERO).await;
    }
}

#[tokio::test]
async fn a_dead_server_costs_no_client_connection() {
    let (a, _t) = tagged("A").await;
    let gone = dead().await;
    for balance in [
        Balance::RoundRobin,
        Balance::LeastConn,
        Balance::HashRemoteAddr { consistent: true },
    ] {
        let lb = Lb::start(config(balance, &[gone, a])).await.unwrap();
        for _ in 0..6 {
            let (mut s, tag) = greet(lb.local_addrs()[0]).await;
            assert_eq!(tag, "A", "{balance:?}");
            echo_ok(&mut s, b"ping").await;
        }
        lb.shutdown(Duration::ZERO).await;
    }
}

#[tokio::test]
async fn reload_swaps_servers_and_listeners_and_keeps_open_connections() {
    let (a, _ta) = tagged("A").await;
    let (b, _tb) = tagged("B").await;
    let lb = Lb::start(config(Balance::RoundRobin, &[a])).await.unwrap();
    let first = lb.local_addrs()[0];
    let (mut old, tag) = greet(first).await;
    assert_eq!(tag, "A");

    // Same listener (by its configured address), new server list, one more listener.
    let mut next = config(Balance::RoundRobin, &[b]);
    next.listeners[0].address = lb.config().listeners[0].address;
    let mut extra = ListenerConfig::new("127.0.0.1:0".parse().unwrap(), "u");
    extra.address = "127.0.0.2:0".parse().unwrap();
    next.listeners.push(extra);
    lb.reload(next.clone()).await.unwrap();
    let addrs = lb.local_addrs();
    assert_eq!(addrs.len(), 2);
    assert_eq!(addrs[0], first, "the listening socket is kept");
    assert_eq!(greet(addrs[0]).await.1, "B");
    assert_eq!(greet(addrs[1]).await.1, "B");
    echo_ok(&mut old, b"still here").await;

    // A configuration that cannot be applied leaves everything as it was.
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut bad = next.clone();
    bad.listeners
        .push(ListenerConfig::new(taken.local_addr().unwrap(), "u"));
    assert!(lb.reload(bad).await.is_err());
    let mut bad = next.clone();
    bad.listeners[0].upstream = "nope".into();
    assert!(lb.reload(bad).await.is_err());
    assert_eq!(lb.local_addrs(), addrs);
    assert_eq!(greet(addrs[1]).await.1, "B");

    // Dropping the second listener closes its socket but not its connections.
    let (mut on_second, _) = greet(addrs[1]).await;
    next.listeners.pop();
    lb.reload(next).await.unwrap();
    assert_eq!(lb.local_addrs(), vec![first]);
    echo_ok(&mut on_second, b"on").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(addrs[1]).await.is_err());
    echo_ok(&mut old, b"and still").await;
    lb.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn idle_connections_close_after_proxy_timeout() {
    let (a, _t) = tagged("A").await;
    let mut c = config(Balance::RoundRobin, &[a]);
    c.listeners[0].idle_timeout = Duration::from_millis(300);
    let lb = Lb::start(c).await.unwrap();
    let (mut s, _) = greet(lb.local_addrs()[0]).await;
    echo_ok(&mut s, b"x").await;
    let started = std::time::Instant::now();
    let mut b = [0u8; 1];
    let n = tokio::time::timeout(LIMIT, s.read(&mut b))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed");
    assert!(started.elapsed() >= Duration::from_millis(250));
    lb.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn max_connections_closes_the_excess() {
    let (a, _t) = tagged("A").await;
    let mut c = config(Balance::RoundRobin, &[a]);
    c.max_connections = Some(1);
    c.metrics_address = Some("127.0.0.1:0".parse().unwrap());
    let lb = Lb::start(c).await.unwrap();
    let (_first, _) = greet(lb.local_addrs()[0]).await;
    let mut second = TcpStream::connect(lb.local_addrs()[0]).await.unwrap();
    let mut b = [0u8; 8];
    let n = tokio::time::timeout(LIMIT, second.read(&mut b))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "the second connection is closed without a greeting");
    let (_, body) = http_get(lb.metrics_addr().unwrap(), "/metrics").await;
    assert!(
        body.contains("ferrokube_lb_connections_rejected_total{listener=\"127.0.0.1:0\"} 1"),
        "{body}"
    );
    assert_eq!(lb.active_connections(), 1);
    lb.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn tcp_health_checks_take_a_dead_server_out_and_metrics_say_so() {
    let (a, _t) = tagged("A").await;
    let gone = dead().await;
    let mut c = config(Balance::RoundRobin, &[a, gone]);
    let mut hc = HealthCheckConfig::new(HealthCheckKind::Tcp);
    hc.interval = Duration::from_millis(100);
    c.upstreams[0].health_check = Some(hc);
    c.metrics_address = Some("127.0.0.1:0".parse().unwrap());
    for s in &mut c.upstreams[0].servers {
        s.max_fails = 0; // only the active checks count
    }
    let lb = Lb::start(c).await.unwrap();
    let metrics = lb.metrics_addr().unwrap();
    let down = format!("ferrokube_lb_upstream_up{{upstream=\"u\",server=\"{gone}\"}} 0");
    let up = format!("ferrokube_lb_upstream_up{{upstream=\"u\",server=\"{a}\"}} 1");
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let (_, body) = http_get(metrics, "/metrics").await;
        if body.contains(&down) && body.contains(&up) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Round robin now never picks the dead server, so no connect fails.
    for _ in 0..6 {
        assert_eq!(greet(lb.local_addrs()[0]).await.1, "A");
    }
    let (_, body) = http_get(metrics, "/metrics").await;
    let fails =
        format!("ferrokube_lb_upstream_connect_failures_total{{upstream=\"u\",server=\"{gone}\"}}");
    assert!(!body.contains(&format!("{fails} 1")), "{body}");
    assert_eq!(http_get(metrics, "/healthz").await.0, 200);
    assert_eq!(http_get(metrics, "/readyz").await.0, 200);
    assert_eq!(http_get(metrics, "/nope").await.0, 404);
    lb.shutdown(Duration::ZERO).await;
}

/// An HTTPS server answering every request with `status`.
async fn https(status: u16) -> (SocketAddr, String) {
    let (cert, key) =
        ferrokube_component_base::tls::generate_self_signed(&["127.0.0.1".into()]).unwrap();
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let tls = Arc::new(tls);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(s).await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                    )
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, cert)
}

#[tokio::test]
async fn https_health_checks_want_a_200_from_a_verified_server() {
    let (ok, ca_ok) = https(200).await;
    let (failing, _) = https(500).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_ok).unwrap();
    let mut c = config(Balance::RoundRobin, &[ok, failing]);
    c.metrics_address = Some("127.0.0.1:0".parse().unwrap());
    let mut hc = HealthCheckConfig::new(HealthCheckKind::Https {
        path: "/readyz".into(),
        tls: HealthTls {
            ca_file: None,
            insecure: true,
            client_cert: None,
            server_name: None,
        },
    });
    hc.interval = Duration::from_millis(100);
    c.upstreams[0].health_check = Some(hc.clone());
    let lb = Lb::start(c.clone()).await.unwrap();
    let metrics = lb.metrics_addr().unwrap();
    let series = |s: SocketAddr, v: u8| {
        format!("ferrokube_lb_upstream_up{{upstream=\"u\",server=\"{s}\"}} {v}")
    };
    let wait_for = |want: Vec<String>| async move {
        let deadline = std::time::Instant::now() + LIMIT;
        loop {
            let (_, body) = http_get(metrics, "/metrics").await;
            if want.iter().all(|w| body.contains(w)) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{want:?} in {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    wait_for(vec![series(ok, 1), series(failing, 0)]).await;

    // Verified against the first server's own certificate as CA: the second server's
    // certificate (another self-signed one) fails verification.
    hc.kind = HealthCheckKind::Https {
        path: "/readyz".into(),
        tls: HealthTls {
            ca_file: Some(ca.clone()),
            insecure: false,
            client_cert: None,
            server_name: None,
        },
    };
    let (ok2, _) = https(200).await;
    c.upstreams[0].servers = vec![server(ok), server(ok2)];
    c.upstreams[0].health_check = Some(hc.clone());
    lb.reload(c.clone()).await.unwrap();
    wait_for(vec![series(ok, 1), series(ok2, 0)]).await;

    // A CA file that does not exist: the reload is refused and says which file.
    hc.kind = HealthCheckKind::Https {
        path: "/readyz".into(),
        tls: HealthTls {
            ca_file: Some(dir.path().join("missing.pem")),
            insecure: false,
            client_cert: None,
            server_name: None,
        },
    };
    c.upstreams[0].health_check = Some(hc);
    let err = lb.reload(c).await.unwrap_err().to_string();
    assert!(err.contains("missing.pem"), "{err}");
    lb.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn graceful_shutdown_waits_for_open_connections() {
    let (a, _t) = tagged("A").await;
    let lb = Lb::start(config(Balance::RoundRobin, &[a])).await.unwrap();
    let (mut s, _) = greet(lb.local_addrs()[0]).await;
    let lb2 = lb.clone();
    let stopping = tokio::spawn(async move { lb2.shutdown(Duration::from_secs(5)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!stopping.is_finished());
    echo_ok(&mut s, b"still served").await;
    drop(s);
    tokio::time::timeout(LIMIT, stopping)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lb.active_connections(), 0);
    assert!(lb.reload(config(Balance::RoundRobin, &[a])).await.is_err());
}
