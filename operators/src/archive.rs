//! [`ArchiveWriter`]: turns a time-ordered stream of events into a Parquet archive in the landing
//! layout (`landing/{domain}/date=D/part-{source}-{seq}.parquet`), closing each day with its
//! `_SUCCESS` [`DayManifest`] once all of its files are durable.
//!
//! Atomicity: each data file is a single write-once put under a deterministic key, and a day
//! becomes visible to readers only when its manifest is written, after its files. Rerunning the
//! same deterministic producer after a crash rewrites identical keys (accepted as idempotent) and
//! finishes the days that were missing their manifest.

use std::collections::BTreeMap;

use chrono::Utc;
use ctrflow_schemas::{
    DayManifest, Domain, Event, EventBatchBuilder, EventDate, EventSchema, FileEntry, FileRole,
    KeyLayout, PartName, encode_manifest,
};
use ctrflow_storage::{ParquetWriteOptions, Storage};

use crate::OperatorError;

/// Default number of rows per Parquet file before rolling to the next part.
pub const DEFAULT_ROWS_PER_FILE: usize = 262_144;

/// Totals of what an [`ArchiveWriter`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// Rows per domain.
    pub rows: BTreeMap<Domain, u64>,
    /// Closed day partitions (domain, date).
    pub days: Vec<(Domain, EventDate)>,
    /// Data files written.
    pub files: u64,
    /// Bytes of data files written.
    pub bytes: u64,
}

struct OpenDay {
    builder: EventBatchBuilder,
    files: Vec<FileEntry>,
    rows: u64,
    next_seq: u32,
}

/// Writes events into the landing layout of a store, day by day. See the module docs.
pub struct ArchiveWriter {
    storage: Storage,
    schema: EventSchema,
    layout: KeyLayout,
    producer: String,
    source_tag: String,
    rows_per_file: usize,
    options: ParquetWriteOptions,
    open: BTreeMap<(Domain, EventDate), OpenDay>,
    summary: ArchiveSummary,
}

impl ArchiveWriter {
    /// A writer into `storage`. `producer` is recorded in day manifests (e.g. `generate`);
    /// `source_tag` names the part files (`part-{source_tag}-00000.parquet`).
    pub fn new(storage: Storage, schema: EventSchema, producer: &str, source_tag: &str) -> Self {
        ArchiveWriter {
            storage,
            schema,
            layout: KeyLayout,
            producer: producer.to_string(),
            source_tag: source_tag.to_string(),
            rows_per_file: DEFAULT_ROWS_PER_FILE,
            options: ParquetWriteOptions::default(),
            open: BTreeMap::new(),
            summary: ArchiveSummary::default(),
        }
    }

    /// Rolls to a new file after `rows` rows (at least 1).
    pub fn with_rows_per_file(mut self, rows: usize) -> Self {
        self.rows_per_file = rows.max(1);
        self
    }

    /// Appends one event to its (domain, day) partition, writing a file when the part is full.
    pub async fn push(&mut self, event: &Event) -> Result<(), OperatorError> {
        let date = event
            .event_time
            .date()
            .ok_or_else(|| OperatorError::Input {
                file: "event stream".into(),
                line: 0,
                reason: format!("event {} has an unrepresentable time", event.event_id),
            })?;
        let key = (event.domain, date);
        let schema = &self.schema;
        let day = self.open.entry(key).or_insert_with(|| OpenDay {
            builder: EventBatchBuilder::new(schema.clone(), 4096),
            files: Vec::new(),
            rows: 0,
            next_seq: 0,
        });
        day.builder.push(event)?;
        if day.builder.len() >= self.rows_per_file {
            self.flush(key).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, key: (Domain, EventDate)) -> Result<(), OperatorError> {
        let Some(day) = self.open.get_mut(&key) else {
            return Ok(());
        };
        if day.builder.is_empty() {
            return Ok(());
        }
        let batch = day.builder.finish()?;
        let part = PartName::Batch {
            source: self.source_tag.clone(),
            seq: day.next_seq,
        };
        let object = self.layout.landing_file(key.0, key.1, &part);
        let written = self
            .storage
            .write_parquet(&object, self.schema.arrow(), &[batch], &self.options)
            .await?;
        day.next_seq += 1;
        day.rows += written.rows;
        day.files.push(FileEntry {
            key: object,
            role: FileRole::Landing,
            domain: key.0,
            date: key.1,
            rows: written.rows,
            bytes: written.bytes,
        });
        *self.summary.rows.entry(key.0).or_default() += written.rows;
        self.summary.files += 1;
        self.summary.bytes += written.bytes;
        Ok(())
    }

    /// Flushes and closes one partition: its `_SUCCESS` manifest is written after its files.
    /// Closing a partition that received no events writes an empty day (zero rows).
    pub async fn close_day(
        &mut self,
        domain: Domain,
        date: EventDate,
    ) -> Result<DayManifest, OperatorError> {
        self.flush((domain, date)).await?;
        let day = self.open.remove(&(domain, date));
        let (rows, files) = day.map(|d| (d.rows, d.files)).unwrap_or_default();
        let manifest = DayManifest {
            domain,
            date,
            rows,
            files,
            watermark_ms: None,
            producer: self.producer.clone(),
            closed_at: Utc::now(),
        };
        let key = self.layout.day_success(domain, date);
        // The day manifest is a pointer-like object: last writer wins is fine because a rerun of
        // a deterministic producer lists the same files and rows.
        self.storage
            .put(&key, encode_manifest(&manifest).into())
            .await?;
        self.summary.days.push((domain, date));
        Ok(manifest)
    }

    /// Closes every open partition whose day is before `date` (events arrive in time order).
    pub async fn close_days_before(&mut self, date: EventDate) -> Result<(), OperatorError> {
        let due: Vec<_> = self
            .open
            .keys()
            .filter(|(_, d)| *d < date)
            .copied()
            .collect();
        for (domain, day) in due {
            self.close_day(domain, day).await?;
        }
        Ok(())
    }

    /// Closes everything still open and returns the totals.
    pub async fn finish(mut self) -> Result<ArchiveSummary, OperatorError> {
        let keys: Vec<_> = self.open.keys().copied().collect();
        for (domain, date) in keys {
            self.close_day(domain, date).await?;
        }
        Ok(self.summary)
    }
}
