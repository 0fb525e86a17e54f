//! The output side of the decoder: [`EventColumns`], plain vectors that rows are appended to and
//! that survive across batches (their capacity is reused), and [`DeadLetters`].
//!
//! A row is appended in two steps. The parsers write its variable-length parts (`event_id`
//! bytes, behaviour lists, content) straight onto the tails of the value vectors and its
//! fixed-width fields into a [`Row`]; [`check_row`] validates; then [`EventColumns::commit`]
//! pushes the offsets and scalars, or [`EventColumns::rollback`] truncates the tails back to the
//! [`Mark`] taken before the row. Either way no partial row is left behind.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, FixedSizeListArray, Float32Array, Int32Array, Int32Builder,
    Int64Array, Int64Builder, ListArray, RecordBatch, StringArray, StringBuilder,
    TimestampMillisecondArray, TimestampMillisecondBuilder, UInt8Array, UInt32Array, UInt64Array,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{ArrowNativeType, DataType, FieldRef, SchemaRef};
use ctrflow_schemas::{Domain, EventTime};

use super::RejectReason;
use crate::OperatorError;

/// A rejection: the reason code and a human detail (built only on the reject path).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Reject {
    pub reason: RejectReason,
    pub detail: String,
}

impl Reject {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Reject {
            reason,
            detail: detail.into(),
        }
    }
}

/// What every row is checked against: the configured limits and this batch's time window.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub max_seq_len: usize,
    pub content_dim: usize,
    /// Oldest accepted `event_time` (ms).
    pub min_time: i64,
    /// Newest accepted `event_time` (ms).
    pub max_time: i64,
}

/// The fixed-width fields of the row being decoded. Integers whose range is checked after
/// parsing (label, hour) are kept wide so any JSON integer fits.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Row {
    pub event_time: i64,
    pub domain_ad: bool,
    pub user_id: u64,
    pub item_id: u64,
    pub category_id: u64,
    pub position: u32,
    pub hour: i128,
    pub device: u8,
    pub label: i128,
    pub content_present: bool,
}

/// Where a message came from; copied into the provenance columns of each of its rows.
#[derive(Debug, Clone, Copy)]
pub(super) struct Provenance<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// Checks the invariants of one row whose variable-length parts are given as slices.
pub(super) fn check_row(
    row: &Row,
    event_id: &[u8],
    items: usize,
    cats: usize,
    content: &[f32],
    limits: &Limits,
) -> Result<(), Reject> {
    use RejectReason::*;
    if event_id.is_empty() {
        return Err(Reject::new(EmptyEventId, "event_id is empty"));
    }
    if !(0..=1).contains(&row.label) {
        return Err(Reject::new(
            BadLabel,
            format!("label {} is not 0 or 1", row.label),
        ));
    }
    if !(0..=23).contains(&row.hour) {
        return Err(Reject::new(
            BadHour,
            format!("hour {} is not in 0..=23", row.hour),
        ));
    }
    for (name, len) in [("hist_item_ids", items), ("hist_category_ids", cats)] {
        if len > limits.max_seq_len {
            return Err(too_long(name, limits.max_seq_len));
        }
    }
    if items != cats {
        return Err(Reject::new(
            MisalignedSequence,
            format!("hist_item_ids has {items} entries but hist_category_ids has {cats}"),
        ));
    }
    if row.content_present {
        if content.len() != limits.content_dim {
            return Err(bad_width(content.len(), limits.content_dim));
        }
        if let Some(i) = content.iter().position(|x| !x.is_finite()) {
            return Err(Reject::new(
                BadContent,
                format!("item_content[{i}] is {}", content[i]),
            ));
        }
    }
    if row.event_time < limits.min_time || row.event_time > limits.max_time {
        let (side, bound) = if row.event_time < limits.min_time {
            ("older than now minus max-event-age", limits.min_time)
        } else {
            ("newer than now plus max-future", limits.max_time)
        };
        return Err(Reject::new(
            EventTimeOutOfWindow,
            format!(
                "event_time {} is {side} ({})",
                EventTime(row.event_time),
                EventTime(bound)
            ),
        ));
    }
    Ok(())
}

/// The `sequence-too-long` rejection (parsing stops at the first entry past the limit).
pub(super) fn too_long(name: &str, max: usize) -> Reject {
    Reject::new(
        RejectReason::SequenceTooLong,
        format!("{name} has more than max-seq-len = {max} entries"),
    )
}

/// The `bad-content` rejection for a vector of the wrong width.
pub(super) fn bad_width(len: usize, dim: usize) -> Reject {
    Reject::new(
        RejectReason::BadContent,
        format!("item_content has {len} values, the schema expects {dim}"),
    )
}

/// Lengths of every column vector before a row (or an IPC message's rows) was appended.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    rows: usize,
    pub event_id: usize,
    pub hist_items: usize,
    pub hist_cats: usize,
    pub content: usize,
    topic: usize,
}

/// The event columns plus provenance, as growable vectors reused across batches.
#[derive(Debug)]
pub(super) struct EventColumns {
    dim: usize,
    pub event_id: Vec<u8>,
    event_id_offsets: Vec<i32>,
    pub event_time: Vec<i64>,
    pub domain_ad: Vec<bool>,
    pub user_id: Vec<u64>,
    pub item_id: Vec<u64>,
    pub category_id: Vec<u64>,
    pub position: Vec<u32>,
    pub hour: Vec<u8>,
    pub device: Vec<u8>,
    pub hist_items: Vec<u64>,
    hist_item_offsets: Vec<i32>,
    pub hist_cats: Vec<u64>,
    hist_cat_offsets: Vec<i32>,
    pub content: Vec<f32>,
    content_valid: Vec<bool>,
    pub label: Vec<u8>,
    topic: Vec<u8>,
    topic_offsets: Vec<i32>,
    partition: Vec<i32>,
    offset: Vec<i64>,
}

fn offset_of(len: usize, column: &str) -> Result<i32, OperatorError> {
    i32::try_from(len).map_err(|_| {
        OperatorError::Internal(format!(
            "decoded batch holds more than 2 GiB of `{column}` values; the source's micro-batches \
             are too large"
        ))
    })
}

impl EventColumns {
    pub fn new(dim: usize) -> Self {
        EventColumns {
            dim,
            event_id: Vec::new(),
            event_id_offsets: vec![0],
            event_time: Vec::new(),
            domain_ad: Vec::new(),
            user_id: Vec::new(),
            item_id: Vec::new(),
            category_id: Vec::new(),
            position: Vec::new(),
            hour: Vec::new(),
            device: Vec::new(),
            hist_items: Vec::new(),
            hist_item_offsets: vec![0],
            hist_cats: Vec::new(),
            hist_cat_offsets: vec![0],
            content: Vec::new(),
            content_valid: Vec::new(),
            label: Vec::new(),
            topic: Vec::new(),
            topic_offsets: vec![0],
            partition: Vec::new(),
            offset: Vec::new(),
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn rows(&self) -> usize {
        self.label.len()
    }

    pub fn mark(&self) -> Mark {
        Mark {
            rows: self.rows(),
            event_id: self.event_id.len(),
            hist_items: self.hist_items.len(),
            hist_cats: self.hist_cats.len(),
            content: self.content.len(),
            topic: self.topic.len(),
        }
    }

    /// Drops everything appended after `m` was taken.
    pub fn rollback(&mut self, m: Mark) {
        let r = m.rows;
        self.event_id.truncate(m.event_id);
        self.event_id_offsets.truncate(r + 1);
        self.event_time.truncate(r);
        self.domain_ad.truncate(r);
        self.user_id.truncate(r);
        self.item_id.truncate(r);
        self.category_id.truncate(r);
        self.position.truncate(r);
        self.hour.truncate(r);
        self.device.truncate(r);
        self.hist_items.truncate(m.hist_items);
        self.hist_item_offsets.truncate(r + 1);
        self.hist_cats.truncate(m.hist_cats);
        self.hist_cat_offsets.truncate(r + 1);
        self.content.truncate(m.content);
        self.content_valid.truncate(r);
        self.label.truncate(r);
        self.topic.truncate(m.topic);
        self.topic_offsets.truncate(r + 1);
        self.partition.truncate(r);
        self.offset.truncate(r);
    }

    /// Completes a row whose variable-length parts are already on the tails and that passed
    /// [`check_row`]. A null content vector gets its `dim` (zero) slots here.
    pub fn commit(&mut self, row: &Row, p: &Provenance<'_>) -> Result<(), OperatorError> {
        self.event_id_offsets
            .push(offset_of(self.event_id.len(), "event_id")?);
        self.event_time.push(row.event_time);
        self.domain_ad.push(row.domain_ad);
        self.user_id.push(row.user_id);
        self.item_id.push(row.item_id);
        self.category_id.push(row.category_id);
        self.position.push(row.position);
        // check_row guarantees 0..=23 and 0..=1.
        self.hour.push(row.hour as u8);
        self.device.push(row.device);
        self.hist_item_offsets
            .push(offset_of(self.hist_items.len(), "hist_item_ids")?);
        self.hist_cat_offsets
            .push(offset_of(self.hist_cats.len(), "hist_category_ids")?);
        if !row.content_present {
            self.content.resize(self.content.len() + self.dim, 0.0);
        }
        self.content_valid.push(row.content_present);
        self.label.push(row.label as u8);
        self.topic.extend_from_slice(p.topic.as_bytes());
        self.topic_offsets
            .push(offset_of(self.topic.len(), "_topic")?);
        self.partition.push(p.partition);
        self.offset.push(p.offset);
        Ok(())
    }

    /// Builds a batch of the rows appended so far (`None` when there are none) and clears the
    /// vectors, keeping their capacity for the next batch. Values are copied once into
    /// exactly-sized Arrow buffers, so a batch holds no slack capacity downstream.
    pub fn finish(&mut self, schema: &SchemaRef) -> Result<Option<RecordBatch>, OperatorError> {
        let rows = self.rows();
        if rows == 0 {
            return Ok(None);
        }
        let arrow_err = |source| OperatorError::Arrow {
            context: "building a decoded event batch",
            source,
        };
        let child = |i: usize| -> Result<FieldRef, OperatorError> {
            match schema.field(i).data_type() {
                DataType::List(f) | DataType::FixedSizeList(f, _) => Ok(f.clone()),
                other => Err(OperatorError::Internal(format!(
                    "event schema column {i} is {other}, not a list"
                ))),
            }
        };
        let domain = {
            let mut offsets = Vec::with_capacity(rows + 1);
            let mut values = Vec::with_capacity(rows * 7);
            offsets.push(0i32);
            for &ad in &self.domain_ad {
                let d = if ad { Domain::Ad } else { Domain::Natural };
                values.extend_from_slice(d.as_str().as_bytes());
                offsets.push(offset_of(values.len(), "domain")?);
            }
            StringArray::try_new(OffsetBuffer::new(offsets.into()), values.into(), None)
                .map_err(arrow_err)?
        };
        let content_nulls = if self.content_valid.iter().all(|&v| v) {
            None
        } else {
            Some(NullBuffer::from(self.content_valid.as_slice()))
        };
        let dim = i32::try_from(self.dim).map_err(|_| OperatorError::Internal("dim".into()))?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(utf8(&self.event_id_offsets, &self.event_id).map_err(arrow_err)?),
            Arc::new(
                TimestampMillisecondArray::new(copy(&self.event_time), None).with_timezone("UTC"),
            ),
            Arc::new(domain),
            Arc::new(UInt64Array::new(copy(&self.user_id), None)),
            Arc::new(UInt64Array::new(copy(&self.item_id), None)),
            Arc::new(UInt64Array::new(copy(&self.category_id), None)),
            Arc::new(UInt32Array::new(copy(&self.position), None)),
            Arc::new(UInt8Array::new(copy(&self.hour), None)),
            Arc::new(UInt8Array::new(copy(&self.device), None)),
            Arc::new(
                list(child(9)?, &self.hist_item_offsets, &self.hist_items).map_err(arrow_err)?,
            ),
            Arc::new(list(child(10)?, &self.hist_cat_offsets, &self.hist_cats).map_err(arrow_err)?),
            Arc::new(
                FixedSizeListArray::try_new(
                    child(11)?,
                    dim,
                    Arc::new(Float32Array::new(copy(&self.content), None)),
                    content_nulls,
                )
                .map_err(arrow_err)?,
            ),
            Arc::new(UInt8Array::new(copy(&self.label), None)),
            Arc::new(utf8(&self.topic_offsets, &self.topic).map_err(arrow_err)?),
            Arc::new(Int32Array::new(copy(&self.partition), None)),
            Arc::new(Int64Array::new(copy(&self.offset), None)),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(arrow_err)?;
        self.clear();
        Ok(Some(batch))
    }

    /// Drops every pending row, keeping the capacity.
    pub fn clear(&mut self) {
        self.rollback(Mark {
            rows: 0,
            event_id: 0,
            hist_items: 0,
            hist_cats: 0,
            content: 0,
            topic: 0,
        });
    }
}

fn copy<T: ArrowNativeType>(v: &[T]) -> ScalarBuffer<T> {
    ScalarBuffer::from(Buffer::from_slice_ref(v))
}

fn utf8(offsets: &[i32], values: &[u8]) -> Result<StringArray, arrow::error::ArrowError> {
    StringArray::try_new(
        OffsetBuffer::new(copy(offsets)),
        Buffer::from_slice_ref(values),
        None,
    )
}

fn list(
    field: FieldRef,
    offsets: &[i32],
    values: &[u64],
) -> Result<ListArray, arrow::error::ArrowError> {
    ListArray::try_new(
        field,
        OffsetBuffer::new(copy(offsets)),
        Arc::new(UInt64Array::new(copy(values), None)),
        None,
    )
}

/// Rejected messages, built with Arrow builders (the cold path).
#[derive(Debug, Default)]
pub(super) struct DeadLetters {
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: Int64Builder,
    payload: BinaryBuilder,
    reason: StringBuilder,
    detail: StringBuilder,
    rejected_at: TimestampMillisecondBuilder,
}

impl DeadLetters {
    pub fn push(
        &mut self,
        p: &Provenance<'_>,
        timestamp: Option<i64>,
        payload: Option<&[u8]>,
        reject: &Reject,
        now_ms: i64,
    ) {
        self.topic.append_value(p.topic);
        self.partition.append_value(p.partition);
        self.offset.append_value(p.offset);
        self.timestamp.append_option(timestamp);
        self.payload.append_option(payload);
        self.reason.append_value(reject.reason.as_str());
        self.detail.append_value(&reject.detail);
        self.rejected_at.append_value(now_ms);
    }

    pub fn finish(&mut self, schema: &SchemaRef) -> Result<Option<RecordBatch>, OperatorError> {
        if self.offset.values_slice().is_empty() {
            return Ok(None);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.topic.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.payload.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.detail.finish()),
            Arc::new(self.rejected_at.finish().with_timezone("UTC")),
        ];
        RecordBatch::try_new(schema.clone(), columns)
            .map(Some)
            .map_err(|source| OperatorError::Arrow {
                context: "building a dead-letter batch",
                source,
            })
    }
}
