//! Embedding tables keyed by raw u64 ids, held outside burn's autodiff.
//!
//! A table owns its rows and their optimiser state; the trainer borrows rows per step:
//!
//! 1. [`EmbeddingTable::lookup`] resolves the batch's ids (all features that share the table in
//!    ONE call, e.g. the target item and the behaviour sequence together) into a [`Lookup`]: the
//!    `u` distinct rows touched and, per id, its index among them. Training lookups count
//!    frequencies, move rows to the recent end and admit new ids.
//! 2. [`EmbeddingTable::gather`] copies those rows into a `[u, dim]` row-major buffer, which the
//!    trainer turns into a leaf tensor and indexes with the positions.
//! 3. After backward, [`EmbeddingTable::apply_gradients`] takes the `[u, dim]` gradient of that
//!    leaf and runs one sparse lazy-Adam step on exactly those rows.
//!
//! A [`Lookup`] stays valid until the table reassigns a row (an eviction or an expiry); using it
//! afterwards, or with another table, is refused with
//! [`ModelsError::StaleLookup`](crate::ModelsError::StaleLookup), so a gradient can never land on
//! a row that changed owner.
//!
//! # Kinds
//! - **Managed** (collision-free, like Monolith's or TorchRec's managed-collision tables): an id
//!   reads the shared default row until it has been seen `admission-threshold` times, then owns a
//!   row initialised from `(seed, id)` alone. Rows unseen for `expiry-days` go on
//!   [`EmbeddingTable::expire`]; at `max-rows` the least recently seen row is evicted for a new
//!   id. The table never holds more than `max-rows` id rows.
//! - **Hashed**: `buckets` fixed rows, `bucket = hash(id) % buckets`, for comparison.
//!
//! # Layout
//! Structure of arrays indexed by slot; slot 0 ([`DEFAULT_SLOT`]) is the shared default row,
//! ids live in slots `1..`. Values, Adam first moments and Adam second moments are three
//! contiguous `Vec<f32>` of `slots * dim` (row `s` at `s * dim..(s + 1) * dim`); per-slot
//! vectors hold the id, a live flag, the frequency (u64), the last-seen [`Day`] (u32) and the
//! Adam step (u32, lazy Adam: a row's bias correction only advances when the row is updated)
//! and a revision counter (u32, changes whenever the row's values do, so derived per-row values
//! such as ETA's SimHash codes can be cached).
//! Storage grows to the bound as ids are admitted, never beyond; freed slots (evicted or
//! expired) go on a free stack and are reused before the storage grows again.
//!
//! # Recency and eviction
//! Managed rows sit on a doubly linked recency list threaded through two `u32` per slot (slot 0
//! is the sentinel). A training lookup moves the row to the back, admission appends, so the
//! front is the least recently used row and - because the table's clock never goes backwards -
//! the list is ordered by last-seen day. Eviction takes the front, expiry pops from the front
//! while rows are old enough: O(1) per admission and O(expired) per expiry, no allocation, no
//! scan. The front row is only in the current batch when all rows are, in which case the new
//! id reads the default row (counted as `admissions_refused_full`).
//!
//! Ids below the admission threshold are counted exactly in a pending map bounded by
//! `max-pending`; expiry prunes it with the same rule as rows.
//!
//! # Memory
//! About `12 * dim + 57` bytes per managed row (see [`EmbeddingTable::memory_bytes_per_row`]);
//! [`EmbeddingTable::memory_bytes_bound`] gives the bound of a full table.
//!
//! # Checkpoints
//! [`EmbeddingTable::to_bytes`] / [`EmbeddingTable::from_bytes`]: the format is documented in
//! the `codec` source file (magic, version, little-endian sections, checksum); a round trip is
//! bitwise exact.

mod codec;
mod config;
mod distinct;
mod eviction;
mod lookup;
mod snapshot;
mod table;
mod update;

#[cfg(test)]
mod tests;

use std::fmt;

use ctrflow_schemas::EventDate;
use serde::{Deserialize, Serialize};

pub use codec::{CHECKPOINT_MAGIC, CHECKPOINT_VERSION};
pub use config::{EmbeddingTableConfig, MAX_DIM, MAX_ROWS, SparseAdamConfig, TableKind};
pub use distinct::DistinctIds;
pub use lookup::Lookup;
pub use snapshot::SnapshotTable;
pub use table::{EmbeddingStats, EmbeddingTable, RowView};

/// The slot of the shared default row in [`Lookup::unique_slots`].
pub const DEFAULT_SLOT: u32 = 0;

/// A UTC day as days since 1970-01-01: the unit of `last_seen` and of expiry. The trainer
/// passes the event date of the data it trains on (not the wall clock), so a backfill ages
/// rows as the live run would have.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Day(pub u32);

impl Day {
    /// The day of an [`EventDate`]; `None` before 1970 or after the year ~11 million.
    pub fn from_event_date(date: EventDate) -> Option<Day> {
        u32::try_from(date.start_ms().div_euclid(86_400_000))
            .ok()
            .map(Day)
    }

    /// The [`EventDate`] of this day.
    pub fn event_date(self) -> Option<EventDate> {
        EventDate::from_timestamp_ms(i64::from(self.0) * 86_400_000)
    }
}

impl From<u32> for Day {
    fn from(days: u32) -> Self {
        Day(days)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.event_date() {
            Some(d) => write!(f, "{d}"),
            None => write!(f, "day {}", self.0),
        }
    }
}
