//! [`PartBuffer`]: rows grouped by output file key (domain, date, topic, partition, role). The
//! sinks use it to split each input batch by the file its rows go to, then hand each key's rows
//! to that file's encoder ([`super::sink`]).
//!
//! A batch with a single key (one partition, one day) is kept as is. A batch whose keys come in
//! a few long runs (the usual shape: Kafka hands over each partition's messages in fetch-sized
//! chunks, and a day changes once) is split into zero-copy slices. Only a batch whose keys are
//! finely interleaved costs one `take` (a copy) per key.

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

/// At most this many runs per group are kept as slices; a batch cut into more pieces is
/// regrouped with one `take` per key instead (fewer, larger batches for the Parquet writer).
const MAX_RUNS_PER_GROUP: usize = 4;

/// The maximal runs of consecutive rows with the same group, as `(start, len, group)`, or
/// `None` when the rows are too interleaved for slicing to pay off (see [`MAX_RUNS_PER_GROUP`]).
fn contiguous_runs(group_of: &[u32], groups: usize) -> Option<Vec<(usize, usize, u32)>> {
    let limit = groups * MAX_RUNS_PER_GROUP;
    let mut runs = Vec::with_capacity(limit.min(64));
    let mut start = 0;
    for i in 1..=group_of.len() {
        if i == group_of.len() || group_of[i] != group_of[start] {
            if runs.len() == limit {
                return None;
            }
            runs.push((start, i - start, group_of[start]));
            start = i;
        }
    }
    Some(runs)
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
        if let Some(runs) = contiguous_runs(group_of, groups.len()) {
            let mut touched = Vec::with_capacity(groups.len());
            for (start, len, g) in runs {
                let key = &groups[g as usize];
                self.push(
                    key.clone(),
                    batch.slice(start, len),
                    &offsets[start..start + len],
                );
                if !touched.contains(key) {
                    touched.push(key.clone());
                }
            }
            return Ok(touched);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn key(partition: i32) -> PartKey {
        PartKey {
            domain: Domain::Natural,
            date: EventDate::from_ymd(2026, 12, 1).expect("date"),
            topic: "t".into(),
            partition,
            role: FileRole::Landing,
        }
    }

    /// A batch whose single column holds the row's offset (100 + row).
    fn batch(rows: usize) -> (RecordBatch, Vec<i64>) {
        let offsets: Vec<i64> = (0..rows as i64).map(|r| 100 + r).collect();
        let schema = Arc::new(Schema::new(vec![Field::new("o", DataType::Int64, false)]));
        let column = Arc::new(Int64Array::from(offsets.clone()));
        (
            RecordBatch::try_new(schema, vec![column]).expect("batch"),
            offsets,
        )
    }

    fn column_values(rows: &PartRows) -> Vec<i64> {
        rows.batches
            .iter()
            .flat_map(|b| {
                let c = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("i64");
                c.values().to_vec()
            })
            .collect()
    }

    /// Whatever the routing, each key receives exactly its rows, in arrival order, with the
    /// right offset range; contiguous runs become slices of the input (no copy).
    #[test]
    fn every_key_gets_its_rows_in_order_whether_sliced_or_taken() {
        let groups = [key(0), key(1), key(2)];
        let cases: Vec<Vec<u32>> = vec![
            vec![0; 10],
            [vec![0; 6], vec![1; 3], vec![2; 5]].concat(),
            [vec![1; 4], vec![0; 4], vec![1; 4]].concat(),
            (0..40).map(|i| (i % 3) as u32).collect(),
            (0..40).map(|i| ((i * 7 + i / 3) % 3) as u32).collect(),
        ];
        for group_of in cases {
            let (input, offsets) = batch(group_of.len());
            let mut buffer = PartBuffer::default();
            let used = groups
                .len()
                .min(1 + *group_of.iter().max().expect("rows") as usize);
            let touched = buffer
                .add(&input, &group_of, &groups[..used], &offsets)
                .expect("add");
            let sliced = contiguous_runs(&group_of, used).is_some();
            for (g, k) in groups[..used].iter().enumerate() {
                let expected: Vec<i64> = group_of
                    .iter()
                    .zip(&offsets)
                    .filter(|&(&og, _)| og as usize == g)
                    .map(|(_, &o)| o)
                    .collect();
                if expected.is_empty() {
                    assert!(!touched.contains(k));
                    continue;
                }
                assert!(touched.contains(k), "{group_of:?}");
                assert_eq!(buffer.rows_of(k), expected.len());
                let rows = buffer.take(k).expect("rows");
                assert_eq!(column_values(&rows), expected, "{group_of:?}");
                assert_eq!(rows.first_offset, expected[0]);
                assert_eq!(rows.last_offset, *expected.last().expect("rows"));
                if sliced {
                    let input_data = input.column(0).to_data();
                    let base = input_data.buffers()[0].as_ptr() as usize;
                    let span = base..base + input_data.buffers()[0].len();
                    for b in &rows.batches {
                        // A slice points into the input's buffer.
                        let ptr = b.column(0).to_data().buffers()[0].as_ptr() as usize;
                        assert!(span.contains(&ptr), "{group_of:?}");
                    }
                }
            }
            assert!(buffer.is_empty());
        }
    }

    #[test]
    fn runs_are_found_and_interleaving_falls_back() {
        assert_eq!(
            contiguous_runs(&[0, 0, 1, 1, 1, 0], 2),
            Some(vec![(0, 2, 0), (2, 3, 1), (5, 1, 0)])
        );
        assert_eq!(contiguous_runs(&[], 1), Some(vec![]));
        let alternating: Vec<u32> = (0..20).map(|i| i % 2).collect();
        assert_eq!(contiguous_runs(&alternating, 2), None);
    }
}
