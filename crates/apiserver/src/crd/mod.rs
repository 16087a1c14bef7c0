//! CustomResourceDefinitions served dynamically (upstream's apiextensions-apiserver): each
//! established CRD version becomes a resource served by the same generic store as the
//! built-in kinds, with its structural schema ([`structural`]), `status`/`scale`
//! subresources, additionalPrinterColumns ([`columns`]), discovery and OpenAPI
//! ([`openapi`]). A controller task ([`controller`]) watches the CRDs, keeps the set of
//! served resources current and writes the NamesAccepted/Established conditions.

pub mod columns;
pub mod controller;
pub mod defaults;
pub mod intern;
pub mod openapi;
pub mod rules;
pub mod structural;
pub mod validate;

use std::sync::Arc;

use ferrokube_api::resources::ResourceInfo;
use parking_lot::RwLock;
use serde_json::Value;

/// The `scale` subresource of a custom resource: where its replica counts live.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleSpec {
    pub spec_replicas_path: String,
    pub status_replicas_path: String,
    pub label_selector_path: Option<String>,
}

/// One served version of a CRD.
#[derive(Debug)]
pub struct CustomResource {
    pub info: &'static ResourceInfo,
    /// The CRD's name (`<plural>.<group>`).
    pub crd_name: String,
    /// The version objects are stored in.
    pub storage_version: String,
    /// The version's `openAPIV3Schema`, if any.
    pub schema: Option<Value>,
    pub preserve_unknown_fields: bool,
    pub scale: Option<ScaleSpec>,
    pub columns: Vec<columns::PrinterColumn>,
    /// Every served version of the CRD (for multi-version reads).
    pub served_versions: Vec<String>,
    pub deprecated: Option<String>,
    /// The server-side apply type built from the schema.
    pub apply_schema: ferrokube_patch::apply::TypeSchema,
}

impl CustomResource {
    /// Conversion `None`: an object stored under another version only changes apiVersion.
    pub fn convert(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            m.insert("apiVersion".into(), Value::String(self.info.api_version()));
        }
    }
}

/// The custom resources currently served, replaced whole on every CRD change.
#[derive(Debug, Default)]
pub struct CrdRegistry {
    served: RwLock<Arc<Vec<Arc<CustomResource>>>>,
    /// Bumped on every change (for OpenAPI/discovery caches and ETags).
    generation: std::sync::atomic::AtomicU64,
    /// The OpenAPI documents of the custom group-versions, built for one generation.
    openapi: parking_lot::Mutex<Option<(u64, Arc<Vec<OpenApiDocument>>)>>,
}

/// One OpenAPI v3 document: its key (`apis/<group>/<version>`), bytes and content hash.
#[derive(Debug)]
pub struct OpenApiDocument {
    pub key: String,
    pub body: bytes::Bytes,
    pub hash: String,
}

impl CrdRegistry {
    pub fn lookup(
        &self,
        group: &str,
        version: &str,
        resource: &str,
    ) -> Option<Arc<CustomResource>> {
        self.served
            .read()
            .iter()
            .find(|c| {
                c.info.group == group && c.info.version == version && c.info.resource == resource
            })
            .cloned()
    }

    /// Everything served, in discovery order.
    pub fn snapshot(&self) -> Arc<Vec<Arc<CustomResource>>> {
        self.served.read().clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The OpenAPI documents of what is served now (rebuilt after each change).
    pub fn openapi_documents(&self) -> Arc<Vec<OpenApiDocument>> {
        let generation = self.generation();
        let mut cache = self.openapi.lock();
        if let Some((g, docs)) = cache.as_ref() {
            if *g == generation {
                return docs.clone();
            }
        }
        let docs: Vec<OpenApiDocument> = openapi::documents(&self.snapshot())
            .into_iter()
            .map(|(key, body)| {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                body.hash(&mut h);
                OpenApiDocument {
                    key,
                    body: bytes::Bytes::from(body),
                    hash: format!("{:016X}", h.finish()),
                }
            })
            .collect();
        let docs = Arc::new(docs);
        *cache = Some((generation, docs.clone()));
        docs
    }

    /// Replaces what one CRD serves (empty: stops serving it).
    pub fn set_crd(&self, crd_name: &str, resources: Vec<CustomResource>) {
        let mut served = self.served.write();
        let mut next: Vec<Arc<CustomResource>> = served
            .iter()
            .filter(|c| c.crd_name != crd_name)
            .cloned()
            .collect();
        next.extend(resources.into_iter().map(Arc::new));
        next.sort_by(|a, b| {
            (a.info.group, a.info.resource)
                .cmp(&(b.info.group, b.info.resource))
                .then_with(|| {
                    version_priority(b.info.version).cmp(&version_priority(a.info.version))
                })
        });
        *served = Arc::new(next);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Upstream's version ordering (`version.CompareKubeAwareVersionStrings`): GA before beta
/// before alpha, higher numbers first, then anything else alphabetically. Larger = first.
pub fn version_priority(v: &str) -> (u8, u64, u64, std::cmp::Reverse<String>) {
    let parse = |s: &str| -> Option<(u64, u8, u64)> {
        let rest = s.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((major, 3, 0));
        }
        let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
            (2, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (1, n)
        } else {
            return None;
        };
        Some((major, level, num.parse().ok()?))
    };
    match parse(v) {
        Some((major, level, minor)) => (level, major, minor, std::cmp::Reverse(String::new())),
        None => (0, 0, 0, std::cmp::Reverse(v.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_aware_version_order() {
        let mut vs = vec![
            "v1beta1",
            "foo",
            "v2",
            "v1",
            "v10",
            "v11alpha2",
            "v1alpha1",
            "bar",
            "v12beta2",
        ];
        vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(
            vs,
            [
                "v10",
                "v2",
                "v1",
                "v12beta2",
                "v1beta1",
                "v11alpha2",
                "v1alpha1",
                "bar",
                "foo"
            ]
        );
    }
}
