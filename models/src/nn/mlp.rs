//! The multi-layer perceptron on top of every ctrflow network.
//!
//! Each hidden layer is `Linear -> BatchNorm -> ReLU -> Dropout`, then a final `Linear` maps to
//! `d_output` (1 for a CTR logit).
//!
//! Batch norm over `[B, F]`: burn's `BatchNorm` normalises axis 1 of a `[batch, channels, ...]`
//! tensor and accepts rank 2, so a `[B, F]` activation is exactly BatchNorm1d over the `F`
//! features (statistics over the batch axis): no reshaping is needed. It uses batch statistics
//! (and updates its running mean/variance) when the input lives on an autodiff device and the
//! layer's training flag is on; otherwise (`module.valid()`, a plain device, or `freeze()`) it
//! uses the running statistics. A training batch therefore needs at least 2 rows.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor, activation::relu};

/// Configuration of an [`Mlp`].
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Width of the input features `F`.
    pub d_input: usize,
    /// Widths of the hidden layers, first to last (may be empty: a single linear layer).
    #[config(default = "vec![200, 80]")]
    pub hidden: Vec<usize>,
    /// Width of the output (1 for a logit).
    #[config(default = 1)]
    pub d_output: usize,
    /// Whether each hidden layer has a batch norm after its linear layer.
    #[config(default = true)]
    pub batch_norm: bool,
    /// Dropout probability after each hidden activation (0 disables it).
    #[config(default = 0.0)]
    pub dropout: f64,
}

/// One hidden layer: Linear -> BatchNorm (optional) -> ReLU -> Dropout.
#[derive(Module, Debug)]
pub struct MlpBlock {
    /// The affine map.
    pub linear: Linear,
    /// Batch norm over the layer's output features, if configured.
    pub norm: Option<BatchNorm>,
    /// Dropout after the activation (identity when its probability is 0).
    pub dropout: Dropout,
}

/// A multi-layer perceptron `[B, d_input] -> [B, d_output]`. Build it with [`MlpConfig::init`].
#[derive(Module, Debug)]
pub struct Mlp {
    /// The hidden layers, first to last.
    pub blocks: Vec<MlpBlock>,
    /// The final linear layer to `d_output`.
    pub output: Linear,
}

impl MlpConfig {
    /// Builds the MLP on `device` with freshly initialised parameters.
    pub fn init(&self, device: &Device) -> Mlp {
        assert!(self.d_input > 0, "an MLP needs at least one input feature");
        let mut blocks = Vec::with_capacity(self.hidden.len());
        let mut d_in = self.d_input;
        for &d_out in &self.hidden {
            blocks.push(MlpBlock {
                linear: LinearConfig::new(d_in, d_out).init(device),
                norm: self
                    .batch_norm
                    .then(|| BatchNormConfig::new(d_out).init(device)),
                dropout: DropoutConfig::new(self.dropout).init(),
            });
            d_in = d_out;
        }
        Mlp {
            blocks,
            output: LinearConfig::new(d_in, self.d_output).init(device),
        }
    }
}

impl MlpBlock {
    /// `[B, F_in] -> [B, F_out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = self.linear.forward(x); // [B, F_out]
        let x = match &self.norm {
            Some(norm) => norm.forward(x), // [B, F_out], normalised per feature over the batch
            None => x,
        };
        self.dropout.forward(relu(x)) // [B, F_out]
    }
}

impl Mlp {
    /// `x: [B, d_input] -> [B, d_output]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mut x = x; // [B, d_input]
        for block in &self.blocks {
            x = block.forward(x); // [B, hidden[i]]
        }
        self.output.forward(x) // [B, d_output]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::test_util::{device, max_abs_diff, normal, values};

    #[test]
    fn shapes_with_and_without_batch_norm() {
        let device = device(1);
        for batch_norm in [true, false] {
            let mlp = MlpConfig::new(6)
                .with_hidden(vec![5, 4])
                .with_d_output(2)
                .with_batch_norm(batch_norm)
                .init(&device);
            assert_eq!(mlp.blocks.len(), 2);
            assert_eq!(mlp.blocks[0].norm.is_some(), batch_norm);
            let y = mlp.forward(normal([3, 6], &device));
            assert_eq!(y.dims(), [3, 2]);
        }
        let linear_only = MlpConfig::new(6).with_hidden(vec![]).init(&device);
        assert_eq!(linear_only.forward(normal([3, 6], &device)).dims(), [3, 1]);
    }

    #[test]
    fn batch_norm_on_rank_2_normalises_each_feature_over_the_batch() {
        let device = device(3).autodiff();
        let block = MlpConfig::new(4).with_hidden(vec![3]).init(&device);
        let norm = block.blocks[0]
            .norm
            .as_ref()
            .expect("batch norm configured");
        // Features with very different scales and offsets: [B = 16, F = 3].
        let x = normal([16, 3], &device) * Tensor::<2>::from_floats([[1.0, 10.0, 0.1]], &device)
            + Tensor::<2>::from_floats([[5.0, -3.0, 0.0]], &device);
        let y = norm.forward(x); // gamma 1, beta 0: standardised per column
        let mean = values(y.clone().mean_dim(0));
        let var = values(y.var_bias(0));
        assert!(mean.iter().all(|m| m.abs() < 1e-5), "{mean:?}");
        // var / (var + epsilon): a little under 1 for the small-scale column.
        assert!(var.iter().all(|v| (v - 1.0).abs() < 5e-3), "{var:?}");
    }

    #[test]
    fn batch_norm_trains_on_autodiff_and_infers_from_running_stats() {
        let device = device(2).autodiff();
        let mlp = MlpConfig::new(4).with_hidden(vec![3]).init(&device);
        let x = normal([8, 4], &device).mul_scalar(3.0).add_scalar(5.0);
        // Training path: batch statistics, running stats move away from (0, 1).
        let _ = mlp.forward(x.clone());
        let valid = mlp.valid();
        let norm = valid.blocks[0]
            .norm
            .as_ref()
            .expect("batch norm configured");
        let mean = values(norm.running_mean.value());
        assert!(mean.iter().any(|m| m.abs() > 1e-6), "running mean updated");
        // Inference path (running statistics) is deterministic.
        let a = valid.forward(x.clone().without_autodiff());
        let b = valid.forward(x.without_autodiff());
        assert_eq!(max_abs_diff(a, b), 0.0);
    }
}
