//! PPM through the daily job: TPM pre-trains the plug-in tower and publishes it with its
//! checkpoint; CPM and A-CTR plug the newest TPM's tower in, frozen, and publish it inside
//! their own checkpoints.

use burn::module::Module;
use burn::tensor::Device;
use ctrflow_models::nn::{PluginTower, PluginTowerConfig};
use ctrflow_models::train::{CtrTrainer, blobs};
use ctrflow_pipeline::daily::publish::{get_checkpoint, get_plugin};

use super::*;

/// The tower's outputs on a fixed probe input of width `w`.
fn probe(tower: &PluginTower, w: usize) -> Vec<f32> {
    let content = (0..3 * w).map(|i| (i as f32 * 0.37).sin()).collect();
    tower.valid().forward_rows(content, &Device::flex())
}

#[tokio::test(flavor = "multi_thread")]
async fn tpm_pretrains_the_plug_in_and_actr_serves_the_newest_tpm_tower_frozen() {
    let (dir, storage) = archive(5).await;
    let config = config_variant(dir.path(), "plugin.toml", |toml| {
        toml.replace("eta-top-k = 8\n", "eta-top-k = 8\nuse-plugin = true\n")
            + "\n[daily.tpm-network]\nplugin-dim = 4\nplugin-hidden = [8]\n"
    });
    let reports = backfill_range(&storage, &config, "2024-03-02", "2024-03-05").await;
    let published = Published::load(&storage, &storage).await.expect("load");
    let tpm = published
        .manifest(ModelKind::Tpm, &v("2024-03-02"))
        .expect("TPM published")
        .clone();
    // The TPM lists the tower on its own next to its checkpoint.
    for blob in [blobs::PLUGIN_CONFIG, blobs::PLUGIN_WEIGHTS] {
        assert!(
            tpm.files.iter().any(|f| f.ends_with(&format!("/{blob}"))),
            "TPM manifest lists no {blob}: {:?}",
            tpm.files
        );
    }
    let tower = get_plugin(&storage, &tpm)
        .await
        .expect("read")
        .expect("the TPM published a plug-in");
    let (tower_config, tpm_tower): (PluginTowerConfig, PluginTower) =
        tower.restore(&Device::flex()).expect("restore");
    let w = config.schema.content_dim;
    assert_eq!((tower_config.d_input, tower_config.d_output), (w, 4));
    let expected = probe(&tpm_tower, w);
    assert!(expected.iter().any(|v| v.abs() > 1e-6), "a trained tower");

    // Every A-CTR trained after the TPM was published carries exactly its tower.
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
        let checkpoint = get_checkpoint(&storage, actr).await.expect("checkpoint");
        let trainer = CtrTrainer::resume(&checkpoint).expect("resume");
        let tower = trainer.net().plugin_tower().expect("A-CTR has a plug-in");
        assert_eq!(probe(tower, w), expected, "A-CTR {}", actr.version);
    }
    // The first day's A-CTR had no TPM yet: its tower reads zeros, and the report says so.
    let first = published
        .manifest(ModelKind::Actr, &v("2024-03-02"))
        .expect("A-CTR of the first day");
    assert!(first.parents.tpm.is_empty());
    let checkpoint = get_checkpoint(&storage, first).await.expect("checkpoint");
    let trainer = CtrTrainer::resume(&checkpoint).expect("resume");
    let zeros = probe(trainer.net().plugin_tower().expect("plug-in"), w);
    assert!(zeros.iter().all(|v| *v == 0.0));
    let details = actr_run_details(&reports);
    assert!(
        details[0].contains("no plug-in published yet"),
        "{details:?}"
    );
    assert!(
        details[1..]
            .iter()
            .all(|d| d.contains(&format!("plug-in from tpm {}", tpm.version))),
        "{details:?}"
    );
}

#[test]
fn use_plugin_without_a_tpm_plug_in_is_a_config_error_naming_the_field() {
    assert_config_error_names(
        "[daily.network]\nuse-plugin = true\n",
        "daily.network.use-plugin",
    );
}
