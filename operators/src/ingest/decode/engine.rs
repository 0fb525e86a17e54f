//! [`DecoderCore`]: the synchronous decoding state (column vectors, counters) that
//! [`super::Decoder`] moves onto a blocking thread for each batch.

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BinaryViewArray, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{Int32Type, Int64Type, SchemaRef};
use ctrflow_schemas::{EventSchema, SchemaError, raw_columns};

use super::columns::{DeadLetters, EventColumns, Limits, Provenance, Reject};
use super::ipc::{self, Fail, IPC_CONTINUATION};
use super::stats::{DecodeStats, ReasonCounts};
use super::{DecodeConfig, DecodedBatch, RejectReason, json};
use crate::OperatorError;

/// Everything the decoder mutates while decoding; owned by one thread at a time.
#[derive(Debug)]
pub(super) struct DecoderCore {
    pub config: DecodeConfig,
    event_schema: SchemaRef,
    pub output_schema: SchemaRef,
    pub dead_letter_schema: SchemaRef,
    cols: EventColumns,
    dead: DeadLetters,
    pub stats: Arc<DecodeStats>,
    /// Counts of the open epoch (since the last barrier).
    epoch: ReasonCounts,
}

/// Typed views of the raw-message columns.
struct RawColumns<'a> {
    topic: &'a StringArray,
    partition: &'a Int32Array,
    offset: &'a Int64Array,
    timestamp: &'a Int64Array,
    payload: &'a BinaryViewArray,
}

fn raw_column<'a, T: 'a>(
    batch: &'a RecordBatch,
    name: &str,
    cast: impl Fn(&'a dyn Array) -> Option<&'a T>,
    expected: &str,
) -> Result<&'a T, OperatorError> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| SchemaError::Column {
            column: name.to_string(),
            reason: "missing from the raw-message batch".into(),
        })?;
    cast(col.as_ref()).ok_or_else(|| {
        OperatorError::Schema(SchemaError::Column {
            column: name.to_string(),
            reason: format!("expected {expected}, found {}", col.data_type()),
        })
    })
}

impl<'a> RawColumns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, OperatorError> {
        use raw_columns::*;
        Ok(RawColumns {
            topic: raw_column(batch, TOPIC, |a| a.as_string_opt::<i32>(), "Utf8")?,
            partition: raw_column(
                batch,
                PARTITION,
                |a| a.as_primitive_opt::<Int32Type>(),
                "Int32",
            )?,
            offset: raw_column(
                batch,
                OFFSET,
                |a| a.as_primitive_opt::<Int64Type>(),
                "Int64",
            )?,
            timestamp: raw_column(
                batch,
                TIMESTAMP,
                |a| a.as_primitive_opt::<Int64Type>(),
                "Int64",
            )?,
            payload: raw_column(batch, PAYLOAD, |a| a.as_binary_view_opt(), "BinaryView")?,
        })
    }
}

impl DecoderCore {
    pub fn new(config: DecodeConfig, output_schema: SchemaRef) -> Self {
        let event_schema = EventSchema::new(config.content_dim).arrow().clone();
        DecoderCore {
            cols: EventColumns::new(config.content_dim),
            dead: DeadLetters::default(),
            dead_letter_schema: ctrflow_schemas::dead_letter_schema(),
            stats: Arc::new(DecodeStats::default()),
            epoch: ReasonCounts::default(),
            event_schema,
            output_schema,
            config,
        }
    }

    /// Decodes one raw-message batch; `now_ms` is the clock reading for the time window and
    /// `rejected_at`.
    pub fn decode(
        &mut self,
        raw: &RecordBatch,
        now_ms: i64,
    ) -> Result<DecodedBatch, OperatorError> {
        let mut counts = ReasonCounts::default();
        let result = self.decode_rows(raw, now_ms, &mut counts);
        if result.is_err() {
            // Drop what this batch appended so far: the error stops the job, but a caller that
            // retries must not see half a batch.
            self.cols.clear();
            self.dead = DeadLetters::default();
            return result.map(|()| DecodedBatch::default());
        }
        let events = self.cols.finish(&self.output_schema)?;
        let dead_letters = self.dead.finish(&self.dead_letter_schema)?;
        self.stats.add(&counts);
        self.epoch.add(&counts);
        Ok(DecodedBatch {
            events,
            dead_letters,
        })
    }

    fn decode_rows(
        &mut self,
        raw: &RecordBatch,
        now_ms: i64,
        counts: &mut ReasonCounts,
    ) -> Result<(), OperatorError> {
        let input = RawColumns::of(raw)?;
        let limits = Limits {
            max_seq_len: self.config.max_seq_len,
            content_dim: self.config.content_dim,
            min_time: now_ms.saturating_sub(self.config.max_event_age_ms()),
            max_time: now_ms.saturating_add(self.config.max_future_ms()),
        };
        for i in 0..raw.num_rows() {
            let prov = Provenance {
                topic: input.topic.value(i),
                partition: input.partition.value(i),
                offset: input.offset.value(i),
            };
            let payload = input.payload.is_valid(i).then(|| input.payload.value(i));
            match self.decode_one(payload, &prov, &limits) {
                Ok(rows) => {
                    counts.good += 1;
                    counts.rows += rows as u64;
                }
                Err(Fail::Reject(reject)) => {
                    counts.reject(reject.reason);
                    let ts = input
                        .timestamp
                        .is_valid(i)
                        .then(|| input.timestamp.value(i));
                    self.dead.push(&prov, ts, payload, &reject, now_ms);
                }
                Err(Fail::Fatal(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Decodes one message into the columns; returns the rows it added.
    fn decode_one(
        &mut self,
        payload: Option<&[u8]>,
        prov: &Provenance<'_>,
        limits: &Limits,
    ) -> Result<usize, Fail> {
        let payload = match payload {
            None => return Err(Reject::new(RejectReason::EmptyPayload, "null payload").into()),
            Some([]) => return Err(Reject::new(RejectReason::EmptyPayload, "0 bytes").into()),
            Some(p) => p,
        };
        if payload.starts_with(&IPC_CONTINUATION) {
            return ipc::decode(&mut self.cols, payload, &self.event_schema, limits, prov);
        }
        let row = json::parse(&mut self.cols, payload, limits)?;
        self.cols.commit(&row, prov)?;
        Ok(1)
    }

    /// Judges the open epoch against the ceiling and starts a new one. `scope` names the epoch
    /// in the error.
    pub fn close_epoch(&mut self, scope: String) -> Result<(), OperatorError> {
        let c = std::mem::take(&mut self.epoch);
        let (total, bad) = (c.total(), c.bad_total());
        if total == 0 || total < self.config.min_messages_for_ratio {
            return Ok(());
        }
        let ratio = bad as f64 / total as f64;
        if ratio <= self.config.max_bad_ratio {
            return Ok(());
        }
        Err(OperatorError::BadInputCeiling {
            scope,
            bad,
            total,
            ratio,
            ceiling: self.config.max_bad_ratio,
            top_reasons: c.top(3),
        })
    }
}
