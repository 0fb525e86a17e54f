//! The error type of the operators crate.

use thiserror::Error;

/// What can go wrong in a source, transform or sink. Variants tell user errors (bad input or
/// configuration, fix and rerun) from external ones (storage, retry) and internal ones (bugs).
#[derive(Debug, Error)]
pub enum OperatorError {
    /// Object storage failed.
    #[error(transparent)]
    Storage(#[from] ctrflow_storage::StorageError),
    /// Data did not fit the event schema.
    #[error(transparent)]
    Schema(#[from] ctrflow_schemas::SchemaError),
    /// An input file is malformed; names the file and line.
    #[error("{file}:{line}: {reason}")]
    Input {
        /// The file.
        file: String,
        /// 1-based line number (0 when the problem is not tied to a line).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A configuration value is invalid; names the field.
    #[error("invalid configuration `{field}`: {reason}")]
    Config {
        /// Dotted path of the field.
        field: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A SQL query failed to plan or run.
    #[error("query failed: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    /// Arrow failed while encoding output.
    #[error("arrow error while {context}: {source}")]
    Arrow {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        source: arrow::error::ArrowError,
    },
    /// Local file I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A named operator of a dataflow graph failed.
    #[error("operator `{name}` failed: {source}")]
    Operator {
        /// The operator's name.
        name: String,
        /// What went wrong inside it.
        #[source]
        source: Box<OperatorError>,
    },
    /// A channel to a neighbouring operator closed, because that operator stopped (usually as a
    /// consequence of its own error, which is reported instead).
    #[error("{0}")]
    Disconnected(String),
    /// A Kafka client operation failed (no rdkafka type crosses this boundary).
    /// `retryable` is true for transient broker or network conditions (brokers down, timeouts,
    /// coordinator moving: retry later) and false for configuration or protocol errors.
    #[error("kafka: {context}: {message}")]
    Kafka {
        /// What was being done (e.g. `committing offsets of epoch 7`).
        context: String,
        /// The client's error message.
        message: String,
        /// Whether retrying later may succeed.
        retryable: bool,
    },
    /// Too large a share of an epoch's input was rejected by the decoder (user error: fix the
    /// producers, or raise `ingest.decode.max-bad-ratio`); the job stops instead of landing
    /// mostly garbage.
    #[error(
        "{scope}: {bad} of {total} messages rejected ({:.2}%), above the ceiling \
         ingest.decode.max-bad-ratio = {:.2}%; top reasons: {top_reasons}",
        ratio * 100.0,
        ceiling * 100.0
    )]
    BadInputCeiling {
        /// Which input was judged, e.g. `epoch 7`.
        scope: String,
        /// Rejected messages.
        bad: u64,
        /// All messages.
        total: u64,
        /// `bad / total`.
        ratio: f64,
        /// The configured ceiling on `ratio`.
        ceiling: f64,
        /// The most frequent rejection reasons with counts, e.g. `bad-json: 90, wrong-type: 30`.
        top_reasons: String,
    },
    /// This replica's epoch lists offsets that an epoch manifest of another writer already
    /// landed: the replica lost the partition while it was paused or cut off past the session
    /// timeout (a "zombie"), and the partition's new owner landed them. The epoch is discarded
    /// (its files stay orphans for `ctrflow gc`), nothing is committed, and the job stops; a
    /// restart rejoins the group and resumes after the landed offsets.
    #[error(
        "fenced: this epoch lists {topic}/{partition} from offset {first_offset}, but epoch \
         {epoch} of writer `{writer}` already landed it through offset {landed_through}; this \
         replica lost the partition while paused, so its epoch is discarded and nothing is \
         committed (restart it: it resumes after the landed offsets)"
    )]
    Fenced {
        /// Topic of the overlapping range.
        topic: String,
        /// Partition of the overlapping range.
        partition: i32,
        /// First offset of this replica's range.
        first_offset: i64,
        /// Highest offset already landed for the partition.
        landed_through: i64,
        /// Writer of the manifest that landed it.
        writer: String,
        /// Number of that manifest.
        epoch: u64,
    },
    /// A blocking task panicked or was cancelled (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}
