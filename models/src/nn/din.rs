//! DIN target attention (Deep Interest Network's local activation unit) over the short
//! behaviour sequence.
//!
//! For a target item `q: [B, d]` and behaviours `k: [B, S, d]`, a small MLP (the local
//! activation unit) scores every position from `[q, k, q - k, q * k]`; the output is the
//! score-weighted sum of the behaviours, `[B, d]`.
//!
//! The unit's first layer is never applied to a materialised `[B, S, 4d]` tensor: with its
//! weight split by input block, `[q, k, q - k, q * k] W = q (W_q + W_d) + [k, q * k] [W_k - W_d;
//! W_p]`, so the target's share is computed once per row and the per-position product is
//! `2d` wide instead of `4d` (half the layer's work, forward and backward; the parameters are the
//! same `Linear(4d -> h)` as the plain form, so checkpoints do not change).
//!
//! As in DIN, the weights are the raw scores (no softmax) by default, which keeps the intensity
//! of the user's interest; `softmax = true` normalises them over the valid positions instead.
//! Padded positions never contribute: their embeddings are zeroed before scoring and their
//! weights are forced to exactly 0, so the output does not depend on what the padding holds,
//! and an all-padding row gives a zero vector (never NaN).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Bool, Device, Tensor, activation::relu};

use super::masked_softmax;

/// Configuration of a [`DinAttention`].
#[derive(Config, Debug)]
pub struct DinAttentionConfig {
    /// Embedding width `d` of the target and of every behaviour.
    pub d_embed: usize,
    /// Hidden widths of the local activation unit (each followed by ReLU).
    #[config(default = "vec![80, 40]")]
    pub hidden: Vec<usize>,
    /// Normalise the weights with a softmax over valid positions (DIN itself does not).
    #[config(default = false)]
    pub softmax: bool,
}

/// DIN target attention `([B, d], [B, S, d], [B, S]) -> [B, d]`.
/// Build it with [`DinAttentionConfig::init`].
#[derive(Module, Debug)]
pub struct DinAttention {
    /// Hidden layers of the local activation unit.
    pub hidden: Vec<Linear>,
    /// Final layer of the local activation unit: one score per position.
    pub score: Linear,
    /// Whether the weights are softmax-normalised.
    pub softmax: bool,
}

impl DinAttentionConfig {
    /// Builds the attention on `device` with freshly initialised parameters.
    pub fn init(&self, device: &Device) -> DinAttention {
        let mut hidden = Vec::with_capacity(self.hidden.len());
        let mut d_in = 4 * self.d_embed;
        for &d_out in &self.hidden {
            hidden.push(LinearConfig::new(d_in, d_out).init(device));
            d_in = d_out;
        }
        DinAttention {
            hidden,
            score: LinearConfig::new(d_in, 1).init(device),
            softmax: self.softmax,
        }
    }
}

impl DinAttention {
    /// Attends from `target: [B, d]` over `seq: [B, S, d]` where `mask: [B, S]` is true at
    /// real behaviours. Returns `[B, d]`; all-padding rows give zeros.
    pub fn forward(&self, target: Tensor<2>, seq: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<2> {
        let [batch, len, d] = seq.dims();
        assert_eq!(target.dims(), [batch, d], "DIN target must be [B, d]");
        assert_eq!(mask.dims(), [batch, len], "DIN mask must be [B, S]");

        // Zero the padded behaviours so nothing they hold can reach the output.
        let padding = mask
            .clone()
            .bool_not()
            .unsqueeze_dim::<3>(2)
            .expand([batch, len, d]);
        let keys = seq.mask_fill(padding, 0.0); // [B, S, d]
        let query = target.clone().unsqueeze_dim::<3>(1).expand([batch, len, d]); // [B, S, d]

        // Local activation unit on [q, k, q - k, q * k], its first layer factored (module docs).
        let (first, rest) = match self.hidden.split_first() {
            Some((first, rest)) => (first, rest),
            None => (&self.score, &[][..]),
        };
        let mut h = factored_first_layer(first, target, query * keys.clone(), keys.clone());
        if !self.hidden.is_empty() {
            h = relu(h);
            for layer in rest {
                h = relu(layer.forward(h)); // [B, S, hidden[i]]
            }
            h = self.score.forward(h);
        }
        let scores = h.reshape([batch, len]); // [B, S]

        // Weights: exactly 0 at padding.
        let weights = if self.softmax {
            masked_softmax(scores, mask) // [B, S], rows sum to 1 (or 0 if empty)
        } else {
            scores * mask.float() // [B, S]
        };

        // Weighted sum of the behaviours.
        weights
            .unsqueeze_dim::<3>(1) // [B, 1, S]
            .matmul(keys) // [B, 1, d]
            .reshape([batch, d]) // [B, d]
    }
}

/// `layer` applied to `[q, k, q - k, q * k]` for `target = q: [B, d]`, `products = q * k` and
/// `keys = k: [B, S, d]`, without building the `[B, S, 4d]` input: `q (W_q + W_d) + b` once per
/// row, plus `[k, q * k] [W_k - W_d; W_p]` per position. Returns `[B, S, h]`.
fn factored_first_layer(
    layer: &Linear,
    target: Tensor<2>,
    products: Tensor<3>,
    keys: Tensor<3>,
) -> Tensor<3> {
    let [batch, len, d] = keys.dims();
    let weight = layer.weight.val(); // [4d, h]
    let h = weight.dims()[1];
    let block = |i: usize| weight.clone().narrow(0, i * d, d); // [d, h]
    let mut per_row = target.matmul(block(0) + block(2)); // [B, h]
    if let Some(bias) = &layer.bias {
        per_row = per_row + bias.val().unsqueeze_dim::<2>(0);
    }
    let per_position = Tensor::cat(vec![keys, products], 2) // [B, S, 2d]
        .reshape([batch * len, 2 * d])
        .matmul(Tensor::cat(vec![block(1) - block(2), block(3)], 0)) // [B*S, h]
        .reshape([batch, len, h]);
    per_position + per_row.unsqueeze_dim::<3>(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::test_util::{SeededDevice, device, max_abs_diff, normal, prefix_mask, values};

    fn attention(softmax: bool) -> (DinAttention, SeededDevice) {
        let device = device(11);
        let din = DinAttentionConfig::new(4)
            .with_hidden(vec![6])
            .with_softmax(softmax)
            .init(&device);
        (din, device)
    }

    /// The unit as DIN writes it: every layer on the materialised `[q, k, q - k, q * k]`.
    fn unfactored_scores(din: &DinAttention, target: Tensor<2>, keys: Tensor<3>) -> Tensor<3> {
        let [batch, len, d] = keys.dims();
        let query = target.unsqueeze_dim::<3>(1).expand([batch, len, d]);
        let mut h = Tensor::cat(
            vec![
                query.clone(),
                keys.clone(),
                query.clone() - keys.clone(),
                query * keys,
            ],
            2,
        );
        for layer in &din.hidden {
            h = relu(layer.forward(h));
        }
        din.score.forward(h)
    }

    #[test]
    fn factored_first_layer_equals_the_unit_on_concatenated_features() {
        for hidden in [vec![6, 3], vec![]] {
            let device = device(12);
            let din = DinAttentionConfig::new(4)
                .with_hidden(hidden.clone())
                .init(&device);
            let (target, keys) = (normal([3, 4], &device), normal([3, 5, 4], &device));
            let mask = prefix_mask(&[5, 5, 5], 5, &device);
            // With every position valid and no softmax the output is sum_s score_s * k_s.
            let expected = unfactored_scores(&din, target.clone(), keys.clone())
                .mul(keys.clone())
                .sum_dim(1)
                .reshape([3, 4]);
            let out = din.forward(target, keys, mask);
            assert!(
                max_abs_diff(out, expected) < 1e-5,
                "hidden {hidden:?}: factored and concatenated forms differ"
            );
        }
    }

    #[test]
    fn output_shape() {
        let (din, device) = attention(false);
        let out = din.forward(
            normal([3, 4], &device),
            normal([3, 5, 4], &device),
            prefix_mask(&[5, 2, 1], 5, &device),
        );
        assert_eq!(out.dims(), [3, 4]);
    }

    #[test]
    fn padding_content_does_not_change_the_output() {
        for softmax in [false, true] {
            let (din, device) = attention(softmax);
            let target = normal([3, 4], &device);
            let seq = normal([3, 5, 4], &device);
            let mask = prefix_mask(&[5, 2, 0], 5, &device);
            let base = din.forward(target.clone(), seq.clone(), mask.clone());
            // Replace every padded position by large garbage.
            let garbage = normal([3, 5, 4], &device).mul_scalar(1.0e3);
            let pad = mask
                .clone()
                .bool_not()
                .unsqueeze_dim::<3>(2)
                .expand([3, 5, 4]);
            let noisy = seq.clone().mask_where(pad, garbage);
            assert!(
                max_abs_diff(seq, noisy.clone()) > 1.0,
                "padding was changed"
            );
            let out = din.forward(target, noisy, mask);
            assert_eq!(max_abs_diff(base, out), 0.0, "softmax={softmax}");
        }
    }

    #[test]
    fn float_mask_equals_bool_mask() {
        let (din, device) = attention(false);
        let (target, seq) = (normal([3, 4], &device), normal([3, 5, 4], &device));
        let mask = prefix_mask(&[5, 2, 0], 5, &device);
        let a = din.forward(target.clone(), seq.clone(), mask.clone());
        let b = din.forward(target, seq, crate::nn::float_mask(mask.float()));
        assert_eq!(max_abs_diff(a, b), 0.0);
    }

    #[test]
    fn empty_sequence_gives_zeros_not_nan() {
        for softmax in [false, true] {
            let (din, device) = attention(softmax);
            let out = din.forward(
                normal([2, 4], &device),
                normal([2, 3, 4], &device),
                prefix_mask(&[0, 0], 3, &device),
            );
            assert!(values(out).iter().all(|&v| v == 0.0), "softmax={softmax}");
        }
    }

    #[test]
    fn softmax_weights_of_a_single_valid_position_return_it() {
        let (din, device) = attention(true);
        let seq = normal([1, 3, 4], &device);
        let out = din.forward(
            normal([1, 4], &device),
            seq.clone(),
            prefix_mask(&[1], 3, &device),
        );
        let first = seq.slice([0..1, 0..1, 0..4]).reshape([1, 4]);
        assert!(max_abs_diff(out, first) < 1e-6);
    }
}
