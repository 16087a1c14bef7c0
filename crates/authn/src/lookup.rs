//! Live objects the token authenticators check against: bootstrap-token Secrets, service
//! accounts, the Pods/Secrets/Nodes bound tokens name. Upstream reads them from informer
//! listers (`ServiceAccountTokenGetter`); the API server here answers from its cache.

use std::collections::HashMap;

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::Value;

use crate::clock::parse_rfc3339;

/// Fetches one live object as its JSON (what a GET would return), or `None` when it does not
/// exist. `group` is `""` for the core group; `namespace` is `""` for cluster-scoped
/// resources (nodes). Resources asked for: `secrets`, `serviceaccounts`, `pods`, `nodes`.
#[async_trait]
pub trait ObjectLookup: Send + Sync {
    /// The object, or `None` if it does not exist (or cannot be read).
    async fn get(&self, group: &str, resource: &str, namespace: &str, name: &str) -> Option<Value>;
}

/// A lookup that finds nothing: for authenticators without token methods that need objects
/// (x509, request-header, token file), e.g. a component's delegated authentication.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObjects;

#[async_trait]
impl ObjectLookup for NoObjects {
    async fn get(&self, _: &str, _: &str, _: &str, _: &str) -> Option<Value> {
        None
    }
}

/// An in-memory lookup (tests, tools).
#[derive(Debug, Default, Clone)]
pub struct MapLookup {
    objects: HashMap<(String, String, String, String), Value>,
}

impl MapLookup {
    /// An empty lookup.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `object` under group/resource/namespace/name.
    pub fn insert(
        &mut self,
        group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
        object: Value,
    ) {
        self.objects.insert(
            (group.into(), resource.into(), namespace.into(), name.into()),
            object,
        );
    }

    /// Removes an object (as if deleted).
    pub fn remove(&mut self, group: &str, resource: &str, namespace: &str, name: &str) {
        self.objects
            .remove(&(group.into(), resource.into(), namespace.into(), name.into()));
    }
}

#[async_trait]
impl ObjectLookup for MapLookup {
    async fn get(&self, group: &str, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&(group.into(), resource.into(), namespace.into(), name.into()))
            .cloned()
    }
}

/// `metadata.uid`, or `""`.
pub(crate) fn uid(object: &Value) -> &str {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.deletionTimestamp` as Unix seconds, when set. An unparseable timestamp counts
/// as set long ago (the object is going away either way).
pub(crate) fn deletion_timestamp(object: &Value) -> Option<i64> {
    let value = object.pointer("/metadata/deletionTimestamp")?;
    match value {
        Value::Null => None,
        Value::String(s) => Some(parse_rfc3339(s).unwrap_or(i64::MIN)),
        _ => Some(i64::MIN),
    }
}

/// `metadata.labels[key]`.
pub(crate) fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/labels")
        .and_then(|labels| labels.get(key))
        .and_then(Value::as_str)
}

/// A Secret's `data[key]` decoded from base64 (absent or undecodable → `None`).
pub(crate) fn secret_data(secret: &Value, key: &str) -> Option<Vec<u8>> {
    let encoded = secret.get("data")?.get(key)?.as_str()?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
}

/// A Secret's `type`.
pub(crate) fn secret_type(secret: &Value) -> &str {
    secret.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Constant-time equality of two secrets (lengths may leak, as Go's
/// `subtle.ConstantTimeCompare`).
pub(crate) fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}
