//! Decode throughput in messages per second, on the same 10k JSON wire-format messages with
//! 50-long and with 1000-long behaviour sequences (half the events carry a 16-float content
//! vector):
//!
//! - `reference`: `Event::from_json` per message (allocates the row) + `EventBatchBuilder::push`,
//!   then `finish` (the baseline, measured in the same run);
//! - `decoder`: `Decoder::decode_batch` on the calling thread (parse straight into reused column
//!   vectors, validate, provenance, one copy into Arrow buffers);
//! - `operator`: `Operator::process_batch` on a tokio runtime, which hands the batch to
//!   `spawn_blocking` and back, to measure what that hand-off costs per 10k-message batch.

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryViewArray, Int32Array, Int64Array, RecordBatch, StringArray};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ctrflow_operators::dataflow::{Operator, VecCollector};
use ctrflow_operators::ingest::decode::{DecodeConfig, Decoder, OUTPUT_PORTS};
use ctrflow_schemas::{
    CategoryId, Device, Domain, Event, EventBatchBuilder, EventSchema, EventTime, ItemId, UserId,
    raw_message_schema,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Messages per measured iteration (one Kafka micro-batch).
const MESSAGES: usize = 10_000;
/// The fixed clock of the decoder: 2024-06-01T00:00:00Z.
const NOW: i64 = 1_717_200_000_000;

fn clock() -> i64 {
    NOW
}

fn event(rng: &mut StdRng, i: usize, seq_len: usize) -> Event {
    Event {
        event_id: format!("n-{i}"),
        event_time: EventTime(NOW - rng.random_range(0..86_400_000 * 20)),
        domain: if i.is_multiple_of(20) {
            Domain::Ad
        } else {
            Domain::Natural
        },
        user_id: UserId(rng.random_range(0..10_000_000)),
        item_id: ItemId(rng.random_range(0..5_000_000)),
        category_id: CategoryId(rng.random_range(0..500)),
        position: rng.random_range(0..20),
        hour: rng.random_range(0..24),
        device: Device::ALL[rng.random_range(0..4)],
        hist_item_ids: (0..seq_len)
            .map(|_| ItemId(rng.random_range(0..5_000_000)))
            .collect(),
        hist_category_ids: (0..seq_len)
            .map(|_| CategoryId(rng.random_range(0..500)))
            .collect(),
        item_content: i
            .is_multiple_of(2)
            .then(|| (0..16).map(|_| rng.random_range(-1.0..1.0)).collect()),
        label: u8::from(rng.random_bool(0.1)),
    }
}

/// The payloads and the raw-message batch holding them.
fn messages(seq_len: usize) -> (Vec<Vec<u8>>, RecordBatch) {
    let mut rng = StdRng::seed_from_u64(seq_len as u64);
    let payloads: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|i| event(&mut rng, i, seq_len).to_json())
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            (0..MESSAGES).map(|_| "natural"),
        )),
        Arc::new(Int32Array::from_iter_values(
            (0..MESSAGES).map(|i| (i % 4) as i32),
        )),
        Arc::new(Int64Array::from_iter_values(
            (0..MESSAGES).map(|i| i as i64),
        )),
        Arc::new(Int64Array::from_iter_values((0..MESSAGES).map(|_| NOW))),
        Arc::new(BinaryViewArray::from_iter_values(payloads.iter())),
    ];
    let raw = RecordBatch::try_new(raw_message_schema(), columns).expect("raw batch");
    (payloads, raw)
}

fn reference(schema: &EventSchema, payloads: &[Vec<u8>]) -> RecordBatch {
    let mut builder = EventBatchBuilder::new(schema.clone(), payloads.len());
    for p in payloads {
        let e = Event::from_json(p).expect("valid event");
        builder.push(&e).expect("valid event");
    }
    builder.finish().expect("batch")
}

fn decoder() -> Decoder {
    DecodeConfig::default()
        .build()
        .expect("default config")
        .with_clock(clock)
}

fn bench(c: &mut Criterion) {
    let schema = EventSchema::default();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    for seq_len in [50, 1000] {
        let (payloads, raw) = messages(seq_len);
        let bytes: usize = payloads.iter().map(Vec::len).sum();
        eprintln!(
            "seq {seq_len}: {MESSAGES} messages, {} bytes of JSON ({} per message)",
            bytes,
            bytes / MESSAGES
        );
        // Both paths accept every message and agree on the row count.
        let mut d = decoder();
        let decoded = d.decode_batch(&raw).expect("decode");
        assert!(decoded.dead_letters.is_none());
        assert_eq!(decoded.events.map(|b| b.num_rows()), Some(MESSAGES));
        assert_eq!(reference(&schema, &payloads).num_rows(), MESSAGES);

        let mut group = c.benchmark_group(format!("decode/seq{seq_len}"));
        group.throughput(Throughput::Elements(MESSAGES as u64));
        group.bench_function("reference", |b| {
            b.iter(|| black_box(reference(&schema, &payloads)))
        });
        group.bench_function("decoder", |b| {
            b.iter(|| black_box(d.decode_batch(&raw).expect("decode")))
        });
        let mut op = decoder();
        let mut out = VecCollector::new(OUTPUT_PORTS);
        group.bench_function("operator", |b| {
            b.iter(|| {
                runtime
                    .block_on(op.process_batch(raw.clone(), &mut out))
                    .expect("decode");
                out.ports.iter_mut().for_each(Vec::clear);
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
