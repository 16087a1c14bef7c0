//! Logical keys (`/pods/default/x`) to etcd keys (`/registry/pods/default/x`) and back,
//! as upstream's `store.prepareKey` with its `pathPrefix` that always ends in `/`.

use bytes::Bytes;
use ferrokube_storage::{prefix_end, KeyValue, StorageError};

#[derive(Clone, Debug)]
pub struct Keys {
    /// Rooted and ending in `/`: `/registry/`, or `/` for no prefix.
    prefix: String,
}

impl Keys {
    pub fn new(prefix: String) -> Self {
        Keys { prefix }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The etcd key of a logical key (one leading `/` of the key is folded into the
    /// prefix's trailing one).
    pub fn stored(&self, key: &str) -> Vec<u8> {
        let rest = key.strip_prefix('/').unwrap_or(key);
        let mut out = Vec::with_capacity(self.prefix.len() + rest.len());
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(rest.as_bytes());
        out
    }

    /// The end of the etcd range covering every key that starts with logical `key`. It
    /// stays inside the prefix since the stored key keeps the whole prefix.
    pub fn range_end(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        prefix_end(&self.stored(key)).ok_or_else(|| StorageError::InvalidRequest {
            reason: format!("no key range ends after prefix {key:?}"),
        })
    }

    /// The logical key of an etcd key.
    pub fn logical(&self, stored: &[u8]) -> Result<String, StorageError> {
        let rest = stored.strip_prefix(self.prefix.as_bytes()).ok_or_else(|| {
            protocol(format!(
                "key {:?} is outside the prefix {:?}",
                String::from_utf8_lossy(stored),
                self.prefix
            ))
        })?;
        let rest = std::str::from_utf8(rest).map_err(|_| {
            protocol(format!(
                "key {:?} is not UTF-8",
                String::from_utf8_lossy(stored)
            ))
        })?;
        Ok(format!("/{rest}"))
    }

    /// A storage key-value from an etcd one.
    pub fn kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StorageError> {
        Ok(KeyValue {
            key: self.logical(kv.key())?,
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
        })
    }

    /// Like [`Keys::kv`], taking the value without copying it.
    pub fn kv_owned(&self, kv: etcd_client::KeyValue) -> Result<KeyValue, StorageError> {
        let (create_revision, mod_revision, version) =
            (kv.create_revision(), kv.mod_revision(), kv.version());
        let (key, value) = kv.into_key_value();
        Ok(KeyValue {
            key: self.logical(&key)?,
            value: Bytes::from(value),
            create_revision,
            mod_revision,
            version,
        })
    }
}

pub fn protocol(detail: String) -> StorageError {
    StorageError::Protocol {
        backend: "etcd",
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_under_the_prefix() {
        let k = Keys::new("/registry/".into());
        assert_eq!(k.stored("/pods/default/x"), b"/registry/pods/default/x");
        assert_eq!(
            k.logical(b"/registry/pods/default/x").unwrap(),
            "/pods/default/x"
        );
        assert_eq!(k.stored("/p/"), b"/registry/p/");
        assert_eq!(k.range_end("/p/").unwrap(), b"/registry/p0");
        assert_eq!(k.range_end("/").unwrap(), b"/registry0");
        assert!(k.logical(b"/other/x").is_err());
        assert!(k.logical(b"/registry/\xff").is_err());
        let root = Keys::new("/".into());
        assert_eq!(root.stored("/a"), b"/a");
        assert_eq!(root.logical(b"/a").unwrap(), "/a");
    }
}
