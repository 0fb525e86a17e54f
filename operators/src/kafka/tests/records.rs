use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ctrflow_schemas::{Epoch, OffsetRange, raw_message_schema};

use bytes::Bytes;

use super::super::records::{BatchBuilder, Confirmed, EpochTracker, PayloadSpan, RawRecord};
use super::rows;

fn rec(topic: &str, partition: i32, offset: i64) -> RawRecord {
    RawRecord {
        topic: Arc::from(topic),
        partition,
        offset,
        timestamp: Some(1_000 + offset),
        payload: None,
    }
}

/// `rec` with the payload `{topic}/{partition}/{offset}` in a one-record chunk buffer.
fn rec_with_payload(topic: &str, partition: i32, offset: i64) -> (RawRecord, Bytes) {
    let payload = Bytes::from(format!("{topic}/{partition}/{offset}"));
    let span = PayloadSpan {
        start: 0,
        len: payload.len() as u32,
    };
    let r = RawRecord {
        payload: Some(span),
        ..rec(topic, partition, offset)
    };
    (r, payload)
}

fn key(t: &str, p: i32) -> (String, i32) {
    (t.to_string(), p)
}

#[test]
fn batch_builder_emits_raw_message_batches() {
    let mut b = BatchBuilder::new();
    assert!(b.deadline(Duration::from_millis(5)).is_none());
    assert!(b.finish().expect("empty").is_none());
    let (first, buffer) = rec_with_payload("a", 1, 7);
    b.push(first, &buffer);
    b.push(
        RawRecord {
            timestamp: None,
            ..rec("b", 0, 3)
        },
        &buffer,
    );
    assert!(b.deadline(Duration::from_millis(5)).is_some());
    assert_eq!(b.payload_bytes(), "a/1/7".len() as u64);
    let (batch, bytes) = b.finish().expect("finish").expect("rows");
    assert_eq!(b.payload_bytes(), 0, "reset by finish");
    assert_eq!(batch.schema(), raw_message_schema());
    assert_eq!(bytes, "a/1/7".len() as u64);
    let r = rows(&batch);
    assert_eq!(
        (r[0].topic.as_str(), r[0].partition, r[0].offset),
        ("a", 1, 7)
    );
    assert_eq!(r[0].payload, b"a/1/7");
    assert_eq!(r[1].payload, Vec::<u8>::new());
    assert!(batch.column(4).is_null(1), "a null payload stays null");
    assert_eq!(b.len(), 0);
    assert!(b.deadline(Duration::from_millis(5)).is_none());
}

/// Rows of several chunks: each payload is read from its own chunk's buffer, which the batch
/// references (each buffer once) instead of copying.
#[test]
fn batch_builder_references_each_chunk_buffer_once() {
    let chunks: Vec<(Bytes, Vec<&str>)> = vec![
        (
            Bytes::from_static(b"alphabetagamma"),
            vec!["alpha", "beta", "gamma"],
        ),
        (
            Bytes::from_static(b"a-long-payload-of-the-second-chunk"),
            vec!["a-long-payload-of-the-second-chunk"],
        ),
        (Bytes::from_static(b"xyz"), vec!["x", "yz"]),
    ];
    let mut b = BatchBuilder::new();
    let mut offset = 0;
    for (buffer, payloads) in &chunks {
        let mut start = 0u32;
        for p in payloads {
            let r = RawRecord {
                payload: Some(PayloadSpan {
                    start,
                    len: p.len() as u32,
                }),
                ..rec("t", 0, offset)
            };
            b.push(r, buffer);
            start += p.len() as u32;
            offset += 1;
        }
    }
    let (batch, bytes) = b.finish().expect("finish").expect("rows");
    let expected: Vec<&str> = chunks.iter().flat_map(|c| c.1.clone()).collect();
    assert_eq!(bytes, expected.iter().map(|p| p.len() as u64).sum::<u64>());
    let got: Vec<Vec<u8>> = rows(&batch).into_iter().map(|r| r.payload).collect();
    let want: Vec<Vec<u8>> = expected.iter().map(|p| p.as_bytes().to_vec()).collect();
    assert_eq!(got, want);
    let views = batch
        .column(4)
        .as_any()
        .downcast_ref::<arrow::array::BinaryViewArray>()
        .expect("payload views");
    assert_eq!(views.data_buffers().len(), 3, "one data buffer per chunk");
    for (buffer, (chunk, _)) in views.data_buffers().iter().zip(&chunks) {
        assert_eq!(
            buffer.as_ptr(),
            chunk.as_ptr(),
            "the chunk buffer itself, not a copy"
        );
    }
}

#[test]
fn tracker_drops_landed_and_repeated_offsets() {
    let mut t = EpochTracker::new(Epoch(5));
    let landed: HashMap<(String, i32), i64> = [(key("a", 0), 9)].into_iter().collect();
    t.assign(&[key("a", 0), key("a", 1)], &landed);
    assert_eq!(t.admit(&rec("a", 0, 8)), Some(false));
    assert_eq!(t.admit(&rec("a", 0, 9)), Some(false));
    assert_eq!(t.admit(&rec("a", 0, 10)), Some(true));
    let again = t.admit(&rec("a", 0, 10));
    assert_eq!(again, Some(false), "a re-delivered offset is dropped");
    assert_eq!(t.admit(&rec("a", 1, 0)), Some(true));
    assert_eq!(t.admit(&rec("a", 0, 11)), Some(true));
    assert_eq!(t.admit(&rec("a", 2, 0)), None, "partition not assigned");
    assert_eq!(t.admit(&rec("b", 0, 0)), None, "topic not assigned");
    assert_eq!(t.rows(), 3);
    let o = t.close_epoch().expect("epoch");
    assert_eq!(o.epoch, Epoch(5));
    assert_eq!(
        o.ranges,
        vec![
            OffsetRange {
                topic: "a".into(),
                partition: 0,
                first_offset: 10,
                last_offset: 11
            },
            OffsetRange {
                topic: "a".into(),
                partition: 1,
                first_offset: 0,
                last_offset: 0
            },
        ]
    );
    assert!(
        t.close_epoch().is_none(),
        "an empty epoch is skipped and keeps its number"
    );
    assert_eq!(t.admit(&rec("a", 1, 1)), Some(true));
    t.revoke(&[key("a", 1)]);
    assert_eq!(t.admit(&rec("a", 1, 2)), None, "revoked");
    assert_eq!(t.close_epoch().expect("epoch").epoch, Epoch(6));
}

#[test]
fn tracker_commits_only_the_confirmed_prefix_in_order() {
    let mut t = EpochTracker::new(Epoch(0));
    t.assign(&[key("a", 0), key("b", 0)], &HashMap::new());
    assert_eq!(t.admit(&rec("a", 0, 0)), Some(true));
    t.close_epoch();
    assert_eq!(t.admit(&rec("a", 0, 1)), Some(true));
    assert_eq!(t.admit(&rec("b", 0, 4)), Some(true));
    t.close_epoch();
    assert!(t.committable().is_empty());
    assert_eq!(t.confirm(Epoch(1)), Confirmed::Known);
    assert!(t.committable().is_empty(), "epoch 0 is not confirmed yet");
    assert_eq!(t.oldest_unconfirmed(), Some(Epoch(0)));
    assert_eq!(t.confirm(Epoch(7)), Confirmed::Unknown);
    assert_eq!(t.confirm(Epoch(0)), Confirmed::Known);
    assert!(t.all_confirmed());
    assert_eq!(t.committable()[&key("a", 0)], 2);
    assert_eq!(t.committable()[&key("b", 0)], 5);
    assert_eq!(
        t.confirm(Epoch(0)),
        Confirmed::Unknown,
        "duplicate confirmation"
    );
    t.revoke(&[key("b", 0)]);
    assert!(
        !t.committable().contains_key(&key("b", 0)),
        "revoked partitions are never committed again"
    );
    assert!(t.committable().contains_key(&key("a", 0)));
}

#[test]
fn tracker_reports_skipped_offsets_once_the_position_is_known() {
    let mut t = EpochTracker::new(Epoch(0));
    let landed: HashMap<(String, i32), i64> = [(key("a", 0), 9)].into_iter().collect();
    t.assign(&[key("a", 0), key("a", 1)], &landed);
    // A partition with nothing landed starts wherever the log starts: no gap.
    assert_eq!(t.admit(&rec("a", 1, 500)), Some(true));
    assert_eq!(t.take_gap(), None);
    // Contiguous after the landed floor: no gap.
    assert_eq!(t.admit(&rec("a", 0, 10)), Some(true));
    assert_eq!(t.take_gap(), None);
    // 11..=14 never delivered (e.g. deleted by retention before they were read).
    assert_eq!(t.admit(&rec("a", 0, 15)), Some(true));
    let gap = t.take_gap().expect("gap");
    assert_eq!(
        (&*gap.topic, gap.partition, gap.first, gap.last),
        ("a", 0, 11, 14)
    );
    assert_eq!(t.take_gap(), None, "taken once");
    // A re-delivery below the floor is a duplicate, not a gap.
    assert_eq!(t.admit(&rec("a", 0, 12)), Some(false));
    assert_eq!(t.take_gap(), None);
}

#[test]
fn tracker_next_offset_follows_landed_and_admitted_offsets() {
    let mut t = EpochTracker::new(Epoch(0));
    assert_eq!(t.next_offset("a", 0), None, "not assigned");
    let landed = HashMap::from([(key("a", 1), 41)]);
    t.assign(&[key("a", 0), key("a", 1)], &landed);
    assert_eq!(t.next_offset("a", 0), None, "nothing landed or read yet");
    assert_eq!(t.next_offset("a", 1), Some(42), "after the landed offset");
    assert_eq!(t.admit(&rec("a", 0, 5)), Some(true));
    assert_eq!(t.next_offset("a", 0), Some(6));
    assert_eq!(t.admit(&rec("a", 1, 42)), Some(true));
    assert_eq!(t.next_offset("a", 1), Some(43));
    t.revoke(&[key("a", 1)]);
    assert_eq!(t.next_offset("a", 1), None, "revoked");
}

#[test]
fn tracker_counts_the_open_epochs_payload_bytes() {
    let mut t = EpochTracker::new(Epoch(0));
    t.assign(&[key("a", 0)], &HashMap::new());
    let (first, _) = rec_with_payload("a", 0, 1); // "a/0/1": 5 bytes
    let (second, _) = rec_with_payload("a", 0, 20); // "a/0/20": 6 bytes
    assert_eq!(t.admit(&first), Some(true));
    assert_eq!(
        t.admit(&rec("a", 0, 21)),
        Some(true),
        "a null payload counts 0"
    );
    assert_eq!(
        t.admit(&second),
        Some(false),
        "below the floor: not admitted"
    );
    assert_eq!(t.payload_bytes(), 5);
    assert_eq!(t.admit(&rec_with_payload("a", 0, 22).0), Some(true));
    assert_eq!(t.payload_bytes(), 11);
    assert!(t.close_epoch().is_some());
    assert_eq!(t.payload_bytes(), 0, "reset by the epoch's end");
}
