//! TPM, E-CDCTR's tiny pre-training model: a few basic features of the natural domain (user,
//! item, category embeddings and optional dense context) through a shallow MLP to a click logit.
//!
//! Its value is in its embedding tables (trained outside this module and exported as the
//! monthly snapshot); the dense part here is deliberately small.
//!
//! With `plugin` configured, TPM is also the pre-training model of PPM: the candidate's content
//! vector goes through a [`PluginTower`] whose output joins the MLP input, so the tower learns
//! a click-predictive item representation from the long natural window; the daily job
//! publishes the tower for `CtrNet` to plug in frozen (see [`PlugIn`](super::PlugIn)).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::{Mlp, MlpConfig, PluginTower, PluginTowerConfig};

/// Configuration of a [`Tpm`].
#[derive(Config, Debug)]
pub struct TpmConfig {
    /// Width `d` of the user, item and category embeddings.
    #[config(default = 16)]
    pub d_embed: usize,
    /// Width `c` of the dense context features (0: none).
    #[config(default = 0)]
    pub d_context: usize,
    /// Hidden widths of the MLP.
    #[config(default = "vec![64, 32]")]
    pub hidden: Vec<usize>,
    /// Batch norm in the MLP's hidden layers.
    #[config(default = true)]
    pub batch_norm: bool,
    /// The PPM plug-in tower pre-trained on the content vector (None: no content input).
    #[config(default = "None")]
    pub plugin: Option<PluginTowerConfig>,
}

/// The TPM network `([B, d] x 3, [B, c], [B, w]) -> [B, 1]`. Build it with [`TpmConfig::init`].
#[derive(Module, Debug)]
pub struct Tpm {
    /// The MLP over the concatenated inputs.
    pub mlp: Mlp,
    /// The PPM plug-in tower over the content vector (if configured).
    pub plugin: Option<PluginTower>,
    /// Width of the context input (0: none).
    pub d_context: usize,
}

impl TpmConfig {
    /// Width of the MLP input: `3 d + c [+ p]`.
    pub fn d_mlp_input(&self) -> usize {
        3 * self.d_embed + self.d_context + self.plugin.as_ref().map_or(0, |p| p.d_output)
    }

    /// Builds the network on `device` with freshly initialised parameters.
    pub fn init(&self, device: &Device) -> Tpm {
        Tpm {
            mlp: MlpConfig::new(self.d_mlp_input())
                .with_hidden(self.hidden.clone())
                .with_batch_norm(self.batch_norm)
                .init(device),
            plugin: self.plugin.as_ref().map(|p| p.init(device)),
            d_context: self.d_context,
        }
    }
}

impl Tpm {
    /// Click logit `[B, 1]` from `user`, `item`, `category`: `[B, d]` each, `context`:
    /// `[B, c]`, which must be `Some` exactly when the config's `d_context > 0`, and `content`:
    /// `[B, w]`, which must be `Some` exactly when the config has a `plugin`.
    pub fn forward(
        &self,
        user: Tensor<2>,
        item: Tensor<2>,
        category: Tensor<2>,
        context: Option<Tensor<2>>,
        content: Option<Tensor<2>>,
    ) -> Tensor<2> {
        let mut parts = vec![user, item, category]; // [B, d] each
        match (context, self.d_context) {
            (None, 0) => {}
            (Some(context), c) if c > 0 => parts.push(context), // [B, c]
            (context, c) => panic!(
                "TPM context: configured width {c}, input {}",
                if context.is_some() {
                    "present"
                } else {
                    "absent"
                }
            ),
        }
        match (&self.plugin, content) {
            (None, None) => {}
            (Some(tower), Some(content)) => parts.push(tower.forward(content)), // [B, p]
            (tower, content) => panic!(
                "TPM content: plug-in {}, input {}",
                if tower.is_some() {
                    "configured"
                } else {
                    "not configured"
                },
                if content.is_some() {
                    "present"
                } else {
                    "absent"
                }
            ),
        }
        self.mlp.forward(Tensor::cat(parts, 1)) // [B, 3d + c + p] -> [B, 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::test_util::{device, normal};

    #[test]
    fn logit_shape_with_and_without_context() {
        let device = device(41);
        let tpm = TpmConfig::new().with_d_embed(4).init(&device);
        let emb = || normal([5, 4], &device);
        assert_eq!(tpm.forward(emb(), emb(), emb(), None, None).dims(), [5, 1]);

        let tpm = TpmConfig::new()
            .with_d_embed(4)
            .with_d_context(3)
            .init(&device);
        let out = tpm.forward(emb(), emb(), emb(), Some(normal([5, 3], &device)), None);
        assert_eq!(out.dims(), [5, 1]);
    }

    #[test]
    fn the_plug_in_tower_reads_the_content_and_trains() {
        let device = device(43).autodiff();
        let tpm = TpmConfig::new()
            .with_d_embed(4)
            .with_plugin(Some(PluginTowerConfig::new(6).with_d_output(3)))
            .init(&device);
        let emb = || normal([5, 4], &device);
        let out = tpm.forward(emb(), emb(), emb(), None, Some(normal([5, 6], &device)));
        assert_eq!(out.dims(), [5, 1]);
        let grads = out.sum().backward();
        let tower = tpm.plugin.as_ref().expect("configured");
        assert!(tower.layers.iter().all(|l| l.weight.grad(&grads).is_some()));
    }

    #[test]
    #[should_panic(expected = "TPM content")]
    fn missing_content_is_rejected() {
        let device = device(44);
        let tpm = TpmConfig::new()
            .with_d_embed(4)
            .with_plugin(Some(PluginTowerConfig::new(6)))
            .init(&device);
        let emb = || normal([5, 4], &device);
        let _ = tpm.forward(emb(), emb(), emb(), None, None);
    }

    #[test]
    #[should_panic(expected = "TPM context")]
    fn missing_context_is_rejected() {
        let device = device(42);
        let tpm = TpmConfig::new()
            .with_d_embed(4)
            .with_d_context(3)
            .init(&device);
        let emb = || normal([5, 4], &device);
        let _ = tpm.forward(emb(), emb(), emb(), None, None);
    }
}
