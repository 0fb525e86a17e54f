//! Unit tests of the decoder, driven through `dataflow::drive` and a `VecCollector`.
//! Helpers and the round-trip, IPC, ceiling and configuration tests live here; one test per
//! rejection reason in `reasons`, the large seeded mix in `mixed`.

mod mixed;
mod reasons;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryViewArray, Int32Array, Int64Array, RecordBatch, StringArray,
    UInt8Array,
};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema};
use arrow::ipc::writer::StreamWriter;
use ctrflow_schemas::{
    CategoryId, Device, Domain, Epoch, Event, EventBatchBuilder, EventSchema, EventTime, ItemId,
    UserId, dead_letter_schema, raw_message_schema,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::dataflow::{Message, VecCollector, drive};

/// The fixed clock of the tests: 2024-06-01T00:00:00Z.
pub(super) const NOW: i64 = 1_717_200_000_000;
const DAY: i64 = 86_400_000;

fn clock() -> i64 {
    NOW
}

/// A decoder on the fixed clock with `config`.
pub(super) fn decoder_with(config: DecodeConfig) -> Decoder {
    config.build().expect("valid config").with_clock(clock)
}

pub(super) fn decoder() -> Decoder {
    decoder_with(DecodeConfig::default())
}

/// One raw message: topic, partition, offset, payload.
pub(super) type Msg = (&'static str, i32, i64, Option<Vec<u8>>);

/// A raw-message batch; the broker timestamp of a message is `NOW - offset`.
pub(super) fn raw_batch(msgs: &[Msg]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(msgs.iter().map(|m| m.0))),
        Arc::new(Int32Array::from_iter_values(msgs.iter().map(|m| m.1))),
        Arc::new(Int64Array::from_iter_values(msgs.iter().map(|m| m.2))),
        Arc::new(Int64Array::from_iter_values(msgs.iter().map(|m| NOW - m.2))),
        Arc::new(BinaryViewArray::from_iter(
            msgs.iter().map(|m| m.3.as_deref()),
        )),
    ];
    RecordBatch::try_new(raw_message_schema(), columns).expect("raw batch")
}

/// Runs `decoder` over `batches` then end of stream.
pub(super) async fn run(decoder: &mut Decoder, batches: Vec<RecordBatch>) -> VecCollector {
    let messages = batches
        .into_iter()
        .map(Message::Batch)
        .chain([Message::End]);
    drive(decoder, messages, OUTPUT_PORTS)
        .await
        .expect("decode")
}

/// A random valid event inside the default time window.
pub(super) fn random_event(rng: &mut StdRng, i: usize, seq_len: usize, dim: usize) -> Event {
    let event_id = match i % 5 {
        // Escapes and non-ASCII take serde_json's slow string path.
        0 => format!("e-{i}-\"quoted\"\\é\n"),
        _ => format!("e-{i}"),
    };
    Event {
        event_id,
        event_time: EventTime(NOW - rng.random_range(0..29 * DAY)),
        domain: if rng.random_bool(0.5) {
            Domain::Natural
        } else {
            Domain::Ad
        },
        user_id: UserId(if i.is_multiple_of(7) {
            u64::MAX
        } else {
            rng.random()
        }),
        item_id: ItemId(rng.random()),
        category_id: CategoryId(rng.random_range(0..100)),
        position: rng.random(),
        hour: rng.random_range(0..24),
        device: Device::ALL[rng.random_range(0..4)],
        hist_item_ids: (0..seq_len).map(|_| ItemId(rng.random())).collect(),
        hist_category_ids: (0..seq_len)
            .map(|_| CategoryId(rng.random_range(0..100)))
            .collect(),
        item_content: rng
            .random_bool(0.5)
            .then(|| (0..dim).map(|_| rng.random_range(-10.0..10.0)).collect()),
        label: rng.random_range(0..2),
    }
}

/// Asserts that the event columns of `ours` equal `reference` (a batch of the event schema).
pub(super) fn assert_event_columns_eq(ours: &RecordBatch, reference: &RecordBatch) {
    assert_eq!(ours.num_rows(), reference.num_rows());
    for (i, field) in reference.schema().fields().iter().enumerate() {
        assert_eq!(ours.schema().field(i), field.as_ref(), "field {i}");
        assert_eq!(
            ours.column(i).to_data(),
            reference.column(i).to_data(),
            "column `{}` differs",
            field.name()
        );
    }
}

/// (partition, offset) of every row of `batch`, provenance columns or dead-letter columns.
pub(super) fn positions(batch: &RecordBatch, partition: &str, offset: &str) -> Vec<(i32, i64)> {
    let p = batch[partition].as_primitive::<Int32Type>();
    let o = batch[offset].as_primitive::<Int64Type>();
    p.values()
        .iter()
        .copied()
        .zip(o.values().iter().copied())
        .collect()
}

fn ipc_bytes(batches: &[RecordBatch]) -> Vec<u8> {
    let mut w = StreamWriter::try_new(Vec::new(), &batches[0].schema()).expect("writer");
    for b in batches {
        w.write(b).expect("write");
    }
    w.into_inner().expect("finish")
}

fn event_batch(events: &[Event], dim: usize) -> RecordBatch {
    let mut b = EventBatchBuilder::new(EventSchema::new(dim), events.len());
    for e in events {
        b.push(e).expect("valid event");
    }
    b.finish().expect("batch")
}

#[tokio::test]
async fn json_round_trip_matches_the_reference_decoder() {
    let mut rng = StdRng::seed_from_u64(7);
    let lens = [0, 1000, 1, 50, 999, 0, 3];
    let events: Vec<Event> = (0..300)
        .map(|i| random_event(&mut rng, i, lens[i % lens.len()], 16))
        .collect();
    let payloads: Vec<Vec<u8>> = events.iter().map(Event::to_json).collect();
    // Two batches from two partitions, so builders are reused across batches.
    let msgs: Vec<Msg> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| ("natural", (i % 2) as i32, 1000 + i as i64, Some(p.clone())))
        .collect();
    let mut d = decoder();
    let out = run(
        &mut d,
        vec![raw_batch(&msgs[..150]), raw_batch(&msgs[150..])],
    )
    .await;
    assert_eq!(out.rows(DEAD_LETTER_PORT), 0);
    let batches = out.batches(EVENTS_PORT);
    assert_eq!(batches.len(), 2);
    let ours = arrow::compute::concat_batches(d.output_schema(), batches).expect("concat");

    let reference: Vec<Event> = payloads
        .iter()
        .map(|p| Event::from_json(p).expect("reference decodes"))
        .collect();
    assert_eq!(reference, events);
    assert_event_columns_eq(&ours, &event_batch(&reference, 16));
    assert_eq!(
        positions(&ours, "_partition", "_offset"),
        msgs.iter().map(|m| (m.1, m.2)).collect::<Vec<_>>()
    );
    assert!(
        ours["_topic"]
            .as_string::<i32>()
            .iter()
            .all(|t| t == Some("natural"))
    );
    assert_eq!(d.stats().good(), 300);
    assert_eq!(d.stats().rows(), 300);
    assert_eq!(d.stats().bad(), 0);
}

#[tokio::test]
async fn ipc_stream_rows_all_get_the_message_provenance() {
    let mut rng = StdRng::seed_from_u64(11);
    let events: Vec<Event> = (0..3)
        .map(|i| random_event(&mut rng, i, i * 40, 16))
        .collect();
    let two_batches = ipc_bytes(&[event_batch(&events[..2], 16), event_batch(&events[2..], 16)]);
    let json = events[0].to_json();
    let msgs: Vec<Msg> = vec![
        ("ad", 3, 41, Some(json)),
        ("ad", 3, 42, Some(ipc_bytes(&[event_batch(&events, 16)]))),
        ("ad", 3, 43, Some(two_batches)),
    ];
    let mut d = decoder();
    let out = run(&mut d, vec![raw_batch(&msgs)]).await;
    assert_eq!(out.rows(DEAD_LETTER_PORT), 0);
    let batch = out.batches(EVENTS_PORT)[0];
    assert_eq!(batch.num_rows(), 7);
    let offsets: Vec<i64> = positions(batch, "_partition", "_offset")
        .iter()
        .map(|p| p.1)
        .collect();
    assert_eq!(offsets, [41, 42, 42, 42, 43, 43, 43]);
    let expected: Vec<Event> = [&events[..1], &events[..], &events[..]].concat();
    assert_event_columns_eq(batch, &event_batch(&expected, 16));
    assert_eq!((d.stats().good(), d.stats().rows()), (3, 7));
}

#[tokio::test]
async fn ipc_streams_of_another_schema_or_with_a_bad_row_are_rejected_whole() {
    let mut rng = StdRng::seed_from_u64(12);
    let events: Vec<Event> = (0..3).map(|i| random_event(&mut rng, i, 5, 16)).collect();
    let events8: Vec<Event> = (0..3).map(|i| random_event(&mut rng, i, 5, 8)).collect();
    let good = event_batch(&events, 16);
    let foreign = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, false)])),
        vec![Arc::new(Int32Array::from(vec![1, 2, 3]))],
    )
    .expect("foreign batch");
    let mut label_two = good.columns().to_vec();
    label_two[12] = Arc::new(UInt8Array::from(vec![0, 2, 1]));
    let label_two = RecordBatch::try_new(good.schema(), label_two).expect("label 2 batch");
    let valid = ipc_bytes(std::slice::from_ref(&good));
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (ipc_bytes(&[foreign]), "bad-ipc", "columns"),
        (
            ipc_bytes(&[event_batch(&events8, 8)]),
            "bad-ipc",
            "item_content",
        ),
        (valid[..valid.len() / 2].to_vec(), "bad-ipc", "unreadable"),
        (ipc_bytes(&[good.slice(0, 0)]), "bad-ipc", "no rows"),
        (ipc_bytes(&[label_two]), "bad-label", "row 1"),
    ];
    let msgs: Vec<Msg> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| ("ad", 0, i as i64, Some(c.0.clone())))
        .collect();
    let mut d = decoder();
    let out = run(&mut d, vec![raw_batch(&msgs)]).await;
    assert_eq!(out.rows(EVENTS_PORT), 0);
    let dead = out.batches(DEAD_LETTER_PORT)[0];
    let reasons = dead["reason"].as_string::<i32>();
    let details = dead["detail"].as_string::<i32>();
    for (i, (payload, reason, detail)) in cases.iter().enumerate() {
        assert_eq!(reasons.value(i), *reason, "case {i}: {}", details.value(i));
        assert!(
            details.value(i).contains(detail),
            "case {i}: {}",
            details.value(i)
        );
        assert_eq!(
            dead["payload"].as_binary::<i32>().value(i),
            payload.as_slice()
        );
    }
}

/// `n` messages of which the first `bad` are empty payloads.
fn epoch_of(n: usize, bad: usize, first_offset: i64) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(n as u64);
    let msgs: Vec<Msg> = (0..n)
        .map(|i| {
            let payload = (i >= bad).then(|| random_event(&mut rng, i, 2, 16).to_json());
            ("natural", 0, first_offset + i as i64, payload)
        })
        .collect();
    raw_batch(&msgs)
}

#[tokio::test]
async fn the_bad_input_ceiling_stops_the_job_at_the_barrier() {
    let mut d = decoder();
    let messages = [
        Message::Batch(epoch_of(2000, 80, 0)),
        Message::Barrier(Epoch(1)),
        Message::Batch(epoch_of(1000, 60, 2000)),
        Message::Batch(epoch_of(1000, 60, 3000)),
        Message::Barrier(Epoch(2)),
    ];
    let err = drive(&mut d, messages, OUTPUT_PORTS)
        .await
        .expect_err("6% > 5%");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            OperatorError::BadInputCeiling {
                bad: 120,
                total: 2000,
                ..
            }
        ),
        "{text}"
    );
    for needle in ["epoch 2", "6.00%", "5.00%", "empty-payload: 120"] {
        assert!(text.contains(needle), "`{needle}` not in: {text}");
    }

    // 4% in each epoch is fine; so is 50% of an epoch of only 10 messages.
    let mut d = decoder();
    let messages = [
        Message::Batch(epoch_of(2000, 80, 0)),
        Message::Barrier(Epoch(1)),
        Message::Batch(epoch_of(2000, 80, 2000)),
        Message::Barrier(Epoch(2)),
        Message::Batch(epoch_of(10, 5, 4000)),
        Message::Barrier(Epoch(3)),
        Message::Batch(epoch_of(10, 5, 4010)),
        Message::End,
    ];
    let out = drive(&mut d, messages, OUTPUT_PORTS)
        .await
        .expect("under the ceiling");
    assert_eq!(out.rows(DEAD_LETTER_PORT), 170);
    assert_eq!(d.stats().rejected(RejectReason::EmptyPayload), 170);
}

#[tokio::test]
async fn the_ceiling_is_also_judged_at_end_of_stream() {
    let mut d = decoder();
    let messages = [Message::Batch(epoch_of(2000, 1000, 0)), Message::End];
    let err = drive(&mut d, messages, OUTPUT_PORTS)
        .await
        .expect_err("50%");
    assert!(err.to_string().contains("whole stream"), "{err}");
    assert!(err.to_string().contains("50.00%"), "{err}");
}

#[test]
fn config_defaults_parse_and_validation_name_the_field() {
    let c: DecodeConfig = serde_json::from_str("{}").expect("empty");
    assert_eq!(c, DecodeConfig::default());
    assert_eq!(c.max_event_age, Duration::from_secs(30 * 86_400));
    assert_eq!(
        (c.max_seq_len, c.content_dim, c.min_messages_for_ratio),
        (1000, 16, 1000)
    );
    let c: DecodeConfig =
        serde_json::from_str(r#"{"max-event-age":"7days","max-future":"30m","max-bad-ratio":0.1}"#)
            .expect("durations");
    assert_eq!(c.max_event_age, Duration::from_secs(7 * 86_400));
    assert_eq!(c.max_future, Duration::from_secs(1800));
    let round = serde_json::to_string(&c).expect("serialise");
    assert_eq!(
        serde_json::from_str::<DecodeConfig>(&round).expect("back"),
        c
    );
    assert!(serde_json::from_str::<DecodeConfig>(r#"{"max_seq_len":5}"#).is_err());

    for (c, field) in [
        (
            DecodeConfig {
                content_dim: 0,
                ..Default::default()
            },
            "ingest.decode.content-dim",
        ),
        (
            DecodeConfig {
                max_bad_ratio: 1.5,
                ..Default::default()
            },
            "ingest.decode.max-bad-ratio",
        ),
        (
            DecodeConfig {
                max_bad_ratio: f64::NAN,
                ..Default::default()
            },
            "ingest.decode.max-bad-ratio",
        ),
        (
            DecodeConfig {
                max_seq_len: 10_000_000,
                ..Default::default()
            },
            "ingest.decode.max-seq-len",
        ),
        (
            DecodeConfig {
                max_future: Duration::from_secs(u64::MAX),
                ..Default::default()
            },
            "ingest.decode.max-future",
        ),
    ] {
        let err = c.build().expect_err("invalid");
        assert!(
            matches!(&err, OperatorError::Config { field: f, .. } if f == field),
            "{err}"
        );
    }
}

#[test]
fn schemas_and_reason_codes_are_stable() {
    let d = decoder();
    let names: Vec<&str> = d
        .output_schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names.len(), 16);
    assert_eq!(&names[13..], ["_topic", "_partition", "_offset"]);
    assert_eq!(dead_letter_schema().fields().len(), 8);
    let codes: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
    let snapshot = d.stats().snapshot();
    assert_eq!(snapshot.len(), RejectReason::ALL.len());
    assert!(codes.iter().all(|c| snapshot.get(c) == Some(&0)));
    assert!(codes.contains(&"event-time-out-of-window") && codes.contains(&"bad-ipc"));
}
