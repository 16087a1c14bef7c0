//! The audit log backend (`--audit-log-path`): one JSON event per line, written by a
//! dedicated thread in upstream's blocking mode, rotated as upstream's lumberjack logger
//! does — at `--audit-log-maxsize` megabytes the file is renamed
//! `<name>-<UTC time>.<ext>`, and backups beyond `--audit-log-maxbackup` or older than
//! `--audit-log-maxage` days are removed. `-` writes to standard output.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Where events go and when files rotate.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub path: PathBuf,
    /// Megabytes before rotation (0: never).
    pub max_size_mb: u64,
    /// Rotated files kept (0: all).
    pub max_backups: usize,
    /// Days rotated files are kept (0: forever).
    pub max_age_days: u64,
}

/// Sends lines to the writer thread.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: SyncSender<Vec<u8>>,
}

struct Writer {
    cfg: LogConfig,
    file: Option<File>,
    size: u64,
}

/// Lumberjack's backup time format: `2006-01-02T15-04-05.000` (UTC).
fn backup_name(path: &Path) -> PathBuf {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let stamp = ferrokube_api::time::format_rfc3339(secs)
        .trim_end_matches('Z')
        .replace(':', "-");
    let stamp = format!("{stamp}.{:03}", now.subsec_millis());
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{stamp}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{stamp}"),
    };
    path.with_file_name(name)
}

impl Writer {
    fn open(&mut self) -> std::io::Result<()> {
        if let Some(dir) = self.cfg.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.cfg.path)?;
        self.size = f.metadata().map(|m| m.len()).unwrap_or(0);
        self.file = Some(f);
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        std::fs::rename(&self.cfg.path, backup_name(&self.cfg.path))?;
        self.open()?;
        self.cleanup();
        Ok(())
    }

    /// Removes backups beyond the count and age limits.
    fn cleanup(&self) {
        let Some(dir) = self.cfg.path.parent() else {
            return;
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let stem = self
            .cfg
            .path
            .file_stem()
            .map(|s| format!("{}-", s.to_string_lossy()))
            .unwrap_or_default();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut backups: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&stem))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        backups.sort_by_key(|b| std::cmp::Reverse(b.0));
        let now = std::time::SystemTime::now();
        for (i, (modified, path)) in backups.iter().enumerate() {
            let too_many = self.cfg.max_backups > 0 && i >= self.cfg.max_backups;
            let too_old = self.cfg.max_age_days > 0
                && now
                    .duration_since(*modified)
                    .is_ok_and(|age| age.as_secs() > self.cfg.max_age_days * 86_400);
            if too_many || too_old {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        let limit = self.cfg.max_size_mb * 1024 * 1024;
        if limit > 0 && self.size > 0 && self.size + line.len() as u64 > limit {
            self.rotate()?;
        }
        if self.file.is_none() {
            self.open()?;
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(line)?;
            self.size += line.len() as u64;
        }
        Ok(())
    }
}

fn run(mut w: Writer, rx: Receiver<Vec<u8>>) {
    let stdout = w.cfg.path.as_os_str() == "-";
    while let Ok(line) = rx.recv() {
        let result = if stdout {
            std::io::stdout().write_all(&line)
        } else {
            w.write(&line)
        };
        if let Err(e) = result {
            tracing::error!(path = %w.cfg.path.display(), error = %e, "audit: writing the log failed");
        }
    }
}

impl AuditLog {
    /// Opens (creating) the log file now, so a bad path stops start-up.
    pub fn start(cfg: LogConfig) -> Result<AuditLog, std::io::Error> {
        let mut w = Writer {
            cfg,
            file: None,
            size: 0,
        };
        if w.cfg.path.as_os_str() != "-" {
            w.open()?;
        }
        let (tx, rx) = sync_channel(10_000);
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || run(w, rx))?;
        Ok(AuditLog { tx })
    }

    /// Queues one line (blocking when the writer is behind, as upstream's blocking mode).
    pub fn write(&self, mut line: Vec<u8>) {
        line.push(b'\n');
        let _ = self.tx.send(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_max_size_and_keeps_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut w = Writer {
            cfg: LogConfig {
                path: path.clone(),
                max_size_mb: 1,
                max_backups: 2,
                max_age_days: 0,
            },
            file: None,
            size: 0,
        };
        let line = vec![b'x'; 300 * 1024];
        for _ in 0..12 {
            w.write(&line).unwrap();
            // Distinct backup names (millisecond stamps).
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"audit.log".to_string()), "{names:?}");
        let backups: Vec<&String> = names.iter().filter(|n| n.starts_with("audit-")).collect();
        assert_eq!(backups.len(), 2, "{names:?}");
        assert!(backups.iter().all(|b| b.ends_with(".log")));
        assert!(std::fs::metadata(&path).unwrap().len() <= 1024 * 1024);
    }
}
