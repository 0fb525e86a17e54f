//! Which item rows one training step reads: the candidates, the short sequence and the long
//! behaviours the network attends to (ETA's Hamming top-k of each row, or all of them for the
//! full-attention baseline), as indices into the item lookup's unique rows; and the compact set
//! of those rows that becomes the item leaf. Rows the lookup resolved only so that ETA could
//! hash them are not in it, so they get no gradient and no optimiser step (as with PyTorch's
//! sparse embeddings).

use super::FeatureBatch;
use super::features::Sequence;
use super::net::SequenceSpec;
use crate::error::Result;
use crate::eta::{TopKScratch, top_k_by_hamming_batch};

/// Marks a padding position (and, in `compact`, a row the network does not read).
const PAD: u32 = u32::MAX;

/// The rows one step reads; reusable buffers (cleared by every [`select`](Self::select)).
#[derive(Debug, Default)]
pub(super) struct ItemRows {
    target_codes: Vec<u64>,
    seq_codes: Vec<u64>,
    valid_lens: Vec<u32>,
    top_k: Vec<u32>,
    top_k_counts: Vec<u32>,
    topk_scratch: TopKScratch,
    /// The candidates `[B]`, as indices into the lookup's unique rows.
    pub(super) item_index: Vec<u32>,
    /// The short sequences `[B, short_len]` (PAD: padding).
    pub(super) short_index: Vec<u32>,
    /// The long behaviours attended to `[B, long_len]` (PAD: padding).
    pub(super) long_index: Vec<u32>,
    /// Where each of `long_index`'s behaviours sits in the batch's long sequence (an index
    /// into its `ids` and `categories`; PAD: padding).
    pub(super) long_source: Vec<u32>,
    /// `[B, short_len]`, true at real behaviours.
    pub(super) short_mask: Vec<bool>,
    /// `[B, long_len]`, true at real behaviours.
    pub(super) long_mask: Vec<bool>,
    /// Short-sequence width `S` (0 without sequences).
    pub(super) short_len: usize,
    /// Long width: ETA's `k`, or the batch's longest history with full attention.
    pub(super) long_len: usize,
    /// Per unique row: its index in the leaf, or PAD.
    compact: Vec<u32>,
    /// The unique rows the network reads, ascending: the leaf's rows, the rows that get
    /// gradients.
    pub(super) used: Vec<u32>,
}

impl ItemRows {
    /// Chooses the rows of `batch`'s step. `positions` are the item lookup's positions of the
    /// candidates, then the short, then the long sequence ids; `unique` its number of unique
    /// rows; `codes` their SimHash codes (read only for ETA).
    pub(super) fn select(
        &mut self,
        batch: &FeatureBatch,
        positions: &[u32],
        unique: usize,
        codes: &[u64],
        sequences: Option<SequenceSpec>,
    ) -> Result<()> {
        let rows = batch.rows();
        self.item_index.clear();
        self.item_index.extend_from_slice(&positions[..rows]);
        self.short_index.clear();
        self.long_index.clear();
        self.long_source.clear();
        self.short_mask.clear();
        self.long_mask.clear();
        (self.short_len, self.long_len) = (0, 0);
        if let Some(seq) = sequences {
            let short_base = rows;
            let long_base = rows + batch.short.ids.len();
            // Short: the first S behaviours, padded.
            self.short_len = seq.short_len;
            gather_padded(
                &batch.short,
                &positions[short_base..],
                self.short_len,
                &mut self.short_index,
                &mut self.short_mask,
            );
            if seq.full_long_attention {
                self.long_len = batch.long.max_len.max(1);
                gather_padded(
                    &batch.long,
                    &positions[long_base..],
                    self.long_len,
                    &mut self.long_index,
                    &mut self.long_mask,
                );
                for b in 0..rows {
                    let start = batch.long.offsets[b];
                    let n = batch.long.len_of(b).min(self.long_len) as u32;
                    self.long_source.extend(start..start + n);
                    self.long_source
                        .extend(std::iter::repeat_n(PAD, self.long_len - n as usize));
                }
            } else {
                // ETA: Hamming top-k of each row's long behaviours against its candidate.
                let k = seq.eta_top_k;
                self.long_len = k;
                let width = (0..rows)
                    .map(|b| batch.long.len_of(b))
                    .max()
                    .unwrap_or(0)
                    .max(1);
                self.target_codes.clear();
                self.target_codes
                    .extend(positions[..rows].iter().map(|&p| codes[p as usize]));
                self.seq_codes.clear();
                self.seq_codes.resize(rows * width, 0);
                self.valid_lens.clear();
                for b in 0..rows {
                    let start = long_base + batch.long.offsets[b] as usize;
                    let n = batch.long.len_of(b);
                    for (c, &p) in self.seq_codes[b * width..b * width + n]
                        .iter_mut()
                        .zip(&positions[start..start + n])
                    {
                        *c = codes[p as usize];
                    }
                    self.valid_lens.push(n as u32);
                }
                self.top_k.resize(rows * k, 0);
                self.top_k_counts.resize(rows, 0);
                top_k_by_hamming_batch(
                    &self.target_codes,
                    &self.seq_codes,
                    &self.valid_lens,
                    k,
                    &mut self.topk_scratch,
                    &mut self.top_k,
                    &mut self.top_k_counts,
                )?;
                self.long_mask.reserve(rows * k);
                self.long_source.reserve(rows * k);
                for b in 0..rows {
                    let start = batch.long.offsets[b];
                    let n = self.top_k_counts[b] as usize;
                    for j in 0..k {
                        let source = if j < n {
                            start + self.top_k[b * k + j]
                        } else {
                            PAD
                        };
                        self.long_source.push(source);
                        self.long_index.push(if j < n {
                            positions[long_base + source as usize]
                        } else {
                            PAD
                        });
                        self.long_mask.push(j < n);
                    }
                }
            }
        }

        // The leaf rows: the ones read above, in lookup order.
        self.compact.clear();
        self.compact.resize(unique, PAD);
        for &u in self
            .item_index
            .iter()
            .chain(&self.short_index)
            .chain(&self.long_index)
        {
            if u != PAD {
                self.compact[u as usize] = 0;
            }
        }
        self.used.clear();
        for (u, c) in self.compact.iter_mut().enumerate() {
            if *c != PAD {
                *c = self.used.len() as u32;
                self.used.push(u as u32);
            }
        }
        Ok(())
    }

    /// `index` (unique-row indices, PAD for padding) as indices into the leaf.
    pub(super) fn remap(&self, index: &[u32]) -> Vec<i64> {
        let pad = self.used.len() as i64;
        index
            .iter()
            .map(|&u| {
                if u == PAD {
                    pad
                } else {
                    i64::from(self.compact[u as usize])
                }
            })
            .collect()
    }
}

/// The category rows one step reads when behaviours carry their categories: the candidates',
/// the short behaviours' and the attended long behaviours' categories, looked up together.
#[derive(Debug, Default)]
pub(super) struct CategoryRows {
    /// The ids to look up: candidates `[B]`, then the short behaviours' categories (ragged, as
    /// the short sequence), then the categories of the attended long behaviours in order.
    pub(super) ids: Vec<u64>,
    /// The short behaviours' categories `[B, short_len]` as lookup positions (PAD: padding).
    pub(super) short_index: Vec<u32>,
    /// The attended long behaviours' categories `[B, long_len]` (PAD: padding).
    pub(super) long_index: Vec<u32>,
}

impl CategoryRows {
    /// The ids to look up for `batch`, given the item rows `items` chose (candidates first).
    pub(super) fn collect_ids(&mut self, batch: &FeatureBatch, items: &ItemRows) {
        self.ids.clear();
        self.ids.extend_from_slice(&batch.category_ids);
        self.ids.extend_from_slice(&batch.short.categories);
        self.ids.extend(
            items
                .long_source
                .iter()
                .filter(|&&s| s != PAD)
                .map(|&s| batch.long.categories[s as usize]),
        );
    }

    /// Lays the lookup's `positions` (of [`ids`](Self::ids)) out as the padded short and long
    /// behaviour grids of `items`.
    pub(super) fn place(&mut self, batch: &FeatureBatch, items: &ItemRows, positions: &[u32]) {
        let rows = batch.rows();
        let short_end = rows + batch.short.categories.len();
        self.short_index.clear();
        let mut mask = Vec::new();
        gather_padded(
            &batch.short,
            &positions[rows..short_end],
            items.short_len,
            &mut self.short_index,
            &mut mask,
        );
        self.long_index.clear();
        let mut long = positions[short_end..].iter();
        self.long_index
            .extend(items.long_source.iter().map(|&s| match s {
                PAD => PAD,
                _ => *long.next().unwrap_or(&PAD),
            }));
    }
}

/// `index` (lookup positions, PAD for padding) as indices into a leaf of `unique` rows plus
/// one zero row that padding reads.
pub(super) fn with_pad_row(index: &[u32], unique: usize) -> Vec<i64> {
    index
        .iter()
        .map(|&u| {
            if u == PAD {
                unique as i64
            } else {
                i64::from(u)
            }
        })
        .collect()
}

/// Appends, per row of `seq`, the unique-row positions of its first `width` behaviours padded
/// with PAD to `width`, and the matching mask. `positions[i]` is the unique row of `seq.ids[i]`.
fn gather_padded(
    seq: &Sequence,
    positions: &[u32],
    width: usize,
    index: &mut Vec<u32>,
    mask: &mut Vec<bool>,
) {
    let rows = seq.rows();
    index.reserve(rows * width);
    mask.reserve(rows * width);
    for b in 0..rows {
        let start = seq.offsets[b] as usize;
        let n = seq.len_of(b).min(width);
        index.extend_from_slice(&positions[start..start + n]);
        index.extend(std::iter::repeat_n(PAD, width - n));
        mask.extend((0..width).map(|j| j < n));
    }
}
