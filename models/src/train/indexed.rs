//! [`IndexedBatch`]: a [`FeatureBatch`] with its item ids already de-duplicated, so that work
//! (a hash-map insert per id, about a million ids per A-CTR batch) can run on another thread
//! while the previous training step runs.

use arrow::array::RecordBatch;

use super::{FeatureBatch, FeatureConfig};
use crate::embedding::DistinctIds;
use crate::error::Result;

/// A feature batch and the distinct ids a training step looks up in the item table
/// ([`FeatureBatch::item_table_ids`]): its candidates, followed by both behaviour sequences for
/// a network that reads them (`with_sequences`).
///
/// The features can only be changed through [`refill`](Self::refill) and
/// [`fill_from_record_batch`](Self::fill_from_record_batch), which index them again, so the
/// distinct ids always describe the features they come with.
/// [`Trainer::train_step_indexed`](super::Trainer::train_step_indexed) gives the same result
/// as [`Trainer::train_step`](super::Trainer::train_step) on the features alone (a trainer
/// whose network differs from `with_sequences` ignores the index and looks its ids up itself).
#[derive(Debug, Clone)]
pub struct IndexedBatch {
    features: FeatureBatch,
    item_ids: DistinctIds,
    with_sequences: bool,
}

impl IndexedBatch {
    /// An empty batch for a network with or without sequences (buffers grow on first use and
    /// are then reused).
    pub fn new(with_sequences: bool) -> Self {
        Self {
            features: FeatureBatch::new(),
            item_ids: DistinctIds::new(),
            with_sequences,
        }
    }

    /// Indexes `features` for a network with or without sequences.
    pub fn from_features(features: FeatureBatch, with_sequences: bool) -> Self {
        let mut out = Self {
            features,
            item_ids: DistinctIds::new(),
            with_sequences,
        };
        out.index();
        out
    }

    /// Replaces the contents with the features of `batch` and indexes them for a network with
    /// or without sequences, reusing every buffer (see
    /// [`FeatureBatch::fill_from_record_batch`]).
    ///
    /// # Errors
    /// Those of [`FeatureBatch::fill_from_record_batch`]; the batch is then empty.
    pub fn fill_from_record_batch(
        &mut self,
        batch: &RecordBatch,
        config: &FeatureConfig,
        with_sequences: bool,
    ) -> Result<()> {
        self.with_sequences = with_sequences;
        self.refill(|features| features.fill_from_record_batch(batch, config))
    }

    /// Lets `fill` change the features, then indexes them again.
    ///
    /// # Errors
    /// `fill`'s error; the batch is then empty.
    pub fn refill<E>(
        &mut self,
        fill: impl FnOnce(&mut FeatureBatch) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.item_ids.clear();
        if let Err(e) = fill(&mut self.features) {
            self.features = FeatureBatch::new();
            return Err(e);
        }
        self.index();
        Ok(())
    }

    /// The features.
    pub fn features(&self) -> &FeatureBatch {
        &self.features
    }

    /// The features, giving up the index.
    pub fn into_features(self) -> FeatureBatch {
        self.features
    }

    /// The distinct ids of [`FeatureBatch::item_table_ids`].
    pub fn item_ids(&self) -> &DistinctIds {
        &self.item_ids
    }

    /// Whether the index includes the behaviour sequences (for a network that reads them).
    pub fn with_sequences(&self) -> bool {
        self.with_sequences
    }

    fn index(&mut self) {
        self.item_ids.clear();
        for ids in self.features.item_table_ids(self.with_sequences) {
            self.item_ids.extend(ids);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::IndexedBatch;
    use crate::train::FeatureBatch;

    #[test]
    fn indexes_candidates_then_short_then_long() {
        let mut f = FeatureBatch::new();
        f.item_ids = vec![4, 9];
        f.short.ids = vec![9, 1, 0];
        f.long.ids = vec![1, 4, 7];
        let b = IndexedBatch::from_features(f.clone(), true);
        assert_eq!(b.item_ids().ids(), [4, 9, 1, 0, 7]);
        assert_eq!(b.item_ids().positions(), [0, 1, 1, 2, 3, 2, 0, 4]);
        // Without sequences only the candidates are looked up.
        let b = IndexedBatch::from_features(f, false);
        assert_eq!(b.item_ids().ids(), [4, 9]);
        assert_eq!(b.item_ids().positions(), [0, 1]);
    }

    #[test]
    fn refill_reindexes_and_a_failed_fill_leaves_it_empty() {
        let mut b = IndexedBatch::from_features(FeatureBatch::new(), true);
        b.refill(|f| {
            f.item_ids = vec![3, 3];
            Ok::<_, ()>(())
        })
        .expect("fill");
        assert_eq!(b.item_ids().ids(), [3]);
        assert!(
            b.refill(|f| {
                f.item_ids = vec![5];
                Err(())
            })
            .is_err()
        );
        assert!(b.features().item_ids.is_empty());
        assert!(b.item_ids().is_empty());
    }
}
