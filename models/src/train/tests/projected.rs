//! Batches read without the history columns (the daily reader projects them away for a TPM
//! without SRP4CTR pre-training): empty sequences, the same TPM training, and a clear error for
//! a trainer that needs sequences.

use super::*;

/// `batch` without `hist_item_ids` and `hist_category_ids`.
fn without_histories(batch: &RecordBatch) -> RecordBatch {
    let keep: Vec<usize> = batch
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            f.name() != columns::HIST_ITEM_IDS && f.name() != columns::HIST_CATEGORY_IDS
        })
        .map(|(i, _)| i)
        .collect();
    batch.project(&keep).expect("projection")
}

fn tpm_config() -> TpmConfig {
    TpmConfig::new()
        .with_d_embed(8)
        .with_d_context(CONTEXT_WIDTH)
        .with_hidden(vec![16])
}

#[test]
fn a_batch_without_histories_has_empty_sequences_and_says_so() {
    let full = record_batch(&events(50, 3, 20));
    let projected = without_histories(&full);
    assert_eq!(projected.num_columns() + 2, full.num_columns());
    let f = features(&projected);
    assert!(f.without_sequences);
    assert_eq!(f.rows(), 50);
    assert!(f.short.ids.is_empty() && f.long.ids.is_empty());
    assert_eq!(f.short.offsets, vec![0; 51]);
    assert_eq!(f.long.offsets, vec![0; 51]);
    // Everything else reads as from the full batch.
    let g = features(&full);
    assert!(!g.without_sequences);
    assert!(!g.long.ids.is_empty());
    assert_eq!(
        (
            &f.user_ids,
            &f.item_ids,
            &f.category_ids,
            &f.labels,
            &f.context,
            &f.days
        ),
        (
            &g.user_ids,
            &g.item_ids,
            &g.category_ids,
            &g.labels,
            &g.context,
            &g.days
        )
    );
    // One history column without the other is still an error naming the missing one.
    let index = full
        .schema()
        .index_of(columns::HIST_CATEGORY_IDS)
        .expect("column");
    let keep: Vec<usize> = (0..full.num_columns()).filter(|&i| i != index).collect();
    let half = full.project(&keep).expect("projection");
    let err = FeatureBatch::from_record_batch(&half, &feature_config()).expect_err("must fail");
    assert!(
        err.to_string().contains(columns::HIST_CATEGORY_IDS),
        "{err}"
    );
}

#[test]
fn tpm_trains_identically_without_the_history_columns() {
    let batches = record_batches(&events(600, 21, 30), 100);
    let run = |project: bool| {
        let _rng = test_util::device(121);
        let mut trainer = TpmTrainer::new(train_config(21), tpm_config()).expect("trainer");
        let mut losses = Vec::new();
        for _ in 0..3 {
            for b in &batches {
                let b = if project {
                    without_histories(b)
                } else {
                    b.clone()
                };
                losses.push(trainer.train_step(&features(&b)).expect("step").to_bits());
            }
        }
        (losses, trainer.tables().user.to_bytes())
    };
    let (full_losses, full_users) = run(false);
    let (projected_losses, projected_users) = run(true);
    assert_eq!(full_losses, projected_losses);
    assert!(full_users == projected_users, "user tables differ");
}

#[test]
fn a_trainer_that_reads_sequences_rejects_a_batch_without_them() {
    let _rng = test_util::device(122);
    let projected = features(&without_histories(&record_batch(&events(40, 5, 10))));
    let mut ctr = CtrTrainer::new(train_config(22), ctr_config()).expect("trainer");
    let before = ctr.checkpoint(None).expect("checkpoint");
    let err = ctr.train_step(&projected).expect_err("must fail");
    assert!(err.to_string().contains(columns::HIST_ITEM_IDS), "{err}");
    let err = ctr.predict(&projected).expect_err("must fail");
    assert!(err.to_string().contains(columns::HIST_ITEM_IDS), "{err}");
    assert_eq!(ctr.step(), 0);
    assert!(
        ctr.checkpoint(None).expect("checkpoint") == before,
        "nothing changed"
    );
}
