//! The trainer: event batches in, trained tables and networks out. A library, no I/O.
//!
//! - [`features`]: [`FeatureBatch`] straight from an Arrow event batch (column-wise).
//! - [`shuffle`]: [`ShuffleBuffer`], a bounded, seeded, deterministic shuffle over incoming
//!   batches.
//! - [`Trainer`] ([`CtrTrainer`], [`TpmTrainer`]): one training step per batch (embedding
//!   tables outside autodiff, ETA retrieval, burn's Adam on the dense part), prediction and
//!   evaluation.
//! - [`TrainerCheckpoint`]: the whole training state as named byte blobs, and resume.
//! - [`srp`]: SRP4CTR masked-behaviour pre-training (alongside a TPM trainer) and the
//!   artifact `CtrNet`'s SRP branch reads.
//! - [`spawn_training_thread`]: a dedicated thread fed through a bounded channel.
//!
//! A step, for `B` rows and embedding width `d`:
//! 1. one training lookup per table (the item table resolves the candidates and both
//!    behaviour sequences in one call), the touched rows gathered into `[u, d]` leaf tensors
//!    that require grad (the item leaf has one extra zero row that padding reads);
//! 2. `select` from the leaves to batch positions: `[B, d]` ids, `[B, S, d]` short sequence;
//! 3. ETA: SimHash codes of the item leaf's current rows (no gradient through the hash), the
//!    top-k long behaviours by Hamming distance to the candidate's code, selected from the same
//!    leaf (so their rows get gradients);
//! 4. forward, `bce_with_logits`, a NaN/inf check, backward;
//! 5. each leaf's gradient removed from the gradients **before** the dense gradients are
//!    collected, checked, and applied row-sparsely by the tables' lazy Adam; burn's Adam steps
//!    the dense parameters.

mod check;
pub mod checkpoint;
mod config;
mod eta_codes;
pub mod features;
mod indexed;
mod item_rows;
mod net;
mod plugin_cache;
pub mod shuffle;
pub mod srp;
mod thread;
mod trainer;

pub use checkpoint::{TrainerCheckpoint, blobs};
pub use config::TrainConfig;
pub use features::{CONTEXT_WIDTH, FeatureBatch, FeatureConfig, Sequence};
pub use indexed::IndexedBatch;
pub use net::{
    HistoricalSpec, NetInputs, NetSpec, PluginSpec, SequenceSpec, SrpSpec, TrainableNet,
};
pub use plugin_cache::{PluginCache, PluginCacheStats};
pub use shuffle::ShuffleBuffer;
pub use srp::{SrpArtifact, SrpPretrainConfig, SrpPretrainer, SrpStats, SrpTables};
pub use thread::{Progress, TrainingThread, spawn_training_thread};
pub use trainer::{
    CtrTrainer, HistoricalTables, PointInTime, Tables, TpmTrainer, TrainStats, Trainer,
};

#[cfg(test)]
mod tests;
