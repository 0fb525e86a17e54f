//! CtrNet tests: shapes, optional inputs, gradients, the historical branch and its switches.

use super::*;
use crate::nn::test_util::{device, normal, prefix_mask};
use burn::optim::GradientsParams;

/// A small config for tests: d = 4, c = 2, d_h = 3.
pub(crate) fn small_config() -> CtrNetConfig {
    CtrNetConfig::new()
        .with_d_embed(4)
        .with_d_context(2)
        .with_din_hidden(vec![5])
        .with_d_hist(3)
        .with_mlp_hidden(vec![8, 4])
}

/// Random inputs for `config` with batch `b`, short length `s`, long length `l`.
pub(crate) fn random_input(
    config: &CtrNetConfig,
    b: usize,
    s: usize,
    l: usize,
    device: &Device,
) -> CtrNetInput {
    let d = config.d_embed;
    let lengths = |max: usize| (0..b).map(|i| i % (max + 1)).collect::<Vec<_>>();
    CtrNetInput {
        user: normal([b, d], device),
        item: normal([b, d], device),
        category: normal([b, d], device),
        context: (config.d_context > 0).then(|| normal([b, config.d_context], device)),
        short_seq: normal([b, s, d], device),
        short_mask: prefix_mask(&lengths(s), s, device),
        long_seq: normal([b, l, d], device),
        long_mask: prefix_mask(&lengths(l), l, device),
        historical_user: config
            .use_historical
            .then(|| normal([b, 3, config.d_hist], device)),
        historical_item: (config.use_historical && config.historical_items)
            .then(|| normal([b, 3, config.d_hist], device)),
        short_categories: config
            .sequence_categories
            .then(|| normal([b, s, d], device)),
        long_categories: config
            .sequence_categories
            .then(|| normal([b, l, d], device)),
        content: (config.d_content > 0).then(|| normal([b, config.d_content], device)),
        plugin: config
            .plugin
            .as_ref()
            .map(|p| normal([b, p.d_output], device)),
        srp: config.srp.as_ref().map(|srp| {
            let d_s = srp.encoder.d_model;
            let len = srp.encoder.max_len.min(l.max(1));
            SrpInput {
                candidate: normal([b, d_s], device),
                tokens: normal([b, len, d_s], device),
                mask: prefix_mask(&lengths(len), len, device),
            }
        }),
    }
}

#[test]
fn the_plug_in_branch_adapts_the_cached_tower_output() {
    let device = device(57).autodiff();
    let tower = PluginTowerConfig::new(6).with_d_output(3);
    let config = small_config().with_plugin(Some(tower.clone()));
    assert_eq!(config.d_mlp_input(), small_config().d_mlp_input() + 4);
    let net = config.init(&device);
    // Until a pre-trained tower is plugged in, the tower reads zeros.
    let content = normal([5, 6], &device);
    let zeros = net
        .plugin_tower()
        .expect("configured")
        .forward(content.clone());
    assert!(
        crate::nn::test_util::values(zeros)
            .iter()
            .all(|v| *v == 0.0)
    );

    let pretrained = tower.init(&device); // trainable, as TPM trained it
    let net = net.with_plugin_tower(pretrained);
    let cached = net.plugin_tower().expect("configured").forward(content);
    let mut input = random_input(&config, 5, 4, 3, &device);
    input.plugin = Some(cached);
    let logits = net.forward(input);
    assert_eq!(logits.dims(), [5, 1]);
    let grads = logits.sum().backward();
    let plug_in = net.plugin.as_ref().expect("configured");
    crate::nn::plugin::tests::assert_only_the_adapter_trains(plug_in, &grads);
}

#[test]
fn logit_shape_for_every_branch_combination() {
    let device = device(51);
    let srp = SrpTransferConfig::new(
        crate::nn::SrpEncoderConfig::new()
            .with_d_model(4)
            .with_max_len(6),
    )
    .with_n_queries(2);
    for (use_historical, srp, d_context) in
        [(true, None, 2), (false, None, 0), (true, Some(srp), 2)]
    {
        let config = small_config()
            .with_use_historical(use_historical)
            .with_srp(srp)
            .with_d_context(d_context);
        let net = config.init(&device);
        assert_eq!(net.historical_user.is_some(), use_historical);
        let out = net.forward(random_input(&config, 6, 5, 9, &device));
        assert_eq!(out.dims(), [6, 1]);
    }
}

#[test]
fn behaviour_categories_and_content_change_the_logit() {
    let device = device(56);
    let config = small_config()
        .with_sequence_categories(true)
        .with_d_content(5);
    assert_eq!(config.d_mlp_input(), small_config().d_mlp_input() + 4);
    let net = config.init(&device);
    assert!(net.content.is_some());
    let input = random_input(&config, 6, 5, 7, &device);
    let base = net.forward(input.clone());
    assert_eq!(base.dims(), [6, 1]);
    // Each new input reaches the logit: changing it alone changes the output.
    let changed = |edit: fn(&mut CtrNetInput, &Device)| {
        let mut other = input.clone();
        edit(&mut other, &device);
        let diff: f32 = (net.forward(other) - base.clone())
            .abs()
            .sum()
            .into_scalar();
        diff > 1e-6
    };
    assert!(changed(
        |i, d| i.short_categories = Some(normal([6, 5, 4], d))
    ));
    assert!(changed(
        |i, d| i.long_categories = Some(normal([6, 7, 4], d))
    ));
    assert!(changed(|i, d| i.content = Some(normal([6, 5], d))));
}

#[test]
#[should_panic(expected = "short_categories")]
fn behaviour_categories_are_required_when_configured() {
    let device = device(57);
    let config = small_config().with_sequence_categories(true);
    let net = config.init(&device);
    let mut input = random_input(&config, 3, 5, 4, &device);
    input.short_categories = None;
    let _ = net.forward(input);
}

#[test]
fn checkpoints_saved_before_the_category_content_and_item_history_options_still_load() {
    let device = device(58);
    let config = small_config();
    let net = config.init(&device);
    let mut checkpoint = crate::nn::Checkpoint::capture(&config, &net).expect("capture");
    let mut json: serde_json::Value =
        serde_json::from_str(&checkpoint.config_json).expect("config json");
    let object = json.as_object_mut().expect("object");
    assert!(object.remove("sequence_categories").is_some());
    assert!(object.remove("d_content").is_some());
    assert!(object.remove("historical_items").is_some());
    checkpoint.config_json = json.to_string();
    let (old, _net): (CtrNetConfig, CtrNet) = checkpoint.restore(&device).expect("restore");
    assert!(!old.sequence_categories);
    assert_eq!(old.d_content, 0);
    assert!(
        old.historical_items,
        "older records read both historical features"
    );
}

#[test]
fn without_historical_items_only_the_user_feature_is_built_and_read() {
    let device = device(54);
    let both = small_config().with_use_historical(true);
    let user_only = both.clone().with_historical_items(false);
    let hist_width = both.d_mlp_input() - user_only.d_mlp_input();
    assert!(hist_width > 0);
    assert_eq!(
        both.d_mlp_input() - small_config().with_use_historical(false).d_mlp_input(),
        2 * hist_width
    );
    let net = user_only.init(&device);
    assert!(net.historical_user.is_some() && net.historical_item.is_none());
    let input = random_input(&user_only, 3, 5, 4, &device);
    assert!(input.historical_item.is_none());
    assert_eq!(net.forward(input).dims(), [3, 1]);
    // An item feature handed to a network without the branch is a wiring error.
    let mut input = random_input(&user_only, 3, 5, 4, &device);
    input.historical_item = Some(normal([3, 3, user_only.d_hist], &device));
    let wired = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| net.forward(input)));
    assert!(wired.is_err());
}

#[test]
fn full_long_attention_takes_all_l_behaviours() {
    let device = device(52);
    let config = small_config().with_full_long_attention(true);
    let net = config.init(&device);
    let out = net.forward(random_input(&config, 3, 5, 200, &device));
    assert_eq!(out.dims(), [3, 1]);
}

#[test]
fn merged_historical_inputs() {
    let device = device(53);
    let config = small_config().with_hist_merged(true);
    let net = config.init(&device);
    let mut input = random_input(&config, 3, 5, 4, &device);
    input.historical_user = Some(normal([3, 1, 3], &device));
    input.historical_item = Some(normal([3, 1, 3], &device));
    assert_eq!(net.forward(input).dims(), [3, 1]);
}

#[test]
#[should_panic(expected = "historical_user")]
fn missing_historical_input_is_rejected() {
    let device = device(54);
    let config = small_config();
    let net = config.init(&device);
    let mut input = random_input(&config, 3, 5, 4, &device);
    input.historical_user = None;
    let _ = net.forward(input);
}

#[test]
fn frozen_historical_branch_gets_no_gradient() {
    let device = device(55).autodiff();
    let config = small_config();
    let net = config.init(&device).freeze_historical();
    let grads = net
        .forward(random_input(&config, 4, 5, 4, &device))
        .sum()
        .backward();
    let grads = GradientsParams::from_grads(grads, &net);
    let historical = net.historical_user.as_ref().expect("configured");
    assert!(grads.get::<2>(historical.query.weight.id).is_none());
    assert!(grads.get::<2>(net.mlp.output.weight.id).is_some());
}
