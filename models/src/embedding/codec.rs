//! Exact binary checkpoints of an [`EmbeddingTable`].
//!
//! Format version 1, every number little-endian, no padding:
//!
//! | field | encoding |
//! |---|---|
//! | magic | the 8 bytes `CTRFEMB\0` |
//! | format version | u32 = 1 |
//! | config | dim u32; kind u8 (0 managed, 1 hashed); buckets u64 (0 when managed); admission-threshold u32; expiry-days u32 (0 = none); max-rows u64; max-pending u64; init-std f32; seed u64; learning-rate, beta1, beta2, eps, weight-decay f32 |
//! | state | clock u32; generation u64; the 7 counters of [`EmbeddingStats`](super::EmbeddingStats) u64 in declaration order |
//! | slots | count `S` u64 (the default row included) |
//! | per slot | ids `S` x u64; live `S` x u8 (0/1); frequency `S` x u64; last-seen `S` x u32; Adam step `S` x u32 |
//! | rows | values, first moments, second moments: each `S * dim` x f32 (IEEE bits, row-major) |
//! | recency | count u64, then that many u32 slots, least recently seen first |
//! | free | count u64, then that many u32 slots, in stack order (the last is reused first) |
//! | pending | count u64, then per id (ascending): id u64, count u64, last-seen u32 |
//! | checksum | u64 FNV-1a of every preceding byte |
//!
//! Floats are stored as their bit patterns, so a round trip is bitwise exact, and encoding is
//! deterministic (`to_bytes(from_bytes(b)) == b`). Decoding checks the magic, the version, the
//! checksum, every length against the remaining input before allocating, and the structural
//! invariants (the recency list and the free list partition the slots, ids are unique, recency
//! is ordered by last-seen day); any failure is an error, never a panic.

use std::collections::HashMap;

use super::config::{EmbeddingTableConfig, SparseAdamConfig, TableKind};
use super::table::{EmbeddingStats, EmbeddingTable, Pending};
use super::{DEFAULT_SLOT, Day};
use crate::error::{ModelsError, Result};

/// First bytes of every embedding checkpoint.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"CTRFEMB\0";
/// The checkpoint format version this build writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, x: u8) {
        self.0.push(x);
    }
    fn u32(&mut self, x: u32) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn u64(&mut self, x: u64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn f32(&mut self, x: f32) {
        self.u32(x.to_bits());
    }
    fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(ModelsError::CheckpointTruncated {
                what,
                needed: n,
                remaining: self.bytes.len(),
            });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn f32(&mut self, what: &'static str) -> Result<f32> {
        Ok(f32::from_bits(self.u32(what)?))
    }
    /// A count of items of `item_bytes` each, checked against the remaining input.
    fn count(&mut self, item_bytes: usize, what: &'static str) -> Result<usize> {
        let n = self.u64(what)?;
        let n = usize::try_from(n).map_err(|_| corrupt(what, format!("count {n} is too large")))?;
        self.check_room(n, item_bytes, what)?;
        Ok(n)
    }
    fn check_room(&self, n: usize, item_bytes: usize, what: &'static str) -> Result<()> {
        let needed = n
            .checked_mul(item_bytes)
            .ok_or_else(|| corrupt(what, format!("count {n} is too large")))?;
        if needed > self.bytes.len() {
            return Err(ModelsError::CheckpointTruncated {
                what,
                needed,
                remaining: self.bytes.len(),
            });
        }
        Ok(())
    }
    fn vec<T>(
        &mut self,
        n: usize,
        item_bytes: usize,
        what: &'static str,
        mut read: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.check_room(n, item_bytes, what)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(read(self)?);
        }
        Ok(out)
    }
}

fn corrupt(what: &'static str, reason: impl Into<String>) -> ModelsError {
    ModelsError::CheckpointCorrupt {
        what,
        reason: reason.into(),
    }
}

fn stats_fields(s: &EmbeddingStats) -> [u64; 7] {
    [
        s.ids_looked_up,
        s.default_reads,
        s.admissions,
        s.evictions,
        s.expirations,
        s.admissions_refused_full,
        s.pending_dropped,
    ]
}

impl EmbeddingTable {
    /// Bytes of [`to_bytes`](Self::to_bytes) without the variable-length sections.
    fn encoded_len_hint(&self) -> usize {
        let slots = self.steps.len();
        256 + slots * (8 + 1 + 8 + 4 + 4 + 3 * 4 * self.dim)
            + 4 * (self.len + self.free.len())
            + 20 * self.pending.len()
    }

    /// The whole table (config, ids, values, optimiser state, recency order, pending counts,
    /// counters) in the checkpoint format of this module. Deterministic.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(self.encoded_len_hint()));
        w.0.extend_from_slice(&CHECKPOINT_MAGIC);
        w.u32(CHECKPOINT_VERSION);
        // Config.
        let c = &self.config;
        w.u32(c.dim as u32);
        match c.kind {
            TableKind::Managed => {
                w.u8(0);
                w.u64(0);
            }
            TableKind::Hashed { buckets } => {
                w.u8(1);
                w.len(buckets);
            }
        }
        w.u32(c.admission_threshold);
        w.u32(c.expiry_days.unwrap_or(0));
        w.len(c.max_rows);
        w.len(c.max_pending);
        w.f32(c.init_std);
        w.u64(c.seed);
        let o = &c.optimizer;
        for x in [o.learning_rate, o.beta1, o.beta2, o.eps, o.weight_decay] {
            w.f32(x);
        }
        // State.
        w.u32(self.clock.0);
        w.u64(self.generation);
        for x in stats_fields(&self.stats) {
            w.u64(x);
        }
        // Slots.
        w.len(self.steps.len());
        self.ids.iter().for_each(|&x| w.u64(x));
        self.live.iter().for_each(|&x| w.u8(u8::from(x)));
        self.frequency.iter().for_each(|&x| w.u64(x));
        self.last_seen.iter().for_each(|&x| w.u32(x.0));
        self.steps.iter().for_each(|&x| w.u32(x));
        for rows in [&self.values, &self.m, &self.v] {
            rows.iter().for_each(|&x| w.f32(x));
        }
        // Recency list, front to back.
        if matches!(c.kind, TableKind::Managed) {
            w.len(self.len);
            let mut s = self.next[DEFAULT_SLOT as usize];
            while s != DEFAULT_SLOT {
                w.u32(s);
                s = self.next[s as usize];
            }
        } else {
            w.len(0);
        }
        w.len(self.free.len());
        self.free.iter().for_each(|&x| w.u32(x));
        let mut pending: Vec<(u64, Pending)> = self.pending.iter().map(|(&k, &p)| (k, p)).collect();
        pending.sort_unstable_by_key(|&(id, _)| id);
        w.len(pending.len());
        for (id, p) in pending {
            w.u64(id);
            w.u64(p.count);
            w.u32(p.last_seen.0);
        }
        let checksum = fnv1a(&w.0);
        w.u64(checksum);
        w.0
    }

    /// Rebuilds a table from [`to_bytes`](Self::to_bytes) output, bitwise identical in state
    /// (it gets a new instance number, so lookups made against the original are refused).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { bytes };
        if r.array::<8>("magic")? != CHECKPOINT_MAGIC {
            return Err(corrupt("magic", "not an embedding checkpoint"));
        }
        let version = r.u32("format version")?;
        if version != CHECKPOINT_VERSION {
            return Err(ModelsError::UnsupportedCheckpointVersion {
                found: version,
                supported: CHECKPOINT_VERSION,
            });
        }
        if bytes.len() < 20 {
            return Err(ModelsError::CheckpointTruncated {
                what: "checksum",
                needed: 8,
                remaining: bytes.len() - 12,
            });
        }
        let (body, tail) = bytes.split_at(bytes.len() - 8);
        let mut sum = [0u8; 8];
        sum.copy_from_slice(tail);
        let (stored, computed) = (u64::from_le_bytes(sum), fnv1a(body));
        if stored != computed {
            return Err(corrupt(
                "checksum",
                format!("stored {stored:#018x}, computed {computed:#018x}"),
            ));
        }
        r.bytes = &body[12..];
        let table = decode_body(&mut r)?;
        if !r.bytes.is_empty() {
            return Err(corrupt(
                "end",
                format!("{} unexpected bytes before the checksum", r.bytes.len()),
            ));
        }
        Ok(table)
    }
}

fn decode_body(r: &mut Reader<'_>) -> Result<EmbeddingTable> {
    let dim = r.u32("config dim")? as usize;
    let kind = match r.u8("config kind")? {
        0 => {
            r.u64("config buckets")?;
            TableKind::Managed
        }
        1 => TableKind::Hashed {
            buckets: to_usize(r.u64("config buckets")?, "config buckets")?,
        },
        k => return Err(corrupt("config kind", format!("unknown kind {k}"))),
    };
    let admission_threshold = r.u32("config admission-threshold")?;
    let expiry_days = Some(r.u32("config expiry-days")?).filter(|&d| d != 0);
    let max_rows = to_usize(r.u64("config max-rows")?, "config max-rows")?;
    let max_pending = to_usize(r.u64("config max-pending")?, "config max-pending")?;
    let init_std = r.f32("config init-std")?;
    let seed = r.u64("config seed")?;
    let optimizer = SparseAdamConfig {
        learning_rate: r.f32("config learning-rate")?,
        beta1: r.f32("config beta1")?,
        beta2: r.f32("config beta2")?,
        eps: r.f32("config eps")?,
        weight_decay: r.f32("config weight-decay")?,
    };
    let config = EmbeddingTableConfig {
        dim,
        kind,
        admission_threshold,
        expiry_days,
        max_rows,
        max_pending,
        init_std,
        seed,
        optimizer,
    };
    config
        .validate()
        .map_err(|e| corrupt("config", e.to_string()))?;
    if let TableKind::Hashed { buckets } = kind {
        // Hashed tables allocate every bucket up front: refuse sizes the input cannot hold.
        r.check_room(buckets + 1, 8 + 1 + 8 + 4 + 4 + 12 * dim, "slots")?;
    }
    let mut table = EmbeddingTable::new(config)?;

    table.clock = Day(r.u32("clock")?);
    table.generation = r.u64("generation")?;
    let mut stats = [0u64; 7];
    for x in &mut stats {
        *x = r.u64("stats")?;
    }
    table.stats = EmbeddingStats {
        ids_looked_up: stats[0],
        default_reads: stats[1],
        admissions: stats[2],
        evictions: stats[3],
        expirations: stats[4],
        admissions_refused_full: stats[5],
        pending_dropped: stats[6],
    };

    let slots = r.count(8 + 1 + 8 + 4 + 4, "slot count")?;
    let expected_slots_ok = match kind {
        TableKind::Managed => (1..=max_rows + 1).contains(&slots),
        TableKind::Hashed { buckets } => slots == buckets + 1,
    };
    if !expected_slots_ok {
        return Err(corrupt(
            "slot count",
            format!("{slots} slots do not fit the config"),
        ));
    }
    let floats = slots
        .checked_mul(dim)
        .ok_or_else(|| corrupt("slot count", "too large"))?;
    table.ids = r.vec(slots, 8, "ids", |r| r.u64("ids"))?;
    table.live = r.vec(slots, 1, "live flags", |r| match r.u8("live flags")? {
        0 => Ok(false),
        1 => Ok(true),
        x => Err(corrupt(
            "live flags",
            format!("flag {x} is neither 0 nor 1"),
        )),
    })?;
    table.frequency = r.vec(slots, 8, "frequencies", |r| r.u64("frequencies"))?;
    table.last_seen = r.vec(slots, 4, "last-seen days", |r| {
        Ok(Day(r.u32("last-seen days")?))
    })?;
    table.steps = r.vec(slots, 4, "adam steps", |r| r.u32("adam steps"))?;
    table.revision = vec![0; slots];
    table.values = r.vec(floats, 4, "values", |r| r.f32("values"))?;
    table.m = r.vec(floats, 4, "first moments", |r| r.f32("first moments"))?;
    table.v = r.vec(floats, 4, "second moments", |r| r.f32("second moments"))?;

    let recency_len = r.count(4, "recency list")?;
    let recency = r.vec(recency_len, 4, "recency list", |r| r.u32("recency list"))?;
    let free_len = r.count(4, "free list")?;
    let free = r.vec(free_len, 4, "free list", |r| r.u32("free list"))?;
    let pending_len = r.count(20, "pending ids")?;
    let pending = r.vec(pending_len, 20, "pending ids", |r| {
        Ok((
            r.u64("pending ids")?,
            Pending {
                count: r.u64("pending ids")?,
                last_seen: Day(r.u32("pending ids")?),
            },
        ))
    })?;

    if table.live[DEFAULT_SLOT as usize] {
        return Err(corrupt("live flags", "the default row is marked live"));
    }
    let live_count = table.live.iter().filter(|&&l| l).count();
    match kind {
        TableKind::Hashed { buckets } => {
            if live_count != buckets || recency_len != 0 || free_len != 0 || pending_len != 0 {
                return Err(corrupt(
                    "hashed state",
                    "buckets must all be live, with no recency, free or pending entries",
                ));
            }
            for (bucket, &id) in table.ids.iter().skip(1).enumerate() {
                if id != bucket as u64 {
                    return Err(corrupt("ids", format!("bucket {bucket} holds id {id}")));
                }
            }
            table.len = buckets;
        }
        TableKind::Managed => {
            rebuild_managed(&mut table, live_count, &recency, free, pending)?;
        }
    }
    Ok(table)
}

fn rebuild_managed(
    table: &mut EmbeddingTable,
    live_count: usize,
    recency: &[u32],
    free: Vec<u32>,
    pending: Vec<(u64, Pending)>,
) -> Result<()> {
    let slots = table.steps.len();
    if recency.len() != live_count {
        return Err(corrupt(
            "recency list",
            format!("{} entries for {live_count} live rows", recency.len()),
        ));
    }
    if free.len() != slots - 1 - live_count {
        return Err(corrupt(
            "free list",
            format!(
                "{} entries for {} free slots",
                free.len(),
                slots - 1 - live_count
            ),
        ));
    }
    table.prev = vec![DEFAULT_SLOT; slots];
    table.next = vec![DEFAULT_SLOT; slots];
    table.index = HashMap::with_capacity_and_hasher(live_count, Default::default());
    let mut listed = vec![false; slots];
    let mut previous_day = Day(0);
    for &slot in recency {
        let s = slot as usize;
        if s == 0 || s >= slots || !table.live[s] || listed[s] {
            return Err(corrupt(
                "recency list",
                format!("slot {slot} is out of range, not live or listed twice"),
            ));
        }
        listed[s] = true;
        let day = table.last_seen[s];
        if day < previous_day || day > table.clock {
            return Err(corrupt(
                "recency list",
                format!("slot {slot} last seen {day} out of order"),
            ));
        }
        previous_day = day;
        if table.index.insert(table.ids[s], slot).is_some() {
            return Err(corrupt("ids", format!("id {} owns two rows", table.ids[s])));
        }
        table.push_back(slot);
    }
    for &slot in &free {
        let s = slot as usize;
        if s == 0 || s >= slots || table.live[s] || listed[s] {
            return Err(corrupt(
                "free list",
                format!("slot {slot} is out of range, live or listed twice"),
            ));
        }
        listed[s] = true;
    }
    table.free = free;
    if pending.len() > table.config.max_pending {
        return Err(corrupt("pending ids", "more than max-pending"));
    }
    table.pending = HashMap::with_capacity_and_hasher(pending.len(), Default::default());
    let mut last_id = None;
    for (id, p) in pending {
        if last_id.is_some_and(|l| l >= id) || table.index.contains_key(&id) {
            return Err(corrupt(
                "pending ids",
                format!("id {id} is unordered, repeated or already admitted"),
            ));
        }
        last_id = Some(id);
        table.pending.insert(id, p);
    }
    table.len = live_count;
    Ok(())
}

fn to_usize(x: u64, what: &'static str) -> Result<usize> {
    usize::try_from(x).map_err(|_| corrupt(what, format!("{x} does not fit in usize")))
}
