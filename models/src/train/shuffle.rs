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
//! caller that pops until `None` after each push never holds more than
//! `capacity - 1 + (largest pushed batch)` rows.
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

/// A bounded, seeded, deterministic shuffle buffer of event rows (see the module docs).
#[derive(Debug, Clone)]
pub struct ShuffleBuffer {
    capacity: usize,
    batch_size: usize,
    rng: SplitMix64,
    /// Held batches with their number of rows still in the pool; the front has sequence
    /// number `first_seq`.
    batches: VecDeque<(RecordBatch, usize)>,
    first_seq: u64,
    /// Waiting rows as (batch sequence number, row).
    pool: Vec<(u64, u32)>,
    schema: Option<SchemaRef>,
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
            pool: Vec::new(),
            schema: None,
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
        self.batches.push_back((batch, rows));
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
        let arrays: Vec<&RecordBatch> = sources
            .iter()
            .map(|&seq| &self.batches[(seq - self.first_seq) as usize].0)
            .collect();
        let indices: Vec<(usize, usize)> = picked
            .iter()
            .map(|&(seq, row)| {
                let source = sources.binary_search(&seq).unwrap_or_default();
                (source, row as usize)
            })
            .collect();
        let out = interleave_record_batch(&arrays, &indices).map_err(|e| ModelsError::Column {
            column: "(shuffle)",
            reason: e.to_string(),
        })?;
        for &(seq, _) in &picked {
            self.batches[(seq - self.first_seq) as usize].1 -= 1;
        }
        while matches!(self.batches.front(), Some((_, 0))) {
            self.batches.pop_front();
            self.first_seq += 1;
        }
        Ok(out)
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
            let arrays: Vec<&RecordBatch> = self.batches.iter().map(|(b, _)| b).collect();
            let indices: Vec<(usize, usize)> = self
                .pool
                .iter()
                .map(|&(seq, row)| ((seq - self.first_seq) as usize, row as usize))
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
