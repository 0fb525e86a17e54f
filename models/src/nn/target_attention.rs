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
//!
//! The key and value projections are never applied to the behaviours. With one query per row
//! they can be moved to the query side and after the pooling, which gives the same function
//! with `h` instead of `d` multiply-adds per behaviour and element:
//! - head `j`'s score of behaviour `s` is `q_j . (W_k,j s + b_k,j) = (W_k,j^T q_j) . s + c_j`,
//!   and `c_j = q_j . b_k,j` is the same for every behaviour, so the softmax ignores it (the
//!   key bias is kept as a parameter, for checkpoint compatibility, but takes no part);
//! - head `j`'s output is `sum_l w_l (W_v,j s_l + b_v,j) = W_v,j (sum_l w_l s_l) + b_v,j`,
//!   because the weights of a row with any behaviour sum to 1.
//!
//! Forward and backward of full attention over 1,000 behaviours at batch 256 and `d = 16` got
//! 1.7x faster than with the projections, ETA's whole long branch 1.25x (docs/benchmarks.md).

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

        // The query of each head, taken back through its key projection: [B, h, d].
        let sqrt_d_head = (d_head as f64).sqrt();
        let q = self
            .query
            .forward(target) // [B, d]
            .reshape([batch, heads, d_head])
            .swap_dims(0, 1); // [h, B, d/h]
        let key_t = self
            .key
            .weight
            .val() // [d, d], columns head-major
            .reshape([d, heads, d_head])
            .permute([1, 2, 0]); // [h, d/h, d]
        let query_in_seq = q.matmul(key_t).swap_dims(0, 1); // [B, h, d]

        // Scaled dot-product scores, softmax over the valid positions only.
        let scores = query_in_seq
            .matmul(seq.clone().swap_dims(1, 2)) // [B, h, k]
            .div_scalar(sqrt_d_head);
        let head_mask = mask
            .clone()
            .reshape([batch, 1, len])
            .expand([batch, heads, len]); // [B, h, k]
        let weights = masked_softmax(scores, head_mask); // [B, h, k]

        // Pooled behaviours per head, then each head's value projection: [B, d].
        let pooled = weights.matmul(seq).swap_dims(0, 1); // [h, B, d]
        let value = self
            .value
            .weight
            .val()
            .reshape([d, heads, d_head])
            .swap_dims(0, 1); // [h, d, d/h]
        let mut attended = pooled
            .matmul(value) // [h, B, d/h]
            .swap_dims(0, 1)
            .reshape([batch, d]); // [B, d], heads concatenated
        if let Some(bias) = &self.value.bias {
            attended = attended + bias.val().unsqueeze_dim::<2>(0);
        }
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

    /// The textbook form: every behaviour projected by `W_k` and `W_v` (key bias included).
    fn projected_reference(
        att: &TargetAttention,
        target: Tensor<2>,
        seq: Tensor<3>,
        mask: Tensor<2, Bool>,
    ) -> Tensor<2> {
        let [batch, len, d] = seq.dims();
        let (heads, d_head) = (att.n_heads, d / att.n_heads);
        let padding = mask
            .clone()
            .bool_not()
            .unsqueeze_dim::<3>(2)
            .expand([batch, len, d]);
        let seq = seq.mask_fill(padding, 0.0);
        let split = |x: Tensor<3>| x.reshape([batch, len, heads, d_head]).swap_dims(1, 2);
        let q = att.query.forward(target).reshape([batch, heads, 1, d_head]);
        let k = split(att.key.forward(seq.clone())); // [B, h, k, d/h]
        let v = split(att.value.forward(seq));
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .div_scalar((d_head as f64).sqrt());
        let head_mask = mask
            .clone()
            .reshape([batch, 1, 1, len])
            .expand([batch, heads, 1, len]);
        let attended = masked_softmax(scores, head_mask)
            .matmul(v)
            .reshape([batch, d]);
        att.output.forward(attended) * mask.float().sum_dim(1).clamp_max(1.0)
    }

    #[test]
    fn equals_projecting_every_behaviour_in_value_and_gradient() {
        for heads in [1, 2, 4] {
            let device = device(33).autodiff();
            let att = TargetAttentionConfig::new(8)
                .with_n_heads(heads)
                .init(&device);
            let target = normal([5, 8], &device).require_grad();
            let seq = normal([5, 7, 8], &device).require_grad();
            let mask = prefix_mask(&[7, 3, 0, 1, 5], 7, &device);
            // A weighted sum, so that every output element has its own gradient.
            let weights = normal([5, 8], &device);
            let run = |f: &dyn Fn() -> Tensor<2>| {
                let out = f();
                let grads = (out.clone() * weights.clone()).sum().backward();
                (
                    out,
                    target.grad(&grads).expect("target gradient"),
                    seq.grad(&grads).expect("behaviour gradient"),
                    att.query.weight.grad(&grads),
                    att.value.weight.grad(&grads),
                    att.key.weight.grad(&grads),
                    att.output.weight.grad(&grads),
                    [&att.query, &att.value, &att.output, &att.key].map(|layer| {
                        let bias = layer.bias.as_ref().expect("biased projections");
                        bias.grad(&grads).map(|g| g.unsqueeze_dim::<2>(0))
                    }),
                )
            };
            let fast = run(&|| att.forward(target.clone(), seq.clone(), mask.clone()));
            let reference =
                run(&|| projected_reference(&att, target.clone(), seq.clone(), mask.clone()));
            let close = |a: Tensor<2>, b: Tensor<2>, what: &str| {
                let diff = max_abs_diff(a, b);
                assert!(diff < 1e-5, "{heads} heads: {what} differs by {diff}");
            };
            close(fast.0, reference.0, "output");
            close(fast.1, reference.1, "target gradient");
            let flat = |t: Tensor<3>| t.reshape([5, 56]);
            close(flat(fast.2), flat(reference.2), "behaviour gradient");
            for (what, a, b) in [
                ("W_q gradient", fast.3, reference.3),
                ("W_v gradient", fast.4, reference.4),
                ("W_k gradient", fast.5, reference.5),
                ("W_o gradient", fast.6, reference.6),
            ] {
                close(a.expect(what), b.expect(what), what);
            }
            let [q_bias, v_bias, o_bias, k_bias] = fast.7;
            let [q_ref, v_ref, o_ref, k_ref] = reference.7;
            for (what, a, b) in [
                ("b_q gradient", q_bias, q_ref),
                ("b_v gradient", v_bias, v_ref),
                ("b_o gradient", o_bias, o_ref),
            ] {
                close(a.expect(what), b.expect(what), what);
            }
            // The key bias only shifts each row's scores: its true gradient is zero.
            assert!(k_bias.is_none(), "the key bias takes no part");
            let k_ref = values(k_ref.expect("reference key-bias gradient"));
            assert!(k_ref.iter().all(|g| g.abs() < 1e-6), "{k_ref:?}");
        }
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
