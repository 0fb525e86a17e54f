//! SRP4CTR: a sequential-recommendation encoder pre-trained on behaviour sequences (masked
//! item prediction, in the TPM job) and transferred into `CtrNet`.
//!
//! ```text
//! pre-training (TPM job): behaviours [B,L] ── item + category + position ──┐ some tokens
//!                         replaced by a learned [MASK] ── SrpEncoder ── heads ── sampled softmax
//!                         over the batch's items (and softmax over its categories)
//!
//! CtrNet (CPM/A-CTR):     tokens [B,L,d_s] ── SrpEncoder (frozen) ── layer inputs X_1..X_n, output H
//!                         candidate [B,d_s] ── per layer: W_q^l c attends over (W_k^l X_l, W_v^l X_l)
//!                                                (each layer's own key/value projections) ── sum ── [B,d_s]
//!                         n_q query tokens (+ user) ── cross-attention over H + FFN ── [B,n_q,d_s]
//!                         concat ── [B, d_s (1 + n_q)] ── CtrNet's MLP
//! ```
//!
//! - [`SrpEncoder`]: a pre-LayerNorm bidirectional transformer (`n_layers`, `n_heads`) over at
//!   most `max_len` tokens, with learned position embeddings. Position 0 is the most recent
//!   behaviour (the order of `hist_item_ids`). Padding is masked out of every attention.
//! - [`SrpTransfer`](transfer::SrpTransfer): the fine-tuning side: the candidate's one-way
//!   cross-attention into every encoder layer and the querying transformer. The encoder and the
//!   input embeddings stay frozen; only the cross-attention queries, the query tokens and the
//!   querying layer train. Because nothing trainable touches the user's sequence before the
//!   candidate is involved, a server can encode a user's sequence once per request and reuse
//!   the per-layer keys and values for every candidate ("folded inference").

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Bool, Device, Tensor, activation::gelu};

use super::masked_softmax;

pub mod pretrain;
pub mod transfer;

/// Configuration of an [`SrpEncoder`].
#[derive(Config, Debug, PartialEq)]
pub struct SrpEncoderConfig {
    /// Width `d_s` of a token (item + category + position embedding) and of every layer.
    #[config(default = 16)]
    pub d_model: usize,
    /// Number of transformer layers.
    #[config(default = 2)]
    pub n_layers: usize,
    /// Attention heads per layer; must divide `d_model`.
    #[config(default = 2)]
    pub n_heads: usize,
    /// Longest sequence `L` the encoder reads (the most recent `L` behaviours).
    #[config(default = 50)]
    pub max_len: usize,
    /// Width of each layer's feed-forward block as a multiple of `d_model`.
    #[config(default = 2)]
    pub ff_factor: usize,
}

/// One pre-LayerNorm transformer layer: `x + SelfAttention(LN(x))`, then `x + FFN(LN(x))`.
#[derive(Module, Debug)]
pub struct SrpLayer {
    /// Norm before the self-attention (its output is what the keys and values project).
    pub attention_norm: LayerNorm,
    /// Query projection.
    pub query: Linear,
    /// Key projection (shared with the candidate's cross-attention in `CtrNet`).
    pub key: Linear,
    /// Value projection (shared with the candidate's cross-attention in `CtrNet`).
    pub value: Linear,
    /// Output projection of the attention.
    pub output: Linear,
    /// Norm before the feed-forward block.
    pub ff_norm: LayerNorm,
    /// Feed-forward expansion `d -> ff_factor d` (GELU).
    pub ff_in: Linear,
    /// Feed-forward projection back to `d`.
    pub ff_out: Linear,
    /// Attention heads.
    pub n_heads: usize,
}

/// The SRP4CTR sequence encoder `([B, L, d_s], [B, L]) -> [B, L, d_s]`. Build it with
/// [`SrpEncoderConfig::init`].
#[derive(Module, Debug)]
pub struct SrpEncoder {
    /// Learned position embeddings `[max_len, d_s]` (position 0: the most recent behaviour).
    pub position: Param<Tensor<2>>,
    /// The transformer layers, first to last.
    pub layers: Vec<SrpLayer>,
    /// Norm of the last layer's output.
    pub final_norm: LayerNorm,
}

/// What [`SrpEncoder::forward`] computes: every layer's normalised input (what its key and
/// value projections read) and the encoder's output.
#[derive(Debug, Clone)]
pub struct SrpEncoding {
    /// Per layer, `LN(x)` before its self-attention: `[B, L, d_s]` each.
    pub layer_inputs: Vec<Tensor<3>>,
    /// The final normalised output `[B, L, d_s]` (padding positions hold values that every
    /// consumer masks out).
    pub output: Tensor<3>,
}

impl SrpEncoderConfig {
    /// Checks the shape fields; the error names the first invalid one.
    pub fn check(&self) -> Result<(), String> {
        if self.d_model == 0 || self.n_layers == 0 || self.max_len == 0 || self.ff_factor == 0 {
            return Err("d_model, n_layers, max_len and ff_factor must be at least 1".into());
        }
        if self.n_heads == 0 || !self.d_model.is_multiple_of(self.n_heads) {
            return Err(format!(
                "n_heads ({}) must divide d_model ({})",
                self.n_heads, self.d_model
            ));
        }
        Ok(())
    }

    /// Builds the encoder on `device` with freshly initialised parameters.
    ///
    /// # Panics
    /// If [`check`](Self::check) fails.
    pub fn init(&self, device: &Device) -> SrpEncoder {
        if let Err(reason) = self.check() {
            panic!("invalid SRP encoder config: {reason}");
        }
        let d = self.d_model;
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        let norm = || LayerNormConfig::new(d).init(device);
        let layers = (0..self.n_layers)
            .map(|_| SrpLayer {
                attention_norm: norm(),
                query: linear(d, d),
                key: linear(d, d),
                value: linear(d, d),
                output: linear(d, d),
                ff_norm: norm(),
                ff_in: linear(d, self.ff_factor * d),
                ff_out: linear(self.ff_factor * d, d),
                n_heads: self.n_heads,
            })
            .collect();
        SrpEncoder {
            position: Initializer::Normal {
                mean: 0.0,
                std: 0.1,
            }
            .init([self.max_len, d], device),
            layers,
            final_norm: norm(),
        }
    }
}

/// Splits `[B, L, d]` into heads `[B, h, L, d/h]`.
pub(crate) fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [batch, len, d] = x.dims();
    x.reshape([batch, len, heads, d / heads]).swap_dims(1, 2)
}

/// Joins heads `[B, h, L, d/h]` back into `[B, L, d]`.
pub(crate) fn join_heads(x: Tensor<4>) -> Tensor<3> {
    let [batch, heads, len, d_head] = x.dims();
    x.swap_dims(1, 2).reshape([batch, len, heads * d_head])
}

/// Scaled dot-product attention of queries `[B, h, Q, d/h]` over keys and values
/// `[B, h, L, d/h]`, where `key_mask: [B, L]` is true at real positions. Masked keys get
/// weight 0; a query with no real key gets zeros.
pub(crate) fn attend(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    key_mask: Tensor<2, Bool>,
) -> Tensor<4> {
    let [batch, heads, queries, d_head] = q.dims();
    let len = k.dims()[2];
    let scores = q
        .matmul(k.swap_dims(2, 3)) // [B, h, Q, L]
        .div_scalar((d_head as f64).sqrt());
    let mask = key_mask
        .reshape([batch, 1, 1, len])
        .expand([batch, heads, queries, len]);
    masked_softmax(scores, mask).matmul(v) // [B, h, Q, d/h]
}

impl SrpLayer {
    /// Multi-head self-attention of `normed: [B, L, d]` (the layer's normalised input).
    fn self_attention(&self, normed: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<3> {
        let heads = self.n_heads;
        let q = split_heads(self.query.forward(normed.clone()), heads);
        let k = split_heads(self.key.forward(normed.clone()), heads);
        let v = split_heads(self.value.forward(normed), heads);
        self.output.forward(join_heads(attend(q, k, v, mask)))
    }

    /// The layer's keys and values of `normed: [B, L, d]`, split into heads.
    pub fn keys_values(&self, normed: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        let heads = self.n_heads;
        (
            split_heads(self.key.forward(normed.clone()), heads),
            split_heads(self.value.forward(normed), heads),
        )
    }
}

impl SrpEncoder {
    /// Longest sequence the encoder reads.
    pub fn max_len(&self) -> usize {
        self.position.val().dims()[0]
    }

    /// Encodes `tokens: [B, L, d_s]` (item + category embeddings, or the mask token; `L <=
    /// max_len`) where `mask: [B, L]` is true at real behaviours; adds the position
    /// embeddings itself.
    ///
    /// # Panics
    /// If `L > max_len` or the width is not `d_s`.
    pub fn forward(&self, tokens: Tensor<3>, mask: Tensor<2, Bool>) -> SrpEncoding {
        let [batch, len, d] = tokens.dims();
        let [max_len, d_model] = self.position.val().dims();
        assert!(
            len <= max_len && d == d_model,
            "SRP tokens [B, {len}, {d}] do not fit the encoder (max_len {max_len}, d {d_model})"
        );
        assert_eq!(mask.dims(), [batch, len], "mask must be [B, L]");
        let position = self
            .position
            .val()
            .narrow(0, 0, len)
            .unsqueeze_dim::<3>(0)
            .expand([batch, len, d]); // [B, L, d]
        let mut x = tokens + position;
        let mut layer_inputs = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let normed = layer.attention_norm.forward(x.clone());
            layer_inputs.push(normed.clone());
            x = x.clone() + layer.self_attention(normed, mask.clone());
            let hidden = gelu(layer.ff_in.forward(layer.ff_norm.forward(x.clone())));
            x = x + layer.ff_out.forward(hidden);
        }
        SrpEncoding {
            layer_inputs,
            output: self.final_norm.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::test_util::{device, max_abs_diff, normal, prefix_mask, values};

    fn config() -> SrpEncoderConfig {
        SrpEncoderConfig::new()
            .with_d_model(8)
            .with_n_heads(2)
            .with_max_len(6)
    }

    #[test]
    fn encodes_every_layer_and_the_output() {
        let device = device(91);
        let encoder = config().init(&device);
        let encoding = encoder.forward(
            normal([3, 5, 8], &device),
            prefix_mask(&[5, 2, 0], 5, &device),
        );
        assert_eq!(encoding.layer_inputs.len(), 2);
        assert!(encoding.layer_inputs.iter().all(|x| x.dims() == [3, 5, 8]));
        assert_eq!(encoding.output.dims(), [3, 5, 8]);
        assert!(values(encoding.output).iter().all(|v| v.is_finite()));
    }

    #[test]
    fn padding_never_reaches_real_positions() {
        let device = device(92);
        let encoder = config().init(&device);
        let tokens = normal([2, 6, 8], &device);
        let mask = prefix_mask(&[3, 6], 6, &device);
        let base = encoder.forward(tokens.clone(), mask.clone()).output;
        // Change only the padded tokens of row 0 (positions 3..6).
        let noise = normal([1, 3, 8], &device).mul_scalar(100.0);
        let noisy = tokens.slice_assign([0..1, 3..6, 0..8], noise);
        let out = encoder.forward(noisy, mask).output;
        let real = |t: Tensor<3>| t.slice([0..1, 0..3, 0..8]);
        assert_eq!(max_abs_diff(real(base.clone()), real(out.clone())), 0.0);
        // Row 1 has no padding and is untouched as well.
        let other = |t: Tensor<3>| t.slice([1..2, 0..6, 0..8]);
        assert_eq!(max_abs_diff(other(base), other(out)), 0.0);
    }

    #[test]
    fn order_matters_through_the_position_embeddings() {
        let device = device(93);
        let encoder = config().init(&device);
        let tokens = normal([1, 4, 8], &device);
        let mask = prefix_mask(&[4], 4, &device);
        let reversed = tokens.clone().flip([1]);
        let a = encoder.forward(tokens, mask.clone()).output.flip([1]);
        let b = encoder.forward(reversed, mask).output;
        assert!(max_abs_diff(a, b) > 1e-4);
    }

    #[test]
    fn invalid_shapes_are_named() {
        let bad = config().with_n_heads(3);
        assert!(
            bad.check()
                .expect_err("3 does not divide 8")
                .contains("n_heads")
        );
        assert!(config().with_max_len(0).check().is_err());
    }
}
