//! `/exec`, `/attach` and `/portForward`: the runtime is asked (CRI `Exec`, `Attach`,
//! `PortForward`) for a one-time URL on its streaming server, and the client's request
//! is forwarded there, upgrade and all (upstream's kubelet does the same with its
//! `UpgradeAwareHandler`). containerd's streaming server speaks the channel protocols
//! kubectl offers (WebSocket `v4.channel.k8s.io` and older, SPDY `v4.channel.k8s.io`
//! … and `portforward.k8s.io`); the bytes pass through untouched.

use std::collections::HashMap;

use ferrokube_cri::{v1 as cri, CallExt};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::{status, Body};
use crate::runtime::{CONTAINER_NAME, POD_NAME, POD_NAMESPACE};
use crate::Kubelet;

/// Which streaming call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Exec,
    Attach,
    PortForward,
}

/// Query values as upstream reads them (Go's `url.ParseQuery`): repeated keys kept in
/// order, `+` and percent escapes decoded.
pub fn query_values(query: &str) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        out.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    out
}

fn flag(q: &HashMap<String, Vec<String>>, name: &str) -> bool {
    q.get(name)
        .and_then(|v| v.first())
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True"))
}

fn labels(ns: &str, pod: &str) -> HashMap<String, String> {
    HashMap::from([
        (POD_NAMESPACE.to_string(), ns.to_string()),
        (POD_NAME.to_string(), pod.to_string()),
    ])
}

/// The instances of container `container` of pod `ns/pod` in the runtime (only running
/// ones if `running_only`), newest attempt first.
pub async fn instances(
    k: &Kubelet,
    ns: &str,
    pod: &str,
    container: &str,
    running_only: bool,
) -> Result<Vec<cri::Container>, ferrokube_cri::Error> {
    let mut selector = labels(ns, pod);
    selector.insert(CONTAINER_NAME.to_string(), container.to_string());
    let state = running_only.then_some(cri::ContainerStateValue {
        state: cri::ContainerState::ContainerRunning as i32,
    });
    let list = k
        .cri
        .runtime
        .clone()
        .list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                state,
                label_selector: selector,
                ..Default::default()
            }),
        })
        .await
        .call("ListContainers")?;
    let mut all = list.containers;
    all.sort_by_key(|c| std::cmp::Reverse(c.metadata.as_ref().map_or(0, |m| m.attempt)));
    Ok(all)
}

async fn ready_sandbox(
    k: &Kubelet,
    ns: &str,
    pod: &str,
) -> Result<Option<cri::PodSandbox>, ferrokube_cri::Error> {
    let list = k
        .cri
        .runtime
        .clone()
        .list_pod_sandbox(cri::ListPodSandboxRequest {
            filter: Some(cri::PodSandboxFilter {
                state: Some(cri::PodSandboxStateValue {
                    state: cri::PodSandboxState::SandboxReady as i32,
                }),
                label_selector: labels(ns, pod),
                ..Default::default()
            }),
        })
        .await
        .call("ListPodSandbox")?;
    Ok(list.items.into_iter().max_by_key(|s| s.created_at))
}

/// Asks the runtime for the streaming URL of this request.
async fn stream_url(
    k: &Kubelet,
    kind: Kind,
    ns: &str,
    pod: &str,
    container: Option<&str>,
    query: &str,
) -> Result<String, Response<Body>> {
    let q = query_values(query);
    let internal = |e: ferrokube_cri::Error| {
        status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &e.to_string(),
        )
    };
    let mut runtime = k.cri.runtime.clone();
    if kind == Kind::PortForward {
        let sandbox = ready_sandbox(k, ns, pod)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("pod {ns}/{pod} not found"),
                )
            })?;
        let ports: Vec<i32> = q
            .get("port")
            .into_iter()
            .chain(q.get("ports"))
            .flatten()
            .flat_map(|v| v.split(','))
            .filter_map(|p| p.trim().parse().ok())
            .collect();
        let r = runtime
            .port_forward(cri::PortForwardRequest {
                pod_sandbox_id: sandbox.id,
                port: ports,
            })
            .await
            .call("PortForward")
            .map_err(internal)?;
        return Ok(r.url);
    }
    let name = container.unwrap_or_default();
    let c = instances(k, ns, pod, name, true)
        .await
        .map_err(internal)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("container not found (\"{name}\")"),
            )
        })?;
    let (stdin, stdout, stderr, tty) = (
        flag(&q, "stdin") || flag(&q, "input"),
        flag(&q, "stdout") || flag(&q, "output"),
        flag(&q, "stderr") || flag(&q, "error"),
        flag(&q, "tty"),
    );
    let url = if kind == Kind::Exec {
        let cmd = q.get("command").cloned().unwrap_or_default();
        if cmd.is_empty() {
            return Err(status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "you must specify at least 1 command",
            ));
        }
        runtime
            .exec(cri::ExecRequest {
                container_id: c.id,
                cmd,
                tty,
                stdin,
                stdout,
                stderr: stderr && !tty,
            })
            .await
            .call("Exec")
            .map_err(internal)?
            .url
    } else {
        runtime
            .attach(cri::AttachRequest {
                container_id: c.id,
                stdin,
                tty,
                stdout,
                stderr: stderr && !tty,
            })
            .await
            .call("Attach")
            .map_err(internal)?
            .url
    };
    Ok(url)
}

/// Serves one streaming request by forwarding it to the runtime.
pub async fn serve(
    k: &Kubelet,
    req: &mut Request<Incoming>,
    kind: Kind,
    ns: &str,
    pod: &str,
    container: Option<&str>,
    query: &str,
) -> Response<Body> {
    let url = match stream_url(k, kind, ns, pod, container, query).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(rest) = url.strip_prefix("http://") else {
        return status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &format!("unsupported streaming URL {url:?} (TLS streaming is not supported)"),
        );
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    let tcp = match tokio::net::TcpStream::connect(host).await {
        Ok(t) => t,
        Err(e) => {
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &format!("error dialing the runtime's streaming server {host}: {e}"),
            )
        }
    };
    match ferrokube_component_base::proxy::forward(tcp, req, &path, host, &["authorization"]).await
    {
        Ok(resp) => resp.map(|b| b.map_err(std::io::Error::other).boxed()),
        Err(e) => status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &e.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_like_go() {
        let q = query_values("command=ls&command=-l%20%2F&stdout=true&tty=1&x");
        assert_eq!(q["command"], ["ls", "-l /"]);
        assert!(flag(&q, "stdout") && flag(&q, "tty") && !flag(&q, "stdin"));
        assert_eq!(q["x"], [""]);
        assert_eq!(query_values("v=a+b%zz%41")["v"], ["a b%zzA"]);
        assert_eq!(query_values("v=%4")["v"], ["%4"]);
    }
}
