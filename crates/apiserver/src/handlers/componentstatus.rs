//! `componentstatuses` (deprecated upstream, still served, and what the seeds show with
//! `kubectl get cs`): the health of each storage server, and the scheduler's and
//! controller-manager's `/healthz` on their secure ports (10259, 10257), probed as
//! upstream probes them (HTTPS, certificate not verified).

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::registry::Registry;

/// GET https://127.0.0.1:<port>/healthz → Ok(body) on 200, Err(reason) otherwise.
async fn probe(port: u16) -> Result<String, String> {
    let config = crate::tls::insecure_client_config(&[]).map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let url = format!("https://127.0.0.1:{port}/healthz");
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("Get \"{url}\": dial tcp 127.0.0.1:{port}: connect: {e}"))?;
        let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let _ = tls.read_to_end(&mut buf).await;
        let text = String::from_utf8_lossy(&buf).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let code = head.split_whitespace().nth(1).unwrap_or("");
        if code == "200" {
            Ok(body.trim().to_string())
        } else {
            Err(format!("Get \"{url}\": HTTP status code {code}"))
        }
    };
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("Get \"{url}\": timeout")),
    }
}

fn status(name: &str, result: Result<String, String>) -> Value {
    let condition = match result {
        Ok(message) => json!({"type": "Healthy", "status": "True", "message": message}),
        Err(error) => json!({"type": "Healthy", "status": "False", "error": error}),
    };
    json!({"kind": "ComponentStatus", "apiVersion": "v1", "metadata": {"name": name}, "conditions": [condition]})
}

/// Every component's status, in upstream's order.
pub async fn all(registry: &Registry) -> Vec<Value> {
    let (scheduler, cm, members) =
        tokio::join!(probe(10259), probe(10257), registry.storage.member_health());
    let mut out = vec![
        status("scheduler", scheduler),
        status("controller-manager", cm),
    ];
    // One entry per storage server, as upstream lists every --etcd-servers member.
    for (i, health) in members.into_iter().enumerate() {
        out.push(status(
            &format!("etcd-{i}"),
            health.map(|()| "ok".to_string()),
        ));
    }
    out
}

/// The Table kubectl shows: NAME STATUS MESSAGE ERROR.
pub fn table(items: &[Value], version: &str) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|cs| {
            let c = &cs["conditions"][0];
            let healthy = if c["status"] == "True" { "Healthy" } else { "Unhealthy" };
            json!({
                "cells": [cs["metadata"]["name"], healthy, c.get("message").cloned().unwrap_or(json!("")), c.get("error").cloned().unwrap_or(json!(""))],
                "object": crate::handlers::response::partial_metadata(cs, version),
            })
        })
        .collect();
    let col = |n: &str| json!({"name": n, "type": "string", "format": if n == "Name" { "name" } else { "" }, "description": "", "priority": 0});
    json!({
        "kind": "Table", "apiVersion": format!("meta.k8s.io/{version}"), "metadata": {},
        "columnDefinitions": [col("Name"), col("Status"), col("Message"), col("Error")],
        "rows": rows,
    })
}
