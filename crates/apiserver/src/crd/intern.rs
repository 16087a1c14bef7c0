//! Interned `ResourceInfo`s for custom resources. Every other part of the server handles
//! resources as `&'static ResourceInfo` (the built-in catalogue is static); a CRD's
//! description is interned once per distinct content, so memory grows only with the
//! number of different CRD shapes ever served, not with requests or CRD updates that do
//! not change names or scope.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use ferrokube_api::resources::{ResourceInfo, SubresourceInfo};
use parking_lot::Mutex;

/// The verbs of every custom resource (upstream serves all of them).
pub const VERBS: &[&str] = &[
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
];

const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

fn str_pool() -> &'static Mutex<HashSet<&'static str>> {
    static POOL: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    POOL.get_or_init(Default::default)
}

pub fn intern_str(s: &str) -> &'static str {
    let mut pool = str_pool().lock();
    if let Some(found) = pool.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    pool.insert(leaked);
    leaked
}

fn intern_list(items: &[String]) -> &'static [&'static str] {
    static POOL: OnceLock<Mutex<HashMap<Vec<String>, &'static [&'static str]>>> = OnceLock::new();
    if items.is_empty() {
        return &[];
    }
    let mut pool = POOL.get_or_init(Default::default).lock();
    if let Some(found) = pool.get(items) {
        return found;
    }
    let interned: Vec<&'static str> = items.iter().map(|s| intern_str(s)).collect();
    let leaked: &'static [&'static str] = Box::leak(interned.into_boxed_slice());
    pool.insert(items.to_vec(), leaked);
    leaked
}

/// What identifies a custom resource's description.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status: bool,
    pub scale: bool,
}

pub fn resource_info(shape: &Shape) -> &'static ResourceInfo {
    static POOL: OnceLock<Mutex<HashMap<Shape, &'static ResourceInfo>>> = OnceLock::new();
    let mut pool = POOL.get_or_init(Default::default).lock();
    if let Some(found) = pool.get(shape) {
        return found;
    }
    let group = intern_str(&shape.group);
    let version = intern_str(&shape.version);
    let kind = intern_str(&shape.kind);
    let mut subresources = Vec::new();
    if shape.status {
        subresources.push(SubresourceInfo {
            name: "status",
            group,
            version,
            kind,
            verbs: STATUS_VERBS,
        });
    }
    if shape.scale {
        subresources.push(SubresourceInfo {
            name: "scale",
            group: "autoscaling",
            version: "v1",
            kind: "Scale",
            verbs: STATUS_VERBS,
        });
    }
    let info: &'static ResourceInfo = Box::leak(Box::new(ResourceInfo {
        group,
        version,
        resource: intern_str(&shape.resource),
        kind,
        namespaced: shape.namespaced,
        verbs: VERBS,
        short_names: intern_list(&shape.short_names),
        categories: intern_list(&shape.categories),
        subresources: Box::leak(subresources.into_boxed_slice()),
    }));
    pool.insert(shape.clone(), info);
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_shape_same_info() {
        let shape = Shape {
            group: "example.com".into(),
            version: "v1".into(),
            resource: "widgets".into(),
            kind: "Widget".into(),
            namespaced: true,
            short_names: vec!["wd".into()],
            categories: vec!["all".into()],
            status: true,
            scale: false,
        };
        let a = resource_info(&shape);
        let b = resource_info(&shape.clone());
        assert!(std::ptr::eq(a, b));
        assert_eq!(a.storage_prefix(), "/example.com/widgets/");
        assert!(a.subresource("status").is_some() && a.subresource("scale").is_none());
        let c = resource_info(&Shape {
            scale: true,
            ..shape
        });
        assert!(!std::ptr::eq(a, c));
        assert_eq!(c.subresource("scale").map(|s| s.kind), Some("Scale"));
    }
}
