//! The behaviour-category and content inputs: read from the event columns aligned with the
//! sequences, fed to `CtrNet`, and trained row-sparsely like the other tables.

use arrow::array::ListArray;
use arrow::buffer::OffsetBuffer;

use super::*;

pub(super) const CONTENT_WIDTH: usize = 4;

/// `events(n, seed, 40)` with a content vector that encodes the item's category on four
/// floats; every fifth event has none.
pub(super) fn content_events(n: usize, seed: u64) -> Vec<Event> {
    let mut evs = events(n, seed, 40);
    for (i, e) in evs.iter_mut().enumerate() {
        let category = e.category_id.0 - 90;
        e.item_content = (i % 5 != 0).then(|| {
            (0..CONTENT_WIDTH as u64)
                .map(|j| if category % 4 == j { 1.0 } else { -0.25 })
                .collect()
        });
    }
    evs
}

pub(super) fn content_batch(events: &[Event]) -> RecordBatch {
    let mut builder = EventBatchBuilder::new(EventSchema::new(CONTENT_WIDTH), events.len());
    for e in events {
        builder.push(e).expect("valid event");
    }
    builder.finish().expect("batch")
}

#[test]
fn behaviour_categories_and_content_are_read_aligned_with_the_sequences() {
    let mut evs = content_events(6, 21);
    evs[1].hist_item_ids = (0..45).map(|i| ItemId(5_000 + i)).collect();
    evs[1].hist_category_ids = (0..45).map(|i| CategoryId(90 + i % 8)).collect();
    let f = features(&content_batch(&evs));
    for (seq, cap) in [(&f.short, 10), (&f.long, 30)] {
        assert_eq!(seq.categories.len(), seq.ids.len());
        for (b, e) in evs.iter().enumerate() {
            let n = e.hist_item_ids.len().min(cap);
            let expected: Vec<u64> = e.hist_category_ids[..n].iter().map(|c| c.0).collect();
            assert_eq!(seq.row_categories(b), &expected[..], "row {b}");
        }
    }
    // Content: [B, 4] row-major, zeros where the event has none.
    assert_eq!(f.content_width, CONTENT_WIDTH);
    assert_eq!(f.content.len(), 6 * CONTENT_WIDTH);
    for (b, e) in evs.iter().enumerate() {
        let row = &f.content[b * CONTENT_WIDTH..(b + 1) * CONTENT_WIDTH];
        match &e.item_content {
            Some(v) => assert_eq!(row, &v[..], "row {b}"),
            None => assert!(row.iter().all(|&x| x == 0.0), "row {b}"),
        }
    }
    // A batch without the column has no content.
    let batch = content_batch(&evs);
    let index = batch
        .schema()
        .index_of(columns::ITEM_CONTENT)
        .expect("column");
    let projection: Vec<usize> = (0..batch.num_columns()).filter(|&c| c != index).collect();
    let without = features(&batch.project(&projection).expect("project"));
    assert_eq!((without.content_width, without.content.len()), (0, 0));
}

#[test]
fn misaligned_behaviour_categories_are_an_error_naming_the_column() {
    let evs = events(3, 22, 5);
    let batch = record_batch(&evs);
    let index = batch
        .schema()
        .index_of(columns::HIST_CATEGORY_IDS)
        .expect("column");
    // Every row gets one category fewer than it has behaviours (and at least none).
    let lengths: Vec<usize> = evs
        .iter()
        .map(|e| e.hist_item_ids.len().saturating_sub(1))
        .collect();
    assert!(evs.iter().any(|e| !e.hist_item_ids.is_empty()));
    let total: usize = lengths.iter().sum();
    let field = match batch.schema().field(index).data_type() {
        DataType::List(f) => f.clone(),
        other => panic!("unexpected {other}"),
    };
    let short_lists = ListArray::new(
        field,
        OffsetBuffer::from_lengths(lengths),
        Arc::new(UInt64Array::from(vec![90u64; total])),
        None,
    );
    let mut columns = batch.columns().to_vec();
    columns[index] = Arc::new(short_lists);
    let bad = RecordBatch::try_new(batch.schema(), columns).expect("batch");
    let err = FeatureBatch::from_record_batch(&bad, &feature_config()).expect_err("must fail");
    assert!(
        matches!(
            err,
            ModelsError::Column {
                column: "hist_category_ids",
                ..
            }
        ),
        "{err}"
    );
}

/// Every row: candidate item 500 of category 7; behaviours 100..130, the first ten of
/// categories 200..210 (short and long), the other twenty of categories 300..320 (long only).
fn category_batch() -> FeatureBatch {
    let history: Vec<u64> = (100..130).collect();
    let categories: Vec<u64> = (0..30)
        .map(|j| if j < 10 { 200 + j } else { 300 + j - 10 })
        .collect();
    let mut b = FeatureBatch::new();
    b.short.offsets.push(0);
    b.long.offsets.push(0);
    b.short.max_len = 10;
    b.long.max_len = 30;
    for i in 0..4u64 {
        b.user_ids.push(1 + i);
        b.item_ids.push(500);
        b.category_ids.push(7);
        b.context.extend(std::iter::repeat_n(0.5, CONTEXT_WIDTH));
        b.labels.push((i % 2) as f32);
        b.short.ids.extend_from_slice(&history[..10]);
        b.short.categories.extend_from_slice(&categories[..10]);
        b.short.offsets.push(b.short.ids.len() as u32);
        b.long.ids.extend_from_slice(&history);
        b.long.categories.extend_from_slice(&categories);
        b.long.offsets.push(b.long.ids.len() as u32);
    }
    b.day = crate::embedding::Day(20_000);
    b
}

fn category_rows(t: &CtrTrainer) -> std::collections::BTreeMap<u64, Vec<f32>> {
    t.tables()
        .category
        .rows()
        .map(|r| (r.id, r.vector.to_vec()))
        .collect()
}

#[test]
fn behaviour_categories_get_rows_and_row_sparse_updates() {
    let _rng = test_util::device(121);
    let config = ctr_config().with_sequence_categories(true);
    let mut trainer = CtrTrainer::new(train_config(3), config).expect("trainer");
    let batch = category_batch();
    trainer.train_step(&batch).expect("step 1");
    let before = category_rows(&trainer);
    // The candidate's and the short behaviours' categories are read, hence admitted.
    assert!(before.contains_key(&7));
    assert!((200..210).all(|c| before.contains_key(&c)), "{before:?}");
    // Of the long-only categories, only those of the ETA top-5 are read.
    let long_only = (300..320).filter(|c| before.contains_key(c)).count();
    assert!(long_only <= 5, "{long_only} long-only categories read");
    // A second step moves the rows it reads for sure (ETA's top-5 may differ between steps).
    trainer.train_step(&batch).expect("step 2");
    let after = category_rows(&trainer);
    for c in std::iter::once(7).chain(200..210) {
        assert_ne!(before[&c], after[&c], "category {c} got no update");
    }

    // Without the option the behaviours' categories are not looked up at all.
    let mut plain = CtrTrainer::new(train_config(3), ctr_config()).expect("trainer");
    plain.train_step(&batch).expect("step");
    let rows = category_rows(&plain);
    assert_eq!(rows.keys().copied().collect::<Vec<_>>(), vec![7]);

    // A hand-built batch without categories is a shape error for a network that needs them.
    let mut missing = batch.clone();
    missing.long.categories.clear();
    let err = trainer.train_step(&missing).expect_err("must fail");
    assert!(
        err.to_string().contains("long behaviour categories"),
        "{err}"
    );
}

#[test]
fn a_network_with_categories_and_content_learns() {
    let _rng = test_util::device(122);
    let config = ctr_config()
        .with_sequence_categories(true)
        .with_d_content(CONTENT_WIDTH);
    let mut trainer = CtrTrainer::new(train_config(5), config).expect("trainer");
    let train: Vec<RecordBatch> = content_events(2_000, 23)
        .chunks(100)
        .map(content_batch)
        .collect();
    let held_out: Vec<FeatureBatch> = content_events(600, 24)
        .chunks(200)
        .map(|c| features(&content_batch(c)))
        .collect();
    let mut losses = Vec::new();
    for _ in 0..8 {
        for b in &train {
            losses.push(trainer.train_step(&features(b)).expect("step"));
        }
    }
    let first: f32 = losses[..10].iter().sum::<f32>() / 10.0;
    let last: f32 = losses[losses.len() - 10..].iter().sum::<f32>() / 10.0;
    assert!(last < 0.8 * first, "loss {first} -> {last}");
    let auc = trainer.evaluate(&held_out).expect("evaluate").auc;
    assert!(auc > 0.7, "held-out AUC {auc}");

    // A batch whose content has another width is an error naming it, not a panic.
    let mut narrow =
        CtrTrainer::new(train_config(5), ctr_config().with_d_content(3)).expect("trainer");
    let err = narrow
        .train_step(&features(&content_batch(&content_events(10, 25))))
        .expect_err("must fail");
    assert!(err.to_string().contains("content"), "{err}");
}
