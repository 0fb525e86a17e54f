//! Training and evaluation data: the closed days of a landing table, read with DataFusion
//! from the object store and streamed batch by batch.
//!
//! Only days with a `_SUCCESS` manifest are read, and only the files that manifest lists
//! (orphans of crashed writers are never seen). Files are delivered one at a time in key order,
//! each read with one DataFusion partition, so the row order - and with it training - is
//! deterministic: a rerun of a day trains the same model. Each batch is handed to an async
//! sink, awaited per batch (backpressure).
//!
//! **Read-ahead.** Decoding Parquet is the reader's cost, and it runs on one core. While one
//! file is being delivered, the next one is already decoded on another tokio task, up to
//! `read_ahead_batches` batches ahead (`[daily.read] read-ahead-batches`; 0 reads strictly one
//! file at a time). The order delivered is unchanged; memory grows by at most
//! `read_ahead_batches + 1` batches. It matters most when the trainer is idle and waiting,
//! as while it fills its shuffle buffer at the start of a job.
//!
//! **Projection.** A job whose network reads no behaviour sequences (TPM without SRP4CTR
//! pre-training) reads without the history columns ([`TrainingReader::without_columns`]): the
//! Parquet scan then skips their column chunks, which are most of a landing file's bytes (up to
//! 1,000 ids a row), and the shuffle buffer holds only the narrow rows.
//!
//! [`LandingDaysSource`] is the same read as a dataflow source, the head of a training graph.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

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
    read_ahead_batches: usize,
    /// Columns left out of every read.
    dropped_columns: Arc<[&'static str]>,
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
            read_ahead_batches: 0,
            dropped_columns: Arc::from([]),
        }
    }

    /// Decodes the next file while one is being delivered, up to `batches` batches ahead
    /// (0: one file at a time). See the module docs.
    pub fn with_read_ahead(mut self, batches: usize) -> Self {
        self.read_ahead_batches = batches;
        self
    }

    /// Reads without `columns` (see the module docs); the scan skips their data.
    pub fn without_columns(mut self, columns: &[&'static str]) -> Self {
        self.dropped_columns = Arc::from(columns);
        self
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
        let mut files = Vec::new();
        for &date in days {
            let day = self.day(domain, date).await?;
            let mut keys: Vec<String> = day.files.into_iter().map(|f| f.key).collect();
            keys.sort_unstable();
            files.extend(keys.into_iter().map(|key| (date, key)));
        }
        // The file being delivered, plus one decoding ahead when read-ahead is on.
        let in_flight = 1 + usize::from(self.read_ahead_batches > 0);
        let mut files = files.into_iter();
        let mut reading: VecDeque<FileRead> = VecDeque::with_capacity(in_flight);
        let mut rows = 0u64;
        loop {
            while reading.len() < in_flight
                && let Some((date, key)) = files.next()
            {
                reading.push_back(self.start_file(domain, date, key));
            }
            let Some(mut file) = reading.pop_front() else {
                break;
            };
            while let Some(batch) = file.batches.recv().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                sink(batch).await?;
            }
        }
        Ok(rows)
    }
}

/// One landing file being decoded on its own task into a bounded channel; dropping it stops
/// the task.
struct FileRead {
    batches: tokio::sync::mpsc::Receiver<Result<RecordBatch>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FileRead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TrainingReader {
    /// Starts decoding `key` (of `domain`'s day `date`) into a channel of
    /// `read_ahead_batches` (at least 1) batches; a read error arrives as the last item.
    fn start_file(&self, domain: Domain, date: EventDate, key: String) -> FileRead {
        let (sender, batches) = tokio::sync::mpsc::channel(self.read_ahead_batches.max(1));
        let ctx = self.ctx.clone();
        let dropped = Arc::clone(&self.dropped_columns);
        let url = format!(
            "{}{}",
            self.storage.object_store_url(),
            self.storage.full_path(&key)
        );
        let task = tokio::spawn(async move {
            let read = async {
                let mut frame = ctx.read_parquet(url, ParquetReadOptions::default()).await?;
                if !dropped.is_empty() {
                    frame = frame.drop_columns(&dropped)?;
                }
                let mut stream = frame.execute_stream().await?;
                while let Some(batch) = stream.next().await {
                    let batch = batch?;
                    if batch.num_rows() > 0 && sender.send(Ok(batch)).await.is_err() {
                        break; // the reader stopped listening
                    }
                }
                Ok(())
            };
            if let Err(source) = read.await {
                let what = format!("{key} (landing/{domain}, {date})");
                let _ = sender.send(Err(DailyError::Read { what, source })).await;
            }
        });
        FileRead { batches, task }
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
