//! Which embedding rows a training step updates.

use super::*;
use crate::embedding::Day;

/// A hand-built batch: `candidates[b]` with the history `history` for every row.
fn batch(candidates: &[u64], history: &[u64]) -> FeatureBatch {
    let mut b = FeatureBatch::new();
    let (mut short, mut long) = (Sequence::default(), Sequence::default());
    short.offsets.push(0);
    long.offsets.push(0);
    short.max_len = 10;
    long.max_len = 30;
    for (i, &item) in candidates.iter().enumerate() {
        b.user_ids.push(1 + i as u64 % 3);
        b.item_ids.push(item);
        b.category_ids.push(7);
        b.context.extend(std::iter::repeat_n(0.5, CONTEXT_WIDTH));
        b.labels.push((i % 2) as f32);
        short.ids.extend(history.iter().take(10));
        short.offsets.push(short.ids.len() as u32);
        long.ids.extend_from_slice(history);
        long.offsets.push(long.ids.len() as u32);
    }
    b.short = short;
    b.long = long;
    b.day = Day(20_000);
    b
}

#[test]
fn rows_eta_only_hashed_get_no_optimiser_step() {
    let _rng = test_util::device(111);
    let mut trainer = CtrTrainer::new(train_config(9), ctr_config()).expect("trainer");
    // Step 1: items 100..120 are candidates, so each gets a gradient and Adam momentum.
    let items: Vec<u64> = (100..120).collect();
    trainer.train_step(&batch(&items, &[])).expect("step 1");
    let rows = |t: &CtrTrainer| -> std::collections::BTreeMap<u64, Vec<f32>> {
        t.tables()
            .item
            .rows()
            .map(|r| (r.id, r.vector.to_vec()))
            .collect()
    };
    let before = rows(&trainer);
    // Step 2: they are only behaviours. The short sequence reads the first 10, ETA selects
    // the top-5 of the 20 for the (single) candidate 500: at least 5 of 110..120 are read by
    // nobody. With momentum from step 1 a zero-gradient Adam step would still move them.
    trainer
        .train_step(&batch(&[500, 500, 500, 500], &items))
        .expect("step 2");
    let after = rows(&trainer);
    let changed: Vec<u64> = items
        .iter()
        .copied()
        .filter(|id| after[id] != before[id])
        .collect();
    let short: Vec<u64> = items[..10].to_vec();
    assert!(
        short.iter().all(|id| changed.contains(id)),
        "short-sequence rows get gradients: {changed:?}"
    );
    let unread = items[10..]
        .iter()
        .filter(|id| !changed.contains(id))
        .count();
    assert!(
        (5..=10).contains(&unread),
        "rows only hashed must not move; changed {changed:?}"
    );
}
