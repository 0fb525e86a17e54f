//! PPM, the pre-trained plug-in: a tower over an item's content vector (`item_content`:
//! text/image vectors from pre-trained encoders) that is pre-trained as part of a CTR model on
//! long-horizon natural data, then plugged into `CtrNet` with its weights **frozen**.
//!
//! ```text
//! pre-training (TPM):  content [B,w] ── PluginTower (trains) ── [B,p] ──┐
//!                      user, item, category [B,d] ──────────────────────┴─ concat ── Mlp ── logit
//!
//! CtrNet (CPM/A-CTR):  content [B,w] ── PluginTower (frozen) ── [B,p]   computed once per item
//!                                          (the trainer's PluginCache)  and reused
//!                      cached [B,p] ── PlugIn::adapter Linear(p -> d) ── [B,d] ── CtrNet's MLP
//! ```
//!
//! Because the tower is frozen, its output for an item depends only on the item's content, so
//! the trainer computes it once per (item, content) and caches it
//! ([`PluginCache`](crate::train::PluginCache)); only the adapter above it trains with the
//! ID-based network. The tower is part of `CtrNet`'s parameters, so a checkpoint serves and
//! evaluates with exactly the tower it was trained with.
//!
//! Before any pre-trained tower exists, `CtrNet`'s tower is all zeros
//! ([`PluginTowerConfig::init_zeros`]): the plug-in reads zeros and changes nothing, like a
//! missing TPM snapshot in the historical-embedding feature.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData, activation::relu};

/// Configuration of a [`PluginTower`]: `[B, d_input] -> hidden (ReLU) -> [B, d_output]`.
#[derive(Config, Debug, PartialEq)]
pub struct PluginTowerConfig {
    /// Width `w` of the content vector (`[schema] content-dim`).
    pub d_input: usize,
    /// Hidden widths, first to last (each followed by a ReLU; may be empty).
    #[config(default = "vec![32]")]
    pub hidden: Vec<usize>,
    /// Width `p` of the plug-in output: what is cached per item.
    #[config(default = 16)]
    pub d_output: usize,
}

/// The plug-in's content tower. Build it with [`PluginTowerConfig::init`].
#[derive(Module, Debug)]
pub struct PluginTower {
    /// Hidden layers (ReLU after each) and, last, the output layer (no activation).
    pub layers: Vec<Linear>,
}

impl PluginTowerConfig {
    fn build(&self, device: &Device, initializer: Option<Initializer>) -> PluginTower {
        assert!(
            self.d_input > 0 && self.d_output > 0,
            "a plug-in tower needs a content input and an output"
        );
        let widths = std::iter::once(self.d_input)
            .chain(self.hidden.iter().copied())
            .chain(std::iter::once(self.d_output))
            .collect::<Vec<_>>();
        let layers = widths
            .windows(2)
            .map(|w| {
                let config = LinearConfig::new(w[0], w[1]);
                match &initializer {
                    Some(init) => config.with_initializer(init.clone()),
                    None => config,
                }
                .init(device)
            })
            .collect();
        PluginTower { layers }
    }

    /// A tower with freshly initialised (random) parameters: the start of pre-training.
    pub fn init(&self, device: &Device) -> PluginTower {
        self.build(device, None)
    }

    /// A tower whose every weight and bias is zero: every output is zero. `CtrNet` holds this
    /// until a pre-trained tower is plugged in.
    pub fn init_zeros(&self, device: &Device) -> PluginTower {
        self.build(device, Some(Initializer::Zeros))
    }
}

impl PluginTower {
    /// Width `p` of the output.
    pub fn d_output(&self) -> usize {
        self.layers.last().map_or(0, |l| l.weight.dims()[1])
    }

    /// Width `w` of the input.
    pub fn d_input(&self) -> usize {
        self.layers.first().map_or(0, |l| l.weight.dims()[0])
    }

    /// The tower's outputs for `rows` content vectors given row-major (`[rows, w]`, `w` the
    /// tower's input width), computed on `device` (where the tower lives) and returned
    /// row-major `[rows, p]`. What the trainer's cache runs on the items it has not seen.
    pub fn forward_rows(&self, content: Vec<f32>, device: &Device) -> Vec<f32> {
        let w = self.d_input().max(1);
        let rows = content.len() / w;
        let input = Tensor::from_data(TensorData::new(content, [rows, w]), device);
        self.forward(input)
            .into_data()
            .try_to_vec::<f32>()
            .expect("float tensors hold f32")
    }

    /// `content: [B, w] -> [B, p]`.
    pub fn forward(&self, content: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len().saturating_sub(1);
        let mut x = content; // [B, w]
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x); // [B, widths[i + 1]]
            if i < last {
                x = relu(x);
            }
        }
        x // [B, p]
    }
}

/// The plug-in inside `CtrNet`: the frozen pre-trained tower and the trainable adapter that
/// maps its (cached) output into the network.
#[derive(Module, Debug)]
pub struct PlugIn {
    /// The pre-trained tower, frozen (no gradients). The trainer runs it outside autodiff and
    /// caches its outputs per item.
    pub tower: PluginTower,
    /// `Linear(p -> d)`: the upper part, trained with the rest of the network.
    pub adapter: Linear,
}

impl PlugIn {
    /// A plug-in for a network of embedding width `d_embed`: a zero tower (frozen) and a fresh
    /// adapter.
    pub fn init(tower: &PluginTowerConfig, d_embed: usize, device: &Device) -> PlugIn {
        PlugIn {
            tower: tower.init_zeros(device).no_grad(),
            adapter: LinearConfig::new(tower.d_output, d_embed).init(device),
        }
    }

    /// `cached: [B, p]` tower outputs -> `[B, d]`.
    pub fn forward(&self, cached: Tensor<2>) -> Tensor<2> {
        self.adapter.forward(cached)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::nn::test_util::{device, normal, values};

    #[test]
    fn tower_shapes_and_the_zero_tower_reads_zeros() {
        let device = device(61);
        let config = PluginTowerConfig::new(6)
            .with_hidden(vec![5, 4])
            .with_d_output(3);
        let tower = config.init(&device);
        assert_eq!(tower.layers.len(), 3);
        let x = normal([7, 6], &device);
        let y = tower.forward(x.clone());
        assert_eq!(y.dims(), [7, 3]);
        assert!(
            values(y).iter().any(|v| v.abs() > 1e-6),
            "a random tower is not zero"
        );

        let zeros = config.init_zeros(&device).forward(x);
        assert!(values(zeros).iter().all(|v| *v == 0.0));

        let linear = PluginTowerConfig::new(6)
            .with_hidden(vec![])
            .with_d_output(2);
        assert_eq!(
            linear.init(&device).forward(normal([3, 6], &device)).dims(),
            [3, 2]
        );
    }

    #[test]
    fn the_plug_in_tower_is_frozen_and_the_adapter_trains() {
        let device = device(62).autodiff();
        let config = PluginTowerConfig::new(4).with_d_output(3);
        let plug_in = PlugIn::init(&config, 5, &device);
        let content = normal([6, 4], &device);
        let cached = plug_in.tower.forward(content);
        let out = plug_in.forward(cached);
        assert_eq!(out.dims(), [6, 5]);
        let grads = out.sum().backward();
        assert_only_the_adapter_trains(&plug_in, &grads);
    }

    /// The adapter of `plug_in` has a gradient in `grads`, no layer of its tower has one.
    pub(crate) fn assert_only_the_adapter_trains(
        plug_in: &PlugIn,
        grads: &burn::tensor::Gradients,
    ) {
        assert!(plug_in.adapter.weight.grad(grads).is_some());
        assert!(
            plug_in
                .tower
                .layers
                .iter()
                .all(|l| l.weight.grad(grads).is_none())
        );
    }
}
