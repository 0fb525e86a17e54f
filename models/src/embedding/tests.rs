//! Embedding table tests: admission, eviction and expiry, lookups, buffers, memory;
//! config parsing, the sparse optimiser and checkpoints in submodules.

use super::*;
use crate::error::ModelsError;
use crate::rng::SplitMix64;

fn config(dim: usize) -> EmbeddingTableConfig {
    EmbeddingTableConfig {
        seed: 17,
        init_std: 0.1,
        ..EmbeddingTableConfig::new(dim)
    }
}

fn managed(dim: usize, threshold: u32, max_rows: usize) -> EmbeddingTable {
    EmbeddingTable::new(EmbeddingTableConfig {
        admission_threshold: threshold,
        max_rows,
        expiry_days: Some(30),
        ..config(dim)
    })
    .expect("valid config")
}

fn hashed(dim: usize, buckets: usize) -> EmbeddingTable {
    EmbeddingTable::new(EmbeddingTableConfig {
        kind: TableKind::Hashed { buckets },
        ..config(dim)
    })
    .expect("valid config")
}

/// Training lookup of `ids` on `day`, returning the lookup.
fn train(t: &mut EmbeddingTable, ids: &[u64], day: u32) -> Lookup {
    let mut l = Lookup::new();
    t.lookup(ids, Day(day), true, &mut l);
    l
}

fn live_ids(t: &EmbeddingTable) -> Vec<u64> {
    let mut ids: Vec<u64> = t.rows().map(|r| r.id).collect();
    ids.sort_unstable();
    ids
}

fn bits(xs: &[f32]) -> Vec<u32> {
    xs.iter().map(|x| x.to_bits()).collect()
}

// ---------------------------------------------------------------- config

#[test]
fn day_converts_from_event_dates() {
    let d = EventDate::from_ymd(1970, 1, 2).expect("date");
    assert_eq!(Day::from_event_date(d), Some(Day(1)));
    let d = EventDate::from_ymd(2024, 3, 9).expect("date");
    let day = Day::from_event_date(d).expect("after 1970");
    assert_eq!(day.event_date(), Some(d));
    assert_eq!(day.to_string(), "2024-03-09");
    assert_eq!(
        Day::from_event_date(EventDate::from_ymd(1969, 12, 31).expect("date")),
        None
    );
}

// ---------------------------------------------------------------- lookup and admission

#[test]
fn positions_and_gather_reproduce_each_ids_row() {
    let mut t = managed(3, 1, 100);
    let ids = [5, 9, 5, 1, 9, 9];
    let l = train(&mut t, &ids, 1);
    assert_eq!(l.len(), 6);
    assert_eq!(l.unique_len(), 3);
    assert_eq!(l.positions(), &[0, 1, 0, 2, 1, 1]);
    assert!(!l.reads_default());
    let mut rows = Vec::new();
    t.gather(&l, &mut rows).expect("gather");
    assert_eq!(rows.len(), 3 * 3);
    for (i, &id) in ids.iter().enumerate() {
        let p = l.positions()[i] as usize;
        assert_eq!(&rows[p * 3..(p + 1) * 3], t.row(id).expect("admitted"));
    }
    // Frequencies count occurrences; last-seen is the lookup day.
    let r9 = t.rows().find(|r| r.id == 9).expect("row of 9");
    assert_eq!((r9.frequency, r9.last_seen), (3, Day(1)));
    assert_eq!(t.stats().ids_looked_up, 6);
    assert_eq!(t.stats().admissions, 3);
}

#[test]
fn ids_read_the_default_row_until_admission_threshold() {
    let mut t = managed(2, 3, 100);
    for day in 1..=2 {
        let l = train(&mut t, &[7, 8], day);
        assert_eq!(l.unique_slots(), &[DEFAULT_SLOT]);
        assert_eq!(l.positions(), &[0, 0]);
        assert!(l.reads_default());
        assert!(t.row(7).is_none());
    }
    assert_eq!(t.pending_len(), 2);
    assert_eq!(t.stats().default_reads, 4);
    // Third sighting of 7 admits it; 8 is still pending.
    let l = train(&mut t, &[7], 3);
    assert_ne!(l.unique_slots()[0], DEFAULT_SLOT);
    assert_eq!(t.len(), 1);
    assert_eq!(t.pending_len(), 1);
    let r = t.rows().next().expect("one row");
    assert_eq!((r.id, r.frequency, r.last_seen), (7, 3, Day(3)));
    // Occurrences inside one batch count too: three 9s admit 9 at once.
    let l = train(&mut t, &[9, 9, 9, 10], 3);
    assert_eq!(l.unique_len(), 2, "9's row and the default row (10)");
    assert_eq!(l.positions(), &[0, 0, 0, 1]);
    assert_eq!(l.unique_slots()[1], DEFAULT_SLOT);
    assert_eq!(live_ids(&t), vec![7, 9]);
    assert_eq!(t.stats().default_reads, 5);
    assert_eq!(t.stats().admissions, 2);
}

#[test]
fn evaluation_lookups_change_nothing_but_the_counters() {
    let mut t = managed(2, 2, 100);
    train(&mut t, &[1, 1, 2], 5);
    let before = t.to_bytes();
    let mut l = Lookup::new();
    t.lookup(&[1, 2, 3, 3], Day(9), false, &mut l);
    assert_eq!(l.positions(), &[0, 1, 1, 1]);
    assert_eq!(l.unique_slots()[1], DEFAULT_SLOT);
    let stats = t.stats();
    assert_eq!(stats.ids_looked_up, 3 + 4);
    assert_eq!(stats.default_reads, 1 + 3);
    // Apart from those two counters the table is byte-for-byte unchanged.
    let mut after = EmbeddingTable::from_bytes(&t.to_bytes()).expect("decode");
    after.stats.ids_looked_up = 3;
    after.stats.default_reads = 1;
    assert_eq!(after.to_bytes(), before);
    assert_eq!(t.clock(), Day(5));

    // The read-only lookup resolves the same way and changes nothing at all.
    let mut r = Lookup::new();
    t.lookup_readonly(&[1, 2, 3, 3], &mut r);
    assert_eq!(r.unique_slots(), l.unique_slots());
    assert_eq!(r.positions(), l.positions());
    assert_eq!(t.stats(), stats);
}

#[test]
fn row_initialisation_depends_only_on_seed_and_id() {
    let mut a = managed(4, 1, 100);
    let mut b = managed(4, 1, 100);
    train(&mut a, &[42], 1);
    train(&mut b, &[1, 2, 3], 1);
    train(&mut b, &[8, 42], 2);
    assert_eq!(bits(a.row(42).expect("a")), bits(b.row(42).expect("b")));
    assert_ne!(bits(b.row(1).expect("1")), bits(b.row(2).expect("2")));
    let mut c = EmbeddingTable::new(EmbeddingTableConfig {
        seed: 18,
        ..config(4)
    })
    .expect("valid");
    train(&mut c, &[42], 1);
    assert_ne!(bits(a.row(42).expect("a")), bits(c.row(42).expect("c")));
    // The default row starts at zero.
    assert!(a.default_row().iter().all(|&x| x == 0.0));
}

#[test]
fn same_seed_and_id_sequence_give_bitwise_identical_tables() {
    let run = || {
        let mut t = managed(4, 2, 20);
        let mut rng = SplitMix64::new(3);
        let mut l = Lookup::new();
        let mut grads = Vec::new();
        for step in 0..200u32 {
            let ids: Vec<u64> = (0..8).map(|_| rng.next_u64() % 40).collect();
            t.lookup(&ids, Day(step / 20), true, &mut l);
            grads.clear();
            grads.extend((0..l.unique_len() * 4).map(|_| rng.normal() as f32));
            t.apply_gradients(&l, &grads).expect("apply");
            if step % 50 == 49 {
                t.expire(Day(step / 20));
            }
        }
        t.to_bytes()
    };
    assert_eq!(run(), run());
}

// ---------------------------------------------------------------- bound, eviction, expiry

#[test]
fn eviction_at_the_bound_takes_the_least_recently_seen_row() {
    let mut t = managed(2, 1, 3);
    train(&mut t, &[1], 1);
    train(&mut t, &[2], 2);
    train(&mut t, &[3], 3);
    train(&mut t, &[1], 4); // 2 is now the least recently seen
    assert_eq!(t.len(), 3);
    let l = train(&mut t, &[4], 5);
    assert_eq!(t.len(), 3);
    assert_eq!(live_ids(&t), vec![1, 3, 4]);
    assert_eq!(t.stats().evictions, 1);
    assert!(t.row(2).is_none());
    assert_ne!(l.unique_slots()[0], DEFAULT_SLOT);
    // Same day: recency within the day is the order of lookups.
    train(&mut t, &[3], 5);
    train(&mut t, &[1], 5);
    train(&mut t, &[5], 5); // evicts 4 (touched before 3 and 1 on day 5)
    assert_eq!(live_ids(&t), vec![1, 3, 5]);
    // Storage never grew past the bound (plus the default row).
    assert_eq!(t.values.len(), (3 + 1) * 2);
}

#[test]
fn eviction_matches_a_reference_lru_and_never_exceeds_the_bound() {
    let max_rows = 16;
    let mut t = managed(2, 1, max_rows);
    let mut reference: Vec<u64> = Vec::new(); // least recent first
    let mut rng = SplitMix64::new(11);
    let mut l = Lookup::new();
    for step in 0..5_000u32 {
        let id = rng.next_u64() % 40;
        t.lookup(&[id], Day(step / 100), true, &mut l);
        if let Some(p) = reference.iter().position(|&x| x == id) {
            reference.remove(p);
        } else if reference.len() == max_rows {
            reference.remove(0);
        }
        reference.push(id);
        assert!(t.len() <= max_rows);
        assert_eq!(t.len(), reference.len());
    }
    let mut expected = reference.clone();
    expected.sort_unstable();
    assert_eq!(live_ids(&t), expected);
    assert!(t.stats().evictions > 1_000);
    // The recency list is ordered like the reference.
    let mut order = Vec::new();
    let mut s = t.next[0];
    while s != DEFAULT_SLOT {
        order.push(t.ids[s as usize]);
        s = t.next[s as usize];
    }
    assert_eq!(order, reference);
}

#[test]
fn lookup_of_ids_deduplicated_ahead_equals_lookup() {
    // Two identical tables; one de-duplicates in place, the other is given the distinct ids of
    // three parts (candidate, short, long) computed beforehand. Admission thresholds, evictions
    // and both kinds must give the same rows, positions and table state.
    for (mut a, mut b) in [
        (managed(2, 2, 24), managed(2, 2, 24)),
        (hashed(2, 16), hashed(2, 16)),
    ] {
        let mut rng = SplitMix64::new(5);
        let (mut la, mut lb) = (Lookup::new(), Lookup::new());
        let mut distinct = DistinctIds::new();
        let (mut rows_a, mut rows_b) = (Vec::new(), Vec::new());
        for step in 0..200u32 {
            let mut part = |n: usize| -> Vec<u64> { (0..n).map(|_| rng.next_u64() % 60).collect() };
            let (candidates, short, long) = (part(4), part(8), part(20));
            a.lookup(
                &[candidates.as_slice(), &short, &long].concat(),
                Day(step / 10),
                true,
                &mut la,
            );
            distinct.clear();
            distinct.extend(&candidates);
            distinct.extend(&short);
            distinct.extend(&long);
            b.lookup_distinct(&distinct, Day(step / 10), true, &mut lb);
            assert_eq!(la.unique_slots(), lb.unique_slots(), "step {step}");
            assert_eq!(la.positions(), lb.positions(), "step {step}");
            a.gather(&la, &mut rows_a).expect("gather");
            b.gather(&lb, &mut rows_b).expect("gather");
            assert_eq!(bits(&rows_a), bits(&rows_b), "step {step}");
            let g: Vec<f32> = (0..rows_a.len()).map(|i| (i % 7) as f32 * 0.01).collect();
            a.apply_gradients(&la, &g).expect("apply");
            b.apply_gradients(&lb, &g).expect("apply");
        }
        assert_eq!(live_ids(&a), live_ids(&b));
        assert_eq!(a.stats(), b.stats());
    }
}

#[test]
fn rows_of_the_current_batch_are_never_evicted() {
    let mut t = managed(2, 1, 2);
    let mut l = Lookup::new();
    t.lookup(&[1, 2, 3], Day(1), true, &mut l);
    assert_eq!(live_ids(&t), vec![1, 2]);
    assert_eq!(l.unique_len(), 3);
    assert_eq!(l.unique_slots()[2], DEFAULT_SLOT, "3 could not be admitted");
    assert_eq!(t.stats().admissions_refused_full, 1);
    assert_eq!(t.stats().evictions, 0);
    let mut rows = Vec::new();
    t.gather(&l, &mut rows).expect("lookup still valid");
    // 3 keeps its count and gets in on the next batch, evicting the least recent (1).
    train(&mut t, &[3], 2);
    assert_eq!(live_ids(&t), vec![2, 3]);
    assert_eq!(t.rows().find(|r| r.id == 3).map(|r| r.frequency), Some(2));
}

#[test]
fn expiry_removes_rows_and_pending_ids_unseen_for_expiry_days() {
    let mut t = managed(2, 2, 100); // expiry 30 days
    train(&mut t, &[1, 1, 9], 100); // 9 pending, last seen on day 100
    train(&mut t, &[2, 2, 3], 110); // 3 pending, last seen on day 110
    train(&mut t, &[4, 4], 120);
    assert_eq!(t.pending_len(), 2);
    assert_eq!(t.expire(Day(129)), 0);
    assert_eq!(t.pending_len(), 2);
    assert_eq!(t.expire(Day(130)), 1);
    assert_eq!(live_ids(&t), vec![2, 4]);
    assert_eq!(t.pending_len(), 1, "9 expired, 3 (day 110) stays");
    assert_eq!(t.expire(Day(150)), 2);
    assert!(t.is_empty());
    assert_eq!(t.pending_len(), 0);
    assert_eq!(t.stats().expirations, 3);
}

#[test]
fn freed_slots_are_reused_before_storage_grows() {
    let mut t = managed(2, 1, 100);
    let l = train(&mut t, &[1, 2, 3], 1);
    let slots: Vec<u32> = l.unique_slots().to_vec();
    let storage = t.values.len();
    train(&mut t, &[2], 40);
    assert_eq!(t.expire(Day(40)), 2);
    let l = train(&mut t, &[7, 8], 40);
    let mut reused = l.unique_slots().to_vec();
    reused.sort_unstable();
    let mut freed = vec![slots[0], slots[2]];
    freed.sort_unstable();
    assert_eq!(reused, freed);
    assert_eq!(t.values.len(), storage);
    // The reused rows are freshly initialised for their new ids, with fresh optimiser state.
    let mut fresh = managed(2, 1, 100);
    train(&mut fresh, &[7], 1);
    assert_eq!(bits(t.row(7).expect("7")), bits(fresh.row(7).expect("7")));
}

#[test]
fn lookups_are_refused_after_rows_change_owner_or_by_another_table() {
    let mut t = managed(2, 1, 2);
    let first = train(&mut t, &[1, 2], 1);
    // A second lookup without evictions leaves the first one valid (shared tables may look up
    // several features before applying).
    let second = train(&mut t, &[2], 1);
    t.apply_gradients(&first, &[0.0; 4]).expect("still valid");
    t.apply_gradients(&second, &[0.0; 2]).expect("valid");
    // An eviction invalidates lookups made before it.
    let third = train(&mut t, &[3], 2);
    let e = t.apply_gradients(&first, &[0.0; 4]).expect_err("stale");
    assert!(matches!(e, ModelsError::StaleLookup { .. }), "{e}");
    assert_eq!(e.class(), crate::ErrorClass::Internal);
    t.apply_gradients(&third, &[0.0; 2])
        .expect("made after the eviction");
    let mut rows = Vec::new();
    assert!(t.gather(&first, &mut rows).is_err());
    // Expiry too.
    let fourth = train(&mut t, &[3], 2);
    t.expire(Day(100));
    assert!(t.gather(&fourth, &mut rows).is_err());
    // Another table.
    let other = managed(2, 1, 2);
    assert!(other.gather(&third, &mut rows).is_err());
}

#[test]
fn warm_buffers_are_reused_without_reallocation() {
    let mut t = managed(4, 1, 64);
    let mut l = Lookup::new();
    let mut rows = Vec::new();
    let mut rng = SplitMix64::new(5);
    let batch =
        |rng: &mut SplitMix64| -> Vec<u64> { (0..32).map(|_| rng.next_u64() % 200).collect() };
    for step in 0..50 {
        t.lookup(&batch(&mut rng), Day(step), true, &mut l);
        t.gather(&l, &mut rows).expect("gather");
    }
    let pointers = (
        l.positions.as_ptr(),
        l.unique_slots.as_ptr(),
        l.probed.as_ptr(),
        rows.as_ptr(),
        t.values.as_ptr(),
    );
    let capacities = (l.distinct.index_capacity(), t.index.capacity());
    for step in 50..100 {
        t.lookup(&batch(&mut rng), Day(step), true, &mut l);
        t.gather(&l, &mut rows).expect("gather");
        let g = vec![0.01; rows.len()];
        t.apply_gradients(&l, &g).expect("apply");
    }
    assert_eq!(
        pointers,
        (
            l.positions.as_ptr(),
            l.unique_slots.as_ptr(),
            l.probed.as_ptr(),
            rows.as_ptr(),
            t.values.as_ptr()
        )
    );
    assert_eq!(
        capacities,
        (l.distinct.index_capacity(), t.index.capacity())
    );
}

// ---------------------------------------------------------------- hashed kind

#[test]
fn hashed_tables_give_every_id_a_bucket_row() {
    let mut t = hashed(3, 8);
    assert_eq!((t.len(), t.capacity()), (8, 8));
    let ids: Vec<u64> = (0..100).collect();
    let l = train(&mut t, &ids, 1);
    assert!(!l.reads_default());
    assert!(l.unique_len() <= 8);
    assert_eq!(t.stats().default_reads, 0);
    // Colliding ids share one unique row.
    let bucket_of = |id: u64| t.row(id).map(bits);
    let (a, b) = (0..100u64)
        .flat_map(|a| (a + 1..100).map(move |b| (a, b)))
        .find(|&(a, b)| bucket_of(a) == bucket_of(b))
        .expect("100 ids in 8 buckets collide");
    let l = train(&mut t, &[a, b], 2);
    assert_eq!(l.unique_len(), 1);
    assert_eq!(l.positions(), &[0, 0]);
    // Frequencies are per bucket; expiry does nothing; the snapshot lists buckets.
    assert_eq!(t.rows().map(|r| r.frequency).sum::<u64>(), 102);
    assert_eq!(t.expire(Day(1_000)), 0);
    assert_eq!(
        t.rows().map(|r| r.id).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    // Sparse updates work the same way.
    let before = bits(t.row(a).expect("row"));
    t.apply_gradients(&l, &[1.0, 1.0, 1.0]).expect("apply");
    assert_ne!(bits(t.row(a).expect("row")), before);
}

#[test]
fn memory_per_row_follows_the_documented_arithmetic() {
    let t = managed(16, 1, 1000);
    assert_eq!(t.memory_bytes_per_row(), 12 * 16 + 57);
    assert_eq!(t.memory_bytes_bound(), 1001 * 249);
    let h = hashed(16, 10);
    assert_eq!(h.memory_bytes_per_row(), 12 * 16 + 29);
    let p = managed(16, 3, 1000);
    assert_eq!(
        p.memory_bytes_bound(),
        1001 * 249 + 1_000_000 * EmbeddingTable::PENDING_BYTES
    );
}

mod checkpoint;
mod config;
mod optimizer;

/// Throughput probe, run on demand:
/// `cargo test -p ctrflow-models --lib throughput_probe -- --ignored --nocapture`.
/// Prints rates; asserts nothing about time.
#[test]
#[ignore = "throughput probe, run on demand"]
fn throughput_probe() {
    for (threshold, max_rows) in [(2, 100_000), (1, 1_000_000)] {
        throughput_probe_with(threshold, max_rows);
    }
}

fn throughput_probe_with(threshold: u32, max_rows: usize) {
    let (dim, batch, steps) = (16, 4096, 200);
    let mut t = managed(dim, threshold, max_rows);
    let mut rng = SplitMix64::new(1);
    // Zipf-like ids: squaring a uniform concentrates mass on small ids.
    let batches: Vec<Vec<u64>> = (0..steps)
        .map(|_| {
            (0..batch)
                .map(|_| {
                    let u = rng.next_f64();
                    (u * u * 300_000.0) as u64
                })
                .collect()
        })
        .collect();
    let (mut l, mut rows) = (Lookup::new(), Vec::new());
    let mut grads = Vec::new();
    let (mut lookup_time, mut gather_time, mut apply_time) = (0.0, 0.0, 0.0);
    let mut unique = 0usize;
    for (step, ids) in batches.iter().enumerate() {
        let start = std::time::Instant::now();
        t.lookup(ids, Day(step as u32 / 20), true, &mut l);
        let a = start.elapsed().as_secs_f64();
        t.gather(&l, &mut rows).expect("gather");
        let b = start.elapsed().as_secs_f64();
        grads.clear();
        grads.resize(rows.len(), 0.01);
        let c = start.elapsed().as_secs_f64();
        t.apply_gradients(&l, &grads).expect("apply");
        let d = start.elapsed().as_secs_f64();
        lookup_time += a;
        gather_time += b - a;
        apply_time += d - c;
        unique += l.unique_len();
    }
    let ids = (batch * steps) as f64;
    eprintln!(
        "dim {dim}, threshold {threshold}, max-rows {max_rows}: lookup {:.2} M ids/s, \
         gather {:.2} M rows/s, apply {:.2} M rows/s \
         ({} unique rows per batch of {batch}, {} rows, {} admissions, {} evictions)",
        ids / lookup_time / 1e6,
        unique as f64 / gather_time / 1e6,
        unique as f64 / apply_time / 1e6,
        unique / steps,
        t.len(),
        t.stats().admissions,
        t.stats().evictions
    );
}
