//! Image garbage collection, as upstream's image GC manager: the kubelet remembers when
//! it first saw each image and when it last saw one in use; every five minutes, when
//! the image filesystem (the runtime's, from CRI `ImageFsInfo`) is at least
//! `imageGCHighThresholdPercent` full, it removes unused images — least recently used
//! first, none known for less than `imageMinimumGCAge` — until usage is down to
//! `imageGCLowThresholdPercent`. Falling short is a `FreeDiskSpaceFailed` event on the
//! node (and `ImageGCFailed` when it happens twice in a row). The eviction manager
//! asks it to free what it can before it evicts a pod for disk pressure. With
//! `imageMaximumGCAge` set, unused images not used for that long go at every
//! collection, whatever the disk usage.
//!
//! Images in use by any container (running or not), pinned images and the runtime's
//! sandbox (pause) image are never removed.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrokube_cri::{v1 as cri, CallExt};

use crate::Kubelet;

/// How often image usage is checked against the thresholds (upstream's ImageGCPeriod).
pub const GC_PERIOD: Duration = Duration::from_secs(300);

/// What the kubelet knows of one image.
#[derive(Debug, Clone, Copy)]
struct Record {
    first_seen: Instant,
    last_used: Option<Instant>,
}

/// An image that may be removed.
#[derive(Debug, Clone)]
struct Unused {
    id: String,
    size: i64,
    name: String,
    last_used: Instant,
}

#[derive(Debug, Default)]
pub struct ImageGc {
    records: HashMap<String, Record>,
    last_gc: Option<Instant>,
    failed_before: bool,
    /// The runtime's sandbox image, from its verbose status (once found).
    sandbox_image: Option<String>,
}

/// The image filesystem's mount point, as the runtime reports it.
pub async fn image_fs(k: &Kubelet) -> Option<PathBuf> {
    let info = k
        .cri
        .images
        .clone()
        .image_fs_info(cri::ImageFsInfoRequest {})
        .await
        .call("ImageFsInfo")
        .ok()?;
    info.image_filesystems
        .into_iter()
        .filter_map(|f| f.fs_id)
        .map(|id| PathBuf::from(id.mountpoint))
        .find(|p| !p.as_os_str().is_empty())
}

/// Every image the runtime has.
pub async fn list_images(k: &Kubelet) -> Result<Vec<cri::Image>, ferrokube_cri::Error> {
    Ok(k.cri
        .images
        .clone()
        .list_images(cri::ListImagesRequest { filter: None })
        .await
        .call("ListImages")?
        .images)
}

/// The unused images last used more than `max_age` before `now`.
fn too_old(unused: Vec<Unused>, max_age: Duration, now: Instant) -> Vec<Unused> {
    unused
        .into_iter()
        .filter(|u| now.saturating_duration_since(u.last_used) > max_age)
        .collect()
}

/// `registry.k8s.io/pause:3.10` → `registry.k8s.io/pause`.
fn repository(name: &str) -> &str {
    let name = name.split('@').next().unwrap_or(name);
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    }
}

impl ImageGc {
    pub fn new() -> ImageGc {
        ImageGc::default()
    }

    async fn sandbox_image(&mut self, k: &Kubelet) -> Option<String> {
        if self.sandbox_image.is_none() {
            let status = k
                .cri
                .runtime
                .clone()
                .status(cri::StatusRequest { verbose: true })
                .await
                .call("Status")
                .ok()?;
            // containerd: info["config"] is its CRI config as JSON.
            self.sandbox_image = status
                .info
                .get("config")
                .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
                .and_then(|c| c.get("sandboxImage")?.as_str().map(str::to_string));
        }
        self.sandbox_image.clone()
    }

    /// Lists images and containers, updates what is known, and returns the images
    /// that may be removed now.
    async fn detect(&mut self, k: &Kubelet) -> Result<Vec<Unused>, String> {
        let now = Instant::now();
        let images = list_images(k).await.map_err(|e| e.to_string())?;
        let containers = k.list_containers(None).await.map_err(|e| e.to_string())?;
        let mut in_use: HashSet<String> = HashSet::new();
        for c in &containers {
            in_use.insert(c.image_ref.clone());
            if let Some(spec) = &c.image {
                in_use.insert(spec.image.clone());
            }
        }
        let sandbox = self.sandbox_image(k).await;
        let sandbox_repo = sandbox.as_deref().map(repository);
        let present: HashSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
        self.records.retain(|id, _| present.contains(id.as_str()));
        let mut unused = Vec::new();
        for image in &images {
            let names: Vec<&String> = image.repo_tags.iter().chain(&image.repo_digests).collect();
            let used = in_use.contains(&image.id) || names.iter().any(|n| in_use.contains(*n));
            let record = self.records.entry(image.id.clone()).or_insert(Record {
                first_seen: now,
                last_used: None,
            });
            if used {
                record.last_used = Some(now);
                continue;
            }
            let protected = image.pinned
                || names.iter().any(|n| {
                    sandbox.as_deref() == Some(n.as_str())
                        || sandbox_repo.is_some_and(|r| repository(n) == r)
                        || repository(n).ends_with("/pause")
                });
            if protected || now.duration_since(record.first_seen) < k.config.image_minimum_gc_age {
                continue;
            }
            unused.push(Unused {
                id: image.id.clone(),
                size: i64::try_from(image.size).unwrap_or(i64::MAX),
                name: names
                    .first()
                    .map_or_else(|| image.id.clone(), |n| n.to_string()),
                last_used: record.last_used.unwrap_or(record.first_seen),
            });
        }
        // Least recently used first.
        unused.sort_by_key(|u| u.last_used);
        Ok(unused)
    }

    /// Removes unused images until `bytes` are freed (or none is left); returns what
    /// was freed.
    pub async fn free(&mut self, k: &Kubelet, bytes: i64) -> Result<i64, String> {
        let mut freed = 0i64;
        for image in self.detect(k).await? {
            if freed >= bytes {
                break;
            }
            if self.remove(k, &image).await {
                freed = freed.saturating_add(image.size);
            }
        }
        Ok(freed)
    }

    /// Removes unused images not used for `imageMaximumGCAge` (upstream's
    /// `freeOldImages`), whatever the disk usage.
    async fn free_old(&mut self, k: &Kubelet) {
        let max_age = k.config.image_maximum_gc_age;
        if max_age.is_zero() {
            return;
        }
        let Ok(unused) = self.detect(k).await else {
            return;
        };
        for image in too_old(unused, max_age, Instant::now()) {
            if self.remove(k, &image).await {
                tracing::info!(image = %image.name, "removed an image unused for longer than imageMaximumGCAge");
            }
        }
    }

    /// Removes one image; whether it went.
    async fn remove(&mut self, k: &Kubelet, image: &Unused) -> bool {
        let removed = k
            .cri
            .images
            .clone()
            .remove_image(cri::RemoveImageRequest {
                image: Some(cri::ImageSpec {
                    image: image.id.clone(),
                    ..cri::ImageSpec::default()
                }),
            })
            .await
            .call("RemoveImage");
        match removed {
            Ok(_) => {
                tracing::info!(image = %image.name, id = %image.id, size = image.size, "removed an unused image");
                self.records.remove(&image.id);
                true
            }
            Err(e) => {
                tracing::warn!(image = %image.name, error = %e, "removing an unused image");
                false
            }
        }
    }

    /// The periodic collection: due every [`GC_PERIOD`], from the first call on.
    pub async fn collect_if_due(&mut self, k: &Kubelet) {
        if self.last_gc.is_some_and(|t| t.elapsed() < GC_PERIOD) {
            return;
        }
        self.last_gc = Some(Instant::now());
        self.free_old(k).await;
        let high = k.config.image_gc_high_threshold_percent;
        if high >= 100 {
            return;
        }
        // The eviction loop learns the image filesystem (CRI ImageFsInfo) every tick.
        let image_fs = k.image_fs.lock().clone();
        let Some(fs) = image_fs else {
            // Still keep the records fresh for the next time.
            let _ = self.detect(k).await;
            return;
        };
        let stats = crate::host::fs_stats(&fs);
        if stats.capacity <= 0 {
            return;
        }
        let used = stats.capacity - stats.available;
        let usage = (used as f64 * 100.0 / stats.capacity as f64) as i32;
        if usage < high {
            let _ = self.detect(k).await;
            return;
        }
        let low = k.config.image_gc_low_threshold_percent;
        let to_free = used - (stats.capacity as f64 * f64::from(low) / 100.0) as i64;
        tracing::info!(usage, high_threshold = high, low_threshold = low, amount_to_free = to_free, "disk usage on the image filesystem is over the high threshold, freeing bytes down to the low threshold");
        let result = self.free(k, to_free).await;
        let shortfall = match result {
            Ok(freed) if freed >= to_free => None,
            Ok(freed) => Some(format!(
                "Failed to garbage collect required amount of images. Attempted to free {to_free} bytes, but only found {freed} bytes eligible to free."
            )),
            Err(e) => Some(format!("failed to garbage collect images: {e}")),
        };
        match shortfall {
            None => self.failed_before = false,
            Some(msg) => {
                k.events.node(true, "FreeDiskSpaceFailed", msg.clone());
                if self.failed_before {
                    k.events.node(true, "ImageGCFailed", msg);
                }
                self.failed_before = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_images_are_those_unused_past_the_maximum_age() {
        let now = Instant::now();
        let at = |secs: u64| now.checked_sub(Duration::from_secs(secs)).unwrap_or(now);
        let image = |id: &str, secs: u64| Unused {
            id: id.into(),
            size: 1,
            name: id.into(),
            last_used: at(secs),
        };
        let old = too_old(
            vec![image("a", 10), image("b", 600), image("c", 3600)],
            Duration::from_secs(300),
            now,
        );
        let ids: Vec<&str> = old.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
    }

    #[test]
    fn repositories() {
        assert_eq!(
            repository("registry.k8s.io/pause:3.10"),
            "registry.k8s.io/pause"
        );
        assert_eq!(repository("localhost:5000/pause"), "localhost:5000/pause");
        assert_eq!(repository("localhost:5000/pause:1"), "localhost:5000/pause");
        assert_eq!(
            repository("docker.io/library/busybox@sha256:abc"),
            "docker.io/library/busybox"
        );
    }
}
