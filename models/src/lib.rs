//! The models of ctrflow and how they are judged.
//!
//! - [`metrics`]: offline evaluation (AUC, GAUC, logloss, calibration) used by the evaluator and
//!   the publish gate.
//!
//! The burn networks (TPM, CtrNet with DIN/ETA attention, transfer) build on these; burn types
//! never leave this crate and the trainer operators.

pub mod metrics;
