//! The error type of the models crate (outside the metrics, which keep their own
//! [`MetricsError`](crate::metrics::MetricsError) and convert into this one).

use thiserror::Error;

use crate::metrics::MetricsError;

/// Result with [`ModelsError`].
pub type Result<T, E = ModelsError> = std::result::Result<T, E>;

/// Who is to blame for an error, which decides what the caller should do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad configuration or input data: report it, do not retry.
    User,
    /// A dependency failed (I/O, network): retry with backoff may help.
    External,
    /// A bug in ctrflow (an API contract was broken): report it, do not retry.
    Internal,
}

/// Everything that can go wrong in the models crate. Every variant names what failed.
#[derive(Debug, Error)]
pub enum ModelsError {
    /// A configuration value is out of its domain.
    #[error("invalid configuration field `{field}`: {reason}")]
    InvalidConfig {
        /// The offending field, as spelled in the config file (kebab-case, dotted path).
        field: &'static str,
        /// Why the value is invalid.
        reason: String,
    },
    /// A buffer handed to a function has the wrong length.
    #[error("{what}: expected length {expected}, found {found}")]
    ShapeMismatch {
        /// Which argument, with its expected shape (e.g. "gradients [unique, dim]").
        what: &'static str,
        /// Expected number of elements.
        expected: usize,
        /// Actual number of elements.
        found: usize,
    },
    /// A [`Lookup`](crate::embedding::Lookup) was used after the table reassigned rows (an
    /// eviction, an expiry or a reload happened since the lookup was made), or with another table.
    #[error(
        "stale lookup: made against table {lookup_table} generation {lookup_generation}, \
         used with table {table} generation {table_generation}"
    )]
    StaleLookup {
        /// Instance number of the table the lookup was made against.
        lookup_table: u64,
        /// Row-assignment generation the lookup was made at.
        lookup_generation: u64,
        /// Instance number of the table it was used with.
        table: u64,
        /// Current row-assignment generation of that table.
        table_generation: u64,
    },
    /// A gradient value is NaN or infinite; nothing was updated.
    #[error("non-finite gradient {value} at unique row {row}, column {column}")]
    NonFiniteGradient {
        /// Index into the lookup's unique rows.
        row: usize,
        /// Column within the row.
        column: usize,
        /// The value.
        value: f32,
    },
    /// A serialised table ends before a field is complete.
    #[error("truncated embedding checkpoint: {what} needs {needed} bytes, {remaining} remain")]
    CheckpointTruncated {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// A serialised table is not a valid checkpoint (wrong magic, checksum, inconsistent state).
    #[error("corrupt embedding checkpoint: {what}: {reason}")]
    CheckpointCorrupt {
        /// The field or invariant that failed.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A serialised table was written by a format version this build does not read.
    #[error(
        "unsupported embedding checkpoint format version {found} (this build reads {supported})"
    )]
    UnsupportedCheckpointVersion {
        /// Version in the input.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// An input column is missing or has an unexpected type or value.
    #[error("column `{column}`: {reason}")]
    Column {
        /// The column name as in the event schema.
        column: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A training input is NaN or infinite; nothing was updated.
    #[error(
        "non-finite input at training step {step}: feature `{feature}`, batch row {row}: {value}"
    )]
    NonFiniteInput {
        /// The step that was refused (the number of steps completed before it).
        step: u64,
        /// Which input (`context`, `label`, `historical-user`, ...).
        feature: &'static str,
        /// Row of the batch.
        row: usize,
        /// The value.
        value: f32,
    },
    /// The loss of a training step is NaN or infinite; nothing was updated.
    #[error("non-finite loss {value} at training step {step} (batch of {rows} rows)")]
    NonFiniteLoss {
        /// The step that was refused (the number of steps completed before it).
        step: u64,
        /// Rows in the batch.
        rows: usize,
        /// The loss.
        value: f32,
    },
    /// A trainer checkpoint blob is missing or cannot be decoded.
    #[error("trainer checkpoint blob `{blob}`: {reason}")]
    TrainerCheckpoint {
        /// The blob name.
        blob: String,
        /// What is wrong.
        reason: String,
    },
    /// The training thread panicked or went away.
    #[error("training thread: {0}")]
    TrainingThread(String),
    /// Metrics could not be computed.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

impl ModelsError {
    /// Who is to blame, see [`ErrorClass`].
    pub fn class(&self) -> ErrorClass {
        match self {
            ModelsError::InvalidConfig { .. }
            | ModelsError::NonFiniteGradient { .. }
            | ModelsError::CheckpointTruncated { .. }
            | ModelsError::CheckpointCorrupt { .. }
            | ModelsError::UnsupportedCheckpointVersion { .. }
            | ModelsError::Column { .. }
            | ModelsError::NonFiniteInput { .. }
            | ModelsError::NonFiniteLoss { .. }
            | ModelsError::TrainerCheckpoint { .. }
            | ModelsError::Metrics(_) => ErrorClass::User,
            ModelsError::ShapeMismatch { .. }
            | ModelsError::StaleLookup { .. }
            | ModelsError::TrainingThread(_) => ErrorClass::Internal,
        }
    }

    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        ModelsError::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn shape(what: &'static str, expected: usize, found: usize) -> Self {
        ModelsError::ShapeMismatch {
            what,
            expected,
            found,
        }
    }
}
