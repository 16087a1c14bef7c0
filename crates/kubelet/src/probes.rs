//! Liveness, readiness and startup probes, as upstream's `pkg/kubelet/prober`: one
//! task per container and probe kind runs the probe every `periodSeconds` after
//! `initialDelaySeconds`, counts consecutive results against `successThreshold` and
//! `failureThreshold`, records the outcome in [`ProbeResults`] and wakes the pod's
//! worker when it changes. Liveness and readiness wait for the startup probe to
//! succeed. Handlers: `exec` (CRI ExecSync), `httpGet` (HTTP or HTTPS, the latter
//! unverified as upstream), `tcpSocket`, and `grpc` (the gRPC health protocol).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ferrokube_cri::{v1 as cri, CallExt};
use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::Kubelet;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Startup, Kind::Liveness, Kind::Readiness];

    fn name(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }

    /// The container's probe of this kind.
    pub fn of(self, c: &Container) -> Option<&Probe> {
        match self {
            Kind::Liveness => c.liveness_probe.as_ref(),
            Kind::Readiness => c.readiness_probe.as_ref(),
            Kind::Startup => c.startup_probe.as_ref(),
        }
    }
}

/// The outcome so far of one probe of one container instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not decided yet (initial delay, thresholds not reached).
    Unknown,
    Success,
    Failure,
}

/// The results of a pod's probes: (container name, kind) → (container ID, outcome).
#[derive(Debug, Default)]
pub struct ProbeResults {
    map: Mutex<HashMap<(String, Kind), (String, Outcome)>>,
}

impl ProbeResults {
    /// The outcome for this container instance (`Unknown` for another instance).
    pub fn get(&self, container: &str, id: &str, kind: Kind) -> Outcome {
        match self.map.lock().get(&(container.to_string(), kind)) {
            Some((cid, o)) if cid == id => *o,
            _ => Outcome::Unknown,
        }
    }

    fn set(&self, container: &str, id: &str, kind: Kind, o: Outcome) -> bool {
        let mut map = self.map.lock();
        let key = (container.to_string(), kind);
        let changed = map.get(&key) != Some(&(id.to_string(), o));
        map.insert(key, (id.to_string(), o));
        changed
    }

    /// Whether the container is started (no startup probe, or it succeeded).
    pub fn started(&self, c: &Container, id: &str) -> bool {
        Kind::Startup.of(c).is_none() || self.get(&c.name, id, Kind::Startup) == Outcome::Success
    }

    /// Whether the running container counts as ready.
    pub fn ready(&self, c: &Container, id: &str) -> bool {
        self.started(c, id)
            && (Kind::Readiness.of(c).is_none()
                || self.get(&c.name, id, Kind::Readiness) == Outcome::Success)
    }

    /// The probe that says the container must be restarted, if any.
    pub fn must_restart(&self, c: &Container, id: &str) -> Option<Kind> {
        [Kind::Startup, Kind::Liveness]
            .into_iter()
            .find(|k| k.of(c).is_some() && self.get(&c.name, id, *k) == Outcome::Failure)
    }
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(u64::try_from(v.unwrap_or(default).max(0)).unwrap_or(0))
}

/// A named or numbered container port.
pub(crate) fn port_of(port: &IntOrString, c: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port {name:?} in container {}", c.name))
        }
    }
}

/// Runs one probe once: `Ok(())` on success, `Err(message)` on failure.
pub async fn run_once(
    k: &Kubelet,
    probe: &Probe,
    c: &Container,
    container_id: &str,
    pod_ip: &str,
) -> Result<(), String> {
    let timeout = secs(probe.timeout_seconds, 1).max(Duration::from_secs(1));
    if let Some(exec) = &probe.exec {
        let r = k
            .cri
            .runtime
            .clone()
            .exec_sync(cri::ExecSyncRequest {
                container_id: container_id.to_string(),
                cmd: exec.command.clone().unwrap_or_default(),
                timeout: i64::try_from(timeout.as_secs()).unwrap_or(1),
            })
            .await
            .call("ExecSync")
            .map_err(|e| e.to_string())?;
        if r.exit_code == 0 {
            return Ok(());
        }
        let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
        out.push_str(&String::from_utf8_lossy(&r.stderr));
        return Err(if out.trim().is_empty() {
            format!(
                "command {:?} exited with {}",
                exec.command.clone().unwrap_or_default(),
                r.exit_code
            )
        } else {
            out.trim_end().to_string()
        });
    }
    if let Some(http) = &probe.http_get {
        let https = http
            .scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"));
        let port = port_of(&http.port, c)?;
        let host = http
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_string());
        let path = http
            .path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into());
        let headers: Vec<(String, String)> = http
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        return http_get(https, &host, port, &path, &headers, timeout).await;
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = port_of(&tcp.port, c)?;
        let host = tcp
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_string());
        return match tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: {e}")),
            Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
        };
    }
    if let Some(g) = &probe.grpc {
        let port = u16::try_from(g.port).map_err(|_| format!("invalid port {}", g.port))?;
        return ferrokube_cri::health::check(
            pod_ip,
            port,
            g.service.as_deref().unwrap_or_default(),
            timeout,
        )
        .await;
    }
    Err("probe has no handler".into())
}

/// Anything a probe's HTTP request can go over (TCP, or TLS over TCP).
trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Conn for T {}

/// Upstream's HTTP probe: a GET with `kube-probe` as the agent, 200–399 passing; over
/// HTTPS the server's certificate is not verified (as upstream).
pub async fn http_get(
    https: bool,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    let scheme = if https { "https" } else { "http" };
    let url = if host.contains(':') {
        format!("{scheme}://[{host}]:{port}{path}")
    } else {
        format!("{scheme}://{host}:{port}{path}")
    };
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        let mut conn: Box<dyn Conn> = if https {
            let config = ferrokube_component_base::tls::insecure_client_config(&[b"http/1.1"])
                .map_err(|e| format!("Get \"{url}\": {e}"))?;
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| format!("Get \"{url}\": {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("Get \"{url}\": {e}"))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        conn.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut head = vec![0u8; 64];
        let n = conn.read(&mut head).await.map_err(|e| e.to_string())?;
        let line = String::from_utf8_lossy(&head[..n]).into_owned();
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("malformed HTTP response {line:?}"))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ))
        })
}

/// What a prober task needs.
pub struct Prober {
    pub k: Arc<Kubelet>,
    pub pod: Pod,
    pub container: Container,
    pub container_id: String,
    pub pod_ip: String,
    pub kind: Kind,
    pub results: Arc<ProbeResults>,
    pub wake: Arc<Notify>,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober")
            .field("container", &self.container.name)
            .field("container_id", &self.container_id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Prober {
    /// Probes until aborted (the pod worker aborts it when the container changes).
    pub async fn run(self) {
        let Some(probe) = self.kind.of(&self.container).cloned() else {
            return;
        };
        let name = self.container.name.clone();
        let id = self.container_id.clone();
        // Readiness starts out failed, the others undecided (upstream's initial values).
        let initial = if self.kind == Kind::Readiness {
            Outcome::Failure
        } else {
            Outcome::Unknown
        };
        if self.results.set(&name, &id, self.kind, initial) {
            self.wake.notify_one();
        }
        tokio::time::sleep(secs(probe.initial_delay_seconds, 0)).await;
        let period = secs(probe.period_seconds, 10).max(Duration::from_secs(1));
        let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
        let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
        let (mut successes, mut failures) = (0, 0);
        loop {
            // Liveness and readiness wait for startup.
            if self.kind != Kind::Startup && !self.results.started(&self.container, &id) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            let current = self.results.get(&name, &id, self.kind);
            // A decided startup probe runs no more.
            if self.kind == Kind::Startup && current != Outcome::Unknown {
                return;
            }
            match run_once(&self.k, &probe, &self.container, &id, &self.pod_ip).await {
                Ok(()) => {
                    failures = 0;
                    successes += 1;
                    if successes >= success_threshold
                        && self.results.set(&name, &id, self.kind, Outcome::Success)
                    {
                        self.wake.notify_one();
                    }
                }
                Err(message) => {
                    successes = 0;
                    failures += 1;
                    self.k.events.pod(
                        &self.pod,
                        crate::events::container_field(false, &name),
                        true,
                        "Unhealthy",
                        format!("{} probe failed: {message}", self.kind.name()),
                    );
                    if failures >= failure_threshold {
                        if self.results.set(&name, &id, self.kind, Outcome::Failure) {
                            self.wake.notify_one();
                        }
                        // A failed liveness or startup probe ends this instance; the
                        // worker restarts the container and starts a new prober.
                        if self.kind != Kind::Readiness {
                            return;
                        }
                    }
                }
            }
            tokio::time::sleep(period).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    /// Serves one fixed HTTP response per connection, over TLS when `tls`.
    async fn serve(tls: bool, status: &'static str) -> u16 {
        use tokio_rustls::rustls;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cert = ferrokube_component_base::tls::serving_cert(
            None,
            None,
            None,
            "probe-test",
            &["127.0.0.1".to_string()],
        )
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(cert.chain, cert.key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let mut conn: Box<dyn Conn> = if tls {
                        match acceptor.accept(tcp).await {
                            Ok(t) => Box::new(t),
                            Err(_) => return,
                        }
                    } else {
                        Box::new(tcp)
                    };
                    let mut buf = vec![0u8; 1024];
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                    // A request not as the kubelet sends it gets a 400.
                    let as_sent = req.starts_with("GET /healthz HTTP/1.1\r\n")
                        && req.contains("User-Agent: kube-probe/")
                        && req.contains("X-Probe: yes");
                    let status = if as_sent { status } else { "400 Bad Request" };
                    let _ = conn
                        .write_all(
                            format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                        )
                        .await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn http_and_https_get_probes() {
        let t = Duration::from_secs(2);
        let h = [("X-Probe".to_string(), "yes".to_string())];
        for tls in [false, true] {
            let ok = serve(tls, "200 OK").await;
            assert_eq!(
                http_get(tls, "127.0.0.1", ok, "/healthz", &h, t).await,
                Ok(())
            );
            let bad = serve(tls, "503 Service Unavailable").await;
            assert_eq!(
                http_get(tls, "127.0.0.1", bad, "/healthz", &h, t).await,
                Err("HTTP probe failed with statuscode: 503".into())
            );
        }
        // A plain HTTP server spoken to over HTTPS fails the handshake.
        let plain = serve(false, "200 OK").await;
        let e = http_get(true, "127.0.0.1", plain, "/healthz", &h, t)
            .await
            .unwrap_err();
        assert!(
            e.starts_with(&format!("Get \"https://127.0.0.1:{plain}/healthz\": ")),
            "{e}"
        );
    }

    #[test]
    fn ports_by_number_or_name() {
        let c = Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(port_of(&IntOrString::Int(80), &c), Ok(80));
        assert_eq!(port_of(&IntOrString::String("http".into()), &c), Ok(8080));
        assert_eq!(port_of(&IntOrString::String("81".into()), &c), Ok(81));
        assert!(port_of(&IntOrString::String("nope".into()), &c).is_err());
        assert!(port_of(&IntOrString::Int(70000), &c).is_err());
    }

    #[test]
    fn readiness_waits_for_startup_and_outcomes_belong_to_one_instance() {
        let probe = Some(Probe::default());
        let c = Container {
            name: "c".into(),
            startup_probe: probe.clone(),
            readiness_probe: probe,
            ..Default::default()
        };
        let r = ProbeResults::default();
        assert!(!r.started(&c, "a") && !r.ready(&c, "a"));
        r.set("c", "a", Kind::Startup, Outcome::Success);
        assert!(r.started(&c, "a") && !r.ready(&c, "a"));
        r.set("c", "a", Kind::Readiness, Outcome::Success);
        assert!(r.ready(&c, "a"));
        assert!(!r.ready(&c, "b"), "a new instance starts over");
        r.set("c", "a", Kind::Startup, Outcome::Failure);
        assert_eq!(r.must_restart(&c, "a"), Some(Kind::Startup));
        let plain = Container {
            name: "p".into(),
            ..Default::default()
        };
        assert!(r.ready(&plain, "x") && r.must_restart(&plain, "x").is_none());
    }
}
