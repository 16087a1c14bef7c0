//! Reads and writes, as upstream's `storage/etcd3/store.go`: `Create` is a transaction on
//! `create_revision == 0`, `GuaranteedUpdate`'s write a transaction on `mod_revision`,
//! `Delete` a transaction returning the deleted value, `GetList` a range with limit,
//! continue key and revision. Requests are retried across members following etcd's
//! clientv3 rules (reads when a member is unavailable, writes only when not sent).

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
    TxnResponse, WatchOptions,
};
use ferrokube_storage::{
    check_value_size, validate_key, KeyValue, RangeRequest, RangeResponse, Result, StorageError,
    MAX_VALUE_SIZE,
};
use tokio::time::Instant;

use crate::errors::{self, Kind, RequestFailed};
use crate::keys::protocol;
use crate::lease::ttl_seconds;
use crate::Inner;

/// Whether a request changes the store (and so may be resent only when not applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
}

/// The context an etcd error is interpreted in.
#[derive(Clone, Copy, Debug)]
pub struct ErrCtx<'a> {
    pub key: &'a str,
    pub revision: i64,
    pub size: usize,
}

impl<'a> ErrCtx<'a> {
    pub fn key(key: &'a str) -> Self {
        ErrCtx {
            key,
            revision: 0,
            size: 0,
        }
    }
}

impl Inner {
    /// Runs `call` until it succeeds, fails for good, or the retry window is over.
    pub(crate) async fn retrying<T, F, Fut>(
        &self,
        op: Op,
        mut call: F,
    ) -> Result<T, etcd_client::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + self.retry_window;
        let mut backoff = Duration::from_millis(25);
        loop {
            let err = match call().await {
                Ok(v) => return Ok(v),
                Err(err) => err,
            };
            let retry = match op {
                Op::Read => errors::retry_read(&err),
                Op::Write => errors::retry_write(&err),
            };
            if !retry || Instant::now() + backoff > deadline {
                return Err(err);
            }
            tracing::debug!(cause = %errors::describe(&err), ?op, "etcd request failed, retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// Turns an etcd error into a storage error, asking etcd for the details the error
    /// string lacks (the compacted and the current revision).
    pub(crate) async fn interpret(&self, err: etcd_client::Error, ctx: ErrCtx<'_>) -> StorageError {
        match errors::kind(&err) {
            Kind::Compacted => StorageError::Compacted {
                requested: ctx.revision,
                compacted: self.compacted_revision().await,
            },
            Kind::FutureRevision => StorageError::FutureRevision {
                requested: ctx.revision,
                current: self.current_revision().await.unwrap_or(0),
            },
            Kind::TooLarge => StorageError::ValueTooLarge {
                key: ctx.key.to_string(),
                size: ctx.size,
                limit: MAX_VALUE_SIZE,
            },
            Kind::LeaseNotFound | Kind::Other => self.unavailable(err),
        }
    }

    pub(crate) fn unavailable(&self, err: etcd_client::Error) -> StorageError {
        StorageError::Unavailable {
            endpoint: self.endpoints.clone(),
            source: Box::new(RequestFailed::new(err)),
        }
    }

    /// Where compaction stands: etcd reports it to a watch started at revision 1.
    async fn compacted_revision(&self) -> i64 {
        let known = self.compacted.load(Ordering::Relaxed);
        let probe = async {
            let mut client = self.watch.clone();
            let opts = WatchOptions::new().with_start_revision(1);
            let mut stream = client.watch(self.keys.stored("/"), Some(opts)).await.ok()?;
            while let Ok(Some(resp)) = stream.message().await {
                if resp.compact_revision() > 0 {
                    return Some(resp.compact_revision());
                }
                if !resp.created() {
                    break;
                }
            }
            None
        };
        match tokio::time::timeout(Duration::from_secs(2), probe).await {
            Ok(Some(rev)) => rev.max(known),
            _ => known,
        }
    }

    fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<i64> {
        header
            .map(|h| h.revision())
            .ok_or_else(|| protocol("response without a header".into()))
    }

    /// The current value of the key read by a failed transaction's `else` branch.
    fn failed_txn_current(&self, resp: &TxnResponse) -> Result<Option<KeyValue>> {
        match resp.op_responses().into_iter().next() {
            Some(TxnOpResponse::Get(get)) => {
                get.kvs().first().map(|kv| self.keys.kv(kv)).transpose()
            }
            other => Err(protocol(format!(
                "unexpected transaction response {other:?}"
            ))),
        }
    }

    /// Sends a write transaction, retried across members as etcd's client would.
    async fn run_txn(&self, txn: &Txn) -> Result<TxnResponse, etcd_client::Error> {
        self.retrying(Op::Write, || {
            let mut kv = self.kv.clone();
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await
    }

    async fn lease_for(&self, ttl: Option<Duration>) -> Result<Option<i64>> {
        let Some(ttl) = ttl else { return Ok(None) };
        let seconds = ttl_seconds(ttl);
        let lease = self
            .retrying(Op::Write, || {
                let mut client = self.lease.clone();
                async move { self.leases.get_lease(&mut client, seconds).await }
            })
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(Some(lease))
    }

    /// Runs a write transaction built for a lease, getting a new lease once if etcd
    /// dropped the one it was given (it expired between the grant and the put).
    async fn write_txn(
        &self,
        ttl: Option<Duration>,
        ctx: ErrCtx<'_>,
        build: impl Fn(Option<PutOptions>) -> Txn,
    ) -> Result<TxnResponse> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let lease = self.lease_for(ttl).await?;
            let txn = build(lease.map(|id| PutOptions::new().with_lease(id)));
            let result = self.run_txn(&txn).await;
            match result {
                Ok(resp) => return Ok(resp),
                Err(err) if errors::kind(&err) == Kind::LeaseNotFound && attempts < 2 => {
                    if let Some(id) = lease {
                        self.leases.forget(id).await;
                    }
                }
                Err(err) => return Err(self.interpret(err, ctx).await),
            }
        }
    }

    /// Checks a write's key and value; returns the stored key and the error context.
    fn prepare_write<'a>(&self, key: &'a str, value: &[u8]) -> Result<(Vec<u8>, ErrCtx<'a>)> {
        validate_key(key)?;
        check_value_size(key, value)?;
        let ctx = ErrCtx {
            key,
            revision: 0,
            size: value.len(),
        };
        Ok((self.keys.stored(key), ctx))
    }

    pub(crate) async fn create(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<KeyValue> {
        let (k, ctx) = self.prepare_write(key, &value)?;
        let resp = self
            .write_txn(ttl, ctx, |put| {
                Txn::new()
                    .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(k.clone(), value.to_vec(), put)])
                    .or_else([TxnOp::get(
                        k.clone(),
                        Some(GetOptions::new().with_keys_only()),
                    )])
            })
            .await?;
        if !resp.succeeded() {
            return Err(StorageError::AlreadyExists {
                key: key.to_string(),
            });
        }
        let rev = Self::header_revision(resp.header())?;
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: rev,
            mod_revision: rev,
            version: 1,
        })
    }

    pub(crate) async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: i64,
        ttl: Option<Duration>,
    ) -> Result<KeyValue> {
        let (k, ctx) = self.prepare_write(key, &value)?;
        // The key's new create revision and version come from a keys-only read after the
        // put in the same transaction, which sees the put.
        let resp = self
            .write_txn(ttl, ctx, |put| {
                Txn::new()
                    .when([
                        Compare::mod_revision(k.clone(), CompareOp::Equal, expected),
                        Compare::version(k.clone(), CompareOp::Greater, 0),
                    ])
                    .and_then([
                        TxnOp::put(k.clone(), value.to_vec(), put),
                        TxnOp::get(k.clone(), Some(GetOptions::new().with_keys_only())),
                    ])
                    .or_else([TxnOp::get(k.clone(), None)])
            })
            .await?;
        if !resp.succeeded() {
            return match self.failed_txn_current(&resp)? {
                None => Err(StorageError::NotFound {
                    key: key.to_string(),
                }),
                Some(current) => Err(StorageError::Conflict {
                    key: key.to_string(),
                    expected,
                    current: Some(Box::new(current)),
                }),
            };
        }
        let rev = Self::header_revision(resp.header())?;
        let written = resp
            .op_responses()
            .into_iter()
            .nth(1)
            .and_then(|op| match op {
                TxnOpResponse::Get(get) => get.kvs().first().cloned(),
                _ => None,
            });
        let Some(written) = written else {
            return Err(protocol(format!(
                "update of {key:?} did not return the written key"
            )));
        };
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: written.create_revision(),
            mod_revision: rev,
            version: written.version(),
        })
    }

    pub(crate) async fn delete(&self, key: &str, expected: Option<i64>) -> Result<(KeyValue, i64)> {
        validate_key(key)?;
        let k = self.keys.stored(key);
        let compares: Vec<Compare> = expected
            .map(|rev| Compare::mod_revision(k.clone(), CompareOp::Equal, rev))
            .into_iter()
            .collect();
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(
                k.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(k.clone(), None)]);
        let resp = self.run_txn(&txn).await;
        let resp = match resp {
            Ok(resp) => resp,
            Err(err) => return Err(self.interpret(err, ErrCtx::key(key)).await),
        };
        if !resp.succeeded() {
            return match self.failed_txn_current(&resp)? {
                None => Err(StorageError::NotFound {
                    key: key.to_string(),
                }),
                Some(current) => Err(StorageError::Conflict {
                    key: key.to_string(),
                    expected: expected.unwrap_or(0),
                    current: Some(Box::new(current)),
                }),
            };
        }
        let rev = Self::header_revision(resp.header())?;
        let deleted = resp
            .op_responses()
            .into_iter()
            .next()
            .and_then(|op| match op {
                TxnOpResponse::Delete(mut del) => del.take_prev_kvs().into_iter().next(),
                _ => None,
            });
        match deleted {
            Some(kv) => Ok((self.keys.kv_owned(kv)?, rev)),
            None => Err(StorageError::NotFound {
                key: key.to_string(),
            }),
        }
    }

    pub(crate) async fn get(&self, key: &str, revision: Option<i64>) -> Result<Option<KeyValue>> {
        let req = RangeRequest {
            key: key.to_string(),
            revision,
            ..Default::default()
        };
        let resp = self.range(req).await?;
        Ok(resp.kvs.into_iter().next())
    }

    pub(crate) async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        validate_key(&req.key)?;
        let start = self.keys.stored(req.first_key()?);
        let mut opts = GetOptions::new();
        if req.prefix {
            opts = opts.with_range(self.keys.range_end(&req.key)?);
        }
        if req.limit > 0 {
            opts = opts.with_limit(i64::try_from(req.limit).unwrap_or(i64::MAX));
        }
        let read_revision = req.read_revision();
        if let Some(rev) = read_revision {
            opts = opts.with_revision(rev);
        }
        if req.count_only {
            opts = opts.with_count_only();
        }
        let resp = self
            .retrying(Op::Read, || {
                let mut kv = self.kv.clone();
                let (start, opts) = (start.clone(), opts.clone());
                async move { kv.get(start, Some(opts)).await }
            })
            .await;
        let mut resp = match resp {
            Ok(resp) => resp,
            Err(err) => {
                let ctx = ErrCtx {
                    key: &req.key,
                    revision: read_revision.unwrap_or(0),
                    size: 0,
                };
                return Err(self.interpret(err, ctx).await);
            }
        };
        let header_rev = Self::header_revision(resp.header())?;
        let kvs = resp
            .take_kvs()
            .into_iter()
            .map(|kv| self.keys.kv_owned(kv))
            .collect::<Result<Vec<_>>>()?;
        Ok(RangeResponse {
            kvs,
            more: resp.more(),
            count: resp.count(),
            // A read at a past revision is reported at that revision (the header carries
            // the current one), as upstream's continue tokens expect.
            revision: read_revision.unwrap_or(header_rev),
        })
    }

    pub(crate) async fn current_revision(&self) -> Result<i64> {
        let key = self.keys.stored("/");
        let resp = self
            .retrying(Op::Read, || {
                let mut kv = self.kv.clone();
                let key = key.clone();
                async move { kv.get(key, Some(GetOptions::new().with_count_only())).await }
            })
            .await
            .map_err(|e| self.unavailable(e))?;
        Self::header_revision(resp.header())
    }

    pub(crate) async fn compact(&self, revision: i64) -> Result<()> {
        let resp = self
            .retrying(Op::Write, || {
                let mut kv = self.kv.clone();
                async move { kv.compact(revision, None).await }
            })
            .await;
        match resp {
            Ok(_) => {
                self.compacted.fetch_max(revision, Ordering::Relaxed);
                Ok(())
            }
            Err(err) => {
                let ctx = ErrCtx {
                    key: "",
                    revision,
                    size: 0,
                };
                Err(self.interpret(err, ctx).await)
            }
        }
    }
}
