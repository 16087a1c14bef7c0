//! Container log rotation, as upstream's container log manager: every
//! `containerLogMonitorInterval` the log of each running container is checked; one of
//! `containerLogMaxSize` or more is renamed to `<log>.<YYYYmmdd-HHMMSS>` and the runtime
//! reopens the log (CRI ReopenContainerLog). Rotated logs are gzip-compressed (all but
//! the newest), and at most `containerLogMaxFiles` files are kept, the current one
//! included.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferrokube_cri::{v1 as cri, CallExt};

use crate::Kubelet;

/// Runs until the kubelet stops.
pub async fn run(k: Arc<Kubelet>) {
    let mut tick = tokio::time::interval(k.config.container_log_monitor_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => rotate_all(&k).await,
            () = k.stopped() => return,
        }
    }
}

async fn rotate_all(k: &Kubelet) {
    let running = cri::ContainerFilter {
        state: Some(cri::ContainerStateValue {
            state: cri::ContainerState::ContainerRunning as i32,
        }),
        ..cri::ContainerFilter::default()
    };
    let Ok(containers) = k.list_containers(Some(running)).await else {
        return;
    };
    let max_bytes = u64::try_from(k.config.container_log_max_size).unwrap_or(u64::MAX);
    let max_files = usize::try_from(k.config.container_log_max_files).unwrap_or(5);
    for c in containers {
        let Some(st) = k.container_status(&c.id).await else {
            continue;
        };
        if st.log_path.is_empty() {
            continue;
        }
        let path = PathBuf::from(&st.log_path);
        if std::fs::metadata(&path).map_or(true, |m| m.len() < max_bytes) {
            continue;
        }
        let stamp = k8s_openapi::jiff::Timestamp::now()
            .strftime("%Y%m%d-%H%M%S")
            .to_string();
        let p = path.clone();
        let prepared =
            tokio::task::spawn_blocking(move || prepare_rotation(&p, max_files, &stamp)).await;
        let rotated = match prepared {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => continue,
            Ok(Err(e)) => {
                tracing::warn!(container = %c.id, path = %path.display(), error = %e, "rotating a container log");
                continue;
            }
            Err(_) => continue,
        };
        let reopened = k
            .cri
            .runtime
            .clone()
            .reopen_container_log(cri::ReopenContainerLogRequest {
                container_id: c.id.clone(),
            })
            .await
            .call("ReopenContainerLog");
        if let Err(e) = reopened {
            // As upstream: put the log back so that nothing is lost.
            let _ = std::fs::rename(&rotated, &path);
            tracing::warn!(container = %c.id, error = %e, "reopening a rotated container log");
        } else {
            tracing::debug!(container = %c.id, to = %rotated.display(), "rotated a container log");
        }
    }
}

/// The rotated logs of `log` (`<log>.<stamp>` and `<log>.<stamp>.gz`), oldest first.
fn rotated(log: &Path) -> std::io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Everything before the runtime reopens the log: leftovers of an interrupted pass
/// removed, the oldest rotated logs removed to leave room, the others compressed, and
/// the log renamed. Returns the rotated name (`None`: it exists already, try later).
pub fn prepare_rotation(
    log: &Path,
    max_files: usize,
    stamp: &str,
) -> std::io::Result<Option<PathBuf>> {
    // Unused: half-written compressions, and logs whose compressed copy is complete.
    let all = rotated(log)?;
    for p in &all {
        let s = p.to_string_lossy();
        if s.ends_with(".tmp") || all.contains(&PathBuf::from(format!("{s}.gz"))) {
            std::fs::remove_file(p)?;
        }
    }
    // Room for the current log and the one about to be rotated.
    let mut kept = rotated(log)?;
    let keep = max_files.saturating_sub(2);
    if kept.len() > keep {
        for p in kept.drain(..kept.len() - keep) {
            std::fs::remove_file(p)?;
        }
    }
    for p in kept {
        if p.extension().is_some_and(|e| e == "gz") {
            continue;
        }
        compress(&p)?;
    }
    let target = PathBuf::from(format!("{}.{stamp}", log.display()));
    if target.exists() || PathBuf::from(format!("{}.gz", target.display())).exists() {
        return Ok(None);
    }
    std::fs::rename(log, &target)?;
    Ok(Some(target))
}

/// `p` → `p.gz` (written as `p.gz.tmp`, then renamed), and `p` removed.
fn compress(p: &Path) -> std::io::Result<()> {
    let gz = PathBuf::from(format!("{}.gz", p.display()));
    let tmp = PathBuf::from(format!("{}.tmp", gz.display()));
    let mut input = std::fs::File::open(p)?;
    let out = std::fs::File::create(&tmp)?;
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    std::io::copy(&mut input, &mut enc)?;
    enc.finish()?.flush()?;
    std::fs::rename(&tmp, &gz)?;
    std::fs::remove_file(p)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rotation_keeps_max_files_and_compresses_all_but_the_newest() {
        let dir = std::env::temp_dir().join(format!("fk-logrot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("0.log");
        std::fs::write(dir.join("1.log"), "another container's log").unwrap();
        for (i, stamp) in [
            "20260101-000001",
            "20260101-000002",
            "20260101-000003",
            "20260101-000004",
        ]
        .iter()
        .enumerate()
        {
            std::fs::write(&log, format!("line {i}\n")).unwrap();
            let r = prepare_rotation(&log, 3, stamp).unwrap().unwrap();
            assert!(r.ends_with(format!("0.log.{stamp}")));
            assert!(!log.exists());
        }
        // Three files at most with the current one: two rotated, the older compressed.
        assert_eq!(
            names(&dir),
            ["0.log.20260101-000003.gz", "0.log.20260101-000004", "1.log"]
        );
        let gz = std::fs::read(dir.join("0.log.20260101-000003.gz")).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text)
            .unwrap();
        assert_eq!(text, "line 2\n");
        // The same second again: not now. Leftovers of an interrupted pass go.
        std::fs::write(&log, "x\n").unwrap();
        assert!(prepare_rotation(&log, 3, "20260101-000004")
            .unwrap()
            .is_none());
        std::fs::write(dir.join("0.log.20260101-000004.gz.tmp"), "half").unwrap();
        prepare_rotation(&log, 3, "20260101-000005")
            .unwrap()
            .unwrap();
        assert_eq!(
            names(&dir),
            ["0.log.20260101-000004.gz", "0.log.20260101-000005", "1.log"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
