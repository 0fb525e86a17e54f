//! The training graph of [`train_window`] on a generated archive in an in-memory store.

use ctrflow_models::ModelsError;
use ctrflow_models::nn::TpmConfig;
use ctrflow_models::train::{CONTEXT_WIDTH, TpmTrainer, TrainConfig};
use ctrflow_operators::generate::{GeneratorConfig, generate_archive};
use ctrflow_storage::Storage;

use super::*;
use crate::daily::holdout::Side;

/// Two generated days in the store `memory://{name}`.
async fn archive(name: &str) -> (Storage, Vec<EventDate>) {
    let storage = Storage::open(&format!("memory://{name}")).expect("store");
    let config = GeneratorConfig {
        days: 2,
        events_per_day: 1_500,
        ..GeneratorConfig::default()
    };
    generate_archive(&storage, &config, |_| {})
        .await
        .expect("archive");
    let days = vec![config.start_date, config.start_date.succ()];
    (storage, days)
}

fn tpm(train: TrainConfig) -> ctrflow_models::Result<TpmTrainer> {
    TpmTrainer::new(
        train,
        TpmConfig::new()
            .with_d_embed(4)
            .with_d_context(CONTEXT_WIDTH)
            .with_hidden(vec![8]),
    )
}

fn train_config() -> TrainConfig {
    TrainConfig {
        batch_size: 128,
        shuffle_rows: 256,
        ..TrainConfig::default()
    }
}

fn shuffle() -> ShuffleBuffer {
    ShuffleBuffer::new(256, 128, 1).expect("shuffle")
}

/// Rows of `days` on the given side of `holdout` (all rows without one).
/// A TPM trained on the natural rows of `days` (two batches read ahead).
async fn train_tpm(
    reader: &TrainingReader,
    days: &[EventDate],
    epochs: u32,
    date: EventDate,
    holdout: Option<Holdout>,
) -> Result<(TpmTrainer, u64, JobTimings)> {
    train_window(
        reader,
        Domain::Natural,
        days,
        epochs,
        shuffle(),
        2,
        date,
        holdout,
        || tpm(train_config()),
    )
    .await
}

async fn rows_of(reader: &TrainingReader, days: &[EventDate], holdout: Option<Holdout>) -> u64 {
    let mut rows = 0u64;
    reader
        .for_each_batch(Domain::Natural, days, |batch| {
            let kept = match holdout {
                Some(h) => h.apply(&batch).map(|b| b.num_rows()),
                None => Ok(batch.num_rows()),
            };
            let result = kept.map(|n| rows += n as u64);
            async move { result }
        })
        .await
        .expect("read");
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_training_graph_trains_on_every_row_outside_the_holdout_each_pass() {
    let (storage, days) = archive("job-graph-rows").await;
    let reader = TrainingReader::new(&storage, 500);
    let date = days[1].succ();
    let all = rows_of(&reader, &days, None).await;
    assert!(all > 2_000, "{all} natural rows");

    let (trainer, rows, timings) = train_tpm(&reader, &days, 2, date, None)
        .await
        .expect("train");
    assert_eq!(rows, 2 * all, "two passes over every row");
    assert_eq!(trainer.stats().samples, 2 * all);
    assert!(timings.train_busy > 0.0 && timings.train_busy <= timings.train_wall);
    assert!(timings.read_wait >= 0.0 && timings.feature_wait >= 0.0);
    assert!(timings.read_wait + timings.feature_wait <= timings.train_wall);

    let holdout = Holdout {
        percent: 20,
        side: Side::Train,
    };
    let outside = rows_of(&reader, &days, Some(holdout)).await;
    assert!(outside < all && outside > all / 2, "{outside} of {all}");
    let (trainer, rows, _) = train_tpm(&reader, &days, 1, date, Some(holdout))
        .await
        .expect("train");
    assert_eq!(rows, outside, "held-out rows never reach the trainer");
    assert_eq!(trainer.stats().samples, outside);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_trainer_reports_its_own_error_not_the_sinks() {
    let (storage, days) = archive("job-graph-failure").await;
    let reader = TrainingReader::new(&storage, 500);
    let bad = TrainConfig {
        learning_rate: -1.0,
        ..train_config()
    };
    let err = train_window(
        &reader,
        Domain::Natural,
        &days,
        1,
        shuffle(),
        1,
        days[1].succ(),
        None,
        move || tpm(bad),
    )
    .await
    .expect_err("must fail");
    assert!(
        matches!(err, DailyError::Models(ModelsError::InvalidConfig { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("learning"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_day_is_an_error_naming_the_reader() {
    let (storage, days) = archive("job-graph-missing").await;
    let reader = TrainingReader::new(&storage, 500);
    let missing = [days[0], days[1].offset(30)];
    let err = train_window(
        &reader,
        Domain::Natural,
        &missing,
        1,
        shuffle(),
        1,
        days[1].succ(),
        None,
        || tpm(train_config()),
    )
    .await
    .expect_err("must fail");
    assert!(err.to_string().contains("landing-reader"), "{err}");
}

/// Every batch `reader` delivers for `days` of the natural domain, in order.
async fn batches_of(reader: &TrainingReader, days: &[EventDate]) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    reader
        .for_each_batch(Domain::Natural, days, |batch| {
            out.push(batch);
            async { Ok(()) }
        })
        .await
        .expect("read");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_ahead_delivers_the_same_batches_in_the_same_order() {
    let (storage, days) = archive("job-read-ahead").await;
    let one_at_a_time = batches_of(&TrainingReader::new(&storage, 200), &days).await;
    assert!(one_at_a_time.len() >= 4, "{} batches", one_at_a_time.len());
    for ahead in [1, 3] {
        let reader = TrainingReader::new(&storage, 200).with_read_ahead(ahead);
        let read = batches_of(&reader, &days).await;
        assert!(
            read == one_at_a_time,
            "read-ahead {ahead} changed the batches"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_read_ahead_fails_the_read_naming_it_after_the_good_ones() {
    let (storage, days) = archive("job-read-ahead-bad").await;
    let reader = TrainingReader::new(&storage, 200).with_read_ahead(2);
    let good = rows_of(&reader, &days[..1], None).await;
    let second = reader.day(Domain::Natural, days[1]).await.expect("day");
    let key = second.files[0].key.clone();
    storage
        .put(&key, bytes::Bytes::from_static(b"not a parquet file"))
        .await
        .expect("put");
    let mut delivered = 0u64;
    let err = reader
        .for_each_batch(Domain::Natural, &days, |batch| {
            delivered += batch.num_rows() as u64;
            async { Ok(()) }
        })
        .await
        .expect_err("must fail");
    assert!(matches!(err, DailyError::Read { .. }), "{err}");
    assert!(err.to_string().contains(&key), "{err}");
    assert_eq!(
        delivered, good,
        "the first day's rows came before the error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_without_the_history_columns_reads_the_rest_and_a_tpm_trains_the_same() {
    use ctrflow_schemas::columns::{HIST_CATEGORY_IDS, HIST_ITEM_IDS};
    let (storage, days) = archive("job-projected").await;
    let full = TrainingReader::new(&storage, 500).with_read_ahead(2);
    let narrow = full
        .clone()
        .without_columns(&[HIST_ITEM_IDS, HIST_CATEGORY_IDS]);

    let wide = batches_of(&full, &days).await;
    let thin = batches_of(&narrow, &days).await;
    assert_eq!(wide.len(), thin.len());
    for (w, t) in wide.iter().zip(&thin) {
        assert!(t.column_by_name(HIST_ITEM_IDS).is_none());
        assert!(t.column_by_name(HIST_CATEGORY_IDS).is_none());
        assert_eq!(t.num_columns() + 2, w.num_columns());
        let keep: Vec<usize> = t
            .schema()
            .fields()
            .iter()
            .map(|f| {
                w.schema()
                    .index_of(f.name())
                    .expect("column of the full read")
            })
            .collect();
        assert_eq!(&w.project(&keep).expect("projection"), t);
    }

    // The same TPM on both reads (with a holdout, which needs `event_id`): identical state.
    let date = days[1].succ();
    let holdout = Holdout {
        percent: 20,
        side: Side::Train,
    };
    let probe =
        FeatureBatch::from_record_batch(&wide[0], &train_config().features).expect("features");
    let mut trained = Vec::new();
    for reader in [&full, &narrow] {
        let (mut trainer, rows, _) = train_tpm(reader, &days, 1, date, Some(holdout))
            .await
            .expect("train");
        assert!(trainer.step() > 0);
        let predictions: Vec<u32> = trainer
            .predict(&probe)
            .expect("predict")
            .iter()
            .map(|p| p.to_bits())
            .collect();
        let tables = (
            trainer.tables().user.to_bytes(),
            trainer.tables().item.to_bytes(),
        );
        trained.push((rows, trainer.step(), predictions, tables));
    }
    assert_eq!(trained[0].0, trained[1].0);
    assert_eq!(trained[0].1, trained[1].1);
    assert_eq!(trained[0].2, trained[1].2, "predictions differ");
    assert!(trained[0].3 == trained[1].3, "embedding tables differ");
}
