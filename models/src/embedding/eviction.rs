//! Where a managed table's rows come from and go: slot allocation for admitted ids, the
//! recency list (least recently seen first) that picks the row to evict when the table is at
//! `max-rows`, and expiry of rows unseen for `expiry-days`.

use super::table::EmbeddingTable;
use super::{DEFAULT_SLOT, Day, TableKind};

impl EmbeddingTable {
    /// A slot for a new id: a freed one, a never-used one below the bound, or the least
    /// recently seen row's (evicted) unless that row serves the current batch.
    pub(super) fn take_slot(&mut self, batch_rows: usize) -> Option<u32> {
        if let Some(slot) = self.free.pop() {
            return Some(slot);
        }
        let slots = self.steps.len();
        if slots - 1 < self.config.max_rows {
            let dim = self.dim;
            self.values.resize((slots + 1) * dim, 0.0);
            self.m.resize((slots + 1) * dim, 0.0);
            self.v.resize((slots + 1) * dim, 0.0);
            self.steps.push(0);
            self.revision.push(0);
            self.frequency.push(0);
            self.last_seen.push(Day(0));
            self.ids.push(0);
            self.live.push(false);
            self.prev.push(DEFAULT_SLOT);
            self.next.push(DEFAULT_SLOT);
            return Some(slots as u32);
        }
        // Full. Rows of this batch were moved to the back of the recency list, so the front row
        // belongs to the batch only if all rows do.
        if batch_rows >= self.len {
            return None;
        }
        let victim = self.next[DEFAULT_SLOT as usize];
        self.release(victim);
        self.stats.evictions += 1;
        self.free.pop()
    }

    /// Removes the row in `slot` from the index and the recency list and frees the slot.
    pub(super) fn release(&mut self, slot: u32) {
        let s = slot as usize;
        self.index.remove(&self.ids[s]);
        self.unlink(slot);
        // Canonical state: a free slot has no links (as after decoding a checkpoint).
        self.prev[s] = DEFAULT_SLOT;
        self.next[s] = DEFAULT_SLOT;
        self.live[s] = false;
        self.free.push(slot);
        self.len -= 1;
        self.generation += 1;
    }

    pub(super) fn unlink(&mut self, slot: u32) {
        let (p, n) = (self.prev[slot as usize], self.next[slot as usize]);
        self.next[p as usize] = n;
        self.prev[n as usize] = p;
    }

    pub(super) fn push_back(&mut self, slot: u32) {
        let last = self.prev[DEFAULT_SLOT as usize];
        self.next[last as usize] = slot;
        self.prev[slot as usize] = last;
        self.next[slot as usize] = DEFAULT_SLOT;
        self.prev[DEFAULT_SLOT as usize] = slot;
    }

    pub(super) fn move_to_back(&mut self, slot: u32) {
        if self.prev[DEFAULT_SLOT as usize] != slot {
            self.unlink(slot);
            self.push_back(slot);
        }
    }

    /// Removes every row (and pending count) unseen for at least `expiry-days` days on `today`:
    /// a row last seen on day `d` expires when `today - d >= expiry-days` (with 30, a row seen
    /// on day 100 survives `expire(Day(129))` and goes at `expire(Day(130))`). Returns the
    /// number of rows removed; their slots are reused by later admissions. No-op for hashed
    /// tables and without `expiry-days`.
    ///
    /// Cost: O(rows removed) (they are the front of the recency list) plus O(pending ids).
    pub fn expire(&mut self, today: Day) -> usize {
        let (TableKind::Managed, Some(days)) = (self.config.kind, self.config.expiry_days) else {
            return 0;
        };
        let expired = |seen: Day| today.0.saturating_sub(seen.0) >= days;
        let mut removed = 0;
        loop {
            let front = self.next[DEFAULT_SLOT as usize];
            if front == DEFAULT_SLOT || !expired(self.last_seen[front as usize]) {
                break;
            }
            self.release(front);
            removed += 1;
        }
        self.pending.retain(|_, p| !expired(p.last_seen));
        self.stats.expirations += removed as u64;
        removed
    }
}
