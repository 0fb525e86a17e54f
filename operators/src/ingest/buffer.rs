//! [`PartBuffer`]: batches waiting to be written, grouped by output file key (domain, date,
//! topic, partition). Files never span epochs: everything buffered is written at the barrier.
//!
//! Splitting a micro-batch by key costs one `take` per key; when a batch has a single key (the
//! common case: one partition, one day) it is kept as is, without copying.

use std::collections::BTreeMap;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use ctrflow_schemas::{Domain, EventDate, FileRole};

use crate::OperatorError;

/// Where a row goes: one file per key and epoch (rolled further by row count).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartKey {
    /// Domain of the rows.
    pub domain: Domain,
    /// Date partition.
    pub date: EventDate,
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// What the file holds (landing, late or dead-letter rows).
    pub role: FileRole,
}

/// Rows buffered for one key.
#[derive(Debug, Default)]
pub struct PartRows {
    /// The batches, in arrival order.
    pub batches: Vec<RecordBatch>,
    /// Number of rows.
    pub rows: usize,
    /// Smallest source offset among the rows.
    pub first_offset: i64,
    /// Largest source offset among the rows.
    pub last_offset: i64,
}

/// Buffers rows by [`PartKey`].
#[derive(Debug, Default)]
pub struct PartBuffer {
    parts: BTreeMap<PartKey, PartRows>,
}

impl PartBuffer {
    /// Adds the rows of `batch`: row `i` belongs to `groups[group_of[i]]` and has source offset
    /// `offsets[i]`. Returns the keys that received rows.
    pub fn add(
        &mut self,
        batch: &RecordBatch,
        group_of: &[u32],
        groups: &[PartKey],
        offsets: &[i64],
    ) -> Result<Vec<PartKey>, OperatorError> {
        if group_of.is_empty() {
            return Ok(Vec::new());
        }
        if groups.len() == 1 {
            self.push(groups[0].clone(), batch.clone(), offsets);
            return Ok(groups.to_vec());
        }
        let mut rows_of: Vec<Vec<u32>> = vec![Vec::new(); groups.len()];
        for (i, &g) in group_of.iter().enumerate() {
            rows_of[g as usize].push(i as u32);
        }
        let mut touched = Vec::with_capacity(groups.len());
        for (g, rows) in rows_of.into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let group_offsets: Vec<i64> = rows.iter().map(|&r| offsets[r as usize]).collect();
            let indices = UInt32Array::from(rows);
            let part =
                take_record_batch(batch, &indices).map_err(|source| OperatorError::Arrow {
                    context: "splitting a batch by output file",
                    source,
                })?;
            self.push(groups[g].clone(), part, &group_offsets);
            touched.push(groups[g].clone());
        }
        Ok(touched)
    }

    fn push(&mut self, key: PartKey, batch: RecordBatch, offsets: &[i64]) {
        let (lo, hi) = offsets
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &o| (lo.min(o), hi.max(o)));
        let entry = self.parts.entry(key).or_insert_with(|| PartRows {
            first_offset: lo,
            last_offset: hi,
            ..PartRows::default()
        });
        entry.first_offset = entry.first_offset.min(lo);
        entry.last_offset = entry.last_offset.max(hi);
        entry.rows += batch.num_rows();
        entry.batches.push(batch);
    }

    /// Rows buffered under `key`.
    pub fn rows_of(&self, key: &PartKey) -> usize {
        self.parts.get(key).map_or(0, |p| p.rows)
    }

    /// Removes and returns the rows of `key`.
    pub fn take(&mut self, key: &PartKey) -> Option<PartRows> {
        self.parts.remove(key)
    }

    /// Removes and returns everything, in key order.
    pub fn drain(&mut self) -> Vec<(PartKey, PartRows)> {
        std::mem::take(&mut self.parts).into_iter().collect()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}
