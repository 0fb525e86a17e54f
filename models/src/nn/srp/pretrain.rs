//! [`SrpPretrainNet`]: the SRP4CTR encoder with what masked-behaviour pre-training adds: a
//! learned `[MASK]` token and the item and category prediction heads.
//!
//! The heads map an encoder output to a query vector that is scored against item (category)
//! embeddings by a dot product: the input embeddings are tied to the output ones, so the
//! trainer can score a masked position against any subset of items (a sampled softmax).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::{Bool, Device, Tensor};

use super::{SrpEncoder, SrpEncoderConfig};

/// Configuration of an [`SrpPretrainNet`].
#[derive(Config, Debug, PartialEq)]
pub struct SrpPretrainNetConfig {
    /// The encoder that pre-training trains and `CtrNet` later reads.
    pub encoder: SrpEncoderConfig,
}

/// Encoder, `[MASK]` token and prediction heads. Build it with [`SrpPretrainNetConfig::init`].
#[derive(Module, Debug)]
pub struct SrpPretrainNet {
    /// The sequence encoder.
    pub encoder: SrpEncoder,
    /// The token that replaces a masked behaviour (item and category) `[1, d_s]`.
    pub mask_token: Param<Tensor<2>>,
    /// Encoder output -> item query (scored against item embeddings).
    pub item_head: Linear,
    /// Encoder output -> category query (scored against category embeddings).
    pub category_head: Linear,
}

impl SrpPretrainNetConfig {
    /// Builds the network on `device` with freshly initialised parameters.
    ///
    /// # Panics
    /// If the encoder config is invalid.
    pub fn init(&self, device: &Device) -> SrpPretrainNet {
        let d = self.encoder.d_model;
        SrpPretrainNet {
            encoder: self.encoder.init(device),
            mask_token: Initializer::Normal {
                mean: 0.0,
                std: 0.1,
            }
            .init([1, d], device),
            item_head: LinearConfig::new(d, d).init(device),
            category_head: LinearConfig::new(d, d).init(device),
        }
    }
}

impl SrpPretrainNet {
    /// Encodes `tokens: [R, L, d_s]` (item + category embeddings) with the positions where
    /// `masked: [R, L]` is true replaced by the `[MASK]` token; `mask: [R, L]` is true at real
    /// behaviours. Returns the encoder output `[R, L, d_s]`.
    pub fn encode_masked(
        &self,
        tokens: Tensor<3>,
        masked: Tensor<2, Bool>,
        mask: Tensor<2, Bool>,
    ) -> Tensor<3> {
        let [rows, len, d] = tokens.dims();
        let replaced = masked.float().unsqueeze_dim::<3>(2).expand([rows, len, d]); // 1 at [MASK]
        let kept = replaced.clone().neg().add_scalar(1.0);
        let mask_token = self
            .mask_token
            .val()
            .unsqueeze_dim::<3>(0)
            .expand([rows, len, d]);
        self.encoder
            .forward(tokens * kept + mask_token * replaced, mask)
            .output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::test_util::{device, max_abs_diff, normal, prefix_mask};

    #[test]
    fn a_masked_token_hides_its_content() {
        let device = device(98);
        let net =
            SrpPretrainNetConfig::new(SrpEncoderConfig::new().with_d_model(8).with_max_len(5))
                .init(&device);
        let tokens = normal([1, 5, 8], &device);
        let mask = prefix_mask(&[5], 5, &device);
        let masked = prefix_mask(&[1], 5, &device); // position 0 masked
        let a = net.encode_masked(tokens.clone(), masked.clone(), mask.clone());
        // Changing the masked token's content changes nothing.
        let other = tokens
            .clone()
            .slice_assign([0..1, 0..1, 0..8], normal([1, 1, 8], &device));
        let b = net.encode_masked(other.clone(), masked, mask.clone());
        assert_eq!(max_abs_diff(a, b), 0.0);
        // Unmasked, it does.
        let none = prefix_mask(&[0], 5, &device);
        let c = net.encode_masked(tokens, none.clone(), mask.clone());
        let d = net.encode_masked(other, none, mask);
        assert!(max_abs_diff(c, d) > 1e-4);
    }
}
