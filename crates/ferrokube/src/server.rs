//! `ferrokube server`: everything on one machine. Today that is the storage layer: the
//! embedded store (or etcd) opened, recovered and maintained (compaction, TTL expiry)
//! until SIGINT/SIGTERM. The API server and the other components join it as they land.

use clap::Args;

use crate::storage_flags::StorageFlags;

#[derive(Args, Debug)]
pub struct ServerArgs {
    #[command(flatten)]
    storage: StorageFlags,
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let backend = args.storage.open(true).await?;
    let store = backend.store();
    let revision = store.current_revision().await?;
    match &backend {
        crate::storage_flags::Backend::Embedded(s) => {
            let stats = s.stats();
            tracing::info!(data_dir = %args.storage.data_dir.display(), revision, keys = stats.keys,
                "ferrokube server: embedded store ready");
        }
        crate::storage_flags::Backend::Etcd { store, .. } => {
            tracing::info!(
                endpoints = store.endpoints(),
                revision,
                "ferrokube server: etcd store ready"
            );
        }
    }
    println!(
        "ferrokube server: storage ready at revision {revision} ({} backend); stop with Ctrl-C",
        store.backend()
    );
    wait_for_signal().await?;
    tracing::info!("ferrokube server: shutting down");
    backend.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
