//! The seeded shuffle buffer: deterministic, bounded, complete, compaction and state round trips.

use super::*;

/// The `item_id` column of `batch`.
fn item_ids(batch: &RecordBatch) -> Vec<u64> {
    let a = batch.column_by_name(columns::ITEM_ID).expect("column");
    let a = a.as_any().downcast_ref::<UInt64Array>().expect("u64");
    a.values().to_vec()
}

fn drain(buffer: &mut ShuffleBuffer, batches: &[RecordBatch]) -> Vec<Vec<u64>> {
    let mut out = Vec::new();
    for b in batches {
        buffer.push(b.clone()).expect("push");
        while let Some(batch) = buffer.pop().expect("pop") {
            assert!(buffer.len() < 400 + 70);
            out.push(item_ids(&batch));
        }
    }
    while let Some(batch) = buffer.flush().expect("flush") {
        out.push(item_ids(&batch));
    }
    out
}

#[test]
fn shuffle_is_deterministic_bounded_and_complete() {
    let evs = events(1_000, 4, 3);
    let batches = record_batches(&evs, 70);
    let a = drain(
        &mut ShuffleBuffer::new(400, 100, 9).expect("buffer"),
        &batches,
    );
    let b = drain(
        &mut ShuffleBuffer::new(400, 100, 9).expect("buffer"),
        &batches,
    );
    let c = drain(
        &mut ShuffleBuffer::new(400, 100, 10).expect("buffer"),
        &batches,
    );
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.len(), 10);
    assert!(a.iter().all(|batch| batch.len() == 100));
    // Every row exactly once, in a new order.
    let mut all: Vec<u64> = a.concat();
    assert_ne!(all, evs.iter().map(|e| e.item_id.0).collect::<Vec<_>>());
    all.sort_unstable();
    let mut expected: Vec<u64> = evs.iter().map(|e| e.item_id.0).collect();
    expected.sort_unstable();
    assert_eq!(all, expected);
}

/// Drains like [`drain`], with or without compaction, and returns the output with the most
/// batch rows the buffer held at any time.
fn drain_tracking_memory(
    buffer: &mut ShuffleBuffer,
    batches: &[RecordBatch],
    compaction: Option<usize>,
) -> (Vec<Vec<u64>>, usize) {
    buffer.set_compaction(compaction);
    let (mut out, mut peak) = (Vec::new(), 0);
    for b in batches {
        buffer.push(b.clone()).expect("push");
        peak = peak.max(buffer.held_rows());
        while let Some(batch) = buffer.pop().expect("pop") {
            peak = peak.max(buffer.held_rows());
            out.push(item_ids(&batch));
        }
    }
    while let Some(batch) = buffer.flush().expect("flush") {
        out.push(item_ids(&batch));
    }
    assert_eq!(buffer.held_rows(), 0, "everything released at the end");
    (out, peak)
}

#[test]
fn shuffle_memory_stays_bounded_on_long_inputs_and_compaction_changes_nothing() {
    // 20,000 rows through a 400-row buffer: random picking leaves stragglers in every batch.
    let evs = events(20_000, 50, 3);
    let batches = record_batches(&evs, 70);
    let (plain, plain_peak) = drain_tracking_memory(
        &mut ShuffleBuffer::new(400, 100, 4).expect("buffer"),
        &batches,
        None,
    );
    // The default chunk (one copy per compaction here) and small chunks (several per compaction).
    for chunk_rows in [8192, 150] {
        let (compacted, peak) = drain_tracking_memory(
            &mut ShuffleBuffer::new(400, 100, 4).expect("buffer"),
            &batches,
            Some(chunk_rows),
        );
        assert_eq!(
            compacted, plain,
            "chunks of {chunk_rows}: compaction must not change the emitted rows or their order"
        );
        assert!(
            peak <= 3 * (400 + 100) / 2 + 70,
            "chunks of {chunk_rows}: held {peak} rows with compaction"
        );
    }
    assert!(
        plain_peak > 4 * 400,
        "without compaction the stragglers pin {plain_peak} rows"
    );
    let mut all = plain.concat();
    all.sort_unstable();
    let mut expected: Vec<u64> = evs.iter().map(|e| e.item_id.0).collect();
    expected.sort_unstable();
    assert_eq!(all, expected);
}

#[test]
fn shuffle_state_round_trip_after_compaction_continues_identically() {
    let evs = events(6_000, 20, 3);
    let batches = record_batches(&evs, 70);
    let full = drain(
        &mut ShuffleBuffer::new(400, 100, 5).expect("buffer"),
        &batches,
    );
    let mut first = ShuffleBuffer::new(400, 100, 5).expect("buffer");
    let mut uncompacted = ShuffleBuffer::new(400, 100, 5).expect("buffer");
    uncompacted.set_compaction(None);
    let mut out = Vec::new();
    for b in &batches[..60] {
        first.push(b.clone()).expect("push");
        uncompacted.push(b.clone()).expect("push");
        while let Some(batch) = first.pop().expect("pop") {
            out.push(item_ids(&batch));
            uncompacted.pop().expect("pop").expect("same schedule");
        }
    }
    assert!(
        first.held_rows() < uncompacted.held_rows(),
        "compacted by now"
    );
    let mut restored =
        ShuffleBuffer::from_bytes(&first.to_bytes().expect("state")).expect("restore");
    out.append(&mut drain(&mut restored, &batches[60..]));
    assert_eq!(out, full);
}

#[test]
fn shuffle_state_round_trip_continues_identically() {
    let evs = events(600, 5, 3);
    let batches = record_batches(&evs, 70);
    let full = drain(
        &mut ShuffleBuffer::new(400, 100, 3).expect("buffer"),
        &batches,
    );

    let mut first = ShuffleBuffer::new(400, 100, 3).expect("buffer");
    let mut out = Vec::new();
    for b in &batches[..6] {
        first.push(b.clone()).expect("push");
        while let Some(batch) = first.pop().expect("pop") {
            out.push(batch);
        }
    }
    assert!(!first.is_empty());
    let mut restored =
        ShuffleBuffer::from_bytes(&first.to_bytes().expect("state")).expect("restore");
    drop(first);
    assert_eq!(restored.len(), 6 * 70 - out.len() * 100);
    let mut rest = drain(&mut restored, &batches[6..]);
    let mut resumed: Vec<Vec<u64>> = out.iter().map(item_ids).collect();
    resumed.append(&mut rest);
    assert_eq!(resumed, full);
}
