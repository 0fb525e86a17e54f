//! ETA's SimHash codes of the item table's rows, cached per slot.
//!
//! ETA hashes every long-sequence behaviour of every row, each step: at 1,000 behaviours per
//! row and batch 1,024 that is ~640k distinct item rows, while the step's optimiser touches only
//! the rows the network read (candidates, short sequences, the top-k): about a tenth of them.
//! A row's code changes only when its values do, so the cache keeps one code per table slot
//! with the row's [revision](crate::embedding::EmbeddingTable::revisions) at the time it was
//! computed, and recomputes exactly the rows whose revision moved (or that it has never
//! seen). The codes it returns are those of the current embeddings, bit for bit: the same as
//! hashing every row afresh.
//!
//! Cost: 16 bytes per table slot (code and revision side by side, one cache line access per
//! row), grown with the table; a new table instance (a decoded checkpoint) starts it afresh.

use crate::embedding::EmbeddingTable;
use crate::error::{ModelsError, Result};
use crate::eta::SimHash;

/// A slot's cached code and the revision it was computed at (`stamp = revision + 1`; 0: never).
#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    code: u64,
    stamp: u64,
}

/// SimHash codes of a table's rows, recomputed only for rows that changed.
#[derive(Debug, Default)]
pub(super) struct CodeCache {
    /// Instance of the table the entries belong to (0: none yet).
    table: u64,
    entries: Vec<Entry>,
    /// Scratch: the slots to recompute, their values `[n, dim]` and their new codes.
    stale: Vec<u32>,
    stale_rows: Vec<f32>,
    fresh: Vec<u64>,
    /// Rows hashed afresh and rows served from the cache, since creation.
    pub(super) computed: u64,
    pub(super) reused: u64,
}

impl CodeCache {
    /// Writes the code of each of `slots` (slots of `table`, e.g. a fresh lookup's unique
    /// slots) into `out`, in order; `out` is cleared first.
    pub(super) fn codes(
        &mut self,
        table: &EmbeddingTable,
        slots: &[u32],
        simhash: &SimHash,
        out: &mut Vec<u64>,
    ) -> Result<()> {
        if self.table != table.instance() {
            self.table = table.instance();
            self.entries.clear();
        }
        let slot_count = table.slot_count();
        if self.entries.len() < slot_count {
            self.entries.resize(slot_count, Entry::default());
        }
        let revisions = table.revisions();
        self.stale.clear();
        self.stale_rows.clear();
        for &slot in slots {
            let s = slot as usize;
            if s >= slot_count {
                return Err(ModelsError::shape(
                    "ETA code slot < slot count",
                    slot_count,
                    s,
                ));
            }
            let stamp = u64::from(revisions[s]) + 1;
            let entry = &mut self.entries[s];
            if entry.stamp != stamp {
                entry.stamp = stamp;
                self.stale.push(slot);
                self.stale_rows.extend_from_slice(table.slot_row(slot));
            }
        }
        self.fresh.clear();
        self.fresh.resize(self.stale.len(), 0);
        simhash.encode(&self.stale_rows, &mut self.fresh)?;
        for (&slot, &code) in self.stale.iter().zip(&self.fresh) {
            self.entries[slot as usize].code = code;
        }
        self.computed += self.stale.len() as u64;
        self.reused += (slots.len() - self.stale.len()) as u64;
        out.clear();
        out.extend(slots.iter().map(|&slot| self.entries[slot as usize].code));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedding::{Day, EmbeddingTableConfig, Lookup};

    fn fresh_codes(table: &EmbeddingTable, lookup: &Lookup, simhash: &SimHash) -> Vec<u64> {
        let mut rows = Vec::new();
        table.gather(lookup, &mut rows).expect("fresh lookup");
        let mut codes = vec![0; lookup.unique_len()];
        simhash.encode(&rows, &mut codes).expect("dims match");
        codes
    }

    #[test]
    fn cached_codes_equal_fresh_codes_as_rows_train_evict_and_reload() {
        let mut config = EmbeddingTableConfig::new(8);
        config.max_rows = 40;
        let mut table = EmbeddingTable::new(config).expect("valid config");
        let simhash = SimHash::new(8, 32, 5).expect("valid");
        let (mut cache, mut lookup, mut out) = (CodeCache::default(), Lookup::new(), Vec::new());
        for step in 0..60u64 {
            // A sliding window over ids 0..50 and a 40-row table: admissions, evictions, slot
            // reuse, and rows seen again unchanged.
            let ids: Vec<u64> = (0..25).map(|i| (step * 3 + i) % 50).collect();
            table.lookup(&ids, Day(step as u32), true, &mut lookup);
            cache
                .codes(&table, lookup.unique_slots(), &simhash, &mut out)
                .expect("slots of a fresh lookup");
            assert_eq!(out, fresh_codes(&table, &lookup, &simhash), "step {step}");
            // Train every other unique row, so some codes change and some stay.
            let rows: Vec<u32> = (0..lookup.unique_len() as u32).step_by(2).collect();
            let grads: Vec<f32> = (0..rows.len() * 8)
                .map(|i| if i % 3 == 0 { 0.5 } else { -0.7 })
                .collect();
            table
                .apply_gradients_to(&lookup, &rows, &grads)
                .expect("valid gradients");
        }
        assert!(table.stats().evictions > 0, "the test must reuse slots");
        assert!(cache.reused > 0 && cache.computed > 0);
        // A decoded table is a new instance: the cache starts over and stays exact.
        let reloaded = EmbeddingTable::from_bytes(&table.to_bytes()).expect("round trip");
        let computed = cache.computed;
        reloaded.lookup_readonly(&(0..60).collect::<Vec<_>>(), &mut lookup);
        cache
            .codes(&reloaded, lookup.unique_slots(), &simhash, &mut out)
            .expect("slots of a fresh lookup");
        assert_eq!(out, fresh_codes(&reloaded, &lookup, &simhash));
        assert_eq!(cache.computed - computed, lookup.unique_len() as u64);
    }

    #[test]
    fn unchanged_rows_are_not_hashed_again() {
        let mut table = EmbeddingTable::new(EmbeddingTableConfig::new(4)).expect("valid config");
        let simhash = SimHash::new(4, 16, 9).expect("valid");
        let (mut cache, mut lookup, mut out) = (CodeCache::default(), Lookup::new(), Vec::new());
        table.lookup(&[1, 2, 3], Day(1), true, &mut lookup);
        cache
            .codes(&table, lookup.unique_slots(), &simhash, &mut out)
            .expect("fresh");
        assert_eq!((cache.computed, cache.reused), (3, 0));
        // Only the first row is updated: only it is hashed again.
        table
            .apply_gradients_to(&lookup, &[0], &[1.0, -1.0, 1.0, -1.0])
            .expect("valid");
        table.lookup(&[3, 2, 1], Day(1), true, &mut lookup);
        cache
            .codes(&table, lookup.unique_slots(), &simhash, &mut out)
            .expect("fresh");
        assert_eq!((cache.computed, cache.reused), (4, 2));
        assert_eq!(out, fresh_codes(&table, &lookup, &simhash));
    }
}
