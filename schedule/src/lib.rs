//! The E-CDCTR tri-level asynchronous schedule as a pure function: given a date `D`, the
//! schedule config and what is already published, [`plan`] says which of TPM, CPM and A-CTR
//! run on `D`, over which closed days, starting from what, with exactly which parents.
//!
//! # Rules
//! History = published models of a kind with `date < D` (never later ones, so a rerun of an
//! old date plans the same whatever was published after it).
//! 1. **Already published**: a version named for `D` exists -> `AlreadyPublished` (unless
//!    `force`).
//! 2. **Due**: no history, or `D - newest.date >= cadence` -> runs; else `NotDue`.
//! 3. **Window**: `[D - horizon, D - 1]`. TPM and A-CTR are incremental: continuing from a
//!    previous version, they start the day after its window (clipped to the horizon). The
//!    evaluation day is `D` itself: models are scored on the day after their window.
//! 4. **Days**: closed days of the window are trained on; the others (and `D`, if not closed
//!    and models are evaluated on the next day) are reported missing. `missing-days = "fail"` turns missing days into an error;
//!    `"skip"` trains on the rest, or skips the job when nothing is left.
//! 5. **Start**: TPM continues its newest version; CPM starts fresh (or, with
//!    `cpm-warm-start`, continues its newest version like TPM); A-CTR continues
//!    the live one (`LATEST`, if older than `D`) or the newest accepted one - a gate-rejected
//!    version is never continued - and is re-initialised from the newest CPM when that CPM is
//!    newer than the one its lineage came from.
//! 6. **Parents**: the `K` newest TPM snapshots (newest first) for CPM and A-CTR; the CPM an
//!    A-CTR lineage came from; the previous version continued from.
//! 7. **Asynchronous**: a parent due on `D` is not waited for; with `wait_for_parents` a TPM
//!    or CPM that runs on `D` counts as published on `D` for the jobs after it.
//! 8. **Disabled**: a TPM or CPM with `enabled = false` is skipped and is nobody's parent
//!    (no snapshots, no CPM initialisation), even if versions of it were published earlier.

mod config;
mod plan;
mod render;

#[cfg(test)]
mod tests;

pub use config::{EvaluateOn, MissingDays, ModelSchedule, ScheduleConfig, ScheduleError};
pub use plan::{JobAction, Plan, PlanOptions, PlannedJob, PublishedModel, Start, StoreState, plan};
