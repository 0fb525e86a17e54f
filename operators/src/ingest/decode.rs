//! Decode + validate: the first operator of `ctrflow ingest` after the Kafka source.
//!
//! Input: raw-message batches ([`ctrflow_schemas::raw_message_schema`]), one Kafka micro-batch
//! each, possibly from several partitions. Every message goes to exactly one output:
//!
//! - port [`EVENTS_PORT`] (0): event batches in the event schema followed by the provenance
//!   columns `_topic`, `_partition`, `_offset` ([`decoded_schema`]); the landing sink names
//!   files by offsets, then drops those columns by zero-copy projection;
//! - port [`DEAD_LETTER_PORT`] (1): dead-letter batches
//!   ([`ctrflow_schemas::dead_letter_schema`]), one row per rejected message with its raw
//!   payload, a stable [`RejectReason`] code and a human detail.
//!
//! Payloads are either one JSON wire-format event (see [`ctrflow_schemas::Event`]) or an Arrow
//! IPC stream of event-schema batches (recognised by its leading `0xFFFFFFFF` continuation
//! marker), all of whose rows get the message's provenance. Rows keep input order.
//!
//! **Hot path without per-row allocation.** JSON is parsed once by a serde `DeserializeSeed`
//! that matches keys as borrowed strings and appends `event_id` bytes, behaviour lists and the
//! content vector straight onto the tails of plain column vectors (fixed-width fields go to a
//! small `Copy` row); the row is validated, then committed (offsets and scalars pushed) or
//! rolled back (tails truncated), so a rejected message leaves nothing behind. The vectors keep
//! their capacity across batches; each batch is copied once into exactly-sized Arrow buffers.
//! Only rejections allocate (their detail text). Counters are added once per batch.
//!
//! **Bad-input ceiling.** At each barrier (and at end of stream) the epoch's share of rejected
//! messages is compared with [`DecodeConfig::max_bad_ratio`] when the epoch had at least
//! [`DecodeConfig::min_messages_for_ratio`] messages; above it the operator fails with
//! [`OperatorError::BadInputCeiling`] and the job stops instead of landing garbage.
//!
//! Decoding is CPU work: [`Operator::process_batch`] runs it on `tokio::task::spawn_blocking`,
//! moving the decoder state to the blocking thread and back.

mod columns;
mod config;
mod engine;
mod ipc;
mod json;
mod plain;
mod stats;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use ctrflow_schemas::{Epoch, EventSchema, provenance_fields};

pub use self::config::DecodeConfig;
pub use self::stats::{DecodeStats, RejectReason};

use self::engine::DecoderCore;
use crate::OperatorError;
use crate::dataflow::{Collector, Operator};

/// Output port of decoded event batches.
pub const EVENTS_PORT: usize = 0;
/// Output port of dead-letter batches.
pub const DEAD_LETTER_PORT: usize = 1;
/// Number of output ports of a [`Decoder`].
pub const OUTPUT_PORTS: usize = 2;

/// The schema of the decoder's event output: the columns of `schema` followed by the provenance
/// columns `_topic`, `_partition`, `_offset` (with the event schema's metadata).
pub fn decoded_schema(schema: &EventSchema) -> SchemaRef {
    let arrow = schema.arrow();
    let fields: Vec<_> = arrow
        .fields()
        .iter()
        .cloned()
        .chain(provenance_fields().into_iter().map(Arc::new))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, arrow.metadata().clone()))
}

/// The outputs of one raw-message batch; `None` where no row went to that output.
#[derive(Debug, Clone, Default)]
pub struct DecodedBatch {
    /// Accepted rows, in the [`decoded_schema`].
    pub events: Option<RecordBatch>,
    /// Rejected messages, in the dead-letter schema.
    pub dead_letters: Option<RecordBatch>,
}

/// Milliseconds since the Unix epoch by the system clock (the default clock).
pub fn system_clock_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The decode + validate operator (see the [module docs](self)). Build it with
/// [`DecodeConfig::build`]; connect it with [`OUTPUT_PORTS`] output ports.
///
/// ```
/// use ctrflow_operators::ingest::decode::{DecodeConfig, RejectReason};
///
/// let decoder = DecodeConfig::default().build()?.with_clock(|| 1_704_067_200_000);
/// let stats = decoder.stats(); // share with the metrics exporter
/// assert_eq!(stats.rejected(RejectReason::BadJson), 0);
/// # Ok::<(), ctrflow_operators::OperatorError>(())
/// ```
#[derive(Debug)]
pub struct Decoder {
    /// `None` only while a batch is being decoded on a blocking thread, or after that thread
    /// panicked.
    core: Option<Box<DecoderCore>>,
    stats: Arc<DecodeStats>,
    output_schema: SchemaRef,
    clock: fn() -> i64,
    last_epoch: Option<Epoch>,
}

impl Decoder {
    /// Validates `config` and builds a decoder on the system clock.
    pub fn new(config: DecodeConfig) -> Result<Self, OperatorError> {
        config.validate()?;
        let output_schema = decoded_schema(&EventSchema::new(config.content_dim));
        let core = DecoderCore::new(config, output_schema.clone());
        Ok(Decoder {
            stats: core.stats.clone(),
            core: Some(Box::new(core)),
            output_schema,
            clock: system_clock_ms,
            last_epoch: None,
        })
    }

    /// Replaces the clock (milliseconds since the Unix epoch) read once per batch for the
    /// event-time window and `rejected_at`; tests use a fixed one.
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    /// The cumulative counters, shared with whoever exports them.
    pub fn stats(&self) -> Arc<DecodeStats> {
        self.stats.clone()
    }

    /// The schema of the event output (port 0).
    pub fn output_schema(&self) -> &SchemaRef {
        &self.output_schema
    }

    fn core(&mut self) -> Result<&mut DecoderCore, OperatorError> {
        self.core.as_deref_mut().ok_or_else(lost)
    }

    /// Decodes one raw-message batch on the calling thread (the operator does the same on a
    /// blocking thread). Counts towards the open epoch and [`stats`](Self::stats).
    pub fn decode_batch(&mut self, raw: &RecordBatch) -> Result<DecodedBatch, OperatorError> {
        let now = (self.clock)();
        self.core()?.decode(raw, now)
    }

    /// Judges the open epoch against the bad-input ceiling and starts a new one.
    fn close_epoch(&mut self, scope: String) -> Result<(), OperatorError> {
        self.core()?.close_epoch(scope)
    }
}

fn lost() -> OperatorError {
    OperatorError::Internal("decoder state lost: an earlier decode task panicked".into())
}

#[async_trait]
impl Operator for Decoder {
    fn name(&self) -> String {
        "decode".into()
    }

    async fn process_batch(
        &mut self,
        batch: RecordBatch,
        out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        let mut core = self.core.take().ok_or_else(lost)?;
        let now = (self.clock)();
        let (core, decoded) = tokio::task::spawn_blocking(move || {
            let decoded = core.decode(&batch, now);
            (core, decoded)
        })
        .await
        .map_err(|e| OperatorError::Internal(format!("decode task failed: {e}")))?;
        self.core = Some(core);
        let decoded = decoded?;
        if let Some(events) = decoded.events {
            out.collect(EVENTS_PORT, events).await?;
        }
        if let Some(dead) = decoded.dead_letters {
            out.collect(DEAD_LETTER_PORT, dead).await?;
        }
        Ok(())
    }

    async fn on_barrier(
        &mut self,
        epoch: Epoch,
        _out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        self.last_epoch = Some(epoch);
        self.close_epoch(format!("epoch {epoch}"))
    }

    async fn on_end(&mut self, _out: &mut dyn Collector) -> Result<(), OperatorError> {
        let scope = match self.last_epoch {
            Some(e) => format!("the messages after epoch {e} (end of stream)"),
            None => "the whole stream (no barrier seen)".to_string(),
        };
        self.close_epoch(scope)
    }
}
