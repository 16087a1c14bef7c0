//! Connecting to the cluster, as upstream's `storagebackend/factory/etcd3.go`
//! (`newETCD3Client`): TLS from the configured files, then one client balanced over
//! every endpoint. Before that, each endpoint is probed on its own so that a start-up
//! failure names every member that did not answer and why, instead of a bare
//! "transport error".

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use ferrokube_storage::{Result, StorageError};
use tokio::task::JoinSet;

use crate::errors::{describe, EndpointsFailed, RequestFailed};
use crate::keys::Keys;
use crate::lease::LeaseManager;
use crate::{EtcdConfig, EtcdStorage, Inner};

/// HTTP/2 pings notice a member that stopped answering (upstream: keepalive 30 s / 10 s
/// in `newETCD3Client`; shorter here so a hung member is left sooner). etcd accepts a
/// ping every 5 s (`--grpc-keepalive-min-time`), and only with a stream open.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

impl EtcdStorage {
    /// Reads the TLS files, checks that at least one endpoint answers, and connects to
    /// all of them.
    ///
    /// Errors: [`StorageError::Io`] naming a TLS file that cannot be read,
    /// [`StorageError::InvalidRequest`] naming the flag and file of a TLS file that is not
    /// PEM, or inconsistent settings, [`StorageError::Unavailable`] naming every endpoint
    /// and its cause when none answers within the dial timeout.
    pub async fn connect(config: EtcdConfig) -> Result<EtcdStorage> {
        let tls = config.load_tls()?;
        let uses_tls = tls.is_some();
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.dial_timeout)
            .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT)
            .with_keep_alive_while_idle(false)
            // As upstream's clientv3.WithRequireLeader on watches: a member cut off from
            // the quorum refuses requests instead of serving stale data or silent watches.
            .with_require_leader(true);
        if let Some(tls) = tls {
            options = options.with_tls(tls);
        }

        let mut failures = probe_all(&config.endpoints, &options, config.dial_timeout).await;
        if uses_tls && config.cert_file.is_none() {
            // Over TLS 1.3 a server that wants a client certificate may just close the
            // connection after the handshake, so say what is probably missing.
            for (_, cause) in failures.iter_mut().filter(|(_, c)| !c.contains("refused")) {
                cause.push_str(
                    " (no client certificate was presented: --etcd-certfile and --etcd-keyfile \
                     are needed if etcd runs with --client-cert-auth)",
                );
            }
        }
        if failures.len() == config.endpoints.len() {
            return Err(StorageError::Unavailable {
                endpoint: config.endpoints.join(", "),
                source: Box::new(EndpointsFailed { failures }),
            });
        }
        for (endpoint, cause) in &failures {
            tracing::warn!(%endpoint, %cause, "etcd member did not answer; using the others");
        }

        let probe_options = options.clone();
        let client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(|e| StorageError::Unavailable {
                endpoint: config.endpoints.join(", "),
                source: Box::new(RequestFailed::new(e)),
            })?;
        tracing::info!(endpoints = %config.endpoints.join(","), prefix = %config.key_prefix(), "connected to etcd");
        // Lists and watch responses can be far larger than tonic's 4 MiB default
        // (upstream sets MaxCallRecvMsgSize to MaxInt32).
        let kv = client.kv_client().max_decoding_message_size(usize::MAX);
        let watch = client.watch_client().max_decoding_message_size(usize::MAX);
        Ok(EtcdStorage {
            inner: Arc::new(Inner {
                kv,
                watch,
                lease: client.lease_client(),
                leases: LeaseManager::default(),
                keys: Keys::new(config.key_prefix()),
                endpoints: config.endpoints.join(","),
                endpoint_list: config.endpoints.clone(),
                probe_options,
                retry_window: config.dial_timeout,
                compacted: AtomicI64::new(0),
            }),
        })
    }
}

/// What a probe of one endpoint asks.
#[derive(Debug, Clone, Copy)]
enum Probe {
    /// Its status (what `etcdctl endpoint status` does): the member answers.
    Status,
    /// A linearizable read through it alone (upstream's etcd prober): the member
    /// answers and has a quorum.
    Read,
}

/// Each endpoint's health, in configuration order (a [`Probe::Read`] within
/// `timeout`); errors name the endpoint.
pub(crate) async fn member_health(
    endpoints: &[String],
    options: &ConnectOptions,
    timeout: Duration,
) -> Vec<std::result::Result<(), String>> {
    probe_each(endpoints, options, timeout, Probe::Read)
        .await
        .into_iter()
        .zip(endpoints)
        .map(|(r, endpoint)| r.map_err(|cause| format!("{endpoint}: {cause}")))
        .collect()
}

/// Probes every endpoint at once; returns the ones that failed, in configuration order.
async fn probe_all(
    endpoints: &[String],
    options: &ConnectOptions,
    timeout: Duration,
) -> Vec<(String, String)> {
    probe_each(endpoints, options, timeout, Probe::Status)
        .await
        .into_iter()
        .zip(endpoints)
        .filter_map(|(r, endpoint)| r.err().map(|cause| (endpoint.clone(), cause)))
        .collect()
}

/// Probes every endpoint at once; the results in configuration order.
async fn probe_each(
    endpoints: &[String],
    options: &ConnectOptions,
    timeout: Duration,
    kind: Probe,
) -> Vec<std::result::Result<(), String>> {
    let mut probes = JoinSet::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let (endpoint, options) = (endpoint.clone(), options.clone());
        probes.spawn(async move { (i, probe(&endpoint, options, timeout, kind).await) });
    }
    let mut out = vec![Err("probe task failed".to_string()); endpoints.len()];
    while let Some(joined) = probes.join_next().await {
        match joined {
            Ok((i, result)) => {
                if let Some(slot) = out.get_mut(i) {
                    *slot = result;
                }
            }
            Err(e) => tracing::debug!(error = %e, "etcd probe task failed"),
        }
    }
    out
}

/// Connects to one endpoint and asks what `kind` says, within `timeout`.
async fn probe(
    endpoint: &str,
    options: ConnectOptions,
    timeout: Duration,
    kind: Probe,
) -> Result<(), String> {
    let attempt = async {
        let mut client = Client::connect([endpoint], Some(options)).await?;
        match kind {
            Probe::Status => client.status().await.map(drop),
            Probe::Read => client.get("health", None).await.map(drop),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("no answer within the dial timeout ({timeout:?})")),
    }
}
