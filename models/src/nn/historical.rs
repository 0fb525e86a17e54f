//! The E-CDCTR historical-embedding feature: the K newest TPM snapshot vectors of a user (or an
//! item) become one feature vector.
//!
//! `x: [B, K, d_h]` (K = 3 by default, snapshot order newest first or oldest first, as long as it
//! is always the same) goes through one single-head self-attention layer with a residual
//! connection, `x + softmax(Q K^T / sqrt(d_h)) V`, then is mean-pooled over the K snapshots to
//! `[B, d_h]`, then optionally projected to `d_output`.
//!
//! **Frozen.** After CPM training the attention is frozen: call `no_grad()` on the module
//! (burn's `Module::no_grad`, or [`CtrNet::freeze_historical`](super::CtrNet::freeze_historical))
//! so its parameters stop requiring gradients; `GradientsParams::from_grads` then holds no
//! gradient for them and the optimiser leaves them as they are.
//!
//! **Merged.** A frozen attention + mean pool is a fixed function of the K snapshot rows, so
//! upstream can compute [`HistoricalEmbedding::pool_snapshots`] once per user/item and store one
//! merged table; serving does a single lookup. In `merged` mode (config) the input is that
//! merged vector as `[B, 1, d_h]` and only the projection applies. Both modes give the same
//! output for the same snapshots (tested).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, activation::softmax};

/// Configuration of a [`HistoricalEmbedding`].
#[derive(Config, Debug)]
pub struct HistoricalEmbeddingConfig {
    /// Width `d_h` of one TPM snapshot vector.
    pub d_hist: usize,
    /// Width of the optional output projection; `None` outputs `d_h` unprojected.
    #[config(default = "None")]
    pub d_output: Option<usize>,
    /// Inputs are pre-merged vectors `[B, 1, d_h]` (see the module docs), not K snapshots.
    #[config(default = false)]
    pub merged: bool,
}

impl HistoricalEmbeddingConfig {
    /// Width of the output vector.
    pub fn output_width(&self) -> usize {
        self.d_output.unwrap_or(self.d_hist)
    }

    /// Builds the module on `device` with freshly initialised parameters.
    pub fn init(&self, device: &Device) -> HistoricalEmbedding {
        let linear = || LinearConfig::new(self.d_hist, self.d_hist).init(device);
        HistoricalEmbedding {
            query: linear(),
            key: linear(),
            value: linear(),
            projection: self
                .d_output
                .map(|d_out| LinearConfig::new(self.d_hist, d_out).init(device)),
            merged: self.merged,
        }
    }
}

/// Self-attention + mean pool over K snapshot vectors, `[B, K, d_h] -> [B, d_out]`.
/// Build it with [`HistoricalEmbeddingConfig::init`].
#[derive(Module, Debug)]
pub struct HistoricalEmbedding {
    /// Query projection of the self-attention.
    pub query: Linear,
    /// Key projection of the self-attention.
    pub key: Linear,
    /// Value projection of the self-attention.
    pub value: Linear,
    /// Optional output projection.
    pub projection: Option<Linear>,
    /// Whether inputs are merged vectors (attention skipped).
    pub merged: bool,
}

impl HistoricalEmbedding {
    /// `x: [B, K, d_h]` (or `[B, 1, d_h]` merged vectors in merged mode) -> `[B, d_out]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        let pooled = if self.merged {
            let [batch, _, d_h] = x.dims();
            x.mean_dim(1).reshape([batch, d_h]) // [B, d_h] (K = 1: the merged vector itself)
        } else {
            self.pool_snapshots(x) // [B, d_h]
        };
        match &self.projection {
            Some(projection) => projection.forward(pooled), // [B, d_out]
            None => pooled,
        }
    }

    /// The attention + mean-pool part alone: `[N, K, d_h] -> [N, d_h]`. With the module frozen,
    /// this is the merged table row of each user/item (what merged mode takes as input).
    pub fn pool_snapshots(&self, x: Tensor<3>) -> Tensor<2> {
        let [batch, _k, d_h] = x.dims();
        let q = self.query.forward(x.clone()); // [B, K, d_h]
        let k = self.key.forward(x.clone()); // [B, K, d_h]
        let v = self.value.forward(x.clone()); // [B, K, d_h]
        let scores = q.matmul(k.swap_dims(1, 2)).div_scalar((d_h as f64).sqrt()); // [B, K, K]
        let attended = softmax(scores, 2).matmul(v); // [B, K, d_h]
        (x + attended) // [B, K, d_h], residual
            .mean_dim(1) // [B, 1, d_h]
            .reshape([batch, d_h]) // [B, d_h]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::test_util::{device, max_abs_diff, normal};
    use burn::optim::GradientsParams;

    #[test]
    fn shapes_with_and_without_projection() {
        let device = device(31);
        let plain = HistoricalEmbeddingConfig::new(6).init(&device);
        assert_eq!(plain.forward(normal([2, 3, 6], &device)).dims(), [2, 6]);
        let projected = HistoricalEmbeddingConfig::new(6)
            .with_d_output(Some(4))
            .init(&device);
        assert_eq!(projected.forward(normal([2, 3, 6], &device)).dims(), [2, 4]);
    }

    #[test]
    fn merged_mode_matches_attention_over_snapshots() {
        let device = device(32);
        let config = HistoricalEmbeddingConfig::new(6).with_d_output(Some(5));
        let full = config.init(&device);
        // Same weights, merged mode.
        let mut merged = full.clone();
        merged.merged = true;
        let snapshots = normal([4, 3, 6], &device);
        let table_rows = full.pool_snapshots(snapshots.clone()); // upstream merge, [4, 6]
        let a = full.forward(snapshots);
        let b = merged.forward(table_rows.unsqueeze_dim::<3>(1)); // [4, 1, 6]
        assert_eq!(b.dims(), [4, 5]);
        assert!(max_abs_diff(a, b) < 1e-6);
    }

    #[test]
    fn frozen_module_gets_no_gradients() {
        let device = device(33).autodiff();
        let hist = HistoricalEmbeddingConfig::new(4).init(&device);
        let x = normal([2, 3, 4], &device);
        let grads = hist.forward(x.clone()).sum().backward();
        assert!(!GradientsParams::from_grads(grads, &hist).is_empty());
        let frozen = hist.no_grad();
        let x = x.require_grad(); // something to differentiate
        let grads = frozen.forward(x.clone()).sum().backward();
        assert!(GradientsParams::from_grads(grads, &frozen).is_empty());
    }
}
