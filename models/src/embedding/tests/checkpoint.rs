//! Checkpoint round trips and every way a checkpoint can be corrupt.

use super::*;

fn busy_table() -> EmbeddingTable {
    let mut t = managed(3, 2, 12);
    let mut rng = SplitMix64::new(99);
    let mut l = Lookup::new();
    let mut g = Vec::new();
    for step in 0..120u32 {
        // From step 80 on only ten ids recur, so two rows go stale.
        let range = if step < 80 { 30 } else { 10 };
        let ids: Vec<u64> = (0..6).map(|_| rng.next_u64() % range).collect();
        t.lookup(&ids, Day(step / 4), true, &mut l);
        g.clear();
        g.extend((0..l.unique_len() * 3).map(|_| rng.normal() as f32));
        t.apply_gradients(&l, &g).expect("apply");
        if step == 90 {
            t.expire(Day(step / 4));
        }
    }
    // Rows last seen up to day 19 go; 1000 takes a freed slot, 1001 stays pending.
    assert_eq!(t.expire(Day(49)), 2);
    train(&mut t, &[1000, 1000, 1001], 49);
    assert!(!t.free.is_empty() && !t.pending.is_empty() && t.stats().evictions > 0);
    t
}

#[test]
fn checkpoints_round_trip_bitwise() {
    for mut t in [busy_table(), hashed(4, 5), managed(2, 1, 3)] {
        let bytes = t.to_bytes();
        assert_eq!(&bytes[..8], &CHECKPOINT_MAGIC);
        let mut u = EmbeddingTable::from_bytes(&bytes).expect("decode");
        assert_eq!(u.to_bytes(), bytes);
        assert_eq!(u.config(), t.config());
        assert_eq!(bits(&u.values), bits(&t.values));
        assert_eq!(bits(&u.m), bits(&t.m));
        assert_eq!(bits(&u.v), bits(&t.v));
        assert_eq!(u.stats(), t.stats());
        assert_eq!(u.pending, t.pending);
        assert_eq!(
            (u.prev.clone(), u.next.clone()),
            (t.prev.clone(), t.next.clone())
        );
        // Both continue identically.
        let mut rng = SplitMix64::new(1);
        for step in 0..30 {
            let ids: Vec<u64> = (0..5).map(|_| rng.next_u64() % 40).collect();
            let (lt, lu) = (
                train(&mut t, &ids, 70 + step),
                train(&mut u, &ids, 70 + step),
            );
            assert_eq!(lt.unique_slots(), lu.unique_slots());
            let g: Vec<f32> = (0..lt.unique_len() * t.dim())
                .map(|i| i as f32 * 0.01)
                .collect();
            t.apply_gradients(&lt, &g).expect("apply");
            u.apply_gradients(&lu, &g).expect("apply");
        }
        assert_eq!(u.to_bytes(), t.to_bytes());
    }
}

#[test]
fn corrupt_or_truncated_checkpoints_are_errors() {
    let t = busy_table();
    let bytes = t.to_bytes();
    // Every truncation.
    for n in 0..bytes.len() {
        assert!(
            EmbeddingTable::from_bytes(&bytes[..n]).is_err(),
            "prefix {n}"
        );
    }
    let e = EmbeddingTable::from_bytes(&bytes[..5]).expect_err("short");
    assert!(
        matches!(e, ModelsError::CheckpointTruncated { what: "magic", .. }),
        "{e}"
    );
    // Wrong magic, unknown version.
    let mut b = bytes.clone();
    b[0] = b'X';
    let e = EmbeddingTable::from_bytes(&b).expect_err("magic");
    assert!(
        matches!(e, ModelsError::CheckpointCorrupt { what: "magic", .. }),
        "{e}"
    );
    let mut b = bytes.clone();
    b[8] = 2;
    let e = EmbeddingTable::from_bytes(&b).expect_err("version");
    assert!(
        matches!(
            e,
            ModelsError::UnsupportedCheckpointVersion {
                found: 2,
                supported: 1
            }
        ),
        "{e}"
    );
    // Any flipped byte after the header is caught by the checksum.
    for i in (12..bytes.len()).step_by(7) {
        let mut b = bytes.clone();
        b[i] ^= 0x10;
        assert!(EmbeddingTable::from_bytes(&b).is_err(), "flip at {i}");
    }
    // Trailing garbage.
    let mut b = bytes.clone();
    b.extend_from_slice(&[0; 4]);
    assert!(EmbeddingTable::from_bytes(&b).is_err());
    assert_eq!(e.class(), crate::ErrorClass::User);
}

/// Rewrites the checksum so that structural checks, not the checksum, must catch the damage.
fn resealed(mut body: Vec<u8>) -> Vec<u8> {
    body.truncate(body.len() - 8);
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in &body {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    body.extend_from_slice(&h.to_le_bytes());
    body
}

#[test]
fn structurally_inconsistent_checkpoints_are_errors() {
    let mut t = managed(2, 1, 10);
    train(&mut t, &[5, 6, 7], 3);
    let bytes = t.to_bytes();
    assert!(EmbeddingTable::from_bytes(&resealed(bytes.clone())).is_ok());
    // Header layout: 12 magic/version, config 4+1+8+4+4+8+8+4+8+20 = 69, state 4+8+56 = 68,
    // slot count 8; then ids (4 slots x 8) and live flags (4 x 1).
    let slots_at = 12 + 69 + 68;
    assert_eq!(&bytes[slots_at..slots_at + 8], &4u64.to_le_bytes());
    let ids_at = slots_at + 8;
    let live_at = ids_at + 4 * 8;
    // Two rows claiming the same id.
    let mut b = bytes.clone();
    b.copy_within(ids_at + 8..ids_at + 16, ids_at + 16);
    let e = EmbeddingTable::from_bytes(&resealed(b)).expect_err("duplicate id");
    assert!(
        matches!(e, ModelsError::CheckpointCorrupt { what: "ids", .. }),
        "{e}"
    );
    // A live flag that is not 0/1, a live default row, a live row missing from recency.
    for (offset, value, what) in [(live_at + 1, 7u8, "live flags"), (live_at, 1, "live flags")] {
        let mut b = bytes.clone();
        b[offset] = value;
        match EmbeddingTable::from_bytes(&resealed(b)) {
            Err(ModelsError::CheckpointCorrupt { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{what}: {other:?}"),
        }
    }
    // An absurd slot count is refused before allocating.
    let mut b = bytes.clone();
    b[slots_at..slots_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(EmbeddingTable::from_bytes(&resealed(b)).is_err());
    // A config field out of range.
    let mut b = bytes.clone();
    b[12..16].copy_from_slice(&0u32.to_le_bytes());
    let e = EmbeddingTable::from_bytes(&resealed(b)).expect_err("dim 0");
    assert!(
        matches!(e, ModelsError::CheckpointCorrupt { what: "config", .. }),
        "{e}"
    );
}
