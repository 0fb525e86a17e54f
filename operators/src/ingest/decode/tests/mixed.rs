//! 10k bad messages among 100k good ones (seeded), over three partitions and eleven batches:
//! every input offset comes out exactly once, on the port its validity calls for.

use std::collections::BTreeMap;

use super::*;

/// A bad payload of one of several kinds, derived from a valid one.
fn corrupt(rng: &mut StdRng, valid: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(valid.to_vec()).expect("utf8");
    match rng.random_range(0..8) {
        0 => valid[..rng.random_range(0..valid.len())].to_vec(),
        1 => text
            .replacen("\"label\":", "\"label\":7,\"x\":", 1)
            .into_bytes(),
        2 => text
            .replacen("\"schema_version\":1", "\"schema_version\":3", 1)
            .into_bytes(),
        3 => text
            .replacen("\"user_id\":", "\"user_id\":-", 1)
            .into_bytes(),
        4 => text.replacen("\"hour\":", "\"hour\":9", 1).into_bytes(),
        5 => (0..rng.random_range(1..64))
            .map(|_| rng.random::<u8>() | 0x80)
            .collect(),
        6 => text
            .replacen("\"event_id\":\"", "\"event_id\":1,\"y\":\"", 1)
            .into_bytes(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn ten_thousand_bad_among_a_hundred_thousand_good() {
    const GOOD: usize = 100_000;
    const BAD: usize = 10_000;
    let mut rng = StdRng::seed_from_u64(2024);
    let mut is_bad = vec![false; GOOD + BAD];
    let mut placed = 0;
    while placed < BAD {
        let i = rng.random_range(0..GOOD + BAD);
        if !is_bad[i] {
            is_bad[i] = true;
            placed += 1;
        }
    }
    let mut next_offset = [0i64; 3];
    let mut expected: BTreeMap<(i32, i64), bool> = BTreeMap::new();
    let msgs: Vec<Msg> = is_bad
        .iter()
        .enumerate()
        .map(|(i, &bad)| {
            let seq_len = rng.random_range(0..8);
            let valid = random_event(&mut rng, i, seq_len, 16).to_json();
            let payload = if bad {
                corrupt(&mut rng, &valid)
            } else {
                valid
            };
            let partition = rng.random_range(0..3);
            let offset = next_offset[partition];
            next_offset[partition] += 1;
            expected.insert((partition as i32, offset), bad);
            ("natural", partition as i32, offset, Some(payload))
        })
        .collect();
    let batches: Vec<RecordBatch> = msgs.chunks(10_000).map(raw_batch).collect();
    assert_eq!(batches.len(), 11);

    let mut d = decoder_with(DecodeConfig {
        max_bad_ratio: 0.2,
        ..DecodeConfig::default()
    });
    let out = run(&mut d, batches).await;
    assert_eq!(out.rows(EVENTS_PORT), GOOD);
    assert_eq!(out.rows(DEAD_LETTER_PORT), BAD);

    let mut seen: BTreeMap<(i32, i64), bool> = BTreeMap::new();
    for (port, partition, offset, bad) in [
        (EVENTS_PORT, "_partition", "_offset", false),
        (DEAD_LETTER_PORT, "partition", "offset", true),
    ] {
        for batch in out.batches(port) {
            for pos in positions(batch, partition, offset) {
                assert!(seen.insert(pos, bad).is_none(), "{pos:?} emitted twice");
            }
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(
        (d.stats().good(), d.stats().bad()),
        (GOOD as u64, BAD as u64)
    );
    assert_eq!(d.stats().snapshot().values().sum::<u64>(), BAD as u64);
}
