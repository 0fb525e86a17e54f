//! [`PartSink`]: the Parquet sinks of `ctrflow ingest`. One type serves two roles:
//!
//! - **landing** (decoded events with provenance columns): rows go to
//!   `landing/{domain}/date=D/part-{topic}-{partition}-{first}-{last}.parquet`, or to `late/...`
//!   when their day was already closed;
//! - **dead letter** (rejected messages): rows go to `dead-letter/{domain}/date=D/...`, dated by
//!   when they were rejected, the domain taken from the topic.
//!
//! Files never span epochs. Each part (one file to be) is encoded while the epoch is open, its
//! rows handed to a blocking thread as they arrive ([`encoder`]), so the Parquet work is spread
//! over the epoch rather than stalling the pipeline at its barrier. On a barrier every open part
//! is finished and stored (concurrently, each a write-once put under a deterministic key) and the
//! sink reports the files to the coordinator ([`SinkAck`]); the barrier moves on only after
//! that, so the coordinator's epoch manifest lists only durable files. Parts that reach
//! `rows-per-file` inside an epoch are finished and stored early, in the background.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type, SchemaRef, TimestampMillisecondType};
use async_trait::async_trait;
use ctrflow_schemas::{
    Domain, Epoch, EventDate, EventSchema, FileEntry, FileRole, KeyLayout, PartName, columns,
    dead_letter_schema, raw_columns,
};
use ctrflow_storage::{ParquetCompression, ParquetWriteOptions, Storage};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use self::encoder::OpenPart;
use super::buffer::{PartBuffer, PartKey};
use crate::OperatorError;
use crate::dataflow::{Collector, Operator};

/// Days whose `_SUCCESS` manifest is written; events for them are late. Shared between the
/// coordinator (writer) and the landing sink (reader).
pub type ClosedDays = Arc<RwLock<BTreeSet<(Domain, EventDate)>>>;

/// Sink settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct SinkConfig {
    /// A part is written early once it holds this many rows (files are also closed at every
    /// epoch barrier, so the epoch interval bounds file age).
    pub rows_per_file: usize,
    /// zstd level of landing, late and dead-letter files, 1 (fastest to encode) to 22
    /// (smallest files). Default 3.
    pub zstd_level: i32,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            rows_per_file: 250_000,
            zstd_level: 3,
        }
    }
}

impl SinkConfig {
    /// How this sink's files are encoded (`landing`: landing files; otherwise dead-letter and
    /// late files). Landing files are encoded as the stream arrives, so they skip what costs
    /// time per value and buys nothing:
    /// - no dictionary on the columns whose values are all distinct (`event_id`, `event_time`):
    ///   there it costs a hash probe per row and is abandoned once it outgrows its page;
    /// - no dictionary on `item_content`'s floats: an item's vector repeats whole, which zstd
    ///   compresses as well as a dictionary would (the same file size in
    ///   `operators/benches/landing_encode.rs`, 18% less encode time);
    /// - no min/max statistics on the behaviour lists' and content's values: random ids and
    ///   floats that no reader prunes by.
    pub fn parquet_options(&self, landing: bool) -> ParquetWriteOptions {
        let (plain_columns, unindexed_columns) = if landing {
            let content = leaf_of_list(columns::ITEM_CONTENT);
            (
                vec![
                    columns::EVENT_ID.to_string(),
                    columns::EVENT_TIME.to_string(),
                    content.clone(),
                ],
                vec![
                    leaf_of_list(columns::HIST_ITEM_IDS),
                    leaf_of_list(columns::HIST_CATEGORY_IDS),
                    content,
                ],
            )
        } else {
            (Vec::new(), Vec::new())
        };
        ParquetWriteOptions {
            compression: ParquetCompression::Zstd(self.zstd_level),
            plain_columns,
            unindexed_columns,
            ..ParquetWriteOptions::default()
        }
    }
}

/// The Parquet leaf that holds a list column's values.
fn leaf_of_list(column: &str) -> String {
    format!("{column}.list.item")
}

/// What a sink reports to the coordinator when it has finished an epoch.
#[derive(Debug, Clone)]
pub struct SinkAck {
    /// Which sink.
    pub sink: String,
    /// The epoch finished.
    pub epoch: Epoch,
    /// Files written in the epoch (durable).
    pub files: Vec<FileEntry>,
    /// Per `topic/partition`, the largest event time seen so far (landing only).
    pub max_event_time_ms: BTreeMap<String, i64>,
}

enum Role {
    Landing {
        closed: ClosedDays,
        /// The event schema: what landing and late files hold.
        schema: SchemaRef,
        /// The event columns of a decoded batch (the provenance columns follow them).
        projection: Arc<[usize]>,
    },
    DeadLetter {
        topic_domains: HashMap<String, Domain>,
    },
}

/// The landing or dead-letter sink. See the module docs.
pub struct PartSink {
    name: String,
    role: Role,
    storage: Storage,
    config: SinkConfig,
    options: ParquetWriteOptions,
    /// Splits each input batch by part (a scratch buffer, empty between batches).
    splitter: PartBuffer,
    /// The epoch's parts still taking rows.
    open: BTreeMap<PartKey, OpenPart>,
    /// The epoch's parts being finished and stored; each yields its file.
    closing: JoinSet<Result<FileEntry, OperatorError>>,
    max_event_time: BTreeMap<String, i64>,
    acks: mpsc::Sender<SinkAck>,
}

/// How [`PartSink::route`] splits a batch: the output-file group of every row, the groups' keys,
/// and the rows' Kafka offsets.
type Routing = (Vec<u32>, Vec<PartKey>, Vec<i64>);

impl PartSink {
    /// The landing sink for decoded events (event columns followed by provenance columns).
    pub fn landing(
        storage: Storage,
        schema: &EventSchema,
        closed: ClosedDays,
        config: SinkConfig,
        acks: mpsc::Sender<SinkAck>,
    ) -> Self {
        PartSink::new(
            "landing-sink",
            Role::Landing {
                closed,
                schema: schema.arrow().clone(),
                projection: (0..schema.arrow().fields().len()).collect(),
            },
            storage,
            config,
            acks,
        )
    }

    /// The dead-letter sink; `topic_domains` maps each topic to its domain.
    pub fn dead_letter(
        storage: Storage,
        topic_domains: HashMap<String, Domain>,
        config: SinkConfig,
        acks: mpsc::Sender<SinkAck>,
    ) -> Self {
        PartSink::new(
            "dead-letter-sink",
            Role::DeadLetter { topic_domains },
            storage,
            config,
            acks,
        )
    }

    fn new(
        name: &str,
        role: Role,
        storage: Storage,
        config: SinkConfig,
        acks: mpsc::Sender<SinkAck>,
    ) -> Self {
        let options = config.parquet_options(matches!(role, Role::Landing { .. }));
        PartSink {
            name: name.to_string(),
            role,
            storage,
            config,
            options,
            splitter: PartBuffer::default(),
            open: BTreeMap::new(),
            closing: JoinSet::new(),
            max_event_time: BTreeMap::new(),
            acks,
        }
    }

    fn column_error(&self, column: &str) -> OperatorError {
        OperatorError::Internal(format!("{}: input lacks column `{column}`", self.name))
    }

    /// Groups the rows of `batch` by output file; see [`Routing`].
    fn route(&mut self, batch: &RecordBatch) -> Result<Routing, OperatorError> {
        let (topic_col, partition_col, offset_col, time_col) = match &self.role {
            Role::Landing { .. } => (
                raw_columns::P_TOPIC,
                raw_columns::P_PARTITION,
                raw_columns::P_OFFSET,
                columns::EVENT_TIME,
            ),
            Role::DeadLetter { .. } => (
                raw_columns::TOPIC,
                raw_columns::PARTITION,
                raw_columns::OFFSET,
                raw_columns::REJECTED_AT,
            ),
        };
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| self.column_error(name))
        };
        let topics = col(topic_col)?
            .as_string_opt::<i32>()
            .ok_or_else(|| self.column_error(topic_col))?;
        let partitions = col(partition_col)?
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| self.column_error(partition_col))?;
        let offsets = col(offset_col)?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| self.column_error(offset_col))?;
        let times = col(time_col)?
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| self.column_error(time_col))?;
        let domains = match &self.role {
            Role::Landing { .. } => Some(
                col(columns::DOMAIN)?
                    .as_string_opt::<i32>()
                    .ok_or_else(|| self.column_error(columns::DOMAIN))?,
            ),
            Role::DeadLetter { .. } => None,
        };
        let closed = match &self.role {
            Role::Landing { closed, .. } => Some(
                closed
                    .read()
                    .map_err(|_| OperatorError::Internal("closed-days lock poisoned".into()))?
                    .clone(),
            ),
            Role::DeadLetter { .. } => None,
        };

        let mut groups: Vec<PartKey> = Vec::new();
        let mut index: HashMap<(Domain, EventDate, FileRole, &str, i32), u32> = HashMap::new();
        let mut group_of = Vec::with_capacity(batch.num_rows());
        let mut group_max_time: Vec<i64> = Vec::new();
        for row in 0..batch.num_rows() {
            let topic = topics.value(row);
            let partition = partitions.value(row);
            let time = times.value(row);
            let date = EventDate::from_timestamp_ms(time).ok_or_else(|| {
                OperatorError::Internal(format!("{}: unrepresentable time {time}", self.name))
            })?;
            let (domain, role) = match (&self.role, domains) {
                (Role::Landing { .. }, Some(d)) => {
                    let domain: Domain = d.value(row).parse()?;
                    let late = closed.as_ref().is_some_and(|c| c.contains(&(domain, date)));
                    (
                        domain,
                        if late {
                            FileRole::Late
                        } else {
                            FileRole::Landing
                        },
                    )
                }
                (Role::DeadLetter { topic_domains }, _) => (
                    topic_domains.get(topic).copied().unwrap_or(Domain::Natural),
                    FileRole::DeadLetter,
                ),
                (Role::Landing { .. }, None) => return Err(self.column_error(columns::DOMAIN)),
            };
            let next = groups.len() as u32;
            let g = *index
                .entry((domain, date, role, topic, partition))
                .or_insert_with(|| {
                    groups.push(PartKey {
                        domain,
                        date,
                        topic: topic.to_string(),
                        partition,
                        role,
                    });
                    group_max_time.push(time);
                    next
                });
            group_max_time[g as usize] = group_max_time[g as usize].max(time);
            group_of.push(g);
        }
        if matches!(self.role, Role::Landing { .. }) {
            // Per-partition high-water marks, merged once per group rather than once per row.
            for (group, &time) in groups.iter().zip(&group_max_time) {
                let key = super::partition_key(&group.topic, group.partition);
                let entry = self.max_event_time.entry(key).or_insert(time);
                *entry = (*entry).max(time);
            }
        }
        let offsets = offsets.values().to_vec();
        Ok((group_of, groups, offsets))
    }

    /// The file's schema and, for landing, the event columns of a decoded batch.
    fn file_schema(&self) -> (SchemaRef, Option<Arc<[usize]>>) {
        match &self.role {
            Role::Landing {
                schema, projection, ..
            } => (schema.clone(), Some(projection.clone())),
            Role::DeadLetter { .. } => (dead_letter_schema(), None),
        }
    }

    /// Hands the rows of one input batch to their parts; parts that reached `rows-per-file`
    /// are finished and stored in the background.
    async fn hand_off(&mut self, batch: &RecordBatch) -> Result<(), OperatorError> {
        let (group_of, groups, offsets) = self.route(batch)?;
        let touched = self.splitter.add(batch, &group_of, &groups, &offsets)?;
        let (schema, projection) = self.file_schema();
        for key in touched {
            let Some(rows) = self.splitter.take(&key) else {
                continue;
            };
            // Landing files drop the provenance columns: a zero-copy projection.
            let batches = match &projection {
                Some(p) => rows
                    .batches
                    .iter()
                    .map(|b| b.project(p))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|source| OperatorError::Arrow {
                        context: "dropping provenance columns",
                        source,
                    })?,
                None => rows.batches,
            };
            let part = match self.open.entry(key.clone()) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(OpenPart::new(&schema, &self.options)?)
                }
            };
            part.write(batches, rows.first_offset, rows.last_offset)
                .await?;
            if part.rows() >= self.config.rows_per_file
                && let Some(full) = self.open.remove(&key)
            {
                self.close(key, full);
            }
        }
        Ok(())
    }

    /// Finishes `part` and stores it under its deterministic key, in the background.
    fn close(&mut self, key: PartKey, part: OpenPart) {
        let (first_offset, last_offset) = part.offsets();
        let name = PartName::Kafka {
            topic: key.topic.clone(),
            partition: key.partition,
            first_offset,
            last_offset,
        };
        let layout = KeyLayout;
        let object = match key.role {
            FileRole::Landing => layout.landing_file(key.domain, key.date, &name),
            FileRole::Late => layout.late_file(key.domain, key.date, &name),
            FileRole::DeadLetter => layout.dead_letter_file(key.domain, key.date, &name),
        };
        let storage = self.storage.clone();
        let rows = part.rows() as u64;
        self.closing.spawn(async move {
            let bytes = part.finish().await?;
            let size = bytes.len() as u64;
            storage.put_once(&object, bytes).await?;
            Ok(FileEntry {
                key: object,
                role: key.role,
                domain: key.domain,
                date: key.date,
                rows,
                bytes: size,
            })
        });
    }

    /// Finishes every open part and waits until all of the epoch's files are stored; returns
    /// them in key order.
    async fn finish_epoch(&mut self) -> Result<Vec<FileEntry>, OperatorError> {
        for (key, part) in std::mem::take(&mut self.open) {
            self.close(key, part);
        }
        let mut files = Vec::with_capacity(self.closing.len());
        while let Some(done) = self.closing.join_next().await {
            let file = done.map_err(|e| {
                OperatorError::Internal(format!("{}: storing a part failed: {e}", self.name))
            })??;
            files.push(file);
        }
        files.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(files)
    }
}

#[async_trait]
impl Operator for PartSink {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn process_batch(
        &mut self,
        batch: RecordBatch,
        _out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.hand_off(&batch).await
    }

    async fn on_barrier(
        &mut self,
        epoch: Epoch,
        _out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        let files = self.finish_epoch().await?;
        let ack = SinkAck {
            sink: self.name.clone(),
            epoch,
            files,
            max_event_time_ms: self.max_event_time.clone(),
        };
        self.acks
            .send(ack)
            .await
            .map_err(|_| OperatorError::Disconnected(format!("{}: coordinator stopped", self.name)))
    }

    async fn on_end(&mut self, _out: &mut dyn Collector) -> Result<(), OperatorError> {
        if !self.open.is_empty() || !self.closing.is_empty() {
            // Data after the last barrier belongs to no epoch: it is not landed and its offsets
            // are not committed, so the next run consumes it again.
            tracing::warn!(sink = %self.name, "end of stream after unfinished epoch; its rows will be re-consumed");
        }
        Ok(())
    }
}

mod encoder;
#[cfg(test)]
mod tests;
