//! Checkpoints as bytes: a network's weights in burn's burnpack record format (full precision,
//! as the parameters are held: f32) plus its config as JSON, so the publisher can write
//! `model.bpk` and `config.json` to object storage and any reader can rebuild the network.
//!
//! Writing syncs batch-norm running statistics first (burn keeps the latest update of a
//! training step in a per-thread slot until the next forward or `valid()`). Loading builds the
//! network from the config and applies the record strictly: a missing, extra or mis-shaped
//! tensor is an error. Parameter ids are restored too, so optimiser state keyed by id still
//! matches.

use burn::config::{Config, config_to_json};
use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use thiserror::Error;

use super::{
    CtrNet, CtrNetConfig, Mlp, MlpConfig, PluginTower, PluginTowerConfig, SrpEncoder,
    SrpEncoderConfig, SrpPretrainNet, SrpPretrainNetConfig, Tpm, TpmConfig,
};

/// A config that builds a network: what a checkpoint is rebuilt from.
///
/// Invariant: `build` depends only on the config's fields, so the weights of a network built
/// from a config always fit a network built from the same config (its JSON round trip).
///
/// ```
/// use burn::tensor::Device;
/// use ctrflow_models::nn::{Checkpoint, Tpm, TpmConfig};
///
/// let device = Device::flex();
/// let config = TpmConfig::new().with_d_embed(4);
/// let tpm = config.init(&device);
/// let checkpoint = Checkpoint::capture(&config, &tpm).expect("encode");
/// let (restored_config, _restored): (TpmConfig, Tpm) =
///     checkpoint.restore(&device).expect("decode");
/// assert_eq!(restored_config.d_embed, 4);
/// ```
pub trait NetConfig: Config {
    /// The network this config builds.
    type Net: Module;

    /// Builds the network on `device` with freshly initialised parameters.
    fn build(&self, device: &Device) -> Self::Net;

    /// Fields added after configs of this type were first published, with the value that
    /// reproduces the network those older configs built. [`Checkpoint::config`] fills them in
    /// when a stored `config.json` lacks them (burn's `Config` has no serde defaults).
    fn added_fields() -> Vec<(&'static str, serde_json::Value)> {
        Vec::new()
    }
}

impl NetConfig for CtrNetConfig {
    type Net = CtrNet;
    fn build(&self, device: &Device) -> CtrNet {
        self.init(device)
    }

    fn added_fields() -> Vec<(&'static str, serde_json::Value)> {
        vec![
            ("sequence_categories", serde_json::Value::Bool(false)),
            ("d_content", serde_json::Value::from(0)),
            ("plugin", serde_json::Value::Null),
            ("srp", serde_json::Value::Null),
            ("historical_items", serde_json::Value::Bool(true)),
        ]
    }
}

impl NetConfig for TpmConfig {
    type Net = Tpm;
    fn build(&self, device: &Device) -> Tpm {
        self.init(device)
    }

    fn added_fields() -> Vec<(&'static str, serde_json::Value)> {
        vec![("plugin", serde_json::Value::Null)]
    }
}

/// The PPM plug-in tower, published on its own by the TPM that pre-trained it.
impl NetConfig for PluginTowerConfig {
    type Net = PluginTower;
    fn build(&self, device: &Device) -> PluginTower {
        self.init(device)
    }
}

/// The SRP4CTR encoder, published on its own by the TPM job that pre-trained it.
impl NetConfig for SrpEncoderConfig {
    type Net = SrpEncoder;
    fn build(&self, device: &Device) -> SrpEncoder {
        self.init(device)
    }
}

/// The SRP4CTR pre-training network (encoder, `[MASK]` token, heads).
impl NetConfig for SrpPretrainNetConfig {
    type Net = SrpPretrainNet;
    fn build(&self, device: &Device) -> SrpPretrainNet {
        self.init(device)
    }
}

impl NetConfig for MlpConfig {
    type Net = Mlp;
    fn build(&self, device: &Device) -> Mlp {
        self.init(device)
    }
}

/// Why a checkpoint could not be written or read.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// The weights could not be encoded, decoded or applied to the network the config builds.
    #[error("checkpoint weights: {0}")]
    Weights(String),
    /// The config JSON could not be parsed as the expected config type.
    #[error("checkpoint config: {0}")]
    Config(String),
}

/// A network's weights (burnpack bytes) and config (JSON), ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The config as pretty JSON (`config.json`).
    pub config_json: String,
    /// The weights in burn's burnpack format.
    pub weights: Vec<u8>,
}

impl Checkpoint {
    /// Captures `net` and the `config` that built it.
    pub fn capture<C: NetConfig>(config: &C, net: &C::Net) -> Result<Self, CheckpointError> {
        // `valid()` syncs running statistics and drops autodiff; the trained module is untouched.
        let bytes = net
            .valid()
            .into_record()
            .into_bytes()
            .map_err(|e| CheckpointError::Weights(e.to_string()))?;
        Ok(Self {
            config_json: config_to_json(config),
            weights: bytes.to_vec(),
        })
    }

    /// The config, parsed; fields added since the checkpoint was written take the values
    /// [`NetConfig::added_fields`] gives (the network it was trained as).
    pub fn config<C: NetConfig>(&self) -> Result<C, CheckpointError> {
        let mut json: serde_json::Value = serde_json::from_str(&self.config_json)
            .map_err(|e| CheckpointError::Config(e.to_string()))?;
        if let Some(fields) = json.as_object_mut() {
            for (name, value) in C::added_fields() {
                fields.entry(name).or_insert(value);
            }
        }
        serde_json::from_value(json).map_err(|e| CheckpointError::Config(e.to_string()))
    }

    /// Rebuilds the network on `device` (add `.train()` / use an autodiff device to continue
    /// training) and returns it with its config.
    pub fn restore<C: NetConfig>(&self, device: &Device) -> Result<(C, C::Net), CheckpointError> {
        let config: C = self.config()?;
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(self.weights.clone()))
            .map_err(|e| CheckpointError::Weights(e.to_string()))?;
        let net = config
            .build(device)
            .try_load_record(record)
            .map_err(|e| CheckpointError::Weights(e.to_string()))?;
        Ok((config, net))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::bce_with_logits;
    use crate::nn::ctr_net::tests::{random_input, small_config};
    use crate::nn::test_util::{device, max_abs_diff, normal};
    use burn::optim::{AdamConfig, GradientsParams};

    #[test]
    fn ctr_net_round_trip_gives_identical_outputs() {
        let device = device(81).autodiff();
        let srp = crate::nn::SrpTransferConfig::new(SrpEncoderConfig::new().with_d_model(4));
        let config = small_config().with_srp(Some(srp));
        // Train two steps so weights and batch-norm statistics are not the initial ones.
        let mut net = config.init(&device);
        let mut optim = AdamConfig::new().init();
        for _ in 0..2 {
            let input = random_input(&config, 6, 5, 4, &device);
            let labels = normal([6, 1], &device).greater_elem(0.0).float();
            let loss = bce_with_logits(net.forward(input), labels);
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(1e-2, net, grads);
        }
        let checkpoint = Checkpoint::capture(&config, &net).expect("encode");
        assert!(checkpoint.config_json.contains("\"n_queries\": 4"));

        let plain = Device::flex();
        let (restored_config, restored): (CtrNetConfig, CtrNet) =
            checkpoint.restore(&plain).expect("decode");
        assert_eq!(config_to_json(&restored_config), checkpoint.config_json);

        // Inference outputs (running statistics) are identical.
        let input = random_input(&config, 5, 5, 4, &plain);
        let a = net.valid().forward(input.clone());
        let b = restored.forward(input);
        assert_eq!(max_abs_diff(a, b), 0.0);
    }

    #[test]
    fn tpm_round_trip_and_wrong_config_is_an_error() {
        let device = device(82);
        let config = TpmConfig::new().with_d_embed(3);
        let tpm = config.init(&device);
        let checkpoint = Checkpoint::capture(&config, &tpm).expect("encode");
        let (_, restored): (TpmConfig, Tpm) = checkpoint.restore(&device).expect("decode");
        let x = || normal([4, 3], &device);
        let (u, i, c) = (x(), x(), x());
        let a = tpm.forward(u.clone(), i.clone(), c.clone(), None, None);
        let b = restored.forward(u, i, c, None, None);
        assert_eq!(max_abs_diff(a, b), 0.0);

        // Weights of one network under another config's structure are rejected.
        let mut wrong = checkpoint.clone();
        wrong.config_json = config_to_json(&config.clone().with_d_embed(4));
        assert!(matches!(
            wrong.restore::<TpmConfig>(&device),
            Err(CheckpointError::Weights(_))
        ));
        wrong.config_json = "{not json".into();
        assert!(matches!(
            wrong.restore::<TpmConfig>(&device),
            Err(CheckpointError::Config(_))
        ));
    }
}
