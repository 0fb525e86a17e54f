//! Multi-head scaled dot-product target attention: the candidate item is the single query over
//! a set of behaviours.
//!
//! ETA runs it over the top-k behaviours its SimHash retrieval selected (`[B, k, d]`, k = 50 by
//! default); the full-attention baseline runs the very same module over all L long-term
//! behaviours (`[B, L, d]`). The retrieval itself happens upstream, outside autodiff.
//!
//! `q = W_q t`, `K = W_k s`, `V = W_v s` split into `h` heads of width `d / h`;
//! `softmax(q K^T / sqrt(d / h))` over the valid positions weights `V`; heads are concatenated
//! and projected by `W_o`. Padded positions get weight exactly 0 and their content is zeroed
//! first, so padding never changes the output; an all-padding row returns zeros (not NaN, and
//! not `W_o`'s bias).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Bool, Device, Tensor};

use super::masked_softmax;

/// Configuration of a [`TargetAttention`].
#[derive(Config, Debug)]
pub struct TargetAttentionConfig {
    /// Width `d` of the target and of every behaviour (also the output width).
    pub d_model: usize,
    /// Number of heads `h`; must divide `d_model`.
    #[config(default = 2)]
    pub n_heads: usize,
}

/// Target attention `([B, d], [B, k, d], [B, k]) -> [B, d]`.
/// Build it with [`TargetAttentionConfig::init`].
#[derive(Module, Debug)]
pub struct TargetAttention {
    /// Query projection `W_q` (applied to the target).
    pub query: Linear,
    /// Key projection `W_k`.
    pub key: Linear,
    /// Value projection `W_v`.
    pub value: Linear,
    /// Output projection `W_o`.
    pub output: Linear,
    /// Number of heads.
    pub n_heads: usize,
}

impl TargetAttentionConfig {
    /// Builds the attention on `device` with freshly initialised parameters.
    ///
    /// # Panics
    /// If `n_heads` is 0 or does not divide `d_model`.
    pub fn init(&self, device: &Device) -> TargetAttention {
        assert!(
            self.n_heads > 0 && self.d_model.is_multiple_of(self.n_heads),
            "n_heads ({}) must divide d_model ({})",
            self.n_heads,
            self.d_model
        );
        let linear = || LinearConfig::new(self.d_model, self.d_model).init(device);
        TargetAttention {
            query: linear(),
            key: linear(),
            value: linear(),
            output: linear(),
            n_heads: self.n_heads,
        }
    }
}

impl TargetAttention {
    /// Attends from `target: [B, d]` over `seq: [B, k, d]` where `mask: [B, k]` is true at real
    /// behaviours. Returns `[B, d]`; all-padding rows give zeros.
    pub fn forward(&self, target: Tensor<2>, seq: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<2> {
        let [batch, len, d] = seq.dims();
        assert_eq!(target.dims(), [batch, d], "target must be [B, d]");
        assert_eq!(mask.dims(), [batch, len], "mask must be [B, k]");
        let heads = self.n_heads;
        let d_head = d / heads;

        // Padding content is zeroed so that it cannot reach the output (not even as NaN).
        let padding = mask
            .clone()
            .bool_not()
            .unsqueeze_dim::<3>(2)
            .expand([batch, len, d]);
        let seq = seq.mask_fill(padding, 0.0); // [B, k, d]

        // Project and split into heads.
        let q = self
            .query
            .forward(target) // [B, d]
            .reshape([batch, heads, 1, d_head]); // [B, h, 1, d/h]
        let k = self
            .key
            .forward(seq.clone()) // [B, k, d]
            .reshape([batch, len, heads, d_head])
            .swap_dims(1, 2); // [B, h, k, d/h]
        let v = self
            .value
            .forward(seq) // [B, k, d]
            .reshape([batch, len, heads, d_head])
            .swap_dims(1, 2); // [B, h, k, d/h]

        // Scaled dot-product scores, softmax over the valid positions only.
        let scores = q
            .matmul(k.swap_dims(2, 3)) // [B, h, 1, k]
            .div_scalar((d_head as f64).sqrt());
        let head_mask = mask
            .clone()
            .reshape([batch, 1, 1, len])
            .expand([batch, heads, 1, len]); // [B, h, 1, k]
        let weights = masked_softmax(scores, head_mask); // [B, h, 1, k]

        // Weighted values, heads concatenated, output projection.
        let attended = weights
            .matmul(v) // [B, h, 1, d/h]
            .reshape([batch, d]); // [B, d]
        let out = self.output.forward(attended); // [B, d]

        // Rows without any behaviour return zeros rather than W_o's bias.
        let non_empty = mask.float().sum_dim(1).clamp_max(1.0); // [B, 1], 0 or 1
        out * non_empty
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::test_util::{SeededDevice, device, max_abs_diff, normal, prefix_mask, values};

    fn attention(heads: usize) -> (TargetAttention, SeededDevice) {
        let device = device(21);
        let att = TargetAttentionConfig::new(8)
            .with_n_heads(heads)
            .init(&device);
        (att, device)
    }

    #[test]
    fn output_shape_for_top_k_and_full_length() {
        let (att, device) = attention(2);
        for len in [3, 17] {
            let out = att.forward(
                normal([4, 8], &device),
                normal([4, len, 8], &device),
                prefix_mask(&[len, 1, 2, len], len, &device),
            );
            assert_eq!(out.dims(), [4, 8]);
        }
    }

    #[test]
    fn padding_content_does_not_change_the_output() {
        let (att, device) = attention(4);
        let target = normal([3, 8], &device);
        let seq = normal([3, 6, 8], &device);
        let mask = prefix_mask(&[6, 3, 1], 6, &device);
        let base = att.forward(target.clone(), seq.clone(), mask.clone());
        let pad = mask
            .clone()
            .bool_not()
            .unsqueeze_dim::<3>(2)
            .expand([3, 6, 8]);
        let noisy = seq.mask_where(pad, normal([3, 6, 8], &device).mul_scalar(1.0e3));
        let out = att.forward(target, noisy, mask);
        assert_eq!(max_abs_diff(base, out), 0.0);
    }

    #[test]
    fn all_padding_rows_give_zeros_and_others_are_finite() {
        let (att, device) = attention(2);
        let out = att.forward(
            normal([3, 8], &device),
            normal([3, 4, 8], &device),
            prefix_mask(&[0, 4, 0], 4, &device),
        );
        let v = values(out);
        assert!(v.iter().all(|x| x.is_finite()));
        assert!(v[..8].iter().chain(&v[16..]).all(|&x| x == 0.0));
        assert!(v[8..16].iter().any(|&x| x != 0.0));
    }

    #[test]
    #[should_panic(expected = "must divide")]
    fn heads_must_divide_width() {
        let _ = TargetAttentionConfig::new(6)
            .with_n_heads(4)
            .init(&device(0));
    }
}
