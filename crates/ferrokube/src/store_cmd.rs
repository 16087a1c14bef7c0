//! `ferrokube store …`: read and change a store directly, like `etcdctl` but for both
//! backends. Useful to look inside the embedded data directory (while no server holds
//! it) or at what ferrokube wrote to etcd.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, Subcommand};
use ferrokube_storage::{EventKind, RangeRequest, WatchMessage, WatchRequest};

use crate::duration::parse_go_duration;
use crate::storage_flags::StorageFlags;

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Print the backend, revision and (embedded) compacted revision and key count.
    Status(Common),
    /// Print the value of a key.
    Get {
        #[command(flatten)]
        common: Common,
        key: String,
        /// Read at this revision instead of the latest.
        #[arg(long)]
        revision: Option<i64>,
        /// Print key, create/mod revision and version instead of the value.
        #[arg(long)]
        meta: bool,
    },
    /// List the keys under a prefix (key, mod revision, value size).
    List {
        #[command(flatten)]
        common: Common,
        prefix: String,
        #[arg(long, default_value_t = 0)]
        limit: usize,
        #[arg(long)]
        revision: Option<i64>,
    },
    /// Create or overwrite a key.
    Put {
        #[command(flatten)]
        common: Common,
        key: String,
        /// The value (or use --from-file).
        #[arg(required_unless_present = "from_file", conflicts_with = "from_file")]
        value: Option<String>,
        #[arg(long, value_name = "FILE")]
        from_file: Option<PathBuf>,
        /// Delete the key after this long (Go duration).
        #[arg(long, value_parser = parse_go_duration)]
        ttl: Option<Duration>,
    },
    /// Delete a key.
    Delete {
        #[command(flatten)]
        common: Common,
        key: String,
    },
    /// Print changes under a prefix as they happen.
    Watch {
        #[command(flatten)]
        common: Common,
        prefix: String,
        /// Replay history from this revision.
        #[arg(long, default_value_t = 0)]
        from_revision: i64,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Discard history below a revision.
    Compact {
        #[command(flatten)]
        common: Common,
        revision: i64,
    },
}

#[derive(Args, Debug)]
pub struct Common {
    #[command(flatten)]
    storage: StorageFlags,
}

pub async fn run(cmd: StoreCommand) -> anyhow::Result<()> {
    let common = match &cmd {
        StoreCommand::Status(c) => c,
        StoreCommand::Get { common, .. }
        | StoreCommand::List { common, .. }
        | StoreCommand::Put { common, .. }
        | StoreCommand::Delete { common, .. }
        | StoreCommand::Watch { common, .. }
        | StoreCommand::Compact { common, .. } => common,
    };
    let backend = common.storage.open(false).await?;
    let result = execute(&cmd, &backend).await;
    backend.shutdown().await;
    result
}

async fn execute(
    cmd: &StoreCommand,
    backend: &crate::storage_flags::Backend,
) -> anyhow::Result<()> {
    let store = backend.store();
    let mut out = std::io::stdout().lock();
    match cmd {
        StoreCommand::Status(_) => {
            writeln!(out, "backend: {}", store.backend())?;
            writeln!(out, "revision: {}", store.current_revision().await?)?;
            if let crate::storage_flags::Backend::Embedded(s) = backend {
                let stats = s.stats();
                writeln!(out, "compacted revision: {}", stats.compacted_revision)?;
                writeln!(out, "keys: {}", stats.keys)?;
            }
        }
        StoreCommand::Get {
            key,
            revision,
            meta,
            ..
        } => {
            let kv = store
                .get(key, *revision)
                .await?
                .with_context(|| format!("key {key:?} not found"))?;
            if *meta {
                writeln!(
                    out,
                    "key: {}\ncreate_revision: {}\nmod_revision: {}\nversion: {}\nsize: {}",
                    kv.key,
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version,
                    kv.value.len()
                )?;
            } else {
                out.write_all(&kv.value)?;
                if !kv.value.ends_with(b"\n") {
                    writeln!(out)?;
                }
            }
        }
        StoreCommand::List {
            prefix,
            limit,
            revision,
            ..
        } => {
            let mut req = RangeRequest::prefix(prefix.clone()).with_limit(*limit);
            req.revision = *revision;
            let resp = store.range(req).await?;
            for kv in &resp.kvs {
                writeln!(out, "{}\t{}\t{}", kv.key, kv.mod_revision, kv.value.len())?;
            }
            if resp.more {
                writeln!(out, "# {} more", resp.count - resp.kvs.len() as i64)?;
            }
        }
        StoreCommand::Put {
            key,
            value,
            from_file,
            ttl,
            ..
        } => {
            let bytes = match (value, from_file) {
                (Some(v), _) => Bytes::from(v.clone()),
                (None, Some(path)) => Bytes::from(
                    std::fs::read(path)
                        .with_context(|| format!("--from-file {}", path.display()))?,
                ),
                (None, None) => anyhow::bail!("a value or --from-file is required"),
            };
            let kv = ferrokube_storage::guaranteed_update::<ferrokube_storage::StorageError, _>(
                &*store,
                key,
                true,
                |_| {
                    Ok(ferrokube_storage::UpdateDecision::Write {
                        value: bytes.clone(),
                        ttl: *ttl,
                    })
                },
            )
            .await?;
            writeln!(out, "{} mod_revision={}", kv.key, kv.mod_revision)?;
        }
        StoreCommand::Delete { key, .. } => {
            let (_, rev) = store.delete(key, None).await?;
            writeln!(out, "deleted {key} at revision {rev}")?;
        }
        StoreCommand::Watch {
            prefix,
            from_revision,
            count,
            ..
        } => {
            let mut watch = store
                .watch(WatchRequest::prefix(prefix.clone()).from_revision(*from_revision))
                .await?;
            let mut seen = 0;
            while count.is_none_or(|c| seen < c) {
                let Some(msg) = watch.recv().await else { break };
                if let WatchMessage::Event(e) = msg? {
                    let kind = match e.kind {
                        EventKind::Created => "CREATED",
                        EventKind::Modified => "MODIFIED",
                        EventKind::Deleted => "DELETED",
                    };
                    writeln!(out, "{kind}\t{}\t{}", e.kv.key, e.kv.mod_revision)?;
                    out.flush()?;
                    seen += 1;
                }
            }
        }
        StoreCommand::Compact { revision, .. } => {
            store.compact(*revision).await?;
            writeln!(out, "compacted to revision {revision}")?;
        }
    }
    Ok(())
}
