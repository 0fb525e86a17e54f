//! Backend conformance: the same tiny CtrNet trained on every CPU backend compiled into this
//! build (`flex` always; `libtorch` with the `tch` feature), and one checkpoint predicted on
//! each of them.

use super::*;
use crate::ComputeDevice;

#[test]
fn every_compiled_backend_learns_the_same_model_alike() {
    let _rng = test_util::device(109);
    let train = events(2_000, 11, 40);
    let held_out = held_out();
    // One initial model for every backend (their RNGs differ, so `new` on each would not
    // start from the same weights): built on flex, resumed on each device.
    let initial = CtrTrainer::new(train_config(7), ctr_config())
        .expect("trainer")
        .checkpoint(None)
        .expect("checkpoint");
    let mut results = Vec::new();
    for device in ComputeDevice::compiled_cpu_devices() {
        let mut trainer = CtrTrainer::resume_on(&initial, device).expect("resume");
        let losses = train_epochs(&mut trainer, &train, 10, 100);
        let first: f32 = losses[..10].iter().sum::<f32>() / 10.0;
        let last: f32 = losses[losses.len() - 10..].iter().sum::<f32>() / 10.0;
        assert!(last < 0.8 * first, "{device}: loss {first} -> {last}");
        let eval = trainer.evaluate(&held_out).expect("evaluate");
        eprintln!(
            "{device}: loss {first:.4} -> {last:.4}, held-out AUC {:.4}, logloss {:.4}",
            eval.auc, eval.logloss
        );
        assert!(eval.auc > 0.7, "{device}: held-out AUC {}", eval.auc);
        results.push((device, losses, eval));
    }
    let (_, flex_losses, flex) = &results[0];
    for (device, losses, eval) in &results[1..] {
        // The first steps agree closely (same weights, same batches; kernels differ only in
        // rounding), and the trained models alike.
        for (step, (a, b)) in losses.iter().zip(flex_losses).take(10).enumerate() {
            assert!(
                (a - b).abs() < 1e-3,
                "{device} step {step}: loss {a} vs flex {b}"
            );
        }
        assert!(
            (eval.auc - flex.auc).abs() < 0.03,
            "{device} AUC {} vs flex {}",
            eval.auc,
            flex.auc
        );
        assert!(
            (eval.logloss - flex.logloss).abs() < 0.05,
            "{device} logloss {} vs flex {}",
            eval.logloss,
            flex.logloss
        );
    }
}

#[test]
fn one_checkpoint_predicts_alike_on_every_backend() {
    let _rng = test_util::device(110);
    let mut trainer = CtrTrainer::new(train_config(8), ctr_config()).expect("trainer");
    train_epochs(&mut trainer, &events(600, 13, 40), 2, 200);
    let checkpoint = trainer.checkpoint(None).expect("checkpoint");
    let batch = features(&record_batch(&events(200, 14, 40)));
    let expected = trainer.predict(&batch).expect("predict");
    for device in ComputeDevice::compiled_cpu_devices() {
        let mut resumed = CtrTrainer::resume_on(&checkpoint, device).expect("resume");
        assert_eq!(resumed.config().device, device);
        let got = resumed.predict(&batch).expect("predict");
        let diff = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "{device}: predictions differ by {diff}");
    }
}
