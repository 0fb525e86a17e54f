//! Synthetic training batches shared by the models benches.

use ctrflow_models::embedding::Day;
use ctrflow_models::mix64;
use ctrflow_models::train::{CONTEXT_WIDTH, FeatureBatch, Sequence};

/// A deterministic stream of numbers below a bound.
pub struct Rng(pub u64);

impl Rng {
    /// The next number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 = mix64(self.0.wrapping_add(0x9E37_79B9_7F4A_7C15));
        self.0 % bound
    }
}

/// Sizes of a synthetic batch.
pub struct BatchShape {
    pub rows: usize,
    pub users: u64,
    pub items: u64,
    pub categories: u64,
    pub short: usize,
    pub long: usize,
}

/// One batch: ids uniform over each table, every history exactly `long` behaviours (the
/// short sequence is its first `short`), context uniform in [0, 1), labels a learnable
/// function of the candidate (item parity).
pub fn full_history_batch(rng: &mut Rng, shape: &BatchShape) -> FeatureBatch {
    let mut b = FeatureBatch::new();
    let (mut short, mut long) = (Sequence::default(), Sequence::default());
    short.offsets.push(0);
    long.offsets.push(0);
    short.max_len = shape.short;
    long.max_len = shape.long;
    for _ in 0..shape.rows {
        b.user_ids.push(rng.below(shape.users));
        let item = rng.below(shape.items);
        b.item_ids.push(item);
        b.category_ids.push(rng.below(shape.categories));
        b.context
            .extend((0..CONTEXT_WIDTH).map(|_| rng.below(1000) as f32 / 1000.0));
        b.labels.push((item % 2) as f32);
        let start = long.ids.len();
        long.ids
            .extend((0..shape.long).map(|_| rng.below(shape.items)));
        long.offsets.push(long.ids.len() as u32);
        short
            .ids
            .extend_from_slice(&long.ids[start..start + shape.short]);
        short.offsets.push(short.ids.len() as u32);
    }
    b.short = short;
    b.long = long;
    b.day = Day(20_000);
    b
}
