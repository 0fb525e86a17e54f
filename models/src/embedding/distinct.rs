//! [`DistinctIds`]: one batch's ids de-duplicated, the part of a table lookup that does not
//! depend on the table, so it can run ahead of the training step on another thread.

use std::collections::HashMap;

use crate::rng::IdBuildHasher;

/// The distinct ids of a sequence of ids, in order of first appearance, with how often each
/// occurs and, per input id, which distinct id it is.
///
/// A table lookup de-duplicates its ids first and then resolves each distinct id once; that
/// first half reads nothing of the table. [`EmbeddingTable::lookup_distinct`] takes it done
/// ahead (the training thread's feature stage does it for the item ids of the next batch while
/// the current step runs), [`EmbeddingTable::lookup`] does it in place. Either way the result
/// is the same.
///
/// The buffers keep their capacity across [`clear`](Self::clear), so a reused value stops
/// allocating once it has grown to the largest batch.
///
/// [`EmbeddingTable::lookup_distinct`]: super::EmbeddingTable::lookup_distinct
/// [`EmbeddingTable::lookup`]: super::EmbeddingTable::lookup
#[derive(Debug, Default, Clone)]
pub struct DistinctIds {
    /// Distinct ids, first-appearance order.
    ids: Vec<u64>,
    /// Occurrences of each distinct id.
    counts: Vec<u32>,
    /// Per input id, its index into `ids`.
    positions: Vec<u32>,
    /// Scratch: id -> index into `ids`.
    index: HashMap<u64, u32, IdBuildHasher>,
}

impl DistinctIds {
    /// Empty; buffers grow on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// The distinct ids of `ids`.
    pub fn of(ids: &[u64]) -> Self {
        let mut out = Self::new();
        out.extend(ids);
        out
    }

    /// Forgets every id, keeping the buffers.
    pub fn clear(&mut self) {
        self.ids.clear();
        self.counts.clear();
        self.positions.clear();
        self.index.clear();
    }

    /// Appends `ids` to the input: the result is that of one call with all the ids so far
    /// concatenated (so a batch's candidate and behaviour ids need no concatenated copy).
    pub fn extend(&mut self, ids: &[u64]) {
        self.positions.reserve(ids.len());
        for &id in ids {
            let next = self.ids.len() as u32;
            let k = *self.index.entry(id).or_insert(next);
            if k == next {
                self.ids.push(id);
                self.counts.push(1);
            } else {
                self.counts[k as usize] = self.counts[k as usize].saturating_add(1);
            }
            self.positions.push(k);
        }
    }

    /// The distinct ids, in order of first appearance.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// How often each distinct id occurs (saturating at `u32::MAX`).
    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    /// For each input id, the index of its distinct id in [`ids`](Self::ids).
    pub fn positions(&self) -> &[u32] {
        &self.positions
    }

    /// Number of input ids.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether no id was given.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Number of distinct ids.
    pub fn distinct_len(&self) -> usize {
        self.ids.len()
    }

    /// Capacity of the de-duplication map (for tests that check buffers are reused).
    #[cfg(test)]
    pub(super) fn index_capacity(&self) -> usize {
        self.index.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::DistinctIds;

    #[test]
    fn first_appearance_order_counts_and_positions() {
        let d = DistinctIds::of(&[7, 3, 7, 9, 3, 7]);
        assert_eq!(d.ids(), [7, 3, 9]);
        assert_eq!(d.counts(), [3, 2, 1]);
        assert_eq!(d.positions(), [0, 1, 0, 2, 1, 0]);
        assert_eq!((d.len(), d.distinct_len()), (6, 3));
    }

    #[test]
    fn extending_equals_one_concatenated_input() {
        let (a, b, c) = ([5u64, 1, 5], [1u64, 2], [2u64, 5, 8]);
        let mut parts = DistinctIds::new();
        parts.extend(&a);
        parts.extend(&b);
        parts.extend(&c);
        let whole = DistinctIds::of(&[a.as_slice(), &b, &c].concat());
        assert_eq!(parts.ids(), whole.ids());
        assert_eq!(parts.counts(), whole.counts());
        assert_eq!(parts.positions(), whole.positions());
    }

    #[test]
    fn clear_forgets_the_previous_ids() {
        let mut d = DistinctIds::of(&[1, 2, 3]);
        d.clear();
        d.extend(&[3, 3]);
        assert_eq!(
            (d.ids(), d.counts(), d.positions()),
            (&[3u64][..], &[2u32][..], &[0u32, 0][..])
        );
        assert!(!d.is_empty());
    }
}
