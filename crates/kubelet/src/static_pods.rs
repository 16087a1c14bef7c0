//! Static pods: the pods of `staticPodPath`, as upstream's file config source. Every
//! file there (or the one file, when the path is a file) holding a Pod or a PodList
//! becomes a pod this kubelet runs without the API server. As upstream's
//! `applyDefaults`, each is named `<name>-<node>`, bound to this node, tolerates every
//! NoExecute taint and gets a UID hashed from its content, node and file, also kept
//! in the `kubernetes.io/config.hash` annotation: an edit to the file is a new pod.
//! [`crate::pods`] runs them and keeps their mirror pods in the API.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The annotation a mirror pod carries: the hash of its static pod.
pub const MIRROR: &str = "kubernetes.io/config.mirror";
/// The static pod's hash (its UID).
pub const HASH: &str = "kubernetes.io/config.hash";
/// Where a pod came from: `file` for static pods, `api` otherwise.
pub const SOURCE: &str = "kubernetes.io/config.source";
/// When the kubelet first read the pod.
pub const SEEN: &str = "kubernetes.io/config.seen";

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// Whether `pod` is the API's mirror of a static pod.
pub fn is_mirror(pod: &Pod) -> bool {
    annotation(pod, MIRROR).is_some()
}

/// The hash a mirror pod mirrors.
pub fn mirror_hash(pod: &Pod) -> Option<&str> {
    annotation(pod, MIRROR)
}

/// Whether `pod` is a static pod read by this kubelet (not an API object).
pub fn is_static(pod: &Pod) -> bool {
    annotation(pod, SOURCE) == Some("file")
}

/// What a manifest file looked like when it was last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified_ns: i128,
    size: u64,
    inode: u64,
}

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    Stamp {
        modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        size: meta.len(),
        inode: meta.ino(),
    }
}

/// The static pod source: re-reads files whose size, mtime or inode changed.
#[derive(Debug)]
pub struct Source {
    path: PathBuf,
    node: String,
    files: HashMap<PathBuf, (Stamp, Vec<Pod>)>,
    /// Files whose last read failed (logged once per change).
    failed: HashMap<PathBuf, Stamp>,
    first: bool,
}

impl Source {
    pub fn new(path: PathBuf, node: &str) -> Source {
        Source {
            path,
            node: node.to_string(),
            files: HashMap::new(),
            failed: HashMap::new(),
            first: true,
        }
    }

    /// Looks at the path again; `Some(pods)` (every static pod, deduplicated by name)
    /// when anything changed since the last call, and always on the first call.
    pub fn poll(&mut self) -> Option<Vec<Pod>> {
        let mut changed = std::mem::take(&mut self.first);
        let present = self.manifests();
        let before = self.files.len();
        self.files.retain(|p, _| present.contains_key(p));
        self.failed.retain(|p, _| present.contains_key(p));
        changed |= self.files.len() != before;
        for (file, st) in present {
            if self.files.get(&file).is_some_and(|(s, _)| *s == st)
                || self.failed.get(&file) == Some(&st)
            {
                continue;
            }
            let read = std::fs::read_to_string(&file)
                .map_err(|e| e.to_string())
                .and_then(|text| decode(&file, &text, &self.node));
            changed = true;
            match read {
                Ok(pods) => {
                    self.failed.remove(&file);
                    self.files.insert(file, (st, pods));
                }
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "could not process static pod manifest");
                    self.files.remove(&file);
                    self.failed.insert(file, st);
                }
            }
        }
        changed.then(|| self.pods())
    }

    /// The manifest files and their stamps: the path itself if it is a file, else the
    /// directory's regular files not starting with a dot.
    fn manifests(&self) -> HashMap<PathBuf, Stamp> {
        let mut out = HashMap::new();
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return out;
        };
        if meta.is_file() {
            out.insert(self.path.clone(), stamp(&meta));
            return out;
        }
        let Ok(dir) = std::fs::read_dir(&self.path) else {
            return out;
        };
        for entry in dir.filter_map(Result::ok) {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => {
                    out.insert(path, stamp(&m));
                }
                _ => {}
            }
        }
        out
    }

    /// All pods, the first file (by name) winning when two define the same pod.
    fn pods(&self) -> Vec<Pod> {
        let sorted: BTreeMap<&PathBuf, &Vec<Pod>> =
            self.files.iter().map(|(p, (_, pods))| (p, pods)).collect();
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for (file, pods) in sorted {
            for pod in pods {
                let key = (
                    pod.metadata.namespace.clone().unwrap_or_default(),
                    pod.metadata.name.clone().unwrap_or_default(),
                );
                if names.insert(key) {
                    out.push(pod.clone());
                } else {
                    tracing::warn!(file = %file.display(), pod = ?pod.metadata.name, "a static pod of this name already exists; ignored");
                }
            }
        }
        out
    }
}

/// Decodes a manifest (YAML or JSON: a Pod or a PodList) into static pods of `node`.
pub fn decode(file: &Path, text: &str, node: &str) -> Result<Vec<Pod>, String> {
    let doc: Value = serde_saphyr::from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if api_version != "v1" {
        return Err(format!(
            "apiVersion {api_version:?}: expected v1 (kind Pod or PodList)"
        ));
    }
    match kind {
        "Pod" => Ok(vec![static_pod(file, doc, node)?]),
        "PodList" => doc
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|item| static_pod(file, item, node))
            .collect(),
        other => Err(format!("kind {other:?}: expected Pod or PodList")),
    }
}

/// Upstream's `applyDefaults` for a file source, then the API's pod defaults.
fn static_pod(file: &Path, mut doc: Value, node: &str) -> Result<Pod, String> {
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        return Err("metadata.name: Required value".into());
    }
    let full = format!("{name}-{}", node.to_lowercase());
    if let Some(e) = ferrokube_api::validation::dns1123_subdomain(&full).first() {
        return Err(format!("metadata.name: Invalid value: {full:?}: {e}"));
    }
    let containers = doc.pointer("/spec/containers").and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        return Err("spec.containers: Required value".into());
    }
    for (i, c) in containers.into_iter().flatten().enumerate() {
        for field in ["name", "image"] {
            if c.get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(format!("spec.containers[{i}].{field}: Required value"));
            }
        }
    }
    let uid = match doc.pointer("/metadata/uid").and_then(Value::as_str) {
        Some(u) if !u.is_empty() => u.to_string(),
        _ => {
            let mut h = Sha256::new();
            h.update(serde_json::to_vec(&doc).unwrap_or_default());
            h.update(format!("host:{node}"));
            h.update(format!("file:{}", file.display()));
            h.finalize()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }
    };
    let Some(obj) = doc.as_object_mut() else {
        return Err("expected an object".into());
    };
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or("metadata: expected an object")?;
    meta.insert("name".into(), json!(full));
    meta.insert("uid".into(), json!(uid));
    if meta
        .get("namespace")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        meta.insert("namespace".into(), json!("default"));
    }
    let ann = meta
        .entry("annotations")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or("metadata.annotations: expected an object")?;
    ann.insert(HASH.into(), json!(uid));
    ann.insert(SOURCE.into(), json!("file"));
    ann.insert(
        SEEN.into(),
        json!(k8s_openapi::jiff::Timestamp::now().to_string()),
    );
    let spec = obj
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or("spec: expected an object")?;
    spec.insert("nodeName".into(), json!(node));
    let tolerate_all = json!({"operator": "Exists", "effect": "NoExecute"});
    let tolerations = spec
        .entry("tolerations")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or("spec.tolerations: expected a list")?;
    if !tolerations.contains(&tolerate_all) {
        tolerations.push(tolerate_all);
    }
    obj.insert("status".into(), json!({"phase": "Pending"}));
    ferrokube_api::defaults::apply("", "pods", &mut doc);
    serde_json::from_value(doc).map_err(|e| format!("not a valid pod: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const WEB: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n";

    #[test]
    fn a_manifest_becomes_a_static_pod_of_the_node() {
        let pods = decode(Path::new("/m/web.yaml"), WEB, "Node-1").unwrap();
        let p = &pods[0];
        assert_eq!(p.metadata.name.as_deref(), Some("web-node-1"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        let uid = p.metadata.uid.clone().unwrap();
        assert_eq!(uid.len(), 32);
        assert_eq!(annotation(p, HASH), Some(uid.as_str()));
        assert!(is_static(p) && !is_mirror(p));
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("Node-1"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        let t = spec.tolerations.as_ref().unwrap();
        assert_eq!(t[0].operator.as_deref(), Some("Exists"));
        assert_eq!(t[0].effect.as_deref(), Some("NoExecute"));
        // The same content on another node or in another file is another pod; an
        // edit is another pod; the same file read again is the same pod.
        let again = decode(Path::new("/m/web.yaml"), WEB, "Node-1").unwrap();
        assert_eq!(again[0].metadata.uid, p.metadata.uid);
        for (file, text, node) in [
            ("/m/web.yaml", WEB, "node-2"),
            ("/m/other.yaml", WEB, "Node-1"),
            (
                "/m/web.yaml",
                &WEB.replace("busybox", "httpd") as &str,
                "Node-1",
            ),
        ] {
            let other = decode(Path::new(file), text, node).unwrap();
            assert_ne!(other[0].metadata.uid, p.metadata.uid, "{file} {node}");
        }
    }

    #[test]
    fn bad_manifests_name_what_is_wrong() {
        let f = Path::new("/m/x");
        let err = |t: &str| decode(f, t, "n").unwrap_err();
        assert!(err("{{{").contains("invalid YAML"));
        assert!(err("apiVersion: v1\nkind: Service\n").contains("expected Pod or PodList"));
        assert!(err("kind: Pod\n").contains("apiVersion"));
        assert!(
            err("apiVersion: v1\nkind: Pod\nmetadata: {}\nspec: {}\n").contains("metadata.name")
        );
        assert!(
            err("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {}\n")
                .contains("spec.containers")
        );
        assert!(err(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c}]}\n"
        )
        .contains("spec.containers[0].image"));
        assert!(err(&WEB.replace("name: web", "name: Web_")).contains("metadata.name"));
        let list = "apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: a}\n  spec: {containers: [{name: c, image: i}]}\n- metadata: {name: b}\n  spec: {containers: [{name: c, image: i}]}\n";
        assert_eq!(decode(f, list, "n").unwrap().len(), 2);
    }

    #[test]
    fn the_source_reports_changes_only() {
        let dir = std::env::temp_dir().join(format!("fk-static-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = Source::new(dir.clone(), "n1");
        assert_eq!(s.poll().map(|p| p.len()), Some(0));
        assert!(s.poll().is_none());
        std::fs::write(dir.join("web.yaml"), WEB).unwrap();
        std::fs::write(dir.join(".hidden.yaml"), WEB).unwrap();
        std::fs::write(dir.join("dup.yaml"), WEB).unwrap();
        std::fs::write(dir.join("bad.yaml"), "kind: Nope\n").unwrap();
        let pods = s.poll().unwrap();
        assert_eq!(
            pods.len(),
            1,
            "the duplicate name and the hidden file are ignored"
        );
        assert!(
            s.poll().is_none(),
            "the bad file is not read again until it changes"
        );
        std::fs::remove_file(dir.join("dup.yaml")).unwrap();
        std::fs::remove_file(dir.join("web.yaml")).unwrap();
        assert_eq!(s.poll().map(|p| p.len()), Some(0));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
