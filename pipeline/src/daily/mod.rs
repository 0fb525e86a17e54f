//! The daily job (`ctrflow daily --date D`) and backfill (`ctrflow backfill`): plan the
//! tri-level schedule from what is published, train the due models on closed landing days,
//! evaluate on the next day, gate A-CTR, publish.
//!
//! - [`config`]: the `[daily]` section.
//! - [`state`]: what the store holds (manifests, `LATEST`, closed days).
//! - `data`: DataFusion reads of closed landing days, streamed.
//! - `job`: training thread and evaluator for one model.
//! - [`gate`]: the publish decision of A-CTR.
//! - [`publish`]: files, manifest, `LATEST`, in that order.
//! - `run`: one date end to end; [`backfill`] runs a date range.

pub mod config;
mod data;
mod error;
pub mod gate;
mod historical;
pub mod holdout;
mod job;
pub mod publish;
pub mod report;
mod run;
mod runner;
pub mod state;
pub mod summary;

pub use error::{DailyError, Result};
pub use job::JobTimings;
pub use run::{DailyOptions, DailyReport, JobReport, Stores, backfill, run_daily};
