//! The embedding table: row storage, admission, the recency list, lookups and the sparse update.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::config::{EmbeddingTableConfig, TableKind};
use super::{DEFAULT_SLOT, Day, DistinctIds, Lookup};
use crate::error::{ModelsError, Result};
use crate::rng::{IdBuildHasher, SplitMix64, mix64};

/// Domain tags of the seeded streams, so rows of managed and hashed tables differ.
const STREAM_MANAGED_ROW: u64 = 0x4D41_4E41_4745_4400; // "MANAGED"
const STREAM_HASHED_ROW: u64 = 0x4841_5348_4544_0000; // "HASHED"
/// Salt of the bucket hash of hashed tables.
const BUCKET_SALT: u64 = 0x6A09_E667_F3BC_C908;
/// A probed id that has no row (slot 0 is the default row, never an id's own).
const NOT_PROBED: u32 = u32::MAX;

static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

fn next_instance() -> u64 {
    NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed)
}

/// Counters since the table was created (kept across checkpoints).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EmbeddingStats {
    /// Ids looked up by [`EmbeddingTable::lookup`] (every occurrence, training and evaluation).
    pub ids_looked_up: u64,
    /// Of those, occurrences that read the shared default row.
    pub default_reads: u64,
    /// Ids given their own row.
    pub admissions: u64,
    /// Rows evicted (least recently seen) to make room for a new id.
    pub evictions: u64,
    /// Rows removed by [`EmbeddingTable::expire`].
    pub expirations: u64,
    /// Admissions refused because every row was in use by the same batch.
    pub admissions_refused_full: u64,
    /// New ids not counted towards admission because the pending set was full.
    pub pending_dropped: u64,
}

/// A pending (not yet admitted) id: how often it was seen, and when last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pending {
    pub(super) count: u64,
    pub(super) last_seen: Day,
}

/// One exported row, see [`EmbeddingTable::rows`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowView<'a> {
    /// The raw id (for hashed tables: the bucket number).
    pub id: u64,
    /// The embedding, `dim` values.
    pub vector: &'a [f32],
    /// Training lookups of this id (hashed: of this bucket) since its row was created.
    pub frequency: u64,
    /// Day of the last training lookup.
    pub last_seen: Day,
}

/// An embedding table keyed by raw u64 ids, holding its rows and their optimiser state outside
/// any autodiff graph. See the [module documentation](super) for the layout and the per-step
/// contract.
#[derive(Debug)]
pub struct EmbeddingTable {
    pub(super) config: EmbeddingTableConfig,
    pub(super) dim: usize,
    /// Instance number, to reject lookups made by another table.
    pub(super) instance: u64,
    /// Incremented whenever a row changes owner (eviction, expiry); lookups remember it.
    pub(super) generation: u64,
    /// The newest day any training lookup used; `last_seen` never goes backwards.
    pub(super) clock: Day,
    pub(super) stats: EmbeddingStats,
    // Per-slot state; slot 0 is the shared default row. `values`, `m` and `v` hold
    // `slots * dim` floats, row-major.
    pub(super) values: Vec<f32>,
    pub(super) m: Vec<f32>,
    pub(super) v: Vec<f32>,
    pub(super) steps: Vec<u32>,
    /// Per slot, a counter bumped (wrapping) whenever the row's values change: an optimiser
    /// step or a new owner's initialisation. Not persisted: a decoded table is a new instance.
    pub(super) revision: Vec<u32>,
    pub(super) frequency: Vec<u64>,
    pub(super) last_seen: Vec<Day>,
    pub(super) ids: Vec<u64>,
    pub(super) live: Vec<bool>,
    // Managed only: the recency list, doubly linked through `prev`/`next` with slot 0 (never a
    // member) as its sentinel: `next[0]` is the least recently seen row, `prev[0]` the most.
    pub(super) prev: Vec<u32>,
    pub(super) next: Vec<u32>,
    /// Adam's bias corrections for the first steps of a row (see `update`), precomputed
    /// from the optimiser config.
    pub(super) bias_corrections: Vec<(f32, f32)>,
    /// Free slots below the high-water mark, reused last-freed first.
    pub(super) free: Vec<u32>,
    /// id -> slot of admitted ids.
    pub(super) index: HashMap<u64, u32, IdBuildHasher>,
    /// Ids seen but not yet admitted.
    pub(super) pending: HashMap<u64, Pending, IdBuildHasher>,
    /// Number of admitted ids (managed) or buckets (hashed).
    pub(super) len: usize,
}

impl EmbeddingTable {
    /// An empty table (a hashed table gets all its buckets, initialised, at once).
    pub fn new(config: EmbeddingTableConfig) -> Result<Self> {
        config.validate()?;
        let dim = config.dim;
        let mut table = EmbeddingTable {
            dim,
            instance: next_instance(),
            generation: 0,
            clock: Day(0),
            stats: EmbeddingStats::default(),
            values: vec![0.0; dim],
            m: vec![0.0; dim],
            v: vec![0.0; dim],
            steps: vec![0],
            revision: vec![0],
            frequency: vec![0],
            last_seen: vec![Day(0)],
            ids: vec![0],
            live: vec![false],
            prev: Vec::new(),
            next: Vec::new(),
            free: Vec::new(),
            bias_corrections: super::update::bias_correction_table(&config.optimizer),
            index: HashMap::default(),
            pending: HashMap::default(),
            len: 0,
            config,
        };
        match table.config.kind {
            TableKind::Managed => {
                table.prev.push(DEFAULT_SLOT);
                table.next.push(DEFAULT_SLOT);
            }
            TableKind::Hashed { buckets } => {
                let slots = buckets + 1;
                table.values.resize(slots * dim, 0.0);
                table.m.resize(slots * dim, 0.0);
                table.v.resize(slots * dim, 0.0);
                table.steps.resize(slots, 0);
                table.revision.resize(slots, 0);
                table.frequency.resize(slots, 0);
                table.last_seen.resize(slots, Day(0));
                table.ids.extend(0..buckets as u64);
                table.live.resize(slots, true);
                let (seed, std) = (table.config.seed, table.config.init_std);
                for (bucket, row) in table.values.chunks_exact_mut(dim).skip(1).enumerate() {
                    init_row(
                        SplitMix64::keyed(seed, STREAM_HASHED_ROW, bucket as u64),
                        std,
                        row,
                    );
                }
                table.len = buckets;
            }
        }
        Ok(table)
    }

    /// The configuration the table was built with.
    pub fn config(&self) -> &EmbeddingTableConfig {
        &self.config
    }

    /// Width of every row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of ids holding a row (hashed: the number of buckets). The default row is not
    /// counted.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no id holds a row.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most id rows the table will ever hold (`max-rows`, or `buckets`).
    pub fn capacity(&self) -> usize {
        self.config.id_capacity()
    }

    /// Counters since creation.
    pub fn stats(&self) -> EmbeddingStats {
        self.stats
    }

    /// Ids counted towards admission but not admitted yet.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The newest day a training lookup used (the table's clock).
    pub fn clock(&self) -> Day {
        self.clock
    }

    /// The shared default row, read by ids without a row of their own.
    pub fn default_row(&self) -> &[f32] {
        &self.values[..self.dim]
    }

    /// The row of `id`, if it has one (hashed: the row of its bucket). Does not count as a
    /// lookup.
    pub fn row(&self, id: u64) -> Option<&[f32]> {
        self.slot_of(id)
            .map(|s| &self.values[s as usize * self.dim..(s as usize + 1) * self.dim])
    }

    /// This table's instance number: unique in the process, new for every table built or
    /// decoded. Values cached per slot (see [`revisions`](Self::revisions)) are valid only
    /// for the instance that produced them.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// Number of slots, the default row's included: every slot a [`Lookup`] can name is
    /// below it.
    pub fn slot_count(&self) -> usize {
        self.steps.len()
    }

    /// Per slot, a revision counter that changes (wrapping) whenever the row's values change:
    /// an optimiser step on the row, or its initialisation for a new owner. A value derived
    /// from a row (a SimHash code, say) and stored with the row's revision stays exact while
    /// the revision is unchanged; a cache keyed by slot must also check
    /// [`instance`](Self::instance).
    pub fn revisions(&self) -> &[u32] {
        &self.revision
    }

    /// The values of `slot` (a slot from a [`Lookup`] of this table). Panics if `slot` is not
    /// below [`slot_count`](Self::slot_count).
    pub fn slot_row(&self, slot: u32) -> &[f32] {
        &self.values[self.row_range(slot)]
    }

    /// Estimated bytes one id row costs in a managed table:
    ///
    /// `3 * 4 * dim` (values, Adam first and second moments, f32) + 4 (Adam step) + 4
    /// (revision) + 8 (frequency) + 4 (last seen) + 8 (id) + 1 (live flag) + 8 (recency list
    /// links) + 20 (the id -> slot hash-map entry: 16 bytes of `(u64, u32)` plus one control
    /// byte, at the map's 7/8 maximum load) = `12 * dim + 57`; for `dim = 16`, 249 bytes, so
    /// 10 million rows take about 2.5 GB. Hashed tables have no hash-map entry or links:
    /// `12 * dim + 29`. Ids
    /// waiting for admission cost [`Self::PENDING_BYTES`] each on top.
    pub fn memory_bytes_per_row(&self) -> usize {
        let per_row = 3 * std::mem::size_of::<f32>() * self.dim
            + std::mem::size_of::<u32>() // step
            + std::mem::size_of::<u32>() // revision
            + std::mem::size_of::<u64>() // frequency
            + std::mem::size_of::<Day>() // last seen
            + std::mem::size_of::<u64>() // id
            + std::mem::size_of::<bool>(); // live
        match self.config.kind {
            TableKind::Managed => per_row + 2 * std::mem::size_of::<u32>() + Self::INDEX_BYTES,
            TableKind::Hashed { .. } => per_row,
        }
    }

    /// Estimated bytes of one hash-map entry id -> slot (see [`Self::memory_bytes_per_row`]).
    pub const INDEX_BYTES: usize = 20;
    /// Estimated bytes of one pending id: `(u64, (u64, u32))` = 24 bytes padded, plus a control
    /// byte, at 7/8 load: 29.
    pub const PENDING_BYTES: usize = 29;

    /// Upper bound of the table's memory in bytes once full: `(capacity + 1)` rows (the default
    /// row included) plus a full pending set.
    pub fn memory_bytes_bound(&self) -> usize {
        let pending = match self.config.kind {
            TableKind::Managed if self.config.admission_threshold > 1 => {
                self.config.max_pending * Self::PENDING_BYTES
            }
            _ => 0,
        };
        (self.capacity() + 1) * self.memory_bytes_per_row() + pending
    }

    fn slot_of(&self, id: u64) -> Option<u32> {
        match self.config.kind {
            TableKind::Managed => self.index.get(&id).copied(),
            TableKind::Hashed { buckets } => Some(bucket_slot(id, buckets)),
        }
    }

    fn row_range(&self, slot: u32) -> std::ops::Range<usize> {
        slot as usize * self.dim..(slot as usize + 1) * self.dim
    }

    /// Resolves a batch of ids for a training (`admit = true`) or evaluation (`admit = false`)
    /// step, filling `out` (see [`Lookup`]).
    ///
    /// Training: each occurrence adds one to its row's frequency and sets its last-seen day to
    /// `now`; an id without a row adds to its pending count and is admitted (given a row,
    /// seeded from `(seed, id)`) once the count reaches `admission-threshold`, evicting the
    /// least recently seen row not used by this batch when the table is full. Ids that stay
    /// below the threshold, or cannot be admitted, read the default row. `now` earlier than the
    /// table's [`clock`](Self::clock) counts as the clock (recency never goes backwards).
    ///
    /// Evaluation: ids without a row read the default row and nothing but the
    /// `ids_looked_up`/`default_reads` counters changes.
    ///
    /// Does not allocate once `out` and the table have grown to their working sizes.
    pub fn lookup(&mut self, ids: &[u64], now: Day, admit: bool, out: &mut Lookup) {
        let mut distinct = std::mem::take(&mut out.distinct);
        distinct.clear();
        distinct.extend(ids);
        self.lookup_distinct(&distinct, now, admit, out);
        out.distinct = distinct;
    }

    /// [`lookup`](Self::lookup) of ids de-duplicated ahead (e.g. on another thread while the
    /// previous training step ran): the same result as `lookup` of the ids `ids` was built from.
    pub fn lookup_distinct(&mut self, ids: &DistinctIds, now: Day, admit: bool, out: &mut Lookup) {
        out.start(ids.len(), self.instance, self.generation);
        self.stats.ids_looked_up += ids.len() as u64;
        let now = if admit {
            self.clock = self.clock.max(now);
            self.clock
        } else {
            now
        };
        let collide = matches!(self.config.kind, TableKind::Hashed { .. });
        // Managed tables: probe the index for every distinct id first. The probes are
        // independent reads, so the memory system serves many at once instead of one per
        // dependent step of the update loop below. A probed slot stays valid while no row
        // changes owner (`generation` unchanged); after an eviction the remaining ids are
        // probed again, so the result is exactly that of probing in the loop.
        out.probed.clear();
        if matches!(self.config.kind, TableKind::Managed) {
            let index = &self.index;
            out.probed.extend(
                ids.ids()
                    .iter()
                    .map(|id| index.get(id).copied().unwrap_or(NOT_PROBED)),
            );
        }
        let probed_generation = self.generation;
        // Rows of this batch resolved so far; they form the most-recent end of the recency list.
        let mut batch_rows = 0usize;
        for (k, (&id, &count)) in ids.ids().iter().zip(ids.counts()).enumerate() {
            let slot = match self.config.kind {
                TableKind::Managed => match out.probed[k] {
                    slot if slot != NOT_PROBED && self.generation == probed_generation => {
                        self.touch(slot, count, now, admit, &mut batch_rows);
                        slot
                    }
                    _ => self.resolve_managed(id, count, now, admit, &mut batch_rows),
                },
                TableKind::Hashed { buckets } => {
                    let slot = bucket_slot(id, buckets);
                    if admit {
                        let s = slot as usize;
                        self.frequency[s] += u64::from(count);
                        self.last_seen[s] = now;
                    }
                    slot
                }
            };
            if slot == DEFAULT_SLOT {
                self.stats.default_reads += u64::from(count);
            }
            out.resolve(slot, collide);
        }
        // The lookup is valid for the generation reached after its own evictions.
        out.generation = self.generation;
        out.finish(ids.positions());
    }

    /// Resolves ids like an evaluation [`lookup`](Self::lookup) without changing anything (not
    /// even the counters): for inference and historical-embedding reads.
    pub fn lookup_readonly(&self, ids: &[u64], out: &mut Lookup) {
        let mut distinct = std::mem::take(&mut out.distinct);
        distinct.clear();
        distinct.extend(ids);
        out.start(distinct.len(), self.instance, self.generation);
        let collide = matches!(self.config.kind, TableKind::Hashed { .. });
        for &id in distinct.ids() {
            let slot = self.slot_of(id).unwrap_or(DEFAULT_SLOT);
            out.resolve(slot, collide);
        }
        out.finish(distinct.positions());
        out.distinct = distinct;
    }

    /// A training lookup's update of an admitted row read `count` times: frequency, last
    /// seen, most recent in the recency list. Evaluation lookups change nothing.
    fn touch(&mut self, slot: u32, count: u32, now: Day, admit: bool, batch_rows: &mut usize) {
        if admit {
            self.frequency[slot as usize] += u64::from(count);
            self.last_seen[slot as usize] = now;
            self.move_to_back(slot);
            *batch_rows += 1;
        }
    }

    fn resolve_managed(
        &mut self,
        id: u64,
        count: u32,
        now: Day,
        admit: bool,
        batch_rows: &mut usize,
    ) -> u32 {
        if let Some(&slot) = self.index.get(&id) {
            self.touch(slot, count, now, admit, batch_rows);
            return slot;
        }
        if !admit {
            return DEFAULT_SLOT;
        }
        let threshold = u64::from(self.config.admission_threshold);
        let seen = self.pending.get(&id).map_or(0, |p| p.count) + u64::from(count);
        if seen < threshold {
            self.record_pending(id, seen, now);
            return DEFAULT_SLOT;
        }
        let Some(slot) = self.take_slot(*batch_rows) else {
            // Every row serves this batch: keep counting, retry on a later batch.
            self.stats.admissions_refused_full += 1;
            self.record_pending(id, seen, now);
            return DEFAULT_SLOT;
        };
        self.pending.remove(&id);
        let s = slot as usize;
        let range = self.row_range(slot);
        init_row(
            SplitMix64::keyed(self.config.seed, STREAM_MANAGED_ROW, id),
            self.config.init_std,
            &mut self.values[range.clone()],
        );
        self.m[range.clone()].fill(0.0);
        self.v[range].fill(0.0);
        self.steps[s] = 0;
        self.revision[s] = self.revision[s].wrapping_add(1);
        self.frequency[s] = seen;
        self.last_seen[s] = now;
        self.ids[s] = id;
        self.live[s] = true;
        self.index.insert(id, slot);
        self.push_back(slot);
        self.len += 1;
        self.stats.admissions += 1;
        *batch_rows += 1;
        slot
    }

    fn record_pending(&mut self, id: u64, count: u64, now: Day) {
        if let Some(p) = self.pending.get_mut(&id) {
            p.count = count;
            p.last_seen = now;
        } else if self.pending.len() < self.config.max_pending {
            self.pending.insert(
                id,
                Pending {
                    count,
                    last_seen: now,
                },
            );
        } else {
            self.stats.pending_dropped += 1;
        }
    }

    /// Copies the rows of `lookup` into `out` as a `[unique, dim]` row-major matrix (`out` is
    /// cleared first and keeps its capacity).
    pub fn gather(&self, lookup: &Lookup, out: &mut Vec<f32>) -> Result<()> {
        self.check_lookup(lookup)?;
        out.clear();
        out.reserve(lookup.unique_slots.len() * self.dim);
        for &slot in &lookup.unique_slots {
            out.extend_from_slice(&self.values[self.row_range(slot)]);
        }
        Ok(())
    }

    /// Copies some of `lookup`'s rows into `out` as a `[rows.len(), dim]` row-major matrix:
    /// `rows` are indices into [`Lookup::unique_slots`] (`out` is cleared first and keeps its
    /// capacity). For a step that reads only part of what it looked up (ETA's top-k of the
    /// long behaviours).
    pub fn gather_rows(&self, lookup: &Lookup, rows: &[u32], out: &mut Vec<f32>) -> Result<()> {
        self.check_lookup(lookup)?;
        let unique = lookup.unique_slots.len();
        out.clear();
        out.reserve(rows.len() * self.dim);
        for &r in rows {
            let slot = *lookup.unique_slots.get(r as usize).ok_or_else(|| {
                ModelsError::shape("gathered row index < unique", unique, r as usize)
            })?;
            out.extend_from_slice(&self.values[self.row_range(slot)]);
        }
        Ok(())
    }

    pub(super) fn check_lookup(&self, lookup: &Lookup) -> Result<()> {
        if lookup.table != self.instance || lookup.generation != self.generation {
            return Err(ModelsError::StaleLookup {
                lookup_table: lookup.table,
                lookup_generation: lookup.generation,
                table: self.instance,
                table_generation: self.generation,
            });
        }
        Ok(())
    }

    /// Every id row for publishing a snapshot, in slot order (deterministic for a given history).
    /// The default row is not included (see [`default_row`](Self::default_row)).
    pub fn rows(&self) -> impl Iterator<Item = RowView<'_>> + '_ {
        (1..self.steps.len())
            .filter(|&s| self.live[s])
            .map(move |s| RowView {
                id: self.ids[s],
                vector: &self.values[s * self.dim..(s + 1) * self.dim],
                frequency: self.frequency[s],
                last_seen: self.last_seen[s],
            })
    }
}

/// Slot of `id` in a hashed table of `buckets` rows (slot 0 is the default row).
#[inline]
fn bucket_slot(id: u64, buckets: usize) -> u32 {
    (1 + mix64(id ^ BUCKET_SALT) % buckets as u64) as u32
}

/// Fills `row` with normal samples of standard deviation `std`.
fn init_row(mut rng: SplitMix64, std: f32, row: &mut [f32]) {
    rng.fill_normal(row, std);
}
