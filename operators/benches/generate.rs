//! Throughput of the synthetic generator against Parquet encoding, in events per second, in one
//! run: (a) generating events only, (b) encoding already generated events into an in-memory
//! Parquet file (the baseline: what the archive writer costs per event), (c) both, as
//! `ctrflow generate` does. Sequences average about 500 items (default `max-seq-len` 1000 with
//! prior histories), so an event is about 8 KB of list data.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ctrflow_operators::generate::{Generator, GeneratorConfig};
use ctrflow_schemas::{Event, EventBatchBuilder, EventSchema};
use ctrflow_storage::{ParquetWriteOptions, encode_parquet};

/// Events per measured iteration (one generator chunk, one Parquet file).
const EVENTS: usize = 4096;

fn config() -> GeneratorConfig {
    GeneratorConfig {
        // Enough days that the benchmark never exhausts the generator; a multiple of EVENTS per
        // day so every chunk is full.
        days: 3650,
        events_per_day: 5 * EVENTS as u64,
        ..GeneratorConfig::default()
    }
}

fn encode(schema: &EventSchema, events: &[Event], options: &ParquetWriteOptions) -> usize {
    let mut builder = EventBatchBuilder::new(schema.clone(), events.len());
    for e in events {
        builder.push(e).expect("valid event");
    }
    let batch = builder.finish().expect("batch");
    encode_parquet(schema.arrow(), &[batch], options)
        .expect("encode")
        .len()
}

fn next_chunk(generator: &mut Generator) -> Vec<Event> {
    generator
        .next_chunk(EVENTS)
        .expect("the benchmark never runs out of days")
        .events
}

fn bench(c: &mut Criterion) {
    let cfg = config();
    let options = ParquetWriteOptions::default();
    let mut group = c.benchmark_group("generate");
    group.throughput(Throughput::Elements(EVENTS as u64));
    // An encoding iteration takes a few hundred milliseconds: 20 samples keep a run short.
    group.sample_size(20);

    let mut generator = Generator::new(&cfg).expect("valid config");
    let schema = generator.schema().clone();
    let sample = next_chunk(&mut generator);
    let mean_seq = sample.iter().map(|e| e.hist_item_ids.len()).sum::<usize>() / EVENTS;
    let bytes = encode(&schema, &sample, &options);
    eprintln!(
        "sample chunk: {EVENTS} events, mean sequence {mean_seq}, {} bytes of Parquet ({} per event)",
        bytes,
        bytes / EVENTS
    );

    group.bench_function("events_only", |b| {
        b.iter(|| black_box(next_chunk(&mut generator)))
    });
    group.bench_function("parquet_encode_only", |b| {
        b.iter(|| black_box(encode(&schema, &sample, &options)))
    });
    group.bench_function("events_and_parquet", |b| {
        b.iter(|| {
            let events = next_chunk(&mut generator);
            black_box(encode(&schema, &events, &options))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
