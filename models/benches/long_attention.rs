//! ETA against full target attention over long behaviour sequences: one CtrNet training step
//! (forward, backward, dense Adam and the row-sparse table updates) and one prediction pass, at
//! batch 256 with 1,000-long histories, the same rows for both.
//!
//! - `full-attention`: target attention over all L = 1000 behaviours (the baseline);
//! - `eta-top32`: SimHash (32 bits) Hamming top-32 retrieval, then target attention over those 32.
//!
//! A second group, `long_branch`, times the long-behaviour branch alone (forward + backward of
//! full attention over 1,000 against ETA's hashing, top-32 and attention over 32).
//!
//! `cargo bench -p ctrflow-models --bench long_attention`; docs/benchmarks.md has the figures as
//! ratios of the two, measured in the same run.

mod support;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ctrflow_models::nn::CtrNetConfig;
use ctrflow_models::train::{CONTEXT_WIDTH, CtrTrainer, FeatureBatch, TrainConfig};
use support::{BatchShape, Rng, full_history_batch};

const BATCH: usize = 256;
const LONG: usize = 1000;
const SHORT: usize = 50;
const ITEMS: u64 = 20_000;

/// A deterministic batch: every row has a full 1,000-long history.
fn batch() -> FeatureBatch {
    let shape = BatchShape {
        rows: BATCH,
        users: BATCH as u64,
        items: ITEMS,
        categories: 40,
        short: SHORT,
        long: LONG,
    };
    full_history_batch(&mut Rng(0x9E37_79B9_7F4A_7C15), &shape)
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

/// The long-behaviour branch alone, forward + backward, the gradient read back for the tables:
/// target attention over all L = 1000 behaviours against ETA (SimHash codes of the behaviours'
/// current rows, Hamming top-32, attention over the 32 gathered rows). The rest of the step
/// (DIN over the short sequence, MLP, lookups) is the same for both and left out.
fn long_branch(c: &mut Criterion) {
    use burn::tensor::{Bool, Device, Tensor, TensorData};
    use ctrflow_models::eta::{SimHash, TopKScratch, top_k_by_hamming_batch};
    use ctrflow_models::nn::TargetAttentionConfig;

    const D: usize = 16;
    const K: usize = 32;
    let device = Device::flex().autodiff();
    device.seed(5);
    let attention = TargetAttentionConfig::new(D).with_n_heads(2).init(&device);
    let mut rng = Rng(0x5EED);
    let mut value = move || rng.below(2001) as f32 / 1000.0 - 1.0;
    let rows: Vec<f32> = (0..BATCH * LONG * D).map(|_| value()).collect();
    let targets: Vec<f32> = (0..BATCH * D).map(|_| value()).collect();
    let target = || Tensor::<2>::from_data(TensorData::new(targets.clone(), [BATCH, D]), &device);
    let all_true = |n: usize| {
        Tensor::<2, Bool>::from_data(TensorData::new(vec![true; BATCH * n], [BATCH, n]), &device)
    };
    let simhash = SimHash::new(D, 32, 9).expect("simhash");

    let mut group = c.benchmark_group("long_branch_L1000_batch256");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("full-attention", |b| {
        b.iter(|| {
            let leaf =
                Tensor::<2>::from_data(TensorData::new(rows.clone(), [BATCH * LONG, D]), &device)
                    .require_grad();
            let out = attention.forward(
                target(),
                leaf.clone().reshape([BATCH, LONG, D]),
                all_true(LONG),
            );
            let mut grads = out.sum().backward();
            black_box(leaf.grad_remove(&mut grads).map(|g| g.into_data()))
        })
    });
    let (mut codes, mut target_codes) = (vec![0u64; BATCH * LONG], vec![0u64; BATCH]);
    let (mut top, mut counts, mut scratch) =
        (vec![0u32; BATCH * K], vec![0u32; BATCH], TopKScratch::new());
    let valid = vec![LONG as u32; BATCH];
    group.bench_function("eta-top32", |b| {
        b.iter(|| {
            simhash.encode(&rows, &mut codes).expect("codes");
            simhash.encode(&targets, &mut target_codes).expect("codes");
            top_k_by_hamming_batch(
                &target_codes,
                &codes,
                &valid,
                K,
                &mut scratch,
                &mut top,
                &mut counts,
            )
            .expect("top-k");
            let mut picked = Vec::with_capacity(BATCH * K * D);
            for (i, &j) in top.iter().enumerate() {
                let row = (i / K) * LONG + j as usize;
                picked.extend_from_slice(&rows[row * D..(row + 1) * D]);
            }
            let leaf = Tensor::<2>::from_data(TensorData::new(picked, [BATCH * K, D]), &device)
                .require_grad();
            let out = attention.forward(target(), leaf.clone().reshape([BATCH, K, D]), all_true(K));
            let mut grads = out.sum().backward();
            black_box(leaf.grad_remove(&mut grads).map(|g| g.into_data()))
        })
    });
    group.finish();
}

criterion_group!(benches, long_attention, long_branch);
criterion_main!(benches);
