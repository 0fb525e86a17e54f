//! Trainer tests on synthetic events: features, learning, sparse updates, errors,
//! checkpoint/resume, transfer; the shuffle buffer and the training thread in submodules.

use std::sync::Arc;

use arrow::array::{RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use ctrflow_schemas::{
    CategoryId, Device as DeviceClass, Domain, Event, EventBatchBuilder, EventSchema, EventTime,
    ItemId, UserId, columns,
};

use super::*;
use crate::ModelsError;
use crate::nn::test_util;
use crate::nn::{CtrNetConfig, TpmConfig};
use crate::rng::SplitMix64;

mod backends;
mod historical;
mod inputs;
mod plugin;
mod projected;
mod shuffle;
mod sparse;
mod srp;
mod staged;
mod thread;

const USERS: u64 = 60;
const ITEMS: u64 = 120;
const DAY0_MS: i64 = 20_000 * 86_400_000;

fn category_of(item: u64) -> u64 {
    item % 8
}

/// A user likes two of the eight categories.
fn likes(user: u64, category: u64) -> bool {
    category % 4 == user % 4
}

/// `n` synthetic events from `seed`: the label is a user x category interaction, histories
/// (0..=max_hist long) lean towards the user's liked categories.
fn events(n: usize, seed: u64, max_hist: usize) -> Vec<Event> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|i| {
            let user = rng.below(USERS as usize) as u64;
            let item = rng.below(ITEMS as usize) as u64;
            let len = rng.below(max_hist + 1);
            let hist: Vec<u64> = (0..len)
                .map(|_| {
                    loop {
                        let h = rng.below(ITEMS as usize) as u64;
                        if likes(user, category_of(h)) || rng.below(5) == 0 {
                            break h;
                        }
                    }
                })
                .collect();
            Event {
                event_id: format!("e{seed}-{i}"),
                event_time: EventTime(DAY0_MS + i as i64),
                domain: Domain::Natural,
                user_id: UserId(1_000 + user),
                item_id: ItemId(5_000 + item),
                category_id: CategoryId(90 + category_of(item)),
                position: rng.below(10) as u32,
                hour: rng.below(24) as u8,
                device: DeviceClass::ALL[rng.below(4)],
                hist_item_ids: hist.iter().map(|&h| ItemId(5_000 + h)).collect(),
                hist_category_ids: hist
                    .iter()
                    .map(|&h| CategoryId(90 + category_of(h)))
                    .collect(),
                item_content: None,
                label: u8::from(likes(user, category_of(item))),
            }
        })
        .collect()
}

fn record_batch(events: &[Event]) -> RecordBatch {
    let mut builder = EventBatchBuilder::new(EventSchema::default(), events.len());
    for e in events {
        builder.push(e).expect("valid event");
    }
    builder.finish().expect("batch")
}

/// Record batches of `rows` rows each.
fn record_batches(events: &[Event], rows: usize) -> Vec<RecordBatch> {
    events.chunks(rows).map(record_batch).collect()
}

fn feature_config() -> FeatureConfig {
    FeatureConfig {
        short_len: 10,
        long_len: 30,
    }
}

fn train_config(seed: u64) -> TrainConfig {
    TrainConfig {
        learning_rate: 0.01,
        batch_size: 100,
        shuffle_rows: 400,
        seed,
        features: feature_config(),
        ..TrainConfig::default()
    }
}

fn ctr_config() -> CtrNetConfig {
    CtrNetConfig::new()
        .with_d_embed(8)
        .with_d_context(CONTEXT_WIDTH)
        .with_short_len(10)
        .with_eta_top_k(5)
        .with_din_hidden(vec![8])
        .with_use_historical(false)
        .with_mlp_hidden(vec![32, 16])
}

fn features(batch: &RecordBatch) -> FeatureBatch {
    FeatureBatch::from_record_batch(batch, &feature_config()).expect("features")
}

#[test]
fn features_are_read_column_wise() {
    let mut evs = events(5, 1, 40);
    evs[0].hist_item_ids.clear();
    evs[0].hist_category_ids.clear();
    evs[1].hist_item_ids = (0..45).map(|i| ItemId(5_000 + i)).collect();
    evs[1].hist_category_ids = vec![CategoryId(90); 45];
    evs[2].position = 3;
    evs[2].hour = 23;
    evs[2].device = DeviceClass::Android;
    let f = features(&record_batch(&evs));
    assert_eq!(f.rows(), 5);
    assert_eq!(f.user_ids[3], evs[3].user_id.0);
    assert_eq!(f.item_ids[4], evs[4].item_id.0);
    assert_eq!(f.category_ids[2], evs[2].category_id.0);
    assert_eq!(f.labels[1], f32::from(evs[1].label));
    assert_eq!(
        &f.context[2 * CONTEXT_WIDTH..3 * CONTEXT_WIDTH],
        &[0.25, 1.0, 0.0, 0.0, 1.0, 0.0]
    );
    // Empty history: empty rows, all-false mask.
    assert_eq!(f.short.len_of(0), 0);
    assert_eq!(f.long.len_of(0), 0);
    assert!(f.short.mask()[..10].iter().all(|m| !m));
    // Truncation keeps the most recent (the first) and is counted.
    assert_eq!(f.short.row(1), &(5_000..5_010).collect::<Vec<_>>()[..]);
    assert_eq!(f.long.row(1), &(5_000..5_030).collect::<Vec<_>>()[..]);
    let long_rows = evs.iter().filter(|e| e.hist_item_ids.len() > 30).count();
    let dropped: usize = evs
        .iter()
        .map(|e| e.hist_item_ids.len().saturating_sub(30))
        .sum();
    assert!(long_rows >= 1);
    assert_eq!(f.truncated_rows, long_rows);
    assert_eq!(f.truncated_ids, dropped as u64);
    assert_eq!(f.day.0, 20_000);

    // Refilling reuses the buffers and gives the same result.
    let mut reused = FeatureBatch::new();
    reused
        .fill_from_record_batch(&record_batch(&events(7, 2, 40)), &feature_config())
        .expect("features");
    reused
        .fill_from_record_batch(&record_batch(&evs), &feature_config())
        .expect("features");
    assert_eq!(reused, f);
}

#[test]
fn feature_errors_name_the_column() {
    let batch = record_batch(&events(3, 3, 5));
    let without = batch
        .project(&[0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12])
        .expect("project");
    let err = FeatureBatch::from_record_batch(&without, &feature_config()).expect_err("must fail");
    assert!(
        matches!(
            err,
            ModelsError::Column {
                column: "item_id",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("item_id"));

    // `label` as UInt64 instead of UInt8.
    let schema = batch.schema();
    let index = schema.index_of(columns::LABEL).expect("label");
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[index] = Field::new(columns::LABEL, DataType::UInt64, false);
    let mut arrays = batch.columns().to_vec();
    arrays[index] = Arc::new(UInt64Array::from(vec![0u64, 1, 0]));
    let wrong = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("batch");
    let err = FeatureBatch::from_record_batch(&wrong, &feature_config()).expect_err("must fail");
    assert!(err.to_string().contains("column `label`"), "{err}");
}

/// Trains `epochs` over `train` in `batch`-row batches (shuffled by a seeded buffer).
fn train_epochs(trainer: &mut CtrTrainer, train: &[Event], epochs: usize, seed: u64) -> Vec<f32> {
    let batches = record_batches(train, 70);
    let mut losses = Vec::new();
    for epoch in 0..epochs {
        let mut buffer = ShuffleBuffer::new(400, 100, seed + epoch as u64).expect("buffer");
        let mut step = |b: RecordBatch| {
            losses.push(trainer.train_step(&features(&b)).expect("step"));
        };
        for b in &batches {
            buffer.push(b.clone()).expect("push");
            while let Some(out) = buffer.pop().expect("pop") {
                step(out);
            }
        }
        while let Some(out) = buffer.flush().expect("flush") {
            step(out);
        }
    }
    losses
}

/// 600 held-out events (seed 12) in batches of 200, for evaluation.
fn held_out() -> Vec<FeatureBatch> {
    record_batches(&events(600, 12, 40), 200)
        .iter()
        .map(features)
        .collect()
}

#[test]
fn ctr_trainer_learns_a_user_category_interaction() {
    let _rng = test_util::device(101);
    let train = events(2_000, 11, 40);
    let held_out = held_out();
    let mut trainer = CtrTrainer::new(train_config(7), ctr_config()).expect("trainer");
    let before = trainer.evaluate(&held_out).expect("evaluate");
    let losses = train_epochs(&mut trainer, &train, 15, 100);
    let first: f32 = losses[..10].iter().sum::<f32>() / 10.0;
    let last: f32 = losses[losses.len() - 10..].iter().sum::<f32>() / 10.0;
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(last < 0.8 * first, "loss {first} -> {last}");
    let after = trainer.evaluate(&held_out).expect("evaluate");
    eprintln!(
        "held-out AUC {} (before {}), loss {first} -> {last}",
        after.auc, before.auc
    );
    assert!(
        after.auc > 0.7,
        "held-out AUC {} (before {})",
        after.auc,
        before.auc
    );
    assert_eq!(trainer.stats().steps, losses.len() as u64);
    assert_eq!(trainer.stats().samples, 15 * 2_000);
    assert!(trainer.stats().truncated_rows > 0);
}

#[test]
fn only_the_batch_rows_change() {
    let _rng = test_util::device(102);
    let mut trainer = CtrTrainer::new(train_config(8), ctr_config()).expect("trainer");
    let evs = events(300, 13, 20);
    // Admit every id, then train on one small batch.
    trainer
        .train_step(&features(&record_batch(&evs[..200])))
        .expect("step");
    let snapshot = |t: &CtrTrainer| {
        let rows = |table: &crate::embedding::EmbeddingTable| {
            table
                .rows()
                .map(|r| (r.id, r.vector.to_vec()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        (
            rows(&t.tables().user),
            rows(&t.tables().item),
            rows(&t.tables().category),
        )
    };
    let before = snapshot(&trainer);
    let batch = features(&record_batch(&evs[200..210]));
    trainer.train_step(&batch).expect("step");
    let after = snapshot(&trainer);

    let touched_users: std::collections::BTreeSet<u64> = batch.user_ids.iter().copied().collect();
    let touched_items: std::collections::BTreeSet<u64> = batch
        .item_ids
        .iter()
        .chain(&batch.short.ids)
        .chain(&batch.long.ids)
        .copied()
        .collect();
    for (id, row) in &before.0 {
        let changed = after.0[id] != *row;
        assert_eq!(changed, touched_users.contains(id), "user {id}");
    }
    let mut changed_items = 0;
    for (id, row) in &before.1 {
        let changed = after.1[id] != *row;
        assert!(
            !changed || touched_items.contains(id),
            "untouched item {id} changed"
        );
        changed_items += usize::from(changed);
    }
    // The candidates always get gradients; untouched rows never do.
    assert!(changed_items >= batch.item_ids.len() / 2, "{changed_items}");
}

#[test]
fn non_finite_input_is_an_error_naming_the_step() {
    let _rng = test_util::device(103);
    let mut trainer = CtrTrainer::new(train_config(9), ctr_config()).expect("trainer");
    let good = features(&record_batch(&events(50, 14, 20)));
    trainer.train_step(&good).expect("step 0");
    trainer.train_step(&good).expect("step 1");
    let mut bad = good.clone();
    bad.context[3 * CONTEXT_WIDTH + 1] = f32::NAN;
    let err = trainer.train_step(&bad).expect_err("must fail");
    assert!(
        matches!(
            err,
            ModelsError::NonFiniteInput {
                step: 2,
                feature: "context",
                row: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("training step 2"), "{err}");
    assert_eq!(trainer.step(), 2);
    // The trainer is still usable.
    trainer.train_step(&good).expect("step 2");
}

#[test]
fn tpm_trainer_trains() {
    let _rng = test_util::device(104);
    let config = TpmConfig::new()
        .with_d_embed(8)
        .with_d_context(CONTEXT_WIDTH)
        .with_hidden(vec![16]);
    let mut trainer = TpmTrainer::new(train_config(10), config).expect("trainer");
    let batches: Vec<FeatureBatch> = record_batches(&events(1_000, 15, 5), 100)
        .iter()
        .map(features)
        .collect();
    let mut losses = Vec::new();
    for _ in 0..5 {
        for b in &batches {
            losses.push(trainer.train_step(b).expect("step"));
        }
    }
    assert!(losses[losses.len() - 1] < losses[0], "{losses:?}");
    // TPM does not read the sequences: only candidate items get rows.
    assert_eq!(trainer.tables().item.len() as u64, ITEMS);
}

#[test]
fn resume_from_a_checkpoint_is_identical() {
    let _rng = test_util::device(106);
    let evs = events(2_000, 17, 40);
    let batches = record_batches(&evs, 70);
    let probe = features(&record_batch(&events(80, 18, 40)));
    let (n, k) = (10, 4);
    // Dropout draws from the per-step seed, so it resumes identically too.
    let net_config = ctr_config().with_dropout(0.1);

    // Drives `trainer` with the shuffled stream from `buffer` until `steps` steps are done.
    let run = |trainer: &mut CtrTrainer,
               buffer: &mut ShuffleBuffer,
               next: &mut usize,
               steps: usize,
               losses: &mut Vec<f32>| {
        while trainer.step() < steps as u64 {
            if let Some(out) = buffer.pop().expect("pop") {
                losses.push(trainer.train_step(&features(&out)).expect("step"));
            } else {
                buffer.push(batches[*next].clone()).expect("push");
                *next += 1;
            }
        }
    };

    let mut straight = CtrTrainer::new(train_config(12), net_config.clone()).expect("trainer");
    let mut buffer = ShuffleBuffer::new(400, 100, 5).expect("buffer");
    let (mut next, mut losses) = (0, Vec::new());
    run(&mut straight, &mut buffer, &mut next, n, &mut losses);
    let expected = straight.predict(&probe).expect("predict");
    drop((straight, buffer));

    let mut first = CtrTrainer::new(train_config(12), net_config.clone()).expect("trainer");
    let mut buffer = ShuffleBuffer::new(400, 100, 5).expect("buffer");
    let (mut next2, mut resumed_losses) = (0, Vec::new());
    run(&mut first, &mut buffer, &mut next2, k, &mut resumed_losses);
    let checkpoint = first.checkpoint(Some(&buffer)).expect("checkpoint");
    drop((first, buffer));
    for name in [
        blobs::NET_WEIGHTS,
        blobs::OPTIMIZER,
        blobs::ITEM_TABLE,
        blobs::SHUFFLE,
    ] {
        assert!(checkpoint.blobs.contains_key(name), "{name}");
    }

    let mut resumed = CtrTrainer::resume(&checkpoint).expect("resume");
    let mut buffer = checkpoint
        .shuffle_buffer()
        .expect("shuffle")
        .expect("stored");
    assert_eq!(resumed.step(), k as u64);
    run(
        &mut resumed,
        &mut buffer,
        &mut next2,
        n,
        &mut resumed_losses,
    );
    assert_eq!(next2, next);
    assert_eq!(resumed_losses, losses);
    let got = resumed.predict(&probe).expect("predict");
    assert_eq!(
        got.iter().map(|p| p.to_bits()).collect::<Vec<_>>(),
        expected.iter().map(|p| p.to_bits()).collect::<Vec<_>>()
    );

    // A missing blob is an error naming it.
    let mut broken = checkpoint.clone();
    broken.blobs.remove(blobs::ITEM_TABLE);
    let err = CtrTrainer::resume(&broken).expect_err("must fail");
    assert!(err.to_string().contains(blobs::ITEM_TABLE), "{err}");
}

#[test]
fn actr_from_cpm_copies_all_but_batch_norm_and_starts_counting_afresh() {
    use crate::nn::ParamAction;
    let _rng = test_util::device(108);
    let evs = events(600, 19, 20);
    let mut cpm = CtrTrainer::new(train_config(13), ctr_config()).expect("trainer");
    for batch in record_batches(&evs, 100) {
        cpm.train_step(&features(&batch)).expect("step");
    }
    let checkpoint = cpm.checkpoint(None).expect("checkpoint");
    let (mut actr, report) = CtrTrainer::from_cpm(&checkpoint, train_config(14)).expect("from cpm");
    assert!(report.count(ParamAction::Reset) > 0, "batch norm reset");
    assert!(report.count(ParamAction::Copied) > report.count(ParamAction::Reset));
    assert!(
        report
            .paths(ParamAction::Reset)
            .all(|p| p.contains("bn") || p.contains("norm") || p.contains("running")),
        "only batch-norm paths are reset: {report}"
    );
    assert_eq!(actr.step(), 0);
    // The CPM's tables come along, row for row.
    for id in evs.iter().take(50).map(|e| e.user_id.0) {
        assert_eq!(actr.tables().user.row(id), cpm.tables().user.row(id));
    }
    // Batch norm is fresh, so predictions differ from the CPM's; training continues.
    let probe = features(&record_batch(&events(50, 20, 20)));
    assert_ne!(
        actr.predict(&probe).expect("a"),
        cpm.predict(&probe).expect("c")
    );
    assert!(actr.train_step(&probe).expect("step").is_finite());
}

#[test]
fn a_trainer_starts_from_its_seed_whatever_other_trainers_draw_meanwhile() {
    // burn initialises parameters lazily, on first use, from its process-wide RNG. A trainer
    // draws its whole network when it is built, so another trainer's steps between building
    // and first use (as in the daily job's concurrent TPM, CPM and A-CTR) change nothing.
    let _rng = test_util::device(103);
    let held_out = held_out();
    let predict = |trainer: &mut CtrTrainer| -> Vec<u32> {
        held_out
            .iter()
            .flat_map(|b| trainer.predict(b).expect("predict"))
            .map(f32::to_bits)
            .collect()
    };
    let mut alone = CtrTrainer::new(train_config(7), ctr_config()).expect("trainer");
    let expected = predict(&mut alone);

    let mut built = CtrTrainer::new(train_config(7), ctr_config()).expect("trainer");
    let mut other = CtrTrainer::new(train_config(99), ctr_config()).expect("trainer");
    let batch = record_batch(&events(100, 5, 20));
    other.train_step(&features(&batch)).expect("step");
    assert_eq!(predict(&mut built), expected);
}
