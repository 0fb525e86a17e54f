//! The models of ctrflow and how they are judged.
//!
//! - [`embedding`]: embedding tables keyed by raw u64 ids (frequency admission, expiry, a row
//!   bound with least-recently-seen eviction, or fixed hashing), kept outside autodiff and
//!   updated row-sparsely by lazy Adam; exact binary checkpoints.
//! - [`eta`]: SimHash codes and O(L) Hamming top-k selection for ETA's long-sequence retrieval.
//! - [`metrics`]: offline evaluation (AUC, GAUC, logloss, calibration) used by the evaluator and
//!   the publish gate.
//!
//! The burn networks (TPM, CtrNet with DIN/ETA attention, transfer) build on these; burn types
//! never leave this crate and the trainer operators. The modules above are plain Rust with no
//! burn dependency: they hold state a trainer copies into and out of tensors.

pub mod embedding;
mod error;
pub mod eta;
pub mod metrics;
mod rng;

pub use error::{ErrorClass, ModelsError, Result};
