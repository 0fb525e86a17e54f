//! Training and evaluation data: the closed days of a landing table, read with DataFusion
//! from the object store and streamed batch by batch.
//!
//! Only days with a `_SUCCESS` manifest are read, and only the files that manifest lists
//! (orphans of crashed writers are never seen). Files are read one at a time in key order with
//! one DataFusion partition, so the row order - and with it training - is deterministic: a rerun
//! of a day trains the same model. Each batch is handed to an async sink and the next one is
//! only decoded when the sink has taken it (backpressure: at most one batch in flight here,
//! plus what the sink's channel holds). [`LandingDaysSource`] is the same read as a dataflow
//! source, the head of a training graph.

use std::future::Future;

use arrow::array::RecordBatch;
use ctrflow_operators::OperatorError;
use ctrflow_operators::dataflow::{Collector, Message, Source, SourceContext};
use ctrflow_schemas::{DayManifest, Domain, Epoch, EventDate, KeyLayout, decode_manifest};
use ctrflow_storage::Storage;
use datafusion::execution::context::SessionConfig;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;

use super::error::{DailyError, Result};

/// Reads landing days for training and evaluation.
#[derive(Clone)]
pub struct TrainingReader {
    ctx: SessionContext,
    storage: Storage,
}

impl std::fmt::Debug for TrainingReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainingReader")
            .field("store", &self.storage.url().as_str())
            .finish_non_exhaustive()
    }
}

impl TrainingReader {
    /// A reader of `storage` producing batches of at most `batch_rows` rows.
    pub fn new(storage: &Storage, batch_rows: usize) -> Self {
        let config = SessionConfig::new()
            .with_target_partitions(1)
            .with_batch_size(batch_rows.max(1));
        let ctx = SessionContext::new_with_config(config);
        ctx.register_object_store(&storage.object_store_url(), storage.object_store());
        TrainingReader {
            ctx,
            storage: storage.clone(),
        }
    }

    /// The day manifest of a closed day.
    pub async fn day(&self, domain: Domain, date: EventDate) -> Result<DayManifest> {
        let key = KeyLayout.day_success(domain, date);
        let bytes = self.storage.get(&key).await?;
        Ok(decode_manifest(&key, &bytes)?)
    }

    /// Streams every row of `days` (in the given order, each day's files in key order) into
    /// `sink`, awaiting it per batch. Returns the number of rows read.
    pub async fn for_each_batch<F, Fut>(
        &self,
        domain: Domain,
        days: &[EventDate],
        mut sink: F,
    ) -> Result<u64>
    where
        F: FnMut(RecordBatch) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let mut rows = 0u64;
        for &date in days {
            let day = self.day(domain, date).await?;
            let mut keys: Vec<&str> = day.files.iter().map(|f| f.key.as_str()).collect();
            keys.sort_unstable();
            for key in keys {
                let what = || format!("{key} (landing/{domain}, {date})");
                let read_error = |source| DailyError::Read {
                    what: what(),
                    source,
                };
                let url = format!(
                    "{}{}",
                    self.storage.object_store_url(),
                    self.storage.full_path(key)
                );
                let frame = self
                    .ctx
                    .read_parquet(url, ParquetReadOptions::default())
                    .await
                    .map_err(read_error)?;
                let mut stream = frame.execute_stream().await.map_err(read_error)?;
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(read_error)?;
                    if batch.num_rows() == 0 {
                        continue;
                    }
                    rows += batch.num_rows() as u64;
                    sink(batch).await?;
                }
            }
        }
        Ok(rows)
    }
}

/// The closed days of one domain as a dataflow source: every row of `days`, `passes` times
/// over, in [`TrainingReader::for_each_batch`]'s deterministic order, with a barrier after
/// each pass (`Epoch(1)` after the first). Backpressure comes from the graph's channels.
pub struct LandingDaysSource {
    reader: TrainingReader,
    domain: Domain,
    days: Vec<EventDate>,
    passes: u32,
}

impl LandingDaysSource {
    /// A source of `days` of `domain`, read `passes` times.
    pub fn new(reader: TrainingReader, domain: Domain, days: Vec<EventDate>, passes: u32) -> Self {
        LandingDaysSource {
            reader,
            domain,
            days,
            passes,
        }
    }
}

#[async_trait::async_trait]
impl Source for LandingDaysSource {
    fn name(&self) -> String {
        format!("landing-reader ({})", self.domain)
    }

    async fn run(&mut self, ctx: &mut SourceContext) -> std::result::Result<(), OperatorError> {
        for pass in 1..=u64::from(self.passes) {
            let out = &mut ctx.out;
            let result = self
                .reader
                .for_each_batch(self.domain, &self.days, |batch| {
                    let mut out = out.clone();
                    async move { Ok(out.collect(0, batch).await?) }
                })
                .await;
            match result {
                Ok(_) => {}
                Err(DailyError::Operator(e)) => return Err(e),
                Err(e) => return Err(OperatorError::Internal(e.to_string())),
            }
            ctx.out.broadcast(Message::Barrier(Epoch(pass))).await?;
        }
        ctx.out.broadcast(Message::End).await
    }
}
