//! The `healthCheckNodePort` servers of LoadBalancer Services with
//! `externalTrafficPolicy: Local` (upstream's `pkg/proxy/healthcheck` service health
//! server): a cloud load balancer sends traffic only to nodes that answer 200 on that
//! port, which a node does while it has a local endpoint of the Service and its proxier
//! is healthy. Any path is answered with upstream's JSON (tab-indented): the Service's
//! namespace and name, `localEndpoints` and `serviceProxyHealthy`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::model::{ServiceKey, ServicePort};
use crate::runner::SharedHealth;

/// One Service's server.
#[derive(Debug)]
struct Instance {
    service: ServiceKey,
    local_endpoints: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

/// Every health check server of this node.
#[derive(Debug)]
pub struct ServiceHealth {
    address: Ipv4Addr,
    health: SharedHealth,
    servers: BTreeMap<u16, Instance>,
}

impl Drop for ServiceHealth {
    fn drop(&mut self) {
        for i in self.servers.values() {
            i.task.abort();
        }
    }
}

/// What the Services want: port → (Service, its local endpoints' count).
pub fn wanted(
    desired: &BTreeMap<ServiceKey, Vec<ServicePort>>,
) -> BTreeMap<u16, (ServiceKey, usize)> {
    let mut out = BTreeMap::new();
    for (key, ports) in desired {
        let Some(port) = ports.iter().find_map(|p| p.health_check_node_port) else {
            continue;
        };
        let local: BTreeSet<Ipv4Addr> = ports
            .iter()
            .flat_map(|p| {
                p.external_endpoints
                    .iter()
                    .filter(|e| e.local)
                    .map(|e| e.ip)
            })
            .collect();
        // Two Services on one port (the API server never allocates that): the first keeps it.
        out.entry(port).or_insert((key.clone(), local.len()));
    }
    out
}

impl ServiceHealth {
    /// Servers on `address` (0.0.0.0: every address of the node).
    pub fn new(address: Ipv4Addr, health: SharedHealth) -> ServiceHealth {
        ServiceHealth {
            address,
            health,
            servers: BTreeMap::new(),
        }
    }

    /// The port a Service's server listens on (tests).
    pub fn ports(&self) -> Vec<u16> {
        self.servers.keys().copied().collect()
    }

    /// Opens, closes and updates servers after a sync. A port that cannot be opened is
    /// logged and tried again at the next sync.
    pub async fn sync(&mut self, desired: &BTreeMap<ServiceKey, Vec<ServicePort>>) {
        let wanted = wanted(desired);
        self.servers.retain(|port, i| {
            let keep = wanted.get(port).is_some_and(|(svc, _)| *svc == i.service);
            if !keep {
                i.task.abort();
                tracing::info!(service = %i.service, port, "health check node port closed");
            }
            keep
        });
        for (port, (service, count)) in wanted {
            if let Some(i) = self.servers.get(&port) {
                i.local_endpoints.store(count, Ordering::Relaxed);
                continue;
            }
            let listener = match TcpListener::bind(SocketAddr::from((self.address, port))).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(service = %service, port, error = %e, "opening the health check node port failed; retrying at the next sync");
                    continue;
                }
            };
            tracing::info!(service = %service, port, "health check node port open");
            let local_endpoints = Arc::new(AtomicUsize::new(count));
            let task = tokio::spawn(serve(
                listener,
                service.clone(),
                local_endpoints.clone(),
                self.health.clone(),
            ));
            self.servers.insert(
                port,
                Instance {
                    service,
                    local_endpoints,
                    task,
                },
            );
        }
    }
}

async fn serve(
    listener: TcpListener,
    service: ServiceKey,
    local_endpoints: Arc<AtomicUsize>,
    health: SharedHealth,
) {
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let count = local_endpoints.load(Ordering::Relaxed);
        let healthy = health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .healthy(Instant::now());
        let body = body(&service, count, healthy);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                answer(conn, count > 0 && healthy, body),
            )
            .await;
        });
    }
}

/// Upstream's body (tab-indented JSON).
fn body(service: &ServiceKey, count: usize, healthy: bool) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": {},\n\t\t\"name\": {}\n\t}},\n\t\"localEndpoints\": {count},\n\t\"serviceProxyHealthy\": {healthy}\n}}",
        q(&service.namespace),
        q(&service.name)
    )
}

/// Reads the request head (at most 8 KiB) and answers.
async fn answer(mut conn: TcpStream, ok: bool, body: String) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let status = if ok {
        "200 OK"
    } else {
        "503 Service Unavailable"
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(response.as_bytes()).await?;
    conn.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn lb(
        name: &str,
        health_port: Option<u16>,
        local: &[[u8; 4]],
    ) -> (ServiceKey, Vec<ServicePort>) {
        let key = ServiceKey {
            namespace: "default".into(),
            name: name.into(),
        };
        let eps = crate::model::endpoints(local, 8080, true);
        let mut p = ServicePort::new(
            key.clone(),
            Protocol::Tcp,
            Ipv4Addr::new(10, 96, 0, 20),
            80,
            eps,
        );
        p.external_local = true;
        p.health_check_node_port = health_port;
        let mut udp = p.clone();
        udp.protocol = Protocol::Udp;
        (key, vec![p, udp])
    }

    async fn get(port: u16) -> String {
        let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        out
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn a_node_with_local_endpoints_answers_200_and_without_503() {
        let health: SharedHealth = Default::default();
        health.lock().unwrap().synced_once = true;
        let mut servers = ServiceHealth::new(Ipv4Addr::LOCALHOST, health.clone());
        let port = free_port();
        let desired: BTreeMap<_, _> = [
            lb("web", Some(port), &[[10, 1, 0, 1], [10, 1, 0, 2]]),
            lb("plain", None, &[]),
        ]
        .into();
        servers.sync(&desired).await;
        assert_eq!(servers.ports(), [port]);
        let answer = get(port).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(
            answer.contains("Content-Type: application/json"),
            "{answer}"
        );
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"service": {"namespace": "default", "name": "web"}, "localEndpoints": 2, "serviceProxyHealthy": true})
        );
        assert!(body.contains("\n\t\"localEndpoints\": 2,"), "{body}");

        // No local endpoint any more: 503.
        let desired: BTreeMap<_, _> = [lb("web", Some(port), &[])].into();
        servers.sync(&desired).await;
        let answer = get(port).await;
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(answer.contains("\"localEndpoints\": 0"), "{answer}");

        // An unhealthy proxier: 503 even with endpoints.
        let desired: BTreeMap<_, _> = [lb("web", Some(port), &[[10, 1, 0, 1]])].into();
        servers.sync(&desired).await;
        health.lock().unwrap().synced_once = false;
        let answer = get(port).await;
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(
            answer.contains("\"serviceProxyHealthy\": false"),
            "{answer}"
        );

        // The Service gone: the port closes.
        servers.sync(&BTreeMap::new()).await;
        assert!(servers.ports().is_empty());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
    }
}
