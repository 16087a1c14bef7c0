//! Encryption at rest (`--encryption-provider-config`): a storage decorator that encrypts
//! the values of the configured resources before they reach the backend and decrypts
//! them on every read and watch event, as upstream's value transformers in its etcd3
//! store. The storage key (with the `/registry` prefix, as upstream passes the etcd key)
//! is the authenticated data of aesgcm. A value read through a provider other than the
//! first (or an older key) is "stale": it comes back with one trailing space — JSON
//! whitespace, invisible to readers — so that an update that changes nothing still
//! differs from the stored bytes and rewrites the value with the current key, which is
//! what upstream's key-rotation procedure (`kubectl get secrets -A -o json | kubectl
//! replace -f -`) relies on.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ferrokube_encryption::{EncryptionConfig, Transformer};
use ferrokube_storage::{
    Event, KeyValue, RangeRequest, RangeResponse, Result, Storage, StorageError, WatchMessage,
    WatchRequest, WatchStream,
};

/// The backend with the configured resources encrypted.
#[derive(Debug)]
pub struct EncryptedStorage {
    inner: Arc<dyn Storage>,
    /// (storage key prefix, transformer), longest prefixes first.
    rules: Vec<(String, Arc<Transformer>)>,
    key_prefix: String,
    identity: Arc<Transformer>,
}

/// Wraps `inner` so that the resources `config` names are encrypted at rest.
pub fn wrap(inner: Arc<dyn Storage>, config: &EncryptionConfig) -> Arc<dyn Storage> {
    let mut rules: Vec<(String, Arc<Transformer>)> = ferrokube_api::resources::BUILTIN
        .iter()
        .filter_map(|r| {
            config
                .transformer_for(r.group, r.resource)
                .map(|t| (r.storage_prefix(), t))
        })
        .collect();
    rules.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    rules.dedup_by(|a, b| a.0 == b.0);
    Arc::new(EncryptedStorage {
        inner,
        rules,
        key_prefix: "/registry".into(),
        identity: Arc::new(Transformer::identity()),
    })
}

fn failed(key: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Protocol {
        backend: "encryption",
        detail: format!("{key}: {e}"),
    }
}

impl EncryptedStorage {
    fn transformer(&self, key: &str) -> &Arc<Transformer> {
        self.rules
            .iter()
            .find(|(p, _)| key.starts_with(p.as_str()))
            .map_or(&self.identity, |(_, t)| t)
    }

    fn full_key(&self, key: &str) -> Vec<u8> {
        format!("{}{key}", self.key_prefix).into_bytes()
    }

    fn encrypt(&self, key: &str, value: Bytes) -> Result<Bytes> {
        let t = self.transformer(key);
        if t.writes_plaintext() {
            return Ok(value);
        }
        t.encrypt(&self.full_key(key), &value)
            .map(Bytes::from)
            .map_err(|e| failed(key, e))
    }

    fn decrypt(&self, mut kv: KeyValue) -> Result<KeyValue> {
        let t = self.transformer(&kv.key);
        let (mut plain, stale) = t
            .decrypt(&self.full_key(&kv.key), &kv.value)
            .map_err(|e| failed(&kv.key, e))?;
        if stale {
            plain.push(b' ');
        }
        kv.value = Bytes::from(plain);
        Ok(kv)
    }

    fn decrypt_event(&self, e: Event) -> Result<Event> {
        Ok(Event {
            kind: e.kind,
            kv: self.decrypt(e.kv)?,
            prev_kv: e.prev_kv.map(|kv| self.decrypt(kv)).transpose()?,
        })
    }

    /// The written value as the caller gave it (what reads will return).
    fn written(kv: KeyValue, value: Bytes) -> KeyValue {
        KeyValue { value, ..kv }
    }
}

#[async_trait]
impl Storage for EncryptedStorage {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<KeyValue> {
        let stored = self.encrypt(key, value.clone())?;
        let kv = self.inner.create(key, stored, ttl).await?;
        Ok(Self::written(kv, value))
    }

    async fn get(&self, key: &str, revision: Option<i64>) -> Result<Option<KeyValue>> {
        self.inner
            .get(key, revision)
            .await?
            .map(|kv| self.decrypt(kv))
            .transpose()
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let mut resp = self.inner.range(req).await?;
        resp.kvs = resp
            .kvs
            .into_iter()
            .map(|kv| self.decrypt(kv))
            .collect::<Result<_>>()?;
        Ok(resp)
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: i64,
        ttl: Option<Duration>,
    ) -> Result<KeyValue> {
        let stored = self.encrypt(key, value.clone())?;
        match self
            .inner
            .update(key, stored, expected_mod_revision, ttl)
            .await
        {
            Ok(kv) => Ok(Self::written(kv, value)),
            Err(StorageError::Conflict {
                key,
                expected,
                current,
            }) => Err(StorageError::Conflict {
                key,
                expected,
                current: current
                    .map(|kv| self.decrypt(*kv).map(Box::new))
                    .transpose()?,
            }),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, key: &str, expected: Option<i64>) -> Result<(KeyValue, i64)> {
        let (kv, rev) = self.inner.delete(key, expected).await?;
        Ok((self.decrypt(kv)?, rev))
    }

    async fn watch(&self, req: WatchRequest) -> Result<WatchStream> {
        let mut inner = self.inner.watch(req).await?;
        let (tx, stream) = WatchStream::channel();
        let me = EncryptedStorage {
            inner: self.inner.clone(),
            rules: self.rules.clone(),
            key_prefix: self.key_prefix.clone(),
            identity: self.identity.clone(),
        };
        tokio::spawn(async move {
            while let Some(msg) = inner.recv().await {
                let out = match msg {
                    Ok(WatchMessage::Event(e)) => me.decrypt_event(e).map(WatchMessage::Event),
                    other => other,
                };
                let end = out.is_err();
                if tx.send(out).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(stream)
    }

    async fn current_revision(&self) -> Result<i64> {
        self.inner.current_revision().await
    }

    async fn member_health(&self) -> Vec<std::result::Result<(), String>> {
        self.inner.member_health().await
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.inner.compact(revision).await
    }
}
