//! One module per subcommand. Each takes the validated configuration, applies its flags (which
//! are validated again) and drives the operators.

mod config_cmd;
mod daily;
mod demo;
mod experiment;
mod gc;
mod generate;
mod import;
mod ingest;
mod models;
mod produce;
mod sql;

use crate::cli::Command;
use crate::config::CtrflowConfig;

/// Runs `command` with `config`.
pub async fn dispatch(command: Command, config: CtrflowConfig) -> anyhow::Result<()> {
    match command {
        Command::Generate(args) => generate::run(args, config).await,
        Command::Import(crate::cli::ImportCommand::Movielens(args)) => {
            import::movielens(args, config).await
        }
        Command::Experiment(crate::cli::ExperimentCommand::Ecdctr(args)) => {
            experiment::ecdctr(args, config).await
        }
        Command::Sql(args) => sql::run(args, config).await,
        Command::Produce(args) => produce::run(args, config).await,
        Command::Ingest(args) => ingest::run(args, config).await,
        Command::Daily(args) => daily::run_daily(args, config).await,
        Command::Backfill(args) => daily::run_backfill(args, config).await,
        Command::Models(cmd) => models::run(cmd, config).await,
        Command::Demo(args) => demo::run(args, config).await,
        Command::Gc(args) => gc::run(args, config).await,
        Command::Config(cmd) => config_cmd::run(cmd, &config),
    }
}

/// Applies `--store` and opens the store.
/// The stores of `daily` and `backfill`: `--store` (or `store.url`) for the landing tables,
/// and `--models-store` for models, snapshots and reports (default: the same store).
pub(crate) fn open_stores(
    store: Option<String>,
    models_store: Option<String>,
    config: &mut CtrflowConfig,
) -> anyhow::Result<crate::daily::Stores> {
    let landing = open_store(store, config)?;
    let models = match models_store {
        Some(url) => ctrflow_storage::Storage::open(&url).map_err(|e| {
            anyhow::Error::new(crate::cli::UsageError(format!(
                "cannot open --models-store `{url}`: {e}"
            )))
        })?,
        None => landing.clone(),
    };
    Ok(crate::daily::Stores { landing, models })
}

pub(crate) fn open_store(
    flag: Option<String>,
    config: &mut CtrflowConfig,
) -> anyhow::Result<ctrflow_storage::Storage> {
    if let Some(url) = flag {
        config.store.url = url;
    }
    ctrflow_storage::Storage::open(&config.store.url).map_err(|e| {
        anyhow::Error::new(crate::cli::UsageError(format!(
            "cannot open store `{}`: {e}",
            config.store.url
        )))
    })
}
