//! `ctrflow sql`.

use ctrflow_operators::sql::{OutputFormat, run_query, write_batches};

use crate::cli::{SqlArgs, SqlFormat};
use crate::config::CtrflowConfig;

pub async fn run(args: SqlArgs, mut config: CtrflowConfig) -> anyhow::Result<()> {
    let storage = super::open_store(args.store, &mut config)?;
    let schema = config.schema.event_schema();
    let batches = run_query(&storage, &schema, &args.query).await?;
    let format = match args.format {
        SqlFormat::Table => OutputFormat::Table,
        SqlFormat::Csv => OutputFormat::Csv,
        SqlFormat::Json => OutputFormat::Json,
    };
    let stdout = std::io::stdout();
    write_batches(&batches, format, &mut stdout.lock())?;
    Ok(())
}
