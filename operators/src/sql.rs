//! SQL over the archive: a DataFusion session whose tables are the landing tables (`natural`,
//! `ad`) of a store, holding exactly the files that manifests list. Files listed by no manifest
//! (orphans of a crashed writer) are never read.
//!
//! Tables stream from object storage (Parquet pages are fetched as the query needs them), so a
//! query over a large archive runs in bounded memory.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use ctrflow_schemas::{
    DayManifest, Domain, EpochManifest, EventDate, EventSchema, FileRole, KeyLayout,
    decode_manifest,
};
use ctrflow_storage::Storage;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;

use crate::OperatorError;

/// How query results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// An aligned text table.
    #[default]
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per row.
    Json,
}

/// The files of one landing table that manifests vouch for, optionally limited to a date range.
pub async fn trusted_landing_files(
    storage: &Storage,
    domain: Domain,
    dates: Option<(EventDate, EventDate)>,
) -> Result<Vec<String>, OperatorError> {
    let layout = KeyLayout;
    let in_range = |d: EventDate| dates.is_none_or(|(from, to)| from <= d && d <= to);
    let mut files = BTreeSet::new();
    for obj in storage.list(&layout.landing_table(domain)).await? {
        if !obj.key.ends_with("/_SUCCESS") {
            continue;
        }
        let bytes = storage.get(&obj.key).await?;
        let day: DayManifest = decode_manifest(&obj.key, &bytes)?;
        if in_range(day.date) {
            files.extend(day.files.into_iter().map(|f| f.key));
        }
    }
    for obj in storage.list(layout.epochs_dir()).await? {
        let bytes = storage.get(&obj.key).await?;
        let epoch: EpochManifest = decode_manifest(&obj.key, &bytes)?;
        files.extend(
            epoch
                .files
                .into_iter()
                .filter(|f| f.role == FileRole::Landing && f.domain == domain && in_range(f.date))
                .map(|f| f.key),
        );
    }
    Ok(files.into_iter().collect())
}

/// Registers `table` in `ctx` as the event-schema table made of `files` (an empty table when
/// there are none).
pub async fn register_event_table(
    ctx: &SessionContext,
    storage: &Storage,
    schema: &EventSchema,
    table: &str,
    files: &[String],
) -> Result<(), OperatorError> {
    let arrow_schema = schema.arrow().clone();
    if files.is_empty() {
        let empty = MemTable::try_new(arrow_schema.clone(), vec![vec![]])?;
        ctx.register_table(table, Arc::new(empty))?;
        return Ok(());
    }
    let base = storage.object_store_url();
    let urls = files
        .iter()
        .map(|key| ListingTableUrl::parse(format!("{base}{}", storage.full_path(key))))
        .collect::<Result<Vec<_>, _>>()?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(arrow_schema);
    ctx.register_table(table, Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

/// A DataFusion session over `storage` with the tables `natural` and `ad`.
pub async fn archive_session(
    storage: &Storage,
    schema: &EventSchema,
) -> Result<SessionContext, OperatorError> {
    let ctx = SessionContext::new();
    ctx.register_object_store(&storage.object_store_url(), storage.object_store());
    for domain in Domain::ALL {
        let files = trusted_landing_files(storage, domain, None).await?;
        register_event_table(&ctx, storage, schema, domain.as_str(), &files).await?;
    }
    Ok(ctx)
}

/// Runs `query` against the archive in `storage` and returns the result batches.
pub async fn run_query(
    storage: &Storage,
    schema: &EventSchema,
    query: &str,
) -> Result<Vec<RecordBatch>, OperatorError> {
    let ctx = archive_session(storage, schema).await?;
    Ok(ctx.sql(query).await?.collect().await?)
}

/// Writes `batches` to `out` in `format`.
pub fn write_batches(
    batches: &[RecordBatch],
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), OperatorError> {
    let arrow_err = |source| OperatorError::Arrow {
        context: "formatting query results",
        source,
    };
    let io_err = |source| OperatorError::Io {
        path: "<stdout>".into(),
        source,
    };
    match format {
        OutputFormat::Table => {
            let table = arrow::util::pretty::pretty_format_batches(batches).map_err(arrow_err)?;
            writeln!(out, "{table}").map_err(io_err)?;
        }
        OutputFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for b in batches {
                w.write(b).map_err(arrow_err)?;
            }
        }
        OutputFormat::Json => {
            let mut w = arrow::json::LineDelimitedWriter::new(out);
            for b in batches {
                w.write(b).map_err(arrow_err)?;
            }
            w.finish().map_err(arrow_err)?;
        }
    }
    Ok(())
}
