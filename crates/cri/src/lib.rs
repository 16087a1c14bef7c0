//! The kubelet's side of the Container Runtime Interface (CRI v1, `runtime.v1`): a
//! gRPC client for the runtime and image services of a container runtime such as
//! containerd, over its unix socket. Mirrors upstream's `k8s.io/cri-client`
//! (remote runtime/image service) — connection, timeouts and error mapping; the
//! messages are upstream's own `api.proto`, vendored.

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Endpoint, Uri};

/// The code generated from proto/ (not held to the workspace's lints).
#[allow(
    clippy::all,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_debug_implementations
)]
mod generated {
    pub mod runtime {
        tonic::include_proto!("runtime.v1");
    }
    pub mod health {
        tonic::include_proto!("grpc.health.v1");
    }
}

/// The generated CRI v1 messages and service clients.
pub use generated::runtime as v1;

pub mod health;

pub use tonic::transport::Channel;
pub use tonic::Code;
pub use v1::image_service_client::ImageServiceClient;
pub use v1::runtime_service_client::RuntimeServiceClient;

/// What went wrong talking to the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint is not a `unix://` URL or a socket path.
    #[error(
        "container runtime endpoint {0:?}: only unix sockets are supported (unix:///path or /path)"
    )]
    Endpoint(String),
    /// The socket could not be connected.
    #[error("connecting to the container runtime at {path}: {source}")]
    Connect {
        path: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// The runtime answered a call with an error status.
    #[error("{call}: {}", .status.message())]
    Call {
        call: &'static str,
        #[source]
        status: tonic::Status,
    },
}

impl Error {
    /// The gRPC code of a failed call (`NotFound` for a missing container, …).
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Call { status, .. } => Some(status.code()),
            _ => None,
        }
    }

    /// Whether the object the call named does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(tonic::Code::NotFound)
    }
}

/// Parses `--container-runtime-endpoint`: `unix:///run/containerd/containerd.sock` or a
/// bare path.
pub fn socket_path(endpoint: &str) -> Result<PathBuf, Error> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(Error::Endpoint(endpoint.to_string()))
    }
}

/// A connection to a CRI runtime: both services share one HTTP/2 channel.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
    endpoint: String,
}

/// The largest message the kubelet accepts (upstream's maxMsgSize is 16 MiB).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

impl Runtime {
    /// Connects to the runtime at `endpoint` (lazily re-connecting after failures).
    pub async fn connect(endpoint: &str) -> Result<Runtime, Error> {
        let path = socket_path(endpoint)?;
        let shown = path.display().to_string();
        // The URI is a placeholder: the connector dials the socket.
        let channel = Endpoint::from_static("http://cri.sock")
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(120))
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map(TokioIo::new)
                }
            }))
            .await
            .map_err(|source| Error::Connect {
                path: shown.clone(),
                source,
            })?;
        Ok(Runtime {
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE),
            images: ImageServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE),
            endpoint: shown,
        })
    }

    /// The socket this connection dials.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

/// Maps a call's result into [`Error::Call`] named after the call.
pub trait CallExt<T> {
    fn call(self, call: &'static str) -> Result<T, Error>;
}

impl<T> CallExt<T> for Result<tonic::Response<T>, tonic::Status> {
    fn call(self, call: &'static str) -> Result<T, Error> {
        self.map(tonic::Response::into_inner)
            .map_err(|status| Error::Call { call, status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            socket_path("unix:///run/containerd/containerd.sock").ok(),
            Some(PathBuf::from("/run/containerd/containerd.sock"))
        );
        assert_eq!(socket_path("/x.sock").ok(), Some(PathBuf::from("/x.sock")));
        assert!(socket_path("tcp://1.2.3.4:1").is_err());
        assert!(socket_path("relative.sock").is_err());
    }
}
