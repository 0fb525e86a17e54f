//! The source's bookkeeping, free of I/O: consumed records, the batch under construction, and the
//! epoch tracker (per-partition ranges, landed floors, outstanding epochs, committable offsets).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, BinaryViewBuilder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
};
use arrow::buffer::Buffer;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use ctrflow_schemas::{Epoch, OffsetRange, raw_message_schema};

use super::EpochOffsets;
use crate::OperatorError;

/// One consumed message, detached from the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RawRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// Broker/producer timestamp, ms.
    pub timestamp: Option<i64>,
    /// Where the payload lies in its chunk's buffer ([`RecordChunk::payloads`]); None for a
    /// null payload.
    pub payload: Option<PayloadSpan>,
}

/// A payload's place in the buffer of its [`RecordChunk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PayloadSpan {
    pub start: u32,
    pub len: u32,
}

/// Consumed records and the one buffer their payloads were copied into (see
/// `consumer::Chunk`): consuming a message costs that one copy and no allocation, and batches
/// reference the buffer instead of copying payloads again.
#[derive(Debug, Clone, Default)]
pub(super) struct RecordChunk {
    pub records: Vec<RawRecord>,
    pub payloads: Bytes,
}

impl RecordChunk {
    /// The payload of `record`, one of this chunk's records.
    #[cfg(test)]
    pub fn payload(&self, record: &RawRecord) -> Option<&[u8]> {
        record.payload.map(|span| {
            let start = span.start as usize;
            &self.payloads[start..start + span.len as usize]
        })
    }
}

/// Rows waiting to be emitted as one raw-message batch. The batch's `payload` column is a
/// `BinaryView` array over the chunk buffers the rows came in: payloads are not copied again.
#[derive(Debug)]
pub(super) struct BatchBuilder {
    schema: SchemaRef,
    /// Each row and the index of its chunk's buffer in `blocks`.
    rows: Vec<(RawRecord, u32)>,
    /// The chunk buffers the rows' payloads are in, each once.
    blocks: Vec<Bytes>,
    /// Payload bytes of `rows`.
    bytes: u64,
    first_at: Option<Instant>,
}

impl BatchBuilder {
    pub fn new() -> Self {
        BatchBuilder {
            schema: raw_message_schema(),
            rows: Vec::new(),
            blocks: Vec::new(),
            bytes: 0,
            first_at: None,
        }
    }

    /// Adds `r`, whose payload lies in `payloads` (its chunk's buffer).
    pub fn push(&mut self, r: RawRecord, payloads: &Bytes) {
        self.first_at.get_or_insert_with(Instant::now);
        self.bytes += r.payload.map_or(0, |p| u64::from(p.len));
        // Rows arrive chunk by chunk: a new buffer is one the last row was not in.
        let same = self
            .blocks
            .last()
            .is_some_and(|b| b.as_ptr() == payloads.as_ptr() && b.len() == payloads.len());
        if !same {
            self.blocks.push(payloads.clone());
        }
        let block = (self.blocks.len() - 1) as u32;
        self.rows.push((r, block));
    }

    /// Payload bytes of the pending rows.
    pub fn payload_bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// When the partial batch must be emitted at the latest.
    pub fn deadline(&self, max_wait: Duration) -> Option<Instant> {
        self.first_at.map(|t| t + max_wait)
    }

    /// The pending rows as a batch (None when empty), and their payload bytes.
    pub fn finish(&mut self) -> Result<Option<(RecordBatch, u64)>, OperatorError> {
        self.first_at = None;
        let bytes = std::mem::take(&mut self.bytes);
        let blocks = std::mem::take(&mut self.blocks);
        if self.rows.is_empty() {
            return Ok(None);
        }
        let rows = std::mem::take(&mut self.rows);
        let n = rows.len();
        let arrow_error = |source| OperatorError::Arrow {
            context: "building a raw-message batch",
            source,
        };
        let mut topic = StringBuilder::with_capacity(n, n * 16);
        let mut partition = Int32Builder::with_capacity(n);
        let mut offset = Int64Builder::with_capacity(n);
        let mut timestamp = Int64Builder::with_capacity(n);
        let mut payload = BinaryViewBuilder::with_capacity(n);
        // A fresh builder numbers the blocks from 0, in order: block i is `blocks[i]`.
        for block in blocks {
            payload.append_block(Buffer::from(block));
        }
        for (r, block) in rows {
            topic.append_value(&*r.topic);
            partition.append_value(r.partition);
            offset.append_value(r.offset);
            timestamp.append_option(r.timestamp);
            match r.payload {
                Some(span) => payload
                    .try_append_view(block, span.start, span.len)
                    .map_err(arrow_error)?,
                None => payload.append_null(),
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(topic.finish()),
            Arc::new(partition.finish()),
            Arc::new(offset.finish()),
            Arc::new(timestamp.finish()),
            Arc::new(payload.finish()),
        ];
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(arrow_error)?;
        Ok(Some((batch, bytes)))
    }
}

/// An emitted epoch not yet committed.
#[derive(Debug)]
struct Outstanding {
    epoch: Epoch,
    /// Per partition, the last offset emitted in the epoch.
    last: Vec<(Arc<str>, i32, i64)>,
    confirmed: bool,
}

/// What a confirmation did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Confirmed {
    /// An outstanding epoch is now confirmed.
    Known,
    /// Not an outstanding epoch (duplicate, or never emitted): ignored.
    Unknown,
}

/// Epoch numbering, per-partition ranges of the open epoch, the drop floors, outstanding epochs
/// and what may be committed.
#[derive(Debug)]
pub(super) struct EpochTracker {
    epoch: Epoch,
    ranges: BTreeMap<(Arc<str>, i32), (i64, i64)>,
    rows: u64,
    /// Payload bytes admitted in the open epoch.
    payload_bytes: u64,
    first_at: Option<Instant>,
    /// Per topic and partition: drop messages at or below this offset (landed, or emitted).
    floors: HashMap<Arc<str>, HashMap<i32, i64>>,
    outstanding: VecDeque<Outstanding>,
    /// Confirmed next offsets (`last + 1`) per partition still owned: what a commit sends.
    committable: BTreeMap<(String, i32), i64>,
    /// The last gap in offsets [`admit`](Self::admit) saw, until taken.
    gap: Option<OffsetGap>,
}

/// Offsets a partition skipped: `first..=last` were never delivered although the offsets
/// around them were. Retention deleting unconsumed messages (librdkafka then resets to the
/// log start: data loss), log compaction, or transaction markers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetGap {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// First skipped offset.
    pub first: i64,
    /// Last skipped offset.
    pub last: i64,
}

impl EpochTracker {
    pub fn new(start: Epoch) -> Self {
        EpochTracker {
            epoch: start,
            ranges: BTreeMap::new(),
            rows: 0,
            payload_bytes: 0,
            first_at: None,
            floors: HashMap::new(),
            outstanding: VecDeque::new(),
            committable: BTreeMap::new(),
            gap: None,
        }
    }

    /// The offsets skipped before the last admitted record, if there were any (see
    /// [`OffsetGap`]); only counted once the partition has a known position.
    pub fn take_gap(&mut self) -> Option<OffsetGap> {
        self.gap.take()
    }

    /// Rows admitted in the open epoch.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Payload bytes admitted in the open epoch.
    pub fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }

    /// When the open epoch must end at the latest (None while it is empty).
    pub fn deadline(&self, interval: Duration) -> Option<Instant> {
        self.first_at.map(|t| t + interval)
    }

    /// Whether `r` may be emitted: `Some(true)` if it is new (above the partition's floor; it
    /// then belongs to the open epoch), `Some(false)` if it was landed or emitted already, `None`
    /// if its partition is not assigned (a late message of a revoked partition).
    pub fn admit(&mut self, r: &RawRecord) -> Option<bool> {
        let floor = self.floors.get_mut(&*r.topic)?.get_mut(&r.partition)?;
        if r.offset <= *floor {
            return Some(false);
        }
        if *floor >= 0 && r.offset > *floor + 1 {
            self.gap = Some(OffsetGap {
                topic: r.topic.clone(),
                partition: r.partition,
                first: *floor + 1,
                last: r.offset - 1,
            });
        }
        *floor = r.offset;
        let range = self
            .ranges
            .entry((r.topic.clone(), r.partition))
            .or_insert((r.offset, r.offset));
        range.0 = range.0.min(r.offset);
        range.1 = range.1.max(r.offset);
        self.rows += 1;
        self.payload_bytes += r.payload.map_or(0, |p| u64::from(p.len));
        self.first_at.get_or_insert_with(Instant::now);
        Some(true)
    }

    /// Ends the open epoch: its offsets (None if it is empty, which keeps its number).
    pub fn close_epoch(&mut self) -> Option<EpochOffsets> {
        self.first_at = None;
        self.rows = 0;
        self.payload_bytes = 0;
        if self.ranges.is_empty() {
            return None;
        }
        let ranges = std::mem::take(&mut self.ranges);
        let epoch = self.epoch;
        self.epoch = epoch.next();
        self.outstanding.push_back(Outstanding {
            epoch,
            last: ranges
                .iter()
                .map(|((t, p), r)| (t.clone(), *p, r.1))
                .collect(),
            confirmed: false,
        });
        let assigned = self
            .floors
            .iter()
            .flat_map(|(topic, parts)| {
                parts
                    .keys()
                    .map(move |&partition| super::AssignedPartition {
                        topic: topic.to_string(),
                        partition,
                        caught_up: false,
                    })
            })
            .collect();
        Some(EpochOffsets {
            epoch,
            assigned,
            ranges: ranges
                .into_iter()
                .map(|((topic, partition), (first, last))| OffsetRange {
                    topic: topic.to_string(),
                    partition,
                    first_offset: first,
                    last_offset: last,
                })
                .collect(),
        })
    }

    /// Records the coordinator's confirmation of `epoch`; the confirmed prefix of outstanding
    /// epochs moves to the committable offsets.
    pub fn confirm(&mut self, epoch: Epoch) -> Confirmed {
        let Some(o) = self
            .outstanding
            .iter_mut()
            .find(|o| o.epoch == epoch && !o.confirmed)
        else {
            return Confirmed::Unknown;
        };
        o.confirmed = true;
        while self.outstanding.front().is_some_and(|o| o.confirmed) {
            if let Some(o) = self.outstanding.pop_front() {
                for (t, p, last) in o.last {
                    let next = self
                        .committable
                        .entry((t.to_string(), p))
                        .or_insert(last + 1);
                    *next = (*next).max(last + 1);
                }
            }
        }
        Confirmed::Known
    }

    /// The oldest epoch emitted but not yet confirmed.
    pub fn oldest_unconfirmed(&self) -> Option<Epoch> {
        self.outstanding
            .iter()
            .find(|o| !o.confirmed)
            .map(|o| o.epoch)
    }

    /// True when every emitted epoch is confirmed.
    #[cfg(test)]
    pub fn all_confirmed(&self) -> bool {
        self.outstanding.is_empty()
    }

    /// Confirmed offsets to commit (`last + 1` per partition), cumulative.
    pub fn committable(&self) -> &BTreeMap<(String, i32), i64> {
        &self.committable
    }

    /// The next offset of an assigned partition: the one after the last message admitted or
    /// found landed (None if neither is known yet, or the partition is not assigned).
    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        let floor = *self.floors.get(topic)?.get(&partition)?;
        (floor != i64::MIN).then(|| floor + 1)
    }

    /// New assignment: messages at or below `landed` are dropped.
    pub fn assign(&mut self, partitions: &[(String, i32)], landed: &HashMap<(String, i32), i64>) {
        for (t, p) in partitions {
            let floor = landed.get(&(t.clone(), *p)).copied().unwrap_or(i64::MIN);
            let topic: Arc<str> = Arc::from(t.as_str());
            self.floors.entry(topic).or_default().insert(*p, floor);
        }
    }

    /// Revocation (after the last commit): forget the partitions, never commit them again.
    pub fn revoke(&mut self, partitions: &[(String, i32)]) {
        for (t, p) in partitions {
            if let Some(m) = self.floors.get_mut(t.as_str()) {
                m.remove(p);
            }
            self.committable.remove(&(t.clone(), *p));
        }
    }
}
