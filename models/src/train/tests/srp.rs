//! SRP4CTR end to end in the trainers: a TPM trainer pre-trains the encoder on its batches
//! (masked behaviours), checkpoints and resumes it exactly, and publishes it; a `CtrNet` plugs
//! the encoder in frozen, reads its tokens from the published tables and trains only the
//! transfer.

use burn::module::Module;
use burn::tensor::Device;

use super::*;
use crate::nn::SrpTransferConfig;
use crate::train::srp::blobs as srp_blobs;

fn srp_config() -> SrpPretrainConfig {
    SrpPretrainConfig {
        d_model: 8,
        max_len: 12,
        candidates: 64,
        learning_rate: 0.01,
        ..SrpPretrainConfig::default()
    }
}

fn tpm_config() -> TpmConfig {
    TpmConfig::new()
        .with_d_embed(4)
        .with_d_context(CONTEXT_WIDTH)
        .with_hidden(vec![8])
}

fn tpm_with_srp(seed: u64) -> TpmTrainer {
    let mut tpm = TpmTrainer::new(train_config(seed), tpm_config()).expect("tpm");
    tpm.enable_srp_pretraining(srp_config()).expect("srp");
    tpm
}

/// All parameter values of a module, in visiting order.
fn params<M: Module>(module: &M) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl burn::module::ModuleVisitor for Collect {
        fn visit_float<const D: usize>(
            &mut self,
            param: &burn::module::Param<burn::tensor::Tensor<D>>,
        ) {
            self.0.extend(test_util::values(param.val()));
        }
    }
    let mut collect = Collect(Vec::new());
    module.visit(&mut collect);
    collect.0
}

/// Events whose histories are runs of consecutive items (`s, s+1, ...`, most recent first):
/// a masked behaviour is predictable from its neighbours.
fn chain_events(n: usize, seed: u64) -> Vec<ctrflow_schemas::Event> {
    let mut rng = crate::rng::SplitMix64::new(seed ^ 0xc4a1);
    let mut out = events(n, seed, 0);
    for e in &mut out {
        let start = rng.below(ITEMS as usize) as u64;
        let len = 2 + rng.below(15);
        let hist: Vec<u64> = (0..len as u64).map(|j| (start + j) % ITEMS).collect();
        e.hist_item_ids = hist.iter().map(|&h| ItemId(5_000 + h)).collect();
        e.hist_category_ids = hist
            .iter()
            .map(|&h| CategoryId(90 + category_of(h)))
            .collect();
    }
    out
}

#[test]
fn masked_behaviour_pretraining_learns() {
    let _rng = test_util::device(141);
    let mut tpm = tpm_with_srp(41);
    let batches: Vec<FeatureBatch> = record_batches(&chain_events(6_000, 42), 100)
        .iter()
        .map(features)
        .collect();
    let mut losses = Vec::new();
    for _epoch in 0..4 {
        for batch in &batches {
            tpm.train_step(batch).expect("step");
            losses.push(tpm.srp_pretrainer().expect("on").stats().last_loss);
        }
    }
    let stats = tpm.srp_pretrainer().expect("on").stats();
    assert_eq!(stats.steps, 240, "one SRP step per TPM step");
    assert!(
        stats.targets > stats.sequences,
        "several targets per sequence"
    );
    let mean = |xs: &[f32]| xs.iter().sum::<f32>() / xs.len() as f32;
    let (first, last) = (mean(&losses[..10]), mean(&losses[losses.len() - 10..]));
    // Uniform guessing costs about ln(64) + 0.5 ln(8) = 5.2; neighbours give the answer away.
    assert!(first > 4.5, "starts near uniform: {first}");
    assert!(last < 0.8 * first, "loss {first} -> {last}");
}

#[test]
fn pretraining_resumes_exactly_and_publishes_its_artifact() {
    let _rng = test_util::device(142);
    let batches: Vec<FeatureBatch> = record_batches(&events(1_200, 43, 20), 100)
        .iter()
        .map(features)
        .collect();
    let mut straight = tpm_with_srp(44);
    for b in &batches {
        straight.train_step(b).expect("step");
    }
    let mut first = tpm_with_srp(44);
    for b in &batches[..5] {
        first.train_step(b).expect("step");
    }
    let checkpoint = first.checkpoint(None).expect("checkpoint");
    for name in [
        srp_blobs::CONFIG,
        srp_blobs::MODEL,
        srp_blobs::OPTIMIZER,
        srp_blobs::ITEM_TABLE,
        srp_blobs::CATEGORY_TABLE,
        srp_blobs::STATE,
    ] {
        assert!(checkpoint.blobs.contains_key(name), "{name}");
    }
    let mut resumed = TpmTrainer::resume(&checkpoint).expect("resume");
    for b in &batches[5..] {
        resumed.train_step(b).expect("step");
    }
    let (a, b) = (
        straight.srp_pretrainer().expect("on"),
        resumed.srp_pretrainer().expect("continued"),
    );
    assert_eq!(a.stats(), b.stats());
    assert_eq!(params(&a.encoder()), params(&b.encoder()));
    assert_eq!(a.tables().0.to_bytes(), b.tables().0.to_bytes());

    // The artifact round-trips through the checkpoint; a TPM without SRP publishes none.
    let artifact = straight
        .checkpoint(None)
        .expect("checkpoint")
        .srp()
        .expect("readable")
        .expect("published");
    assert_eq!(artifact.config, srp_config());
    assert_eq!(
        params(&artifact.encoder(&Device::flex()).expect("encoder")),
        params(&a.encoder())
    );
    let plain = TpmTrainer::new(train_config(44), tpm_config()).expect("tpm");
    assert!(
        plain
            .checkpoint(None)
            .expect("checkpoint")
            .srp()
            .expect("ok")
            .is_none()
    );
    let mut broken = checkpoint.clone();
    broken.blobs.remove(srp_blobs::MODEL);
    let err = broken.srp().expect_err("half an artifact");
    assert!(err.to_string().contains(srp_blobs::MODEL), "{err}");
}

fn ctr_with_srp() -> CtrNetConfig {
    ctr_config().with_srp(Some(
        SrpTransferConfig::new(srp_config().encoder()).with_n_queries(2),
    ))
}

#[test]
fn ctr_net_reads_tokens_from_the_published_tables_with_the_encoder_frozen() {
    let _rng = test_util::device(143);
    let mut tpm = tpm_with_srp(45);
    let batches: Vec<FeatureBatch> = record_batches(&events(1_000, 46, 20), 100)
        .iter()
        .map(features)
        .collect();
    for b in &batches {
        tpm.train_step(b).expect("tpm step");
    }
    let artifact = tpm
        .checkpoint(None)
        .expect("checkpoint")
        .srp()
        .expect("ok")
        .expect("published");

    let mut ctr = CtrTrainer::new(train_config(47), ctr_with_srp()).expect("ctr");
    // Before an encoder is plugged in, the branch sees no behaviours.
    let batch = &batches[0];
    let device = Device::flex();
    let empty = ctr.srp_input(batch, &device).expect("input").expect("srp");
    assert!(
        test_util::values(empty.mask.float())
            .iter()
            .all(|&m| m == 0.0)
    );

    ctr.set_srp(&artifact).expect("set");
    let pretrained = params(&tpm.srp_pretrainer().expect("on").encoder());
    let in_net = |ctr: &CtrTrainer| params(&ctr.net().srp.as_ref().expect("branch").encoder);
    assert_eq!(in_net(&ctr), pretrained);

    // Tokens: item + category rows of the published tables, most recent first, masked
    // padding; the candidate's token likewise.
    let input = ctr.srp_input(batch, &device).expect("input").expect("srp");
    let (items, categories) = artifact.tables().expect("tables");
    let row_sum = |item: u64, category: u64| -> Vec<f32> {
        let read = |t: &crate::embedding::EmbeddingTable, id: u64| {
            t.row(id).unwrap_or(t.default_row()).to_vec()
        };
        read(&items, item)
            .iter()
            .zip(read(&categories, category))
            .map(|(a, b)| a + b)
            .collect()
    };
    let tokens = test_util::values(input.tokens);
    let mask = test_util::values(input.mask.float());
    let candidate = test_util::values(input.candidate);
    let (len, d) = (12, 8);
    let mut checked = 0;
    for b in 0..batch.rows() {
        let history = batch.long.row(b);
        let cats = batch.long.row_categories(b);
        for j in 0..len {
            assert_eq!(mask[b * len + j] == 1.0, j < history.len().min(len));
            if j < history.len().min(len) {
                let want = row_sum(history[j], cats[j]);
                assert_eq!(&tokens[(b * len + j) * d..][..d], &want[..]);
                checked += 1;
            }
        }
        let want = row_sum(batch.item_ids[b], batch.category_ids[b]);
        assert_eq!(&candidate[b * d..][..d], &want[..]);
    }
    assert!(checked > 100);

    // Training moves the transfer, never the encoder; checkpoints keep it frozen.
    let before = params(&ctr.net().srp.as_ref().expect("branch").cross_queries[0]);
    for b in &batches[1..] {
        ctr.train_step(b).expect("ctr step");
    }
    assert_eq!(in_net(&ctr), pretrained, "the encoder is frozen");
    let after = params(&ctr.net().srp.as_ref().expect("branch").cross_queries[0]);
    assert_ne!(before, after, "the cross-attention queries train");
    let mut resumed = CtrTrainer::resume(&ctr.checkpoint(None).expect("ckpt")).expect("resume");
    resumed.set_srp(&artifact).expect("set");
    resumed.train_step(&batches[1]).expect("step");
    assert_eq!(in_net(&resumed), pretrained, "still frozen after resume");
}

#[test]
fn mismatches_and_bad_settings_are_named() {
    let _rng = test_util::device(144);
    let mut tpm = tpm_with_srp(48);
    tpm.train_step(&features(&record_batch(&events(100, 49, 20))))
        .expect("step");
    let artifact = tpm
        .checkpoint(None)
        .expect("ckpt")
        .srp()
        .expect("ok")
        .expect("published");
    // An encoder of another shape is refused; so is a network without the branch.
    let other = ctr_config().with_srp(Some(SrpTransferConfig::new(
        srp_config().encoder().with_n_layers(3),
    )));
    let mut ctr = CtrTrainer::new(train_config(50), other).expect("ctr");
    let err = ctr.set_srp(&artifact).expect_err("shape");
    assert!(err.to_string().contains("srp"), "{err}");
    let mut plain = CtrTrainer::new(train_config(50), ctr_config()).expect("ctr");
    assert!(plain.set_srp(&artifact).is_err());
    // Enabling again starts afresh; invalid settings name their field.
    assert_eq!(tpm.srp_pretrainer().expect("on").stats().steps, 1);
    tpm.enable_srp_pretraining(srp_config()).expect("restart");
    assert_eq!(tpm.srp_pretrainer().expect("on").stats().steps, 0);
    for (bad, field) in [
        (
            SrpPretrainConfig {
                heads: 3,
                ..srp_config()
            },
            "srp.heads",
        ),
        (
            SrpPretrainConfig {
                mask_prob: 1.0,
                ..srp_config()
            },
            "srp.mask-prob",
        ),
        (
            SrpPretrainConfig {
                max_len: 0,
                ..srp_config()
            },
            "srp.max-len",
        ),
    ] {
        let err = bad.validate().expect_err("invalid");
        assert!(err.to_string().contains(field), "{err}");
    }
}
