//! The historical-embedding feature in the trainer: TPM snapshots feed the network (absent
//! ids read zeros), without `historical_items` only the user snapshots are read, and with
//! point-in-time reads each row reads the snapshots available on its own day.

use super::*;
use crate::embedding::{Day, EmbeddingTable, EmbeddingTableConfig, Lookup, SnapshotTable};
use crate::train::PointInTime;

/// A 4-wide snapshot that knows exactly `ids`, its rows drawn from `seed`.
fn snapshot(ids: &[u64], seed: u64) -> SnapshotTable {
    let mut config = EmbeddingTableConfig::new(4);
    config.seed = seed;
    config.init_std = 0.5;
    let mut table = EmbeddingTable::new(config).expect("table");
    table.lookup(ids, Day(1), true, &mut Lookup::new());
    SnapshotTable::from_table(&table)
}

#[test]
fn historical_snapshots_feed_the_network() {
    let _rng = test_util::device(105);
    let config = ctr_config().with_use_historical(true).with_d_hist(4);
    let mut trainer = CtrTrainer::new(train_config(11), config).expect("trainer");
    let batch = features(&record_batch(&events(40, 16, 10)));
    assert!(matches!(
        trainer.train_step(&batch),
        Err(ModelsError::InvalidConfig {
            field: "historical",
            ..
        })
    ));
    // Two snapshots; the older one knows only some ids (the rest read zeros).
    let tables = HistoricalTables {
        user: vec![
            snapshot(&batch.user_ids, 1),
            snapshot(&batch.user_ids[..5], 2),
        ],
        item: vec![snapshot(&batch.item_ids, 3), snapshot(&[], 4)],
        ..Default::default()
    };
    trainer.set_historical(tables).expect("historical");
    let loss = trainer.train_step(&batch).expect("step");
    assert!(loss.is_finite());
    assert_eq!(trainer.predict(&batch).expect("predict").len(), 40);
}

#[test]
fn without_historical_items_only_the_user_snapshots_are_read() {
    let batch = features(&record_batch(&events(40, 18, 10)));
    // Trains one step with the given item snapshots and predicts the batch.
    let run = |items: bool, item_seed: Option<u64>| {
        let _rng = test_util::device(107);
        let config = ctr_config()
            .with_use_historical(true)
            .with_historical_items(items)
            .with_d_hist(4);
        let mut trainer = CtrTrainer::new(train_config(12), config).expect("trainer");
        let tables = HistoricalTables {
            user: vec![snapshot(&batch.user_ids, 1)],
            item: item_seed.map_or_else(Vec::new, |s| vec![snapshot(&batch.item_ids, s)]),
            ..Default::default()
        };
        trainer.set_historical(tables).expect("historical");
        trainer.train_step(&batch).expect("step");
        trainer.predict(&batch).expect("predict")
    };
    // With the item feature the item snapshots matter, and they are required.
    assert_ne!(run(true, Some(3)), run(true, Some(4)));
    // Without it they are never read: other values, or none at all, change nothing.
    let reference = run(false, Some(3));
    assert_eq!(reference, run(false, Some(4)));
    assert_eq!(reference, run(false, None));
    let _rng = test_util::device(107);
    let mut trainer = CtrTrainer::new(
        train_config(12),
        ctr_config().with_use_historical(true).with_d_hist(4),
    )
    .expect("trainer");
    let missing = trainer.set_historical(HistoricalTables {
        user: vec![snapshot(&batch.user_ids, 1)],
        item: Vec::new(),
        ..Default::default()
    });
    assert!(matches!(
        missing,
        Err(ModelsError::InvalidConfig {
            field: "historical",
            ..
        })
    ));
}

#[test]
fn actr_with_freeze_historical_keeps_the_cpm_attention_through_steps_and_resume() {
    let _rng = test_util::device(109);
    let config = ctr_config().with_use_historical(true).with_d_hist(4);
    let batches: Vec<FeatureBatch> = record_batches(&events(300, 21, 10), 100)
        .iter()
        .map(features)
        .collect();
    let tables = || HistoricalTables {
        user: vec![snapshot(&batches[0].user_ids, 1)],
        item: vec![snapshot(&batches[0].item_ids, 2)],
        ..Default::default()
    };
    let mut cpm = CtrTrainer::new(train_config(15), config).expect("trainer");
    cpm.set_historical(tables()).expect("historical");
    for batch in &batches {
        cpm.train_step(batch).expect("step");
    }
    let checkpoint = cpm.checkpoint(None).expect("checkpoint");
    // The weights of both historical attentions, and of the MLP's output layer (the rest).
    let attention = |t: &CtrTrainer| -> Vec<Vec<f32>> {
        let net = t.net();
        let user = net.historical_user.clone().expect("user attention");
        let item = net.historical_item.clone().expect("item attention");
        [user, item]
            .into_iter()
            .flat_map(|h| {
                [
                    h.query.weight.val(),
                    h.key.weight.val(),
                    h.value.weight.val(),
                ]
            })
            .map(|w| w.into_data().try_to_vec::<f32>().expect("f32"))
            .collect()
    };
    let mlp = |t: &CtrTrainer| -> Vec<f32> {
        let output = &t.net().mlp.output;
        output
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32")
    };
    let trained = |freeze: bool| {
        let train = TrainConfig {
            freeze_historical: freeze,
            ..train_config(16)
        };
        let (mut actr, _) = CtrTrainer::from_cpm(&checkpoint, train).expect("from cpm");
        actr.set_historical(tables()).expect("historical");
        for batch in &batches {
            actr.train_step(batch).expect("step");
        }
        actr
    };
    let cpm_attention = attention(&cpm);
    // Without the switch A-CTR fine-tunes the attention like everything else.
    let unfrozen = trained(false);
    assert_ne!(attention(&unfrozen), cpm_attention);
    // With it the attention stays the CPM's while the rest trains, also after a resume.
    let frozen = trained(true);
    assert_eq!(attention(&frozen), cpm_attention);
    let (untrained, _) = CtrTrainer::from_cpm(&checkpoint, train_config(16)).expect("from cpm");
    assert_ne!(
        mlp(&frozen),
        mlp(&untrained),
        "the rest of the network trains"
    );
    let mut resumed =
        CtrTrainer::resume(&frozen.checkpoint(None).expect("checkpoint")).expect("resume");
    assert!(resumed.config().freeze_historical);
    resumed.set_historical(tables()).expect("historical");
    let before = mlp(&resumed);
    for batch in &batches {
        resumed.train_step(batch).expect("step");
    }
    assert_eq!(attention(&resumed), cpm_attention);
    assert_ne!(
        mlp(&resumed),
        before,
        "the rest of the network still trains"
    );
}

#[test]
fn point_in_time_rows_read_the_snapshots_available_on_their_day() {
    let _rng = test_util::device(111);
    let config = ctr_config().with_use_historical(true).with_d_hist(4);
    let mut trainer = CtrTrainer::new(train_config(16), config).expect("trainer");
    let mut batch = features(&record_batch(&events(40, 22, 10)));
    let rows = batch.rows();
    // Three TPM versions, newest first, published on days 200, 150 and 100.
    let users: Vec<SnapshotTable> = (0..3).map(|s| snapshot(&batch.user_ids, 10 + s)).collect();
    let items: Vec<SnapshotTable> = (0..3).map(|s| snapshot(&batch.item_ids, 20 + s)).collect();
    let empty = SnapshotTable::empty(4);
    let history = HistoricalTables {
        user: users.clone(),
        item: items.clone(),
        point_in_time: Some(PointInTime {
            k: 2,
            available_from: vec![Day(200), Day(150), Day(100)],
        }),
    };
    let fixed = |picks: [Option<usize>; 2]| HistoricalTables {
        user: picks
            .iter()
            .map(|p| p.map_or_else(|| empty.clone(), |i| users[i].clone()))
            .collect(),
        item: picks
            .iter()
            .map(|p| p.map_or_else(|| empty.clone(), |i| items[i].clone()))
            .collect(),
        point_in_time: None,
    };
    let mut predictions = Vec::new();
    // Per row day: the two newest snapshots published by then, zeros for missing ones.
    for (day, picks) in [
        (250, [Some(0), Some(1)]),
        (200, [Some(0), Some(1)]),
        (199, [Some(1), Some(2)]),
        (150, [Some(1), Some(2)]),
        (120, [Some(2), None]),
        (99, [None, None]),
    ] {
        batch.days = vec![Day(day); rows];
        trainer.set_historical(history.clone()).expect("history");
        let point_in_time = trainer.predict(&batch).expect("predict");
        trainer.set_historical(fixed(picks)).expect("fixed");
        assert_eq!(
            point_in_time,
            trainer.predict(&batch).expect("predict"),
            "day {day}"
        );
        predictions.push(point_in_time);
    }
    // The snapshots matter, so the equalities above are not vacuous.
    assert_ne!(predictions[1], predictions[2]);
    assert_ne!(predictions[3], predictions[4]);
    assert_ne!(predictions[4], predictions[5]);
    // Rows of different days in one batch each read their own snapshots.
    batch.days = (0..rows).map(|b| Day([250, 160, 120][b % 3])).collect();
    trainer.set_historical(history.clone()).expect("history");
    let mixed = trainer.predict(&batch).expect("predict");
    for (b, p) in mixed.iter().enumerate() {
        let single = &predictions[[0, 2, 4][b % 3]];
        assert!(
            (p - single[b]).abs() < 1e-6,
            "row {b}: {p} vs {}",
            single[b]
        );
    }
    // Training reads them too: a step runs, and a batch without row days is refused.
    trainer.train_step(&batch).expect("step");
    batch.days.clear();
    assert!(matches!(
        trainer.train_step(&batch),
        Err(ModelsError::ShapeMismatch { .. })
    ));
}

#[test]
fn point_in_time_tables_are_validated() {
    let _rng = test_util::device(113);
    let config = ctr_config().with_use_historical(true).with_d_hist(4);
    let mut trainer = CtrTrainer::new(train_config(17), config).expect("trainer");
    let tables = |k: usize, days: &[u32]| HistoricalTables {
        user: (0..3).map(|s| snapshot(&[1, 2], s)).collect(),
        item: (0..3).map(|s| snapshot(&[1, 2], 5 + s)).collect(),
        point_in_time: Some(PointInTime {
            k,
            available_from: days.iter().map(|&d| Day(d)).collect(),
        }),
    };
    assert!(trainer.set_historical(tables(3, &[30, 20, 10])).is_ok());
    assert!(trainer.set_historical(tables(2, &[30, 30, 10])).is_ok());
    for (k, days) in [
        (0, &[30, 20, 10][..]),
        (4, &[30, 20, 10]),
        (2, &[30, 20]),
        (2, &[10, 20, 30]),
    ] {
        assert!(
            matches!(
                trainer.set_historical(tables(k, days)),
                Err(ModelsError::InvalidConfig {
                    field: "historical",
                    ..
                })
            ),
            "k {k}, days {days:?}"
        );
    }
}
