//! SRP4CTR through the daily job: the TPM job pre-trains the sequence encoder and publishes it
//! with its checkpoint; CPM and A-CTR read the newest TPM's encoder (frozen, inside their own
//! checkpoints) and its tables.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use ctrflow_models::nn::SrpEncoder;
use ctrflow_models::train::{CtrTrainer, TpmTrainer, srp};
use ctrflow_pipeline::daily::publish::{get_checkpoint, get_srp};

use super::*;

/// Every parameter value of the encoder, in visiting order.
fn encoder_values(encoder: &SrpEncoder) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values = param.val().into_data().try_to_vec::<f32>().expect("f32");
            self.0.extend(values);
        }
    }
    let mut collect = Collect(Vec::new());
    encoder.visit(&mut collect);
    collect.0
}

#[tokio::test(flavor = "multi_thread")]
async fn tpm_pretrains_srp4ctr_and_actr_reads_the_newest_tpm_encoder_frozen() {
    let (dir, storage) = archive(5).await;
    let config = config_variant(dir.path(), "srp.toml", |toml| {
        toml.replace(
            "eta-top-k = 8\n",
            "eta-top-k = 8\nuse-srp = true\nsrp-queries = 2\n",
        ) + "\n[daily.tpm-network]\npretrain-srp = true\n\n[daily.srp]\nd-model = 8\nmax-len = 20\ncandidates = 256\n"
    });
    let reports = backfill_range(&storage, &config, "2024-03-02", "2024-03-05").await;
    let published = Published::load(&storage, &storage).await.expect("load");
    let tpm = published
        .manifest(ModelKind::Tpm, &v("2024-03-02"))
        .expect("TPM published")
        .clone();
    for blob in srp::blobs::ARTIFACT {
        assert!(
            tpm.files.iter().any(|f| f.ends_with(&format!("/{blob}"))),
            "TPM manifest lists no {blob}: {:?}",
            tpm.files
        );
    }
    // The TPM's pre-training ran on its window and is what it published.
    let tpm_trainer = TpmTrainer::resume(&get_checkpoint(&storage, &tpm).await.expect("ckpt"))
        .expect("resume TPM");
    let pretrainer = tpm_trainer.srp_pretrainer().expect("SRP pre-training on");
    assert!(pretrainer.stats().steps > 0 && pretrainer.stats().targets > 0);
    let artifact = get_srp(&storage, &tpm)
        .await
        .expect("read")
        .expect("the TPM published SRP4CTR");
    let expected = encoder_values(&pretrainer.encoder());
    assert_eq!(
        encoder_values(
            &artifact
                .encoder(&burn::tensor::Device::flex())
                .expect("encoder")
        ),
        expected
    );

    // Every A-CTR trained after the TPM was published carries exactly its encoder.
    let later: Vec<_> = published
        .versions(ModelKind::Actr)
        .filter(|m| m.parents.tpm.first() == Some(&tpm.version))
        .cloned()
        .collect();
    assert!(
        later.len() >= 2,
        "A-CTRs with the TPM as parent: {}",
        later.len()
    );
    for actr in &later {
        assert!(
            actr.metrics.is_some(),
            "A-CTR {} was evaluated",
            actr.version
        );
        let checkpoint = get_checkpoint(&storage, actr).await.expect("checkpoint");
        let trainer = CtrTrainer::resume(&checkpoint).expect("resume");
        let branch = trainer
            .net()
            .srp
            .as_ref()
            .expect("A-CTR has the SRP branch");
        assert_eq!(
            encoder_values(&branch.encoder),
            expected,
            "A-CTR {}",
            actr.version
        );
    }
    let details = actr_run_details(&reports);
    assert!(
        details[0].contains("no SRP4CTR encoder published yet"),
        "{details:?}"
    );
    assert!(
        details[1..]
            .iter()
            .all(|d| d.contains(&format!("SRP4CTR from tpm {}", tpm.version))),
        "{details:?}"
    );
}

#[test]
fn srp_settings_are_validated_naming_the_field() {
    for (toml, field) in [
        ("[daily.network]\nuse-srp = true\n", "daily.network.use-srp"),
        ("[daily.srp]\nheads = 3\n", "daily.srp.heads"),
        (
            "[daily.tpm-network]\npretrain-srp = true\n[daily.srp]\nmax-len = 5000\n",
            "daily.srp.max-len",
        ),
    ] {
        assert_config_error_names(toml, field);
    }
}
