//! The reusable result of one table lookup.

use std::collections::HashMap;

use super::DistinctIds;
use crate::rng::IdBuildHasher;

/// The rows one batch of ids resolved to, and the buffers that computed it.
///
/// Create one per table (or per trainer thread) and pass it to every
/// [`lookup`](super::EmbeddingTable::lookup); its buffers keep their capacity, so once they have
/// grown to the largest batch no call allocates.
///
/// After a lookup of `n` ids:
/// - [`unique_slots`](Self::unique_slots) holds the `u` distinct rows touched, in order of first
///   appearance; the shared default row appears once (as slot
///   [`DEFAULT_SLOT`](super::DEFAULT_SLOT)) if any id reads it;
/// - [`positions`](Self::positions) holds `n` indices into `unique_slots`, one per input id, so
///   the embedding of id `i` is row `positions[i]` of the `[u, dim]` matrix that
///   [`gather`](super::EmbeddingTable::gather) produces.
#[derive(Debug, Default, Clone)]
pub struct Lookup {
    /// Distinct rows, first-appearance order.
    pub(super) unique_slots: Vec<u32>,
    /// Per input id, index into `unique_slots`.
    pub(super) positions: Vec<u32>,
    /// Per distinct id, its index into `unique_slots`.
    pub(super) id_to_unique: Vec<u32>,
    /// Scratch: the de-duplication of a [`lookup`](super::EmbeddingTable::lookup)'s ids (a
    /// [`lookup_distinct`](super::EmbeddingTable::lookup_distinct) brings its own).
    pub(super) distinct: DistinctIds,
    /// Scratch: slot -> index into `unique_slots` (hashed tables, where ids collide).
    pub(super) slot_index: HashMap<u32, u32, IdBuildHasher>,
    /// Scratch: per distinct id, its slot as probed before the update loop
    /// (`NOT_PROBED` when absent); managed tables only.
    pub(super) probed: Vec<u32>,
    /// Index of the default row in `unique_slots`, if present.
    pub(super) default_position: Option<u32>,
    /// Instance number of the table that filled this lookup.
    pub(super) table: u64,
    /// Row-assignment generation of that table when the lookup was made.
    pub(super) generation: u64,
}

impl Lookup {
    /// An empty lookup; buffers grow on first use and are then reused.
    pub fn new() -> Self {
        Self::default()
    }

    /// The distinct rows touched, in order of first appearance (`u` entries).
    pub fn unique_slots(&self) -> &[u32] {
        &self.unique_slots
    }

    /// For each input id, the index of its row in [`unique_slots`](Self::unique_slots).
    pub fn positions(&self) -> &[u32] {
        &self.positions
    }

    /// Number of distinct rows (`u`).
    pub fn unique_len(&self) -> usize {
        self.unique_slots.len()
    }

    /// Number of input ids (`n`).
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether the lookup covered no ids.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Whether some id of the batch read the shared default row.
    pub fn reads_default(&self) -> bool {
        self.default_position.is_some()
    }

    /// Clears the results for a lookup of `n` input ids.
    pub(super) fn start(&mut self, n: usize, table: u64, generation: u64) {
        self.unique_slots.clear();
        self.positions.clear();
        self.positions.reserve(n);
        self.id_to_unique.clear();
        self.slot_index.clear();
        self.default_position = None;
        self.table = table;
        self.generation = generation;
    }

    /// Records that distinct id number `k` (in order) resolved to `slot`. `may_collide` says
    /// whether distinct ids can share a non-default slot (hashed tables).
    pub(super) fn resolve(&mut self, slot: u32, may_collide: bool) {
        let position = if slot == super::DEFAULT_SLOT {
            *self.default_position.get_or_insert_with(|| {
                self.unique_slots.push(slot);
                (self.unique_slots.len() - 1) as u32
            })
        } else if may_collide {
            let next = self.unique_slots.len() as u32;
            let p = *self.slot_index.entry(slot).or_insert(next);
            if p == next {
                self.unique_slots.push(slot);
            }
            p
        } else {
            self.unique_slots.push(slot);
            (self.unique_slots.len() - 1) as u32
        };
        self.id_to_unique.push(position);
    }

    /// Fills `positions` (row-level) from the distinct ids' `positions` once every distinct id
    /// is resolved.
    pub(super) fn finish(&mut self, id_positions: &[u32]) {
        let id_to_unique = &self.id_to_unique;
        self.positions
            .extend(id_positions.iter().map(|&p| id_to_unique[p as usize]));
    }
}
