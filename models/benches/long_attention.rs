//! ETA against full target attention over long behaviour sequences: one CtrNet training step
//! (forward, backward, dense Adam and the row-sparse table updates) and one prediction pass, at
//! batch 256 with 1,000-long histories, the same rows for both.
//!
//! - `full-attention`: target attention over all L = 1000 behaviours (the baseline);
//! - `eta-top32`: SimHash (32 bits) Hamming top-32 retrieval, then target attention over those 32.
//!
//! `cargo bench -p ctrflow-models --bench long_attention`; docs/benchmarks.md has the figures as
//! ratios of the two, measured in the same run.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ctrflow_models::embedding::Day;
use ctrflow_models::nn::CtrNetConfig;
use ctrflow_models::train::{CONTEXT_WIDTH, CtrTrainer, FeatureBatch, Sequence, TrainConfig};

const BATCH: usize = 256;
const LONG: usize = 1000;
const SHORT: usize = 50;
const ITEMS: u64 = 20_000;

/// A deterministic batch: every row has a full 1,000-long history.
fn batch() -> FeatureBatch {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move |bound: u64| {
        state = ctrflow_models::mix64(state.wrapping_add(1));
        state % bound
    };
    let mut b = FeatureBatch::new();
    let (mut short, mut long) = (Sequence::default(), Sequence::default());
    short.offsets.push(0);
    long.offsets.push(0);
    short.max_len = SHORT;
    long.max_len = LONG;
    for row in 0..BATCH {
        b.user_ids.push(row as u64);
        b.item_ids.push(next(ITEMS));
        b.category_ids.push(next(40));
        b.context.extend(std::iter::repeat_n(0.0, CONTEXT_WIDTH));
        b.labels.push((next(2)) as f32);
        let history: Vec<u64> = (0..LONG).map(|_| next(ITEMS)).collect();
        short.ids.extend_from_slice(&history[..SHORT]);
        short.offsets.push(short.ids.len() as u32);
        long.ids.extend_from_slice(&history);
        long.offsets.push(long.ids.len() as u32);
    }
    b.short = short;
    b.long = long;
    b.day = Day(0);
    b
}

fn trainer(full_attention: bool) -> CtrTrainer {
    let config = TrainConfig {
        batch_size: BATCH,
        shuffle_rows: BATCH,
        seed: 7,
        features: ctrflow_models::train::FeatureConfig {
            short_len: SHORT,
            long_len: LONG,
        },
        ..TrainConfig::default()
    };
    let net = CtrNetConfig::new()
        .with_d_context(CONTEXT_WIDTH)
        .with_eta_top_k(32)
        .with_full_long_attention(full_attention)
        .with_use_historical(false);
    CtrTrainer::new(config, net).expect("trainer")
}

fn long_attention(c: &mut Criterion) {
    let batch = batch();
    let mut group = c.benchmark_group("long_attention_L1000_batch256");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, full) in [("full-attention", true), ("eta-top32", false)] {
        let mut t = trainer(full);
        group.bench_function(format!("train_step/{name}"), |b| {
            b.iter(|| black_box(t.train_step(&batch).expect("step")))
        });
        group.bench_function(format!("predict/{name}"), |b| {
            b.iter(|| black_box(t.predict(&batch).expect("predict")))
        });
    }
    group.finish();
}

criterion_group!(benches, long_attention);
criterion_main!(benches);
