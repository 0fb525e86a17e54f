//! PPM end to end in the trainers: TPM pre-trains the content tower and publishes it in its
//! checkpoint; a `CtrNet` plugs it in frozen, serves the tower's outputs from its cache, trains
//! only the adapter above it, and carries the tower through its own checkpoints.

use burn::module::Module;
use burn::tensor::Device;

use super::inputs::{CONTENT_WIDTH, content_batch, content_events};
use super::*;
use crate::nn::{Checkpoint, PluginTower, PluginTowerConfig};

fn tower_config() -> PluginTowerConfig {
    PluginTowerConfig::new(CONTENT_WIDTH)
        .with_hidden(vec![6])
        .with_d_output(3)
}

/// The tower's outputs on a fixed probe input (on the plain device).
fn probe(tower: &PluginTower) -> Vec<f32> {
    let content = (0..2 * CONTENT_WIDTH)
        .map(|i| i as f32 * 0.3 - 1.0)
        .collect();
    tower.valid().forward_rows(content, &Device::flex())
}

/// A TPM with a plug-in trained on content events, and its checkpoint.
fn pretrained_tpm() -> (TpmTrainer, TrainerCheckpoint) {
    let config = TpmConfig::new()
        .with_d_embed(4)
        .with_d_context(CONTEXT_WIDTH)
        .with_hidden(vec![8])
        .with_plugin(Some(tower_config()));
    let mut tpm = TpmTrainer::new(train_config(31), config).expect("tpm");
    let initial = probe(tpm.net().plugin.as_ref().expect("tower"));
    for chunk in content_events(1_000, 32).chunks(100) {
        tpm.train_step(&features(&content_batch(chunk)))
            .expect("tpm step");
    }
    let trained = probe(tpm.net().plugin.as_ref().expect("tower"));
    assert_ne!(initial, trained, "TPM pre-training moves the tower");
    let checkpoint = tpm.checkpoint(None).expect("checkpoint");
    (tpm, checkpoint)
}

#[test]
fn tpm_pretrains_the_tower_and_publishes_it_on_its_own() {
    let _rng = test_util::device(131);
    let (tpm, checkpoint) = pretrained_tpm();
    let plugin = checkpoint.plugin().expect("readable").expect("published");
    let (config, tower): (PluginTowerConfig, PluginTower) =
        plugin.restore(&Device::flex()).expect("restore");
    assert_eq!(config, tower_config());
    assert_eq!(
        probe(&tower),
        probe(tpm.net().plugin.as_ref().expect("tower"))
    );
    // A TPM without a plug-in publishes none; half a plug-in is an error naming the blob.
    let plain = TpmTrainer::new(train_config(31), TpmConfig::new().with_d_embed(4))
        .expect("tpm")
        .checkpoint(None)
        .expect("checkpoint");
    assert!(plain.plugin().expect("readable").is_none());
    let mut half = checkpoint.clone();
    half.blobs.remove(blobs::PLUGIN_WEIGHTS);
    let err = half.plugin().expect_err("half a plug-in");
    assert!(err.to_string().contains("plugin.bpk"), "{err}");
}

#[test]
fn ctr_net_plugs_the_tower_in_frozen_caches_it_and_keeps_it_through_checkpoints() {
    let _rng = test_util::device(132);
    let (_, tpm_checkpoint) = pretrained_tpm();
    let plugin = tpm_checkpoint
        .plugin()
        .expect("readable")
        .expect("published");
    let (_, pretrained): (PluginTowerConfig, PluginTower) =
        plugin.restore(&Device::flex()).expect("restore");

    let config = ctr_config().with_plugin(Some(tower_config()));
    let mut trainer = CtrTrainer::new(train_config(33), config).expect("trainer");
    // Before a tower is plugged in, the plug-in reads zeros.
    assert!(probe(&trainer_tower(&trainer)).iter().all(|v| *v == 0.0));
    trainer.set_plugin(&plugin).expect("plug in");
    assert_eq!(probe(&trainer_tower(&trainer)), probe(&pretrained));

    let batches: Vec<FeatureBatch> = content_events(1_200, 34)
        .chunks(100)
        .map(|c| features(&content_batch(c)))
        .collect();
    let adapter_before = adapter_weights(&trainer);
    let mut losses = Vec::new();
    for _ in 0..4 {
        for b in &batches {
            losses.push(trainer.train_step(b).expect("step"));
        }
    }
    // The tower is frozen, the adapter trains, the network learns.
    assert_eq!(probe(&trainer_tower(&trainer)), probe(&pretrained));
    assert_ne!(adapter_weights(&trainer), adapter_before);
    let first: f32 = losses[..5].iter().sum::<f32>() / 5.0;
    let last: f32 = losses[losses.len() - 5..].iter().sum::<f32>() / 5.0;
    assert!(last < first, "loss {first} -> {last}");
    // The tower ran once per distinct (item, content), every other row was a cache hit.
    let distinct: std::collections::HashSet<(u64, Vec<u32>)> = batches
        .iter()
        .flat_map(|b| {
            (0..b.rows()).map(move |r| {
                let row = &b.content[r * CONTENT_WIDTH..(r + 1) * CONTENT_WIDTH];
                (b.item_ids[r], row.iter().map(|v| v.to_bits()).collect())
            })
        })
        .collect();
    let stats = trainer.plugin_cache().stats();
    assert_eq!(stats.computed, distinct.len() as u64);
    assert_eq!(stats.computed + stats.hits, 4 * 1_200);

    // A checkpoint carries the tower: the resumed trainer predicts identically.
    let held_out = features(&content_batch(&content_events(200, 35)));
    let expected = trainer.predict(&held_out).expect("predict");
    let mut resumed =
        CtrTrainer::resume(&trainer.checkpoint(None).expect("checkpoint")).expect("resume");
    assert_eq!(probe(&trainer_tower(&resumed)), probe(&pretrained));
    assert_eq!(resumed.predict(&held_out).expect("predict"), expected);
    // ... and keeps it frozen.
    resumed.train_step(&batches[0]).expect("step");
    assert_eq!(probe(&trainer_tower(&resumed)), probe(&pretrained));

    // A tower of other widths is refused, naming the plug-in.
    let other = PluginTowerConfig::new(CONTENT_WIDTH).with_d_output(5);
    let wrong = Checkpoint::capture(&other, &other.init(&Device::flex())).expect("capture");
    let err = resumed.set_plugin(&wrong).expect_err("wrong widths");
    assert!(err.to_string().contains("plugin"), "{err}");
    // A network without a plug-in refuses one.
    let mut plain = CtrTrainer::new(train_config(33), ctr_config()).expect("trainer");
    assert!(plain.set_plugin(&plugin).is_err());
}

fn trainer_tower(trainer: &CtrTrainer) -> PluginTower {
    trainer
        .net()
        .plugin_tower()
        .expect("the network has a plug-in")
        .clone()
}

fn adapter_weights(trainer: &CtrTrainer) -> Vec<f32> {
    trainer
        .net()
        .plugin
        .as_ref()
        .expect("plug-in")
        .adapter
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32")
}
