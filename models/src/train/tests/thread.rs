//! The training thread: progress reports, waiting time, errors returned on finish.

use super::*;

#[test]
fn training_thread_trains_and_reports() {
    let _rng = test_util::device(107);
    let (progress_tx, progress_rx) = std::sync::mpsc::channel();
    let thread = spawn_training_thread(
        || CtrTrainer::new(train_config(13), ctr_config()),
        None,
        2,
        move |p: Progress| {
            let _ = progress_tx.send(p);
        },
    )
    .expect("spawn");
    let mut first_report = None;
    for (i, b) in record_batches(&events(1_030, 19, 20), 70)
        .into_iter()
        .enumerate()
    {
        if (7..11).contains(&i) {
            // After the first step (6 batches fill the 400-row buffer) the thread has nothing
            // to do while the input pauses: that is waiting for data.
            if first_report.is_none() {
                first_report = Some(progress_rx.recv().expect("first step"));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        thread.send(b).expect("send");
    }
    let trainer = thread.finish().expect("trained");
    let reports: Vec<Progress> = first_report.into_iter().chain(progress_rx.iter()).collect();
    let last = reports.last().copied().expect("reports");
    assert!(last.waited_seconds >= 0.1, "waited {}", last.waited_seconds);
    // The pauses were in the input, so the waiting is owed to the input.
    assert!(
        last.input_wait_seconds >= 0.1,
        "input wait {}",
        last.input_wait_seconds
    );
    assert!(last.shuffle_seconds > 0.0);
    assert!(last.stepping_seconds > 0.0);
    assert!(
        reports
            .iter()
            .all(|p| p.input_wait_seconds <= p.waited_seconds)
    );
    assert!(reports.windows(2).all(|w| {
        w[0].waited_seconds <= w[1].waited_seconds
            && w[0].input_wait_seconds <= w[1].input_wait_seconds
            && w[0].shuffle_seconds <= w[1].shuffle_seconds
            && w[0].stepping_seconds < w[1].stepping_seconds
    }));
    // 10 full batches and a last one of 30 rows.
    assert_eq!(trainer.step(), 11);
    assert_eq!(trainer.stats().samples, 1_030);
    assert_eq!(reports.len(), 11);
    assert_eq!(reports.last().map(|p| p.samples), Some(1_030));
    assert!(
        reports
            .iter()
            .all(|p| p.loss.is_finite() && p.samples_per_second > 0.0)
    );
}

#[test]
fn training_thread_error_is_returned_on_finish() {
    let thread = spawn_training_thread(
        || CtrTrainer::new(train_config(14), ctr_config().with_d_context(3)),
        None,
        1,
        |_| {},
    )
    .expect("spawn");
    let err = thread.finish().expect_err("must fail");
    assert!(
        matches!(
            err,
            ModelsError::InvalidConfig {
                field: "d_context",
                ..
            }
        ),
        "{err}"
    );
}
