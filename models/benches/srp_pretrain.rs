//! What SRP4CTR pre-training costs the TPM job: the time of a TPM training step alone (the
//! baseline) against a TPM step plus its SRP4CTR masked-behaviour step, for a few settings of
//! `sequences-per-step` and `candidates`, measured in the same run on the same batches.
//!
//! Batches of 1,024 rows; 20,000 users, 50,000 items (skewed: the square of a uniform draw),
//! 100 categories; histories of 20..=200 behaviours (the encoder reads the 50 most recent).
//! TPM: d = 8, MLP 32-16; SRP: d_s = 16, 2 layers, 2 heads.
//!
//! ```text
//! cargo test -p ctrflow-models --bench srp_pretrain --no-run
//! B=$(ls -t ~/.cache/ctrflow-target/debug/deps/srp_pretrain-* | grep -v '\.d$' | head -1)
//! $B --bench [--batches N]
//! ```
//! Without `--bench` (as `cargo test --all-targets` runs it) two steps per setting check that
//! the pre-trainer steps once per TPM step.

use std::time::Instant;

use ctrflow_models::embedding::Day;
use ctrflow_models::mix64;
use ctrflow_models::nn::TpmConfig;
use ctrflow_models::train::{
    CONTEXT_WIDTH, FeatureBatch, FeatureConfig, Sequence, SrpPretrainConfig, TpmTrainer,
    TrainConfig,
};

const BATCH: usize = 1024;

/// A seeded stream of `batches` synthetic batches.
fn batches(batches: usize) -> Vec<FeatureBatch> {
    let mut state = 0x5EED_u64;
    let mut next = move || {
        state = mix64(state);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let item = |next: &mut dyn FnMut() -> f64| {
        let u = next();
        (u * u * 50_000.0) as u64
    };
    (0..batches)
        .map(|_| {
            let mut b = FeatureBatch::default();
            let mut long = Sequence {
                offsets: vec![0],
                max_len: 200,
                ..Sequence::default()
            };
            let mut short = Sequence {
                offsets: vec![0],
                max_len: 50,
                ..Sequence::default()
            };
            for _ in 0..BATCH {
                b.user_ids.push((next() * 20_000.0) as u64);
                let candidate = item(&mut next);
                b.item_ids.push(candidate);
                b.category_ids.push(candidate % 100);
                b.context.extend([0.5, 0.5, 1.0, 0.0, 0.0, 0.0]);
                b.labels.push(f32::from(next() < 0.3));
                let len = 20 + (next() * 181.0) as usize;
                for j in 0..len {
                    let h = item(&mut next);
                    long.ids.push(h);
                    long.categories.push(h % 100);
                    if j < 50 {
                        short.ids.push(h);
                        short.categories.push(h % 100);
                    }
                }
                long.offsets.push(long.ids.len() as u32);
                short.offsets.push(short.ids.len() as u32);
            }
            b.long = long;
            b.short = short;
            b.day = Day(20_000);
            b
        })
        .collect()
}

fn tpm() -> TpmTrainer {
    let train = TrainConfig {
        batch_size: BATCH,
        shuffle_rows: BATCH,
        seed: 3,
        features: FeatureConfig {
            short_len: 50,
            long_len: 200,
        },
        ..TrainConfig::default()
    };
    let net = TpmConfig::new()
        .with_d_embed(8)
        .with_d_context(CONTEXT_WIDTH)
        .with_hidden(vec![32, 16]);
    TpmTrainer::new(train, net).expect("tpm")
}

/// Seconds per step of `trainer` over `stream`.
fn seconds_per_step(trainer: &mut TpmTrainer, stream: &[FeatureBatch]) -> f64 {
    // One untimed step: tables grow and buffers reach their working size.
    trainer.train_step(&stream[0]).expect("warm-up step");
    let start = Instant::now();
    for batch in &stream[1..] {
        trainer.train_step(batch).expect("step");
    }
    start.elapsed().as_secs_f64() / (stream.len() - 1) as f64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let n = args
        .iter()
        .position(|a| a == "--batches")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(if bench { 30 } else { 2 })
        .max(2);
    let stream = batches(n);
    let baseline = seconds_per_step(&mut tpm(), &stream);
    let settings: &[(usize, usize)] = if bench {
        &[
            (512, 1024),
            (256, 1024),
            (128, 1024),
            (512, 256),
            (128, 256),
        ]
    } else {
        &[(16, 32)]
    };
    if bench {
        println!(
            "TPM step alone: {:.1} ms ({:.0} rows/s)",
            baseline * 1e3,
            BATCH as f64 / baseline
        );
        println!(
            "| sequences-per-step | candidates | TPM + SRP step, ms | / TPM step alone | SRP sequences/s |"
        );
        println!("|---|---|---|---|---|");
    }
    for &(sequences, candidates) in settings {
        let mut trainer = tpm();
        trainer
            .enable_srp_pretraining(SrpPretrainConfig {
                sequences_per_step: sequences,
                candidates,
                ..SrpPretrainConfig::default()
            })
            .expect("srp");
        let with_srp = seconds_per_step(&mut trainer, &stream);
        let stats = trainer.srp_pretrainer().expect("on").stats();
        assert_eq!(stats.steps, n as u64, "one SRP step per TPM step");
        if bench {
            let srp = (with_srp - baseline).max(1e-9);
            println!(
                "| {sequences} | {candidates} | {:.1} | {:.1}x | {:.0} |",
                with_srp * 1e3,
                with_srp / baseline,
                sequences as f64 / srp
            );
        }
    }
}
