//! etcd's gRPC errors interpreted as storage errors, as upstream's
//! `storage/etcd3/errors.go` (`interpretWatchError`, `interpretListError`) does with the
//! error strings of etcd's `api/v3rpc/rpctypes`, plus the retry rules of etcd's clientv3
//! (`isSafeRetryImmutableRPC` / `isSafeRetryMutableRPC` in `client/v3/retry.go`).

use std::error::Error as StdError;
use std::fmt::Write as _;

/// A failed request to etcd, with a readable cause and the client's error behind it.
#[derive(Debug, thiserror::Error)]
#[error("{cause}")]
pub struct RequestFailed {
    pub cause: String,
    #[source]
    pub source: etcd_client::Error,
}

impl RequestFailed {
    pub fn new(source: etcd_client::Error) -> Self {
        RequestFailed {
            cause: describe(&source),
            source,
        }
    }
}

/// Every endpoint that did not answer at start-up, with its cause.
#[derive(Debug, thiserror::Error)]
#[error("{}", list_failures(.failures))]
pub struct EndpointsFailed {
    pub failures: Vec<(String, String)>,
}

fn list_failures(failures: &[(String, String)]) -> String {
    match failures {
        [(_, cause)] => cause.clone(),
        many => many
            .iter()
            .map(|(endpoint, cause)| format!("{endpoint}: {cause}"))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// What an etcd error means to the storage layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `mvcc: required revision has been compacted`
    Compacted,
    /// `mvcc: required revision is a future revision`
    FutureRevision,
    /// `etcdserver: request is too large`
    TooLarge,
    /// `etcdserver: requested lease not found` (the lease expired before the put)
    LeaseNotFound,
    /// Anything else.
    Other,
}

pub fn kind(err: &etcd_client::Error) -> Kind {
    let etcd_client::Error::GRpcStatus(status) = err else {
        return Kind::Other;
    };
    let message = status.message();
    if message.contains("required revision has been compacted") {
        Kind::Compacted
    } else if message.contains("required revision is a future revision") {
        Kind::FutureRevision
    } else if message.contains("request is too large") {
        Kind::TooLarge
    } else if message.contains("requested lease not found") {
        Kind::LeaseNotFound
    } else {
        Kind::Other
    }
}

/// gRPC's `UNAVAILABLE` status code.
const CODE_UNAVAILABLE: i32 = 14;

/// Whether a read may be sent again: etcd's clientv3 retries immutable requests on
/// `Unavailable` (connection failures, no leader, leader changed, timeouts).
pub fn retry_read(err: &etcd_client::Error) -> bool {
    match err {
        etcd_client::Error::GRpcStatus(status) => status.code() as i32 == CODE_UNAVAILABLE,
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

/// Whether a write may be sent again: only when it certainly was not applied, that is
/// the connection to the member could not be made, or the member refused it before
/// proposing it (no leader, proposal dropped). Anything else may have been applied.
pub fn retry_write(err: &etcd_client::Error) -> bool {
    let etcd_client::Error::GRpcStatus(status) = err else {
        return false;
    };
    let message = status.message();
    message.contains("etcdserver: no leader")
        || message.contains("raft proposal dropped")
        || message.contains("etcdserver: not capable")
        || sources(status.source()).any(|e| format!("{e:?}").starts_with("ConnectError"))
}

/// An error and its sources, outermost first. tonic marks connection failures with
/// `ConnectError`, a type etcd-client does not re-export, hence the look at `Debug`.
fn sources<'a>(
    first: Option<&'a (dyn StdError + 'static)>,
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(first, |e| {
        let e: &'a (dyn StdError + 'static) = *e;
        e.source()
    })
}

/// A one-line cause: the gRPC message plus every distinct underlying error, e.g.
/// `transport error: tcp connect error: Connection refused (os error 111)`.
pub fn describe(err: &etcd_client::Error) -> String {
    let mut out = match err {
        etcd_client::Error::GRpcStatus(status) if !status.message().is_empty() => {
            status.message().to_string()
        }
        etcd_client::Error::GRpcStatus(status) => format!("gRPC status {:?}", status.code()),
        other => other.to_string(),
    };
    if let etcd_client::Error::GRpcStatus(status) = err {
        for source in sources(status.source()) {
            let text = source.to_string();
            // tonic's generic wrapper says nothing its source does not say better.
            if text.is_empty() || text == "transport error" {
                continue;
            }
            if !out.contains(&text) {
                let _ = write!(out, ": {text}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request to a port nobody listens on was never sent: safe to retry, even a write.
    #[tokio::test]
    async fn refused_connections_may_be_retried() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut client = etcd_client::Client::connect([format!("http://127.0.0.1:{port}")], None)
            .await
            .unwrap();
        let err = client.put("k", "v", None).await.unwrap_err();
        assert!(retry_write(&err), "{err:?}");
        assert!(retry_read(&err), "{err:?}");
        let cause = describe(&err);
        assert!(
            cause.contains("refused") && !cause.contains("transport error"),
            "{cause}"
        );
        assert_eq!(kind(&err), Kind::Other);
    }
}
