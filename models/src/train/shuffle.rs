//! A bounded, seeded shuffle buffer over incoming event batches.
//!
//! Rows are referenced, not copied, while they wait: the buffer keeps the incoming
//! `RecordBatch`es (Arrow arrays are reference-counted) and a pool of `(batch, row)` references.
//! A training batch picks `batch_size` pool entries uniformly at random (seeded SplitMix64,
//! swap-remove) and gathers them with Arrow's `interleave_record_batch` kernel, in the order
//! picked. An incoming batch is released as soon as its last row has been emitted.
//!
//! **Determinism.** The output depends only on the seed and on the sequence of `push`/`pop`/
//! `flush` calls with their batches: the same input order and seed give the same output order.
//!
//! **Bound.** [`ShuffleBuffer::pop`] emits while the pool holds at least `capacity` rows, so a
//! caller that pops until `None` after each push never has more than
//! `capacity - 1 + (largest pushed batch)` rows waiting.
//!
//! **Memory.** A pushed batch is released when its last row has been emitted, but with random
//! picking a few rows of each batch linger for a long time (the oldest waiting row is about
//! `capacity * ln(capacity)` rows old), so without care the buffer would pin many times
//! `capacity` rows of batch memory, more the longer the input. When the held batches hold more
//! than 1.5 times `max(capacity, waiting)` rows, the rows still waiting in every held batch
//! that is less than two thirds full are copied into new compact batches of about 8,192 rows
//! (in pool order), each group of sparse batches released as soon as its copy exists. Simulated
//! with 8,192-row batches into a 65,536-row buffer, held memory then peaks at about 1.8 times
//! `capacity` rows at any input length (13 times for 1M rows without compaction) for about one
//! copy per row. Compaction never changes what is emitted.
//!
//! **State.** [`ShuffleBuffer::to_bytes`] captures the generator and the waiting rows (in pool
//! order, as one Arrow IPC stream), so a restored buffer emits exactly what the original would
//! have.

use std::collections::VecDeque;
use std::io::Cursor;

use arrow::array::RecordBatch;
use arrow::compute::interleave_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use crate::error::{ModelsError, Result};
use crate::rng::SplitMix64;

const MAGIC: &[u8; 8] = b"CTRSHUF1";

/// Rows per batch that compaction writes (see the module docs): small enough that copying
/// adds little to the peak, large enough that the copies are few.
const COMPACT_CHUNK_ROWS: usize = 8192;

/// A bounded, seeded, deterministic shuffle buffer of event rows (see the module docs).
#[derive(Debug, Clone)]
pub struct ShuffleBuffer {
    capacity: usize,
    batch_size: usize,
    rng: SplitMix64,
    /// One slot per batch pushed (or compacted) since the front, which has sequence number
    /// `first_seq`; a slot's batch is released once none of its rows waits.
    batches: VecDeque<Held>,
    first_seq: u64,
    /// Rows of every batch still held (waiting or not).
    held_rows: usize,
    /// Waiting rows as (batch sequence number, row).
    pool: Vec<(u64, u32)>,
    schema: Option<SchemaRef>,
    /// Rows per batch that compaction writes, `None` for no compaction (only tests turn it off
    /// or change it; see the module docs).
    compaction: Option<usize>,
}

/// A pushed or compacted batch and how many of its rows still wait.
#[derive(Debug, Clone)]
struct Held {
    /// `None` once released.
    batch: Option<RecordBatch>,
    waiting: usize,
}

impl Held {
    fn rows(&self) -> usize {
        self.batch.as_ref().map_or(0, RecordBatch::num_rows)
    }
}

/// The held batches as interleave sources: per slot its source index (`usize::MAX` for
/// released slots), and the batches.
fn held_sources(batches: &VecDeque<Held>) -> (Vec<usize>, Vec<&RecordBatch>) {
    let mut source_of = vec![usize::MAX; batches.len()];
    let mut arrays = Vec::new();
    for (slot, held) in batches.iter().enumerate() {
        if let Some(batch) = &held.batch {
            source_of[slot] = arrays.len();
            arrays.push(batch);
        }
    }
    (source_of, arrays)
}

/// Rows `indices` (source, row) of `arrays`, in that order.
fn gather(arrays: &[&RecordBatch], indices: &[(usize, usize)]) -> Result<RecordBatch> {
    interleave_record_batch(arrays, indices).map_err(|e| ModelsError::Column {
        column: "(shuffle)",
        reason: e.to_string(),
    })
}

fn state_error(reason: impl Into<String>) -> ModelsError {
    ModelsError::TrainerCheckpoint {
        blob: "shuffle".into(),
        reason: reason.into(),
    }
}

impl ShuffleBuffer {
    /// A buffer that emits batches of `batch_size` rows once it holds `capacity` rows.
    ///
    /// # Errors
    /// `batch_size` is 0 or `capacity < batch_size`.
    pub fn new(capacity: usize, batch_size: usize, seed: u64) -> Result<Self> {
        if batch_size == 0 {
            return Err(ModelsError::config("batch-size", "must be at least 1"));
        }
        if capacity < batch_size {
            return Err(ModelsError::config(
                "shuffle-rows",
                format!("{capacity} is smaller than the batch size {batch_size}"),
            ));
        }
        Ok(ShuffleBuffer {
            capacity,
            batch_size,
            rng: SplitMix64::keyed(seed, 0x5348_5546_464C_4500, 0), // "SHUFFLE"
            batches: VecDeque::new(),
            first_seq: 0,
            held_rows: 0,
            pool: Vec::new(),
            schema: None,
            compaction: Some(COMPACT_CHUNK_ROWS),
        })
    }

    /// Rows waiting in the buffer.
    pub fn len(&self) -> usize {
        self.pool.len()
    }

    /// Whether no row is waiting.
    pub fn is_empty(&self) -> bool {
        self.pool.is_empty()
    }

    /// Rows of every batch the buffer still holds in memory, waiting or already emitted
    /// (bounded by about `2 * capacity` plus one pushed batch, see the module docs).
    pub fn held_rows(&self) -> usize {
        self.held_rows
    }

    /// Compaction of sparse held batches into batches of `chunk_rows`, or none (tests compare).
    #[cfg(test)]
    pub(crate) fn set_compaction(&mut self, chunk_rows: Option<usize>) {
        self.compaction = chunk_rows;
    }

    /// The configured training batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Adds every row of `batch`. All batches must have the same schema.
    ///
    /// # Errors
    /// The schema differs from the first batch's.
    pub fn push(&mut self, batch: RecordBatch) -> Result<()> {
        match &self.schema {
            Some(schema) if schema != &batch.schema() => {
                return Err(ModelsError::Column {
                    column: "(schema)",
                    reason: "batch schema differs from the first batch's".into(),
                });
            }
            Some(_) => {}
            None => self.schema = Some(batch.schema()),
        }
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let seq = self.first_seq + self.batches.len() as u64;
        self.pool.extend((0..rows as u32).map(|r| (seq, r)));
        self.batches.push_back(Held {
            batch: Some(batch),
            waiting: rows,
        });
        self.held_rows += rows;
        Ok(())
    }

    /// A training batch of `batch_size` random rows when at least `capacity` rows wait,
    /// otherwise `None`.
    pub fn pop(&mut self) -> Result<Option<RecordBatch>> {
        if self.pool.len() < self.capacity {
            return Ok(None);
        }
        self.emit(self.batch_size).map(Some)
    }

    /// At the end of the input: a batch of up to `batch_size` random rows while any row
    /// waits (the last one may be smaller), then `None`.
    pub fn flush(&mut self) -> Result<Option<RecordBatch>> {
        if self.pool.is_empty() {
            return Ok(None);
        }
        self.emit(self.batch_size.min(self.pool.len())).map(Some)
    }

    fn emit(&mut self, n: usize) -> Result<RecordBatch> {
        let mut picked = Vec::with_capacity(n);
        for _ in 0..n {
            let j = self.rng.below(self.pool.len());
            picked.push(self.pool.swap_remove(j));
        }
        // Distinct held batches referenced, each once, as interleave sources.
        let mut sources: Vec<u64> = picked.iter().map(|&(seq, _)| seq).collect();
        sources.sort_unstable();
        sources.dedup();
        let arrays = sources
            .iter()
            .map(|&seq| self.held_batch(seq))
            .collect::<Result<Vec<_>>>()?;
        let indices: Vec<(usize, usize)> = picked
            .iter()
            .map(|&(seq, row)| {
                let source = sources.binary_search(&seq).unwrap_or_default();
                (source, row as usize)
            })
            .collect();
        let out = gather(&arrays, &indices)?;
        for &(seq, _) in &picked {
            let slot = &mut self.batches[(seq - self.first_seq) as usize];
            slot.waiting -= 1;
            if slot.waiting == 0 {
                self.held_rows -= slot.rows();
                slot.batch = None;
            }
        }
        self.release_front();
        if let Some(chunk_rows) = self.compaction
            && 2 * self.held_rows > 3 * self.capacity.max(self.pool.len())
        {
            self.compact(chunk_rows)?;
        }
        Ok(out)
    }

    /// The held batch with sequence number `seq`.
    fn held_batch(&self, seq: u64) -> Result<&RecordBatch> {
        self.batches
            .get((seq - self.first_seq) as usize)
            .and_then(|slot| slot.batch.as_ref())
            .ok_or_else(|| ModelsError::Column {
                column: "(shuffle)",
                reason: format!("waiting row of released batch {seq}"),
            })
    }

    /// Drops released slots from the front.
    fn release_front(&mut self) {
        while matches!(self.batches.front(), Some(slot) if slot.batch.is_none()) {
            self.batches.pop_front();
            self.first_seq += 1;
        }
    }

    /// Copies the waiting rows of every held batch less than two thirds full into new batches
    /// of about `chunk_rows` rows each (in pool order), releasing each group of sparse batches
    /// as soon as its copy exists; emitted output is unchanged.
    fn compact(&mut self, chunk_rows: usize) -> Result<()> {
        // Sparse batches, in slot order, grouped into chunks of about `chunk_rows` waiting rows
        // (their slots and batches); per slot its (group, source index within the group).
        let mut place = vec![None; self.batches.len()];
        let mut groups: Vec<(Vec<usize>, Vec<RecordBatch>)> = Vec::new();
        let mut group_rows = chunk_rows;
        for (slot, held) in self.batches.iter().enumerate() {
            if let Some(batch) = &held.batch
                && 3 * held.waiting < 2 * batch.num_rows()
            {
                if group_rows >= chunk_rows {
                    groups.push((Vec::new(), Vec::new()));
                    group_rows = 0;
                }
                let group = groups.len() - 1;
                let (slots, batches) = &mut groups[group];
                place[slot] = Some((group, batches.len()));
                slots.push(slot);
                batches.push(batch.clone());
                group_rows += held.waiting;
            }
        }
        // One pass over the pool: every waiting row of a sparse batch moves to its group's new
        // batch, which gets sequence number `first_new + group`.
        let first_new = self.first_seq + self.batches.len() as u64;
        let mut indices: Vec<Vec<(usize, usize)>> = vec![Vec::new(); groups.len()];
        for entry in &mut self.pool {
            if let Some((group, source)) = place[(entry.0 - self.first_seq) as usize] {
                indices[group].push((source, entry.1 as usize));
                *entry = (first_new + group as u64, (indices[group].len() - 1) as u32);
            }
        }
        // Group by group, so that at most one group's copy exists next to its sources.
        for ((slots, batches), rows) in groups.into_iter().zip(&indices) {
            let compacted = gather(&batches.iter().collect::<Vec<_>>(), rows)?;
            drop(batches);
            for slot in slots {
                let held = &mut self.batches[slot];
                self.held_rows -= held.rows();
                held.batch = None;
                held.waiting = 0;
            }
            self.held_rows += compacted.num_rows();
            self.batches.push_back(Held {
                waiting: compacted.num_rows(),
                batch: Some(compacted),
            });
        }
        self.release_front();
        Ok(())
    }

    /// The buffer's state: configuration, generator and waiting rows (Arrow IPC), see the
    /// module docs.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.capacity as u64).to_le_bytes());
        out.extend_from_slice(&(self.batch_size as u64).to_le_bytes());
        out.extend_from_slice(&self.rng.state().to_le_bytes());
        out.extend_from_slice(&(self.pool.len() as u64).to_le_bytes());
        if let Some(schema) = &self.schema {
            let (source_of, arrays) = held_sources(&self.batches);
            let indices: Vec<(usize, usize)> = self
                .pool
                .iter()
                .map(|&(seq, row)| (source_of[(seq - self.first_seq) as usize], row as usize))
                .collect();
            let waiting = if arrays.is_empty() {
                RecordBatch::new_empty(schema.clone())
            } else {
                interleave_record_batch(&arrays, &indices)
                    .map_err(|e| state_error(e.to_string()))?
            };
            let mut writer =
                StreamWriter::try_new(&mut out, schema).map_err(|e| state_error(e.to_string()))?;
            writer
                .write(&waiting)
                .and_then(|()| writer.finish())
                .map_err(|e| state_error(e.to_string()))?;
        }
        Ok(out)
    }

    /// Restores a buffer written by [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 40 || &bytes[..8] != MAGIC {
            return Err(state_error("not a shuffle-buffer state"));
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[8 + 8 * i..16 + 8 * i]);
            u64::from_le_bytes(w)
        };
        let (capacity, batch_size, rng, waiting) = (
            word(0) as usize,
            word(1) as usize,
            word(2),
            word(3) as usize,
        );
        let mut buffer = ShuffleBuffer::new(capacity, batch_size, 0)?;
        buffer.rng = SplitMix64::new(rng);
        if bytes.len() > 40 {
            let mut reader = StreamReader::try_new(Cursor::new(&bytes[40..]), None)
                .map_err(|e| state_error(e.to_string()))?;
            buffer.schema = Some(reader.schema());
            if let Some(batch) = reader.next() {
                let batch = batch.map_err(|e| state_error(e.to_string()))?;
                if batch.num_rows() != waiting {
                    return Err(state_error(format!(
                        "{} waiting rows stored, header says {waiting}",
                        batch.num_rows()
                    )));
                }
                buffer.push(batch)?;
            }
        }
        if buffer.pool.len() != waiting {
            return Err(state_error("waiting rows missing"));
        }
        Ok(buffer)
    }
}
