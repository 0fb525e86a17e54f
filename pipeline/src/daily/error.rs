//! [`DailyError`]: what can stop the daily job, each naming what failed.

use ctrflow_schemas::{EventDate, ModelKind, ModelVersion};
use thiserror::Error;

/// An error of the daily job, backfill or the model commands.
#[derive(Debug, Error)]
pub enum DailyError {
    /// Object storage failed.
    #[error(transparent)]
    Storage(#[from] ctrflow_storage::StorageError),
    /// A manifest or id did not parse.
    #[error(transparent)]
    Schema(#[from] ctrflow_schemas::SchemaError),
    /// Training or evaluation failed.
    #[error(transparent)]
    Models(#[from] ctrflow_models::ModelsError),
    /// Reading the landing tables failed.
    #[error(transparent)]
    Operator(#[from] ctrflow_operators::OperatorError),
    /// The schedule could not be planned (missing days with `missing-days = "fail"`, ...).
    #[error(transparent)]
    Schedule(#[from] ctrflow_schedule::ScheduleError),
    /// A DataFusion query over the landing tables failed.
    #[error("reading {what}: {source}")]
    Read {
        /// What was being read.
        what: String,
        /// DataFusion's error.
        source: datafusion::error::DataFusionError,
    },
    /// A model version the job needs is not published (no manifest).
    #[error("{model} version {version} is not published (no manifest)")]
    NotPublished {
        /// The model.
        model: ModelKind,
        /// The version.
        version: ModelVersion,
    },
    /// A published artifact is inconsistent with its manifest.
    #[error("{model} version {version}: {reason}")]
    Artifact {
        /// The model.
        model: ModelKind,
        /// The version.
        version: ModelVersion,
        /// What is wrong.
        reason: String,
    },
    /// The `LATEST` pointer kept changing under us.
    #[error(
        "models/{model}/LATEST changed concurrently {attempts} times; another job is publishing"
    )]
    PointerContention {
        /// The model.
        model: ModelKind,
        /// Swap attempts made.
        attempts: u32,
    },
    /// A worker thread failed.
    #[error("{what} for {date}: {reason}")]
    Worker {
        /// Which worker.
        what: &'static str,
        /// The schedule date.
        date: EventDate,
        /// Why.
        reason: String,
    },
    /// A request that cannot be served (bad range, unknown version for rollback, ...).
    #[error("{0}")]
    Invalid(String),
}

/// Result of the daily job.
pub type Result<T, E = DailyError> = std::result::Result<T, E>;
