//! `ctrflow ingest`: applies the flags, runs [`crate::ingest::run_ingest`] and turns
//! SIGINT/SIGTERM into a graceful shutdown.

use crate::cli::IngestArgs;
use crate::config::CtrflowConfig;

pub async fn run(args: IngestArgs, mut config: CtrflowConfig) -> anyhow::Result<()> {
    if let Some(b) = args.brokers {
        config.kafka.brokers = b;
    }
    if let Some(g) = args.group {
        config.kafka.group_id = g;
    }
    if args.until_caught_up {
        config.ingest.until_caught_up = true;
    }
    config.validate()?;
    let storage = super::open_store(args.store, &mut config)?;
    let stats = crate::ingest::run_ingest(&config, storage, wait_for_signal()).await?;
    tracing::info!(
        epochs = stats.epochs,
        landed_rows = stats.landed_rows,
        late_rows = stats.late_rows,
        dead_letter_rows = stats.dead_letter_rows,
        closed_days = stats.closed_days.len(),
        "ingest stopped"
    );
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
