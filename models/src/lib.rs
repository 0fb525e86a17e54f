//! The models of ctrflow and how they are judged.
//!
//! - [`metrics`]: offline evaluation (AUC, GAUC, logloss, calibration) used by the evaluator and
//!   the publish gate.
//! - [`nn`]: the dense burn networks (TPM, CtrNet with DIN and ETA target attention, the TPM
//!   historical-embedding feature), the loss, CPM -> A-CTR transfer and checkpoint bytes. They
//!   take embedding tensors as inputs; the id tables live outside autodiff.
//!
//! burn types never leave this crate and the trainer operators.

pub mod metrics;
pub mod nn;
