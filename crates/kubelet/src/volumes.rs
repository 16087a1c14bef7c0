//! Pod volumes as the kubelet's volume manager sets them up under
//! `<root-dir>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>`: emptyDir (a
//! directory, or a tmpfs with `medium: Memory`), hostPath (with its `type` checks), and the API-backed ones — configMap,
//! secret, downwardAPI and projected (incl. bound service-account tokens) — written
//! with upstream's `AtomicWriter` layout (`..data` → a timestamped directory, each key
//! a symlink through `..data`) so updates appear atomically to the container.

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, ServiceAccount, Volume,
};
use kube::api::{Api, PostParams};

use crate::Kubelet;

/// Why a volume could not be set up (reported as a FailedMount event).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
    SetUp { volume: String, message: String },
}

fn fail(volume: &str, message: impl Into<String>) -> VolumeError {
    VolumeError::SetUp {
        volume: volume.to_string(),
        message: message.into(),
    }
}

/// A volume ready for mounting.
#[derive(Debug, Clone)]
pub struct Mounted {
    pub host_path: PathBuf,
    /// configMap, secret, downwardAPI and projected volumes are always read-only.
    pub read_only: bool,
}

/// `<root>/pods/<uid>`.
pub fn pod_dir(k: &Kubelet, uid: &str) -> PathBuf {
    k.opts.root_dir.join("pods").join(uid)
}

fn io(volume: &str, what: &str, path: &Path, e: std::io::Error) -> VolumeError {
    fail(volume, format!("{what} {}: {e}", path.display()))
}

/// Sets up every volume of the pod; returns them by name.
pub async fn set_up(k: &Kubelet, pod: &Pod) -> Result<BTreeMap<String, Mounted>, VolumeError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let base = pod_dir(k, &uid).join("volumes");
    let mut out = BTreeMap::new();
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    for v in &volumes {
        let name = v.name.as_str();
        let dir = |plugin: &str| base.join(format!("kubernetes.io~{plugin}")).join(name);
        let mounted = if let Some(ed) = &v.empty_dir {
            let d = dir("empty-dir");
            std::fs::create_dir_all(&d).map_err(|e| io(name, "creating", &d, e))?;
            if ed.medium.as_deref() == Some("Memory") {
                let size_limit = ed
                    .size_limit
                    .as_ref()
                    .and_then(|q| ferrokube_api::kinds::Quantity::parse(&serde_json::json!(q.0)))
                    .map(|q| q.0 / 1_000_000_000);
                let allocatable = crate::node::allocatable_memory(k, &k.host);
                let size = memory_volume_size(i128::from(allocatable), pod, size_limit);
                mount_tmpfs(name, &d, size)?;
            }
            let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777));
            Mounted {
                host_path: d,
                read_only: false,
            }
        } else if let Some(hp) = &v.host_path {
            host_path(name, &hp.path, hp.type_.as_deref().unwrap_or(""))?;
            Mounted {
                host_path: PathBuf::from(&hp.path),
                read_only: false,
            }
        } else if v.config_map.is_some()
            || v.secret.is_some()
            || v.downward_api.is_some()
            || v.projected.is_some()
        {
            let plugin = if v.config_map.is_some() {
                "configmap"
            } else if v.secret.is_some() {
                "secret"
            } else if v.downward_api.is_some() {
                "downward-api"
            } else {
                "projected"
            };
            let d = dir(plugin);
            let (files, mode) = payload(k, pod, &ns, v).await?;
            write_atomic(name, &d, &files, mode)?;
            Mounted {
                host_path: d,
                read_only: true,
            }
        } else if v.persistent_volume_claim.is_some() {
            return Err(fail(name, "persistentVolumeClaim volumes need a volume plugin; none is available on this node"));
        } else {
            return Err(fail(name, "volume type not supported by this kubelet"));
        };
        out.insert(name.to_string(), mounted);
    }
    Ok(out)
}

/// Whether `path` is a mount point (its device differs from its parent's).
fn is_mount_point(path: &Path) -> bool {
    let dev = |p: &Path| rustix::fs::stat(p).ok().map(|st| st.st_dev);
    match (dev(path), path.parent().and_then(dev)) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    }
}

/// The size of a memory-backed emptyDir, as upstream's `calculateEmptyDirMemorySize`:
/// the node's allocatable memory, lowered to the pod's memory limit when it has one
/// (every container limited: the larger of the app containers' sum and any init
/// container's, plus the pod's overhead), lowered to the volume's `sizeLimit` when that
/// is smaller (non-positive values are ignored).
fn memory_volume_size(allocatable: i128, pod: &Pod, size_limit: Option<i128>) -> i128 {
    let mut size = allocatable;
    if let Some(limit) = pod_memory_limit(pod).filter(|l| *l > 0 && *l <= size) {
        size = limit;
    }
    if let Some(limit) = size_limit.filter(|l| *l > 0 && *l <= size) {
        size = limit;
    }
    size
}

/// The pod's memory limit when every container declares one.
fn pod_memory_limit(pod: &Pod) -> Option<i128> {
    let spec = pod.spec.as_ref()?;
    let limit = |c: &k8s_openapi::api::core::v1::Container| -> Option<i128> {
        let q = c.resources.as_ref()?.limits.as_ref()?.get("memory")?;
        ferrokube_api::quantity::value(&q.0).map(i128::from)
    };
    let mut sum = 0i128;
    for c in &spec.containers {
        sum += limit(c)?;
    }
    let mut init_max = 0i128;
    for c in spec.init_containers.iter().flatten() {
        init_max = init_max.max(limit(c)?);
    }
    let overhead = spec
        .overhead
        .as_ref()
        .and_then(|o| o.get("memory"))
        .and_then(|q| ferrokube_api::quantity::value(&q.0))
        .map_or(0, i128::from);
    Some(sum.max(init_max) + overhead)
}

/// emptyDir `medium: Memory`: a tmpfs on the volume's directory (upstream's
/// `setupTmpfs`) of `size` bytes ([`memory_volume_size`]; 0: the kernel's default);
/// kept when already mounted (a kubelet restart).
fn mount_tmpfs(volume: &str, dir: &Path, size: i128) -> Result<(), VolumeError> {
    if is_mount_point(dir) {
        return Ok(());
    }
    let mut options = String::from("mode=0777");
    if size > 0 {
        options.push_str(&format!(",size={size}"));
    }
    let data =
        std::ffi::CString::new(options).map_err(|e| fail(volume, format!("tmpfs options: {e}")))?;
    rustix::mount::mount(
        "tmpfs",
        dir,
        "tmpfs",
        rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
        data.as_c_str(),
    )
    .map_err(|e| {
        fail(
            volume,
            format!("mount -t tmpfs tmpfs {}: {e}", dir.display()),
        )
    })
}

/// Unmounts the pod's memory-backed emptyDirs before its directory is removed.
fn unmount_tmpfs(pod_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(pod_dir.join("volumes/kubernetes.io~empty-dir")) else {
        return;
    };
    for dir in entries.flatten().map(|e| e.path()) {
        if is_mount_point(&dir) {
            if let Err(e) = rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::DETACH) {
                tracing::warn!(dir = %dir.display(), error = %e, "unmounting an emptyDir tmpfs");
            }
        }
    }
}

/// hostPath's `type` checks (`hostpath` plugin).
fn host_path(volume: &str, path: &str, kind: &str) -> Result<(), VolumeError> {
    let p = Path::new(path);
    let meta = std::fs::metadata(p);
    use std::os::unix::fs::FileTypeExt;
    let ok = match kind {
        "" => true,
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::create_dir_all(p).map_err(|e| io(volume, "creating", p, e))?;
                let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
            }
            std::fs::metadata(p).is_ok_and(|m| m.is_dir())
        }
        "Directory" => meta.is_ok_and(|m| m.is_dir()),
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = p.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                std::fs::File::create(p).map_err(|e| io(volume, "creating", p, e))?;
                let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644));
            }
            std::fs::metadata(p).is_ok_and(|m| m.is_file())
        }
        "File" => meta.is_ok_and(|m| m.is_file()),
        "Socket" => meta.is_ok_and(|m| m.file_type().is_socket()),
        "CharDevice" => meta.is_ok_and(|m| m.file_type().is_char_device()),
        "BlockDevice" => meta.is_ok_and(|m| m.file_type().is_block_device()),
        other => return Err(fail(volume, format!("invalid hostPath type {other:?}"))),
    };
    if ok {
        Ok(())
    } else {
        Err(fail(
            volume,
            format!("hostPath type check failed: {path} is not a {kind}"),
        ))
    }
}

type Files = BTreeMap<String, (Vec<u8>, Option<u32>)>;

/// Adds the keys of a configMap or secret (`kind`), all or the listed `items`, as
/// files; a missing object or key is an error unless the source is optional.
fn add_object(
    volume: &str,
    files: &mut Files,
    kind: &str,
    object: &str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&Vec<KeyToPath>>,
    optional: bool,
) -> Result<(), VolumeError> {
    let Some(data) = data else {
        if optional {
            return Ok(());
        }
        return Err(fail(volume, format!("{kind} \"{object}\" not found")));
    };
    match items {
        None => {
            for (k, v) in data {
                files.insert(k, (v, None));
            }
        }
        Some(items) => {
            for item in items {
                match data.get(&item.key) {
                    Some(v) => {
                        files.insert(
                            item.path.clone(),
                            (v.clone(), item.mode.and_then(|m| u32::try_from(m).ok())),
                        );
                    }
                    None if optional => {}
                    None if kind == "secret" => {
                        return Err(fail(
                            volume,
                            format!("references non-existent secret key: {}", item.key),
                        ))
                    }
                    None => {
                        return Err(fail(
                            volume,
                            format!("configmap references non-existent config key: {}", item.key),
                        ))
                    }
                }
            }
        }
    }
    Ok(())
}

async fn config_map_data(
    k: &Kubelet,
    ns: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, kube::Error> {
    let cm = Api::<ConfigMap>::namespaced(k.client.clone(), ns)
        .get_opt(name)
        .await?;
    Ok(cm.map(|cm| {
        let mut m: BTreeMap<String, Vec<u8>> = cm
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        for (k, v) in cm.binary_data.unwrap_or_default() {
            m.insert(k, v.0);
        }
        m
    }))
}

async fn secret_data(
    k: &Kubelet,
    ns: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, kube::Error> {
    let s = Api::<Secret>::namespaced(k.client.clone(), ns)
        .get_opt(name)
        .await?;
    Ok(s.map(|s| {
        let mut m: BTreeMap<String, Vec<u8>> = s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        for (k, v) in s.string_data.unwrap_or_default() {
            m.insert(k, v.into_bytes());
        }
        m
    }))
}

/// The files of an API-backed volume and its default mode.
async fn payload(
    k: &Kubelet,
    pod: &Pod,
    ns: &str,
    v: &Volume,
) -> Result<(Files, u32), VolumeError> {
    let name = v.name.as_str();
    let api = |e: kube::Error| fail(name, e.to_string());
    let mut files = Files::new();
    let mode = |m: Option<i32>| m.and_then(|m| u32::try_from(m).ok()).unwrap_or(0o644);
    if let Some(cm) = &v.config_map {
        let data = config_map_data(k, ns, &cm.name).await.map_err(api)?;
        add_object(
            name,
            &mut files,
            "configmap",
            &cm.name,
            data,
            cm.items.as_ref(),
            cm.optional.unwrap_or(false),
        )?;
        return Ok((files, mode(cm.default_mode)));
    }
    if let Some(s) = &v.secret {
        let sname = s.secret_name.clone().unwrap_or_default();
        let data = secret_data(k, ns, &sname).await.map_err(api)?;
        add_object(
            name,
            &mut files,
            "secret",
            &sname,
            data,
            s.items.as_ref(),
            s.optional.unwrap_or(false),
        )?;
        return Ok((files, mode(s.default_mode)));
    }
    if let Some(d) = &v.downward_api {
        for item in d.items.as_deref().unwrap_or_default() {
            downward_file(name, pod, item, &mut files)?;
        }
        return Ok((files, mode(d.default_mode)));
    }
    let Some(p) = &v.projected else {
        return Ok((files, 0o644));
    };
    for src in p.sources.as_deref().unwrap_or_default() {
        if let Some(cm) = &src.config_map {
            let data = config_map_data(k, ns, &cm.name).await.map_err(api)?;
            add_object(
                name,
                &mut files,
                "configmap",
                &cm.name,
                data,
                cm.items.as_ref(),
                cm.optional.unwrap_or(false),
            )?;
        }
        if let Some(s) = &src.secret {
            let data = secret_data(k, ns, &s.name).await.map_err(api)?;
            add_object(
                name,
                &mut files,
                "secret",
                &s.name,
                data,
                s.items.as_ref(),
                s.optional.unwrap_or(false),
            )?;
        }
        if let Some(d) = &src.downward_api {
            for item in d.items.as_deref().unwrap_or_default() {
                downward_file(name, pod, item, &mut files)?;
            }
        }
        if let Some(t) = &src.service_account_token {
            let token = service_account_token(k, pod, t.audience.clone(), t.expiration_seconds)
                .await
                .map_err(|e| fail(name, format!("failed to fetch token: {e}")))?;
            files.insert(
                t.path.clone(),
                (token.into_bytes(), Some(mode(p.default_mode))),
            );
        }
    }
    Ok((files, mode(p.default_mode)))
}

fn downward_file(
    volume: &str,
    pod: &Pod,
    item: &DownwardAPIVolumeFile,
    files: &mut Files,
) -> Result<(), VolumeError> {
    let value = if let Some(f) = &item.field_ref {
        crate::runtime::env::field_value(pod, &f.field_path)
            .ok_or_else(|| fail(volume, format!("unsupported fieldPath {:?}", f.field_path)))?
    } else if let Some(r) = &item.resource_field_ref {
        crate::runtime::env::resource_value(
            pod,
            r.container_name.as_deref().unwrap_or(""),
            &r.resource,
            r.divisor.as_ref(),
        )
        .ok_or_else(|| fail(volume, format!("unsupported resource {:?}", r.resource)))?
    } else {
        return Ok(());
    };
    files.insert(
        item.path.clone(),
        (
            value.into_bytes(),
            item.mode.and_then(|m| u32::try_from(m).ok()),
        ),
    );
    Ok(())
}

/// A bound token for the pod's service account (TokenRequest), cached until 80 % of
/// its lifetime has passed.
async fn service_account_token(
    k: &Kubelet,
    pod: &Pod,
    audience: Option<String>,
    expiration: Option<i64>,
) -> Result<String, kube::Error> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let key = format!(
        "{}/{}/{}/{}",
        pod.metadata.uid.as_deref().unwrap_or_default(),
        sa,
        audience.as_deref().unwrap_or_default(),
        expiration.unwrap_or(3600)
    );
    let now = std::time::Instant::now();
    if let Some((token, refresh_at)) = k.tokens.0.lock().get(&key) {
        if now < *refresh_at {
            return Ok(token.clone());
        }
    }
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.into_iter().collect(),
            expiration_seconds: Some(expiration.unwrap_or(3600)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..TokenRequest::default()
    };
    let api = Api::<ServiceAccount>::namespaced(k.client.clone(), &ns);
    let body = serde_json::to_vec(&req).map_err(kube::Error::SerdeError)?;
    let resp: TokenRequest = api
        .create_subresource("token", &sa, &PostParams::default(), &body)
        .await?;
    let token = resp.status.map(|s| s.token).unwrap_or_default();
    let lifetime =
        std::time::Duration::from_secs(u64::try_from(expiration.unwrap_or(3600)).unwrap_or(3600));
    k.tokens
        .0
        .lock()
        .insert(key, (token.clone(), now + lifetime.mul_f64(0.8)));
    Ok(token)
}

/// The bound service-account tokens the kubelet holds, by
/// `<pod uid>/<account>/<audience>/<expiration>`, with when to refresh each.
#[derive(Debug, Default)]
pub struct TokenCache(parking_lot::Mutex<BTreeMap<String, (String, std::time::Instant)>>);

impl TokenCache {
    /// Forgets the tokens cached for a pod.
    pub fn forget(&self, uid: &str) {
        let prefix = format!("{uid}/");
        self.0.lock().retain(|k, _| !k.starts_with(&prefix));
    }
}

/// Writes `files` under `dir` as upstream's AtomicWriter: unchanged payloads are left
/// alone; a changed one goes to a new `..<timestamp>` directory that `..data` is
/// switched to in one rename.
pub fn write_atomic(
    volume: &str,
    dir: &Path,
    files: &Files,
    default_mode: u32,
) -> Result<(), VolumeError> {
    std::fs::create_dir_all(dir).map_err(|e| io(volume, "creating", dir, e))?;
    let data_link = dir.join("..data");
    if let Ok(current) = std::fs::read_link(&data_link) {
        if same_payload(&dir.join(&current), files, default_mode) {
            return Ok(());
        }
    }
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let ts_dir = dir.join(&stamp);
    std::fs::create_dir_all(&ts_dir).map_err(|e| io(volume, "creating", &ts_dir, e))?;
    let _ = std::fs::set_permissions(&ts_dir, std::fs::Permissions::from_mode(0o755));
    for (rel, (content, mode)) in files {
        if rel.split('/').any(|c| c == ".." || c.is_empty()) || rel.starts_with("..") {
            return Err(fail(volume, format!("invalid path {rel:?}")));
        }
        let path = ts_dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(volume, "creating", parent, e))?;
        }
        std::fs::write(&path, content).map_err(|e| io(volume, "writing", &path, e))?;
        std::fs::set_permissions(
            &path,
            std::fs::Permissions::from_mode(mode.unwrap_or(default_mode) & 0o777),
        )
        .map_err(|e| io(volume, "chmod", &path, e))?;
    }
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    symlink(&stamp, &tmp_link).map_err(|e| io(volume, "linking", &tmp_link, e))?;
    let old = std::fs::read_link(&data_link).ok();
    std::fs::rename(&tmp_link, &data_link).map_err(|e| io(volume, "linking", &data_link, e))?;
    // The user-visible names: one symlink per top-level entry through ..data.
    let top: std::collections::BTreeSet<&str> =
        files.keys().filter_map(|k| k.split('/').next()).collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(name), &link)
                .map_err(|e| io(volume, "linking", &link, e))?;
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if !n.starts_with("..") && !top.contains(n.as_str()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

fn same_payload(current: &Path, files: &Files, default_mode: u32) -> bool {
    let mut count = 0usize;
    for (rel, (content, mode)) in files {
        let path = current.join(rel);
        match (std::fs::read(&path), std::fs::metadata(&path)) {
            (Ok(c), Ok(m))
                if &c == content
                    && m.permissions().mode() & 0o777 == mode.unwrap_or(default_mode) & 0o777 =>
            {
                count += 1
            }
            _ => return false,
        }
    }
    // No extra files either.
    fn walk(p: &Path) -> usize {
        std::fs::read_dir(p).map_or(0, |d| {
            d.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    walk(current) == count
}

/// Removes a pod's volume directories (after its containers are gone).
pub fn tear_down(k: &Kubelet, uid: &str) {
    k.tokens.forget(uid);
    let dir = pod_dir(k, uid);
    unmount_tmpfs(&dir);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), error = %e, "removing pod directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_backed_empty_dirs_are_sized_as_upstream() {
        let pod = |containers: serde_json::Value, init: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p"},
                "spec": {"containers": containers, "initContainers": init},
            }))
            .unwrap()
        };
        let limited =
            |mem: &str| serde_json::json!({"name": "c", "resources": {"limits": {"memory": mem}}});
        let gi = 1i128 << 30;
        // No limits anywhere: the node's allocatable memory.
        let free = pod(serde_json::json!([{"name": "c"}]), serde_json::json!([]));
        assert_eq!(memory_volume_size(8 * gi, &free, None), 8 * gi);
        // Every container limited: their sum.
        let two = pod(
            serde_json::json!([limited("1Gi"), limited("512Mi")]),
            serde_json::json!([]),
        );
        assert_eq!(memory_volume_size(8 * gi, &two, None), gi + gi / 2);
        // One unlimited container: unlimited pod.
        let mixed = pod(
            serde_json::json!([limited("1Gi"), {"name": "d"}]),
            serde_json::json!([]),
        );
        assert_eq!(memory_volume_size(8 * gi, &mixed, None), 8 * gi);
        // A larger init container wins over the app containers' sum.
        let init = pod(
            serde_json::json!([limited("1Gi")]),
            serde_json::json!([limited("3Gi")]),
        );
        assert_eq!(memory_volume_size(8 * gi, &init, None), 3 * gi);
        // sizeLimit lowers it, never raises it; zero is ignored.
        assert_eq!(memory_volume_size(8 * gi, &two, Some(64 << 20)), 64 << 20);
        assert_eq!(memory_volume_size(8 * gi, &two, Some(4 * gi)), gi + gi / 2);
        assert_eq!(memory_volume_size(8 * gi, &free, Some(0)), 8 * gi);
        // A pod limit above what the node has is ignored.
        let huge = pod(serde_json::json!([limited("64Gi")]), serde_json::json!([]));
        assert_eq!(memory_volume_size(8 * gi, &huge, None), 8 * gi);
    }

    #[test]
    fn atomic_writer_layout_and_updates() {
        let dir = std::env::temp_dir().join(format!("fk-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut files = Files::new();
        files.insert("a".into(), (b"1".to_vec(), None));
        files.insert("sub/b".into(), (b"2".to_vec(), Some(0o600)));
        write_atomic("v", &dir, &files, 0o644).unwrap();
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"1");
        assert_eq!(std::fs::read(dir.join("sub/b")).unwrap(), b"2");
        assert_eq!(
            std::fs::read_link(dir.join("a")).unwrap(),
            Path::new("..data/a")
        );
        let first = std::fs::read_link(dir.join("..data")).unwrap();
        // Same payload: nothing rewritten.
        write_atomic("v", &dir, &files, 0o644).unwrap();
        assert_eq!(std::fs::read_link(dir.join("..data")).unwrap(), first);
        // A change: a new timestamped dir, the removed key's link gone.
        files.remove("sub/b");
        files.insert("a".into(), (b"3".to_vec(), None));
        write_atomic("v", &dir, &files, 0o644).unwrap();
        assert_ne!(std::fs::read_link(dir.join("..data")).unwrap(), first);
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"3");
        assert!(std::fs::symlink_metadata(dir.join("sub")).is_err());
        assert!(!dir.join(&first).exists());
        let mut bad = Files::new();
        bad.insert("../escape".into(), (vec![], None));
        assert!(write_atomic("v", &dir, &bad, 0o644).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
