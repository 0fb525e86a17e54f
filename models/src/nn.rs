//! The dense burn networks of ctrflow.
//!
//! Embedding tables live outside autodiff (pure Rust, row-sparse updates): each training step the
//! trainer gathers the batch's rows into a leaf tensor that requires grad, expands them to the
//! batch positions and passes the resulting **embedding tensors** into these networks. The
//! modules here own only dense parameters (linear layers, batch norm, attention projections).
//!
//! - [`Mlp`]: Linear -> BatchNorm -> ReLU (-> Dropout) blocks and a final Linear.
//! - [`DinAttention`]: DIN target attention (local activation unit) over the short sequence.
//! - [`TargetAttention`]: multi-head scaled dot-product target attention (ETA top-k, or all L).
//! - [`HistoricalEmbedding`]: self-attention + mean pool over the K TPM snapshot vectors.
//! - [`PluginTower`] / [`PlugIn`]: PPM, the content tower pre-trained in TPM and plugged into
//!   `CtrNet` frozen, its outputs cached per item.
//! - [`SrpEncoder`] / [`SrpTransfer`]: SRP4CTR, the sequence encoder pre-trained in the TPM
//!   job (masked item prediction) and its transfer into `CtrNet` (the candidate's
//!   cross-attention into every layer, a querying transformer).
//! - [`Tpm`]: the tiny pre-training model (user, item, category [, content tower] -> logit).
//! - [`CtrNet`]: the CPM / A-CTR network.
//! - [`bce_with_logits`]: the numerically stable training loss.
//! - [`transfer`]: A-CTR initialisation from a CPM (every parameter except batch norm).
//! - [`checkpoint`]: weights + `config.json` to bytes and back.
//!
//! burn 0.22 tensors carry their backend in their [`Device`](burn::tensor::Device), so no module
//! here has a backend type parameter: `Device::flex()` is the pure-Rust CPU backend,
//! `Device::flex().autodiff()` the same with gradients, and (feature `tch`) `Device::libtorch()`.
//!
//! Masks: every sequence input comes with a `[B, S]` mask, `true` (or 1.0) for a real behaviour
//! and `false` (0.0) for padding. [`float_mask`] turns a 0/1 float mask into the boolean form
//! the modules take.

use burn::tensor::{Bool, Tensor};

pub mod checkpoint;
mod ctr_net;
mod din;
mod historical;
mod loss;
mod mlp;
mod plugin;
pub mod srp;
mod target_attention;
mod tpm;
#[cfg(test)]
mod training_tests;
pub mod transfer;

pub use checkpoint::{Checkpoint, CheckpointError, NetConfig};
pub use ctr_net::{CtrNet, CtrNetConfig, CtrNetInput};
pub use din::{DinAttention, DinAttentionConfig};
pub use historical::{HistoricalEmbedding, HistoricalEmbeddingConfig};
pub use loss::bce_with_logits;
pub use mlp::{Mlp, MlpBlock, MlpConfig};
pub use plugin::{PlugIn, PluginTower, PluginTowerConfig};
pub use srp::pretrain::{SrpPretrainNet, SrpPretrainNetConfig};
pub use srp::transfer::{SrpInput, SrpTransfer, SrpTransferConfig};
pub use srp::{SrpEncoder, SrpEncoderConfig, SrpEncoding, SrpLayer};
pub use target_attention::{TargetAttention, TargetAttentionConfig};
pub use tpm::{Tpm, TpmConfig};
pub use transfer::{
    ParamAction, TransferError, TransferReport, copy_except_batch_norm, init_actr_from_cpm,
};

/// A 0/1 float mask `[B, S]` as the boolean mask the modules take (`> 0.5` is a real position).
pub fn float_mask(mask: Tensor<2>) -> Tensor<2, Bool> {
    mask.greater_elem(0.5)
}

/// Softmax over the last axis restricted to the positions where `mask` is true.
///
/// `scores` and `mask` have the same shape `[..., S]`. Masked positions get weight exactly 0;
/// a row with no valid position gets all-zero weights (never NaN).
pub(crate) fn masked_softmax<const D: usize>(
    scores: Tensor<D>,
    mask: Tensor<D, Bool>,
) -> Tensor<D> {
    let valid = mask.clone().float();
    // A large negative instead of -inf: exp underflows to exactly 0 for masked positions of
    // rows that have a valid one, and an all-masked row stays finite (uniform), then is zeroed.
    let scores = scores.mask_fill(mask.bool_not(), -1.0e9);
    burn::tensor::activation::softmax(scores, D - 1) * valid
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Helpers shared by the module tests.
    use std::ops::Deref;
    use std::sync::{Mutex, MutexGuard};

    use burn::tensor::{Bool, Device, Distribution, Tensor, TensorData};

    /// flex's seed is one process-wide RNG: tests that draw random tensors hold this lock so
    /// that parallel tests do not interleave their draws and every test is reproducible.
    static RNG: Mutex<()> = Mutex::new(());

    /// A seeded flex device that holds the RNG lock for the test's lifetime.
    pub struct SeededDevice {
        device: Device,
        _rng: MutexGuard<'static, ()>,
    }

    impl SeededDevice {
        /// The same device with autodiff enabled (the lock stays held).
        pub fn autodiff(self) -> Self {
            Self {
                device: self.device.autodiff(),
                _rng: self._rng,
            }
        }
    }

    impl Deref for SeededDevice {
        type Target = Device;
        fn deref(&self) -> &Device {
            &self.device
        }
    }

    /// The plain flex device, seeded, with the RNG lock held.
    pub fn device(seed: u64) -> SeededDevice {
        // A test that panicked while holding the lock (should_panic tests) poisons it; the
        // data behind it is `()`, so the poison carries no information.
        let rng = RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let device = Device::flex();
        device.seed(seed);
        SeededDevice { device, _rng: rng }
    }

    /// A standard-normal tensor.
    pub fn normal<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
    }

    /// A `[B, S]` mask whose row `b` has `lengths[b]` leading valid positions.
    pub fn prefix_mask(lengths: &[usize], seq_len: usize, device: &Device) -> Tensor<2, Bool> {
        let values: Vec<bool> = lengths
            .iter()
            .flat_map(|&l| (0..seq_len).map(move |s| s < l))
            .collect();
        Tensor::from_data(TensorData::new(values, [lengths.len(), seq_len]), device)
    }

    /// The values of a float tensor.
    pub fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
        tensor
            .into_data()
            .try_to_vec::<f32>()
            .expect("float tensor holds f32")
    }

    /// Largest absolute difference between two float tensors of the same shape.
    pub fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        values(a)
            .iter()
            .zip(values(b))
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }
}
