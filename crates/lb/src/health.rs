//! Active health checks (what nginx Plus's `health_check` and HAProxy's `option
//! httpchk` do for API servers): every `interval`, per server, a TCP connect or an
//! HTTPS `GET path` that must answer 200 within `timeout`. `fails` consecutive
//! failures mark a server down, `passes` successes up again; each transition is
//! logged once, with the address and the reason.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

use crate::config::{HealthCheckConfig, HealthCheckKind, HealthTls};
use crate::upstream::Pool;
use crate::Error;

fn tls_error(upstream: &str, message: String) -> Error {
    Error::HealthCheckTls {
        upstream: upstream.to_string(),
        message,
    }
}

fn read(upstream: &str, path: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| tls_error(upstream, format!("{}: {e}", path.display())))
}

/// The TLS client of an upstream's HTTPS checks (files read now: a reload re-reads
/// them).
pub(crate) fn connector(upstream: &str, tls: &HealthTls) -> Result<TlsConnector, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(upstream, e.to_string()))?;
    let builder = match (&tls.ca_file, tls.insecure) {
        (_, true) => builder.dangerous().with_custom_certificate_verifier(
            ferrokube_component_base::tls::AnyServerCert::new(provider),
        ),
        (Some(ca), false) => {
            let pem = read(upstream, ca)?;
            let roots = ferrokube_component_base::tls::root_store(&pem)
                .map_err(|e| tls_error(upstream, format!("{}: {e}", ca.display())))?;
            builder.with_root_certificates(roots)
        }
        (None, false) => {
            return Err(tls_error(upstream, "caFile or insecure is required".into()));
        }
    };
    let config = match &tls.client_cert {
        Some((cert, key)) => {
            let cert_pem = read(upstream, cert)?;
            let key_pem = read(upstream, key)?;
            let chain: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&cert_pem).collect();
            let chain =
                chain.map_err(|e| tls_error(upstream, format!("{}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| tls_error(upstream, format!("{}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls_error(upstream, e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// One check of `addr`; `Err` says why it failed.
async fn check_once(
    addr: SocketAddr,
    host: &str,
    kind: &HealthCheckKind,
    tls: Option<&TlsConnector>,
) -> Result<(), String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (path, tls_cfg) = match kind {
        HealthCheckKind::Tcp => return Ok(()),
        HealthCheckKind::Https { path, tls } => (path, tls),
    };
    let connector = tls.ok_or_else(|| "no TLS client".to_string())?;
    let sni = tls_cfg.server_name.as_deref().unwrap_or(host).to_string();
    let name = ServerName::try_from(sni).map_err(|e| format!("server name: {e}"))?;
    let mut stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ferrokube-lb\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending GET {path}: {e}"))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 4096 {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the answer to GET {path}: {e}"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    let line = String::from_utf8_lossy(&buf);
    let line = line.lines().next().unwrap_or("");
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some("200")) if v.starts_with("HTTP/1.") => Ok(()),
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => {
            Err(format!("GET {path}: HTTP {code}"))
        }
        _ => Err(format!("GET {path}: not an HTTP answer")),
    }
}

/// Starts the checks of every server of `pool`; they stop when the returned sender
/// is dropped or set.
pub(crate) fn spawn(
    pool: Arc<Pool>,
    cfg: HealthCheckConfig,
    tls: Option<TlsConnector>,
) -> watch::Sender<bool> {
    let (stop, rx) = watch::channel(false);
    let tls = tls.map(Arc::new);
    for (i, peer) in pool.peers.iter().enumerate() {
        if peer.cfg.down {
            continue;
        }
        let (pool, cfg, tls, mut rx) = (pool.clone(), cfg.clone(), tls.clone(), rx.clone());
        let addr = peer.cfg.address;
        let host = crate::config::split_host_port(&peer.cfg.name)
            .map_or_else(|| addr.ip().to_string(), |(h, _)| h.to_string());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(cfg.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut passes, mut fails) = (0u32, 0u32);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = rx.changed() => return,
                }
                let result = match tokio::time::timeout(
                    cfg.timeout,
                    check_once(addr, &host, &cfg.kind, tls.as_deref()),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(format!("no answer within {:?}", cfg.timeout)),
                };
                let Some(peer) = pool.peers.get(i) else {
                    return;
                };
                let up = peer.state.active_up.load(Ordering::Relaxed);
                match result {
                    Ok(()) => {
                        fails = 0;
                        passes = passes.saturating_add(1);
                        if !up && passes >= cfg.passes {
                            peer.state.active_up.store(true, Ordering::Relaxed);
                            tracing::info!(upstream = %pool.name, server = %addr, "upstream server is up: health check passed");
                        }
                    }
                    Err(reason) => {
                        passes = 0;
                        fails = fails.saturating_add(1);
                        if up && fails >= cfg.fails {
                            peer.state.active_up.store(false, Ordering::Relaxed);
                            tracing::warn!(upstream = %pool.name, server = %addr, %reason, "upstream server is down: health check failed");
                        }
                    }
                }
            }
        });
    }
    stop
}
