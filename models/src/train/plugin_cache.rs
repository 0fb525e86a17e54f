//! PPM's cached intermediate outputs: the frozen plug-in tower's output per (item, content),
//! computed the first time a trainer meets the item and reused from then on.
//!
//! The tower is frozen, so its output is a function of the content vector alone: caching it
//! is exact, and a step runs the tower only on the batch's not-yet-seen items (after a few
//! batches, almost none) instead of on every row. The key includes a fingerprint of the
//! content vector, so an item whose content changes (a re-encoded image, an edited title) is
//! recomputed rather than served stale.
//!
//! Memory is bounded by `max_entries`: when a batch would take the cache past it, the cache
//! is emptied and refilled from then on (items come back within a few batches; the cost is one
//! tower pass over them). A trainer clears it whenever its tower is replaced.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use burn::tensor::Device;

use crate::error::{ModelsError, Result};
use crate::nn::PluginTower;
use crate::rng::mix64;

/// Counters of a [`PluginCache`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginCacheStats {
    /// Rows served from the cache (including repeats of an item within one batch).
    pub hits: u64,
    /// Rows whose output the tower computed.
    pub computed: u64,
    /// Times the cache was emptied because it was full.
    pub clears: u64,
}

/// The frozen plug-in tower's outputs, keyed by (item id, content fingerprint).
#[derive(Debug)]
pub struct PluginCache {
    max_entries: usize,
    /// (item id, content fingerprint) -> slot in `values`.
    index: HashMap<(u64, u64), u32>,
    /// `[slots, p]` row-major.
    values: Vec<f32>,
    stats: PluginCacheStats,
    /// Per-batch scratch: each row's slot, and the content of the rows to compute.
    slots: Vec<u32>,
    missing: Vec<f32>,
}

/// A fingerprint of one content vector (its exact bits): two floats per 64-bit word, four
/// independent multiply-rotate lanes (no dependency chain across the whole row), mixed at
/// the end. It runs for every row of every batch, so it must cost far less than the tower.
fn fingerprint(row: &[f32]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let word = |pair: &[f32]| u64::from(pair[0].to_bits()) | (u64::from(pair[1].to_bits()) << 32);
    let step = |h: u64, w: u64| (h ^ w).wrapping_mul(K).rotate_left(29);
    let mut lanes = [row.len() as u64, 1, 2, 3];
    let mut blocks = row.chunks_exact(8);
    for block in &mut blocks {
        for (lane, pair) in lanes.iter_mut().zip(block.chunks_exact(2)) {
            *lane = step(*lane, word(pair));
        }
    }
    let mut h = lanes
        .iter()
        .fold(0x243F_6A88_85A3_08D3, |h, &lane| mix64(h ^ lane));
    for &v in blocks.remainder() {
        h = step(h, u64::from(v.to_bits()));
    }
    mix64(h)
}

impl PluginCache {
    /// An empty cache holding at most `max_entries` (item, content) outputs (at least 1).
    pub fn new(max_entries: usize) -> Self {
        PluginCache {
            max_entries: max_entries.max(1),
            index: HashMap::new(),
            values: Vec::new(),
            stats: PluginCacheStats::default(),
            slots: Vec::new(),
            missing: Vec::new(),
        }
    }

    /// Forgets every output (the tower changed).
    pub fn clear(&mut self) {
        self.index.clear();
        self.values.clear();
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The counters since the cache was created.
    pub fn stats(&self) -> PluginCacheStats {
        self.stats
    }

    /// Writes the tower's outputs for a batch into `out` (`[B, p]` row-major): rows whose
    /// (item, content) is cached are copied, the others are computed in one tower pass on
    /// `device` (a plain, non-autodiff device: `tower` must live there) and cached.
    ///
    /// `content` is `[B, w]` row-major, `B = item_ids.len()`.
    pub fn outputs(
        &mut self,
        tower: &PluginTower,
        item_ids: &[u64],
        content: &[f32],
        width: usize,
        device: &Device,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let rows = item_ids.len();
        if width == 0 || content.len() != rows * width {
            return Err(ModelsError::shape(
                "plug-in content [B, w]",
                rows * width.max(1),
                content.len(),
            ));
        }
        if width != tower.d_input() {
            return Err(ModelsError::shape(
                "plug-in content width (the tower's input)",
                tower.d_input(),
                width,
            ));
        }
        let p = tower.d_output();
        if self.index.len() + rows > self.max_entries {
            self.clear();
            self.stats.clears += 1;
        }
        let mut next = u32::try_from(self.index.len())
            .map_err(|_| ModelsError::config("plugin cache", "more than u32::MAX entries"))?;
        self.slots.clear();
        self.missing.clear();
        for (&id, row) in item_ids.iter().zip(content.chunks_exact(width)) {
            let slot = match self.index.entry((id, fingerprint(row))) {
                Entry::Occupied(e) => {
                    self.stats.hits += 1;
                    *e.get()
                }
                Entry::Vacant(e) => {
                    let slot = next;
                    next += 1;
                    e.insert(slot);
                    self.missing.extend_from_slice(row);
                    self.stats.computed += 1;
                    slot
                }
            };
            self.slots.push(slot);
        }
        if !self.missing.is_empty() {
            // New slots are numbered in order from the current end of `values`.
            let m = self.missing.len() / width;
            let computed = tower.forward_rows(std::mem::take(&mut self.missing), device);
            if computed.len() != m * p {
                return Err(ModelsError::shape("plug-in output", m * p, computed.len()));
            }
            self.values.extend_from_slice(&computed);
        }
        out.clear();
        out.reserve(rows * p);
        for &slot in &self.slots {
            let start = slot as usize * p;
            out.extend_from_slice(&self.values[start..start + p]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::PluginTowerConfig;
    use crate::nn::test_util::{device, normal, values};
    use burn::tensor::{Tensor, TensorData};

    /// A random tower `w = 3 -> 4 -> p = 2` and a content row per item id (row i = id i).
    fn setup(seed: u64) -> (crate::nn::test_util::SeededDevice, PluginTower, Vec<f32>) {
        let device = device(seed);
        let tower = PluginTowerConfig::new(3)
            .with_hidden(vec![4])
            .with_d_output(2)
            .init(&device);
        let content = values(normal([10, 3], &device));
        (device, tower, content)
    }

    fn rows_of(content: &[f32], ids: &[u64]) -> Vec<f32> {
        ids.iter()
            .flat_map(|&i| content[i as usize * 3..i as usize * 3 + 3].to_vec())
            .collect()
    }

    #[test]
    fn outputs_are_the_towers_and_each_item_is_computed_once() {
        let (device, tower, content) = setup(71);
        let mut cache = PluginCache::new(100);
        let mut out = Vec::new();
        let batches: [&[u64]; 3] = [&[1, 2, 1, 3], &[3, 4, 2], &[1, 4, 4, 5]];
        for ids in batches {
            let batch_content = rows_of(&content, ids);
            cache
                .outputs(&tower, ids, &batch_content, 3, &device, &mut out)
                .expect("outputs");
            let direct = values(tower.forward(Tensor::from_data(
                TensorData::new(batch_content, [ids.len(), 3]),
                &*device,
            )));
            assert_eq!(out.len(), ids.len() * 2);
            for (a, b) in out.iter().zip(&direct) {
                assert!((a - b).abs() < 1e-6, "cached {a} vs direct {b}");
            }
        }
        // Distinct items 1..=5 computed once each; the other 6 rows were hits.
        assert_eq!(
            cache.stats(),
            PluginCacheStats {
                hits: 6,
                computed: 5,
                clears: 0
            }
        );
        assert_eq!(cache.len(), 5);
    }

    #[test]
    fn the_fingerprint_sees_every_float_and_its_position() {
        let row: Vec<f32> = (0..19).map(|i| i as f32 * 0.5 - 3.0).collect();
        let base = fingerprint(&row);
        assert_eq!(fingerprint(&row.clone()), base);
        for i in 0..row.len() {
            let mut changed = row.clone();
            changed[i] = f32::from_bits(changed[i].to_bits() ^ 1); // one bit of one float
            assert_ne!(fingerprint(&changed), base, "float {i}");
        }
        let mut swapped = row.clone();
        swapped.swap(0, 1);
        assert_ne!(fingerprint(&swapped), base);
        assert_ne!(fingerprint(&row[..18]), fingerprint(&row));
    }

    #[test]
    fn changed_content_is_recomputed_and_the_bound_holds() {
        let (device, tower, content) = setup(72);
        let mut cache = PluginCache::new(4);
        let mut out = Vec::new();
        let ids = [7u64, 8];
        cache
            .outputs(&tower, &ids, &content[..6], 3, &device, &mut out)
            .expect("first");
        let first = out.clone();
        // Same ids, new content vectors: recomputed, different outputs.
        cache
            .outputs(&tower, &ids, &content[6..12], 3, &device, &mut out)
            .expect("changed");
        assert_eq!(cache.stats().computed, 4);
        assert_ne!(first, out);
        // A third batch would exceed 4 entries: the cache empties first, never grows past 4.
        cache
            .outputs(&tower, &[9], &content[12..15], 3, &device, &mut out)
            .expect("bounded");
        assert_eq!(cache.stats().clears, 1);
        assert_eq!(cache.len(), 1);
        // A wrong content width is an error naming the input.
        let err = cache
            .outputs(&tower, &[1, 2], &content[..5], 3, &device, &mut out)
            .expect_err("misshapen");
        assert!(err.to_string().contains("plug-in content"), "{err}");
    }
}
