//! Container lifecycle hooks (upstream's `pkg/kubelet/lifecycle`): a postStart or
//! preStop handler runs a command in the container (`exec`, through CRI ExecSync), GETs
//! a URL (`httpGet`, host defaulting to the pod's IP, named ports resolved against the
//! container's ports), or waits (`sleep`). Each is bounded (upstream's 30 s for exec
//! and HTTP; a sleep by the pod's grace period at the caller).

use std::time::Duration;

use ferrokube_cri::{v1 as cri, CallExt};
use k8s_openapi::api::core::v1::{Container, LifecycleHandler};

/// How long an exec or HTTP hook may take.
const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `handler` for container `c` (running as `container_id` in a pod at `pod_ip`);
/// errors are upstream's wording of why the hook failed.
pub async fn run(
    rt: &mut ferrokube_cri::RuntimeServiceClient<ferrokube_cri::Channel>,
    handler: &LifecycleHandler,
    c: &Container,
    container_id: &str,
    pod_ip: &str,
) -> Result<(), String> {
    if let Some(exec) = &handler.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        let r = rt
            .exec_sync(cri::ExecSyncRequest {
                container_id: container_id.to_string(),
                cmd: cmd.clone(),
                timeout: HOOK_TIMEOUT.as_secs() as i64,
            })
            .await
            .call("ExecSync")
            .map_err(|e| e.to_string())?;
        if r.exit_code != 0 {
            let out = String::from_utf8_lossy(if r.stderr.is_empty() {
                &r.stdout
            } else {
                &r.stderr
            })
            .trim()
            .to_string();
            return Err(format!(
                "command '{}' exited with {}: {out}",
                cmd.join(" "),
                r.exit_code
            ));
        }
        return Ok(());
    }
    if let Some(get) = &handler.http_get {
        let port = crate::probes::port_of(&get.port, c)?;
        let host = get
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_string());
        let mut path = get.path.clone().unwrap_or_default();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        let https = get.scheme.as_deref() == Some("HTTPS");
        let headers: Vec<(String, String)> = get
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        return crate::probes::http_get(https, &host, port, &path, &headers, HOOK_TIMEOUT).await;
    }
    if let Some(sleep) = &handler.sleep {
        let secs = u64::try_from(sleep.seconds).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        return Ok(());
    }
    Err("a lifecycle handler needs exec, httpGet or sleep".into())
}
