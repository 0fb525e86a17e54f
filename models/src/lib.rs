//! The models of ctrflow and how they are judged.
//!
//! - [`device`]: where the dense networks compute (burn's `flex` CPU backend, or libtorch with
//!   the `tch` feature).
//! - [`embedding`]: embedding tables keyed by raw u64 ids (frequency admission, expiry, a row
//!   bound with least-recently-seen eviction, or fixed hashing), kept outside autodiff and
//!   updated row-sparsely by lazy Adam; exact binary checkpoints.
//! - [`eta`]: SimHash codes and O(L) Hamming top-k selection for ETA's long-sequence retrieval.
//! - [`malloc`]: glibc malloc settings that training processes run with.
//! - [`metrics`]: offline evaluation (AUC, GAUC, logloss, calibration) used by the evaluator and
//!   the publish gate.
//! - [`nn`]: the dense burn networks (TPM, CtrNet with DIN and ETA target attention, the TPM
//!   historical-embedding feature), the loss, CPM -> A-CTR transfer and checkpoint bytes. They
//!   take embedding tensors as inputs; the id tables live outside autodiff.
//! - [`train`]: the trainer: Arrow batches to features, a seeded shuffle buffer, the training
//!   step of CtrNet and TPM with row-sparse table updates, evaluation, checkpoint and resume,
//!   and a dedicated training thread.
//!
//! burn types never leave this crate and the trainer operators. `embedding`, `eta` and `metrics`
//! are plain Rust: they hold state a trainer copies into and out of tensors.

pub mod device;
pub mod embedding;
mod error;
pub mod eta;
pub mod malloc;
pub mod metrics;
pub mod nn;
mod rng;
pub mod train;

pub use device::ComputeDevice;
pub use error::{ErrorClass, ModelsError, Result};
pub use rng::mix64;
