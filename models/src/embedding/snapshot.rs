//! [`SnapshotTable`]: a read-only id -> vector map, the form in which a published TPM
//! embedding snapshot is an input of CPM and A-CTR (the historical-embedding feature).
//!
//! A snapshot is built either from a live [`EmbeddingTable`] (the TPM trainer's own table, at
//! publish time) or from the rows of a published Parquet snapshot. It holds only what lookups
//! need: the ids, their vectors in one contiguous buffer, and the per-row frequency and
//! last-seen day that the published snapshot carries. Clones share the rows, so handing the
//! same snapshot to several jobs (or to several places of a point-in-time history) costs no
//! copy.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Day, EmbeddingTable};
use crate::error::{ModelsError, Result};
use crate::rng::IdBuildHasher;

/// A read-only embedding snapshot: `row(id)` or nothing (callers read zeros for absent ids).
/// Cloning is cheap: clones share the rows (copied only if a shared snapshot is appended to).
#[derive(Debug, Clone, Default)]
pub struct SnapshotTable {
    dim: usize,
    rows: Arc<Rows>,
}

#[derive(Debug, Clone, Default)]
struct Rows {
    index: HashMap<u64, u32, IdBuildHasher>,
    ids: Vec<u64>,
    values: Vec<f32>,
    frequency: Vec<u64>,
    last_seen: Vec<Day>,
}

impl SnapshotTable {
    /// An empty snapshot of width `dim`.
    pub fn empty(dim: usize) -> Self {
        SnapshotTable {
            dim,
            ..SnapshotTable::default()
        }
    }

    /// A copy of every id row of `table` (the shared default row is not part of a snapshot).
    pub fn from_table(table: &EmbeddingTable) -> Self {
        let mut snapshot = SnapshotTable::empty(table.dim());
        for row in table.rows() {
            snapshot.push_row(row.id, row.vector, row.frequency, row.last_seen);
        }
        snapshot
    }

    /// Appends one row.
    ///
    /// # Errors
    /// [`ModelsError::InvalidConfig`] when `vector` is not `dim` wide, when it holds a
    /// non-finite value, or when `id` is already present (a snapshot has one row per id).
    pub fn insert(
        &mut self,
        id: u64,
        vector: &[f32],
        frequency: u64,
        last_seen: Day,
    ) -> Result<()> {
        if vector.len() != self.dim {
            return Err(ModelsError::config(
                "snapshot.vector",
                format!(
                    "id {id}: {} values, the snapshot is {} wide",
                    vector.len(),
                    self.dim
                ),
            ));
        }
        if let Some(v) = vector.iter().find(|v| !v.is_finite()) {
            return Err(ModelsError::config(
                "snapshot.vector",
                format!("id {id}: non-finite value {v}"),
            ));
        }
        if self.rows.index.contains_key(&id) {
            return Err(ModelsError::config(
                "snapshot.id",
                format!("id {id} appears twice"),
            ));
        }
        self.push_row(id, vector, frequency, last_seen);
        Ok(())
    }

    fn push_row(&mut self, id: u64, vector: &[f32], frequency: u64, last_seen: Day) {
        let rows = Arc::make_mut(&mut self.rows);
        let slot = rows.ids.len() as u32;
        rows.index.insert(id, slot);
        rows.ids.push(id);
        rows.values.extend_from_slice(vector);
        rows.frequency.push(frequency);
        rows.last_seen.push(last_seen);
    }

    /// Width of every vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.ids.len()
    }

    /// Whether the snapshot has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.ids.is_empty()
    }

    /// The vector of `id`, if the snapshot has it.
    pub fn row(&self, id: u64) -> Option<&[f32]> {
        let slot = *self.rows.index.get(&id)? as usize;
        Some(&self.rows.values[slot * self.dim..(slot + 1) * self.dim])
    }

    /// The ids in insertion order.
    pub fn ids(&self) -> &[u64] {
        &self.rows.ids
    }

    /// All vectors, row-major `[len, dim]` in the order of [`ids`](Self::ids).
    pub fn values(&self) -> &[f32] {
        &self.rows.values
    }

    /// Training lookups of each row when the snapshot was taken, in id order.
    pub fn frequencies(&self) -> &[u64] {
        &self.rows.frequency
    }

    /// Last-seen day of each row, in id order.
    pub fn last_seen(&self) -> &[Day] {
        &self.rows.last_seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedding::{EmbeddingTableConfig, Lookup};

    #[test]
    fn a_snapshot_of_a_table_reads_the_same_rows() {
        let mut table = EmbeddingTable::new(EmbeddingTableConfig::new(4)).expect("table");
        table.lookup(&[7, 9, 7], Day(3), true, &mut Lookup::new());
        let snapshot = SnapshotTable::from_table(&table);
        assert_eq!(snapshot.len(), 2);
        for id in [7, 9] {
            assert_eq!(snapshot.row(id), table.row(id));
        }
        assert_eq!(snapshot.row(8), None);
        let seven = snapshot.ids().iter().position(|&i| i == 7).expect("7");
        assert_eq!(snapshot.frequencies()[seven], 2);
        assert_eq!(snapshot.last_seen()[seven], Day(3));
    }

    #[test]
    fn insert_refuses_wrong_width_non_finite_and_duplicate_rows() {
        let mut s = SnapshotTable::empty(2);
        s.insert(1, &[0.5, 1.0], 3, Day(1)).expect("row");
        assert!(s.insert(2, &[0.5], 1, Day(1)).is_err());
        assert!(s.insert(3, &[f32::NAN, 1.0], 1, Day(1)).is_err());
        assert!(s.insert(1, &[0.0, 0.0], 1, Day(1)).is_err());
        assert_eq!(s.row(1), Some(&[0.5, 1.0][..]));
        assert_eq!(s.values().len(), 2);
    }

    #[test]
    fn clones_share_rows_until_one_is_appended_to() {
        let mut a = SnapshotTable::empty(2);
        a.insert(1, &[0.5, 1.0], 3, Day(1)).expect("row");
        let mut b = a.clone();
        assert!(
            std::ptr::eq(a.values(), b.values()),
            "a clone copies nothing"
        );
        b.insert(2, &[2.0, 3.0], 1, Day(2)).expect("row");
        assert_eq!((a.len(), b.len()), (1, 2));
        assert_eq!(a.row(2), None);
        assert_eq!(b.row(1), Some(&[0.5, 1.0][..]));
    }
}
