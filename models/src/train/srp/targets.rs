//! What one SRP pre-training step trains on, decided before any tensor is built: which rows of
//! the batch, which of their behaviours are masked, which masked behaviours are targets and
//! which of the batch's items serve as the shared negatives. Everything random here draws from
//! the step's own generator, so a step is a function of `(seed, step)` and the batch.

use std::collections::HashSet;

use crate::embedding::{DEFAULT_SLOT, Lookup};
use crate::rng::SplitMix64;
use crate::train::FeatureBatch;

use super::tokens::TokenLayout;

/// Picks one row per user, in batch order, among rows with a behaviour, at most `limit`.
/// `users` is scratch space; the chosen row indices are left in `chosen`.
pub(super) fn choose_rows(
    batch: &FeatureBatch,
    limit: usize,
    users: &mut HashSet<u64>,
    chosen: &mut Vec<usize>,
) {
    users.clear();
    chosen.clear();
    for b in 0..batch.rows() {
        if chosen.len() == limit {
            break;
        }
        if batch.long.len_of(b) > 0 && users.insert(batch.user_ids[b]) {
            chosen.push(b);
        }
    }
}

/// Masks each real token of `layout` with probability `mask_prob`, and one at random in any
/// row where none was drawn. `masked` becomes the `[rows, len]` grid, true at masked cells.
pub(super) fn mask_tokens(
    layout: &TokenLayout,
    mask_prob: f64,
    rng: &mut SplitMix64,
    masked: &mut Vec<bool>,
) {
    let len = layout.len;
    masked.clear();
    masked.resize(layout.rows * len, false);
    for r in 0..layout.rows {
        let n = layout.mask[r * len..(r + 1) * len]
            .iter()
            .filter(|&&m| m)
            .count();
        let mut any = false;
        for j in 0..n {
            if rng.next_f64() < mask_prob {
                masked[r * len + j] = true;
                any = true;
            }
        }
        if !any {
            masked[r * len + rng.below(n)] = true;
        }
    }
}

/// The masked tokens that are targets: for items and for categories, the grid cell of each
/// target and its row in the lookup's unique rows. A masked token whose id reads the default
/// row (below the admission threshold) is hidden from the input but is not a target.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Targets {
    /// Grid cell of each item target.
    pub item_cells: Vec<i64>,
    /// Unique-row index (in the item lookup) of each item target.
    pub item_rows: Vec<i64>,
    /// Grid cell of each category target.
    pub category_cells: Vec<i64>,
    /// Unique-row index (in the category lookup) of each category target.
    pub category_rows: Vec<i64>,
}

impl Targets {
    /// Collects the targets of `masked` cells; `categories` is the category lookup when the
    /// batch has behaviour categories.
    pub fn collect(
        layout: &TokenLayout,
        masked: &[bool],
        items: &Lookup,
        categories: Option<&Lookup>,
    ) -> Targets {
        let mut out = Targets::default();
        let (item_slots, item_positions) = (items.unique_slots(), items.positions());
        for (k, &cell) in layout.cells.iter().enumerate() {
            if !masked[cell as usize] {
                continue;
            }
            let row = item_positions[k];
            if item_slots[row as usize] != DEFAULT_SLOT {
                out.item_cells.push(i64::from(cell));
                out.item_rows.push(i64::from(row));
            }
            if let Some(categories) = categories {
                let row = categories.positions()[k];
                if categories.unique_slots()[row as usize] != DEFAULT_SLOT {
                    out.category_cells.push(i64::from(cell));
                    out.category_rows.push(i64::from(row));
                }
            }
        }
        out
    }
}

/// Draws `count` distinct negatives among the `unique` rows of the item lookup (a seeded
/// partial Fisher-Yates into `candidates`) and returns the `[targets, count]` "accidental hit"
/// grid: true where a negative is the target's own item, so that it can be masked out.
/// `candidate_of` is scratch space.
pub(super) fn sample_negatives(
    unique: usize,
    count: usize,
    targets: &[i64],
    rng: &mut SplitMix64,
    candidates: &mut Vec<i64>,
    candidate_of: &mut Vec<i64>,
) -> Vec<bool> {
    candidates.clear();
    candidates.extend(0..unique as i64);
    for i in 0..count {
        let j = i + rng.below(unique - i);
        candidates.swap(i, j);
    }
    candidates.truncate(count);
    candidate_of.clear();
    candidate_of.resize(unique, -1);
    for (j, &row) in candidates.iter().enumerate() {
        candidate_of[row as usize] = j as i64;
    }
    let mut hits = vec![false; targets.len() * count];
    for (m, &row) in targets.iter().enumerate() {
        if let Ok(j) = usize::try_from(candidate_of[row as usize]) {
            hits[m * count + j] = true;
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_gets_a_masked_token_and_only_real_tokens_are_masked() {
        let layout = TokenLayout {
            ids: vec![1, 2, 3, 4, 5, 6],
            categories: Vec::new(),
            cells: vec![0, 1, 2, 4, 8, 9],
            mask: vec![
                true, true, true, false, //
                true, false, false, false, //
                true, true, false, false,
            ],
            rows: 3,
            len: 4,
        };
        let mut masked = Vec::new();
        for seed in 0..50 {
            // With probability 0 the fallback alone masks exactly one real token per row.
            let mut rng = SplitMix64::new(seed);
            mask_tokens(&layout, 0.0, &mut rng, &mut masked);
            for r in 0..3 {
                let row = &masked[r * 4..(r + 1) * 4];
                assert_eq!(row.iter().filter(|&&m| m).count(), 1, "row {r}");
                assert!(
                    row.iter()
                        .zip(&layout.mask[r * 4..])
                        .all(|(&m, &real)| !m || real),
                    "row {r} masks padding"
                );
            }
            mask_tokens(&layout, 1.0, &mut SplitMix64::new(seed), &mut masked);
            assert_eq!(masked, layout.mask, "probability 1 masks every real token");
        }
    }

    #[test]
    fn negatives_are_distinct_and_hits_mark_a_targets_own_item() {
        let (mut candidates, mut candidate_of) = (Vec::new(), Vec::new());
        let targets = [0, 3, 3, 9];
        for seed in 0..50 {
            let mut rng = SplitMix64::new(seed);
            let hits = sample_negatives(
                10,
                4,
                &targets,
                &mut rng,
                &mut candidates,
                &mut candidate_of,
            );
            let mut sorted = candidates.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 4, "distinct negatives");
            assert!(candidates.iter().all(|&c| (0..10).contains(&c)));
            for (m, &target) in targets.iter().enumerate() {
                for (j, &negative) in candidates.iter().enumerate() {
                    assert_eq!(
                        hits[m * 4 + j],
                        negative == target,
                        "target {m}, negative {j}"
                    );
                }
            }
        }
    }
}
