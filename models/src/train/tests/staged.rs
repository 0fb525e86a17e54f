//! Item ids de-duplicated ahead (`train_step_indexed`, the training thread's feature stage)
//! give exactly the training of steps that de-duplicate their own ids.

use super::*;

fn bits(xs: &[f32]) -> Vec<u32> {
    xs.iter().map(|x| x.to_bits()).collect()
}

fn predictions(trainer: &mut CtrTrainer) -> Vec<u32> {
    held_out()
        .iter()
        .flat_map(|b| bits(&trainer.predict(b).expect("predict")))
        .collect()
}

#[test]
fn indexed_steps_equal_plain_steps() {
    let _rng = test_util::device(131);
    let batches: Vec<FeatureBatch> = record_batches(&events(900, 21, 40), 100)
        .iter()
        .map(features)
        .collect();
    let mut plain = CtrTrainer::new(train_config(17), ctr_config()).expect("trainer");
    let mut indexed = CtrTrainer::new(train_config(17), ctr_config()).expect("trainer");
    let mut losses = (Vec::new(), Vec::new());
    for b in &batches {
        losses.0.push(plain.train_step(b).expect("step"));
        let ib = IndexedBatch::from_features(b.clone(), true);
        losses
            .1
            .push(indexed.train_step_indexed(&ib).expect("step"));
    }
    assert_eq!(bits(&losses.0), bits(&losses.1));
    assert_eq!(predictions(&mut plain), predictions(&mut indexed));
    assert_eq!(plain.tables().item.stats(), indexed.tables().item.stats());
}

#[test]
fn a_batch_indexed_for_another_network_trains_as_a_plain_step() {
    let _rng = test_util::device(133);
    let batches: Vec<FeatureBatch> = record_batches(&events(500, 24, 40), 100)
        .iter()
        .map(features)
        .collect();
    let tpm = || {
        let config = TpmConfig::new()
            .with_d_embed(8)
            .with_d_context(CONTEXT_WIDTH)
            .with_hidden(vec![16]);
        TpmTrainer::new(train_config(25), config).expect("trainer")
    };
    let (mut plain, mut indexed) = (tpm(), tpm());
    for b in &batches {
        // Indexed with the sequences, which a TPM does not look up: the index is not used.
        let ib = IndexedBatch::from_features(b.clone(), true);
        assert_eq!(
            plain.train_step(b).expect("step").to_bits(),
            indexed.train_step_indexed(&ib).expect("step").to_bits()
        );
    }
    assert_eq!(plain.tables().item.stats(), indexed.tables().item.stats());
}

#[test]
fn the_training_thread_trains_exactly_like_steps_on_one_thread() {
    let _rng = test_util::device(132);
    let train = events(1_000, 22, 40);
    let mut direct = CtrTrainer::new(train_config(18), ctr_config()).expect("trainer");
    let direct_losses = train_epochs(&mut direct, &train, 1, 40);

    let (progress_tx, progress_rx) = std::sync::mpsc::channel();
    let thread = spawn_training_thread(
        || CtrTrainer::new(train_config(18), ctr_config()),
        Some(ShuffleBuffer::new(400, 100, 40).expect("buffer")),
        2,
        move |p: Progress| {
            let _ = progress_tx.send(p.loss);
        },
    )
    .expect("spawn");
    for b in record_batches(&train, 70) {
        thread.send(b).expect("send");
    }
    let mut threaded = thread.finish().expect("trained");
    let thread_losses: Vec<f32> = progress_rx.iter().collect();
    assert_eq!(bits(&thread_losses), bits(&direct_losses));
    assert_eq!(predictions(&mut threaded), predictions(&mut direct));
}

#[test]
fn a_bad_batch_stops_the_thread_with_the_column_named() {
    let thread = spawn_training_thread(
        || CtrTrainer::new(train_config(19), ctr_config()),
        Some(ShuffleBuffer::new(100, 100, 1).expect("buffer")),
        1,
        |_| {},
    )
    .expect("spawn");
    let good = record_batches(&events(100, 23, 10), 100);
    // Same schema, a device code out of range: feature extraction, not the shuffle, fails.
    let device = good[0]
        .schema()
        .index_of(columns::DEVICE)
        .expect("device column");
    let mut bad_columns = good[0].columns().to_vec();
    bad_columns[device] = Arc::new(arrow::array::UInt8Array::from(vec![
        9u8;
        good[0].num_rows()
    ]));
    let bad = RecordBatch::try_new(good[0].schema(), bad_columns).expect("same schema");
    thread.send(good[0].clone()).expect("send");
    // The bad batch fails in the feature stage; later sends fail once the thread has stopped.
    let _ = thread.send(bad);
    let mut refused = false;
    for _ in 0..50 {
        if thread.send(good[0].clone()).is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "the input channel stays open after the error");
    let err = thread.finish().expect_err("must fail");
    assert!(err.to_string().contains(columns::DEVICE), "{err}");
}
